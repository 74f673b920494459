//! The embedded default store: SQLite (bundled) in WAL mode with `synchronous = FULL`, so a
//! committed batch survives a crash of the process or the machine.

use std::path::Path;
use std::sync::{Arc, Mutex};

use protocol::{RoomSnapshot, Seq, StoredMessage, UserRecord};
use rusqlite::{Connection, OptionalExtension, params};

use super::{BatchError, Result, Store, StoreError, Write, history_page};

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
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_nonce ON messages (room, user_id, nonce)
    WHERE nonce IS NOT NULL;
CREATE TABLE IF NOT EXISTS users (
    room TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    joined_at INTEGER,
    last_seen INTEGER,
    PRIMARY KEY (room, id)
) WITHOUT ROWID;
";

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
    // One connection: writes are serialised by the room's single writer anyway, and reads
    // (history pages) are rare and short. std Mutex: never held across an await.
    conn: Arc<Mutex<Connection>>,
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
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = Arc::clone(&self.conn);
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
    })
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
    changed_seq, reactions, reply_to, dm_to FROM messages";

/// [`StoredMessage::visible_to`] in SQL, for the viewer bound to `?4` (NULL: room messages
/// only, as `user_id = NULL` is never true).
const VISIBLE_TO_4: &str = "(dm_to IS NULL OR user_id = ?4 OR dm_to = ?4)";

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
                    "SELECT id, name, token_hash, joined_at, last_seen FROM users WHERE room = ?1",
                )?
                .query_map(params![room], |row| {
                    Ok(UserRecord {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        token_hash: row.get(2)?,
                        joined_at: row.get(3)?,
                        last_seen: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // A change has a seq of its own, above its message's: the latest may be either.
            let (latest_message, latest_change): (Option<i64>, Option<i64>) = conn.query_row(
                "SELECT MAX(seq), MAX(changed_seq) FROM messages WHERE room = ?1",
                params![room],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            let latest = latest_message.max(latest_change).unwrap_or(0);
            Ok(RoomSnapshot {
                latest_seq: latest.try_into().unwrap_or(0),
                complete: older.is_none(),
                messages,
                users,
            })
        })
        .await
    }

    async fn write_batch(&self, room: &str, batch: Vec<Write>) -> Result<(), BatchError> {
        let room = room.to_owned();
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO messages (room, seq, id, user_id, raw, html, timestamp, nonce,
                         reply_to, dm_to) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                let mut read =
                    tx.prepare_cached(&format!("{SELECT} WHERE room = ?1 AND seq = ?2"))?;
                let mut update = tx.prepare_cached(
                    "UPDATE messages SET raw = ?3, html = ?4, edited_at = ?5, deleted = ?6,
                         changed_seq = ?7, reactions = ?8 WHERE room = ?1 AND seq = ?2",
                )?;
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO users (room, id, name, token_hash, joined_at, last_seen)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (room, id) DO UPDATE SET name = excluded.name,
                         token_hash = excluded.token_hash, joined_at = excluded.joined_at,
                         last_seen = excluded.last_seen",
                )?;
                for write in &batch {
                    match write {
                        Write::Message(m) => {
                            insert.execute(params![
                                room,
                                seq_param(m.seq),
                                m.id,
                                m.user_id,
                                m.raw,
                                m.html,
                                m.timestamp,
                                m.nonce,
                                m.reply_to.map(seq_param),
                                m.to
                            ])?;
                        }
                        Write::Change(c) => {
                            let stored = read
                                .query_row(params![room, seq_param(c.target)], message_from_row)
                                .optional()?;
                            // A change to a message storage does not have changes nothing.
                            if let Some(mut message) = stored {
                                c.apply(&mut message);
                                update.execute(params![
                                    room,
                                    seq_param(message.seq),
                                    message.raw,
                                    message.html,
                                    message.edited_at,
                                    message.deleted,
                                    message.changed_seq.map(seq_param),
                                    reactions_column(&message.reactions)
                                ])?;
                            }
                        }
                        Write::User(u) => {
                            upsert.execute(params![
                                room,
                                u.id,
                                u.name,
                                u.token_hash,
                                u.joined_at,
                                u.last_seen
                            ])?;
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
        before: Seq,
        limit: u32,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        let room = room.to_owned();
        let viewer = viewer.map(str::to_owned);
        self.with_conn(move |conn| {
            let newest_first = conn
                .prepare_cached(&format!(
                    "{SELECT} WHERE room = ?1 AND seq < ?2 AND {VISIBLE_TO_4}
                     ORDER BY seq DESC LIMIT ?3"
                ))?
                .query_map(
                    params![room, seq_param(before), i64::from(limit) + 1, viewer],
                    message_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(history_page(newest_first, limit))
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
        // Opening it again finds nothing left to migrate.
        drop(store);
        assert!(SqliteStore::open(&path, SyncMode::Normal).is_ok());
    }
}
