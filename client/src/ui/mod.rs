//! The components. They read [`AppState`] from context, change it through its methods and
//! hand what those return to the network loop as an [`Intent`].

mod call;
mod composer;
mod message;
mod moderation;
mod people;
mod profile;
mod room;
mod room_settings;
mod search;
mod settings;
mod sidebar;
mod window;

use std::cell::RefCell;
use std::rc::Rc;

use dioxus::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use crate::network;
use crate::state::{AppState, RoomId, Saved};
use crate::storage;
use crate::transport::{Connector, MockHub, MockOptions};

/// Rooms a first visit opens: the demo works with no server at all.
const DEMO_ROOMS: [&str; 2] = ["mock://general", "mock://random"];

/// Which overlay is open: on a phone the sidebars are drawers; settings is a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    None,
    Rooms,
    People,
    Settings,
}

#[component]
pub fn App() -> Element {
    let state = use_context_provider(|| Signal::new(initial_state()));
    let mut panel = use_context_provider(|| Signal::new(Panel::None));
    // What you were writing, per room: its own signal, so a key press re-renders the box only.
    use_context_provider(|| Signal::new(storage::Drafts::new()));
    // The message being edited in the writing box, if any.
    use_context_provider(|| Signal::new(None::<composer::Editing>));
    // The message the next one answers, if any.
    use_context_provider(|| Signal::new(None::<composer::Replying>));
    // The person whose profile is open, if any.
    let profile = use_context_provider(|| Signal::new(None::<profile::Shown>));
    // What the call panel shows of the call's media; the network loop keeps it.
    let call_view = use_context_provider(|| Signal::new(crate::call::CallView::default()));
    let connector = use_hook(|| Connector::new(MockHub::new(mock_options())));
    use_coroutine(move |intents| network::run(intents, state, connector.clone(), call_view));

    // Remember rooms, identities and settings whenever they change (not on every message).
    let last_saved = use_hook(|| Rc::new(RefCell::new(Saved::default())));
    use_effect(move || {
        let saved = state.read().to_saved();
        if *last_saved.borrow() != saved {
            storage::save(&saved);
            *last_saved.borrow_mut() = saved;
        }
    });

    // A hidden tab counts unread messages in the shown room too; Escape and resizing close
    // drawers.
    use_hook(move || Rc::new(page_listeners(state, panel)));
    // On a wide screen the writing box has focus from the start (on a phone that would open
    // the keyboard before the user asked for it).
    use_hook(move || {
        if let Some(id) = state.peek().active
            && window_width() > ROOMS_DRAWER_MAX_WIDTH
        {
            focus_soon(composer_id(id));
        }
    });

    // Unread messages in the tab title.
    use_effect(move || {
        let unread = state.read().total_unread();
        let title = if unread > 0 {
            format!("({unread}) CAHAT")
        } else {
            "CAHAT".to_owned()
        };
        // Only when it changes: setting it costs the browser work even when it is the same.
        if let Some(document) = web_sys::window().and_then(|w| w.document())
            && document.title() != title
        {
            document.set_title(&title);
        }
    });

    let current = panel();
    let panel_attr = match current {
        Panel::None => "none",
        Panel::Rooms => "rooms",
        Panel::People => "people",
        Panel::Settings => "settings",
    };
    let active = state.read().active;
    let conversation = state
        .read()
        .active_room()
        .and_then(|r| r.conversation.clone())
        .unwrap_or_default();
    let elsewhere: u32 = state
        .read()
        .rooms
        .iter()
        .map(|r| {
            let here = if Some(r.id) == active { 0 } else { r.unread };
            here + r.direct_unread_total()
        })
        .sum();
    let rooms_label = if elsewhere > 0 {
        format!("Rooms, {elsewhere} unread")
    } else {
        "Rooms".to_owned()
    };
    let title = state
        .read()
        .active_room()
        .map(|r| r.title())
        .unwrap_or_default();
    rsx! {
        div {
            class: "app",
            "data-panel": panel_attr,
            onkeydown: move |event: KeyboardEvent| {
                if event.key() == Key::Escape && panel() != Panel::None {
                    panel.set(Panel::None);
                }
            },
            header { class: "topbar",
                DrawerToggle { which: Panel::Rooms, label: rooms_label, controls: "rooms-panel",
                    "☰"
                    // Unread messages in the rooms not shown: the sign is on the button that
                    // opens their list.
                    if elsewhere > 0 { span { class: "badge", "aria-hidden": "true", "{elsewhere}" } }
                }
                h1 { "CAHAT" }
                span { class: "topbar-room", "{title}" }
                DrawerToggle { which: Panel::People, label: "People".to_owned(), controls: "people-panel",
                    svg {
                        "viewBox": "0 0 24 24",
                        width: "18",
                        height: "18",
                        "aria-hidden": "true",
                        path {
                            fill: "currentColor",
                            d: "M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7zm7.5 0a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM9 13c-3 0-8 1.5-8 4.5V20h16v-2.5C17 14.5 12 13 9 13zm7.5 0c-.4 0-.9 0-1.4.1 1.3 1 2.4 2.4 2.4 4.4V20H23v-2.5c0-2.9-4.3-4.5-6.5-4.5z",
                        }
                    }
                }
                button {
                    id: "settings-button",
                    class: "settings-toggle",
                    r#type: "button",
                    "aria-label": "Settings",
                    "aria-haspopup": "dialog",
                    onclick: move |_| toggle(panel, Panel::Settings),
                    "⚙"
                }
            }
            div { class: "columns",
                sidebar::Sidebar {}
                match active {
                    // Made anew for each conversation: its own log, box and draft.
                    Some(id) => rsx! { room::RoomView { key: "{id.0}:{conversation}", id } },
                    None => rsx! {
                        main { class: "room empty", "aria-label": "No room",
                            p { "You have no rooms open. Add one with its address, for example "
                                code { "mock://lobby" } " or " code { "ws://localhost:4000" } "." }
                        }
                    },
                }
                people::People {}
            }
            call::CallPanel {}
            if current == Panel::Rooms || current == Panel::People {
                div {
                    class: "scrim",
                    "aria-hidden": "true",
                    onclick: move |_| panel.set(Panel::None),
                }
            }
            if current == Panel::Settings {
                settings::Settings {}
            }
            if let Some(shown) = profile() {
                profile::Profile { shown }
            }
        }
    }
}

