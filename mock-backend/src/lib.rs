//! Rooms that live in the page: the same [`protocol::Room`] engine a real server runs, with
//! fake users who join, leave, rename themselves and post varied markdown.
//!
//! A simulation harness in the manner of quinn's in-memory test pair: no timers, no sockets.
//! The caller owns the clock (it passes `now` to every call, and may run it faster for a
//! `?speed=` demo) and the seed (`?seed=`), so the same seed and the same times give the same
//! room, frame for frame. Storage is a vector in memory: persisting succeeds at once.
//!
//! # Layout
//! - [`MockRoom`]: one room; connect page clients, send them frames, advance time.
//! - `script`: the fake users' names and the messages they post.

mod script;

use std::collections::{HashMap, VecDeque};

use protocol::{
    ConnectionId, Effect, Millis, Room, RoomConfig, RoomSnapshot, ServerAction, StoredMessage,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Connection ids at or above this belong to fake users; the page's own start at 1.
const BOT_IDS: u64 = 1 << 32;

/// One fake user.
#[derive(Debug)]
struct Bot {
    conn: ConnectionId,
    name: &'static str,
    /// (userId, token) once the room has given it an identity, to come back as itself.
    identity: Option<(String, String)>,
    online: bool,
    /// When it next does something.
    next_at: Millis,
}

/// An in-page chat room with fake users.
#[derive(Debug)]
pub struct MockRoom {
    room: Room,
    rng: StdRng,
    bots: Vec<Bot>,
    /// Frames waiting for each page connection.
    outboxes: HashMap<ConnectionId, VecDeque<String>>,
    stored: Vec<StoredMessage>,
    next_conn: u64,
}

impl MockRoom {
    /// A room named `name` with `bots` fake users (at most [`script::NAMES`]), seeded.
    pub fn new(name: &str, bots: usize, seed: u64, now: Millis) -> Self {
        Self::with_normalize(name, bots, seed, now, RoomConfig::default().normalize)
    }

    /// [`Self::new`], with the host's Unicode normalisation for names (the browser's, in the
    /// client: see [`RoomConfig::normalize`]).
    pub fn with_normalize(
        name: &str,
        bots: usize,
        seed: u64,
        now: Millis,
        normalize: protocol::room::Normalize,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut engine_seed = [0u8; 32];
        rng.fill(&mut engine_seed);
        let config = RoomConfig {
            server_name: name.to_owned(),
            normalize,
            ..RoomConfig::default()
        };
        let mut room = Self {
            room: Room::new(
                config,
                RoomSnapshot {
                    complete: true,
                    ..RoomSnapshot::default()
                },
                engine_seed,
            ),
            rng,
            bots: Vec::new(),
            outboxes: HashMap::new(),
            stored: Vec::new(),
            next_conn: 1,
        };
        for (i, name) in script::NAMES.iter().take(bots).enumerate() {
            let conn = ConnectionId(BOT_IDS + i as u64);
            let next_at = now + room.rng.random_range(500..4_000);
            room.bots.push(Bot {
                conn,
                name,
                identity: None,
                online: false,
                next_at,
            });
            room.bot_join(now, i);
        }
        room
    }

    /// A page client connects; its HANDSHAKE is waiting in [`Self::take_frames`].
    pub fn connect(&mut self, now: Millis) -> ConnectionId {
        let conn = ConnectionId(self.next_conn);
        self.next_conn += 1;
        self.outboxes.insert(conn, VecDeque::new());
        self.room.handle_connect(now, conn);
        self.pump(now);
        conn
    }

    /// A page client sends a text frame.
    pub fn send(&mut self, now: Millis, conn: ConnectionId, text: &str) {
        self.room.handle_frame(now, conn, text);
        self.pump(now);
    }

    /// A page client closes.
    pub fn disconnect(&mut self, now: Millis, conn: ConnectionId) {
        self.outboxes.remove(&conn);
        self.room.handle_disconnect(now, conn);
        self.pump(now);
    }

    /// Frames the room has sent to `conn` since the last call, oldest first.
    pub fn take_frames(&mut self, conn: ConnectionId) -> Vec<String> {
        self.outboxes
            .get_mut(&conn)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Runs every fake user's actions due up to `now`.
    pub fn advance(&mut self, now: Millis) {
        loop {
            let due = (0..self.bots.len())
                .filter(|&i| self.bots[i].next_at <= now)
                .min_by_key(|&i| self.bots[i].next_at);
            let Some(i) = due else { break };
            let at = self.bots[i].next_at;
            self.bot_act(at, i);
            self.bots[i].next_at = at + self.rng.random_range(1_500..9_000);
        }
    }

    /// When the next fake user acts: a caller can sleep until then.
    pub fn next_event_at(&self) -> Option<Millis> {
        self.bots.iter().map(|b| b.next_at).min()
    }

    fn bot_act(&mut self, now: Millis, i: usize) {
        if !self.bots[i].online {
            return self.bot_join(now, i);
        }
        match self.rng.random_range(0..100) {
            0..=74 => {
                let text = script::MESSAGES[self.rng.random_range(0..script::MESSAGES.len())];
                let nonce = format!("bot-{}-{now}", i);
                let frame = protocol::ClientAction::Message(protocol::SendMessage {
                    raw_message: text.to_owned(),
                    user_id: None,
                    nonce: Some(nonce),
                });
                self.bot_send(now, i, &frame.to_json());
            }
            75..=84 => {
                let suffix = script::SUFFIXES[self.rng.random_range(0..script::SUFFIXES.len())];
                let name = format!("{}{suffix}", self.bots[i].name);
                let frame = protocol::ClientAction::NameChange(protocol::ChangeName {
                    name,
                    user_id: None,
                });
                self.bot_send(now, i, &frame.to_json());
            }
            _ => {
                self.bots[i].online = false;
                let conn = self.bots[i].conn;
                self.room.handle_disconnect(now, conn);
                self.pump(now);
            }
        }
    }

    fn bot_join(&mut self, now: Millis, i: usize) {
        let conn = self.bots[i].conn;
        self.room.handle_connect(now, conn);
        let info = match &self.bots[i].identity {
            Some((user_id, token)) => protocol::HandshakeUserInfo {
                user_id: Some(user_id.clone()),
                token: Some(token.clone()),
                since: None,
            },
            None => protocol::HandshakeUserInfo::default(),
        };
        let first_time = self.bots[i].identity.is_none();
        self.bots[i].online = true;
        self.bot_send(
            now,
            i,
            &protocol::ClientAction::HandshakeUserInfo(info).to_json(),
        );
        if first_time {
            let name = self.bots[i].name.to_owned();
            let frame = protocol::ClientAction::NameChange(protocol::ChangeName {
                name,
                user_id: None,
            });
            self.bot_send(now, i, &frame.to_json());
        }
    }

    fn bot_send(&mut self, now: Millis, i: usize, text: &str) {
        let conn = self.bots[i].conn;
        self.room.handle_frame(now, conn, text);
        self.pump(now);
    }

    /// Carries out the engine's effects: frames to page connections, storage in memory.
    fn pump(&mut self, now: Millis) {
        while let Some(effect) = self.room.poll_effect() {
            match effect {
                Effect::Send { to, action } => self.deliver(to, &action),
                Effect::Broadcast(action) => {
                    let frame = action.to_json();
                    for queue in self.outboxes.values_mut() {
                        queue.push_back(frame.clone());
                    }
                }
                Effect::PersistMessage(message) => {
                    let seq = message.seq;
                    self.stored.push(message);
                    self.room.handle_persisted(now, seq);
                }
                Effect::PersistUser(_) => {}
                Effect::LoadHistory { to, before, limit } => {
                    let older: Vec<StoredMessage> = self
                        .stored
                        .iter()
                        .filter(|m| m.seq < before)
                        .cloned()
                        .collect();
                    let keep = older.len().saturating_sub(limit as usize);
                    let has_more = keep > 0;
                    self.room.handle_history_loaded(
                        now,
                        to,
                        before,
                        older[keep..].to_vec(),
                        has_more,
                    );
                }
            }
        }
    }

    fn deliver(&mut self, to: ConnectionId, action: &ServerAction) {
        if to.0 >= BOT_IDS {
            // A fake user learns its identity from USER_INFO, to come back as itself later.
            if let ServerAction::UserInfo(info) = action
                && let Some(bot) = self.bots.iter_mut().find(|b| b.conn == to)
                && let Some(token) = &info.token
            {
                bot.identity = Some((info.user_id.clone(), token.clone()));
            }
            return;
        }
        if let Some(queue) = self.outboxes.get_mut(&to) {
            queue.push_back(action.to_json());
        }
    }
}

#[cfg(test)]
mod tests;
