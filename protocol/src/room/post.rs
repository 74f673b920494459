//! Messages and changes to them: how the room accepts one (every check a post or a change
//! goes through), holds it until storage confirms it, and delivers it to those who may see it.

use super::{
    Connection, ConnectionId, Effect, HTML_ALLOWANCE, MAX_NONCE_CHARS, MAX_REACTIONS, Room,
    StoredChange, StoredMessage, TextProblem, check_text,
};
use crate::error::ErrorCode;
use crate::stored::{ChangeKind, may_see};
use crate::wire::{MessageRecord, Millis, SendMessage, Seq, ServerAction, UserId};

/// An event accepted by the room, waiting for storage, with the connection that asked.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) event: PendingEvent,
    pub(super) from: ConnectionId,
}

/// A change a client asks for.
#[derive(Debug)]
pub(super) enum Asked {
    Edit(String),
    Delete,
    React(String, bool),
}

/// An event of the room's log waiting for storage.
#[derive(Debug)]
pub(super) enum PendingEvent {
    Message(StoredMessage),
    Change {
        change: StoredChange,
        nonce: Option<String>,
    },
    /// A moderation event; `answer`: the connection that asked (told with `nonce`).
    Audit {
        entry: crate::wire::AuditEntry,
        nonce: Option<String>,
        answer: Option<ConnectionId>,
    },
}

impl PendingEvent {
    /// Numbers the event as the host's log did.
    fn set_seq(&mut self, seq: Seq) {
        match self {
            PendingEvent::Message(m) => m.seq = seq,
            PendingEvent::Change { change, .. } => change.seq = seq,
            PendingEvent::Audit { entry, .. } => entry.seq = seq,
        }
    }
}

impl Room {
    /// The host's log holds the oldest event waiting for it, as `seq` (above every seq before
    /// it): it is delivered now. A single-process host counts one above the last
    /// ([`Room::latest_seq`]); a cluster node answers with [`Room::handle_logged`] instead.
    pub fn handle_persisted(&mut self, _now: Millis, seq: Seq) {
        if let Some(Pending { event, .. }) = self.pending.pop_front() {
            self.settle(event, seq);
        }
    }

    /// Event `seq` of the room's log, stored: it enters the room's memory (a change is folded
    /// into its message by the one rule) and is delivered to those who may see it.
    pub(super) fn settle(&mut self, mut event: PendingEvent, seq: Seq) {
        event.set_seq(seq);
        self.latest_seq = self.latest_seq.max(seq);
        match event {
            PendingEvent::Message(message) => {
                if let Some(nonce) = &message.nonce {
                    self.nonces
                        .insert((message.user_id.clone(), nonce.clone()), Some(seq));
                }
                let record = message.to_record();
                self.remember(message);
                self.deliver(ServerAction::Message(record));
            }
            PendingEvent::Change { change, nonce } => {
                let Some(message) = self.recent_mut(change.target) else {
                    return;
                };
                change.apply(message);
                let record = MessageRecord {
                    change_nonce: nonce,
                    ..message.to_record()
                };
                self.deliver(ServerAction::MessageChanged(record));
            }
            PendingEvent::Audit {
                entry,
                nonce,
                answer,
            } => self.settle_audit(entry, nonce, answer),
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
        // Connections that resumed past a new message on a node behind the shared log have
        // it already (a change is news to everyone).
        let new_seq = match &action {
            ServerAction::Message(_) => record.seq,
            _ => None,
        };
        let seen = |c: &Connection| new_seq.is_some_and(|s| s <= c.seen_through);
        let Some(to) = &record.to else {
            let author = record.user_id.clone();
            self.tell_legacy_name(&author);
            if new_seq.is_none_or(|s| s > self.ahead_through) {
                return self.effects.push_back(Effect::Broadcast(action));
            }
            let mut hearers: Vec<ConnectionId> = self
                .connections
                .iter()
                .filter(|(_, c)| !seen(c))
                .map(|(id, _)| *id)
                .collect();
            hearers.sort();
            return self.effects.push_back(Effect::Multicast {
                to: hearers,
                action,
            });
        };
        let author = &record.user_id;
        let mut hearers: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| may_see(c.viewer(), author, Some(to)) && !seen(c))
            .map(|(id, _)| *id)
            .collect();
        hearers.sort();
        for conn in hearers {
            self.send(conn, action.clone());
        }
    }

    /// The host's log could not keep the oldest event waiting for it: its author is told (by
    /// the nonce of the action) and nobody else sees it.
    pub fn handle_persist_failed(&mut self, _now: Millis) {
        if let Some(pending) = self.pending.pop_front() {
            self.unstored(pending, true);
        }
    }

