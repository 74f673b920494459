//! What we send the room until it says it stored it, in one queue ([`Outgoing`]): our
//! messages (each with its nonce, resent with the same nonce until echoed) and our changes to
//! messages (edits, deletes, reactions), each with its nonce and its own state. The room
//! confirms a message by its echo, a change by the `changeNonce` of its `MESSAGE_CHANGED`, and a
//! refusal names the nonce of what it refuses. Nothing here is dropped by a reconnect: what was
//! not confirmed goes again (once) on the next connection, with the same nonce; what the room
//! refused stays, with the reason, for the person to retry, edit or dismiss.
//!
//! Everything in the queue goes in the order it was asked for, at the room's rate (after the
//! few actions that are not kept: names, history requests, typing, searches); a
//! `RATE_LIMITED` that names one sends it and everything after it again, after the wait.

use super::{ComposeError, Message, Phase, RATE_LIMIT_RETRY_MS, Session};
use crate::ErrorCode;
use crate::room::TokenBucket;
use crate::wire::{
    ClientAction, DeleteMessage, EditMessage, Millis, React, SendMessage, Seq, UserId,
};

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

/// What a change asks of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeAsk {
    /// New text.
    Edit(String),
    /// Gone for everyone.
    Delete,
    /// A reaction given (`on`) or taken back.
    React { emoji: String, on: bool },
}

/// One change on its way to the room, or refused by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    /// Names it in the room's answer and in a refusal.
    pub nonce: String,
    /// The message it changes.
    pub target: Seq,
    pub ask: ChangeAsk,
    /// `Pending`: waiting or sent; `Failed`: the room could not store it (may be retried);
    /// `Refused`: the room will not take it (the reason says why). A stored change is no
    /// longer here.
    pub delivery: Delivery,
    /// Sent on the current connection and not answered yet.
    pub in_flight: bool,
    /// What the room said of it (why it failed, was refused, or has to wait), to show.
    pub reason: Option<String>,
}

impl PendingChange {
    /// The action that asks for it.
    pub(super) fn action(&self) -> ClientAction {
        let (target, nonce) = (self.target, Some(self.nonce.clone()));
        match &self.ask {
            ChangeAsk::Edit(raw) => ClientAction::EditMessage(EditMessage {
                target,
                raw_message: raw.clone(),
                nonce,
            }),
            ChangeAsk::Delete => ClientAction::DeleteMessage(DeleteMessage { target, nonce }),
            ChangeAsk::React { emoji, on } => ClientAction::React(React {
                target,
                emoji: emoji.clone(),
                on: *on,
                nonce,
            }),
        }
    }
}

/// One thing of ours in the queue until the room has stored it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outgoing {
    Message(Message),
    Change(PendingChange),
}

impl Outgoing {
    fn nonce(&self) -> Option<&str> {
        match self {
            Outgoing::Message(m) => m.nonce.as_deref(),
            Outgoing::Change(c) => Some(&c.nonce),
        }
    }

    /// Its delivery state and whether it is on its way on this connection.
    fn state(&mut self) -> (&mut Delivery, &mut bool) {
        match self {
            Outgoing::Message(m) => (&mut m.delivery, &mut m.in_flight),
            Outgoing::Change(c) => (&mut c.delivery, &mut c.in_flight),
        }
    }

    /// The action that asks for it.
    fn action(&self) -> ClientAction {
        match self {
            Outgoing::Message(m) => ClientAction::Message(SendMessage {
                raw_message: m.raw.clone(),
                user_id: None,
                nonce: m.nonce.clone(),
                reply_to: m.reply_to,
                to: m.to.clone(),
            }),
            Outgoing::Change(c) => c.action(),
        }
    }
}

impl Session {
    /// Our messages not stored yet (waiting, failed or refused), oldest first.
    pub fn pending(&self) -> Vec<&Message> {
        self.outbox
            .iter()
            .filter_map(|o| match o {
                Outgoing::Message(m) => Some(m),
                Outgoing::Change(_) => None,
            })
            .collect()
    }

