//! Calls: the room relays WebRTC signalling between the two people of a call and nobody
//! else, and records how each call went as an event of their conversation.
//!
//! A call is a signal, not an event: ringing, offers, answers and candidates are never
//! stored. The room keeps each live call (who called whom, the connection each of them took it
//! on, when it rang, when it was answered) and, when it ends, stores the record the call
//! leaves: a direct message from the caller to the callee with a [`CallRecord`], which then
//! takes every path a direct message takes (live, resume, history, search).
//!
//! Rules, here only:
//! - Only two identified people whose clients speak our protocol have a call; one may not
//!   call oneself or someone without such a connection here (`UNAVAILABLE`).
//! - A person is in at most one call at a time (`CALL_BUSY`), so there is at most one call
//!   per pair.
//! - A ring reaches every connection of the callee; the first to accept takes the call, the
//!   others hear it was answered elsewhere. It rings for at most `call_ring_ms`, then it is
//!   missed.
//! - Offer, answer, candidates and media state are relayed only between the call's two
//!   connections, only once answered, each at most `max_call_signal_bytes`, at most
//!   `call_signal_burst` / `call_signals_per_second` per connection. Anything from anyone else
//!   is refused with `INVALID_CALL` and reaches nobody: a third person cannot inject a
//!   candidate into someone else's call.
//! - When a connection of a call closes, the call ends.
//!
//! In a cluster a call lives on its caller's node (its home). If the callee is online through
//! other nodes, the ring, and later the caller's signals and the end, go to them as
//! [`Signal::Call`]; the node where the callee takes the call keeps a [`Visit`] and sends the
//! callee's signals home as [`Signal::CallBack`]. The same rules hold on both sides: only the
//! callee's connection that took the call signals for them, sizes and rates are checked where
//! a signal comes in, and the record is stored by the home node.

use super::effect::{Effect, Signal};
use super::post::PendingEvent;
use super::{Connection, Room};
use crate::error::ErrorCode;
use crate::room::MAX_NONCE_CHARS;
use crate::room::effect::ConnectionId;
use crate::room::rate::TokenBucket;
use crate::stored::StoredMessage;
use crate::wire::{
    CallEnd, CallKind, CallOutcome, CallRecord, CallSignal, Millis, ServerAction, UserId,
};

/// One live call.
#[derive(Debug, Clone)]
pub(super) struct Call {
    id: String,
    caller: UserId,
    caller_conn: ConnectionId,
    callee: UserId,
    /// The connection the callee took it on, once answered here.
    callee_conn: Option<ConnectionId>,
    /// It rang the callee through other nodes of the cluster too.
    rang_elsewhere: bool,
    /// The callee took it through another node.
    callee_elsewhere: bool,
    rang_at: Millis,
    answered_at: Option<Millis>,
}

/// In a cluster: a call from another node's person to someone connected here, as this node
/// follows it: the ring, then the connection that took it.
#[derive(Debug, Clone)]
pub(super) struct Visit {
    id: String,
    caller: UserId,
    callee: UserId,
    callee_conn: Option<ConnectionId>,
}

impl Call {
    fn has(&self, user: &str) -> bool {
        self.caller == user || self.callee == user
    }

    /// The other connection of the call, if `conn` is one of its two (answered).
    fn other_side(&self, conn: ConnectionId) -> Option<ConnectionId> {
        let callee = self.callee_conn?;
        match conn {
            c if c == self.caller_conn => Some(callee),
            c if c == callee => Some(self.caller_conn),
            _ => None,
        }
    }
}

impl Room {
    /// When the first unanswered ring runs out.
    pub(super) fn calls_due(&self) -> Option<Millis> {
        self.calls
            .iter()
            .filter(|c| c.answered_at.is_none())
            .map(|c| c.rang_at + self.config.call_ring_ms)
            .min()
    }

    /// Rings that ran out by `now` are missed calls.
    pub(super) fn calls_timeout(&mut self, now: Millis) {
        let ring_ms = self.config.call_ring_ms;
        let expired: Vec<String> = self
            .calls
            .iter()
            .filter(|c| c.answered_at.is_none() && c.rang_at + ring_ms <= now)
            .map(|c| c.id.clone())
            .collect();
        for id in expired {
            self.end_call(now, &id, CallEnd::Missed);
        }
    }

