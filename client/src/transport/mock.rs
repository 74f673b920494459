//! Rooms simulated in this page: `mock-backend` rooms (the real engine with fake users),
//! driven by a timer on a clock that may run faster than real time (`?speed=`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use mock_backend::MockRoom;
use protocol::{ConnectionId, Millis};

use super::{EventSink, Transport, TransportError, TransportEvent};

/// Fake users per mock room.
const BOTS: usize = 4;
/// A new mock room has already been chatting for this long (simulated time): a few hundred
/// messages, more than a handshake carries, so older history can be paged in.
const PRE_HISTORY_MS: Millis = 10 * 60 * 1000;

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

struct PageConnection {
    room: String,
    conn: ConnectionId,
    sink: EventSink,
}

/// Every mock room of the page, their page connections, and the clock.
pub struct MockHub {
    options: MockOptions,
    /// Wall clock and `performance.now()` when the hub started: simulated time runs from here.
    started_wall: f64,
    started_perf: f64,
    rooms: RefCell<HashMap<String, MockRoom>>,
    connections: RefCell<Vec<PageConnection>>,
    ticking: std::cell::Cell<bool>,
    /// Fake users in a call, by room and fake user: their made-up camera and tone.
    fakes: RefCell<HashMap<(String, usize), crate::call::fake::FakeUser>>,
}

impl MockHub {
    pub fn new(options: MockOptions) -> Rc<Self> {
        Rc::new(Self {
            options,
            started_wall: js_sys::Date::now(),
            started_perf: perf_now(),
            rooms: RefCell::new(HashMap::new()),
            connections: RefCell::new(Vec::new()),
            ticking: std::cell::Cell::new(false),
            fakes: RefCell::new(HashMap::new()),
        })
    }

    /// Simulated time, milliseconds since the epoch.
    pub fn now(&self) -> Millis {
        (self.started_wall + (perf_now() - self.started_perf) * self.options.speed) as Millis
    }

    fn connect(self: &Rc<Self>, name: &str, sink: EventSink) -> ConnectionId {
        let now = self.now();
        let conn = {
            let mut rooms = self.rooms.borrow_mut();
            let room = rooms.entry(name.to_owned()).or_insert_with(|| {
                let seed = self.options.seed ^ fnv1a(name);
                let mut room = MockRoom::with_normalize(
                    name,
                    BOTS,
                    seed,
                    now - PRE_HISTORY_MS,
                    crate::format::nfc,
                );
                room.advance(now);
                room
            });
            room.connect(now)
        };
        self.connections.borrow_mut().push(PageConnection {
            room: name.to_owned(),
            conn,
            sink: sink.clone(),
        });
        self.start_ticking();
        // Like a socket: the open event and the first frames come later, never in this call.
        let hub = Rc::clone(self);
        let room = name.to_owned();
        wasm_bindgen_futures::spawn_local(async move {
            sink(TransportEvent::Opened);
            hub.flush(&room);
        });
        conn
    }

    fn send(self: &Rc<Self>, name: &str, conn: ConnectionId, frame: &str) {
        let now = self.now();
        if let Some(room) = self.rooms.borrow_mut().get_mut(name) {
            room.advance(now);
            room.send(now, conn, frame);
        }
        self.flush(name);
    }

    fn disconnect(self: &Rc<Self>, name: &str, conn: ConnectionId) {
        let now = self.now();
        self.connections
            .borrow_mut()
            .retain(|c| !(c.room == name && c.conn == conn));
        if let Some(room) = self.rooms.borrow_mut().get_mut(name) {
            room.disconnect(now, conn);
        }
        self.flush(name);
    }

    /// Hands every frame waiting in room `name` to its page connections, and does what fake
    /// users' calls need of the page's media.
    fn flush(self: &Rc<Self>, name: &str) {
        self.fake_media(name);
        self.deliver(name);
    }

    fn fake_media(self: &Rc<Self>, name: &str) {
        use crate::call::fake::FakeUser;
        use mock_backend::BotMedia;
        let work = match self.rooms.borrow_mut().get_mut(name) {
            Some(room) => room.take_bot_media(),
            None => return,
        };
        for item in work {
            let bot = match &item {
                BotMedia::MakeOffer { bot, .. }
                | BotMedia::Offer { bot, .. }
                | BotMedia::Answer { bot, .. }
                | BotMedia::Ice { bot, .. }
                | BotMedia::Ended { bot } => *bot,
            };
            let key = (name.to_owned(), bot);
            let hub = Rc::downgrade(self);
            let room = name.to_owned();
            let sink: crate::call::MediaSink = Rc::new(move |event| {
                let Some(hub) = hub.upgrade() else { return };
                let (kind, data) = match event {
                    crate::call::MediaEvent::Described { kind, sdp, .. } => (kind, sdp),
                    crate::call::MediaEvent::Ice { candidate, .. } => {
                        (protocol::CallKind::Ice, candidate)
                    }
                    _ => return,
                };
                let now = hub.now();
                if let Some(mock) = hub.rooms.borrow_mut().get_mut(&room) {
                    mock.bot_signal(now, bot, kind, data);
                }
                hub.deliver(&room);
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

    fn deliver(&self, name: &str) {
        let deliveries: Vec<(EventSink, Vec<String>)> = {
            let mut rooms = self.rooms.borrow_mut();
            let Some(room) = rooms.get_mut(name) else {
                return;
            };
            self.connections
                .borrow()
                .iter()
                .filter(|c| c.room == name)
                .map(|c| (c.sink.clone(), room.take_frames(c.conn)))
                .collect()
        };
        // Borrows released: a sink may do anything, including call back into the hub.
        for (sink, frames) in deliveries {
            for frame in frames {
                sink(TransportEvent::Frame(frame));
            }
        }
    }

    /// One timer loop for all mock rooms: fake users act when their time comes.
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
                    if let Some(room) = hub.rooms.borrow_mut().get_mut(name) {
                        room.advance(now);
                        next = next.min(room.next_event_at().unwrap_or(next));
                    }
                    hub.flush(name);
                }
                let real_ms = ((next - now).max(0) as f64 / hub.options.speed).clamp(16.0, 5_000.0);
                gloo_timers::future::sleep(Duration::from_millis(real_ms as u64)).await;
            }
        });
    }
}

/// A page connection to a mock room.
pub struct MockTransport {
    hub: Rc<MockHub>,
    room: String,
    conn: ConnectionId,
}

impl MockTransport {
    pub fn open(hub: &Rc<MockHub>, room: &str, sink: EventSink) -> Self {
        let conn = hub.connect(room, sink);
        Self {
            hub: Rc::clone(hub),
            room: room.to_owned(),
            conn,
        }
    }
}

impl Transport for MockTransport {
    fn send(&self, frame: &str) -> Result<(), TransportError> {
        self.hub.send(&self.room, self.conn, frame);
        Ok(())
    }

    fn close(&self) {
        self.hub.disconnect(&self.room, self.conn);
    }
}

impl Drop for MockTransport {
    fn drop(&mut self) {
        self.close();
    }
}

fn perf_now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.now())
}

/// A stable hash of a room name, to give each mock room its own sequence from one seed.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
