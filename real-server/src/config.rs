//! Command-line flags and environment variables (`real-server --help` explains each).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Tasks on the room's store (the flags that name the store and the room apply: --data-dir, or
/// --mongodb-uri with --mongodb-db, and --room-id or --name).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Owners and moderators: the operator makes owners here; owners make moderators in the
    /// room. Works on the store; a server of the room that is running takes a change when it
    /// next starts.
    Role {
        #[command(subcommand)]
        action: RoleAction,
    },
    /// Writes a new data key file (mode 0600) for --data-key-file, and says so; never
    /// overwrites a file. Give every node of a room the same file, and keep a copy apart from
    /// the data: without it the room's stored messages cannot be read.
    Keygen {
        /// Where to write it.
        #[arg(long, default_value = "cahat.key")]
        out: PathBuf,
    },
    /// Adds a new data key to the room's key file and makes it the one that seals. Restarted
    /// with the file, the room's servers seal anew, in the background, what older keys sealed;
    /// then `retire-keys` takes the keys nothing uses out of the file.
    RotateKey,
    /// Takes out of the room's key file every older data key that seals nothing any more, and
    /// says how much each other one still seals.
    RetireKeys,
}

/// What `real-server role` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RoleAction {
    /// Gives USER_ID a role (owner or moderator).
    Grant {
        user_id: String,
        #[arg(value_enum)]
        role: RoleName,
    },
    /// Makes USER_ID a member again.
    Revoke { user_id: String },
    /// Lists who has a role (with --all: everyone the room knows, with their ids).
    List {
        #[arg(long)]
        all: bool,
    },
}

/// A role, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleName {
    Owner,
    Moderator,
}

impl From<RoleName> for protocol::Role {
    fn from(role: RoleName) -> Self {
        match role {
            RoleName::Owner => protocol::Role::Owner,
            RoleName::Moderator => protocol::Role::Moderator,
        }
    }
}

/// One CAHAT chat room: a WebSocket server that legacy CAHAT clients and ours connect to.
#[derive(Debug, Clone, Parser)]
#[command(name = "real-server", version, about, long_about = None)]
pub struct Config {
    /// A task on the room's store instead of serving the room (`real-server role --help`).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TCP port to listen on. Legacy clients type `ws://host:4000`. 0 picks a free port.
    #[arg(long, env = "PORT", default_value_t = 4000)]
    pub port: u16,

    /// Address to listen on. Use 0.0.0.0 to accept connections from other machines.
    #[arg(long, env = "CAHAT_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Connections the kernel completes and holds for the server to accept (the listen
    /// backlog; the kernel caps it at net.core.somaxconn). Past it a new connection's SYN is
    /// dropped and its client waits a second or more to try again: a room everyone reconnects
    /// to at once (after a restart) needs room for them.
    #[arg(long, default_value_t = 4096)]
    pub listen_backlog: u32,

    /// The room's display name, sent to clients in HANDSHAKE.
    #[arg(long, env = "NAME", default_value = "General", global = true)]
    pub name: String,

    /// The room's key in storage (several rooms may share one database). Defaults to the name.
    #[arg(long, env = "CAHAT_ROOM_ID", global = true)]
    pub room_id: Option<String>,

    /// MongoDB connection string. When set, the room is stored in MongoDB; otherwise in the
    /// embedded SQLite store under --data-dir.
    #[arg(long, env = "MONGODB_URI", global = true)]
    pub mongodb_uri: Option<String>,

    /// MongoDB database name.
    #[arg(long, env = "CAHAT_MONGODB_DB", default_value = "cahat", global = true)]
    pub mongodb_db: String,

    /// Runs this process as one node of the room: its log is the room's JetStream stream on
    /// this NATS server, or on this NATS cluster given as its servers' URLs, comma-separated
    /// (the node fails over among them). Every node of the room names the same one, the same
    /// --mongodb-uri for history and identities, and the same --data-key-file. Without it,
    /// the room is this process.
    #[arg(long, env = "CAHAT_NATS_URL")]
    pub nats_url: Option<String>,

