//! The room shown: its header, the message log and the composer.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use dioxus::prelude::*;

use super::composer::Composer;
use super::element;
use super::message::{MessageView, Quote, Shown, message_element_id};
use super::sidebar::{link_class, link_text};
use super::window::LogWindow;
use crate::format;
use crate::network::Intent;
use crate::state::{AppState, ChatMessage, Delivery, History, Link, RoomId};

/// How close to the bottom (px) still counts as "at the bottom" (follow new messages).
const BOTTOM_SLACK: f64 = 48.0;
/// How close to the top (px) asks for older messages.
const TOP_SLACK: f64 = 80.0;

/// What keeps the view still when messages are put in or taken out above it (a history page,
/// or the window moving): the message rendered first when the change was asked for, and a
/// message that stays rendered (`key`) with its position in the log's content (not on screen:
/// the reader may scroll while a page loads).
#[derive(Debug, Clone)]
struct Anchor {
    first_key: Option<String>,
    key: Option<String>,
    at: f64,
}

/// What the changes since the view last settled ask of it: settled once, after the DOM has
/// them, so that the log's geometry is read once per burst of changes (each read after a change
/// makes the browser lay the page out there and then).
#[derive(Default)]
struct Settle {
    scheduled: bool,
    /// Messages that arrived, to count as unseen unless the view follows them.
    arrived: usize,
    /// One of them is yours: the view goes to the newest.
    own: bool,
    /// Messages were put in or taken out above: this one stays still.
    anchor: Option<Anchor>,
}

/// The keys of the messages `room` shows (its own or a conversation's), oldest first.
fn shown_keys(room: &crate::state::RoomState) -> Vec<&str> {
    room.shown_messages().map(|m| m.key.as_str()).collect()
}

/// The position of a message's element within the log's scrolled content.
fn content_position(log: &web_sys::Element, key: &str) -> Option<f64> {
    let message = element(&message_element_id(key))?;
    let top = message.get_bounding_client_rect().top() - log.get_bounding_client_rect().top();
    Some(top + f64::from(log.scroll_top()))
}

/// The day whose messages are at the top of `log`, when its separator is above the view.
fn day_at_top(log: &web_sys::Element) -> Option<String> {
    let top = log.get_bounding_client_rect().top() + 1.0;
    let sections = log.query_selector_all("section.day").ok()?;
    let mut shown = None;
    for i in 0..sections.length() {
        let Some(section) = sections
            .item(i)
            .and_then(|n| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(n).ok())
        else {
            continue;
        };
        if section.get_bounding_client_rect().top() > top {
            break;
        }
        shown = section.get_attribute("aria-label");
    }
    shown
}

/// How long after a page arrives the original of a reply is scrolled to, in milliseconds.
const JUMP_AFTER_MS: u32 = 60;

/// The element id of a shown message.
/// Scrolls the log to its newest message and remembers where that put it (see `pinned`).
fn pin_to_bottom(log: &web_sys::Element, pinned: &Cell<Option<i32>>) {
    log.set_scroll_top(log.scroll_height());
    pinned.set(Some(log.scroll_top()));
}

/// The reader has scrolled up from where the view was last pinned to the newest message, and
/// the scroll event that says so may not have come yet: a message arriving in that moment must
/// not pull the view down again (it did, now and then, while older messages paged in).
fn left_pin(log: &web_sys::Element, pinned: &Cell<Option<i32>>) -> bool {
    let top = log.scroll_top();
    let to_bottom = f64::from(log.scroll_height() - top - log.client_height());
    pinned.get().is_some_and(|at| top < at - 1) && to_bottom > BOTTOM_SLACK
}

