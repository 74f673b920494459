//! The moderators' panel, in the room's header (moderators and owners): the open reports,
//! each with the message it is about, "Show message" and "Resolve", and the moderation log
//! (who did what to whom and why), newest first.

use dioxus::prelude::*;

use crate::format;
use crate::network::Intent;
use crate::state::{AppState, RoomId};
use protocol::{AuditAction, AuditEntry};

/// "Moderation" and its panel.
#[component]
pub(super) fn ModerationControl(id: RoomId) -> Element {
    let state = use_context::<Signal<AppState>>();
    let net = use_coroutine_handle::<Intent>();
    let mut open = use_signal(|| false);
    let app = state.read();
    let Some(room) = app.room(id) else {
        return rsx! {};
    };
    let panel_id = format!("moderation-{}", id.0);
    let reports: Vec<(protocol::Seq, String, Option<protocol::Seq>)> = room
        .session
        .open_reports()
        .iter()
        .map(|r| (r.seq, describe(room, r), r.target))
        .collect();
    let log: Vec<(protocol::Seq, String, String)> = room
        .session
        .audit()
        .iter()
        .map(|e| (e.seq, format::hh_mm(e.at), describe(room, e)))
        .collect();
    let count = reports.len();
    rsx! {
        button {
            r#type: "button",
            class: "room-settings-toggle",
            "aria-expanded": if open() { "true" } else { "false" },
            "aria-controls": "{panel_id}",
            onclick: move |_| {
                if !open() {
                    net.send(Intent::RequestAudit(id));
                }
                open.set(!open());
            },
            "Moderation"
            if count > 0 { " ({count} open)" }
        }
        if open() {
            // Focusable: a long log scrolls, and the keyboard must be able to scroll it.
            section { id: "{panel_id}", class: "moderation-panel", "aria-label": "Moderation", tabindex: "0",
                h3 { "Open reports" }
                if reports.is_empty() {
                    p { class: "muted", "No open reports." }
                }
                ul {
                    for (seq, said, target) in reports {
                        li { key: "{seq}",
                            span { "{said}" }
                            if let Some(target) = target {
                                button {
                                    r#type: "button",
                                    class: "link-button",
                                    onclick: move |_| net.send(Intent::Reveal(id, target)),
                                    "Show message"
                                }
                            }
                            button {
                                r#type: "button",
                                class: "link-button",
                                "aria-label": "Resolve: {said}",
                                onclick: move |_| net.send(Intent::ResolveReport(id, seq)),
                                "Resolve"
                            }
                        }
                    }
                }
                h3 { "Moderation log" }
                if log.is_empty() {
                    p { class: "muted", "Nothing yet." }
                }
                ol { class: "moderation-log",
                    for (seq, at, said) in log {
                        li { key: "{seq}", time { "{at}" } " {said}" }
                    }
                }
            }
        }
    }
}

/// An entry in words: "Bob timed out Carol until 14:05", "Carol reported Olga's message
/// “…”: spam".
fn describe(room: &crate::state::RoomState, entry: &AuditEntry) -> String {
    let by = if room.is_me(&entry.by) {
        "You".to_owned()
    } else {
        room.name_of(&entry.by)
    };
    let whom = entry
        .user_id
        .as_deref()
        .map_or_else(|| "someone".to_owned(), |u| room.name_of(u));
    let until = |what: &str| match entry.until {
        Some(at) => format!("{what} until {}", format::hh_mm(at)),
        None => format!("{what} until lifted"),
    };
    let said = match entry.action {
        AuditAction::Report => {
            let excerpt = entry
                .target
                .and_then(|seq| room.session.find(seq))
                .map(|m| format!(" “{}”", format::excerpt(&m.raw)))
                .unwrap_or_default();
            format!("{by} reported {whom}'s message{excerpt}")
        }
        AuditAction::Resolve => format!("{by} resolved a report of {whom}'s message"),
        AuditAction::Remove => format!("{by} removed a message of {whom}"),
        AuditAction::TimeOut => format!(
            "{by} timed out {whom} until {}",
            entry.until.map(format::hh_mm).unwrap_or_default()
        ),
        AuditAction::EndTimeOut => format!("{by} ended {whom}'s time-out"),
        AuditAction::Kick => format!("{by} kicked {whom}"),
        AuditAction::Ban => until(&format!("{by} banned {whom}")),
        AuditAction::Unban => format!("{by} lifted {whom}'s ban"),
        AuditAction::Moderator => format!("{by} made {whom} a moderator"),
        AuditAction::Member => format!("{by} made {whom} a member again"),
        AuditAction::RoomSettings => format!("{by} changed the topic or slow mode"),
    };
    match &entry.reason {
        Some(reason) => format!("{said}: {reason}"),
        None => said,
    }
}
