//! The one owner of every connection: a loop that opens transports, feeds what they receive
//! to the rooms' sessions, sends what the sessions ask, wakes them when they ask, and
//! reconnects with backoff.
//!
//! Components never touch a transport or a session's protocol: they send this loop an
//! [`Intent`]. Everything the loop hears (intents, transport events, its own timers) arrives
//! on one stream, and after each it drains the room it concerned ([`AppState::settle`]), so
//! there is exactly one place where a connection changes and nothing a session wants sent
//! can be forgotten.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use dioxus::prelude::*;
use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::StreamExt;
use futures_util::stream;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use crate::state::{AppState, Link, NameScope, RoomId};
use crate::transport::{Connector, Transport, TransportEvent};

/// First reconnect delay; it doubles per failed attempt up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: u32 = 500;
const MAX_BACKOFF_MS: u32 = 15_000;

/// What the UI asks of the network.
#[derive(Debug)]
pub enum Intent {
    /// Add a room (the address already checked) and show it; connect if it is new.
    AddRoom(crate::address::Address),
    /// Remove a room and disconnect from it.
    RemoveRoom(RoomId),
    /// Reconnect to a room now instead of waiting for its next attempt.
    RetryNow(RoomId),
    /// Send a message (already checked with the room's session), answering a message if given.
    Send(RoomId, String, Option<protocol::Seq>),
    /// Send a message that was not stored again.
    Retry(RoomId, String),
    /// Load the page of older messages.
    LoadOlder(RoomId),
    /// Show this message of the room (a reply's original): its session pages history in
    /// until it is there.
    Reveal(RoomId, protocol::Seq),
    /// Show this search result in its conversation, revealed as `Reveal` does.
    OpenResult(RoomId, protocol::Seq),
    /// Close the room's search.
    EndSearch(RoomId),
    /// Take a message that was not sent (its key) out of the room; its text went back to the
    /// writing box.
    TakeBack(RoomId, String),
    /// Take this name (already checked) everywhere or in one room.
    Rename(String, NameScope),
    /// Edit one of your stored messages (its seq) to say this (already checked).
    Edit(RoomId, protocol::Seq, String),
    /// Delete one of your stored messages (its seq) for everyone, or, as a moderator or
    /// owner, remove someone else's.
    Delete(RoomId, protocol::Seq),
    /// As an owner: make someone a moderator (`Some`) or a member again (`None`).
    SetRole(RoomId, protocol::UserId, Option<protocol::Role>),
    /// As a moderator: time someone out for so many minutes, or end it (`None`).
    TimeOut(RoomId, protocol::UserId, Option<u32>),
    /// As a moderator: close someone's connections, telling them why.
    Kick(RoomId, protocol::UserId, String),
    /// As a moderator: ban someone for so many minutes (`None`: until lifted), saying why;
    /// `true`: their network addresses too.
    Ban(RoomId, protocol::UserId, Option<u32>, String, bool),
    /// As a moderator: lift someone's ban.
    Unban(RoomId, protocol::UserId),
    /// Report a room message (its seq) to the moderators, saying why.
    Report(RoomId, protocol::Seq, String),
    /// As a moderator: resolve an open report (its seq).
    ResolveReport(RoomId, protocol::Seq),
    /// As a moderator: ask for the moderation log and the open reports.
    RequestAudit(RoomId),
    /// The next page of the people online (the room lists the first of them only).
    MorePeople(RoomId),
    /// Be a moderator in the demo's rooms (`true`), or a member again.
    DemoModerator(bool),
    /// As a moderator: set the room's topic and slow mode.
    SetRoom(RoomId, protocol::RoomSettings),
    /// Add (true) or take back your reaction to a stored message.
    React(RoomId, protocol::Seq, String, bool),
    /// Ask again for a change of yours (by its nonce) the room did not store.
    RetryChange(RoomId, String),
    /// Give up a change of yours (by its nonce) the room did not store.
    DismissChange(RoomId, String),
    /// You are typing in this room's box.
    Typing(RoomId),
    /// Search this room (the query already checked).
    Search(RoomId, String),
    /// The next page of this room's search.
    SearchMore(RoomId),
    /// Ring this person of the room (with camera if true): the devices are asked for first.
    Call(RoomId, protocol::UserId, bool),
    /// Take the incoming call of this room (with camera if true).
    Answer(RoomId, bool),
    /// Hang up (or decline) the call of this room.
    HangUp(RoomId),
    /// No longer show the ended call of this room.
    DismissCall(RoomId),
    /// Turn the call's microphone (true) or camera (false) on or off.
    CallDevice(bool, bool),
}

