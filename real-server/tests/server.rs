//! The room server over real sockets with the real embedded store.

mod common;

use std::time::Duration;

use common::{Client, TestServer, config, join};
use futures_util::SinkExt;
use real_server::{SqliteStore, Store};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_legacy_sequence_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::sqlite(config(), dir.path()).await;
    let mut client = Client::connect(&server).await;
    // An empty room: the legacy fields exactly, then our optional extensions.
    assert_eq!(
        client.recv_text().await,
        r#"{"type":"HANDSHAKE","payload":{"serverName":"General","messages":[],"userNames":{},"protocolVersion":2,"latestSeq":0,"online":[],"onlineCount":0,"limits":{"maxMessageChars":4000,"maxNameChars":32,"rateBurst":1000,"ratePerSecond":1000},"people":[]}}"#
    );
    client
        .send_text(r#"{"type":"HANDSHAKE_USER_INFO","payload":{}}"#)
        .await;
    let name_change = client.recv_text().await;
    let user_info: Value = client.recv().await;
    let id = user_info["payload"]["userId"].as_str().unwrap().to_owned();
    assert_eq!(
        name_change,
        format!(
            r#"{{"type":"NAME_CHANGE","payload":{{"userId":"{id}","name":"Anonymous","idNamePair":{{"{id}":"Anonymous"}}}}}}"#
        )
    );
    assert_eq!(user_info["type"], "USER_INFO");
    assert_eq!(user_info["payload"]["name"], "Anonymous");
    // The legacy field, then ours (when the room gave this identity out).
    let connected: Value = serde_json::from_str(&client.recv_text().await).unwrap();
    assert_eq!(connected["type"], "USER_CONNECTED");
    assert_eq!(connected["payload"]["userId"], id.as_str());
    assert!(connected["payload"]["joinedAt"].as_i64().unwrap() > 1_600_000_000_000);
    // A legacy MESSAGE, with the legacy client's userId claim (its own, so accepted).
    client
        .send_text(&format!(
            r#"{{"type":"MESSAGE","payload":{{"rawMessage":"**hi**","userId":"{id}"}}}}"#
        ))
        .await;
    // Ours, which a v1 reducer ignores: the presence tick that names this client ends before
    // its own message goes out.
    let presence = client.recv().await;
    assert_eq!(presence["type"], "PRESENCE");
    assert_eq!(presence["payload"]["joined"][0]["userId"], id.as_str());
    let message = client.recv().await;
    assert_eq!(message["type"], "MESSAGE");
    let payload = &message["payload"];
    assert_eq!(payload["rawMessage"], "**hi**");
    assert_eq!(payload["htmlMessage"], "<p><strong>hi</strong></p>\n");
    assert_eq!(payload["userId"], id.as_str());
    assert!(payload["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    client
        .send_text(&format!(
            r#"{{"type":"NAME_CHANGE","payload":{{"name":"Ann","userId":"{id}"}}}}"#
        ))
        .await;
    assert_eq!(
        client.recv_text().await,
        format!(
            r#"{{"type":"NAME_CHANGE","payload":{{"userId":"{id}","name":"Ann","idNamePair":{{"{id}":"Ann"}}}}}}"#
        )
    );
    // A second legacy client sees history and names in its HANDSHAKE.
    let (_, handshake) = Client::open(&server).await;
    let payload = &handshake["payload"];
    assert_eq!(payload["messages"][0]["rawMessage"], "**hi**");
    assert_eq!(
        payload["messages"][0]["htmlMessage"],
        "<p><strong>hi</strong></p>\n"
    );
    assert_eq!(payload["userNames"][&id], "Ann");
    server.stop().await;
}

#[tokio::test]
async fn two_users_chat() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut ann, ann_id, _) = join(&server).await;
    let (mut bob, bob_id, _) = join(&server).await;
    ann.say("hi bob", Some("a1")).await;
    let at_bob = bob.recv_type("MESSAGE").await;
    let at_ann = ann.recv_type("MESSAGE").await;
    assert_eq!(at_ann, at_bob);
    assert_eq!(at_bob["payload"]["userId"], ann_id.as_str());
    assert_eq!(at_bob["payload"]["nonce"], "a1");
    assert_eq!(at_bob["payload"]["seq"], 1);
    bob.say("hi ann", None).await;
    assert_eq!(
        ann.recv_type("MESSAGE").await["payload"]["userId"],
        bob_id.as_str()
    );
    assert_eq!(bob.recv_type("MESSAGE").await["payload"]["seq"], 2);
    server.stop().await;
}

