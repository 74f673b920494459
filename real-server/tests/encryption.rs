//! Encryption at rest, through the real binary on either store: words posted, edited (away),
//! written in a direct message and given as a moderator's reason are found by search and read
//! back after a restart, yet no byte sequence of any of them, in any case, is in any file of
//! the data directory (the database, its WAL and journal) nor in any MongoDB document; a
//! server given another key refuses to start, saying why, and leaves the data as it was.

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};

/// Words no test text has otherwise: posted, then edited away; the edit's; a direct
/// message's; a report's reason; a ban's reason.
const POSTED: &str = "Quetzalcoatlus";
const EDITED: &str = "Brontosaurine";
const DIRECT: &str = "Xiphactinus";
const REASON: &str = "Dimetrodontic";
/// A word of a ban's reason, kept with the person.
const BANNED: &str = "Pachycephalosaur";

async fn send(ws: &mut Ws, kind: &str, payload: Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        json!({"type": kind, "payload": payload}).to_string(),
    ))
    .await
    .expect("send");
}

/// The next frame of type `kind`.
async fn frame(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let frame = next_json(ws)
            .await
            .unwrap_or_else(|| panic!("no {kind} came"));
        assert_ne!(frame["type"], "ERROR", "waiting for {kind}: {frame}");
        if frame["type"] == kind {
            return frame["payload"].clone();
        }
    }
}

/// Connects and identifies (as someone new, or as `who`: (id, token)); returns the socket, the
/// HANDSHAKE and (id, token).
async fn identify(url: &str, who: Option<&(String, String)>) -> (Ws, Value, (String, String)) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let handshake = frame(&mut ws, "HANDSHAKE").await;
    let mut info = json!({"protocolVersion": protocol::PROTOCOL_VERSION});
    if let Some((id, token)) = who {
        info["userId"] = json!(id);
        info["token"] = json!(token);
    }
    send(&mut ws, "HANDSHAKE_USER_INFO", info).await;
    let me = frame(&mut ws, "USER_INFO").await;
    let id = me["userId"].as_str().expect("id").to_owned();
    let token = me["token"].as_str().map_or_else(
        || who.map(|w| w.1.clone()).unwrap_or_default(),
        str::to_owned,
    );
    (ws, handshake, (id, token))
}

/// The seqs of what `query` finds for this connection.
async fn search(ws: &mut Ws, query: &str) -> Vec<String> {
    send(ws, "SEARCH", json!({"query": query, "nonce": query})).await;
    let results = frame(ws, "SEARCH_RESULTS").await;
    results["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["rawMessage"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Ann posts, edits, writes to Bob directly and reports Bob's message; both find what they
/// may by search. Returns Ann's and Bob's identities.
async fn chat(url: &str) -> ((String, String), (String, String)) {
    let (mut ann, _, ann_id) = identify(url, None).await;
    let (mut bob, _, bob_id) = identify(url, None).await;
    send(
        &mut ann,
        "MESSAGE",
        json!({"rawMessage": format!("the **{POSTED}** plan"), "nonce": "a1"}),
    )
    .await;
    let posted = frame(&mut ann, "MESSAGE").await;
    send(
        &mut ann,
        "EDIT_MESSAGE",
        json!({"target": posted["seq"], "rawMessage": format!("the {EDITED} plan"), "nonce": "e1"}),
    )
    .await;
    frame(&mut ann, "MESSAGE_CHANGED").await;
    send(
        &mut ann,
        "MESSAGE",
        json!({"rawMessage": format!("just us: {DIRECT}"), "nonce": "d1", "to": bob_id.0}),
    )
    .await;
    frame(&mut ann, "MESSAGE").await;
    frame(&mut bob, "MESSAGE").await;
    send(
        &mut bob,
        "MESSAGE",
        json!({"rawMessage": "hello", "nonce": "b1"}),
    )
    .await;
    let hello = frame(&mut ann, "MESSAGE").await;
    send(
        &mut ann,
        "REPORT",
        json!({"target": hello["seq"], "reason": format!("{REASON} behaviour"), "nonce": "r1"}),
    )
    .await;
    frame(&mut ann, "AUDIT").await;

    assert_eq!(
        search(&mut bob, EDITED).await,
        [format!("the {EDITED} plan")]
    );
    assert!(search(&mut bob, POSTED).await.is_empty(), "edited away");
    assert_eq!(
        search(&mut bob, DIRECT).await,
        [format!("just us: {DIRECT}")]
    );
    assert_eq!(
        search(&mut ann, DIRECT).await,
        [format!("just us: {DIRECT}")]
    );
    (ann_id, bob_id)
}

/// Fails if `bytes` hold any of the words, in any case (ASCII words: lower-casing is enough).
fn assert_sealed(bytes: &[u8], what: &str) {
    let lower = bytes.to_ascii_lowercase();
    for word in [POSTED, EDITED, DIRECT, REASON, BANNED] {
        let word = word.to_ascii_lowercase();
        assert!(
            !lower.windows(word.len()).any(|w| w == word.as_bytes()),
            "{what} holds {word} in plain text"
        );
    }
}

/// Every file under `dir`, with its bytes.
/// No file of `stored` holds any of the words in any case.
fn assert_files_sealed(stored: &[(std::path::PathBuf, Vec<u8>)]) {
    for (path, bytes) in stored {
        assert_sealed(bytes, &path.display().to_string());
    }
}

fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the data directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push((path.clone(), std::fs::read(&path).expect("read a file")));
        }
    }
    found.sort();
    found
}

