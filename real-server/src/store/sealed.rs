//! A store whose every text people wrote is sealed on the way in and opened on the way out
//! ([`crate::sealing`]): over either driver, so both keep the same ciphertext and neither
//! needs to know. What is sealed, and bound to the room and its place:
//! - a message's markdown, HTML and call record, as one envelope stored in place of its HTML
//!   (`message <seq>`; a deletion takes it away with the text);
//! - an edit's new markdown and HTML (bound to the message whose text it replaces);
//! - the reason of a moderation event (`audit <seq> reason`) and of a ban (`user <id> ban`).
//!
//! In place of a message's markdown the store keeps its blind tokens (keyed hashes of its
//! words' prefixes, [`crate::sealing::DataKeys::tokens`]): the driver's own text search (FTS5,
//! a MongoDB text index or its bounded scan) finds the query's tokens there and proposes
//! candidates, which are opened and checked with the one rule. Names, ids, times, seqs,
//! reactions and the room's settings stay plain (ARCHITECTURE.md says what all that reveals).

use protocol::search::{SearchPage, search_newest_first};
use protocol::{
    AuditEntry, CallRecord, ChangeKind, DirectConversation, RoomSnapshot, Seq, StoredMessage,
    UserRecord,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use super::{BatchError, Result, Search, Store, StoreError, Write};
use crate::sealing::{DataKeys, KeyCheck, SealError};

/// `inner`, with what people wrote sealed under `keys`. Cloning shares both (the re-sealing
/// task holds a clone).
#[derive(Debug)]
pub struct Sealed<S> {
    inner: Arc<S>,
    keys: Arc<DataKeys>,
}

impl<S> Clone for Sealed<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            keys: Arc::clone(&self.keys),
        }
    }
}

/// Records re-sealed in one write.
const RESEAL_BATCH: u32 = 200;
/// The pause between two re-sealing writes: the room's own writes go between them.
const RESEAL_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);
/// What [`Sealed::count_by_key`] names text that is not sealed.
pub const PLAIN: &str = "plain";

/// What a message's sealed envelope holds: its markdown, its HTML and, for a call, its record.
/// It is stored in place of the HTML; the markdown's place holds its blind tokens.
#[derive(Serialize, Deserialize)]
struct Envelope {
    #[serde(rename = "t")]
    text: String,
    #[serde(rename = "h")]
    html: String,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    call: Option<CallRecord>,
}

/// What the markdown's place holds for a sealed message: this, then its blind tokens, each a
/// word to the driver's text search.
const INDEX_PREFIX: &str = "\u{1}cahat-index";

/// Inner pages a search reads at most for one page of results (each bounded by the driver).
const MAX_INNER_PAGES: usize = 50;

/// The data key file's name in the data directory, when no --data-key-file is given.
pub const KEY_FILE: &str = "cahat.key";

/// Where the room's key file is: `given` (--data-key-file), else [`KEY_FILE`] in `data_dir`.
pub fn key_file_path(given: Option<&Path>, data_dir: &Path) -> std::path::PathBuf {
    given.map_or_else(|| data_dir.join(KEY_FILE), Path::to_path_buf)
}

/// Messages a search reads from the store at once.
const SCAN_PAGE: u32 = 500;

impl<S: Store> Sealed<S> {
    pub fn new(inner: S, keys: DataKeys) -> Self {
        Self {
            inner: Arc::new(inner),
            keys: Arc::new(keys),
        }
    }

    /// The keys it seals and opens with.
    pub fn keys(&self) -> &DataKeys {
        &self.keys
    }

    /// Whether a stored message is sealed with the sealing key, or has nothing to seal.
    fn message_is_current(&self, message: &StoredMessage) -> bool {
        message.deleted
            || crate::sealing::sealed_with(&message.html) == Some(self.keys.sealing_id())
    }

    fn reason_is_current(&self, reason: Option<&String>) -> bool {
        reason.is_none_or(|r| {
            r.is_empty() || crate::sealing::sealed_with(r) == Some(self.keys.sealing_id())
        })
    }