    /// With --nats-url: copies of the room's stream the NATS cluster keeps (1 on a single NATS
    /// server; 3 in a three-server cluster, so that one can be lost). Set on the stream at
    /// every start, like the three below.
    #[arg(long, env = "CAHAT_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,

    /// With --nats-url: events older than this many hours leave the stream (0: kept). A node
    /// whose storage is further behind than the stream reaches back refuses to start, saying so.
    #[arg(long, default_value_t = 0)]
    pub stream_max_age_hours: u64,

    /// With --nats-url: the stream holds at most this many bytes, the oldest events leaving
    /// first (0: no bound).
    #[arg(long, default_value_t = 0)]
    pub stream_max_bytes: u64,

    /// With --nats-url: how long the stream remembers a message's id (its author and nonce) to
    /// keep a message sent twice, through any nodes, once.
    #[arg(long, default_value_t = 120)]
    pub stream_duplicate_window_seconds: u64,

    /// Directory of the embedded store (created if missing).
    #[arg(long, env = "CAHAT_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// The data key file (`real-server keygen`) whose key seals what people write before it is
    /// stored, on either store. Default: `cahat.key` in --data-dir, created (mode 0600) when
    /// the room has no sealed text yet. A key file that is not the one the room's text was
    /// sealed with is refused at start, before anything is read or written.
    #[arg(long, env = "CAHAT_DATA_KEY_FILE", global = true)]
    pub data_key_file: Option<PathBuf>,

    /// How the embedded store syncs a commit to disk: `full` (default) survives power loss;
    /// `normal` survives a crash of the server process (kill -9) but may lose the last
    /// commits on power loss or an OS crash, and commits much faster.
    #[arg(long, env = "CAHAT_SQLITE_SYNC", value_enum, default_value = "full")]
    pub sqlite_sync: crate::store::SyncMode,