/// A top-bar button that opens or closes a drawer (shown on narrow screens only).
#[component]
fn DrawerToggle(which: Panel, label: String, controls: &'static str, children: Element) -> Element {
    let panel = use_context::<Signal<Panel>>();
    rsx! {
        button {
            class: "drawer-toggle",
            r#type: "button",
            "aria-label": label,
            "aria-expanded": panel() == which,
            "aria-controls": controls,
            onclick: move |_| toggle(panel, which),
            {children}
        }
    }
}

/// An event listener on the window or the document, removed when dropped.
pub struct Listener {
    target: web_sys::EventTarget,
    event: &'static str,
    callback: Closure<dyn FnMut(web_sys::Event)>,
}

impl Listener {
    /// Listens to `event` on `target` (`None`: nothing to listen to, as outside a browser).
    pub fn on(
        target: Option<web_sys::EventTarget>,
        event: &'static str,
        handler: impl FnMut(web_sys::Event) + 'static,
    ) -> Option<Self> {
        let target = target?;
        let callback = Closure::<dyn FnMut(web_sys::Event)>::new(handler);
        target
            .add_event_listener_with_callback(event, callback.as_ref().unchecked_ref())
            .ok()?;
        Some(Self {
            target,
            event,
            callback,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Removing a listener that is not there is harmless; nothing to report.
        let _gone = self.target.remove_event_listener_with_callback(
            self.event,
            self.callback.as_ref().unchecked_ref(),
        );
    }
}

/// The page's document, as an event target.
pub fn document_target() -> Option<web_sys::EventTarget> {
    web_sys::window()?.document().map(Into::into)
}

/// The window, as an event target.
pub fn window_target() -> Option<web_sys::EventTarget> {
    web_sys::window().map(Into::into)
}

/// The window's inner width in CSS pixels.
fn window_width() -> f64 {
    web_sys::window()
        .and_then(|w| w.inner_width().ok())
        .and_then(|w| w.as_f64())
        .unwrap_or(0.0)
}

/// Listeners for the page's life: the tab hidden or shown, Escape anywhere, and resizing.
fn page_listeners(mut state: Signal<AppState>, mut panel: Signal<Panel>) -> Vec<Listener> {
    let visibility = Listener::on(document_target(), "visibilitychange", move |_| {
        let hidden = web_sys::window()
            .and_then(|w| w.document())
            .is_some_and(|d| d.hidden());
        state.write().set_page_visible(!hidden);
        // A hidden page may never come back (a phone ends it): keep what it shows.
        if hidden {
            keep_history(state);
        }
    });
    let leaving = Listener::on(window_target(), "pagehide", move |_| keep_history(state));
    // Escape closes a drawer wherever focus is (also on the page behind it).
    let escape = Listener::on(document_target(), "keydown", move |event| {
        let escape = event
            .dyn_ref::<web_sys::KeyboardEvent>()
            .is_some_and(|k| k.key() == "Escape");
        if escape && matches!(*panel.peek(), Panel::Rooms | Panel::People) {
            panel.set(Panel::None);
        }
    });
    // A drawer exists only on narrow screens: widening the window closes it, so it does not
    // reappear when the window narrows again.
    let resize = Listener::on(window_target(), "resize", move |_| {
        let width = window_width();
        let close = match *panel.peek() {
            Panel::Rooms => width > ROOMS_DRAWER_MAX_WIDTH,
            Panel::People => width > PEOPLE_DRAWER_MAX_WIDTH,
            _ => false,
        };
        if close {
            panel.set(Panel::None);
        }
    });
    [visibility, leaving, escape, resize]
        .into_iter()
        .flatten()
        .collect()
}

/// Keeps the latest messages of every server room, to show after a reload.
fn keep_history(state: Signal<AppState>) {
    let app = state.peek();
    for room in &app.rooms {
        if let Some(kept) = app.history_to_keep(room.id) {
            storage::save_history(&room.address.to_string(), kept);
        }
    }
}

/// Widest window in which the rooms, and the people, are drawers (as in style.css).
const ROOMS_DRAWER_MAX_WIDTH: f64 = 640.0;
const PEOPLE_DRAWER_MAX_WIDTH: f64 = 900.0;

fn toggle(mut panel: Signal<Panel>, which: Panel) {
    let next = if panel() == which { Panel::None } else { which };
    panel.set(next);
}

/// The saved client, or the demo rooms on a first visit; plus the rooms a link asks for
/// (`?room=ws://host:4000/`, repeatable), the first of them shown.
fn initial_state() -> AppState {
    let prefix = format!("{:x}", (js_sys::Math::random() * 2f64.powi(48)) as u64);
    let linked = query_values("room");
    let mut state = match storage::load() {
        Some(saved) => AppState::from_saved(saved, prefix),
        None => {
            let mut state = AppState::new(Default::default(), prefix);
            if linked.is_empty() {
                for address in DEMO_ROOMS {
                    // The demo addresses are constants that parse.
                    let _known_good = state.add_room(address);
                }
            }
            state
        }
    };
    let mut first = None;
    for address in linked {
        // A link with a bad address opens nothing for it; the rest still open.
        if let Ok((id, _)) = state.add_room(&address) {
            first = first.or(Some(id));
        }
    }
    if let Some(id) = first {
        state.select(id);
        forget_room_links();
    }
    // What the rooms last showed, until they answer.
    let ids: Vec<(RoomId, String)> = state
        .rooms
        .iter()
        .filter(|r| !r.address.is_mock())
        .map(|r| (r.id, r.address.to_string()))
        .collect();
    for (id, address) in ids {
        if let Some(kept) = storage::load_history(&address) {
            state.restore_history(id, kept);
        }
    }
    let hidden = web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.hidden());
    state.set_page_visible(!hidden);
    state
}

/// The rooms of a `?room=` link are opened once and then remembered like any other: the
/// parameter leaves the address bar, so that a reload cannot bring back a room you removed.
fn forget_room_links() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let location = window.location();
    let (Ok(search), Ok(path), Ok(hash)) =
        (location.search(), location.pathname(), location.hash())
    else {
        return;
    };
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search) else {
        return;
    };
    params.delete("room");
    let rest = String::from(params.to_string());
    let url = if rest.is_empty() {
        format!("{path}{hash}")
    } else {
        format!("{path}?{rest}{hash}")
    };
    if let Ok(history) = window.history() {
        // Only the address bar changes; nothing depends on it succeeding.
        let _shown = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
}

