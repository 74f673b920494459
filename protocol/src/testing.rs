//! One in-memory world for tests and the demo, in the manner of quinn-proto's test `Pair`: a
//! [`Room`], any number of client [`Session`]s connected to it, raw connections that send
//! whatever a test wants, and storage in memory, with knobs for what real hosts suffer: slow
//! storage, failing storage, failing history reads, dropped connections.
//!
//! No timers and no sockets: time is [`Pair::now`] and moves only when the caller says so.
//! Frames between sessions and the room pass through the JSON codec, as on a real wire.
//!
//! Enabled by the `testing` feature (and in this crate's own tests). The engine tests, the
//! session tests, the demo's rooms (`mock-backend`) and the room fuzz target all drive rooms
//! through it, so there is one pump of effects outside the real server.

use std::net::IpAddr;

use crate::ErrorCode;
use crate::room::{
    ConnectionId, Effect, Room, RoomConfig, RoomSnapshot, StoredMessage, UserRecord,
};
use crate::session::{Session, SessionConfig};
use crate::wire::{
    ClientAction, HandshakeUserInfo, MessageRecord, Millis, Seq, ServerAction, UserId,
};

/// A session's place in a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub usize);

/// Connections of sessions are numbered from here; raw ones are whatever the test picks.
const PEER_CONNECTIONS: u64 = 1 << 32;

#[derive(Debug)]
struct Peer {
    session: Session,
    conn: Option<ConnectionId>,
}

/// A storage answer waiting for its time.
#[derive(Debug)]
struct Due {
    at: Millis,
    seq: Seq,
    fails: bool,
}

/// A room, its clients and its storage, all in memory.
#[derive(Debug)]
pub struct Pair {
    pub room: Room,
    /// The clock every input is given.
    pub now: Millis,
    /// Messages storage holds, in the order written.
    pub stored: Vec<StoredMessage>,
    /// Users storage holds (the latest record of each).
    pub users: Vec<UserRecord>,
    /// Connections the room closed (a kick, a ban), with the close code and reason.
    pub closed: Vec<(ConnectionId, u16, std::borrow::Cow<'static, str>)>,
    /// The room's settings as storage holds them.
    pub settings: crate::wire::RoomSettings,
    /// Moderation events storage holds, in the order written.
    pub audit: Vec<crate::wire::AuditEntry>,
    /// Storage confirms writes by itself (after [`Self::storage_delay`]); when false, the
    /// seqs wait in [`Self::unconfirmed`] for the test to answer.
    pub auto_persist: bool,
    /// How long storage takes to confirm a write, in milliseconds of [`Self::now`].
    pub storage_delay: Millis,
    /// Storage fails every write from now on (the room hears so after the delay).
    pub fail_storage: bool,
    /// History requests are answered from [`Self::stored`]; when false, they wait in
    /// [`Self::history_requests`] for the test to answer.
    pub answer_history: bool,
    /// History reads fail.
    pub fail_history: bool,
    /// Searches are answered from [`Self::stored`]; when false, they wait in
    /// [`Self::held_searches`] for the test to answer.
    pub answer_searches: bool,
    pub held_searches: Vec<crate::room::SearchTask>,
    pub unconfirmed: Vec<Seq>,
    /// The room's log numbers events this far apart (1, as a single process does; more, as a
    /// stream shared with other subjects might).
    pub log_step: Seq,
    /// The last seq the log gave.
    log_seq: Seq,
    pub history_requests: Vec<(ConnectionId, Seq, u32)>,
    /// Open connections, in the order they connected (broadcasts reach them all).
    pub open: Vec<ConnectionId>,
    // Plain vectors, searched: the demo runs this in the browser, where each collection type
    // is code to download.
    due: Vec<Due>,
    inbox: Vec<(ConnectionId, Vec<ServerAction>)>,
    peers: Vec<Peer>,
    next_peer_conn: u64,
}

impl Default for Pair {
    fn default() -> Self {
        Self::new()
    }
}

impl Pair {
    /// Time starts here (November 2023) unless a test sets [`Self::now`].
    pub const T0: Millis = 1_700_000_000_000;

