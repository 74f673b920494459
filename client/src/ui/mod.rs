//! The components. They read [`AppState`] from context, change it through its methods and
//! hand what those return to the network loop as an [`Intent`].

mod composer;
mod people;
mod room;
mod settings;
mod sidebar;

use std::cell::RefCell;
use std::rc::Rc;

use dioxus::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use crate::network::{self, Intent};
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
    let connector = use_hook(|| Connector::new(MockHub::new(mock_options())));
    use_coroutine(move |intents| network::run(intents, state, connector.clone()));

    // Remember rooms, identities and settings whenever they change (not on every message).
    let last_saved = use_hook(|| Rc::new(RefCell::new(Saved::default())));
    use_effect(move || {
        let saved = state.read().to_saved();
        if *last_saved.borrow() != saved {
            storage::save(&saved);
            *last_saved.borrow_mut() = saved;
        }
    });

    // A hidden tab counts unread messages in the shown room too.
    use_hook(move || Rc::new(VisibilityListener::install(state)));

    // Unread messages in the tab title.
    use_effect(move || {
        let unread = state.read().total_unread();
        let title = if unread > 0 {
            format!("({unread}) CAHAT")
        } else {
            "CAHAT".to_owned()
        };
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
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
                DrawerToggle { which: Panel::Rooms, label: "Rooms", controls: "rooms-panel", "☰" }
                h1 { "CAHAT" }
                span { class: "topbar-room", "{title}" }
                DrawerToggle { which: Panel::People, label: "People online", controls: "people-panel",
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
                    Some(id) => rsx! { room::RoomView { key: "{id.0}", id } },
                    None => rsx! {
                        main { class: "room empty", "aria-label": "No room",
                            p { "You have no rooms open. Add one with its address, for example "
                                code { "mock://lobby" } " or " code { "ws://localhost:4000" } "." }
                        }
                    },
                }
                people::People {}
            }
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
        }
    }
}

/// A top-bar button that opens or closes a drawer (shown on narrow screens only).
#[component]
fn DrawerToggle(
    which: Panel,
    label: &'static str,
    controls: &'static str,
    children: Element,
) -> Element {
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

/// Tells the state when the tab is hidden or shown; removed when dropped.
struct VisibilityListener(Option<Closure<dyn FnMut(web_sys::Event)>>);

impl VisibilityListener {
    fn install(mut state: Signal<AppState>) -> Self {
        let Some(document) = web_sys::window().and_then(|w| w.document()) else {
            return Self(None);
        };
        let on_change = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
            let hidden = web_sys::window()
                .and_then(|w| w.document())
                .is_some_and(|d| d.hidden());
            state.write().set_page_visible(!hidden);
        });
        let added = document
            .add_event_listener_with_callback(
                "visibilitychange",
                on_change.as_ref().unchecked_ref(),
            )
            .is_ok();
        Self(added.then_some(on_change))
    }
}

impl Drop for VisibilityListener {
    fn drop(&mut self) {
        if let (Some(listener), Some(document)) =
            (&self.0, web_sys::window().and_then(|w| w.document()))
        {
            // Removing a listener that is not there is harmless; nothing to report.
            let _gone = document.remove_event_listener_with_callback(
                "visibilitychange",
                listener.as_ref().unchecked_ref(),
            );
        }
    }
}

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
    }
    let hidden = web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.hidden());
    state.set_page_visible(!hidden);
    state
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

/// Moves keyboard focus to the element with this id, if it is there.
pub fn focus(id: &str) {
    if let Some(element) = element(id).and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()) {
        // Focus is a help, not a function: an element that refuses it changes nothing else.
        let _focused = element.focus();
    }
}

/// Sends what a state change returned to the network loop.
pub fn carry(net: Coroutine<Intent>, id: RoomId, outcome: crate::state::Outcome) {
    if !outcome.send.is_empty() || outcome.retry_pending_in.is_some() {
        net.send(Intent::Carry(id, outcome));
    }
}