    /// Our changes not stored yet, or refused, in the order they were asked for.
    pub fn changes(&self) -> Vec<&PendingChange> {
        self.outbox
            .iter()
            .filter_map(|o| match o {
                Outgoing::Change(c) => Some(c),
                Outgoing::Message(_) => None,
            })
            .collect()
    }

    /// Our changes to message `target`, not stored yet or refused.
    pub fn changes_to(&self, target: Seq) -> impl Iterator<Item = &PendingChange> {
        self.outbox.iter().filter_map(move |o| match o {
            Outgoing::Change(c) if c.target == target => Some(c),
            _ => None,
        })
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
        self.outbox.push(Outgoing::Message(message));
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
        self.outbox.push(Outgoing::Message(message));
        self.flush(now);
        Ok(nonce)
    }

    /// Sends a message that failed again (same nonce), in its place among the others.
    pub fn retry(&mut self, now: Millis, key: &str) {
        if let Some(message) = self.pending_mut(|m| m.key == key) {
            message.delivery = Delivery::Pending;
            message.in_flight = false;
            self.flush(now);
        }
    }

    /// Takes a message that was not sent (failed or refused) out, and gives back its text.
    pub fn take_back(&mut self, key: &str) -> Option<String> {
        let index = self.outbox.iter().position(|o| {
            matches!(o, Outgoing::Message(m)
                if m.key == key && matches!(m.delivery, Delivery::Failed | Delivery::Refused))
        })?;
        match self.outbox.remove(index) {
            Outgoing::Message(m) => Some(m.raw),
            Outgoing::Change(_) => None,
        }
    }

    /// Asks again for a change that failed or was refused (same nonce).
    pub fn retry_change(&mut self, now: Millis, nonce: &str) {
        if let Some(change) = self.change_mut(nonce) {
            change.delivery = Delivery::Pending;
            change.in_flight = false;
            change.reason = None;
            self.flush(now);
        }
    }

    /// Gives up a change that failed or was refused (one on its way cannot be taken back).
    pub fn dismiss_change(&mut self, nonce: &str) {
        self.outbox.retain(|o| match o {
            Outgoing::Change(c) => c.nonce != nonce || c.delivery == Delivery::Pending,
            Outgoing::Message(_) => true,
        });
    }

    pub(super) fn ask_change(&mut self, now: Millis, target: Seq, ask: ChangeAsk) -> String {
        let nonce = self.next_nonce();
        self.outbox.push(Outgoing::Change(PendingChange {
            nonce: nonce.clone(),
            target,
            ask,
            delivery: Delivery::Pending,
            in_flight: false,
            reason: None,
        }));
        self.flush(now);
        nonce
    }

    /// The room stored the change with this nonce (or it was as asked already).
    pub(super) fn change_stored(&mut self, nonce: &str) {
        self.outbox
            .retain(|o| !matches!(o, Outgoing::Change(c) if c.nonce == nonce));
    }

    /// The room stored our message `record` (its echo): out of the queue, by its nonce (a v1
    /// server echoes none: the oldest of ours with the same text).
    pub(super) fn message_stored(&mut self, record: &crate::wire::MessageRecord) {
        let index = self.outbox.iter().position(|o| match (o, &record.nonce) {
            (Outgoing::Message(m), Some(nonce)) => m.nonce.as_ref() == Some(nonce),
            (Outgoing::Message(m), None) => m.raw == record.raw_message,
            (Outgoing::Change(_), _) => false,
        });
        if let Some(index) = index {
            self.outbox.remove(index);
        }
    }

    /// A new connection: nothing is on its way on it; what the room has not confirmed goes
    /// again, once.
    pub(super) fn outbox_reconnected(&mut self) {
        for item in &mut self.outbox {
            *item.state().1 = false;
        }
    }

    /// The room gave us our identity: messages written before it are ours too.
    pub(super) fn outbox_identified(&mut self, user: &str) {
        for item in &mut self.outbox {
            if let Outgoing::Message(m) = item {
                user.clone_into(&mut m.user_id);
            }
        }
    }

