//! Changes we asked for (edits, deletes, reactions), each kept with its own state until the
//! room says it stored it: the room's `MESSAGE_CHANGED` names the change's nonce
//! (`changeNonce`), and a refusal names it too. Nothing here is dropped by a reconnect: a
//! change not confirmed goes again (once) on the next connection, with the same nonce; one the
//! room refused stays, with the reason, for the person to retry or dismiss.
//!
//! Changes share the room's rate with messages, in one order: the changes waiting go before
//! the messages waiting (as they always did), and a `RATE_LIMITED` that names one of them
//! sends it and everything after it again, after the wait.

use super::{Delivery, Session};
use crate::ErrorCode;
use crate::wire::{ClientAction, DeleteMessage, EditMessage, Millis, React, Seq};

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