/// Whether the database, its WAL and the key file hold the same bytes in `after` as in
/// `before` (SQLite's shared-memory index, `-shm`, is rebuilt by whoever opens the database).
fn unchanged(
    before: &[(std::path::PathBuf, Vec<u8>)],
    after: &[(std::path::PathBuf, Vec<u8>)],
) -> bool {
    let kept = |files: &[(std::path::PathBuf, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        files
            .iter()
            .filter(|(path, _)| !path.to_string_lossy().ends_with("-shm"))
            .map(|(path, bytes)| (path.display().to_string(), bytes.clone()))
            .collect()
    };
    let (before, after) = (kept(before), kept(after));
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    if names(&before) != names(&after) {
        eprintln!(
            "files before {:?}, after {:?}",
            names(&before),
            names(&after)
        );
        return false;
    }
    before.iter().zip(&after).all(|(b, a)| {
        let same = b.1 == a.1;
        if !same {
            eprintln!("{} changed", b.0);
        }
        same
    })
}

/// The server on the data directory `data`, with the key it finds (or makes) there.
async fn spawn_on(data: &Path) -> (tokio::process::Child, String) {
    let mut command = server_process();
    command
        .arg("--data-dir")
        .arg(data)
        .env_remove("CAHAT_DATA_KEY_FILE");
    spawn_process(command).await
}

/// `real-server --data-dir DATA COMMAND` (a key command), run to its end.
fn key_command(data: &Path, command: &str) -> (bool, String, String) {
    run_to_end(&["--data-dir".as_ref(), data.as_os_str(), command.as_ref()])
}

/// Stops a server the way an operator does (SIGTERM): storage is flushed and closed.
async fn stop(mut child: tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exited = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("the server stops in time")
        .expect("wait");
    assert!(exited.success(), "{exited}");
}

/// `real-server` with `args`, run to its end: (succeeded, stdout, stderr).
fn run_to_end(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_real-server"))
        .args(["--port", "0"])
        .args(args)
        .env_remove("CAHAT_DATA_KEY_FILE")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run real-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// After a restart the room reads what it sealed: the edit in the handshake, the direct
/// message by search.
async fn reads_back(url: &str, bob: &(String, String)) {
    let (mut ws, handshake, _) = identify(url, Some(bob)).await;
    let texts = message_texts(&handshake["messages"]);
    assert!(
        texts.contains(&format!("the {EDITED} plan").as_str()),
        "{texts:?}"
    );
    assert_eq!(
        search(&mut ws, DIRECT).await,
        [format!("just us: {DIRECT}")]
    );
}

#[tokio::test]
async fn sqlite_text_is_sealed_on_disk_found_by_search_and_refused_to_a_wrong_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (server, url) = spawn_on(&data).await;
    let (_, bob) = chat(&url).await;
    stop(server).await;

    let key = data.join("cahat.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key)
            .expect("a key file was made")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let stored = files(&data);
    assert!(
        stored.iter().any(|(p, _)| p.ends_with("cahat.sqlite3")),
        "{stored:?}"
    );
    assert_files_sealed(&stored);

    // Another key: refused before anything is read or written, saying why.
    let other = dir.path().join("other.key");
    let (ok, said, _) = run_to_end(&["keygen".as_ref(), "--out".as_ref(), other.as_os_str()]);
    assert!(ok && said.contains("wrote data key"), "{said}");
    let (ok, _, error) = run_to_end(&[
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--data-key-file".as_ref(),
        other.as_os_str(),
    ]);
    assert!(!ok, "a wrong key is refused");
    assert!(
        error.contains("cannot read this room") && error.contains("does not hold"),
        "{error}"
    );
    // The key file gone: refused too, not a new key over sealed text.
    std::fs::rename(&key, dir.path().join("moved.key")).expect("move the key");
    let (ok, _, error) = run_to_end(&["--data-dir".as_ref(), data.as_os_str()]);
    assert!(!ok && error.contains("give the room's key file"), "{error}");
    std::fs::rename(dir.path().join("moved.key"), &key).expect("put it back");
    assert!(
        unchanged(&stored, &files(&data)),
        "the refusals left the data as it was"
    );

    let (server, url) = spawn_on(&data).await;
    reads_back(&url, &bob).await;
    stop(server).await;
}

#[tokio::test]
async fn mongodb_documents_hold_sealed_text_only() {
    let Ok(uri) = std::env::var("CAHAT_MONGODB_URI") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the MongoDB encryption test: set CAHAT_MONGODB_URI"
        );
        eprintln!("skipped: CAHAT_MONGODB_URI is not set (scripts/test-all.sh sets it)");
        return;
    };
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).expect("random");
    let database: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let database = format!("cahat_sealed_{database}");
    let dir = tempfile::tempdir().expect("tempdir");
    let spawn = || {
        let mut command = server_process();
        command
            .args(["--mongodb-uri", &uri, "--mongodb-db", &database])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("CAHAT_DATA_KEY_FILE");
        spawn_process(command)
    };
    let (server, url) = spawn().await;
    let (_, bob) = chat(&url).await;
    stop(server).await;

    let client = mongodb::Client::with_uri_str(&uri).await.expect("MongoDB");
    let db = client.database(&database);
    let mut documents = 0;
    for name in db.list_collection_names().await.expect("collections") {
        let collection = db.collection::<mongodb::bson::RawDocumentBuf>(&name);
        let mut cursor = collection.find(mongodb::bson::doc! {}).await.expect("find");
        while cursor.advance().await.expect("next") {
            let raw = cursor.current();
            assert_sealed(raw.as_bytes(), &format!("a document of {name}"));
            documents += 1;
        }
    }
    assert!(
        documents >= 5,
        "messages, people and the report were read: {documents}"
    );

    let (server, url) = spawn().await;
    reads_back(&url, &bob).await;
    stop(server).await;
}

