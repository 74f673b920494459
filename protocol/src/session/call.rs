//! The client side of calls: at most one call per session, its phase, and the signals the
//! host's media (an `RTCPeerConnection` in the browser) must act on.
//!
//! Rules, here only: a call needs the room online and the person online and not oneself; one
//! call at a time (a ring while in a call is declined); a ring that nobody settles ends as
//! missed after [`RING_GIVE_UP_MS`] even if the room says nothing; a lost connection ends the
//! call; signals of any other call than ours are dropped (the room is not trusted either).

use super::{Event, Phase, Session};
use crate::wire::{CallEnd, CallKind, CallSignal, ClientAction, Millis, UserId};

/// A ring that neither side settles ends after this long, whatever the room says (the room
/// itself gives up sooner: 30 s by default).
pub const RING_GIVE_UP_MS: Millis = 45_000;

/// The call of this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub id: String,
    /// The other person.
    pub peer: UserId,
    /// We rang.
    pub outgoing: bool,
    /// The caller asked for video (an incoming ring says whether they did).
    pub video: bool,
    pub phase: CallPhase,
    /// When it rang.
    pub rang_at: Millis,
    /// When it was answered.
    pub answered_at: Option<Millis>,
    /// The other person's microphone and camera, as they said.
    pub peer_audio: bool,
    pub peer_video: bool,
}

/// Where a call is, as signalling knows it (the media's own state is the host's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallPhase {
    /// We rang; no answer yet.
    Ringing,
    /// They ring us.
    Incoming,
    /// Answered: media may flow.
    Active,
    /// Over.
    Ended(CallEnd),
    /// The room refused to ring (the reason, to show).
    Refused(String),
}

/// What the host's media must do, or show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// Someone rings us: [`Session::call`] says who.
    Incoming,
    /// Our call was answered: make the offer.
    Accepted,
    /// The other side's offer, answer or ICE candidate, for the peer connection.
    Signal(CallKind, String),
    /// The call is over (or was refused): close the media.
    Ended,
}

/// Why a call cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the room is not connected")]
    Offline,
    #[error("this room cannot carry calls")]
    Unsupported,
    #[error("you are in a call already")]
    Busy,
    #[error("they are not here now")]
    NotHere,
}

impl Session {
    /// The call of this session, live or just over.
    pub fn call(&self) -> Option<&Call> {
        self.call.as_ref()
    }

    /// A call rings, or is answered.
    pub fn in_call(&self) -> bool {
        self.call.as_ref().is_some_and(Call::is_live)
    }

    /// The ICE servers the room offers.
    pub fn ice_servers(&self) -> &[crate::wire::IceServer] {
        &self.ice_servers
    }

    /// Whether a ring to us may be answered at `now`: it rings, and has not run out
    /// ([`RING_GIVE_UP_MS`], even if the room has not said so yet).
    pub fn may_answer(&self, now: Millis) -> bool {
        self.call
            .as_ref()
            .is_some_and(|c| c.phase == CallPhase::Incoming && now < c.rang_at + RING_GIVE_UP_MS)
    }

    /// Rings `to` (with camera if `video`). Returns the call's id.
    pub fn start_call(&mut self, now: Millis, to: &str, video: bool) -> Result<String, CallError> {
        if self.phase != Phase::Online {
            return Err(CallError::Offline);
        }
        if !self.speaks_ours {
            return Err(CallError::Unsupported);
        }
        if self.in_call() {
            return Err(CallError::Busy);
        }
        if self.is_me(to) || !self.online.contains(to) {
            return Err(CallError::NotHere);
        }
        let id = format!("{}c{}", self.config.nonce_prefix, self.next_nonce);
        self.next_nonce += 1;
        self.call = Some(Call {
            id: id.clone(),
            peer: to.to_owned(),
            outgoing: true,
            video,
            phase: CallPhase::Ringing,
            rang_at: now,
            answered_at: None,
            peer_audio: true,
            peer_video: true,
        });
        let mut ring = CallSignal::new(&id, CallKind::Ring);
        ring.to = Some(to.to_owned());
        ring.video = Some(video);
        ring.nonce = Some(id.clone());
        // A ring counts against the room's rate like any action.
        self.queued.push(ClientAction::Call(ring));
        self.flush(now);
        Ok(id)
    }

    /// Takes the incoming call (with camera if `video`).
    pub fn accept_call(&mut self, now: Millis, video: bool) {
        let Some(call) = self.incoming_mut() else {
            return;
        };
        call.phase = CallPhase::Active;
        call.answered_at = Some(now);
        let mut accept = CallSignal::new(&call.id, CallKind::Accept);
        accept.video = Some(video);
        self.transmit.push(ClientAction::Call(accept));
    }

    /// Does not take the incoming call.
    pub fn decline_call(&mut self, _now: Millis) {
        let Some(call) = self.incoming_mut() else {
            return;
        };
        call.phase = CallPhase::Ended(CallEnd::Declined);
        let signal = CallSignal::new(&call.id, CallKind::Decline);
        self.transmit.push(ClientAction::Call(signal));
        self.events.push(Event::Call(CallEvent::Ended));
    }

    /// Ends the call, ringing or answered (an incoming ring: declines it).
    pub fn hang_up(&mut self, now: Millis) {
        match self.call.as_ref().map(|c| c.phase.clone()) {
            Some(CallPhase::Incoming) => self.decline_call(now),
            Some(CallPhase::Ringing | CallPhase::Active) => {
                let Some(call) = self.call.as_mut() else {
                    return;
                };
                call.phase = CallPhase::Ended(if call.answered_at.is_some() {
                    CallEnd::HungUp
                } else {
                    CallEnd::Missed
                });
                let signal = CallSignal::new(&call.id, CallKind::Hangup);
                self.transmit.push(ClientAction::Call(signal));
                self.events.push(Event::Call(CallEvent::Ended));
            }
            _ => {}
        }
    }

