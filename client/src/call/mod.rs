//! The media of a call: the camera and microphone, and one `RTCPeerConnection` to the other
//! person, peer to peer. Signalling is the room session's (it relays offers, answers and
//! candidates through the room); what is here is only the browser's half: asking for the
//! devices when a call starts or is answered, describing, connecting, and showing the other
//! side's video.
//!
//! Everything asynchronous reports back to the network loop as a [`MediaEvent`] on a sink,
//! as transports do: the loop stays the one owner of what is sent.
//!
//! # Layout
//! - this file: [`Media`], [`local_media`], the [`CallView`] the call panel reads.
//! - `fake`: the demo's fake users' side of a call (a canvas and a tone).

pub mod fake;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use protocol::{CallKind, IceServer};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MediaStream, MediaStreamConstraints, MediaStreamTrack, RtcConfiguration, RtcIceCandidateInit,
    RtcPeerConnection, RtcPeerConnectionIceEvent, RtcRtpTransceiverDirection,
    RtcRtpTransceiverInit, RtcSdpType, RtcSessionDescriptionInit, RtcTrackEvent,
};

use crate::state::RoomId;

/// The ids of the call panel's video elements, which the streams are attached to.
pub const REMOTE_VIDEO_ID: &str = "call-remote-video";
pub const LOCAL_VIDEO_ID: &str = "call-local-video";

/// How the media connection is, as the call panel says it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MediaLink {
    /// No media yet (ringing, or asking for the devices).
    #[default]
    Waiting,
    Connecting,
    Connected,
    /// Connected before, lost for now: the browser tries again by itself.
    Reconnecting,
    Failed,
}

/// What the call panel shows of the media.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallView {
    pub link: MediaLink,
    /// We send sound / video (a device was given), and whether it is on now.
    pub has_mic: bool,
    pub has_camera: bool,
    pub mic_on: bool,
    pub camera_on: bool,
    /// What went wrong with the devices or the connection, said plainly.
    pub problem: Option<String>,
}

/// What the media reports to the network loop.
pub enum MediaEvent {
    /// The devices for a call in `room` came (or not: `problem` says why). `answer`: for
    /// answering the incoming call; otherwise for ringing `peer`.
    Local {
        room: RoomId,
        answer: bool,
        peer: String,
        video: bool,
        stream: Option<MediaStream>,
        problem: Option<String>,
    },
    /// Our offer or answer is set: send it.
    Described {
        room: RoomId,
        kind: CallKind,
        sdp: String,
    },
    /// One of our ICE candidates: send it.
    Ice { room: RoomId, candidate: String },
    /// The connection's state changed.
    Link { room: RoomId, link: MediaLink },
    /// Something failed (said plainly).
    Failed { room: RoomId, problem: String },
}

pub type MediaSink = Rc<dyn Fn(MediaEvent)>;

thread_local! {
    /// The streams the call panel's video elements show (attached again when it re-renders).
    static STREAMS: RefCell<(Option<MediaStream>, Option<MediaStream>)> =
        const { RefCell::new((None, None)) };
}

/// The stream kept for the video element `id`.
fn kept(id: &str) -> Option<MediaStream> {
    STREAMS.with(|s| {
        let s = s.borrow();
        if id == REMOTE_VIDEO_ID {
            s.0.clone()
        } else {
            s.1.clone()
        }
    })
}

/// Sets the video element `id` (if it is in the page) to show the stream kept for it.
pub fn attach(id: &str) {
    let element = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id));
    if let Some(element) = element {
        attach_to(id, &element);
    }
}

/// Sets this video element (the call panel's `id`) to show the stream kept for it; your own is
/// muted, whatever the markup said (you never hear yourself).
fn attach_to(id: &str, element: &web_sys::Element) {
    if let Some(video) = element.dyn_ref::<web_sys::HtmlMediaElement>() {
        if id == LOCAL_VIDEO_ID {
            video.set_muted(true);
        }
        video.set_src_object(kept(id).as_ref());
    }
}

fn keep_stream(remote: bool, stream: Option<MediaStream>) {
    STREAMS.with(|s| {
        let mut s = s.borrow_mut();
        if remote { s.0 = stream } else { s.1 = stream }
    });
    attach(if remote {
        REMOTE_VIDEO_ID
    } else {
        LOCAL_VIDEO_ID
    });
}

