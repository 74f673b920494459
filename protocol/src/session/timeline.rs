//! The room's messages as one client keeps them: a timeline in `seq` order (bounded by
//! `keep_messages`; history paging brings older ones back), filled from the handshake, live
//! messages, a resume and history pages, a newer state of a message replacing an older one.

use super::{Delivery, Event, HISTORY_PAGE, Notice, Phase, Session};
use crate::wire::{
    ClientAction, Conversations, History as HistoryPage, HistoryRequest, MessageRecord, Millis,
    Reaction, Resume, Seq, UserId,
};
use std::rc::Rc;

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
    /// Deleted by a moderator (with `deleted`): "removed by a moderator".
    pub removed: bool,
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

/// A direct conversation as the session pages it on its own.
#[derive(Debug, Clone)]
pub(super) struct Direct {
    /// The other person.
    with: UserId,
    /// How far back it reaches here (it may lie below the room's floor).
    floor: Seq,
    history: History,
    /// Its latest seq, as the room listed it.
    listed: Option<Seq>,
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

impl Session {
    /// The room's stored messages, oldest first.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The room's history: how much older than the timeline's first message it has.
    pub fn history(&self) -> History {
        self.history
    }

    /// The history of a conversation: the room's (`None`), or the direct one with that person.
    /// A direct conversation is whole when the room's timeline reaches the room's start or its
    /// own pages reached its first message; it has more when the room listed it or the
    /// timeline has some of it (a conversation nobody wrote in yet has nothing to page).
    pub fn history_in(&self, with: Option<&str>) -> History {
        let Some(peer) = with else {
            return self.history;
        };
        match (self.history, self.direct.iter().find(|d| d.with == peer)) {
            (History::Unsupported, _) => History::Unsupported,
            (History::Complete, _) => History::Complete,
            (_, Some(direct)) => direct.history,
            _ => {
                let me = self.identity.as_ref().map_or("", |i| i.user_id.as_str());
                if self.messages.iter().any(|m| m.is_in(me, Some(peer))) {
                    History::More
                } else {
                    History::Complete
                }
            }
        }
    }

    /// The people we have direct conversations with here, the latest first: those the room
    /// listed and those in the timeline, ours not stored yet included.
    pub fn conversations(&self) -> Vec<UserId> {
        let Some(me) = self.identity.as_ref().map(|i| i.user_id.as_str()) else {
            return Vec::new();
        };
        // Each person's latest seq, the latest first: from the timeline (newest first, so each
        // person's first is their latest), then those listed, each put in its place.
        let mut latest: Vec<(&UserId, Seq)> = Vec::new();
        let stored = self
            .messages
            .iter()
            .rev()
            .filter_map(|m| Some((m.peer(me)?, m.seq?)));
        let listed = self
            .direct
            .iter()
            .filter_map(|d| Some((&d.with, d.listed?)));
        for (peer, seq) in stored.chain(listed) {
            match latest.iter().position(|(p, _)| *p == peer) {
                Some(at) if latest[at].1 >= seq => continue,
                Some(at) => {
                    latest.remove(at);
                }
                None => {}
            }
            let place = latest
                .iter()
                .position(|(_, s)| *s < seq)
                .unwrap_or(latest.len());
            latest.insert(place, (peer, seq));
        }
        let mut ordered: Vec<UserId> = Vec::new();
        // Ours not stored yet are the latest of all.
        let unsent = self.pending().into_iter().rev().filter_map(|m| m.peer(me));
        for peer in unsent.chain(latest.into_iter().map(|(p, _)| p)) {
            if !ordered.contains(peer) {
                ordered.push(peer.clone());
            }
        }
        ordered
    }

    /// The room told us our conversations: each one's latest message joins the timeline (below
    /// the room's floor, it does not move it), and what came while we were away is told.
    pub(super) fn on_conversations(&mut self, list: Conversations) {
        self.names.extend(list.user_names);
        let me = self.identity.as_ref().map(|i| i.user_id.clone());
        for conversation in list.conversations {
            let Some(seq) = conversation.last.seq else {
                continue;
            };
            // A server's word is checked: the message must be between us and that person.
            let between = me
                .as_deref()
                .is_some_and(|me| between(&conversation.last, me, &conversation.with));
            if !between {
                continue;
            }
            let peer = conversation.with;
            let direct = self.direct_of(&peer, seq);
            direct.floor = direct.floor.min(seq);
            direct.listed = Some(seq);
            self.insert(conversation.last);
            if conversation.unread > 0 {
                self.events.push(Event::Missed {
                    from: peer,
                    count: conversation.unread,
                });
            }
        }
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
            self.reach(record.seq);
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
                removed: m.removed,
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
            with: None,
            messages,
            has_more: true,
            user_names,
        }
    }

    /// Asks for the page before the timeline's first message, if the room has one and no
    /// request is out.
    pub fn request_history(&mut self, now: Millis) {
        self.request_history_in(now, None);
    }