    /// A refusal: the item of ours whose nonce it names takes its state (a message or a change
    /// the room could not store: failed, to retry; refused for what it is: refused, with the
    /// reason; a rate refusal: it and everything after it go again after the wait). A room
    /// that names no nonce (an older server) answers in order: a refusal of a message's text
    /// is about the oldest message still waiting. True when it was as asked after all (a
    /// second delete), so there is nothing to tell.
    pub(super) fn outbox_refused(&mut self, now: Millis, error: &crate::ErrorPayload) -> bool {
        let named = error
            .nonce
            .as_deref()
            .and_then(|n| self.outbox.iter().position(|o| o.nonce() == Some(n)));
        if matches!(error.code, ErrorCode::RateLimited | ErrorCode::SlowMode) {
            // It and everything after it go again, in order: nothing overtakes it (in slow
            // mode, once the room's interval has passed).
            let from = named.unwrap_or(0);
            for item in &mut self.outbox[from..] {
                *item.state().1 = false;
            }
            if let Some(Outgoing::Change(change)) = named.and_then(|i| self.outbox.get_mut(i)) {
                change.reason = Some("not saved yet: the room asked to slow down".to_owned());
            }
            let at = now
                + match error.code {
                    ErrorCode::SlowMode => {
                        Millis::from(self.room_settings.slow_mode_seconds) * 1000
                    }
                    _ => RATE_LIMIT_RETRY_MS,
                };
            self.wake_at = Some(self.wake_at.map_or(at, |w| w.max(at)));
            return false;
        }
        let index = match named {
            Some(index) => index,
            None if error.nonce.is_none()
                && matches!(
                    error.code,
                    ErrorCode::StorageFailed
                        | ErrorCode::EmptyMessage
                        | ErrorCode::MessageTooLong
                        | ErrorCode::MessageTooComplex
                        | ErrorCode::InvalidNonce
                ) =>
            {
                let oldest = self.outbox.iter().position(
                    |o| matches!(o, Outgoing::Message(m) if m.delivery == Delivery::Pending),
                );
                let Some(oldest) = oldest else {
                    return false;
                };
                oldest
            }
            None => return false,
        };
        // Deleting what is deleted already is as asked.
        if error.code == ErrorCode::MessageDeleted
            && matches!(&self.outbox[index], Outgoing::Change(c) if c.ask == ChangeAsk::Delete)
        {
            self.outbox.remove(index);
            return true;
        }
        let item = &mut self.outbox[index];
        let (delivery, reason) = match error.code {
            ErrorCode::StorageFailed => (Delivery::Failed, "the room could not store it"),
            _ => (Delivery::Refused, error.message.as_str()),
        };
        let (state, in_flight) = item.state();
        *state = delivery;
        *in_flight = false;
        if let Outgoing::Change(change) = item {
            change.reason = Some(reason.to_owned());
        }
        false
    }

    /// Sends what waits (names, history requests, typing and searches first, then our
    /// messages and changes in the order they were asked for) as fast as the room's announced
    /// rate allows; if some must wait, wakes when the next can go.
    pub(super) fn flush(&mut self, now: Millis) {
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
        for i in 0..self.outbox.len() {
            let (delivery, in_flight) = self.outbox[i].state();
            if *delivery != Delivery::Pending || *in_flight {
                continue;
            }
            if !self.spend(now) {
                return;
            }
            let item = &mut self.outbox[i];
            *item.state().1 = true;
            let action = item.action();
            self.transmit.push(action);
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

    fn pending_mut(&mut self, find: impl Fn(&Message) -> bool) -> Option<&mut Message> {
        self.outbox.iter_mut().find_map(|o| match o {
            Outgoing::Message(m) if find(m) => Some(m),
            _ => None,
        })
    }

    fn change_mut(&mut self, nonce: &str) -> Option<&mut PendingChange> {
        self.outbox.iter_mut().find_map(|o| match o {
            Outgoing::Change(c) if c.nonce == nonce => Some(c),
            _ => None,
        })
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
            removed: false,
            changed_seq: None,
            reactions: Vec::new(),
            reply_to,
            to,
            call: None,
        }
    }
}
