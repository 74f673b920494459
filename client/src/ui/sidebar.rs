//! The list of rooms (one per server) and the form to add one.

use dioxus::prelude::*;

use super::Panel;
use crate::address::Address;
use crate::network::Intent;
use crate::state::{AppState, Link, RoomId};

/// After a room is removed (by the network loop, before the next task), focus stays in the
/// list: on the room now shown, or on the address field when no room is left.
pub fn focus_after_removal(state: Signal<AppState>) {
    gloo_timers::callback::Timeout::new(0, move || {
        super::focus(&match state.peek().active {
            Some(next) => format!("room-button-{}", next.0),
            None => "add-room-address".to_owned(),
        });
    })
    .forget();
}

#[component]
pub fn Sidebar() -> Element {
    let mut state = use_context::<Signal<AppState>>();
    let mut panel = use_context::<Signal<Panel>>();
    let net = use_coroutine_handle::<Intent>();
    let mut address = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);

    let add = move |event: FormEvent| {
        event.prevent_default();
        match Address::parse(&address()) {
            Ok(parsed) => {
                net.send(Intent::AddRoom(parsed));
                address.set(String::new());
                error.set(None);
                panel.set(Panel::None);
            }
            Err(e) => error.set(Some(e.to_string())),
        }
    };

    let app = state.read();
    rsx! {
        nav { id: "rooms-panel", class: "sidebar", "aria-label": "Rooms",
            h2 { "Rooms" }
            ul { class: "room-list",
                for room in app.rooms.iter() {
                    li { key: "{room.id.0}", class: "room-item",
                        button {
                            id: "room-button-{room.id.0}",
                            class: "room-button",
                            r#type: "button",
                            "aria-current": if app.active == Some(room.id) && room.conversation.is_none() { "page" } else { "false" },
                            onclick: {
                                let id = room.id;
                                move |_| {
                                    state.write().open_conversation(id, None);
                                    panel.set(Panel::None);
                                    // On to writing there (the drawer, on a phone, is closed).
                                    super::focus_soon(super::composer_id(id));
                                }
                            },
                            span { class: "room-name", "{room.title()}" }
                            span { class: "room-address", "{room.address}" }
                            span {
                                class: "link-dot",
                                "data-link": link_class(room.link),
                                "aria-hidden": "true",
                                title: link_word(room.link),
                            }
                            span { class: "visually-hidden", ", {link_word(room.link)}" }
                            span { class: "badges",
                                if room.muted {
                                    span { class: "muted-mark", title: "Muted", span { "aria-hidden": "true", "🔕" } span { class: "visually-hidden", " muted" } }
                                }
                                if room.mentions > 0 {
                                    span { class: "badge mention", "aria-label": if room.mentions == 1 { "1 mention" } else { "{room.mentions} mentions" }, "@{room.mentions}" }
                                }
                                if room.unread > 0 {
                                    span { class: "badge", "aria-label": "{room.unread} unread", "{room.unread}" }
                                }
                            }
                        }
                        button {
                            class: "remove",
                            r#type: "button",
                            "aria-label": "Remove {room.title()}",
                            title: "Remove this room",
                            onclick: {
                                let id = room.id;
                                move |_| {
                                    net.send(Intent::RemoveRoom(id));
                                    focus_after_removal(state);
                                }
                            },
                            "×"
                        }
                        Conversations { id: room.id }
                    }
                }
            }
            form { class: "add-room", "aria-label": "Add a room", onsubmit: add,
                label { r#for: "add-room-address", "Server address" }
                div { class: "add-row",
                    input {
                        id: "add-room-address",
                        r#type: "text",
                        placeholder: "ws://host:port",
                        autocomplete: "off",
                        spellcheck: "false",
                        value: "{address}",
                        oninput: move |e| address.set(e.value()),
                    }
                    button { r#type: "submit", "Add" }
                }
                if let Some(message) = error() {
                    p { class: "form-error", role: "alert", "{message}" }
                }
            }
        }
    }
}

/// A word for the link state, for CSS.
pub fn link_class(link: Link) -> &'static str {
    match link {
        Link::Online => "online",
        Link::Connecting => "connecting",
        Link::Reconnecting { .. } | Link::Offline => "reconnecting",
        Link::Banned => "banned",
    }
}

/// The link state in words; `now` counts down to the next attempt.
pub fn link_text(link: Link, now: i64) -> String {
    match link {
        Link::Online => "online".to_owned(),
        Link::Connecting => "connecting…".to_owned(),
        Link::Offline => "offline: waiting for the network".to_owned(),
        Link::Banned => "banned from this room".to_owned(),
        Link::Reconnecting { attempt, retry_at } => {
            let seconds = (retry_at - now).max(0).div_euclid(1000) + 1;
            format!("reconnecting (attempt {attempt}, next in {seconds} s)")
        }
    }
}

/// The link state in a few words, for the room list (which does not count down).
pub fn link_word(link: Link) -> &'static str {
    match link {
        Link::Online => "online",
        Link::Connecting => "connecting…",
        Link::Offline => "offline: waiting for the network",
        Link::Reconnecting { .. } => "reconnecting",
        Link::Banned => "banned",
    }
}

/// A room's direct conversations, under it in the list: each opens with a click, and shows
/// its unread messages.
#[component]
fn Conversations(id: RoomId) -> Element {
    let mut state = use_context::<Signal<AppState>>();
    let mut panel = use_context::<Signal<Panel>>();
    let app = state.read();
    let Some(room) = app.room(id) else {
        return rsx! {};
    };
    let peers = room.conversations();
    if peers.is_empty() {
        return rsx! {};
    }
    let title = room.title();
    rsx! {
        ul { class: "conversations", "aria-label": "Direct messages in {title}",
            for peer in peers {
                li { key: "{peer}",
                    button {
                        r#type: "button",
                        class: "conversation-button",
                        "aria-current": if app.active == Some(id) && room.conversation.as_ref() == Some(&peer) { "page" } else { "false" },
                        onclick: {
                            let peer = peer.clone();
                            move |_| {
                                state.write().open_conversation(id, Some(peer.clone()));
                                panel.set(Panel::None);
                                super::focus_soon(super::composer_id(id));
                            }
                        },
                        span { class: "direct-mark", "aria-hidden": "true", "@ " }
                        span { class: "visually-hidden", "Direct messages with " }
                        span { class: "room-name", "{room.name_of(&peer)}" }
                        if let Some(unread) = room.direct_unread.get(&peer).copied().filter(|n| *n > 0) {
                            span { class: "badges",
                                span { class: "badge", "aria-label": "{unread} unread", "{unread}" }
                            }
                        }
                    }
                }
            }
        }
    }
}
