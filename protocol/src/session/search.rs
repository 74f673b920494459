//! Searching the room (and one's direct messages in it), page after page: the query is the
//! room's rule, checked here first; a server's results are checked again (visibility, the
//! words, the order), and answers to an older search are dropped.

use super::{Message, Phase, Session};
use crate::ErrorCode;
use crate::wire::{ClientAction, Millis, Seq};

/// A search of the room (and of one's direct messages in it), page after page.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchState {
    /// What was typed.
    pub query: String,
    /// Its words, for highlighting results.
    pub words: crate::search::SearchQuery,
    /// The nonce of the request out (or last answered): answers to older ones are dropped.
    nonce: String,
    /// Newest first.
    pub results: Vec<Message>,
    /// Older results may exist: search on before this seq.
    pub next: Option<Seq>,
    pub status: SearchStatus,
}

/// Where a search is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchStatus {
    /// A page was asked for and has not come.
    Searching,
    /// The latest page came.
    Done,
    /// The room refused or could not answer (the reason, to show), or went offline.
    Failed(String),
}

impl Session {
    /// The search shown, if any.
    pub fn search(&self) -> Option<&SearchState> {
        self.search.as_ref()
    }

    /// Searches the room for `query` (the room's rule, checked here first): results replace
    /// any earlier search's.
    pub fn start_search(
        &mut self,
        now: Millis,
        query: &str,
    ) -> Result<(), crate::search::QueryError> {
        let words = crate::search::SearchQuery::parse(query)?;
        let nonce = self.next_nonce();
        self.search = Some(SearchState {
            query: query.to_owned(),
            words,
            nonce: nonce.clone(),
            results: Vec::new(),
            next: None,
            status: SearchStatus::Searching,
        });
        self.ask_search(now, None, nonce);
        Ok(())
    }

    /// Asks for the next (older) page of results, if there is one and none is out; after a
    /// failure, asks again for the page that failed.
    pub fn search_more(&mut self, now: Millis) {
        let nonce = self.next_nonce();
        let Some(search) = &mut self.search else {
            return;
        };
        let before = match &search.status {
            SearchStatus::Done if search.next.is_some() => search.next,
            SearchStatus::Failed(_) => search.results.last().and_then(|m| m.seq),
            _ => return,
        };
        search.status = SearchStatus::Searching;
        search.nonce = nonce.clone();
        self.ask_search(now, before, nonce);
    }

    /// Closes the search.
    pub fn end_search(&mut self) {
        self.search = None;
    }

    fn ask_search(&mut self, now: Millis, before: Option<Seq>, nonce: String) {
        let Some(search) = &mut self.search else {
            return;
        };
        if self.phase != Phase::Online {
            search.status =
                SearchStatus::Failed("The room is not connected; search again when it is.".into());
            return;
        }
        self.queued.push(ClientAction::Search(crate::Search {
            query: search.query.clone(),
            before,
            nonce: Some(nonce),
        }));
        self.flush(now);
    }

    pub(super) fn on_search_results(&mut self, page: crate::SearchResults) {
        if self
            .search
            .as_ref()
            .is_none_or(|s| page.nonce.as_ref() != Some(&s.nonce))
        {
            return;
        }
        self.names.extend(page.user_names);
        // A server is not trusted: only what matches, visible to us, newest first, once.
        let me = self.identity.as_ref().map(|i| i.user_id.clone());
        let results: Vec<Message> = page
            .messages
            .into_iter()
            .filter(|r| {
                r.seq.is_some()
                    && !r.deleted
                    && crate::room::may_see(me.as_deref(), &r.user_id, r.to.as_deref())
            })
            .map(|r| self.stored(format!("r{}", r.seq.unwrap_or_default()), r))
            .collect();
        let Some(search) = &mut self.search else {
            return;
        };
        let older_than = search
            .results
            .last()
            .and_then(|m| m.seq)
            .unwrap_or(Seq::MAX);
        for message in results {
            if message.seq.is_some_and(|seq| seq < older_than)
                && search.words.matches(&message.raw)
                && !search.results.iter().any(|m| m.seq == message.seq)
            {
                search.results.push(message);
            }
        }
        search.results.sort_by_key(|m| std::cmp::Reverse(m.seq));
        search.next = page.next;
        search.status = SearchStatus::Done;
    }

    /// A refusal of the search out is the search's (by its nonce; from an older room that
    /// names none, by its code), and nobody else's: true when it was.
    pub(super) fn search_refused(&mut self, error: &crate::ErrorPayload) -> bool {
        if let Some(search) = &mut self.search
            && search.status == SearchStatus::Searching
            && (error.nonce.as_ref() == Some(&search.nonce)
                || error.nonce.is_none()
                    && matches!(
                        error.code,
                        ErrorCode::InvalidSearch | ErrorCode::SearchFailed
                    ))
        {
            search.status = SearchStatus::Failed(match error.code {
                ErrorCode::RateLimited => {
                    "You are searching too fast; try again in a moment.".into()
                }
                _ => error.message.clone(),
            });
            return true;
        }
        false
    }

    /// The connection is gone: a search out will not be answered.
    pub(super) fn search_offline(&mut self) {
        if let Some(search) = &mut self.search
            && search.status == SearchStatus::Searching
        {
            search.status =
                SearchStatus::Failed("The room went offline; search again when it is back.".into());
        }
    }
}
