//! Which of a room's messages the log renders: the log holds up to
//! [`crate::state::MAX_KEPT_MESSAGES`] in memory but renders only a window of them near the
//! view, so that a long conversation costs the page a bounded DOM and bounded work per change.
//!
//! The window is kept by message keys, not positions: history pages arrive above, new messages
//! below, and the oldest held ones are let go, all without moving what the reader sees.

use std::ops::Range;

/// Messages rendered at least while following the conversation at its newest end; new ones
/// are added below until [`STEP`] more, and then that many leave the top at once (one message
/// in and one out each time would move every rendered message, for the browser to lay out again).
pub const NEWEST: usize = 60;
/// Messages added to the window at a time, as the reader scrolls past its edge.
pub const STEP: usize = 40;
/// The most messages rendered at once; what goes past it on one side leaves on the other.
pub const MOST: usize = 140;

/// Which messages the log renders.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogWindow {
    /// The newest [`NEWEST`], following the conversation as it grows.
    #[default]
    Newest,
    /// Following, from `0` on: the newest [`NEWEST`] to [`NEWEST`] + [`STEP`] (see
    /// [`LogWindow::settled`]).
    Following(String),
    /// From `first` to `last`, both included, whatever arrives meanwhile. `first` of `None` is
    /// the oldest message held, so that a history page asked for lands in the window.
    Span { first: Option<String>, last: String },
}

impl LogWindow {
    /// The positions rendered among `keys`, the keys of the messages shown, oldest first.
    pub fn range(&self, keys: &[&str]) -> Range<usize> {
        let n = keys.len();
        match self {
            LogWindow::Newest => n.saturating_sub(NEWEST)..n,
            LogWindow::Following(from) => {
                let tail = n.saturating_sub(NEWEST);
                match position(keys, from) {
                    Some(start) if start <= tail && n - start <= NEWEST + STEP => start..n,
                    _ => tail..n,
                }
            }
            LogWindow::Span { first, last } => {
                let position = |key: &str| position(keys, key);
                // A last message gone (let go, or a pending one stored under another key):
                // the window reaches the newest.
                let end = position(last).map_or(n, |i| i + 1);
                let start = first.as_deref().and_then(position).unwrap_or(0).min(end);
                if end - start <= MOST {
                    start..end
                } else if first.is_none() {
                    // A page arrived above: the window keeps its top, and lets go below.
                    start..start + MOST
                } else {
                    end - MOST..end
                }
            }
        }
    }

    /// Whether the window follows the conversation.
    pub fn follows(&self) -> bool {
        matches!(self, LogWindow::Newest | LogWindow::Following(_))
    }

    /// The same window with its start fixed where it is now, when that moved (a following
    /// window keeps its start while it grows).
    pub fn settled(&self, keys: &[&str]) -> Option<LogWindow> {
        if !self.follows() {
            return None;
        }
        let start = keys.get(self.range(keys).start)?;
        match self {
            LogWindow::Following(from) if from == start => None,
            _ => Some(LogWindow::Following((*start).to_owned())),
        }
    }

    /// The same messages, no longer following: what arrives below waits to be scrolled to.
    pub fn held(&self, keys: &[&str]) -> LogWindow {
        span(keys, self.range(keys))
    }

    /// [`STEP`] older messages held in memory, letting go of as many newer ones past
    /// [`MOST`]; `None` when the window already starts at the oldest held.
    pub fn older(&self, keys: &[&str]) -> Option<LogWindow> {
        let range = self.range(keys);
        if range.start == 0 {
            return None;
        }
        let start = range.start.saturating_sub(STEP);
        Some(span(keys, start..range.end.min(start + MOST)))
    }

    /// Waiting for a history page: a window held starts at whatever is oldest when it comes.
    /// One following the newest keeps following (the page shows as the reader scrolls up).
    pub fn awaiting_older(&self, keys: &[&str]) -> LogWindow {
        if self.follows() {
            return self.clone();
        }
        let range = self.range(keys);
        match range.end.checked_sub(1).and_then(|i| keys.get(i)) {
            Some(last) => LogWindow::Span {
                first: None,
                last: (*last).to_owned(),
            },
            None => LogWindow::Newest,
        }
    }

    /// [`STEP`] newer messages, letting go of as many older ones past [`MOST`]; `None` when
    /// the window already reaches the newest.
    pub fn newer(&self, keys: &[&str]) -> Option<LogWindow> {
        let range = self.range(keys);
        if range.end >= keys.len() {
            return None;
        }
        let end = (range.end + STEP).min(keys.len());
        Some(span(keys, range.start.max(end.saturating_sub(MOST))..end))
    }

    /// A window with the message at `index` in its middle.
    pub fn around(keys: &[&str], index: usize) -> LogWindow {
        let index = index.min(keys.len().saturating_sub(1));
        let start = index.saturating_sub(STEP);
        span(keys, start..(index + STEP + 1).min(keys.len()))
    }
}

/// Where `key` is among `keys`, searched from the newest end (where windows mostly are).
pub fn position(keys: &[&str], key: &str) -> Option<usize> {
    keys.iter().rposition(|k| *k == key)
}

