//! What the engine asks its host to do.

use crate::stored::{StoredChange, StoredMessage, UserRecord};
use crate::wire::{Seq, ServerAction, UserId};

/// A host-chosen handle for one client connection (a socket, a mock tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

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
    /// Send the same action to these connections (a host serialises it once).
    Multicast {
        to: Vec<ConnectionId>,
        action: ServerAction,
    },
    /// Close this connection, after what was sent to it, with this WebSocket close code and
    /// reason (a kick, a ban; at most 123 bytes, as a close frame carries). The host then
    /// reports it gone as for any close.
    Close {
        to: ConnectionId,
        code: u16,
        reason: std::borrow::Cow<'static, str>,
    },
    /// Number this message in the room's log (its `seq` is 0 until then: the host's log
    /// gives the next one) and store it durably, then call [`super::Room::handle_persisted`]
    /// with that seq (or [`super::Room::handle_persist_failed`]). Nobody sees it before that.
    /// Events are numbered and answered in the order of their effects.
    PersistMessage(StoredMessage),
    /// Number and store this change to a stored message (fold it in with
    /// [`StoredChange::apply`]), then answer as for a message.
    PersistChange(StoredChange),
    /// Number and store this moderation event, then answer as for a message.
    PersistAudit(crate::wire::AuditEntry),
    /// Store (insert or replace) this user, all but its role (which only `PersistRole`
    /// writes). Not awaited: the engine already acts on it.
    PersistUser(UserRecord),
    /// Store the room's settings (`by` set them). Not awaited, as for a user.
    PersistSettings {
        settings: crate::wire::RoomSettings,
        by: UserId,
    },
    /// Store this person's role, as `by` (an owner) set it. Not awaited, as for a user.
    PersistRole {
        user_id: UserId,
        role: Option<crate::wire::Role>,
        by: UserId,
    },
    /// Read up to `limit` messages with `seq < before` that `viewer` may see
    /// ([`StoredMessage::visible_to`]) from storage and hand them to
    /// [`super::Room::handle_history_loaded`].
    LoadHistory {
        /// Who asked.
        to: ConnectionId,
        /// Whose history it is: direct messages of others are never read for them.
        viewer: Option<UserId>,
        /// Only the direct conversation of `viewer` with this person
        /// ([`StoredMessage::in_page_for`]).
        with: Option<UserId>,
        /// Exclusive upper bound.
        before: Seq,
        /// How many at most.
        limit: u32,
    },
    /// Find `viewer`'s direct conversations in storage
    /// ([`crate::stored::conversations_of`]: the latest first, at most `limit`, unread counted
    /// after `since`) and hand them to [`super::Room::handle_conversations_loaded`] (nothing
    /// is sent when storage fails: the client goes on with what it has).
    LoadConversations {
        /// Who asked.
        to: ConnectionId,
        viewer: UserId,
        since: Seq,
        limit: u32,
    },
    /// A signal for the people of the room's other nodes (in a cluster, when someone who may
    /// hear it is online through another node): the host sends it to them, never stored; each
    /// hands it to its engine with [`super::Room::handle_relayed`].
    Relay(Signal),
    /// Run this search beside the room (never in the room's own task: a search may take a
    /// while), then hand the page to [`super::Room::handle_search_done`], or say it failed
    /// with [`super::Room::handle_search_failed`].
    Search(SearchTask),
}

/// Something said in the room that is not an event: never stored, never replayed, lost when
/// nobody hears it. Nodes of a cluster pass it to each other as JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Signal {
    /// `user` is typing: in the room, or to `to` directly.
    Typing { user: UserId, to: Option<UserId> },
    /// From a call's home node (its caller's) to the callee `to`, wherever connected: the
    /// ring, the caller's signals, the end.
    Call {
        to: UserId,
        signal: crate::wire::CallSignal,
    },
    /// From the node where the callee is to the home of `caller`'s call: the callee's
    /// accept, decline, hang-up and signals.
    CallBack {
        caller: UserId,
        signal: crate::wire::CallSignal,
    },
    /// A moderator kicked `user`: every node closes their connections, saying why.
    Kick {
        user: UserId,
        reason: Option<String>,
    },
}

/// A search a connection asked for, as the host runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTask {
    /// Who asked.
    pub to: ConnectionId,
    /// Whose search it is: others' direct messages are never found for them.
    pub viewer: Option<UserId>,
    /// The checked query.
    pub query: crate::search::SearchQuery,
    /// The query as asked (echoed in the results).
    pub asked: String,
    /// Only messages with `seq < before`; all when `None`.
    pub before: Option<Seq>,
    /// The asker's nonce.
    pub nonce: Option<String>,
    /// Results per page, at most.
    pub limit: u32,
    /// Messages a store without a text index may look at for one page, at most
    /// ([`super::RoomConfig::search_scan`]); past that, the page says where to go on.
    pub scan: usize,
}
