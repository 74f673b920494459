//! The room engine: every rule of a chat room, with no IO.

mod call;
mod config;
mod effect;
mod identity;
mod presence;
mod rate;
mod text;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

pub use config::{
    DEFAULT_NAME, HTML_ALLOWANCE, MAX_NAME_CHARS, MAX_NONCE_CHARS, MAX_TRACKED_ADDRESSES,
    RoomConfig,
};
pub use effect::{
    ChangeKind, ConnectionId, DELETED_HTML, Effect, MAX_REACTIONS, SearchTask, StoredChange,
    StoredMessage, UserRecord, may_see,
};
#[cfg(feature = "nfc")]
pub use identity::nfc;
pub use identity::{IdSource, MAX_COMBINING_MARKS, NameProblem, Normalize, clean_name, hash_token};
pub use rate::TokenBucket;
pub use text::{TextProblem, check_text};

use crate::error::ErrorCode;
use crate::markdown::Renderer;
use crate::wire::{
    ChangeName, ClientAction, Handshake, HandshakeUserInfo, History, HistoryRequest, MessageRecord,
    Millis, NameChanged, PROTOCOL_VERSION, Person, Resume, RoomLimits, Search, SearchResults,
    SendMessage, Seq, ServerAction, TypingUser, UserId, UserInfo, UserRef,
};

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
}

/// One chat room as a deterministic state machine.
///
/// # Contract
/// A host (the `real-server` socket server, or the in-page mock) feeds the room inputs and
/// carries out what it asks, and nothing else:
///
/// - **Inputs.** [`handle_connect`](Self::handle_connect), [`handle_frame`](Self::handle_frame)
///   (or [`handle_action`](Self::handle_action) for an already decoded action),
///   [`handle_disconnect`](Self::handle_disconnect), and the answers to storage requests
///   ([`handle_persisted`](Self::handle_persisted),
///   [`handle_persist_failed`](Self::handle_persist_failed),
///   [`handle_history_loaded`](Self::handle_history_loaded),
///   [`handle_history_failed`](Self::handle_history_failed)). Each takes `now`, milliseconds
///   since the epoch, from the host's clock: the room never reads a clock, a socket or a disk.
/// - **Outputs.** [`Effect`]s, taken with [`poll_effect`](Self::poll_effect) in order and carried
///   out in that order: send to one connection, broadcast, persist, load history.
/// - **Durability.** An accepted message is first only a [`Effect::PersistMessage`]; it is
///   broadcast (and enters the room's memory) after the host reports it stored with
///   `handle_persisted`. A host confirms in sequence order. A failed store is reported with
///   `handle_persist_failed`; its author gets `STORAGE_FAILED` and nobody else sees it.
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
    /// How many open, identified connections each online user has.
    online: BTreeMap<UserId, u32>,
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
    /// The highest seq storage has confirmed (a message or a change): what a `HANDSHAKE`
    /// covers.
    confirmed_seq: Seq,
    /// Accepted messages waiting for storage, in seq order.
    pending: VecDeque<Pending>,
    /// (author, nonce) of messages in `recent` and `pending`, to drop resends.
    nonces: HashMap<(UserId, String), Seq>,
    latest_seq: Seq,
    effects: VecDeque<Effect>,
    /// New-identity budget per network address (see [`address_key`]).
    identity_budgets: HashMap<IpAddr, TokenBucket>,
    /// Live calls (a person is in at most one): see the `call` module.
    calls: Vec<call::Call>,
}

#[derive(Debug)]
struct Connection {
    user: Option<UserId>,
    /// The peer's network address, as counted for new identities.
    address: Option<IpAddr>,
    /// The latest seq in this connection's HANDSHAKE: everything after it reaches the
    /// connection by broadcast, so a resume only needs what came before.
    handshake_seq: Seq,
    bucket: TokenBucket,
    /// The client named our protocol version when it identified (not a legacy client).
    speaks_ours: bool,
    /// A search of this connection is running: one at a time.
    searching: bool,
    /// The budget of call signals, once the connection sends one.
    signals: Option<TokenBucket>,
    /// A legacy client's: the names it has been told, by version (empty for ours).
    legacy_names: BTreeMap<UserId, u32>,
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
    /// Counts renames (for the names told to legacy clients).
    name_version: u32,
}

impl UserEntry {
    fn record(&self, id: &str) -> UserRecord {
        UserRecord {
            id: id.to_owned(),
            name: self.name.clone(),
            token_hash: self.token_hash.clone(),
            joined_at: self.joined_at,
            last_seen: self.last_seen,
        }
    }
}