#[component]
pub fn RoomView(id: RoomId) -> Element {
    let mut state = use_context::<Signal<AppState>>();
    let net = use_coroutine_handle::<Intent>();
    let log_id = format!("log-{}", id.0);
    let mut at_bottom = use_signal(|| true);
    let mut unseen = use_signal(|| 0usize);
    // The day of the messages at the top of the view, once its separator has scrolled away.
    let mut current_day = use_signal(|| None::<String>);
    let last_key = use_hook(|| Rc::new(RefCell::new(None::<String>)));
    let anchor = use_hook(|| Rc::new(Cell::new(None::<Anchor>)));
    let settle = use_hook(|| Rc::new(RefCell::new(Settle::default())));
    let first_rendered = use_hook(|| Rc::new(RefCell::new(None::<String>)));
    // A following window let its oldest go and the view has not been put back at the newest
    // yet: the scroll the browser makes meanwhile (the view moved up with what left) is not the
    // reader's.
    let shifting = use_hook(|| Rc::new(Cell::new(false)));
    // Which messages the log renders (all of them are held; see `window`).
    let mut window = use_signal(LogWindow::default);
    // Where the view last put the log's scrollTop to follow the newest message: a scroll
    // event that finds it there (or lower) is content growing under a view that follows, not
    // the reader scrolling up; when messages come fast, new ones land between the view's
    // scroll and the event, and the gap alone would say the reader left the bottom.
    let pinned = use_hook(|| Rc::new(Cell::new(None::<i32>)));

    let older = Older {
        state,
        net,
        id,
        log_id: log_id.clone(),
        anchor: anchor.clone(),
        window,
    };

    // The session revealed a message (a reply's original, a search result): it is in the
    // timeline now; the view scrolls to it, once the page that brought it is in place.
    use_effect(move || {
        let key = {
            let app = state.read();
            let Some(room) = app.room(id) else { return };
            let Some(seq) = room.revealed else { return };
            room.session.find(seq).map(|m| m.key.clone())
        };
        state.write().shown_revealed(id);
        let Some(key) = key else { return };
        // Rendered first, when it is outside the window.
        {
            let app = state.peek();
            if let Some(room) = app.room(id) {
                let keys = shown_keys(room);
                if let Some(index) = super::window::position(&keys, &key)
                    && !window.peek().range(&keys).contains(&index)
                {
                    window.set(LogWindow::around(&keys, index));
                }
            }
        }
        let element_id = message_element_id(&key);
        // After the page that brought it has been put in place (which keeps the view still),
        // so that nothing moves it away again.
        gloo_timers::callback::Timeout::new(JUMP_AFTER_MS, move || {
            if let Some(original) = element(&element_id) {
                // In the middle of the log, its focus ring whole (not cut at the top edge).
                let options = web_sys::ScrollIntoViewOptions::new();
                options.set_block(web_sys::ScrollLogicalPosition::Center);
                original.scroll_into_view_with_scroll_into_view_options(&options);
                super::focus(&element_id);
            }
        })
        .forget();
    });

    // After each change: keep following the conversation, keep the view still when history
    // is inserted above, or count what arrived below while the user reads older messages.
    {
        let older_after = older.clone();
        let log_id = log_id.clone();
        let last_key = last_key.clone();
        let anchor = anchor.clone();
        let pinned = pinned.clone();
        let shifting = shifting.clone();
        use_effect(move || {
            let app = state.read();
            let Some(room) = app.room(id) else { return };
            let all = || room.session.messages().iter().chain(room.session.pending());
            let last = all().next_back();
            let newest = last.map(|m| m.key.clone());
            let keys = shown_keys(room);
            let rendered = window.read().range(&keys);
            let first = keys.get(rendered.start).map(|k| (*k).to_owned());
            let previous = last_key.replace(newest.clone());
            let arrived = match &previous {
                Some(key) => all().rev().take_while(|m| &m.key != key).count(),
                None => 0,
            };
            let mine = last.is_some_and(|m| m.delivery != Delivery::Sent || room.is_me(&m.user_id));
            let own = arrived > 0 && mine;
            let follows = window.peek().follows();
            if follows && *first_rendered.borrow() != first {
                shifting.set(true);
            }
            first_rendered.replace(first.clone());
            let settled = window.peek().settled(&keys);
            // What you send is shown with the newest, wherever you were reading.
            if own && !follows {
                window.set(LogWindow::Newest);
            } else if let Some(settled) = settled {
                // Following: its top stays put until a step's worth has arrived below.
                window.set(settled);
            }
            // The anchor is used when older messages have arrived above it, and kept for then
            // while other changes come and go.
            let arrived_above = match anchor.take() {
                Some(waiting) if waiting.first_key != first => Some(waiting),
                other => {
                    anchor.set(other);
                    None
                }
            };
            // Nothing for the view to do: nothing new, nothing moved above, and not following.
            if arrived == 0 && arrived_above.is_none() && !*at_bottom.peek() {
                return;
            }
            {
                let mut pending = settle.borrow_mut();
                pending.arrived += arrived;
                pending.own |= own;
                if arrived_above.is_some() {
                    pending.anchor = arrived_above;
                }
                if pending.scheduled {
                    return;
                }
                pending.scheduled = true;
            }
            let log_id = log_id.clone();
            let more = older_after.clone();
            let pinned = pinned.clone();
            let settle = settle.clone();
            let shifting = shifting.clone();
            // After the DOM has the changes.
            gloo_timers::callback::Timeout::new(0, move || {
                let Settle {
                    arrived,
                    own,
                    anchor: arrived_above,
                    ..
                } = settle.take();
                // The view may be gone meanwhile (another room or conversation shown), its
                // signals with it; a new view has its own log under the same id.
                let Ok(bottom) = at_bottom.try_peek().map(|b| *b) else {
                    return;
                };
                let Some(log) = element(&log_id) else { return };
                // A following window that let its oldest go moved the view itself: not the
                // reader leaving the newest.
                let left = !shifting.replace(false) && left_pin(&log, &pinned);
                let follow = (bottom && !left) || own;
                if !follow && arrived > 0 {
                    unseen += arrived;
                }
                match arrived_above {
                    Some(Anchor {
                        key: Some(key), at, ..
                    }) => {
                        // The message that stays rendered stays where the reader sees it.
                        if let Some(now_at) = content_position(&log, &key) {
                            let moved = (now_at - at).round() as i32;
                            log.set_scroll_top(log.scroll_top() + moved);
                        }
                        // Still at the top (a short page): the next page follows.
                        if f64::from(log.scroll_top()) < TOP_SLACK {
                            more.load();
                        }
                    }
                    _ if follow => pin_to_bottom(&log, &pinned),
                    _ => {}
                }
            })
            .forget();
        });
    }

    // A direct conversation opened with less than fills the view (one the room listed with
    // only its latest message, say) pages in its older messages without the reader having to
    // scroll; each page that leaves the view at the top asks for the next (above).
    {
        let older_open = older.clone();
        let log_id = log_id.clone();
        let conversation = state.read().room(id).and_then(|r| r.conversation.clone());
        use_effect(use_reactive!(|conversation| {
            if conversation.is_none() {
                return;
            }
            let more = older_open.clone();
            let log_id = log_id.clone();
            gloo_timers::callback::Timeout::new(0, move || {
                if let Some(log) = element(&log_id)
                    && f64::from(log.scroll_top()) < TOP_SLACK
                    && log.scroll_height() <= log.client_height()
                {
                    more.load();
                }
            })
            .forget();
        }));
    }

    // A smaller window (or a phone's keyboard opening) keeps the newest message in view when
    // the log was at the bottom.
    {
        let log_id = log_id.clone();
        let pinned = pinned.clone();
        use_hook(move || {
            Rc::new(super::Listener::on(
                super::window_target(),
                "resize",
                move |_| {
                    if *at_bottom.peek()
                        && let Some(log) = element(&log_id)
                    {
                        pin_to_bottom(&log, &pinned);
                    }
                },
            ))
        });
    }

    let older_on_scroll = older.clone();
    let scroll_pinned = pinned.clone();
    let scroll_shifting = shifting.clone();
    let button_pinned = pinned.clone();

    let app = state.read();
    let Some(room) = app.room(id) else {
        return rsx! {};
    };
    let title = room.conversation_title();
    let room_title = room.title();
    let direct = room.conversation.is_some();
    let typing_line = room.typing_line().unwrap_or_default();
    let now = js_sys::Date::now() as i64;
    let today = format::day(now);
    let yesterday = format::day(now - 86_400_000);
    let mut days: Vec<(format::Day, Vec<&ChatMessage>)> = Vec::new();
    let mut span: Option<format::DaySpan> = None;
    let shown: Vec<&ChatMessage> = room.shown_messages().collect();
    let keys: Vec<&str> = shown.iter().map(|m| m.key.as_str()).collect();
    let rendered = window.read().range(&keys);
    let held = keys.len();
    let above = rendered.start > 0;
    let below = rendered.end < held;
    let older_button = older.clone();
    let newer_button = older.clone();
    for message in shown[rendered].iter().copied() {
        let day = match span {
            Some(span) if span.contains(message.timestamp) => span.day,
            _ => {
                let found = format::day_span(message.timestamp);
                span = Some(found);
                found.day
            }
        };
        match days.last_mut() {
            Some((d, list)) if *d == day => list.push(message),
            _ => days.push((day, vec![message])),
        }
    }
    let searching = room.search_shown;
    // In a direct conversation the header says where the person is, not only the room's link.
    let peer_presence = room.conversation.as_deref().map(|peer| {
        let name = room.name_of(peer);
        if room.session.online().contains(peer) {
            format!("{name} is here")
        } else {
            match room.session.person(peer).and_then(|p| p.last_seen) {
                Some(seen) => format!("{name} was last here {}", format::ago(seen, now)),
                None => format!("{name} is away"),
            }
        }
    });
    let topic = room.session.room_settings().topic.clone();
    let moderator = room.session.my_role().is_some();
    let jump_log_id = log_id.clone();
    let day_log_id = log_id.clone();
    let focus_log_id = log_id.clone();

    rsx! {
        main { class: "room", "aria-labelledby": "room-title-{id.0}",
            div { class: "room-header",
                h2 { id: "room-title-{id.0}",
                    if direct { span { class: "visually-hidden", "Direct messages with " } }
                    "{title}"
                }
                if direct {
                    span { class: "room-address", "in {room_title}: only the two of you see these messages" }
                    button {
                        r#type: "button",
                        class: "link-button",
                        onclick: move |_| state.write().open_conversation(id, None),
                        "Back to {room_title}"
                    }
                    if let Some(peer) = room.conversation.clone() {
                        super::call::CallButtons { room: id, user: peer, label: String::new() }
                    }
                } else {
                    span { class: "room-address", "{room.address}" }
                    if !topic.is_empty() {
                        p { class: "topic", "{topic}" }
                    }
                    if moderator {
                        super::room_settings::RoomSettingsControl { id }
                        super::moderation::ModerationControl { id }
                    }
                }
                if let Some(day) = current_day() {
                    p { class: "current-day", title: "The day of the messages at the top", "{day}" }
                }
                if let Some(presence) = peer_presence {
                    p { class: "peer-presence", "{presence}" }
                }
                // The room's link; in a direct conversation it says it is the room's (the
                // person's presence is the line above).
                LinkStatus { id, link: room.link, of: if direct { format!("{room_title}: ") } else { String::new() } }
                button {
                    id: super::search::toggle_id(id),
                    r#type: "button",
                    class: "search-toggle",
                    "aria-expanded": if searching { "true" } else { "false" },
                    onclick: move |_| {
                        if searching {
                            net.send(Intent::EndSearch(id));
                        } else {
                            state.write().show_search(id);
                        }
                    },
                    "Search"
                }
                // Muting is the room's (its mentions and direct messages alike): it is offered
                // in the room's own view.
                if !direct {
                    button {
                        r#type: "button",
                        class: "mute",
                        "aria-pressed": if room.muted { "true" } else { "false" },
                        title: if room.muted { "Notifications from this room are off" } else { "No notifications from this room" },
                        onclick: {
                            let muted = room.muted;
                            move |_| state.write().set_muted(id, !muted)
                        },
                        if room.muted {
                            span { "aria-hidden": "true", "🔕 " }
                        }
                        "Mute"
                    }
                }
            }
            if searching {
                super::search::SearchPanel { id }
            }
            if !room.session.reached() && matches!(room.link, Link::Reconnecting { attempt, .. } if attempt >= 2) {
                div { class: "notice", role: "alert",
                    span { "{room.address} has not answered yet. Is the address right?" }
                    button {
                        r#type: "button",
                        class: "link-button",
                        onclick: move |_| {
                            net.send(Intent::RemoveRoom(id));
                            super::sidebar::focus_after_removal(state);
                        },
                        "Remove this room"
                    }
                }
            }
            if let Some(notice) = room.notice.clone() {
                div { class: "notice", role: "alert",
                    span { "{notice}" }
                    button {
                        r#type: "button",
                        "aria-label": "Dismiss notice",
                        onclick: move |_| state.write().dismiss_notice(id),
                        "×"
                    }
                }
            }
            // The log and what floats over its bottom edge ("new messages"), which never covers
            // the name offer or the writing box below it.
            div { class: "log-area",
                div {
                    id: "{log_id}",
                    class: "log",
                    role: "log",
                    "aria-label": if direct { "Messages with {title}" } else { "Messages in {title}" },
                    tabindex: "0",
                    "data-held": "{held}",
                    onscroll: move |event: ScrollEvent| {
                        let top = event.scroll_top();
                        let followed = scroll_shifting.get()
                            || scroll_pinned.get().is_some_and(|at| top >= f64::from(at) - 1.0);
                        if !followed {
                            scroll_pinned.set(None);
                        }
                        let mut bottom = followed
                            || f64::from(event.scroll_height()) - top - f64::from(event.client_height()) < BOTTOM_SLACK;
                        // At the bottom of the window, with newer messages held below it: they
                        // are rendered, and the reader is not at the newest yet.
                        if bottom && older_on_scroll.newer() {
                            bottom = false;
                        }
                        // Reading above the newest: the window stays on what is read.
                        if !bottom {
                            older_on_scroll.hold();
                        } else if !window.peek().follows() {
                            window.set(LogWindow::Newest);
                        }
                        if bottom != *at_bottom.peek() {
                            at_bottom.set(bottom);
                        }
                        if bottom && *unseen.peek() > 0 {
                            unseen.set(0);
                        }
                        if top < TOP_SLACK {
                            older_on_scroll.load();
                        }
                        let day = element(&day_log_id).and_then(|log| day_at_top(&log));
                        if day != *current_day.peek() {
                            current_day.set(day);
                        }
                    },
                    div { class: "history-edge",
                        match room.session.history_in(room.conversation.as_deref()) {
                            _ if above => rsx! {
                                button { r#type: "button", class: "load-older",
                                    onclick: move |_| {
                                        older_button.load();
                                        super::focus(&focus_log_id);
                                    },
                                    "Load older messages"
                                }
                            },
                            History::More => rsx! {
                                button { r#type: "button", class: "load-older",
                                    onclick: move |_| {
                                        older.load();
                                        // The button gives way to the page it asked for: focus
                                        // stays in the log, where that page appears.
                                        super::focus(&focus_log_id);
                                    },
                                    "Load older messages"
                                }
                            },
                            History::Loading => rsx! { p { "Loading older messages…" } },
                            History::Complete if !room.session.reached() => rsx! { p { "Messages appear here when the room answers." } },
                            History::Complete if direct => rsx! { p { "This is the start of your conversation with {title}." } },
                            History::Complete => rsx! { p { "This is the start of {title}." } },
                            History::Unsupported => rsx! {},
                        }
                    }
                    for (day, messages) in days {
                        section { key: "{day:?}", class: "day", "aria-label": "{format::day_label(day, today, yesterday)}",
                            h3 { class: "day-separator", "{format::day_label(day, today, yesterday)}" }
                            for message in messages {
                                MessageView {
                                    key: "{message.key}",
                                    room: id,
                                    message: message.clone(),
                                    author: room.name_of(&message.user_id),
                                    author_note: room.alias_note(&message.user_id),
                                    mine: room.session.is_mine(message),
                                    may_change: room.session.may_change(message),
                                    may_remove: room.session.may_remove(message),
                                    may_react: room.session.may_react(message),
                                    may_report: room.session.may_report(message),
                                    mentioned: !room.is_me(&message.user_id) && room.session.mentions_me(&message.raw),
                                    quote: message.reply_to.map(|seq| {
                                        let original = room.session.find(seq);
                                        Quote {
                                            seq,
                                            shown: original.map(|m| (room.name_of(&m.user_id), format::excerpt(&m.raw))),
                                            deleted: original.is_some_and(|m| m.deleted),
                                        }
                                    }),
                                    changes: message
                                        .seq
                                        .map(|seq| room.session.changes_to(seq).cloned().collect::<Vec<_>>())
                                        .unwrap_or_default(),
                                    reactions: message
                                        .reactions
                                        .iter()
                                        .map(|r| Shown {
                                            emoji: r.emoji.clone(),
                                            count: r.users.len(),
                                            who: r.users.iter().map(|u| if room.is_me(u) { "you".to_owned() } else { room.name_of(u) }).collect::<Vec<_>>().join(", "),
                                            mine: r.users.iter().any(|u| room.is_me(u)),
                                        })
                                        .collect::<Vec<_>>(),
                                }
                            }
                        }
                    }
                    if below {
                        div { class: "history-edge",
                            button { r#type: "button", class: "load-newer",
                                onclick: move |_| {
                                    newer_button.newer();
                                },
                                "Show newer messages"
                            }
                        }
                    }
                }
                if unseen() > 0 && !at_bottom() {
                    button {
                        r#type: "button",
                        class: "new-messages",
                        onclick: move |_| {
                            // The newest are rendered again; the view follows them once they are.
                            window.set(LogWindow::Newest);
                            at_bottom.set(true);
                            if let Some(log) = element(&jump_log_id) {
                                pin_to_bottom(&log, &button_pinned);
                            }
                            unseen.set(0);
                        },
                        if unseen() == 1 { "1 new message ↓" } else { "{unseen} new messages ↓" }
                    }
                }
            }
            if app.offer_name(room) {
                NameOffer {}
            }
            // Announced politely; empty (not absent) when nobody types, so that the region
            // exists before its first announcement.
            p { class: "typing", "aria-live": "polite", "{typing_line}" }
            Composer { id }
        }
    }
}

