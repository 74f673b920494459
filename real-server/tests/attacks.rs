//! The adversarial suite: each attack a single hostile client could make, against the real
//! binary on 127.0.0.1 with default flags unless an attack needs a smaller bound to be quick.
//! For each, the bound holds: the attacker is closed or refused with the right code, the
//! server's memory stays under a ceiling, other clients' echo latency stays near what it was
//! without the attack (a ratio measured in the same run), and stored messages survive a
//! restart.
//!
//! Attackers connect from 127.0.0.2 (any 127.0.0.0/8 address is this machine), so that
//! per-address limits meet them and not the honest client on 127.0.0.1. Every loop is bounded
//! in count and time.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

const ATTACKER: &str = "127.0.0.2";
const HONEST: &str = "127.0.0.1";
const WAIT: Duration = Duration::from_secs(10);

/// The real binary, started on a free port with `args` (and, when given, an open-files limit,
/// as services often run with).
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    async fn start(data: &Path, args: &[&str], open_files: Option<u32>) -> Self {
        let bin = env!("CARGO_BIN_EXE_real-server");
        let mut command = match open_files {
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(bin);
                sh
            }
            None => Command::new(bin),
        };
        command.args(["--port", "0"]);
        if !args.contains(&"--metrics-bind") {
            command.args(["--metrics-bind", "main"]);
        }
        command
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .env_remove("MONGODB_URI")
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start real-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(at) = line.find("ws://") {
                    let addr = line[at + 5..].trim().trim_end_matches('/');
                    return addr.parse().expect("address");
                }
            }
            panic!("server exited before printing its address");
        })
        .await
        .expect("server starts in time");
        Self { child, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Resident memory, in KiB.
    fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// SIGTERM, and waits for the exit (storage flushed).
    async fn stop(mut self) {
        let pid = self.pid();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("stops in time")
            .expect("exit status");
        assert!(exit.success(), "clean exit: {exit:?}");
    }

    async fn metric(&self, name: &str) -> u64 {
        let (_, body) = http(self.addr, HONEST, "GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {body}"))
    }
}

/// A TCP connection to `addr` from `from` (a loopback address).
async fn tcp_from(addr: SocketAddr, from: &str) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse().expect("ip"), 0))?;
    socket.connect(addr).await
}

/// One HTTP request (`head` without the final blank line); returns (status, body).
async fn http(addr: SocketAddr, from: &str, head: &str) -> (u16, String) {
    let mut tcp = tcp_from(addr, from).await.expect("connect");
    tcp.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
        .await
        .expect("send request");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut response))
        .await
        .expect("answer in time")
        .expect("read answer");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