    /// PEM certificate chain for wss:// (needs --tls-key).
    #[arg(long, env = "CAHAT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for wss:// (needs --tls-cert).
    #[arg(long, env = "CAHAT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Addresses of the load balancer in front of the room's nodes (repeat, or comma-separate):
    /// a connection from one of them starts with a PROXY protocol header (HAProxy's
    /// `send-proxy` or `send-proxy-v2`) naming the client, whose address the room then counts,
    /// limits and bans by; one without a valid header is closed. Not with --tls-cert: the
    /// balancer terminates TLS.
    #[arg(
        long = "proxy-protocol-from",
        env = "CAHAT_PROXY_PROTOCOL_FROM",
        value_delimiter = ',',
        conflicts_with = "tls_cert"
    )]
    pub proxy_protocol_from: Vec<IpAddr>,

    /// Origins allowed to open a WebSocket (repeat, or comma-separate in the variable), e.g.
    /// https://chat.example.org. Default: any origin, since any client may join a room.
    /// Connections without an Origin header (non-browser clients) are always allowed.
    #[arg(
        long = "allowed-origin",
        env = "CAHAT_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Directory of the built web client (dist/) to serve on the same port, so one URL gives
    /// the UI and the room.
    #[arg(long, env = "CAHAT_CLIENT_DIR")]
    pub client_dir: Option<PathBuf>,

    /// Longest message, in characters.
    #[arg(long, default_value_t = room().max_message_chars)]
    pub max_message_chars: usize,

    /// A message's HTML may be at most this many times its markdown's size (plus 1 KiB);
    /// more (deeply nested quotes or lists) is refused with MESSAGE_TOO_COMPLEX.
    #[arg(long, default_value_t = room().max_html_ratio)]
    pub max_html_ratio: usize,

    /// Largest WebSocket frame accepted, in bytes; a larger one closes the connection (1009).
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Bytes of messages one HANDSHAKE, RESUME or HISTORY frame carries at most; clients page
    /// the rest (a larger resume says gapTooBig).
    #[arg(long, default_value_t = room().max_answer_bytes)]
    pub max_answer_bytes: usize,

    /// Results one SEARCH_RESULTS page carries at most.
    #[arg(long, default_value_t = room().search_page)]
    pub search_page: u32,

    /// Direct conversations CONVERSATIONS tells a person of at most (their latest ones); each
    /// is one lookup in the store when someone identifies.
    #[arg(long, default_value_t = room().max_conversations)]
    pub max_conversations: u32,

    /// Open reports the room takes at most; past it, a report is refused (INVALID_REPORT)
    /// until moderators resolve some.
    #[arg(long, default_value_t = room().max_open_reports)]
    pub max_open_reports: usize,

    /// Open reports one person may have at once.
    #[arg(long, default_value_t = room().reports_per_person)]
    pub reports_per_person: usize,

    /// Messages one search page may look at where the store has no text index (a MongoDB
    /// without text search); past that the page ends and says where to go on.
    #[arg(long, default_value_t = room().search_scan)]
    pub search_scan: usize,

    /// A search taking longer than this, in milliseconds, is stopped: SEARCH_FAILED. It runs
    /// beside the room (its messages never wait for it); this bounds what it costs the store.
    #[arg(long, default_value_t = 2000)]
    pub search_timeout_ms: u64,

    /// An ICE server offered to callers, announced in HANDSHAKE (repeat for more): `URL`, or
    /// `URL|USERNAME|CREDENTIAL` for TURN (`stun:stun.example.org:3478`,
    /// `turn:turn.example.org:3478|ann|s3cret`). None by default: calls then connect between
    /// people on one network only.
    #[arg(long = "ice-server", value_parser = parse_ice_server)]
    pub ice_servers: Vec<protocol::IceServer>,

    /// Seconds a call rings before it counts as missed.
    #[arg(long, default_value_t = seconds(room().call_ring_ms))]
    pub call_ring_seconds: u32,

    /// Largest call signal (an SDP offer or answer, an ICE candidate), in bytes.
    #[arg(long, default_value_t = room().max_call_signal_bytes)]
    pub max_call_signal_bytes: usize,

    /// Call signals (offers, answers, candidates, media state) a connection may send in a
    /// burst; counted apart from messages.
    #[arg(long, default_value_t = room().call_signal_burst)]
    pub call_signal_burst: u32,

    /// Call signals a connection may send per second, sustained.
    #[arg(long, default_value_t = room().call_signals_per_second)]
    pub call_signals_per_second: u32,

    /// Milliseconds presence changes (who came online, went offline, renamed) collect before
    /// one PRESENCE frame tells everyone of them: joining N people costs each connection one
    /// frame per tick, not N.
    #[arg(long, default_value_t = millis(room().presence_tick_ms))]
    pub presence_tick_ms: u32,

    /// People online listed in HANDSHAKE, and the most one PEOPLE page gives: a join costs
    /// this many, not everyone online; the client asks for the rest by page.
    #[arg(long, default_value_t = room().handshake_people)]
    pub handshake_people: usize,

    /// Actions a connection may send in a burst.
    #[arg(long, default_value_t = room().rate_burst)]
    pub rate_burst: u32,

    /// Actions a connection may send per second, sustained.
    #[arg(long, default_value_t = room().rate_per_second)]
    pub rate_per_second: u32,

    /// WebSocket frames of any kind (pings included) a connection may send in a burst; a
    /// connection over its frame budget is closed (1008).
    #[arg(long, default_value_t = 100)]
    pub frame_burst: u32,

    /// WebSocket frames of any kind a connection may send per second, sustained.
    #[arg(long, default_value_t = 50)]
    pub frames_per_second: u32,

    /// New identities one network address (an IPv6 /64) may be given in a burst; more are
    /// refused with TOO_MANY_IDENTITIES until its budget refills.
    #[arg(long, default_value_t = room().identity_burst)]
    pub identity_burst: u32,

    /// New identities one network address may be given per minute, sustained.
    #[arg(long, default_value_t = room().identities_per_minute)]
    pub identities_per_minute: u32,

    /// Frames queued for one connection before it counts as too slow and is closed (1008).
    #[arg(long, default_value_t = 1024)]
    pub queue_frames: usize,

    /// Bytes queued for one connection before it counts as too slow and is closed (1008).
    /// The socket's own write buffer holds at most as much again.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub queue_bytes: usize,

    /// Most open connections, counted from the moment they are accepted (a connection still
    /// sending its HTTP request counts). More are answered 503 and closed.
    #[arg(long, default_value_t = 20_000)]
    pub max_connections: usize,

    /// Most open connections from one network address (an IPv6 /64). More are answered 503.
    #[arg(long, default_value_t = 100)]
    pub max_connections_per_address: usize,

    /// Seconds a client may take to send its HTTP request head; slower ones are closed.
    #[arg(long, default_value_t = 10)]
    pub header_timeout_seconds: u64,

    /// Seconds between pings to each client.
    #[arg(long, default_value_t = 20)]
    pub ping_seconds: u64,

    /// Milliseconds a busy connection waits after a write before the next, so that what
    /// arrives meanwhile goes in one write (0, the default: every message at once). A message
    /// after a quiet moment goes at once whatever this is. 20 costs a busy room a third of the
    /// CPU per delivery at 320k/s (BENCHMARKS.md); off by default until its effect on others'
    /// latency under a ping flood is understood.
    #[arg(long, default_value_t = 0)]
    pub write_delay_ms: u64,

    /// Seconds without any frame from a client (pongs included) before it is closed.
    #[arg(long, default_value_t = 60)]
    pub idle_seconds: u64,

    /// Where `/metrics` (Prometheus text) is served: `off` (default), `main` (on the room's
    /// own port, open to whoever can reach it), or an address such as `127.0.0.1:9100`.
    #[arg(long, env = "CAHAT_METRICS_BIND", default_value = "off")]
    pub metrics_bind: MetricsBind,

    /// Milliseconds every storage write waits first, as on a slow disk (0, no wait). For
    /// tests and demonstrations of what users see while storage lags; never needed in use.
    #[arg(long, default_value_t = 0)]
    pub store_delay_ms: u64,
}

