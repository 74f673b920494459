//! "Is typing": what we tell the room (at most every [`TYPING_EVERY_MS`]) and who we are
//! told types, until it expires.

use super::{Phase, Session, TYPING_EVERY_MS, TYPING_SHOWN_MS};
use crate::wire::{ClientAction, Millis, Typing, TypingUser, UserId};

impl Session {
    /// Who is typing in the room now, in the order they started.
    pub fn typing(&self) -> impl Iterator<Item = &UserId> {
        self.typing_in(None)
    }

    /// Who is typing in a conversation: the room (`None`), or the direct one with that person
    /// (they, if they are typing to us).
    pub fn typing_in<'a>(&'a self, peer: Option<&'a str>) -> impl Iterator<Item = &'a UserId> {
        self.typing
            .iter()
            .filter(move |(user, direct, _)| match peer {
                None => !direct,
                Some(peer) => *direct && user == peer,
            })
            .map(|(user, _, _)| user)
    }

    /// The user is typing here: the others hear so, at most every [`TYPING_EVERY_MS`].
    pub fn note_typing(&mut self, now: Millis) {
        self.note_typing_to(now, None);
    }

    /// The user is typing in the room (`None`) or to one person: the room, or that person
    /// only, hears so, at most every [`TYPING_EVERY_MS`] while it stays the same.
    pub fn note_typing_to(&mut self, now: Millis, to: Option<UserId>) {
        if self.phase != Phase::Online
            || self
                .typing_sent
                .as_ref()
                .is_some_and(|(place, sent)| *place == to && now - sent < TYPING_EVERY_MS)
        {
            return;
        }
        self.typing_sent = Some((to.clone(), now));
        self.queued.push(ClientAction::Typing(Typing { to }));
        self.flush(now);
    }

    /// Someone is typing (to us, when `direct`): shown for [`TYPING_SHOWN_MS`] after the last
    /// `TYPING` heard.
    pub(super) fn on_typing(&mut self, now: Millis, user: TypingUser) {
        let until = now + TYPING_SHOWN_MS;
        let direct = user.direct;
        match self
            .typing
            .iter_mut()
            .find(|(u, d, _)| *u == user.user_id && *d == direct)
        {
            Some((_, _, shown)) => *shown = until,
            None => self.typing.push((user.user_id, direct, until)),
        }
    }
}
