//! Events of a room's log shared by the nodes of a cluster: every node applies every event,
//! its own included, in the log's order, so that all of them hold one room.
//!
//! A node checks what its own clients ask (identity, rate, length, nonce, permissions) as a
//! single process does, and asks its host to append the event to the shared log (the same
//! `Persist` effects). The log numbers it; the node hears it back with everyone else's, by
//! [`Room::handle_logged`]. What depends on the whole room's state is decided again where the
//! event is applied, in the log's order, by the one fold ([`crate::stored::StoredChange::apply`]:
//! a deleted message stays deleted, a reaction past the cap changes nothing, an older change
//! never undoes a newer one) and by the nonce (a message seen already is not shown twice), so
//! two nodes that accept conflicting changes at once still end in one state everywhere.

use super::post::{Pending, PendingEvent};
use super::{DEFAULT_NAME, Room, UserEntry};
use crate::stored::{LogEvent, StoredChange, StoredMessage, UserRecord};
use crate::wire::{AuditEntry, Millis, Seq};

impl Room {
    /// Event `seq` of the room's shared log (seqs only grow; the log may skip some). `here`:
    /// this node appended it; if it still waits here, its asker is answered as by
    /// [`Room::handle_persisted`] (a node's own events may come back in any order among
    /// others'). An event from elsewhere is applied the same way and delivered to this node's
    /// connections that may see it. A person's record from elsewhere updates who they are
    /// here (a token made on another node works on this one; a new name is told with the
    /// presence tick); this node's own records it already acts on.
    pub fn handle_logged(&mut self, now: Millis, seq: Seq, event: LogEvent, here: bool) {
        if seq <= self.latest_seq {
            // Applied already (a node replaying its log's tail from where storage was).
            return;
        }
        let pending = match event {
            LogEvent::User(record) => {
                self.latest_seq = seq;
                if !here {
                    self.user_logged(now, record);
                }
                return;
            }
            LogEvent::Role { user_id, role, by } => {
                self.latest_seq = seq;
                if !here {
                    self.apply_role(user_id, role, by);
                }
                return;
            }
            LogEvent::Settings { settings, by } => {
                self.latest_seq = seq;
                if !here {
                    self.apply_settings(settings, by);
                }
                return;
            }
            LogEvent::Message(message) => self.take_waiting_message(here, message),
            LogEvent::Change(change) => self.take_waiting_change(here, change),
            LogEvent::Audit(entry) => self.take_waiting_audit(here, entry),
        };
        if let PendingEvent::Message(message) = &pending
            && let Some(nonce) = &message.nonce
            && self
                .nonces
                .get(&(message.user_id.clone(), nonce.clone()))
                .is_some_and(Option::is_some)
        {
            // The same message again (sent to two nodes before either answered): kept once.
            self.latest_seq = seq;
            return;
        }
        self.settle(pending, seq);
    }

    /// This node's event did not enter the log. `duplicate`: the log already holds it (the
    /// same message sent through another node within the log's de-duplication window): it
    /// reaches its asker as the log has it. Otherwise the log refused or could not be reached:
    /// its asker gets `STORAGE_FAILED` with the nonce, as for a failed store, and nobody sees it.
    pub fn handle_not_logged(&mut self, _now: Millis, event: LogEvent, duplicate: bool) {
        let waiting = match event {
            LogEvent::User(_) | LogEvent::Role { .. } | LogEvent::Settings { .. } => return,
            LogEvent::Message(message) => self.waiting_message(&message),
            LogEvent::Change(change) => self.waiting_change(&change),
            LogEvent::Audit(entry) => self.waiting_audit(&entry),
        };
        let Some(index) = waiting else { return };
        if let Some(pending) = self.pending.remove(index) {
            self.unstored(pending, !duplicate);
        }
    }

    fn waiting_message(&self, message: &StoredMessage) -> Option<usize> {
        self.pending
            .iter()
            .position(|p| matches!(&p.event, PendingEvent::Message(m) if m.id == message.id))
    }

