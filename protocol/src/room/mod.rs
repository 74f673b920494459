//! The room engine: every rule of a chat room, with no IO.

mod answers;
mod audit;
mod bans;
mod call;
mod config;
mod effect;
mod identity;
mod log;
mod post;
mod presence;
mod rate;
mod roles;
mod signal;
mod text;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

pub use crate::stored::{
    Ban, ChangeKind, DELETED_HTML, DirectConversation, LogEvent, MAX_REACTIONS, REMOVED_HTML,
    StoredChange, StoredMessage, UserRecord, conversations_of, may_see,
};
pub use bans::BANNED_CODE;
pub use config::{
    DEFAULT_NAME, HTML_ALLOWANCE, MAX_NONCE_CHARS, MAX_TRACKED_ADDRESSES, RoomConfig,
};
pub use effect::{ConnectionId, Effect, SearchTask, Signal};
#[cfg(feature = "nfc")]
pub use identity::nfc;
pub use identity::{
    IdSource, MAX_COMBINING_MARKS, MAX_NAME_CHARS, NameProblem, Normalize, clean_name, hash_token,
};
pub use rate::TokenBucket;
pub use roles::OPERATOR;
pub use text::{TextProblem, check_text};

use crate::error::ErrorCode;
use crate::markdown::Renderer;
use crate::wire::{
    ChangeName, ClientAction, HandshakeUserInfo, Millis, NameChanged, Seq, ServerAction, UserId,
    UserInfo, UserRef,
};
use post::{Asked, Pending};

/// What a host loads from storage before the room opens.
#[derive(Debug, Clone, Default)]
pub struct RoomSnapshot {
    /// The most recent messages, oldest first (a host loads `cache_messages` of them).
    pub messages: Vec<StoredMessage>,
    /// True when `messages` is the room's whole history (nothing older is stored).
    pub complete: bool,
    /// The highest sequence number ever stored (0 for a new room). New messages get higher ones.
    pub latest_seq: Seq,
    /// Every known user.
    pub users: Vec<UserRecord>,
    /// The topic and slow mode, as last set.
    pub settings: crate::wire::RoomSettings,
    /// The latest moderation events (at most `audit_kept`), oldest first.
    pub audit: Vec<crate::wire::AuditEntry>,
    /// The reports not resolved yet, oldest first.
    pub open_reports: Vec<crate::wire::AuditEntry>,
}

