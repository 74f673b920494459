//! A store whose every text people wrote is sealed on the way in and opened on the way out
//! ([`crate::sealing`]): over either driver, so both keep the same ciphertext and neither
//! needs to know. What is sealed, and bound to the room and its place:
//! - a message's markdown and HTML (`message <seq> raw`, `... html`), and its call record
//!   (kept inside the sealed markdown: the stored record has none; a deletion takes it away
//!   with the text);
//! - an edit's new markdown and HTML (bound to the message it replaces the text of);
//! - the reason of a moderation event (`audit <seq> reason`) and of a ban (`user <id> ban`).
//!
//! Names, ids, times, seqs, reactions and the room's settings stay plain (ARCHITECTURE.md
//! says what that reveals). Search cannot use a driver's text index over sealed text: it
//! scans, newest first, at most `search.scan` messages a page, as a MongoDB without text
//! search does.

use protocol::search::{SearchPage, search_newest_first};
use protocol::{
    AuditEntry, CallRecord, ChangeKind, DirectConversation, RoomSnapshot, Seq, StoredMessage,
    UserRecord,
};
use serde::{Deserialize, Serialize};
use std::path::Path;

use anyhow::Context as _;

use super::{BatchError, Result, Search, Store, StoreError, Write};
use crate::sealing::{DataKeys, KeyCheck, SealError};

/// `inner`, with what people wrote sealed under `keys`.
#[derive(Debug)]
pub struct Sealed<S> {
    inner: S,
    keys: DataKeys,
}

/// What a message's sealed markdown holds: the text and, for a call, its record.
#[derive(Serialize, Deserialize)]
struct Markdown {
    #[serde(rename = "t")]
    text: String,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    call: Option<CallRecord>,
}

/// The data key file's name in the data directory, when no --data-key-file is given.
pub const KEY_FILE: &str = "cahat.key";

/// Messages a search reads from the store at once.
const SCAN_PAGE: u32 = 500;

impl<S: Store> Sealed<S> {
    pub fn new(inner: S, keys: DataKeys) -> Self {
        Self { inner, keys }
    }

