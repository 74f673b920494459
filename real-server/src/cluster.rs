//! Cluster mode (`--nats-url`): the room's log is a NATS JetStream stream that every node of
//! the room shares. The stream numbers each event (its sequence is the room's `seq`), keeps it
//! on disk before anyone sees it, drops a message sent twice within its de-duplication window
//! (the message id is the author and nonce), and replays from any sequence.
//!
//! Two tasks beside the room's driver: the appender publishes the events this node's engine
//! accepted, in the order it accepted them, and reports those the stream did not take; the
//! reader follows the stream from where this node's storage is (an ordered consumer: no
//! gaps, no repeats) and hands every event, this node's own included, to the driver, which
//! applies it to the engine and then writes it to storage (idempotently: every node writes
//! every event).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use protocol::{LogEvent, Seq, Signal, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// The header naming the node that appended an event.
const NODE_HEADER: &str = "Cahat-Node";

/// How long the stream remembers message ids to drop a message sent twice, by default.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The settings of a room's stream a node sets when it starts (flags `--stream-…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Copies the NATS cluster keeps.
    pub replicas: usize,
    /// Events older than this leave the stream (zero: kept).
    pub max_age: Duration,
    /// The stream's bound in bytes (0: none).
    pub max_bytes: u64,
    /// How long a message id is remembered against duplicates.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            max_age: Duration::ZERO,
            max_bytes: 0,
            duplicate_window: DUPLICATE_WINDOW,
        }
    }
}

impl StreamSettings {
    /// `config` with these settings.
    fn applied_to(&self, config: &stream::Config) -> stream::Config {
        stream::Config {
            num_replicas: self.replicas,
            max_age: self.max_age,
            max_bytes: if self.max_bytes == 0 {
                -1
            } else {
                i64::try_from(self.max_bytes).unwrap_or(i64::MAX)
            },
            duplicate_window: self.duplicate_window,
            ..config.clone()
        }
    }
}

/// How often a node tells the others who is online through it (and at once on a change).
const HEARTBEAT: Duration = Duration::from_secs(2);

/// A node not heard from for this long is taken for dead: its people go offline.
const NODE_TIMEOUT: Duration = Duration::from_secs(6);
/// Nodes a node remembers having heard from (each restart of a node is a new one): past it,
/// a newcomer waits for the next heartbeat to hear who is online here.
const MAX_KNOWN_NODES: usize = 10_000;

/// What the log tells the driver.
#[derive(Debug)]
pub enum LogInput {
    /// Event `seq` of the log; `here`: this node appended it.
    Logged {
        seq: Seq,
        event: LogEvent,
        here: bool,
    },
    /// This node's event did not enter the log; `duplicate`: the log holds it already.
    NotLogged { event: LogEvent, duplicate: bool },
    /// A signal from another node.
    Relayed(Signal),
    /// Node `node` says who is online through it (empty: it stopped, or went unheard for
    /// [`NODE_TIMEOUT`]).
    Presence { node: String, online: Vec<UserId> },
}

/// A signal between nodes, with the node that sent it.
#[derive(Debug, Serialize, Deserialize)]
struct Relayed {
    node: String,
    signal: Signal,
}

/// A node's heartbeat: who is online through it.
#[derive(Debug, Serialize, Deserialize)]
struct Heartbeat {
    node: String,
    online: Vec<UserId>,
}

/// This node's end of the room's shared log.
#[derive(Debug, Clone)]
pub struct SharedLog {
    append: mpsc::UnboundedSender<LogEvent>,
    online: watch::Sender<Vec<UserId>>,
    relay: mpsc::UnboundedSender<Signal>,
    health: Health,
}

/// Whether a node can serve its room: connected to NATS and still following the stream.
/// `/healthz` answers 503 otherwise, so a load balancer sends new people elsewhere.
#[derive(Debug, Clone)]
pub struct Health {
    client: Option<async_nats::Client>,
    following: Arc<AtomicBool>,
}

impl Health {
    /// Why this node cannot serve its room now, if it cannot.
    pub fn problem(&self) -> Option<&'static str> {
        let connected = self
            .client
            .as_ref()
            .is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected);
        if !connected {
            return Some("not connected to NATS");
        }
        if !self.following.load(Ordering::Relaxed) {
            return Some("no longer following the room's stream");
        }
        None
    }
}

impl SharedLog {
    /// Appends an event this node's engine accepted (in the order it accepted them). If the
    /// appender is gone the event is reported as not logged by nobody: the node is stopping.
    pub fn append(&self, event: LogEvent) {
        if self.append.send(event).is_err() {
            warn!("the log's appender is gone; an event was not appended");
        }
    }