    fn waiting_change(&self, change: &StoredChange) -> Option<usize> {
        let same = |waiting: &StoredChange| {
            StoredChange {
                seq: change.seq,
                ..waiting.clone()
            } == *change
        };
        self.pending
            .iter()
            .position(|p| matches!(&p.event, PendingEvent::Change { change, .. } if same(change)))
    }

    fn waiting_audit(&self, entry: &AuditEntry) -> Option<usize> {
        let same = |waiting: &AuditEntry| {
            AuditEntry {
                seq: entry.seq,
                ..waiting.clone()
            } == *entry
        };
        self.pending
            .iter()
            .position(|p| matches!(&p.event, PendingEvent::Audit { entry, .. } if same(entry)))
    }

    /// The moderation event as it waits here (with its asker), or as it came from elsewhere.
    fn take_waiting_audit(&mut self, here: bool, entry: AuditEntry) -> PendingEvent {
        let index = here.then(|| self.waiting_audit(&entry)).flatten();
        match index.and_then(|i| self.pending.remove(i)) {
            Some(Pending { event, .. }) => event,
            None => PendingEvent::Audit {
                entry,
                nonce: None,
                answer: None,
            },
        }
    }

    /// The message as it waits here (with the asker's nonce), or as it came from elsewhere.
    fn take_waiting_message(&mut self, here: bool, message: StoredMessage) -> PendingEvent {
        let index = here.then(|| self.waiting_message(&message)).flatten();
        match index.and_then(|i| self.pending.remove(i)) {
            Some(Pending { event, .. }) => event,
            None => PendingEvent::Message(message),
        }
    }

    /// The change as it waits here (with the asker's nonce), or as it came from elsewhere.
    fn take_waiting_change(&mut self, here: bool, change: StoredChange) -> PendingEvent {
        let index = here.then(|| self.waiting_change(&change)).flatten();
        match index.and_then(|i| self.pending.remove(i)) {
            Some(Pending { event, .. }) => event,
            None => PendingEvent::Change {
                change,
                nonce: None,
            },
        }
    }

    /// A person's record from another node: known here from now on, with its name, token
    /// and when they were last seen.
    fn user_logged(&mut self, now: Millis, record: UserRecord) {
        // The role is not the record's to change: roles come by their own events.
        let UserRecord {
            id,
            name,
            token_hash,
            joined_at,
            last_seen,
            role,
            timed_out_until,
            ban,
        } = record;
        let online_here = self.is_online(&id);
        let index = self.next_user_index();
        let entry = self.users.entry(id.clone()).or_insert_with(|| UserEntry {
            index,
            name: DEFAULT_NAME.to_owned(),
            token_hash: token_hash.clone(),
            joined_at,
            last_seen: None,
            role,
            timed_out_until: None,
            ban: None,
            last_address: None,
        });
        super::listed(&mut self.ranked, &id, entry.role.is_some());
        let index = entry.index;
        entry.token_hash = token_hash;
        entry.joined_at = entry.joined_at.or(joined_at);
        // A newcomer's name is news here only once it is not the default one.
        let renamed = entry.name != name;
        if renamed {
            entry.name.clone_from(&name);
        }
        if !online_here && last_seen > entry.last_seen {
            if let Some(before) = entry.last_seen {
                self.seen_order.remove(&(before, id.clone()));
            }
            entry.last_seen = last_seen;
            if let Some(seen) = last_seen {
                self.seen_order.insert((seen, id.clone()));
            }
        }
        // A ban (or its end) given on another node: told here, and their connections here
        // closed.
        let ban_changed = entry.ban != ban;
        entry.ban = ban;
        // A time-out (or its end) given on another node: told to the people here too.
        let timed_out = entry.timed_out_until != timed_out_until;
        entry.timed_out_until = timed_out_until;
        super::listed(&mut self.timed, &id, timed_out_until.is_some());
        if timed_out {
            self.told_moderated(id.clone(), timed_out_until);
        }
        if ban_changed {
            self.ban_changed(now, id.clone());
        }
        if renamed {
            self.forget_legacy_name(index);
            self.presence_renamed(now, id, name);
        }
    }
}
