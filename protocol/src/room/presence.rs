//! Presence in O(N): who came online, went offline or renamed is collected for one short tick
//! (`RoomConfig::presence_tick_ms`) and then told to everyone in one `PRESENCE` frame, each
//! person at most once, as they are at the tick's end. So N people joining cost each
//! connection one frame per tick, not N.
//!
//! Legacy v1 clients ignore `PRESENCE` (an unknown type). They get what they need from us
//! instead, lazily: their own `NAME_CHANGE`, `USER_INFO` and `USER_CONNECTED` when they
//! identify, the echo of their own rename, and the `NAME_CHANGE` of a person just before the
//! first message of that person's name they receive (see [`Room::tell_legacy_name`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{DEFAULT_NAME, Effect, Room};
use crate::wire::{Millis, NameChanged, Presence, ServerAction, UserId, UserRef};

/// A person's presence at the end of the tick so far.
#[derive(Debug, Clone, Copy)]
enum State {
    Online { joined_at: Option<Millis> },
    Offline { last_seen: Millis },
}

/// The changes of the running tick.
#[derive(Debug, Default)]
pub(super) struct Tick {
    states: BTreeMap<UserId, State>,
    renamed: BTreeMap<UserId, String>,
    /// When the tick ends: set by its first change.
    due: Option<Millis>,
}

impl Tick {
    /// Whether the tick holds a change of this person.
    fn touches(&self, user: &str) -> bool {
        self.states.contains_key(user) || self.renamed.contains_key(user)
    }
}

impl Room {
    /// When the running presence tick ends, if one runs.
    pub(super) fn presence_due(&self) -> Option<Millis> {
        self.presence.due
    }

    fn presence_started(&mut self, now: Millis) {
        if self.presence.due.is_none() {
            self.presence.due = Some(now + self.config.presence_tick_ms);
        }
    }

    /// Whether `user` has an identified connection here or, in a cluster, through another
    /// node.
    pub(super) fn is_online(&self, user: &str) -> bool {
        self.everywhere.contains_key(user)
    }

    /// How many people are online, here or through another node.
    pub(super) fn online_count(&self) -> u32 {
        u32::try_from(self.everywhere.len()).unwrap_or(u32::MAX)
    }

    /// `user` is online at one more place (here, or another node): whether they were offline
    /// everywhere before.
    pub(super) fn place_added(&mut self, user: &str) -> bool {
        if let Some(places) = self.everywhere.get_mut(user) {
            *places += 1;
            return false;
        }
        self.everywhere.insert(user.to_owned(), 1);
        true
    }

    /// `user` is online at one place fewer: whether they are offline everywhere now.
    pub(super) fn place_removed(&mut self, user: &str) -> bool {
        match self.everywhere.get_mut(user) {
            Some(places) if *places > 1 => {
                *places -= 1;
                false
            }
            Some(_) => {
                self.everywhere.remove(user);
                true
            }
            None => false,
        }
    }

    /// Whether `user` is online through another node of the cluster (as it last said).
    pub(super) fn online_elsewhere(&self, user: &str) -> bool {
        // Places beyond this node's own.
        let here = u32::from(self.online.contains_key(user));
        self.everywhere
            .get(user)
            .is_some_and(|places| *places > here)
    }

