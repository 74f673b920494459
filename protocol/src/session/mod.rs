//! The client half of the protocol: one [`Session`] per room a client has open, sans-IO like
//! the room engine ([`crate::Room`]).
//!
//! A session holds what the client knows of one room and every rule of talking to it: who we
//! are there (identity and token), the name we want, the messages we wrote and their nonces
//! until the room has stored them, the room's messages as a timeline ordered by `seq`, the
//! resume point and the history cursor, and the room's announced limits (messages go out no
//! faster than the room takes them).
//!
//! It never reads a clock or a socket. The host feeds it what happens with the time
//! (`connected`, `handle_frame`, `send_message`, `handle_timeout`, ...) and drains what it
//! wants done: frames to send ([`Session::poll_transmit`]), things to tell the user
//! ([`Session::poll_event`]) and when to wake it ([`Session::poll_timeout`]). The browser
//! client, the demo's fake users and the tests all drive this one type.
//!
//! # Layout
//! - this file: [`Session`] and what it gives out.
//! - `names`: people's names as shown, told apart when two share one.
//! - `outbox`: our changes (edits, deletes, reactions) until the room has stored them.

mod call;
mod names;
mod outbox;
#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod mention_tests {
    use super::mentions;

    #[test]
    fn a_mention_is_at_and_the_whole_name_in_any_case() {
        assert!(mentions("@Ana lunch?", "Ana"));
        assert!(mentions("lunch, @ana?", "Ana"));
        assert!(mentions("ask @Ken (away) later", "Ken (away)"));
        assert!(!mentions("@Anastasia lunch?", "Ana"));
        assert!(!mentions("Ana, lunch?", "Ana"));
        assert!(!mentions("a@b", ""));
    }
}

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::room::TokenBucket;
use crate::wire::{
    ChangeName, ClientAction, Handshake, HandshakeUserInfo, History as HistoryPage, HistoryRequest,
    MessageRecord, Millis, Person, Reaction, Resume, RoomLimits, SendMessage, Seq, ServerAction,
    Typing, UserId, UserInfo,
};
use crate::{ErrorCode, RoomConfig};

pub use call::{Call, CallError, CallEvent, CallPhase, RING_GIVE_UP_MS};
pub use names::{Names, UNKNOWN_NAME};
pub use outbox::{ChangeAsk, PendingChange};

/// Messages asked for per history page.
pub const HISTORY_PAGE: u32 = 50;
/// How long to wait before resending after the room said `RATE_LIMITED`.
pub const RATE_LIMIT_RETRY_MS: Millis = 1_500;
/// While someone types, a `TYPING` goes out at most this often.
pub const TYPING_EVERY_MS: Millis = 3_000;
/// How long "is typing" shows after the last `TYPING` heard (it expires on its own).
pub const TYPING_SHOWN_MS: Millis = 6_000;

/// Who you are in one room: handed out by that room, proved by the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub user_id: UserId,
    pub token: Option<String>,
}

/// How a session is set up by its host.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Starts every nonce; unique per page load (or fake user), so nonces never repeat.
    pub nonce_prefix: String,
    /// Stored messages the timeline keeps; the oldest go when new ones arrive (history
    /// paging brings them back). A server (trusted by no one) cannot grow a client without
    /// bound. 0 keeps none (a fake user needs no timeline).
    pub keep_messages: usize,
    /// Renders a message's markdown for the view, once per message kept.
    pub render: fn(&str) -> Rc<str>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            nonce_prefix: "n".to_owned(),
            keep_messages: 5_000,
            render: |raw| crate::Renderer::new().render(raw).into(),
        }
    }
}

/// Whether the room has stored a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Shown at once; kept and resent (same nonce) until the room echoes it.
    Pending,
    /// Stored by the room and echoed back.
    Sent,
    /// The room could not store it: kept for the user to retry or edit, never resent by
    /// itself.
    Failed,
    /// Refused for what it is (too long or too complex for this room): sending it again
    /// cannot succeed; kept for the user to edit.
    Refused,
}

/// One message: stored by the room, or written here and not stored yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Stable key for a list: `s` and the seq, `i` and a v1 server's id, `a` and the arrival
    /// count (a v1 server that gives neither), or `n` and our nonce (not stored yet).
    pub key: String,
    pub seq: Option<Seq>,
    pub user_id: UserId,
    pub raw: String,
    /// Rendered from `raw` by the host's renderer; a server's HTML is never used.
    pub html: Rc<str>,
    pub timestamp: Millis,
    pub nonce: Option<String>,
    pub delivery: Delivery,
    /// Sent on the current connection and not answered yet (our pending messages only).
    pub in_flight: bool,
    /// When its author last edited it.
    pub edited_at: Option<Millis>,
    /// Deleted by its author: only a placeholder is shown.
    pub deleted: bool,
    /// The seq of the latest change folded in: an older copy never replaces a newer one.
    pub changed_seq: Option<Seq>,
    /// Reactions, in the order each emoji was first given.
    pub reactions: Vec<Reaction>,
    /// The seq of the message this one answers.
    pub reply_to: Option<Seq>,
    /// A direct message to this person (from its author): only the two of them see it.
    pub to: Option<UserId>,
    /// The room's record of a call from the author to `to`: shown as a line of the room's,
    /// never changed by anyone.
    pub call: Option<crate::wire::CallRecord>,
}

impl Message {
    /// The other person of a direct message, seen by `me`; `None` for a room message.
    pub fn peer(&self, me: &str) -> Option<&UserId> {
        let to = self.to.as_ref()?;
        Some(if self.user_id == me {
            to
        } else {
            &self.user_id
        })
    }

