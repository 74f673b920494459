//! The room driver: the one task that owns the [`Room`] engine and carries out its effects.
//!
//! Connections send it [`Input`]s over a bounded channel (a full channel slows readers down,
//! which pushes back on clients through TCP). It never waits on a client: every frame goes into
//! the connection's bounded outbox with `try_send`, and a connection whose outbox is full is
//! closed (1008) and told to resume. Storage runs beside it as a group commit: while one batch
//! is being written, new messages collect in the next; a message is broadcast only after its
//! batch is durable.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use protocol::room::SearchTask;
use protocol::{
    ConnectionId, Effect, LogEvent, Millis, Room, Seq, ServerAction, StoredMessage, UserId,
};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::cluster::{LogInput, SharedLog};
use crate::metrics::Metrics;
use crate::store::{BatchError, Store, Write};

/// Why the server closes a connection: a WebSocket close code and a reason for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// WebSocket close code.
    pub code: u16,
    /// Sent in the close frame (at most 123 bytes).
    pub reason: std::borrow::Cow<'static, str>,
    /// Whether frames already queued should be sent first (not for a client that is too slow
    /// to take them).
    pub drain: bool,
}

impl CloseReason {
    /// The outgoing queue was full.
    pub const TOO_SLOW: Self = Self {
        code: 1008,
        reason: Cow::Borrowed("too slow: outgoing queue full; reconnect and resume with since"),
        drain: false,
    };
    /// The server is stopping.
    pub const SHUTDOWN: Self = Self {
        code: 1001,
        reason: Cow::Borrowed("server shutting down"),
        drain: true,
    };
    /// Nothing arrived for the idle timeout.
    pub const IDLE: Self = Self {
        code: 1000,
        reason: Cow::Borrowed("idle timeout"),
        drain: true,
    };
    /// A frame over the size limit.
    pub const TOO_LARGE: Self = Self {
        code: 1009,
        reason: Cow::Borrowed("frame too large"),
        drain: true,
    };
    /// A text frame that is not UTF-8.
    pub const INVALID_UTF8: Self = Self {
        code: 1007,
        reason: Cow::Borrowed("text frame is not valid UTF-8"),
        drain: true,
    };
    /// A broken WebSocket rule (reserved bits, an unmasked frame, a stray continuation ...).
    pub const PROTOCOL: Self = Self {
        code: 1002,
        reason: Cow::Borrowed("WebSocket protocol error"),
        drain: true,
    };
    /// More frames (pings included) than the connection's frame budget.
    pub const TOO_MANY_FRAMES: Self = Self {
        code: 1008,
        reason: Cow::Borrowed("too many frames; slow down"),
        drain: false,
    };
}

/// A one-shot "close with this reason" signal to a connection's writer. Lighter than a
/// channel (a channel allocates a block of slots up front, per connection), and the first
/// reason wins.
#[derive(Debug, Default)]
pub struct CloseSignal {
    reason: std::sync::Mutex<Option<CloseReason>>,
    notify: tokio::sync::Notify,
}

impl CloseSignal {
    /// Asks for a close; returns false when one was already asked for.
    pub fn close(&self, reason: CloseReason) -> bool {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return false;
        }
        *slot = Some(reason);
        drop(slot);
        self.notify.notify_one();
        true
    }

    /// Waits until a close is asked for; returns its reason.
    pub async fn requested(&self) -> CloseReason {
        loop {
            let notified = self.notify.notified();
            if let Some(reason) = self
                .reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                return reason;
            }
            notified.await;
        }
    }
}

