//! The embedded default store: SQLite (bundled) in WAL mode with `synchronous = FULL`, so a
//! committed batch survives a crash of the process or the machine.

use std::path::Path;
use std::sync::{Arc, Mutex};

use protocol::{DirectConversation, RoomSnapshot, Seq, StoredMessage, UserRecord};
use rusqlite::{Connection, OptionalExtension, params};

use protocol::search::{SearchPage, SearchQuery, search_newest_first};

use super::{BatchError, Result, Search, Store, StoreError, Write, history_page};
use crate::sealing::KeyCheck;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    raw TEXT NOT NULL,
    html TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    nonce TEXT,
    edited_at INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0,
    changed_seq INTEGER,
    reactions TEXT,
    reply_to INTEGER,
    dm_to TEXT,
    call TEXT,
    removed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_nonce ON messages (room, user_id, nonce)
    WHERE nonce IS NOT NULL;
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    settings TEXT NOT NULL
) WITHOUT ROWID;
-- The moderation log: one row per event (its entry as JSON), reports marked once resolved.
CREATE TABLE IF NOT EXISTS audit (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    action TEXT NOT NULL,
    resolved INTEGER NOT NULL DEFAULT 0,
    entry TEXT NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
-- The check value of each data key that sealed text of the room (never the key itself).
CREATE TABLE IF NOT EXISTS data_keys (
    room TEXT NOT NULL,
    id TEXT NOT NULL,
    check_value TEXT NOT NULL,
    saved INTEGER PRIMARY KEY AUTOINCREMENT,
    UNIQUE (room, id)
);
CREATE TABLE IF NOT EXISTS users (
    room TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    joined_at INTEGER,
    last_seen INTEGER,
    role TEXT,
    timed_out_until INTEGER,
    ban TEXT,
    PRIMARY KEY (room, id)
) WITHOUT ROWID;
-- Full-text search: each message that can be found has an id here, which is its row in
-- search_text (messages has no rowid of its own). Kept in step by write_batch: a new message
-- is added, an edit replaces its text, a delete takes it out.
CREATE TABLE IF NOT EXISTS search_ids (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    UNIQUE (room, seq)
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_text USING fts5(
    raw, tokenize = 'unicode61 remove_diacritics 0'
);
";

/// `PRAGMA user_version` once the search index holds every message written before it
/// existed.
const SEARCH_INDEXED: i64 = 1;

/// How a commit reaches the disk (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncMode {
    /// Every commit is fsynced: survives power loss.
    Full,
    /// The WAL is fsynced at checkpoints: survives a process crash, not power loss.
    Normal,
}

/// SQLite store. Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteStore {
    // One connection for writes: they are serialised by the room's single writer anyway.
    // std Mutex: never held across an await.
    conn: Arc<Mutex<Connection>>,
    // Reads (history pages, searches) on a connection of their own: in WAL mode they never
    // wait for a write, nor a write for them (a search may take a while). The same as `conn`
    // for an in-memory database, which a second connection would not see.
    reader: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/cahat.sqlite3`, syncing every commit fully.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        Self::open_dir_with(dir, SyncMode::Full)
    }

    /// Opens (creating if needed) `dir/cahat.sqlite3` with the given sync level.
    pub fn open_dir_with(dir: &Path, sync: SyncMode) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        Self::open(&dir.join("cahat.sqlite3"), sync)
    }

    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path, sync: SyncMode) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let level = match sync {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", level)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // What is deleted or rewritten is zeroed in the file, not left in free pages (text
        // from before the store was sealed, once re-sealed, is gone from the disk).
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        let conn = Arc::new(Mutex::new(conn));
        let reader = if path.as_os_str() == ":memory:" {
            Arc::clone(&conn)
        } else {
            let reader = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            reader.busy_timeout(std::time::Duration::from_secs(5))?;
            Arc::new(Mutex::new(reader))
        };
        Ok(Self { conn, reader })
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        Self::on(Arc::clone(&self.conn), work).await
    }

    async fn with_reader<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        Self::on(Arc::clone(&self.reader), work).await
    }

    async fn on<T: Send + 'static>(
        conn: Arc<Mutex<Connection>>,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means a panic mid-transaction; SQLite rolled it back, so the
            // connection itself is still consistent.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut guard)
        })
        .await?
    }
}

/// Brings a database written by an earlier version up to this schema: the columns of message
/// changes (edits and deletes) are added, empty.
fn migrate(conn: &Connection) -> Result<()> {
    for (table, column, definition) in [
        ("messages", "edited_at", "edited_at INTEGER"),
        ("messages", "deleted", "deleted INTEGER NOT NULL DEFAULT 0"),
        ("messages", "changed_seq", "changed_seq INTEGER"),
        ("messages", "reactions", "reactions TEXT"),
        ("messages", "reply_to", "reply_to INTEGER"),
        ("messages", "dm_to", "dm_to TEXT"),
        ("messages", "call", "call TEXT"),
        ("messages", "removed", "removed INTEGER NOT NULL DEFAULT 0"),
        ("users", "role", "role TEXT"),
        ("users", "timed_out_until", "timed_out_until INTEGER"),
        ("users", "ban", "ban TEXT"),
        ("users", "joined_at", "joined_at INTEGER"),
        ("users", "last_seen", "last_seen INTEGER"),
    ] {
        let present: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
            |row| row.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {definition}"))?;
        }
    }
    // A person's direct conversations are found through these (the column may be new).
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS messages_direct_to ON messages (room, dm_to, seq)
             WHERE dm_to IS NOT NULL;
         CREATE INDEX IF NOT EXISTS messages_direct_from ON messages (room, user_id, seq)
             WHERE dm_to IS NOT NULL;",
    )?;
    // Messages written before the search index existed are indexed once, in one transaction.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version < SEARCH_INDEXED {
        conn.execute_batch(&format!(
            "BEGIN;
             INSERT OR IGNORE INTO search_ids (room, seq) SELECT room, seq FROM messages
                 WHERE deleted = 0;
             DELETE FROM search_text;
             INSERT INTO search_text (rowid, raw) SELECT s.id, m.raw FROM search_ids s
                 JOIN messages m ON m.room = s.room AND m.seq = s.seq WHERE m.deleted = 0;
             PRAGMA user_version = {SEARCH_INDEXED};
             COMMIT;"
        ))?;
    }
    Ok(())
}

/// The FTS5 query for a checked search: each word as the start of a word (`"word"*`), all
/// of them (FTS5's implicit AND). Words are letters and digits only: nothing to escape.
fn fts_query(query: &SearchQuery) -> String {
    let words: Vec<String> = query.words().iter().map(|w| format!("\"{w}\"*")).collect();
    words.join(" ")
}

/// Adds a message's text to the search index (under its id in `search_ids`).
fn index_text(tx: &rusqlite::Transaction<'_>, room: &str, seq: Seq, raw: &str) -> Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO search_ids (room, seq) VALUES (?1, ?2)")?
        .execute(params![room, seq_param(seq)])?;
    tx.prepare_cached(
        "INSERT INTO search_text (rowid, raw)
             SELECT id, ?3 FROM search_ids WHERE room = ?1 AND seq = ?2",
    )?
    .execute(params![room, seq_param(seq), raw])?;
    Ok(())
}

/// Takes a message's text out of the search index.
fn unindex_text(tx: &rusqlite::Transaction<'_>, room: &str, seq: Seq) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM search_text WHERE rowid = (SELECT id FROM search_ids WHERE room = ?1 AND seq = ?2)",
    )?
    .execute(params![room, seq_param(seq)])?;
    Ok(())
}

fn message_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        seq: row.get::<_, i64>(0)?.try_into().unwrap_or(0),
        id: row.get(1)?,
        user_id: row.get(2)?,
        raw: row.get(3)?,
        html: row.get(4)?,
        timestamp: row.get(5)?,
        nonce: row.get(6)?,
        edited_at: row.get(7)?,
        deleted: row.get(8)?,
        changed_seq: row
            .get::<_, Option<i64>>(9)?
            .map(|c| c.try_into().unwrap_or(0)),
        reactions: match row.get::<_, Option<String>>(10)? {
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, e.into())
            })?,
            None => Vec::new(),
        },
        reply_to: row
            .get::<_, Option<i64>>(11)?
            .and_then(|r| r.try_into().ok()),
        to: row.get(12)?,
        call: match row.get::<_, Option<String>>(13)? {
            Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(13, rusqlite::types::Type::Text, e.into())
            })?),
            None => None,
        },
        removed: row.get(14)?,
    })
}

/// A role as the `role` column keeps it.
fn role_column(role: Option<protocol::Role>) -> Option<&'static str> {
    role.map(|role| match role {
        protocol::Role::Owner => "owner",
        protocol::Role::Moderator => "moderator",
    })
}

fn role_from_column(text: Option<String>) -> Option<protocol::Role> {
    match text.as_deref() {
        Some("owner") => Some(protocol::Role::Owner),
        Some("moderator") => Some(protocol::Role::Moderator),
        _ => None,
    }
}

/// Reactions as the `reactions` column keeps them: JSON, or NULL when there are none.
fn reactions_column(reactions: &[protocol::Reaction]) -> Option<String> {
    (!reactions.is_empty())
        .then(|| serde_json::to_string(reactions).ok())
        .flatten()
}

fn seq_param(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

const SELECT: &str = "SELECT seq, id, user_id, raw, html, timestamp, nonce, edited_at, deleted,
    changed_seq, reactions, reply_to, dm_to, call, removed FROM messages";
/// The columns of [`SELECT`], of `messages` joined as `m`.
const COLUMNS_OF_M: &str = "m.seq, m.id, m.user_id, m.raw, m.html, m.timestamp, m.nonce,
    m.edited_at, m.deleted, m.changed_seq, m.reactions, m.reply_to, m.dm_to, m.call, m.removed";

/// The privacy rule ([`protocol::may_see`]) in SQL, the one place this store says it: for the
/// viewer bound to `?4` (NULL: room messages only, as `user_id = NULL` is never true), on the
/// messages table named `table` ("" when it is the only one).
fn visible_to(table: &str) -> String {
    format!("({table}dm_to IS NULL OR {table}user_id = ?4 OR {table}dm_to = ?4)")
}

impl Store for SqliteStore {
    async fn load_snapshot(&self, room: &str, recent: usize) -> Result<RoomSnapshot> {
        let room = room.to_owned();
        self.with_conn(move |conn| {
            let limit = i64::try_from(recent).unwrap_or(i64::MAX);
            let mut messages = conn
                .prepare(&format!(
                    "{SELECT} WHERE room = ?1 ORDER BY seq DESC LIMIT ?2"
                ))?
                .query_map(params![room, limit], message_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            messages.reverse();
            let oldest = messages.first().map_or(i64::MAX, |m| seq_param(m.seq));
            let older: Option<i64> = conn
                .query_row(
                    "SELECT seq FROM messages WHERE room = ?1 AND seq < ?2 LIMIT 1",
                    params![room, oldest],
                    |row| row.get(0),
                )
                .optional()?;
            let users = conn
                .prepare(
                    "SELECT id, name, token_hash, joined_at, last_seen, role, timed_out_until,
                         ban
                     FROM users WHERE room = ?1",
                )?
                .query_map(params![room], |row| {
                    Ok(UserRecord {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        token_hash: row.get(2)?,
                        joined_at: row.get(3)?,
                        last_seen: row.get(4)?,
                        role: role_from_column(row.get(5)?),
                        timed_out_until: row.get(6)?,
                        ban: match row.get::<_, Option<String>>(7)? {
                            Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
                                rusqlite::Error::FromSqlConversionFailure(
                                    7,
                                    rusqlite::types::Type::Text,
                                    e.into(),
                                )
                            })?),
                            None => None,
                        },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // A change has a seq of its own, above its message's: the latest may be either.
            let (latest_message, latest_change): (Option<i64>, Option<i64>) = conn.query_row(
                "SELECT MAX(seq), MAX(changed_seq) FROM messages WHERE room = ?1",
                params![room],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            let latest_audit: Option<i64> = conn.query_row(
                "SELECT MAX(seq) FROM audit WHERE room = ?1",
                params![room],
                |row| row.get(0),
            )?;
            let latest = latest_message
                .max(latest_change)
                .max(latest_audit)
                .unwrap_or(0);
            let entries = |sql: &str, limit: usize| -> Result<Vec<protocol::AuditEntry>> {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let texts = conn
                    .prepare(sql)?
                    .query_map(params![room, limit], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                texts
                    .iter()
                    .map(|json| {
                        serde_json::from_str(json)
                            .map_err(|e| StoreError::Corrupt(format!("moderation log: {e}")))
                    })
                    .collect()
            };
            let mut audit = entries(
                "SELECT entry FROM audit WHERE room = ?1 ORDER BY seq DESC LIMIT ?2",
                super::AUDIT_LOADED,
            )?;
            audit.reverse();
            let open_reports = entries(
                "SELECT entry FROM audit WHERE room = ?1 AND action = 'report' AND resolved = 0
                 ORDER BY seq LIMIT ?2",
                super::OPEN_REPORTS_LOADED,
            )?;
            let settings: Option<String> = conn
                .query_row(
                    "SELECT settings FROM rooms WHERE room = ?1",
                    params![room],
                    |row| row.get(0),
                )
                .optional()?;
            let settings = match settings {
                Some(json) => serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("room settings: {e}")))?,
                None => protocol::RoomSettings::default(),
            };
            Ok(RoomSnapshot {
                latest_seq: latest.try_into().unwrap_or(0),
                complete: older.is_none(),
                messages,
                users,
                settings,
                audit,
                open_reports,
            })
        })
        .await
    }

    async fn write_batch(&self, room: &str, batch: Vec<Write>) -> Result<(), BatchError> {
        let room = room.to_owned();
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            {
                let columns = "INTO messages (room, seq, id, user_id, raw, html, timestamp, nonce,
                         reply_to, dm_to, call)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
                let mut insert = tx.prepare_cached(&format!("INSERT {columns}"))?;
                let mut insert_once = tx.prepare_cached(&format!("INSERT OR IGNORE {columns}"))?;
                let mut read =
                    tx.prepare_cached(&format!("{SELECT} WHERE room = ?1 AND seq = ?2"))?;
                let mut update = tx.prepare_cached(
                    "UPDATE messages SET raw = ?3, html = ?4, edited_at = ?5, deleted = ?6,
                         changed_seq = ?7, reactions = ?8, removed = ?9
                     WHERE room = ?1 AND seq = ?2",
                )?;
                let mut reseal = tx.prepare_cached(
                    "UPDATE messages SET raw = ?3, html = ?4, call = ?5
                     WHERE room = ?1 AND seq = ?2 AND changed_seq IS ?6",
                )?;
                let mut reseal_audit =
                    tx.prepare_cached("UPDATE audit SET entry = ?3 WHERE room = ?1 AND seq = ?2")?;
                let mut set_role =
                    tx.prepare_cached("UPDATE users SET role = ?3 WHERE room = ?1 AND id = ?2")?;
                let mut insert_audit = tx.prepare_cached(
                    "INSERT OR IGNORE INTO audit (room, seq, action, entry) VALUES (?1, ?2, ?3, ?4)",
                )?;
                let mut resolve = tx.prepare_cached(
                    "UPDATE audit SET resolved = 1 WHERE room = ?1 AND seq = ?2",
                )?;
                let mut set_settings = tx.prepare_cached(
                    "INSERT INTO rooms (room, settings) VALUES (?1, ?2)
                     ON CONFLICT (room) DO UPDATE SET settings = excluded.settings",
                )?;
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO users (room, id, name, token_hash, joined_at, last_seen,
                         timed_out_until, ban)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (room, id) DO UPDATE SET name = excluded.name,
                         token_hash = excluded.token_hash, joined_at = excluded.joined_at,
                         last_seen = excluded.last_seen,
                         timed_out_until = excluded.timed_out_until, ban = excluded.ban",
                )?;
                for write in &batch {
                    match write {
                        Write::Message(m) | Write::LoggedMessage(m) => {
                            let insert = match write {
                                Write::LoggedMessage(_) => &mut insert_once,
                                _ => &mut insert,
                            };
                            let inserted = insert.execute(params![
                                room,
                                seq_param(m.seq),
                                m.id,
                                m.user_id,
                                m.raw,
                                m.html,
                                m.timestamp,
                                m.nonce,
                                m.reply_to.map(seq_param),
                                m.to,
                                m.call.and_then(|c| serde_json::to_string(&c).ok())
                            ])?;
                            if inserted > 0 && !m.deleted {
                                index_text(&tx, &room, m.seq, &m.raw)?;
                            }
                        }
                        Write::Change(c) => {
                            let stored = read
                                .query_row(params![room, seq_param(c.target)], message_from_row)
                                .optional()?;
                            // A change to a message storage does not have changes nothing.
                            if let Some(mut message) = stored {
                                let (raw, deleted) = (message.raw.clone(), message.deleted);
                                c.apply(&mut message);
                                if message.raw != raw || message.deleted != deleted {
                                    unindex_text(&tx, &room, message.seq)?;
                                    if !message.deleted {
                                        index_text(&tx, &room, message.seq, &message.raw)?;
                                    }
                                }
                                update.execute(params![
                                    room,
                                    seq_param(message.seq),
                                    message.raw,
                                    message.html,
                                    message.edited_at,
                                    message.deleted,
                                    message.changed_seq.map(seq_param),
                                    reactions_column(&message.reactions),
                                    message.removed
                                ])?;
                            }
                        }
                        Write::Reseal {
                            message: m,
                            changed_seq,
                        } => {
                            let replaced = reseal.execute(params![
                                room,
                                seq_param(m.seq),
                                m.raw,
                                m.html,
                                m.call.and_then(|c| serde_json::to_string(&c).ok()),
                                changed_seq.map(seq_param)
                            ])?;
                            if replaced > 0 && !m.deleted {
                                unindex_text(&tx, &room, m.seq)?;
                                index_text(&tx, &room, m.seq, &m.raw)?;
                            }
                        }
                        Write::ResealAudit(entry) => {
                            let json = serde_json::to_string(entry).map_err(|e| {
                                StoreError::Corrupt(format!("moderation log: {e}"))
                            })?;
                            reseal_audit.execute(params![room, seq_param(entry.seq), json])?;
                        }
                        Write::User(u) => {
                            upsert.execute(params![
                                room,
                                u.id,
                                u.name,
                                u.token_hash,
                                u.joined_at,
                                u.last_seen,
                                u.timed_out_until,
                                u.ban.as_ref().and_then(|b| serde_json::to_string(b).ok())
                            ])?;
                        }
                        Write::Role { user_id, role } => {
                            set_role.execute(params![room, user_id, role_column(*role)])?;
                        }
                        Write::Settings(settings) => {
                            let json = serde_json::to_string(settings)
                                .map_err(|e| StoreError::Corrupt(format!("room settings: {e}")))?;
                            set_settings.execute(params![room, json])?;
                        }
                        Write::Audit(entry) => {
                            let json = serde_json::to_string(entry).map_err(|e| {
                                StoreError::Corrupt(format!("moderation log: {e}"))
                            })?;
                            insert_audit.execute(params![
                                room,
                                seq_param(entry.seq),
                                super::audit_action(entry.action),
                                json
                            ])?;
                            if let Some(report) = entry.report {
                                resolve.execute(params![room, seq_param(report)])?;
                            }
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|source: StoreError| BatchError { written: 0, source })
    }

    async fn load_history(
        &self,
        room: &str,
        viewer: Option<&str>,
        with: Option<&str>,
        before: Seq,
        limit: u32,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        let room = room.to_owned();
        let viewer = viewer.map(str::to_owned);
        let with = with.map(str::to_owned);
        self.with_reader(move |conn| {
            let newest_first = match &with {
                None => conn
                    .prepare_cached(&format!(
                        "{SELECT} WHERE room = ?1 AND seq < ?2 AND {visible}
                         ORDER BY seq DESC LIMIT ?3",
                        visible = visible_to("")
                    ))?
                    .query_map(
                        params![room, seq_param(before), i64::from(limit) + 1, viewer],
                        message_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                // One conversation: the two people's messages to each other (a NULL viewer
                // matches nothing).
                Some(with) => conn
                    .prepare_cached(&format!(
                        "{SELECT} WHERE room = ?1 AND seq < ?2 AND {visible}
                             AND ((user_id = ?4 AND dm_to = ?5) OR (user_id = ?5 AND dm_to = ?4))
                         ORDER BY seq DESC LIMIT ?3",
                        visible = visible_to("")
                    ))?
                    .query_map(
                        params![room, seq_param(before), i64::from(limit) + 1, viewer, with],
                        message_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            Ok(history_page(newest_first, limit))
        })
        .await
    }

    async fn load_conversations(
        &self,
        room: &str,
        viewer: &str,
        since: Seq,
        limit: u32,
    ) -> Result<Vec<DirectConversation>> {
        let room = room.to_owned();
        let viewer = viewer.to_owned();
        self.with_reader(move |conn| {
            let latest: Vec<(String, i64)> = conn
                .prepare_cached(
                    "SELECT peer, MAX(seq) AS last FROM (
                         SELECT dm_to AS peer, seq FROM messages
                             WHERE room = ?1 AND user_id = ?2 AND dm_to IS NOT NULL
                         UNION ALL
                         SELECT user_id AS peer, seq FROM messages
                             WHERE room = ?1 AND dm_to = ?2
                     ) GROUP BY peer ORDER BY last DESC LIMIT ?3",
                )?
                .query_map(params![room, viewer, i64::from(limit)], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut found = Vec::with_capacity(latest.len());
            for (with, last) in latest {
                let message = conn
                    .prepare_cached(&format!("{SELECT} WHERE room = ?1 AND seq = ?2"))?
                    .query_row(params![room, last], message_from_row)?;
                let unread: u32 = conn
                    .prepare_cached(
                        "SELECT COUNT(*) FROM messages WHERE room = ?1 AND user_id = ?2
                             AND dm_to = ?3 AND seq > ?4 AND deleted = 0",
                    )?
                    .query_row(params![room, with, viewer, seq_param(since)], |row| {
                        row.get(0)
                    })?;
                found.push(DirectConversation {
                    with,
                    last: message,
                    unread,
                });
            }
            Ok(found)
        })
        .await
    }

    async fn load_key_checks(&self, room: &str) -> Result<Vec<KeyCheck>> {
        let room = room.to_owned();
        self.with_reader(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id, check_value FROM data_keys WHERE room = ?1 ORDER BY saved",
            )?;
            let rows = statement.query_map(params![room], |row| {
                Ok(KeyCheck {
                    id: row.get(0)?,
                    check: row.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn save_key_check(&self, room: &str, check: KeyCheck) -> Result<()> {
        let room = room.to_owned();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO data_keys (room, id, check_value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (room, id) DO NOTHING",
                params![room, check.id, check.check],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_key_check(&self, room: &str, id: &str) -> Result<()> {
        let (room, id) = (room.to_owned(), id.to_owned());
        self.with_conn(move |conn| {
            conn.execute(
                "DELETE FROM data_keys WHERE room = ?1 AND id = ?2",
                params![room, id],
            )?;
            Ok(())
        })
        .await
    }

    async fn load_messages_after(
        &self,
        room: &str,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        let room = room.to_owned();
        self.with_reader(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "{SELECT} WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ))?;
            let rows = statement.query_map(
                params![room, seq_param(after), i64::from(limit)],
                message_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn load_audit_after(
        &self,
        room: &str,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<protocol::AuditEntry>> {
        let room = room.to_owned();
        self.with_reader(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT entry FROM audit WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = statement
                .query_map(params![room, seq_param(after), i64::from(limit)], |row| {
                    row.get::<_, String>(0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.iter()
                .map(|json| {
                    serde_json::from_str(json)
                        .map_err(|e| StoreError::Corrupt(format!("moderation log: {e}")))
                })
                .collect()
        })
        .await
    }

    async fn compact(&self, _room: &str) -> Result<()> {
        self.with_conn(|conn| {
            // Merged into one segment, the text index keeps no entry of a replaced text; the
            // WAL, copied into the database, is cut to nothing.
            conn.execute_batch("INSERT INTO search_text (search_text) VALUES ('optimize');")?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    async fn search(&self, room: &str, search: Search) -> Result<SearchPage> {
        let room = room.to_owned();
        self.with_reader(move |conn| {
            // The index proposes, newest first; the one rule of `protocol::search` decides.
            // Past the deadline SQLite stops the statement (SQLITE_INTERRUPT).
            let deadline = std::time::Instant::now() + search.timeout;
            conn.progress_handler(1000, Some(move || std::time::Instant::now() > deadline));
            let result = (|| {
                // The index drives, newest first: ids grow with seq within a room (messages
                // are written in seq order), so rowid order is seq order, and `before` is a
                // rowid bound. FTS5 walks its matches in that order and the walk stops as soon
                // as the page is full.
                let mut statement = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS_OF_M} FROM search_text
                         CROSS JOIN search_ids s ON s.id = search_text.rowid
                         CROSS JOIN messages m ON m.room = s.room AND m.seq = s.seq
                     WHERE search_text MATCH ?3
                         AND search_text.rowid < COALESCE(
                             (SELECT id FROM search_ids WHERE room = ?1 AND seq >= ?2
                                  ORDER BY seq LIMIT 1),
                             9223372036854775807)
                         AND s.room = ?1 AND s.seq < ?2
                         AND m.deleted = 0 AND {visible}
                     ORDER BY search_text.rowid DESC",
                    visible = visible_to("m.")
                ))?;
                let before = search.before.map_or(i64::MAX, seq_param);
                let rows = statement.query_map(
                    params![room, before, fts_query(&search.query), search.viewer],
                    message_from_row,
                )?;
                let mut failed = None;
                let page = search_newest_first(
                    rows.map_while(|row| row.map_err(|e| failed = Some(e)).ok()),
                    &search.query,
                    search.viewer.as_deref(),
                    usize::try_from(search.limit).unwrap_or(usize::MAX),
                    usize::MAX,
                );
                match failed {
                    Some(error) => Err(error),
                    None => Ok(page),
                }
            })();
            conn.progress_handler(0, None::<fn() -> bool>);
            result.map_err(|error| match error.sqlite_error_code() {
                Some(rusqlite::ErrorCode::OperationInterrupted) => {
                    StoreError::TimedOut(search.timeout)
                }
                _ => error.into(),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written before messages could change opens, keeps its messages and takes
    /// changes.
    #[tokio::test]
    async fn a_database_from_before_changes_is_migrated_in_place() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("old.sqlite3");
        {
            let old = Connection::open(&path).expect("works");
            old.execute_batch(
                "CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
                    user_id TEXT NOT NULL, raw TEXT NOT NULL, html TEXT NOT NULL,
                    timestamp INTEGER NOT NULL, nonce TEXT, PRIMARY KEY (room, seq)) WITHOUT ROWID;
                 INSERT INTO messages VALUES ('r', 1, 'id1', 'u1', 'old', '<p>old</p>', 5, NULL);
                 CREATE TABLE users (room TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,
                    token_hash TEXT NOT NULL, PRIMARY KEY (room, id)) WITHOUT ROWID;
                 INSERT INTO users VALUES ('r', 'u1', 'Old', 'hash');",
            )
            .expect("works");
        }
        let store = SqliteStore::open(&path, SyncMode::Normal).expect("works");
        // Messages from before search existed are found.
        assert_eq!(find(&store, "OLD").await, [1]);
        let snapshot = store.load_snapshot("r", 10).await.expect("works");
        assert_eq!(snapshot.messages[0].raw, "old");
        assert_eq!(snapshot.messages[0].to, None);
        assert_eq!(snapshot.latest_seq, 1);
        // Users from before kept no times: unknown, not zero.
        assert_eq!(
            (snapshot.users[0].name.as_str(), snapshot.users[0].joined_at),
            ("Old", None)
        );
        let seen = UserRecord {
            last_seen: Some(7),
            ..snapshot.users[0].clone()
        };
        store
            .write_batch("r", vec![Write::User(seen)])
            .await
            .expect("works");
        let change = protocol::StoredChange {
            seq: 2,
            target: 1,
            user_id: "u1".into(),
            at: 9,
            kind: protocol::ChangeKind::Delete,
        };
        store
            .write_batch("r", vec![Write::Change(change)])
            .await
            .expect("works");
        let snapshot = store.load_snapshot("r", 10).await.expect("works");
        assert!(snapshot.messages[0].deleted);
        assert_eq!(snapshot.latest_seq, 2);
        assert_eq!(snapshot.users[0].last_seen, Some(7));
        assert!(find(&store, "old").await.is_empty(), "deleted: not found");
        // Opening it again finds nothing left to migrate.
        drop(store);
        assert!(SqliteStore::open(&path, SyncMode::Normal).is_ok());
    }

    fn search(query: &str, viewer: Option<&str>, timeout: std::time::Duration) -> Search {
        Search {
            viewer: viewer.map(str::to_owned),
            query: SearchQuery::parse(query).expect("a query"),
            before: None,
            limit: 20,
            scan: 1000,
            timeout,
        }
    }

    async fn find(store: &SqliteStore, query: &str) -> Vec<Seq> {
        find_as(store, query, None).await
    }

    async fn find_as(store: &SqliteStore, query: &str, viewer: Option<&str>) -> Vec<Seq> {
        let page = store
            .search(
                "r",
                search(query, viewer, std::time::Duration::from_secs(10)),
            )
            .await
            .expect("works");
        page.messages.iter().map(|m| m.seq).collect()
    }

    /// The time bound, attacked: a search whose every candidate is someone else's direct
    /// message walks the whole index; past its time it is stopped with `TimedOut`, and the
    /// store goes on (the same search with time, other searches).
    #[tokio::test]
    async fn a_search_past_its_time_is_stopped_and_the_store_goes_on() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open_dir(dir.path()).expect("works");
        let message = |seq: Seq, raw: String, to: Option<&str>| {
            Write::Message(StoredMessage {
                seq,
                id: format!("m{seq}"),
                user_id: "u1".into(),
                raw,
                to: to.map(str::to_owned),
                ..StoredMessage::default()
            })
        };
        let mut batch = vec![message(1, "common room message".into(), None)];
        batch
            .extend((2..=20_001).map(|seq| message(seq, format!("common word {seq}"), Some("u2"))));
        store.write_batch("r", batch).await.expect("works");
        let slow = store
            .search(
                "r",
                search("common", None, std::time::Duration::from_micros(1)),
            )
            .await;
        assert!(
            matches!(slow, Err(StoreError::TimedOut(_))),
            "{:?}",
            slow.map(|p| p.messages.len())
        );
        assert_eq!(find(&store, "common").await, [1]);
        assert_eq!(find_as(&store, "word 20000", Some("u2")).await, [20_000]);
        let page = store
            .search(
                "r",
                search("common", Some("u2"), std::time::Duration::from_secs(10)),
            )
            .await
            .expect("works");
        assert_eq!(page.messages.len(), 20);
        assert_eq!(page.next, Some(19_982));
    }
}