    /// Whether this message belongs to a conversation: the room (`None`), or the direct
    /// conversation of `me` with that person.
    pub fn is_in(&self, me: &str, conversation: Option<&str>) -> bool {
        self.peer(me).map(String::as_str) == conversation
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No connection.
    Closed,
    /// Connected; waiting for the room to say who we are.
    Identifying,
    /// Identified: messages go out.
    Online,
}

/// How much older history the room has for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// The room has older messages than the first in the timeline.
    More,
    /// A page was asked for and has not arrived.
    Loading,
    /// The timeline starts at the room's first message.
    Complete,
    /// The server does not page history (a legacy v1 server).
    Unsupported,
}

/// What the user should be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Notice {
    #[error("You are sending too fast; your message will be sent in a moment.")]
    RateLimited,
    #[error("The room did not accept your saved identity; it gave you a new one.")]
    IdentityRejected,
    #[error("You were away for long: older messages can be loaded by scrolling up.")]
    GapTooBig,
    #[error("Older messages could not be loaded; scroll up to try again.")]
    HistoryFailed,
    #[error("The room refused: {0}")]
    Refused(String),
    #[error("The server sent something this client does not understand ({0}).")]
    BadFrame(String),
}

/// A search of the room (and of one's direct messages in it), page after page.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchState {
    /// What was typed.
    pub query: String,
    /// Its words, for highlighting results.
    pub words: crate::search::SearchQuery,
    /// The nonce of the request out (or last answered): answers to older ones are dropped.
    nonce: String,
    /// Newest first.
    pub results: Vec<Message>,
    /// Older results may exist: search on before this seq.
    pub next: Option<Seq>,
    pub status: SearchStatus,
}

/// Where a search is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchStatus {
    /// A page was asked for and has not come.
    Searching,
    /// The latest page came.
    Done,
    /// The room refused or could not answer (the reason, to show), or went offline.
    Failed(String),
}

/// What happened that the host's view may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The room said who we are: from now on messages go out.
    Online,
    /// A message from someone else arrived as it was written (live or on resume, not from
    /// history): a view counts it as unread. `direct`: in their direct conversation with us.
    Arrived {
        from: UserId,
        mentions_me: bool,
        direct: bool,
    },
    /// Something to tell the user.
    Notice(Notice),
    /// The call changed in a way the media must act on.
    Call(CallEvent),
}

/// Why a message was not accepted for sending: the room's own check of a message's text
/// ([`crate::room::check_text`]), made here before it is sent.
pub use crate::room::TextProblem as ComposeError;

/// Whether `raw` mentions `name`: `@` and the name, in any case, not followed by a letter or a
/// digit (`@Ana` mentions Ana, not Anastasia).
pub fn mentions(raw: &str, name: &str) -> bool {
    // Asked for every message shown: most have no `@`, and need no lowercased copy.
    if !raw.contains('@') {
        return false;
    }
    let (raw, name) = (raw.to_lowercase(), name.to_lowercase());
    if name.is_empty() {
        return false;
    }
    raw.match_indices('@').any(|(at, _)| {
        let rest = &raw[at + 1..];
        rest.starts_with(&name)
            && !rest[name.len()..]
                .chars()
                .next()
                .is_some_and(char::is_alphanumeric)
    })
}

