//! Storage: one trait, two drivers (embedded SQLite, MongoDB), one conformance suite
//! (`tests/store_conformance.rs`) that runs against both.

mod mongo;
mod sealed;
mod sqlite;

use std::future::Future;

pub use mongo::MongoStore;
use protocol::search::{SearchPage, SearchQuery};
use protocol::{DirectConversation, RoomSnapshot, Seq, StoredChange, StoredMessage, UserRecord};
pub use sealed::{KEY_FILE, PLAIN, Sealed, key_file_path};
pub use sqlite::{SqliteStore, SyncMode};

use crate::sealing::KeyCheck;

/// One write of a batch. A batch is written in order, as one group commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Insert a new message.
    Message(StoredMessage),
    /// Insert a message of a cluster's shared log, once: one whose seq, or whose author and
    /// nonce, is stored already is skipped, not an error (every node writes every event of
    /// the log, and a node replays the log's tail when it starts).
    LoggedMessage(StoredMessage),
    /// Fold a change (edit or delete) into its stored message ([`StoredChange::apply`]).
    Change(StoredChange),
    /// Insert or replace a user, all but its role (which only `Role` writes: a server's copy
    /// of a person never overwrites a role the operator granted meanwhile).
    User(UserRecord),
    /// Set a known user's role (`None`: a member).
    Role {
        user_id: String,
        role: Option<protocol::Role>,
    },
    /// Replace the room's settings (topic, slow mode).
    Settings(protocol::RoomSettings),
    /// Insert a moderation event (once: a seq stored already is skipped); a resolve also marks
    /// its report resolved.
    Audit(protocol::AuditEntry),
    /// Replace a stored message's text (its markdown, HTML and call record) with the same text
    /// sealed anew ([`Sealed`]'s re-sealing), unless a change was folded in since it was read
    /// (its `changed_seq` is no longer `changed_seq`): then nothing is written.
    Reseal {
        message: StoredMessage,
        changed_seq: Option<Seq>,
    },
    /// Replace a stored moderation event with the same event sealed anew.
    ResealAudit(protocol::AuditEntry),
}

/// The latest moderation events a snapshot carries (the room keeps at most its
/// `audit_kept` of them).
pub const AUDIT_LOADED: usize = 1000;

/// Open reports a snapshot carries at most (the room takes at most its `max_open_reports`).
pub const OPEN_REPORTS_LOADED: usize = 1000;

/// A moderation event's action as the stores name it (the JSON name).
pub fn audit_action(action: protocol::AuditAction) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What went wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite database failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// MongoDB failed.
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// A blocking storage task died.
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A stored document is not what we wrote (a field missing or of the wrong type).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A search ran out of its time ([`Search::timeout`]) and was stopped.
    #[error("the search took longer than {0:?}")]
    TimedOut(std::time::Duration),
    /// Opening the data directory failed.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How much of a batch was written before a failure: writes are applied in order, so the
/// first `written` are durable and the rest are not. A store that writes batches atomically
/// always reports 0.
#[derive(Debug, thiserror::Error)]
#[error("batch failed after {written} writes: {source}")]
pub struct BatchError {
    /// Writes of the batch that are durable.
    pub written: usize,
    /// Why the rest failed.
    pub source: StoreError,
}

/// Turns up to `limit + 1` messages, newest first, into a history page: at most `limit`,
/// oldest first, and whether older ones exist (the extra message says so).
pub(crate) fn history_page(
    mut newest_first: Vec<StoredMessage>,
    limit: u32,
) -> (Vec<StoredMessage>, bool) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let has_more = newest_first.len() > limit;
    newest_first.truncate(limit);
    newest_first.reverse();
    (newest_first, has_more)
}

/// One search, as a store runs it.
#[derive(Debug, Clone)]
pub struct Search {
    /// Whose search: others' direct messages are never read for them.
    pub viewer: Option<String>,
    pub query: SearchQuery,
    /// Only messages with `seq < before` (all when `None`).
    pub before: Option<Seq>,
    /// Results at most (one more is looked for, to know whether there are more).
    pub limit: u32,
    /// Where a store scans (no text index), messages it may look at, at most.
    pub scan: usize,
    /// Stopped with [`StoreError::TimedOut`] past this.
    pub timeout: std::time::Duration,
}

