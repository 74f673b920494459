//! What the room answers with its messages: `HANDSHAKE`, `RESUME`, `HISTORY` and
//! `SEARCH_RESULTS`, each with only what its viewer may see and within the one byte budget
//! (`max_answer_bytes`, see [`fit`]).

use super::{
    Connection, ConnectionId, DirectConversation, Effect, MAX_NAME_CHARS, MAX_NONCE_CHARS,
    RECENT_PEOPLE, Room, SearchTask, StoredMessage, UserEntry,
};
use crate::error::ErrorCode;
use crate::wire::{
    ConversationSummary, Conversations, Handshake, History, HistoryRequest, MessageRecord, Millis,
    PROTOCOL_VERSION, PeoplePage, PeopleRequest, Person, Resume, RoomLimits, Search, SearchResults,
    Seq, ServerAction, UserId,
};

impl Room {
    /// The `HANDSHAKE` a new connection gets: the newest room messages (as many as the count
    /// and the byte budget allow; sent before anyone is identified, so room messages only:
    /// direct messages follow identification), the people list, the room's limits.
    pub(super) fn handshake(&self, now: Millis) -> Handshake {
        let newest_first = self
            .recent
            .iter()
            .rev()
            .filter(|m| m.visible_to(None))
            .take(self.config.handshake_messages)
            .map(StoredMessage::to_record);
        let (mut messages, _) = fit(newest_first, self.config.max_answer_bytes, Keep::WhatFits);
        messages.reverse();
        let (online, _) = self.online_page(None, self.config.handshake_people);
        let people = self.people(&online);
        let mut user_names = self.names_of(messages.iter().map(|m| &m.user_id));
        user_names.extend(self.names_of(people.iter().map(|p| &p.user_id)));
        Handshake {
            server_name: self.config.server_name.clone(),
            messages,
            user_names,
            protocol_version: Some(PROTOCOL_VERSION),
            latest_seq: Some(self.latest_seq),
            online: Some(online),
            online_count: Some(self.online_count()),
            limits: Some(RoomLimits {
                max_message_chars: u32::try_from(self.config.max_message_chars).unwrap_or(u32::MAX),
                max_name_chars: u32::try_from(MAX_NAME_CHARS).unwrap_or(u32::MAX),
                rate_burst: self.config.rate_burst,
                rate_per_second: self.config.rate_per_second,
            }),
            people: Some(people),
            ice_servers: self.config.ice_servers.clone(),
            roles: self.roles(),
            timed_out: self.timed_out(now),
            banned: self.bans(now),
            room: self.settings.clone(),
        }
    }

    /// The people `online` names, then the [`RECENT_PEOPLE`] seen most recently, as the
    /// people list shows them.
    fn people(&self, online: &[UserId]) -> Vec<Person> {
        let now_here = online.iter().filter_map(|id| self.person(id));
        let lately = self
            .seen_order
            .iter()
            .rev()
            .filter_map(|(_, id)| self.person(id))
            .take(RECENT_PEOPLE);
        now_here.chain(lately).collect()
    }

    /// Someone of the room as the people list shows them.
    fn person(&self, id: &UserId) -> Option<Person> {
        let entry: &UserEntry = self.users.get(id)?;
        Some(Person {
            user_id: id.clone(),
            joined_at: entry.joined_at,
            last_seen: entry.last_seen,
        })
    }

    /// `PEOPLE_REQUEST`: the next page of the people online (at most `handshake_people`),
    /// with their names; it costs a token of the connection's rate like any other request.
    pub(super) fn people_request(&mut self, now: Millis, conn: ConnectionId, asked: PeopleRequest) {
        if !self.spend_token(now, conn, None) {
            return;
        }
        // A page of none would end the paging: at least one.
        let limit = usize::try_from(asked.limit)
            .unwrap_or(usize::MAX)
            .clamp(1, self.config.handshake_people.max(1));
        let (online, next) = self.online_page(asked.after.as_deref(), limit);
        let people = online.iter().filter_map(|id| self.person(id)).collect();
        let user_names = self.names_of(online.iter());
        let page = PeoplePage {
            after: asked.after,
            people,
            user_names,
            next,
            online_count: self.online_count(),
        };
        self.send(conn, ServerAction::People(page));
    }

