//! Roles: owners and moderators (a member has none). The operator makes owners
//! (`real-server role grant`, on the room's store; the room reads roles when it starts);
//! owners make and unmake moderators here. A role outranks the ones below it
//! ([`Role::outranks`]): a moderator removes members' room messages, an owner moderators' too
//! (`post.rs`, the change `Remove`). Roles are told in `HANDSHAKE` and, when they change, in
//! `ROLE` to everyone.

use std::collections::BTreeMap;

use super::{ConnectionId, Effect, MAX_NONCE_CHARS, Room};
use crate::error::ErrorCode;
use crate::wire::{Millis, Role, RoleChanged, ServerAction, SetRole, UserId};

impl Room {
    /// Someone's role here (`None`: a member, or nobody the room knows).
    pub fn role_of(&self, user: &str) -> Option<Role> {
        self.users.get(user).and_then(|u| u.role)
    }

    /// Everyone with a role, as `HANDSHAKE` tells it.
    pub(super) fn roles(&self) -> BTreeMap<UserId, Role> {
        self.users
            .iter()
            .filter_map(|(id, user)| Some((id.clone(), user.role?)))
            .collect()
    }

    /// `SET_ROLE`: an owner makes someone a moderator, or a member again. Owners are the
    /// operator's: nobody makes or unmakes one here.
    pub(super) fn set_role(&mut self, now: Millis, conn: ConnectionId, asked: SetRole) {
        let nonce = asked
            .nonce
            .filter(|n| (1..=MAX_NONCE_CHARS).contains(&n.chars().count()));
        let nonce = nonce.as_ref();
        let Some(owner) = self.acting_user(now, conn, None, nonce) else {
            return;
        };
        if self.role_of(&owner) != Some(Role::Owner) {
            let text = "only an owner makes and unmakes moderators";
            return self.refuse_for(conn, ErrorCode::NotAllowed, text, nonce);
        }
        if asked.role == Some(Role::Owner) {
            let text = "owners are made by the room's operator";
            return self.refuse_for(conn, ErrorCode::NotAllowed, text, nonce);
        }
        let Some(target) = self.users.get(&asked.user_id) else {
            let text = "nobody with that id has been here";
            return self.refuse_for(conn, ErrorCode::UnknownUser, text, nonce);
        };
        if target.role == Some(Role::Owner) {
            let text = "an owner's role is the room's operator's to change";
            return self.refuse_for(conn, ErrorCode::NotAllowed, text, nonce);
        }
        self.effects.push_back(Effect::PersistRole {
            user_id: asked.user_id.clone(),
            role: asked.role,
            by: owner.clone(),
        });
        self.apply_role(asked.user_id, asked.role, owner);
    }

    /// A role changed (here, or on another node of a cluster): kept, and told to everyone.
    pub(super) fn apply_role(&mut self, user_id: UserId, role: Option<Role>, by: UserId) {
        let Some(user) = self.users.get_mut(&user_id) else {
            return;
        };
        user.role = role;
        self.effects
            .push_back(Effect::Broadcast(ServerAction::Role(RoleChanged {
                user_id,
                role,
                by,
            })));
    }
}
