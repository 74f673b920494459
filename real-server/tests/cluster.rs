//! One room on two nodes (`--nats-url`): a real `nats-server -js` on 127.0.0.1 holds the
//! room's log; each node has its clients; storage is the MongoDB test server both nodes share
//! (`CAHAT_MONGODB_URI`), or each node's own SQLite file when it is not set.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, TestServer, config};
use real_server::{Config, MongoStore, SqliteStore};
use serde_json::{Value, json};

/// A `nats-server -js` on a free port, stopped when dropped.
struct Nats {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `nats-server` binary: the project's venv (scripts/setup.sh installs it), or PATH.
fn nats_binary() -> Option<PathBuf> {
    let venv = std::env::var_os("CAHAT_VENV").map(|v| PathBuf::from(v).join("bin/nats-server"));
    if let Some(path) = venv.filter(|p| p.exists()) {
        return Some(path);
    }
    let found = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found.then(|| PathBuf::from("nats-server"))
}

async fn start_nats() -> Option<Nats> {
    let Some(binary) = nats_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the cluster tests: scripts/setup.sh installs nats-server into the venv"
        );
        eprintln!("skipped: no nats-server (scripts/setup.sh installs it into $CAHAT_VENV)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let url = format!("nats://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(Nats {
                child,
                url,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("nats-server did not listen on {port}");
}

/// Where a node keeps the room's history: the shared MongoDB, or its own SQLite directory.
enum Storage {
    Mongo(String),
    Sqlite(Vec<tempfile::TempDir>),
}

impl Storage {
    fn new(nodes: usize) -> Self {
        match std::env::var("CAHAT_MONGODB_URI") {
            Ok(uri) => Self::Mongo(uri),
            Err(_) => Self::Sqlite(
                (0..nodes)
                    .map(|_| tempfile::tempdir().expect("dir"))
                    .collect(),
            ),
        }
    }

    async fn start(&self, node: usize, config: Config) -> TestServer {
        match self {
            Self::Mongo(uri) => {
                let store = MongoStore::connect(uri, "cahat_cluster")
                    .await
                    .expect("MongoDB");
                TestServer::start(config, store).await
            }
            Self::Sqlite(dirs) => {
                let store = SqliteStore::open_dir(dirs[node].path()).expect("SQLite");
                TestServer::start(config, store).await
            }
        }
    }
}

fn node_config(nats: &Nats, room: &str) -> Config {
    let mut cfg = config();
    cfg.room_id = Some(room.to_owned());
    cfg.nats_url = Some(nats.url.clone());
    cfg.presence_tick_ms = 50;
    cfg
}

/// A room id no earlier run used (the MongoDB test server and its rooms outlive a test).
fn fresh_room(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("cluster-{test}-{nanos}")
}

/// The next `count` MESSAGE payloads, as (seq, text).
async fn messages(client: &mut Client, count: usize) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    while got.len() < count {
        let frame = client.recv_type("MESSAGE").await;
        let payload = &frame["payload"];
        got.push((
            payload["seq"].as_u64().expect("seq"),
            payload["rawMessage"].as_str().expect("text").to_owned(),
        ));
    }
    got
}

/// A new person who speaks our protocol (direct messages need it): (client, userId, token).
async fn join(node: &TestServer) -> (Client, String, String) {
    let (mut client, _) = Client::open(node).await;
    let info = client
        .identify(json!({"protocolVersion": protocol::PROTOCOL_VERSION}))
        .await;
    let field = |name: &str| info[name].as_str().expect(name).to_owned();
    (client, field("userId"), field("token"))
}

fn send(kind: &str, payload: Value) -> Value {
    json!({"type": kind, "payload": payload})
}