/// A room's durable storage. Every method is keyed by room, so many rooms can share one
/// database; one room is served by one process at a time (seq numbers come from it).
pub trait Store: Send + Sync + 'static {
    /// The latest `recent` messages (oldest first, changes folded in), all users and the
    /// highest seq (of a message or of a change).
    fn load_snapshot(
        &self,
        room: &str,
        recent: usize,
    ) -> impl Future<Output = Result<RoomSnapshot>> + Send;

    /// Writes the batch durably, in order. Messages are never overwritten.
    fn write_batch(
        &self,
        room: &str,
        batch: Vec<Write>,
    ) -> impl Future<Output = std::result::Result<(), BatchError>> + Send;

    /// Up to `limit` messages with `seq < before` that `viewer` may see
    /// ([`StoredMessage::visible_to`]: others' direct messages never leave storage for them),
    /// or, `with` a person, only those of the direct conversation of the two
    /// ([`StoredMessage::in_page_for`]), oldest first, and whether older ones exist.
    fn load_history(
        &self,
        room: &str,
        viewer: Option<&str>,
        with: Option<&str>,
        before: Seq,
        limit: u32,
    ) -> impl Future<Output = Result<(Vec<StoredMessage>, bool)>> + Send;

    /// `viewer`'s direct conversations, the latest first, at most `limit`, each with its
    /// latest message and the other's messages to `viewer` after `since`: exactly
    /// [`protocol::conversations_of`] over the room's messages.
    fn load_conversations(
        &self,
        room: &str,
        viewer: &str,
        since: Seq,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DirectConversation>>> + Send;

    /// A page of the messages `search.viewer` may find with `search.query`
    /// ([`SearchQuery::finds`]: visible to them, not deleted, matching), newest first. A
    /// store's index only proposes: every candidate is checked with that one rule. The work
    /// is bounded (by `scan` where the store scans, and by `timeout` always).
    fn search(&self, room: &str, search: Search)
    -> impl Future<Output = Result<SearchPage>> + Send;

    /// The check value of every data key that sealed some of the room's text
    /// ([`crate::sealing`]), in the order they were saved.
    fn load_key_checks(&self, room: &str) -> impl Future<Output = Result<Vec<KeyCheck>>> + Send;

    /// Keeps a key's check value (once: a key id saved already keeps its first value).
    fn save_key_check(
        &self,
        room: &str,
        check: KeyCheck,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Forgets a key's check value (the key is retired: nothing it sealed is left).
    fn remove_key_check(&self, room: &str, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Up to `limit` of the room's messages with `seq > after`, oldest first, as stored: all
    /// of them, direct messages too (for re-sealing, never for a viewer).
    fn load_messages_after(
        &self,
        room: &str,
        after: Seq,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredMessage>>> + Send;

    /// Up to `limit` of the room's moderation events with `seq > after`, oldest first.
    fn load_audit_after(
        &self,
        room: &str,
        after: Seq,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<protocol::AuditEntry>>> + Send;

    /// After much was rewritten: lets go of what the old versions left in the store's files
    /// where it can (SQLite merges its text index and truncates its WAL; freed pages are
    /// zeroed as they are freed).
    fn compact(&self, room: &str) -> impl Future<Output = Result<()>> + Send;
}

/// A store whose every batch write waits `delay` first: a slow disk, on purpose. Hosts run
/// every store through it (`--store-delay-ms`, 0 by default, when it adds nothing); tests use
/// it to hold echoes back while refusals, which need no storage, go out at once.
#[derive(Debug)]
pub struct Delayed<S> {
    inner: S,
    delay: std::time::Duration,
}

impl<S: Store> Delayed<S> {
    pub fn new(inner: S, delay: std::time::Duration) -> Self {
        Self { inner, delay }
    }
}

impl<S: Store> Store for Delayed<S> {
    async fn load_snapshot(&self, room: &str, recent: usize) -> Result<RoomSnapshot> {
        self.inner.load_snapshot(room, recent).await
    }

    async fn write_batch(
        &self,
        room: &str,
        batch: Vec<Write>,
    ) -> std::result::Result<(), BatchError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.write_batch(room, batch).await
    }

    async fn load_history(
        &self,
        room: &str,
        viewer: Option<&str>,
        with: Option<&str>,
        before: Seq,
        limit: u32,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        self.inner
            .load_history(room, viewer, with, before, limit)
            .await
    }

    async fn load_conversations(
        &self,
        room: &str,
        viewer: &str,
        since: Seq,
        limit: u32,
    ) -> Result<Vec<DirectConversation>> {
        self.inner
            .load_conversations(room, viewer, since, limit)
            .await
    }

    async fn search(&self, room: &str, search: Search) -> Result<SearchPage> {
        self.inner.search(room, search).await
    }

    async fn load_key_checks(&self, room: &str) -> Result<Vec<KeyCheck>> {
        self.inner.load_key_checks(room).await
    }

    async fn save_key_check(&self, room: &str, check: KeyCheck) -> Result<()> {
        self.inner.save_key_check(room, check).await
    }

    async fn remove_key_check(&self, room: &str, id: &str) -> Result<()> {
        self.inner.remove_key_check(room, id).await
    }

    async fn load_messages_after(
        &self,
        room: &str,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        self.inner.load_messages_after(room, after, limit).await
    }

    async fn load_audit_after(
        &self,
        room: &str,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<protocol::AuditEntry>> {
        self.inner.load_audit_after(room, after, limit).await
    }

    async fn compact(&self, room: &str) -> Result<()> {
        self.inner.compact(room).await
    }
}
