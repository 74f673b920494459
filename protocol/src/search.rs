//! What a search is: its words, what it matches, how a page of results is cut. One rule for
//! every place that searches (both stores, the in-memory rooms of the demo and the tests), so
//! that a store's index only finds candidates and this module decides.
//!
//! A query is a few words; a message matches when each word starts one of the message's words
//! (in any case: `hel` finds "Hello", not "Othello"). Words are runs of letters and digits;
//! everything else (spaces, punctuation, markdown) separates them.

use std::ops::Range;

use crate::Seq;
use crate::stored::StoredMessage;

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words a query may have.
pub const MAX_QUERY_WORDS: usize = 8;

/// Why a query is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No letters or digits at all.
    #[error("search for at least one word")]
    Empty,
    /// More than [`MAX_QUERY_CHARS`].
    #[error("a search is at most {MAX_QUERY_CHARS} characters")]
    TooLong,
    /// More than [`MAX_QUERY_WORDS`].
    #[error("a search is at most {MAX_QUERY_WORDS} words")]
    TooManyWords,
}

/// A checked query: its distinct words, in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    words: Vec<String>,
}

/// The words of `text` with their byte ranges: runs of letters and digits.
pub fn word_ranges(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = None;
    let mut chars = text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')));
    std::iter::from_fn(move || {
        for (at, c) in chars.by_ref() {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(at),
                (false, Some(from)) => {
                    start = None;
                    return Some(from..at);
                }
                _ => {}
            }
        }
        None
    })
}

impl SearchQuery {
    /// Checks a query as a person typed it.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong);
        }
        let mut words: Vec<String> = Vec::new();
        for range in word_ranges(query) {
            let word = query[range].to_lowercase();
            if !words.contains(&word) {
                words.push(word);
            }
        }
        if words.is_empty() {
            return Err(QueryError::Empty);
        }
        if words.len() > MAX_QUERY_WORDS {
            return Err(QueryError::TooManyWords);
        }
        Ok(Self { words })
    }

    /// The distinct words, in lower case, in the order typed.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Whether every word of the query starts a word of `text`.
    pub fn matches(&self, text: &str) -> bool {
        let found: Vec<String> = word_ranges(text).map(|r| text[r].to_lowercase()).collect();
        self.words
            .iter()
            .all(|w| found.iter().any(|t| t.starts_with(w.as_str())))
    }

    /// The words of `text` that a word of the query starts (byte ranges, in order): what a
    /// result highlights.
    pub fn highlights(&self, text: &str) -> Vec<Range<usize>> {
        word_ranges(text)
            .filter(|r| {
                let word = text[r.clone()].to_lowercase();
                self.words.iter().any(|w| word.starts_with(w.as_str()))
            })
            .collect()
    }

    /// Whether `message` is a result of this query for `viewer`: visible to them, not
    /// deleted, matching.
    pub fn finds(&self, message: &StoredMessage, viewer: Option<&str>) -> bool {
        !message.deleted && message.visible_to(viewer) && self.matches(&message.raw)
    }
}

/// A result's text as a list shows it: at most about `max_chars` characters around the first
/// highlighted word, cut at character boundaries (with `…` where cut), in pieces that are
/// highlighted (`true`) or not.
pub fn snippet(text: &str, highlights: &[Range<usize>], max_chars: usize) -> Vec<(String, bool)> {
    // Start a little before the first match, so that it has some context.
    let first = highlights.first().map_or(0, |r| r.start);
    let lead = max_chars / 4;
    let mut start = text[..first]
        .char_indices()
        .rev()
        .nth(lead.saturating_sub(1))
        .map_or(0, |(at, _)| at);
    if first == 0 {
        start = 0;
    }
    let end = text[start..]
        .char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(at, _)| start + at);
    let mut pieces = Vec::new();
    if start > 0 {
        pieces.push(("…".to_owned(), false));
    }
    let mut at = start;
    for range in highlights {
        let (from, to) = (range.start.max(at), range.end.min(end));
        if from >= to {
            continue;
        }
        if from > at {
            pieces.push((text[at..from].to_owned(), false));
        }
        pieces.push((text[from..to].to_owned(), true));
        at = to;
    }
    if at < end {
        pieces.push((text[at..end].to_owned(), false));
    }
    if end < text.len() {
        pieces.push(("…".to_owned(), false));
    }
    pieces
}

/// One page of results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPage {
    /// Newest first.
    pub messages: Vec<StoredMessage>,
    /// Where the search goes on (search again with `before` this seq); `None` when it has
    /// reached the start of the room.
    pub next: Option<Seq>,
}