async fn ws_from(addr: SocketAddr, from: &str) -> Option<Ws> {
    let tcp = tcp_from(addr, from).await.ok()?;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .ok()?;
    Some(ws)
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()?? {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn send(ws: &mut Ws, action: Value) {
    ws.send(Message::text(action.to_string()))
        .await
        .expect("send");
}

/// Connects from `from` and identifies as a new user; returns the socket and its USER_INFO
/// or ERROR answer.
async fn join_from(addr: SocketAddr, from: &str) -> (Ws, Value) {
    let mut ws = ws_from(addr, from).await.expect("WebSocket");
    let handshake = next_json(&mut ws).await.expect("HANDSHAKE");
    assert_eq!(handshake["type"], "HANDSHAKE");
    send(
        &mut ws,
        json!({"type": "HANDSHAKE_USER_INFO", "payload": {}}),
    )
    .await;
    loop {
        let frame = next_json(&mut ws).await.expect("an answer");
        if frame["type"] == "USER_INFO" || frame["type"] == "ERROR" {
            return (ws, frame);
        }
    }
}

/// The close code the server sent, reading past anything before it.
async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()? {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
    None
}

/// An honest client that measures how long its own messages take to come back.
struct Victim {
    ws: Ws,
    sent: u32,
}

impl Victim {
    async fn join(addr: SocketAddr) -> Self {
        let (ws, info) = join_from(addr, HONEST).await;
        assert_eq!(info["type"], "USER_INFO", "{info}");
        Self { ws, sent: 0 }
    }

    /// Median echo time of `samples` messages, paced within the default rate limit.
    async fn median_echo(&mut self, samples: u32) -> Duration {
        let mut times = Vec::new();
        for _ in 0..samples {
            self.sent += 1;
            let nonce = format!("v{}", self.sent);
            let started = Instant::now();
            send(
                &mut self.ws,
                json!({"type": "MESSAGE", "payload": {"rawMessage": "ping", "nonce": nonce}}),
            )
            .await;
            loop {
                let frame = next_json(&mut self.ws)
                    .await
                    .expect("victim stays connected");
                if frame["type"] == "MESSAGE" && frame["payload"]["nonce"] == nonce.as_str() {
                    break;
                }
                assert_ne!(frame["type"], "ERROR", "victim refused: {frame}");
            }
            times.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        times.sort();
        times[times.len() / 2]
    }
}

/// The ratio of echo times with and without an attack, with a floor of 5 ms for the quiet
/// baseline (a loopback echo with an fsync can be faster than the timer's noise).
fn slowdown(quiet: Duration, attacked: Duration) -> f64 {
    let quiet = quiet.max(Duration::from_millis(5));
    let ratio = attacked.as_secs_f64() / quiet.as_secs_f64();
    println!("echo: quiet {quiet:?}, under attack {attacked:?}, ratio {ratio:.2}");
    ratio
}

/// How much slower a victim's echo may get while an attack runs.
const MAX_SLOWDOWN: f64 = 8.0;

/// Every message in the room, by paging history from a fresh connection.
async fn all_messages(addr: SocketAddr) -> Vec<String> {
    let mut ws = ws_from(addr, HONEST).await.expect("connect");
    let handshake = next_json(&mut ws).await.expect("HANDSHAKE");
    let mut raws: Vec<(u64, String)> = Vec::new();
    let collect = |records: &Value, raws: &mut Vec<(u64, String)>| {
        for m in records.as_array().expect("messages") {
            raws.push((
                m["seq"].as_u64().expect("seq"),
                m["rawMessage"].as_str().expect("raw").to_owned(),
            ));
        }
    };
    collect(&handshake["payload"]["messages"], &mut raws);
    while let Some(before) = raws.iter().map(|(s, _)| *s).min().filter(|&b| b > 1) {
        send(
            &mut ws,
            json!({"type": "HISTORY_REQUEST", "payload": {"before": before, "limit": 100}}),
        )
        .await;
        let page = loop {
            let frame = next_json(&mut ws).await.expect("HISTORY");
            if frame["type"] == "HISTORY" {
                break frame;
            }
        };
        collect(&page["payload"]["messages"], &mut raws);
        if page["payload"]["hasMore"] != true {
            break;
        }
    }
    raws.sort();
    raws.into_iter().map(|(_, raw)| raw).collect()
}

/// One attack, run the same way every time: a server on its own data directory, an honest
/// victim who has already said something, the victim's echo time before and during the
/// attack (a ratio), the server's memory before and after, and a restart at the end that must
/// bring back every stored message.
struct Siege {
    server: Server,
    dir: tempfile::TempDir,
    args: Vec<String>,
    open_files: Option<u32>,
    victim: Victim,
    quiet: Duration,
    rss_before: u64,
}

impl Siege {
    async fn start(args: &[&str], open_files: Option<u32>) -> Self {
        let dir = tempfile::tempdir().expect("data dir");
        let server = Server::start(dir.path(), args, open_files).await;
        let mut victim = Victim::join(server.addr).await;
        let quiet = victim.median_echo(6).await;
        let rss_before = server.rss_kib();
        Self {
            server,
            dir,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            open_files,
            victim,
            quiet,
            rss_before,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Runs `attack` while the victim keeps talking; the victim's echo may be at most
    /// [`MAX_SLOWDOWN`] times slower than without it. Returns what the attack returns.
    async fn during<T: Send + 'static>(
        &mut self,
        attack: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let attack = tokio::spawn(attack);
        // Let the attack get going before measuring.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let attacked = self.victim.median_echo(8).await;
        let result = attack.await.expect("attack task");
        assert!(
            slowdown(self.quiet, attacked) < MAX_SLOWDOWN,
            "an honest client is slowed down too much"
        );
        result
    }

    /// The server's memory grew by less than `mib` since the siege began.
    fn assert_memory_under(&self, mib: u64) {
        let after = self.server.rss_kib();
        println!("RSS {} -> {after} KiB", self.rss_before);
        assert!(
            after < self.rss_before + mib * 1024,
            "memory stays bounded: {} -> {after} KiB",
            self.rss_before
        );
    }

    /// Stops the server, starts it again on the same data and checks that every message
    /// stored before is still there.
    async fn restart_keeps_everything(self) {
        let before = all_messages(self.server.addr).await;
        assert!(
            before.iter().filter(|m| *m == "ping").count() >= 14,
            "the victim's messages were stored"
        );
        drop(self.victim);
        self.server.stop().await;
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let server = Server::start(self.dir.path(), &args, self.open_files).await;
        assert_eq!(all_messages(server.addr).await, before);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_closed_and_memory_stays_bounded() {
    let mut siege = Siege::start(&[], None).await;
    // Flooders that never read: each sends pings until the server closes it, then another
    // takes its place, for three seconds.
    let addr = siege.addr();
    let (pings, closed) = siege
        .during(async move {
            let deadline = Instant::now() + Duration::from_secs(3);
            let (mut pings, mut closed_1008) = (0u64, 0u32);
            while Instant::now() < deadline {
                let Some(mut ws) = ws_from(addr, ATTACKER).await else {
                    continue;
                };
                let payload = vec![7u8; 125];
                while Instant::now() < deadline {
                    match tokio::time::timeout(
                        Duration::from_secs(1),
                        ws.send(Message::Ping(payload.clone().into())),
                    )
                    .await
                    {
                        Ok(Ok(())) => pings += 1,
                        _ => break,
                    }
                    if pings % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                if close_code(&mut ws).await == Some(CloseCode::Policy) {
                    closed_1008 += 1;
                }
            }
            (pings, closed_1008)
        })
        .await;
    println!("{pings} pings, {closed} flooders closed with 1008");
    assert!(closed >= 1, "a flooder is closed with 1008 (policy)");
    siege.assert_memory_under(32);
    siege.restart_keeps_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quadratic_markdown_does_not_stall_the_room() {
    let mut siege = Siege::start(&[], None).await;
    // Ten attackers, each at the rate limit, each sending the shape whose link trimming was
    // once quadratic (27 ms of the room's task each in a release build).
    let poison = format!("http://a{}", ")".repeat(3992));
    let addr = siege.addr();
    let attack_poison = poison.clone();
    let sent = siege
        .during(async move {
            let mut attackers = Vec::new();
            for i in 0..10 {
                let poison = attack_poison.clone();
                attackers.push(tokio::spawn(async move {
                    let (mut ws, info) = join_from(addr, ATTACKER).await;
                    assert_eq!(info["type"], "USER_INFO");
                    let deadline = Instant::now() + Duration::from_secs(3);
                    let mut n = 0;
                    while Instant::now() < deadline {
                        n += 1;
                        let nonce = format!("a{i}-{n}");
                        let action = json!({"type": "MESSAGE", "payload": {"rawMessage": poison, "nonce": nonce}});
                        if ws.send(Message::text(action.to_string())).await.is_err() {
                            break;
                        }
                        // Read what comes back so this attacker is not closed as slow.
                        let _ = tokio::time::timeout(Duration::from_millis(200), ws.next()).await;
                    }
                    n
                }));
            }
            let mut sent = 0;
            for attacker in attackers {
                sent += attacker.await.expect("attacker");
            }
            sent
        })
        .await;
    println!("{sent} poison messages sent");
    assert!(
        all_messages(siege.addr()).await.contains(&poison),
        "the poison is stored, as text"
    );
    siege.assert_memory_under(32);
    siege.restart_keeps_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplification_is_refused_and_answers_are_bounded_in_bytes() {
    let budget = 262_144usize;
    // Generous action rates: the hoarders below are bounded by bytes, not by the rate limit.
    let args = [
        "--max-answer-bytes",
        "262144",
        "--queue-bytes",
        "262144",
        "--rate-burst",
        "1000",
        "--rate-per-second",
        "1000",
    ];
    let mut siege = Siege::start(&args, None).await;
    let addr = siege.addr();
    let (mut writer, info) = join_from(addr, HONEST).await;
    assert_eq!(info["type"], "USER_INFO");

    // 4,000 `>` would render to 108 KB of HTML: refused, naming the message.
    send(
        &mut writer,
        json!({"type": "MESSAGE", "payload": {"rawMessage": ">".repeat(4000), "nonce": "deep"}}),
    )
    .await;
    let refusal = loop {
        let frame = next_json(&mut writer).await.expect("answer");
        if frame["type"] == "ERROR" {
            break frame;
        }
    };
    assert_eq!(refusal["payload"]["code"], "MESSAGE_TOO_COMPLEX");
    assert_eq!(refusal["payload"]["nonce"], "deep");

    // 40 large messages that are allowed: about 17 KB each on the wire, 680 KB in all (paced
    // within the default rate limit).
    let heavy = "**a** ".repeat(666);
    for i in 0..40 {
        send(
            &mut writer,
            json!({"type": "MESSAGE", "payload": {"rawMessage": format!("{i} {heavy}"), "nonce": format!("h{i}")}}),
        )
        .await;
        loop {
            let frame = next_json(&mut writer).await.expect("echo");
            assert_ne!(frame["type"], "ERROR", "{frame}");
            if frame["type"] == "MESSAGE" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A new connection's HANDSHAKE, a history page and a resume from 0 stay in budget, and
    // paging still reaches every message.
    let mut reader = ws_from(addr, HONEST).await.expect("connect");
    let Some(Ok(Message::Text(handshake))) = reader.next().await else {
        panic!("HANDSHAKE")
    };
    // The messages take at most the budget; names and presence add a little.
    assert!(
        handshake.len() < budget + 4096,
        "handshake {} bytes",
        handshake.len()
    );
    let all = all_messages(addr).await;
    assert_eq!(all.iter().filter(|m| m.ends_with(&heavy)).count(), 40);
    send(
        &mut reader,
        json!({"type": "HISTORY_REQUEST", "payload": {"before": 1000, "limit": 100}}),
    )
    .await;
    let page = loop {
        let Some(Ok(Message::Text(text))) = reader.next().await else {
            panic!("HISTORY")
        };
        if text.contains("\"HISTORY\"") {
            break text;
        }
    };
    assert!(
        page.len() < budget + 4096,
        "history page {} bytes",
        page.len()
    );
    send(
        &mut reader,
        json!({"type": "HANDSHAKE_USER_INFO", "payload": {"since": 0}}),
    )
    .await;
    let resume = loop {
        let frame = next_json(&mut reader).await.expect("RESUME");
        if frame["type"] == "RESUME" {
            break frame;
        }
    };
    assert_eq!(resume["payload"]["gapTooBig"], true);
    drop((writer, reader));

    // Eight clients ask for history as fast as they may (within the frame budget) and never
    // read: each is closed at its queue bound, and the server's memory stays bounded.
    let held = siege
        .during(async move {
            let mut hoarders = Vec::new();
            for _ in 0..8 {
                hoarders.push(tokio::spawn(async move {
                    let mut ws = ws_from(addr, ATTACKER).await.expect("connect");
                    for _ in 0..90 {
                        let ask = json!({"type": "HISTORY_REQUEST", "payload": {"before": 1000, "limit": 100}});
                        let sent = tokio::time::timeout(
                            Duration::from_secs(2),
                            ws.send(Message::text(ask.to_string())),
                        )
                        .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            break;
                        }
                    }
                    // Hold the socket a moment without reading, as a hoarder would.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    ws
                }));
            }
            let mut held = Vec::new();
            for hoarder in hoarders {
                held.push(hoarder.await.expect("hoarder"));
            }
            held
        })
        .await;
    let drops = siege.server.metric("cahat_queue_drops_total").await;
    println!("8 hoarders: {drops} closed at their queue bound");
    assert_eq!(drops, 8, "every hoarder is closed as too slow");
    siege.assert_memory_under(64);
    drop(held);
    siege.restart_keeps_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_cannot_lock_out_a_server_with_1024_open_files() {
    let mut siege = Siege::start(&["--header-timeout-seconds", "5"], Some(1024)).await;
    // 1,100 connections that start a request and never finish it, held while the victim
    // talks.
    let addr = siege.addr();
    let mut partial = Vec::new();
    for _ in 0..1100 {
        if let Ok(mut tcp) = tcp_from(addr, ATTACKER).await
            && tcp
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
                .await
                .is_ok()
        {
            partial.push(tcp);
        }
    }
    assert_eq!(partial.len(), 1100);
    siege
        .during(tokio::time::sleep(Duration::from_secs(2)))
        .await;
    // Past the per-address limit they are answered 503 at once.
    let (mut refused, mut other, mut reset, mut silent) = (0, 0, 0, 0);
    for tcp in partial.iter_mut().skip(100) {
        let mut answer = [0u8; 64];
        match tokio::time::timeout(WAIT, tcp.read(&mut answer)).await {
            Ok(Ok(n)) if answer[..n].starts_with(b"HTTP/1.1 503") => refused += 1,
            Ok(Ok(_)) => other += 1,
            Ok(Err(_)) => reset += 1,
            Err(_) => silent += 1,
        }
    }
    let unanswered = siege.server.metric("cahat_unanswered_refusals_total").await;
    println!(
        "of 1,000 over the limit: {refused} answered 503, {other} something else, {reset} reset, \
         {silent} no answer in time; {unanswered} closed unanswered by the server"
    );
    assert_eq!(refused, 1000);
    // Honest people still get in, and the health check answers.
    let (status, body) = http(addr, HONEST, "GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (_newcomer, info) = join_from(addr, HONEST).await;
    assert_eq!(info["type"], "USER_INFO");
    // The 100 admitted ones are closed once their request head is overdue.
    let started = Instant::now();
    for tcp in partial.iter_mut().take(100) {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a partial request is closed by the server");
    }
    println!(
        "the admitted partial requests were closed within {:?}",
        started.elapsed()
    );
    assert_eq!(
        siege.server.metric("cahat_refused_connections_total").await,
        1000
    );
    siege.assert_memory_under(64);
    drop(partial);
    siege.restart_keeps_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_twice_the_connection_limit_admits_exactly_the_limit() {
    let args = [
        "--max-connections",
        "50",
        "--max-connections-per-address",
        "1000",
    ];
    let mut siege = Siege::start(&args, None).await;
    let addr = siege.addr();
    // The victim holds one place: 99 more try at once, 49 get in.
    let mut open = siege
        .during(async move {
            let attempts: Vec<_> = (0..99)
                .map(|_| tokio::spawn(async move { ws_from(addr, ATTACKER).await }))
                .collect();
            let mut open = Vec::new();
            for attempt in attempts {
                if let Some(ws) = attempt.await.expect("attempt") {
                    open.push(ws);
                }
            }
            open
        })
        .await;
    assert_eq!(open.len(), 49, "exactly the limit is admitted");
    // A refused one is told why.
    let (status, body) = http(addr, HONEST, "GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("room is full"), "{body}");
    // A place given back is a place for someone else.
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    let mut again = None;
    while again.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        again = ws_from(addr, HONEST).await;
    }
    assert!(again.is_some(), "a freed place admits a new connection");
    drop((open, again));
    siege.assert_memory_under(32);
    // The places of closed connections come back: the restart check connects again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    siege.restart_keeps_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_spam_is_limited_per_address() {
    let mut siege = Siege::start(&[], None).await;
    let addr = siege.addr();
    let (mut watcher, info) = join_from(addr, HONEST).await;
    assert_eq!(info["type"], "USER_INFO");
    let (issued, refused) = siege
        .during(async move {
            let (mut issued, mut refused) = (0, 0);
            for _ in 0..30 {
                let (_ws, answer) = join_from(addr, ATTACKER).await;
                match answer["type"].as_str() {
                    Some("USER_INFO") => issued += 1,
                    Some("ERROR") => {
                        assert_eq!(answer["payload"]["code"], "TOO_MANY_IDENTITIES");
                        refused += 1;
                    }
                    other => panic!("{other:?}"),
                }
            }
            (issued, refused)
        })
        .await;
    assert_eq!(
        (issued, refused),
        (20, 10),
        "the default burst is 20 per address"
    );
    // The watcher was told of 20 new people, not 30, in PRESENCE frames. Each attacker hangs
    // up at once, so within one tick most of them end up in `left`, not `joined`.
    let own_id = info["payload"]["userId"].clone();
    let mut announced = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_millis(500);
    while let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout_at(deadline.into(), watcher.next()).await
    {
        let frame: Value = serde_json::from_str(&text).expect("JSON");
        if frame["type"] == "PRESENCE" {
            for list in ["joined", "left"] {
                for person in frame["payload"][list].as_array().into_iter().flatten() {
                    if person["userId"] != own_id {
                        announced.insert(person["userId"].to_string());
                    }
                }
            }
        }
    }
    assert_eq!(announced.len(), 20, "{announced:?}");
    // Someone else still gets an identity, and bad names are refused with the reason.
    let (mut honest, info) = join_from(addr, HONEST).await;
    assert_eq!(info["type"], "USER_INFO");
    for name in ["abc\u{202E}gnp.exe", "\u{200B}\u{FEFF}", "\u{3164}"] {
        send(
            &mut honest,
            json!({"type": "NAME_CHANGE", "payload": {"name": name}}),
        )
        .await;
        let answer = loop {
            let frame = next_json(&mut honest).await.expect("answer");
            if frame["type"] == "ERROR" || frame["type"] == "NAME_CHANGE" {
                break frame;
            }
        };
        assert_eq!(
            answer["payload"]["code"], "INVALID_NAME",
            "{name:?}: {answer}"
        );
    }
    siege.assert_memory_under(32);
    drop((watcher, honest));
    siege.restart_keeps_everything().await;
}

/// A client frame, masked as RFC 6455 requires (unless `masked` is false).
fn frame(first_byte: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first_byte];
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | u8::try_from(len).expect("short"));
    } else {
        out.push(mask_bit | 126);
        out.extend_from_slice(&u16::try_from(len).expect("medium").to_be_bytes());
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Opens a WebSocket by hand, sends `bytes`, and returns the close code and reason the server
/// answers with.
async fn close_after(addr: SocketAddr, bytes: &[u8]) -> Option<(u16, String)> {
    let mut tcp = tcp_from(addr, HONEST).await.ok()?;
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .ok()?;
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        read_more(&mut tcp, &mut seen).await?;
    }
    let head_end = seen.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    assert!(seen.starts_with(b"HTTP/1.1 101"));
    let mut rest = seen.split_off(head_end);
    tcp.write_all(bytes).await.ok()?;
    // Server frames: unmasked; find the close frame (opcode 8) after the HANDSHAKE text.
    loop {
        while rest.len() >= 2 {
            let opcode = rest[0] & 0x0f;
            let (len, start) = match rest[1] & 0x7f {
                126 if rest.len() >= 4 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
                127 if rest.len() >= 10 => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(&rest[2..10]);
                    (usize::try_from(u64::from_be_bytes(be)).ok()?, 10)
                }
                126 | 127 => break,
                short => (usize::from(short), 2),
            };
            if rest.len() < start + len {
                break;
            }
            let payload: Vec<u8> = rest[start..start + len].to_vec();
            rest.drain(..start + len);
            if opcode == 8 {
                let code = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
                return Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()));
            }
        }
        read_more(&mut tcp, &mut rest).await?;
    }
}

/// Reads what arrives next onto `into`; `None` when the connection ended or nothing came.
async fn read_more(tcp: &mut TcpStream, into: &mut Vec<u8>) -> Option<()> {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    if n == 0 {
        return None;
    }
    into.extend_from_slice(&buf[..n]);
    Some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_faults_close_with_a_code_and_a_reason() {
    let mut siege = Siege::start(&["--max-frame-bytes", "1024"], None).await;
    let addr = siege.addr();
    let closes = siege
        .during(async move {
            let cases: [(&str, Vec<u8>, u16); 5] = [
                (
                    "invalid UTF-8",
                    frame(0x81, &[0xff, 0xfe, 0x41], true),
                    1007,
                ),
                ("reserved bit", frame(0x81 | 0x40, b"{}", true), 1002),
                ("unmasked client frame", frame(0x81, b"{}", false), 1002),
                (
                    "continuation without a start",
                    frame(0x80, b"x", true),
                    1002,
                ),
                ("oversized frame", frame(0x81, &[b'a'; 2000], true), 1009),
            ];
            let mut closes = Vec::new();
            // Each fault, many times over, for as long as the victim measures.
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                for (what, bytes, expected) in &cases {
                    closes.push((*what, close_after(addr, bytes).await, *expected));
                }
            }
            closes
        })
        .await;
    for (what, closed, expected) in &closes {
        let (code, reason) = closed
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no close frame"));
        assert_eq!(code, expected, "{what}");
        assert!(!reason.is_empty(), "{what}: a reason is given");
    }
    for (what, closed, _) in closes.iter().take(5) {
        println!("{what}: {closed:?}");
    }
    let faults = siege.server.metric("cahat_fault_closes_total").await;
    assert_eq!(faults, u64::try_from(closes.len()).expect("count"));
    siege.assert_memory_under(32);
    siege.restart_keeps_everything().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_directory_serves_only_its_own_regular_files() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("room.db"), "SECRET DATABASE").unwrap();
    let client = tempfile::tempdir().unwrap();
    std::fs::write(
        client.path().join("index.html"),
        "<!doctype html><title>CAHAT</title>",
    )
    .unwrap();
    std::fs::write(client.path().join("app.js"), "console.log(1)").unwrap();
    std::fs::write(client.path().join(".env"), "TOKEN=secret").unwrap();
    std::fs::create_dir(client.path().join("sub")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("room.db"), client.path().join("db")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client_dir = client.path().to_str().unwrap().to_owned();
    let server = Server::start(dir.path(), &["--client-dir", &client_dir], None).await;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n");
    assert_eq!(http(server.addr, HONEST, &get("/app.js")).await.0, 200);
    assert_eq!(http(server.addr, HONEST, &get("/")).await.0, 200);
    for path in [
        "/.env",
        "/db",
        "//sub",
        "/sub",
        "/sub/",
        "/%2e%2e/room.db",
        "/../room.db",
    ] {
        let (status, body) = http(server.addr, HONEST, &get(path)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            !body.contains("SECRET") && !body.contains("TOKEN"),
            "{path}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default_or_on_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_real-server");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    // Off by default: the room's port has no /metrics.
    let mut child = Command::new(bin)
        .args(["--port", "0", "--metrics-bind"])
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("MONGODB_URI")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("address in time")
        .expect("stdout")
        .expect("a line");
    let addr: SocketAddr = line[line.find("ws://").expect("ws://") + 5..]
        .trim_end_matches('/')
        .parse()
        .expect("address");
    let get = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    assert_eq!(
        http(addr, HONEST, get).await.0,
        404,
        "not on the room's port"
    );
    let metrics: SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let (status, body) = http(metrics, HONEST, get).await;
    assert_eq!(status, 200);
    assert!(body.contains("cahat_connections "), "{body}");
    child.start_kill().expect("kill");
    // And `off` means nowhere.
    let dir2 = tempfile::tempdir().unwrap();
    let server = Server::start(dir2.path(), &["--metrics-bind", "off"], None).await;
    assert_eq!(http(server.addr, HONEST, get).await.0, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_origin_header_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--allowed-origin", "https://chat.example.org"];
    let server = Server::start(dir.path(), &args, None).await;
    let upgrade = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let allowed = format!("{upgrade}Origin: https://chat.example.org\r\n");
    let status_of = |head: String| {
        let addr = server.addr;
        async move {
            let mut tcp = tcp_from(addr, HONEST).await.expect("connect");
            tcp.write_all(format!("{head}\r\n").as_bytes())
                .await
                .expect("send");
            let mut answer = [0u8; 12];
            tcp.read_exact(&mut answer).await.expect("status line");
            String::from_utf8_lossy(&answer[9..12])
                .parse::<u16>()
                .expect("status")
        }
    };
    assert_eq!(status_of(allowed.clone()).await, 101);
    assert_eq!(
        status_of(format!("{allowed}Origin: https://evil.example\r\n")).await,
        403,
        "a second, foreign Origin is refused"
    );
    assert_eq!(
        status_of(format!(
            "{upgrade}Origin: https://evil.example\r\nOrigin: https://chat.example.org\r\n"
        ))
        .await,
        403
    );
    server.stop().await;
}

/// A supervisor (or a script) may stop the server the moment it has said where it listens:
/// the stop is graceful every time (a clean exit, storage flushed), never the signal's default
/// kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_right_after_start_is_graceful() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..30 {
        let server = Server::start(dir.path(), &[], None).await;
        server.stop().await;
    }
}

/// How many of `count` TCP connections to `addr`, opened at once, the kernel completes within
/// `within` (a completed one waits in the listen queue until the server accepts it).
async fn completed_at_once(addr: SocketAddr, count: usize, within: Duration) -> usize {
    let attempts: Vec<_> = (0..count)
        .map(|_| {
            tokio::spawn(async move {
                tokio::time::timeout(within, tcp_from(addr, HONEST))
                    .await
                    .ok()
                    .and_then(Result::ok)
            })
        })
        .collect();
    let mut completed = 0;
    for attempt in attempts {
        if attempt.await.expect("attempt").is_some() {
            completed += 1;
        }
    }
    completed
}

/// A room everyone reconnects to at once (after a restart) while the server is busy: the
/// kernel holds `--listen-backlog` connections for it to accept. With std's 128 a storm of
/// 400 overflowed it, and each dropped SYN cost its client a second or more (joining 10,000
/// people took 24 s instead of 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_storm_while_the_server_is_busy_waits_in_the_listen_queue_not_for_syn_retries()
{
    let storm = 400;
    let limits = ["--max-connections-per-address", "1000"];
    for (backlog, all_in) in [(None, true), (Some("128"), false)] {
        let data = tempfile::tempdir().expect("tempdir");
        let mut args = limits.to_vec();
        if let Some(backlog) = backlog {
            args.extend(["--listen-backlog", backlog]);
        }
        let server = Server::start(data.path(), &args, None).await;
        // Busy: it accepts nothing while stopped.
        let signal = |sig: &str| {
            let pid = server.pid().to_string();
            let status = std::process::Command::new("kill")
                .args([sig, pid.as_str()])
                .status()
                .expect("kill");
            assert!(status.success());
        };
        signal("-STOP");
        let completed = completed_at_once(server.addr, storm, Duration::from_millis(1500)).await;
        signal("-CONT");
        if all_in {
            assert_eq!(completed, storm, "every connection waits in the queue");
        } else {
            assert!(completed < storm / 2, "128 overflowed: {completed}");
        }
        // Awake, it serves them and anyone new.
        assert!(ws_from(server.addr, HONEST).await.is_some());
        server.stop().await;
    }
}
