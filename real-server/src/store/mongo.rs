//! The MongoDB store, on the official driver.
//!
//! Schema: one document per message in `messages` (room, seq, id, userId, raw, html,
//! timestamp, nonce, dedup; and editedAt, deleted, changedSeq, reactions once changed: a change is folded
//! into its message's document with `$set`) with unique indexes on (room, seq) and (room, userId, dedup);
//! one document per user in `users` (room, id, name, tokenHash: a SHA-256, never the token).
//! `dedup` is the nonce, or the message id when there is none, so the unique index needs no
//! partial filter. No document grows without bound. Writes are ordered and not transactional
//! (a standalone `mongod` has no transactions): a failure reports how many writes landed.
//!
//! Search: a text index on (room, raw) where the server has text indexes (MongoDB does), with
//! no language (no stemming): it proposes messages with any of the words, and the rule of
//! `protocol::search` keeps those where every word starts a word, so there a word must be a
//! whole word of the message (`hello` finds "Hello!", `hel` does not). Where the server has no
//! text index (the test server), a search scans instead: a case-insensitive regular
//! expression per word over at most `scan` seqs below `before`, newest first, and the page
//! says where to go on; there the word may be the start of a word, as in SQLite.

use futures_util::TryStreamExt;
use mongodb::bson::doc;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, IndexModel};
use protocol::{DirectConversation, RoomSnapshot, Seq, StoredChange, StoredMessage, UserRecord};
use serde::{Deserialize, Serialize};

use protocol::search::{SearchPage, search_newest_first};

use super::{BatchError, Result, Search, Store, StoreError, Write, history_page};
use crate::sealing::KeyCheck;

/// MongoDB's error code for a write that breaks a unique index.
const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageDoc {
    room: String,
    seq: i64,
    id: String,
    user_id: String,
    raw: String,
    html: String,
    timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    dedup: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edited_at: Option<i64>,
    #[serde(default)]
    deleted: bool,
    /// Deleted by a moderator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    removed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changed_seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reactions: Vec<protocol::Reaction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<i64>,
    /// The recipient of a direct message; absent on room messages (queries rely on that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    /// The record of a call (a direct message from the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call: Option<protocol::CallRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserDoc {
    room: String,
    id: String,
    name: String,
    token_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    joined_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_seen: Option<i64>,
    /// Owner or moderator; written only by a role write (a user write `$set`s the rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<protocol::Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timed_out_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ban: Option<protocol::Ban>,
}

impl MessageDoc {
    fn new(room: &str, m: StoredMessage) -> Self {
        Self {
            room: room.to_owned(),
            seq: i64::try_from(m.seq).unwrap_or(i64::MAX),
            dedup: m.nonce.clone().unwrap_or_else(|| m.id.clone()),
            id: m.id,
            user_id: m.user_id,
            raw: m.raw,
            html: m.html,
            timestamp: m.timestamp,
            nonce: m.nonce,
            edited_at: m.edited_at,
            deleted: m.deleted,
            removed: m.removed,
            changed_seq: m.changed_seq.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
            reactions: m.reactions,
            reply_to: m.reply_to.map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
            to: m.to,
            call: m.call,
        }
    }

    fn into_message(self) -> Result<StoredMessage> {
        Ok(StoredMessage {
            seq: u64::try_from(self.seq)
                .map_err(|_| StoreError::Corrupt(format!("negative seq {}", self.seq)))?,
            id: self.id,
            user_id: self.user_id,
            raw: self.raw,
            html: self.html,
            timestamp: self.timestamp,
            nonce: self.nonce,
            edited_at: self.edited_at,
            deleted: self.deleted,
            removed: self.removed,
            changed_seq: self.changed_seq.and_then(|c| u64::try_from(c).ok()),
            reactions: self.reactions,
            reply_to: self.reply_to.and_then(|r| u64::try_from(r).ok()),
            to: self.to,
            call: self.call,
        })
    }
}