    /// Our media's offer, answer or ICE candidate, for the other side of the answered call.
    pub fn send_call_signal(&mut self, kind: CallKind, data: String) {
        let Some(call) = self.call.as_ref().filter(|c| c.phase == CallPhase::Active) else {
            return;
        };
        if !matches!(kind, CallKind::Offer | CallKind::Answer | CallKind::Ice) {
            return;
        }
        let mut signal = CallSignal::new(&call.id, kind);
        signal.data = Some(data);
        self.transmit.push(ClientAction::Call(signal));
    }

    /// Our microphone and camera are now on or off: the other side hears so.
    pub fn set_call_media(&mut self, audio: bool, video: bool) {
        let Some(call) = self.call.as_ref().filter(|c| c.phase == CallPhase::Active) else {
            return;
        };
        let mut signal = CallSignal::new(&call.id, CallKind::Media);
        signal.audio = Some(audio);
        signal.video = Some(video);
        self.transmit.push(ClientAction::Call(signal));
    }

    /// The call ringing us, if one does.
    fn incoming_mut(&mut self) -> Option<&mut Call> {
        self.call
            .as_mut()
            .filter(|c| c.phase == CallPhase::Incoming)
    }

    /// Forgets a call that is over (the view has shown how it ended).
    pub fn dismiss_call(&mut self) {
        if !self.in_call() {
            self.call = None;
        }
    }

    pub(super) fn on_call(&mut self, now: Millis, signal: CallSignal) {
        let ours = self.call.as_ref().is_some_and(|c| c.id == signal.call_id);
        match signal.kind {
            CallKind::Ring => {
                let Some(from) = signal.from.filter(|f| !self.is_me(f)) else {
                    return;
                };
                if self.in_call() {
                    // One call at a time: the new one is declined.
                    let decline = CallSignal::new(&signal.call_id, CallKind::Decline);
                    self.transmit.push(ClientAction::Call(decline));
                    return;
                }
                self.call = Some(Call {
                    id: signal.call_id,
                    peer: from,
                    outgoing: false,
                    video: signal.video.unwrap_or(true),
                    phase: CallPhase::Incoming,
                    rang_at: now,
                    answered_at: None,
                    peer_audio: true,
                    peer_video: signal.video.unwrap_or(true),
                });
                self.events.push(Event::Call(CallEvent::Incoming));
            }
            _ if !ours => {}
            CallKind::Accept => {
                let Some(call) = self
                    .call
                    .as_mut()
                    .filter(|c| c.outgoing && c.phase == CallPhase::Ringing)
                else {
                    return;
                };
                call.phase = CallPhase::Active;
                call.answered_at = Some(now);
                call.peer_video = signal.video.unwrap_or(true);
                self.events.push(Event::Call(CallEvent::Accepted));
            }
            CallKind::Offer | CallKind::Answer | CallKind::Ice => {
                if let (Some(data), true) = (
                    signal.data,
                    self.call
                        .as_ref()
                        .is_some_and(|c| c.phase == CallPhase::Active),
                ) {
                    self.events
                        .push(Event::Call(CallEvent::Signal(signal.kind, data)));
                }
            }
            CallKind::Media => {
                if let Some(call) = self.call.as_mut() {
                    call.peer_audio = signal.audio.unwrap_or(call.peer_audio);
                    call.peer_video = signal.video.unwrap_or(call.peer_video);
                }
            }
            CallKind::Ended => self.end_call(signal.reason.unwrap_or(CallEnd::HungUp)),
            CallKind::Decline | CallKind::Hangup => {}
        }
    }

    /// The room refused our ring (named by its nonce, the call's id).
    pub(super) fn call_refused(&mut self, nonce: Option<&String>, reason: &str) -> bool {
        let Some(call) = self
            .call
            .as_mut()
            .filter(|c| c.outgoing && nonce == Some(&c.id) && c.is_live())
        else {
            return false;
        };
        call.phase = CallPhase::Refused(reason.to_owned());
        self.events.push(Event::Call(CallEvent::Ended));
        true
    }

    pub(super) fn call_timeout(&self) -> Option<Millis> {
        self.call
            .as_ref()
            .filter(|c| matches!(c.phase, CallPhase::Ringing | CallPhase::Incoming))
            .map(|c| c.rang_at + RING_GIVE_UP_MS)
    }

    pub(super) fn call_handle_timeout(&mut self, now: Millis) {
        if self.call_timeout().is_some_and(|at| at <= now) {
            self.end_call(CallEnd::Missed);
        }
    }

    /// The connection is gone: so is the call.
    pub(super) fn call_disconnected(&mut self) {
        if self.in_call() {
            self.end_call(CallEnd::Disconnected);
        }
    }

    fn end_call(&mut self, reason: CallEnd) {
        if let Some(call) = self.call.as_mut().filter(|c| c.is_live()) {
            call.phase = CallPhase::Ended(reason);
            self.events.push(Event::Call(CallEvent::Ended));
        }
    }
}

impl Call {
    /// It rings or is answered.
    pub fn is_live(&self) -> bool {
        matches!(
            self.phase,
            CallPhase::Ringing | CallPhase::Incoming | CallPhase::Active
        )
    }
}
