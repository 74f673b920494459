//! `loadgen`: drives one chat room with N WebSocket connections, M of which send MESSAGE
//! actions at a fixed total rate for a fixed time. Every message carries its sender, a
//! sequence number and its send time; every connection records what it receives. The report
//! gives deliveries per second, delivery latency (p50, p99, max), and missing and duplicated
//! deliveries. Bounded in connections and time, and it only connects to 127.0.0.1.
//!
//! `--server-pid` adds the server's CPU time per delivery and its resident memory (from
//! /proc), sampled around the measured window.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

#[derive(Debug, Parser)]
struct Args {
    /// Room server port on 127.0.0.1 (not with --calibrate).
    #[arg(long, required_unless_present = "calibrate")]
    port: Option<u16>,
    /// Connections to open (at most 20000).
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// How many of them send.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of sending (at most 120).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of sending at the same rate before measuring (not counted): warms up a JIT,
    /// caches and connection buffers.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Identify the sending connections with HANDSHAKE_USER_INFO first (a CAHAT room accepts
    /// messages only from identified connections). Receivers stay unidentified: they get every
    /// broadcast, and the room does not announce each of them to everyone. The baseline needs
    /// no identification.
    #[arg(long)]
    identify: bool,
    /// Another node of the same room (a cluster, `--nats-url`) on this port (repeatable):
    /// connections take the nodes in turn, `--port` first, senders too.
    #[arg(long)]
    also_port: Vec<u16>,
    /// Server process id, for CPU and memory figures; repeat it for every process of a cluster
    /// (CPU is summed, and also reported per process; memory is the first one's).
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Only open the connections, measure memory, and close (no messages).
    #[arg(long)]
    idle: bool,
    /// Only open (and, with --identify, identify) the connections, wait until the room is
    /// quiet, and report how long joining took and how many frames it cost each connection
    /// (no messages).
    #[arg(long)]
    join: bool,
    /// Calibration: no room server. A trivial broadcast server in this process (its own
    /// thread: run with two cores) sends `--rate` messages/s to every connection, each message
    /// framed once and the same bytes written to every socket; the report shows what this load
    /// generator can take, with the CPU of its one thread. `--port` is ignored.
    #[arg(long)]
    calibrate: bool,
    /// Seconds to keep every connection open after the report (to look at the server as it
    /// is then: a heap profile, its allocator's statistics).
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
}

