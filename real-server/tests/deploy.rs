//! A room as `deploy/` runs it, on 127.0.0.1: three `nats-server`s in a JetStream cluster
//! (`deploy/nats/nats.conf`; the room's stream with 3 replicas), three room nodes, HAProxy in
//! front (`deploy/haproxy.cfg`, PROXY headers to the nodes), the MongoDB test server when
//! `CAHAT_MONGODB_URI` is set (else each node its own SQLite file). Clients connect only
//! through HAProxy and reconnect through it as the web client does: resuming after the last
//! message they hold, sending again (same nonce) what was not confirmed. Whatever fails (a
//! node killed, a NATS server killed, every node restarted in turn), every client ends with
//! every message once, in order.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{Seen, Ws, free_port, next_json, program};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name)
}

async fn wait_listening(port: u16, what: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not listen on {port}");
}

/// Whether the node on `port` answers /healthz with 200 (asked as HAProxy asks: a PROXY
/// header first).
async fn healthy(port: u16) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let ask = async {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request =
            format!("PROXY TCP4 127.0.0.1 127.0.0.1 1 {port}\r\nGET /healthz HTTP/1.0\r\n\r\n");
        socket.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The whole deployment; every process is killed when it drops.
struct Deployment {
    dir: tempfile::TempDir,
    nats: Vec<(Child, u16)>,
    nodes: Vec<Option<Child>>,
    node_ports: Vec<u16>,
    room: String,
    _haproxy: Child,
    url: String,
}

impl Deployment {
    async fn start(test: &str) -> Option<Self> {
        let (Some(nats_binary), Some(haproxy)) = (program("nats-server"), program("haproxy"))
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the deployment tests: scripts/setup.sh installs nats-server and haproxy"
            );
            eprintln!("skipped: no nats-server or haproxy (scripts/setup.sh installs both)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let nats_routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nats = Vec::new();
        for index in 0..3 {
            let port = free_port();
            let child = Self::nats_server(&nats_binary, dir.path(), &nats_routes, index, port);
            nats.push((child, port));
        }
        for (_, port) in &nats {
            wait_listening(*port, "nats-server").await;
        }
        let mut suffix = [0u8; 4];
        getrandom::fill(&mut suffix).expect("random");
        let room = format!("{test}-{:08x}", u32::from_be_bytes(suffix));
        let key = dir.path().join("room.key");
        let keygen = std::process::Command::new(env!("CARGO_BIN_EXE_real-server"))
            .arg("keygen")
            .arg("--out")
            .arg(&key)
            .output()
            .expect("keygen");
        assert!(keygen.status.success());
        let node_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let lb = free_port();
        let mut deployment = Self {
            dir,
            nats,
            nodes: Vec::new(),
            node_ports: node_ports.clone(),
            room,
            _haproxy: Command::new(haproxy)
                .args(["-db", "-f"])
                .arg(deploy_file("haproxy.cfg"))
                .env("CAHAT_LB_BIND", format!("127.0.0.1:{lb}"))
                .env("CAHAT_NODE_1", format!("127.0.0.1:{}", node_ports[0]))
                .env("CAHAT_NODE_2", format!("127.0.0.1:{}", node_ports[1]))
                .env("CAHAT_NODE_3", format!("127.0.0.1:{}", node_ports[2]))
                .stdout(Stdio::null())
                .stderr(if std::env::var_os("CAHAT_DEPLOY_LOGS").is_some() {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                })
                .kill_on_drop(true)
                .spawn()
                .expect("haproxy starts"),
            url: format!("ws://127.0.0.1:{lb}/"),
        };
        for node in 0..3 {
            let child = deployment.start_node(node).await;
            deployment.nodes.push(Some(child));
        }
        wait_listening(lb, "haproxy").await;
        // Every node is up for HAProxy once it passed two checks a second apart.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        Some(deployment)
    }

    fn nats_server(binary: &Path, dir: &Path, routes: &[u16], index: usize, port: u16) -> Child {
        let route = |i: usize| format!("nats://127.0.0.1:{}", routes[i]);
        Command::new(binary)
            .arg("-c")
            .arg(deploy_file("nats/nats.conf"))
            .env("CAHAT_NATS_NAME", format!("nats-{}", index + 1))
            .env("CAHAT_NATS_CLIENTS", format!("127.0.0.1:{port}"))
            .env("CAHAT_NATS_ROUTES", format!("127.0.0.1:{}", routes[index]))
            .env("CAHAT_NATS_ROUTE_1", route(0))
            .env("CAHAT_NATS_ROUTE_2", route(1))
            .env("CAHAT_NATS_ROUTE_3", route(2))
            .env("CAHAT_NATS_STORE", dir.join(format!("nats-{}", index + 1)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts")
    }

    /// Starts node `index` (again) on its port. Tried again while the NATS cluster is still
    /// electing the leaders the room's stream needs (the node then refuses to start).
    async fn start_node(&self, index: usize) -> Child {
        let nats: Vec<String> = self
            .nats
            .iter()
            .map(|(_, port)| format!("nats://127.0.0.1:{port}"))
            .collect();
        for _ in 0..30 {
            let mut command = Command::new(env!("CARGO_BIN_EXE_real-server"));
            command
                .args(["--port", &self.node_ports[index].to_string()])
                .args(["--rate-burst", "100000", "--rate-per-second", "100000"])
                .args(["--frame-burst", "100000", "--frames-per-second", "100000"])
                .env_remove("MONGODB_URI")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .args(["--room-id", &self.room, "--stream-replicas", "3"])
                .args(["--nats-url", &nats.join(",")])
                .args(["--proxy-protocol-from", "127.0.0.1"])
                .arg("--data-key-file")
                .arg(self.dir.path().join("room.key"));
            match std::env::var("CAHAT_MONGODB_URI") {
                Ok(uri) => {
                    command.args(["--mongodb-uri", &uri, "--mongodb-db", "cahat_deploy"]);
                }
                Err(_) => {
                    command
                        .arg("--data-dir")
                        .arg(self.dir.path().join(format!("node-{}", index + 1)));
                }
            }
            command.stderr(if std::env::var_os("CAHAT_DEPLOY_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
            let mut child = command.spawn().expect("start real-server");
            let stdout = child.stdout.take().expect("stdout");
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt as _;
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(_)) = lines.next_line().await {}
            });
            // It listens before it has joined the room's stream: ready once /healthz says so.
            for _ in 0..120 {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if healthy(self.node_ports[index]).await {
                    return child;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let _ = child.kill().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("node {} did not start", index + 1);
    }

    /// kill -9 of node `index`.
    async fn kill_node(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].take() {
            child.start_kill().expect("kill -9");
            child.wait().await.expect("gone");
        }
    }

    /// SIGTERM to node `index` (its clients are told 1001), then the same node again.
    async fn restart_node(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].take() {
            let pid = child.id().expect("running").to_string();
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill");
            assert!(sent.success());
            let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .expect("the node stops in time")
                .expect("wait");
            assert!(status.success(), "node {} stopped: {status}", index + 1);
        }
        let child = self.start_node(index).await;
        self.nodes[index] = Some(child);
        // Back in HAProxy's rotation after two passed checks.
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }

    /// kill -9 of NATS server `index`.
    async fn kill_nats(&mut self, index: usize) {
        let (child, _) = &mut self.nats[index];
        child.start_kill().expect("kill -9");
        child.wait().await.expect("gone");
    }
}

/// A client of the room through HAProxy that reconnects as the web client does.
struct Person {
    url: String,
    ws: Option<Ws>,
    id: String,
    token: String,
    /// What it holds, by seq.
    seen: Seen,
    reconnects: usize,
    /// Nonces it sent again: the room answers such a one with the message as stored, which
    /// it may hold already (from a resume).
    resent: std::collections::HashSet<String>,
    /// Errors the room sent it (STORAGE_FAILED, when the log could not be reached).
    errors: usize,
}

impl Person {
    async fn join(url: &str) -> Self {
        let mut person = Self {
            url: url.to_owned(),
            ws: None,
            id: String::new(),
            token: String::new(),
            seen: Seen::default(),
            reconnects: 0,
            resent: std::collections::HashSet::new(),
            errors: 0,
        };
        person.connect().await;
        person
    }

    /// (Re)connects through HAProxy and identifies, resuming after what it holds. Tried
    /// again for up to 20 s (a node may be down, HAProxy not yet aware).
    async fn connect(&mut self) {
        for _ in 0..80 {
            if let Ok(ws) = self.try_connect().await {
                self.ws = Some(ws);
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("could not reconnect through HAProxy");
    }

    async fn try_connect(&mut self) -> Result<Ws, String> {
        let (mut ws, _) = tokio_tungstenite::connect_async(&self.url)
            .await
            .map_err(|e| e.to_string())?;
        let mut info = json!({"protocolVersion": protocol::PROTOCOL_VERSION});
        if !self.id.is_empty() {
            info["userId"] = json!(self.id);
            info["token"] = json!(self.token);
            info["since"] = json!(self.seen.last_seq());
        }
        ws.send(Message::text(
            json!({"type": "HANDSHAKE_USER_INFO", "payload": info}).to_string(),
        ))
        .await
        .map_err(|e| e.to_string())?;
        loop {
            let frame = next_json(&mut ws).await.ok_or("closed before USER_INFO")?;
            if frame["type"] == "USER_INFO" {
                if self.id.is_empty() {
                    self.id = frame["payload"]["userId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    self.token = frame["payload"]["token"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                }
                return Ok(ws);
            }
            // Before it identifies a connection is anyone's: a message it holds may come
            // again (the same one).
            self.seen.take_with(&frame, true);
        }
    }

    /// The next frame, reconnecting (and resuming) when the connection ends.
    async fn next(&mut self) -> Value {
        loop {
            let ws = self.ws.as_mut().expect("connected");
            match next_json(ws).await {
                Some(frame) => {
                    let answer_to_resend = frame["type"] == "MESSAGE"
                        && frame["payload"]["userId"] == self.id.as_str()
                        && frame["payload"]["nonce"]
                            .as_str()
                            .is_some_and(|n| self.resent.contains(n));
                    self.seen.take_with(&frame, answer_to_resend);
                    return frame;
                }
                None => {
                    self.reconnects += 1;
                    self.connect().await;
                }
            }
        }
    }

    /// Sends `text` with `nonce` until the room confirms it (its own MESSAGE with the nonce):
    /// again after a reconnect or a STORAGE_FAILED, with the same nonce, as the client does.
    async fn say(&mut self, text: &str, nonce: &str) {
        let mut first = true;
        'send: loop {
            if !first {
                self.resent.insert(nonce.to_owned());
            }
            first = false;
            let frame = json!({"type": "MESSAGE", "payload": {"rawMessage": text, "nonce": nonce}});
            let reconnects = self.reconnects;
            let sent = self
                .ws
                .as_mut()
                .expect("connected")
                .send(Message::text(frame.to_string()))
                .await;
            if sent.is_err() {
                self.reconnects += 1;
                self.connect().await;
                continue;
            }
            loop {
                let frame = tokio::time::timeout(Duration::from_secs(15), self.next())
                    .await
                    .expect("the room answers");
                if self.reconnects != reconnects {
                    continue 'send;
                }
                let payload = &frame["payload"];
                match frame["type"].as_str() {
                    Some("MESSAGE")
                        if payload["nonce"] == nonce && payload["userId"] == self.id =>
                    {
                        return;
                    }
                    Some("ERROR") if payload["nonce"] == nonce => {
                        assert_eq!(payload["code"], "STORAGE_FAILED", "{frame}");
                        self.errors += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue 'send;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Reads until it holds `count` messages.
    async fn read_until(&mut self, count: usize) {
        tokio::time::timeout(Duration::from_secs(60), async {
            while self.seen.by_seq.len() < count {
                self.next().await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} of {count} messages arrived",
                self.seen.by_seq.len()
            )
        });
    }
}

/// What goes wrong.
#[derive(Clone, Copy)]
enum Fault {
    KillNode(usize),
    KillNats(usize),
    RestartNode(usize),
}

impl Deployment {
    async fn suffer(&mut self, fault: Fault) {
        match fault {
            Fault::KillNode(node) => self.kill_node(node).await,
            Fault::KillNats(server) => self.kill_nats(server).await,
            Fault::RestartNode(node) => self.restart_node(node).await,
        }
    }
}

/// A writer says `count` messages through HAProxy while six readers hold on; before message
/// `i` of each `(i, fault)`, that goes wrong. Every client ends with every message once, in
/// order. Returns how many errors the writer was sent (and sent its message again for).
async fn burst_with(deployment: &mut Deployment, count: usize, faults: &[(usize, Fault)]) -> usize {
    let url = deployment.url.clone();
    // Six readers: HAProxy spreads them (leastconn), two on each node.
    let mut readers = Vec::new();
    for _ in 0..6 {
        readers.push(Person::join(&url).await);
    }
    let mut writer = Person::join(&url).await;
    let texts: Vec<String> = (0..count).map(|i| format!("burst {i:03}")).collect();
    for (i, text) in texts.iter().enumerate() {
        for (_, fault) in faults.iter().filter(|(at, _)| *at == i) {
            deployment.suffer(*fault).await;
        }
        writer.say(text, &format!("w{i}")).await;
    }
    writer.read_until(count).await;
    assert_eq!(writer.seen.texts(), texts, "the writer's view");
    let mut reconnected = 0;
    for reader in &mut readers {
        reader.read_until(count).await;
        assert_eq!(reader.seen.texts(), texts, "every message once, in order");
        reconnected += usize::from(reader.reconnects > 0);
    }
    eprintln!(
        "{reconnected} of 6 readers reconnected through HAProxy on the way; the writer was \
         told {} errors",
        writer.errors
    );
    writer.errors
}

#[tokio::test]
async fn deployment_a_node_killed_mid_burst_its_clients_resume_through_haproxy() {
    let Some(mut deployment) = Deployment::start("kill-node").await else {
        return;
    };
    burst_with(&mut deployment, 120, &[(40, Fault::KillNode(0))]).await;
}

#[tokio::test]
async fn deployment_a_nats_server_killed_mid_burst_loses_nothing() {
    let Some(mut deployment) = Deployment::start("kill-nats").await else {
        return;
    };
    burst_with(&mut deployment, 120, &[(40, Fault::KillNats(0))]).await;
}

#[tokio::test]
async fn deployment_a_rolling_restart_loses_nothing() {
    let Some(mut deployment) = Deployment::start("rolling").await else {
        return;
    };
    let faults = [
        (30, Fault::RestartNode(0)),
        (70, Fault::RestartNode(1)),
        (110, Fault::RestartNode(2)),
    ];
    let errors = burst_with(&mut deployment, 150, &faults).await;
    assert_eq!(
        errors, 0,
        "a node told to stop loses nothing in flight: no error, a reconnect"
    );
}