    pub(super) fn call(&mut self, now: Millis, conn: ConnectionId, signal: CallSignal) {
        let nonce = signal
            .nonce
            .clone()
            .filter(|n| (1..=MAX_NONCE_CHARS).contains(&n.chars().count()));
        let nonce = nonce.as_ref();
        if signal.kind == CallKind::Ring {
            return self.ring(now, conn, signal, nonce);
        }
        let Some(user) = self.call_actor(now, conn, signal.kind, nonce) else {
            return;
        };
        let Some(at) = self.calls.iter().position(|c| c.id == signal.call_id) else {
            if let Some(at) = self.visits.iter().position(|v| v.id == signal.call_id) {
                return self.visit_signal(conn, user, at, signal, nonce);
            }
            return self.refuse_call(conn, "there is no such call", nonce);
        };
        let call = self.calls[at].clone();
        let answered = call.answered_at.is_some();
        let on_caller_side = conn == call.caller_conn;
        let is_callee = user == call.callee && !on_caller_side;
        match signal.kind {
            CallKind::Ring | CallKind::Ended => {
                self.refuse_call(conn, "a client does not say that", nonce);
            }
            CallKind::Accept if is_callee && !answered => {
                let callee_conn = conn;
                self.calls[at].callee_conn = Some(callee_conn);
                self.calls[at].answered_at = Some(now);
                let mut accept = CallSignal::new(&call.id, CallKind::Accept);
                accept.from = Some(user.clone());
                accept.video = Some(signal.video.unwrap_or(true));
                self.send(call.caller_conn, ServerAction::Call(accept));
                self.answered_elsewhere(&call, Some(callee_conn));
            }
            CallKind::Decline if is_callee && !answered => {
                self.end_call(now, &call.id, CallEnd::Declined);
            }
            CallKind::Hangup if on_caller_side || call.callee_conn == Some(conn) => {
                let reason = if answered {
                    CallEnd::HungUp
                } else {
                    CallEnd::Missed
                };
                self.end_call(now, &call.id, reason);
            }
            // Hanging up a ring on another of one's connections is declining it.
            CallKind::Hangup if is_callee && !answered => {
                self.end_call(now, &call.id, CallEnd::Declined);
            }
            CallKind::Offer | CallKind::Answer | CallKind::Ice | CallKind::Media => {
                let to = call.other_side(conn);
                let to_elsewhere = on_caller_side && call.callee_elsewhere;
                if to.is_none() && !to_elsewhere {
                    return self.refuse_call(
                        conn,
                        "that is not a call of yours, or not yet",
                        nonce,
                    );
                }
                let Some(relayed) = self.checked_signal(conn, user, on_caller_side, signal, nonce)
                else {
                    return;
                };
                match to {
                    Some(to) => self.send(to, ServerAction::Call(relayed)),
                    None => self.relay_call(call.callee, relayed),
                }
            }
            _ => self.refuse_call(conn, "that is not a call of yours, or not now", nonce),
        }
    }

    fn ring(
        &mut self,
        now: Millis,
        conn: ConnectionId,
        signal: CallSignal,
        nonce: Option<&String>,
    ) {
        let Some(user) = self.acting_user(now, conn, None, nonce) else {
            return;
        };
        if !self.connections.get(&conn).is_some_and(|c| c.speaks_ours) {
            let text = "your client cannot make calls";
            return self.refuse_for(conn, ErrorCode::Unavailable, text, nonce);
        }
        if !(1..=MAX_NONCE_CHARS).contains(&signal.call_id.chars().count())
            || self.calls.iter().any(|c| c.id == signal.call_id)
        {
            let text = format!("a call's id has 1 to {MAX_NONCE_CHARS} characters, its own");
            return self.refuse_call(conn, text, nonce);
        }
        let Some(callee) = signal.to.filter(|to| *to != user) else {
            let text = "a call is to someone else";
            return self.refuse_for(conn, ErrorCode::Unavailable, text, nonce);
        };
        let hearers = self.call_connections(&callee);
        let elsewhere = self.online_elsewhere(&callee);
        if hearers.is_empty() && !elsewhere {
            let text = "they are not here with a client that can take a call";
            return self.refuse_for(conn, ErrorCode::Unavailable, text, nonce);
        }
        let visiting = |v: &Visit| v.caller == user || v.callee == user || v.callee == callee;
        if self.calls.iter().any(|c| c.has(&user) || c.has(&callee))
            || self.visits.iter().any(visiting)
        {
            let text = "one of you is in a call already";
            return self.refuse_for(conn, ErrorCode::CallBusy, text, nonce);
        }
        self.calls.push(Call {
            id: signal.call_id.clone(),
            caller: user.clone(),
            caller_conn: conn,
            callee: callee.clone(),
            callee_conn: None,
            rang_elsewhere: elsewhere,
            callee_elsewhere: false,
            rang_at: now,
            answered_at: None,
        });
        let mut ring = CallSignal::new(&signal.call_id, CallKind::Ring);
        ring.from = Some(user);
        ring.video = Some(signal.video.unwrap_or(true));
        for hearer in hearers {
            self.send(hearer, ServerAction::Call(ring.clone()));
        }
        if elsewhere {
            self.relay_call(callee, ring);
        }
    }

