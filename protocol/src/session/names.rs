//! The names of a room's people, as the client shows them.
//!
//! Two people may choose the same name (the room allows it: a v1 client could not be told
//! otherwise), so wherever a shared name is shown it carries the start of the person's id,
//! `Ana #3f2a`, and people can tell them apart. Counts per name are kept as names change, so
//! showing a name costs the same however many people the room has.

use std::collections::{BTreeMap, HashMap};

use crate::wire::UserId;

/// Shown for an id the room never named.
pub const UNKNOWN_NAME: &str = "Anonymous";

/// How many characters of the id tell two people with one name apart.
const ID_SUFFIX_CHARS: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct Names {
    by_id: BTreeMap<UserId, String>,
    /// How many people currently have each name.
    counts: HashMap<String, u32>,
}

impl Names {
    /// `id` is now called `name`.
    pub fn insert(&mut self, id: UserId, name: String) {
        if self.by_id.get(&id) == Some(&name) {
            return;
        }
        *self.counts.entry(name.clone()).or_insert(0) += 1;
        if let Some(old) = self.by_id.insert(id, name)
            && let Some(count) = self.counts.get_mut(&old)
        {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&old);
            }
        }
    }

    /// Several at once (a handshake's or a history page's names).
    pub fn extend(&mut self, names: impl IntoIterator<Item = (UserId, String)>) {
        for (id, name) in names {
            self.insert(id, name);
        }
    }

    /// The name `id` chose, if the room told us.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(String::as_str)
    }

    /// The name to show for `id`: the chosen one, with the start of the id when someone else
    /// has the same name.
    pub fn shown(&self, id: &str) -> String {
        let name = self.get(id).unwrap_or(UNKNOWN_NAME);
        if self.counts.get(name).is_some_and(|&n| n > 1) {
            let suffix: String = id.chars().take(ID_SUFFIX_CHARS).collect();
            format!("{name} #{suffix}")
        } else {
            name.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_who_share_a_name_are_shown_apart_and_only_while_they_do() {
        let mut names = Names::default();
        names.extend([
            ("3f2a11".into(), "Ana".into()),
            ("9b0c22".into(), "Bo".into()),
        ]);
        assert_eq!(names.shown("3f2a11"), "Ana");
        names.insert("9b0c22".into(), "Ana".into());
        assert_eq!(names.shown("3f2a11"), "Ana #3f2a");
        assert_eq!(names.shown("9b0c22"), "Ana #9b0c");
        // Renaming back ends the clash; the same name twice is not a clash with oneself.
        names.insert("9b0c22".into(), "Bo".into());
        names.insert("3f2a11".into(), "Ana".into());
        assert_eq!(names.shown("3f2a11"), "Ana");
        assert_eq!(names.shown("unknown"), UNKNOWN_NAME);
    }
}