/// The server's log lines (it logs at `info`), for waiting on what it says.
struct Log(tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>);

impl Log {
    fn of(child: &mut tokio::process::Child) -> Self {
        use tokio::io::AsyncBufReadExt as _;
        let stderr = child.stderr.take().expect("stderr is piped");
        Self(tokio::io::BufReader::new(stderr).lines())
    }

    /// Waits (at most 60 s) for a line that says `what`.
    async fn until(&mut self, what: &str) {
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(line) = self.0.next_line().await.expect("read the log") {
                eprintln!("server: {line}");
                if line.contains(what) {
                    return;
                }
            }
            panic!("the server stopped before saying {what:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("the server did not say {what:?} in time"));
    }
}

/// The server on `data`, logging at `info` into the returned log.
async fn spawn_logged(data: &Path) -> (tokio::process::Child, String, Log) {
    let mut command = server_process();
    command
        .arg("--data-dir")
        .arg(data)
        .env_remove("CAHAT_DATA_KEY_FILE")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped());
    let (mut child, url) = spawn_process(command).await;
    let log = Log::of(&mut child);
    (child, url, log)
}

/// A store written before sealing: 2,000 room messages (the first with a unique word, one
/// edited to another), a direct message, a report with its reason and a ban with its reason.
async fn plain_store(data: &Path) -> Vec<(u64, String)> {
    use protocol::{
        AuditAction, AuditEntry, Ban, ChangeKind, StoredChange, StoredMessage, UserRecord,
    };
    use real_server::store::{Store, Write};
    let store = real_server::SqliteStore::open_dir(data).expect("a plain store");
    let person = |id: &str, ban: Option<Ban>| UserRecord {
        id: id.to_owned(),
        name: id.to_owned(),
        token_hash: protocol::hash_token(&format!("token of {id}")),
        joined_at: Some(1),
        last_seen: None,
        role: None,
        timed_out_until: None,
        ban,
    };
    let text = |seq: u64| match seq {
        1 => format!("the {POSTED} plan"),
        2 => format!("just us: {DIRECT}"),
        3 => "to be edited".to_owned(),
        _ => format!("hay {seq}"),
    };
    let mut batch = vec![
        Write::User(person("ann", None)),
        Write::User(person("bob", None)),
        Write::User(person(
            "ken",
            Some(Ban {
                until: None,
                reason: Some(format!("{BANNED} spam")),
                addresses: Vec::new(),
                by: "bob".into(),
            }),
        )),
    ];
    for seq in 1..=2000 {
        batch.push(Write::Message(StoredMessage {
            seq,
            id: format!("m{seq}"),
            user_id: "ann".into(),
            raw: text(seq),
            html: format!("<p>{}</p>\n", text(seq)),
            timestamp: 1_700_000_000_000,
            to: (seq == 2).then(|| "bob".to_owned()),
            ..StoredMessage::default()
        }));
    }
    batch.push(Write::Change(StoredChange {
        seq: 2001,
        target: 3,
        user_id: "ann".into(),
        at: 1_700_000_000_001,
        kind: ChangeKind::Edit {
            raw: format!("the {EDITED} plan"),
            html: format!("<p>the {EDITED} plan</p>\n"),
        },
    }));
    batch.push(Write::Audit(AuditEntry {
        seq: 2002,
        at: 1_700_000_000_002,
        by: "bob".into(),
        action: AuditAction::Report,
        user_id: Some("ann".into()),
        target: Some(1),
        report: None,
        reason: Some(format!("{REASON} behaviour")),
        until: None,
    }));
    store.write_batch("General", batch).await.expect("written");
    let mut texts: Vec<(u64, String)> = (1..=2000).map(|seq| (seq, text(seq))).collect();
    texts[2].1 = format!("the {EDITED} plan");
    texts
}