/// One chat room as a deterministic state machine.
///
/// # Contract
/// A host (the `real-server` socket server, or the in-page mock) feeds the room inputs and
/// carries out what it asks, and nothing else. Every input takes `now`, milliseconds since the
/// epoch, from the host's clock: the room never reads a clock, a socket or a disk.
///
/// - **Connections.** [`handle_connect`](Self::handle_connect) (or
///   [`handle_connect_from`](Self::handle_connect_from) with the peer's address, for the
///   new-identity budget), [`handle_frame`](Self::handle_frame) (or
///   [`handle_action`](Self::handle_action) for an already decoded action),
///   [`handle_disconnect`](Self::handle_disconnect).
/// - **Answers to its effects.** For [`Effect::PersistMessage`] and [`Effect::PersistChange`]:
///   [`handle_persisted`](Self::handle_persisted) or
///   [`handle_persist_failed`](Self::handle_persist_failed). For [`Effect::LoadHistory`]:
///   [`handle_history_loaded`](Self::handle_history_loaded) or
///   [`handle_history_failed`](Self::handle_history_failed). For [`Effect::Search`]:
///   [`handle_search_done`](Self::handle_search_done) or
///   [`handle_search_failed`](Self::handle_search_failed). [`Effect::PersistUser`] is not
///   answered.
/// - **Time.** [`poll_timeout`](Self::poll_timeout) says when the room next needs
///   [`handle_timeout`](Self::handle_timeout) (the presence tick, a ring running out).
/// - **Outputs.** [`Effect`]s, taken with [`poll_effect`](Self::poll_effect) in order and
///   carried out in that order: [`Effect::Send`] to one connection, [`Effect::Multicast`] to
///   several (serialised once), [`Effect::Broadcast`],
///   the three `Persist` effects, [`Effect::LoadHistory`], [`Effect::Search`] (run beside the
///   room's task, never in it).
/// - **Durability and order.** An accepted event (a message or a change) is first only a
///   `Persist` effect, without a seq: the host's log numbers it (a single process counts one
///   above the last; a cluster node takes the sequence its shared stream gives) and stores it.
///   It is delivered (and enters the room's memory) when the host reports it stored, with its
///   seq, by `handle_persisted`; events are answered in the order they were asked for. A
///   failed store is reported with `handle_persist_failed`; its author gets `STORAGE_FAILED`
///   and nobody else sees it.
///
/// # Layout
/// - this file: [`Room`], connections, identity and names, typing, time;
/// - `post`: messages and changes, from the checks to delivery;
/// - `answers`: `HANDSHAKE`, `RESUME`, `HISTORY`, `SEARCH_RESULTS` and their byte budget;
/// - `log`: events of a cluster's shared log, from any node (`handle_logged`);
/// - `presence`: who is online, told by tick; `call`: calls and their records;
/// - `signal`: typing, and signals from a cluster's other nodes;
/// - `config`, `identity`, `text`, `rate`, `effect`: the rules' numbers and pure checks, and
///   what the room asks of its host.
///
/// # Rules it enforces
/// - Identity is bound to the connection by `HANDSHAKE_USER_INFO`. A `userId` in a payload is a
///   claim: if it is not the bound identity, the action is refused (`USER_MISMATCH`). A known id
///   is handed out again only with its token; otherwise the connection gets a new identity and
///   `IDENTITY_REJECTED`. Tokens are random; only their SHA-256 is stored.
/// - Names are NFC, trimmed, 1 to [`MAX_NAME_CHARS`] characters, with a visible character and
///   without control characters, bidirectional overrides or piles of combining marks
///   ([`clean_name`]).
/// - Messages are non-blank and at most `max_message_chars` characters ([`check_text`], the
///   check the client session makes too); their HTML is rendered
///   here, by our sanitising [`Renderer`], never taken from a client, and may be at most
///   `max_html_ratio` times the markdown's size (plus [`HTML_ALLOWANCE`]).
/// - A new identity costs its network address a token (`identity_burst`,
///   `identities_per_minute`; IPv6 addresses count per /64); a connection the host gives no
///   address for ([`handle_connect`](Self::handle_connect)) is not limited.
/// - The messages of one `HANDSHAKE`, `RESUME` or `HISTORY` take at most `max_answer_bytes`
///   (a handshake or page then carries fewer; a resume says `gapTooBig`).
/// - A refusal names the nonce of the action it refuses, when that had one.
/// - Each connection has a token bucket (`rate_burst`, `rate_per_second`) on the host's clock;
///   an action over the limit is dropped with `RATE_LIMITED`.
/// - A message whose (author, nonce) was seen among the last `cache_messages` messages is not
///   stored again: its sender gets the stored copy back.
/// - A change (edit, delete, reaction) is judged against its message as it will be once every
///   change already accepted is stored (`as_it_will_be`), so everyone is told only of changes
///   storage will hold, and changes sent at once end as the same changes one by one.
///
/// A room never panics on any input; every refusal is an `ERROR` action to its sender.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    renderer: Renderer,
    ids: IdSource,
    connections: HashMap<ConnectionId, Connection>,
    users: HashMap<UserId, UserEntry>,
    /// The topic and slow mode.
    settings: crate::wire::RoomSettings,
    /// The latest moderation events, oldest first (at most `audit_kept`).
    audit: VecDeque<crate::wire::AuditEntry>,
    /// Reports not resolved yet, oldest first.
    open_reports: Vec<crate::wire::AuditEntry>,
    /// People whose record holds a ban (in force or run out).
    banned: BTreeSet<UserId>,
    /// People with a role (owners and moderators), and people whose record holds a time-out
    /// (in force or run out): what `HANDSHAKE` tells of them is found without a walk of
    /// everyone who ever came.
    ranked: BTreeSet<UserId>,
    timed: BTreeSet<UserId>,
    /// Slow mode: when each person's latest room message was accepted.
    last_posted: HashMap<UserId, Millis>,
    /// How many open, identified connections each user online here has.
    online: BTreeMap<UserId, u32>,
    /// In a cluster: who is online through each other node, as it last said (see
    /// [`Room::handle_node_presence`]). Online means online here or through any node.
    remote: BTreeMap<String, BTreeSet<UserId>>,
    /// Everyone online, with the number of places (here, each other node) they are online
    /// at: who is online and how many, without a walk of the nodes (see the `presence`
    /// module).
    everywhere: BTreeMap<UserId, u32>,
    /// Counts changes of who is online here (what a cluster node tells the others).
    here_version: u64,
    /// Offline people with a `last_seen`, by it: the most recently seen are the last.
    seen_order: BTreeSet<(Millis, UserId)>,
    /// The running presence tick (see the `presence` module).
    presence: presence::Tick,
    /// Identified connections of legacy clients, which are told names lazily.
    legacy: BTreeSet<ConnectionId>,
    /// Recent stored messages, oldest first, at most `cache_messages`.
    recent: VecDeque<StoredMessage>,
    /// Every stored message with a seq above this is in `recent`; below, only storage has it.
    recent_floor: Seq,
    /// The latest change folded into a message that has left `recent`: a resume from before
    /// it could miss that change, so it says the gap is too big.
    changes_floor: Seq,
    /// Accepted events waiting for the host's log to number and store them, in the order
    /// they were accepted (the order the host numbers them in).
    pending: VecDeque<Pending>,
    /// (author, nonce) of messages in `recent` (with their seq) and `pending` (none yet), to
    /// drop resends.
    nonces: HashMap<(UserId, String), Option<Seq>>,
    /// The highest seq of the room's log that storage holds (a message or a change): what a
    /// `HANDSHAKE` covers. The host's log gives every seq (see [`Room::handle_persisted`]).
    latest_seq: Seq,
    effects: VecDeque<Effect>,
    /// New-identity budget per network address (see [`address_key`]).
    identity_budgets: HashMap<IpAddr, TokenBucket>,
    /// Live calls (a person is in at most one): see the `call` module.
    calls: Vec<call::Call>,
    /// In a cluster: calls of other nodes' people to people connected here.
    visits: Vec<call::Visit>,
    /// The highest [`Connection::seen_through`]: a message above it is new to everyone.
    ahead_through: Seq,
}