    /// A new, empty room with the default config.
    pub fn new() -> Self {
        Self::with(RoomConfig::default(), RoomSnapshot::default())
    }

    /// A room with this config, as if loaded from storage holding `snapshot`.
    pub fn with(config: RoomConfig, snapshot: RoomSnapshot) -> Self {
        Self::seeded(config, snapshot, [1; 32])
    }

    /// [`Self::with`], with the seed of the room's token generator.
    pub fn seeded(config: RoomConfig, snapshot: RoomSnapshot, seed: [u8; 32]) -> Self {
        let room = Room::new(config, snapshot, seed);
        Self {
            log_seq: room.latest_seq(),
            log_step: 1,
            room,
            now: Self::T0,
            stored: Vec::new(),
            users: Vec::new(),
            closed: Vec::new(),
            settings: crate::wire::RoomSettings::default(),
            audit: Vec::new(),
            auto_persist: true,
            storage_delay: 0,
            fail_storage: false,
            answer_history: true,
            fail_history: false,
            answer_searches: true,
            held_searches: Vec::new(),
            unconfirmed: Vec::new(),
            history_requests: Vec::new(),
            open: Vec::new(),
            due: Vec::new(),
            inbox: Vec::new(),
            peers: Vec::new(),
            next_peer_conn: PEER_CONNECTIONS,
        }
    }

    // ---- Raw connections: frames exactly as a test writes them ----

    /// Opens connection `id` (its HANDSHAKE waits in [`Self::take`]).
    pub fn connect(&mut self, id: u64) -> ConnectionId {
        self.connect_from(id, None)
    }

    /// [`Self::connect`] from a network address.
    pub fn connect_from(&mut self, id: u64, peer: Option<IpAddr>) -> ConnectionId {
        let conn = ConnectionId(id);
        self.open.push(conn);
        self.room.handle_connect_from(self.now, conn, peer);
        self.run();
        conn
    }

    /// Closes a connection (raw or a session's).
    pub fn disconnect(&mut self, conn: ConnectionId) {
        self.open.retain(|c| *c != conn);
        self.room.handle_disconnect(self.now, conn);
        self.run();
    }

    /// A text frame from a raw connection.
    pub fn frame(&mut self, conn: ConnectionId, text: &str) {
        self.room.handle_frame(self.now, conn, text);
        self.run();
    }

    /// An action from a raw connection.
    pub fn act(&mut self, conn: ConnectionId, action: ClientAction) {
        self.room.handle_action(self.now, conn, action);
        self.run();
    }

    /// Everything a raw connection has received since the last call, oldest first.
    pub fn take(&mut self, conn: ConnectionId) -> Vec<ServerAction> {
        match self.inbox.iter().position(|(c, _)| *c == conn) {
            Some(i) => self.inbox.swap_remove(i).1,
            None => Vec::new(),
        }
    }

    /// What storage holds of a user.
    pub fn user(&self, id: &str) -> Option<&UserRecord> {
        self.users.iter().find(|u| u.id == id)
    }

    fn deliver(&mut self, to: ConnectionId, action: ServerAction) {
        match self.inbox.iter_mut().find(|(c, _)| *c == to) {
            Some((_, queue)) => queue.push(action),
            None => self.inbox.push((to, vec![action])),
        }
    }

    /// The error codes among what a raw connection received (the rest is dropped).
    pub fn errors(&mut self, conn: ConnectionId) -> Vec<ErrorCode> {
        self.take(conn)
            .into_iter()
            .filter_map(|a| match a {
                ServerAction::Error(e) => Some(e.code),
                _ => None,
            })
            .collect()
    }

