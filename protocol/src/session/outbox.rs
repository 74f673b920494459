//! What we send the room until it says it stored it: our messages (pending, each with its
//! nonce, resent with the same nonce until echoed) and our changes to messages (edits,
//! deletes, reactions), each kept with its own state until the room says it stored it: the room's `MESSAGE_CHANGED` names the change's nonce
//! (`changeNonce`), and a refusal names it too. Nothing here is dropped by a reconnect: a
//! change not confirmed goes again (once) on the next connection, with the same nonce; one the
//! room refused stays, with the reason, for the person to retry or dismiss.
//!
//! Changes share the room's rate with messages, in one order: the changes waiting go before
//! the messages waiting (as they always did), and a `RATE_LIMITED` that names one of them
//! sends it and everything after it again, after the wait.

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

impl Session {
    /// Changes of ours not stored yet, or refused, in the order they were asked for.
    pub fn changes(&self) -> &[PendingChange] {
        &self.changes
    }

    /// Our changes to message `target`, not stored yet or refused.
    pub fn changes_to(&self, target: Seq) -> impl Iterator<Item = &PendingChange> {
        self.changes.iter().filter(move |c| c.target == target)
    }

    /// Asks again for a change that failed or was refused (same nonce).
    pub fn retry_change(&mut self, now: Millis, nonce: &str) {
        if let Some(change) = self.changes.iter_mut().find(|c| c.nonce == nonce) {
            change.delivery = Delivery::Pending;
            change.in_flight = false;
            change.reason = None;
            self.flush(now);
        }
    }

    /// Gives up a change that failed or was refused (one on its way cannot be taken back).
    pub fn dismiss_change(&mut self, nonce: &str) {
        self.changes
            .retain(|c| c.nonce != nonce || c.delivery == Delivery::Pending);
    }

    pub(super) fn ask_change(&mut self, now: Millis, target: Seq, ask: ChangeAsk) -> String {
        let nonce = self.next_nonce();
        self.changes.push(PendingChange {
            nonce: nonce.clone(),
            target,
            ask,
            delivery: Delivery::Pending,
            in_flight: false,
            reason: None,
        });
        self.flush(now);
        nonce
    }

    /// The room stored the change with this nonce (or it was as asked already).
    pub(super) fn change_stored(&mut self, nonce: &str) {
        self.changes.retain(|c| c.nonce != nonce);
    }

    /// A refusal that names one of our changes sets that change's state (a rate refusal: it
    /// and the changes after it go again after the wait). True when it was as asked after all
    /// (a second delete), so there is nothing to tell; false otherwise, or when it names none
    /// of our changes.
    pub(super) fn change_refused(&mut self, nonce: &str, code: ErrorCode, message: &str) -> bool {
        let Some(index) = self.changes.iter().position(|c| c.nonce == nonce) else {
            return false;
        };
        let change = &mut self.changes[index];
        match code {
            ErrorCode::RateLimited => {
                change.reason = Some("not saved yet: the room asked to slow down".to_owned());
                for later in &mut self.changes[index..] {
                    later.in_flight = false;
                }
            }
            // Deleting what is deleted already is as asked.
            ErrorCode::MessageDeleted if change.ask == ChangeAsk::Delete => {
                self.changes.remove(index);
                return true;
            }
            ErrorCode::StorageFailed => {
                change.delivery = Delivery::Failed;
                change.in_flight = false;
                change.reason = Some("the room could not store it".to_owned());
            }
            _ => {
                change.delivery = Delivery::Refused;
                change.in_flight = false;
                change.reason = Some(message.to_owned());
            }
        }
        false
    }

    /// Sends the changes waiting, in order, as the room's rate allows; false when the rate
    /// says wait.
    pub(super) fn flush_changes(&mut self, now: Millis) -> bool {
        for i in 0..self.changes.len() {
            let change = &self.changes[i];
            if change.delivery != Delivery::Pending || change.in_flight {
                continue;
            }
            if !self.spend(now) {
                return false;
            }
            let change = &mut self.changes[i];
            change.in_flight = true;
            let action = change.action();
            self.transmit.push(action);
        }
        true
    }
}

impl Session {
    /// Ours, not stored yet (waiting, failed or refused), oldest first.
    pub fn pending(&self) -> &[Message] {
        &self.pending
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

    /// Sends what waits (names and history requests first, then messages in the order they
    /// were written) as fast as the room's announced rate allows; if some must wait, wakes
    /// when the next can go.
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

    /// A refusal of one of our messages sets its state (by its nonce; from an older room that
    /// names none, the oldest waiting); a rate refusal sends it, and every message after it,
    /// again after the wait.
    pub(super) fn message_refused(&mut self, now: Millis, error: &crate::ErrorPayload) {
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
        if error.code == ErrorCode::RateLimited {
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
        }
    }
}