/// MongoDB store. Cloning shares the client's connection pool.
#[derive(Debug, Clone)]
pub struct MongoStore {
    messages: Collection<MessageDoc>,
    users: Collection<UserDoc>,
    /// One document per room: its settings (topic, slow mode).
    rooms: Collection<mongodb::bson::Document>,
    /// The moderation log: one document per event (`room`, `seq`, `action`, `resolved`,
    /// `entry`).
    audit: Collection<mongodb::bson::Document>,
    /// The check value of each data key that sealed text of a room (`room`, `id`, `check`,
    /// `saved`), never the key itself.
    data_keys: Collection<mongodb::bson::Document>,
    /// The server took the text index: searches use it; otherwise they scan.
    text_index: bool,
}

/// A unique index on `keys`.
fn unique_index(keys: mongodb::bson::Document) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().unique(true).build())
        .build()
}

impl MongoStore {
    /// Connects to `uri`, uses database `database`, and creates the indexes.
    pub async fn connect(uri: &str, database: &str) -> Result<Self> {
        let client = Client::with_uri_str(uri).await?;
        let db = client.database(database);
        let mut store = Self {
            messages: db.collection("messages"),
            users: db.collection("users"),
            rooms: db.collection("rooms"),
            audit: db.collection("audit"),
            data_keys: db.collection("dataKeys"),
            text_index: false,
        };
        store
            .messages
            .create_index(unique_index(doc! { "room": 1, "seq": 1 }))
            .await?;
        store
            .messages
            .create_index(unique_index(doc! { "room": 1, "userId": 1, "dedup": 1 }))
            .await?;
        // A person's direct conversations: the messages to them (those from them use the
        // index above, whose first fields are room and author).
        store
            .messages
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "room": 1, "to": 1, "seq": -1 })
                    .build(),
            )
            .await?;
        store
            .data_keys
            .create_index(unique_index(doc! { "room": 1, "id": 1 }))
            .await?;
        store
            .audit
            .create_index(unique_index(doc! { "room": 1, "seq": 1 }))
            .await?;
        store
            .users
            .create_index(unique_index(doc! { "room": 1, "id": 1 }))
            .await?;
        let text = IndexModel::builder()
            .keys(doc! { "room": 1, "raw": "text" })
            .options(
                IndexOptions::builder()
                    .name("search_text".to_owned())
                    .default_language("none".to_owned())
                    .build(),
            )
            .build();
        store.text_index = match store.messages.create_index(text).await {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(%error, "this MongoDB has no text index: searches scan, bounded");
                false
            }
        };
        Ok(store)
    }

    /// Writes a person (all but their role), a role, or the room's settings.
    async fn write_record(&self, room: &str, write: Write) -> Result<()> {
        match write {
            Write::User(u) => {
                let filter = doc! { "room": room, "id": &u.id };
                // Every field but the role: a role is only a role write's to change.
                let mut set = doc! { "name": u.name, "tokenHash": u.token_hash };
                if let Some(at) = u.joined_at {
                    set.insert("joinedAt", at);
                }
                if let Some(at) = u.last_seen {
                    set.insert("lastSeen", at);
                }
                let mut unset = doc! {};
                match u.timed_out_until {
                    Some(until) => set.insert("timedOutUntil", until),
                    None => unset.insert("timedOutUntil", ""),
                };
                match &u.ban {
                    Some(ban) => {
                        let ban = mongodb::bson::to_document(ban)
                            .map_err(|e| StoreError::Corrupt(format!("ban: {e}")))?;
                        set.insert("ban", ban)
                    }
                    None => unset.insert("ban", ""),
                };
                let update = if unset.is_empty() {
                    doc! { "$set": set }
                } else {
                    doc! { "$set": set, "$unset": unset }
                };
                self.users.update_one(filter, update).upsert(true).await?;
            }
            Write::Settings(settings) => {
                let settings = mongodb::bson::to_document(&settings)
                    .map_err(|e| StoreError::Corrupt(format!("room settings: {e}")))?;
                self.rooms
                    .update_one(
                        doc! { "room": room },
                        doc! { "$set": { "settings": settings } },
                    )
                    .upsert(true)
                    .await?;
            }
            Write::Role { user_id, role } => {
                let filter = doc! { "room": room, "id": &user_id };
                let update = match role {
                    Some(role) => {
                        let role = mongodb::bson::to_bson(&role)
                            .map_err(|e| StoreError::Corrupt(format!("role: {e}")))?;
                        doc! { "$set": { "role": role } }
                    }
                    None => doc! { "$unset": { "role": "" } },
                };
                self.users.update_one(filter, update).await?;
            }
            Write::ResealAudit(entry) => {
                let seq = i64::try_from(entry.seq).unwrap_or(i64::MAX);
                let stored = mongodb::bson::to_document(&entry)
                    .map_err(|e| StoreError::Corrupt(format!("moderation log: {e}")))?;
                self.audit
                    .update_one(
                        doc! { "room": room, "seq": seq },
                        doc! { "$set": { "entry": stored } },
                    )
                    .await?;
            }
            Write::Audit(entry) => {
                let seq = i64::try_from(entry.seq).unwrap_or(i64::MAX);
                let stored = mongodb::bson::to_document(&entry)
                    .map_err(|e| StoreError::Corrupt(format!("moderation log: {e}")))?;
                let fields = doc! {
                    "action": super::audit_action(entry.action),
                    "resolved": false,
                    "entry": stored,
                };
                // Once: a node writing an event of the shared log again changes nothing.
                self.audit
                    .update_one(
                        doc! { "room": room, "seq": seq },
                        doc! { "$setOnInsert": fields },
                    )
                    .upsert(true)
                    .await?;
                if let Some(report) = entry.report {
                    let report = i64::try_from(report).unwrap_or(i64::MAX);
                    self.audit
                        .update_one(
                            doc! { "room": room, "seq": report },
                            doc! { "$set": { "resolved": true } },
                        )
                        .await?;
                }
            }
            // Messages and changes are written by `write_batch` itself.
            Write::Message(_)
            | Write::LoggedMessage(_)
            | Write::Change(_)
            | Write::Reseal { .. } => {}
        }
        Ok(())
    }

    /// Moderation events matching `filter`, by seq (`order` 1: oldest first, -1: newest),
    /// at most `limit`.
    async fn audit_entries(
        &self,
        filter: mongodb::bson::Document,
        order: i32,
        limit: usize,
    ) -> Result<Vec<protocol::AuditEntry>> {
        let docs: Vec<mongodb::bson::Document> = self
            .audit
            .find(filter)
            .sort(doc! { "seq": order })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await?
            .try_collect()
            .await?;
        docs.into_iter()
            .map(|d| {
                let entry = d
                    .get_document("entry")
                    .map_err(|e| StoreError::Corrupt(format!("moderation log: {e}")))?;
                mongodb::bson::from_document(entry.clone())
                    .map_err(|e| StoreError::Corrupt(format!("moderation log: {e}")))
            })
            .collect()
    }

    /// Folds a change into its stored message (read, [`StoredChange::apply`], write back the
    /// changed fields). A change to a message storage does not have changes nothing. The
    /// write lands only if no later change was folded in meanwhile (nodes of a cluster fold
    /// the same changes into one database, each in the log's order): what is stored only
    /// moves forward.
    async fn apply_change(&self, room: &str, change: &StoredChange) -> Result<()> {
        let target = i64::try_from(change.target).unwrap_or(i64::MAX);
        let filter = doc! { "room": room, "seq": target };
        let Some(stored) = self.messages.find_one(filter.clone()).await? else {
            return Ok(());
        };
        let mut message = stored.into_message()?;
        change.apply(&mut message);
        let changed = MessageDoc::new(room, message);
        let reactions = mongodb::bson::to_bson(&changed.reactions)
            .map_err(|e| StoreError::Corrupt(format!("reactions: {e}")))?;
        let mut set = doc! {
            "raw": changed.raw,
            "html": changed.html,
            "deleted": changed.deleted,
            "removed": changed.removed,
            "reactions": reactions,
        };
        if let Some(at) = changed.edited_at {
            set.insert("editedAt", at);
        }
        if let Some(seq) = changed.changed_seq {
            set.insert("changedSeq", seq);
        }
        let seq = i64::try_from(change.seq).unwrap_or(i64::MAX);
        let mut filter = filter;
        filter.insert(
            "$or",
            vec![
                doc! { "changedSeq": { "$exists": false } },
                doc! { "changedSeq": null },
                doc! { "changedSeq": { "$lt": seq } },
            ],
        );
        self.messages
            .update_one(filter, doc! { "$set": set })
            .await?;
        Ok(())
    }

    /// Replaces a message's text with the same text sealed anew, unless a change was folded
    /// in since it was read.
    async fn reseal(
        &self,
        room: &str,
        message: StoredMessage,
        changed_seq: Option<Seq>,
    ) -> Result<()> {
        let seq = i64::try_from(message.seq).unwrap_or(i64::MAX);
        let mut filter = doc! { "room": room, "seq": seq };
        match changed_seq {
            Some(changed) => {
                filter.insert("changedSeq", i64::try_from(changed).unwrap_or(i64::MAX));
            }
            None => {
                filter.insert(
                    "$or",
                    vec![
                        doc! { "changedSeq": { "$exists": false } },
                        doc! { "changedSeq": null },
                    ],
                );
            }
        }
        let mut set = doc! { "raw": message.raw, "html": message.html };
        let mut update = doc! {};
        match message.call {
            Some(call) => {
                let call = mongodb::bson::to_bson(&call)
                    .map_err(|e| StoreError::Corrupt(format!("call: {e}")))?;
                set.insert("call", call);
            }
            None => {
                update.insert("$unset", doc! { "call": "" });
            }
        }
        update.insert("$set", set);
        self.messages.update_one(filter, update).await?;
        Ok(())
    }

    /// Inserts the messages collected so far (writes are applied in order: a message, then
    /// what changes it) and counts what landed.
    async fn flush_run(
        &self,
        run: &mut Vec<MessageDoc>,
        written: &mut usize,
    ) -> std::result::Result<(), BatchError> {
        let count = run.len();
        self.insert_messages(std::mem::take(run))
            .await
            .map_err(|(landed, source)| BatchError {
                written: *written + landed,
                source,
            })?;
        *written += count;
        Ok(())
    }

    /// Inserts a message of the shared log unless its seq, or its author and nonce, is stored
    /// already (a duplicate key: another node wrote it, or this one before a restart).
    async fn insert_once(&self, doc: MessageDoc) -> Result<()> {
        match self.messages.insert_one(doc).await {
            Ok(_) => Ok(()),
            Err(err) => match err.kind.as_ref() {
                ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY => Ok(()),
                _ => Err(StoreError::Mongo(err)),
            },
        }
    }

    async fn insert_messages(&self, docs: Vec<MessageDoc>) -> Result<(), (usize, StoreError)> {
        if docs.is_empty() {
            return Ok(());
        }
        match self.messages.insert_many(docs).ordered(true).await {
            Ok(_) => Ok(()),
            Err(err) => {
                let landed = match err.kind.as_ref() {
                    ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
                        failure
                            .write_errors
                            .as_ref()
                            .and_then(|errors| errors.iter().map(|e| e.index).min())
                            .unwrap_or(0)
                    }
                    _ => 0,
                };
                Err((landed, StoreError::Mongo(err)))
            }
        }
    }
}

