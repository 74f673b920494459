//! The room's topic, under its name, and for moderators and owners the form that sets it and
//! slow mode.

use dioxus::prelude::*;

use crate::network::Intent;
use crate::state::{AppState, RoomId};

/// Slow mode's choices: seconds between one person's messages, and how they read.
const SLOW_MODES: [(u32, &str); 5] = [
    (0, "off"),
    (10, "10 seconds"),
    (30, "30 seconds"),
    (60, "1 minute"),
    (300, "5 minutes"),
];

/// "Room settings" and its form (for moderators and owners).
#[component]
pub(super) fn RoomSettingsControl(id: RoomId) -> Element {
    let state = use_context::<Signal<AppState>>();
    let net = use_coroutine_handle::<Intent>();
    let mut open = use_signal(|| false);
    let current = state
        .read()
        .room(id)
        .map(|r| r.session.room_settings().clone())
        .unwrap_or_default();
    let mut topic = use_signal(String::new);
    let mut slow = use_signal(|| 0u32);
    let form_id = format!("room-settings-{}", id.0);
    rsx! {
        button {
            r#type: "button",
            class: "room-settings-toggle",
            "aria-expanded": if open() { "true" } else { "false" },
            "aria-controls": "{form_id}",
            onclick: move |_| {
                if !open() {
                    topic.set(current.topic.clone());
                    slow.set(current.slow_mode_seconds);
                }
                open.set(!open());
            },
            "Room settings"
        }
        if open() {
            form {
                id: "{form_id}",
                class: "room-settings",
                "aria-label": "Room settings",
                onsubmit: move |event: FormEvent| {
                    event.prevent_default();
                    let settings = protocol::RoomSettings {
                        topic: topic(),
                        slow_mode_seconds: slow(),
                    };
                    net.send(Intent::SetRoom(id, settings));
                    open.set(false);
                },
                label { r#for: "{form_id}-topic", "Topic" }
                input {
                    id: "{form_id}-topic",
                    r#type: "text",
                    maxlength: "{protocol::MAX_TOPIC_CHARS}",
                    value: "{topic}",
                    oninput: move |e| topic.set(e.value()),
                }
                label { r#for: "{form_id}-slow", "Slow mode" }
                select {
                    id: "{form_id}-slow",
                    onchange: move |e| slow.set(e.value().parse().unwrap_or(0)),
                    for (seconds, said) in SLOW_MODES {
                        option { key: "{seconds}", value: "{seconds}", selected: seconds == slow(), "{said}" }
                    }
                }
                button { r#type: "submit", "Save room settings" }
            }
        }
    }
}