#[tokio::test]
async fn impersonation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut ann, ann_id, _) = join(&server).await;
    let (mut eve, _, _) = join(&server).await;
    eve.send(json!({"type": "MESSAGE", "payload": {"rawMessage": "I am Ann", "userId": ann_id}}))
        .await;
    assert_eq!(
        eve.recv_type("ERROR").await["payload"]["code"],
        "USER_MISMATCH"
    );
    eve.send(json!({"type": "NAME_CHANGE", "payload": {"name": "Mallory", "userId": ann_id}}))
        .await;
    assert_eq!(
        eve.recv_type("ERROR").await["payload"]["code"],
        "USER_MISMATCH"
    );
    // Resuming Ann's identity without her token gives a new identity instead.
    let (mut thief, _) = Client::open(&server).await;
    thief
        .send(json!({"type": "HANDSHAKE_USER_INFO", "payload": {"userId": ann_id}}))
        .await;
    assert_eq!(
        thief.recv_type("ERROR").await["payload"]["code"],
        "IDENTITY_REJECTED"
    );
    let info = thief.recv_type("USER_INFO").await;
    assert_ne!(info["payload"]["userId"], ann_id.as_str());
    // Ann saw none of it as hers.
    ann.say("still me", None).await;
    let message = ann.recv_type("MESSAGE").await;
    assert_eq!(message["payload"]["rawMessage"], "still me");
    server.stop().await;
}

#[tokio::test]
async fn xss_is_stored_and_broadcast_inert() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut ann, _, _) = join(&server).await;
    let attack = "<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>";
    ann.say(attack, None).await;
    let message = ann.recv_type("MESSAGE").await;
    let html = message["payload"]["htmlMessage"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(message["payload"]["rawMessage"], attack);
    // The tags arrive as visible text; the link has no target.
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    for bad in ["<script", "<img", "href=\"javascript", " onerror=\""] {
        assert!(!html.contains(bad), "{bad} in {html}");
    }
    server.stop().await;
    // Storage holds the same inert HTML.
    let store = SqliteStore::open_dir(dir.path()).unwrap();
    let snapshot = store.load_snapshot("General", 10).await.unwrap();
    assert_eq!(snapshot.messages[0].html, html);
}

#[tokio::test]
async fn a_restart_keeps_history_and_identities() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut ann, ann_id, token) = join(&server).await;
    ann.send(json!({"type": "NAME_CHANGE", "payload": {"name": "Ann"}}))
        .await;
    ann.recv_type("NAME_CHANGE").await;
    for i in 0..3 {
        ann.say(&format!("m{i}"), None).await;
        ann.recv_type("MESSAGE").await;
    }
    server.stop().await;

    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut back, handshake) = Client::open(&server).await;
    let raws: Vec<&str> = handshake["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["rawMessage"].as_str().unwrap())
        .collect();
    assert_eq!(raws, ["m0", "m1", "m2"]);
    assert_eq!(handshake["payload"]["userNames"][&ann_id], "Ann");
    let info = back
        .identify(json!({"userId": ann_id, "token": token}))
        .await;
    assert_eq!(info["userId"], ann_id.as_str());
    assert_eq!(info["name"], "Ann");
    back.say("after restart", None).await;
    assert_eq!(back.recv_type("MESSAGE").await["payload"]["seq"], 4);
    server.stop().await;
}

