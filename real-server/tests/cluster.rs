//! One room on two nodes (`--nats-url`): a real `nats-server -js` on 127.0.0.1 holds the
//! room's log; each node has its clients; storage is the MongoDB test server both nodes share
//! (`CAHAT_MONGODB_URI`), or each node's own SQLite file when it is not set.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, Seen, TestServer, Ws, config, message_texts, next_json};
use real_server::{Config, MongoStore, SqliteStore};
use serde_json::{Value, json};

/// A `nats-server -js` on a free port, stopped when dropped.
struct Nats {
    child: Child,
    binary: PathBuf,
    port: u16,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `binary` on `port` with its JetStream files in `dir`, once it listens.
async fn run_nats(binary: &Path, port: u16, dir: &Path) -> Child {
    let mut child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("nats-server did not listen on {port}");
}

async fn start_nats() -> Option<Nats> {
    let Some(binary) = common::program("nats-server") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the cluster tests: scripts/setup.sh installs nats-server into the venv"
        );
        eprintln!("skipped: no nats-server (scripts/setup.sh installs it into $CAHAT_VENV)");
        return None;
    };
    let port = common::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let child = run_nats(&binary, port, dir.path()).await;
    Some(Nats {
        child,
        binary,
        port,
        url: format!("nats://127.0.0.1:{port}"),
        dir,
    })
}

impl Nats {
    /// Stops the server and starts it again on the same port and files.
    async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = run_nats(&self.binary, self.port, self.dir.path()).await;
    }
}

/// Where a node keeps the room's history: the shared MongoDB, or its own SQLite directory.
enum Storage {
    /// The database's URI, and the directory of the data key the nodes share.
    Mongo(String, tempfile::TempDir),
    Sqlite(Vec<tempfile::TempDir>),
}

impl Storage {
    fn new(nodes: usize) -> Self {
        match std::env::var("CAHAT_MONGODB_URI") {
            Ok(uri) => Self::Mongo(uri, tempfile::tempdir().expect("dir")),
            Err(_) => Self::Sqlite(
                (0..nodes)
                    .map(|_| tempfile::tempdir().expect("dir"))
                    .collect(),
            ),
        }
    }