    /// One pass over the room's messages and moderation events, oldest first: each one not
    /// sealed with the sealing key (plain, written before the store was sealed, or sealed
    /// with an older key) is sealed anew with it, [`RESEAL_BATCH`] at a time, each batch one
    /// write, with a pause between writes for the room's own. A message changed meanwhile is
    /// left for the next pass. Returns how many records were sealed anew; after a kill the
    /// next pass takes up what is left.
    pub async fn reseal_pass(&self, room: &str) -> Result<usize> {
        let mut resealed = 0;
        let mut after = 0;
        loop {
            let page = self
                .inner
                .load_messages_after(room, after, RESEAL_BATCH)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let mut batch = Vec::new();
            for stored in page {
                if self.message_is_current(&stored) {
                    continue;
                }
                let changed_seq = stored.changed_seq;
                let message = self.open_message(room, stored)?;
                batch.push(Write::Reseal {
                    message: self.seal_message(room, message),
                    changed_seq,
                });
            }
            resealed += self.write_reseals(room, batch).await?;
        }
        let mut after = 0;
        loop {
            let page = self
                .inner
                .load_audit_after(room, after, RESEAL_BATCH)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let mut batch = Vec::new();
            for stored in page {
                if self.reason_is_current(stored.reason.as_ref()) {
                    continue;
                }
                let entry = self.open_audit(room, stored)?;
                batch.push(Write::ResealAudit(self.seal_audit(room, entry)));
            }
            resealed += self.write_reseals(room, batch).await?;
        }
        if resealed > 0 {
            self.inner.compact(room).await?;
        }
        Ok(resealed)
    }

