//! What the client remembers across reloads, in the browser's localStorage.

use crate::state::Saved;

/// The key of the saved state. A new layout gets a new key, so old data is never misread.
const KEY: &str = "cahat.v1";
/// Where unreadable saved state is moved, so that it is never silently overwritten.
const BROKEN_KEY: &str = "cahat.v1.unreadable";

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