/// Puts text back into a room's writing box (after what is there, if anything).
pub fn restore_draft(mut drafts: Signal<storage::Drafts>, address: String, text: &str) {
    let mut drafts = drafts.write();
    let draft = drafts.entry(address.clone()).or_default();
    if !draft.is_empty() {
        draft.push_str("\n\n");
    }
    draft.push_str(text);
    storage::save_draft(&address, draft);
}

/// Adds text at the end of a writing box's draft (after a space, if it holds something).
pub fn append_draft(mut drafts: Signal<storage::Drafts>, key: String, text: &str) {
    let mut drafts = drafts.write();
    let draft = drafts.entry(key.clone()).or_default();
    if !draft.is_empty() && !draft.ends_with(char::is_whitespace) {
        draft.push(' ');
    }
    draft.push_str(text);
    storage::save_draft(&key, draft);
}

/// Every value of a query parameter of the page's address.
fn query_values(name: &str) -> Vec<String> {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search) else {
        return Vec::new();
    };
    params
        .get_all(name)
        .iter()
        .filter_map(|v| v.as_string())
        .collect()
}

/// `?seed=N` and `?speed=N` from the page's address.
fn mock_options() -> MockOptions {
    let mut options = MockOptions::default();
    let first = |name| query_values(name).into_iter().next();
    if let Some(seed) = first("seed").and_then(|s| s.parse().ok()) {
        options.seed = seed;
    }
    if let Some(speed) = first("speed").and_then(|s| s.parse::<f64>().ok())
        && speed.is_finite()
        && speed > 0.0
    {
        options.speed = speed.min(1000.0);
    }
    options
}

