//! The room's records as storage keeps them: messages (every change folded in), their
//! changes, and people; and the one rule of who may see a message. The engine, both stores,
//! search and the client session all read these; none of them depends on the engine.

use serde::{Deserialize, Serialize};

use crate::wire::{CallRecord, MessageRecord, Millis, Reaction, Role, Seq, UserId};

/// One message as storage keeps it: as it is now, every change to it folded in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredMessage {
    /// Position in the room; unique, strictly increasing.
    pub seq: Seq,
    /// Stable, globally unique id.
    pub id: String,
    /// Author, as bound to the author's connection.
    pub user_id: UserId,
    /// Markdown as written.
    pub raw: String,
    /// Sanitised HTML rendered from `raw` (for legacy clients).
    pub html: String,
    /// When the room accepted it.
    pub timestamp: Millis,
    /// The author's de-duplication nonce, if it sent one.
    pub nonce: Option<String>,
    /// When the text was last edited.
    pub edited_at: Option<Millis>,
    /// Deleted by its author: `raw` is empty and `html` says so (for legacy clients).
    pub deleted: bool,
    /// Deleted by a moderator (`deleted` too): shown as removed by a moderator.
    pub removed: bool,
    /// The seq of the latest change folded in.
    pub changed_seq: Option<Seq>,
    /// Reactions, in the order each emoji was first given; at most [`MAX_REACTIONS`] emoji.
    pub reactions: Vec<Reaction>,
    /// The seq of the message this one answers.
    pub reply_to: Option<Seq>,
    /// A direct message to this person: only they and the author may ever see it
    /// ([`StoredMessage::visible_to`]).
    pub to: Option<UserId>,
    /// The record of a call from the author to `to` (the message's text says it in words).
    pub call: Option<CallRecord>,
}

/// The one privacy rule: whether `viewer` may see a message by `author`, written `to` one
/// person (a direct message) or to the room (`None`), or any change to it. A room message is
/// for everyone; a direct message only for its author and its recipient. A `None` viewer has
/// no identity, or is a legacy client (which cannot tell a direct message from a room
/// message): it sees room messages only.
///
/// Every path out of the room asks this: live delivery, `HANDSHAKE`, `RESUME`, `HISTORY`,
/// search, the client session's check of what a server sends. Each store says the same in its
/// own language in one place (SQLite: `store::sqlite::visible_to`, MongoDB:
/// `store::mongo::visible_to`), and the store conformance suite checks that they agree with
/// this function over generated messages and viewers.
pub fn may_see(viewer: Option<&str>, author: &str, to: Option<&str>) -> bool {
    match (to, viewer) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(to), Some(viewer)) => viewer == to || viewer == author,
    }
}

/// Different emoji one message may carry as reactions.
pub const MAX_REACTIONS: usize = 20;

/// What legacy clients show for a deleted message (they render `htmlMessage`).
pub const DELETED_HTML: &str = "<p><em>message deleted</em></p>\n";

/// What legacy clients show for a message a moderator removed.
pub const REMOVED_HTML: &str = "<p><em>message removed by a moderator</em></p>\n";

impl StoredMessage {
    /// The wire form.
    pub fn to_record(&self) -> MessageRecord {
        MessageRecord {
            raw_message: self.raw.clone(),
            html_message: self.html.clone(),
            timestamp: self.timestamp,
            user_id: self.user_id.clone(),
            seq: Some(self.seq),
            id: Some(self.id.clone()),
            nonce: self.nonce.clone(),
            edited_at: self.edited_at,
            deleted: self.deleted,
            removed: self.removed,
            changed_seq: self.changed_seq,
            reactions: self.reactions.clone(),
            reply_to: self.reply_to,
            to: self.to.clone(),
            call: self.call,
            change_nonce: None,
        }
    }

    /// Whether `viewer` may see this message (or any change to it): [`may_see`].
    pub fn visible_to(&self, viewer: Option<&str>) -> bool {
        may_see(viewer, &self.user_id, self.to.as_deref())
    }

