//! One client connection: a reader and a writer half around the room driver.
//!
//! The reader forwards text frames to the room, answers protocol-level faults itself (binary
//! frames; oversized frames, invalid UTF-8 and protocol violations close with 1009, 1007 and
//! 1002), spends every frame (pings included) from a token bucket and closes a client over it
//! (1008), and closes an idle client. The writer sends what the room queued,
//! coalescing whatever is waiting into one flush, pings on a timer, and sends the close frame
//! when the room or the reader asks for one. When either half ends, the other is stopped and
//! the room is told the connection is gone.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use protocol::{ConnectionId, ErrorCode, ServerAction};
use tokio::sync::mpsc;
use tracing::debug;

use crate::driver::{CloseReason, CloseSignal, ConnectionHandle, Inbox, Input, Outbox};
use crate::metrics::Metrics;

/// At most this many queued frames are written between two flushes.
const COALESCE_FRAMES: usize = 64;

/// What a connection needs from the server.
#[derive(Debug)]
pub struct ConnectionContext {
    /// The room driver's input.
    pub inputs: mpsc::Sender<Input>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Outgoing queue bound, in frames.
    pub queue_frames: usize,
    /// Outgoing queue bound, in bytes.
    pub queue_bytes: usize,
    /// Frames a client may send in a burst.
    pub frame_burst: u32,
    /// Frames a client may send per second, sustained.
    pub frames_per_second: u32,
    /// Ping period.
    pub ping_interval: Duration,
    /// Close after this long without a frame from the client.
    pub idle_timeout: Duration,
    /// Source of connection ids.
    pub next_id: AtomicU64,
}

/// Decrements the open-connections gauge however the connection ends.
struct OpenGuard(Arc<Metrics>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one client until it or the server ends the session.
pub async fn serve<Si, St, E>(
    sink: Si,
    stream: St,
    ctx: Arc<ConnectionContext>,
    peer: Option<IpAddr>,
) where
    Si: Sink<Message, Error = E> + Unpin,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let conn = ConnectionId(ctx.next_id.fetch_add(1, Ordering::Relaxed));
    ctx.metrics.connections.fetch_add(1, Ordering::Relaxed);
    Metrics::add(&ctx.metrics.connections_total, 1);
    let _open = OpenGuard(Arc::clone(&ctx.metrics));

    let (outbox, inbox) = Outbox::channel(ctx.queue_frames, ctx.queue_bytes);
    let close = Arc::new(CloseSignal::default());
    let handle = ConnectionHandle {
        outbox: outbox.clone(),
        close: Arc::clone(&close),
    };
    if ctx
        .inputs
        .send(Input::Connect { conn, handle, peer })
        .await
        .is_err()
    {
        debug!(conn = conn.0, "room stopped before the connection opened");
        return;
    }
    let writer = write_loop(sink, inbox, &close, ctx.ping_interval);
    let reader = read_loop(stream, conn, &ctx, outbox);
    tokio::pin!(writer, reader);
    tokio::select! {
        () = &mut writer => {}
        reason = &mut reader => {
            // Give the writer a moment to send what is queued and the close frame.
            if let Some(reason) = reason
                && close.close(reason)
                && tokio::time::timeout(Duration::from_secs(2), &mut writer).await.is_err()
            {
                debug!(conn = conn.0, "close frame not sent in time");
            }
        }
    }
    if ctx.inputs.send(Input::Disconnect { conn }).await.is_err() {
        debug!(conn = conn.0, "room already stopped");
    }
}

/// Reads until the client leaves or must be closed; returns the reason to close with, if the
/// server is the one closing.
async fn read_loop<St, E>(
    mut stream: St,
    conn: ConnectionId,
    ctx: &ConnectionContext,
    outbox: Outbox,
) -> Option<CloseReason>
where
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let refuse = |code: ErrorCode, message: &str| {
        Metrics::add(&ctx.metrics.rejected_frames, 1);
        let frame = Utf8Bytes::from(ServerAction::error(code, message).to_json());
        if outbox.offer(frame).is_err() {
            debug!(conn = conn.0, "outbox full; error not queued");
        }
    };
    let started = Instant::now();
    let mut budget = protocol::room::TokenBucket::new(ctx.frame_burst, ctx.frames_per_second, 0);
    loop {
        let message = match tokio::time::timeout(ctx.idle_timeout, stream.next()).await {
            Err(_) => return Some(CloseReason::IDLE),
            Ok(None) => return None,
            Ok(Some(Err(err))) => {
                let Some(reason) = fault_reason(&err) else {
                    debug!(conn = conn.0, error = %err, "read failed");
                    return None;
                };
                if reason == CloseReason::TOO_LARGE {
                    refuse(
                        ErrorCode::FrameTooLarge,
                        "frame larger than the server accepts",
                    );
                }
                Metrics::add(&ctx.metrics.fault_closes, 1);
                debug!(conn = conn.0, error = %err, "protocol fault");
                return Some(reason);
            }
            Ok(Some(Ok(message))) => message,
        };
        let now = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        if !budget.try_take(now) {
            Metrics::add(&ctx.metrics.fault_closes, 1);
            return Some(CloseReason::TOO_MANY_FRAMES);
        }
        match message {
            Message::Text(text) => {
                if ctx.inputs.send(Input::Frame { conn, text }).await.is_err() {
                    return None;
                }
            }
            Message::Binary(_) => refuse(ErrorCode::BinaryFrame, "send actions as text frames"),
            Message::Ping(_) | Message::Pong(_) => {}
            Message::Close(_) => return None,
        }
    }
}

