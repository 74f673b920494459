//! Who is in the room shown: online now, and here lately (last seen). Each person opens
//! their profile (direct message, mention, your own name for them).

use dioxus::prelude::*;

use super::profile::Shown;
use crate::format;
use crate::state::AppState;

/// People seen lately listed under those online.
const RECENT_SHOWN: usize = 20;

/// People online listed at first, and how many more each "Show more online" lists: a crowded
/// room's list stays a few hundred elements, not one per person online.
const ONLINE_PAGE: usize = 100;

#[component]
pub fn People() -> Element {
    let state = use_context::<Signal<AppState>>();
    let mut profile = use_context::<Signal<Option<Shown>>>();
    let network = use_coroutine_handle::<crate::network::Intent>();
    // How many of the active room's people online are listed (back to a page in another room).
    let mut listed = use_signal(|| (None, ONLINE_PAGE));
    let can_call = state
        .read()
        .active_room()
        .is_some_and(|r| r.link == crate::state::Link::Online)
        && !state.read().in_call();
    let app = state.read();
    let Some(room) = app.active_room() else {
        return rsx! {
            aside { id: "people-panel", class: "people", "aria-label": "People" }
        };
    };
    let id = room.id;
    let mut people = room.people();
    let known = people.len();
    let shown = match listed() {
        (Some(room), shown) if room == id => shown,
        _ => ONLINE_PAGE,
    };
    people.truncate(shown);
    let online_count = room.session.online_count();
    let asks_room = room.session.has_more_people();
    let unlisted = online_count.saturating_sub(people.len());
    let more = match unlisted {
        0 => "Show more online".to_owned(),
        unlisted => format!("Show {unlisted} more online"),
    };
    let now = js_sys::Date::now() as i64;
    let recent: Vec<(String, String, Option<String>, String)> = room
        .session
        .recently_seen()
        .into_iter()
        .take(RECENT_SHOWN)
        .map(|p| {
            let seen = p
                .last_seen
                .map(|at| format::ago(at, now))
                .unwrap_or_default();
            (
                p.user_id.clone(),
                room.name_of(&p.user_id),
                room.alias_note(&p.user_id),
                seen,
            )
        })
        .collect();
    rsx! {
        aside { id: "people-panel", class: "people", "aria-label": "People",
            h2 { "Online " span { class: "count", "({online_count})" } }
            ul { "aria-label": "Online",
                for (user, name, me) in people {
                    li { key: "{user}", class: if me { "me" } else { "" },
                        span { class: "presence", "aria-hidden": "true" }
                        button {
                            r#type: "button",
                            class: "person-name link-button",
                            title: room.alias_note(&user).unwrap_or_else(|| format!("About {name}")),
                            onclick: {
                                let user = user.clone();
                                move |_| profile.set(Some(Shown { room: id, user: user.clone() }))
                            },
                            "{name}"
                        }
                        if let Some(role) = room.session.role_of(&user) {
                            span { class: "role", " {crate::format::role(role)}" }
                        }
                        if room.session.banned_until(&user, now).is_some() {
                            span { class: "role timed-out-mark", " banned" }
                        } else if room.session.timed_out_until(&user, now).is_some() {
                            span { class: "role timed-out-mark", " timed out" }
                        }
                        if me {
                            span { class: "you", " (you)" }
                        } else if can_call {
                            button {
                                r#type: "button",
                                class: "call-person",
                                "aria-label": "Call {name}",
                                title: "Video call {name}",
                                onclick: {
                                    let user = user.clone();
                                    move |_| network.send(crate::network::Intent::Call(id, user.clone(), true))
                                },
                            }
                        }
                    }
                }
            }
            if known > shown || asks_room {
                button {
                    r#type: "button",
                    class: "more-people link-button",
                    onclick: move |_| {
                        let next = shown + ONLINE_PAGE;
                        listed.set((Some(id), next));
                        // What this room has not told us of yet, asked for by page.
                        if asks_room && known < next {
                            network.send(crate::network::Intent::MorePeople(id));
                        }
                    },
                    "{more}"
                }
            }
            if !recent.is_empty() {
                h2 { "Here lately" }
                ul { class: "recent", "aria-label": "Here lately",
                    for (user, name, note, seen) in recent {
                        li { key: "{user}",
                            button {
                                r#type: "button",
                                class: "person-name link-button",
                                title: note.unwrap_or_else(|| format!("About {name}")),
                                onclick: {
                                    let user = user.clone();
                                    move |_| profile.set(Some(Shown { room: id, user: user.clone() }))
                                },
                                "{name}"
                            }
                            span { class: "last-seen", " {seen}" }
                        }
                    }
                }
            }
        }
    }
}