    /// A call signal for `to` on the other nodes of the cluster.
    fn relay_call(&mut self, to: UserId, signal: CallSignal) {
        self.effects
            .push_back(Effect::Relay(Signal::Call { to, signal }));
    }

    /// An offer, answer, candidate or media state from `conn` (the caller's side or not) that
    /// keeps the rules, as it is passed on (from `user`); otherwise `conn` is told why.
    fn checked_signal(
        &mut self,
        conn: ConnectionId,
        user: UserId,
        on_caller_side: bool,
        signal: CallSignal,
        nonce: Option<&String>,
    ) -> Option<CallSignal> {
        let right_side = match signal.kind {
            CallKind::Offer => on_caller_side,
            CallKind::Answer => !on_caller_side,
            _ => true,
        };
        if !right_side {
            self.refuse_call(conn, "the caller offers, the callee answers", nonce);
            return None;
        }
        let size = signal.data.as_ref().map_or(0, String::len);
        let limit = self.config.max_call_signal_bytes;
        if size > limit {
            let text = format!("a call signal takes at most {limit} bytes");
            self.refuse_call(conn, text, nonce);
            return None;
        }
        if matches!(signal.kind, CallKind::Offer | CallKind::Answer) && size == 0 {
            self.refuse_call(conn, "an offer or answer carries its SDP", nonce);
            return None;
        }
        Some(CallSignal {
            from: Some(user),
            to: None,
            reason: None,
            nonce: None,
            ..signal
        })
    }

    /// The callee took `call` (on `here`, a connection of this node, or through another
    /// node): their other connections, here and on the other nodes, stop ringing.
    fn answered_elsewhere(&mut self, call: &Call, here: Option<ConnectionId>) {
        let elsewhere = self.stop_ringing(&call.id, &call.callee, here);
        if call.rang_elsewhere {
            self.relay_call(call.callee.clone(), elsewhere);
        }
    }

    /// The callee's connections here other than `taken` (the one that took call `id`, if it
    /// is here) hear it was answered elsewhere; the signal they heard, to pass on.
    fn stop_ringing(&mut self, id: &str, callee: &str, taken: Option<ConnectionId>) -> CallSignal {
        let mut elsewhere = CallSignal::new(id, CallKind::Ended);
        elsewhere.reason = Some(CallEnd::AnsweredElsewhere);
        for other in self.call_connections(callee) {
            if Some(other) != taken {
                self.send(other, ServerAction::Call(elsewhere.clone()));
            }
        }
        elsewhere
    }

    /// The callee's side of a call from another node (`visits[at]`), on their connection
    /// `conn` here: what they say goes home to the caller's node.
    fn visit_signal(
        &mut self,
        conn: ConnectionId,
        user: UserId,
        at: usize,
        signal: CallSignal,
        nonce: Option<&String>,
    ) {
        let visit = self.visits[at].clone();
        let taken_here = visit.callee_conn == Some(conn);
        let ringing = visit.callee_conn.is_none();
        if user != visit.callee {
            return self.refuse_call(conn, "that is not a call of yours, or not now", nonce);
        }
        let home = match signal.kind {
            CallKind::Accept if ringing => {
                self.visits[at].callee_conn = Some(conn);
                self.stop_ringing(&visit.id, &user, Some(conn));
                let mut accept = CallSignal::new(&visit.id, CallKind::Accept);
                accept.from = Some(user);
                accept.video = Some(signal.video.unwrap_or(true));
                accept
            }
            CallKind::Decline | CallKind::Hangup if ringing || taken_here => {
                let mut said = CallSignal::new(&visit.id, signal.kind);
                said.from = Some(user);
                said
            }
            CallKind::Answer | CallKind::Ice | CallKind::Media if taken_here => {
                match self.checked_signal(conn, user, false, signal, nonce) {
                    Some(checked) => checked,
                    None => return,
                }
            }
            _ => return self.refuse_call(conn, "that is not a call of yours, or not now", nonce),
        };
        self.effects.push_back(Effect::Relay(Signal::CallBack {
            caller: visit.caller,
            signal: home,
        }));
    }

