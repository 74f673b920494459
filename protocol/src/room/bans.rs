//! Bans: a moderator or owner bans someone they outrank, for a while or until the ban is
//! lifted, with a reason, and optionally the network addresses they connected from. A banned
//! identity is refused when it identifies (`BANNED`, then the connection is closed with the
//! reason: a legacy client shows the close reason); its connections are closed when the ban is
//! given, on every node of a cluster (each closes its own when the person's record comes
//! through the log). While a ban with addresses is in force, no new identity is given to a
//! connection from one of them. Everyone is told `MODERATED` (without the reason); the ban is
//! kept with the person's record, on the room's clock.
//!
//! The addresses a ban can take are those the person connected from through this node since
//! it started: the room keeps no address in storage.

use std::borrow::Cow;
use std::net::IpAddr;

use super::{ConnectionId, Effect, Room};
use crate::error::ErrorCode;
use crate::stored::Ban;
use crate::wire::{
    AuditAction, AuditEntry, MAX_BAN_MINUTES, Millis, Moderate, Moderated, ModerationKind,
    ServerAction, UserId,
};

/// The WebSocket close code of a banned connection (the application's range).
pub const BANNED_CODE: u16 = 4001;

/// The longest close reason a WebSocket close frame carries, in bytes.
const MAX_CLOSE_REASON_BYTES: usize = 123;

impl Room {
    /// `user`'s ban, if one holds at `now`.
    pub fn ban_of(&self, user: &str, now: Millis) -> Option<&Ban> {
        self.users
            .get(user)
            .and_then(|u| u.ban.as_ref())
            .filter(|ban| ban.in_force(now))
    }

    /// Whether a ban in force covers `address` (a key as [`super::address_key`] gives).
    pub(super) fn address_banned(&self, address: IpAddr, now: Millis) -> bool {
        let address = address.to_string();
        self.banned
            .iter()
            .filter_map(|user| self.ban_of(user, now))
            .any(|ban| ban.addresses.contains(&address))
    }

    /// The bans in force, as `HANDSHAKE` tells them (no reasons).
    pub(super) fn bans(&self, now: Millis) -> Vec<Moderated> {
        self.banned
            .iter()
            .filter_map(|user| {
                let ban = self.ban_of(user, now)?;
                Some(Moderated {
                    kind: ModerationKind::Ban,
                    user_id: user.clone(),
                    until: ban.until,
                    reason: None,
                })
            })
            .collect()
    }

    /// `MODERATE` `ban` or `unban`, from `actor`, who outranks the person (checked).
    pub(super) fn ban(
        &mut self,
        now: Millis,
        conn: ConnectionId,
        actor: UserId,
        asked: Moderate,
        nonce: Option<&String>,
    ) {
        let ban = if asked.kind == ModerationKind::Ban {
            let Some(reason) = self.checked_reason(conn, asked.reason, nonce) else {
                return;
            };
            let until = match asked.minutes {
                None => None,
                Some(minutes @ 1..=MAX_BAN_MINUTES) => Some(now + Millis::from(minutes) * 60_000),
                Some(_) => {
                    let text = format!(
                        "a ban lasts 1 to {MAX_BAN_MINUTES} minutes, or until it is lifted"
                    );
                    return self.refuse_for(conn, ErrorCode::InvalidModeration, text, nonce);
                }
            };
            let addresses = if asked.address {
                self.addresses_of(&asked.user_id)
            } else {
                Vec::new()
            };
            Some(Ban {
                until,
                reason,
                addresses,
                by: actor.clone(),
            })
        } else {
            None
        };
        let Some(target) = self.users.get_mut(&asked.user_id) else {
            return;
        };
        let entry = AuditEntry {
            user_id: Some(asked.user_id.clone()),
            until: ban.as_ref().and_then(|b| b.until),
            reason: ban.as_ref().and_then(|b| b.reason.clone()),
            ..AuditEntry::new(
                now,
                actor,
                match ban {
                    Some(_) => AuditAction::Ban,
                    None => AuditAction::Unban,
                },
            )
        };
        target.ban = ban;
        let record = target.record(&asked.user_id);
        self.effects.push_back(Effect::PersistUser(record));
        self.record_audit(conn, entry, None);
        self.ban_changed(now, asked.user_id);
    }