    async fn write_reseals(&self, room: &str, batch: Vec<Write>) -> Result<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        let count = batch.len();
        self.inner
            .write_batch(room, batch)
            .await
            .map_err(|e| e.source)?;
        tracing::info!(records = count, key = %self.keys.sealing_id(), "sealed anew");
        tokio::time::sleep(RESEAL_PAUSE).await;
        Ok(count)
    }

    /// Seals anew, in passes until one finds nothing, what is not sealed with the sealing key;
    /// says in the log when everything is. Runs beside the room.
    pub async fn reseal_in_background(self, room: String) {
        loop {
            match self.reseal_pass(&room).await {
                Ok(0) => {
                    tracing::info!(
                        key = %self.keys.sealing_id(),
                        "every record of the room is sealed with the sealing key"
                    );
                    return;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "sealing the room's records anew; tried again in a minute");
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                }
            }
        }
    }

    /// How many records each key sealed (text that is not sealed under [`PLAIN`]): messages,
    /// moderation events and bans.
    pub async fn count_by_key(&self, room: &str) -> Result<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        let mut count = |stored: &str| {
            let key = crate::sealing::sealed_with(stored).unwrap_or(PLAIN);
            *counts.entry(key.to_owned()).or_insert(0) += 1;
        };
        let mut after = 0;
        loop {
            let page = self.inner.load_messages_after(room, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for message in page.iter().filter(|m| !m.deleted) {
                count(&message.html);
            }
        }
        let mut after = 0;
        loop {
            let page = self.inner.load_audit_after(room, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for reason in page.iter().filter_map(|e| e.reason.as_deref()) {
                count(reason);
            }
        }
        let users = self.inner.load_snapshot(room, 0).await?.users;
        for reason in users
            .iter()
            .filter_map(|u| u.ban.as_ref().and_then(|b| b.reason.as_deref()))
        {
            count(reason);
        }
        Ok(counts)
    }

    /// Seals anew the reasons of the bans kept with the room's people that are not sealed
    /// with the sealing key. Only before the room runs: it writes whole people.
    async fn reseal_people(&self, room: &str) -> Result<()> {
        let users = self.inner.load_snapshot(room, 0).await?.users;
        let mut batch = Vec::new();
        for user in users {
            let reason = user.ban.as_ref().and_then(|b| b.reason.as_ref());
            if !self.reason_is_current(reason) {
                let user = self.open_user(room, user)?;
                batch.push(Write::User(self.seal_user(room, user)));
            }
        }
        self.write_reseals(room, batch).await.map(drop)
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
        let path = &key_file_path(key_file, data_dir);
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
        for check in keys.checks().into_iter().filter(|c| {
            (c.id == keys.sealing_id() || c.id == crate::sealing::INDEX_KEY_ID)
                && !recorded.iter().any(|r| r.id == c.id)
        }) {
            inner
                .save_key_check(room, check)
                .await
                .context("keeping the data key's check value")?;
        }
        let sealed = Self::new(inner, keys);
        sealed
            .reseal_people(room)
            .await
            .context("sealing the reasons of bans anew")?;
        Ok(sealed)
    }

    /// A message as stored: its envelope sealed in place of its HTML, its blind tokens in
    /// place of its markdown.
    fn seal_message(&self, room: &str, mut message: StoredMessage) -> StoredMessage {
        let envelope = Envelope {
            text: std::mem::take(&mut message.raw),
            html: std::mem::take(&mut message.html),
            call: message.call.take(),
        };
        message.raw = self.index_text(room, &envelope.text);
        message.html = self.seal_envelope(room, message.seq, &envelope);
        message
    }

    fn seal_envelope(&self, room: &str, seq: Seq, envelope: &Envelope) -> String {
        let json = serde_json::to_string(envelope).unwrap_or_default();
        self.keys.seal(room, &message_place(seq), &json)
    }

    /// The blind tokens of `text`, as the markdown's place holds them (nothing for no text: a
    /// deleted message).
    fn index_text(&self, room: &str, text: &str) -> String {
        if text.is_empty() {
            return String::new();
        }
        let mut index = INDEX_PREFIX.to_owned();
        for token in self.keys.tokens(room, text) {
            index.push(' ');
            index.push_str(&token);
        }
        index
    }

    /// `text` sealed, unless it is empty (nothing to hide).
    fn seal_text(&self, room: &str, place: &str, text: &str) -> String {
        if text.is_empty() {
            String::new()
        } else {
            self.keys.seal(room, place, text)
        }
    }

    fn open_message(&self, room: &str, mut message: StoredMessage) -> Result<StoredMessage> {
        if !crate::sealing::is_sealed(&message.html) {
            // Plain: written before sealing, or deleted (its fixed HTML, no text).
            return Ok(message);
        }
        let place = message_place(message.seq);
        let json = self
            .keys
            .open(room, &place, &message.html)
            .map_err(|e| corrupt(&place, e))?;
        let envelope: Envelope = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("{place}: {e}")))?;
        message.raw = envelope.text;
        message.html = envelope.html;
        if envelope.call.is_some() {
            message.call = envelope.call;
        }
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
                    // The new text goes where the message's is: bound to the message.
                    let envelope = Envelope {
                        text: std::mem::take(raw),
                        html: std::mem::take(html),
                        call: None,
                    };
                    *raw = self.index_text(room, &envelope.text);
                    *html = self.seal_envelope(room, change.target, &envelope);
                }
                Write::Change(change)
            }
            Write::Audit(entry) => Write::Audit(self.seal_audit(room, entry)),
            Write::User(user) => Write::User(self.seal_user(room, user)),
            // Sealed already (by the re-sealing), or nothing people wrote.
            other @ (Write::Role { .. }
            | Write::Settings(_)
            | Write::Reseal { .. }
            | Write::ResealAudit(_)) => other,
        }
    }

    /// A search page through the blind index: the driver's own text search looks for the
    /// query's tokens (each query word's, where it has one) among the stored tokens and
    /// proposes candidates, newest first; each is opened and the one rule decides. A query
    /// with no word long enough for a token scans instead.
    async fn indexed(&self, room: &str, search: Search) -> Result<SearchPage> {
        let tokens: Vec<String> = search
            .query
            .words()
            .iter()
            .filter_map(|w| self.keys.query_token(room, w))
            .collect();
        let Ok(token_query) = protocol::search::SearchQuery::parse(&tokens.join(" ")) else {
            return self.scan(room, search).await;
        };
        let limit = usize::try_from(search.limit).unwrap_or(usize::MAX);
        let mut found = Vec::new();
        let mut before = search.before;
        for _ in 0..MAX_INNER_PAGES {
            let page = self
                .inner
                .search(
                    room,
                    Search {
                        query: token_query.clone(),
                        before,
                        ..search.clone()
                    },
                )
                .await?;
            for candidate in page.messages {
                let message = self.open_message(room, candidate)?;
                if search.query.finds(&message, search.viewer.as_deref()) {
                    found.push(message);
                }
            }
            if found.len() > limit {
                // One more than asked for: the page ends at the last one kept.
                found.truncate(limit);
                let next = found.last().map(|m| m.seq);
                return Ok(SearchPage {
                    messages: found,
                    next,
                });
            }
            match page.next {
                Some(next) => before = Some(next),
                None => {
                    return Ok(SearchPage {
                        messages: found,
                        next: None,
                    });
                }
            }
        }
        // Bounded work: the page says where to go on.
        Ok(SearchPage {
            messages: found,
            next: before,
        })
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

fn message_place(seq: Seq) -> String {
    format!("message {seq}")
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
        tokio::time::timeout(timeout, self.indexed(room, search))
            .await
            .map_err(|_| StoreError::TimedOut(timeout))?
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
        let messages = self.inner.load_messages_after(room, after, limit).await?;
        self.open_messages(room, messages)
    }

    async fn load_audit_after(
        &self,
        room: &str,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<protocol::AuditEntry>> {
        self.inner
            .load_audit_after(room, after, limit)
            .await?
            .into_iter()
            .map(|e| self.open_audit(room, e))
            .collect()
    }

    async fn compact(&self, room: &str) -> Result<()> {
        self.inner.compact(room).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use protocol::search::SearchQuery;

    fn message(seq: Seq, raw: &str) -> StoredMessage {
        StoredMessage {
            seq,
            id: format!("m{seq}"),
            user_id: "ann".into(),
            raw: raw.to_owned(),
            html: format!("<p>{raw}</p>\n"),
            ..StoredMessage::default()
        }
    }

    /// Where the driver has a text index (SQLite's FTS5), a search finds sealed text through
    /// the blind tokens however far back it is: one page, where a scan of the same bound would
    /// stop long before.
    #[tokio::test]
    async fn a_search_finds_sealed_text_through_the_index_not_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sealed::new(
            SqliteStore::open_dir(dir.path()).unwrap(),
            DataKeys::generate().unwrap(),
        );
        let mut batch = vec![Write::Message(message(1, "the Zanzibar plan"))];
        batch.extend((2..=3000).map(|seq| Write::Message(message(seq, &format!("hay {seq}")))));
        batch.push(Write::Message(message(3001, "zanzi, almost")));
        store.write_batch("r", batch).await.unwrap();
        let search = |query: &str, scan: usize| Search {
            viewer: Some("ann".into()),
            query: SearchQuery::parse(query).unwrap(),
            before: None,
            limit: 10,
            scan,
            timeout: std::time::Duration::from_secs(10),
        };
        let page = store.search("r", search("zanzib", 100)).await.unwrap();
        let found: Vec<(Seq, &str)> = page
            .messages
            .iter()
            .map(|m| (m.seq, m.raw.as_str()))
            .collect();
        assert_eq!(found, [(1, "the Zanzibar plan")]);
        assert_eq!(page.next, None, "the whole room, in one page");
        let page = store.search("r", search("zanzi", 100)).await.unwrap();
        assert_eq!(
            page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [3001, 1]
        );
        // A one-letter word has no token: the search scans, bounded, and says where to go on.
        let page = store.search("r", search("z", 100)).await.unwrap();
        assert_eq!(
            page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [3001]
        );
        assert!(page.next.is_some());
    }
}