#[tokio::test]
async fn resume_after_disconnect_loses_nothing_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut ann, ann_id, token) = join(&server).await;
    let (mut bob, _, _) = join(&server).await;
    bob.say("one", None).await;
    bob.recv_type("MESSAGE").await;
    let seen = ann.recv_type("MESSAGE").await["payload"]["seq"]
        .as_u64()
        .unwrap();
    drop(ann);
    for text in ["two", "three"] {
        bob.say(text, None).await;
        bob.recv_type("MESSAGE").await;
    }
    let (mut ann, _) = Client::open(&server).await;
    ann.send(json!({"type": "HANDSHAKE_USER_INFO",
                    "payload": {"userId": ann_id, "token": token, "since": seen}}))
        .await;
    let resume = ann.recv_type("RESUME").await;
    assert_eq!(resume["payload"]["gapTooBig"], false);
    let missed: Vec<&str> = resume["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["rawMessage"].as_str().unwrap())
        .collect();
    assert_eq!(missed, ["two", "three"]);
    bob.say("four", None).await;
    assert_eq!(
        ann.recv_type("MESSAGE").await["payload"]["rawMessage"],
        "four"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_resent_nonce_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut ann, ann_id, token) = join(&server).await;
    let (mut bob, _, _) = join(&server).await;
    ann.say("only once", Some("n-1")).await;
    let first = ann.recv_type("MESSAGE").await;
    bob.recv_type("MESSAGE").await;
    drop(ann);
    let (mut ann, _) = Client::open(&server).await;
    ann.identify(json!({"userId": ann_id, "token": token}))
        .await;
    ann.say("only once", Some("n-1")).await;
    assert_eq!(ann.recv_type("MESSAGE").await, first);
    // Bob sees Ann leave and come back, but not the message again.
    bob.assert_no_message(Duration::from_millis(300)).await;
    server.stop().await;
    let store = SqliteStore::open_dir(dir.path()).unwrap();
    assert_eq!(
        store
            .load_snapshot("General", 10)
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.max_message_chars = 100;
    let server = TestServer::sqlite(cfg, dir.path()).await;
    let (mut ann, _, _) = join(&server).await;
    for (frame, code) in [
        ("{not json", "INVALID_JSON"),
        ("42", "INVALID_JSON"),
        (r#"{"type":"FORMAT_C","payload":{}}"#, "UNKNOWN_TYPE"),
        (
            r#"{"type":"MESSAGE","payload":{"rawMessage":7}}"#,
            "INVALID_PAYLOAD",
        ),
        (
            r#"{"type":"NAME_CHANGE","payload":{"name":null}}"#,
            "INVALID_PAYLOAD",
        ),
        (
            r#"{"type":"MESSAGE","payload":{"rawMessage":"   "}}"#,
            "EMPTY_MESSAGE",
        ),
        (
            r#"{"type":"NAME_CHANGE","payload":{"name":""}}"#,
            "INVALID_NAME",
        ),
    ] {
        ann.send_text(frame).await;
        assert_eq!(
            ann.recv_type("ERROR").await["payload"]["code"],
            code,
            "{frame}"
        );
    }
    ann.say(&"x".repeat(101), None).await;
    assert_eq!(
        ann.recv_type("ERROR").await["payload"]["code"],
        "MESSAGE_TOO_LONG"
    );
    ann.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(
        ann.recv_type("ERROR").await["payload"]["code"],
        "BINARY_FRAME"
    );
    // Still a working connection.
    ann.say("fine", None).await;
    assert_eq!(
        ann.recv_type("MESSAGE").await["payload"]["rawMessage"],
        "fine"
    );

    // An oversized frame: ERROR, then close 1009.
    let (mut big, _) = Client::open(&server).await;
    big.send_text(&format!(
        r#"{{"type":"MESSAGE","payload":{{"rawMessage":"{}"}}}}"#,
        "y".repeat(70 * 1024)
    ))
    .await;
    assert_eq!(
        big.recv_type("ERROR").await["payload"]["code"],
        "FRAME_TOO_LARGE"
    );
    let close = big.recv_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1009);

    // The room is unharmed: only the one good message is stored.
    let (mut carl, _, _) = join(&server).await;
    carl.say("still up", None).await;
    assert_eq!(carl.recv_type("MESSAGE").await["payload"]["seq"], 2);
    server.stop().await;
    let store = SqliteStore::open_dir(dir.path()).unwrap();
    let raws: Vec<String> = store
        .load_snapshot("General", 10)
        .await
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.raw)
        .collect();
    assert_eq!(raws, ["fine", "still up"]);
}

