//! A demo fake user's side of a call: a synthetic camera (a canvas drawn in the page, with
//! their name and a moving pattern) and a tone, sent through a real `RTCPeerConnection` (the
//! same [`Media`] the page's own side uses), so what the demo shows is the real call code.

use gloo_timers::callback::Interval;
use wasm_bindgen::JsCast;
use web_sys::{AudioContext, CanvasRenderingContext2d, HtmlCanvasElement, MediaStream};

use super::{Media, MediaSink};
use crate::state::RoomId;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

/// One fake user in a call: their media, and what draws and sounds it.
pub struct FakeUser {
    pub media: Media,
    _drawing: Interval,
    audio: Option<AudioContext>,
}

impl FakeUser {
    /// `name`'s camera and microphone, made up, on a peer connection reporting to `sink`.
    pub fn new(name: &str, sink: MediaSink) -> Option<Self> {
        let document = web_sys::window()?.document()?;
        let canvas: HtmlCanvasElement = document.create_element("canvas").ok()?.dyn_into().ok()?;
        canvas.set_width(WIDTH);
        canvas.set_height(HEIGHT);
        let context: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
        let stream = canvas.capture_stream_with_frame_request_rate(15.0).ok()?;
        let name = name.to_owned();
        let mut frame = 0u32;
        let draw = move || {
            frame = frame.wrapping_add(1);
            let t = f64::from(frame);
            context.set_fill_style_str(&format!("hsl({}, 45%, 35%)", (t * 2.0) % 360.0));
            context.fill_rect(0.0, 0.0, f64::from(WIDTH), f64::from(HEIGHT));
            context.set_fill_style_str("rgba(255, 255, 255, 0.8)");
            for i in 0..5 {
                let phase = t / 12.0 + f64::from(i) * 1.2;
                let x = f64::from(WIDTH) / 2.0 + phase.cos() * 110.0;
                let y = f64::from(HEIGHT) / 2.0 + (phase * 1.3).sin() * 70.0;
                context.begin_path();
                let _arc = context.arc(x, y, 12.0, 0.0, std::f64::consts::TAU);
                context.fill();
            }
            context.set_font("bold 28px sans-serif");
            context.set_text_align("center");
            context.set_fill_style_str("#fff");
            let _text = context.fill_text(&name, f64::from(WIDTH) / 2.0, f64::from(HEIGHT) - 24.0);
        };
        let mut draw = draw;
        draw();
        let drawing = Interval::new(66, draw);
        let audio = tone(&stream);
        let media = Media::new(RoomId(u32::MAX), &[], Some(stream), true, false, sink).ok()?;
        Some(Self {
            media,
            _drawing: drawing,
            audio,
        })
    }
}

impl Drop for FakeUser {
    fn drop(&mut self) {
        if let Some(audio) = &self.audio {
            let _closed = audio.close();
        }
    }
}

/// A quiet tone added to `stream` as its microphone.
fn tone(stream: &MediaStream) -> Option<AudioContext> {
    let audio = AudioContext::new().ok()?;
    let oscillator = audio.create_oscillator().ok()?;
    oscillator.frequency().set_value(440.0);
    let gain = audio.create_gain().ok()?;
    gain.gain().set_value(0.05);
    let out = audio.create_media_stream_destination().ok()?;
    oscillator.connect_with_audio_node(&gain).ok()?;
    gain.connect_with_audio_node(&out).ok()?;
    oscillator.start().ok()?;
    for track in out.stream().get_audio_tracks().iter() {
        if let Ok(track) = track.dyn_into() {
            stream.add_track(&track);
        }
    }
    Some(audio)
}
