//! The call panel: an incoming call (accept with video, with audio only, decline), a call
//! ringing out, the call itself (both videos, microphone, camera, hang up) and how it ended.
//! It is a region of the page, not a modal dialog: the chat stays usable during a call.

use dioxus::prelude::*;
use protocol::CallEnd;
use protocol::session::CallPhase;

use crate::call::{CallView, LOCAL_VIDEO_ID, MediaLink, REMOTE_VIDEO_ID};
use crate::network::Intent;
use crate::state::AppState;

/// How long the call has lasted, as a clock shows it ("1:05", "1:02:03"), ticking every second.
/// Not a live region: it would be read out every second.
#[component]
fn CallTimer(since: protocol::Millis) -> Element {
    let mut now = use_signal(|| js_sys::Date::now() as i64);
    let _ticker = use_hook(|| {
        std::rc::Rc::new(gloo_timers::callback::Interval::new(1_000, move || {
            now.set(js_sys::Date::now() as i64);
        }))
    });
    let seconds = (now() - since).max(0) / 1_000;
    let (h, m, s) = (seconds / 3_600, seconds / 60 % 60, seconds % 60);
    let shown = if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    };
    rsx! {
        time { class: "call-timer", datetime: "PT{seconds}S", "{shown}" }
    }
}

/// How long an ended call stays shown before it goes by itself.
const ENDED_SHOWN_MS: u32 = 8_000;

/// Both videos of a call: the other person's, and your own (muted: you never hear yourself).
/// The streams are set on the elements once they are in the page (an effect runs after the
/// render), and again whenever the media keeps a new one (`crate::call::attach`).
#[component]
fn CallVideos(name: String, has_camera: bool, peer_video: bool) -> Element {
    use_effect(use_reactive!(|has_camera| {
        crate::call::attach(REMOTE_VIDEO_ID);
        if has_camera {
            crate::call::attach(LOCAL_VIDEO_ID);
        }
    }));
    rsx! {
        div { class: "call-videos",
            video {
                id: REMOTE_VIDEO_ID,
                class: "call-remote",
                autoplay: true,
                playsinline: true,
                "aria-label": "{name}'s video",
            }
            // No picture from them (a voice call, or their camera off): their initial, not a
            // black tile. Their video element stays: it plays their sound.
            if !peer_video {
                div { class: "call-initial", "aria-hidden": "true",
                    "{name.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default()}"
                }
            }
            if has_camera {
                video {
                    id: LOCAL_VIDEO_ID,
                    class: "call-local",
                    autoplay: true,
                    playsinline: true,
                    muted: true,
                    "aria-label": "Your video",
                }
            }
        }
    }
}

