//! Settings: your name (everywhere or in this room) and how Enter behaves.

use dioxus::prelude::*;

use super::Panel;
use crate::network::Intent;
use crate::state::{AppState, NameScope};

#[component]
pub fn Settings() -> Element {
    let mut state = use_context::<Signal<AppState>>();
    let mut panel = use_context::<Signal<Panel>>();
    let net = use_coroutine_handle::<Intent>();
    let initial = {
        let app = state.peek();
        app.active_room()
            .and_then(|r| {
                app.wanted_name(r)
                    .or_else(|| r.my_name().map(str::to_owned))
            })
            .or_else(|| app.settings.display_name.clone())
            .unwrap_or_default()
    };
    let mut name = use_signal(|| initial);
    let mut only_here = use_signal(|| false);
    let mut error = use_signal(|| None::<String>);
    let mut saved = use_signal(|| false);
    // Focus moves into the dialog when it opens (after the input exists), and back to the
    // Settings button when it closes (Close, Escape or a click outside).
    use_effect(|| {
        gloo_timers::callback::Timeout::new(0, || super::focus("settings-name")).forget();
    });
    use_drop(|| super::focus("settings-button"));

    let save_name = move |event: FormEvent| {
        event.prevent_default();
        let active = state.peek().active;
        let scope = match (only_here(), active) {
            (true, Some(id)) => NameScope::Room(id),
            _ => NameScope::All,
        };
        match crate::state::check_name(&name()) {
            Ok(name) => {
                net.send(Intent::Rename(name, scope));
                error.set(None);
                saved.set(true);
            }
            Err(e) => error.set(Some(e.to_string())),
        }
    };

    let enter_to_send = state.read().settings.enter_to_send;
    let notify_mentions = state.read().settings.notify_mentions;
    let demo_moderator = state.read().settings.demo_moderator;
    let net = use_coroutine_handle::<crate::network::Intent>();
    let mut notify_refused = use_signal(|| false);
    let has_room = state.read().active.is_some();
    rsx! {
        div { class: "dialog-backdrop",
            onclick: move |_| panel.set(Panel::None),
        }
        section {
            id: "settings-dialog",
            class: "dialog",
            role: "dialog",
            "aria-modal": "true",
            "aria-labelledby": "settings-title",
            // A modal dialog keeps Tab inside it: past the last control, back to the first.
            onkeydown: move |event: KeyboardEvent| {
                if event.key() == Key::Tab && super::trap_focus("settings-dialog", event.modifiers().shift()) {
                    event.prevent_default();
                }
            },
            h2 { id: "settings-title", "Settings" }
            form { "aria-label": "Your name", onsubmit: save_name,
                label { r#for: "settings-name", "Your name" }
                input {
                    id: "settings-name",
                    r#type: "text",
                    maxlength: "{protocol::room::MAX_NAME_CHARS}",
                    autocomplete: "nickname",
                    value: "{name}",
                    oninput: move |e| {
                        name.set(e.value());
                        saved.set(false);
                    },
                }
                fieldset { class: "scope",
                    legend { "Use this name" }
                    label {
                        input {
                            r#type: "radio",
                            name: "name-scope",
                            checked: !only_here(),
                            onchange: move |_| only_here.set(false),
                        }
                        " in all rooms"
                    }
                    label {
                        input {
                            r#type: "radio",
                            name: "name-scope",
                            disabled: !has_room,
                            checked: only_here(),
                            onchange: move |_| only_here.set(true),
                        }
                        " only in this room"
                    }
                }
                button { r#type: "submit", "Save name" }
                if saved() {
                    p { class: "form-ok", role: "status", "Name saved." }
                }
                if let Some(message) = error() {
                    p { class: "form-error", role: "alert", "{message}" }
                }
            }
            label { class: "check",
                input {
                    r#type: "checkbox",
                    checked: enter_to_send,
                    onchange: move |e| state.write().settings.enter_to_send = e.checked(),
                }
                " Send with Enter (otherwise Ctrl+Enter)"
            }
            label { class: "check",
                input {
                    r#type: "checkbox",
                    checked: notify_mentions,
                    onchange: move |e| {
                        if !e.checked() {
                            state.write().settings.notify_mentions = false;
                            return;
                        }
                        // The browser is asked only now, on this click.
                        wasm_bindgen_futures::spawn_local(async move {
                            let granted = ask_notification_permission().await;
                            state.write().settings.notify_mentions = granted;
                            notify_refused.set(!granted);
                        });
                    },
                }
                " Notify me when someone mentions me"
            }
            if notify_refused() {
                p { class: "form-error", role: "alert", "This browser does not allow notifications from this page (see its site settings)." }
            }
            label { class: "check",
                input {
                    r#type: "checkbox",
                    checked: demo_moderator,
                    onchange: move |e| {
                        state.write().settings.demo_moderator = e.checked();
                        net.send(crate::network::Intent::DemoModerator(e.checked()));
                    },
                }
                " Be a moderator in the demo's rooms (mock://), to try the moderation controls"
            }
            button {
                r#type: "button",
                class: "close",
                onclick: move |_| panel.set(Panel::None),
                "Close"
            }
        }
    }
}

/// Asks the browser for permission to show notifications; true if granted.
async fn ask_notification_permission() -> bool {
    let Ok(asked) = web_sys::Notification::request_permission() else {
        return false;
    };
    match wasm_bindgen_futures::JsFuture::from(asked).await {
        Ok(answer) => answer.as_string().as_deref() == Some("granted"),
        Err(_) => false,
    }
}