    /// Storage answered an [`Effect::LoadHistory`]: `messages` (any order) have `seq < before`
    /// (and are in the conversation `with`, when one was asked for).
    pub fn handle_history_loaded(
        &mut self,
        _now: Millis,
        conn: ConnectionId,
        (before, with): (Seq, Option<UserId>),
        mut messages: Vec<StoredMessage>,
        has_more: bool,
    ) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        // Storage was asked for this viewer's history only; checked again all the same.
        let viewer = connection.viewer();
        messages.retain(|m| m.seq < before && m.in_page_for(viewer, with.as_deref()));
        messages.sort_by_key(|m| m.seq);
        // The newest of the page, as many as fit (always at least one, so that paging moves
        // on); if some were left out, there is more.
        let newest_first = messages.iter().rev().map(StoredMessage::to_record);
        let (mut records, cut) = fit(newest_first, self.config.max_answer_bytes, Keep::AtLeastOne);
        let has_more = has_more || cut;
        records.reverse();
        let user_names = self.names_of(records.iter().map(|m| &m.user_id));
        self.send(
            conn,
            ServerAction::History(History {
                before,
                with,
                messages: records,
                has_more,
                user_names,
            }),
        );
    }

    /// The host ran an [`Effect::Search`]: `messages` are its results (any order). They are
    /// checked again (visibility, the query, `before`), cut to the page and the byte budget,
    /// and sent as `SEARCH_RESULTS`; `next` is where the search goes on.
    pub fn handle_search_done(
        &mut self,
        _now: Millis,
        task: SearchTask,
        mut messages: Vec<StoredMessage>,
        mut next: Option<Seq>,
    ) {
        let Some(connection) = self.connections.get_mut(&task.to) else {
            return;
        };
        connection.searching = false;
        let viewer = connection.viewer();
        let before = task.before.unwrap_or(Seq::MAX);
        messages.retain(|m| m.seq < before && task.query.finds(m, viewer));
        messages.sort_by_key(|m| std::cmp::Reverse(m.seq));
        messages.dedup_by_key(|m| m.seq);
        let limit = usize::try_from(task.limit.min(self.config.search_page)).unwrap_or(0);
        if messages.len() > limit {
            messages.truncate(limit);
            next = messages.last().map(|m| m.seq);
        }
        let records = messages.iter().map(StoredMessage::to_record);
        let (records, cut) = fit(records, self.config.max_answer_bytes, Keep::AtLeastOne);
        if cut {
            // Go on after the last one that fit.
            next = records.last().and_then(|r| r.seq);
        }
        let user_names = self.names_of(records.iter().map(|m| &m.user_id));
        self.send(
            task.to,
            ServerAction::SearchResults(SearchResults {
                query: task.asked,
                before: task.before,
                nonce: task.nonce,
                messages: records,
                next,
                user_names,
            }),
        );
    }

    /// The host could not run an [`Effect::Search`] (storage failed, or it ran out of time):
    /// the asker gets `SEARCH_FAILED` with its nonce.
    pub fn handle_search_failed(&mut self, _now: Millis, task: SearchTask) {
        let Some(connection) = self.connections.get_mut(&task.to) else {
            return;
        };
        connection.searching = false;
        self.refuse_for(
            task.to,
            ErrorCode::SearchFailed,
            "the search could not be finished; try again, or with other words",
            task.nonce.as_ref(),
        );
    }

    /// Storage could not answer an [`Effect::LoadHistory`]: the asker gets `HISTORY_FAILED`
    /// (no message of theirs is affected).
    pub fn handle_history_failed(&mut self, _now: Millis, conn: ConnectionId) {
        if self.connections.contains_key(&conn) {
            self.refuse(
                conn,
                ErrorCode::HistoryFailed,
                "older history could not be read; try again",
            );
        }
    }

    /// The `HANDSHAKE` (sent before identification) carried room messages only: a client that
    /// identified without `since` gets the direct messages of its own among the latest it
    /// would have seen, as a `RESUME` that only adds them.
    pub(super) fn direct_since_handshake(&mut self, conn: ConnectionId, handshake_seq: Seq) {
        let Some(viewer) = self.connections.get(&conn).and_then(Connection::viewer) else {
            return;
        };
        let mut latest: Vec<&StoredMessage> = self
            .recent
            .iter()
            .rev()
            .filter(|m| m.seq <= handshake_seq && m.visible_to(Some(viewer)))
            .take(self.config.handshake_messages)
            .collect();
        latest.reverse();
        // And those stored between the handshake and now: they reached no one here (only
        // identified viewers get direct messages live).
        latest.extend(
            self.recent
                .iter()
                .filter(|m| m.seq > handshake_seq && m.to.is_some() && m.visible_to(Some(viewer))),
        );
        let since = latest.first().map_or(handshake_seq, |m| m.seq - 1);
        let missed: Vec<MessageRecord> = latest
            .into_iter()
            .filter(|m| m.to.is_some())
            .map(StoredMessage::to_record)
            .collect();
        if !missed.is_empty() {
            self.send_resume(conn, since, missed);
        }
    }

    pub(super) fn resume(&mut self, conn: ConnectionId, since: Seq, handshake_seq: Seq) {
        if since > self.latest_seq
            && since <= self.latest_seq.saturating_add(self.log_lag_allowed())
            && let Some(connection) = self.connections.get_mut(&conn)
        {
            // This node is behind the shared log: what came up to `since` the client has.
            connection.seen_through = since;
            self.ahead_through = self.ahead_through.max(since);
        }
        let viewer = self.connections.get(&conn).and_then(Connection::viewer);
        // What came after `since`: new messages, and older ones changed since (as they are now).
        // A direct message stored after the handshake and before identification reached no
        // one on this connection (only identified viewers get them live): it is missed too.
        let missed: Vec<MessageRecord> = self
            .recent
            .iter()
            .filter(|m| {
                ((m.seq > since && (m.seq <= handshake_seq || m.to.is_some()))
                    || m.changed_seq.is_some_and(|c| c > since))
                    && m.visible_to(viewer)
            })
            .map(StoredMessage::to_record)
            .collect();
        self.send_resume(conn, since, missed);
    }

    /// The one `RESUME` answer: what `conn` missed after `since`, oldest first, or that the
    /// gap is too big to fill (older than the room keeps in memory, more than `max_resume`
    /// messages, or over the byte budget), which the client fills by paging history.
    fn send_resume(&mut self, conn: ConnectionId, since: Seq, missed: Vec<MessageRecord>) {
        let count = missed.len();
        let (messages, cut) = fit(missed, self.config.max_answer_bytes, Keep::WhatFits);
        let gap_too_big = cut
            || count > self.config.max_resume
            || since < self.recent_floor.max(self.changes_floor)
            || since > self.latest_seq.saturating_add(self.log_lag_allowed());
        let messages = if gap_too_big { Vec::new() } else { messages };
        let user_names = self.names_of(messages.iter().map(|m| &m.user_id));
        self.send(
            conn,
            ServerAction::Resume(Resume {
                since,
                messages,
                gap_too_big,
                user_names,
            }),
        );
    }

    /// How far ahead of this node a resume may be: a cluster node may be behind the shared
    /// log by up to `max_resume` events; a single process's log is all there is.
    fn log_lag_allowed(&self) -> Seq {
        if self.config.shared_log {
            Seq::try_from(self.config.max_resume).unwrap_or(Seq::MAX)
        } else {
            0
        }
    }

    pub(super) fn history(&mut self, now: Millis, conn: ConnectionId, request: HistoryRequest) {
        if !self.spend_token(now, conn, None) {
            return;
        }
        if request.limit == 0 {
            return self.refuse(
                conn,
                ErrorCode::InvalidHistoryRequest,
                "limit must be at least 1",
            );
        }
        let limit = request.limit.min(self.config.max_history_page);
        let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
        let viewer = self.connections.get(&conn).and_then(Connection::viewer);
        let with = request.with;
        let older: Vec<&StoredMessage> = self
            .recent
            .iter()
            .filter(|m| m.seq < request.before && m.in_page_for(viewer, with.as_deref()))
            .collect();
        let from_memory = older.len() >= wanted || self.recent_floor == 0 || request.before <= 1;
        if !from_memory {
            let viewer = viewer.map(str::to_owned);
            self.effects.push_back(Effect::LoadHistory {
                to: conn,
                viewer,
                with,
                before: request.before,
                limit,
            });
            return;
        }
        let skip = older.len().saturating_sub(wanted);
        // Nothing has a seq below 1: a page before 1 (or 0) is the start of the room.
        let has_more = (skip > 0 || self.recent_floor > 0) && request.before > 1;
        let page: Vec<StoredMessage> = older[skip..].iter().map(|m| (*m).clone()).collect();
        self.handle_history_loaded(now, conn, (request.before, with), page, has_more);
    }

    /// Storage answered an [`Effect::LoadConversations`]: the person's conversations, the
    /// latest first, go to the connection as `CONVERSATIONS` (checked again: only those with
    /// a latest message the person is in; as many as the byte budget holds).
    pub fn handle_conversations_loaded(
        &mut self,
        _now: Millis,
        conn: ConnectionId,
        mut found: Vec<DirectConversation>,
    ) {
        let Some(viewer) = self.connections.get(&conn).and_then(Connection::viewer) else {
            return;
        };
        found.retain(|c| c.last.peer_of(viewer) == Some(&c.with));
        found.truncate(usize::try_from(self.config.max_conversations).unwrap_or(usize::MAX));
        let (records, _) = fit(
            found.iter().map(|c| c.last.to_record()),
            self.config.max_answer_bytes,
            Keep::WhatFits,
        );
        let conversations: Vec<ConversationSummary> = found
            .into_iter()
            .zip(records)
            .map(|(c, last)| ConversationSummary {
                with: c.with,
                last,
                unread: c.unread,
            })
            .collect();
        let user_names = self.names_of(conversations.iter().map(|c| &c.with));
        self.send(
            conn,
            ServerAction::Conversations(Conversations {
                conversations,
                user_names,
            }),
        );
    }

    pub(super) fn search(&mut self, now: Millis, conn: ConnectionId, request: Search) {
        let nonce = request
            .nonce
            .filter(|n| (1..=MAX_NONCE_CHARS).contains(&n.chars().count()));
        if !self.spend_token(now, conn, nonce.as_ref()) {
            return;
        }
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if connection.searching {
            return self.refuse_for(
                conn,
                ErrorCode::RateLimited,
                "one search at a time: wait for the results of the last one",
                nonce.as_ref(),
            );
        }
        let query = match crate::search::SearchQuery::parse(&request.query) {
            Ok(query) => query,
            Err(problem) => {
                return self.refuse_for(
                    conn,
                    ErrorCode::InvalidSearch,
                    problem.to_string(),
                    nonce.as_ref(),
                );
            }
        };
        connection.searching = true;
        let viewer = connection.viewer().map(str::to_owned);
        self.effects.push_back(Effect::Search(SearchTask {
            to: conn,
            viewer,
            query,
            asked: request.query,
            before: request.before,
            nonce,
            limit: self.config.search_page,
            scan: self.config.search_scan,
        }));
    }
}

