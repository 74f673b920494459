//! The client's whole state, and every change to it as a method: a reducer over user intents
//! and server actions, as the Redux client this chat started from did.
//!
//! No IO and no clock here: time comes in as an argument, and each change returns the
//! actions to send on that room's connection (an [`Outcome`]). The network loop
//! (`network.rs`) carries them out; the UI only reads this state and calls these methods.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use protocol::room::TokenBucket;
use protocol::{
    ChangeName, ClientAction, ErrorCode, HandshakeUserInfo, HistoryRequest, MessageRecord, Millis,
    Renderer, RoomLimits, SendMessage, Seq, ServerAction, UserId,
};
use serde::{Deserialize, Serialize};

use crate::address::{Address, AddressError};

/// Longest message the composer accepts from a room that has not announced its own limit (a
/// v1 server): the default limit of our rooms.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Messages asked for per history page.
pub const HISTORY_PAGE: u32 = 50;
/// Sent messages kept for Up/Down recall.
const RECALL_LIMIT: usize = 50;
/// How long to wait before resending after the room said `RATE_LIMITED`.
pub const RATE_LIMIT_RETRY_MS: u32 = 1_500;
/// Messages kept per room: a server (trusted by no one) cannot grow the page without bound.
/// The oldest go when new ones arrive; scrolling up pages them in again.
pub const MAX_KEPT_MESSAGES: usize = 5_000;
/// Messages of each server room kept across a reload, to show while it cannot be reached.
const KEPT_ACROSS_RELOAD: usize = 50;

/// A room's place in this page's list; never reused while the page lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub u32);

/// Who you are in one room: handed out by that room, proved by the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub user_id: UserId,
    pub token: Option<String>,
}

/// Preferences, remembered across reloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Your name in every room (unless a room has its own); `None` until you choose one.
    pub display_name: Option<String>,
    /// Enter sends (Shift+Enter is a new line); otherwise Ctrl+Enter sends.
    pub enter_to_send: bool,
    /// You were offered to choose a name (and chose one or said not now): not asked again.
    pub asked_name: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            display_name: None,
            enter_to_send: true,
            asked_name: false,
        }
    }
}

/// The state of one room's connection, as the user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Opening the connection, or open and waiting for the room to say who we are.
    Connecting,
    /// Identified: messages go out at once.
    Online,
    /// Lost; the next attempt starts at `retry_at` (milliseconds since the epoch).
    Reconnecting { attempt: u32, retry_at: Millis },
    /// The browser says it has no network: connecting waits until it is back.
    Offline,
}

/// How much older history the room has for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// The room has older messages than the first we show.
    More,
    /// A page was asked for and has not arrived.
    Loading,
    /// We show the room's first message.
    Complete,
    /// The server does not page history (a legacy v1 server).
    Unsupported,
}

/// Whether the room has stored a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Shown at once; kept and resent (same nonce) until the room echoes it.
    Pending,
    /// Stored by the room and echoed back.
    Sent,
    /// The room could not store it: kept for the user to retry or edit, never resent by
    /// itself.
    Failed,
    /// Refused for what it is (too long or too deeply nested for this room): sending it
    /// again cannot succeed; kept for the user to edit.
    Refused,
}

/// One message as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// Stable key for the list: the seq, the server id, or our nonce.
    pub key: String,
    pub seq: Option<Seq>,
    pub user_id: UserId,
    pub raw: String,
    /// Rendered here from `raw` by our sanitising renderer; a server's HTML is never used.
    pub html: Rc<str>,
    pub timestamp: Millis,
    pub nonce: Option<String>,
    pub delivery: Delivery,
    /// Sent on the current connection and not answered yet (pending messages only).
    pub in_flight: bool,
}

