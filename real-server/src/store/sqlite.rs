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
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_nonce ON messages (room, user_id, nonce)
    WHERE nonce IS NOT NULL;
CREATE TABLE IF NOT EXISTS users (
    room TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
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

fn message_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        seq: row.get::<_, i64>(0)?.try_into().unwrap_or(0),
        id: row.get(1)?,
        user_id: row.get(2)?,
        raw: row.get(3)?,
        html: row.get(4)?,
        timestamp: row.get(5)?,
        nonce: row.get(6)?,
    })
}

fn seq_param(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

const SELECT: &str = "SELECT seq, id, user_id, raw, html, timestamp, nonce FROM messages";

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
                .prepare("SELECT id, name, token_hash FROM users WHERE room = ?1")?
                .query_map(params![room], |row| {
                    Ok(UserRecord {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        token_hash: row.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(RoomSnapshot {
                latest_seq: messages.last().map_or(0, |m| m.seq),
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
                    "INSERT INTO messages (room, seq, id, user_id, raw, html, timestamp, nonce)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO users (room, id, name, token_hash) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (room, id) DO UPDATE SET name = excluded.name,
                         token_hash = excluded.token_hash",
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
                                m.nonce
                            ])?;
                        }
                        Write::User(u) => {
                            upsert.execute(params![room, u.id, u.name, u.token_hash])?;
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
        before: Seq,
        limit: u32,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        let room = room.to_owned();
        self.with_conn(move |conn| {
            let newest_first = conn
                .prepare_cached(&format!(
                    "{SELECT} WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                ))?
                .query_map(
                    params![room, seq_param(before), i64::from(limit) + 1],
                    message_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(history_page(newest_first, limit))
        })
        .await
    }
}
