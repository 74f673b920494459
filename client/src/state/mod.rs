//! The client's state: its rooms in the order of the sidebar, what is shown, preferences.
//!
//! Each room's protocol (identity, pending messages, resume, history, pacing) is its
//! [`protocol::session::Session`]: the same rules drive the demo's fake users and the tests.
//! What is here is the view's: which room is shown, unread counts, notices, what survives a
//! reload. No IO and no clock: time comes in as an argument. The network loop
//! (`network.rs`) applies the UI's intents here and drains the sessions
//! ([`AppState::settle`]); components read this state and send intents.
//!
//! # Layout
//! - this file: [`AppState`].
//! - `room`: one room as shown ([`RoomState`], [`Link`]).
//! - `saved`: what survives a reload ([`Saved`], [`Settings`]).

mod call;
mod room;
mod saved;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use protocol::session::{Event, Identity, Session, SessionConfig};
use protocol::{ClientAction, Millis, Renderer};

use crate::address::{Address, AddressError};

pub use protocol::session::{Delivery, History, Message as ChatMessage};
pub use room::{Link, RoomId, RoomState};
pub use saved::{Saved, SavedPending, SavedRoom, Settings};

/// Sent messages kept for Up/Down recall.
const RECALL_LIMIT: usize = 50;
/// Messages kept per room: a server (trusted by no one) cannot grow the page without bound.
/// The oldest go when new ones arrive; scrolling up pages them in again.
pub const MAX_KEPT_MESSAGES: usize = 5_000;
/// Messages of each server room kept across a reload, to show while it cannot be reached.
const KEPT_ACROSS_RELOAD: usize = 50;

/// Where a new name applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameScope {
    All,
    Room(RoomId),
}

/// Why a name was refused: the room's own rule ([`protocol::clean_name`]), checked here first.
pub use protocol::NameProblem as NameError;

/// Checks a name as the room will, and gives it as the room will store it.
pub fn check_name(wanted: &str) -> Result<String, NameError> {
    protocol::clean_name(wanted, crate::format::nfc)
}

/// What the network loop must do for a room after a change: the actions to send, in order,
/// and when to wake the room's session.
#[derive(Debug, Default, PartialEq)]
pub struct Settled {
    pub send: Vec<ClientAction>,
    pub wake_at: Option<Millis>,
    /// Browser notifications to show (title, body): mentions of you, when allowed.
    pub notify: Vec<(String, String)>,
    /// What the call's media must do, in order.
    pub calls: Vec<protocol::session::CallEvent>,
}

/// The whole client.
#[derive(Debug)]
pub struct AppState {
    /// Rooms in the order of the sidebar.
    pub rooms: Vec<RoomState>,
    pub active: Option<RoomId>,
    pub settings: Settings,
    /// What you sent, oldest first, for Up/Down recall in the composer.
    pub sent: Vec<String>,
    /// Identities in rooms you removed, by address, restored if you add the room again.
    past_identities: BTreeMap<String, Identity>,
    /// Your names for people in rooms you removed, by address, likewise.
    past_aliases: BTreeMap<String, BTreeMap<protocol::UserId, String>>,
    /// False while the tab is in the background: the shown room counts unread messages too.
    page_visible: bool,
    next_room: u32,
    /// Unique to this page load, so nonces never repeat across reloads.
    nonce_prefix: String,
}

fn render(raw: &str) -> std::rc::Rc<str> {
    crate::format::message_html(&Renderer::new(), raw)
}

impl AppState {
    /// An empty client. `nonce_prefix` must differ between page loads (random).
    pub fn new(settings: Settings, nonce_prefix: String) -> Self {
        Self {
            rooms: Vec::new(),
            active: None,
            settings,
            sent: Vec::new(),
            past_identities: BTreeMap::new(),
            past_aliases: BTreeMap::new(),
            page_visible: true,
            next_room: 1,
            nonce_prefix,
        }
    }

    /// The client as it was saved. Addresses that no longer parse are dropped.
    pub fn from_saved(saved: Saved, nonce_prefix: String) -> Self {
        let mut state = Self::new(saved.settings, nonce_prefix);
        state.sent = saved.sent;
        state.past_identities = saved.past_identities;
        state.past_aliases = saved.aliases;
        for room in saved.rooms {
            if let Ok((id, true)) = state.add_room(&room.address)
                && let Some(added) = state.room_mut(id)
            {
                added.session.set_identity(room.identity);
                added.session.set_server_name(room.server_name);
                added.name_override = room.name_override;
                added.muted = room.muted;
                for waiting in room.pending {
                    added.session.restore_pending(
                        waiting.raw,
                        waiting.nonce,
                        waiting.timestamp,
                        waiting.reply_to,
                        waiting.to,
                    );
                }
            }
            state.update_wanted_name(&room.address, 0);
        }
        let active = saved
            .active
            .and_then(|address| {
                state
                    .rooms
                    .iter()
                    .find(|r| r.address.to_string() == address)
            })
            .map(|r| r.id);
        if let Some(id) = active {
            state.active = Some(id);
        }
        state
    }

