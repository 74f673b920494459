//! The writing box: Send, Enter or Ctrl+Enter, Shift+Enter for a new line, Up in an empty box
//! to edit your last message, Ctrl+Up/Down to recall what you sent.

use dioxus::prelude::*;

use super::Panel;
use crate::network::Intent;
use crate::state::{AppState, RoomId};
use crate::storage::Drafts;

/// A message of yours being edited in the writing box.
#[derive(Debug, Clone, PartialEq)]
pub struct Editing {
    pub room: RoomId,
    pub seq: protocol::Seq,
    /// What the box held before, put back when the edit is saved or cancelled.
    pub stashed: String,
}

/// The message the next one from this box answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replying {
    pub room: RoomId,
    pub seq: protocol::Seq,
}

/// Puts one of your stored messages into its room's writing box to be edited.
pub fn start_editing(
    state: Signal<AppState>,
    mut drafts: Signal<Drafts>,
    mut editing: Signal<Option<Editing>>,
    room: RoomId,
    seq: protocol::Seq,
) {
    let (address, raw) = {
        let app = state.peek();
        let Some(shown) = app.room(room) else { return };
        let Some(message) = shown.session.messages().iter().find(|m| m.seq == Some(seq)) else {
            return;
        };
        (shown.draft_key(), message.raw.clone())
    };
    let stashed = match editing.peek().as_ref() {
        // Already editing here: what was stashed then is still what to put back.
        Some(current) if current.room == room => current.stashed.clone(),
        _ => drafts.peek().get(&address).cloned().unwrap_or_default(),
    };
    drafts.write().insert(address, raw);
    editing.set(Some(Editing { room, seq, stashed }));
    super::focus(&format!("composer-{}", room.0));
}

/// Emoji per row of the picker's grid (Up and Down move by a row).
const PICKER_COLUMNS: usize = 8;
/// Emoji kept as recently used.
const RECENT_EMOJI: usize = 16;

/// A searchable emoji picker over the renderer's table, recently used first. Keyboard: type to
/// search, arrows to move, Enter to pick, Escape to close. `ids` starts the ids of its
/// elements (one picker per writing box, one per message reacted to).
#[component]
pub(super) fn EmojiPicker(
    ids: String,
    on_pick: EventHandler<String>,
    on_close: EventHandler<()>,
) -> Element {
    let state = use_context::<Signal<AppState>>();
    let mut query = use_signal(String::new);
    let mut active = use_signal(|| 0usize);
    let recent = state.read().settings.recent_emoji.clone();
    let wanted = query().trim().trim_matches(':').to_lowercase();
    let table = protocol::markdown::emoji_table();
    let mut shown: Vec<(&str, &str)> = Vec::new();
    if wanted.is_empty() {
        for emoji in &recent {
            if let Some(&(name, e)) = table.iter().find(|(_, e)| e == emoji) {
                shown.push((name, e));
            }
        }
    }
    for &(name, emoji) in table {
        if name.replace('_', " ").contains(&wanted.replace('_', " "))
            && !shown.iter().any(|(_, e)| *e == emoji)
        {
            shown.push((name, emoji));
        }
    }
    let current = active().min(shown.len().saturating_sub(1));
    let picks: Vec<String> = shown.iter().map(|(_, e)| (*e).to_owned()).collect();
    // The same keys in the search field and in the grid.
    let keys = move || {
        let picks = picks.clone();
        move |event: KeyboardEvent| {
            let count = picks.len();
            let step = match event.key() {
                Key::ArrowRight => 1,
                Key::ArrowLeft => count.saturating_sub(1),
                Key::ArrowDown => PICKER_COLUMNS,
                Key::ArrowUp => count.saturating_sub(PICKER_COLUMNS % count.max(1)),
                Key::Enter => {
                    event.prevent_default();
                    if let Some(emoji) = picks.get(current) {
                        on_pick.call(emoji.clone());
                    }
                    return;
                }
                Key::Escape => {
                    // It closes the picker only, not what the picker sits in.
                    event.prevent_default();
                    event.stop_propagation();
                    on_close.call(());
                    return;
                }
                _ => return,
            };
            event.prevent_default();
            if count > 0 {
                active.set((current + step) % count);
            }
        }
    };
    let search_id = format!("emoji-search-{ids}");
    use_effect(move || super::focus(&search_id));
    rsx! {
        div { class: "emoji-picker", role: "dialog", "aria-label": "Emoji",
            input {
                id: "emoji-search-{ids}",
                r#type: "search",
                "aria-label": "Search emoji",
                placeholder: "Search emoji (tada, heart, …)",
                "aria-controls": "emoji-grid-{ids}",
                "aria-activedescendant": "emoji-{ids}-{current}",
                value: "{query}",
                oninput: move |e| {
                    query.set(e.value());
                    active.set(0);
                },
                onkeydown: keys(),
            }
            div {
                id: "emoji-grid-{ids}",
                class: "emoji-grid",
                role: "listbox",
                "aria-label": "Emoji",
                tabindex: "0",
                "aria-activedescendant": "emoji-{ids}-{current}",
                onkeydown: keys(),
                for (i, (name, emoji)) in shown.iter().enumerate() {
                    div {
                        key: "{name}",
                        id: "emoji-{ids}-{i}",
                        role: "option",
                        "aria-selected": if i == current { "true" } else { "false" },
                        "aria-label": "{emoji} {name}",
                        title: ":{name}:",
                        onclick: {
                            let emoji = (*emoji).to_owned();
                            move |_| on_pick.call(emoji.clone())
                        },
                        "{emoji}"
                    }
                }
                if shown.is_empty() {
                    p { "No emoji matches." }
                }
            }
        }
    }
}

