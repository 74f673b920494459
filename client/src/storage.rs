//! What the client remembers across reloads, in the browser's localStorage.

use std::collections::BTreeMap;

use crate::state::Saved;

/// The key of the saved state. A new layout gets a new key, so old data is never misread.
const KEY: &str = "cahat.v1";
/// Where unreadable saved state is moved, so that it is never silently overwritten.
const BROKEN_KEY: &str = "cahat.v1.unreadable";
/// Unsent text per room, under this prefix and the room's address: apart from the rest,
/// because it changes with every key press.
const DRAFT_PREFIX: &str = "cahat.v1.draft.";

/// The latest messages per room, under this prefix and the room's address: written when the
/// page is hidden or left, not on every message.
const HISTORY_PREFIX: &str = "cahat.v1.history.";

/// What you were writing in each room, by the room's address.
pub type Drafts = BTreeMap<String, String>;

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The saved state; `None` on a first visit (or where storage is unavailable).
pub fn load() -> Option<Saved> {
    let storage = storage()?;
    let text = storage.get_item(KEY).ok()??;
    match serde_json::from_str(&text) {
        Ok(saved) => Some(saved),
        Err(_) => {
            // Keep the unreadable copy for the user (or a later version) instead of losing it.
            let kept = storage.set_item(BROKEN_KEY, &text).is_ok();
            kept.then(Saved::default)
        }
    }
}

/// Saves the state; false if the browser refused (private mode, quota).
pub fn save(saved: &Saved) -> bool {
    let Some(storage) = storage() else {
        return false;
    };
    match serde_json::to_string(saved) {
        Ok(text) => storage.set_item(KEY, &text).is_ok(),
        Err(_) => false,
    }
}

/// The draft saved for the room at `address`, if any.
pub fn load_draft(address: &str) -> Option<String> {
    storage()?
        .get_item(&format!("{DRAFT_PREFIX}{address}"))
        .ok()
        .flatten()
}

/// Saves (or, when empty, forgets) the draft of the room at `address`; false if the browser
/// refused.
pub fn save_draft(address: &str, text: &str) -> bool {
    let Some(storage) = storage() else {
        return false;
    };
    let key = format!("{DRAFT_PREFIX}{address}");
    if text.is_empty() {
        storage.remove_item(&key).is_ok()
    } else {
        storage.set_item(&key, text).is_ok()
    }
}

/// The latest messages of the room at `address`, kept by [`save_history`].
pub fn load_history(address: &str) -> Option<protocol::History> {
    let text = storage()?
        .get_item(&format!("{HISTORY_PREFIX}{address}"))
        .ok()??;
    // Kept as the room's own `HISTORY` action: read by the decoder every frame goes through.
    match protocol::decode_server(&text).ok()? {
        protocol::ServerAction::History(history) => Some(history),
        _ => None,
    }
}

/// Keeps the latest messages of the room at `address`; false if the browser refused.
pub fn save_history(address: &str, history: protocol::History) -> bool {
    let Some(storage) = storage() else {
        return false;
    };
    // The action's JSON, written around its payload: serialising a whole `ServerAction` would
    // link every server action's serialiser into the client for this one.
    let Ok(payload) = serde_json::to_string(&history) else {
        return false;
    };
    let text = format!(r#"{{"type":"HISTORY","payload":{payload}}}"#);
    storage
        .set_item(&format!("{HISTORY_PREFIX}{address}"), &text)
        .is_ok()
}