/// One room as one client knows it, and the rules of talking to it.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    identity: Option<Identity>,
    wanted_name: Option<String>,
    server_name: Option<String>,
    /// What the room announced it allows (none from a v1 server).
    limits: Option<RoomLimits>,
    /// The room's rate as we spend it on this connection: messages go out no faster than the
    /// room takes them, so that none is refused for rate and overtaken by a later one.
    bucket: Option<TokenBucket>,
    /// The room's messages, in seq order (arrival order from a v1 server).
    messages: Vec<Message>,
    /// Ours, not stored yet, oldest first.
    pending: Vec<Message>,
    names: Names,
    online: BTreeSet<UserId>,
    /// When people joined and were last seen, as the room told us.
    people: BTreeMap<UserId, Person>,
    history: History,
    /// The highest seq the room has told us about: resumed from after a reconnect.
    latest_seq: Option<Seq>,
    /// The room has answered (sent `HANDSHAKE`) since the session began.
    reached: bool,
    /// Messages without seq or id seen (from a v1 server), for their keys.
    arrivals: u64,
    next_nonce: u64,
    /// The seq of our latest message the room echoed.
    last_echoed: Option<Seq>,
    /// The seq of the latest message from someone else that arrived as it was written.
    last_arrived: Option<Seq>,
    /// When held messages may go (rate) or go again (after `RATE_LIMITED`).
    wake_at: Option<Millis>,
    /// Who is typing, whether to us in a direct conversation, and until when it shows.
    typing: Vec<(UserId, bool, Millis)>,
    /// The search shown for this room, if any.
    search: Option<SearchState>,
    /// When we last said we were typing, and where (the room, or to whom).
    typing_sent: Option<(Option<UserId>, Millis)>,
    /// Actions the room counts against its rate (names, history requests), waiting for the
    /// rate as messages do; they go before any message.
    queued: Vec<ClientAction>,
    /// Our changes to messages, until the room stores them (see the `outbox` module); they go
    /// after `queued` and before messages.
    changes: Vec<PendingChange>,
    /// Queues are plain vectors taken from the front: they hold a few actions at a time, and
    /// one more collection type would cost the browser client's download more than it saves.
    transmit: Vec<ClientAction>,
    events: Vec<Event>,
    /// The call of this session, live or just over.
    call: Option<Call>,
    /// The room speaks our protocol (it said its version in `HANDSHAKE`).
    speaks_ours: bool,
    /// The ICE servers the room offers for calls.
    ice_servers: Vec<crate::wire::IceServer>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            phase: Phase::Closed,
            identity: None,
            wanted_name: None,
            server_name: None,
            limits: None,
            bucket: None,
            messages: Vec::new(),
            pending: Vec::new(),
            names: Names::default(),
            online: BTreeSet::new(),
            people: BTreeMap::new(),
            history: History::Complete,
            latest_seq: None,
            reached: false,
            arrivals: 0,
            next_nonce: 1,
            search: None,
            last_echoed: None,
            last_arrived: None,
            wake_at: None,
            typing: Vec::new(),
            typing_sent: None,
            queued: Vec::new(),
            changes: Vec::new(),
            transmit: Vec::new(),
            events: Vec::new(),
            call: None,
            speaks_ours: false,
            ice_servers: Vec::new(),
        }
    }

    // ---- What the host reads ----

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    pub fn limits(&self) -> Option<RoomLimits> {
        self.limits
    }

    /// The room's stored messages, oldest first.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Ours, not stored yet (waiting, failed or refused), oldest first.
    pub fn pending(&self) -> &[Message] {
        &self.pending
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn online(&self) -> &BTreeSet<UserId> {
        &self.online
    }

    /// What the room told us of someone: when they joined, when they were last seen.
    pub fn person(&self, user: &str) -> Option<&Person> {
        self.people.get(user)
    }

    /// People not online now who were here lately, the most recent first.
    pub fn recently_seen(&self) -> Vec<&Person> {
        let mut recent: Vec<&Person> = self
            .people
            .values()
            .filter(|p| p.last_seen.is_some() && !self.online.contains(&p.user_id))
            .collect();
        recent.sort_by_key(|p| std::cmp::Reverse(p.last_seen));
        recent
    }

    pub fn history(&self) -> History {
        self.history
    }

    pub fn latest_seq(&self) -> Option<Seq> {
        self.latest_seq
    }

    /// The room has answered since the session began.
    pub fn reached(&self) -> bool {
        self.reached
    }

    pub fn is_me(&self, user: &str) -> bool {
        self.identity.as_ref().is_some_and(|i| i.user_id == user)
    }

    /// Our name as the room knows it.
    pub fn my_name(&self) -> Option<&str> {
        self.names.get(&self.identity.as_ref()?.user_id)
    }

    /// Whether a message's text mentions us (`@` and our name here).
    pub fn mentions_me(&self, raw: &str) -> bool {
        self.my_name().is_some_and(|name| mentions(raw, name))
    }

    /// The longest message this room takes, in characters: as it announced, else the
    /// engine's default (a v1 server announces none).
    pub fn max_message_chars(&self) -> usize {
        self.limits.map_or_else(
            || RoomConfig::default().max_message_chars,
            |l| l.max_message_chars as usize,
        )
    }

    /// Whether `text` can be sent to this room, checked here as the room would.
    pub fn check_message(&self, text: &str) -> Result<(), ComposeError> {
        crate::room::check_text(text, self.max_message_chars())
    }

    // ---- What the host drains ----

    /// The next action to send on the room's connection.
    pub fn poll_transmit(&mut self) -> Option<ClientAction> {
        (!self.transmit.is_empty()).then(|| self.transmit.remove(0))
    }

    /// The next thing that happened for the view.
    pub fn poll_event(&mut self) -> Option<Event> {
        (!self.events.is_empty()).then(|| self.events.remove(0))
    }

    /// When [`Self::handle_timeout`] should be called, if ever.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let typing = self.typing.iter().map(|(_, _, until)| *until).min();
        self.wake_at
            .into_iter()
            .chain(typing)
            .chain(self.call_timeout())
            .min()
    }

    /// Who is typing in the room now, in the order they started.
    pub fn typing(&self) -> impl Iterator<Item = &UserId> {
        self.typing_in(None)
    }

    /// Who is typing in a conversation: the room (`None`), or the direct one with that person
    /// (they, if they are typing to us).
    pub fn typing_in<'a>(&'a self, peer: Option<&'a str>) -> impl Iterator<Item = &'a UserId> {
        self.typing
            .iter()
            .filter(move |(user, direct, _)| match peer {
                None => !direct,
                Some(peer) => *direct && user == peer,
            })
            .map(|(user, _, _)| user)
    }

    /// The people we have direct conversations with here, the latest first.
    pub fn conversations(&self) -> Vec<UserId> {
        let Some(me) = self.identity.as_ref().map(|i| i.user_id.as_str()) else {
            return Vec::new();
        };
        let mut peers: Vec<UserId> = Vec::new();
        for message in self.pending.iter().rev().chain(self.messages.iter().rev()) {
            if let Some(peer) = message.peer(me)
                && !peers.contains(peer)
            {
                peers.push(peer.clone());
            }
        }
        peers
    }

    // ---- Setting up (before connecting, from what the host kept) ----

    /// Who we are in this room, as kept from an earlier visit.
    pub fn set_identity(&mut self, identity: Option<Identity>) {
        self.identity = identity;
    }

    /// The server's name, as kept from an earlier visit (shown until it answers).
    pub fn set_server_name(&mut self, name: Option<String>) {
        self.server_name = name;
    }

    /// A message written before a reload and not stored then: it goes out once the room is
    /// back, with the same nonce (the room stores it once even if the first copy arrived).
    pub fn restore_pending(
        &mut self,
        raw: String,
        nonce: String,
        timestamp: Millis,
        reply_to: Option<Seq>,
        to: Option<UserId>,
    ) {
        let message = self.outgoing(raw, nonce, timestamp, reply_to, to);
        self.pending.push(message);
    }

    /// Messages kept from an earlier visit, shown until the room answers; the room is then
    /// resumed after the newest (its `RESUME` fills what was missed, or says the gap is too
    /// big and older messages are paged in again).
    pub fn restore_history(&mut self, kept: HistoryPage) {
        self.names.extend(kept.user_names);
        for record in kept.messages {
            if let Some(seq) = record.seq {
                self.latest_seq = Some(self.latest_seq.map_or(seq, |l| l.max(seq)));
            }
            self.insert(record);
        }
        if self.first_seq().is_some_and(|s| s > 1) {
            self.history = History::More;
        }
    }

    /// The latest `count` stored messages as a history page (names included), to keep for
    /// the next visit.
    pub fn history_to_keep(&self, count: usize) -> HistoryPage {
        let skip = self.messages.len().saturating_sub(count);
        let messages: Vec<MessageRecord> = self.messages[skip..]
            .iter()
            .filter(|m| m.seq.is_some())
            .map(|m| MessageRecord {
                raw_message: m.raw.clone(),
                // Never used: a client renders the raw text itself.
                html_message: String::new(),
                timestamp: m.timestamp,
                user_id: m.user_id.clone(),
                seq: m.seq,
                edited_at: m.edited_at,
                deleted: m.deleted,
                changed_seq: m.changed_seq,
                reactions: m.reactions.clone(),
                reply_to: m.reply_to,
                to: m.to.clone(),
                call: m.call,
                ..MessageRecord::default()
            })
            .collect();
        let user_names = messages
            .iter()
            .filter_map(|m| Some((m.user_id.clone(), self.names.get(&m.user_id)?.to_owned())))
            .collect();
        HistoryPage {
            before: 0,
            messages,
            has_more: true,
            user_names,
        }
    }

    // ---- What happens ----

    /// A connection to the room opened: identify, and ask for what we missed if we were
    /// here before.
    pub fn connected(&mut self, _now: Millis) {
        self.phase = Phase::Identifying;
        // A new connection: nothing is in flight on it, and the room's rate starts afresh.
        self.bucket = None;
        self.wake_at = None;
        self.transmit.clear();
        self.queued.clear();
        for message in &mut self.pending {
            message.in_flight = false;
        }
        // What the room has not confirmed goes again, once, on this connection.
        for change in &mut self.changes {
            change.in_flight = false;
        }
        self.transmit
            .push(ClientAction::HandshakeUserInfo(HandshakeUserInfo {
                user_id: self.identity.as_ref().map(|i| i.user_id.clone()),
                token: self.identity.as_ref().and_then(|i| i.token.clone()),
                since: self.latest_seq,
                protocol_version: Some(crate::PROTOCOL_VERSION),
            }));
    }

    /// The connection is gone. What was not stored stays pending, for the next one.
    pub fn disconnected(&mut self, _now: Millis) {
        self.phase = Phase::Closed;
        self.call_disconnected();
        self.online.clear();
        self.typing.clear();
        self.transmit.clear();
        self.queued.clear();
        self.wake_at = None;
        if self.history == History::Loading {
            self.history = History::More;
        }
        if let Some(search) = &mut self.search
            && search.status == SearchStatus::Searching
        {
            search.status =
                SearchStatus::Failed("The room went offline; search again when it is back.".into());
        }
    }

    /// A text frame from the room. A frame that does not decode is reported, not acted on:
    /// the server is not trusted.
    pub fn handle_frame(&mut self, now: Millis, text: &str) {
        match crate::decode_server(text) {
            Ok(action) => self.handle_action(now, action),
            Err(error) => self.notice(Notice::BadFrame(error.to_string())),
        }
    }

    /// An action from the room.
    pub fn handle_action(&mut self, now: Millis, action: ServerAction) {
        match action {
            ServerAction::Handshake(handshake) => self.on_handshake(handshake),
            ServerAction::UserInfo(info) => self.on_user_info(now, info),
            ServerAction::Message(record) => {
                if let Some(seq) = record.seq {
                    self.latest_seq = Some(self.latest_seq.map_or(seq, |l| l.max(seq)));
                }
                self.arrive(record);
            }
            ServerAction::NameChange(change) => {
                self.names.extend(change.id_name_pair);
                self.names.insert(change.user_id, change.name);
            }
            ServerAction::UserConnected(user) => self.came_or_went(user, true),
            ServerAction::UserDisconnected(user) => self.came_or_went(user, false),
            ServerAction::Presence(presence) => {
                for user in presence.left {
                    self.came_or_went(user, false);
                }
                for user in presence.joined {
                    self.came_or_went(user, true);
                }
                self.names.extend(presence.names);
            }
            ServerAction::Resume(resume) => self.on_resume(resume),
            ServerAction::History(page) => {
                self.names.extend(page.user_names);
                for record in page.messages {
                    self.insert(record);
                }
                self.history = if page.has_more {
                    History::More
                } else {
                    History::Complete
                };
            }
            ServerAction::SearchResults(page) => self.on_search_results(page),
            ServerAction::Call(signal) => self.on_call(now, signal),
            ServerAction::Error(error) => self.on_error(now, error),
            ServerAction::Typing(user) => {
                let until = now + TYPING_SHOWN_MS;
                let direct = user.direct;
                match self
                    .typing
                    .iter_mut()
                    .find(|(u, d, _)| *u == user.user_id && *d == direct)
                {
                    Some((_, _, shown)) => *shown = until,
                    None => self.typing.push((user.user_id, direct, until)),
                }
            }
            ServerAction::MessageChanged(record) => {
                if let Some(nonce) = &record.change_nonce {
                    self.change_stored(nonce);
                }
                if let Some(seq) = record.changed_seq {
                    self.latest_seq = Some(self.latest_seq.map_or(seq, |l| l.max(seq)));
                }
                self.insert(record);
            }
        }
    }

    /// The user wrote a message (answering message `reply_to`, if given): it is pending at
    /// once, and goes out when the room is online and its rate allows. Returns its nonce.
    pub fn send_message(
        &mut self,
        now: Millis,
        text: &str,
        reply_to: Option<Seq>,
    ) -> Result<String, ComposeError> {
        self.send_message_to(now, text, reply_to, None)
    }

    /// [`Self::send_message`], as a direct message to `to` when given: the room delivers it
    /// to the two of us only. Everything else (pending, echo, refusal, pacing) is the same.
    pub fn send_message_to(
        &mut self,
        now: Millis,
        text: &str,
        reply_to: Option<Seq>,
        to: Option<UserId>,
    ) -> Result<String, ComposeError> {
        self.check_message(text)?;
        let nonce = self.next_nonce();
        let message = self.outgoing(text.to_owned(), nonce.clone(), now, reply_to, to);
        // Our message ends our typing for the others: the next key press says so again.
        self.typing_sent = None;
        self.pending.push(message);
        self.flush(now);
        Ok(nonce)
    }

    /// Edits one of our stored messages (its seq): the room stores the change and tells
    /// everyone the message as it is now. Checked here as the room would check a message.
    pub fn edit_message(
        &mut self,
        now: Millis,
        target: Seq,
        text: &str,
    ) -> Result<(), ComposeError> {
        self.check_message(text)?;
        self.ask_change(now, target, ChangeAsk::Edit(text.to_owned()));
        Ok(())
    }

    /// Deletes one of our stored messages (its seq) for everyone.
    pub fn delete_message(&mut self, now: Millis, target: Seq) {
        self.ask_change(now, target, ChangeAsk::Delete);
    }

    /// Adds (`on`) or takes back our reaction `emoji` to a stored message (its seq).
    pub fn react(&mut self, now: Millis, target: Seq, emoji: &str, on: bool) {
        let emoji = emoji.to_owned();
        self.ask_change(now, target, ChangeAsk::React { emoji, on });
    }

    /// The latest message from someone else that arrived as it was written.
    pub fn last_arrived(&self) -> Option<Seq> {
        self.last_arrived
    }

    /// Our latest message the room has stored and not deleted, and not a call's record (from
    /// the timeline, or, for a session that keeps none, the latest echo of ours): what Up in
    /// an empty box edits.
    pub fn last_own_message(&self) -> Option<Seq> {
        if self.config.keep_messages == 0 {
            return self.last_echoed;
        }
        self.messages
            .iter()
            .rev()
            .find(|m| !m.deleted && m.call.is_none() && self.is_me(&m.user_id))
            .and_then(|m| m.seq)
    }

    /// Sends a message that failed again (same nonce), in its place among the others.
    pub fn retry(&mut self, now: Millis, key: &str) {
        if let Some(message) = self.pending.iter_mut().find(|m| m.key == key) {
            message.delivery = Delivery::Pending;
            message.in_flight = false;
            self.flush(now);
        }
    }

    /// Takes a message that was not sent (failed or refused) out, and gives back its text.
    pub fn take_back(&mut self, key: &str) -> Option<String> {
        let index = self.pending.iter().position(|m| {
            m.key == key && matches!(m.delivery, Delivery::Failed | Delivery::Refused)
        })?;
        Some(self.pending.remove(index).raw)
    }

    /// The name we want here (`None`: whatever the room gives). Sent now if we are online
    /// under another name, else when the room identifies us.
    pub fn set_wanted_name(&mut self, now: Millis, name: Option<String>) {
        self.wanted_name = name;
        if self.phase == Phase::Online {
            self.send_wanted_name();
            self.flush(now);
        }
    }

    /// Asks for the page before the timeline's first message, if the room has one and no
    /// request is out.
    pub fn request_history(&mut self, now: Millis) {
        if let (History::More, Phase::Online, Some(before)) =
            (self.history, self.phase, self.first_seq())
        {
            self.history = History::Loading;
            self.queued
                .push(ClientAction::HistoryRequest(HistoryRequest {
                    before,
                    limit: HISTORY_PAGE,
                }));
            self.flush(now);
        }
    }

    /// The search shown, if any.
    pub fn search(&self) -> Option<&SearchState> {
        self.search.as_ref()
    }

    /// Searches the room for `query` (the room's rule, checked here first): results replace
    /// any earlier search's.
    pub fn start_search(
        &mut self,
        now: Millis,
        query: &str,
    ) -> Result<(), crate::search::QueryError> {
        let words = crate::search::SearchQuery::parse(query)?;
        let nonce = self.next_nonce();
        self.search = Some(SearchState {
            query: query.to_owned(),
            words,
            nonce: nonce.clone(),
            results: Vec::new(),
            next: None,
            status: SearchStatus::Searching,
        });
        self.ask_search(now, None, nonce);
        Ok(())
    }

    /// Asks for the next (older) page of results, if there is one and none is out; after a
    /// failure, asks again for the page that failed.
    pub fn search_more(&mut self, now: Millis) {
        let nonce = self.next_nonce();
        let Some(search) = &mut self.search else {
            return;
        };
        let before = match &search.status {
            SearchStatus::Done if search.next.is_some() => search.next,
            SearchStatus::Failed(_) => search.results.last().and_then(|m| m.seq),
            _ => return,
        };
        search.status = SearchStatus::Searching;
        search.nonce = nonce.clone();
        self.ask_search(now, before, nonce);
    }

    /// Closes the search.
    pub fn end_search(&mut self) {
        self.search = None;
    }

    fn ask_search(&mut self, now: Millis, before: Option<Seq>, nonce: String) {
        let Some(search) = &mut self.search else {
            return;
        };
        if self.phase != Phase::Online {
            search.status =
                SearchStatus::Failed("The room is not connected; search again when it is.".into());
            return;
        }
        self.queued.push(ClientAction::Search(crate::Search {
            query: search.query.clone(),
            before,
            nonce: Some(nonce),
        }));
        self.flush(now);
    }

    fn on_search_results(&mut self, page: crate::SearchResults) {
        if self
            .search
            .as_ref()
            .is_none_or(|s| page.nonce.as_ref() != Some(&s.nonce))
        {
            return;
        }
        self.names.extend(page.user_names);
        // A server is not trusted: only what matches, visible to us, newest first, once.
        let me = self.identity.as_ref().map(|i| i.user_id.clone());
        let results: Vec<Message> = page
            .messages
            .into_iter()
            .filter(|r| {
                r.seq.is_some()
                    && !r.deleted
                    && crate::room::may_see(me.as_deref(), &r.user_id, r.to.as_deref())
            })
            .map(|r| self.stored(format!("r{}", r.seq.unwrap_or_default()), r))
            .collect();
        let Some(search) = &mut self.search else {
            return;
        };
        let older_than = search
            .results
            .last()
            .and_then(|m| m.seq)
            .unwrap_or(Seq::MAX);
        for message in results {
            if message.seq.is_some_and(|seq| seq < older_than)
                && search.words.matches(&message.raw)
                && !search.results.iter().any(|m| m.seq == message.seq)
            {
                search.results.push(message);
            }
        }
        search.results.sort_by_key(|m| std::cmp::Reverse(m.seq));
        search.next = page.next;
        search.status = SearchStatus::Done;
    }

    /// Time has come ([`Self::poll_timeout`]): held messages go out, "is typing" expires.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.typing.retain(|(_, _, until)| *until > now);
        self.call_handle_timeout(now);
        if self.wake_at.is_some_and(|at| at <= now) {
            self.wake_at = None;
            self.flush(now);
        }
    }

    /// The user is typing here: the others hear so, at most every [`TYPING_EVERY_MS`].
    pub fn note_typing(&mut self, now: Millis) {
        self.note_typing_to(now, None);
    }

    /// The user is typing in the room (`None`) or to one person: the room, or that person
    /// only, hears so, at most every [`TYPING_EVERY_MS`] while it stays the same.
    pub fn note_typing_to(&mut self, now: Millis, to: Option<UserId>) {
        if self.phase != Phase::Online
            || self
                .typing_sent
                .as_ref()
                .is_some_and(|(place, sent)| *place == to && now - sent < TYPING_EVERY_MS)
        {
            return;
        }
        self.typing_sent = Some((to.clone(), now));
        self.queued.push(ClientAction::Typing(Typing { to }));
        self.flush(now);
    }

    // ---- Rules ----

    fn on_handshake(&mut self, handshake: Handshake) {
        self.server_name = Some(handshake.server_name);
        self.limits = handshake.limits;
        self.speaks_ours = handshake.protocol_version.is_some();
        self.ice_servers = handshake.ice_servers;
        self.reached = true;
        if let (Some(theirs), Some(ours)) = (handshake.latest_seq, self.latest_seq)
            && theirs < ours
        {
            // The room has less than we saw: it is not the room we knew. Start over.
            self.messages.clear();
            self.latest_seq = None;
        }
        self.names.extend(handshake.user_names);
        if let Some(online) = handshake.online {
            self.online = online.into_iter().collect();
        }
        for person in handshake.people.into_iter().flatten() {
            self.people.insert(person.user_id.clone(), person);
        }
        for record in handshake.messages {
            self.insert(record);
        }
        self.latest_seq = self.latest_seq.max(handshake.latest_seq);
        self.history = match (handshake.protocol_version, self.first_seq()) {
            (None, _) => History::Unsupported,
            (Some(_), Some(first)) if first > 1 => History::More,
            _ => History::Complete,
        };
    }

    fn on_user_info(&mut self, now: Millis, info: UserInfo) {
        let same = self.is_me(&info.user_id);
        let token = match (same, info.token) {
            (_, Some(token)) => Some(token),
            (true, None) => self.identity.as_ref().and_then(|i| i.token.clone()),
            (false, None) => None,
        };
        self.identity = Some(Identity {
            user_id: info.user_id.clone(),
            token,
        });
        // Messages written before the room gave us an identity are ours too.
        for message in &mut self.pending {
            message.user_id.clone_from(&info.user_id);
        }
        self.names.insert(info.user_id.clone(), info.name);
        self.online.insert(info.user_id);
        self.phase = Phase::Online;
        self.events.push(Event::Online);
        self.send_wanted_name();
        self.flush(now);
    }

    fn on_resume(&mut self, resume: Resume) {
        self.names.extend(resume.user_names);
        if resume.gap_too_big {
            // Too much was missed to fill in: keep the recent messages the handshake brought,
            // drop what is older than the gap, and let history paging fill it.
            let floor = self
                .messages
                .iter()
                .filter_map(|m| m.seq)
                .filter(|&s| s > resume.since)
                .min();
            if let Some(floor) = floor {
                self.messages.retain(|m| m.seq.is_none_or(|s| s >= floor));
            }
            self.history = History::More;
            self.notice(Notice::GapTooBig);
        }
        for record in resume.messages {
            self.arrive(record);
        }
    }

    fn on_error(&mut self, now: Millis, error: crate::ErrorPayload) {
        if self.call_refused(error.nonce.as_ref(), &error.message) {
            return;
        }
        // A refusal of the search out is the search's, and nobody else's.
        if let Some(search) = &mut self.search
            && search.status == SearchStatus::Searching
            && (error.nonce.as_ref() == Some(&search.nonce)
                || error.nonce.is_none()
                    && matches!(
                        error.code,
                        ErrorCode::InvalidSearch | ErrorCode::SearchFailed
                    ))
        {
            search.status = SearchStatus::Failed(match error.code {
                ErrorCode::RateLimited => {
                    "You are searching too fast; try again in a moment.".into()
                }
                _ => error.message,
            });
            return;
        }
        // A refusal of one of our changes is that change's (its state, kept for the person);
        // a rate refusal sends it, and the messages after it, again.
        if let Some(nonce) = error.nonce.as_deref()
            && self.change_refused(nonce, error.code, &error.message)
        {
            return;
        }
        // A refusal names the nonce of the message it refuses. A room that names none (an
        // older server) answers in order: it is about the oldest message still waiting.
        let refused = match error.code {
            ErrorCode::StorageFailed => Some(Delivery::Failed),
            ErrorCode::EmptyMessage
            | ErrorCode::MessageTooLong
            | ErrorCode::MessageTooComplex
            | ErrorCode::InvalidNonce => Some(Delivery::Refused),
            _ => None,
        };
        if let Some(delivery) = refused
            && let Some(message) = self.pending.iter_mut().find(|m| {
                m.delivery == Delivery::Pending && (error.nonce.is_none() || m.nonce == error.nonce)
            })
        {
            message.delivery = delivery;
            message.in_flight = false;
        }
        let notice = match error.code {
            ErrorCode::RateLimited => {
                // The refused message and every one after it go again, in order: none may
                // overtake it.
                let from = error
                    .nonce
                    .as_ref()
                    .and_then(|n| {
                        self.pending
                            .iter()
                            .position(|m| m.nonce.as_ref() == Some(n))
                    })
                    .unwrap_or(0);
                for message in self.pending.iter_mut().skip(from) {
                    message.in_flight = false;
                }
                let at = now + RATE_LIMIT_RETRY_MS;
                self.wake_at = Some(self.wake_at.map_or(at, |w| w.max(at)));
                Notice::RateLimited
            }
            ErrorCode::IdentityRejected => Notice::IdentityRejected,
            ErrorCode::HistoryFailed => {
                if self.history == History::Loading {
                    self.history = History::More;
                }
                Notice::HistoryFailed
            }
            ErrorCode::InvalidHistoryRequest => {
                if self.history == History::Loading {
                    self.history = History::Complete;
                }
                Notice::Refused(error.message)
            }
            _ => Notice::Refused(error.message),
        };
        self.notice(notice);
    }

    /// Sends what waits (names and history requests first, then messages in the order they
    /// were written) as fast as the room's announced rate allows; if some must wait, wakes
    /// when the next can go.
    fn flush(&mut self, now: Millis) {
        if self.phase != Phase::Online {
            return;
        }
        if let (None, Some(limits)) = (&self.bucket, self.limits) {
            self.bucket = Some(TokenBucket::new(
                limits.rate_burst,
                limits.rate_per_second,
                now,
            ));
        }
        if self.wake_at.is_some_and(|at| at > now) {
            // A wait is on (the room said we were too fast): nothing overtakes it.
            return;
        }
        while !self.queued.is_empty() {
            if !self.spend(now) {
                return;
            }
            let action = self.queued.remove(0);
            self.transmit.push(action);
        }
        if !self.flush_changes(now) {
            return;
        }
        for i in 0..self.pending.len() {
            let message = &self.pending[i];
            if message.delivery != Delivery::Pending || message.in_flight {
                continue;
            }
            if !self.spend(now) {
                return;
            }
            let message = &mut self.pending[i];
            message.in_flight = true;
            self.transmit.push(ClientAction::Message(SendMessage {
                raw_message: message.raw.clone(),
                user_id: None,
                nonce: message.nonce.clone(),
                reply_to: message.reply_to,
                to: message.to.clone(),
            }));
        }
    }

    /// Takes one of the room's tokens for an action, or sets the wake-up for when the next
    /// one comes. A room that announced no rate (a v1 server) is not paced.
    fn spend(&mut self, now: Millis) -> bool {
        if self.bucket.as_mut().is_none_or(|b| b.try_take(now)) {
            return true;
        }
        let per_second = self.limits.map_or(1, |l| l.rate_per_second.max(1));
        self.wake_at = Some(now + Millis::from(1_000 / per_second + 1));
        false
    }

    fn send_wanted_name(&mut self) {
        if let Some(name) = &self.wanted_name
            && self.my_name() != Some(name.as_str())
        {
            let change = ClientAction::NameChange(ChangeName {
                name: name.clone(),
                user_id: None,
            });
            // One change waits at a time: the latest wanted name.
            self.queued
                .retain(|a| !matches!(a, ClientAction::NameChange(_)));
            self.queued.push(change);
        }
    }

    /// Someone came online (`online`) or went offline, as `USER_CONNECTED`,
    /// `USER_DISCONNECTED` or a `PRESENCE` tick says, with when they joined or were last seen.
    fn came_or_went(&mut self, user: crate::wire::UserRef, online: bool) {
        let person = self
            .people
            .entry(user.user_id.clone())
            .or_insert_with(|| Person {
                user_id: user.user_id.clone(),
                joined_at: None,
                last_seen: None,
            });
        person.joined_at = person.joined_at.or(user.joined_at);
        person.last_seen = user.last_seen.or(person.last_seen);
        if online {
            self.online.insert(user.user_id);
        } else {
            self.online.remove(&user.user_id);
        }
    }

    fn next_nonce(&mut self) -> String {
        let nonce = format!("{}-{}", self.config.nonce_prefix, self.next_nonce);
        self.next_nonce += 1;
        nonce
    }

    fn notice(&mut self, notice: Notice) {
        self.events.push(Event::Notice(notice));
    }

    fn outgoing(
        &self,
        raw: String,
        nonce: String,
        timestamp: Millis,
        reply_to: Option<Seq>,
        to: Option<UserId>,
    ) -> Message {
        Message {
            key: format!("n{nonce}"),
            seq: None,
            user_id: self
                .identity
                .as_ref()
                .map(|i| i.user_id.clone())
                .unwrap_or_default(),
            html: (self.config.render)(&raw),
            raw,
            timestamp,
            nonce: Some(nonce),
            delivery: Delivery::Pending,
            in_flight: false,
            edited_at: None,
            deleted: false,
            changed_seq: None,
            reactions: Vec::new(),
            reply_to,
            to,
            call: None,
        }
    }

    fn first_seq(&self) -> Option<Seq> {
        self.messages.first().and_then(|m| m.seq)
    }

    /// A message as it was written (live or resumed): ours confirms its pending copy; one of
    /// someone else's that is new is told to the view.
    fn arrive(&mut self, record: MessageRecord) {
        let mine = self.is_me(&record.user_id);
        if mine {
            self.confirm(&record);
        }
        let from = record.user_id.clone();
        // Their message is here: they are no longer typing it.
        let direct = record.to.is_some();
        self.typing.retain(|(u, d, _)| *u != from || *d != direct);
        if !mine && record.seq.is_some() {
            self.last_arrived = self.last_arrived.max(record.seq);
        }
        let mentions_me = !mine && self.mentions_me(&record.raw_message);
        if self.insert(record) && !mine {
            self.events.push(Event::Arrived {
                from,
                mentions_me,
                direct,
            });
        }
    }

    /// Removes the pending message this echo confirms: by nonce, or (a v1 server echoes no
    /// nonce) the oldest pending message with the same text.
    fn confirm(&mut self, record: &MessageRecord) {
        let index = match &record.nonce {
            Some(nonce) => self
                .pending
                .iter()
                .position(|p| p.nonce.as_ref() == Some(nonce)),
            None => self
                .pending
                .iter()
                .position(|p| p.raw == record.raw_message),
        };
        if let Some(index) = index {
            self.pending.remove(index);
        }
        if record.seq.is_some() && record.call.is_none() {
            self.last_echoed = record.seq;
        }
    }

    /// A message the room stored, as the timeline keeps it, rendered here.
    fn stored(&self, key: String, record: MessageRecord) -> Message {
        Message {
            key,
            seq: record.seq,
            html: (self.config.render)(&record.raw_message),
            raw: record.raw_message,
            user_id: record.user_id,
            timestamp: record.timestamp,
            nonce: record.nonce,
            delivery: Delivery::Sent,
            in_flight: false,
            edited_at: record.edited_at,
            deleted: record.deleted,
            changed_seq: record.changed_seq,
            reactions: record.reactions,
            reply_to: record.reply_to,
            to: record.to,
            call: record.call,
        }
    }

    /// Adds a stored message in its place; false if it was already there (or none are kept).
    fn insert(&mut self, record: MessageRecord) -> bool {
        if self.config.keep_messages == 0 {
            return true;
        }
        let position = match (record.seq, &record.id) {
            (Some(seq), _) => match self
                .messages
                .binary_search_by(|m| m.seq.unwrap_or(0).cmp(&seq))
            {
                Ok(at) => {
                    // Known: a newer state of it (edited, deleted) replaces the one shown.
                    if record.changed_seq > self.messages[at].changed_seq {
                        let key = self.messages[at].key.clone();
                        self.messages[at] = self.stored(key, record);
                    }
                    return false;
                }
                Err(at) => at,
            },
            (None, Some(id)) => {
                let key = format!("i{id}");
                if self.messages.iter().any(|m| m.key == key) {
                    return false;
                }
                self.messages.len()
            }
            (None, None) => self.messages.len(),
        };
        let key = match (record.seq, &record.id) {
            (Some(seq), _) => format!("s{seq}"),
            (None, Some(id)) => format!("i{id}"),
            (None, None) => {
                self.arrivals += 1;
                format!("a{}", self.arrivals)
            }
        };
        let appended = position == self.messages.len();
        let message = self.stored(key, record);
        self.messages.insert(position, message);
        if appended && self.messages.len() > self.config.keep_messages {
            let excess = self.messages.len() - self.config.keep_messages;
            self.messages.drain(..excess);
            if self.history != History::Unsupported {
                self.history = History::More;
            }
        }
        true
    }
}