/// Asks the browser for the microphone, and the camera if `video`: if refused or missing,
/// with less (sound only, then nothing: the call goes on receiving only), with what went
/// wrong said plainly.
pub async fn local_media(video: bool) -> (Option<MediaStream>, Option<String>) {
    let Some(devices) = web_sys::window().and_then(|w| w.navigator().media_devices().ok()) else {
        return (
            None,
            Some("This page cannot use a camera or microphone here (it needs https): you can see and hear them, they cannot see or hear you.".into()),
        );
    };
    let ask = |audio: bool, video: bool| {
        let constraints = MediaStreamConstraints::new();
        constraints.set_audio_bool(audio);
        constraints.set_video(&JsValue::from_bool(video));
        devices.get_user_media_with_constraints(&constraints)
    };
    let first = match ask(true, video) {
        Ok(promise) => JsFuture::from(promise).await,
        Err(error) => Err(error),
    };
    let error = match first {
        Ok(stream) => return (stream.dyn_into().ok(), None),
        Err(error) => error,
    };
    let reason = device_problem(&error);
    if video
        && let Ok(promise) = ask(true, false)
        && let Ok(stream) = JsFuture::from(promise).await
    {
        return (
            stream.dyn_into().ok(),
            Some(format!(
                "Your camera could not be used ({reason}): the call goes on with sound only."
            )),
        );
    }
    (
        None,
        Some(format!(
            "Your microphone{} could not be used ({reason}): you can see and hear them, they cannot see or hear you.",
            if video { " and camera" } else { "" }
        )),
    )
}

/// Why the browser gave no device, in words.
fn device_problem(error: &JsValue) -> String {
    let name = js_sys::Reflect::get(error, &"name".into())
        .ok()
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" | "SecurityError" => "not allowed".into(),
        "NotFoundError" | "OverconstrainedError" => "none was found".into(),
        "NotReadableError" | "AbortError" => "it is in use by another program".into(),
        _ => js_sys::Reflect::get(error, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .unwrap_or_else(|| "the browser refused".into()),
    }
}

/// One call's peer connection and our devices.
pub struct Media {
    pub room: RoomId,
    pc: RtcPeerConnection,
    local: Option<MediaStream>,
    /// The other side's description is set: candidates can be added.
    described: Rc<Cell<bool>>,
    /// Candidates that came before it.
    early: Rc<RefCell<Vec<String>>>,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Media {
    /// A peer connection with the room's ICE servers, sending what `local` has, receiving
    /// sound (and video if `video`) whatever we send. `show`: the streams go to the call
    /// panel (the page's own call; not a fake user's).
    pub fn new(
        room: RoomId,
        ice_servers: &[IceServer],
        local: Option<MediaStream>,
        video: bool,
        show: bool,
        sink: MediaSink,
    ) -> Result<Self, String> {
        let config = RtcConfiguration::new();
        let servers = serde_json::to_string(ice_servers).unwrap_or_else(|_| "[]".into());
        if let Ok(servers) = js_sys::JSON::parse(&servers) {
            // A plain object with the dictionary's fields is what the browser reads.
            let _set = js_sys::Reflect::set(&config, &"iceServers".into(), &servers);
        }
        let pc = RtcPeerConnection::new_with_configuration(&config)
            .map_err(|_| "The browser could not start the call's connection.".to_owned())?;
        let mut sending = (false, false);
        if let Some(stream) = &local {
            for track in stream.get_tracks().iter() {
                let Ok(track) = track.dyn_into::<MediaStreamTrack>() else {
                    continue;
                };
                match track.kind().as_str() {
                    "audio" => sending.0 = true,
                    _ => sending.1 = true,
                }
                pc.add_track_0(&track, stream);
            }
        }
        // What we do not send we still receive.
        let receive = RtcRtpTransceiverInit::new();
        receive.set_direction(RtcRtpTransceiverDirection::Recvonly);
        if !sending.0 {
            pc.add_transceiver_with_str_and_init("audio", &receive);
        }
        if video && !sending.1 {
            pc.add_transceiver_with_str_and_init("video", &receive);
        }
        if show {
            keep_stream(false, local.clone());
        }

        let mut handlers = Vec::new();
        let to_loop = sink.clone();
        let on_ice = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Ok(event) = event.dyn_into::<RtcPeerConnectionIceEvent>() else {
                return;
            };
            if let Some(candidate) = event.candidate()
                && let Ok(json) = js_sys::JSON::stringify(&candidate.to_json())
                && let Some(candidate) = json.as_string()
            {
                to_loop(MediaEvent::Ice { room, candidate });
            }
        });
        pc.set_onicecandidate(Some(on_ice.as_ref().unchecked_ref()));
        handlers.push(on_ice);
        let remote = MediaStream::new().ok();
        let on_track = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let (Ok(event), Some(remote)) = (event.dyn_into::<RtcTrackEvent>(), remote.as_ref())
            else {
                return;
            };
            remote.add_track(&event.track());
            if show {
                keep_stream(true, Some(remote.clone()));
            }
        });
        pc.set_ontrack(Some(on_track.as_ref().unchecked_ref()));
        handlers.push(on_track);
        let watched = pc.clone();
        let was_connected = Cell::new(false);
        let on_state = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            let link = match watched.connection_state() {
                web_sys::RtcPeerConnectionState::Connected => {
                    was_connected.set(true);
                    MediaLink::Connected
                }
                web_sys::RtcPeerConnectionState::Disconnected if was_connected.get() => {
                    MediaLink::Reconnecting
                }
                web_sys::RtcPeerConnectionState::Failed => MediaLink::Failed,
                _ => MediaLink::Connecting,
            };
            sink(MediaEvent::Link { room, link });
        });
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
        handlers.push(on_state);
        Ok(Self {
            room,
            pc,
            local,
            described: Rc::new(Cell::new(false)),
            early: Rc::new(RefCell::new(Vec::new())),
            _handlers: handlers,
        })
    }

    /// Our microphone and camera, as given.
    pub fn devices(&self) -> (bool, bool) {
        let Some(stream) = &self.local else {
            return (false, false);
        };
        (
            stream.get_audio_tracks().length() > 0,
            stream.get_video_tracks().length() > 0,
        )
    }

    /// Makes our offer (we called and were answered).
    pub fn offer(&self, sink: MediaSink) {
        let (pc, room) = (self.pc.clone(), self.room);
        wasm_bindgen_futures::spawn_local(async move {
            match describe(&pc, RtcSdpType::Offer).await {
                Ok(sdp) => sink(MediaEvent::Described {
                    room,
                    kind: CallKind::Offer,
                    sdp,
                }),
                Err(problem) => sink(MediaEvent::Failed { room, problem }),
            }
        });
    }

    /// The other side's offer (we answer it), answer, or candidate.
    pub fn on_signal(&self, kind: CallKind, data: String, sink: MediaSink) {
        let (pc, room) = (self.pc.clone(), self.room);
        let (described, early) = (self.described.clone(), self.early.clone());
        if kind == CallKind::Ice {
            if described.get() {
                add_candidate(&pc, &data);
            } else {
                early.borrow_mut().push(data);
            }
            return;
        }
        let theirs = match kind {
            CallKind::Offer => RtcSdpType::Offer,
            _ => RtcSdpType::Answer,
        };
        wasm_bindgen_futures::spawn_local(async move {
            let description = RtcSessionDescriptionInit::new(theirs);
            description.set_sdp(&data);
            if JsFuture::from(pc.set_remote_description(&description))
                .await
                .is_err()
            {
                let problem = "The other side's call description could not be used.".into();
                return sink(MediaEvent::Failed { room, problem });
            }
            described.set(true);
            for candidate in early.borrow_mut().drain(..) {
                add_candidate(&pc, &candidate);
            }
            if kind == CallKind::Offer {
                match describe(&pc, RtcSdpType::Answer).await {
                    Ok(sdp) => sink(MediaEvent::Described {
                        room,
                        kind: CallKind::Answer,
                        sdp,
                    }),
                    Err(problem) => sink(MediaEvent::Failed { room, problem }),
                }
            }
        });
    }

    /// Turns our microphone (`audio`) or camera on or off.
    pub fn set_enabled(&self, audio: bool, on: bool) {
        let Some(stream) = &self.local else { return };
        let tracks = if audio {
            stream.get_audio_tracks()
        } else {
            stream.get_video_tracks()
        };
        for track in tracks.iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                track.set_enabled(on);
            }
        }
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        self.pc.set_onicecandidate(None);
        self.pc.set_ontrack(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.close();
        stop(self.local.as_ref());
    }
}

