//! Searching a room (and your direct messages in it): the query box, the results (author,
//! date, the matched words marked), older results page by page, and each result opened in
//! its context (its conversation, scrolled to it, history paged in until it is there).

use dioxus::prelude::*;
use protocol::session::SearchStatus;

use crate::format;
use crate::network::Intent;
use crate::state::{AppState, RoomId};

/// Characters of a result's text shown around its first match.
const SNIPPET_CHARS: usize = 160;

pub fn input_id(room: RoomId) -> String {
    format!("search-input-{}", room.0)
}

pub fn toggle_id(room: RoomId) -> String {
    format!("search-toggle-{}", room.0)
}

#[component]
pub fn SearchPanel(id: RoomId) -> Element {
    let state = use_context::<Signal<AppState>>();
    let net = use_coroutine_handle::<Intent>();
    let mut query = use_signal(|| {
        state
            .peek()
            .room(id)
            .and_then(|r| r.session.search().map(|s| s.query.clone()))
            .unwrap_or_default()
    });
    let mut problem = use_signal(|| None::<String>);
    // Focused as it appears, so that what is typed right after opening the panel lands in it.
    {
        let input = input_id(id);
        use_effect(move || super::focus(&input));
    }
    let close = move || {
        net.send(Intent::EndSearch(id));
        super::focus_soon(toggle_id(id));
    };

    let app = state.read();
    let Some(room) = app.room(id) else {
        return rsx! {};
    };
    let title = room.title();
    let me = room
        .session
        .identity()
        .map(|i| i.user_id.clone())
        .unwrap_or_default();
    let search = room.session.search();
    let now = js_sys::Date::now() as i64;
    let (today, yesterday) = (format::day(now), format::day(now - 86_400_000));
    let status_line = match search.map(|s| &s.status) {
        None => String::new(),
        Some(SearchStatus::Searching) => "Searching…".to_owned(),
        Some(SearchStatus::Failed(why)) => why.clone(),
        Some(SearchStatus::Done) => match search.map_or(0, |s| s.results.len()) {
            0 => "No messages found.".to_owned(),
            1 => "1 message found.".to_owned(),
            n if search.is_some_and(|s| s.next.is_some()) => {
                format!("{n} messages found; older ones may match too.")
            }
            n => format!("{n} messages found."),
        },
    };
    let can_search_more = search.is_some_and(|s| {
        matches!(s.status, SearchStatus::Failed(_))
            || (s.status == SearchStatus::Done && s.next.is_some())
    });
    let results: Vec<Found> = search
        .map(|s| {
            s.results
                .iter()
                .filter_map(|m| {
                    let seq = m.seq?;
                    let author = if room.is_me(&m.user_id) {
                        "You".to_owned()
                    } else {
                        room.name_of(&m.user_id)
                    };
                    let with = m.peer(&me).map(|p| room.name_of(p));
                    // As a person reads it: markup dropped, emoji shown.
                    let text = protocol::Renderer::new().plain_text(&m.raw);
                    let pieces =
                        protocol::search::snippet(&text, &s.words.highlights(&text), SNIPPET_CHARS);
                    Some(Found {
                        seq,
                        author,
                        with,
                        date: format!(
                            "{}, {}",
                            format::day_label(format::day(m.timestamp), today, yesterday),
                            format::hh_mm(m.timestamp)
                        ),
                        iso: format::iso(m.timestamp),
                        pieces,
                    })
                })
                .collect()
        })
        .unwrap_or_default();

    rsx! {
        section {
            class: "search-panel",
            "aria-label": "Search in {title}",
            onkeydown: move |event: KeyboardEvent| {
                if event.key() == Key::Escape {
                    event.prevent_default();
                    close();
                }
            },
            form {
                role: "search",
                "aria-label": "Search messages in {title}",
                onsubmit: move |event: FormEvent| {
                    event.prevent_default();
                    let wanted = query();
                    match protocol::search::SearchQuery::parse(&wanted) {
                        Ok(_) => {
                            problem.set(None);
                            net.send(Intent::Search(id, wanted));
                        }
                        Err(why) => problem.set(Some(format!("{}.", capitalised(&why.to_string())))),
                    }
                },
                label { r#for: input_id(id), class: "visually-hidden", "Search messages" }
                input {
                    id: input_id(id),
                    r#type: "search",
                    autocomplete: "off",
                    maxlength: "{protocol::search::MAX_QUERY_CHARS}",
                    placeholder: "Search messages",
                    value: "{query}",
                    oninput: move |e| query.set(e.value()),
                }
                button { r#type: "submit", "Search" }
                button { r#type: "button", class: "link-button", onclick: move |_| close(), "Close search" }
            }
            if let Some(why) = problem() {
                p { class: "form-error", role: "alert", "{why}" }
            }
            p { class: "search-status", role: "status", "{status_line}" }
            if !results.is_empty() {
                ol { class: "search-results", "aria-label": "Search results",
                    for Found { seq, author, with, date, iso, pieces } in results {
                        li { key: "{seq}",
                            button {
                                r#type: "button",
                                class: "search-result",
                                onclick: move |_| net.send(Intent::OpenResult(id, seq)),
                                span { class: "meta",
                                    span { class: "author", "{author}" }
                                    if let Some(with) = with {
                                        span { class: "direct-mark", " (direct, with {with})" }
                                    }
                                    " "
                                    time { datetime: "{iso}", "{date}" }
                                }
                                span { class: "snippet",
                                    for (text, hit) in pieces {
                                        if hit { mark { "{text}" } } else { "{text}" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if can_search_more {
                button {
                    r#type: "button",
                    onclick: move |_| net.send(Intent::SearchMore(id)),
                    "Search older messages"
                }
            }
        }
    }
}

/// One result as the list shows it.
struct Found {
    seq: protocol::Seq,
    author: String,
    /// The other person, for a direct message.
    with: Option<String>,
    date: String,
    iso: String,
    pieces: Vec<(String, bool)>,
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
