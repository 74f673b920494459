//! Changes sent at once, as a hurried or hostile client sends them, over real sockets and on
//! both stores: each is judged against the message as it will be once every change already
//! accepted is stored, so nobody is told of a change that storage does not hold.

mod common;

use std::future::Future;

use common::{Client, TestServer, config, join};
use real_server::Store;
use serde_json::{Value, json};

fn react(target: u64, emoji: &str, on: bool, nonce: &str) -> Value {
    json!({"type": "REACT", "payload": {"target": target, "emoji": emoji, "on": on, "nonce": nonce}})
}

/// Frames until `count` of the given types have arrived; those, in order.
async fn collect(client: &mut Client, kinds: &[&str], count: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < count {
        let frame = client.recv().await;
        if kinds.iter().any(|k| frame["type"] == *k) {
            got.push(frame);
        }
    }
    got
}

/// The room's answer to a returning client: the message with `seq` as its `HANDSHAKE`
/// holds it.
fn message_in(handshake: &Value, seq: u64) -> Value {
    handshake["payload"]["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["seq"] == seq))
        .cloned()
        .unwrap_or_else(|| panic!("message {seq} in {handshake}"))
}

async fn changes_at_once_end_as_one_by_one<S, F, Fut>(room: String, open: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let mut cfg = config();
    cfg.room_id = Some(room);
    let server = TestServer::start(cfg.clone(), open().await).await;
    let (mut ann, _, _) = join(&server).await;
    let (mut bob, _, _) = join(&server).await;
    for (text, nonce) in [("forty", "m1"), ("toggles", "m2"), ("gone", "m3")] {
        ann.say(text, Some(nonce)).await;
    }
    let said = collect(&mut bob, &["MESSAGE"], 3).await;
    let seq = |i: usize| said[i]["payload"]["seq"].as_u64().expect("seq");
    let (forty, toggles, gone) = (seq(0), seq(1), seq(2));

    // Forty different reactions, written back to back without waiting for an answer.
    let emoji: Vec<&str> = protocol::markdown::emoji_table()
        .iter()
        .map(|(_, e)| *e)
        .take(40)
        .collect();
    for (i, e) in emoji.iter().enumerate() {
        bob.send(react(forty, e, true, &format!("r{i}"))).await;
    }
    // Two hundred on-then-off pairs, ending off.
    for i in 0..200 {
        bob.send(react(toggles, "👍", true, &format!("on{i}")))
            .await;
        bob.send(react(toggles, "👍", false, &format!("off{i}")))
            .await;
    }
    // Delete, then edit and react at once.
    ann.send(json!({"type": "DELETE_MESSAGE", "payload": {"target": gone, "nonce": "d1"}}))
        .await;
    ann.send(json!({"type": "EDIT_MESSAGE", "payload": {"target": gone, "rawMessage": "back", "nonce": "e1"}}))
        .await;

    // Bob hears 20 changes to `forty`, 400 to `toggles` and Ann's delete, and 20 refusals by
    // nonce.
    let frames = collect(&mut bob, &["MESSAGE_CHANGED", "ERROR"], 20 + 400 + 1 + 20).await;
    let mut refused: Vec<(String, String)> = frames
        .iter()
        .filter(|f| f["type"] == "ERROR")
        .map(|f| {
            let p = &f["payload"];
            (
                p["code"].to_string(),
                p["nonce"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    refused.sort();
    let mut expected: Vec<(String, String)> = (20..40)
        .map(|i| ("\"TOO_MANY_REACTIONS\"".to_owned(), format!("r{i}")))
        .collect();
    expected.sort();
    assert_eq!(refused, expected);
    let last_of = |target: u64| {
        frames
            .iter()
            .rfind(|f| f["type"] == "MESSAGE_CHANGED" && f["payload"]["seq"] == target)
            .map(|f| f["payload"].clone())
            .expect("changes told")
    };
    assert_eq!(
        last_of(forty)["reactions"].as_array().map(Vec::len),
        Some(20)
    );
    assert_eq!(
        last_of(toggles).get("reactions"),
        None,
        "ends off: {}",
        last_of(toggles)
    );
    // Ann's edit after her delete is refused by its nonce.
    let refusal = ann.recv_type("ERROR").await;
    assert_eq!(refusal["payload"]["code"], "MESSAGE_DELETED");
    assert_eq!(refusal["payload"]["nonce"], "e1");
    server.stop().await;

    // What storage holds is what everyone was told.
    let server = TestServer::start(cfg, open().await).await;
    let (_back, handshake) = Client::open(&server).await;
    let stored = message_in(&handshake, forty);
    let kept: Vec<&str> = stored["reactions"]
        .as_array()
        .expect("reactions")
        .iter()
        .filter_map(|r| r["emoji"].as_str())
        .collect();
    assert_eq!(kept, emoji[..20]);
    assert_eq!(message_in(&handshake, toggles).get("reactions"), None);
    let deleted = message_in(&handshake, gone);
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["rawMessage"], "");
    server.stop().await;
}

fn fresh_room(test: &str) -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("random");
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{test}-{suffix}")
}

#[tokio::test]
async fn changes_at_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_owned();
    changes_at_once_end_as_one_by_one(fresh_room("changes"), || {
        let path = path.clone();
        async move { real_server::SqliteStore::open_dir(&path).expect("open store") }
    })
    .await;
}

#[tokio::test]
async fn changes_at_once_on_mongodb() {
    let uri = match std::env::var("CAHAT_MONGODB_URI") {
        Ok(uri) => uri,
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI must set CAHAT_MONGODB_URI"),
        Err(_) => {
            eprintln!("skipped: CAHAT_MONGODB_URI is not set (scripts/test-all.sh sets it)");
            return;
        }
    };
    changes_at_once_end_as_one_by_one(fresh_room("changes"), || {
        let uri = uri.clone();
        async move {
            real_server::MongoStore::connect(&uri, "cahat_server_tests")
                .await
                .expect("connect")
        }
    })
    .await;
}