    /// An event the log did not keep stops waiting: a message's nonce is free again (unless
    /// the log already holds a message under it), and, when `tell`, its asker gets
    /// `STORAGE_FAILED` with the nonce of what it asked.
    pub(super) fn unstored(&mut self, Pending { event, from }: Pending, tell: bool) {
        let nonce = match event {
            PendingEvent::Message(message) => {
                if let Some(nonce) = &message.nonce {
                    let key = (message.user_id, nonce.clone());
                    if self.nonces.get(&key) == Some(&None) {
                        self.nonces.remove(&key);
                    }
                }
                message.nonce
            }
            PendingEvent::Change { nonce, .. } | PendingEvent::Audit { nonce, .. } => nonce,
        };
        if tell {
            self.refuse_for(
                from,
                ErrorCode::StorageFailed,
                "the room could not store that; send it again",
                nonce.as_ref(),
            );
        }
    }

    pub(super) fn post(&mut self, now: Millis, conn: ConnectionId, message: SendMessage) {
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
            if let Some(stored) = seq.and_then(|seq| self.recent_message(seq)) {
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
                || answered > self.latest_seq + self.pending.len() as Seq
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
        // The author's standing last, once nothing else refuses it: a resend of a message
        // already taken is answered with its echo, and what is refused for anything else does
        // not count as a message in slow mode.
        if !self.may_write(now, conn, &user, nonce_ref)
            || (to.is_none() && !self.slow_mode_lets(now, conn, &user, nonce_ref))
        {
            return;
        }
        let stored = StoredMessage {
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
            self.nonces.insert((user, nonce), None);
        }
        self.accept(PendingEvent::Message(stored), conn);
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
    pub(super) fn change(
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
        if !self.may_write(now, conn, &user, nonce_ref) {
            return;
        }
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
        // A moderator or owner removes the room message of someone they outrank.
        let removal = author != user
            && message.to.is_none()
            && crate::wire::Role::outranks(self.role_of(&user), self.role_of(&author));
        let kind = match asked {
            Asked::Delete if removal => ChangeKind::Remove,
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
        let removed = (kind == ChangeKind::Remove).then(|| crate::wire::AuditEntry {
            user_id: Some(author.clone()),
            target: Some(target),
            ..crate::wire::AuditEntry::new(now, user.clone(), crate::wire::AuditAction::Remove)
        });
        let change = StoredChange {
            seq: 0,
            target,
            user_id: user,
            at: now,
            kind,
        };
        self.accept(PendingEvent::Change { change, nonce }, conn);
        if let Some(entry) = removed {
            self.record_audit(conn, entry, None);
        }
    }

    /// An accepted event (asked for by `from`), not numbered yet: the host's log is asked to
    /// number and keep it, and it waits in `pending` until the host answers.
    pub(super) fn accept(&mut self, event: PendingEvent, from: ConnectionId) {
        let effect = match &event {
            PendingEvent::Message(message) => Effect::PersistMessage(message.clone()),
            PendingEvent::Change { change, .. } => Effect::PersistChange(change.clone()),
            PendingEvent::Audit { entry, .. } => Effect::PersistAudit(entry.clone()),
        };
        self.effects.push_back(effect);
        self.pending.push_back(Pending { event, from });
    }

    /// Stored message `target` (still in memory) as it will be once every change already
    /// accepted for it and waiting for storage is stored: what the next change to it is
    /// checked against. The changes are folded in by the one rule ([`StoredChange::apply`]).
    fn as_it_will_be(&self, target: Seq) -> Option<StoredMessage> {
        let mut message = self.recent_message(target)?.clone();
        for (next, pending) in self.numbered_as_expected() {
            if let PendingEvent::Change { change, .. } = pending
                && change.target == target
            {
                let numbered = StoredChange {
                    seq: next,
                    ..change.clone()
                };
                numbered.apply(&mut message);
            }
        }
        Some(message)
    }

    /// The events waiting for the log with the seqs they are expected to get: numbered in the
    /// order they were asked for, one above another after the log's latest, as a single
    /// process numbers them. (A cluster's stream may number them otherwise; it is only what
    /// a reply to a message not stored yet, and the fold of changes in flight, go by.)
    fn numbered_as_expected(&self) -> impl Iterator<Item = (Seq, &PendingEvent)> {
        (self.latest_seq + 1..).zip(self.pending.iter().map(|p| &p.event))
    }

    /// Message `seq`: stored and in memory, or waiting for the log under the seq it is
    /// expected to get.
    fn find_message(&self, seq: Seq) -> Option<&StoredMessage> {
        self.recent_message(seq).or_else(|| {
            self.numbered_as_expected()
                .find_map(|(expected, event)| match event {
                    PendingEvent::Message(m) if expected == seq => Some(m),
                    _ => None,
                })
        })
    }

    /// A stored message still in memory.
    pub(super) fn recent_message(&self, seq: Seq) -> Option<&StoredMessage> {
        let index = self.recent.binary_search_by_key(&seq, |m| m.seq).ok()?;
        self.recent.get(index)
    }

    /// A stored message still in memory, to change.
    fn recent_mut(&mut self, seq: Seq) -> Option<&mut StoredMessage> {
        let index = self.recent.binary_search_by_key(&seq, |m| m.seq).ok()?;
        self.recent.get_mut(index)
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