/// People who are not online that a `HANDSHAKE` lists (the most recently seen).
pub const RECENT_PEOPLE: usize = 50;

#[derive(Debug)]
struct Pending {
    event: PendingEvent,
    from: ConnectionId,
}

/// A change a client asks for.
#[derive(Debug)]
enum Asked {
    Edit(String),
    Delete,
    React(String, bool),
}

/// An event of the room's log waiting for storage.
#[derive(Debug)]
enum PendingEvent {
    Message(StoredMessage),
    Change {
        change: StoredChange,
        nonce: Option<String>,
    },
}

impl PendingEvent {
    fn seq(&self) -> Seq {
        match self {
            PendingEvent::Message(m) => m.seq,
            PendingEvent::Change { change, .. } => change.seq,
        }
    }
}

impl Room {
    /// Opens a room on what storage holds. `seed` feeds the generator of ids and tokens: from
    /// the OS in production, fixed in tests and the mock.
    pub fn new(config: RoomConfig, snapshot: RoomSnapshot, seed: [u8; 32]) -> Self {
        let RoomSnapshot {
            mut messages,
            complete,
            latest_seq,
            users,
        } = snapshot;
        messages.sort_by_key(|m| m.seq);
        let keep_from = messages.len().saturating_sub(config.cache_messages);
        let recent: VecDeque<StoredMessage> = messages.drain(keep_from..).collect();
        let recent_floor = match (complete && keep_from == 0, recent.front()) {
            (true, _) => 0,
            (false, Some(first)) => first.seq - 1,
            (false, None) => latest_seq,
        };
        let latest_seq = latest_seq.max(
            recent
                .iter()
                .map(StoredMessage::last_seq)
                .max()
                .unwrap_or(0),
        );
        let nonces = recent
            .iter()
            .filter_map(|m| Some(((m.user_id.clone(), m.nonce.clone()?), m.seq)))
            .collect();
        let users = users
            .into_iter()
            .map(|u| {
                let entry = UserEntry {
                    name: u.name,
                    token_hash: u.token_hash,
                    joined_at: u.joined_at,
                    last_seen: u.last_seen,
                    name_version: 0,
                };
                (u.id, entry)
            })
            .collect::<HashMap<UserId, UserEntry>>();
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
            online: BTreeMap::new(),
            seen_order,
            presence: presence::Tick::default(),
            legacy: BTreeSet::new(),
            recent,
            recent_floor,
            changes_floor: 0,
            confirmed_seq: latest_seq,
            pending: VecDeque::new(),
            nonces,
            latest_seq,
            effects: VecDeque::new(),
            identity_budgets: HashMap::new(),
            calls: Vec::new(),
        }
    }

    /// The next thing the host must do, if any.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// The room's configuration.
    pub fn config(&self) -> &RoomConfig {
        &self.config
    }

    /// Highest seq accepted so far (stored or waiting for storage).
    pub fn latest_seq(&self) -> Seq {
        self.latest_seq
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
        // The newest messages, as many as the count and the byte budget allow.
        let mut budget = self.config.max_answer_bytes;
        // Sent before anyone is identified: room messages only (direct messages follow
        // identification, see `identify`).
        let mut messages: Vec<MessageRecord> = self
            .recent
            .iter()
            .rev()
            .filter(|m| m.visible_to(None))
            .take(self.config.handshake_messages)
            .map(StoredMessage::to_record)
            .take_while(|record| take_bytes(&mut budget, record))
            .collect();
        messages.reverse();
        let online: Vec<UserId> = self.online.keys().cloned().collect();
        let people = self.people(&online);
        let mut user_names = self.names_of(messages.iter().map(|m| &m.user_id));
        user_names.extend(self.names_of(people.iter().map(|p| &p.user_id)));
        let handshake_seq = self.confirmed_seq;
        self.connections.insert(
            conn,
            Connection {
                user: None,
                address: peer.map(address_key),
                handshake_seq,
                bucket: TokenBucket::new(self.config.rate_burst, self.config.rate_per_second, now),
                speaks_ours: false,
                searching: false,
                signals: None,
                legacy_names: BTreeMap::new(),
            },
        );
        self.send(
            conn,
            ServerAction::Handshake(Handshake {
                server_name: self.config.server_name.clone(),
                messages,
                user_names,
                protocol_version: Some(PROTOCOL_VERSION),
                latest_seq: Some(handshake_seq),
                online: Some(online),
                limits: Some(RoomLimits {
                    max_message_chars: u32::try_from(self.config.max_message_chars)
                        .unwrap_or(u32::MAX),
                    max_name_chars: u32::try_from(MAX_NAME_CHARS).unwrap_or(u32::MAX),
                    rate_burst: self.config.rate_burst,
                    rate_per_second: self.config.rate_per_second,
                }),
                people: Some(people),
                ice_servers: self.config.ice_servers.clone(),
            }),
        );
    }

    /// Everyone online, then the [`RECENT_PEOPLE`] seen most recently, as the people list
    /// shows them.
    fn people(&self, online: &[UserId]) -> Vec<Person> {
        let person = |id: &UserId, entry: &UserEntry| Person {
            user_id: id.clone(),
            joined_at: entry.joined_at,
            last_seen: entry.last_seen,
        };
        let now_here = online
            .iter()
            .filter_map(|id| Some(person(id, self.users.get(id)?)));
        let lately = self
            .seen_order
            .iter()
            .rev()
            .filter_map(|(_, id)| Some(person(id, self.users.get(id)?)))
            .take(RECENT_PEOPLE);
        now_here.chain(lately).collect()
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
            if let Some(entry) = self.users.get_mut(&user) {
                if let Some(before) = entry.last_seen.replace(now) {
                    self.seen_order.remove(&(before, user.clone()));
                }
                self.seen_order.insert((now, user.clone()));
                let record = entry.record(&user);
                self.effects.push_back(Effect::PersistUser(record));
            }
            self.presence_left(now, user);
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
        }
    }

    /// Storage holds every accepted event (message or change) up to `seq`: they are broadcast
    /// now.
    pub fn handle_persisted(&mut self, _now: Millis, seq: Seq) {
        while self.pending.front().is_some_and(|p| p.event.seq() <= seq) {
            let Some(Pending { event, .. }) = self.pending.pop_front() else {
                break;
            };
            self.confirmed_seq = self.confirmed_seq.max(event.seq());
            match event {
                PendingEvent::Message(message) => {
                    let record = message.to_record();
                    self.remember(message);
                    self.deliver(ServerAction::Message(record));
                }
                PendingEvent::Change { change, nonce } => {
                    let Some(message) = self.recent_mut(change.target) else {
                        continue;
                    };
                    change.apply(message);
                    let record = MessageRecord {
                        change_nonce: nonce,
                        ..message.to_record()
                    };
                    self.deliver(ServerAction::MessageChanged(record));
                }
            }
        }
    }

    /// A message (new or changed) to everyone who may see it: a room message is broadcast, a
    /// direct message goes to the open connections of its two people only.
    fn deliver(&mut self, action: ServerAction) {
        let (ServerAction::Message(record) | ServerAction::MessageChanged(record)) = &action else {
            return self.effects.push_back(Effect::Broadcast(action));
        };
        // Whoever reads it has been told of its author first.
        self.presence_flush_for(&record.user_id);
        let Some(to) = &record.to else {
            let author = record.user_id.clone();
            self.tell_legacy_name(&author);
            return self.effects.push_back(Effect::Broadcast(action));
        };
        let author = &record.user_id;
        let mut hearers: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| may_see(c.viewer(), author, Some(to)))
            .map(|(id, _)| *id)
            .collect();
        hearers.sort();
        for conn in hearers {
            self.send(conn, action.clone());
        }
    }

    /// Storage could not keep event `seq`: its author is told (by the nonce of the action)
    /// and nobody else sees it.
    pub fn handle_persist_failed(&mut self, _now: Millis, seq: Seq) {
        let Some(index) = self.pending.iter().position(|p| p.event.seq() == seq) else {
            return;
        };
        let Some(Pending { event, from }) = self.pending.remove(index) else {
            return;
        };
        let nonce = match event {
            PendingEvent::Message(message) => {
                if let Some(nonce) = &message.nonce {
                    self.nonces.remove(&(message.user_id, nonce.clone()));
                }
                message.nonce
            }
            PendingEvent::Change { nonce, .. } => nonce,
        };
        self.refuse_for(
            from,
            ErrorCode::StorageFailed,
            "the room could not store your message; send it again",
            nonce.as_ref(),
        );
    }

    /// Storage answered an [`Effect::LoadHistory`]: `messages` (any order) have `seq < before`.
    pub fn handle_history_loaded(
        &mut self,
        _now: Millis,
        conn: ConnectionId,
        before: Seq,
        mut messages: Vec<StoredMessage>,
        has_more: bool,
    ) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        // Storage was asked for this viewer's history only; checked again all the same.
        let viewer = connection.viewer();
        messages.retain(|m| m.seq < before && m.visible_to(viewer));
        messages.sort_by_key(|m| m.seq);
        // The newest of the page, as many as fit the byte budget (always at least one, so that
        // paging moves on); if some were left out, there is more.
        let mut budget = self.config.max_answer_bytes;
        let mut records: Vec<MessageRecord> = Vec::with_capacity(messages.len());
        for message in messages.iter().rev() {
            let record = message.to_record();
            if !take_bytes(&mut budget, &record) && !records.is_empty() {
                break;
            }
            records.push(record);
        }
        let has_more = has_more || records.len() < messages.len();
        records.reverse();
        let user_names = self.names_of(records.iter().map(|m| &m.user_id));
        self.send(
            conn,
            ServerAction::History(History {
                before,
                messages: records,
                has_more,
                user_names,
            }),
        );
    }

    /// The host ran an [`Effect::Search`]: `messages` are its results (any order). They are
    /// checked again (visibility, the query, `before`), cut to the page and the byte budget,
    /// and sent as `SEARCH_RESULTS`; `next` is where the search goes on.
    pub fn handle_search_done(
        &mut self,
        _now: Millis,
        task: SearchTask,
        mut messages: Vec<StoredMessage>,
        mut next: Option<Seq>,
    ) {
        let Some(connection) = self.connections.get_mut(&task.to) else {
            return;
        };
        connection.searching = false;
        let viewer = connection.viewer();
        let before = task.before.unwrap_or(Seq::MAX);
        messages.retain(|m| m.seq < before && task.query.finds(m, viewer));
        messages.sort_by_key(|m| std::cmp::Reverse(m.seq));
        messages.dedup_by_key(|m| m.seq);
        let limit = usize::try_from(task.limit.min(self.config.search_page)).unwrap_or(0);
        if messages.len() > limit {
            messages.truncate(limit);
            next = messages.last().map(|m| m.seq);
        }
        let mut budget = self.config.max_answer_bytes;
        let mut records: Vec<MessageRecord> = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let record = message.to_record();
            if !take_bytes(&mut budget, &record) && i > 0 {
                // Go on after the last one that fit.
                next = Some(messages[i - 1].seq);
                break;
            }
            records.push(record);
        }
        let user_names = self.names_of(records.iter().map(|m| &m.user_id));
        self.send(
            task.to,
            ServerAction::SearchResults(SearchResults {
                query: task.asked,
                before: task.before,
                nonce: task.nonce,
                messages: records,
                next,
                user_names,
            }),
        );
    }

    /// The host could not run an [`Effect::Search`] (storage failed, or it ran out of time):
    /// the asker gets `SEARCH_FAILED` with its nonce.
    pub fn handle_search_failed(&mut self, _now: Millis, task: SearchTask) {
        let Some(connection) = self.connections.get_mut(&task.to) else {
            return;
        };
        connection.searching = false;
        self.refuse_for(
            task.to,
            ErrorCode::SearchFailed,
            "the search could not be finished; try again, or with other words",
            task.nonce.as_ref(),
        );
    }

    /// Storage could not answer an [`Effect::LoadHistory`]: the asker gets `HISTORY_FAILED`
    /// (no message of theirs is affected).
    pub fn handle_history_failed(&mut self, _now: Millis, conn: ConnectionId) {
        if self.connections.contains_key(&conn) {
            self.refuse(
                conn,
                ErrorCode::HistoryFailed,
                "older history could not be read; try again",
            );
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
        let (version, joined_at, last_seen) =
            self.users.get(&user_id).map_or((0, None, None), |u| {
                (u.name_version, u.joined_at, u.last_seen)
            });
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.user = Some(user_id.clone());
            connection.speaks_ours = speaks_ours;
            if !speaks_ours {
                // It knows its own name (USER_INFO); others' it is told lazily.
                connection.legacy_names.insert(user_id.clone(), version);
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
            if let Some(seen) = last_seen {
                self.seen_order.remove(&(seen, user_id.clone()));
            }
            self.presence_joined(now, user_id, joined_at);
        }
        match info.since {
            Some(since) => self.resume(conn, since, handshake_seq),
            None => self.direct_since_handshake(conn, handshake_seq),
        }
    }

    /// The `HANDSHAKE` (sent before identification) carried room messages only: a client that
    /// identified without `since` gets the direct messages of its own among the latest it
    /// would have seen, as a `RESUME` that only adds them.
    fn direct_since_handshake(&mut self, conn: ConnectionId, handshake_seq: Seq) {
        let Some(viewer) = self.connections.get(&conn).and_then(Connection::viewer) else {
            return;
        };
        let mut latest: Vec<&StoredMessage> = self
            .recent
            .iter()
            .rev()
            .filter(|m| m.seq <= handshake_seq && m.visible_to(Some(viewer)))
            .take(self.config.handshake_messages)
            .collect();
        latest.reverse();
        // And those stored between the handshake and now: they reached no one here (only
        // identified viewers get direct messages live).
        latest.extend(
            self.recent
                .iter()
                .filter(|m| m.seq > handshake_seq && m.to.is_some() && m.visible_to(Some(viewer))),
        );
        let since = latest.first().map_or(handshake_seq, |m| m.seq - 1);
        let mut budget = self.config.max_answer_bytes;
        let messages: Vec<MessageRecord> = latest
            .into_iter()
            .filter(|m| m.to.is_some())
            .map(StoredMessage::to_record)
            .take_while(|record| take_bytes(&mut budget, record))
            .collect();
        if messages.is_empty() {
            return;
        }
        let user_names = self.names_of(messages.iter().map(|m| &m.user_id));
        self.send(
            conn,
            ServerAction::Resume(Resume {
                since,
                messages,
                gap_too_big: false,
                user_names,
            }),
        );
    }

    fn new_user(&mut self, now: Millis, conn: ConnectionId) -> UserId {
        let id = self.ids.hex(12);
        let token = self.ids.hex(32);
        let entry = UserEntry {
            name: DEFAULT_NAME.to_owned(),
            token_hash: hash_token(&token),
            joined_at: Some(now),
            last_seen: None,
            name_version: 0,
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

    fn resume(&mut self, conn: ConnectionId, since: Seq, handshake_seq: Seq) {
        let viewer = self.connections.get(&conn).and_then(Connection::viewer);
        // What came after `since`: new messages, and older ones changed since (as they are now).
        // A direct message stored after the handshake and before identification reached no
        // one on this connection (only identified viewers get them live): it is missed too.
        let missed: Vec<MessageRecord> = self
            .recent
            .iter()
            .filter(|m| {
                ((m.seq > since && (m.seq <= handshake_seq || m.to.is_some()))
                    || m.changed_seq.is_some_and(|c| c > since))
                    && m.visible_to(viewer)
            })
            .map(StoredMessage::to_record)
            .collect();
        let mut budget = self.config.max_answer_bytes;
        let gap_too_big = since < self.recent_floor.max(self.changes_floor)
            || since > self.latest_seq
            || missed.len() > self.config.max_resume
            || !missed.iter().all(|record| take_bytes(&mut budget, record));
        let messages = if gap_too_big { Vec::new() } else { missed };
        let user_names = self.names_of(messages.iter().map(|m| &m.user_id));
        self.send(
            conn,
            ServerAction::Resume(Resume {
                since,
                messages,
                gap_too_big,
                user_names,
            }),
        );
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

    fn post(&mut self, now: Millis, conn: ConnectionId, message: SendMessage) {
        // A nonce that breaks its rule is not echoed back (it may be huge).
        let valid_nonce = message
            .nonce
            .as_ref()
            .filter(|n| (1..=MAX_NONCE_CHARS).contains(&n.chars().count()));
        let Some(user) = self.acting_user(now, conn, message.user_id.as_ref(), valid_nonce) else {
            return;
        };
        let valid_nonce = valid_nonce.cloned();
        let SendMessage {
            raw_message,
            nonce,
            reply_to,
            to,
            ..
        } = message;
        let nonce_ref = valid_nonce.as_ref();
        if !self.text_fits(conn, &raw_message, nonce_ref) {
            return;
        }
        if let Some(to) = &to {
            let speaks_ours = self.connections.get(&conn).is_some_and(|c| c.speaks_ours);
            let problem = if !speaks_ours {
                Some("your client cannot show direct messages")
            } else if *to == user || !self.users.contains_key(to) {
                Some("a direct message goes to someone else known in this room")
            } else {
                None
            };
            if let Some(text) = problem {
                return self.refuse_for(conn, ErrorCode::UnknownUser, text, nonce_ref);
            }
        }
        if nonce.is_some() && valid_nonce.is_none() {
            return self.refuse(
                conn,
                ErrorCode::InvalidNonce,
                format!("a nonce has 1 to {MAX_NONCE_CHARS} characters"),
            );
        }
        if let Some(nonce) = &valid_nonce
            && let Some(&seq) = self.nonces.get(&(user.clone(), nonce.clone()))
        {
            // A resend. Still waiting for storage: the broadcast will reach this sender too.
            if let Some(stored) = self.recent.iter().find(|m| m.seq == seq) {
                let record = stored.to_record();
                self.send(conn, ServerAction::Message(record));
            }
            return;
        }
        // A reply answers a message: one the room keeps in memory is checked; an older one
        // (only storage has it) is taken on trust, as the client will find it there.
        // It answers within its own conversation: a room message answers a room message, a
        // direct message one of the same two people.
        if let Some(answered) = reply_to
            && (answered == 0
                || answered > self.latest_seq
                || (answered > self.recent_floor
                    && !self
                        .find_message(answered)
                        .is_some_and(|m| same_audience(m, &user, to.as_ref()))))
        {
            let text = "the message you reply to is not in this room";
            return self.refuse_for(conn, ErrorCode::UnknownMessage, text, nonce_ref);
        }
        let Some(html) = self.render_within_bounds(conn, &raw_message, nonce_ref) else {
            return;
        };
        self.latest_seq += 1;
        let seq = self.latest_seq;
        let stored = StoredMessage {
            seq,
            id: self.ids.hex(12),
            user_id: user.clone(),
            html,
            raw: raw_message,
            timestamp: now,
            nonce: nonce.clone(),
            reply_to,
            to,
            ..StoredMessage::default()
        };
        if let Some(nonce) = nonce {
            self.nonces.insert((user, nonce), seq);
        }
        self.effects
            .push_back(Effect::PersistMessage(stored.clone()));
        self.pending.push_back(Pending {
            event: PendingEvent::Message(stored),
            from: conn,
        });
    }

    /// A message's text is not blank and not too long; otherwise its sender is told.
    fn text_fits(&mut self, conn: ConnectionId, raw: &str, nonce: Option<&String>) -> bool {
        let Err(problem) = check_text(raw, self.config.max_message_chars) else {
            return true;
        };
        let code = match problem {
            TextProblem::Blank => ErrorCode::EmptyMessage,
            TextProblem::TooLong(_) => ErrorCode::MessageTooLong,
        };
        self.refuse_for(conn, code, problem.to_string(), nonce);
        false
    }

    /// The message's HTML, if it is within the room's bound for its length; otherwise its
    /// sender is told.
    fn render_within_bounds(
        &mut self,
        conn: ConnectionId,
        raw: &str,
        nonce: Option<&String>,
    ) -> Option<String> {
        let html = self.renderer.render(raw);
        let max_html = raw
            .len()
            .saturating_mul(self.config.max_html_ratio)
            .saturating_add(HTML_ALLOWANCE);
        if html.len() > max_html {
            self.refuse_for(
                conn,
                ErrorCode::MessageTooComplex,
                "the message nests too deeply (quotes or lists inside each other); flatten it",
                nonce,
            );
            return None;
        }
        Some(html)
    }

    /// A change to message `target`: an edit or the delete (by its author only) or a
    /// reaction (by anyone). The change is an event of its own: stored, then broadcast as the
    /// message is now.
    fn change(
        &mut self,
        now: Millis,
        conn: ConnectionId,
        target: Seq,
        asked: Asked,
        nonce: Option<String>,
    ) {
        let nonce = nonce.filter(|n| (1..=MAX_NONCE_CHARS).contains(&n.chars().count()));
        let nonce_ref = nonce.as_ref();
        let Some(user) = self.acting_user(now, conn, None, nonce_ref) else {
            return;
        };
        // Checked against the message as it will be once every change already accepted is
        // stored, not as storage has confirmed it so far: an "on" then "off" a moment apart
        // ends off, pending reactions count towards the cap, nothing follows a delete.
        let Some(message) = self
            .as_it_will_be(target)
            .filter(|m| m.visible_to(Some(&user)))
        else {
            let text = "that message is not among the room's recent messages";
            return self.refuse_for(conn, ErrorCode::UnknownMessage, text, nonce_ref);
        };
        if message.deleted {
            let text = "that message was deleted";
            return self.refuse_for(conn, ErrorCode::MessageDeleted, text, nonce_ref);
        }
        if message.call.is_some() {
            let text = "a call's record stays as the room wrote it";
            return self.refuse_for(conn, ErrorCode::Unchangeable, text, nonce_ref);
        }
        let author = message.user_id.clone();
        let given = match &asked {
            Asked::React(emoji, _) => message
                .reactions
                .iter()
                .find(|r| r.emoji == *emoji)
                .map(|r| r.users.contains(&user)),
            _ => None,
        };
        let full = message.reactions.len() >= MAX_REACTIONS;
        let kind = match asked {
            Asked::Edit(_) | Asked::Delete if author != user => {
                let text = "only its author can change a message";
                return self.refuse_for(conn, ErrorCode::NotYourMessage, text, nonce_ref);
            }
            Asked::Edit(raw) => {
                if !self.text_fits(conn, &raw, nonce_ref) {
                    return;
                }
                let Some(html) = self.render_within_bounds(conn, &raw, nonce_ref) else {
                    return;
                };
                ChangeKind::Edit { raw, html }
            }
            Asked::Delete => ChangeKind::Delete,
            Asked::React(emoji, _) if crate::markdown::shortcode_of(&emoji).is_none() => {
                let text = "reactions are emoji of the room's table";
                return self.refuse_for(conn, ErrorCode::UnknownEmoji, text, nonce_ref);
            }
            // Already as asked (one reaction per person and emoji): nothing to store. The
            // asker is told so, with the message as stored and its nonce, as for a change.
            Asked::React(_, on) if given.unwrap_or(false) == on => {
                if let Some(stored) = self.recent_message(target) {
                    let record = MessageRecord {
                        change_nonce: nonce,
                        ..stored.to_record()
                    };
                    self.send(conn, ServerAction::MessageChanged(record));
                }
                return;
            }
            Asked::React(_, true) if given.is_none() && full => {
                let text = format!("a message takes at most {MAX_REACTIONS} different reactions");
                return self.refuse_for(conn, ErrorCode::TooManyReactions, text, nonce_ref);
            }
            Asked::React(emoji, on) => ChangeKind::React { emoji, on },
        };
        self.latest_seq += 1;
        let change = StoredChange {
            seq: self.latest_seq,
            target,
            user_id: user,
            at: now,
            kind,
        };
        self.effects
            .push_back(Effect::PersistChange(change.clone()));
        self.pending.push_back(Pending {
            event: PendingEvent::Change { change, nonce },
            from: conn,
        });
    }

    /// A signal, not an event: the others who speak our protocol hear that this user types;
    /// nothing is stored or replayed. It costs a token of the connection's rate like any action.
    /// Typing in a direct conversation (`to`) is heard by that person only.
    fn typing(&mut self, now: Millis, conn: ConnectionId, to: Option<UserId>) {
        let Some(user) = self.acting_user(now, conn, None, None) else {
            return;
        };
        let mut hearers: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                c.viewer().is_some_and(|v| match &to {
                    Some(to) => v == to && *to != user,
                    None => v != user,
                })
            })
            .map(|(id, _)| *id)
            .collect();
        hearers.sort();
        let direct = to.is_some();
        for hearer in hearers {
            self.send(
                hearer,
                ServerAction::Typing(TypingUser {
                    user_id: user.clone(),
                    direct,
                }),
            );
        }
    }

    /// Message `seq` (stored and in memory, or waiting for storage), if `seq` is a message
    /// and not a change.
    fn find_message(&self, seq: Seq) -> Option<&StoredMessage> {
        self.recent_message(seq).or_else(|| {
            self.pending.iter().find_map(|p| match &p.event {
                PendingEvent::Message(m) if m.seq == seq => Some(m),
                _ => None,
            })
        })
    }

    /// Stored message `target` (still in memory) as it will be once every change already
    /// accepted for it and waiting for storage is stored: what the next change to it is
    /// checked against. The changes are folded in by the one rule ([`StoredChange::apply`]).
    fn as_it_will_be(&self, target: Seq) -> Option<StoredMessage> {
        let mut message = self.recent_message(target)?.clone();
        for pending in &self.pending {
            if let PendingEvent::Change { change, .. } = &pending.event
                && change.target == target
            {
                change.apply(&mut message);
            }
        }
        Some(message)
    }

    /// A stored message still in memory.
    fn recent_message(&self, seq: Seq) -> Option<&StoredMessage> {
        let index = self.recent.binary_search_by_key(&seq, |m| m.seq).ok()?;
        self.recent.get(index)
    }

    /// A stored message still in memory, to change.
    fn recent_mut(&mut self, seq: Seq) -> Option<&mut StoredMessage> {
        let index = self.recent.binary_search_by_key(&seq, |m| m.seq).ok()?;
        self.recent.get_mut(index)
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
        entry.name_version += 1;
        let version = entry.name_version;
        let record = entry.record(&user);
        self.effects.push_back(Effect::PersistUser(record));
        // The echo to the connection that asked (legacy clients wait for it); everyone else
        // hears it with the presence tick (legacy clients: before this person's next message).
        if let Some(connection) = self.connections.get_mut(&conn)
            && !connection.speaks_ours
        {
            connection.legacy_names.insert(user.clone(), version);
        }
        self.send(
            conn,
            ServerAction::NameChange(NameChanged::new(user.clone(), name.clone())),
        );
        self.presence_renamed(now, user, name);
    }

    fn history(&mut self, now: Millis, conn: ConnectionId, request: HistoryRequest) {
        if !self.spend_token(now, conn, None) {
            return;
        }
        if request.limit == 0 {
            return self.refuse(
                conn,
                ErrorCode::InvalidHistoryRequest,
                "limit must be at least 1",
            );
        }
        let limit = request.limit.min(self.config.max_history_page);
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let viewer = self.connections.get(&conn).and_then(Connection::viewer);
        let older: Vec<&StoredMessage> = self
            .recent
            .iter()
            .filter(|m| m.seq < request.before && m.visible_to(viewer))
            .collect();
        let from_memory = older.len() >= wanted || self.recent_floor == 0 || request.before <= 1;
        if !from_memory {
            let viewer = viewer.map(str::to_owned);
            self.effects.push_back(Effect::LoadHistory {
                to: conn,
                viewer,
                before: request.before,
                limit,
            });
            return;
        }
        let skip = older.len().saturating_sub(wanted);
        // Nothing has a seq below 1: a page before 1 (or 0) is the start of the room.
        let has_more = (skip > 0 || self.recent_floor > 0) && request.before > 1;
        let page: Vec<StoredMessage> = older[skip..].iter().map(|m| (*m).clone()).collect();
        self.handle_history_loaded(now, conn, request.before, page, has_more);
    }

    fn search(&mut self, now: Millis, conn: ConnectionId, request: Search) {
        let nonce = request
            .nonce
            .filter(|n| (1..=MAX_NONCE_CHARS).contains(&n.chars().count()));
        if !self.spend_token(now, conn, nonce.as_ref()) {
            return;
        }
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if connection.searching {
            return self.refuse_for(
                conn,
                ErrorCode::RateLimited,
                "one search at a time: wait for the results of the last one",
                nonce.as_ref(),
            );
        }
        let query = match crate::search::SearchQuery::parse(&request.query) {
            Ok(query) => query,
            Err(problem) => {
                return self.refuse_for(
                    conn,
                    ErrorCode::InvalidSearch,
                    problem.to_string(),
                    nonce.as_ref(),
                );
            }
        };
        connection.searching = true;
        let viewer = connection.viewer().map(str::to_owned);
        self.effects.push_back(Effect::Search(SearchTask {
            to: conn,
            viewer,
            query,
            asked: request.query,
            before: request.before,
            nonce,
            limit: self.config.search_page,
            scan: self.config.search_scan,
        }));
    }

    fn remember(&mut self, message: StoredMessage) {
        self.recent.push_back(message);
        while self.recent.len() > self.config.cache_messages {
            let Some(old) = self.recent.pop_front() else {
                break;
            };
            self.recent_floor = old.seq;
            self.changes_floor = self.changes_floor.max(old.changed_seq.unwrap_or(0));
            if let Some(nonce) = old.nonce {
                self.nonces.remove(&(old.user_id, nonce));
            }
        }
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

/// Whether `message` belongs to the conversation a new message of `author` (to `to`, if a
/// direct one) is in: both room messages, or both between the same two people.
fn same_audience(message: &StoredMessage, author: &str, to: Option<&UserId>) -> bool {
    match (&message.to, to) {
        (None, None) => true,
        (Some(_), Some(to)) => {
            let (a, b) = (
                message.user_id.as_str(),
                message.to.as_deref().unwrap_or(""),
            );
            (a == author && b == to) || (a == to && b == author)
        }
        _ => false,
    }
}

/// Takes `record`'s wire size from `budget`; false (and nothing taken) when it does not fit.
fn take_bytes(budget: &mut usize, record: &MessageRecord) -> bool {
    let len = record.wire_len();
    match budget.checked_sub(len) {
        Some(rest) => {
            *budget = rest;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod call_tests;
#[cfg(test)]
mod change_tests;
#[cfg(test)]
mod direct_tests;
#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod tests;
