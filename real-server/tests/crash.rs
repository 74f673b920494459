//! Durability against a real crash: the server binary is killed with SIGKILL in the middle of a
//! conversation and restarted on the same data directory. Every message a client saw must be
//! in history, and a client resuming with `since` gets exactly what it missed.

mod common;

use std::path::Path;

use common::{Ws, next_json};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::process::Child;
use tokio_tungstenite::tungstenite::Message;

/// Starts the real binary on a free port with its store in `data`; returns it and its URL.
async fn spawn_server(data: &Path) -> (Child, String) {
    let mut command = common::server_process();
    command.arg("--data-dir").arg(data);
    common::spawn_process(command).await
}

async fn identify(url: &str, info: Value) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let handshake = next_json(&mut ws).await.expect("handshake");
    ws.send(Message::text(
        json!({"type": "HANDSHAKE_USER_INFO", "payload": info}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        let frame = next_json(&mut ws).await.expect("user info");
        if frame["type"] == "USER_INFO" {
            return (
                ws,
                json!({"handshake": handshake, "info": frame["payload"]}),
            );
        }
    }
}

/// One round by default; `CAHAT_LONG_TESTS=1` runs 20 (about a minute).
#[tokio::test]
async fn kill_9_loses_no_message_any_client_saw() {
    let rounds = if std::env::var_os("CAHAT_LONG_TESTS").is_some() {
        20
    } else {
        1
    };
    for round in 0..rounds {
        eprintln!("crash round {round}");
        crash_round().await;
    }
}

async fn crash_round() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = spawn_server(dir.path()).await;
    let (mut writer, _) = identify(&url, json!({})).await;
    let (mut reader, reader_id) = identify(&url, json!({})).await;
    let reader_token = reader_id["info"]["token"].as_str().unwrap().to_owned();
    let reader_user = reader_id["info"]["userId"].as_str().unwrap().to_owned();

    // The writer sends as fast as it can while the reader records what it sees.
    let send = tokio::spawn(async move {
        for i in 0..600 {
            let action = json!({"type": "MESSAGE", "payload": {"rawMessage": format!("m{i}"), "nonce": format!("n{i}")}});
            if writer
                .send(Message::text(action.to_string()))
                .await
                .is_err()
            {
                break;
            }
        }
        writer
    });
    let mut seen: Vec<(u64, String)> = Vec::new();
    while seen.len() < 300 {
        let frame = next_json(&mut reader).await.expect("reader frame");
        if frame["type"] == "MESSAGE" {
            seen.push((
                frame["payload"]["seq"].as_u64().unwrap(),
                frame["payload"]["rawMessage"].as_str().unwrap().to_owned(),
            ));
        }
    }
    // SIGKILL: no shutdown path runs.
    server.start_kill().expect("kill -9");
    server.wait().await.expect("reaped");
    // Whatever else reached the reader before the socket died was also "seen".
    while let Some(frame) = next_json(&mut reader).await {
        if frame["type"] == "MESSAGE" {
            seen.push((
                frame["payload"]["seq"].as_u64().unwrap(),
                frame["payload"]["rawMessage"].as_str().unwrap().to_owned(),
            ));
        }
    }
    drop(send.await);

    // Storage, read directly (opened with the data key the server made beside it): every
    // message the reader saw is there, unchanged, once.
    {
        use real_server::store::Sealed;
        use real_server::{SqliteStore, Store};
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let store = Sealed::open(store, "General", None, dir.path())
            .await
            .expect("the room's data key");
        let stored = store
            .load_snapshot("General", 100_000)
            .await
            .unwrap()
            .messages;
        let stored: Vec<(u64, String)> = stored.into_iter().map(|m| (m.seq, m.raw)).collect();
        eprintln!(
            "killed after the reader saw {} messages; {} were stored",
            seen.len(),
            stored.len()
        );
        for message in &seen {
            assert!(stored.contains(message), "lost {message:?}");
        }
        let mut raws: Vec<&String> = stored.iter().map(|m| &m.1).collect();
        raws.sort();
        raws.dedup();
        assert_eq!(raws.len(), stored.len(), "a message was stored twice");
    }

    let (mut server, url) = spawn_server(dir.path()).await;
    let last_seen = seen.last().unwrap().0;
    // Resume from within the room's window: exactly the messages after `since`, in order,
    // nothing twice.
    let since = seen[99].0;
    let (mut resumed, _) = identify(
        &url,
        json!({"userId": reader_user, "token": reader_token, "since": since}),
    )
    .await;
    let resume = loop {
        let frame = next_json(&mut resumed).await.expect("resume");
        if frame["type"] == "RESUME" {
            break frame;
        }
    };
    assert_eq!(resume["payload"]["gapTooBig"], false);
    let history: Vec<(u64, String)> = resume["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["rawMessage"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected_seqs: Vec<u64> = (since + 1..=history.last().map_or(since, |m| m.0)).collect();
    assert_eq!(
        history.iter().map(|m| m.0).collect::<Vec<_>>(),
        expected_seqs,
        "gaps or repeats"
    );
    // Every message the reader saw after `since` is there, with the same text.
    for seen_message in seen.iter().filter(|m| m.0 > since) {
        assert!(history.contains(seen_message), "lost {seen_message:?}");
    }
    assert!(history.last().unwrap().0 >= last_seen);
    server.start_kill().unwrap();
    server.wait().await.unwrap();
}

/// A server whose log nobody reads any more (its stderr pipe closed, as when a supervisor that
/// captured it goes away) keeps serving: a log line it cannot write is dropped, not a panic.
#[tokio::test]
async fn a_closed_log_pipe_does_not_stop_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::server_process();
    command
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped());
    let (mut server, url) = common::spawn_process(command).await;
    drop(server.stderr.take());
    // Every connection and identity is logged at info: each is a write to the closed pipe.
    for _ in 0..3 {
        let (mut ws, _) = identify(&url, json!({})).await;
        ws.send(Message::text(
            json!({"type": "MESSAGE", "payload": {"rawMessage": "still here"}}).to_string(),
        ))
        .await
        .expect("send");
        let echo = loop {
            let frame = next_json(&mut ws).await.expect("the room answers");
            if frame["type"] == "MESSAGE" {
                break frame;
            }
        };
        assert_eq!(echo["payload"]["rawMessage"], "still here");
    }
    assert!(
        server.try_wait().expect("status").is_none(),
        "the server is still running"
    );
}