/// One room as the client knows it.
#[derive(Debug, Clone)]
pub struct RoomState {
    pub id: RoomId,
    pub address: Address,
    /// From the room's `HANDSHAKE`; the address stands in until then.
    pub server_name: Option<String>,
    pub link: Link,
    pub identity: Option<Identity>,
    /// Your name in this room only, when it differs from the one for all rooms.
    pub name_override: Option<String>,
    /// Messages the room has stored, in seq order (arrival order from a v1 server).
    pub messages: Vec<ChatMessage>,
    /// Your messages not yet echoed by the room, oldest first.
    pub pending: Vec<ChatMessage>,
    pub names: crate::names::Names,
    pub online: BTreeSet<UserId>,
    /// Messages from others that arrived while another room was shown.
    pub unread: u32,
    pub history: History,
    /// The last thing the room refused or warned about, shown until dismissed.
    pub notice: Option<String>,
    /// The highest seq this room has told us about: resume from here after a reconnect.
    pub latest_seq: Option<Seq>,
    /// Messages without seq or id seen (from a v1 server), for their list keys.
    arrivals: u64,
    /// What the room announced it allows (none from a v1 server).
    pub limits: Option<RoomLimits>,
    /// The room has answered (sent `HANDSHAKE`) since the page loaded.
    pub reached: bool,
    /// The room's rate limit as this client spends it, on this connection: messages go out
    /// no faster than the room takes them, so that none is refused for rate and overtaken by
    /// a later one.
    bucket: Option<TokenBucket>,
}

/// What a change asks the network loop to do for one room.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Actions to send on the room's connection now, in order.
    pub send: Vec<ClientAction>,
    /// Resend pending messages after this many milliseconds.
    pub retry_pending_in: Option<u32>,
}

impl Outcome {
    fn send(actions: Vec<ClientAction>) -> Self {
        Self {
            send: actions,
            retry_pending_in: None,
        }
    }
}

/// Where a new name applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameScope {
    All,
    Room(RoomId),
}

/// Why the composer refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("the message is empty")]
    Blank,
    #[error("the message is longer than this room's {0} characters")]
    TooLong(usize),
    #[error("that room is no longer open")]
    NoRoom,
}

/// Why a name was refused: the room's own rule ([`protocol::clean_name`]), checked here first.
pub use protocol::NameProblem as NameError;

/// What survives a reload (localStorage): rooms, identities, names, preferences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Saved {
    pub rooms: Vec<SavedRoom>,
    pub active: Option<String>,
    pub settings: Settings,
    pub sent: Vec<String>,
    /// Identities in rooms you removed, by address: adding the room again makes you yourself
    /// there again (a token cannot be recovered once lost).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub past_identities: BTreeMap<String, Identity>,
}

/// One remembered room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedRoom {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_override: Option<String>,
    /// The room's name, shown while it cannot be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Messages written and not yet stored by the room: sent, once, when it is back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<SavedPending>,
}