enum Input {
    Intent(Intent),
    /// The browser's `online` (true) or `offline` (false) event.
    Network(bool),
    /// Something for the connection of this generation (stale generations are ignored).
    Link(RoomId, u64, LinkEvent),
    /// The call's media reports.
    Media(crate::call::MediaEvent),
}

enum LinkEvent {
    Transport(TransportEvent),
    /// The backoff delay has passed: connect again.
    Retry,
    /// The room's session asked to be woken now (pacing, or after `RATE_LIMITED`).
    Wake,
}

struct Connection {
    transport: Option<Box<dyn Transport>>,
    generation: u64,
    /// Failed attempts since the room was last online, for the backoff.
    attempt: u32,
    /// When the session's timer is set for, so that it is set once.
    wake_at: Option<protocol::Millis>,
}

struct Network {
    state: Signal<AppState>,
    connector: Connector,
    links: HashMap<RoomId, Connection>,
    events: UnboundedSender<(RoomId, u64, LinkEvent)>,
    next_generation: u64,
    /// The browser reports no network: connections wait for `online` instead of retrying.
    offline: bool,
    /// The page's call's media, while it has one.
    media: Option<crate::call::Media>,
    media_sink: crate::call::MediaSink,
    call_view: Signal<crate::call::CallView>,
}