impl Store for MongoStore {
    async fn load_snapshot(&self, room: &str, recent: usize) -> Result<RoomSnapshot> {
        let limit = i64::try_from(recent).unwrap_or(i64::MAX);
        let docs: Vec<MessageDoc> = self
            .messages
            .find(doc! { "room": room })
            .sort(doc! { "seq": -1 })
            .limit(limit)
            .await?
            .try_collect()
            .await?;
        let mut messages = docs
            .into_iter()
            .map(MessageDoc::into_message)
            .collect::<Result<Vec<_>>>()?;
        messages.reverse();
        let oldest = messages
            .first()
            .map_or(i64::MAX, |m| i64::try_from(m.seq).unwrap_or(0));
        let older = self
            .messages
            .find_one(doc! { "room": room, "seq": { "$lt": oldest } })
            .await?;
        let users: Vec<UserDoc> = self
            .users
            .find(doc! { "room": room })
            .await?
            .try_collect()
            .await?;
        // A change has a seq of its own, above its message's: the latest may be either.
        let latest_change = self
            .messages
            .find_one(doc! { "room": room, "changedSeq": { "$exists": true } })
            .sort(doc! { "changedSeq": -1 })
            .await?
            .and_then(|d| d.changed_seq)
            .and_then(|c| u64::try_from(c).ok())
            .unwrap_or(0);
        let settings = match self.rooms.find_one(doc! { "room": room }).await? {
            Some(found) => {
                let settings = found
                    .get_document("settings")
                    .map_err(|e| StoreError::Corrupt(format!("room settings: {e}")))?;
                mongodb::bson::from_document(settings.clone())
                    .map_err(|e| StoreError::Corrupt(format!("room settings: {e}")))?
            }
            None => protocol::RoomSettings::default(),
        };
        let mut audit = self
            .audit_entries(doc! { "room": room }, -1, super::AUDIT_LOADED)
            .await?;
        audit.reverse();
        let open_reports = self
            .audit_entries(
                doc! { "room": room, "action": "report", "resolved": false },
                1,
                super::OPEN_REPORTS_LOADED,
            )
            .await?;
        let latest_audit = audit.last().map_or(0, |e| e.seq);
        Ok(RoomSnapshot {
            latest_seq: messages
                .last()
                .map_or(0, |m| m.seq)
                .max(latest_change)
                .max(latest_audit),
            complete: older.is_none(),
            settings,
            audit,
            open_reports,
            messages,
            users: users
                .into_iter()
                .map(|u| UserRecord {
                    id: u.id,
                    name: u.name,
                    token_hash: u.token_hash,
                    joined_at: u.joined_at,
                    last_seen: u.last_seen,
                    role: u.role,
                    timed_out_until: u.timed_out_until,
                    ban: u.ban,
                })
                .collect(),
        })
    }