    /// The addresses `user` connected from through this node (open connections, and the
    /// last one since the room started), as keys.
    fn addresses_of(&self, user: &str) -> Vec<String> {
        let mut addresses: Vec<String> = self
            .connections
            .values()
            .filter(|c| c.user.as_deref() == Some(user))
            .filter_map(|c| c.address)
            .chain(self.users.get(user).and_then(|u| u.last_address))
            .map(|a| a.to_string())
            .collect();
        addresses.sort();
        addresses.dedup();
        addresses
    }

    /// `user`'s ban was given or lifted (here, or on another node): everyone here is told, and
    /// a banned person's connections here are refused and closed.
    pub(super) fn ban_changed(&mut self, now: Millis, user: UserId) {
        let ban = self.ban_of(&user, now).cloned();
        let holds = self.users.get(&user).is_some_and(|u| u.ban.is_some());
        super::listed(&mut self.banned, &user, holds);
        let theirs: Vec<ConnectionId> = self.connections_of(&user);
        let told = ServerAction::Moderated(Moderated {
            kind: match ban {
                Some(_) => ModerationKind::Ban,
                None => ModerationKind::Unban,
            },
            user_id: user.clone(),
            until: ban.as_ref().and_then(|b| b.until),
            reason: None,
        });
        let others: Vec<ConnectionId> = {
            let mut all: Vec<ConnectionId> = self
                .connections
                .keys()
                .copied()
                .filter(|c| !theirs.contains(c))
                .collect();
            all.sort();
            all
        };
        for conn in others {
            self.send(conn, told.clone());
        }
        if let Some(ban) = ban {
            for conn in theirs {
                self.refuse_banned(conn, &ban, now);
            }
        }
    }

    /// `BANNED`, saying until when and why, then the connection closes with the same words.
    pub(super) fn refuse_banned(&mut self, conn: ConnectionId, ban: &Ban, now: Millis) {
        let text = ban_text(ban, now);
        self.refuse(conn, ErrorCode::Banned, text.clone());
        self.effects.push_back(Effect::Close {
            to: conn,
            code: BANNED_CODE,
            reason: Cow::Owned(close_reason(&text)),
        });
    }

    /// A new identity from a banned address: refused, and the connection closed.
    pub(super) fn refuse_banned_address(&mut self, conn: ConnectionId) {
        let text = "new identities are not given to your network: it is banned from this room";
        self.refuse(conn, ErrorCode::Banned, text);
        self.effects.push_back(Effect::Close {
            to: conn,
            code: BANNED_CODE,
            reason: Cow::Owned(close_reason(text)),
        });
    }
}

/// What a banned person is told.
fn ban_text(ban: &Ban, now: Millis) -> String {
    let how_long = match ban.until {
        None => "until a moderator lifts the ban".to_owned(),
        Some(until) => {
            let minutes = ((until - now).max(0) + 59_999) / 60_000;
            match minutes {
                0..=120 => format!("for {minutes} more min"),
                121..=2880 => format!("for {} more hours", (minutes + 59) / 60),
                _ => format!("for {} more days", (minutes + 1439) / 1440),
            }
        }
    };
    match &ban.reason {
        Some(reason) => format!("you are banned from this room {how_long}: {reason}"),
        None => format!("you are banned from this room {how_long}"),
    }
}

/// `text` cut to what a close frame carries, on a character boundary.
fn close_reason(text: &str) -> String {
    if text.len() <= MAX_CLOSE_REASON_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_CLOSE_REASON_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame_on_a_character_boundary() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= MAX_CLOSE_REASON_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
    }

    #[test]
    fn a_ban_says_how_long_it_lasts() {
        let ban = |until, reason: Option<&str>| Ban {
            until,
            reason: reason.map(str::to_owned),
            addresses: Vec::new(),
            by: "m".into(),
        };
        assert_eq!(
            ban_text(&ban(None, Some("spam")), 0),
            "you are banned from this room until a moderator lifts the ban: spam"
        );
        assert_eq!(
            ban_text(&ban(Some(90_000), None), 0),
            "you are banned from this room for 2 more min"
        );
        assert_eq!(
            ban_text(&ban(Some(3 * 3_600_000), None), 0),
            "you are banned from this room for 3 more hours"
        );
        assert_eq!(
            ban_text(&ban(Some(3 * 86_400_000), None), 0),
            "you are banned from this room for 3 more days"
        );
    }
}