/// Every message of the room, read through the room's data key: (seq, text).
async fn stored_texts(data: &Path) -> Vec<(u64, String)> {
    use real_server::store::{Sealed, Store};
    let store = real_server::SqliteStore::open_dir(data).expect("the store");
    let store = Sealed::open(store, "General", None, data)
        .await
        .expect("the room's data key");
    let mut texts = Vec::new();
    loop {
        let after = texts.last().map_or(0, |(seq, _)| *seq);
        let page = store
            .load_messages_after("General", after, 1000)
            .await
            .expect("read");
        if page.is_empty() {
            return texts;
        }
        texts.extend(page.into_iter().map(|m| (m.seq, m.raw)));
    }
}

#[tokio::test]
async fn a_store_from_before_sealing_is_sealed_in_place_and_a_kill_midway_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let texts = plain_store(&data).await;

    // The first start with a key seals what is there, in batches, beside the room; it is
    // killed after the first batch.
    let (mut server, _, mut log) = spawn_logged(&data).await;
    log.until("sealed anew").await;
    server.start_kill().expect("kill -9");
    server.wait().await.expect("gone");
    assert_eq!(
        stored_texts(&data).await,
        texts,
        "nothing lost, nothing changed"
    );

    // The next start takes up where it stopped.
    let (server, url, mut log) = spawn_logged(&data).await;
    log.until("every record of the room is sealed").await;
    let bob = ("bob".to_owned(), "token of bob".to_owned());
    let (mut ws, _, _) = identify(&url, Some(&bob)).await;
    assert_eq!(
        search(&mut ws, EDITED).await,
        [format!("the {EDITED} plan")]
    );
    assert_eq!(
        search(&mut ws, DIRECT).await,
        [format!("just us: {DIRECT}")]
    );
    assert_eq!(
        search(&mut ws, POSTED).await,
        [format!("the {POSTED} plan")]
    );
    drop(ws);
    stop(server).await;
    assert_eq!(stored_texts(&data).await, texts);
    assert_files_sealed(&files(&data));
}