    /// Up to `limit` of the people online, here or through another node, whose ids come
    /// after `after` (from the first without it), in the order of their ids; and the id the
    /// next page starts after, if there are more.
    pub(super) fn online_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<UserId>, Option<UserId>) {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        let mut page: Vec<UserId> = self
            .everywhere
            .range::<str, _>((from, Unbounded))
            .map(|(id, _)| id.clone())
            .take(limit.saturating_add(1))
            .collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().cloned()
        } else {
            None
        };
        (page, next)
    }

    /// Who is online through this node: what a node of a cluster tells the others.
    pub fn online_here(&self) -> Vec<UserId> {
        self.online.keys().cloned().collect()
    }

    /// Changes whenever [`Self::online_here`] does: a node tells the others at once.
    pub fn online_here_version(&self) -> u64 {
        self.here_version
    }

    /// Node `node` of the cluster says who is online through it now (everyone, each time; an
    /// empty list when it stops or stops being heard from). Whoever was not online anywhere
    /// comes online; whoever it no longer names and who is not online elsewhere goes offline,
    /// last seen now (that node records it in the log, if it still can).
    pub fn handle_node_presence(&mut self, now: Millis, node: &str, online: Vec<UserId>) {
        let said: BTreeSet<UserId> = online.into_iter().collect();
        let before = self.remote.remove(node).unwrap_or_default();
        let came: Vec<UserId> = said.difference(&before).cloned().collect();
        let gone: Vec<UserId> = before.difference(&said).cloned().collect();
        if !said.is_empty() {
            self.remote.insert(node.to_owned(), said);
        }
        for user in came {
            if self.place_added(&user) {
                let (joined_at, last_seen) = self
                    .users
                    .get(&user)
                    .map_or((None, None), |u| (u.joined_at, u.last_seen));
                self.came_online(now, user, joined_at, last_seen);
            }
        }
        for user in gone {
            if self.place_removed(&user) {
                self.went_offline(now, user, false);
            }
        }
        self.calls_lose_elsewhere(now);
    }

    /// `user` was offline everywhere and is online now.
    pub(super) fn came_online(
        &mut self,
        now: Millis,
        user: UserId,
        joined_at: Option<Millis>,
        last_seen: Option<Millis>,
    ) {
        if let Some(seen) = last_seen {
            self.seen_order.remove(&(seen, user.clone()));
        }
        self.presence_joined(now, user, joined_at);
    }

    /// `user` is offline everywhere now: last seen now (stored, when `persist`: this node
    /// held their last connection).
    pub(super) fn went_offline(&mut self, now: Millis, user: UserId, persist: bool) {
        if let Some(entry) = self.users.get_mut(&user) {
            if let Some(before) = entry.last_seen.replace(now) {
                self.seen_order.remove(&(before, user.clone()));
            }
            self.seen_order.insert((now, user.clone()));
            if persist {
                let record = entry.record(&user);
                self.effects.push_back(Effect::PersistUser(record));
            }
        }
        self.presence_left(now, user);
    }

    /// `user`'s first connection was identified.
    pub(super) fn presence_joined(&mut self, now: Millis, user: UserId, joined_at: Option<Millis>) {
        self.presence_started(now);
        self.presence
            .states
            .insert(user, State::Online { joined_at });
    }

    /// `user`'s last connection closed.
    pub(super) fn presence_left(&mut self, now: Millis, user: UserId) {
        self.presence_started(now);
        self.presence
            .states
            .insert(user, State::Offline { last_seen: now });
    }

    /// `user` took a new name.
    pub(super) fn presence_renamed(&mut self, now: Millis, user: UserId, name: String) {
        self.presence_started(now);
        self.presence.renamed.insert(user, name);
    }

    /// The tick is over when it is due; [`Room::handle_timeout`] calls this.
    pub(super) fn presence_timeout(&mut self, now: Millis) {
        if self.presence.due.is_some_and(|due| due <= now) {
            self.presence_flush();
        }
    }

    /// Tells everyone the tick's changes now (its end, or earlier: before a message of a person
    /// it names, so nobody sees a message of someone they have not been told of).
    pub(super) fn presence_flush_for(&mut self, author: &str) {
        if self.presence.touches(author) {
            self.presence_flush();
        }
    }

    fn presence_flush(&mut self) {
        let Tick {
            states, renamed, ..
        } = std::mem::take(&mut self.presence);
        let mut presence = Presence {
            names: renamed,
            ..Presence::default()
        };
        for (user, state) in states {
            match state {
                State::Online { joined_at } => {
                    if let Some(entry) = self.users.get(&user)
                        && entry.name != DEFAULT_NAME
                    {
                        presence
                            .names
                            .entry(user.clone())
                            .or_insert_with(|| entry.name.clone());
                    }
                    presence.joined.push(UserRef {
                        joined_at,
                        ..UserRef::of(user)
                    });
                }
                State::Offline { last_seen } => presence.left.push(UserRef {
                    last_seen: Some(last_seen),
                    ..UserRef::of(user)
                }),
            }
        }
        if !presence.is_empty() {
            presence.online_count = Some(self.online_count());
            self.effects
                .push_back(Effect::Broadcast(ServerAction::Presence(presence)));
        }
    }

    /// Person `index` took a new name: every legacy connection is to be told it again
    /// (before their next message it receives).
    pub(super) fn forget_legacy_name(&mut self, index: u32) {
        for conn in &self.legacy {
            if let Some(connection) = self.connections.get_mut(conn) {
                connection.legacy_names.forget(index);
            }
        }
    }

    /// Before a room message of `author` reaches the legacy connections, each of them that has
    /// not been told `author`'s current name is told it (`NAME_CHANGE`, to it alone).
    pub(super) fn tell_legacy_name(&mut self, author: &str) {
        if self.legacy.is_empty() {
            return;
        }
        let Some(entry) = self.users.get(author) else {
            return;
        };
        let (name, index) = (entry.name.clone(), entry.index);
        let mut told = Vec::new();
        for conn in &self.legacy {
            let Some(connection) = self.connections.get_mut(conn) else {
                continue;
            };
            if !connection.legacy_names.told(index) {
                connection.legacy_names.tell(index);
                told.push(*conn);
            }
        }
        if !told.is_empty() {
            // One frame for all of them: a host serialises it once.
            self.effects.push_back(Effect::Multicast {
                to: told,
                action: ServerAction::NameChange(NameChanged::new(author.to_owned(), name)),
            });
        }
    }
}