/// Asks for older messages, remembering where the view was so that it stays still.
#[derive(Clone)]
struct Older {
    state: Signal<AppState>,
    net: Coroutine<Intent>,
    id: RoomId,
    log_id: String,
    anchor: Rc<Cell<Option<Anchor>>>,
    window: Signal<LogWindow>,
}

impl Older {
    /// Renders older messages held in memory, or asks the room for a page of them.
    fn load(&self) {
        let mut window = self.window;
        // Called from a timer too: the view (and its window) may be gone by then.
        if window.try_peek().is_err() {
            return;
        }
        let app = self.state.peek();
        let Some(room) = app.room(self.id) else {
            return;
        };
        let keys = shown_keys(room);
        let rendered = window.peek().range(&keys);
        let first = keys.get(rendered.start).map(|k| (*k).to_owned());
        let older = window.peek().older(&keys);
        if let Some(next) = older {
            // The message rendered first stays where it is seen.
            self.remember(first.clone(), first);
            window.set(next);
            return;
        }
        if !room
            .session
            .may_request_history_in(room.conversation.as_deref())
        {
            return;
        }
        self.remember(first.clone(), first);
        let waiting = window.peek().awaiting_older(&keys);
        drop(app);
        if *window.peek() != waiting {
            window.set(waiting);
        }
        self.net.send(Intent::LoadOlder(self.id));
    }