    /// `inner` sealed with the room's data keys: those of `key_file`, or else of `cahat.key`
    /// in `data_dir`, which is created when the room has sealed nothing yet (said once, in
    /// the log). Refused, saying why and before anything is read or written, when the keys
    /// are not those the room's text was sealed with (their check values) or the room has
    /// sealed text and no key file is found. The sealing key's check value is then kept.
    pub async fn open(
        inner: S,
        room: &str,
        key_file: Option<&Path>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        let recorded = inner
            .load_key_checks(room)
            .await
            .context("reading the room's data key checks")?;
        let default_path = data_dir.join(KEY_FILE);
        let path = key_file.unwrap_or(&default_path);
        let keys = if path.exists() || key_file.is_some() {
            DataKeys::load(path)?
        } else if let Some(first) = recorded.first() {
            anyhow::bail!(
                "the room's stored text is sealed with data key {}, and there is no key file at {}: \
                 give the room's key file with --data-key-file",
                first.id,
                path.display()
            );
        } else {
            let keys = DataKeys::generate().context("making a data key")?;
            match keys.write_new(path) {
                Ok(()) => {
                    tracing::info!(
                        path = %path.display(),
                        "created a data key: what people write is sealed with it before it is \
                         stored; keep a copy apart from the data, as without it the room's \
                         messages cannot be read"
                    );
                    keys
                }
                // Another node of the room made it at the same moment: theirs it is.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => DataKeys::load(path)?,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("writing a new data key file at {}", path.display())
                    });
                }
            }
        };
        keys.check_against(&recorded).map_err(|why| {
            anyhow::anyhow!(
                "the data key file {} cannot read this room: {why}; nothing was read or written",
                path.display()
            )
        })?;
        if let Some(check) = keys
            .checks()
            .into_iter()
            .find(|c| c.id == keys.sealing_id() && !recorded.contains(c))
        {
            inner
                .save_key_check(room, check)
                .await
                .context("keeping the data key's check value")?;
        }
        Ok(Self::new(inner, keys))
    }

    fn seal_message(&self, room: &str, mut message: StoredMessage) -> StoredMessage {
        let markdown = Markdown {
            text: std::mem::take(&mut message.raw),
            call: message.call.take(),
        };
        let markdown = serde_json::to_string(&markdown).unwrap_or_default();
        message.raw = self.seal_text(room, &raw_place(message.seq), &markdown);
        message.html = self.seal_text(room, &html_place(message.seq), &message.html);
        message
    }

    /// `text` sealed, unless it is empty (a deleted message's markdown: nothing to hide).
    fn seal_text(&self, room: &str, place: &str, text: &str) -> String {
        if text.is_empty() {
            String::new()
        } else {
            self.keys.seal(room, place, text)
        }
    }

    fn open_message(&self, room: &str, mut message: StoredMessage) -> Result<StoredMessage> {
        let place = raw_place(message.seq);
        if crate::sealing::is_sealed(&message.raw) {
            let markdown = self
                .keys
                .open(room, &place, &message.raw)
                .map_err(|e| corrupt(&place, e))?;
            let markdown: Markdown = serde_json::from_str(&markdown)
                .map_err(|e| StoreError::Corrupt(format!("{place}: {e}")))?;
            message.raw = markdown.text;
            if markdown.call.is_some() {
                message.call = markdown.call;
            }
        }
        let place = html_place(message.seq);
        message.html = self
            .keys
            .open(room, &place, &message.html)
            .map_err(|e| corrupt(&place, e))?;
        Ok(message)
    }

    fn open_messages(
        &self,
        room: &str,
        messages: Vec<StoredMessage>,
    ) -> Result<Vec<StoredMessage>> {
        messages
            .into_iter()
            .map(|m| self.open_message(room, m))
            .collect()
    }

    fn seal_audit(&self, room: &str, mut entry: AuditEntry) -> AuditEntry {
        if let Some(reason) = &entry.reason {
            entry.reason = Some(self.seal_text(room, &audit_place(entry.seq), reason));
        }
        entry
    }

    fn open_audit(&self, room: &str, mut entry: AuditEntry) -> Result<AuditEntry> {
        if let Some(reason) = &entry.reason {
            let place = audit_place(entry.seq);
            entry.reason = Some(
                self.keys
                    .open(room, &place, reason)
                    .map_err(|e| corrupt(&place, e))?,
            );
        }
        Ok(entry)
    }

    fn seal_user(&self, room: &str, mut user: UserRecord) -> UserRecord {
        if let Some(reason) = user.ban.as_mut().and_then(|b| b.reason.as_mut()) {
            *reason = self.seal_text(room, &ban_place(&user.id), reason);
        }
        user
    }

    fn open_user(&self, room: &str, mut user: UserRecord) -> Result<UserRecord> {
        let place = ban_place(&user.id);
        if let Some(reason) = user.ban.as_mut().and_then(|b| b.reason.as_mut()) {
            *reason = self
                .keys
                .open(room, &place, reason)
                .map_err(|e| corrupt(&place, e))?;
        }
        Ok(user)
    }

    fn seal_write(&self, room: &str, write: Write) -> Write {
        match write {
            Write::Message(message) => Write::Message(self.seal_message(room, message)),
            Write::LoggedMessage(message) => Write::LoggedMessage(self.seal_message(room, message)),
            Write::Change(mut change) => {
                if let ChangeKind::Edit { raw, html } = &mut change.kind {
                    let markdown = Markdown {
                        text: std::mem::take(raw),
                        call: None,
                    };
                    let markdown = serde_json::to_string(&markdown).unwrap_or_default();
                    *raw = self.seal_text(room, &raw_place(change.target), &markdown);
                    *html = self.seal_text(room, &html_place(change.target), html);
                }
                Write::Change(change)
            }
            Write::Audit(entry) => Write::Audit(self.seal_audit(room, entry)),
            Write::User(user) => Write::User(self.seal_user(room, user)),
            other @ (Write::Role { .. } | Write::Settings(_)) => other,
        }
    }

    /// A search page by scanning: up to `search.scan` messages the viewer may read, newest
    /// first from `search.before`, opened and checked with the one rule.
    async fn scan(&self, room: &str, search: Search) -> Result<SearchPage> {
        let mut before = search.before.unwrap_or(Seq::MAX);
        let mut newest_first = Vec::new();
        // One more than the scan, to know whether the room goes on past it.
        let wanted = search.scan.saturating_add(1);
        while newest_first.len() < wanted {
            let left = u32::try_from(wanted - newest_first.len()).unwrap_or(u32::MAX);
            let (page, more) = self
                .inner
                .load_history(
                    room,
                    search.viewer.as_deref(),
                    None,
                    before,
                    left.min(SCAN_PAGE),
                )
                .await?;
            let Some(oldest) = page.first() else { break };
            before = oldest.seq;
            newest_first.extend(self.open_messages(room, page)?.into_iter().rev());
            if !more {
                break;
            }
        }
        let limit = usize::try_from(search.limit).unwrap_or(usize::MAX);
        Ok(search_newest_first(
            newest_first,
            &search.query,
            search.viewer.as_deref(),
            limit,
            search.scan,
        ))
    }
}

