//! What survives a reload (localStorage): rooms, identities, names, preferences, and the
//! messages written and not yet stored.

use std::collections::BTreeMap;

use protocol::Millis;
use protocol::session::Identity;
use serde::{Deserialize, Serialize};

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
    /// A browser notification when someone mentions you in a room you are not looking at
    /// (turned on in Settings, which asks the browser's permission then).
    pub notify_mentions: bool,
    /// Emoji you picked lately, latest first: the picker offers them first.
    pub recent_emoji: Vec<String>,
    /// You are a moderator in the demo's rooms (to try the moderation controls).
    pub demo_moderator: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            display_name: None,
            enter_to_send: true,
            asked_name: false,
            notify_mentions: false,
            recent_emoji: Vec::new(),
            demo_moderator: false,
        }
    }
}

/// The whole client as remembered.
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
    /// Your own names for people, by room address and then user id: kept with your
    /// identities (also for rooms you removed), never sent to any server.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, BTreeMap<protocol::UserId, String>>,
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
    /// No notifications from this room.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub muted: bool,
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
    /// The message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<protocol::Seq>,
    /// A direct message to this person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<protocol::UserId>,
}
