//! Roles: owners and moderators (a member has none). The operator makes owners
//! (`real-server role grant`, on the room's store; the room reads roles when it starts);
//! owners make and unmake moderators here. A role outranks the ones below it
//! ([`Role::outranks`]): a moderator removes members' room messages, an owner moderators' too
//! (`post.rs`, the change `Remove`). Roles are told in `HANDSHAKE` and, when they change, in
//! `ROLE` to everyone. Moderation (`MODERATE`): a moderator or owner times out someone they
//! outrank (they read, not write or react, until then, on the room's clock) or ends it; told to
//! everyone as `MODERATED` and in `HANDSHAKE`, kept with the person's record; or kicks them:
//! their connections are told why and closed (4000, on every node of a cluster); they may
//! come back.

use std::collections::BTreeMap;

use super::Signal;
use super::{ConnectionId, Effect, MAX_NONCE_CHARS, Room};
use crate::error::ErrorCode;
use crate::wire::{
    AuditAction, AuditEntry, MAX_REASON_CHARS, MAX_SLOW_MODE_SECONDS, MAX_TIME_OUT_MINUTES,
    MAX_TOPIC_CHARS, Millis, Moderate, Moderated, ModerationKind, Role, RoleChanged, RoomChanged,
    RoomSettings, ServerAction, SetRole, SetRoom, UserId,
};

impl Room {
    /// Someone's role here (`None`: a member, or nobody the room knows).
    pub fn role_of(&self, user: &str) -> Option<Role> {
        self.users.get(user).and_then(|u| u.role)
    }

    /// Everyone with a role, as `HANDSHAKE` tells it.
    pub(super) fn roles(&self) -> BTreeMap<UserId, Role> {
        self.ranked
            .iter()
            .filter_map(|id| Some((id.clone(), self.users.get(id)?.role?)))
            .collect()
    }

    /// `SET_ROLE`: an owner makes someone a moderator, or a member again. Owners are the
    /// operator's: nobody makes or unmakes one here.
    pub(super) fn set_role(&mut self, now: Millis, conn: ConnectionId, asked: SetRole) {
        let nonce = checked_nonce(asked.nonce);
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
        let action = match asked.role {
            Some(_) => AuditAction::Moderator,
            None => AuditAction::Member,
        };
        let entry = AuditEntry {
            user_id: Some(asked.user_id.clone()),
            ..AuditEntry::new(now, owner.clone(), action)
        };
        self.record_audit(conn, entry, None);
        self.apply_role(asked.user_id, asked.role, owner);
    }

    /// The room's operator sets `user`'s role (a host's own act, as `real-server role` is on a
    /// server's store: the demo's "be a moderator"): stored, and told to everyone as set by
    /// [`OPERATOR`]. Nothing happens for someone the room does not know, or who has it already.
    pub fn handle_operator_role(&mut self, user: &str, role: Option<Role>) {
        if !self.users.contains_key(user) || self.role_of(user) == role {
            return;
        }
        self.effects.push_back(Effect::PersistRole {
            user_id: user.to_owned(),
            role,
            by: OPERATOR.to_owned(),
        });
        self.apply_role(user.to_owned(), role, OPERATOR.to_owned());
    }

    /// A role changed (here, or on another node of a cluster): kept, and told to everyone.
    pub(super) fn apply_role(&mut self, user_id: UserId, role: Option<Role>, by: UserId) {
        let Some(user) = self.users.get_mut(&user_id) else {
            return;
        };
        user.role = role;
        super::listed(&mut self.ranked, &user_id, role.is_some());
        self.effects
            .push_back(Effect::Broadcast(ServerAction::Role(RoleChanged {
                user_id,
                role,
                by,
            })));
    }
}

impl Room {
    /// Until when `user` is timed out, if they are now.
    pub fn timed_out_until(&self, user: &str, now: Millis) -> Option<Millis> {
        self.users
            .get(user)
            .and_then(|u| u.timed_out_until)
            .filter(|until| *until > now)
    }

    /// The time-outs in force, as `HANDSHAKE` tells them.
    pub(super) fn timed_out(&self, now: Millis) -> Vec<Moderated> {
        self.timed
            .iter()
            .filter_map(|id| {
                let until = self.timed_out_until(id, now)?;
                Some(Moderated {
                    kind: ModerationKind::TimeOut,
                    user_id: id.clone(),
                    until: Some(until),
                    reason: None,
                })
            })
            .collect()
    }