    async fn write_batch(&self, room: &str, batch: Vec<Write>) -> Result<(), BatchError> {
        let mut written = 0;
        let mut run: Vec<MessageDoc> = Vec::new();
        for write in batch {
            match write {
                Write::Message(m) => run.push(MessageDoc::new(room, m)),
                Write::LoggedMessage(m) => {
                    self.flush_run(&mut run, &mut written).await?;
                    self.insert_once(MessageDoc::new(room, m))
                        .await
                        .map_err(|source| BatchError { written, source })?;
                    written += 1;
                }
                Write::Reseal {
                    message,
                    changed_seq,
                } => {
                    self.flush_run(&mut run, &mut written).await?;
                    self.reseal(room, message, changed_seq)
                        .await
                        .map_err(|source| BatchError { written, source })?;
                    written += 1;
                }
                Write::Change(c) => {
                    self.flush_run(&mut run, &mut written).await?;
                    self.apply_change(room, &c)
                        .await
                        .map_err(|source| BatchError { written, source })?;
                    written += 1;
                }
                record => {
                    // A person, their role, or the room's settings: one update each.
                    self.flush_run(&mut run, &mut written).await?;
                    self.write_record(room, record)
                        .await
                        .map_err(|source| BatchError { written, source })?;
                    written += 1;
                }
            }
        }
        self.insert_messages(run)
            .await
            .map_err(|(landed, source)| BatchError {
                written: written + landed,
                source,
            })
    }

