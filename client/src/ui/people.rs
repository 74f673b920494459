//! Who is online in the room shown.

use dioxus::prelude::*;

use crate::state::AppState;

#[component]
pub fn People() -> Element {
    let state = use_context::<Signal<AppState>>();
    let app = state.read();
    let Some(room) = app.active_room() else {
        return rsx! {
            aside { id: "people-panel", class: "people", "aria-label": "People online" }
        };
    };
    let people = room.people();
    rsx! {
        aside { id: "people-panel", class: "people", "aria-label": "People online",
            h2 { "Online " span { class: "count", "({people.len()})" } }
            ul {
                for (id, name, me) in people {
                    li { key: "{id}", class: if me { "me" } else { "" },
                        span { class: "presence", "aria-hidden": "true" }
                        span { class: "person-name", "{name}" }
                        if me { span { class: "you", " (you)" } }
                    }
                }
            }
        }
    }
}