/// Received-message bookkeeping of one connection.
struct Tally {
    /// Per sender, which of its messages arrived (index = message number).
    seen: Vec<Vec<bool>>,
    latencies_us: Vec<u32>,
    duplicates: u64,
    /// Text frames received, of any kind.
    frames: u64,
    /// The server closed the connection (or it broke).
    closed: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.connections > 20_000 {
        bail!("--connections must be 1 to 20000");
    }
    if args.senders > args.connections || args.seconds <= 0.0 || args.seconds > 120.0 {
        bail!("--senders must be at most --connections, --seconds in (0, 120]");
    }
    let start = Instant::now();
    let (go, calibration, addr) = if args.calibrate {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let (go, wait) = tokio::sync::oneshot::channel();
        let server = calibration_server(
            listener,
            args.connections,
            args.senders.max(1),
            args.rate,
            args.seconds,
            start,
            wait,
        );
        (Some(go), Some(server), addr)
    } else {
        let port = args.port.context("--port")?;
        (None, None, SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let identify = args.identify && !args.calibrate;
    if args.join {
        return join(addr, &args, identify, start).await;
    }

    let rss_before = args.server_pid.first().copied().map(rss_kib);
    let nodes: Vec<SocketAddr> = std::iter::once(addr)
        .chain(
            args.also_port
                .iter()
                .map(|port| SocketAddr::from(([127, 0, 0, 1], *port))),
        )
        .collect();
    // Connection i's node: the nodes in turn.
    let node_of = |i: usize| nodes[i % nodes.len()];
    // Connect in waves so the accept backlog is never the limit.
    let mut sockets = Vec::with_capacity(args.connections);
    for chunk_start in (0..args.connections).step_by(200) {
        let chunk_end = (chunk_start + 200).min(args.connections);
        let opened = futures_util::future::try_join_all(
            (chunk_start..chunk_end).map(|i| open(node_of(i), identify && i < args.senders)),
        )
        .await?;
        sockets.extend(opened);
    }
    let connect_time = start.elapsed();
    if args.idle {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let (Some(&pid), Some(before)) = (args.server_pid.first(), rss_before) {
            let after = rss_kib(pid);
            let per = (after.saturating_sub(before) as f64 * 1024.0) / args.connections as f64;
            println!(
                "idle connections={} server_rss_before_kib={before} server_rss_after_kib={after} bytes_per_connection={per:.0}",
                args.connections
            );
        }
        return Ok(());
    }

    let senders = args.senders;
    let per_sender_total = ((args.rate * args.seconds) / senders.max(1) as f64).ceil() as usize;
    // Microseconds since `start` of the last frame any connection received.
    let last_frame = Arc::new(AtomicU64::new(0));
    let mut tallies = Vec::new();
    let mut writers = Vec::new();
    for (index, raw) in sockets.into_iter().enumerate() {
        if index < senders && !args.calibrate {
            writers.push((index, Arc::clone(&raw.write)));
        }
        let seen = vec![vec![false; per_sender_total]; senders];
        tallies.push(start_reading(raw, seen, start, &last_frame));
    }
    // Settle: the room may still be delivering what the connections caused (a CAHAT room tells
    // everyone about each new user). Measure only once nothing has arrived for 500 ms.
    let settle_time = settle(start, &last_frame).await;
    let interval = Duration::from_secs_f64(senders as f64 / args.rate);
    if args.warmup > 0.0 && !args.calibrate {
        let per_sender = ((args.rate * args.warmup) / senders.max(1) as f64).ceil() as usize;
        let mut warming = Vec::new();
        for (index, write) in &writers {
            let offset = interval.mul_f64(*index as f64 / senders as f64);
            warming.push(tokio::spawn(send(
                Arc::clone(write),
                *index,
                per_sender,
                interval,
                offset,
                start,
                "lw",
            )));
        }
        for handle in warming {
            handle.await.context("warm-up sender")??;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cpu_before: Vec<u64> = args.server_pid.iter().copied().map(cpu_ticks).collect();
    let own_before = own_cpu_ticks();
    let window = Instant::now();
    let mut sent = 0usize;
    if let (Some(go), Some(server)) = (go, calibration) {
        let _ = go.send(());
        let per_sender = tokio::task::spawn_blocking(move || server.join())
            .await
            .context("calibration server")?
            .map_err(|_| anyhow::anyhow!("the calibration server panicked"))??;
        sent = per_sender * senders.max(1);
    } else {
        let mut sends = Vec::new();
        for (index, write) in writers {
            // Stagger senders across one interval so the total rate is smooth.
            let offset = interval.mul_f64(index as f64 / senders as f64);
            sends.push(tokio::spawn(send(
                write,
                index,
                per_sender_total,
                interval,
                offset,
                start,
                "lg",
            )));
        }
        for handle in sends {
            sent += handle.await.context("sender task")??;
        }
    }
    let send_time = window.elapsed();
    // Let in-flight deliveries arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_after: Vec<u64> = args.server_pid.iter().copied().map(cpu_ticks).collect();
    let own_after = own_cpu_ticks();

    let mut latencies: Vec<u32> = Vec::new();
    let (mut unique, mut duplicates, mut missing) = (0u64, 0u64, 0u64);
    let sent_per_sender = sent / senders.max(1);
    for tally in &tallies {
        let tally = tally.lock().unwrap_or_else(|p| p.into_inner());
        for seen in tally.seen.iter().take(senders) {
            let got = seen.iter().take(sent_per_sender).filter(|s| **s).count() as u64;
            unique += got;
            missing += sent_per_sender as u64 - got;
        }
        duplicates += tally.duplicates;
        latencies.extend_from_slice(&tally.latencies_us);
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() - 1) as f64 * p).round() as usize;
        f64::from(latencies[i]) / 1000.0
    };
    let seconds = send_time.as_secs_f64();
    let mut line = format!(
        "connections={} senders={} rate={} seconds={seconds:.2} sent={sent} deliveries={unique} deliveries_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} missing={missing} duplicates={duplicates} connect_s={:.2} settle_s={:.2}",
        args.connections,
        senders,
        args.rate,
        unique as f64 / seconds,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        connect_time.as_secs_f64(),
        settle_time.as_secs_f64()
    );
    // This load generator's own thread, over the window and the 2 s after it: near 100 % says
    // it, not the server, was the limit.
    let own_s = own_after.saturating_sub(own_before) as f64 / 100.0;
    line.push_str(&format!(
        " loadgen_cpu_s={own_s:.2} loadgen_cpu_us_per_delivery={:.3}",
        own_s * 1e6 / unique.max(1) as f64
    ));
    if !cpu_before.is_empty() {
        let ticks_per_s = 100.0; // Linux USER_HZ
        let each: Vec<f64> = cpu_before
            .iter()
            .zip(&cpu_after)
            .map(|(before, after)| after.saturating_sub(*before) as f64 / ticks_per_s * 1e6)
            .collect();
        let cpu_us: f64 = each.iter().sum();
        line.push_str(&format!(
            " server_cpu_s={:.2} server_cpu_us_per_delivery={:.3}",
            cpu_us / 1e6,
            cpu_us / unique.max(1) as f64
        ));
        if each.len() > 1 {
            let per: Vec<String> = each
                .iter()
                .map(|us| format!("{:.3}", us / unique.max(1) as f64))
                .collect();
            line.push_str(&format!(
                " server_cpu_us_per_delivery_by_process={}",
                per.join(",")
            ));
        }
    }
    // What the server holds per connection now that everyone joined and chatted (all still
    // connected): its resident memory over what it had before the first connection.
    if let (Some(&pid), Some(before)) = (args.server_pid.first(), rss_before) {
        let after = rss_kib(pid);
        let per = (after.saturating_sub(before) as f64 * 1024.0) / args.connections as f64;
        line.push_str(&format!(
            " server_rss_after_chat_kib={after} bytes_per_connection_after_chat={per:.0}"
        ));
    }
    println!("{line}");
    if args.hold > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(args.hold.min(600.0))).await;
    }
    Ok(())
}