    /// A call signal from the caller's node for `callee`, who may be connected here.
    pub(super) fn call_from_elsewhere(&mut self, callee: UserId, signal: CallSignal) {
        let at = self.visits.iter().position(|v| v.id == signal.call_id);
        match signal.kind {
            CallKind::Ring => {
                let hearers = self.call_connections(&callee);
                let Some(caller) = signal.from.clone() else {
                    return;
                };
                if hearers.is_empty() || at.is_some() {
                    return;
                }
                self.visits.push(Visit {
                    id: signal.call_id.clone(),
                    caller,
                    callee,
                    callee_conn: None,
                });
                for hearer in hearers {
                    self.send(hearer, ServerAction::Call(signal.clone()));
                }
            }
            CallKind::Ended => {
                let Some(at) = at else { return };
                let taken_here = self.visits[at].callee_conn.is_some();
                if taken_here && signal.reason == Some(CallEnd::AnsweredElsewhere) {
                    // Taken on this node: that news is for the callee's other connections.
                    return;
                }
                let visit = self.visits.remove(at);
                let told = match visit.callee_conn {
                    Some(conn) => vec![conn],
                    None => self.call_connections(&visit.callee),
                };
                for conn in told {
                    self.send(conn, ServerAction::Call(signal.clone()));
                }
            }
            CallKind::Offer | CallKind::Ice | CallKind::Media => {
                if let Some(conn) = at.and_then(|at| self.visits[at].callee_conn) {
                    self.send(conn, ServerAction::Call(signal));
                }
            }
            _ => {}
        }
    }

    /// A signal of a callee connected through another node, for a call of `caller` from here.
    pub(super) fn call_back(&mut self, now: Millis, caller: UserId, signal: CallSignal) {
        let Some(at) = self
            .calls
            .iter()
            .position(|c| c.id == signal.call_id && c.caller == caller)
        else {
            return;
        };
        let call = self.calls[at].clone();
        if signal.from.as_ref() != Some(&call.callee) {
            return;
        }
        let answered = call.answered_at.is_some();
        match signal.kind {
            CallKind::Accept if !answered => {
                self.calls[at].callee_elsewhere = true;
                self.calls[at].answered_at = Some(now);
                self.send(call.caller_conn, ServerAction::Call(signal));
                self.answered_elsewhere(&call, None);
            }
            CallKind::Decline if !answered => self.end_call(now, &call.id, CallEnd::Declined),
            CallKind::Hangup if !answered => self.end_call(now, &call.id, CallEnd::Declined),
            CallKind::Hangup if call.callee_elsewhere => {
                self.end_call(now, &call.id, CallEnd::HungUp);
            }
            CallKind::Answer | CallKind::Ice | CallKind::Media if call.callee_elsewhere => {
                self.send(call.caller_conn, ServerAction::Call(signal));
            }
            _ => {}
        }
    }

    /// Calls whose callee is reached only through other nodes, when the callee is online
    /// nowhere any more (their node died, say): answered ones end as disconnected, ringing
    /// ones as missed.
    pub(super) fn calls_lose_elsewhere(&mut self, now: Millis) {
        let ending: Vec<(String, CallEnd)> = self
            .calls
            .iter()
            .filter(|c| !self.is_online(&c.callee))
            .filter_map(|c| match (c.callee_elsewhere, c.answered_at) {
                (true, _) => Some((c.id.clone(), CallEnd::Disconnected)),
                (false, None) if c.rang_elsewhere => Some((c.id.clone(), CallEnd::Missed)),
                _ => None,
            })
            .collect();
        for (id, reason) in ending {
            self.end_call(now, &id, reason);
        }
    }