#[tokio::test]
async fn people_on_two_nodes_chat_in_one_order_and_their_identities_work_on_both() {
    let Some(nats) = start_nats().await else {
        return;
    };
    let room = fresh_room("chat");
    let storage = Storage::new(2);
    let one = storage.start(0, node_config(&nats, &room)).await;
    let two = storage.start(1, node_config(&nats, &room)).await;

    let (mut ann, ann_id, ann_token) = join(&one).await;
    let (mut bob, bob_id, _) = join(&two).await;
    let (mut cid, _, _) = join(&two).await;

    // Both write at once, each through their own node.
    for i in 0..5 {
        ann.say(&format!("ann {i}"), Some(&format!("a{i}"))).await;
        bob.say(&format!("bob {i}"), Some(&format!("b{i}"))).await;
    }
    let at_ann = messages(&mut ann, 10).await;
    let at_bob = messages(&mut bob, 10).await;
    let at_cid = messages(&mut cid, 10).await;
    assert_eq!(at_ann, at_bob, "one order and the same seqs on both nodes");
    assert_eq!(at_ann, at_cid);
    assert!(at_ann.windows(2).all(|w| w[0].0 < w[1].0), "{at_ann:?}");
    for who in ["ann", "bob"] {
        let mine: Vec<&str> = at_ann
            .iter()
            .map(|m| m.1.as_str())
            .filter(|t| t.starts_with(who))
            .collect();
        assert_eq!(mine.len(), 5, "each message once: {at_ann:?}");
    }

    // A change crosses nodes: Ann edits on node 1, Bob reacts on node 2.
    let first_of_ann = at_ann.iter().find(|m| m.1 == "ann 0").expect("ann 0").0;
    ann.send(send(
        "EDIT_MESSAGE",
        json!({"target": first_of_ann, "rawMessage": "ann 0, edited", "nonce": "e1"}),
    ))
    .await;
    let edited = bob.recv_type("MESSAGE_CHANGED").await;
    assert_eq!(edited["payload"]["rawMessage"], "ann 0, edited");
    bob.send(send(
        "REACT",
        json!({"target": first_of_ann, "emoji": "👍", "on": true, "nonce": "r1"}),
    ))
    .await;
    let reacted = loop {
        let changed = ann.recv_type("MESSAGE_CHANGED").await;
        if changed["payload"]["reactions"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break changed;
        }
    };
    assert_eq!(
        reacted["payload"]["reactions"][0]["users"][0],
        bob_id.as_str()
    );

    // A direct message from node 1 reaches Bob on node 2, and not Cid beside him.
    ann.send(send(
        "MESSAGE",
        json!({"rawMessage": "just us", "nonce": "d1", "to": bob_id}),
    ))
    .await;
    ann.say("for everyone", Some("a-after")).await;
    let at_bob = messages(&mut bob, 2).await;
    assert_eq!(
        at_bob.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(),
        ["just us", "for everyone"]
    );
    assert_eq!(messages(&mut cid, 1).await[0].1, "for everyone");
    let latest = at_bob[1].0;

    // Ann comes back through node 2 with her token, resuming where she was.
    drop(ann);
    let (mut back, _) = Client::open(&two).await;
    back.send(send(
        "HANDSHAKE_USER_INFO",
        json!({"userId": ann_id, "token": ann_token, "since": first_of_ann, "protocolVersion": protocol::PROTOCOL_VERSION}),
    ))
    .await;
    let mut frames = Vec::new();
    let info = loop {
        let frame = back.recv().await;
        if frame["type"] == "USER_INFO" {
            break frame;
        }
        frames.push(frame);
    };
    assert_eq!(info["payload"]["userId"], ann_id.as_str());
    assert!(info["payload"].get("token").is_none(), "the same identity");
    let resume = back.recv_type("RESUME").await;
    assert_eq!(resume["payload"]["gapTooBig"], false);
    let seqs: Vec<u64> = resume["payload"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["seq"].as_u64())
        .collect();
    assert!(seqs.contains(&latest), "{resume}");
    assert!(!frames.iter().any(|f| f["type"] == "ERROR"), "{frames:?}");

    // Everything stopped and started again: the history is there, the token still works.
    drop((back, bob, cid));
    one.stop().await;
    two.stop().await;
    let one = storage.start(0, node_config(&nats, &room)).await;
    let two = storage.start(1, node_config(&nats, &room)).await;
    for node in [&one, &two] {
        let (mut client, handshake) = Client::open(node).await;
        let texts: Vec<&str> = handshake["payload"]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["rawMessage"].as_str())
            .collect();
        assert!(
            texts.contains(&"ann 0, edited") && texts.contains(&"bob 4"),
            "{texts:?}"
        );
        assert!(
            !texts.contains(&"just us"),
            "a direct message only for its two people"
        );
        let info = client
            .identify(json!({"userId": ann_id, "token": ann_token}))
            .await;
        assert_eq!(info["userId"], ann_id.as_str());
        assert!(info.get("token").is_none());
    }
    one.stop().await;
    two.stop().await;
}