    async fn start(&self, node: usize, config: Config) -> TestServer {
        match self {
            Self::Mongo(uri, _) => {
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
    let Some(mut nats) = start_nats().await else {
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

    // Typing is a signal: it crosses to the other node, never stored.
    ann.send(send("TYPING", json!({"to": bob_id}))).await;
    let typing = bob.recv_type("TYPING").await;
    assert_eq!(typing["payload"]["userId"], ann_id.as_str());
    assert_eq!(typing["payload"]["direct"], true);

    // A call crosses nodes: Ann rings Bob, he takes it, their signals pass both ways.
    let signal = |id: &str, kind: &str, extra: Value| {
        let mut payload = json!({"callId": id, "kind": kind});
        if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        send("CALL", payload)
    };
    ann.send(signal(
        "call-1",
        "ring",
        json!({"to": bob_id, "video": false}),
    ))
    .await;
    let ring = bob.recv_type("CALL").await;
    assert_eq!(ring["payload"]["kind"], "ring", "{ring}");
    assert_eq!(ring["payload"]["from"], ann_id.as_str());
    bob.send(signal("call-1", "accept", json!({}))).await;
    assert_eq!(ann.recv_type("CALL").await["payload"]["kind"], "accept");
    ann.send(signal("call-1", "offer", json!({"data": "v=0 offer"})))
        .await;
    let offer = bob.recv_type("CALL").await;
    assert_eq!(
        (&offer["payload"]["kind"], &offer["payload"]["data"]),
        (&json!("offer"), &json!("v=0 offer"))
    );
    bob.send(signal("call-1", "answer", json!({"data": "v=0 answer"})))
        .await;
    assert_eq!(ann.recv_type("CALL").await["payload"]["data"], "v=0 answer");
    bob.send(signal("call-1", "hangup", json!({}))).await;
    let ended = ann.recv_type("CALL").await;
    assert_eq!(
        (&ended["payload"]["kind"], &ended["payload"]["reason"]),
        (&json!("ended"), &json!("hungUp"))
    );

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

    // Everything stopped (the nodes, then nats-server) and started again: the history is
    // there, the token still works.
    drop((back, bob, cid));
    one.stop().await;
    two.stop().await;
    nats.restart().await;
    let one = storage.start(0, node_config(&nats, &room)).await;
    let two = storage.start(1, node_config(&nats, &room)).await;
    for node in [&one, &two] {
        let (mut client, handshake) = Client::open(node).await;
        let texts = message_texts(&handshake["payload"]["messages"]);
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
    // The log numbers on after the restart, and both nodes still hear each other.
    let (mut ann, _, _) = join(&one).await;
    let (mut bob, _, _) = join(&two).await;
    ann.say("after the restart", Some("again")).await;
    let (seq, text) = messages(&mut bob, 1).await.remove(0);
    assert_eq!(text, "after the restart");
    assert!(seq > latest, "{seq} after {latest}");
    drop((ann, bob));
    one.stop().await;
    two.stop().await;
}

/// A node as its own process (so that it can be killed with SIGKILL); its ws:// URL.
async fn spawn_node(
    nats: &Nats,
    room: &str,
    storage: &Storage,
    node: usize,
) -> (tokio::process::Child, String) {
    let mut command = common::server_process();
    command.args(["--room-id", room, "--nats-url", &nats.url]);
    match storage {
        Storage::Mongo(uri, keys) => {
            command.args(["--mongodb-uri", uri, "--mongodb-db", "cahat_cluster"]);
            command.arg("--data-dir").arg(keys.path());
        }
        Storage::Sqlite(dirs) => {
            command.arg("--data-dir").arg(dirs[node].path());
        }
    }
    common::spawn_process(command).await
}

/// Connects to `url` and identifies with `info`; returns the socket and the USER_INFO payload
/// (frames before it other than MESSAGE are skipped; messages are handed to `seen`). Before it
/// identifies, a connection is anyone's: a node behind the log may send it live a message its
/// client read through another node (the client keeps one per seq); once identified with
/// `since`, it is sent none of those again.
async fn identify_at(url: &str, info: Value, seen: &mut Seen) -> (Ws, Value) {
    use futures_util::SinkExt;
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        json!({"type": "HANDSHAKE_USER_INFO", "payload": info}).to_string(),
    ))
    .await
    .expect("send");
    loop {
        let frame = next_json(&mut ws).await.expect("USER_INFO");
        if frame["type"] == "USER_INFO" {
            return (ws, frame["payload"].clone());
        }
        seen.take_anyones(&frame);
    }
}

#[tokio::test]
async fn a_node_killed_mid_burst_loses_nothing_its_people_resume_on_the_other() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let Some(nats) = start_nats().await else {
        return;
    };
    let room = fresh_room("failover");
    let storage = Storage::new(2);
    let (mut one, one_url) = spawn_node(&nats, &room, &storage, 0).await;
    let (_two, two_url) = spawn_node(&nats, &room, &storage, 1).await;
    let ours = json!({"protocolVersion": protocol::PROTOCOL_VERSION});
    let (mut seen_a, mut seen_b) = (Seen::default(), Seen::default());
    let (mut ann, info) = identify_at(&one_url, ours.clone(), &mut seen_a).await;
    let (ann_id, ann_token) = (info["userId"].clone(), info["token"].clone());
    let (bob, _) = identify_at(&two_url, ours, &mut seen_b).await;

    // Bob writes 200 messages through node 2 as fast as it can; node 1 is killed after the
    // first 50 are sent, while the rest follow.
    let burst: Vec<String> = (0..200).map(|i| format!("burst {i:03}")).collect();
    let writing = burst.clone();
    let (mut bob_out, mut bob_in) = futures_util::StreamExt::split(bob);
    let (killed_tx, killed) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let mut killed = Some(killed);
        for (i, text) in writing.iter().enumerate() {
            if i == 50
                && let Some(killed) = killed.take()
            {
                killed.await.expect("node 1 killed");
            }
            let frame = json!({"type": "MESSAGE", "payload": {"rawMessage": text, "nonce": format!("b{i}")}});
            bob_out
                .send(Message::text(frame.to_string()))
                .await
                .expect("send");
        }
        bob_out
    });