    /// The latest messages of a server room, to show after a reload while the room cannot be
    /// reached (as a history page, names included). Mock rooms have none to keep.
    pub fn history_to_keep(&self, id: RoomId) -> Option<protocol::History> {
        let room = self.room(id).filter(|r| !r.address.is_mock())?;
        Some(room.session.history_to_keep(KEPT_ACROSS_RELOAD))
    }

    /// Shows what [`Self::history_to_keep`] kept, until the room answers.
    pub fn restore_history(&mut self, id: RoomId, kept: protocol::History) {
        if let Some(room) = self.room_mut(id) {
            room.session.restore_history(kept);
        }
    }

    /// What to remember. Identities in mock rooms are not: those rooms end with the page.
    pub fn to_saved(&self) -> Saved {
        Saved {
            rooms: self
                .rooms
                .iter()
                .map(|r| {
                    let server = !r.address.is_mock();
                    SavedRoom {
                        muted: r.muted,
                        address: r.address.to_string(),
                        identity: r.session.identity().filter(|_| server).cloned(),
                        name_override: r.name_override.clone(),
                        server_name: r
                            .session
                            .server_name()
                            .filter(|_| server)
                            .map(str::to_owned),
                        pending: r
                            .session
                            .pending()
                            .iter()
                            .filter(|m| server && m.delivery == Delivery::Pending)
                            .filter_map(|m| {
                                Some(SavedPending {
                                    raw: m.raw.clone(),
                                    nonce: m.nonce.clone()?,
                                    timestamp: m.timestamp,
                                    reply_to: m.reply_to,
                                    to: m.to.clone(),
                                })
                            })
                            .collect(),
                    }
                })
                .collect(),
            active: self.active_room().map(|r| r.address.to_string()),
            settings: self.settings.clone(),
            sent: self.sent.clone(),
            past_identities: self.past_identities.clone(),
            aliases: {
                // Mock rooms' people end with the page, like your identity there.
                let mut all = self.past_aliases.clone();
                for room in self.rooms.iter().filter(|r| !r.address.is_mock()) {
                    if !room.aliases.is_empty() {
                        all.insert(room.address.to_string(), room.aliases.clone());
                    }
                }
                all
            },
        }
    }

    pub fn room(&self, id: RoomId) -> Option<&RoomState> {
        self.rooms.iter().find(|r| r.id == id)
    }

    fn room_mut(&mut self, id: RoomId) -> Option<&mut RoomState> {
        self.rooms.iter_mut().find(|r| r.id == id)
    }

    pub fn active_room(&self) -> Option<&RoomState> {
        self.active.and_then(|id| self.room(id))
    }

    /// Unread messages over all rooms and conversations, for the tab title.
    pub fn total_unread(&self) -> u32 {
        self.rooms
            .iter()
            .map(|r| r.unread + r.direct_unread_total())
            .sum()
    }

    /// Adds a room by address; returns its id and whether it is new (an address already
    /// open returns the existing room). The first room becomes the active one.
    pub fn add_room(&mut self, input: &str) -> Result<(RoomId, bool), AddressError> {
        Ok(self.add_address(Address::parse(input)?))
    }

    /// [`Self::add_room`], with the address checked already.
    pub fn add_address(&mut self, address: Address) -> (RoomId, bool) {
        if let Some(existing) = self.rooms.iter().find(|r| r.address == address) {
            return (existing.id, false);
        }
        let id = RoomId(self.next_room);
        self.next_room += 1;
        let mut session = Session::new(SessionConfig {
            nonce_prefix: format!("{}.{}", self.nonce_prefix, id.0),
            keep_messages: MAX_KEPT_MESSAGES,
            render,
        });
        session.set_identity(self.past_identities.remove(&address.to_string()));
        let aliases = self
            .past_aliases
            .remove(&address.to_string())
            .unwrap_or_default();
        // Not connected yet: the time is not used.
        session.set_wanted_name(0, self.settings.display_name.clone());
        let mut room = RoomState::new(id, address, session);
        room.aliases = aliases;
        self.rooms.push(room);
        if self.active.is_none() {
            self.active = Some(id);
        }
        (id, true)
    }