/// A connection's outgoing queue, bounded in frames and in bytes. A queue of its own rather
/// than a channel: a channel allocates a block of slots when it is made (about 1 KiB a
/// connection, idle or not), this one holds nothing while nothing waits. The room's task
/// offers (never waits); the connection's writer takes.
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: std::sync::Mutex<Queue>,
    /// Outboxes alive: when none is left, the room has let the connection go.
    senders: AtomicUsize,
    /// Wakes the writer (a frame, or the last outbox gone).
    ready: tokio::sync::Notify,
    max_frames: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Queue {
    frames: std::collections::VecDeque<Utf8Bytes>,
    /// Bytes of the frames queued.
    bytes: usize,
    /// The writer is gone: nothing more is taken.
    closed: bool,
    /// Frames were queued without waking the writer (the room is busy: see
    /// [`Driver::with_write_delay`]); it is woken with the room's next flush.
    unwoken: bool,
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferError {
    /// The queue is at its bound in frames or bytes: the client is too slow.
    Full,
    /// The connection is gone.
    Closed,
}

/// The writer's end of an [`Outbox`].
#[derive(Debug)]
pub struct Inbox {
    shared: Arc<Shared>,
}

/// A queue that grew in a burst keeps at most this many slots once it is empty again.
const KEEP_SLOTS: usize = 16;

impl Inbox {
    /// The next frame, waiting for one; `None` once every outbox is gone.
    pub async fn recv(&mut self) -> Option<Utf8Bytes> {
        loop {
            if let Some(frame) = self.try_recv() {
                return Some(frame);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                return None;
            }
            // A frame offered since the check left a permit: this returns at once.
            self.shared.ready.notified().await;
        }
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Option<Utf8Bytes> {
        let mut queue = self.shared.queue();
        let frame = queue.frames.pop_front()?;
        queue.bytes -= frame.len();
        if queue.frames.is_empty() && queue.frames.capacity() > KEEP_SLOTS {
            queue.frames.shrink_to(KEEP_SLOTS);
        }
        Some(frame)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut queue = self.shared.queue();
        queue.closed = true;
        queue.frames = std::collections::VecDeque::new();
        queue.bytes = 0;
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.notify_one();
        }
    }
}

impl Outbox {
    /// A queue of at most `max_frames` frames and `max_bytes` bytes (a single frame larger
    /// than that is still taken into an empty queue, or it could never be sent), and the
    /// writer's end of it.
    pub fn channel(max_frames: usize, max_bytes: usize) -> (Self, Inbox) {
        let shared = Arc::new(Shared {
            queue: std::sync::Mutex::new(Queue::default()),
            senders: AtomicUsize::new(1),
            ready: tokio::sync::Notify::new(),
            max_frames: max_frames.max(1),
            max_bytes,
        });
        let inbox = Inbox {
            shared: Arc::clone(&shared),
        };
        (Self { shared }, inbox)
    }

    /// Queues `frame` without waiting, and wakes the writer.
    pub fn offer(&self, frame: Utf8Bytes) -> Result<(), OfferError> {
        self.queue(frame, false)?;
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Queues `frame` without waiting and without waking the writer (until [`Self::wake`]);
    /// says whether the writer had been woken for everything queued before.
    pub fn offer_quietly(&self, frame: Utf8Bytes) -> Result<bool, OfferError> {
        self.queue(frame, true)
    }

    /// Wakes the writer for what was queued quietly.
    pub fn wake(&self) {
        self.shared.queue().unwoken = false;
        self.shared.ready.notify_one();
    }

    fn queue(&self, frame: Utf8Bytes, quietly: bool) -> Result<bool, OfferError> {
        let len = frame.len();
        let mut queue = self.shared.queue();
        if queue.closed {
            return Err(OfferError::Closed);
        }
        if queue.frames.len() >= self.shared.max_frames
            || (queue.bytes > 0 && queue.bytes.saturating_add(len) > self.shared.max_bytes)
        {
            return Err(OfferError::Full);
        }
        queue.frames.push_back(frame);
        queue.bytes += len;
        let first_unwoken = quietly && !queue.unwoken;
        queue.unwoken |= quietly;
        Ok(first_unwoken)
    }
}

/// How the driver reaches one connection.
#[derive(Debug)]
pub struct ConnectionHandle {
    /// Frames to send, already serialised (a broadcast's bytes are shared, not copied).
    pub outbox: Outbox,
    /// Asks the connection's writer to close with a reason.
    pub close: std::sync::Arc<CloseSignal>,
}

/// What the driver reacts to.
#[derive(Debug)]
pub enum Input {
    /// A connection opened.
    Connect {
        /// Its id.
        conn: ConnectionId,
        /// Its queues.
        handle: ConnectionHandle,
        /// The peer's network address, when known (new identities are limited per address).
        peer: Option<IpAddr>,
    },
    /// A text frame arrived.
    Frame {
        /// From whom.
        conn: ConnectionId,
        /// The frame.
        text: Utf8Bytes,
    },
    /// A connection closed.
    Disconnect {
        /// Which.
        conn: ConnectionId,
    },
}

/// Completions of work the driver started (storage), on their own channel so that the
/// driver holding a sender to it does not keep the connection channel open.
#[derive(Debug)]
enum Done {
    Batch {
        /// The seq of each write of the batch, `None` for users.
        seqs: Vec<Option<Seq>>,
        result: Result<(), BatchError>,
        elapsed: Duration,
    },
    History {
        conn: ConnectionId,
        before: Seq,
        with: Option<UserId>,
        result: crate::store::Result<(Vec<StoredMessage>, bool)>,
    },
    Conversations {
        conn: ConnectionId,
        result: crate::store::Result<Vec<protocol::DirectConversation>>,
    },
    Search {
        task: SearchTask,
        result: crate::store::Result<protocol::search::SearchPage>,
    },
}

/// Where the room's events are numbered (see the engine's contract: the host's log).
#[derive(Debug)]
enum Log {
    /// This process: one above the last seq. An event is stored, then answered.
    Local { last_seq: Seq },
    /// A cluster's shared stream ([`crate::cluster`]): an event is appended; every event of
    /// the stream comes back in order, is applied, then stored.
    Shared {
        log: SharedLog,
        logged: mpsc::Receiver<LogInput>,
        /// The engine's [`Room::online_here_version`] last told to the other nodes.
        told_online: Option<u64>,
    },
}

/// The driver's state. Built by [`Driver::new`], consumed by [`Driver::run`].
pub struct Driver<S: Store> {
    room: Room,
    room_id: Arc<str>,
    store: Arc<S>,
    metrics: Arc<Metrics>,
    connections: HashMap<ConnectionId, ConnectionHandle>,
    next_batch: Vec<Write>,
    writing: bool,
    /// In a cluster: the batch being written, kept to write again if it fails.
    in_flight: Vec<Write>,
    /// In a cluster: a failed write is tried again from then (nothing after it is written
    /// before it, so storage never has a hole below what it holds).
    retry_at: Option<tokio::time::Instant>,
    /// Where the room's events are numbered.
    log: Log,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    search_timeout: Duration,
    /// The least time between two wakes of a connection's writer while the room is busy
    /// (see [`Self::with_write_delay`]).
    write_delay: Duration,
    /// When the writers were last woken at once: until `write_delay` after it, frames are
    /// queued quietly and their connections listed in `unwoken`.
    woken_at: Option<tokio::time::Instant>,
    unwoken: Vec<ConnectionId>,
}

fn now() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
    })
}

