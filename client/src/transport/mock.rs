//! Rooms simulated for the demo: `mock-backend` rooms (the real engine with fake users) run in
//! a Web Worker (`mock-worker`), started when the first `mock://` room is opened, on a clock
//! that may run faster than real time (`?speed=`). The page talks to it as to a room server:
//! JSON messages over `postMessage` ([`mock_backend::port`]). Fake users' camera and tone
//! need the page's media, so their side of a call is made here, on the worker's word.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use mock_backend::BotMedia;
use mock_backend::port::{FromWorker, ToWorker};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::{EventSink, Transport, TransportError, TransportEvent};

/// The worker's script, beside the page (`mock-worker/mock-worker_start.js`, which loads what
/// trunk builds for `data-type="worker"`).
const WORKER_URL: &str = "./mock-worker_start.js";

/// How mock rooms behave, from the page's query string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MockOptions {
    /// Seeds every mock room (mixed with its name): the same seed gives the same rooms.
    pub seed: u64,
    /// Simulated milliseconds per real millisecond.
    pub speed: f64,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            speed: 1.0,
        }
    }
}

/// The page's end of the demo's rooms: the worker, once started, and the connections to it.
pub struct MockHub {
    options: MockOptions,
    /// The page's wall clock when the hub was made: simulated time runs from here.
    started_wall: f64,
    worker: RefCell<Option<web_sys::Worker>>,
    /// The worker said it listens.
    ready: Cell<bool>,
    /// Messages for the worker until it listens.
    waiting: RefCell<Vec<String>>,
    connections: RefCell<HashMap<u64, EventSink>>,
    next_conn: Cell<u64>,
    /// Fake users in a call, by room and fake user: their made-up camera and tone.
    fakes: RefCell<HashMap<(String, usize), crate::call::fake::FakeUser>>,
}

impl MockHub {
    pub fn new(options: MockOptions) -> Rc<Self> {
        Rc::new(Self {
            options,
            started_wall: wall_now(),
            worker: RefCell::new(None),
            ready: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
            connections: RefCell::new(HashMap::new()),
            next_conn: Cell::new(1),
            fakes: RefCell::new(HashMap::new()),
        })
    }

    fn connect(self: &Rc<Self>, room: &str, sink: EventSink) -> u64 {
        let conn = self.next_conn.replace(self.next_conn.get() + 1);
        self.connections.borrow_mut().insert(conn, sink);
        self.start();
        self.post(&ToWorker::Connect {
            conn,
            room: room.to_owned(),
        });
        conn
    }

    /// The page's people are moderators in every mock room (`on`), or members again.
    pub fn set_moderators(&self, on: bool) {
        self.post(&ToWorker::Moderators { on });
    }

    fn send(&self, conn: u64, frame: &str) {
        self.post(&ToWorker::Send {
            conn,
            frame: frame.to_owned(),
        });
    }

    fn disconnect(&self, conn: u64) {
        if self.connections.borrow_mut().remove(&conn).is_some() {
            self.post(&ToWorker::Close { conn });
        }
    }

    /// To the worker, or kept for it until it listens.
    fn post(&self, message: &ToWorker) {
        let text = message.to_json();
        match &*self.worker.borrow() {
            Some(worker) if self.ready.get() => {
                if worker.post_message(&JsValue::from_str(&text)).is_err() {
                    self.fail("the demo's rooms stopped");
                }
            }
            _ => self.waiting.borrow_mut().push(text),
        }
    }