    /// Asks for the page of a conversation (the room's, or the direct one with that person)
    /// before its first message here, if it has one and no request is out.
    pub fn request_history_in(&mut self, now: Millis, with: Option<&str>) {
        let Some(before) = self.first_seq_in(with) else {
            return;
        };
        if !self.may_request_history_in(with) {
            return;
        }
        match with {
            None => self.history = History::Loading,
            Some(peer) => self.direct_of(peer, before).history = History::Loading,
        }
        self.queued
            .push(ClientAction::HistoryRequest(HistoryRequest {
                before,
                limit: HISTORY_PAGE,
                with: with.map(str::to_owned),
            }));
        self.flush(now);
    }

    /// Where a conversation's next page ends: the room's floor, or, for a direct one, the
    /// lower of that and how far its own pages reached.
    fn first_seq_in(&self, with: Option<&str>) -> Option<Seq> {
        let floor = self.first_seq();
        match with.and_then(|peer| self.direct.iter().find(|d| d.with == peer)) {
            Some(direct) => Some(floor.map_or(direct.floor, |f| f.min(direct.floor))),
            None if with.is_some() => floor.or(self.latest_seq.map(|l| l + 1)),
            None => floor,
        }
    }

    /// A history request is out no more (the connection went, or the room refused it): what
    /// was loading is `then`.
    pub(super) fn history_not_loading(&mut self, then: History) {
        if self.history == History::Loading {
            self.history = then;
        }
        for direct in &mut self.direct {
            if direct.history == History::Loading {
                direct.history = then;
            }
        }
    }

    /// The conversation with `peer` as paged on its own (new: reaching back to `floor`, with
    /// more to page).
    fn direct_of(&mut self, peer: &str, floor: Seq) -> &mut Direct {
        let at = match self.direct.iter().position(|d| d.with == peer) {
            Some(at) => at,
            None => {
                self.direct.push(Direct {
                    with: peer.to_owned(),
                    floor,
                    history: History::More,
                    listed: None,
                });
                self.direct.len() - 1
            }
        };
        &mut self.direct[at]
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
            .find(|m| self.may_change(m))
            .and_then(|m| m.seq)
    }