    /// The identity acting on a call signal, within its rate (a ring counts against the
    /// connection's rate like any action; the rest against the call signals' own).
    fn call_actor(
        &mut self,
        now: Millis,
        conn: ConnectionId,
        kind: CallKind,
        nonce: Option<&String>,
    ) -> Option<UserId> {
        if matches!(
            kind,
            CallKind::Accept | CallKind::Decline | CallKind::Hangup
        ) {
            return self.acting_user(now, conn, None, nonce);
        }
        let (burst, rate) = (
            self.config.call_signal_burst,
            self.config.call_signals_per_second,
        );
        let connection: &mut Connection = self.connections.get_mut(&conn)?;
        let Some(user) = connection.user.clone() else {
            self.refuse_for(conn, ErrorCode::NotIdentified, "identify first", nonce);
            return None;
        };
        let bucket = connection
            .signals
            .get_or_insert_with(|| TokenBucket::new(burst, rate, now));
        if !bucket.try_take(now) {
            self.refuse_for(conn, ErrorCode::RateLimited, "slow down", nonce);
            return None;
        }
        Some(user)
    }

    /// The open connections of `user` that can take a call (identified, our protocol).
    fn call_connections(&self, user: &str) -> Vec<ConnectionId> {
        let mut conns: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.viewer() == Some(user))
            .map(|(id, _)| *id)
            .collect();
        conns.sort();
        conns
    }

    /// A connection closed: a call it rang from, took or could still take ends.
    pub(super) fn calls_lose(&mut self, now: Millis, conn: ConnectionId, user: &str) {
        let ending: Vec<(String, CallEnd)> = self
            .calls
            .iter()
            .filter_map(|c| {
                let answered = c.answered_at.is_some();
                if conn == c.caller_conn || c.callee_conn == Some(conn) {
                    let reason = if answered {
                        CallEnd::Disconnected
                    } else {
                        CallEnd::Missed
                    };
                    Some((c.id.clone(), reason))
                } else if !answered
                    && c.callee == user
                    && !c.rang_elsewhere
                    && self.call_connections(user).is_empty()
                {
                    Some((c.id.clone(), CallEnd::Missed))
                } else {
                    None
                }
            })
            .collect();
        for (id, reason) in ending {
            self.end_call(now, &id, reason);
        }
        // The callee's side of a call from another node, on the connection that closed.
        if let Some(at) = self.visits.iter().position(|v| v.callee_conn == Some(conn)) {
            let visit = self.visits.remove(at);
            let mut hangup = CallSignal::new(&visit.id, CallKind::Hangup);
            hangup.from = Some(visit.callee);
            self.effects.push_back(Effect::Relay(Signal::CallBack {
                caller: visit.caller,
                signal: hangup,
            }));
        }
    }

    /// Ends call `id`: both people hear why (the callee on every connection while it rang),
    /// and the record of the call is stored as an event of their conversation.
    fn end_call(&mut self, now: Millis, id: &str, reason: CallEnd) {
        let Some(at) = self.calls.iter().position(|c| c.id == id) else {
            return;
        };
        let call = self.calls.remove(at);
        let mut ended = CallSignal::new(&call.id, CallKind::Ended);
        ended.reason = Some(reason);
        let mut told = vec![call.caller_conn];
        match call.callee_conn {
            Some(conn) => told.push(conn),
            None => told.extend(self.call_connections(&call.callee)),
        }
        for conn in told {
            if self.connections.contains_key(&conn) {
                self.send(conn, ServerAction::Call(ended.clone()));
            }
        }
        if call.rang_elsewhere || call.callee_elsewhere {
            self.relay_call(call.callee.clone(), ended);
        }
        let record = match (call.answered_at, reason) {
            (Some(answered), _) => CallRecord {
                outcome: CallOutcome::Answered,
                secs: u32::try_from(((now - answered).max(0) + 500) / 1000).unwrap_or(u32::MAX),
            },
            (None, CallEnd::Declined) => CallRecord {
                outcome: CallOutcome::Declined,
                secs: 0,
            },
            (None, _) => CallRecord {
                outcome: CallOutcome::Missed,
                secs: 0,
            },
        };
        let raw = record.text();
        let html = self.renderer.render(&raw);
        let stored = StoredMessage {
            id: self.ids.hex(12),
            user_id: call.caller,
            html,
            raw,
            timestamp: now,
            to: Some(call.callee),
            call: Some(record),
            ..StoredMessage::default()
        };
        self.accept(PendingEvent::Message(stored), call.caller_conn);
    }

    fn refuse_call(&mut self, conn: ConnectionId, text: impl Into<String>, nonce: Option<&String>) {
        self.refuse_for(conn, ErrorCode::InvalidCall, text, nonce);
    }
}
