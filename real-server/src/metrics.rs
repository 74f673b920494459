//! Counters for `GET /metrics`, in Prometheus' text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server's counters. Relaxed atomics: each is independent and read only for reporting.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections.
    pub connections: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Messages stored.
    pub messages_stored: AtomicU64,
    /// Frames queued to clients (a broadcast to N clients counts N).
    pub deliveries: AtomicU64,
    /// Connections closed because their outgoing queue was full.
    pub slow_closes: AtomicU64,
    /// Frames clients sent that were refused before reaching the room (binary, too large).
    pub rejected_frames: AtomicU64,
    /// Store batches written, and the total time they took.
    pub store_batches: AtomicU64,
    /// Microseconds spent writing batches.
    pub store_micros: AtomicU64,
    /// Batches that failed.
    pub store_failures: AtomicU64,
    /// TCP connections answered 503 at once (the room or the address was at its limit).
    pub refused_connections: AtomicU64,
    /// Refused connections closed without their 503 (too many refusals being answered).
    pub unanswered_refusals: AtomicU64,
    /// Connections closed for a protocol fault or for sending too many frames.
    pub fault_closes: AtomicU64,
}

impl Metrics {
    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Renders every counter.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        let store_seconds = (self.store_micros.load(Ordering::Relaxed) as f64 / 1e6).to_string();
        let rows = [
            (
                "cahat_connections",
                "gauge",
                "Open WebSocket connections.",
                get(&self.connections),
            ),
            (
                "cahat_connections_total",
                "counter",
                "Connections accepted.",
                get(&self.connections_total),
            ),
            (
                "cahat_messages_stored_total",
                "counter",
                "Messages stored.",
                get(&self.messages_stored),
            ),
            (
                "cahat_deliveries_total",
                "counter",
                "Frames queued to clients.",
                get(&self.deliveries),
            ),
            (
                "cahat_queue_drops_total",
                "counter",
                "Connections closed because their outgoing queue was full.",
                get(&self.slow_closes),
            ),
            (
                "cahat_rejected_frames_total",
                "counter",
                "Frames refused before reaching the room.",
                get(&self.rejected_frames),
            ),
            (
                "cahat_refused_connections_total",
                "counter",
                "Connections refused at the door (room or address at its connection limit).",
                get(&self.refused_connections),
            ),
            (
                "cahat_unanswered_refusals_total",
                "counter",
                "Refused connections closed without an answer (too many refusals in flight).",
                get(&self.unanswered_refusals),
            ),
            (
                "cahat_fault_closes_total",
                "counter",
                "Connections closed for a protocol fault or too many frames.",
                get(&self.fault_closes),
            ),
            (
                "cahat_store_batches_total",
                "counter",
                "Store batches written (group commits).",
                get(&self.store_batches),
            ),
            (
                "cahat_store_failures_total",
                "counter",
                "Store batches that failed.",
                get(&self.store_failures),
            ),
            (
                "cahat_store_seconds_total",
                "counter",
                "Time spent writing store batches.",
                store_seconds,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}