    /// Whether `user` may write or react now; a timed-out person is told until when.
    pub(super) fn may_write(
        &mut self,
        now: Millis,
        conn: ConnectionId,
        user: &str,
        nonce: Option<&String>,
    ) -> bool {
        let Some(until) = self.timed_out_until(user, now) else {
            return true;
        };
        let minutes = (until - now + 59_999) / 60_000;
        let text = format!("you are timed out: you can read, and write again in {minutes} min");
        self.refuse_for(conn, ErrorCode::TimedOut, text, nonce);
        false
    }

    /// A kick's or a ban's reason as it is kept (a blank one is none), or `None` when it is
    /// over [`MAX_REASON_CHARS`]: then the asker is refused.
    pub(super) fn checked_reason(
        &mut self,
        conn: ConnectionId,
        reason: Option<String>,
        nonce: Option<&String>,
    ) -> Option<Option<String>> {
        let reason = reason.filter(|r| !r.trim().is_empty());
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
        {
            let text = format!("a reason is at most {MAX_REASON_CHARS} characters");
            self.refuse_for(conn, ErrorCode::InvalidModeration, text, nonce);
            return None;
        }
        Some(reason)
    }

    /// `MODERATE`: a moderator or owner acts on someone they outrank.
    pub(super) fn moderate(&mut self, now: Millis, conn: ConnectionId, asked: Moderate) {
        let nonce = checked_nonce(asked.nonce.clone());
        let nonce = nonce.as_ref();
        let Some(actor) = self.acting_user(now, conn, None, nonce) else {
            return;
        };
        let Some(target) = self.users.get(&asked.user_id) else {
            let text = "nobody with that id has been here";
            return self.refuse_for(conn, ErrorCode::UnknownUser, text, nonce);
        };
        if !Role::outranks(self.role_of(&actor), target.role) {
            let text = "moderators act on members, owners on moderators too";
            return self.refuse_for(conn, ErrorCode::NotAllowed, text, nonce);
        }
        if asked.kind == ModerationKind::Kick {
            let Some(reason) = self.checked_reason(conn, asked.reason, nonce) else {
                return;
            };
            let entry = AuditEntry {
                user_id: Some(asked.user_id.clone()),
                reason: reason.clone(),
                ..AuditEntry::new(now, actor, AuditAction::Kick)
            };
            self.record_audit(conn, entry, None);
            return self.kick(asked.user_id, reason);
        }
        if matches!(asked.kind, ModerationKind::Ban | ModerationKind::Unban) {
            return self.ban(now, conn, actor, asked, nonce);
        }
        let until = match asked.kind {
            ModerationKind::TimeOut => match asked.minutes {
                Some(minutes @ 1..=MAX_TIME_OUT_MINUTES) => {
                    Some(now + Millis::from(minutes) * 60_000)
                }
                _ => {
                    let text = format!("a time-out lasts 1 to {MAX_TIME_OUT_MINUTES} minutes");
                    return self.refuse_for(conn, ErrorCode::InvalidModeration, text, nonce);
                }
            },
            _ => None,
        };
        let Some(target) = self.users.get_mut(&asked.user_id) else {
            return;
        };
        target.timed_out_until = until;
        let record = target.record(&asked.user_id);
        super::listed(&mut self.timed, &asked.user_id, until.is_some());
        self.effects.push_back(Effect::PersistUser(record));
        let action = match until {
            Some(_) => AuditAction::TimeOut,
            None => AuditAction::EndTimeOut,
        };
        let entry = AuditEntry {
            user_id: Some(asked.user_id.clone()),
            until,
            ..AuditEntry::new(now, actor, action)
        };
        self.record_audit(conn, entry, None);
        self.told_moderated(asked.user_id, until);
    }

    /// Everyone here is told of a time-out (`until`) or its end (`None`).
    pub(super) fn told_moderated(&mut self, user_id: UserId, until: Option<Millis>) {
        let kind = match until {
            Some(_) => ModerationKind::TimeOut,
            None => ModerationKind::EndTimeOut,
        };
        self.effects
            .push_back(Effect::Broadcast(ServerAction::Moderated(Moderated {
                kind,
                user_id,
                until,
                reason: None,
            })));
    }

    /// A kick: everyone here is told, the person's connections here are told why and closed,
    /// and the other nodes of a cluster do the same with theirs.
    fn kick(&mut self, user_id: UserId, reason: Option<String>) {
        if self.online_elsewhere(&user_id) {
            self.effects.push_back(Effect::Relay(Signal::Kick {
                user: user_id.clone(),
                reason: reason.clone(),
            }));
        }
        self.kick_here(&user_id, reason);
    }

