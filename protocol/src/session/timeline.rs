//! The room's messages as one client keeps them: a timeline in `seq` order (bounded by
//! `keep_messages`; history paging brings older ones back), filled from the handshake, live
//! messages, a resume and history pages, a newer state of a message replacing an older one.

use super::{Delivery, Event, HISTORY_PAGE, Notice, Phase, Session};
use crate::wire::{
    ClientAction, History as HistoryPage, HistoryRequest, MessageRecord, Millis, Reaction, Resume,
    Seq, UserId,
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

    pub fn history(&self) -> History {
        self.history
    }

    /// The people we have direct conversations with here, the latest first.
    pub fn conversations(&self) -> Vec<UserId> {
        let Some(me) = self.identity.as_ref().map(|i| i.user_id.as_str()) else {
            return Vec::new();
        };
        let mut peers: Vec<UserId> = Vec::new();
        let pending = self.pending();
        for message in pending.into_iter().rev().chain(self.messages.iter().rev()) {
            if let Some(peer) = message.peer(me)
                && !peers.contains(peer)
            {
                peers.push(peer.clone());
            }
        }
        peers
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

    /// Asks for the page before the timeline's first message, if the room has one and no
    /// request is out.
    pub fn request_history(&mut self, now: Millis) {
        if let (true, Some(before)) = (self.may_request_history(), self.first_seq()) {
            self.history = History::Loading;
            self.queued
                .push(ClientAction::HistoryRequest(HistoryRequest {
                    before,
                    limit: HISTORY_PAGE,
                }));
            self.flush(now);
        }
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
        }
        true
    }

    pub(super) fn first_seq(&self) -> Option<Seq> {
        self.messages.first().and_then(|m| m.seq)
    }

    /// A page of older history arrived.
    pub(super) fn on_history(&mut self, now: Millis, page: HistoryPage) {
        self.names.extend(page.user_names);
        for record in page.messages {
            self.insert(record);
        }
        self.history = if page.has_more {
            History::More
        } else {
            History::Complete
        };
        self.go_on_revealing(now);
    }

    /// Whether [`Self::request_history`] would ask the room for a page now: it has older
    /// messages, none is on its way, and the room is online.
    pub fn may_request_history(&self) -> bool {
        self.history == History::More && self.phase == Phase::Online && self.first_seq().is_some()
    }

    /// Shows message `seq` of the room: once it is in the timeline, [`Event::Revealed`] says
    /// so (at once, if it is there already); until then older history is paged in, a page at
    /// a time. It is given up when it cannot be there: the timeline reaches back past it, the
    /// room's start is reached, the server pages no history, or a page fails. A later reveal
    /// replaces an earlier one.
    pub fn reveal(&mut self, now: Millis, seq: Seq) {
        self.revealing = Some(seq);
        self.go_on_revealing(now);
    }

    /// The message being revealed, while older history is paged in for it.
    pub fn revealing(&self) -> Option<Seq> {
        self.revealing
    }

    /// One step of [`Self::reveal`], after each page (and when the room is back online).
    pub(super) fn go_on_revealing(&mut self, now: Millis) {
        let Some(seq) = self.revealing else {
            return;
        };
        if self.find(seq).is_some() {
            self.revealing = None;
            self.events.push(Event::Revealed(seq));
            return;
        }
        let reached_back = self.first_seq().is_some_and(|first| first <= seq);
        match self.history {
            History::More if !reached_back => self.request_history(now),
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

    /// Whether we may react to `message`: stored, not deleted, and not a call's record.
    pub fn may_react(&self, message: &Message) -> bool {
        message.delivery == Delivery::Sent
            && message.seq.is_some()
            && !message.deleted
            && message.call.is_none()
    }
}