impl<S: Store> Driver<S> {
    /// A driver for `room`, storing under `room_id`.
    pub fn new(room: Room, room_id: &str, store: Arc<S>, metrics: Arc<Metrics>) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            log: Log::Local {
                last_seq: room.latest_seq(),
            },
            room,
            room_id: Arc::from(room_id),
            store,
            metrics,
            connections: HashMap::new(),
            next_batch: Vec::new(),
            writing: false,
            in_flight: Vec::new(),
            retry_at: None,
            done_tx,
            done_rx,
            search_timeout: Duration::from_secs(2),
            write_delay: Duration::ZERO,
            woken_at: None,
            unwoken: Vec::new(),
        }
    }

    /// A node of a cluster: the room's events are numbered by its shared stream.
    #[must_use]
    pub fn with_shared_log(mut self, log: SharedLog, logged: mpsc::Receiver<LogInput>) -> Self {
        self.log = Log::Shared {
            log,
            logged,
            told_online: None,
        };
        self
    }

    /// How long a search may run in the store before it is stopped (2 s by default).
    #[must_use]
    pub fn with_search_timeout(mut self, timeout: Duration) -> Self {
        self.search_timeout = timeout;
        self
    }

    /// Coalesces writes while the room is busy: a frame queued less than `delay` after the
    /// writers were last woken waits in its outbox, unwoken, until that much time has passed;
    /// then every such writer is woken at once and takes all it has in one write. So a busy
    /// room costs one write (a system call, a trip through TCP) per connection per `delay`
    /// rather than one per message, and a message after a quiet moment still goes at once.
    /// Zero (the default here) wakes a writer for each frame.
    #[must_use]
    pub fn with_write_delay(mut self, delay: Duration) -> Self {
        self.write_delay = delay;
        self
    }

    /// Runs until `shutdown` completes or every input sender is gone; then closes every
    /// connection with 1001 and writes what is still pending to storage.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            // The room's own timer (a call that rings out), only while it has one.
            let wake = self.room.poll_timeout();
            let delay = wake.map_or(Duration::ZERO, |at| {
                Duration::from_millis(u64::try_from(at - now()).unwrap_or(0))
            });
            let wake_due = self.wake_due();
            tokio::select! {
                biased;
                Some(done) = self.done_rx.recv() => self.on_done(done),
                Some(logged) = next_logged(&mut self.log) => self.on_logged(logged),
                input = inputs.recv() => match input {
                    Some(input) => self.on_input(input),
                    None => break,
                },
                () = tokio::time::sleep(delay), if wake.is_some() => {
                    self.room.handle_timeout(now());
                }
                () = sleep_until(self.retry_at), if self.retry_at.is_some() => {
                    self.retry_at = None;
                }
                () = sleep_until(wake_due), if !self.unwoken.is_empty() => {
                    self.wake_unwoken();
                }
                () = &mut shutdown => break,
            }
            // Take whatever else is already waiting before starting a storage write, so that
            // a burst becomes one storage batch. Each input's effects are carried out at once:
            // answers are queued (or their client closed as too slow) before the next input
            // is read, so the room never holds more than one input's answers unsent.
            self.carry_out_effects();
            for _ in 0..256 {
                match inputs.try_recv() {
                    Ok(input) => {
                        self.on_input(input);
                        self.carry_out_effects();
                    }
                    Err(_) => break,
                }
            }
            self.tell_online();
            self.start_write();
            // A room whose inputs never run dry still wakes its writers on time (the select
            // above takes inputs first).
            if !self.unwoken.is_empty()
                && self
                    .wake_due()
                    .is_some_and(|due| due <= tokio::time::Instant::now())
            {
                self.wake_unwoken();
            }
        }
        info!(connections = self.connections.len(), "room stopping");
        for (_, handle) in self.connections.drain() {
            if !handle.close.close(CloseReason::SHUTDOWN) {
                debug!("connection already closing");
            }
        }
        // A store that keeps failing is tried a few times more; a cluster's stream still holds
        // what it could not write, and a node replays it from what storage holds.
        let mut attempts = 0;
        while (self.writing || !self.next_batch.is_empty()) && attempts < 5 {
            attempts += 1;
            self.retry_at = None;
            self.start_write();
            match self.done_rx.recv().await {
                Some(done) => self.on_done(done),
                None => break,
            }
            // Broadcasts of what was just stored go nowhere now; storage is what matters.
            while self.room.poll_effect().is_some() {}
        }
        info!("room stopped; storage flushed");
    }

    fn on_input(&mut self, input: Input) {
        let now = now();
        match input {
            Input::Connect { conn, handle, peer } => {
                self.connections.insert(conn, handle);
                self.room.handle_connect_from(now, conn, peer);
            }
            Input::Frame { conn, text } => self.room.handle_frame(now, conn, &text),
            Input::Disconnect { conn } => {
                if self.connections.remove(&conn).is_some() {
                    self.room.handle_disconnect(now, conn);
                }
            }
        }
    }

    fn on_done(&mut self, done: Done) {
        let now = now();
        match done {
            Done::Batch {
                seqs,
                result,
                elapsed,
            } => {
                self.writing = false;
                Metrics::add(&self.metrics.store_batches, 1);
                Metrics::add(
                    &self.metrics.store_micros,
                    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                );
                let written = match result {
                    Ok(()) => seqs.len(),
                    Err(err) => {
                        Metrics::add(&self.metrics.store_failures, 1);
                        error!(written = err.written, error = %err.source, "store batch failed");
                        err.written
                    }
                };
                let (stored, failed) = seqs.split_at(written.min(seqs.len()));
                let stored: Vec<Seq> = stored.iter().flatten().copied().collect();
                Metrics::add(&self.metrics.messages_stored, stored.len() as u64);
                if let Log::Shared { .. } = self.log {
                    // The stream holds the events already: storage is a copy. What failed is
                    // written again, in order, before anything after it.
                    let mut retry: Vec<Write> = std::mem::take(&mut self.in_flight)
                        .into_iter()
                        .skip(written)
                        .collect();
                    if !retry.is_empty() {
                        error!(
                            failed = retry.len(),
                            "storing the stream's events failed; again in 1 s"
                        );
                        retry.append(&mut self.next_batch);
                        self.next_batch = retry;
                        self.retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    }
                    return self.carry_out();
                }
                for &seq in &stored {
                    self.room.handle_persisted(now, seq);
                }
                for _ in failed.iter().flatten() {
                    self.room.handle_persist_failed(now);
                }
            }
            Done::History {
                conn,
                before,
                with,
                result,
            } => match result {
                Ok((messages, has_more)) => {
                    self.room
                        .handle_history_loaded(now, conn, (before, with), messages, has_more)
                }
                Err(err) => {
                    error!(error = %err, "loading history failed");
                    self.room.handle_history_failed(now, conn)
                }
            },
            Done::Conversations { conn, result } => match result {
                Ok(found) => self.room.handle_conversations_loaded(now, conn, found),
                // The person goes on with the conversations their client knows.
                Err(err) => error!(error = %err, "loading someone's conversations failed"),
            },
            Done::Search { task, result } => match result {
                Ok(page) => self
                    .room
                    .handle_search_done(now, task, page.messages, page.next),
                Err(err) => {
                    warn!(error = %err, "a search failed");
                    self.room.handle_search_failed(now, task)
                }
            },
        }
        self.carry_out();
    }

    /// Carries out every effect the engine has queued, and starts a storage write if one is
    /// due.
    fn carry_out(&mut self) {
        self.carry_out_effects();
        self.start_write();
    }

    /// Carries out every effect the engine has queued; writes wait in the next batch.
    fn carry_out_effects(&mut self) {
        while let Some(effect) = self.room.poll_effect() {
            match effect {
                Effect::Send { to, action } => {
                    let frame = Utf8Bytes::from(action.to_json());
                    self.deliver(to, frame);
                }
                Effect::Broadcast(action) => self.offer_each(&action, None),
                Effect::Multicast { to, action } => self.offer_each(&action, Some(&to)),
                // A kick: after what was queued for it (the reason), the connection closes;
                // its reader then reports it gone as for any close.
                Effect::Close { to, code, reason } => {
                    if let Some(handle) = self.connections.get(&to) {
                        handle.close.close(CloseReason {
                            code,
                            reason,
                            drain: true,
                        });
                    }
                }
                Effect::PersistMessage(mut message) => match &mut self.log {
                    Log::Shared { log, .. } => log.append(LogEvent::Message(message)),
                    Log::Local { last_seq } => {
                        message.seq = next_seq(last_seq);
                        self.next_batch.push(Write::Message(message));
                    }
                },
                Effect::PersistChange(mut change) => match &mut self.log {
                    Log::Shared { log, .. } => log.append(LogEvent::Change(change)),
                    Log::Local { last_seq } => {
                        change.seq = next_seq(last_seq);
                        self.next_batch.push(Write::Change(change));
                    }
                },
                Effect::PersistAudit(mut entry) => match &mut self.log {
                    Log::Shared { log, .. } => log.append(LogEvent::Audit(entry)),
                    Log::Local { last_seq } => {
                        entry.seq = next_seq(last_seq);
                        self.next_batch.push(Write::Audit(entry));
                    }
                },
                Effect::PersistUser(user) => match &self.log {
                    Log::Shared { log, .. } => log.append(LogEvent::User(user)),
                    Log::Local { .. } => self.next_batch.push(Write::User(user)),
                },
                Effect::PersistSettings { settings, by } => match &self.log {
                    Log::Shared { log, .. } => log.append(LogEvent::Settings { settings, by }),
                    Log::Local { .. } => self.next_batch.push(Write::Settings(settings)),
                },
                Effect::PersistRole { user_id, role, by } => match &self.log {
                    Log::Shared { log, .. } => log.append(LogEvent::Role { user_id, role, by }),
                    Log::Local { .. } => self.next_batch.push(Write::Role { user_id, role }),
                },
                Effect::Relay(signal) => {
                    if let Log::Shared { log, .. } = &self.log {
                        log.relay(signal);
                    }
                }
                Effect::LoadHistory {
                    to,
                    viewer,
                    with,
                    before,
                    limit,
                } => self.load_history(to, (viewer, with), before, limit),
                Effect::LoadConversations {
                    to,
                    viewer,
                    since,
                    limit,
                } => self.load_conversations(to, viewer, since, limit),
                Effect::Search(task) => self.search(task),
            }
        }
    }

    /// In a cluster: tells the other nodes who is online here, when that changed.
    fn tell_online(&mut self) {
        if let Log::Shared {
            log, told_online, ..
        } = &mut self.log
        {
            let version = self.room.online_here_version();
            if *told_online != Some(version) {
                *told_online = Some(version);
                log.tell_online(self.room.online_here());
            }
        }
    }

    /// An event of the shared log (or one that did not enter it): applied to the engine, then
    /// written to storage in the log's order.
    fn on_logged(&mut self, input: LogInput) {
        let now = now();
        match input {
            LogInput::Logged { seq, event, here } => {
                let write = match &event {
                    LogEvent::Message(m) => {
                        Write::LoggedMessage(StoredMessage { seq, ..m.clone() })
                    }
                    LogEvent::Change(c) => {
                        Write::Change(protocol::StoredChange { seq, ..c.clone() })
                    }
                    LogEvent::Audit(e) => Write::Audit(protocol::AuditEntry { seq, ..e.clone() }),
                    LogEvent::User(u) => Write::User(u.clone()),
                    LogEvent::Role { user_id, role, .. } => Write::Role {
                        user_id: user_id.clone(),
                        role: *role,
                    },
                    LogEvent::Settings { settings, .. } => Write::Settings(settings.clone()),
                };
                self.room.handle_logged(now, seq, event, here);
                self.next_batch.push(write);
            }
            LogInput::NotLogged { event, duplicate } => {
                self.room.handle_not_logged(now, event, duplicate);
            }
            LogInput::Relayed(signal) => self.room.handle_relayed(now, signal),
            LogInput::Presence { node, online } => {
                self.room.handle_node_presence(now, &node, online);
            }
        }
    }

    fn deliver(&mut self, to: ConnectionId, frame: Utf8Bytes) {
        let quietly = self.busy();
        let Some(handle) = self.connections.get(&to) else {
            return;
        };
        let result = offer(handle, to, frame, quietly, &mut self.unwoken);
        self.settle([(to, result)]);
    }

    /// Whether frames are queued quietly now: the writers were woken less than a write delay
    /// ago. When they are not, the next frames wake them and a new delay starts.
    fn busy(&mut self) -> bool {
        if self.write_delay.is_zero() {
            return false;
        }
        let now = tokio::time::Instant::now();
        if self.woken_at.is_some_and(|at| now < at + self.write_delay) {
            return true;
        }
        self.woken_at = Some(now);
        false
    }

    /// When the writers of what was queued quietly are to be woken.
    fn wake_due(&self) -> Option<tokio::time::Instant> {
        self.woken_at.map(|at| at + self.write_delay)
    }

    /// Wakes every writer that has frames queued quietly; a new delay starts.
    fn wake_unwoken(&mut self) {
        self.woken_at = Some(tokio::time::Instant::now());
        for conn in std::mem::take(&mut self.unwoken) {
            if let Some(handle) = self.connections.get(&conn) {
                handle.outbox.wake();
            }
        }
    }

    /// `action` to the connections `to` (all of them: `None`), serialised once: each outbox
    /// gets a reference to the same bytes.
    fn offer_each(&mut self, action: &ServerAction, to: Option<&[ConnectionId]>) {
        let frame = Utf8Bytes::from(action.to_json());
        let quietly = self.busy();
        let unwoken = &mut self.unwoken;
        let results: Vec<(ConnectionId, Result<(), OfferError>)> = match to {
            None => self
                .connections
                .iter()
                .map(|(conn, handle)| {
                    let result = offer(handle, *conn, frame.clone(), quietly, unwoken);
                    (*conn, result)
                })
                .collect(),
            Some(to) => to
                .iter()
                .filter_map(|conn| {
                    let handle = self.connections.get(conn)?;
                    Some((*conn, offer(handle, *conn, frame.clone(), quietly, unwoken)))
                })
                .collect(),
        };
        self.settle(results);
    }

    /// Counts what was queued; closes connections that were too slow, forgets gone ones.
    fn settle(
        &mut self,
        results: impl IntoIterator<Item = (ConnectionId, Result<(), OfferError>)>,
    ) {
        let mut delivered = 0u64;
        for (conn, result) in results {
            match result {
                Ok(()) => delivered += 1,
                Err(OfferError::Full) => self.drop_slow(conn),
                Err(OfferError::Closed) => self.forget(conn),
            }
        }
        Metrics::add(&self.metrics.deliveries, delivered);
    }

    fn drop_slow(&mut self, conn: ConnectionId) {
        Metrics::add(&self.metrics.slow_closes, 1);
        warn!(conn = conn.0, "closing a client that cannot keep up");
        if let Some(handle) = self.connections.remove(&conn)
            && !handle.close.close(CloseReason::TOO_SLOW)
        {
            debug!(conn = conn.0, "connection was already closing");
        }
        self.room.handle_disconnect(now(), conn);
    }

    fn forget(&mut self, conn: ConnectionId) {
        self.connections.remove(&conn);
        self.room.handle_disconnect(now(), conn);
    }

    fn start_write(&mut self) {
        if self.writing || self.next_batch.is_empty() || self.retry_at.is_some() {
            return;
        }
        self.writing = true;
        let batch = std::mem::take(&mut self.next_batch);
        if let Log::Shared { .. } = self.log {
            self.in_flight.clone_from(&batch);
        }
        let seqs = batch
            .iter()
            .map(|w| match w {
                Write::Message(m) | Write::LoggedMessage(m) => Some(m.seq),
                Write::Change(c) => Some(c.seq),
                Write::Audit(e) => Some(e.seq),
                Write::User(_)
                | Write::Role { .. }
                | Write::Settings(_)
                | Write::Reseal { .. }
                | Write::ResealAudit(_) => None,
            })
            .collect();
        let store = Arc::clone(&self.store);
        let room_id = Arc::clone(&self.room_id);
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = store.write_batch(&room_id, batch).await;
            let elapsed = started.elapsed();
            if done
                .send(Done::Batch {
                    seqs,
                    result,
                    elapsed,
                })
                .is_err()
            {
                error!("room driver gone before its batch completed");
            }
        });
    }

    fn load_conversations(&self, to: ConnectionId, viewer: UserId, since: Seq, limit: u32) {
        let store = Arc::clone(&self.store);
        let room_id = Arc::clone(&self.room_id);
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let result = store
                .load_conversations(&room_id, &viewer, since, limit)
                .await;
            if done.send(Done::Conversations { conn: to, result }).is_err() {
                debug!("room driver gone before conversations loaded");
            }
        });
    }

    fn load_history(
        &self,
        to: ConnectionId,
        (viewer, with): (Option<UserId>, Option<UserId>),
        before: Seq,
        limit: u32,
    ) {
        let store = Arc::clone(&self.store);
        let room_id = Arc::clone(&self.room_id);
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let result = store
                .load_history(&room_id, viewer.as_deref(), with.as_deref(), before, limit)
                .await;
            if done
                .send(Done::History {
                    conn: to,
                    before,
                    with,
                    result,
                })
                .is_err()
            {
                debug!("room driver gone before history loaded");
            }
        });
    }
}