    /// Removes a room. Your identity there is kept aside, so adding it again brings it back.
    /// If it was shown, its neighbour is shown instead.
    pub fn remove_room(&mut self, id: RoomId) {
        let Some(index) = self.rooms.iter().position(|r| r.id == id) else {
            return;
        };
        let room = self.rooms.remove(index);
        if let Some(identity) = room.session.identity()
            && !room.address.is_mock()
        {
            self.past_identities
                .insert(room.address.to_string(), identity.clone());
        }
        if !room.address.is_mock() && !room.aliases.is_empty() {
            self.past_aliases
                .insert(room.address.to_string(), room.aliases.clone());
        }
        if self.active == Some(id) {
            let next = index.min(self.rooms.len().saturating_sub(1));
            self.active = self.rooms.get(next).map(|r| r.id);
            if let Some(id) = self.active {
                self.select(id);
            }
        }
    }

    /// Shows a room, in the conversation it showed last; that conversation's unread count
    /// is cleared.
    pub fn select(&mut self, id: RoomId) {
        if let Some(room) = self.room_mut(id) {
            match &room.conversation {
                None => {
                    room.unread = 0;
                    room.mentions = 0;
                }
                Some(peer) => {
                    room.direct_unread.remove(peer);
                }
            }
            self.active = Some(id);
        }
    }

    /// Shows a conversation of a room: the room itself (`None`) or the direct one with a
    /// person, which is listed from now on even before either of you writes.
    pub fn open_conversation(&mut self, id: RoomId, peer: Option<protocol::UserId>) {
        if let Some(room) = self.room_mut(id) {
            if let Some(peer) = &peer
                && !room.opened.contains(peer)
                && !room.is_me(peer)
            {
                room.opened.push(peer.clone());
            }
            room.conversation = peer.filter(|p| !room.is_me(p));
            room.revealed = None;
        }
        self.select(id);
    }

    /// Searches a room (and your direct messages there) for `query` (checked by the room's
    /// rule first: a refusal says why).
    pub fn search(
        &mut self,
        id: RoomId,
        query: &str,
        now: Millis,
    ) -> Result<(), protocol::search::QueryError> {
        match self.room_mut(id) {
            Some(room) => room.session.start_search(now, query),
            None => Ok(()),
        }
    }