#[derive(Debug)]
struct Connection {
    user: Option<UserId>,
    /// The peer's network address, as counted for new identities.
    address: Option<IpAddr>,
    /// The latest seq in this connection's HANDSHAKE: everything after it reaches the
    /// connection by broadcast, so a resume only needs what came before.
    handshake_seq: Seq,
    /// A cluster node behind the shared log: the client resumed from a seq this node has not
    /// applied yet (it saw it through another node), so messages up to it are not sent again.
    seen_through: Seq,
    bucket: TokenBucket,
    /// The client named our protocol version when it identified (not a legacy client).
    speaks_ours: bool,
    /// A search of this connection is running: one at a time.
    searching: bool,
    /// The budget of call signals, once the connection sends one.
    signals: Option<TokenBucket>,
    /// A legacy client's: the names it has been told (see [`LegacyNames`]; empty for ours).
    legacy_names: LegacyNames,
}

/// The people whose current name a legacy connection has been told: their indexes in the
/// room (see [`UserEntry::index`]), sorted. Four bytes a person the connection heard of, where
/// a map from ids cost about a hundred: a room of 1,000 legacy clients who all talk holds a
/// million of these. A rename takes the person out of every connection's list
/// ([`Room::forget_legacy_name`]), so the new name is told before their next message.
#[derive(Debug, Default)]
struct LegacyNames(Vec<u32>);