    /// Sends a signal to the other nodes (core NATS: never stored, lost if nobody listens).
    /// The engine's rate limits bound how many a connection makes.
    pub fn relay(&self, signal: Signal) {
        if self.relay.send(signal).is_err() {
            warn!("the signal relay is gone; a signal was dropped");
        }
    }

    /// This node's health, for `/healthz`.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Who is online through this node now: told to the other nodes at once, and again with
    /// every heartbeat.
    pub fn tell_online(&self, online: Vec<UserId>) {
        self.online.send_replace(online);
    }
}

/// A node's end of a log that nobody else shares, for tests of the driver: what it appends
/// and relays is dropped.
#[cfg(test)]
pub(crate) fn detached() -> SharedLog {
    let (append, _) = mpsc::unbounded_channel();
    let (online, _) = watch::channel(Vec::new());
    let (relay, _) = mpsc::unbounded_channel();
    SharedLog {
        append,
        online,
        relay,
        health: Health {
            client: None,
            following: Arc::new(AtomicBool::new(true)),
        },
    }
}

/// The stream's name and subject for room `room_id` (stream names allow letters, digits, `-`
/// and `_`; a hash keeps two room ids that differ only in other characters apart).
pub fn stream_names(room_id: &str) -> (String, String) {
    let (name, subject, _) = subjects(room_id);
    (name, subject)
}

/// The stream's name, its subject, and the room's presence subject (signals go on
/// `<presence>.signals`).
fn subjects(room_id: &str) -> (String, String, String) {
    let clean: String = room_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let hash = room_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let token = format!("{clean}_{hash:016x}");
    (
        format!("CAHAT_{token}"),
        format!("cahat.log.{token}"),
        format!("cahat.presence.{token}"),
    )
}