/// `URL` or `URL|USERNAME|CREDENTIAL`, as `--ice-server` takes it.
fn parse_ice_server(text: &str) -> Result<protocol::IceServer, String> {
    let mut parts = text.split('|');
    let url = parts.next().unwrap_or_default().trim();
    let (username, credential) = (parts.next(), parts.next());
    if parts.next().is_some() {
        return Err("expected URL or URL|USERNAME|CREDENTIAL".into());
    }
    let scheme = url.split(':').next().unwrap_or_default();
    if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") || url.len() <= scheme.len() + 1 {
        return Err(format!(
            "an ICE server is a stun:, stuns:, turn: or turns: URL, not {url:?}"
        ));
    }
    let is_turn = scheme.starts_with("turn");
    match (is_turn, username, credential) {
        (true, Some(user), Some(secret)) if !user.is_empty() && !secret.is_empty() => {
            Ok(protocol::IceServer {
                urls: vec![url.to_owned()],
                username: Some(user.to_owned()),
                credential: Some(secret.to_owned()),
            })
        }
        (true, _, _) => Err(format!(
            "a TURN server needs URL|USERNAME|CREDENTIAL: {url}"
        )),
        (false, None, None) => Ok(protocol::IceServer {
            urls: vec![url.to_owned()],
            username: None,
            credential: None,
        }),
        (false, _, _) => Err(format!("a STUN server takes no username: {url}")),
    }
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsBind {
    /// Nowhere.
    Off,
    /// On the room's own port.
    Main,
    /// On a listener of its own.
    Addr(SocketAddr),
}

impl std::str::FromStr for MetricsBind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "off" => Ok(Self::Off),
            "main" => Ok(Self::Main),
            other => other.parse().map(Self::Addr).map_err(|_| {
                format!(
                    "expected off, main or an address with a port (127.0.0.1:9100), not {other:?}"
                )
            }),
        }
    }
}

/// The engine's own defaults: every flag of the room's rules starts from these, so that each
/// number is written once (in `protocol::RoomConfig::default`).
fn room() -> protocol::RoomConfig {
    protocol::RoomConfig::default()
}