#[tokio::test]
async fn a_flood_is_rate_limited_for_that_connection_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.rate_burst = 5;
    cfg.rate_per_second = 1;
    let server = TestServer::sqlite(cfg, dir.path()).await;
    let (mut flood, _, _) = join(&server).await;
    let (mut calm, _, _) = join(&server).await;
    for i in 0..50 {
        flood.say(&format!("spam {i}"), None).await;
    }
    let mut limited = 0;
    let mut delivered = 0;
    while limited + delivered < 50 {
        let frame = flood.recv().await;
        match frame["type"].as_str() {
            Some("ERROR") => {
                assert_eq!(frame["payload"]["code"], "RATE_LIMITED");
                limited += 1;
            }
            Some("MESSAGE") => delivered += 1,
            _ => {}
        }
    }
    assert!(delivered <= 6, "{delivered} got through");
    assert!(limited >= 44);
    calm.say("not affected", None).await;
    let message = loop {
        let frame = calm.recv_type("MESSAGE").await;
        if frame["payload"]["rawMessage"] == "not affected" {
            break frame;
        }
    };
    assert_eq!(message["payload"]["rawMessage"], "not affected");
    server.stop().await;
}

#[tokio::test]
async fn history_pages_come_from_storage() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut ann, _, _) = join(&server).await;
    for i in 1..=150 {
        ann.say(&format!("m{i}"), None).await;
        ann.recv_type("MESSAGE").await;
    }
    server.stop().await;
    // After a restart the room holds only the latest 1000 in memory; all 150 fit, so ask a
    // fresh server whose handshake showed the latest 100 for the page before them.
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut bob, handshake) = Client::open(&server).await;
    let messages = handshake["payload"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 100);
    assert_eq!(messages[0]["seq"], 51);
    bob.send(json!({"type": "HISTORY_REQUEST", "payload": {"before": 51, "limit": 30}}))
        .await;
    let page = bob.recv_type("HISTORY").await;
    let seqs: Vec<u64> = page["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (21..=50).collect::<Vec<_>>());
    assert_eq!(page["payload"]["hasMore"], true);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_client_is_closed_and_does_not_stall_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.queue_frames = 8;
    cfg.max_message_chars = 4000;
    let server = TestServer::sqlite(cfg, dir.path()).await;
    // A client that never reads again.
    let (mut slow, _, _) = join(&server).await;
    let (mut ann, _, _) = join(&server).await;
    let big = "z".repeat(3900);
    let mut closed_slow = false;
    for i in 0..2000 {
        ann.say(&big, Some(&format!("n{i}"))).await;
        // The sender keeps getting its echoes promptly.
        ann.recv_type("MESSAGE").await;
        if i % 50 == 0 {
            let metrics = reqwest_metrics(&server).await;
            if metrics.contains("cahat_queue_drops_total 1") {
                closed_slow = true;
                break;
            }
        }
    }
    assert!(closed_slow, "the slow client was never closed");
    let close = slow.recv_close().await;
    if let Some(close) = close {
        assert_eq!(u16::from(close.code), 1008);
        assert!(close.reason.contains("too slow"));
    }
    server.stop().await;
}

/// GET /metrics over a plain TCP socket (no HTTP client dependency for one request).
async fn reqwest_metrics(server: &TestServer) -> String {
    http_get(server, "/metrics").await.1
}

async fn http_get(server: &TestServer, path: &str) -> (u16, String) {
    let (head, body) = http_get_with(server, path, "").await;
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn health_metrics_and_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::sqlite(config(), dir.path()).await;
    assert_eq!(
        http_get(&server, "/healthz").await,
        (200, "ok\n".to_owned())
    );
    let (mut ann, _, _) = join(&server).await;
    ann.say("count me", None).await;
    ann.recv_type("MESSAGE").await;
    let (status, metrics) = http_get(&server, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("cahat_connections 1\n"), "{metrics}");
    assert!(
        metrics.contains("cahat_messages_stored_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE cahat_deliveries_total counter"),
        "{metrics}"
    );
    let (status, body) = http_get(&server, "/").await;
    assert_eq!(status, 426);
    assert!(body.contains("WebSocket"));
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_with_1001_and_keeps_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::sqlite(config(), dir.path()).await;
    let (mut ann, _, _) = join(&server).await;
    for i in 0..20 {
        ann.say(&format!("m{i}"), None).await;
    }
    let mut seen = 0;
    while seen < 20 {
        if ann.recv().await["type"] == "MESSAGE" {
            seen += 1;
        }
    }
    let stopping = tokio::spawn(server.stop());
    let close = ann.recv_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1001);
    stopping.await.unwrap();
    let store = SqliteStore::open_dir(dir.path()).unwrap();
    assert_eq!(
        store
            .load_snapshot("General", 100)
            .await
            .unwrap()
            .messages
            .len(),
        20
    );
}