/// Connects to NATS, opens (or creates) room `room_id`'s stream, and starts the appender and
/// the reader; the reader starts after `applied`, the last seq this node's storage holds.
/// Events arrive on the returned receiver.
pub async fn connect(
    url: &str,
    room_id: &str,
    applied: Seq,
    settings: &StreamSettings,
) -> anyhow::Result<(SharedLog, mpsc::Receiver<LogInput>)> {
    // Several servers of a NATS cluster, comma-separated: the client fails over among them.
    let servers: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let client = async_nats::connect(servers)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let js = jetstream::new(client.clone());
    let (name, subject, presence) = subjects(room_id);
    let wanted = settings.applied_to(&stream::Config {
        name: name.clone(),
        subjects: vec![subject.clone()],
        storage: stream::StorageType::File,
        // A room that had a single process before: the stream numbers on from its storage.
        first_sequence: (applied > 0).then_some(applied + 1),
        ..Default::default()
    });
    let mut stream = js
        .get_or_create_stream(wanted)
        .await
        .with_context(|| format!("opening the JetStream stream {name} ({settings:?})"))?;
    let mut info = stream
        .info()
        .await
        .context("reading the stream's state")?
        .clone();
    if let Some(problem) = unworkable(&info.config, &subject) {
        anyhow::bail!(
            "the JetStream stream {name} exists with settings this room cannot run on: {problem}; \
             remove it (nats stream rm {name}) or fix it"
        );
    }
    // A stream made before, with other settings: this start's flags are set on it.
    let set = settings.applied_to(&info.config);
    if set != info.config {
        js.update_stream(set)
            .await
            .with_context(|| {
                format!("setting the stream {name} to --stream-replicas, --stream-max-age-hours, --stream-max-bytes and --stream-duplicate-window-seconds ({settings:?})")
            })?;
        info = stream
            .info()
            .await
            .context("reading the stream's state")?
            .clone();
    }
    let state = info.state;
    info!(stream = %name, last_seq = state.last_sequence, applied, "the room's log");
    let start = if state.messages == 0 {
        state.last_sequence.max(applied) + 1
    } else {
        applied + 1
    };
    if state.messages > 0 && start < state.first_sequence {
        anyhow::bail!(
            "the stream {name} starts at {} but storage holds the room only up to {applied}: \
             events in between are lost to this node",
            state.first_sequence
        );
    }
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject.clone(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await
        .context("following the room's stream")?;
    let mut messages = consumer
        .messages()
        .await
        .context("reading the room's stream")?;

    let node = node_id()?;
    let (inputs, logged) = mpsc::channel(1024);
    let (append, mut appended) = mpsc::unbounded_channel::<LogEvent>();

    let following = Arc::new(AtomicBool::new(true));
    let health = Health {
        client: Some(client.clone()),
        following: Arc::clone(&following),
    };
    let reader_inputs = inputs.clone();
    let inputs_for_presence = inputs.clone();
    let presence_node = node.clone();
    let reader_node = node.clone();
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(err) => {
                    // The ordered consumer recreates itself; a gap would be an error here.
                    warn!(error = %err, "reading the room's stream");
                    continue;
                }
            };
            let Ok(info) = message.info() else {
                warn!("a stream message without its sequence; skipped");
                continue;
            };
            let seq = info.stream_sequence;
            let here = message
                .headers
                .as_ref()
                .and_then(|h| h.get(NODE_HEADER))
                .is_some_and(|v| v.as_str() == reader_node);
            match LogEvent::from_json(&message.payload) {
                Ok(event) => {
                    if reader_inputs
                        .send(LogInput::Logged { seq, event, here })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(err) => error!(seq, error = %err, "an event in the room's stream is not ours"),
            }
        }
        following.store(false, Ordering::Relaxed);
        error!("the room's stream ended");
    });

    tokio::spawn(async move {
        while let Some(event) = appended.recv().await {
            let mut publish = jetstream::message::PublishMessage::build()
                .payload(event.to_json().into())
                .header(NODE_HEADER, node.as_str());
            if let Some(id) = message_id(&event) {
                publish = publish.message_id(id);
            }
            let report = inputs.clone();
            match js.send_publish(subject.clone(), publish).await {
                Ok(ack) => {
                    tokio::spawn(async move {
                        let duplicate = match ack.await {
                            Ok(ack) if ack.duplicate => true,
                            Ok(_) => return,
                            Err(err) => {
                                error!(error = %err, "the room's stream did not take an event");
                                false
                            }
                        };
                        let _ = report.send(LogInput::NotLogged { event, duplicate }).await;
                    });
                }
                Err(err) => {
                    error!(error = %err, "appending to the room's stream");
                    let not_logged = LogInput::NotLogged {
                        event,
                        duplicate: false,
                    };
                    let _ = report.send(not_logged).await;
                }
            }
        }
    });
    let (online, told) = watch::channel(Vec::new());
    let heard = client
        .subscribe(presence.clone())
        .await
        .context("following the room's presence")?;
    let signals = format!("{presence}.signals");
    let mut signals_heard = client
        .subscribe(signals.clone())
        .await
        .context("following the room's signals")?;
    let (relay, mut to_relay) = mpsc::unbounded_channel::<Signal>();
    let relay_client = client.clone();
    let relay_node = presence_node.clone();
    tokio::spawn(async move {
        while let Some(signal) = to_relay.recv().await {
            let relayed = Relayed {
                node: relay_node.clone(),
                signal,
            };
            let payload = serde_json::to_vec(&relayed).unwrap_or_default();
            if let Err(err) = relay_client.publish(signals.clone(), payload.into()).await {
                warn!(error = %err, "relaying a signal");
            }
        }
    });
    let me = presence_node.clone();
    let signal_inputs = inputs_for_presence.clone();
    tokio::spawn(async move {
        while let Some(message) = signals_heard.next().await {
            match serde_json::from_slice::<Relayed>(&message.payload) {
                Ok(relayed) if relayed.node != me => {
                    if signal_inputs
                        .send(LogInput::Relayed(relayed.signal))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => warn!("a signal that is not ours; ignored"),
            }
        }
    });
    let newcomer = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(tell_presence(
        client,
        presence,
        presence_node.clone(),
        told,
        Arc::clone(&newcomer),
    ));
    tokio::spawn(hear_presence(
        heard,
        presence_node,
        inputs_for_presence,
        newcomer,
    ));
    Ok((
        SharedLog {
            append,
            online,
            relay,
            health,
        },
        logged,
    ))
}

/// Tells the other nodes who is online through this one: at once on a change and when a node
/// is heard from for the first time (`newcomer`), and every [`HEARTBEAT`]; an empty list when
/// this node stops.
async fn tell_presence(
    client: async_nats::Client,
    subject: String,
    node: String,
    mut told: watch::Receiver<Vec<UserId>>,
    newcomer: Arc<tokio::sync::Notify>,
) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    loop {
        let stopping = tokio::select! {
            changed = told.changed() => changed.is_err(),
            _ = beat.tick() => false,
            () = newcomer.notified() => false,
        };
        let online = if stopping {
            Vec::new()
        } else {
            told.borrow_and_update().clone()
        };
        let heartbeat = Heartbeat {
            node: node.clone(),
            online,
        };
        let payload = serde_json::to_vec(&heartbeat).unwrap_or_default();
        if let Err(err) = client.publish(subject.clone(), payload.into()).await {
            warn!(error = %err, "telling the other nodes who is online");
        }
        if stopping {
            let _ = client.flush().await;
            return;
        }
    }
}