/// Runs for the life of the page (a root coroutine).
pub async fn run(
    intents: UnboundedReceiver<Intent>,
    mut state: Signal<AppState>,
    connector: Connector,
    call_view: Signal<crate::call::CallView>,
) {
    let (events, link_events) = unbounded();
    let (media_events, media) = unbounded();
    let media_sink: crate::call::MediaSink = Rc::new(move |event| {
        let _page_closing = media_events.unbounded_send(event);
    });
    let mut network = Network {
        state,
        connector,
        links: HashMap::new(),
        events,
        next_generation: 1,
        offline: !browser_online(),
        media: None,
        media_sink,
        call_view,
    };
    let (network_events, browser) = unbounded();
    // Listeners for the page's lifetime, like the loop itself.
    let _listeners = NetworkListeners::install(network_events);
    // The demo's rooms know from the start whether the page's people moderate them.
    if state.peek().settings.demo_moderator {
        network.connector.set_demo_moderators(true);
    }
    let rooms: Vec<RoomId> = state.peek().rooms.iter().map(|r| r.id).collect();
    for id in rooms {
        network.open(id);
    }
    let mut inputs = stream::select(
        stream::select(
            stream::select(intents.map(Input::Intent), browser.map(Input::Network)),
            link_events.map(|(id, generation, event)| Input::Link(id, generation, event)),
        ),
        media.map(Input::Media),
    );
    while let Some(input) = inputs.next().await {
        match input {
            Input::Intent(Intent::AddRoom(address)) => {
                let (id, is_new) = state.write().add_address(address);
                if is_new {
                    network.open(id);
                }
                state.write().select(id);
            }
            Input::Intent(Intent::RemoveRoom(id)) => {
                state.write().remove_room(id);
                network.close(id);
            }
            Input::Intent(Intent::RetryNow(id)) => network.retry_now(id),
            Input::Intent(Intent::Send(id, text, reply_to)) => {
                state.write().compose(id, &text, reply_to, now());
                network.carry(id);
            }
            Input::Intent(Intent::Retry(id, key)) => {
                state.write().retry_message(id, &key, now());
                network.carry(id);
            }
            Input::Intent(Intent::Edit(id, seq, text)) => {
                state.write().edit_message(id, seq, &text, now());
                network.carry(id);
            }
            Input::Intent(Intent::Delete(id, seq)) => {
                state.write().delete_message(id, seq, now());
                network.carry(id);
            }
            Input::Intent(Intent::SetRole(id, user, role)) => {
                state.write().set_role(id, user, role, now());
                network.carry(id);
            }
            Input::Intent(Intent::TimeOut(id, user, minutes)) => {
                state.write().time_out(id, user, minutes, now());
                network.carry(id);
            }
            Input::Intent(Intent::Kick(id, user, reason)) => {
                state.write().kick(id, user, reason, now());
                network.carry(id);
            }
            Input::Intent(Intent::Ban(id, user, minutes, reason, address)) => {
                state.write().ban(id, user, minutes, reason, address, now());
                network.carry(id);
            }
            Input::Intent(Intent::Unban(id, user)) => {
                state.write().unban(id, user, now());
                network.carry(id);
            }
            Input::Intent(Intent::Report(id, seq, reason)) => {
                state.write().report(id, seq, reason, now());
                network.carry(id);
            }
            Input::Intent(Intent::ResolveReport(id, seq)) => {
                state.write().resolve_report(id, seq, now());
                network.carry(id);
            }
            Input::Intent(Intent::DemoModerator(on)) => network.connector.set_demo_moderators(on),
            Input::Intent(Intent::RequestAudit(id)) => {
                state.write().request_audit(id, now());
                network.carry(id);
            }
            Input::Intent(Intent::MorePeople(id)) => {
                state.write().more_people(id, now());
                network.carry(id);
            }
            Input::Intent(Intent::SetRoom(id, settings)) => {
                state.write().set_room(id, settings, now());
                network.carry(id);
            }
            Input::Intent(Intent::React(id, seq, emoji, on)) => {
                state.write().react(id, seq, &emoji, on, now());
                network.carry(id);
            }
            Input::Intent(Intent::RetryChange(id, nonce)) => {
                state.write().retry_change(id, &nonce, now());
                network.carry(id);
            }
            Input::Intent(Intent::DismissChange(id, nonce)) => {
                state.write().dismiss_change(id, &nonce);
            }
            Input::Intent(Intent::Typing(id)) => {
                state.write().typing(id, now());
                network.carry(id);
            }
            Input::Intent(Intent::Search(id, query)) => {
                if state.write().search(id, &query, now()).is_ok() {
                    network.carry(id);
                }
            }
            Input::Intent(Intent::SearchMore(id)) => {
                state.write().search_more(id, now());
                network.carry(id);
            }
            Input::Intent(Intent::LoadOlder(id)) => {
                state.write().request_history(id, now());
                network.carry(id);
            }
            Input::Intent(Intent::Reveal(id, seq)) => {
                state.write().reveal(id, seq, now());
                network.carry(id);
            }
            Input::Intent(Intent::OpenResult(id, seq)) => {
                state.write().open_result(id, seq, now());
                network.carry(id);
            }
            Input::Intent(Intent::EndSearch(id)) => {
                state.write().end_search(id);
                network.carry(id);
            }
            Input::Intent(Intent::TakeBack(id, key)) => {
                let _text_already_in_the_box = state.write().take_back_message(id, &key);
                network.carry(id);
            }
            Input::Intent(Intent::Rename(name, scope)) => {
                let changed = state.write().set_name(&name, scope, now()).is_ok();
                if changed {
                    let ids: Vec<RoomId> = state.peek().rooms.iter().map(|r| r.id).collect();
                    for id in ids {
                        network.carry(id);
                    }
                }
            }
            Input::Intent(Intent::Call(id, peer, video)) => {
                network.ask_devices(id, peer, video, false)
            }
            Input::Intent(Intent::Answer(id, video)) => {
                network.ask_devices(id, String::new(), video, true)
            }
            Input::Intent(Intent::HangUp(id)) => {
                state.write().hang_up(id, now());
                network.carry(id);
            }
            Input::Intent(Intent::DismissCall(id)) => state.write().dismiss_call(id),
            Input::Intent(Intent::CallDevice(audio, on)) => network.call_device(audio, on),
            Input::Media(event) => network.on_media(event),
            Input::Network(online) => network.set_online(online),
            Input::Link(id, generation, event) => {
                let current = network.links.get(&id).map(|l| l.generation);
                if current == Some(generation) {
                    network.on_event(id, event);
                }
            }
        }
    }
}