    /// The other person of this message for `viewer`, when it is a direct message between
    /// them (`None` for a room message, or one `viewer` is not in).
    pub fn peer_of(&self, viewer: &str) -> Option<&UserId> {
        let to = self.to.as_ref()?;
        if self.user_id == viewer {
            Some(to)
        } else if to == viewer {
            Some(&self.user_id)
        } else {
            None
        }
    }

    /// Whether a history page for `viewer` asked `with` (see [`crate::HistoryRequest`])
    /// holds this message: with nobody, everything `viewer` may see; with a person, only the
    /// direct messages between the two of them.
    pub fn in_page_for(&self, viewer: Option<&str>, with: Option<&str>) -> bool {
        match with {
            None => self.visible_to(viewer),
            Some(with) => viewer.is_some_and(|v| self.peer_of(v).map(String::as_str) == Some(with)),
        }
    }

    /// The highest seq that says something about this message: its own, or its latest
    /// change's.
    pub fn last_seq(&self) -> Seq {
        self.changed_seq.map_or(self.seq, |c| c.max(self.seq))
    }
}

/// One direct conversation of a person, as storage finds it: the other person, the latest
/// message between them, and how many of the other's messages to the person are newer than
/// the `since` asked with (and not deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectConversation {
    pub with: UserId,
    pub last: StoredMessage,
    pub unread: u32,
}

/// The one rule of a person's conversation list: from `newest_first` (a room's messages, the
/// newest first), the direct conversations of `viewer`, the latest first, at most `limit`,
/// each with its latest message and its messages to `viewer` newer than `since`. Each store
/// says it in its own query; the store conformance suite checks they agree with this.
pub fn conversations_of<'a>(
    newest_first: impl IntoIterator<Item = &'a StoredMessage>,
    viewer: &str,
    since: Seq,
    limit: usize,
) -> Vec<DirectConversation> {
    let mut found: Vec<DirectConversation> = Vec::new();
    let mut unread: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
    for message in newest_first {
        let Some(peer) = message.peer_of(viewer) else {
            continue;
        };
        if message.user_id == *peer && message.seq > since && !message.deleted {
            *unread.entry(peer.as_str()).or_default() += 1;
        }
        if !found.iter().any(|c| c.with == *peer) {
            found.push(DirectConversation {
                with: peer.clone(),
                last: message.clone(),
                unread: 0,
            });
        }
    }
    found.truncate(limit);
    for conversation in &mut found {
        conversation.unread = unread.get(conversation.with.as_str()).copied().unwrap_or(0);
    }
    found
}

/// A change to a stored message: an event of its own in the room's order (`seq`), pointing
/// at the message it changes (`target`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChange {
    pub seq: Seq,
    pub target: Seq,
    /// Who changed it: the message's author (an edit, a delete), anyone (a reaction), or a
    /// moderator or owner who outranks the author (a removal).
    pub user_id: UserId,
    pub at: Millis,
    pub kind: ChangeKind,
}

/// What a change does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ChangeKind {
    /// New text, with its HTML rendered by the room.
    Edit { raw: String, html: String },
    /// The text is gone for everyone.
    Delete,
    /// The text is gone for everyone, taken away by a moderator.
    Remove,
    /// `user_id` adds (`on`) or takes back `emoji`.
    React { emoji: String, on: bool },
}

