//! Calls as the page sees them: each room's session keeps its own call's rules
//! ([`protocol::session::Session::start_call`] and the rest); the page adds the one rule that
//! spans rooms: one call at a time in the whole page.

use protocol::session::{Call, CallError};
use protocol::{CallKind, Millis};

use super::{AppState, RoomId};

impl AppState {
    /// The room whose call is shown: the live one, else one that just ended (until
    /// dismissed).
    pub fn call_room(&self) -> Option<RoomId> {
        let live = self.rooms.iter().find(|r| r.session.in_call());
        live.or_else(|| self.rooms.iter().find(|r| r.session.call().is_some()))
            .map(|r| r.id)
    }

    /// The call shown, and its room.
    pub fn shown_call(&self) -> Option<(RoomId, &Call)> {
        let id = self.call_room()?;
        Some((id, self.room(id)?.session.call()?))
    }

    /// A call is ringing or answered in some room.
    pub fn in_call(&self) -> bool {
        self.rooms.iter().any(|r| r.session.in_call())
    }

    /// Whether a call may go on now that the browser gave (or refused) the devices, which
    /// takes a while: an answer while the ring is still on (by the clock: a ring runs out
    /// even if nobody says so), a new call while the page has none. With it, whether the
    /// other side's video is to be received (an answer: if the caller asked for video).
    pub fn call_go_ahead(
        &self,
        id: RoomId,
        answer: bool,
        video: bool,
        now: Millis,
    ) -> Option<bool> {
        let room = self.room(id)?;
        if answer {
            room.session
                .may_answer(now)
                .then(|| room.session.call().is_some_and(|c| c.video))
        } else {
            (!self.in_call()).then_some(video)
        }
    }

    /// Rings `peer` in room `id` (with camera if `video`).
    pub fn start_call(
        &mut self,
        id: RoomId,
        peer: &str,
        video: bool,
        now: Millis,
    ) -> Result<(), CallError> {
        if self.in_call() {
            return Err(CallError::Busy);
        }
        // A call that ended elsewhere and is still shown gives way.
        for room in &mut self.rooms {
            room.session.dismiss_call();
        }
        let room = self.room_mut(id).ok_or(CallError::Offline)?;
        room.session.start_call(now, peer, video).map(|_| ())
    }

    /// A call could not start: the room says why.
    pub fn call_refused(&mut self, id: RoomId, error: &CallError) {
        if let Some(room) = self.room_mut(id) {
            room.notice = Some(format!("The call could not start: {error}."));
        }
    }

    pub fn accept_call(&mut self, id: RoomId, video: bool, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.accept_call(now, video);
        }
    }

    /// Ends the call of room `id`, whatever its phase (an incoming one is declined).
    pub fn hang_up(&mut self, id: RoomId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.hang_up(now);
        }
    }

    /// The ended call of room `id` is no longer shown.
    pub fn dismiss_call(&mut self, id: RoomId) {
        if let Some(room) = self.room_mut(id) {
            room.session.dismiss_call();
        }
    }

    /// Our media's offer, answer or ICE candidate for the call of room `id`.
    pub fn call_signal(&mut self, id: RoomId, kind: CallKind, data: String) {
        if let Some(room) = self.room_mut(id) {
            room.session.send_call_signal(kind, data);
        }
    }

    /// Our microphone and camera are on or off: the other side hears so.
    pub fn call_media(&mut self, id: RoomId, audio: bool, video: bool) {
        if let Some(room) = self.room_mut(id) {
            room.session.set_call_media(audio, video);
        }
    }
}