#[tokio::test]
async fn origins_outside_the_allow_list_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.allowed_origins = vec!["https://chat.example".into()];
    let server = TestServer::sqlite(cfg, dir.path()).await;
    let request = |origin: &str| {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                server.url(),
            )
            .unwrap();
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        request
    };
    let refused = tokio_tungstenite::connect_async(request("https://evil.example")).await;
    assert!(refused.is_err());
    let allowed = tokio_tungstenite::connect_async(request("https://chat.example")).await;
    assert!(allowed.is_ok());
    server.stop().await;
}

/// The server on the MongoDB store: chat, a restart, and a resumed identity. Runs when
/// CAHAT_MONGODB_URI is set (always under CI; scripts/test-all.sh starts SecantusDB).
#[tokio::test]
async fn the_mongodb_store_serves_a_room_across_restarts() {
    let uri = match std::env::var("CAHAT_MONGODB_URI") {
        Ok(uri) => uri,
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI must set CAHAT_MONGODB_URI"),
        Err(_) => {
            eprintln!("skipped: CAHAT_MONGODB_URI is not set");
            return;
        }
    };
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let mut cfg = config();
    cfg.room_id = Some(format!(
        "server-test-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let open = || async {
        real_server::MongoStore::connect(&uri, "cahat_server_tests")
            .await
            .unwrap()
    };

    let server = TestServer::start(cfg.clone(), open().await).await;
    let (mut ann, ann_id, token) = join(&server).await;
    let (mut bob, _, _) = join(&server).await;
    ann.send(json!({"type": "NAME_CHANGE", "payload": {"name": "Ann"}}))
        .await;
    ann.say("stored in mongo", Some("m1")).await;
    assert_eq!(
        bob.recv_type("MESSAGE").await["payload"]["rawMessage"],
        "stored in mongo"
    );
    server.stop().await;

    let server = TestServer::start(cfg, open().await).await;
    let (mut back, handshake) = Client::open(&server).await;
    assert_eq!(
        handshake["payload"]["messages"][0]["rawMessage"],
        "stored in mongo"
    );
    assert_eq!(handshake["payload"]["userNames"][&ann_id], "Ann");
    let info = back
        .identify(json!({"userId": ann_id, "token": token}))
        .await;
    assert_eq!(info["name"], "Ann");
    back.say("stored in mongo", Some("m1")).await;
    assert_eq!(
        back.recv_type("MESSAGE").await["payload"]["seq"],
        1,
        "resend stored once"
    );
    back.say("second", None).await;
    assert_eq!(back.recv_type("MESSAGE").await["payload"]["seq"], 2);
    server.stop().await;
}

#[tokio::test]
async fn pings_keep_a_live_client_and_a_silent_one_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.ping_seconds = 1;
    cfg.idle_seconds = 2;
    let server = TestServer::sqlite(cfg, dir.path()).await;
    // A live client answers pings (tungstenite replies while it reads) and stays.
    let (mut live, _, _) = join(&server).await;
    // A silent one never reads, so never answers a ping.
    let (silent, _, _) = join(&server).await;
    let silent_ws = silent.ws;
    live.assert_no_message(Duration::from_millis(3500)).await;
    live.say("still here", None).await;
    assert_eq!(
        live.recv_type("MESSAGE").await["payload"]["rawMessage"],
        "still here"
    );
    // The server let the silent one go: only the live connection is open.
    let metrics = http_get(&server, "/metrics").await.1;
    assert!(metrics.contains("cahat_connections 1\n"), "{metrics}");
    // Its close frame, when it can still be read (answering the queued pings may fail first
    // on the closed socket), names the reason.
    let mut silent = Client { ws: silent_ws };
    if let Some(close) = silent.recv_close().await {
        assert_eq!(u16::from(close.code), 1000);
        assert_eq!(close.reason.as_str(), "idle timeout");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_built_client_is_served_on_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let client_dir = dir.path().join("dist");
    std::fs::create_dir_all(&client_dir).unwrap();
    std::fs::write(
        client_dir.join("index.html"),
        "<!doctype html><title>CAHAT</title>",
    )
    .unwrap();
    std::fs::write(client_dir.join("app.js"), "console.log(1)").unwrap();
    let mut cfg = config();
    cfg.client_dir = Some(client_dir);
    let server = TestServer::sqlite(cfg, &dir.path().join("data")).await;
    assert_eq!(
        http_get(&server, "/").await,
        (200, "<!doctype html><title>CAHAT</title>".to_owned())
    );
    assert_eq!(
        http_get(&server, "/app.js").await,
        (200, "console.log(1)".to_owned())
    );
    assert_eq!(http_get(&server, "/missing.js").await.0, 404);
    // And "/" is still the room for WebSocket clients.
    let (_, handshake) = Client::open(&server).await;
    assert_eq!(handshake["payload"]["serverName"], "General");
    server.stop().await;
}

/// A raw GET with extra request headers; returns the response head (lowercased) and body bytes.
async fn http_get_with(server: &TestServer, path: &str, headers: &str) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head")
        + 4;
    let body = response.split_off(split);
    (String::from_utf8_lossy(&response).to_lowercase(), body)
}