impl<S: Store> Driver<S> {
    /// Runs a search beside the room: its task goes on with other inputs meanwhile.
    fn search(&self, task: SearchTask) {
        let store = Arc::clone(&self.store);
        let room_id = Arc::clone(&self.room_id);
        let done = self.done_tx.clone();
        let search = crate::store::Search {
            viewer: task.viewer.clone(),
            query: task.query.clone(),
            before: task.before,
            limit: task.limit,
            scan: task.scan,
            timeout: self.search_timeout,
        };
        tokio::spawn(async move {
            let result = store.search(&room_id, search).await;
            if done.send(Done::Search { task, result }).is_err() {
                debug!("room driver gone before a search ended");
            }
        });
    }
}

/// Numbers the room's next event in one process: one above the last, in the order the
/// engine asked.
fn next_seq(last_seq: &mut Seq) -> Seq {
    *last_seq += 1;
    *last_seq
}

/// Sleeps until `at`; never, without one.
/// Queues `frame` for connection `conn`: waking its writer, or (`quietly`) listing it in
/// `unwoken` for the room's next wake.
fn offer(
    handle: &ConnectionHandle,
    conn: ConnectionId,
    frame: Utf8Bytes,
    quietly: bool,
    unwoken: &mut Vec<ConnectionId>,
) -> Result<(), OfferError> {
    if !quietly {
        return handle.outbox.offer(frame);
    }
    if handle.outbox.offer_quietly(frame)? {
        unwoken.push(conn);
    }
    Ok(())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next event of the shared log; never, for a single process.
async fn next_logged(log: &mut Log) -> Option<LogInput> {
    match log {
        Log::Shared { logged, .. } => logged.recv().await,
        Log::Local { .. } => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