impl LegacyNames {
    /// Whether person `index`'s current name was told.
    fn told(&self, index: u32) -> bool {
        self.0.binary_search(&index).is_ok()
    }

    /// Person `index`'s current name is told.
    fn tell(&mut self, index: u32) {
        if let Err(at) = self.0.binary_search(&index) {
            self.0.insert(at, index);
        }
    }

    /// Person `index` took a new name: not told yet.
    fn forget(&mut self, index: u32) {
        if let Ok(at) = self.0.binary_search(&index) {
            self.0.remove(at);
        }
    }
}

impl Connection {
    /// Who this connection is as a viewer of direct messages: its identity, when its client
    /// speaks our protocol; a legacy client (which would show a direct message as a room
    /// message) and an unidentified connection see room messages only.
    fn viewer(&self) -> Option<&str> {
        self.user.as_deref().filter(|_| self.speaks_ours)
    }
}

#[derive(Debug)]
struct UserEntry {
    name: String,
    token_hash: String,
    joined_at: Option<Millis>,
    last_seen: Option<Millis>,
    /// Its place among the people the room knows, in the order it learned of them (what a
    /// legacy connection's told names are kept by).
    index: u32,
    /// Owner or moderator (`None`: a member).
    role: Option<crate::wire::Role>,
    /// Until when they are timed out (past: not any more).
    timed_out_until: Option<Millis>,
    /// Their ban (it may have run out).
    ban: Option<crate::stored::Ban>,
    /// The network address (as counted) they last identified from through this node, since
    /// it started: what a ban with addresses takes. Never stored.
    last_address: Option<IpAddr>,
}

impl UserEntry {
    fn record(&self, id: &str) -> UserRecord {
        UserRecord {
            id: id.to_owned(),
            name: self.name.clone(),
            token_hash: self.token_hash.clone(),
            joined_at: self.joined_at,
            last_seen: self.last_seen,
            role: self.role,
            timed_out_until: self.timed_out_until,
            ban: self.ban.clone(),
        }
    }
}

/// People who are not online that a `HANDSHAKE` lists (the most recently seen).
pub const RECENT_PEOPLE: usize = 50;

impl Room {
    /// Opens a room on what storage holds. `seed` feeds the generator of ids and tokens: from
    /// the OS in production, fixed in tests and the mock.
    pub fn new(config: RoomConfig, snapshot: RoomSnapshot, seed: [u8; 32]) -> Self {
        let RoomSnapshot {
            mut messages,
            complete,
            latest_seq,
            users,
            settings,
            audit,
            open_reports,
        } = snapshot;
        messages.sort_by_key(|m| m.seq);
        let keep_from = messages.len().saturating_sub(config.cache_messages);
        let recent: VecDeque<StoredMessage> = messages.drain(keep_from..).collect();
        let recent_floor = match (complete && keep_from == 0, recent.front()) {
            (true, _) => 0,
            (false, Some(first)) => first.seq - 1,
            (false, None) => latest_seq,
        };
        let latest_seq = latest_seq
            .max(
                recent
                    .iter()
                    .map(StoredMessage::last_seq)
                    .max()
                    .unwrap_or(0),
            )
            .max(audit.iter().map(|e| e.seq).max().unwrap_or(0));
        let audit: VecDeque<crate::wire::AuditEntry> = {
            let skip = audit.len().saturating_sub(config.audit_kept);
            audit.into_iter().skip(skip).collect()
        };
        let nonces = recent
            .iter()
            .filter_map(|m| Some(((m.user_id.clone(), m.nonce.clone()?), Some(m.seq))))
            .collect();
        let users = users
            .into_iter()
            .zip(0u32..)
            .map(|(u, index)| {
                let entry = UserEntry {
                    index,
                    name: u.name,
                    token_hash: u.token_hash,
                    joined_at: u.joined_at,
                    last_seen: u.last_seen,
                    role: u.role,
                    timed_out_until: u.timed_out_until,
                    ban: u.ban,
                    last_address: None,
                };
                (u.id, entry)
            })
            .collect::<HashMap<UserId, UserEntry>>();
        let those = |holds: fn(&UserEntry) -> bool| -> BTreeSet<UserId> {
            users
                .iter()
                .filter(|(_, u)| holds(u))
                .map(|(id, _)| id.clone())
                .collect()
        };
        let banned = those(|u| u.ban.is_some());
        let ranked = those(|u| u.role.is_some());
        let timed = those(|u| u.timed_out_until.is_some());
        let seen_order = users
            .iter()
            .filter_map(|(id, u)| Some((u.last_seen?, id.clone())))
            .collect();
        Self {
            config,
            renderer: Renderer::new(),
            ids: IdSource::from_seed(seed),
            connections: HashMap::new(),
            users,
            settings,
            audit,
            open_reports,
            banned,
            ranked,
            timed,
            last_posted: HashMap::new(),
            online: BTreeMap::new(),
            remote: BTreeMap::new(),
            everywhere: BTreeMap::new(),
            here_version: 0,
            seen_order,
            presence: presence::Tick::default(),
            legacy: BTreeSet::new(),
            recent,
            recent_floor,
            changes_floor: 0,
            pending: VecDeque::new(),
            nonces,
            latest_seq,
            effects: VecDeque::new(),
            identity_budgets: HashMap::new(),
            calls: Vec::new(),
            visits: Vec::new(),
            ahead_through: 0,
        }
    }

