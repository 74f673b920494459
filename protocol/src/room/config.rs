//! The rules a room enforces, as numbers a host may tune.

use crate::wire::{IceServer, Millis};

/// Limits and defaults of one room. `Default` gives the values documented on each field.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Display name, sent in `HANDSHAKE` (`"General"`).
    pub server_name: String,
    /// Longest accepted message, in characters (4000).
    pub max_message_chars: usize,
    /// Messages in `HANDSHAKE` (100, as the legacy client keeps at most 100 a room).
    pub handshake_messages: usize,
    /// Recent messages kept in memory (1000): they answer handshakes, resumes and most
    /// history pages without storage, and bound the nonce de-duplication window.
    pub cache_messages: usize,
    /// Most messages a `RESUME` carries before it says the gap is too big (1000).
    pub max_resume: usize,
    /// Most messages one `HISTORY` page carries (100).
    pub max_history_page: u32,
    /// Most results one `SEARCH_RESULTS` page carries (20).
    pub search_page: u32,
    /// Most direct conversations `CONVERSATIONS` tells a person of, the latest (200).
    pub max_conversations: u32,
    /// Messages a search may look at for one page where storage has no text index (the
    /// in-memory rooms, a MongoDB without text search) (5000): beyond, the page ends and says
    /// where to search on, so one search's work is bounded however old the room.
    pub search_scan: usize,
    /// Actions a connection may send in a burst (10).
    pub rate_burst: u32,
    /// Actions a connection may send per second, sustained (5).
    pub rate_per_second: u32,
    /// A message's HTML may be at most this many times the bytes of its markdown, plus
    /// [`HTML_ALLOWANCE`] (8). Deeply nested quotes or lists render to far more (`>` 4,000
    /// times is 27 times its size); such a message is refused with `MESSAGE_TOO_COMPLEX`.
    pub max_html_ratio: usize,
    /// Bytes of messages one `HANDSHAKE`, `RESUME` or `HISTORY` frame may carry (1 MiB). A
    /// handshake or history page carries fewer messages when they are large (the client pages
    /// the rest); a resume that would be larger says `gapTooBig`.
    pub max_answer_bytes: usize,
    /// New identities one network address may be given in a burst (20).
    pub identity_burst: u32,
    /// New identities one network address may be given per minute, sustained (6).
    pub identities_per_minute: u32,
    /// How names are brought to NFC: the host's Unicode normalisation (with the `nfc`
    /// feature, the default is [`super::identity::nfc`]; without it, the default leaves text
    /// as it is and the host must set one, as the browser client does).
    pub normalize: super::identity::Normalize,
    /// How long a call rings before it is missed, in milliseconds (30,000).
    pub call_ring_ms: Millis,
    /// Longest call signal (`data`: an SDP or a candidate), in bytes (16 KiB).
    pub max_call_signal_bytes: usize,
    /// Call signals (offer, answer, candidates, media) a connection may send in a burst (50)
    /// and per second, sustained (10): counted apart from messages, as one call's candidates
    /// come in a burst.
    pub call_signal_burst: u32,
    pub call_signals_per_second: u32,
    /// The ICE servers announced in `HANDSHAKE` for calls (none).
    pub ice_servers: Vec<IceServer>,
    /// How long presence changes collect before one `PRESENCE` frame tells everyone, in
    /// milliseconds (100).
    pub presence_tick_ms: Millis,
    /// People online listed in `HANDSHAKE` (100), and the most a `PEOPLE` page lists: a join
    /// costs O(this), not O(everyone online); the rest are asked for by page.
    pub handshake_people: usize,
    /// Open reports the room takes at most (100): past it, a report is refused until
    /// moderators resolve some.
    pub max_open_reports: usize,
    /// Open reports one person may have at once (3).
    pub reports_per_person: usize,
    /// The latest moderation events kept in memory for `AUDIT_REQUEST` (200).
    pub audit_kept: usize,
    /// A cluster node's room, fed by the shared log ([`super::Room::handle_logged`]), which
    /// this node may be behind (false). A client that saw a later seq through another node
    /// then resumes here: up to `max_resume` events ahead, this node tells it the rest as it
    /// catches up, without what it has; further ahead (or in a single process, whose log is
    /// all there is), the room does not know that seq and the resume says `gapTooBig`.
    pub shared_log: bool,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            server_name: "General".to_owned(),
            max_message_chars: 4000,
            handshake_messages: 100,
            cache_messages: 1000,
            max_resume: 1000,
            max_history_page: 100,
            search_page: 20,
            max_conversations: 200,
            search_scan: 5000,
            rate_burst: 10,
            rate_per_second: 5,
            max_html_ratio: 8,
            max_answer_bytes: 1024 * 1024,
            identity_burst: 20,
            identities_per_minute: 6,
            normalize: default_normalize,
            call_ring_ms: 30_000,
            max_call_signal_bytes: 16 * 1024,
            call_signal_burst: 50,
            call_signals_per_second: 10,
            ice_servers: Vec::new(),
            presence_tick_ms: 100,
            handshake_people: 100,
            max_open_reports: 100,
            reports_per_person: 3,
            audit_kept: 200,
            shared_log: false,
        }
    }
}

#[cfg(feature = "nfc")]
fn default_normalize(text: &str) -> String {
    super::identity::nfc(text)
}

#[cfg(not(feature = "nfc"))]
fn default_normalize(text: &str) -> String {
    text.to_owned()
}

/// Bytes of HTML every message may have beyond `max_html_ratio` times its length.
pub const HTML_ALLOWANCE: usize = 1024;
/// Network addresses whose new-identity budget the room remembers at once; beyond this, the
/// ones whose budget has refilled are forgotten.
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Longest nonce, in characters.
pub const MAX_NONCE_CHARS: usize = 64;
/// The name every new user starts with (legacy).
pub const DEFAULT_NAME: &str = "Anonymous";