#[tokio::test]
async fn the_client_is_sent_precompressed_with_cache_headers() {
    let dir = tempfile::tempdir().unwrap();
    let client_dir = dir.path().join("dist");
    std::fs::create_dir_all(&client_dir).unwrap();
    std::fs::write(client_dir.join("index.html"), "<!doctype html>").unwrap();
    let wasm = "client-0123456789abcdef_bg.wasm";
    std::fs::write(client_dir.join(wasm), "PLAIN").unwrap();
    std::fs::write(client_dir.join(format!("{wasm}.br")), "BROTLI").unwrap();
    std::fs::write(client_dir.join(format!("{wasm}.gz")), "GZIP").unwrap();
    std::fs::write(client_dir.join("manifest.webmanifest"), "{}").unwrap();
    let mut cfg = config();
    cfg.client_dir = Some(client_dir);
    let server = TestServer::sqlite(cfg, &dir.path().join("data")).await;
    let path = format!("/{wasm}");

    let (head, body) =
        http_get_with(&server, &path, "Accept-Encoding: gzip, deflate, br\r\n").await;
    assert_eq!(body, b"BROTLI");
    assert!(head.contains("content-encoding: br"), "{head}");
    assert!(head.contains("content-type: application/wasm"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert!(
        head.contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    let (head, body) = http_get_with(&server, &path, "Accept-Encoding: gzip\r\n").await;
    assert_eq!(body, b"GZIP");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let (head, body) = http_get_with(&server, &path, "Accept-Encoding: br;q=0, gzip;q=0\r\n").await;
    assert_eq!(body, b"PLAIN");
    assert!(!head.contains("content-encoding"), "{head}");
    let (head, body) = http_get_with(&server, &path, "").await;
    assert_eq!(body, b"PLAIN");
    assert!(!head.contains("content-encoding"), "{head}");
    // Names without a content hash, and the page itself, are revalidated every time.
    let (head, _) = http_get_with(&server, "/manifest.webmanifest", "").await;
    assert!(head.contains("cache-control: no-cache"), "{head}");
    let (head, _) = http_get_with(&server, "/", "Accept: text/html\r\n").await;
    assert!(head.contains("cache-control: no-cache"), "{head}");
    // The precompressed copies are not a way around the rules: a dotfile stays hidden.
    std::fs::write(dir.path().join("dist/.env.br"), "SECRET").unwrap();
    let (head, _) = http_get_with(&server, "/.env", "Accept-Encoding: br\r\n").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    server.stop().await;
}

/// Identifies as a new user of a client that speaks our protocol; returns the id.
async fn speaks_ours(client: &mut Client) -> String {
    let info = client.identify(json!({"protocolVersion": 2})).await;
    info["userId"].as_str().expect("id").to_owned()
}

/// A call over real sockets: the ICE servers the operator set are announced, the ring reaches
/// the callee only, the room's own timer ends a ring nobody answers, and the record of the
/// call is stored and survives a restart.
#[tokio::test]
async fn a_call_rings_out_on_the_rooms_timer_and_leaves_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.call_ring_seconds = 1;
    config.ice_servers = vec![protocol::IceServer {
        urls: vec!["stun:stun.example.org:3478".into()],
        username: None,
        credential: None,
    }];
    let server = TestServer::sqlite(config.clone(), dir.path()).await;
    let (mut ann, handshake) = Client::open(&server).await;
    assert_eq!(
        handshake["payload"]["iceServers"],
        json!([{"urls": ["stun:stun.example.org:3478"]}])
    );
    let ann_id = speaks_ours(&mut ann).await;
    let (mut bob, _) = Client::open(&server).await;
    let bob_id = speaks_ours(&mut bob).await;
    let (mut carol, _) = Client::open(&server).await;
    speaks_ours(&mut carol).await;
    ann.send(json!({"type": "CALL", "payload": {"callId": "c1", "kind": "ring", "to": bob_id, "video": true}}))
        .await;
    let ring = bob.recv_type("CALL").await;
    assert_eq!(ring["payload"]["kind"], "ring");
    assert_eq!(ring["payload"]["from"], ann_id.as_str());
    // Nobody answers: after a second the room says it was missed, to both.
    for client in [&mut ann, &mut bob] {
        let ended = tokio::time::timeout(Duration::from_secs(5), client.recv_type("CALL"))
            .await
            .expect("the ring ends by itself");
        assert_eq!(ended["payload"]["kind"], "ended");
        assert_eq!(ended["payload"]["reason"], "missed");
        let record = client.recv_type("MESSAGE").await;
        assert_eq!(record["payload"]["rawMessage"], "Missed call");
        assert_eq!(record["payload"]["call"]["outcome"], "missed");
    }
    carol.assert_no_message(Duration::from_millis(300)).await;
    server.stop().await;
    let server = TestServer::sqlite(config, dir.path()).await;
    let (_, handshake) = Client::open(&server).await;
    // A direct message: not in the handshake of someone unidentified, but stored.
    assert_eq!(handshake["payload"]["messages"], json!([]));
    assert_eq!(handshake["payload"]["latestSeq"], 1);
    server.stop().await;
}

/// Behind a load balancer (`--proxy-protocol-from`), each connection's PROXY header names the
/// client, and the room counts and limits by that address: two clients behind the balancer
/// are two addresses, the same client twice is one; a connection from the balancer without a
/// header is closed.
#[tokio::test]
async fn behind_the_balancer_each_client_is_counted_by_its_own_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.proxy_protocol_from = vec!["127.0.0.1".parse().unwrap()];
    config.max_connections_per_address = 1;
    let server = TestServer::sqlite(config, dir.path()).await;
    let open = |client: &'static str| {
        let addr = server.addr;
        async move {
            let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
            let header = format!("PROXY TCP4 {client} 127.0.0.1 40000 {}\r\n", addr.port());
            socket.write_all(header.as_bytes()).await.unwrap();
            socket
                .write_all(
                    b"GET / HTTP/1.1\r\nHost: room\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                      Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                )
                .await
                .unwrap();
            let mut answer = vec![0u8; 512];
            let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut answer))
                .await
                .expect("an answer")
                .unwrap_or(0);
            answer.truncate(read);
            (socket, String::from_utf8_lossy(&answer).into_owned())
        }
    };
    let (_first, answer) = open("203.0.113.1").await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let (_second, answer) = open("203.0.113.2").await;
    assert!(
        answer.starts_with("HTTP/1.1 101"),
        "another client: {answer}"
    );
    let (_again, answer) = open("203.0.113.1").await;
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "the same client again: {answer}"
    );

    // No header from the balancer: closed without an answer.
    let mut bare = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    bare.write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), bare.read_to_end(&mut answer))
        .await
        .expect("closed in time");
    assert!(
        read.is_err() || answer.is_empty(),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