/// The close a read error calls for when it is the client's fault (a frame over the size
/// limit, invalid UTF-8 in a text frame, a broken protocol rule); `None` for a lost connection.
fn fault_reason<E: std::error::Error + 'static>(err: &E) -> Option<CloseReason> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        match current.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => return Some(CloseReason::TOO_LARGE),
            Some(tungstenite::Error::Utf8(_)) => return Some(CloseReason::INVALID_UTF8),
            Some(tungstenite::Error::Protocol(problem)) => {
                use tungstenite::error::ProtocolError;
                // A peer that vanished without a close frame is a lost connection, not a fault.
                return match problem {
                    ProtocolError::ResetWithoutClosingHandshake
                    | ProtocolError::SendAfterClosing
                    | ProtocolError::ReceivedAfterClosing => None,
                    _ => Some(CloseReason::PROTOCOL),
                };
            }
            _ => {}
        }
        source = current.source();
    }
    None
}

enum Step {
    Wrote,
    Failed,
    Close(CloseReason),
    Ping,
}

async fn write_loop<Si, E>(
    mut sink: Si,
    mut outbox: Inbox,
    close: &CloseSignal,
    ping_interval: Duration,
) where
    Si: Sink<Message, Error = E> + Unpin,
{
    let mut ping = tokio::time::interval(ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        let step = tokio::select! {
            biased;
            reason = close.requested() => Step::Close(reason),
            frame = outbox.recv() => match frame {
                Some(frame) => match write_batch(&mut sink, &mut outbox, frame, close).await {
                    Ok(None) => Step::Wrote,
                    Ok(Some(reason)) => Step::Close(reason),
                    Err(()) => Step::Failed,
                },
                // Every sender of the queue is gone: the room has let this connection go.
                None => Step::Close(CloseReason::SHUTDOWN),
            },
            _ = ping.tick() => Step::Ping,
        };
        match step {
            Step::Wrote => {}
            Step::Failed => return,
            Step::Ping => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            Step::Close(reason) => {
                send_close(&mut sink, &mut outbox, reason).await;
                return;
            }
        }
    }
}

/// Writes `first` and whatever else is queued (up to [`COALESCE_FRAMES`]) with one flush.
/// A close request interrupts a write that the client is too slow to take.
async fn write_batch<Si, E>(
    sink: &mut Si,
    outbox: &mut Inbox,
    first: Utf8Bytes,
    close: &CloseSignal,
) -> Result<Option<CloseReason>, ()>
where
    Si: Sink<Message, Error = E> + Unpin,
{
    let write = async {
        sink.feed(Message::Text(first)).await?;
        for _ in 1..COALESCE_FRAMES {
            match outbox.try_recv() {
                Some(frame) => sink.feed(Message::Text(frame)).await?,
                None => break,
            }
        }
        sink.flush().await
    };
    tokio::select! {
        result = write => result.map(|()| None).map_err(|_| ()),
        reason = close.requested() => Ok(Some(reason)),
    }
}

async fn send_close<Si, E>(sink: &mut Si, outbox: &mut Inbox, reason: CloseReason)
where
    Si: Sink<Message, Error = E> + Unpin,
{
    let frame = Message::Close(Some(CloseFrame {
        code: reason.code,
        reason: match reason.reason {
            std::borrow::Cow::Borrowed(text) => Utf8Bytes::from_static(text),
            std::borrow::Cow::Owned(text) => Utf8Bytes::from(text),
        },
    }));
    let finish = async {
        if reason.drain {
            while let Some(queued) = outbox.try_recv() {
                sink.feed(Message::Text(queued)).await?;
            }
        }
        sink.send(frame).await
    };
    if tokio::time::timeout(Duration::from_secs(2), finish)
        .await
        .is_err()
    {
        debug!("client did not take the close frame in time");
    }
}
