//! The demo's rooms in a Web Worker: `mock-backend`'s rooms (the real room engine with fake
//! users) run here, off the page's thread, and the page talks to them as to a room server,
//! with JSON messages over `postMessage` ([`mock_backend::port`]). The page's download for a
//! live room holds none of this; the worker is fetched only when a `mock://` room is opened.
//!
//! Time is the page's: simulated milliseconds since the epoch, from the wall clock the page
//! started at, running `speed` times as fast; the same seed gives the same rooms.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use mock_backend::MockRoom;
use mock_backend::port::{FromWorker, ToWorker, room_seed};
use protocol::{ConnectionId, Millis};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

/// Fake users per mock room.
const BOTS: usize = 4;
/// A new mock room has already been chatting for this long (simulated time): a few hundred
/// messages, more than a handshake carries, so older history can be paged in.
const PRE_HISTORY_MS: Millis = 10 * 60 * 1000;

fn main() {
    let hub = Rc::new(Hub::default());
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let listener = Rc::clone(&hub);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(message) = event
            .data()
            .as_string()
            .and_then(|t| ToWorker::from_json(&t))
        {
            listener.take(message);
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&FromWorker::Ready);
}

/// Sends a message to the page.
fn post(message: &FromWorker) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    // Fails only if the page is gone, and then nobody is listening.
    let _ = scope.post_message(&JsValue::from_str(&message.to_json()));
}

/// The browser's NFC (`String.prototype.normalize`), for names.
fn nfc(text: &str) -> String {
    String::from(js_sys::JsString::from(text).normalize("NFC"))
}

/// How the rooms run, from the page's `Start`.
#[derive(Debug, Clone, Copy)]
struct Clock {
    seed: u64,
    speed: f64,
    started_wall: f64,
}

/// Every mock room of the page, the page's connections, and the clock.
#[derive(Default)]
struct Hub {
    clock: Cell<Option<Clock>>,
    rooms: RefCell<HashMap<String, MockRoom>>,
    /// The page's connection numbers: their room, and their connection in it.
    connections: RefCell<HashMap<u64, (String, ConnectionId)>>,
    ticking: Cell<bool>,
    /// The page's people are moderators (the demo's setting).
    moderators: Cell<bool>,
}

impl Hub {
    fn clock(&self) -> Clock {
        self.clock.get().unwrap_or(Clock {
            seed: 1,
            speed: 1.0,
            started_wall: wall_now(),
        })
    }

    /// Simulated time, milliseconds since the epoch.
    fn now(&self) -> Millis {
        let clock = self.clock();
        (clock.started_wall + (wall_now() - clock.started_wall) * clock.speed) as Millis
    }

    fn take(self: &Rc<Self>, message: ToWorker) {
        match message {
            ToWorker::Start {
                seed,
                speed,
                started_wall,
            } => {
                if self.clock.get().is_none() {
                    self.clock.set(Some(Clock {
                        seed,
                        speed,
                        started_wall,
                    }));
                }
            }
            ToWorker::Connect { conn, room } => self.connect(conn, room),
            ToWorker::Send { conn, frame } => {
                let Some((room, in_room)) = self.connections.borrow().get(&conn).cloned() else {
                    return;
                };
                let now = self.now();
                if let Some(mock) = self.rooms.borrow_mut().get_mut(&room) {
                    mock.advance(now);
                    mock.send(now, in_room, &frame);
                }
                self.flush(&room);
            }
            ToWorker::Close { conn } => {
                let Some((room, in_room)) = self.connections.borrow_mut().remove(&conn) else {
                    return;
                };
                let now = self.now();
                if let Some(mock) = self.rooms.borrow_mut().get_mut(&room) {
                    mock.disconnect(now, in_room);
                }
                self.flush(&room);
            }
            ToWorker::Moderators { on } => {
                self.moderators.set(on);
                let now = self.now();
                let names: Vec<String> = self.rooms.borrow().keys().cloned().collect();
                for name in &names {
                    if let Some(mock) = self.rooms.borrow_mut().get_mut(name) {
                        mock.advance(now);
                        mock.set_page_moderators(now, on);
                    }
                    self.flush(name);
                }
            }
            ToWorker::BotSignal {
                room,
                bot,
                kind,
                data,
            } => {
                let now = self.now();
                if let Some(mock) = self.rooms.borrow_mut().get_mut(&room) {
                    mock.bot_signal(now, bot, kind, data);
                }
                self.flush(&room);
            }
        }
    }

    fn connect(self: &Rc<Self>, conn: u64, room: String) {
        let now = self.now();
        let seed = self.clock().seed;
        let in_room = {
            let mut rooms = self.rooms.borrow_mut();
            let mock = rooms.entry(room.clone()).or_insert_with(|| {
                let mut mock = MockRoom::with_normalize(
                    &room,
                    BOTS,
                    room_seed(seed, &room),
                    now - PRE_HISTORY_MS,
                    nfc,
                );
                mock.advance(now);
                mock.set_page_moderators(now, self.moderators.get());
                mock
            });
            mock.connect(now)
        };
        self.connections
            .borrow_mut()
            .insert(conn, (room.clone(), in_room));
        post(&FromWorker::Opened { conn });
        self.flush(&room);
        self.start_ticking();
    }

    /// Hands the page what room `name` has for it: the work of fake users' calls, then the
    /// frames of each of its connections.
    fn flush(&self, name: &str) {
        let (media, frames) = {
            let mut rooms = self.rooms.borrow_mut();
            let Some(mock) = rooms.get_mut(name) else {
                return;
            };
            let media = mock.take_bot_media();
            let frames: Vec<(u64, Vec<String>)> = self
                .connections
                .borrow()
                .iter()
                .filter(|(_, (room, _))| room == name)
                .map(|(conn, (_, in_room))| (*conn, mock.take_frames(*in_room)))
                .filter(|(_, frames)| !frames.is_empty())
                .collect();
            (media, frames)
        };
        for item in media {
            post(&FromWorker::Media {
                room: name.to_owned(),
                item,
            });
        }
        let mut frames = frames;
        frames.sort_by_key(|(conn, _)| *conn);
        for (conn, frames) in frames {
            post(&FromWorker::Frames { conn, frames });
        }
    }

    /// One timer loop for all rooms: fake users act when their time comes.
    fn start_ticking(self: &Rc<Self>) {
        if self.ticking.replace(true) {
            return;
        }
        let hub = Rc::clone(self);
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                let now = hub.now();
                let names: Vec<String> = hub.rooms.borrow().keys().cloned().collect();
                let mut next = now + 5_000;
                for name in &names {
                    if let Some(mock) = hub.rooms.borrow_mut().get_mut(name) {
                        mock.advance(now);
                        next = next.min(mock.next_event_at().unwrap_or(next));
                    }
                    hub.flush(name);
                }
                let speed = hub.clock().speed;
                let real_ms = ((next - now).max(0) as f64 / speed).clamp(16.0, 5_000.0);
                gloo_timers::future::sleep(Duration::from_millis(real_ms as u64)).await;
            }
        });
    }
}

/// The wall clock in milliseconds, at the resolution of `performance.now()` (the same time
/// base as the page's: `timeOrigin` plus `now()`).
fn wall_now() -> f64 {
    let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    scope
        .performance()
        .map_or_else(js_sys::Date::now, |p| p.time_origin() + p.now())
}