    /// The messages among what a raw connection received (the rest is dropped).
    pub fn messages(&mut self, conn: ConnectionId) -> Vec<MessageRecord> {
        self.take(conn)
            .into_iter()
            .filter_map(|a| match a {
                ServerAction::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Connects raw connection `id` and identifies as a new user: its connection, user id
    /// and token; then the presence tick passes. What it received after USER_INFO (its
    /// `PRESENCE`) is left for [`Self::take`].
    ///
    /// # Panics
    /// If the room gives no identity (a test's mistake).
    pub fn join(&mut self, id: u64) -> (ConnectionId, UserId, String) {
        self.join_speaking(id, None)
    }

    /// [`Self::join`] as a client that speaks our protocol (it names its version), as ours
    /// do; a plain [`Self::join`] is a legacy v1 client.
    pub fn join_ours(&mut self, id: u64) -> (ConnectionId, UserId, String) {
        self.join_speaking(id, Some(crate::PROTOCOL_VERSION))
    }

    fn join_speaking(
        &mut self,
        id: u64,
        protocol_version: Option<u32>,
    ) -> (ConnectionId, UserId, String) {
        let conn = self.connect(id);
        self.act(
            conn,
            ClientAction::HandshakeUserInfo(HandshakeUserInfo {
                protocol_version,
                ..HandshakeUserInfo::default()
            }),
        );
        let info = self
            .take(conn)
            .into_iter()
            .find_map(|a| match a {
                ServerAction::UserInfo(info) => Some(info),
                _ => None,
            })
            .expect("the room identifies a new user");
        let token = info.token.expect("a new user gets a token");
        // Let the presence tick pass, so everyone has heard of them (`PRESENCE`).
        let tick = self.room.config().presence_tick_ms;
        self.advance(tick);
        (conn, info.user_id, token)
    }

    /// A raw connection says `text` (no nonce).
    pub fn say(&mut self, conn: ConnectionId, text: &str) {
        self.act(
            conn,
            ClientAction::Message(crate::wire::SendMessage {
                raw_message: text.to_owned(),
                user_id: None,
                nonce: None,
                reply_to: None,
                to: None,
            }),
        );
    }

    // ---- Sessions: clients as the browser runs them ----

    /// A client session, not connected yet.
    pub fn add_session(&mut self, config: SessionConfig) -> PeerId {
        self.peers.push(Peer {
            session: Session::new(config),
            conn: None,
        });
        PeerId(self.peers.len() - 1)
    }

    /// # Panics
    /// For a peer this pair never gave out.
    pub fn session(&self, peer: PeerId) -> &Session {
        &self.peers[peer.0].session
    }

    /// Changes to a session take effect at the next [`Self::run`].
    ///
    /// # Panics
    /// For a peer this pair never gave out.
    pub fn session_mut(&mut self, peer: PeerId) -> &mut Session {
        &mut self.peers[peer.0].session
    }

    pub fn is_connected(&self, peer: PeerId) -> bool {
        self.peers.get(peer.0).is_some_and(|p| p.conn.is_some())
    }

    /// The session's connection opens; the two talk until neither has more to say.
    pub fn open_session(&mut self, peer: PeerId) {
        if self.peers.get(peer.0).is_none_or(|p| p.conn.is_some()) {
            return;
        }
        let conn = ConnectionId(self.next_peer_conn);
        self.next_peer_conn += 1;
        self.peers[peer.0].conn = Some(conn);
        self.open.push(conn);
        self.room.handle_connect(self.now, conn);
        self.peers[peer.0].session.connected(self.now);
        self.run();
    }

    /// The session's connection drops: both ends hear of it.
    pub fn drop_session(&mut self, peer: PeerId) {
        let Some(conn) = self.peers.get_mut(peer.0).and_then(|p| p.conn.take()) else {
            return;
        };
        self.peers[peer.0].session.disconnected(self.now);
        self.disconnect(conn);
    }

    // ---- Time and work ----

    /// Time moves to `now` (never backwards): storage answers that are due arrive, sessions
    /// whose timers are due wake, and everything runs until quiet.
    pub fn advance_to(&mut self, now: Millis) {
        self.now = self.now.max(now);
        self.run();
    }

    /// Time moves on by `ms`.
    pub fn advance(&mut self, ms: Millis) {
        self.advance_to(self.now + ms);
    }

    /// When something next happens by itself (a storage answer or a session's timer).
    pub fn next_wakeup(&self) -> Option<Millis> {
        let storage = self.due.first().map(|d| d.at);
        let sessions = self
            .peers
            .iter()
            .filter(|p| p.conn.is_some())
            .filter_map(|p| p.session.poll_timeout())
            .min();
        storage
            .into_iter()
            .chain(sessions)
            .chain(self.room.poll_timeout())
            .min()
    }

    /// Passes frames between the room, storage and the sessions until nothing moves.
    pub fn run(&mut self) {
        loop {
            if self.room.poll_timeout().is_some_and(|at| at <= self.now) {
                self.room.handle_timeout(self.now);
            }
            let mut moved = self.pump();
            moved |= self.settle_due();
            for i in 0..self.peers.len() {
                moved |= self.step_peer(i);
            }
            if !moved {
                break;
            }
        }
    }

    /// Carries out the room's effects; true if there were any.
    pub fn pump(&mut self) -> bool {
        let mut any = false;
        while let Some(effect) = self.room.poll_effect() {
            any = true;
            match effect {
                Effect::Send { to, action } => self.deliver(to, action),
                Effect::Multicast { to, action } => {
                    for conn in to {
                        self.deliver(conn, action.clone());
                    }
                }
                Effect::Close { to, code, reason } => {
                    // As a host: what was sent to it goes first (to a session; a raw
                    // connection's stays for `take`), then the socket closes, and the room
                    // hears it gone.
                    self.closed.push((to, code, reason));
                    let a_session = self.peers.iter().any(|p| p.conn == Some(to));
                    let sent = if a_session { self.take(to) } else { Vec::new() };
                    if let Some(peer) = self.peers.iter_mut().find(|p| p.conn == Some(to)) {
                        for action in sent {
                            peer.session.handle_frame(self.now, &action.to_json());
                        }
                        peer.conn = None;
                        peer.session.disconnected(self.now);
                    }
                    self.open.retain(|c| *c != to);
                    self.room.handle_disconnect(self.now, to);
                }
                Effect::Broadcast(action) => {
                    for i in 0..self.open.len() {
                        self.deliver(self.open[i], action.clone());
                    }
                }
                Effect::PersistMessage(mut message) => {
                    let seq = self.next_seq();
                    message.seq = seq;
                    if !self.fail_storage {
                        self.stored.push(message);
                    }
                    self.settle_write(seq);
                }
                Effect::PersistChange(mut change) => {
                    change.seq = self.next_seq();
                    if !self.fail_storage
                        && let Some(message) =
                            self.stored.iter_mut().find(|m| m.seq == change.target)
                    {
                        change.apply(message);
                    }
                    self.settle_write(change.seq);
                }
                Effect::PersistAudit(mut entry) => {
                    entry.seq = self.next_seq();
                    let seq = entry.seq;
                    if !self.fail_storage {
                        self.audit.push(entry);
                    }
                    self.settle_write(seq);
                }
                Effect::PersistUser(user) => {
                    // As a store writes a user: everything but the role.
                    match self.users.iter_mut().find(|u| u.id == user.id) {
                        Some(kept) => {
                            *kept = UserRecord {
                                role: kept.role,
                                ..user
                            }
                        }
                        None => self.users.push(UserRecord { role: None, ..user }),
                    }
                }
                Effect::PersistSettings { settings, .. } => self.settings = settings,
                Effect::PersistRole { user_id, role, .. } => {
                    if let Some(kept) = self.users.iter_mut().find(|u| u.id == user_id) {
                        kept.role = role;
                    }
                }
                // One room, no other nodes to tell.
                Effect::Relay(_) => {}
                Effect::Search(task) if !self.answer_searches => self.held_searches.push(task),
                Effect::Search(task) => {
                    // In memory, newest first, through the rule every store follows.
                    let before = task.before.unwrap_or(Seq::MAX);
                    let page = crate::search::search_newest_first(
                        self.stored.iter().rev().filter(|m| m.seq < before),
                        &task.query,
                        task.viewer.as_deref(),
                        usize::try_from(task.limit).unwrap_or(usize::MAX),
                        task.scan,
                    );
                    self.room
                        .handle_search_done(self.now, task, page.messages, page.next);
                }
                Effect::LoadHistory {
                    to,
                    viewer,
                    with,
                    before,
                    limit,
                } => {
                    self.history_requests.push((to, before, limit));
                    if self.fail_history {
                        self.room.handle_history_failed(self.now, to);
                    } else if self.answer_history {
                        let older: Vec<StoredMessage> = self
                            .stored
                            .iter()
                            .filter(|m| {
                                m.seq < before && m.in_page_for(viewer.as_deref(), with.as_deref())
                            })
                            .cloned()
                            .collect();
                        let keep = older.len().saturating_sub(limit as usize);
                        self.room.handle_history_loaded(
                            self.now,
                            to,
                            (before, with),
                            older[keep..].to_vec(),
                            keep > 0,
                        );
                    }
                }
                Effect::LoadConversations {
                    to,
                    viewer,
                    since,
                    limit,
                } => {
                    let found = crate::stored::conversations_of(
                        self.stored.iter().rev(),
                        &viewer,
                        since,
                        usize::try_from(limit).unwrap_or(usize::MAX),
                    );
                    self.room.handle_conversations_loaded(self.now, to, found);
                }
            }
        }
        any
    }

    /// The room's log numbers the next event.
    fn next_seq(&mut self) -> Seq {
        self.log_seq += self.log_step;
        self.log_seq
    }

    /// Storage answers the write of event `seq`: at once, after the delay, or when the test
    /// says.
    fn settle_write(&mut self, seq: Seq) {
        if !self.auto_persist {
            self.unconfirmed.push(seq);
        } else if self.storage_delay == 0 {
            self.confirm(seq, self.fail_storage);
        } else {
            self.due.push(Due {
                at: self.now + self.storage_delay,
                seq,
                fails: self.fail_storage,
            });
        }
    }

    /// Storage confirms every write it holds for the test ([`Self::unconfirmed`]), in order,
    /// and everything runs until quiet.
    pub fn confirm_held(&mut self) {
        for seq in std::mem::take(&mut self.unconfirmed) {
            self.room.handle_persisted(self.now, seq);
        }
        self.run();
    }

    fn confirm(&mut self, seq: Seq, fails: bool) {
        if fails {
            self.room.handle_persist_failed(self.now);
        } else {
            self.room.handle_persisted(self.now, seq);
        }
    }

    fn settle_due(&mut self) -> bool {
        let mut any = false;
        while self.due.first().is_some_and(|d| d.at <= self.now) {
            let due = self.due.remove(0);
            self.confirm(due.seq, due.fails);
            any = true;
        }
        any
    }

    /// Moves frames both ways between one session and the room; true if any moved.
    fn step_peer(&mut self, i: usize) -> bool {
        let Some(conn) = self.peers[i].conn else {
            return false;
        };
        let now = self.now;
        let mut moved = false;
        let session = &mut self.peers[i].session;
        if session.poll_timeout().is_some_and(|at| at <= now) {
            session.handle_timeout(now);
        }
        let arrived = self.take(conn);
        let session = &mut self.peers[i].session;
        for action in arrived {
            moved = true;
            session.handle_frame(now, &action.to_json());
        }
        while let Some(action) = session.poll_transmit() {
            moved = true;
            self.room.handle_frame(now, conn, &action.to_json());
        }
        moved
    }
}