/// One connection: the read half for its reader task, the write half shared by its sender (if
/// it sends) and the reader's pongs.
struct Raw {
    read: OwnedReadHalf,
    write: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
}

/// The key of every handshake (RFC 6455's example): the load generator proves nothing by it.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Opens a WebSocket by hand: the client's side of the upgrade, then frames are read and
/// written directly (a reader only scans frames for what it counts).
async fn open(addr: SocketAddr, identify: bool) -> anyhow::Result<Raw> {
    let mut tcp = TcpStream::connect(addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let head = read_head(&mut tcp).await?;
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!(
            "WebSocket handshake refused: {}",
            String::from_utf8_lossy(&head)
        );
    }
    let (read, write) = tcp.into_split();
    let raw = Raw {
        read,
        write: Arc::new(tokio::sync::Mutex::new(write)),
    };
    if identify {
        let frame = client_frame(0x1, br#"{"type":"HANDSHAKE_USER_INFO","payload":{}}"#);
        raw.write.lock().await.write_all(&frame).await?;
    }
    Ok(raw)
}

/// A connection's reader, started: what it counts goes into the returned tally (`seen`: per
/// sender, a flag per message expected).
fn start_reading(
    raw: Raw,
    seen: Vec<Vec<bool>>,
    start: Instant,
    last_frame: &Arc<AtomicU64>,
) -> Arc<Mutex<Tally>> {
    let tally = Arc::new(Mutex::new(Tally {
        seen,
        latencies_us: Vec::new(),
        duplicates: 0,
        frames: 0,
        closed: false,
    }));
    tokio::spawn(read(
        raw.read,
        raw.write,
        Arc::clone(&tally),
        start,
        Arc::clone(last_frame),
    ));
    tally
}

/// Waits until no connection has received anything for 500 ms (at most 120 s); how long that
/// took.
async fn settle(start: Instant, last_frame: &AtomicU64) -> Duration {
    let settle_start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let quiet_for = start.elapsed().as_micros() as u64 - last_frame.load(Ordering::Relaxed);
        if quiet_for > 500_000 || settle_start.elapsed() > Duration::from_secs(120) {
            return settle_start.elapsed();
        }
    }
}