    /// Renders newer messages held in memory; whether there were any.
    fn newer(&self) -> bool {
        let mut window = self.window;
        // Called from a timer too: the view (and its window) may be gone by then.
        if window.try_peek().is_err() {
            return false;
        }
        let app = self.state.peek();
        let Some(room) = app.room(self.id) else {
            return false;
        };
        let keys = shown_keys(room);
        let Some(next) = window.peek().newer(&keys) else {
            return false;
        };
        let rendered = window.peek().range(&keys);
        let now_first = next.range(&keys).start;
        // Older ones leave the top: the message rendered last stays where it is seen.
        if now_first != rendered.start {
            let last = rendered
                .end
                .checked_sub(1)
                .and_then(|i| keys.get(i))
                .map(|k| (*k).to_owned());
            let first = keys.get(rendered.start).map(|k| (*k).to_owned());
            self.remember(first, last);
        }
        drop(app);
        window.set(next);
        true
    }

    /// The reader has left the newest: the window stops following.
    fn hold(&self) {
        let mut window = self.window;
        // Called from a timer too: the view (and its window) may be gone by then.
        if window.try_peek().is_err() {
            return;
        }
        if !window.peek().follows() {
            return;
        }
        let held = {
            let app = self.state.peek();
            let Some(room) = app.room(self.id) else {
                return;
            };
            window.peek().held(&shown_keys(room))
        };
        window.set(held);
    }