    pub(super) fn on_resume(&mut self, resume: Resume) {
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
                self.floor = Some(floor);
                self.cut_below(floor);
            }
            self.history = History::More;
            self.notice(Notice::GapTooBig);
        }
        for record in resume.messages {
            self.arrive(record);
        }
    }

    /// A message as it was written (live or resumed): ours confirms its pending copy; one of
    /// someone else's that is new is told to the view.
    pub(super) fn arrive(&mut self, record: MessageRecord) {
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
        if self.floor.is_none() {
            // The first message of an empty timeline starts it; a resumed change of an old
            // message (as it is now) does not move the floor back over what is not here.
            self.reach(record.seq);
        }
        if self.insert(record) && !mine {
            self.events.push(Event::Arrived {
                from,
                mentions_me,
                direct,
            });
        }
    }

    /// Our message came back stored: its pending copy goes.
    fn confirm(&mut self, record: &MessageRecord) {
        self.message_stored(record);
        if record.seq.is_some() && record.call.is_none() {
            self.last_echoed = record.seq;
        }
    }

    /// A message the room stored, as the timeline keeps it, rendered here.
    pub(super) fn stored(&self, key: String, record: MessageRecord) -> Message {
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
            removed: record.removed,
            changed_seq: record.changed_seq,
            reactions: record.reactions,
            reply_to: record.reply_to,
            to: record.to,
            call: record.call,
        }
    }

    /// Adds a stored message in its place; false if it was already there (or none are kept).
    pub(super) fn insert(&mut self, record: MessageRecord) -> bool {
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
            if let Some(first) = self.messages.first().and_then(|m| m.seq) {
                self.cut_below(first);
            }
        }
        true
    }

    /// Nothing below `first` is in the timeline any more: every conversation reaches back only
    /// as far, and has more to page.
    pub(super) fn cut_below(&mut self, first: Seq) {
        self.floor = self.floor.map(|f| f.max(first));
        for direct in &mut self.direct {
            if direct.floor < first {
                direct.floor = first;
                if direct.history == History::Complete {
                    direct.history = History::More;
                }
            }
        }
    }

    /// The room-wide timeline reaches back to `seq` (a message of the handshake, a room page,
    /// or the first of an empty timeline).
    pub(super) fn reach(&mut self, seq: Option<Seq>) {
        if let Some(seq) = seq {
            self.floor = Some(self.floor.map_or(seq, |f| f.min(seq)));
        }
    }

    /// The oldest seq the room-wide timeline reaches.
    pub(super) fn first_seq(&self) -> Option<Seq> {
        self.floor
    }

    /// A page of older history arrived: the room's, or a direct conversation's.
    pub(super) fn on_history(&mut self, now: Millis, page: HistoryPage) {
        self.names.extend(page.user_names);
        let first = page.messages.iter().filter_map(|m| m.seq).min();
        let history = if page.has_more {
            History::More
        } else {
            History::Complete
        };
        match page.with {
            None => {
                for record in page.messages {
                    self.reach(record.seq);
                    self.insert(record);
                }
                if !page.has_more {
                    // The room's start: nothing is older.
                    self.reach(Some(1));
                }
                self.history = history;
            }
            Some(peer) => {
                let me = self.identity.as_ref().map(|i| i.user_id.clone());
                for record in page.messages {
                    // Only what is between us and that person belongs to the page.
                    if me.as_deref().is_some_and(|me| between(&record, me, &peer)) {
                        self.insert(record);
                    }
                }
                let floor = first.unwrap_or(page.before).min(page.before);
                let own = self.direct_of(&peer, floor);
                own.floor = own.floor.min(floor);
                own.history = history;
            }
        }
        self.go_on_revealing(now);
    }

    /// Whether [`Self::request_history`] would ask the room for a page now: it has older
    /// messages, none is on its way, and the room is online.
    pub fn may_request_history(&self) -> bool {
        self.may_request_history_in(None)
    }

    /// Whether [`Self::request_history_in`] would ask the room for a page of that conversation
    /// now: it has older messages, no page is on its way, and the room is online.
    pub fn may_request_history_in(&self, with: Option<&str>) -> bool {
        let loading = self.history == History::Loading
            || self.direct.iter().any(|d| d.history == History::Loading);
        self.history_in(with) == History::More
            && !loading
            && self.phase == Phase::Online
            && self.first_seq_in(with).is_some()
    }

    /// Shows message `seq` of the room: once it is in the timeline, [`Event::Revealed`] says
    /// so (at once, if it is there already); until then older history is paged in, a page at
    /// a time. It is given up when it cannot be there: the timeline reaches back past it, the
    /// room's start is reached, the server pages no history, or a page fails. A later reveal
    /// replaces an earlier one.
    pub fn reveal(&mut self, now: Millis, seq: Seq) {
        self.reveal_in(now, seq, None);
    }

    /// [`Self::reveal`] for a message of a conversation: the room (`None`) or the direct one
    /// with that person, whose own pages are the ones paged in.
    pub fn reveal_in(&mut self, now: Millis, seq: Seq, with: Option<UserId>) {
        self.revealing = Some((seq, with));
        self.go_on_revealing(now);
    }

    /// The message being revealed, while older history is paged in for it.
    pub fn revealing(&self) -> Option<Seq> {
        self.revealing.as_ref().map(|(seq, _)| *seq)
    }

    /// One step of [`Self::reveal`], after each page (and when the room is back online).
    pub(super) fn go_on_revealing(&mut self, now: Millis) {
        let Some((seq, with)) = self.revealing.clone() else {
            return;
        };
        if self.find(seq).is_some() {
            self.revealing = None;
            self.events.push(Event::Revealed(seq));
            return;
        }
        let with = with.as_deref();
        let reached_back = self.first_seq_in(with).is_some_and(|first| first <= seq);
        match self.history_in(with) {
            History::More if !reached_back => self.request_history_in(now, with),
            History::Loading if !reached_back => {}
            _ => self.revealing = None,
        }
    }

    /// Message `seq` of the timeline.
    pub fn find(&self, seq: Seq) -> Option<&Message> {
        let index = self
            .messages
            .binary_search_by_key(&Some(seq), |m| m.seq)
            .ok()?;
        self.messages.get(index)
    }

    /// Whether `message` was written by us (one not stored yet always was).
    pub fn is_mine(&self, message: &Message) -> bool {
        message.delivery != Delivery::Sent || self.is_me(&message.user_id)
    }

    /// Whether we may edit or delete `message`: ours, stored, not deleted, and not a call's
    /// record (the room's line, which nobody changes). The room checks the same.
    pub fn may_change(&self, message: &Message) -> bool {
        self.may_react(message) && self.is_me(&message.user_id)
    }

    /// Whether we may remove someone else's `message` as a moderator or owner: a room message
    /// of someone we outrank ([`crate::wire::Role::outranks`]), as the room checks. (Our own we
    /// delete, [`Self::may_change`].)
    pub fn may_remove(&self, message: &Message) -> bool {
        self.may_react(message) && message.to.is_none() && self.may_moderate(&message.user_id)
    }

    /// Whether we may report `message` to the moderators: someone else's room message, stored
    /// and not deleted, in a room that speaks our protocol.
    pub fn may_report(&self, message: &Message) -> bool {
        self.speaks_ours
            && self.may_react(message)
            && message.to.is_none()
            && !self.is_me(&message.user_id)
    }

    /// Whether we may react to `message`: stored, not deleted, and not a call's record.
    pub fn may_react(&self, message: &Message) -> bool {
        message.delivery == Delivery::Sent
            && message.seq.is_some()
            && !message.deleted
            && message.call.is_none()
    }
}

/// Whether `record` is a direct message between `me` and `peer` (either way).
fn between(record: &MessageRecord, me: &str, peer: &str) -> bool {
    (record.user_id == me && record.to.as_deref() == Some(peer))
        || (record.user_id == peer && record.to.as_deref() == Some(me))
}
