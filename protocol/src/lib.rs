//! CAHAT's shared core: the wire protocol, the markdown renderer and the room engine.
//!
//! This crate does no IO and reads no clock: it compiles to native code for the server and to
//! WASM for the browser, and behaves the same in both.
//!
//! # Layout
//! - [`wire`]: the actions clients and servers exchange (`{"type", "payload"}`), legacy v1
//!   fields plus our optional extensions.
//! - [`codec`]: frame text to action, with errors that say what was wrong.
//! - [`error`]: stable error codes for `ERROR` actions, and the decode error.
//! - [`markdown`]: markdown to sanitised HTML, used by server and client alike.
//! - [`stored`]: the room's records as storage keeps them (messages, changes, people) and
//!   the one rule of who may see a message.
//! - [`search`]: search queries and how a message matches one.
//! - [`room`]: the sans-IO room engine ([`Room`]): inputs in, [`Effect`]s out.
//! - [`session`]: the client half, one [`session::Session`] per room a client has open:
//!   inputs in, frames to send and events for the view out.
//! - `testing` (feature `testing`): a room, sessions and storage in memory, with knobs for
//!   slow or failing storage and dropped connections.

pub mod codec;
pub mod error;
pub mod markdown;
pub mod room;
pub mod search;
pub mod session;
pub mod stored;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wire;

pub use codec::{decode_client, decode_server};
pub use error::{DecodeError, ErrorCode};
pub use markdown::{Renderer, render_markdown};
pub use room::{
    Ban, ChangeKind, ConnectionId, DELETED_HTML, DirectConversation, Effect, LogEvent, NameProblem,
    REMOVED_HTML, Room, RoomConfig, RoomSnapshot, Signal, StoredChange, StoredMessage, UserRecord,
    address_key, clean_name, conversations_of, hash_token, may_see,
};
pub use wire::*;