    /// The next thing the host must do, if any.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When the room next needs [`handle_timeout`](Self::handle_timeout), if ever: the end of
    /// the presence tick, or the first unanswered ring to run out.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.presence_due()
            .into_iter()
            .chain(self.calls_due())
            .min()
    }

    /// Time has come ([`poll_timeout`](Self::poll_timeout)): a presence tick that is over is
    /// told, rings that ran out are missed calls.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.presence_timeout(now);
        self.calls_timeout(now);
    }

    /// The room's configuration.
    pub fn config(&self) -> &RoomConfig {
        &self.config
    }

    /// The highest seq of the room's log that storage holds: a single-process host numbers
    /// the next event one above it.
    pub fn latest_seq(&self) -> Seq {
        self.latest_seq
    }

    /// Who connection `conn` identified as, if it did.
    pub fn user_of(&self, conn: ConnectionId) -> Option<&UserId> {
        self.connections.get(&conn)?.user.as_ref()
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// A new connection opened, from an address the host does not know or does not limit
    /// (the in-page mock): it gets `HANDSHAKE`.
    pub fn handle_connect(&mut self, now: Millis, conn: ConnectionId) {
        self.handle_connect_from(now, conn, None);
    }

    /// A new connection opened from `peer`: it gets `HANDSHAKE`. Reusing an open id first
    /// closes the old one.
    pub fn handle_connect_from(&mut self, now: Millis, conn: ConnectionId, peer: Option<IpAddr>) {
        if self.connections.contains_key(&conn) {
            self.handle_disconnect(now, conn);
        }
        let handshake_seq = self.latest_seq;
        self.connections.insert(
            conn,
            Connection {
                user: None,
                address: peer.map(address_key),
                handshake_seq,
                seen_through: 0,
                bucket: TokenBucket::new(self.config.rate_burst, self.config.rate_per_second, now),
                speaks_ours: false,
                searching: false,
                signals: None,
                legacy_names: LegacyNames::default(),
            },
        );
        let handshake = self.handshake(now);
        self.send(conn, ServerAction::Handshake(handshake));
    }

    /// A connection closed. Its user goes offline when this was their last connection.
    pub fn handle_disconnect(&mut self, now: Millis, conn: ConnectionId) {
        let Some(connection) = self.connections.remove(&conn) else {
            return;
        };
        self.legacy.remove(&conn);
        let Some(user) = connection.user else { return };
        self.calls_lose(now, conn, &user);
        let last = match self.online.get_mut(&user) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => true,
            None => false,
        };
        if last {
            self.online.remove(&user);
            self.here_version += 1;
            if self.place_removed(&user) {
                self.went_offline(now, user, true);
            }
        }
    }

    /// A text frame arrived: decodes it and handles the action, or answers with `ERROR`.
    pub fn handle_frame(&mut self, now: Millis, conn: ConnectionId, text: &str) {
        match crate::codec::decode_client(text) {
            Ok(action) => self.handle_action(now, conn, action),
            Err(err) => self.refuse(conn, err.code(), err.to_string()),
        }
    }

    /// An action arrived on an open connection. Actions on unknown connections are ignored.
    pub fn handle_action(&mut self, now: Millis, conn: ConnectionId, action: ClientAction) {
        if !self.connections.contains_key(&conn) {
            return;
        }
        match action {
            ClientAction::HandshakeUserInfo(info) => self.identify(now, conn, info),
            ClientAction::Message(message) => self.post(now, conn, message),
            ClientAction::NameChange(change) => self.rename(now, conn, change),
            ClientAction::HistoryRequest(request) => self.history(now, conn, request),
            ClientAction::EditMessage(edit) => {
                let asked = Asked::Edit(edit.raw_message);
                self.change(now, conn, edit.target, asked, edit.nonce);
            }
            ClientAction::DeleteMessage(delete) => {
                self.change(now, conn, delete.target, Asked::Delete, delete.nonce);
            }
            ClientAction::React(react) => {
                let asked = Asked::React(react.emoji, react.on);
                self.change(now, conn, react.target, asked, react.nonce);
            }
            ClientAction::Typing(typing) => self.typing(now, conn, typing.to),
            ClientAction::Search(search) => self.search(now, conn, search),
            ClientAction::Call(signal) => self.call(now, conn, signal),
            ClientAction::SetRole(asked) => self.set_role(now, conn, asked),
            ClientAction::Moderate(asked) => self.moderate(now, conn, asked),
            ClientAction::SetRoom(asked) => self.set_room(now, conn, asked),
            ClientAction::Report(asked) => self.report(now, conn, asked),
            ClientAction::ResolveReport(asked) => self.resolve_report(now, conn, asked),
            ClientAction::AuditRequest(asked) => self.audit_request(now, conn, asked),
            ClientAction::PeopleRequest(asked) => self.people_request(now, conn, asked),
        }
    }

    /// Takes a new-identity token from `address`'s budget (always granted without one).
    fn spend_identity(&mut self, now: Millis, address: Option<IpAddr>) -> bool {
        let Some(address) = address else {
            return true;
        };
        if self.identity_budgets.len() >= MAX_TRACKED_ADDRESSES
            && !self.identity_budgets.contains_key(&address)
        {
            // Forget addresses whose budget has refilled: they are as if never seen.
            self.identity_budgets
                .retain(|_, bucket| !bucket.is_full(now));
            if self.identity_budgets.len() >= MAX_TRACKED_ADDRESSES {
                return false;
            }
        }
        let (burst, per_minute) = (
            self.config.identity_burst,
            self.config.identities_per_minute,
        );
        self.identity_budgets
            .entry(address)
            .or_insert_with(|| TokenBucket::per_minute(burst, per_minute, now))
            .try_take(now)
    }

    fn identify(&mut self, now: Millis, conn: ConnectionId, info: HandshakeUserInfo) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        if connection.user.is_some() {
            return self.refuse(conn, ErrorCode::AlreadyIdentified, "already identified");
        }
        let handshake_seq = connection.handshake_seq;
        let address = connection.address;
        let known = info.user_id.as_ref().and_then(|id| {
            let user = self.users.get(id)?;
            let token = info.token.as_deref()?;
            (hash_token(token) == user.token_hash).then(|| (id.clone(), user.name.clone()))
        });
        if let Some((id, _)) = &known
            && let Some(ban) = self.ban_of(id, now).cloned()
        {
            return self.refuse_banned(conn, &ban, now);
        }
        if known.is_none()
            && let Some(address) = address
            && self.address_banned(address, now)
        {
            return self.refuse_banned_address(conn);
        }
        let user_id = match known {
            Some((id, name)) => {
                self.send(
                    conn,
                    ServerAction::UserInfo(UserInfo {
                        user_id: id.clone(),
                        name,
                        token: None,
                    }),
                );
                id
            }
            None => {
                if !self.spend_identity(now, address) {
                    return self.refuse(
                        conn,
                        ErrorCode::TooManyIdentities,
                        "too many new identities from your network lately; try again later",
                    );
                }
                if info.user_id.is_some() {
                    self.refuse(
                        conn,
                        ErrorCode::IdentityRejected,
                        "that identity needs its token; you have a new one",
                    );
                }
                self.new_user(now, conn)
            }
        };
        let speaks_ours = info.protocol_version.is_some();
        let (index, joined_at, last_seen) = self
            .users
            .get(&user_id)
            .map_or((0, None, None), |u| (u.index, u.joined_at, u.last_seen));
        if let Some(entry) = self.users.get_mut(&user_id)
            && address.is_some()
        {
            entry.last_address = address;
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.user = Some(user_id.clone());
            connection.speaks_ours = speaks_ours;
            if !speaks_ours {
                // It knows its own name (USER_INFO); others' it is told lazily.
                connection.legacy_names.tell(index);
            }
        }
        if !speaks_ours {
            self.legacy.insert(conn);
            // Legacy order: USER_INFO, then USER_CONNECTED (its own only: others' presence
            // would cost every legacy client a frame per person).
            self.send(
                conn,
                ServerAction::UserConnected(UserRef {
                    joined_at,
                    ..UserRef::of(user_id.clone())
                }),
            );
        }
        let count = self.online.entry(user_id.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.here_version += 1;
            if self.place_added(&user_id) {
                self.came_online(now, user_id.clone(), joined_at, last_seen);
            }
        }
        match info.since {
            Some(since) => self.resume(conn, since, handshake_seq),
            None => self.direct_since_handshake(conn, handshake_seq),
        }
        if speaks_ours {
            // Which conversations this person has, however old: storage is asked, as the
            // room's memory keeps only the latest messages.
            self.effects.push_back(Effect::LoadConversations {
                to: conn,
                viewer: user_id,
                since: info.since.unwrap_or(Seq::MAX),
                limit: self.config.max_conversations,
            });
        }
    }

    fn new_user(&mut self, now: Millis, conn: ConnectionId) -> UserId {
        let id = self.ids.hex(12);
        let token = self.ids.hex(32);
        let entry = UserEntry {
            index: self.next_user_index(),
            name: DEFAULT_NAME.to_owned(),
            token_hash: hash_token(&token),
            joined_at: Some(now),
            last_seen: None,
            role: None,
            timed_out_until: None,
            ban: None,
            last_address: None,
        };
        self.effects
            .push_back(Effect::PersistUser(entry.record(&id)));
        self.users.insert(id.clone(), entry);
        // Legacy order: the new id's NAME_CHANGE first (to it; everyone else learns the name
        // with the next presence tick, or lazily before its first message).
        self.send(
            conn,
            ServerAction::NameChange(NameChanged::new(id.clone(), DEFAULT_NAME.to_owned())),
        );
        self.send(
            conn,
            ServerAction::UserInfo(UserInfo {
                user_id: id.clone(),
                name: DEFAULT_NAME.to_owned(),
                token: Some(token),
            }),
        );
        id
    }

    /// The identity bound to `conn`, after checking the payload's claim and the rate limit.
    /// Refusals name `nonce`, the nonce of the action being checked, if it has one.
    fn acting_user(
        &mut self,
        now: Millis,
        conn: ConnectionId,
        claim: Option<&UserId>,
        nonce: Option<&String>,
    ) -> Option<UserId> {
        let Some(user) = self.connections.get(&conn)?.user.clone() else {
            let code = ErrorCode::NotIdentified;
            self.refuse_for(conn, code, "send HANDSHAKE_USER_INFO first", nonce);
            return None;
        };
        if claim.is_some_and(|claimed| *claimed != user) {
            let code = ErrorCode::UserMismatch;
            self.refuse_for(conn, code, "you can only act as yourself", nonce);
            return None;
        }
        self.spend_token(now, conn, nonce).then_some(user)
    }

    /// Takes one token from the connection's bucket, or refuses with `RATE_LIMITED`.
    fn spend_token(&mut self, now: Millis, conn: ConnectionId, nonce: Option<&String>) -> bool {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return false;
        };
        if connection.bucket.try_take(now) {
            return true;
        }
        self.refuse_for(conn, ErrorCode::RateLimited, "slow down", nonce);
        false
    }

    fn rename(&mut self, now: Millis, conn: ConnectionId, change: ChangeName) {
        let Some(user) = self.acting_user(now, conn, change.user_id.as_ref(), None) else {
            return;
        };
        let name = match clean_name(&change.name, self.config.normalize) {
            Ok(name) => name,
            Err(problem) => return self.refuse(conn, ErrorCode::InvalidName, problem.to_string()),
        };
        let Some(entry) = self.users.get_mut(&user) else {
            return;
        };
        entry.name = name.clone();
        let index = entry.index;
        let record = entry.record(&user);
        self.effects.push_back(Effect::PersistUser(record));
        self.forget_legacy_name(index);
        // The echo to the connection that asked (legacy clients wait for it); everyone else
        // hears it with the presence tick (legacy clients: before this person's next message).
        if let Some(connection) = self.connections.get_mut(&conn)
            && !connection.speaks_ours
        {
            connection.legacy_names.tell(index);
        }
        self.send(
            conn,
            ServerAction::NameChange(NameChanged::new(user.clone(), name.clone())),
        );
        self.presence_renamed(now, user, name);
    }

    /// The index the next person the room learns of gets.
    fn next_user_index(&self) -> u32 {
        u32::try_from(self.users.len()).unwrap_or(u32::MAX)
    }

    /// `user`'s open connections here, in order.
    fn connections_of(&self, user: &str) -> Vec<ConnectionId> {
        let mut theirs: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.user.as_deref() == Some(user))
            .map(|(id, _)| *id)
            .collect();
        theirs.sort();
        theirs
    }

    fn names_of<'a>(&self, ids: impl Iterator<Item = &'a UserId>) -> BTreeMap<UserId, String> {
        ids.filter_map(|id| Some((id.clone(), self.users.get(id)?.name.clone())))
            .collect()
    }

    fn send(&mut self, to: ConnectionId, action: ServerAction) {
        self.effects.push_back(Effect::Send { to, action });
    }

    fn refuse(&mut self, to: ConnectionId, code: ErrorCode, message: impl Into<String>) {
        self.refuse_for(to, code, message, None);
    }

    /// An `ERROR` naming the nonce of the action it refuses, when there is one.
    fn refuse_for(
        &mut self,
        to: ConnectionId,
        code: ErrorCode,
        message: impl Into<String>,
        nonce: Option<&String>,
    ) {
        self.send(to, ServerAction::error_for(code, message, nonce.cloned()));
    }
}

/// The key a network address is counted under: IPv4 addresses as they are, IPv6 by their /64
/// (one subscriber usually has a whole /64 to pick addresses from). Hosts count connections
/// per address under the same key.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// Keeps `id` in `set` while `holds`: the room's indexes of people (with a role, a time-out,
/// a ban) follow their records.
fn listed(set: &mut BTreeSet<UserId>, id: &str, holds: bool) {
    if holds {
        if !set.contains(id) {
            set.insert(id.to_owned());
        }
    } else {
        set.remove(id);
    }
}

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod call_tests;
#[cfg(test)]
mod change_tests;
#[cfg(test)]
mod direct_tests;
#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod people_tests;
#[cfg(test)]
mod role_tests;
#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod tests;
