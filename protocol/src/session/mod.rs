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
//! - this file: [`Session`], its connection (handshake, identity, refusals) and people.
//! - `timeline`: the room's messages in `seq` order, history paging, resume.
//! - `outbox`: what we send until the room has stored it (messages and changes), paced by
//!   the room's rate.
//! - `search`: searching the room, page after page.
//! - `typing`: "is typing", both ways.
//! - `call`: a call with one person, as the room relays it.
//! - `names`: people's names as shown, told apart when two share one.

mod call;
mod names;
mod outbox;
#[cfg(test)]
mod outbox_tests;
mod search;
#[cfg(test)]
mod tests;
mod timeline;
mod typing;

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
    ChangeName, ClientAction, Handshake, HandshakeUserInfo, Millis, Person, RoomLimits, Seq,
    ServerAction, UserId, UserInfo,
};
use crate::{ErrorCode, RoomConfig};

pub use call::{Call, CallError, CallEvent, CallPhase, RING_GIVE_UP_MS};
pub use names::{Names, UNKNOWN_NAME};
use outbox::Outgoing;
pub use outbox::{ChangeAsk, Delivery, PendingChange};
pub use search::{SearchState, SearchStatus};
pub use timeline::{History, Message};

/// Messages asked for per history page.
pub const HISTORY_PAGE: u32 = 50;
/// People online asked for in one `PEOPLE_REQUEST` (the room gives at most its own page).
pub const PEOPLE_PAGE: u32 = 100;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No connection.
    Closed,
    /// Connected; waiting for the room to say who we are.
    Identifying,
    /// Identified: messages go out.
    Online,
}