fn raw_place(seq: Seq) -> String {
    format!("message {seq} raw")
}

fn html_place(seq: Seq) -> String {
    format!("message {seq} html")
}

fn audit_place(seq: Seq) -> String {
    format!("audit {seq} reason")
}

fn ban_place(user: &str) -> String {
    format!("user {user} ban")
}

fn corrupt(place: &str, why: SealError) -> StoreError {
    StoreError::Corrupt(format!("{place}: {why}"))
}

impl<S: Store> Store for Sealed<S> {
    async fn load_snapshot(&self, room: &str, recent: usize) -> Result<RoomSnapshot> {
        let snapshot = self.inner.load_snapshot(room, recent).await?;
        Ok(RoomSnapshot {
            messages: self.open_messages(room, snapshot.messages)?,
            users: snapshot
                .users
                .into_iter()
                .map(|u| self.open_user(room, u))
                .collect::<Result<_>>()?,
            audit: snapshot
                .audit
                .into_iter()
                .map(|e| self.open_audit(room, e))
                .collect::<Result<_>>()?,
            open_reports: snapshot
                .open_reports
                .into_iter()
                .map(|e| self.open_audit(room, e))
                .collect::<Result<_>>()?,
            ..snapshot
        })
    }

    async fn write_batch(&self, room: &str, batch: Vec<Write>) -> Result<(), BatchError> {
        let batch = batch
            .into_iter()
            .map(|w| self.seal_write(room, w))
            .collect();
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
        let (messages, more) = self
            .inner
            .load_history(room, viewer, with, before, limit)
            .await?;
        Ok((self.open_messages(room, messages)?, more))
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
            .await?
            .into_iter()
            .map(|c| {
                Ok(DirectConversation {
                    last: self.open_message(room, c.last)?,
                    ..c
                })
            })
            .collect()
    }

    async fn search(&self, room: &str, search: Search) -> Result<SearchPage> {
        let timeout = search.timeout;
        tokio::time::timeout(timeout, self.scan(room, search))
            .await
            .map_err(|_| StoreError::TimedOut(timeout))?
    }

    async fn load_key_checks(&self, room: &str) -> Result<Vec<KeyCheck>> {
        self.inner.load_key_checks(room).await
    }

    async fn save_key_check(&self, room: &str, check: KeyCheck) -> Result<()> {
        self.inner.save_key_check(room, check).await
    }
}