impl Network {
    /// A call is to start or be answered: the devices are asked for now, and the call goes on
    /// when they come (or do not).
    fn ask_devices(&mut self, id: RoomId, peer: protocol::UserId, video: bool, answer: bool) {
        if self.media.is_some() {
            return;
        }
        self.call_view.set(crate::call::CallView::default());
        let sink = self.media_sink.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let (stream, problem) = crate::call::local_media(video).await;
            sink(crate::call::MediaEvent::Local {
                room: id,
                answer,
                peer,
                video,
                stream,
                problem,
            });
        });
    }

    fn call_device(&mut self, audio: bool, on: bool) {
        let Some(media) = &self.media else { return };
        media.set_enabled(audio, on);
        let id = media.room;
        let mut view = self.call_view.write();
        if audio {
            view.mic_on = on;
        } else {
            view.camera_on = on;
        }
        let (mic, camera) = (
            view.mic_on && view.has_mic,
            view.camera_on && view.has_camera,
        );
        drop(view);
        self.state.write().call_media(id, mic, camera);
        self.carry(id);
    }

    fn on_media(&mut self, event: crate::call::MediaEvent) {
        use crate::call::{Media, MediaEvent};
        match event {
            MediaEvent::Local {
                room,
                answer,
                peer,
                video,
                stream,
                problem,
            } => {
                // The call may have ended (or its ring run out) while the browser asked.
                let go_ahead = match self.media {
                    Some(_) => None,
                    None => self.state.peek().call_go_ahead(room, answer, video, now()),
                };
                let Some(receive_video) = go_ahead else {
                    crate::call::stop(stream.as_ref());
                    return;
                };
                let servers = self
                    .state
                    .peek()
                    .room(room)
                    .map(|r| r.session.ice_servers().to_vec())
                    .unwrap_or_default();
                let media = match Media::new(
                    room,
                    &servers,
                    stream,
                    receive_video,
                    true,
                    self.media_sink.clone(),
                ) {
                    Ok(media) => media,
                    Err(problem) => {
                        self.call_view.write().problem = Some(problem);
                        return;
                    }
                };
                let (has_mic, has_camera) = media.devices();
                self.call_view.set(crate::call::CallView {
                    link: crate::call::MediaLink::Waiting,
                    has_mic,
                    has_camera,
                    mic_on: has_mic,
                    camera_on: has_camera,
                    problem,
                });
                self.media = Some(media);
                let started = if answer {
                    self.state.write().accept_call(room, has_camera, now());
                    Ok(())
                } else {
                    self.state.write().start_call(room, &peer, video, now())
                };
                if let Err(error) = started {
                    self.media = None;
                    crate::call::forget_streams();
                    self.state.write().call_refused(room, &error);
                }
                if answer {
                    self.call_view.write().link = crate::call::MediaLink::Connecting;
                }
                self.carry(room);
            }
            MediaEvent::Described { room, kind, sdp } => {
                self.state.write().call_signal(room, kind, sdp);
                self.carry(room);
            }
            MediaEvent::Ice { room, candidate } => {
                self.state
                    .write()
                    .call_signal(room, protocol::CallKind::Ice, candidate);
                self.carry(room);
            }
            MediaEvent::Link { room, link } => {
                if self.media.as_ref().is_some_and(|m| m.room == room) {
                    self.call_view.write().link = link;
                }
            }
            MediaEvent::Failed { room, problem } => {
                if self.media.as_ref().is_some_and(|m| m.room == room) {
                    let mut view = self.call_view.write();
                    view.link = crate::call::MediaLink::Failed;
                    view.problem = Some(problem);
                }
            }
        }
    }

    /// What a room's session says of its call, for the media.
    fn on_call_event(&mut self, id: RoomId, event: protocol::session::CallEvent) {
        use protocol::session::CallEvent;
        let ours = self.media.as_ref().is_some_and(|m| m.room == id);
        match event {
            CallEvent::Incoming => {}
            CallEvent::Accepted if ours => {
                self.call_view.write().link = crate::call::MediaLink::Connecting;
                if let Some(media) = &self.media {
                    media.offer(self.media_sink.clone());
                }
            }
            CallEvent::Signal(kind, data) if ours => {
                if let Some(media) = &self.media {
                    media.on_signal(kind, data, self.media_sink.clone());
                }
            }
            CallEvent::Ended if ours => {
                self.media = None;
                crate::call::forget_streams();
                self.call_view.write().link = crate::call::MediaLink::Waiting;
            }
            _ => {}
        }
    }

    /// Offline: every connection is dropped (it may still look open, but nothing reliable can
    /// pass) and waits. Online again: every room connects at once, without backoff.
    fn set_online(&mut self, online: bool) {
        if online != self.offline {
            return;
        }
        self.offline = !online;
        // Mock rooms live in the page: the network does not concern them.
        let ids: Vec<RoomId> = self
            .links
            .keys()
            .copied()
            .filter(|&id| self.needs_network(id))
            .collect();
        for id in ids {
            if online {
                if let Some(link) = self.links.get_mut(&id) {
                    link.attempt = 0;
                }
                self.open(id);
            } else {
                if let Some(link) = self.links.get_mut(&id) {
                    // Events and timers of the dropped connection are ignored from now on.
                    link.generation = self.next_generation;
                    self.next_generation += 1;
                    if let Some(transport) = link.transport.take() {
                        transport.close();
                    }
                }
                self.state.write().link_offline(id, now());
                self.carry(id);
            }
        }
    }

    fn needs_network(&self, id: RoomId) -> bool {
        self.state
            .peek()
            .room(id)
            .is_some_and(|r| !r.address.is_mock())
    }

    /// The browser is offline and this room is on a server: it waits for `online`.
    fn held_offline(&self, id: RoomId) -> bool {
        self.offline && self.needs_network(id)
    }

    fn open(&mut self, id: RoomId) {
        if self.held_offline(id) {
            if !self.links.contains_key(&id) {
                let generation = self.next_generation;
                self.next_generation += 1;
                self.links.insert(
                    id,
                    Connection {
                        transport: None,
                        generation,
                        attempt: 0,
                        wake_at: None,
                    },
                );
            }
            self.state.write().link_offline(id, now());
            self.carry(id);
            return;
        }
        let Some(address) = self.state.peek().room(id).map(|r| r.address.clone()) else {
            return;
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        let events = self.events.clone();
        let sink = Rc::new(move |event| {
            // The loop outlives every transport; if it is gone, so is the page.
            let _page_closing =
                events.unbounded_send((id, generation, LinkEvent::Transport(event)));
        });
        let attempt = self.links.get(&id).map_or(0, |l| l.attempt);
        let transport = match self.connector.connect(&address, sink) {
            Ok(transport) => Some(transport),
            Err(error) => {
                self.state.write().connect_refused(id, &error.to_string());
                None
            }
        };
        let failed = transport.is_none();
        if let Some(old) = self.links.insert(
            id,
            Connection {
                transport,
                generation,
                attempt,
                wake_at: None,
            },
        ) && let Some(old) = old.transport
        {
            old.close();
        }
        self.state.write().link_connecting(id);
        if failed {
            self.schedule_retry(id);
        }
    }

    /// Opens a room that is waiting to reconnect at once; its pending timer is ignored.
    fn retry_now(&mut self, id: RoomId) {
        let waiting = self
            .links
            .get(&id)
            .is_some_and(|link| link.transport.is_none());
        if waiting && !self.held_offline(id) {
            self.open(id);
        }
    }

    fn close(&mut self, id: RoomId) {
        if let Some(link) = self.links.remove(&id)
            && let Some(transport) = link.transport
        {
            transport.close();
        }
    }

    /// Drains the room's session: its frames go out on the open connection (none is open:
    /// the session sends again what matters when it identifies), and its timer is set.
    fn carry(&mut self, id: RoomId) {
        let settled = self.state.write().settle(id, now());
        if !self.links.contains_key(&id) {
            return;
        }
        for (title, body) in &settled.notify {
            show_notification(title, body);
        }
        for event in settled.calls {
            self.on_call_event(id, event);
        }
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if let Some(transport) = &link.transport {
            for action in &settled.send {
                if transport.send(&action.to_json()).is_err() {
                    break;
                }
            }
        }
        if let Some(at) = settled.wake_at
            && link.wake_at != Some(at)
        {
            link.wake_at = Some(at);
            let delay = u32::try_from((at - now()).max(0)).unwrap_or(u32::MAX);
            let generation = link.generation;
            self.after(id, generation, delay, LinkEvent::Wake);
        }
    }

    fn on_event(&mut self, id: RoomId, event: LinkEvent) {
        match event {
            LinkEvent::Transport(TransportEvent::Opened) => {
                self.state.write().link_opened(id, now());
                self.carry(id);
            }
            LinkEvent::Transport(TransportEvent::Frame(text)) => {
                self.state.write().receive(id, &text, now());
                self.carry(id);
                if self
                    .state
                    .peek()
                    .room(id)
                    .is_some_and(|r| r.link == Link::Online)
                    && let Some(link) = self.links.get_mut(&id)
                {
                    link.attempt = 0;
                }
            }
            LinkEvent::Transport(TransportEvent::Closed { .. }) => {
                if let Some(link) = self.links.get_mut(&id) {
                    link.transport = None;
                }
                self.schedule_retry(id);
            }
            LinkEvent::Retry => self.open(id),
            LinkEvent::Wake => {
                if let Some(link) = self.links.get_mut(&id) {
                    link.wake_at = None;
                }
                self.state.write().wake(id, now());
                self.carry(id);
            }
        }
    }

    /// Marks the room as reconnecting and opens it again after a growing, jittered delay
    /// (not when the room refused us as banned: then only "Retry now" does).
    fn schedule_retry(&mut self, id: RoomId) {
        if self
            .state
            .peek()
            .room(id)
            .is_some_and(|r| r.session.refused_banned().is_some())
        {
            self.state.write().link_banned(id, now());
            self.carry(id);
            return;
        }
        if self.held_offline(id) {
            self.state.write().link_offline(id, now());
            self.carry(id);
            return;
        }
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.attempt += 1;
        link.wake_at = None;
        let base = FIRST_BACKOFF_MS.saturating_mul(1 << link.attempt.min(10)) / 2;
        // Up to a quarter more, so that many clients of a restarted room do not return at
        // once; never more than the cap.
        let jitter = (js_sys::Math::random() * f64::from(base) / 4.0) as u32;
        let delay = (base + jitter).min(MAX_BACKOFF_MS);
        let (attempt, generation) = (link.attempt, link.generation);
        let retry_at = now() + i64::from(delay);
        self.state.write().link_lost(id, attempt, retry_at, now());
        self.carry(id);
        self.after(id, generation, delay, LinkEvent::Retry);
    }

    fn after(&self, id: RoomId, generation: u64, delay_ms: u32, event: LinkEvent) {
        let events = self.events.clone();
        wasm_bindgen_futures::spawn_local(async move {
            gloo_timers::future::sleep(Duration::from_millis(u64::from(delay_ms))).await;
            let _page_closing = events.unbounded_send((id, generation, event));
        });
    }
}