    // Node 1 is killed once Ann has seen a part of the burst.
    while seen_a.by_seq.len() < 30 {
        let frame = next_json(&mut ann).await.expect("ann's node is up");
        seen_a.take(&frame);
    }
    one.start_kill().expect("kill -9");
    one.wait().await.expect("node 1 is gone");
    killed_tx.send(()).expect("bob writes on");
    while let Some(frame) = next_json(&mut ann).await {
        seen_a.take(&frame);
    }
    let before_the_kill = seen_a.by_seq.len();
    assert!(
        before_the_kill < burst.len(),
        "node 1 died in the middle of the burst, yet ann saw {before_the_kill}"
    );

    // Ann comes back through node 2, resuming after the last message she saw.
    let resume = json!({
        "userId": ann_id, "token": ann_token, "since": seen_a.last_seq(),
        "protocolVersion": protocol::PROTOCOL_VERSION,
    });
    let (mut ann, info) = identify_at(&two_url, resume, &mut seen_a).await;
    assert_eq!(
        info["userId"], ann_id,
        "the same identity on the other node"
    );
    while seen_a.by_seq.len() < burst.len() {
        let frame = next_json(&mut ann)
            .await
            .expect("every message of the burst");
        seen_a.take(&frame);
    }
    let _bob_out = writer.await.expect("bob wrote");
    while seen_b.by_seq.len() < burst.len() {
        let frame = futures_util::StreamExt::next(&mut bob_in).await;
        let Some(Ok(Message::Text(text))) = frame else {
            continue;
        };
        seen_b.take(&serde_json::from_str(&text).expect("JSON"));
    }
    // Every message once, in seq order, the same on both clients.
    assert_eq!(
        seen_a.texts(),
        burst.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(seen_a.by_seq, seen_b.by_seq);
    eprintln!("ann saw {before_the_kill} of the burst before node 1 died, the rest through node 2");
}

/// Waits (at most 10 s) for a PRESENCE frame whose `list` ("joined" or "left") names `user`;
/// returns how long that took.
async fn presence_of(ws: &mut Ws, list: &str, user: &Value) -> Duration {
    let started = std::time::Instant::now();
    let deadline = Duration::from_secs(10);
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        let frame = tokio::time::timeout(left, next_json(ws))
            .await
            .unwrap_or_else(|_| panic!("no PRESENCE {list} {user} within 10 s"))
            .expect("connection open");
        let named = frame["type"] == "PRESENCE"
            && frame["payload"][list]
                .as_array()
                .is_some_and(|people| people.iter().any(|p| p["userId"] == *user));
        if named {
            return started.elapsed();
        }
    }
}

#[tokio::test]
async fn presence_spans_the_nodes_and_a_dead_node_takes_its_people_offline() {
    let Some(nats) = start_nats().await else {
        return;
    };
    let room = fresh_room("presence");
    let storage = Storage::new(2);
    let (mut one, one_url) = spawn_node(&nats, &room, &storage, 0).await;
    let (_two, two_url) = spawn_node(&nats, &room, &storage, 1).await;
    let ours = json!({"protocolVersion": protocol::PROTOCOL_VERSION});
    let mut seen = Seen::default();
    let (mut bob, _) = identify_at(&two_url, ours.clone(), &mut seen).await;
    let (ann, info) = identify_at(&one_url, ours.clone(), &mut seen).await;
    let ann_id = info["userId"].clone();
    presence_of(&mut bob, "joined", &ann_id).await;
    // Leaving through her node: offline on the other one too.
    drop(ann);
    presence_of(&mut bob, "left", &ann_id).await;
    // Someone new on node 1 sees Bob of node 2 online in their HANDSHAKE.
    let (mut cid, _) = tokio_tungstenite::connect_async(&one_url)
        .await
        .expect("connect");
    let handshake = next_json(&mut cid).await.expect("HANDSHAKE");
    assert_eq!(handshake["type"], "HANDSHAKE");
    assert_eq!(
        handshake["payload"]["online"].as_array().map(Vec::len),
        Some(1),
        "{handshake}"
    );
    // Back on node 1, which is then killed: node 2 takes her offline within 10 s.
    let (_ann, _) = identify_at(
        &one_url,
        json!({
            "userId": ann_id, "token": info["token"], "protocolVersion": protocol::PROTOCOL_VERSION,
        }),
        &mut seen,
    )
    .await;
    presence_of(&mut bob, "joined", &ann_id).await;
    one.start_kill().expect("kill -9");
    one.wait().await.expect("node 1 is gone");
    let took = presence_of(&mut bob, "left", &ann_id).await;
    eprintln!("a dead node's people went offline on the other node after {took:?}");
}