#[component]
pub fn CallPanel() -> Element {
    let state = use_context::<Signal<AppState>>();
    let view = use_context::<Signal<CallView>>();
    let network = use_coroutine_handle::<Intent>();
    let app = state.read();
    let Some((id, call)) = app.shown_call() else {
        return rsx! {};
    };
    let Some(room) = app.room(id) else {
        return rsx! {};
    };
    let call = call.clone();
    let name = room.name_of(&call.peer);
    let title = room.title();
    let media = view();
    let kind = if call.video {
        "Video call"
    } else {
        "Voice call"
    };
    let (status, live) = match &call.phase {
        CallPhase::Incoming => (format!("{kind} from {name}, in {title}"), true),
        CallPhase::Ringing => (format!("Ringing {name}…"), true),
        CallPhase::Active => (
            match media.link {
                MediaLink::Waiting | MediaLink::Connecting => "Connecting…".to_owned(),
                MediaLink::Connected => "Connected".to_owned(),
                MediaLink::Reconnecting => "Reconnecting…".to_owned(),
                MediaLink::Failed => "The connection failed".to_owned(),
            },
            true,
        ),
        CallPhase::Ended(end) => (
            match end {
                CallEnd::HungUp | CallEnd::Disconnected => "Call ended".to_owned(),
                CallEnd::Declined if call.outgoing => format!("{name} declined"),
                CallEnd::Declined => "Declined".to_owned(),
                CallEnd::Missed if call.outgoing => "No answer".to_owned(),
                CallEnd::Missed => format!("Missed call from {name}"),
                CallEnd::AnsweredElsewhere => "Answered on another device".to_owned(),
            },
            false,
        ),
        CallPhase::Refused(reason) => (format!("The call could not start: {reason}"), false),
    };
    if !live {
        gloo_timers::callback::Timeout::new(ENDED_SHOWN_MS, move || {
            network.send(Intent::DismissCall(id));
        })
        .forget();
    }
    let active = call.phase == CallPhase::Active;
    let peer_notes: Vec<String> = if active {
        let mut notes = Vec::new();
        if !call.peer_audio {
            notes.push(format!("{name} muted their microphone"));
        }
        if !call.peer_video && call.video {
            notes.push(format!("{name} turned their camera off"));
        }
        notes
    } else {
        Vec::new()
    };
    rsx! {
        section {
            id: "call-panel",
            class: "call-panel",
            "aria-labelledby": "call-title",
            "data-phase": match &call.phase {
                CallPhase::Incoming => "incoming",
                CallPhase::Ringing => "ringing",
                CallPhase::Active => "active",
                CallPhase::Ended(_) | CallPhase::Refused(_) => "ended",
            },
            h2 { id: "call-title", class: "visually-hidden", "Call with {name}" }
            p { id: "call-status", class: "call-status", role: "status", "{status}" }
            if active {
                p { class: "call-with",
                    "With {name} · "
                    if let Some(since) = call.answered_at {
                        CallTimer { since }
                    }
                }
                CallVideos { name: name.clone(), has_camera: media.has_camera, peer_video: call.video && call.peer_video }
                for note in peer_notes {
                    p { class: "call-note", "{note}" }
                }
            }
            if let Some(problem) = media.problem.clone().filter(|_| live) {
                p { class: "call-problem", role: "alert", "{problem}" }
            }
            div { class: "call-actions",
                match &call.phase {
                    CallPhase::Incoming => rsx! {
                        if call.video {
                            button {
                                r#type: "button",
                                class: "accept",
                                onclick: move |_| network.send(Intent::Answer(id, true)),
                                "Accept with video"
                            }
                        }
                        button {
                            r#type: "button",
                            class: "accept",
                            onclick: move |_| network.send(Intent::Answer(id, false)),
                            if call.video { "Accept with audio only" } else { "Accept" }
                        }
                        button {
                            r#type: "button",
                            class: "hang-up",
                            onclick: move |_| network.send(Intent::HangUp(id)),
                            "Decline"
                        }
                    },
                    CallPhase::Ringing | CallPhase::Active => rsx! {
                        if active && media.has_mic {
                            button {
                                r#type: "button",
                                "aria-pressed": if media.mic_on { "false" } else { "true" },
                                title: if media.mic_on { "They hear you" } else { "Your microphone is off: they do not hear you" },
                                onclick: move |_| network.send(Intent::CallDevice(true, !media.mic_on)),
                                span { "aria-hidden": "true", if media.mic_on { "🎙️ " } else { "🔇 " } }
                                "Mute microphone"
                            }
                        }
                        if active && media.has_camera {
                            button {
                                r#type: "button",
                                "aria-pressed": if media.camera_on { "false" } else { "true" },
                                title: if media.camera_on { "They see you" } else { "Your camera is off: they do not see you" },
                                onclick: move |_| network.send(Intent::CallDevice(false, !media.camera_on)),
                                span { "aria-hidden": "true", if media.camera_on { "📷 " } else { "🚫 " } }
                                "Turn off camera"
                            }
                        }
                        button {
                            r#type: "button",
                            class: "hang-up",
                            onclick: move |_| network.send(Intent::HangUp(id)),
                            "Hang up"
                        }
                    },
                    _ => rsx! {
                        button {
                            r#type: "button",
                            onclick: move |_| network.send(Intent::DismissCall(id)),
                            "Close"
                        }
                    },
                }
            }
        }
    }
}

/// The buttons that ring someone: with camera, and voice only. `suffix` tells apart where
/// they are ("Video call Ana", or just "Video call" in a conversation with Ana).
#[component]
pub fn CallButtons(room: crate::state::RoomId, user: protocol::UserId, label: String) -> Element {
    let state = use_context::<Signal<AppState>>();
    let network = use_coroutine_handle::<Intent>();
    let app = state.read();
    let Some(shown) = app.room(room) else {
        return rsx! {};
    };
    let online = shown.session.online().contains(&user) && !shown.is_me(&user);
    let can = online && shown.link == crate::state::Link::Online && !app.in_call();
    let title = if can {
        String::new()
    } else if app.in_call() {
        "You are in a call".to_owned()
    } else {
        "They are not here now".to_owned()
    };
    let (video_user, voice_user) = (user.clone(), user);
    rsx! {
        button {
            r#type: "button",
            class: "call-button",
            disabled: !can,
            title: "{title}",
            onclick: move |_| network.send(Intent::Call(room, video_user.clone(), true)),
            "Video call{label}"
        }
        button {
            r#type: "button",
            class: "call-button",
            disabled: !can,
            title: "{title}",
            onclick: move |_| network.send(Intent::Call(room, voice_user.clone(), false)),
            "Voice call{label}"
        }
    }
}