/// Stops every track of a stream (the camera's light goes off).
pub fn stop(stream: Option<&MediaStream>) {
    for track in stream.map(|s| s.get_tracks().to_vec()).unwrap_or_default() {
        if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
            track.stop();
        }
    }
}

/// The call panel shows no streams any more.
pub fn forget_streams() {
    keep_stream(true, None);
    keep_stream(false, None);
}

/// Creates our offer or answer and sets it; returns its SDP.
async fn describe(pc: &RtcPeerConnection, kind: RtcSdpType) -> Result<String, String> {
    let created = match kind {
        RtcSdpType::Offer => JsFuture::from(pc.create_offer()).await,
        _ => JsFuture::from(pc.create_answer()).await,
    }
    .map_err(|_| "The browser could not describe the call.".to_owned())?;
    let sdp = js_sys::Reflect::get(&created, &"sdp".into())
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| "The browser described the call without SDP.".to_owned())?;
    let description = RtcSessionDescriptionInit::new(kind);
    description.set_sdp(&sdp);
    JsFuture::from(pc.set_local_description(&description))
        .await
        .map_err(|_| "The browser could not use its own call description.".to_owned())?;
    Ok(sdp)
}

/// Adds a candidate the other side sent (its JSON); one that does not parse is dropped.
fn add_candidate(pc: &RtcPeerConnection, json: &str) {
    let Ok(init) = js_sys::JSON::parse(json) else {
        return;
    };
    let init: RtcIceCandidateInit = init.unchecked_into();
    // A candidate the browser rejects only means one path fewer; the rest carry on.
    let _added = pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
}