/// Whether an answer keeps its first record when that alone is over the budget.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// A page of history or search results: it must move on, so it always has one.
    AtLeastOne,
    /// Only what fits (none, if the first does not).
    WhatFits,
}

/// The one byte budget of an answer's messages: `records` in the order given, as many as fit
/// in `max` bytes on the wire, and whether any were left out.
fn fit(
    records: impl IntoIterator<Item = MessageRecord>,
    max: usize,
    keep: Keep,
) -> (Vec<MessageRecord>, bool) {
    let mut budget = max;
    let mut kept = Vec::new();
    for record in records {
        match budget.checked_sub(record.wire_len()) {
            Some(rest) => budget = rest,
            None if kept.is_empty() && keep == Keep::AtLeastOne => budget = 0,
            None => return (kept, true),
        }
        kept.push(record);
    }
    (kept, false)
}

#[cfg(test)]
mod fit_tests {
    use super::*;

    fn record(seq: Seq, text: &str) -> MessageRecord {
        StoredMessage {
            seq,
            raw: text.to_owned(),
            ..StoredMessage::default()
        }
        .to_record()
    }

    #[test]
    fn an_answer_keeps_what_fits_in_order_and_says_when_it_left_some_out() {
        let records: Vec<MessageRecord> = (1..=5).map(|s| record(s, &"x".repeat(100))).collect();
        let one = records[0].wire_len();
        let seqs = |kept: &[MessageRecord]| kept.iter().filter_map(|r| r.seq).collect::<Vec<_>>();
        // Room for three (and a bit): the first three, and some were left out.
        let (kept, cut) = fit(records.clone(), one * 3 + one / 2, Keep::WhatFits);
        assert_eq!((seqs(&kept), cut), (vec![1, 2, 3], true));
        // Room for all: all of them, nothing left out.
        let (kept, cut) = fit(records.clone(), one * 5, Keep::WhatFits);
        assert_eq!((seqs(&kept), cut), (vec![1, 2, 3, 4, 5], false));
        // Room for none: nothing, unless the answer is a page, which must move on.
        let (kept, cut) = fit(records.clone(), one - 1, Keep::WhatFits);
        assert_eq!((seqs(&kept), cut), (vec![], true));
        let (kept, cut) = fit(records, one - 1, Keep::AtLeastOne);
        assert_eq!((seqs(&kept), cut), (vec![1], true));
    }
}