/// Moderation events a session keeps, the latest.
const AUDIT_SHOWN: usize = 200;

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
    #[error("A moderator removed you from this room: {0}. You may come back.")]
    Kicked(String),
    #[error("Reported to the moderators.")]
    Reported,
    #[error("The server sent something this client does not understand ({0}).")]
    BadFrame(String),
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
    /// The message asked for with [`Session::reveal`] is in the timeline now: the view may
    /// scroll to it.
    Revealed(Seq),
    /// The room listed a direct conversation with messages from `from` we have not seen (they
    /// came while we were away): a view counts them as unread.
    Missed { from: UserId, count: u32 },
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
    /// Our messages and changes until the room stores them, in the order asked for (see the
    /// `outbox` module); they go after `queued`.
    outbox: Vec<Outgoing>,
    names: Names,
    online: BTreeSet<UserId>,
    /// How many are online in all, as the room last said (`online` may know fewer: the room
    /// lists the first of them and gives the rest by page).
    online_count: Option<u32>,
    /// Where the next page of the people online starts (`PEOPLE_REQUEST`'s `after`), while
    /// there are more than we were told of; whether one was asked for and not answered yet.
    people_next: Option<UserId>,
    people_asked: bool,
    /// When people joined and were last seen, as the room told us.
    people: BTreeMap<UserId, Person>,
    /// Owners and moderators, as the room told us (everyone else is a member).
    roles: BTreeMap<UserId, crate::wire::Role>,
    /// Who is timed out, until when (the room's clock), as the room told us (a few: a list).
    timed_out: Vec<(UserId, Millis)>,
    /// Who is banned, until when (`None`: until lifted), as the room told us.
    banned: Vec<(UserId, Option<Millis>)>,
    /// The moderation log as the room told us (moderators and owners), newest first.
    audit: Vec<crate::wire::AuditEntry>,
    /// The open reports as the room told us (moderators and owners), oldest first.
    open_reports: Vec<crate::wire::AuditEntry>,
    /// The room refused us as banned (`BANNED`), saying this: the connection it closes is not
    /// to be opened again by itself (cleared when a connection opens).
    refused_banned: Option<String>,
    /// The topic and slow mode, as the room told us.
    room_settings: crate::wire::RoomSettings,
    history: History,
    /// The oldest seq the room-wide timeline reaches: every message we may see from there on is
    /// in it (what a room page asks before). Pages of one conversation, and the latest
    /// messages of conversations the room listed, lie below it and do not move it.
    floor: Option<Seq>,
    /// The direct conversations the room listed or that paged on their own (a few: a list is
    /// smaller in the browser client's download than a map).
    direct: Vec<timeline::Direct>,
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
    /// A message to reveal, and the conversation it is in, while history is paged in for it
    /// ([`Session::reveal`]).
    revealing: Option<(Seq, Option<UserId>)>,
    /// When we last said we were typing, and where (the room, or to whom).
    typing_sent: Option<(Option<UserId>, Millis)>,
    /// Actions the room counts against its rate (names, history requests), waiting for the
    /// rate as messages do; they go before any message.
    queued: Vec<ClientAction>,
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
            outbox: Vec::new(),
            names: Names::default(),
            online: BTreeSet::new(),
            online_count: None,
            people_next: None,
            people_asked: false,
            people: BTreeMap::new(),
            roles: BTreeMap::new(),
            timed_out: Vec::new(),
            banned: Vec::new(),
            audit: Vec::new(),
            open_reports: Vec::new(),
            refused_banned: None,
            room_settings: crate::wire::RoomSettings::default(),
            history: History::Complete,
            floor: None,
            direct: Vec::new(),
            latest_seq: None,
            reached: false,
            arrivals: 0,
            next_nonce: 1,
            search: None,
            revealing: None,
            last_echoed: None,
            last_arrived: None,
            wake_at: None,
            typing: Vec::new(),
            typing_sent: None,
            queued: Vec::new(),
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

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn online(&self) -> &BTreeSet<UserId> {
        &self.online
    }

    /// How many people are online in all: the room's count (everyone in [`Self::online`] at
    /// least).
    pub fn online_count(&self) -> usize {
        let said = self.online_count.map_or(0, |c| c as usize);
        said.max(self.online.len())
    }

    /// Whether the room has more people online than it told us of ([`Self::more_people`]
    /// asks for them).
    pub fn has_more_people(&self) -> bool {
        self.people_next.is_some()
    }

    /// Asks the room for the next page of the people online (once at a time).
    pub fn more_people(&mut self, now: Millis) {
        let Some(after) = self.people_next.clone() else {
            return;
        };
        if self.people_asked {
            return;
        }
        self.people_asked = true;
        self.queued
            .push(ClientAction::PeopleRequest(crate::wire::PeopleRequest {
                after: Some(after),
                limit: PEOPLE_PAGE,
            }));
        self.flush(now);
    }

    /// A page of the people online, as `PEOPLE_REQUEST` asked.
    fn on_people(&mut self, page: crate::wire::PeoplePage) {
        if page.after != self.people_next {
            // An answer to a page asked on an earlier connection.
            return;
        }
        self.people_asked = false;
        self.people_next = page.next;
        self.online_count = Some(page.online_count);
        self.names.extend(page.user_names);
        for person in page.people {
            self.online.insert(person.user_id.clone());
            self.people.insert(person.user_id.clone(), person);
        }
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
        let time_out_ends = self.timed_out.iter().map(|(_, until)| *until).min();
        self.wake_at
            .into_iter()
            .chain(typing)
            .chain(time_out_ends)
            .chain(self.call_timeout())
            .min()
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

    // ---- What happens ----

    /// A connection to the room opened: identify, and ask for what we missed if we were
    /// here before.
    pub fn connected(&mut self, _now: Millis) {
        self.phase = Phase::Identifying;
        self.refused_banned = None;
        // A new connection: nothing is in flight on it, and the room's rate starts afresh.
        self.bucket = None;
        self.wake_at = None;
        self.transmit.clear();
        self.queued.clear();
        self.outbox_reconnected();
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
        self.online_count = None;
        self.people_next = None;
        self.people_asked = false;
        self.typing.clear();
        self.transmit.clear();
        self.queued.clear();
        self.wake_at = None;
        self.history_not_loading(History::More);
        self.search_offline();
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
                if presence.online_count.is_some() {
                    self.online_count = presence.online_count;
                }
            }
            ServerAction::People(page) => self.on_people(page),
            ServerAction::Resume(resume) => self.on_resume(resume),
            ServerAction::History(page) => self.on_history(now, page),
            ServerAction::Conversations(list) => self.on_conversations(list),
            ServerAction::Moderated(done) => self.moderated(done),
            ServerAction::Room(changed) => self.room_settings = changed.settings,
            ServerAction::Role(changed) => match changed.role {
                Some(role) => {
                    self.roles.insert(changed.user_id, role);
                }
                None => {
                    self.roles.remove(&changed.user_id);
                }
            },
            ServerAction::SearchResults(page) => self.on_search_results(page),
            ServerAction::Call(signal) => self.on_call(now, signal),
            ServerAction::Error(error) => self.on_error(now, error),
            ServerAction::Audit(audit) => self.on_audit(audit),
            ServerAction::Typing(user) => self.on_typing(now, user),
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

    /// Until when `user` is timed out, if they are at `now` (a time-out ends by itself: the
    /// session wakes its host then, see [`Self::poll_timeout`]).
    pub fn timed_out_until(&self, user: &str, now: Millis) -> Option<Millis> {
        self.timed_out
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, until)| *until)
            .filter(|until| *until > now)
    }

    fn moderated(&mut self, done: crate::wire::Moderated) {
        use crate::wire::ModerationKind;
        match done.kind {
            ModerationKind::Kick => {
                if let Some(reason) = done.reason.filter(|_| self.is_me(&done.user_id)) {
                    self.notice(Notice::Kicked(reason));
                }
                return;
            }
            ModerationKind::Ban | ModerationKind::Unban => {
                self.banned.retain(|(u, _)| *u != done.user_id);
                if done.kind == ModerationKind::Ban {
                    self.banned.push((done.user_id, done.until));
                }
                return;
            }
            ModerationKind::TimeOut | ModerationKind::EndTimeOut => {}
        }
        self.timed_out.retain(|(u, _)| *u != done.user_id);
        if let Some(until) = done.until {
            self.timed_out.push((done.user_id, until));
        }
    }

    /// As a moderator or owner: closes `user`'s connections, telling them why; they may come
    /// back.
    pub fn kick(&mut self, now: Millis, user: UserId, reason: String) {
        let kind = crate::wire::ModerationKind::Kick;
        self.moderate(now, kind, user, None, Some(reason), false);
    }

    /// Reports the room message `target` to the moderators, saying why (answered by the
    /// report's entry, or refused with `INVALID_REPORT`).
    pub fn report(&mut self, now: Millis, target: Seq, reason: String) {
        let nonce = Some(self.next_nonce());
        self.queued.push(ClientAction::Report(crate::wire::Report {
            target,
            reason,
            nonce,
        }));
        self.flush(now);
    }

    /// As a moderator or owner: resolves the open report `report` (its seq).
    pub fn resolve_report(&mut self, now: Millis, report: Seq) {
        let nonce = Some(self.next_nonce());
        self.queued
            .push(ClientAction::ResolveReport(crate::wire::ResolveReport {
                report,
                nonce,
            }));
        self.flush(now);
    }

    /// As a moderator or owner: asks for the moderation log and the open reports.
    pub fn request_audit(&mut self, now: Millis) {
        let nonce = Some(self.next_nonce());
        self.queued
            .push(ClientAction::AuditRequest(crate::wire::AuditRequest {
                nonce,
            }));
        self.flush(now);
    }

    /// The moderation log as the room told us, newest first (moderators and owners).
    pub fn audit(&self) -> &[crate::wire::AuditEntry] {
        &self.audit
    }

    /// The open reports, oldest first (moderators and owners).
    pub fn open_reports(&self) -> &[crate::wire::AuditEntry] {
        &self.open_reports
    }

    fn on_audit(&mut self, audit: crate::wire::Audit) {
        use crate::wire::AuditAction;
        if !audit.live {
            self.audit = audit.entries;
            self.open_reports = audit.open_reports;
            return;
        }
        for entry in audit.entries {
            if audit.nonce.is_some() && entry.action == AuditAction::Report {
                self.notice(Notice::Reported);
            }
            if self.my_role().is_none() {
                continue;
            }
            match entry.action {
                AuditAction::Report => self.open_reports.push(entry.clone()),
                AuditAction::Resolve => {
                    self.open_reports.retain(|r| Some(r.seq) != entry.report);
                }
                _ => {}
            }
            self.audit.insert(0, entry);
            self.audit.truncate(AUDIT_SHOWN);
        }
    }

    /// Whether `user` is banned at `now`, and until when (`Some(None)`: until it is lifted).
    pub fn banned_until(&self, user: &str, now: Millis) -> Option<Option<Millis>> {
        self.banned
            .iter()
            .find(|(u, until)| u == user && until.is_none_or(|t| t > now))
            .map(|(_, until)| *until)
    }

    /// What the room said when it refused us as banned, if it did on this connection: the
    /// host does not reconnect by itself then.
    pub fn refused_banned(&self) -> Option<&str> {
        self.refused_banned.as_deref()
    }

    /// As a moderator or owner: bans `user` for `minutes` (`None`: until lifted), saying why,
    /// and with `address` the network addresses they came from.
    pub fn ban(
        &mut self,
        now: Millis,
        user: UserId,
        minutes: Option<u32>,
        reason: String,
        address: bool,
    ) {
        self.moderate(
            now,
            crate::wire::ModerationKind::Ban,
            user,
            minutes,
            Some(reason),
            address,
        );
    }

    /// As a moderator or owner: lifts `user`'s ban.
    pub fn unban(&mut self, now: Millis, user: UserId) {
        let kind = crate::wire::ModerationKind::Unban;
        self.moderate(now, kind, user, None, None, false);
    }

    fn moderate(
        &mut self,
        now: Millis,
        kind: crate::wire::ModerationKind,
        user_id: UserId,
        minutes: Option<u32>,
        reason: Option<String>,
        address: bool,
    ) {
        let nonce = Some(self.next_nonce());
        self.queued
            .push(ClientAction::Moderate(crate::wire::Moderate {
                kind,
                user_id,
                minutes,
                reason,
                address,
                nonce,
            }));
        self.flush(now);
    }

    /// Whether we may act on `user` as a moderator (we outrank them), as the room checks.
    pub fn may_moderate(&self, user: &str) -> bool {
        !self.is_me(user) && crate::wire::Role::outranks(self.my_role(), self.role_of(user))
    }

    /// As a moderator or owner: times `user` out for `minutes`, or ends their time-out
    /// (`None`).
    pub fn time_out(&mut self, now: Millis, user: UserId, minutes: Option<u32>) {
        let kind = match minutes {
            Some(_) => crate::wire::ModerationKind::TimeOut,
            None => crate::wire::ModerationKind::EndTimeOut,
        };
        self.moderate(now, kind, user, minutes, None, false);
    }

    /// The room's topic and slow mode.
    pub fn room_settings(&self) -> &crate::wire::RoomSettings {
        &self.room_settings
    }

    /// As a moderator or owner: sets the room's topic and slow mode.
    pub fn set_room(&mut self, now: Millis, settings: crate::wire::RoomSettings) {
        let nonce = Some(self.next_nonce());
        self.queued
            .push(ClientAction::SetRoom(crate::wire::SetRoom {
                settings,
                nonce,
            }));
        self.flush(now);
    }

    /// Our own role here (`None`: a member, or not identified yet).
    pub fn my_role(&self) -> Option<crate::wire::Role> {
        self.role_of(&self.identity.as_ref()?.user_id)
    }

    /// Someone's role here, as the room told it (`None`: a member).
    pub fn role_of(&self, user: &str) -> Option<crate::wire::Role> {
        self.roles.get(user).copied()
    }

    /// An owner makes `user` a moderator (`Some(Moderator)`) or a member again (`None`); the
    /// room refuses anyone else (`NOT_ALLOWED`, told as a notice).
    pub fn set_role(&mut self, now: Millis, user: UserId, role: Option<crate::wire::Role>) {
        let nonce = Some(self.next_nonce());
        self.queued
            .push(ClientAction::SetRole(crate::wire::SetRole {
                user_id: user,
                role,
                nonce,
            }));
        self.flush(now);
    }

    /// Adds (`on`) or takes back our reaction `emoji` to a stored message (its seq).
    pub fn react(&mut self, now: Millis, target: Seq, emoji: &str, on: bool) {
        let emoji = emoji.to_owned();
        self.ask_change(now, target, ChangeAsk::React { emoji, on });
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

    /// Time has come ([`Self::poll_timeout`]): held messages go out, "is typing" expires.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.typing.retain(|(_, _, until)| *until > now);
        self.timed_out.retain(|(_, until)| *until > now);
        self.call_handle_timeout(now);
        if self.wake_at.is_some_and(|at| at <= now) {
            self.wake_at = None;
            self.flush(now);
        }
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
            self.floor = None;
            self.direct.clear();
        }
        self.names.extend(handshake.user_names);
        if let Some(online) = handshake.online {
            // The first of those online, by id: the rest are asked for by page.
            self.online_count = handshake.online_count;
            self.people_next = match handshake.online_count {
                Some(count) if count as usize > online.len() => online.last().cloned(),
                _ => None,
            };
            self.people_asked = false;
            self.online = online.into_iter().collect();
        }
        for person in handshake.people.into_iter().flatten() {
            self.people.insert(person.user_id.clone(), person);
        }
        self.roles = handshake.roles;
        self.room_settings = handshake.room;
        self.timed_out = Vec::new();
        self.banned = Vec::new();
        for done in handshake.timed_out.into_iter().chain(handshake.banned) {
            self.moderated(done);
        }
        for record in handshake.messages {
            self.reach(record.seq);
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
        self.outbox_identified(&info.user_id);
        self.names.insert(info.user_id.clone(), info.name);
        self.online.insert(info.user_id);
        self.phase = Phase::Online;
        self.events.push(Event::Online);
        self.send_wanted_name();
        self.go_on_revealing(now);
        self.flush(now);
    }

    fn on_error(&mut self, now: Millis, error: crate::ErrorPayload) {
        if self.call_refused(error.nonce.as_ref(), &error.message) {
            return;
        }
        // A refusal of the search out is the search's, and nobody else's.
        if self.search_refused(&error) {
            return;
        }
        // A refusal of one of our messages or changes is that one's (its state, kept for the
        // person); a rate refusal sends it, and everything after it, again.
        if self.outbox_refused(now, &error) {
            return;
        }
        let notice = match error.code {
            ErrorCode::RateLimited => {
                // A page of people refused for rate is asked for again when wanted.
                self.people_asked = false;
                Notice::RateLimited
            }
            ErrorCode::IdentityRejected => Notice::IdentityRejected,
            ErrorCode::HistoryFailed => {
                // A reveal does not page on through failures: it is asked for again.
                self.revealing = None;
                self.history_not_loading(History::More);
                Notice::HistoryFailed
            }
            ErrorCode::Banned => {
                self.refused_banned = Some(error.message.clone());
                Notice::Refused(error.message)
            }
            ErrorCode::InvalidHistoryRequest => {
                self.revealing = None;
                self.history_not_loading(History::Complete);
                Notice::Refused(error.message)
            }
            _ => Notice::Refused(error.message),
        };
        self.notice(notice);
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
}