    async fn load_history(
        &self,
        room: &str,
        viewer: Option<&str>,
        with: Option<&str>,
        before: Seq,
        limit: u32,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let mut filter = doc! { "room": room, "seq": { "$lt": before } };
        filter.extend(visible_to(viewer));
        match (with, viewer) {
            (None, _) => {}
            // One conversation: the two people's messages to each other.
            (Some(with), Some(viewer)) => {
                filter.insert(
                    "$and",
                    vec![doc! { "$or": [
                        { "userId": viewer, "to": with },
                        { "userId": with, "to": viewer },
                    ] }],
                );
            }
            (Some(_), None) => return Ok((Vec::new(), false)),
        }
        let docs: Vec<MessageDoc> = self
            .messages
            .find(filter)
            .sort(doc! { "seq": -1 })
            .limit(i64::from(limit) + 1)
            .await?
            .try_collect()
            .await?;
        let newest_first = docs
            .into_iter()
            .map(MessageDoc::into_message)
            .collect::<Result<Vec<_>>>()?;
        Ok(history_page(newest_first, limit))
    }

    async fn load_conversations(
        &self,
        room: &str,
        viewer: &str,
        since: Seq,
        limit: u32,
    ) -> Result<Vec<DirectConversation>> {
        // The person's direct messages, the newest first, read for who they are with: the
        // first seen of each person is the latest; unread ones are all newer than `since`,
        // so the walk ends once past it with `limit` people found.
        let filter = doc! { "room": room, "$or": [
            { "userId": viewer, "to": { "$exists": true } },
            { "to": viewer },
        ] };
        let mut cursor = self
            .messages
            .clone_with_type::<mongodb::bson::Document>()
            .find(filter)
            .projection(doc! { "seq": 1, "userId": 1, "to": 1, "deleted": 1 })
            .sort(doc! { "seq": -1 })
            .await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        let mut latest: Vec<(String, i64, u32)> = Vec::new();
        while let Some(found) = cursor.try_next().await? {
            let field = |name: &str| {
                found
                    .get_str(name)
                    .map(str::to_owned)
                    .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
            };
            let seq = found
                .get_i64("seq")
                .map_err(|e| StoreError::Corrupt(format!("seq: {e}")))?;
            if seq <= since && latest.len() >= limit {
                break;
            }
            let author = field("userId")?;
            let peer = if author == viewer {
                field("to")?
            } else {
                author.clone()
            };
            // Their messages to the person, newer than `since`, not deleted.
            let unread = u32::from(
                seq > since && author == peer && !found.get_bool("deleted").unwrap_or(false),
            );
            match latest.iter_mut().find(|(p, _, _)| *p == peer) {
                Some(entry) => entry.2 += unread,
                None => latest.push((peer, seq, unread)),
            }
        }
        latest.truncate(limit);
        let seqs: Vec<i64> = latest.iter().map(|(_, seq, _)| *seq).collect();
        let docs: Vec<MessageDoc> = self
            .messages
            .find(doc! { "room": room, "seq": { "$in": seqs } })
            .await?
            .try_collect()
            .await?;
        let mut messages = docs
            .into_iter()
            .map(MessageDoc::into_message)
            .collect::<Result<Vec<_>>>()?;
        let mut found = Vec::with_capacity(latest.len());
        for (with, seq, unread) in latest {
            let at = messages
                .iter()
                .position(|m| i64::try_from(m.seq).ok() == Some(seq))
                .ok_or_else(|| StoreError::Corrupt(format!("message {seq} went missing")))?;
            found.push(DirectConversation {
                with,
                last: messages.swap_remove(at),
                unread,
            });
        }
        Ok(found)
    }

