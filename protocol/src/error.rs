//! Errors that reach a client: stable codes on the wire, and the decoder's error type.

use serde::{Deserialize, Serialize};

/// Stable, machine-readable reason in an `ERROR` action. Codes are never renamed; new ones may
/// be added, so a client treats an unknown code as a generic failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The frame is not JSON, or not a JSON object.
    InvalidJson,
    /// The frame has no `type`, or a `type` this server does not know.
    UnknownType,
    /// The payload is missing or has fields of the wrong type.
    InvalidPayload,
    /// The frame is larger than the server accepts.
    FrameTooLarge,
    /// A frame arrived that is not text (binary WebSocket frames are not part of the protocol).
    BinaryFrame,
    /// The action needs an identity: send `HANDSHAKE_USER_INFO` first.
    NotIdentified,
    /// `HANDSHAKE_USER_INFO` was already accepted on this connection.
    AlreadyIdentified,
    /// A known user id was claimed without its token (or with a wrong one); a new identity
    /// was issued instead.
    IdentityRejected,
    /// The payload's `userId` is not the identity bound to this connection.
    UserMismatch,
    /// The message is empty (or only white space).
    EmptyMessage,
    /// The message is longer than the room allows.
    MessageTooLong,
    /// The nonce is empty or too long.
    InvalidNonce,
    /// The name is empty, too long, or contains control characters.
    InvalidName,
    /// Too many actions in too short a time; the action was dropped.
    RateLimited,
    /// A history request was malformed (for example `limit` 0).
    InvalidHistoryRequest,
    /// The room could not store the message; it was not delivered to anyone.
    StorageFailed,
    /// The message renders to more HTML than the room allows for its length (deeply nested
    /// quotes or lists, for example); it was not stored.
    MessageTooComplex,
    /// Too many new identities were asked for from this network address lately; try again
    /// later, or identify with the id and token you already have.
    TooManyIdentities,
    /// Older history could not be read from storage (no message is affected); try again.
    HistoryFailed,
    /// The message to change is not among the room's recent messages (or is not one the
    /// sender may see).
    UnknownMessage,
    /// Only its author may edit or delete a message.
    NotYourMessage,
    /// Not an emoji this room takes as a reaction (one of the renderer's table).
    UnknownEmoji,
    /// The message already has as many different reactions as a message may have.
    TooManyReactions,
    /// The person a direct message is for is not known in this room (or is the sender), or
    /// the sender's client cannot show direct messages (a v1 client).
    UnknownUser,
    /// A search was refused: no word to search for, or too long (the message says which).
    InvalidSearch,
    /// A search could not be answered (storage failed, or it took longer than the room
    /// allows); nothing else is affected. Try again, or with other words.
    SearchFailed,
    /// A call signal was refused: no such call of yours, the wrong step for where the call
    /// is, or too large (the message says which).
    InvalidCall,
    /// The person called is in another call, or so are you.
    CallBusy,
    /// The person called has no connection here that can take a call.
    Unavailable,
    /// The message was deleted (perhaps a moment ago, by a delete not yet stored): it takes
    /// no edit, reaction or second delete.
    MessageDeleted,
    /// The message is a record the room wrote (a call's): nobody edits, deletes or reacts to
    /// it.
    Unchangeable,
    /// The asker's role does not allow it (making moderators takes an owner; an owner's role
    /// is the operator's to change; a moderator acts only on those they outrank).
    NotAllowed,
    /// The asker is timed out: they can read, not write or react, until the time-out ends.
    TimedOut,
    /// A moderation action that cannot be (a time-out of no minutes, or over a week; a
    /// topic or a slow mode over its bound).
    InvalidModeration,
    /// Slow mode: the asker wrote a room message less than the room's interval ago.
    SlowMode,
    /// The identity is banned from the room, or a new identity was asked for from a banned
    /// network address: the connection is closed after this.
    Banned,
    /// A report that cannot be taken: not a room message here, no reason or too long a one,
    /// or too many open reports (the asker's, or the room's).
    InvalidReport,
}

/// Why a frame could not be decoded into an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON that is not an object.
    #[error("frame is not a JSON object: {0}")]
    InvalidJson(String),
    /// `type` is missing or names no action we know.
    #[error("unknown action type {0:?}")]
    UnknownType(String),
    /// `payload` is missing or malformed for its type.
    #[error("invalid payload for {kind}: {detail}")]
    InvalidPayload {
        /// The action's type.
        kind: String,
        /// What serde said.
        detail: String,
    },
}

impl DecodeError {
    /// The code sent back to the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::InvalidJson(_) => ErrorCode::InvalidJson,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
            DecodeError::InvalidPayload { .. } => ErrorCode::InvalidPayload,
        }
    }
}

/// Result with [`DecodeError`] as its default error.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;