/// The page's element with this id, if it is there.
pub fn element(id: &str) -> Option<web_sys::Element> {
    web_sys::window()?.document()?.get_element_by_id(id)
}

/// Moves focus to `id` once the current render is on the page (the element may be new).
pub fn focus_soon(id: String) {
    gloo_timers::callback::Timeout::new(0, move || focus(&id)).forget();
}

/// The writing box of a room, by element id.
pub fn composer_id(room: RoomId) -> String {
    format!("composer-{}", room.0)
}

/// Moves keyboard focus to the element with this id, if it is there.
pub fn focus(id: &str) {
    if let Some(element) = element(id).and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()) {
        // Focus is a help, not a function: an element that refuses it changes nothing else.
        let _focused = element.focus();
    }
}

/// With focus on a modal dialog's last control (first, going back), moves it to the first (last)
/// and says so; otherwise leaves Tab to the browser.
pub fn trap_focus(dialog: &str, backwards: bool) -> bool {
    let Some(dialog) = element(dialog) else {
        return false;
    };
    let Ok(controls) = dialog.query_selector_all("input:not([disabled]), button:not([disabled])")
    else {
        return false;
    };
    let count = controls.length();
    if count == 0 {
        return false;
    }
    let at = |i: u32| {
        controls
            .item(i)
            .and_then(|n| n.dyn_into::<web_sys::HtmlElement>().ok())
    };
    let active = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element());
    let (edge, other) = if backwards {
        (at(0), at(count - 1))
    } else {
        (at(count - 1), at(0))
    };
    let on_edge = match (&edge, &active) {
        (Some(edge), Some(active)) => {
            let edge: &web_sys::Element = edge;
            edge == active
        }
        _ => false,
    };
    if let (true, Some(other)) = (on_edge, other) {
        // Focus is a help: an element that refuses it changes nothing else.
        let _focused = other.focus();
        return true;
    }
    false
}