    /// Closes `user`'s connections on this node, after telling everyone here (them with why).
    pub(super) fn kick_here(&mut self, user: &UserId, reason: Option<String>) {
        let told = |reason| {
            ServerAction::Moderated(Moderated {
                kind: ModerationKind::Kick,
                user_id: user.clone(),
                until: None,
                reason,
            })
        };
        let theirs = self.connections_of(user);
        for (id, connection) in &self.connections {
            if connection.user.as_ref() != Some(user) {
                self.effects.push_back(Effect::Send {
                    to: *id,
                    action: told(None),
                });
            }
        }
        let why = reason.unwrap_or_else(|| "no reason given".to_owned());
        for conn in theirs {
            self.send(conn, told(Some(why.clone())));
            self.effects.push_back(Effect::Close {
                to: conn,
                code: KICKED_CODE,
                reason: "removed by a moderator".into(),
            });
        }
    }
}

/// A nonce an `ERROR` may name: one within its rule (a longer one may be huge, and is not
/// echoed back).
pub(super) fn checked_nonce(nonce: Option<String>) -> Option<String> {
    nonce.filter(|n| (1..=MAX_NONCE_CHARS).contains(&n.chars().count()))
}

/// Who `ROLE` says set a role the room's operator set.
pub const OPERATOR: &str = "operator";

/// The WebSocket close code of a kick (the application's range).
pub const KICKED_CODE: u16 = 4000;

impl Room {
    /// The identity bound to `conn` if it is a moderator's or an owner's (after the rate
    /// limit); anyone else is refused with `NOT_ALLOWED`, saying `refusal`, and the nonce.
    pub(super) fn acting_moderator(
        &mut self,
        now: Millis,
        conn: ConnectionId,
        nonce: Option<&String>,
        refusal: &str,
    ) -> Option<UserId> {
        let actor = self.acting_user(now, conn, None, nonce)?;
        if self.role_of(&actor).is_none() {
            self.refuse_for(conn, ErrorCode::NotAllowed, refusal, nonce);
            return None;
        }
        Some(actor)
    }

    /// `SET_ROOM`: a moderator or owner sets the topic and slow mode.
    pub(super) fn set_room(&mut self, now: Millis, conn: ConnectionId, asked: SetRoom) {
        let nonce = checked_nonce(asked.nonce);
        let nonce = nonce.as_ref();
        let refusal = "moderators and owners set the topic and slow mode";
        let Some(actor) = self.acting_moderator(now, conn, nonce, refusal) else {
            return;
        };
        let mut settings = asked.settings;
        settings.topic = settings.topic.trim().to_owned();
        if settings.topic.chars().count() > MAX_TOPIC_CHARS
            || settings.slow_mode_seconds > MAX_SLOW_MODE_SECONDS
        {
            let text = format!(
                "a topic is at most {MAX_TOPIC_CHARS} characters, slow mode at most \
                 {MAX_SLOW_MODE_SECONDS} s"
            );
            return self.refuse_for(conn, ErrorCode::InvalidModeration, text, nonce);
        }
        self.effects.push_back(Effect::PersistSettings {
            settings: settings.clone(),
            by: actor.clone(),
        });
        let entry = AuditEntry::new(now, actor.clone(), AuditAction::RoomSettings);
        self.record_audit(conn, entry, None);
        self.apply_settings(settings, actor);
    }

    /// The room's settings changed (here, or on another node): kept, and told to everyone.
    pub(super) fn apply_settings(&mut self, settings: RoomSettings, by: UserId) {
        self.settings = settings.clone();
        self.effects
            .push_back(Effect::Broadcast(ServerAction::Room(RoomChanged {
                settings,
                by,
            })));
    }

    /// Slow mode: whether `user` may post a room message now (moderators and owners always);
    /// if so, now is their latest. Otherwise they are told how long to wait.
    pub(super) fn slow_mode_lets(
        &mut self,
        now: Millis,
        conn: ConnectionId,
        user: &str,
        nonce: Option<&String>,
    ) -> bool {
        let interval = Millis::from(self.settings.slow_mode_seconds) * 1000;
        if interval == 0 || self.role_of(user).is_some() {
            return true;
        }
        if let Some(last) = self.last_posted.get(user)
            && now - last < interval
        {
            let wait = (interval - (now - last) + 999) / 1000;
            let text = format!(
                "slow mode: one message every {} s; wait {wait} s",
                self.settings.slow_mode_seconds
            );
            self.refuse_for(conn, ErrorCode::SlowMode, text, nonce);
            return false;
        }
        self.last_posted.insert(user.to_owned(), now);
        true
    }
}