    /// Keeps `key` still when the message rendered first is no longer `first_key`.
    fn remember(&self, first_key: Option<String>, key: Option<String>) {
        let Some(log) = element(&self.log_id) else {
            return;
        };
        let at = key
            .as_deref()
            .and_then(|key| content_position(&log, key))
            .unwrap_or(0.0);
        self.anchor.set(Some(Anchor { first_key, key, at }));
    }
}

/// The room's connection state; while it waits to reconnect, a countdown and "Retry now".
/// Its own component, so that the countdown's ticks re-render only this line.
#[component]
fn LinkStatus(id: RoomId, link: Link, of: String) -> Element {
    let net = use_coroutine_handle::<Intent>();
    let mut now = use_signal(|| js_sys::Date::now() as i64);
    let waiting = matches!(link, Link::Reconnecting { .. });
    // Ticks once a second while there is something to count down (dropping the interval
    // stops it).
    let mut ticker = use_signal(|| None::<gloo_timers::callback::Interval>);
    use_effect(use_reactive!(|waiting| {
        if waiting {
            now.set(js_sys::Date::now() as i64);
            ticker.set(Some(gloo_timers::callback::Interval::new(
                1_000,
                move || {
                    now.set(js_sys::Date::now() as i64);
                },
            )));
        } else {
            ticker.set(None);
        }
    }));
    let status = link_text(link, now());
    rsx! {
        p { class: "link-status", "data-link": link_class(link), role: "status", "{of}{status}" }
        if waiting || link == Link::Banned {
            button {
                r#type: "button",
                class: "link-button",
                onclick: move |_| net.send(Intent::RetryNow(id)),
                "Retry now"
            }
        }
    }
}