#[tokio::test]
async fn a_rotated_key_seals_everything_anew_while_the_room_runs_and_the_old_one_retires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (server, url) = spawn_on(&data).await;
    let (_, bob) = chat(&url).await;
    stop(server).await;
    let key_file = std::fs::read_to_string(data.join("cahat.key")).expect("key file");

    let (ok, said, error) = key_command(&data, "rotate-key");
    assert!(ok && said.contains("seals from now on"), "{said} {error}");
    let (ok, said, _) = key_command(&data, "retire-keys");
    assert!(
        ok && said.contains("still seals"),
        "the old key still seals: {said}"
    );

    // Restarted with the new file, the room seals anew in the background while it serves.
    let (server, url, mut log) = spawn_logged(&data).await;
    reads_back(&url, &bob).await;
    log.until("every record of the room is sealed").await;
    reads_back(&url, &bob).await;
    stop(server).await;

    let (ok, said, _) = key_command(&data, "retire-keys");
    assert!(ok && said.contains("retired"), "{said}");
    let rotated = std::fs::read_to_string(data.join("cahat.key")).expect("key file");
    assert_ne!(rotated, key_file);
    assert_eq!(rotated.matches("\"keys\"").count(), 1);
    // The old key is gone from the file, and the room reads everything with the new one.
    let (server, url, _log) = spawn_logged(&data).await;
    reads_back(&url, &bob).await;
    stop(server).await;
    assert_files_sealed(&files(&data));
}

#[tokio::test]
async fn a_kill_during_a_rotation_loses_nothing_and_the_next_start_finishes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let texts = plain_store(&data).await;
    let (server, _, mut log) = spawn_logged(&data).await;
    log.until("every record of the room is sealed").await;
    stop(server).await;

    let (ok, said, error) = key_command(&data, "rotate-key");
    assert!(ok, "{said} {error}");
    // Killed after its first batch sealed anew with the new key.
    let (mut server, _, mut log) = spawn_logged(&data).await;
    log.until("sealed anew").await;
    server.start_kill().expect("kill -9");
    server.wait().await.expect("gone");
    assert_eq!(
        stored_texts(&data).await,
        texts,
        "nothing lost, nothing changed"
    );
    let (ok, said, _) = key_command(&data, "retire-keys");
    assert!(ok && said.contains("still seals"), "half done: {said}");

    let (server, _, mut log) = spawn_logged(&data).await;
    log.until("every record of the room is sealed").await;
    stop(server).await;
    assert_eq!(stored_texts(&data).await, texts);
    let (ok, said, _) = key_command(&data, "retire-keys");
    assert!(
        ok && said.contains("retired") && !said.contains("still seals"),
        "{said}"
    );
    assert_eq!(
        stored_texts(&data).await,
        texts,
        "read with the new key alone"
    );
}
