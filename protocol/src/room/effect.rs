//! What the engine asks its host to do, and the records it asks it to store.

use crate::wire::{MessageRecord, Millis, Seq, ServerAction, UserId};

/// A host-chosen handle for one client connection (a socket, a mock tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// One message as storage keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

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
        }
    }
}

/// One user as storage keeps it. The token itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Stable id.
    pub id: UserId,
    /// Current name.
    pub name: String,
    /// SHA-256 of the user's token, hex ([`crate::hash_token`]).
    pub token_hash: String,
}

/// An instruction from the engine to its host. Hosts carry effects out in the order they
/// are polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send to one connection.
    Send {
        /// The connection.
        to: ConnectionId,
        /// What to send.
        action: ServerAction,
    },
    /// Send to every open connection of the room (the sender included).
    Broadcast(ServerAction),
    /// Store this message durably, then call [`super::Room::handle_persisted`] (or
    /// [`super::Room::handle_persist_failed`]). Nobody sees it before that.
    PersistMessage(StoredMessage),
    /// Store (insert or replace) this user. Not awaited: the engine already acts on it.
    PersistUser(UserRecord),
    /// Read up to `limit` messages with `seq < before` from storage and hand them to
    /// [`super::Room::handle_history_loaded`].
    LoadHistory {
        /// Who asked.
        to: ConnectionId,
        /// Exclusive upper bound.
        before: Seq,
        /// How many at most.
        limit: u32,
    },
}
