//! Signals: said in the room, never stored or replayed (typing here; call signalling in
//! `call`). In a cluster they also reach the other nodes' people: the engine asks its host to
//! relay one ([`Effect::Relay`]) only when someone who may hear it is online through another
//! node, and takes the other nodes' with [`Room::handle_relayed`].

use super::{ConnectionId, Effect, Room, Signal};
use crate::wire::{Millis, ServerAction, TypingUser, UserId};

impl Room {
    /// A signal, not an event: the others who speak our protocol hear that this user types;
    /// nothing is stored or replayed. It costs a token of the connection's rate like any action.
    /// Typing in a direct conversation (`to`) is heard by that person only. In a cluster it
    /// goes to the other nodes too, when someone who may hear it is online through one.
    pub(super) fn typing(&mut self, now: Millis, conn: ConnectionId, to: Option<UserId>) {
        let Some(user) = self.acting_user(now, conn, None, None) else {
            return;
        };
        self.tell_typing(&user, to.as_ref());
        let elsewhere = match &to {
            Some(to) => self.online_elsewhere(to),
            None => !self.remote.is_empty(),
        };
        if elsewhere {
            self.effects
                .push_back(Effect::Relay(Signal::Typing { user, to }));
        }
    }

    /// A signal from another node of the cluster ([`Effect::Relay`]): told to this node's
    /// connections that may hear it.
    pub fn handle_relayed(&mut self, now: Millis, signal: Signal) {
        match signal {
            Signal::Typing { user, to } => self.tell_typing(&user, to.as_ref()),
            Signal::Call { to, signal } => self.call_from_elsewhere(to, signal),
            Signal::CallBack { caller, signal } => self.call_back(now, caller, signal),
            Signal::Kick { user, reason } => self.kick_here(&user, reason),
        }
    }

    /// Tells this node's connections that may hear it that `user` types (to `to`).
    fn tell_typing(&mut self, user: &UserId, to: Option<&UserId>) {
        let mut hearers: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                c.viewer().is_some_and(|v| match to {
                    Some(to) => v == to && to != user,
                    None => v != user,
                })
            })
            .map(|(id, _)| *id)
            .collect();
        hearers.sort();
        let direct = to.is_some();
        for hearer in hearers {
            self.send(
                hearer,
                ServerAction::Typing(TypingUser {
                    user_id: user.clone(),
                    direct,
                }),
            );
        }
    }
}
