//! Test harness: a real server on 127.0.0.1:0 with a real store, and WebSocket clients.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use real_server::{Config, SqliteStore, Store, run};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any one frame.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Test defaults: the real defaults with generous rate limits unless a test sets them.
pub fn config() -> Config {
    let mut config = Config::defaults();
    config.port = 0;
    config.rate_burst = 1000;
    config.rate_per_second = 1000;
    config.frame_burst = 10_000;
    config.frames_per_second = 10_000;
    config.identity_burst = 1000;
    config.metrics_bind = real_server::config::MetricsBind::Main;
    config
}

impl TestServer {
    pub async fn start<S: Store>(config: Config, store: S) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, config, store, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub async fn sqlite(config: Config, dir: &Path) -> Self {
        Self::start(config, SqliteStore::open_dir(dir).expect("open store")).await
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Graceful stop; returns once storage is flushed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server ran cleanly");
    }

    /// Stops without the graceful path, as close to a crash as a test process allows.
    pub fn abort(self) {
        self.task.abort();
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(server: &TestServer) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(server.url())
            .await
            .expect("connect");
        Self { ws }
    }

    /// Connects and returns the HANDSHAKE too.
    pub async fn open(server: &TestServer) -> (Self, Value) {
        let mut client = Self::connect(server).await;
        let handshake = client.recv().await;
        assert_eq!(handshake["type"], "HANDSHAKE");
        (client, handshake)
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send(&mut self, action: Value) {
        self.send_text(&action.to_string()).await;
    }

    /// The next text frame as raw text (pings are skipped).
    pub async fn recv_text(&mut self) -> String {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("connection open")
                .expect("frame ok");
            match frame {
                Message::Text(text) => return text.to_string(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    pub async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.recv_text().await).expect("JSON frame")
    }

    /// Frames until one of type `kind`; returns it.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// The close frame the server sends next (other frames are skipped).
    pub async fn recv_close(&mut self) -> Option<CloseFrame> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time");
            match frame {
                Some(Ok(Message::Close(close))) => return close,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// No MESSAGE arrives for `wait` (other frames may).
    pub async fn assert_no_message(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(&text).expect("JSON");
                    assert_ne!(frame["type"], "MESSAGE", "unexpected {frame}");
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("connection ended: {other:?}"),
            }
        }
    }

    /// Identifies (as new, or resuming with a token); returns (USER_INFO payload, frames seen).
    pub async fn identify(&mut self, info: Value) -> Value {
        self.send(json!({"type": "HANDSHAKE_USER_INFO", "payload": info}))
            .await;
        self.recv_type("USER_INFO").await["payload"].clone()
    }

    pub async fn say(&mut self, text: &str, nonce: Option<&str>) {
        let mut payload = json!({ "rawMessage": text });
        if let Some(nonce) = nonce {
            payload["nonce"] = json!(nonce);
        }
        self.send(json!({"type": "MESSAGE", "payload": payload}))
            .await;
    }
}

/// A new user in the room: (client, userId, token).
pub async fn join(server: &TestServer) -> (Client, String, String) {
    let (mut client, _) = Client::open(server).await;
    let info = client.identify(json!({})).await;
    let id = info["userId"].as_str().expect("userId").to_owned();
    let token = info["token"].as_str().expect("token").to_owned();
    client.recv_type("USER_CONNECTED").await;
    (client, id, token)
}

/// A WebSocket to a server, as tokio-tungstenite opens it.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The next JSON text frame (pings skipped, at most 10 s), or `None` once the connection is
/// gone.
pub async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()?? {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The real-server binary as its own process (so that a test can kill it with SIGKILL), on a
/// free port, with limits out of a test's way; add the store's and any other flags.
pub fn server_process() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_real-server"));
    command
        .args(["--port", "0"])
        .args(["--rate-burst", "100000", "--rate-per-second", "100000"])
        .args(["--frame-burst", "100000", "--frames-per-second", "100000"])
        .env_remove("MONGODB_URI")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `command` (from [`server_process`]); returns it and its ws:// URL, read from its
/// stdout.
pub async fn spawn_process(
    mut command: tokio::process::Command,
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command.spawn().expect("start real-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(at) = line.find("ws://") {
                return line[at..].trim().to_owned();
            }
        }
        panic!("the server exited before printing its address");
    })
    .await
    .expect("the server starts in time");
    (child, url)
}

/// The messages a client saw, by seq: each must come once.
#[derive(Default)]
pub struct Seen {
    pub by_seq: std::collections::BTreeMap<u64, String>,
}

impl Seen {
    /// Takes the messages of a MESSAGE or RESUME frame: each seq once.
    pub fn take(&mut self, frame: &Value) {
        self.take_with(frame, false);
    }

    /// As `take`, on a connection not identified yet: a seq seen already may come again, the
    /// same message.
    pub fn take_anyones(&mut self, frame: &Value) {
        self.take_with(frame, true);
    }

    pub fn take_with(&mut self, frame: &Value, repeats: bool) {
        let records: Vec<&Value> = match frame["type"].as_str() {
            Some("MESSAGE") => vec![&frame["payload"]],
            Some("RESUME") => {
                assert_eq!(frame["payload"]["gapTooBig"], false, "{frame}");
                frame["payload"]["messages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .collect()
            }
            _ => return,
        };
        for record in records {
            let seq = record["seq"].as_u64().expect("seq");
            let text = record["rawMessage"].as_str().expect("text").to_owned();
            let before = self.by_seq.insert(seq, text.clone());
            match before {
                Some(before) if repeats => assert_eq!(before, text, "message {seq} changed"),
                before => assert!(before.is_none(), "message {seq} ({text}) came twice"),
            }
        }
    }

    pub fn texts(&self) -> Vec<&str> {
        self.by_seq.values().map(String::as_str).collect()
    }

    pub fn last_seq(&self) -> u64 {
        self.by_seq.keys().last().copied().unwrap_or(0)
    }
}

/// The texts of a list of message records (a HANDSHAKE's or a page's `messages`).
pub fn message_texts(messages: &Value) -> Vec<&str> {
    messages
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|m| m["rawMessage"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A program a test needs: the project's venv (`scripts/setup.sh` installs nats-server there),
/// else the directories of PATH and the system's (Debian puts haproxy in /usr/sbin).
pub fn program(name: &str) -> Option<std::path::PathBuf> {
    let venv = std::env::var_os("CAHAT_VENV").map(std::path::PathBuf::from);
    let path = std::env::var_os("PATH").unwrap_or_default();
    venv.map(|v| v.join("bin"))
        .into_iter()
        .chain(std::env::split_paths(&path))
        .chain(["/usr/sbin", "/usr/local/bin"].map(std::path::PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
