//! One room as the page shows it: its protocol [`Session`] (what the room said, what we
//! wrote), and what only the view needs (the connection as the user sees it, unread counts,
//! the notice shown).

use std::collections::BTreeMap;

use protocol::UserId;
use protocol::session::{Message, Session};

use crate::address::Address;

/// A room's place in this page's list; never reused while the page lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub u32);

/// The state of one room's connection, as the user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Opening the connection, or open and waiting for the room to say who we are.
    Connecting,
    /// Identified: messages go out at once.
    Online,
    /// Lost; the next attempt starts at `retry_at` (milliseconds since the epoch).
    Reconnecting {
        attempt: u32,
        retry_at: protocol::Millis,
    },
    /// The browser says it has no network: connecting waits until it is back.
    Offline,
    /// The room refused us as banned: no attempt by itself ("Retry now" tries again).
    Banned,
}

/// One room as the client shows it.
#[derive(Debug)]
pub struct RoomState {
    pub id: RoomId,
    pub address: Address,
    /// Everything the room told us and everything we wrote to it.
    pub session: Session,
    pub link: Link,
    /// Your name in this room only, when it differs from the one for all rooms.
    pub name_override: Option<String>,
    /// Messages from others that arrived while another room was shown.
    pub unread: u32,
    /// Those of them that mention you.
    pub mentions: u32,
    /// No notifications from this room.
    pub muted: bool,
    /// The last thing the room refused or warned about, shown until dismissed.
    pub notice: Option<String>,
    /// The conversation shown when this room is: the room itself (`None`), or the direct one
    /// with that person.
    pub conversation: Option<UserId>,
    /// Direct conversations you opened in this page, before either of you wrote (the
    /// session lists those with messages).
    pub opened: Vec<UserId>,
    /// Direct messages that arrived while their conversation was not shown, by person.
    pub direct_unread: BTreeMap<UserId, u32>,
    /// Your own names for people here (never sent to the server).
    pub aliases: BTreeMap<UserId, String>,
    /// A message the session has revealed ([`protocol::session::Event::Revealed`]): in the
    /// timeline now, for the view to scroll to (and then clear).
    pub revealed: Option<protocol::Seq>,
    /// The search panel is open. Opening a result closes it and keeps the search (the Search
    /// button shows the same results again); closing it ends the search.
    pub search_shown: bool,
}

impl RoomState {
    pub fn new(id: RoomId, address: Address, session: Session) -> Self {
        Self {
            id,
            address,
            session,
            link: Link::Connecting,
            name_override: None,
            unread: 0,
            mentions: 0,
            muted: false,
            notice: None,
            conversation: None,
            opened: Vec::new(),
            direct_unread: BTreeMap::new(),
            aliases: BTreeMap::new(),
            revealed: None,
            search_shown: false,
        }
    }

    /// The direct conversations of this room, the latest first, then those opened and not
    /// written in yet.
    pub fn conversations(&self) -> Vec<UserId> {
        let mut all = self.session.conversations();
        for peer in &self.opened {
            if !all.contains(peer) {
                all.push(peer.clone());
            }
        }
        all
    }

    /// Unread direct messages from all conversations.
    pub fn direct_unread_total(&self) -> u32 {
        self.direct_unread.values().sum()
    }

    /// Where what you write here is kept: per room address, and per conversation in it.
    pub fn draft_key(&self) -> String {
        match &self.conversation {
            None => self.address.to_string(),
            Some(peer) => format!("{}#direct:{peer}", self.address),
        }
    }

    /// What the shown conversation is called: the room's name, or the person's.
    pub fn conversation_title(&self) -> String {
        match &self.conversation {
            None => self.title(),
            Some(peer) => self.name_of(peer),
        }
    }

    /// The room's name, or its address until it has said its name.
    pub fn title(&self) -> String {
        self.session
            .server_name()
            .map_or_else(|| self.address.to_string(), str::to_owned)
    }

    /// The shown conversation's stored messages, then ours not stored yet.
    pub fn shown_messages(&self) -> impl Iterator<Item = &Message> {
        let me = self
            .session
            .identity()
            .map(|i| i.user_id.clone())
            .unwrap_or_default();
        let conversation = self.conversation.clone();
        self.session
            .messages()
            .iter()
            .chain(self.session.pending())
            .filter(move |m| m.is_in(&me, conversation.as_deref()))
    }

    pub fn is_me(&self, user: &str) -> bool {
        self.session.is_me(user)
    }

    /// Your name as this room knows it.
    pub fn my_name(&self) -> Option<&str> {
        self.session.my_name()
    }

    /// A user's name as you see it: your own name for them if you gave one, else their
    /// current name here, told apart from anyone else of the same name.
    pub fn name_of(&self, user: &str) -> String {
        match self.aliases.get(user) {
            Some(alias) => alias.clone(),
            None => self.chosen_name_of(user),
        }
    }

    /// The name a user chose here (told apart from others of the same name), whatever you
    /// call them.
    pub fn chosen_name_of(&self, user: &str) -> String {
        self.session.names().shown(user)
    }

    /// What to say of a person's name where your own name for them is shown: their chosen
    /// one (for a tooltip and the accessible description); `None` without an alias.
    pub fn alias_note(&self, user: &str) -> Option<String> {
        self.aliases
            .contains_key(user)
            .then(|| format!("calls themselves {}", self.chosen_name_of(user)))
    }

    /// Who is typing in the shown conversation, said as a chat says it: "Ana is typing…",
    /// two or three names, then "Several people are typing…". `None` when nobody is.
    pub fn typing_line(&self) -> Option<String> {
        let names: Vec<String> = self
            .session
            .typing_in(self.conversation.as_deref())
            .map(|u| self.name_of(u))
            .collect();
        Some(match names.as_slice() {
            [] => return None,
            [one] => format!("{one} is typing…"),
            [a, b] => format!("{a} and {b} are typing…"),
            [a, b, c] => format!("{a}, {b} and {c} are typing…"),
            _ => "Several people are typing…".to_owned(),
        })
    }

    /// Online users, by name, you first.
    pub fn people(&self) -> Vec<(UserId, String, bool)> {
        let mut people: Vec<(UserId, String, bool)> = self
            .session
            .online()
            .iter()
            .map(|u| (u.clone(), self.name_of(u), self.is_me(u)))
            .collect();
        people.sort_by(|a, b| {
            b.2.cmp(&a.2)
                .then_with(|| a.1.to_lowercase().cmp(&b.1.to_lowercase()))
        });
        people
    }

    /// The people online here that `typed` (what follows an `@`) may be the start of, by the
    /// name they chose or by your own name for them, at most `max`: each as the list shows it
    /// (your name for them, with theirs) and the name a mention of them carries (theirs: the
    /// name everyone else's client knows them by).
    pub fn mention_candidates(&self, typed: &str, max: usize) -> Vec<(String, String)> {
        let wanted = typed.to_lowercase();
        self.people()
            .into_iter()
            .filter(|(_, _, me)| !me)
            .filter_map(|(user, shown, _)| {
                let chosen = self.session.names().get(&user)?.to_owned();
                let fits = |name: &str| name.to_lowercase().starts_with(&wanted);
                let listed = if shown == chosen {
                    shown
                } else {
                    format!("{shown} ({chosen})")
                };
                (fits(&chosen) || fits(&self.name_of(&user))).then_some((listed, chosen))
            })
            .take(max)
            .collect()
    }
}