/// `--join`: every connection reads from the moment it is open (a join storm must not be
/// slowed by a client that is not reading yet); once all are open, waits until the room has
/// been quiet for 500 ms, and reports when joining ended and what it cost each connection.
async fn join(addr: SocketAddr, args: &Args, identify: bool, start: Instant) -> anyhow::Result<()> {
    let last_frame = Arc::new(AtomicU64::new(0));
    let mut tallies = Vec::with_capacity(args.connections);
    for chunk_start in (0..args.connections).step_by(200) {
        let chunk_end = (chunk_start + 200).min(args.connections);
        let opened = futures_util::future::try_join_all(
            (chunk_start..chunk_end).map(|i| open(addr, identify && i < args.senders)),
        )
        .await?;
        for raw in opened {
            tallies.push(start_reading(raw, Vec::new(), start, &last_frame));
        }
    }
    let connect_time = start.elapsed();
    settle(start, &last_frame).await;
    // The last frame ended the joining (or the connecting did, when it came later).
    let last = Duration::from_micros(last_frame.load(Ordering::Relaxed)).max(connect_time);
    let (mut frames, mut closed) = (0u64, 0u64);
    for tally in &tallies {
        let tally = tally.lock().unwrap_or_else(|p| p.into_inner());
        frames += tally.frames;
        closed += u64::from(tally.closed);
    }
    println!(
        "join connections={} identified={} connect_s={:.2} joined_s={:.2} frames={frames} frames_per_connection={:.1} closed={closed}",
        args.connections,
        if identify { args.senders } else { 0 },
        connect_time.as_secs_f64(),
        last.as_secs_f64(),
        frames as f64 / args.connections as f64,
    );
    Ok(())
}

/// An HTTP head, up to its blank line (read a byte at a time: nothing after it is taken).
async fn read_head(tcp: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.context("HTTP head")?;
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            bail!("HTTP head too long");
        }
    }
    Ok(head)
}

/// A client frame: masked, as the protocol requires (with a zero key: XOR leaves the payload
/// as it is, and the server unmasks it all the same).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    push_length(&mut frame, 0x80, payload.len());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// A server frame (unmasked): what the calibration server writes.
fn server_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    push_length(out, 0, payload.len());
    out.extend_from_slice(payload);
}