    /// Asks for the next (older) page of a room's search results.
    pub fn search_more(&mut self, id: RoomId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.search_more(now);
        }
    }

    /// Shows message `seq` of a room (a reply's original): its session pages history in
    /// until it is there, then says so ([`RoomState::revealed`]).
    pub fn reveal(&mut self, id: RoomId, seq: protocol::Seq, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.revealed = None;
            let with = room.conversation.clone();
            room.session.reveal_in(now, seq, with);
        }
    }

    /// The view has scrolled to the message revealed.
    pub fn shown_revealed(&mut self, id: RoomId) {
        if let Some(room) = self.room_mut(id) {
            room.revealed = None;
        }
    }

    /// Closes a room's search.
    pub fn end_search(&mut self, id: RoomId) {
        if let Some(room) = self.room_mut(id) {
            room.session.end_search();
            room.search_shown = false;
        }
    }

    /// Opens a room's search panel (with the search kept, if there is one).
    pub fn show_search(&mut self, id: RoomId) {
        if let Some(room) = self.room_mut(id) {
            room.search_shown = true;
        }
    }

    /// Shows a search result in its context: its conversation (the room, or the direct one
    /// it belongs to), at the message (revealed as [`Self::reveal`] does).
    pub fn open_result(&mut self, id: RoomId, seq: protocol::Seq, now: Millis) {
        let Some(room) = self.room(id) else {
            return;
        };
        let me = room
            .session
            .identity()
            .map(|i| i.user_id.clone())
            .unwrap_or_default();
        let Some(found) = room
            .session
            .search()
            .and_then(|s| s.results.iter().find(|m| m.seq == Some(seq)))
        else {
            return;
        };
        let peer = found.peer(&me).cloned();
        if room.conversation != peer || self.active != Some(id) {
            self.open_conversation(id, peer);
        }
        // The panel makes way for the result; the search is kept for the Search button.
        if let Some(room) = self.room_mut(id) {
            room.search_shown = false;
        }
        self.reveal(id, seq, now);
    }

    /// Gives a person your own name for them in a room (`None` or blank takes it back). It
    /// is checked like any name, kept across reloads, and never sent.
    pub fn set_alias(
        &mut self,
        id: RoomId,
        user: &str,
        alias: Option<&str>,
    ) -> Result<(), NameError> {
        let alias = match alias.map(str::trim).filter(|a| !a.is_empty()) {
            Some(alias) => Some(check_name(alias)?),
            None => None,
        };
        if let Some(room) = self.room_mut(id) {
            match alias {
                Some(alias) => room.aliases.insert(user.to_owned(), alias),
                None => room.aliases.remove(user),
            };
        }
        Ok(())
    }

    /// The tab was hidden or shown again; coming back clears the shown room's unread count.
    pub fn set_page_visible(&mut self, visible: bool) {
        self.page_visible = visible;
        if visible && let Some(id) = self.active {
            self.select(id);
        }
    }

    /// Mutes (no notifications) or unmutes a room.
    pub fn set_muted(&mut self, id: RoomId, muted: bool) {
        if let Some(room) = self.room_mut(id) {
            room.muted = muted;
        }
    }

    pub fn dismiss_notice(&mut self, id: RoomId) {
        if let Some(room) = self.room_mut(id) {
            room.notice = None;
        }
    }

    /// Whether to offer a newcomer to choose a name: once, in the first room that answers,
    /// until a name is chosen or the offer is declined.
    pub fn offer_name(&self, room: &RoomState) -> bool {
        !self.settings.asked_name
            && self.settings.display_name.is_none()
            && room.name_override.is_none()
            && room.link == Link::Online
    }

    // ---- The network loop's inputs (each followed by `settle`) ----

    /// The connection opened: the session identifies.
    pub fn link_opened(&mut self, id: RoomId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.link = Link::Connecting;
            room.session.connected(now);
        }
    }

    /// The connection is gone; the next attempt is at `retry_at`.
    pub fn link_lost(&mut self, id: RoomId, attempt: u32, retry_at: Millis, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.link = Link::Reconnecting { attempt, retry_at };
            room.session.disconnected(now);
        }
    }

    /// The room refused us as banned and closed: no attempt until the person asks for one.
    pub fn link_banned(&mut self, id: RoomId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.link = Link::Banned;
            room.session.disconnected(now);
        }
    }

    /// The browser lost the network: the connection is dropped until it is back.
    pub fn link_offline(&mut self, id: RoomId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.link = Link::Offline;
            room.session.disconnected(now);
        }
    }

    /// The connection is being opened.
    pub fn link_connecting(&mut self, id: RoomId) {
        if let Some(room) = self.room_mut(id) {
            room.link = Link::Connecting;
        }
    }

    /// The browser would not even start a connection (for example `ws://` from an `https://`
    /// page); it is retried like a lost one.
    pub fn connect_refused(&mut self, id: RoomId, reason: &str) {
        if let Some(room) = self.room_mut(id) {
            room.notice = Some(format!("Could not connect: {reason}."));
        }
    }

    /// A text frame from the room's server.
    pub fn receive(&mut self, id: RoomId, frame: &str, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.handle_frame(now, frame);
        }
    }

    /// You wrote a message: it shows at once as pending and goes out when the room is online.
    /// The composer checks it first ([`protocol::session::Session::check_message`]); a message
    /// refused here all the same is said in the room's notice.
    pub fn compose(
        &mut self,
        id: RoomId,
        text: &str,
        reply_to: Option<protocol::Seq>,
        now: Millis,
    ) {
        let Some(room) = self.room_mut(id) else {
            return;
        };
        let to = room.conversation.clone();
        if let Err(error) = room.session.send_message_to(now, text, reply_to, to) {
            room.notice = Some(format!("Not sent: {error}."));
            return;
        }
        self.sent.retain(|s| s != text);
        self.sent.push(text.to_owned());
        if self.sent.len() > RECALL_LIMIT {
            self.sent.remove(0);
        }
    }

    /// Edits one of your stored messages; a refusal is said in the room's notice.
    pub fn edit_message(&mut self, id: RoomId, seq: protocol::Seq, text: &str, now: Millis) {
        let Some(room) = self.room_mut(id) else {
            return;
        };
        if let Err(error) = room.session.edit_message(now, seq, text) {
            room.notice = Some(format!("Not saved: {error}."));
        }
    }

    /// Deletes one of your stored messages for everyone.
    pub fn delete_message(&mut self, id: RoomId, seq: protocol::Seq, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.delete_message(now, seq);
        }
    }

    /// As a moderator or owner: times someone out for `minutes`, or ends it (`None`).
    pub fn time_out(
        &mut self,
        id: RoomId,
        user: protocol::UserId,
        minutes: Option<u32>,
        now: Millis,
    ) {
        if let Some(room) = self.room_mut(id) {
            room.session.time_out(now, user, minutes);
        }
    }

    /// Reports a room message (its seq) to the moderators, saying why.
    pub fn report(&mut self, id: RoomId, seq: protocol::Seq, reason: String, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.report(now, seq, reason);
        }
    }

    /// As a moderator or owner: resolves an open report (its seq).
    pub fn resolve_report(&mut self, id: RoomId, seq: protocol::Seq, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.resolve_report(now, seq);
        }
    }

    /// As a moderator or owner: asks for the moderation log and the open reports.
    pub fn request_audit(&mut self, id: RoomId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.request_audit(now);
        }
    }

    /// Asks the room for the next page of the people online.
    pub fn more_people(&mut self, id: RoomId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.more_people(now);
        }
    }

    /// As a moderator or owner: closes someone's connections, telling them why.
    pub fn kick(&mut self, id: RoomId, user: protocol::UserId, reason: String, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.kick(now, user, reason);
        }
    }

    /// As a moderator or owner: bans someone for `minutes` (`None`: until lifted), saying why;
    /// with `address`, their network addresses too.
    pub fn ban(
        &mut self,
        id: RoomId,
        user: protocol::UserId,
        minutes: Option<u32>,
        reason: String,
        address: bool,
        now: Millis,
    ) {
        if let Some(room) = self.room_mut(id) {
            room.session.ban(now, user, minutes, reason, address);
        }
    }

    /// As a moderator or owner: lifts someone's ban.
    pub fn unban(&mut self, id: RoomId, user: protocol::UserId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.unban(now, user);
        }
    }

    /// As a moderator or owner: sets the room's topic and slow mode.
    pub fn set_room(&mut self, id: RoomId, settings: protocol::RoomSettings, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.set_room(now, settings);
        }
    }

    /// As an owner: makes someone a moderator, or a member again.
    pub fn set_role(
        &mut self,
        id: RoomId,
        user: protocol::UserId,
        role: Option<protocol::Role>,
        now: Millis,
    ) {
        if let Some(room) = self.room_mut(id) {
            room.session.set_role(now, user, role);
        }
    }

    /// Adds (`on`) or takes back your reaction to a stored message.
    pub fn react(&mut self, id: RoomId, seq: protocol::Seq, emoji: &str, on: bool, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.react(now, seq, emoji, on);
        }
    }

    /// Asks again (same nonce) for a change of yours that the room did not store.
    pub fn retry_change(&mut self, id: RoomId, nonce: &str, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.retry_change(now, nonce);
        }
    }

    /// Gives up a change of yours that the room did not store.
    pub fn dismiss_change(&mut self, id: RoomId, nonce: &str) {
        if let Some(room) = self.room_mut(id) {
            room.session.dismiss_change(nonce);
        }
    }

    /// You are typing in a room's box (the session says so to the others, now and then).
    pub fn typing(&mut self, id: RoomId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            let to = room.conversation.clone();
            room.session.note_typing_to(now, to);
        }
    }

    /// Sends a message that was not stored again (same nonce).
    pub fn retry_message(&mut self, id: RoomId, key: &str, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.retry(now, key);
        }
    }

    /// Takes a message that was not sent out of the room, and gives back its text (for the
    /// writing box). Nothing is sent.
    pub fn take_back_message(&mut self, id: RoomId, key: &str) -> Option<String> {
        self.room_mut(id)?.session.take_back(key)
    }

    /// Asks for the page of messages before the first one shown, in the conversation shown
    /// (the room's, or a direct one's own pages).
    pub fn request_history(&mut self, id: RoomId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            let with = room.conversation.clone();
            room.session.request_history_in(now, with.as_deref());
        }
    }

    /// A room's timer is due.
    pub fn wake(&mut self, id: RoomId, now: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.session.handle_timeout(now);
        }
    }

    /// Sets your name everywhere or in one room; each room's session sends it when it is
    /// online under another name.
    pub fn set_name(
        &mut self,
        wanted: &str,
        scope: NameScope,
        now: Millis,
    ) -> Result<(), NameError> {
        let name = check_name(wanted)?;
        match scope {
            NameScope::All => {
                self.settings.display_name = Some(name);
                for room in &mut self.rooms {
                    room.name_override = None;
                }
            }
            NameScope::Room(id) => {
                let everywhere = self.settings.display_name.clone();
                if let Some(room) = self.room_mut(id) {
                    room.name_override =
                        (everywhere.as_deref() != Some(name.as_str())).then_some(name);
                }
            }
        }
        for address in self
            .rooms
            .iter()
            .map(|r| r.address.to_string())
            .collect::<Vec<_>>()
        {
            self.update_wanted_name(&address, now);
        }
        Ok(())
    }

    /// The name you want in a room: the room's own, else the one for all rooms.
    pub fn wanted_name(&self, room: &RoomState) -> Option<String> {
        room.name_override
            .clone()
            .or_else(|| self.settings.display_name.clone())
    }

    fn update_wanted_name(&mut self, address: &str, now: Millis) {
        let Some(index) = self
            .rooms
            .iter()
            .position(|r| r.address.to_string() == address)
        else {
            return;
        };
        let wanted = self.wanted_name(&self.rooms[index]);
        self.rooms[index].session.set_wanted_name(now, wanted);
    }

    /// Drains a room's session after a change: what it tells the user is applied to the view
    /// (online, unread counts, notices), and what it wants sent and when it wants waking is
    /// returned for the network loop.
    pub fn settle(&mut self, id: RoomId, now: Millis) -> Settled {
        let room_shown = self.active == Some(id) && self.page_visible;
        let page_visible = self.page_visible;
        let notify_mentions = self.settings.notify_mentions;
        let call_elsewhere = self.rooms.iter().any(|r| r.id != id && r.session.in_call());
        let Some(room) = self.room_mut(id) else {
            return Settled::default();
        };
        let mut notify = Vec::new();
        let mut calls = Vec::new();
        // A ring declined here ends here: its media never started.
        let mut declined = false;
        while let Some(event) = room.session.poll_event() {
            match event {
                Event::Online => room.link = Link::Online,
                Event::Arrived {
                    from,
                    mentions_me,
                    direct,
                } => {
                    let conversation = direct.then(|| from.clone());
                    let shown = room_shown && room.conversation == conversation;
                    if !shown {
                        if direct {
                            *room.direct_unread.entry(from.clone()).or_insert(0) += 1;
                        } else {
                            room.unread += 1;
                            room.mentions += u32::from(mentions_me);
                        }
                        // A direct message is said to you: it notifies like a mention.
                        if (mentions_me || direct) && notify_mentions && !room.muted {
                            let said = room
                                .session
                                .messages()
                                .iter()
                                .rev()
                                .find(|m| m.user_id == from)
                                .map(|m| protocol::Renderer::new().plain_text(&m.raw))
                                .unwrap_or_default();
                            let (who, title) = (room.name_of(&from), room.title());
                            notify.push((
                                if direct {
                                    format!("{who} wrote to you in {title}")
                                } else {
                                    format!("{who} mentioned you in {title}")
                                },
                                said,
                            ));
                        }
                    }
                }
                Event::Missed { from, count } => {
                    // What came while we were away: the room counted it, and what arrived
                    // live since is part of the same count.
                    let shown = room_shown && room.conversation.as_ref() == Some(&from);
                    if !shown {
                        let known = room.direct_unread.get(&from).copied().unwrap_or(0);
                        room.direct_unread.insert(from, known.max(count));
                    }
                }
                Event::Notice(notice) => room.notice = Some(notice.to_string()),
                Event::Revealed(seq) => room.revealed = Some(seq),
                // One call at a time in the page: a ring while another room has a call is
                // declined at once.
                Event::Call(protocol::session::CallEvent::Incoming) if call_elsewhere => {
                    room.session.decline_call(now);
                    room.session.dismiss_call();
                    declined = true;
                }
                Event::Call(protocol::session::CallEvent::Ended) if declined => {}
                Event::Call(event) => {
                    if event == protocol::session::CallEvent::Incoming
                        && !page_visible
                        && let Some(call) = room.session.call()
                    {
                        let (who, title) = (room.name_of(&call.peer), room.title());
                        notify.push((format!("{who} is calling you"), format!("in {title}")));
                    }
                    calls.push(event);
                }
            }
        }
        let mut send = Vec::new();
        while let Some(action) = room.session.poll_transmit() {
            send.push(action);
        }
        Settled {
            send,
            wake_at: room.session.poll_timeout(),
            notify,
            calls,
        }
    }
}
