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
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
struct Args {
    /// Room server port on 127.0.0.1.
    #[arg(long)]
    port: u16,
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
    /// Server process id, for CPU and memory figures.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Only open the connections, measure memory, and close (no messages).
    #[arg(long)]
    idle: bool,
}

/// Received-message bookkeeping of one connection.
struct Tally {
    /// Per sender, which of its messages arrived (index = message number).
    seen: Vec<Vec<bool>>,
    latencies_us: Vec<u32>,
    duplicates: u64,
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
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let start = Instant::now();

    let rss_before = args.server_pid.map(rss_kib);
    // Connect in waves so the accept backlog is never the limit.
    let mut sockets = Vec::with_capacity(args.connections);
    for chunk_start in (0..args.connections).step_by(200) {
        let chunk_end = (chunk_start + 200).min(args.connections);
        let opened = futures_util::future::try_join_all(
            (chunk_start..chunk_end).map(|i| open(addr, args.identify && i < args.senders)),
        )
        .await?;
        sockets.extend(opened);
    }
    let connect_time = start.elapsed();
    if args.idle {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let (Some(pid), Some(before)) = (args.server_pid, rss_before) {
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
    for (index, ws) in sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let tally = Arc::new(Mutex::new(Tally {
            seen: vec![vec![false; per_sender_total]; senders],
            latencies_us: Vec::new(),
            duplicates: 0,
        }));
        tokio::spawn(read(
            stream,
            Arc::clone(&tally),
            start,
            Arc::clone(&last_frame),
        ));
        tallies.push(tally);
        if index < senders {
            writers.push((index, sink));
        }
    }
    // Settle: the room may still be delivering what the connections caused (a CAHAT room tells
    // everyone about each new user). Measure only once nothing has arrived for 500 ms.
    let settle_start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let quiet_for = start.elapsed().as_micros() as u64 - last_frame.load(Ordering::Relaxed);
        if quiet_for > 500_000 || settle_start.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let settle_time = settle_start.elapsed();
    let interval = Duration::from_secs_f64(senders as f64 / args.rate);
    if args.warmup > 0.0 {
        let per_sender = ((args.rate * args.warmup) / senders.max(1) as f64).ceil() as usize;
        let mut warming = Vec::new();
        for (index, sink) in writers {
            let offset = interval.mul_f64(index as f64 / senders as f64);
            warming.push(tokio::spawn(send(
                sink, index, per_sender, interval, offset, start, "lw",
            )));
        }
        writers = Vec::new();
        for handle in warming {
            let (index, sink, _) = handle.await.context("warm-up sender")??;
            writers.push((index, sink));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cpu_before = args.server_pid.map(cpu_ticks);
    let window = Instant::now();
    let mut sends = Vec::new();
    for (index, sink) in writers {
        // Stagger senders across one interval so the total rate is smooth.
        let offset = interval.mul_f64(index as f64 / senders as f64);
        sends.push(tokio::spawn(send(
            sink,
            index,
            per_sender_total,
            interval,
            offset,
            start,
            "lg",
        )));
    }
    let mut sent = 0usize;
    for handle in sends {
        sent += handle.await.context("sender task")??.2;
    }
    let send_time = window.elapsed();
    // Let in-flight deliveries arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_after = args.server_pid.map(cpu_ticks);

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
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let ticks_per_s = 100.0; // Linux USER_HZ
        let cpu_us = (after.saturating_sub(before)) as f64 / ticks_per_s * 1e6;
        line.push_str(&format!(
            " server_cpu_s={:.2} server_cpu_us_per_delivery={:.3}",
            cpu_us / 1e6,
            cpu_us / unique.max(1) as f64
        ));
    }
    println!("{line}");
    Ok(())
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn open(addr: SocketAddr, identify: bool) -> anyhow::Result<Ws> {
    let tcp = TcpStream::connect(addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .context("WebSocket handshake")?;
    if identify {
        ws.send(Message::text(
            r#"{"type":"HANDSHAKE_USER_INFO","payload":{}}"#,
        ))
        .await?;
    }
    Ok(ws)
}

/// Sends `count` messages tagged `tag` ("lg" counted, "lw" warm-up) at one per `interval`;
/// hands the sink back.
async fn send(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    sender: usize,
    count: usize,
    interval: Duration,
    offset: Duration,
    start: Instant,
    tag: &'static str,
) -> anyhow::Result<(usize, futures_util::stream::SplitSink<Ws, Message>, usize)> {
    tokio::time::sleep(offset).await;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..count {
        ticker.tick().await;
        let sent_us = start.elapsed().as_micros();
        let text = format!(
            r#"{{"type":"MESSAGE","payload":{{"rawMessage":"{tag} {sender} {n} {sent_us}"}}}}"#
        );
        sink.send(Message::text(text)).await.context("send")?;
    }
    Ok((sender, sink, count))
}

async fn read(
    mut stream: futures_util::stream::SplitStream<Ws>,
    tally: Arc<Mutex<Tally>>,
    start: Instant,
    last_frame: Arc<AtomicU64>,
) {
    // No timer per frame: the task simply ends with the process.
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let now = start.elapsed().as_micros();
        last_frame.store(now as u64, Ordering::Relaxed);
        let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
        // Only our own messages count: `"rawMessage":"lg SENDER N MICROS"`.
        let Some(at) = text.find("\"rawMessage\":\"lg ") else {
            continue;
        };
        let rest = &text[at + 17..];
        let Some(end) = rest.find('"') else { continue };
        let mut parts = rest[..end].split(' ');
        let (Some(s), Some(n), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(s), Ok(n), Ok(t)) = (s.parse::<usize>(), n.parse::<usize>(), t.parse::<u128>())
        else {
            continue;
        };
        let tally = &mut *tally;
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
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
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