fn push_length(frame: &mut Vec<u8>, mask_bit: u8, len: usize) {
    if len < 126 {
        frame.push(mask_bit | len as u8);
    } else if len <= usize::from(u16::MAX) {
        frame.push(mask_bit | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(mask_bit | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Sends `count` messages tagged `tag` ("lg" counted, "lw" warm-up) at one per `interval`.
async fn send(
    write: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    sender: usize,
    count: usize,
    interval: Duration,
    offset: Duration,
    start: Instant,
    tag: &'static str,
) -> anyhow::Result<usize> {
    tokio::time::sleep(offset).await;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..count {
        ticker.tick().await;
        let sent_us = start.elapsed().as_micros();
        let text = format!(
            r#"{{"type":"MESSAGE","payload":{{"rawMessage":"{tag} {sender} {n} {sent_us}"}}}}"#
        );
        let frame = client_frame(0x1, text.as_bytes());
        write.lock().await.write_all(&frame).await.context("send")?;
    }
    Ok(count)
}

/// What a message counted carries in its text: `"rawMessage":"lg SENDER N MICROS`.
const COUNTED: &[u8] = b"\"rawMessage\":\"lg ";

/// Reads frames and counts what it must: for each text frame, only the counted message's
/// sender, number and send time are looked at (no JSON parsing); pings are answered.
async fn read(
    mut raw: OwnedReadHalf,
    write: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    tally: Arc<Mutex<Tally>>,
    start: Instant,
    last_frame: Arc<AtomicU64>,
) {
    let finder = memchr::memmem::Finder::new(COUNTED);
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut chunk = vec![0u8; 128 * 1024];
    let mut pongs: Vec<Vec<u8>> = Vec::new();
    loop {
        let n = match raw.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                tally.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
                return;
            }
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let now = start.elapsed().as_micros();
        last_frame.store(now as u64, Ordering::Relaxed);
        let mut at = 0;
        {
            let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
            while let Some((opcode, payload, next)) = next_frame(&buf, at) {
                match opcode {
                    0x0 | 0x1 => {
                        tally.frames += 1;
                        if let Some(found) = finder.find(payload) {
                            count(&mut tally, &payload[found + COUNTED.len()..], now);
                        }
                    }
                    0x8 => {
                        tally.closed = true;
                        return;
                    }
                    0x9 => pongs.push(client_frame(0xA, payload)),
                    _ => {}
                }
                at = next;
            }
        }
        buf.drain(..at);
        for pong in pongs.drain(..) {
            if write.lock().await.write_all(&pong).await.is_err() {
                return;
            }
        }
    }
}

/// The frame starting at `at` in `buf`, if it is all there: opcode, payload, where the next
/// starts. Server frames are unmasked; a masked one is skipped over all the same.
fn next_frame(buf: &[u8], at: usize) -> Option<(u8, &[u8], usize)> {
    let head = buf.get(at..at + 2)?;
    let (opcode, masked) = (head[0] & 0x0f, head[1] & 0x80 != 0);
    let (len, mut header) = match head[1] & 0x7f {
        126 => {
            let b = buf.get(at + 2..at + 4)?;
            (usize::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let b: [u8; 8] = buf.get(at + 2..at + 10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(b)).ok()?, 10)
        }
        short => (usize::from(short), 2),
    };
    if masked {
        header += 4;
    }
    let payload = buf.get(at + header..at + header + len)?;
    Some((opcode, payload, at + header + len))
}

/// Counts one message by the text after `lg `: `SENDER N MICROS`.
fn count(tally: &mut Tally, text: &[u8], now: u128) {
    let mut fields = [0u128; 3];
    let mut i = 0;
    for (k, field) in fields.iter_mut().enumerate() {
        let from = i;
        while let Some(d) = text.get(i).filter(|c| c.is_ascii_digit()) {
            *field = *field * 10 + u128::from(d - b'0');
            i += 1;
        }
        if i == from || (k < 2 && text.get(i) != Some(&b' ')) {
            return;
        }
        i += 1;
    }
    let [s, n, t] = fields;
    let (Ok(s), Ok(n)) = (usize::try_from(s), usize::try_from(n)) else {
        return;
    };
    if let Some(slot) = tally.seen.get_mut(s).and_then(|v| v.get_mut(n)) {
        if *slot {
            tally.duplicates += 1;
        } else {
            *slot = true;
            let latency = now.saturating_sub(t).min(u128::from(u32::MAX));
            tally
                .latencies_us
                .push(u32::try_from(latency).unwrap_or(u32::MAX));
        }
    }
}

/// The calibration server: accepts `connections` WebSockets, then (once `go` says so) sends
/// `rate` messages/s for `seconds` to all of them, tagged as the senders' would be, each
/// message framed once and the batch of a tick written as the same bytes to every socket.
/// Returns how many messages it sent per sender.
fn calibration_server(
    listener: std::net::TcpListener,
    connections: usize,
    senders: usize,
    rate: f64,
    seconds: f64,
    start: Instant,
    go: tokio::sync::oneshot::Receiver<()>,
) -> std::thread::JoinHandle<anyhow::Result<usize>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let mut sockets = Vec::with_capacity(connections);
            while sockets.len() < connections {
                let (mut tcp, _) = listener.accept().await?;
                tcp.set_nodelay(true)?;
                let head = read_head(&mut tcp).await?;
                let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(
                    KEY.as_bytes(),
                );
                if !String::from_utf8_lossy(&head).contains(KEY) {
                    bail!("a handshake with another key");
                }
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                tcp.write_all(answer.as_bytes()).await?;
                sockets.push(tcp);
            }
            let _ = go.await;
            let total = (rate * seconds) as usize;
            let per_sender = total / senders.max(1);
            let total = per_sender * senders.max(1);
            let began = Instant::now();
            let mut sent = 0usize;
            let mut batch = Vec::new();
            let mut ticker = tokio::time::interval(Duration::from_millis(1));
            while sent < total {
                ticker.tick().await;
                let due = ((began.elapsed().as_secs_f64() * rate) as usize).min(total);
                batch.clear();
                let now = start.elapsed().as_micros();
                while sent < due {
                    let (s, n) = (sent % senders.max(1), sent / senders.max(1));
                    let text = format!(
                        r#"{{"type":"MESSAGE","payload":{{"rawMessage":"lg {s} {n} {now}"}}}}"#
                    );
                    server_frame(&mut batch, text.as_bytes());
                    sent += 1;
                }
                if batch.is_empty() {
                    continue;
                }
                for socket in &mut sockets {
                    socket.write_all(&batch).await?;
                }
            }
            Ok(per_sender)
        })
    })
}

/// utime + stime of this process's main thread (the load generator's runtime), in ticks.
fn own_cpu_ticks() -> u64 {
    cpu_ticks_of(&format!("/proc/self/task/{}/stat", std::process::id()))
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    cpu_ticks_of(&format!("/proc/{pid}/stat"))
}

fn cpu_ticks_of(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