#[component]
pub fn Composer(id: RoomId) -> Element {
    let state = use_context::<Signal<AppState>>();
    let mut panel = use_context::<Signal<Panel>>();
    let net = use_coroutine_handle::<Intent>();
    let mut drafts = use_context::<Signal<Drafts>>();
    // Drafts are kept per room address and conversation (room ids change between page
    // loads), in the page and in localStorage; this box is made anew for each conversation
    // shown.
    let address = use_signal(|| {
        let address = state
            .peek()
            .room(id)
            .map(|r| r.draft_key())
            .unwrap_or_default();
        if !drafts.peek().contains_key(&address)
            && let Some(saved) = crate::storage::load_draft(&address)
        {
            drafts.write().insert(address.clone(), saved);
        }
        address
    });
    let draft = move || {
        drafts
            .read()
            .get(&*address.read())
            .cloned()
            .unwrap_or_default()
    };
    let mut set_draft = move |text: String| {
        let address = address();
        crate::storage::save_draft(&address, &text);
        let mut all = drafts.write();
        if text.is_empty() {
            all.remove(&address);
        } else {
            all.insert(address, text);
        }
    };
    let mut error = use_signal(|| None::<String>);
    // Timed out by a moderator: the box waits, saying until when; it opens again by itself
    // (the session wakes the page when the time-out ends).
    let timed_out = {
        let app = state.read();
        app.room(id).and_then(|room| {
            let me = room.session.identity()?.user_id.clone();
            room.session
                .timed_out_until(&me, js_sys::Date::now() as i64)
        })
    }
    .map(crate::format::hh_mm);
    // Position in the sent list while recalling with Ctrl+Up/Down; None when writing.
    let mut recall = use_signal(|| None::<usize>);
    let mut editing = use_context::<Signal<Option<Editing>>>();
    let mut replying = use_context::<Signal<Option<Replying>>>();
    let answering = move || replying.read().filter(|r| r.room == id).map(|r| r.seq);
    // What the reply answers, as shown above the box.
    let answered = answering().map(|seq| {
        let app = state.read();
        let quoted = app.room(id).and_then(|room| {
            let message = room
                .session
                .messages()
                .iter()
                .find(|m| m.seq == Some(seq))?;
            Some((
                room.name_of(&message.user_id),
                crate::format::excerpt(&message.raw),
            ))
        });
        quoted.unwrap_or_else(|| ("someone".to_owned(), String::new()))
    });
    let edited = move || {
        editing
            .read()
            .as_ref()
            .filter(|e| e.room == id)
            .map(|e| e.seq)
    };
    // Ends an edit: what the box held before comes back.
    let mut stop_editing = move || {
        if let Some(done) = editing.take() {
            set_draft(done.stashed);
        }
    };

    let mut send = move || {
        let text = draft();
        let checked = state
            .peek()
            .room(id)
            .map(|r| r.session.check_message(&text));
        if let Some(seq) = edited() {
            match checked {
                Some(Ok(())) => {
                    net.send(Intent::Edit(id, seq, text));
                    stop_editing();
                    error.set(None);
                }
                Some(Err(e)) => error.set(Some(e.to_string())),
                None => {}
            }
            return;
        }
        match checked {
            Some(Ok(())) => {
                net.send(Intent::Send(id, text, answering()));
                if answering().is_some() {
                    replying.set(None);
                }
                // Back to the box, also after a click on Send, to go on writing.
                super::focus(&format!("composer-{}", id.0));
                set_draft(String::new());
                recall.set(None);
                error.set(None);
            }
            Some(Err(e)) => error.set(Some(e.to_string())),
            None => {}
        }
    };

    // `@` and the start of a name at the end of the box offers the people of the room.
    let mut mention_active = use_signal(|| 0usize);
    let mut mention_dismissed = use_signal(|| None::<String>);
    let mention_word = {
        let text = draft();
        let word = text
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or("")
            .to_owned();
        (word.starts_with('@') && mention_dismissed.read().as_deref() != Some(text.as_str()))
            .then_some(word)
    };
    // Each as the list shows it, and the name the mention carries.
    let candidates: Vec<(String, String)> = match &mention_word {
        Some(word) => state
            .read()
            .room(id)
            .map(|room| room.mention_candidates(&word[1..], 6))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let active = mention_active().min(candidates.len().saturating_sub(1));
    let listed = candidates.clone();
    let mut complete = move |name: &str| {
        let text = draft();
        let word_len = text.rsplit(char::is_whitespace).next().map_or(0, str::len);
        let kept = &text[..text.len() - word_len];
        set_draft(format!("{kept}@{name} "));
        mention_active.set(0);
    };
    let mut picking = use_signal(|| false);
    let pick_emoji = move |emoji: String| {
        set_draft(format!("{}{emoji}", draft()));
        {
            let mut app = state;
            let mut app = app.write();
            let recent = &mut app.settings.recent_emoji;
            recent.retain(|e| *e != emoji);
            recent.insert(0, emoji);
            recent.truncate(RECENT_EMOJI);
        }
        picking.set(false);
        super::focus(&format!("composer-{}", id.0));
    };
    let enter_to_send = state.read().settings.enter_to_send;
    let me = state
        .read()
        .room(id)
        .and_then(|r| r.my_name().map(str::to_owned))
        .unwrap_or_else(|| "…".to_owned());
    // The room's own limit (as it announced it): how much is left is shown near the end.
    let max = state
        .read()
        .room(id)
        .map_or(0, |r| r.session.max_message_chars());
    let left = max as i64 - draft().chars().count() as i64;
    let near_limit = max > 0 && left <= (max / 10) as i64;
    let hint = match (edited().is_some(), enter_to_send) {
        (true, true) => "Editing your message: Enter saves, Escape cancels",
        (true, false) => "Editing your message: Ctrl+Enter saves, Escape cancels",
        (false, true) => "Enter to send, Shift+Enter for a new line",
        (false, false) => "Ctrl+Enter to send, Enter for a new line",
    };
    // Slow mode, for those it holds (not moderators or owners; not in a direct conversation).
    let slow_mode = {
        let app = state.read();
        app.room(id)
            .filter(|room| room.conversation.is_none())
            .filter(|room| room.session.my_role().is_none())
            .map(|room| room.session.room_settings().slow_mode_seconds)
            .filter(|s| *s > 0)
    };

    rsx! {
        form {
            class: "composer",
            "aria-label": "Write a message",
            onsubmit: move |event: FormEvent| {
                event.prevent_default();
                send();
            },
            if let Some((author, text)) = answered {
                div { class: "replying",
                    span { "Replying to {author}: {text}" }
                    button { r#type: "button", class: "link-button", onclick: move |_| replying.set(None), "Cancel reply" }
                }
            }
            if !candidates.is_empty() {
                ul { id: "mentions-{id.0}", class: "mention-list", role: "listbox", "aria-label": "People to mention",
                    for (i, (listed, name)) in candidates.iter().enumerate() {
                        li {
                            key: "{listed}",
                            id: "mention-{id.0}-{i}",
                            role: "option",
                            "aria-selected": if i == active { "true" } else { "false" },
                            onclick: {
                                let name = name.clone();
                                move |_| {
                                    complete(&name);
                                    super::focus(&format!("composer-{}", id.0));
                                }
                            },
                            "{listed}"
                        }
                    }
                }
            }
            if let Some(at) = &timed_out {
                p { class: "timed-out", role: "status",
                    "A moderator timed you out: you can read, and write again at {at}."
                }
            }
            textarea {
                id: "composer-{id.0}",
                disabled: timed_out.is_some(),
                "aria-label": "Message",
                "aria-describedby": "composer-hint-{id.0}",
                placeholder: "Write a message (markdown works)",
                rows: "2",
                value: draft(),
                oninput: move |e| {
                    let text = e.value();
                    if !text.trim().is_empty() && edited().is_none() {
                        net.send(Intent::Typing(id));
                    }
                    set_draft(text);
                    recall.set(None);
                },
                onkeydown: move |event: KeyboardEvent| {
                    // An input method (Japanese, Chinese, Korean) uses Enter to confirm what is
                    // being composed: that Enter is not ours.
                    if event.is_composing() {
                        return;
                    }
                    let modifiers = event.modifiers();
                    let plain = !modifiers.shift() && !modifiers.ctrl() && !modifiers.meta() && !modifiers.alt();
                    // The list of people to mention, while it is open, takes the arrows, Enter,
                    // Tab and Escape.
                    if !listed.is_empty() {
                        match event.key() {
                            Key::ArrowDown => {
                                event.prevent_default();
                                mention_active.set((active + 1) % listed.len());
                                return;
                            }
                            Key::ArrowUp => {
                                event.prevent_default();
                                mention_active.set((active + listed.len() - 1) % listed.len());
                                return;
                            }
                            Key::Enter | Key::Tab if plain => {
                                event.prevent_default();
                                complete(&listed[active].1);
                                return;
                            }
                            Key::Escape => {
                                event.prevent_default();
                                mention_dismissed.set(Some(draft()));
                                return;
                            }
                            _ => {}
                        }
                    }
                    match event.key() {
                        Key::Enter if modifiers.ctrl() || modifiers.meta() || (enter_to_send && plain) => {
                            event.prevent_default();
                            send();
                        }
                        Key::Escape if edited().is_some() => {
                            event.prevent_default();
                            stop_editing();
                        }
                        Key::Escape if answering().is_some() => {
                            event.prevent_default();
                            replying.set(None);
                        }
                        // Up in an empty box edits your last message, as in most chats.
                        Key::ArrowUp if plain && draft().is_empty() && recall().is_none() && edited().is_none() => {
                            let last = state.peek().room(id).and_then(|r| r.session.last_own_message());
                            if let Some(seq) = last {
                                event.prevent_default();
                                start_editing(state, drafts, editing, id, seq);
                            }
                        }
                        // Ctrl+Up recalls what you sent, from an empty box; Up goes on while
                        // recalling.
                        Key::ArrowUp if (modifiers.ctrl() && draft().is_empty()) || (plain && recall().is_some()) => {
                            let count = state.peek().sent.len();
                            if count == 0 {
                                return;
                            }
                            event.prevent_default();
                            let index = recall().map_or(count - 1, |i| i.saturating_sub(1));
                            recall.set(Some(index));
                            set_draft(state.peek().sent[index].clone());
                        }
                        Key::ArrowDown if plain && recall().is_some() => {
                            event.prevent_default();
                            let next = recall().map(|i| i + 1);
                            let recalled = next.and_then(|i| state.peek().sent.get(i).cloned());
                            match recalled {
                                Some(text) => {
                                    recall.set(next);
                                    set_draft(text);
                                }
                                None => {
                                    recall.set(None);
                                    set_draft(String::new());
                                }
                            }
                        }
                        _ => {}
                    }
                },
            }
            button { r#type: "submit", class: "send", if edited().is_some() { "Save" } else { "Send" } }
            if picking() {
                EmojiPicker {
                    ids: format!("composer-{}", id.0),
                    on_pick: pick_emoji,
                    on_close: move |_| {
                        picking.set(false);
                        super::focus(&format!("composer-{}", id.0));
                    },
                }
            }
            div { class: "composer-foot",
                span { id: "composer-hint-{id.0}", class: "hint", "{hint}" }
                if let Some(seconds) = slow_mode {
                    span { class: "hint slow-mode", "Slow mode: one message every {seconds} s" }
                }
                if edited().is_some() {
                    button { r#type: "button", class: "link-button", onclick: move |_| stop_editing(), "Cancel editing" }
                }
                button {
                    r#type: "button",
                    class: "link-button",
                    "aria-label": "Insert an emoji",
                    "aria-expanded": if picking() { "true" } else { "false" },
                    onclick: move |_| picking.toggle(),
                    "😀"
                }
                if near_limit {
                    span { class: if left < 0 { "char-count over" } else { "char-count" },
                        if left < 0 { "{-left} characters over this room's {max}" } else { "{left} characters left" }
                    }
                }
                button {
                    r#type: "button",
                    class: "link-button",
                    "aria-label": "Change your name (now {me})",
                    onclick: move |_| panel.set(Panel::Settings),
                    "You are {me}"
                }
            }
            if let Some(message) = error() {
                p { class: "form-error", role: "alert", "{message}" }
            }
        }
    }
}