/// Everyone starts as "Anonymous": a newcomer is offered, once, to choose a name.
#[component]
fn NameOffer() -> Element {
    let mut state = use_context::<Signal<AppState>>();
    let net = use_coroutine_handle::<Intent>();
    let mut name = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    rsx! {
        form {
            class: "name-offer",
            "aria-label": "Choose your name",
            onsubmit: move |event: FormEvent| {
                event.prevent_default();
                match crate::state::check_name(&name()) {
                    Ok(name) => {
                        state.write().settings.asked_name = true;
                        net.send(Intent::Rename(name, crate::state::NameScope::All));
                        // The offer goes away: on to writing.
                        if let Some(id) = state.peek().active {
                            super::focus_soon(super::composer_id(id));
                        }
                    }
                    Err(e) => error.set(Some(e.to_string())),
                }
            },
            label { r#for: "name-offer-input", "People here see you as Anonymous. Choose a name:" }
            input {
                id: "name-offer-input",
                r#type: "text",
                maxlength: "{protocol::room::MAX_NAME_CHARS}",
                autocomplete: "nickname",
                value: "{name}",
                oninput: move |e| name.set(e.value()),
            }
            button { r#type: "submit", "Use this name" }
            button {
                r#type: "button",
                class: "link-button",
                onclick: move |_| {
                    state.write().settings.asked_name = true;
                    if let Some(id) = state.peek().active {
                        super::focus_soon(super::composer_id(id));
                    }
                },
                "Not now"
            }
            if let Some(message) = error() {
                p { class: "form-error", role: "alert", "{message}" }
            }
        }
    }
}