/// Hears the other nodes' heartbeats; a node unheard for [`NODE_TIMEOUT`] is taken for dead.
/// A node heard from for the first time is told at once who is online here (`newcomer`): what
/// this node said before that node's subscription reached the NATS server it never heard, and
/// it subscribed before it first spoke, so the answer reaches it.
async fn hear_presence(
    mut heard: async_nats::Subscriber,
    me: String,
    inputs: mpsc::Sender<LogInput>,
    newcomer: Arc<tokio::sync::Notify>,
) {
    let mut last_heard: HashMap<String, Instant> = HashMap::new();
    let mut known: HashSet<String> = HashSet::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        let input = tokio::select! {
            message = heard.next() => {
                let Some(message) = message else { return };
                let Ok(Heartbeat { node, online }) = serde_json::from_slice(&message.payload) else {
                    warn!("a heartbeat that is not ours; ignored");
                    continue;
                };
                if node == me {
                    continue;
                }
                if known.len() < MAX_KNOWN_NODES && known.insert(node.clone()) {
                    newcomer.notify_one();
                }
                if online.is_empty() {
                    last_heard.remove(&node);
                } else {
                    last_heard.insert(node.clone(), Instant::now());
                }
                LogInput::Presence { node, online }
            }
            _ = sweep.tick() => {
                let Some(dead) = last_heard
                    .iter()
                    .find(|(_, at)| at.elapsed() > NODE_TIMEOUT)
                    .map(|(node, _)| node.clone())
                else {
                    continue;
                };
                last_heard.remove(&dead);
                warn!(node = %dead, "a node of the room is not heard from: its people are offline");
                LogInput::Presence { node: dead, online: Vec::new() }
            }
        };
        if inputs.send(input).await.is_err() {
            return;
        }
    }
}

/// Why an existing stream's settings cannot hold a room's log, if they cannot: its events
/// must stay (limits retention, not removed once read), on disk, under the room's subject,
/// with a de-duplication window for messages sent twice.
pub fn unworkable(config: &stream::Config, subject: &str) -> Option<String> {
    if config.retention != stream::RetentionPolicy::Limits {
        return Some(format!(
            "retention is {:?}, which removes events once read (the log needs limits)",
            config.retention
        ));
    }
    if config.storage != stream::StorageType::File {
        return Some("storage is in memory (the log needs file storage)".to_owned());
    }
    if !config.subjects.iter().any(|s| s == subject) {
        return Some(format!(
            "its subjects {:?} do not include {subject}",
            config.subjects
        ));
    }
    if config.duplicate_window.is_zero() {
        return Some("its de-duplication window is 0".to_owned());
    }
    None
}

/// The id the stream de-duplicates an event by: a message by its author and nonce (sent
/// again, through any node, within the window: kept once), else by its own id. Changes and
/// people's records fold to the same result when applied twice: no id.
fn message_id(event: &LogEvent) -> Option<String> {
    match event {
        LogEvent::Message(m) => Some(match &m.nonce {
            Some(nonce) => format!("n:{}:{nonce}", m.user_id),
            None => format!("i:{}", m.id),
        }),
        LogEvent::Change(_)
        | LogEvent::Audit(_)
        | LogEvent::User(_)
        | LogEvent::Role { .. }
        | LogEvent::Settings { .. } => None,
    }
}

/// A random id for this node's process: how it knows its own events in the stream.
fn node_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_the_log_cannot_live_in_is_named_with_why() {
        let (_, subject) = stream_names("r");
        let good = stream::Config {
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        assert_eq!(unworkable(&good, &subject), None);
        let cases = [
            (
                stream::Config {
                    retention: stream::RetentionPolicy::WorkQueue,
                    ..good.clone()
                },
                "retention",
            ),
            (
                stream::Config {
                    storage: stream::StorageType::Memory,
                    ..good.clone()
                },
                "in memory",
            ),
            (
                stream::Config {
                    subjects: vec!["other".into()],
                    ..good.clone()
                },
                "subjects",
            ),
            (
                stream::Config {
                    duplicate_window: Duration::ZERO,
                    ..good.clone()
                },
                "de-duplication",
            ),
        ];
        for (config, why) in cases {
            let problem = unworkable(&config, &subject).unwrap_or_default();
            assert!(problem.contains(why), "{problem}");
        }
    }

    #[test]
    fn stream_names_are_valid_and_keep_rooms_apart() {
        let (a, subject) = stream_names("General room.1");
        assert!(a.starts_with("CAHAT_General_room_1_"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert!(subject.starts_with("cahat.log.General_room_1_"));
        assert_ne!(stream_names("a.b").0, stream_names("a*b").0);
    }
}