/// The window of `range` among `keys`, by its ends' keys.
fn span(keys: &[&str], range: Range<usize>) -> LogWindow {
    match (
        keys.get(range.start),
        range.end.checked_sub(1).and_then(|i| keys.get(i)),
    ) {
        (Some(first), Some(last)) if range.start < range.end => LogWindow::Span {
            first: Some((*first).to_owned()),
            last: (*last).to_owned(),
        },
        _ => LogWindow::Newest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(range: Range<usize>) -> Vec<String> {
        range.map(|i| format!("m{i}")).collect()
    }

    fn refs(keys: &[String]) -> Vec<&str> {
        keys.iter().map(String::as_str).collect()
    }

    /// Whether the window reaches the newest message.
    fn at_newest(window: &LogWindow, keys: &[&str]) -> bool {
        window.range(keys).end == keys.len()
    }

    #[test]
    fn following_renders_the_newest_only() {
        let held = keys(0..5_000);
        let keys = refs(&held);
        assert_eq!(LogWindow::Newest.range(&keys), 4_940..5_000);
        assert!(at_newest(&LogWindow::Newest, &keys));
        let few = refs(&held[..10]);
        assert_eq!(LogWindow::Newest.range(&few), 0..10);
    }

    #[test]
    fn following_adds_below_and_lets_a_step_go_at_once() {
        let held = keys(0..1_000);
        let mut window = LogWindow::Newest
            .settled(&refs(&held))
            .expect("its start is fixed");
        assert_eq!(window.range(&refs(&held)), 940..1_000);
        let mut starts = Vec::new();
        // A hundred arrive, one at a time, while the oldest held are let go (5,000 at most).
        for arrived in 1..=100 {
            let now = keys(arrived..1_000 + arrived);
            let range = window.range(&refs(&now));
            assert!((NEWEST..=NEWEST + STEP).contains(&range.len()), "{range:?}");
            assert_eq!(range.end, now.len());
            starts.push(now[range.start].clone());
            if let Some(next) = window.settled(&refs(&now)) {
                window = next;
            }
        }
        starts.dedup();
        // The top moved three times in a hundred arrivals, not a hundred.
        assert_eq!(starts.len(), 3, "{starts:?}");
        assert!(window.follows());
    }

    #[test]
    fn a_held_window_stays_on_its_messages_while_others_arrive_and_leave() {
        let before = keys(100..1_000);
        let window = LogWindow::Newest.held(&refs(&before));
        assert_eq!(window.range(&refs(&before)), 840..900);
        // Fifty arrive below, and the twenty oldest held are let go.
        let after = keys(120..1_050);
        let range = window.range(&refs(&after));
        assert_eq!(&after[range.clone()], &before[840..900]);
        assert!(!at_newest(&window, &refs(&after)));
    }

    #[test]
    fn scrolling_up_renders_older_ones_and_lets_go_of_newer_ones_past_the_bound() {
        let held = keys(0..1_000);
        let keys = refs(&held);
        let mut window = LogWindow::Newest;
        let mut steps = 0;
        while let Some(next) = window.older(&keys) {
            let range = next.range(&keys);
            assert!(range.len() <= MOST, "{range:?}");
            assert!(range.start < window.range(&keys).start);
            window = next;
            steps += 1;
        }
        assert_eq!(window.range(&keys), 0..MOST);
        assert_eq!(steps, (1_000 - NEWEST).div_ceil(STEP));
        // And down again to the newest.
        while let Some(next) = window.newer(&keys) {
            let range = next.range(&keys);
            assert!(range.len() <= MOST, "{range:?}");
            window = next;
        }
        assert_eq!(window.range(&keys), 1_000 - MOST..1_000);
        assert!(at_newest(&window, &keys));
    }

    #[test]
    fn a_history_page_lands_in_the_window_above_what_was_first() {
        let before = keys(500..600);
        let window = LogWindow::Newest.held(&refs(&before));
        let window = window.older(&refs(&before)).expect("forty more held");
        assert_eq!(window.older(&refs(&before)), None);
        let window = window.awaiting_older(&refs(&before));
        assert_eq!(window.range(&refs(&before)), 0..100);
        // A page of fifty older ones arrives: all rendered, above the hundred.
        let after = keys(450..600);
        let range = window.range(&refs(&after));
        assert_eq!(range, 0..MOST);
        assert_eq!(after[range.start], "m450");
    }

    #[test]
    fn following_the_newest_keeps_following_while_a_page_is_asked_for() {
        let before = keys(0..20);
        let window = LogWindow::Newest.awaiting_older(&refs(&before));
        assert_eq!(window, LogWindow::Newest);
        let after = keys(0..21);
        assert!(at_newest(&window, &refs(&after)));
    }

    #[test]
    fn a_message_far_from_the_view_is_rendered_in_the_middle_of_its_window() {
        let held = keys(0..3_000);
        let keys = refs(&held);
        let window = LogWindow::around(&keys, 1_234);
        let range = window.range(&keys);
        assert!(range.contains(&1_234));
        assert_eq!(1_234 - range.start, range.end - 1 - 1_234);
        assert_eq!(LogWindow::around(&keys, 2).range(&keys).start, 0);
        assert!(at_newest(&LogWindow::around(&keys, 2_999), &keys));
        assert_eq!(LogWindow::around(&[], 0), LogWindow::Newest);
    }

    #[test]
    fn a_window_whose_messages_are_gone_falls_back_to_the_newest_end() {
        let window = LogWindow::Span {
            first: Some("gone".into()),
            last: "gone too".into(),
        };
        let held = keys(0..500);
        assert_eq!(window.range(&refs(&held)), 500 - MOST..500);
    }
}