impl StoredChange {
    /// Folds this change into its message: the one rule, used by the engine, by both stores
    /// and (through `MESSAGE_CHANGED` records) seen by clients. A deleted message stays
    /// deleted (a later change only records its seq, so the room's order survives a restart);
    /// a change older than the one already folded in changes nothing.
    pub fn apply(&self, message: &mut StoredMessage) {
        if message.seq != self.target || message.changed_seq.is_some_and(|c| c >= self.seq) {
            return;
        }
        match &self.kind {
            _ if message.deleted => {}
            ChangeKind::Edit { raw, html } => {
                message.raw.clone_from(raw);
                message.html.clone_from(html);
                message.edited_at = Some(self.at);
            }
            ChangeKind::Delete | ChangeKind::Remove => {
                let removed = self.kind == ChangeKind::Remove;
                message.raw.clear();
                message.html = if removed { REMOVED_HTML } else { DELETED_HTML }.to_owned();
                message.deleted = true;
                message.removed = removed;
                message.reactions.clear();
            }
            ChangeKind::React { emoji, on } => {
                let index = message.reactions.iter().position(|r| r.emoji == *emoji);
                match (index, *on) {
                    (Some(i), true) => {
                        let users = &mut message.reactions[i].users;
                        if !users.contains(&self.user_id) {
                            users.push(self.user_id.clone());
                        }
                    }
                    (None, true) if message.reactions.len() < MAX_REACTIONS => {
                        message.reactions.push(Reaction {
                            emoji: emoji.clone(),
                            users: vec![self.user_id.clone()],
                        });
                    }
                    (Some(i), false) => {
                        message.reactions[i].users.retain(|u| *u != self.user_id);
                        if message.reactions[i].users.is_empty() {
                            message.reactions.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
        message.changed_seq = Some(self.seq);
    }
}

/// One user as storage keeps it. The token itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Stable id.
    pub id: UserId,
    /// Current name.
    pub name: String,
    /// SHA-256 of the user's token, hex ([`crate::hash_token`]).
    pub token_hash: String,
    /// When the room gave out this identity (unknown for identities from before it kept this).
    pub joined_at: Option<Millis>,
    /// When the user's last connection closed.
    pub last_seen: Option<Millis>,
    /// Owner or moderator; `None`: a member. Written only by [`LogEvent::Role`]-style role
    /// writes (a store's user write leaves it as it is, so that a role the operator granted
    /// with the server running is not overwritten by the server's older copy).
    #[serde(default)]
    pub role: Option<Role>,
    /// Until when they are timed out (the room's clock); stored with the rest of them.
    #[serde(default)]
    pub timed_out_until: Option<Millis>,
    /// Their ban, while one is stored (it may have run out: see [`Ban::in_force`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban: Option<Ban>,
}

/// A moderator's ban of one identity, as storage keeps it with the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// When it ends (the room's clock); `None`: when a moderator lifts it.
    #[serde(default)]
    pub until: Option<Millis>,
    /// Why, as the moderator said; told to the banned person.
    #[serde(default)]
    pub reason: Option<String>,
    /// Network addresses (as counted for new identities: IPv6 by its /64) from which no new
    /// identity is given while the ban is in force.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The moderator or owner who banned them.
    pub by: UserId,
}

impl Ban {
    /// Whether it still holds at `now`.
    pub fn in_force(&self, now: Millis) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

/// One event of the room's log as the nodes of a cluster share it: each node applies every
/// event, its own included, in the log's order (the engine's `Room::handle_logged`). Nodes
/// exchange it as JSON (the records' own field names: a format between our nodes, not for
/// clients).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "record", rename_all = "lowercase")]
pub enum LogEvent {
    /// A new message (a call's record too).
    Message(StoredMessage),
    /// A change to a message.
    Change(StoredChange),
    /// A person as they are now: new, renamed, or just seen.
    User(UserRecord),
    /// A person's role, as an owner changed it.
    Role {
        user_id: UserId,
        role: Option<Role>,
        by: UserId,
    },
    /// A moderation event (a report, its resolution, a moderator's action).
    Audit(crate::wire::AuditEntry),
    /// The room's settings, as a moderator set them.
    Settings {
        settings: crate::wire::RoomSettings,
        by: UserId,
    },
}

impl LogEvent {
    /// The event as nodes send it to each other.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// An event another node sent, or why it is not one.
    pub fn from_json(text: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text)
    }
}