/// Milliseconds as a flag's `u32`.
fn millis(ms: protocol::Millis) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// Milliseconds as a flag's whole seconds.
fn seconds(ms: protocol::Millis) -> u32 {
    millis(ms / 1000)
}

impl Config {
    /// The storage key of the room.
    pub fn room_id(&self) -> &str {
        self.room_id.as_deref().unwrap_or(&self.name)
    }

    /// The engine's limits from these flags.
    pub fn room_config(&self) -> protocol::RoomConfig {
        protocol::RoomConfig {
            server_name: self.name.clone(),
            max_message_chars: self.max_message_chars,
            rate_burst: self.rate_burst,
            rate_per_second: self.rate_per_second,
            max_html_ratio: self.max_html_ratio,
            max_answer_bytes: self.max_answer_bytes,
            identity_burst: self.identity_burst,
            identities_per_minute: self.identities_per_minute,
            search_page: self.search_page.max(1),
            max_conversations: self.max_conversations,
            max_open_reports: self.max_open_reports,
            reports_per_person: self.reports_per_person,
            search_scan: self.search_scan.max(1),
            call_ring_ms: protocol::Millis::from(self.call_ring_seconds.max(1)) * 1000,
            max_call_signal_bytes: self.max_call_signal_bytes,
            call_signal_burst: self.call_signal_burst.max(1),
            call_signals_per_second: self.call_signals_per_second.max(1),
            ice_servers: self.ice_servers.clone(),
            presence_tick_ms: protocol::Millis::from(self.presence_tick_ms),
            handshake_people: self.handshake_people,
            shared_log: self.nats_url.is_some(),
            ..protocol::RoomConfig::default()
        }
    }

    /// Ping interval.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_seconds.max(1))
    }

    /// How long a client may take to send its request head.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_seconds.max(1))
    }

    /// The least time between two writes of a busy connection.
    pub fn write_delay(&self) -> Duration {
        Duration::from_millis(self.write_delay_ms.min(1_000))
    }

    /// Idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_seconds.max(1))
    }

    /// Defaults, as if started with no flags, for tests and embedding.
    pub fn defaults() -> Self {
        Self::parse_from(["real-server"])
    }
}

#[cfg(test)]
mod ice_server_tests {
    use clap::Parser;

    use super::Config;

    #[test]
    fn ice_servers_are_stun_urls_or_turn_with_credentials() {
        let config = Config::try_parse_from([
            "real-server",
            "--ice-server",
            "stun:stun.example.org:3478",
            "--ice-server",
            "turn:turn.example.org:3478?transport=udp|ann|s3cret",
        ])
        .expect("two ICE servers");
        assert_eq!(config.ice_servers.len(), 2);
        assert_eq!(config.ice_servers[1].username.as_deref(), Some("ann"));
        assert_eq!(config.room_config().ice_servers, config.ice_servers);
        for bad in [
            "http://example.org",
            "stun:",
            "turn:turn.example.org:3478",
            "turn:turn.example.org:3478|ann",
            "stun:stun.example.org|ann|x",
            "turn:t|a|b|c",
        ] {
            let error = Config::try_parse_from(["real-server", "--ice-server", bad])
                .expect_err(bad)
                .to_string();
            assert!(error.contains("--ice-server"), "{bad}: {error}");
        }
    }
}

#[cfg(test)]
mod default_tests {
    /// With no flags, the room runs by the engine's own defaults, every rule of them.
    #[test]
    fn no_flags_is_the_engines_defaults() {
        let flags = super::Config::defaults().room_config();
        let engine = protocol::RoomConfig::default();
        // Debug shows every field but the normalisation function, which is not a flag.
        let shown = |c: &protocol::RoomConfig| {
            let text = format!("{c:?}");
            let cut = text.find("normalize").unwrap_or(text.len());
            let rest = text[cut..].find(", ").map_or("", |i| &text[cut + i..]);
            format!("{}{rest}", &text[..cut])
        };
        assert_eq!(shown(&flags), shown(&engine));
    }
}