#[tokio::test]
async fn a_node_refuses_a_stream_it_cannot_keep_the_room_in_saying_why() {
    let Some(nats) = start_nats().await else {
        return;
    };
    let room = fresh_room("refused");
    let (name, subject) = real_server::cluster::stream_names(&room);
    let client = async_nats::connect(&nats.url).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject],
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .expect("a stream in memory");
    let refused = real_server::cluster::connect(&nats.url, &room, 0, &Default::default())
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        refused.contains(&name) && refused.contains("in memory"),
        "a clear refusal, got: {refused}"
    );
}

#[tokio::test]
async fn a_node_sets_its_flags_on_the_rooms_stream_and_refuses_what_nats_cannot_give() {
    use real_server::cluster::{StreamSettings, connect, stream_names};
    let Some(nats) = start_nats().await else {
        return;
    };
    let room = fresh_room("settings");
    let (name, _) = stream_names(&room);
    let client = async_nats::connect(&nats.url).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let config_of = |js: async_nats::jetstream::Context, name: String| async move {
        js.get_stream(&name)
            .await
            .expect("the stream")
            .info()
            .await
            .expect("its info")
            .config
            .clone()
    };
    let day = StreamSettings {
        max_age: Duration::from_secs(24 * 3600),
        max_bytes: 64 << 20,
        duplicate_window: Duration::from_secs(30),
        ..StreamSettings::default()
    };
    let (log, _events) = connect(&nats.url, &room, 0, &day).await.expect("made");
    drop(log);
    let made = config_of(js.clone(), name.clone()).await;
    assert_eq!(
        (
            made.max_age,
            made.max_bytes,
            made.duplicate_window,
            made.num_replicas
        ),
        (day.max_age, 64 << 20, day.duplicate_window, 1)
    );
    // The next start's flags are set on the stream that is there.
    let two_days = StreamSettings {
        max_age: Duration::from_secs(48 * 3600),
        ..StreamSettings::default()
    };
    let (log, _events) = connect(&nats.url, &room, 0, &two_days)
        .await
        .expect("updated");
    drop(log);
    let updated = config_of(js.clone(), name.clone()).await;
    assert_eq!(
        (updated.max_age, updated.max_bytes, updated.duplicate_window),
        (two_days.max_age, -1, Duration::from_secs(120))
    );
    // Three copies on a single NATS server: refused, naming the flag.
    let three = StreamSettings {
        replicas: 3,
        ..StreamSettings::default()
    };
    let refused = connect(&nats.url, &fresh_room("three"), 0, &three)
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        refused.contains("replicas"),
        "a clear refusal, got: {refused}"
    );
}

/// `GET /healthz` of a node: its status and body.
async fn health(node: &TestServer) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(node.addr)
        .await
        .expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Polls `/healthz` until its status is `want` (at most `within`); the last answer.
async fn health_becomes(node: &TestServer, want: u16, within: Duration) -> (u16, String) {
    let started = std::time::Instant::now();
    loop {
        let answer = health(node).await;
        if answer.0 == want || started.elapsed() > within {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_node_cut_off_from_nats_says_so_on_healthz_for_the_load_balancer() {
    let Some(mut nats) = start_nats().await else {
        return;
    };
    let room = fresh_room("health");
    let storage = Storage::new(1);
    let node = storage.start(0, node_config(&nats, &room)).await;
    assert_eq!(health(&node).await, (200, "ok\n".to_owned()));
    let _ = nats.child.kill();
    let _ = nats.child.wait();
    let (status, body) = health_becomes(&node, 503, Duration::from_secs(10)).await;
    assert_eq!((status, body.as_str()), (503, "not connected to NATS\n"));
    nats.restart().await;
    let (status, _) = health_becomes(&node, 200, Duration::from_secs(20)).await;
    assert_eq!(status, 200, "healthy again once NATS is back");
    node.stop().await;
}