/// A message waiting for its room, as remembered across a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedPending {
    pub raw: String,
    /// The same nonce after the reload, so that the room stores it once even if the copy
    /// sent before the reload had arrived.
    pub nonce: String,
    pub timestamp: Millis,
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
    /// False while the tab is in the background: the shown room counts unread messages too.
    page_visible: bool,
    renderer: Renderer,
    next_room: u32,
    /// Unique to this page load, so nonces never repeat across reloads.
    nonce_prefix: String,
    next_nonce: u64,
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
            page_visible: true,
            renderer: Renderer::new(),
            next_room: 1,
            nonce_prefix,
            next_nonce: 1,
        }
    }

    /// The client as it was saved. Addresses that no longer parse are dropped.
    pub fn from_saved(saved: Saved, nonce_prefix: String) -> Self {
        let mut state = Self::new(saved.settings, nonce_prefix);
        state.sent = saved.sent;
        state.past_identities = saved.past_identities;
        let renderer = state.renderer;
        for room in saved.rooms {
            if let Ok((id, true)) = state.add_room(&room.address)
                && let Some(added) = state.room_mut(id)
            {
                added.identity = room.identity;
                added.name_override = room.name_override;
                added.server_name = room.server_name;
                let author = added
                    .identity
                    .as_ref()
                    .map(|i| i.user_id.clone())
                    .unwrap_or_default();
                for waiting in room.pending {
                    added.pending.push(ChatMessage {
                        key: format!("n{}", waiting.nonce),
                        seq: None,
                        user_id: author.clone(),
                        html: crate::format::message_html(&renderer, &waiting.raw),
                        raw: waiting.raw,
                        timestamp: waiting.timestamp,
                        nonce: Some(waiting.nonce),
                        delivery: Delivery::Pending,
                        in_flight: false,
                    });
                }
            }
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
        let skip = room.messages.len().saturating_sub(KEPT_ACROSS_RELOAD);
        let messages: Vec<MessageRecord> = room.messages[skip..]
            .iter()
            .filter(|m| m.seq.is_some())
            .map(|m| MessageRecord {
                raw_message: m.raw.clone(),
                // Never used: the client renders the raw text itself.
                html_message: String::new(),
                timestamp: m.timestamp,
                user_id: m.user_id.clone(),
                seq: m.seq,
                id: None,
                nonce: None,
            })
            .collect();
        let user_names = messages
            .iter()
            .filter_map(|m| Some((m.user_id.clone(), room.names.get(&m.user_id)?.to_owned())))
            .collect();
        Some(protocol::History {
            before: 0,
            messages,
            has_more: true,
            user_names,
        })
    }

    /// Shows what [`Self::history_to_keep`] kept, until the room answers; the room is then
    /// resumed from its newest message (the room's `RESUME` fills what was missed, or says
    /// the gap is too big and older messages are paged in again).
    pub fn restore_history(&mut self, id: RoomId, kept: protocol::History) {
        let renderer = self.renderer;
        let Some(room) = self.room_mut(id) else {
            return;
        };
        room.names.extend(kept.user_names);
        for record in kept.messages {
            if let Some(seq) = record.seq {
                room.latest_seq = Some(room.latest_seq.map_or(seq, |l| l.max(seq)));
            }
            room.insert(&renderer, record);
        }
        if room
            .messages
            .first()
            .and_then(|m| m.seq)
            .is_some_and(|s| s > 1)
        {
            room.history = History::More;
        }
    }

    /// What to remember. Identities in mock rooms are not: those rooms end with the page.
    pub fn to_saved(&self) -> Saved {
        Saved {
            rooms: self
                .rooms
                .iter()
                .map(|r| SavedRoom {
                    address: r.address.to_string(),
                    identity: if r.address.is_mock() {
                        None
                    } else {
                        r.identity.clone()
                    },
                    name_override: r.name_override.clone(),
                    server_name: if r.address.is_mock() {
                        None
                    } else {
                        r.server_name.clone()
                    },
                    pending: if r.address.is_mock() {
                        Vec::new()
                    } else {
                        r.waiting()
                            .filter_map(|m| {
                                Some(SavedPending {
                                    raw: m.raw.clone(),
                                    nonce: m.nonce.clone()?,
                                    timestamp: m.timestamp,
                                })
                            })
                            .collect()
                    },
                })
                .collect(),
            active: self.active_room().map(|r| r.address.to_string()),
            settings: self.settings.clone(),
            sent: self.sent.clone(),
            past_identities: self.past_identities.clone(),
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

    /// Unread messages over all rooms, for the tab title.
    pub fn total_unread(&self) -> u32 {
        self.rooms.iter().map(|r| r.unread).sum()
    }

    /// Adds a room by address; returns its id and whether it is new (an address already
    /// open returns the existing room). The first room becomes the active one.
    pub fn add_room(&mut self, input: &str) -> Result<(RoomId, bool), AddressError> {
        let address = Address::parse(input)?;
        if let Some(existing) = self.rooms.iter().find(|r| r.address == address) {
            return Ok((existing.id, false));
        }
        let id = RoomId(self.next_room);
        self.next_room += 1;
        let mut room = RoomState::new(id, address);
        room.identity = self.past_identities.remove(&room.address.to_string());
        self.rooms.push(room);
        if self.active.is_none() {
            self.active = Some(id);
        }
        Ok((id, true))
    }

    /// Removes a room. Your identity there is kept aside, so adding it again brings it back.
    /// If it was shown, its neighbour is shown instead.
    pub fn remove_room(&mut self, id: RoomId) {
        let Some(index) = self.rooms.iter().position(|r| r.id == id) else {
            return;
        };
        let room = self.rooms.remove(index);
        if let Some(identity) = room.identity
            && !room.address.is_mock()
        {
            self.past_identities
                .insert(room.address.to_string(), identity);
        }
        if self.active == Some(id) {
            let next = index.min(self.rooms.len().saturating_sub(1));
            self.active = self.rooms.get(next).map(|r| r.id);
            if let Some(id) = self.active {
                self.select(id);
            }
        }
    }

    /// Shows a room; its unread count is cleared.
    pub fn select(&mut self, id: RoomId) {
        if let Some(room) = self.room_mut(id) {
            room.unread = 0;
            self.active = Some(id);
        }
    }

    /// The tab was hidden or shown again; coming back clears the shown room's unread count.
    pub fn set_page_visible(&mut self, visible: bool) {
        self.page_visible = visible;
        if visible && let Some(id) = self.active {
            self.select(id);
        }
    }

    pub fn dismiss_notice(&mut self, id: RoomId) {
        if let Some(room) = self.room_mut(id) {
            room.notice = None;
        }
    }

    /// The connection opened: identify, and ask for what we missed if we were here before.
    pub fn link_opened(&mut self, id: RoomId) -> Outcome {
        let Some(room) = self.room_mut(id) else {
            return Outcome::default();
        };
        room.link = Link::Connecting;
        // A new connection: nothing is in flight on it, and the room's rate starts afresh.
        room.bucket = None;
        for message in &mut room.pending {
            message.in_flight = false;
        }
        let info = HandshakeUserInfo {
            user_id: room.identity.as_ref().map(|i| i.user_id.clone()),
            token: room.identity.as_ref().and_then(|i| i.token.clone()),
            since: room.latest_seq,
        };
        Outcome::send(vec![ClientAction::HandshakeUserInfo(info)])
    }

    /// The connection is gone; the next attempt is at `retry_at`.
    pub fn link_lost(&mut self, id: RoomId, attempt: u32, retry_at: Millis) {
        if let Some(room) = self.room_mut(id) {
            room.link = Link::Reconnecting { attempt, retry_at };
            room.online.clear();
            if room.history == History::Loading {
                room.history = History::More;
            }
        }
    }

    /// The browser lost the network: the connection is dropped until it is back.
    pub fn link_offline(&mut self, id: RoomId) {
        self.link_lost(id, 0, 0);
        if let Some(room) = self.room_mut(id) {
            room.link = Link::Offline;
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

    /// A server frame that did not decode. The server is not trusted: it is reported, not
    /// acted on.
    pub fn bad_frame(&mut self, id: RoomId, reason: &str) {
        if let Some(room) = self.room_mut(id) {
            room.notice = Some(format!(
                "The server sent something this client does not understand ({reason})."
            ));
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

    /// The name you want in a room: the room's own, else the one for all rooms.
    pub fn wanted_name(&self, room: &RoomState) -> Option<String> {
        room.name_override
            .clone()
            .or_else(|| self.settings.display_name.clone())
    }

    /// An action from the room's server.
    pub fn receive(&mut self, id: RoomId, action: ServerAction) -> Outcome {
        let shown = self.active == Some(id) && self.page_visible;
        let renderer = self.renderer;
        let Some(room) = self.rooms.iter().find(|r| r.id == id) else {
            return Outcome::default();
        };
        let wanted = self.wanted_name(room);
        let Some(room) = self.room_mut(id) else {
            return Outcome::default();
        };
        match action {
            ServerAction::Handshake(handshake) => {
                room.server_name = Some(handshake.server_name);
                room.limits = handshake.limits;
                room.reached = true;
                if let (Some(theirs), Some(ours)) = (handshake.latest_seq, room.latest_seq)
                    && theirs < ours
                {
                    // The room has less than we saw: it is not the room we knew. Start over.
                    room.messages.clear();
                }
                room.names.extend(handshake.user_names);
                if let Some(online) = handshake.online {
                    room.online = online.into_iter().collect();
                }
                for record in handshake.messages {
                    room.insert(&renderer, record);
                }
                room.latest_seq = room.latest_seq.max(handshake.latest_seq);
                room.history = match (handshake.protocol_version, room.messages.first()) {
                    (None, _) => History::Unsupported,
                    (Some(_), Some(first)) if first.seq.is_some_and(|s| s > 1) => History::More,
                    _ => History::Complete,
                };
                Outcome::default()
            }
            ServerAction::UserInfo(info) => {
                let same = room
                    .identity
                    .as_ref()
                    .is_some_and(|i| i.user_id == info.user_id);
                let token = if same {
                    info.token
                        .or_else(|| room.identity.as_ref().and_then(|i| i.token.clone()))
                } else {
                    info.token
                };
                room.identity = Some(Identity {
                    user_id: info.user_id.clone(),
                    token,
                });
                room.names.insert(info.user_id.clone(), info.name.clone());
                room.online.insert(info.user_id);
                room.link = Link::Online;
                let mut send = Vec::new();
                if let Some(name) = wanted.filter(|w| *w != info.name) {
                    send.push(ClientAction::NameChange(ChangeName {
                        name,
                        user_id: None,
                    }));
                }
                let mut outcome = Outcome::send(send);
                // What waited goes out now, paced by `flush`.
                if room.waiting().next().is_some() {
                    outcome.retry_pending_in = Some(0);
                }
                outcome
            }
            ServerAction::Message(record) => {
                let mine = room.is_me(&record.user_id);
                if mine {
                    room.match_pending(&record);
                }
                if let Some(seq) = record.seq {
                    room.latest_seq = Some(room.latest_seq.map_or(seq, |l| l.max(seq)));
                }
                if room.insert(&renderer, record) && !mine && !shown {
                    room.unread += 1;
                }
                Outcome::default()
            }
            ServerAction::NameChange(change) => {
                room.names.extend(change.id_name_pair);
                room.names.insert(change.user_id, change.name);
                Outcome::default()
            }
            ServerAction::UserConnected(user) => {
                room.online.insert(user.user_id);
                Outcome::default()
            }
            ServerAction::UserDisconnected(user) => {
                room.online.remove(&user.user_id);
                Outcome::default()
            }
            ServerAction::Resume(resume) => {
                room.names.extend(resume.user_names);
                if resume.gap_too_big {
                    // Too much was missed to fill in: keep the recent messages the handshake
                    // brought, drop what is older than the gap, and let history paging fill it.
                    let floor = room
                        .messages
                        .iter()
                        .filter_map(|m| m.seq)
                        .filter(|&s| s > resume.since)
                        .min();
                    if let Some(floor) = floor {
                        room.messages.retain(|m| m.seq.is_none_or(|s| s >= floor));
                    }
                    room.history = History::More;
                    room.notice = Some(
                        "You were away for long: older messages can be loaded by scrolling up."
                            .into(),
                    );
                }
                for record in resume.messages {
                    let mine = room.is_me(&record.user_id);
                    if mine {
                        room.match_pending(&record);
                    }
                    if room.insert(&renderer, record) && !mine && !shown {
                        room.unread += 1;
                    }
                }
                Outcome::default()
            }
            ServerAction::History(page) => {
                room.names.extend(page.user_names);
                for record in page.messages {
                    room.insert(&renderer, record);
                }
                room.history = if page.has_more {
                    History::More
                } else {
                    History::Complete
                };
                Outcome::default()
            }
            ServerAction::Error(error) => {
                let mut outcome = Outcome::default();
                // The refusal names the message's nonce (rooms that do not name one answer in
                // order: then it is about the oldest message still waiting for its echo).
                let outcome_for_message = match error.code {
                    ErrorCode::StorageFailed => Some(Delivery::Failed),
                    ErrorCode::EmptyMessage
                    | ErrorCode::MessageTooLong
                    | ErrorCode::MessageTooComplex
                    | ErrorCode::InvalidNonce => Some(Delivery::Refused),
                    _ => None,
                };
                if let Some(delivery) = outcome_for_message
                    && let Some(refused) = room.pending.iter_mut().find(|m| {
                        m.delivery == Delivery::Pending
                            && (error.nonce.is_none() || m.nonce == error.nonce)
                    })
                {
                    refused.delivery = delivery;
                }
                if error.code == ErrorCode::RateLimited {
                    // The refused message and every one after it go again, in order: none
                    // may overtake it.
                    let from = error
                        .nonce
                        .as_ref()
                        .and_then(|n| {
                            room.pending
                                .iter()
                                .position(|m| m.nonce.as_ref() == Some(n))
                        })
                        .unwrap_or(0);
                    for message in room.pending.iter_mut().skip(from) {
                        message.in_flight = false;
                    }
                }
                room.notice = Some(match error.code {
                    ErrorCode::RateLimited => {
                        outcome.retry_pending_in = Some(RATE_LIMIT_RETRY_MS);
                        "You are sending too fast; your message will be sent in a moment.".into()
                    }
                    ErrorCode::IdentityRejected => {
                        "The room did not accept your saved identity; it gave you a new one.".into()
                    }
                    _ => format!("The room refused: {}", error.message),
                });
                if error.code == ErrorCode::InvalidHistoryRequest
                    && room.history == History::Loading
                {
                    room.history = History::Complete;
                }
                outcome
            }
        }
    }

    /// You wrote a message: it shows at once as pending and goes out if the room is online
    /// (otherwise when it is back).
    pub fn compose(
        &mut self,
        id: RoomId,
        text: &str,
        now: Millis,
    ) -> Result<Outcome, ComposeError> {
        if text.trim().is_empty() {
            return Err(ComposeError::Blank);
        }
        let max = self
            .room(id)
            .and_then(|r| r.limits)
            .map_or(MAX_MESSAGE_CHARS, |l| l.max_message_chars as usize);
        if text.chars().count() > max {
            return Err(ComposeError::TooLong(max));
        }
        let nonce = format!("{}-{}", self.nonce_prefix, self.next_nonce);
        let html: Rc<str> = crate::format::message_html(&self.renderer, text);
        let room = self
            .rooms
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(ComposeError::NoRoom)?;
        self.next_nonce += 1;
        let message = ChatMessage {
            key: format!("n{nonce}"),
            seq: None,
            user_id: room
                .identity
                .as_ref()
                .map(|i| i.user_id.clone())
                .unwrap_or_default(),
            raw: text.to_owned(),
            html,
            timestamp: now,
            nonce: Some(nonce),
            delivery: Delivery::Pending,
            in_flight: false,
        };
        room.pending.push(message);
        self.sent.retain(|s| s != text);
        self.sent.push(text.to_owned());
        if self.sent.len() > RECALL_LIMIT {
            self.sent.remove(0);
        }
        Ok(self.flush(id, now))
    }

    /// Sends, in the order they were written, the messages waiting to go, as fast as the
    /// room's announced rate allows; if some must wait, asks to be called again when the
    /// next can go.
    pub fn flush(&mut self, id: RoomId, now: Millis) -> Outcome {
        let Some(room) = self.room_mut(id) else {
            return Outcome::default();
        };
        if room.link != Link::Online {
            return Outcome::default();
        }
        if let (None, Some(limits)) = (&room.bucket, room.limits) {
            room.bucket = Some(TokenBucket::new(
                limits.rate_burst,
                limits.rate_per_second,
                now,
            ));
        }
        let mut send = Vec::new();
        let mut held = false;
        for message in room.pending.iter_mut() {
            if message.delivery != Delivery::Pending || message.in_flight {
                continue;
            }
            if room.bucket.as_mut().is_some_and(|b| !b.try_take(now)) {
                held = true;
                break;
            }
            message.in_flight = true;
            send.push(pending_action(message));
        }
        let mut outcome = Outcome::send(send);
        if held {
            let per_second = room.limits.map_or(1, |l| l.rate_per_second.max(1));
            outcome.retry_pending_in = Some(1_000 / per_second + 1);
        }
        outcome
    }

    /// Sends a refused message again (same nonce).
    pub fn retry_message(&mut self, id: RoomId, key: &str) -> Outcome {
        let Some(room) = self.room_mut(id) else {
            return Outcome::default();
        };
        let Some(message) = room.pending.iter_mut().find(|m| m.key == key) else {
            return Outcome::default();
        };
        message.delivery = Delivery::Pending;
        message.in_flight = false;
        // It goes out with the next flush, in its place among the others.
        Outcome {
            send: Vec::new(),
            retry_pending_in: Some(0),
        }
    }

    /// Takes a message that was not sent out of the room, and gives back its text (for the
    /// writing box).
    pub fn take_back_message(&mut self, id: RoomId, key: &str) -> Option<String> {
        let room = self.room_mut(id)?;
        let index = room.pending.iter().position(|m| {
            m.key == key && matches!(m.delivery, Delivery::Failed | Delivery::Refused)
        })?;
        Some(room.pending.remove(index).raw)
    }

    /// Sets your name everywhere or in one room. Returns, per online room whose name changes,
    /// what to send; offline rooms take the name when they identify.
    pub fn set_name(
        &mut self,
        wanted: &str,
        scope: NameScope,
    ) -> Result<Vec<(RoomId, Outcome)>, NameError> {
        let name = protocol::clean_name(wanted, crate::format::nfc)?;
        match scope {
            NameScope::All => {
                self.settings.display_name = Some(name.clone());
                for room in &mut self.rooms {
                    room.name_override = None;
                }
            }
            NameScope::Room(id) => {
                let everywhere = self.settings.display_name.clone();
                let Some(room) = self.room_mut(id) else {
                    return Ok(Vec::new());
                };
                room.name_override =
                    (everywhere.as_deref() != Some(name.as_str())).then(|| name.clone());
            }
        }
        Ok(self
            .rooms
            .iter()
            .filter(|r| scope == NameScope::All || scope == NameScope::Room(r.id))
            .filter(|r| r.link == Link::Online && r.my_name() != Some(name.as_str()))
            .map(|r| {
                let action = ClientAction::NameChange(ChangeName {
                    name: name.clone(),
                    user_id: None,
                });
                (r.id, Outcome::send(vec![action]))
            })
            .collect())
    }

    /// Asks for the page of messages before the first one shown, if there is one and no
    /// request is out.
    pub fn request_history(&mut self, id: RoomId) -> Outcome {
        let Some(room) = self.room_mut(id) else {
            return Outcome::default();
        };
        let first = room.messages.first().and_then(|m| m.seq);
        match (room.history, room.link, first) {
            (History::More, Link::Online, Some(before)) => {
                room.history = History::Loading;
                Outcome::send(vec![ClientAction::HistoryRequest(HistoryRequest {
                    before,
                    limit: HISTORY_PAGE,
                })])
            }
            _ => Outcome::default(),
        }
    }
}

fn pending_action(message: &ChatMessage) -> ClientAction {
    ClientAction::Message(SendMessage {
        raw_message: message.raw.clone(),
        user_id: None,
        nonce: message.nonce.clone(),
    })
}

impl RoomState {
    fn new(id: RoomId, address: Address) -> Self {
        Self {
            id,
            address,
            server_name: None,
            link: Link::Connecting,
            identity: None,
            name_override: None,
            messages: Vec::new(),
            pending: Vec::new(),
            names: Default::default(),
            online: BTreeSet::new(),
            unread: 0,
            history: History::Complete,
            notice: None,
            latest_seq: None,
            arrivals: 0,
            limits: None,
            bucket: None,
            reached: false,
        }
    }

    /// The room's name, or its address until it has said its name.
    pub fn title(&self) -> String {
        self.server_name
            .clone()
            .unwrap_or_else(|| self.address.to_string())
    }

    pub fn is_me(&self, user: &str) -> bool {
        self.identity.as_ref().is_some_and(|i| i.user_id == user)
    }

    /// Your name as this room knows it.
    pub fn my_name(&self) -> Option<&str> {
        let me = &self.identity.as_ref()?.user_id;
        self.names.get(me)
    }

    /// A user's current name here, told apart from anyone else of the same name.
    pub fn name_of(&self, user: &str) -> String {
        self.names.shown(user)
    }

    /// Online users, by name, you first.
    pub fn people(&self) -> Vec<(UserId, String, bool)> {
        let mut people: Vec<(UserId, String, bool)> = self
            .online
            .iter()
            .map(|u| (u.clone(), self.name_of(u), self.is_me(u)))
            .collect();
        people.sort_by(|a, b| {
            b.2.cmp(&a.2)
                .then_with(|| a.1.to_lowercase().cmp(&b.1.to_lowercase()))
        });
        people
    }

    /// Your messages still to be sent (not refused ones).
    fn waiting(&self) -> impl Iterator<Item = &ChatMessage> {
        self.pending
            .iter()
            .filter(|m| m.delivery == Delivery::Pending)
    }

    /// Removes the pending message this echo confirms: by nonce, or (a v1 server echoes no
    /// nonce) the oldest pending message with the same text.
    fn match_pending(&mut self, record: &MessageRecord) {
        let index = match &record.nonce {
            Some(nonce) => self
                .pending
                .iter()
                .position(|p| p.nonce.as_ref() == Some(nonce)),
            None => self
                .pending
                .iter()
                .position(|p| p.raw == record.raw_message),
        };
        if let Some(index) = index {
            self.pending.remove(index);
        }
    }

    /// Adds a stored message in its place; false if it was already shown.
    fn insert(&mut self, renderer: &Renderer, record: MessageRecord) -> bool {
        let position = match (record.seq, &record.id) {
            (Some(seq), _) => match self
                .messages
                .binary_search_by(|m| m.seq.unwrap_or(0).cmp(&seq))
            {
                Ok(_) => return false,
                Err(at) => at,
            },
            (None, Some(id)) => {
                if self.messages.iter().any(|m| m.key == format!("i{id}")) {
                    return false;
                }
                self.messages.len()
            }
            (None, None) => self.messages.len(),
        };
        let key = match (record.seq, &record.id) {
            (Some(seq), _) => format!("s{seq}"),
            (None, Some(id)) => format!("i{id}"),
            (None, None) => {
                self.arrivals += 1;
                format!("a{}", self.arrivals)
            }
        };
        let appended = position == self.messages.len();
        let message = ChatMessage {
            key,
            seq: record.seq,
            html: crate::format::message_html(renderer, &record.raw_message),
            raw: record.raw_message,
            user_id: record.user_id,
            timestamp: record.timestamp,
            nonce: record.nonce,
            delivery: Delivery::Sent,
            in_flight: false,
        };
        self.messages.insert(position, message);
        if appended && self.messages.len() > MAX_KEPT_MESSAGES {
            let excess = self.messages.len() - MAX_KEPT_MESSAGES;
            self.messages.drain(..excess);
            if self.history != History::Unsupported {
                self.history = History::More;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