    async fn load_key_checks(&self, room: &str) -> Result<Vec<KeyCheck>> {
        let mut cursor = self
            .data_keys
            .find(doc! { "room": room })
            .sort(doc! { "saved": 1 })
            .await?;
        let mut checks = Vec::new();
        while let Some(document) = cursor.try_next().await? {
            let field = |name: &str| {
                document
                    .get_str(name)
                    .map(str::to_owned)
                    .map_err(|e| StoreError::Corrupt(format!("data key {name}: {e}")))
            };
            checks.push(KeyCheck {
                id: field("id")?,
                check: field("check")?,
            });
        }
        Ok(checks)
    }

    async fn save_key_check(&self, room: &str, check: KeyCheck) -> Result<()> {
        let saved = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros()),
        )
        .unwrap_or(i64::MAX);
        let saving = self
            .data_keys
            .update_one(
                doc! { "room": room, "id": &check.id },
                doc! { "$setOnInsert": { "check": &check.check, "saved": saved } },
            )
            .upsert(true)
            .await;
        match saving {
            Ok(_) => Ok(()),
            // Another node saved it at the same moment: the first value stays.
            Err(e) if matches!(&*e.kind, ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn remove_key_check(&self, room: &str, id: &str) -> Result<()> {
        self.data_keys
            .delete_one(doc! { "room": room, "id": id })
            .await?;
        Ok(())
    }

    async fn load_messages_after(
        &self,
        room: &str,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let docs: Vec<MessageDoc> = self
            .messages
            .find(doc! { "room": room, "seq": { "$gt": after } })
            .sort(doc! { "seq": 1 })
            .limit(i64::from(limit))
            .await?
            .try_collect()
            .await?;
        docs.into_iter().map(MessageDoc::into_message).collect()
    }

    async fn load_audit_after(
        &self,
        room: &str,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<protocol::AuditEntry>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.audit_entries(
            doc! { "room": room, "seq": { "$gt": after } },
            1,
            usize::try_from(limit).unwrap_or(usize::MAX),
        )
        .await
    }

    async fn compact(&self, _room: &str) -> Result<()> {
        // What WiredTiger's files still hold of replaced documents is its own to reuse.
        Ok(())
    }

    async fn search(&self, room: &str, search: Search) -> Result<SearchPage> {
        let timeout = search.timeout;
        tokio::time::timeout(timeout, self.run_search(room, search))
            .await
            .map_err(|_| StoreError::TimedOut(timeout))?
    }
}

impl MongoStore {
    async fn run_search(&self, room: &str, search: Search) -> Result<SearchPage> {
        let latest = || async {
            let newest = self
                .messages
                .find_one(doc! { "room": room })
                .sort(doc! { "seq": -1 })
                .await?;
            Ok::<_, StoreError>(newest.map_or(0, |m| m.seq.saturating_add(1)))
        };
        let before = match search.before {
            Some(before) => i64::try_from(before).unwrap_or(i64::MAX),
            None if self.text_index => i64::MAX,
            None => latest().await?,
        };
        let mut filter = doc! { "room": room, "deleted": { "$ne": true } };
        filter.extend(visible_to(search.viewer.as_deref()));
        // A scan looks at `scan` seqs at most, from `before` down; the page then says where
        // to go on.
        let scan = i64::try_from(search.scan).unwrap_or(i64::MAX);
        let floor = if self.text_index {
            filter.insert("$text", doc! { "$search": search.query.words().join(" ") });
            filter.insert("seq", doc! { "$lt": before });
            None
        } else {
            let floor = before.saturating_sub(scan).max(0);
            let words: Vec<_> = search
                .query
                .words()
                .iter()
                .map(|w| doc! { "raw": { "$regex": w.as_str(), "$options": "i" } })
                .collect();
            filter.insert("$and", words);
            filter.insert("seq", doc! { "$lt": before, "$gte": floor });
            Some(floor)
        };
        let limit = usize::try_from(search.limit).unwrap_or(usize::MAX);
        let docs: Vec<MessageDoc> = self
            .messages
            .find(filter)
            .sort(doc! { "seq": -1 })
            .max_time(search.timeout)
            .limit(i64::try_from(limit.saturating_mul(4).max(limit + 1)).unwrap_or(i64::MAX))
            .await?
            .try_collect()
            .await?;
        let fetched = docs.len();
        let messages = docs
            .into_iter()
            .map(MessageDoc::into_message)
            .collect::<Result<Vec<_>>>()?;
        let mut page = search_newest_first(
            &messages,
            &search.query,
            search.viewer.as_deref(),
            limit,
            usize::MAX,
        );
        if page.next.is_none() {
            let cut = limit.saturating_mul(4).max(limit + 1);
            page.next = if fetched == cut {
                // The candidates ran out before the page filled: go on below the last one.
                messages.last().map(|m| m.seq)
            } else {
                floor.filter(|f| *f > 1).and_then(|f| u64::try_from(f).ok())
            };
        }
        Ok(page)
    }
}

/// The privacy rule ([`protocol::may_see`]) as a MongoDB filter, the one place this store
/// says it: room messages have no `to`; a viewer also sees the direct messages they wrote or
/// were sent.
fn visible_to(viewer: Option<&str>) -> mongodb::bson::Document {
    match viewer {
        None => doc! { "to": { "$exists": false } },
        Some(viewer) => doc! { "$or": [
            { "to": { "$exists": false } },
            { "userId": viewer },
            { "to": viewer },
        ] },
    }
}