/// Searches `newest_first` (messages with `seq < before`, newest first): up to `limit` results,
/// looking at no more than `scan` messages. When the scan ends early, the page says where to go
/// on.
pub fn search_newest_first<M: std::borrow::Borrow<StoredMessage>>(
    newest_first: impl IntoIterator<Item = M>,
    query: &SearchQuery,
    viewer: Option<&str>,
    limit: usize,
    scan: usize,
) -> SearchPage {
    let mut page = SearchPage::default();
    let mut last = None;
    for (scanned, message) in newest_first.into_iter().enumerate() {
        let message = message.borrow();
        if scanned == scan {
            page.next = last;
            return page;
        }
        last = Some(message.seq);
        if query.finds(message, viewer) {
            if page.messages.len() == limit {
                // One more than asked for: there is more, older than the last one kept.
                page.next = page.messages.last().map(|m| m.seq);
                return page;
            }
            page.messages.push(message.clone());
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: Seq, raw: &str) -> StoredMessage {
        StoredMessage {
            seq,
            id: format!("m{seq}"),
            user_id: "u1".into(),
            raw: raw.into(),
            html: String::new(),
            timestamp: 0,
            nonce: None,
            edited_at: None,
            deleted: false,
            removed: false,
            changed_seq: None,
            reactions: Vec::new(),
            reply_to: None,
            to: None,
            call: None,
        }
    }

    #[test]
    fn a_word_matches_the_start_of_a_word_in_any_case() {
        let q = SearchQuery::parse("hel").unwrap();
        assert!(q.matches("**Hello** there"));
        assert!(q.matches("say HELP"));
        assert!(!q.matches("Othello"));
        assert!(!q.matches("he llo"));
        let q = SearchQuery::parse("Ünï").unwrap();
        assert!(q.matches("über ünïcode"));
    }

    #[test]
    fn every_word_must_match() {
        let q = SearchQuery::parse("lunch, friday!").unwrap();
        assert_eq!(q.words(), ["lunch", "friday"]);
        assert!(q.matches("Friday: lunch at noon"));
        assert!(!q.matches("lunch at noon"));
    }

    #[test]
    fn queries_are_checked() {
        assert_eq!(SearchQuery::parse(" ,.!? "), Err(QueryError::Empty));
        assert_eq!(SearchQuery::parse(""), Err(QueryError::Empty));
        assert_eq!(
            SearchQuery::parse(&"a".repeat(MAX_QUERY_CHARS + 1)),
            Err(QueryError::TooLong)
        );
        assert!(SearchQuery::parse(&"a".repeat(MAX_QUERY_CHARS)).is_ok());
        assert_eq!(
            SearchQuery::parse("a b c d e f g h i"),
            Err(QueryError::TooManyWords)
        );
        // The same word twice is one word.
        assert_eq!(SearchQuery::parse("a A a").unwrap().words(), ["a"]);
    }

    #[test]
    fn highlights_are_the_matched_words() {
        let q = SearchQuery::parse("lun fri").unwrap();
        let text = "On Friday, lunch; not brunch.";
        let words: Vec<&str> = q.highlights(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(words, ["Friday", "lunch"]);
    }

    #[test]
    fn a_snippet_shows_the_match_in_some_context() {
        let q = SearchQuery::parse("needle").unwrap();
        let text = format!("{} the Needle is here {}", "a".repeat(100), "b".repeat(100));
        let pieces = snippet(&text, &q.highlights(&text), 40);
        let shown: String = pieces.iter().map(|(t, _)| t.as_str()).collect();
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(shown.chars().count() <= 42, "{shown}");
        let marked: Vec<&str> = pieces
            .iter()
            .filter(|(_, hit)| *hit)
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(marked, ["Needle"]);
        // Short text: whole, nothing cut.
        let pieces = snippet("Needle: ünïcode", &q.highlights("Needle: ünïcode"), 40);
        assert_eq!(
            pieces,
            [("Needle".to_owned(), true), (": ünïcode".to_owned(), false)]
        );
    }

    #[test]
    fn a_page_is_cut_at_the_limit_and_at_the_scan_bound() {
        let all: Vec<StoredMessage> = (1..=10)
            .rev()
            .map(|seq| message(seq, if seq % 2 == 0 { "even hit" } else { "odd" }))
            .collect();
        let q = SearchQuery::parse("hit").unwrap();
        let page = search_newest_first(&all, &q, None, 2, usize::MAX);
        let seqs: Vec<Seq> = page.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [10, 8]);
        assert_eq!(page.next, Some(8));
        // The last page: nothing older.
        let page = search_newest_first(all.iter().filter(|m| m.seq < 4), &q, None, 2, 100);
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.next, None);
        // Scanning stops after 3 messages (10, 9, 8): go on before 8.
        let page = search_newest_first(&all, &q, None, 5, 3);
        assert_eq!(page.messages.len(), 2);
        assert_eq!(page.next, Some(8));
    }

    #[test]
    fn others_direct_messages_and_deleted_ones_are_never_found() {
        let mut direct = message(3, "secret plan");
        direct.to = Some("u2".into());
        let mut deleted = message(2, "secret gone");
        deleted.deleted = true;
        let all = vec![direct, deleted, message(1, "secret room")];
        let q = SearchQuery::parse("secret").unwrap();
        let seqs = |viewer| {
            search_newest_first(&all, &q, viewer, 10, 10)
                .messages
                .iter()
                .map(|m| m.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(None), [1]);
        assert_eq!(seqs(Some("u3")), [1]);
        assert_eq!(seqs(Some("u2")), [3, 1]);
        assert_eq!(seqs(Some("u1")), [3, 1]);
    }
}
