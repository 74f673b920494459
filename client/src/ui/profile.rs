//! A person's profile, opened from the people list or a message's author: who they are, your
//! own name for them, and what you can do (write to them directly, mention them).

use dioxus::prelude::*;

use crate::format;
use crate::state::{AppState, RoomId};
use crate::storage::Drafts;

/// Whose profile is open, in which room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub room: RoomId,
    pub user: protocol::UserId,
}

#[component]
pub fn Profile(shown: Shown) -> Element {
    let mut state = use_context::<Signal<AppState>>();
    let mut open = use_context::<Signal<Option<Shown>>>();
    let drafts = use_context::<Signal<Drafts>>();
    let net = use_coroutine_handle::<crate::network::Intent>();
    let Shown { room: id, user } = shown.clone();
    let initial_alias = state
        .peek()
        .room(id)
        .and_then(|r| r.aliases.get(&user).cloned())
        .unwrap_or_default();
    let mut alias = use_signal(|| initial_alias);
    let mut error = use_signal(|| None::<String>);
    let mut saved = use_signal(|| None::<&'static str>);
    let mut kick_reason = use_signal(String::new);
    let mut ban_reason = use_signal(String::new);
    // Minutes; 0: until lifted.
    let mut ban_minutes = use_signal(|| 24 * 60_u32);
    let mut ban_address = use_signal(|| false);
    // Focus into the dialog when it opens, back to the writing box when it closes.
    use_effect(|| {
        gloo_timers::callback::Timeout::new(0, || super::focus("profile-close")).forget();
    });
    use_drop(move || super::focus(&super::composer_id(id)));

    let app = state.read();
    let Some(room) = app.room(id) else {
        return rsx! {};
    };
    let name = room.name_of(&user);
    let chosen = room.chosen_name_of(&user);
    let me = room.is_me(&user);
    let online = room.session.online().contains(&user);
    let person = room.session.person(&user);
    let now = js_sys::Date::now() as i64;
    let seen = match (online, person.and_then(|p| p.last_seen)) {
        (true, _) => "online now".to_owned(),
        (false, Some(at)) => format!("last seen {}", format::ago(at, now)),
        (false, None) => "not seen lately".to_owned(),
    };
    let joined = person
        .and_then(|p| p.joined_at)
        .map(|at| format!("joined {}", format::calendar_date(at)));
    let title = room.title();
    let role = room.session.role_of(&user);
    let may_moderate = !me && room.session.may_moderate(&user);
    let timed_out = room.session.timed_out_until(&user, now);
    let banned = room.session.banned_until(&user, now);
    let may_set_role = !me
        && role != Some(protocol::Role::Owner)
        && room.session.my_role() == Some(protocol::Role::Owner);
    let real_name = room
        .session
        .names()
        .get(&user)
        .map(str::to_owned)
        .unwrap_or(chosen.clone());

    let save_alias = {
        let user = user.clone();
        move |event: FormEvent| {
            event.prevent_default();
            let wanted = alias();
            match state.write().set_alias(id, &user, Some(&wanted)) {
                Ok(()) => {
                    error.set(None);
                    saved.set(Some(if wanted.trim().is_empty() {
                        "Your name for them is gone."
                    } else {
                        "Saved: only you see this name."
                    }));
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        }
    };
    rsx! {
        div { class: "dialog-backdrop", onclick: move |_| open.set(None) }
        section {
            id: "profile-dialog",
            class: "dialog profile",
            role: "dialog",
            "aria-modal": "true",
            "aria-labelledby": "profile-title",
            onkeydown: move |event: KeyboardEvent| {
                if event.key() == Key::Escape {
                    open.set(None);
                } else if event.key() == Key::Tab && super::trap_focus("profile-dialog", event.modifiers().shift()) {
                    event.prevent_default();
                }
            },
            h2 { id: "profile-title", "{name}" if me { " (you)" } }
            dl { class: "profile-facts",
                if name != chosen {
                    dt { "Calls themselves" }
                    dd { "{chosen}" }
                }
                dt { "In" }
                dd { "{title}" }
                dt { "Seen" }
                dd { "{seen}" }
                if let Some(joined) = joined {
                    dt { "Here since" }
                    dd { "{joined}" }
                }
                if let Some(role) = role {
                    dt { "Role" }
                    dd { "{crate::format::role(role)}" }
                }
                if let Some(until) = timed_out {
                    dt { "Timed out" }
                    dd { "until {crate::format::hh_mm(until)}" }
                }
                if let Some(until) = banned {
                    dt { "Banned" }
                    dd {
                        match until {
                            Some(until) if format::day(until) == format::day(now) => format!("until {}", format::hh_mm(until)),
                            Some(until) => format!("until {}, {}", format::calendar_date(until), format::hh_mm(until)),
                            None => "until a moderator lifts the ban".to_owned(),
                        }
                    }
                }
            }
            // A moderator (or owner) acts on whoever they outrank.
            if may_moderate {
                div { class: "profile-actions", role: "group", "aria-label": "Moderation",
                    if timed_out.is_some() {
                        button {
                            r#type: "button",
                            onclick: {
                                let user = user.clone();
                                move |_| net.send(crate::network::Intent::TimeOut(id, user.clone(), None))
                            },
                            "End {name}'s time-out"
                        }
                    } else {
                        for (minutes, how_long) in [(10, "10 minutes"), (60, "an hour"), (24 * 60, "a day")] {
                            button {
                                key: "{minutes}",
                                r#type: "button",
                                onclick: {
                                    let user = user.clone();
                                    move |_| net.send(crate::network::Intent::TimeOut(id, user.clone(), Some(minutes)))
                                },
                                "Time out {name} for {how_long}"
                            }
                        }
                    }
                }
                form { class: "alias-form", "aria-label": "Kick {name}",
                    onsubmit: {
                        let user = user.clone();
                        move |event: FormEvent| {
                            event.prevent_default();
                            net.send(crate::network::Intent::Kick(id, user.clone(), kick_reason()));
                            kick_reason.set(String::new());
                        }
                    },
                    label { r#for: "profile-kick-reason", "Why (told to them)" }
                    input {
                        id: "profile-kick-reason",
                        r#type: "text",
                        maxlength: "{protocol::MAX_REASON_CHARS}",
                        autocomplete: "off",
                        value: "{kick_reason}",
                        oninput: move |e| kick_reason.set(e.value()),
                    }
                    button { r#type: "submit", "Kick {name}" }
                }
                if banned.is_some() {
                    div { class: "profile-actions",
                        button {
                            r#type: "button",
                            onclick: {
                                let user = user.clone();
                                move |_| net.send(crate::network::Intent::Unban(id, user.clone()))
                            },
                            "Lift {name}'s ban"
                        }
                    }
                } else {
                    form { class: "alias-form ban-form", "aria-label": "Ban {name}",
                        onsubmit: {
                            let user = user.clone();
                            move |event: FormEvent| {
                                event.prevent_default();
                                let minutes = Some(ban_minutes()).filter(|m| *m > 0);
                                net.send(crate::network::Intent::Ban(id, user.clone(), minutes, ban_reason(), ban_address()));
                                ban_reason.set(String::new());
                            }
                        },
                        label { r#for: "profile-ban-reason", "Why they are banned (told to them)" }
                        input {
                            id: "profile-ban-reason",
                            r#type: "text",
                            maxlength: "{protocol::MAX_REASON_CHARS}",
                            autocomplete: "off",
                            value: "{ban_reason}",
                            oninput: move |e| ban_reason.set(e.value()),
                        }
                        label { r#for: "profile-ban-length", "For how long" }
                        select {
                            id: "profile-ban-length",
                            onchange: move |e| ban_minutes.set(e.value().parse().unwrap_or(0)),
                            for (minutes, how_long) in [(60, "an hour"), (24 * 60, "a day"), (7 * 24 * 60, "a week"), (0, "until lifted")] {
                                option {
                                    key: "{minutes}",
                                    value: "{minutes}",
                                    selected: ban_minutes() == minutes,
                                    "{how_long}"
                                }
                            }
                        }
                        label { class: "check",
                            input {
                                r#type: "checkbox",
                                checked: ban_address(),
                                onchange: move |e| ban_address.set(e.checked()),
                            }
                            " Also their network address (no new identity from it)"
                        }
                        button { r#type: "submit", "Ban {name}" }
                    }
                }
            }
            // An owner makes and unmakes moderators (owners are the operator's).
            if may_set_role {
                div { class: "profile-actions",
                    button {
                        r#type: "button",
                        onclick: {
                            let user = user.clone();
                            let wanted = if role.is_some() { None } else { Some(protocol::Role::Moderator) };
                            move |_| net.send(crate::network::Intent::SetRole(id, user.clone(), wanted))
                        },
                        if role.is_some() { "Remove {name} as moderator" } else { "Make {name} a moderator" }
                    }
                }
            }
            if !me {
                div { class: "profile-actions",
                    button {
                        r#type: "button",
                        onclick: {
                            let user = user.clone();
                            move |_| {
                                state.write().open_conversation(id, Some(user.clone()));
                                open.set(None);
                                // The conversation's view is a new one: its box, once it is there.
                                super::focus_soon(super::composer_id(id));
                            }
                        },
                        "Message {name} directly"
                    }
                    button {
                        r#type: "button",
                        onclick: {
                            let real_name = real_name.clone();
                            move |_| {
                                // Into the box of the conversation shown, as `@` and their
                                // real name (the one a mention is of).
                                let key = state.peek().room(id).map(|r| r.draft_key());
                                if let Some(key) = key {
                                    super::append_draft(drafts, key, &format!("@{real_name} "));
                                }
                                open.set(None);
                            }
                        },
                        "Mention {name}"
                    }
                    super::call::CallButtons { room: id, user: user.clone(), label: format!(" {name}") }
                }
                form { class: "alias-form", "aria-label": "Your name for them", onsubmit: save_alias,
                    label { r#for: "profile-alias", "Your name for them (only you see it)" }
                    input {
                        id: "profile-alias",
                        r#type: "text",
                        maxlength: "{protocol::room::MAX_NAME_CHARS}",
                        autocomplete: "off",
                        placeholder: "{chosen}",
                        value: "{alias}",
                        oninput: move |e| {
                            alias.set(e.value());
                            saved.set(None);
                        },
                    }
                    button { r#type: "submit", "Save your name for them" }
                    if let Some(done) = saved() {
                        p { class: "form-ok", role: "status", "{done}" }
                    }
                    if let Some(message) = error() {
                        p { class: "form-error", role: "alert", "{message}" }
                    }
                }
            }
            button { id: "profile-close", r#type: "button", class: "close", onclick: move |_| open.set(None), "Close" }
        }
    }
}
