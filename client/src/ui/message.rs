//! One message in a room's log: its author, time, delivery, text, quote, reactions, and the
//! controls the session says it offers (reply, react, edit, delete), with your changes to it
//! on their way.

use dioxus::prelude::*;
use wasm_bindgen::JsCast;

use crate::format;
use crate::network::Intent;
use crate::state::{AppState, ChatMessage, Delivery, RoomId};
use protocol::session::{ChangeAsk, PendingChange};

/// The element id of a message's article, by its key.
pub(super) fn message_element_id(key: &str) -> String {
    format!("message-{key}")
}

/// What a reply shows of the message it answers.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Quote {
    pub(super) seq: protocol::Seq,
    /// The original's author and start, if it is among the messages in memory.
    pub(super) shown: Option<(String, String)>,
    pub(super) deleted: bool,
}

/// One emoji's reactions to a message, as shown.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Shown {
    pub(super) emoji: String,
    pub(super) count: usize,
    /// Who reacted, by name ("you" for you).
    pub(super) who: String,
    pub(super) mine: bool,
}

/// The reactions offered in one click (any emoji of the table can be sent by others).
const QUICK_REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "🎉", "👀", "🙏"];

#[component]
pub(super) fn MessageView(
    room: RoomId,
    message: ChatMessage,
    author: String,
    /// What the author calls themselves, when you gave them a name of your own.
    author_note: Option<String>,
    mine: bool,
    /// Yours to edit or delete (the session says).
    may_change: bool,
    /// Someone else's that you, a moderator or owner, may remove (the session says).
    may_remove: bool,
    /// Open to reactions (the session says).
    may_react: bool,
    /// Someone else's room message you may report to the moderators (the session says).
    may_report: bool,
    mentioned: bool,
    quote: Option<Quote>,
    /// Your changes to it that the room has not stored yet, or refused.
    changes: Vec<PendingChange>,
    reactions: Vec<Shown>,
) -> Element {
    let state = use_context::<Signal<AppState>>();
    let net = use_coroutine_handle::<Intent>();
    let time = format::hh_mm(message.timestamp);
    let drafts = use_context::<Signal<crate::storage::Drafts>>();
    // A call's record is the room's line, not a message anyone wrote: nobody changes it.
    let call = message.call;
    let class = match (mine, message.delivery) {
        _ if call.is_some() => "message call-record",
        (true, Delivery::Pending) => "message mine pending",
        (true, Delivery::Failed | Delivery::Refused) => "message mine failed",
        (true, Delivery::Sent) => "message mine",
        _ if mentioned => "message mention",
        _ => "message",
    };
    let editing = use_context::<Signal<Option<super::composer::Editing>>>();
    let mut confirming = use_signal(|| false);
    let mut reporting = use_signal(|| false);
    let mut report_reason = use_signal(String::new);
    let mut profile = use_context::<Signal<Option<super::profile::Shown>>>();
    let note_id = format!("alias-note-{}", message.key);
    let mut picking = use_signal(|| false);
    let mut replying = use_context::<Signal<Option<super::composer::Replying>>>();
    let seq = message.seq;
    let edited_at = message.edited_at.map(format::hh_mm);
    let retry_key = message.key.clone();
    let edit_key = message.key.clone();
    // Where focus goes as the controls it was on go away (keyboard use never drops to the page).
    let delete_id = format!("delete-{}", message.key);
    let keep_id = format!("keep-{}", message.key);
    let react_id = format!("react-{}", message.key);
    let article_id = message_element_id(&message.key);
    // The refused text goes back into the writing box, to be changed and sent again.
    let refused_text = message.raw.clone();
    let edit = move || {
        if let Some(address) = state.peek().room(room).map(|r| r.draft_key()) {
            super::restore_draft(drafts, address, &refused_text);
            net.send(Intent::TakeBack(room, edit_key.clone()));
            super::focus(&format!("composer-{}", room.0));
        }
    };
    // The message the writing box is editing or answering is marked, so that it can be found.
    let worked_on = match (editing.read().as_ref(), replying.read().as_ref(), seq) {
        (Some(e), _, Some(seq)) if e.room == room && e.seq == seq => " editing",
        (_, Some(r), Some(seq)) if r.room == room && r.seq == seq => " answering",
        _ => "",
    };
    rsx! {
        article {
            id: message_element_id(&message.key),
            class: "{class}{worked_on}",
            tabindex: "-1",
            "aria-label": if mine { "You, {time}" } else { "{author}, {time}" },
            "aria-current": if worked_on.is_empty() { "false" } else { "true" },
            div { class: "meta",
                if mine {
                    span { class: "author", "{author}" }
                    span { class: "you", " (you)" }
                } else {
                    button {
                        r#type: "button",
                        class: "author link-button",
                        title: author_note.clone().unwrap_or_else(|| format!("About {author}")),
                        "aria-describedby": author_note.as_ref().map(|_| note_id.clone()),
                        onclick: {
                            let user = message.user_id.clone();
                            move |_| profile.set(Some(super::profile::Shown { room, user: user.clone() }))
                        },
                        "{author}"
                    }
                    if let Some(note) = &author_note {
                        span { id: "{note_id}", class: "visually-hidden", "{note}" }
                    }
                }
                time { datetime: format::iso(message.timestamp), "{time}" }
                match message.delivery {
                    Delivery::Pending => rsx! { span { class: "delivery", "sending…" } },
                    Delivery::Failed => rsx! {
                        span { class: "delivery", "not sent" }
                        button {
                            r#type: "button",
                            class: "link-button",
                            onclick: move |_| net.send(Intent::Retry(room, retry_key.clone())),
                            "Retry"
                        }
                        button { r#type: "button", class: "link-button", onclick: move |_| edit(), "Edit" }
                    },
                    // Refused for what it says (too long, too deeply nested): sending it again
                    // cannot help, changing it can.
                    Delivery::Refused => rsx! {
                        span { class: "delivery", "not sent" }
                        button { r#type: "button", class: "link-button", onclick: move |_| edit(), "Edit" }
                    },
                    Delivery::Sent => rsx! {},
                }
                if let Some(at) = edited_at {
                    span { class: "edited", title: "edited at {at}", "edited" }
                }
                if let (true, Some(seq)) = (may_change && !confirming(), seq) {
                    button {
                        r#type: "button",
                        class: "link-button message-action",
                        "aria-label": "Edit your message of {time}",
                        onclick: move |_| super::composer::start_editing(state, drafts, editing, room, seq),
                        "Edit"
                    }
                    button {
                        id: "{delete_id}",
                        r#type: "button",
                        class: "link-button message-action",
                        "aria-label": "Delete your message of {time}",
                        onclick: {
                            let keep_id = keep_id.clone();
                            move |_| {
                                confirming.set(true);
                                super::focus_soon(keep_id.clone());
                            }
                        },
                        "Delete"
                    }
                }
                if let (true, Some(_)) = (may_remove && !confirming(), seq) {
                    button {
                        id: "{delete_id}",
                        r#type: "button",
                        class: "link-button message-action",
                        "aria-label": "Remove {author}'s message of {time}",
                        onclick: {
                            let keep_id = keep_id.clone();
                            move |_| {
                                confirming.set(true);
                                super::focus_soon(keep_id.clone());
                            }
                        },
                        "Remove"
                    }
                }
                if may_report && !reporting() && !confirming() {
                    button {
                        r#type: "button",
                        class: "link-button message-action",
                        "aria-label": "Report {author}'s message of {time}",
                        onclick: {
                            let key = message.key.clone();
                            move |_| {
                                reporting.set(true);
                                super::focus_soon(format!("report-{key}"));
                            }
                        },
                        "Report"
                    }
                }
            }
            if let (true, Some(seq)) = (reporting(), seq) {
                form { class: "confirm report-form", "aria-label": "Report {author}'s message",
                    onsubmit: {
                        let article_id = article_id.clone();
                        move |event: FormEvent| {
                            event.prevent_default();
                            net.send(Intent::Report(room, seq, report_reason()));
                            report_reason.set(String::new());
                            reporting.set(false);
                            super::focus_soon(article_id.clone());
                        }
                    },
                    label { r#for: "report-{message.key}", "Why (told to the moderators)" }
                    input {
                        id: "report-{message.key}",
                        r#type: "text",
                        required: true,
                        maxlength: "{protocol::MAX_REASON_CHARS}",
                        autocomplete: "off",
                        value: "{report_reason}",
                        oninput: move |e| report_reason.set(e.value()),
                    }
                    button { r#type: "submit", "Send report" }
                    button {
                        r#type: "button",
                        onclick: {
                            let article_id = article_id.clone();
                            move |_| {
                                reporting.set(false);
                                super::focus_soon(article_id.clone());
                            }
                        },
                        "Cancel"
                    }
                }
            }
            if let (true, Some(seq)) = (confirming(), seq) {
                div { class: "confirm", role: "group",
                    "aria-label": if may_remove { "Remove this message?" } else { "Delete this message?" },
                    span { if may_remove { "Remove this message for everyone, as a moderator?" } else { "Delete this message for everyone?" } }
                    button {
                        r#type: "button",
                        class: "danger",
                        onclick: {
                            let article_id = article_id.clone();
                            move |_| {
                                confirming.set(false);
                                net.send(Intent::Delete(room, seq));
                                super::focus_soon(article_id.clone());
                            }
                        },
                        if may_remove { "Remove for everyone" } else { "Delete for everyone" }
                    }
                    button {
                        id: "{keep_id}",
                        r#type: "button",
                        onclick: {
                            let delete_id = delete_id.clone();
                            move |_| {
                                confirming.set(false);
                                super::focus_soon(delete_id.clone());
                            }
                        },
                        "Keep it"
                    }
                }
            }
            if let Some(quote) = quote {
                button {
                    r#type: "button",
                    class: "reply-quote",
                    title: "Show the message this one answers",
                    onclick: move |_| net.send(Intent::Reveal(room, quote.seq)),
                    match (&quote.shown, quote.deleted) {
                        (Some((who, _)), true) => rsx! { "↪ {who}: a deleted message" },
                        (Some((who, text)), false) => rsx! { "↪ {who}: {text}" },
                        (None, _) => rsx! { "↪ a message earlier in the room" },
                    }
                }
            }
            if let Some(call) = call {
                p { class: "message-body call-line", span { "aria-hidden": "true", "📞 " } "{call.text()}" }
            } else if message.removed {
                p { class: "message-body deleted", "removed by a moderator" }
            } else if message.deleted {
                p { class: "message-body deleted", "message deleted" }
            } else {
                // Our own renderer's sanitised HTML of the raw markdown; never a server's HTML.
                div { class: "message-body", dangerous_inner_html: "{message.html}" }
            }
            for change in changes {
                ChangeLine { key: "{change.nonce}", room, change }
            }
            if let (true, Some(seq)) = (may_react, seq) {
                div { class: "reactions",
                    for shown in reactions {
                        button {
                            key: "{shown.emoji}",
                            r#type: "button",
                            class: if shown.mine { "reaction mine" } else { "reaction" },
                            "aria-pressed": if shown.mine { "true" } else { "false" },
                            "aria-label": "{shown.emoji} {shown.count}: {shown.who}",
                            title: "{shown.who}",
                            onclick: {
                                let emoji = shown.emoji.clone();
                                let on = !shown.mine;
                                move |_| net.send(Intent::React(room, seq, emoji.clone(), on))
                            },
                            "{shown.emoji} {shown.count}"
                        }
                    }
                    button {
                        r#type: "button",
                        class: "link-button message-action",
                        "aria-label": "Reply to the message of {time} by {author}",
                        onclick: move |_| {
                            replying.set(Some(super::composer::Replying { room, seq }));
                            super::focus(&format!("composer-{}", room.0));
                        },
                        "Reply"
                    }
                    button {
                        id: "{react_id}",
                        r#type: "button",
                        class: "link-button message-action",
                        "aria-label": "React to the message of {time} by {author}",
                        "aria-expanded": if picking() { "true" } else { "false" },
                        onclick: move |_| picking.toggle(),
                        "React"
                    }
                    if picking() {
                        QuickReactions { room, seq, react_id: react_id.clone(), picking }
                    }
                }
            }
        }
    }
}

/// The reactions offered in one click, and "More reactions" for the whole table. Escape, a
/// click outside or a pick closes it; focus goes back to the React button.
#[component]
fn QuickReactions(
    room: RoomId,
    seq: protocol::Seq,
    react_id: String,
    picking: Signal<bool>,
) -> Element {
    let net = use_coroutine_handle::<Intent>();
    let mut picking = picking;
    let mut more = use_signal(|| false);
    let group_id = format!("{react_id}-choices");
    // A click or tap anywhere else closes it (the React button toggles it by itself).
    {
        let (group_id, react_id) = (group_id.clone(), react_id.clone());
        use_hook(move || {
            std::rc::Rc::new(super::Listener::on(
                super::window_target(),
                "pointerdown",
                move |event| {
                    let target = event
                        .target()
                        .and_then(|t| t.dyn_into::<web_sys::Node>().ok());
                    let inside = [&group_id, &react_id]
                        .iter()
                        .any(|id| super::element(id).is_some_and(|e| e.contains(target.as_ref())));
                    if !inside {
                        picking.set(false);
                    }
                },
            ))
        });
    }
    // Focus goes into the set as it opens (Escape, arrows of Tab work from there).
    {
        let first = format!("{group_id}-0");
        use_effect(move || super::focus(&first));
    }
    let pick = {
        let react_id = react_id.clone();
        move |emoji: String| {
            picking.set(false);
            net.send(Intent::React(room, seq, emoji, true));
            super::focus_soon(react_id.clone());
        }
    };
    rsx! {
        div {
            id: "{group_id}",
            class: "quick-reactions",
            role: "group",
            "aria-label": "Choose a reaction",
            onkeydown: {
                let react_id = react_id.clone();
                move |event: KeyboardEvent| {
                    if event.key() == Key::Escape {
                        event.prevent_default();
                        picking.set(false);
                        super::focus_soon(react_id.clone());
                    }
                }
            },
            for (i, emoji) in QUICK_REACTIONS.into_iter().enumerate() {
                button {
                    key: "{emoji}",
                    id: "{group_id}-{i}",
                    r#type: "button",
                    "aria-label": "React with {emoji}",
                    onclick: {
                        let mut pick = pick.clone();
                        move |_| pick(emoji.to_owned())
                    },
                    "{emoji}"
                }
            }
            button {
                r#type: "button",
                class: "more-reactions",
                "aria-expanded": if more() { "true" } else { "false" },
                onclick: move |_| more.toggle(),
                "More reactions…"
            }
            if more() {
                super::composer::EmojiPicker {
                    ids: format!("{react_id}-picker"),
                    on_pick: {
                        let mut pick = pick.clone();
                        move |emoji: String| pick(emoji)
                    },
                    on_close: move |_| more.set(false),
                }
            }
        }
    }
}

/// One change of yours to a message, as far as it has come: on its way, waiting to go again,
/// failed (Retry, Dismiss) or refused (Dismiss, with the room's reason).
#[component]
fn ChangeLine(room: RoomId, change: PendingChange) -> Element {
    let net = use_coroutine_handle::<Intent>();
    let what = match &change.ask {
        ChangeAsk::Edit(_) => "Your edit".to_owned(),
        ChangeAsk::Delete => "Deleting it".to_owned(),
        ChangeAsk::React { emoji, on: true } => format!("Your reaction {emoji}"),
        ChangeAsk::React { emoji, on: false } => format!("Taking back {emoji}"),
    };
    let reason = change.reason.clone().unwrap_or_default();
    let (class, text) = match change.delivery {
        Delivery::Pending if change.reason.is_some() => (
            "change-status waiting",
            format!("{what}: {reason}; trying again in a moment…"),
        ),
        Delivery::Pending => ("change-status pending", format!("{what}: saving…")),
        Delivery::Failed | Delivery::Refused => (
            "change-status failed",
            format!("{what}: not saved, {reason}."),
        ),
        Delivery::Sent => ("change-status", String::new()),
    };
    let retry_nonce = change.nonce.clone();
    let dismiss_nonce = change.nonce.clone();
    let lower = what.to_lowercase();
    rsx! {
        p { class, "aria-live": "polite",
            span { "{text}" }
            if change.delivery == Delivery::Failed {
                button {
                    r#type: "button",
                    class: "link-button",
                    "aria-label": "Retry: {lower}",
                    onclick: move |_| net.send(Intent::RetryChange(room, retry_nonce.clone())),
                    "Retry"
                }
            }
            if matches!(change.delivery, Delivery::Failed | Delivery::Refused) {
                button {
                    r#type: "button",
                    class: "link-button",
                    "aria-label": "Dismiss: {lower}",
                    onclick: move |_| net.send(Intent::DismissChange(room, dismiss_nonce.clone())),
                    "Dismiss"
                }
            }
        }
    }
}