    /// Starts the worker, once.
    fn start(self: &Rc<Self>) {
        if self.worker.borrow().is_some() {
            return;
        }
        let worker = match web_sys::Worker::new(WORKER_URL) {
            Ok(worker) => worker,
            Err(_) => return self.fail("the browser did not start the demo's rooms"),
        };
        let hub = Rc::downgrade(self);
        let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
            move |event: web_sys::MessageEvent| {
                let Some(hub) = hub.upgrade() else { return };
                if let Some(message) = event
                    .data()
                    .as_string()
                    .and_then(|t| FromWorker::from_json(&t))
                {
                    hub.take(message);
                }
            },
        );
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        let hub = Rc::downgrade(self);
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if let Some(hub) = hub.upgrade() {
                hub.fail("the demo's rooms could not be loaded");
            }
        });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        *self.worker.borrow_mut() = Some(worker);
        self.waiting.borrow_mut().insert(
            0,
            ToWorker::Start {
                seed: self.options.seed,
                speed: self.options.speed,
                started_wall: self.started_wall,
            }
            .to_json(),
        );
    }

    /// Every connection closes with `reason`.
    fn fail(&self, reason: &str) {
        let sinks: Vec<EventSink> = self
            .connections
            .borrow_mut()
            .drain()
            .map(|(_, s)| s)
            .collect();
        for sink in sinks {
            sink(TransportEvent::Closed {
                reason: reason.to_owned(),
            });
        }
    }

    fn take(self: &Rc<Self>, message: FromWorker) {
        match message {
            FromWorker::Ready => {
                self.ready.set(true);
                let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
                if let Some(worker) = &*self.worker.borrow() {
                    for text in waiting {
                        let _ = worker.post_message(&JsValue::from_str(&text));
                    }
                }
            }
            FromWorker::Opened { conn } => {
                if let Some(sink) = self.sink(conn) {
                    sink(TransportEvent::Opened);
                }
            }
            FromWorker::Frames { conn, frames } => {
                // Looked up for each frame: a sink may close its own connection.
                for frame in frames {
                    let Some(sink) = self.sink(conn) else { return };
                    sink(TransportEvent::Frame(frame));
                }
            }
            FromWorker::Media { room, item } => self.fake_media(room, item),
        }
    }

    fn sink(&self, conn: u64) -> Option<EventSink> {
        self.connections.borrow().get(&conn).cloned()
    }

    /// The page's side of a fake user's call: its media answers the worker's fake user.
    fn fake_media(self: &Rc<Self>, room: String, item: BotMedia) {
        use crate::call::fake::FakeUser;
        let bot = match &item {
            BotMedia::MakeOffer { bot, .. }
            | BotMedia::Offer { bot, .. }
            | BotMedia::Answer { bot, .. }
            | BotMedia::Ice { bot, .. }
            | BotMedia::Ended { bot } => *bot,
        };
        let key = (room.clone(), bot);
        let hub = Rc::downgrade(self);
        let sink: crate::call::MediaSink = Rc::new(move |event| {
            let Some(hub) = hub.upgrade() else { return };
            let (kind, data) = match event {
                crate::call::MediaEvent::Described { kind, sdp, .. } => (kind, sdp),
                crate::call::MediaEvent::Ice { candidate, .. } => {
                    (protocol::CallKind::Ice, candidate)
                }
                _ => return,
            };
            hub.post(&ToWorker::BotSignal {
                room: room.clone(),
                bot,
                kind,
                data,
            });
        });
        let mut fakes = self.fakes.borrow_mut();
        match item {
            BotMedia::MakeOffer { name, .. } => {
                if let Some(fake) = FakeUser::new(&name, sink.clone()) {
                    fake.media.offer(sink);
                    fakes.insert(key, fake);
                }
            }
            BotMedia::Offer { name, sdp, .. } => {
                if let Some(fake) = FakeUser::new(&name, sink.clone()) {
                    fake.media.on_signal(protocol::CallKind::Offer, sdp, sink);
                    fakes.insert(key, fake);
                }
            }
            BotMedia::Answer { sdp, .. } => {
                if let Some(fake) = fakes.get(&key) {
                    fake.media.on_signal(protocol::CallKind::Answer, sdp, sink);
                }
            }
            BotMedia::Ice { candidate, .. } => {
                if let Some(fake) = fakes.get(&key) {
                    fake.media
                        .on_signal(protocol::CallKind::Ice, candidate, sink);
                }
            }
            BotMedia::Ended { .. } => {
                fakes.remove(&key);
            }
        }
    }
}

/// A page connection to a mock room.
pub struct MockTransport {
    hub: Rc<MockHub>,
    conn: u64,
}

impl MockTransport {
    pub fn open(hub: &Rc<MockHub>, room: &str, sink: EventSink) -> Self {
        let conn = hub.connect(room, sink);
        Self {
            hub: Rc::clone(hub),
            conn,
        }
    }
}

impl Transport for MockTransport {
    fn send(&self, frame: &str) -> Result<(), TransportError> {
        if !self.hub.connections.borrow().contains_key(&self.conn) {
            return Err(TransportError::NotOpen);
        }
        self.hub.send(self.conn, frame);
        Ok(())
    }

    fn close(&self) {
        self.hub.disconnect(self.conn);
    }
}

impl Drop for MockTransport {
    fn drop(&mut self) {
        self.close();
    }
}

/// The wall clock in milliseconds, at the resolution of `performance.now()` (the worker uses
/// the same time base).
fn wall_now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.time_origin() + p.now())
}