/// A browser notification, if the page may show one (permission is asked in Settings).
fn show_notification(title: &str, body: &str) {
    if web_sys::Notification::permission() != web_sys::NotificationPermission::Granted {
        return;
    }
    let options = web_sys::NotificationOptions::new();
    options.set_body(body);
    // Shown or not, nothing else depends on it.
    let _shown = web_sys::Notification::new_with_options(title, &options);
}

fn now() -> protocol::Millis {
    js_sys::Date::now() as protocol::Millis
}

fn browser_online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

/// The window's `online` and `offline` listeners, removed when dropped.
struct NetworkListeners {
    online: Closure<dyn FnMut(web_sys::Event)>,
    offline: Closure<dyn FnMut(web_sys::Event)>,
}

impl NetworkListeners {
    fn install(sink: UnboundedSender<bool>) -> Option<Self> {
        let window = web_sys::window()?;
        let up = sink.clone();
        let online = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
            let _page_closing = up.unbounded_send(true);
        });
        let offline = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
            let _page_closing = sink.unbounded_send(false);
        });
        window
            .add_event_listener_with_callback("online", online.as_ref().unchecked_ref())
            .ok()?;
        window
            .add_event_listener_with_callback("offline", offline.as_ref().unchecked_ref())
            .ok()?;
        Some(Self { online, offline })
    }
}

impl Drop for NetworkListeners {
    fn drop(&mut self) {
        if let Some(window) = web_sys::window() {
            // Removing a listener that is not there is harmless; nothing to report.
            let _gone = window.remove_event_listener_with_callback(
                "online",
                self.online.as_ref().unchecked_ref(),
            );
            let _gone = window.remove_event_listener_with_callback(
                "offline",
                self.offline.as_ref().unchecked_ref(),
            );
        }
    }
}
