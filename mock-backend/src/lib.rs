//! Rooms that live in the page: the same [`protocol::Room`] engine a real server runs, with
//! fake users who join, leave, rename themselves, post varied markdown, react to what others
//! say, and now and then edit or delete what they posted.
//!
//! Built on `protocol::testing::Pair` (the room, the fake users' client sessions, storage in
//! memory): the fake users are [`protocol::session::Session`]s like the page's own, so they
//! keep their identity across visits and pace their messages by the same rules. No timers,
//! no sockets: the caller owns the clock (it passes `now` to every call, and may run it
//! faster for a `?speed=` demo) and the seed (`?seed=`), so the same seed and the same times
//! give the same room, frame for frame. Storage succeeds at once.
//!
//! One fake user is the room's moderator (its third, from a record the room starts with), and
//! another (its fourth) now and then posts spam, which the moderator removes a few seconds
//! later; both run on a random source of their own, so the rest of the room is as without
//! them. The page's own people can be made moderators too ("be a moderator", a setting): the
//! host grants the role as a server's operator does.
//!
//! # Layout
//! - [`MockRoom`]: one room; connect page clients, send them frames, advance time.
//! - `script`: the fake users' names and the messages they post.
//! - [`port`]: what the page and the Web Worker running these rooms say to each other.

pub mod port;
mod script;

use protocol::session::{Delivery, SessionConfig};
use protocol::testing::{Pair, PeerId};
use protocol::{ConnectionId, Millis, RoomConfig, RoomSnapshot};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// What the page must do for a fake user's side of a call: the fake user's media (a canvas
/// stream and a tone through a real `RTCPeerConnection`) lives in the page, not here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BotMedia {
    /// The fake user `bot` called and was answered: make its offer.
    MakeOffer { bot: usize, name: String },
    /// Answer this offer for fake user `bot`.
    Offer {
        bot: usize,
        name: String,
        sdp: String,
    },
    /// The answer to fake user `bot`'s offer.
    Answer { bot: usize, sdp: String },
    /// An ICE candidate for fake user `bot`'s peer connection.
    Ice { bot: usize, candidate: String },
    /// Fake user `bot`'s call is over: close its media.
    Ended { bot: usize },
}

/// A fake user's timers for calls.
#[derive(Debug, Default)]
struct BotCalls {
    /// When it takes the call ringing it.
    answer_at: Option<Millis>,
    /// When it hangs up the call it is in.
    hang_up_at: Option<Millis>,
    /// When it calls someone who wrote to it, and whom (once per fake user).
    ring_at: Option<(Millis, protocol::UserId)>,
    rang: bool,
}

impl BotCalls {
    fn due(&self) -> Option<Millis> {
        [
            self.answer_at,
            self.hang_up_at,
            self.ring_at.as_ref().map(|r| r.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// One fake user: a client session like the page's, driven by a script.
#[derive(Debug)]
struct Bot {
    peer: PeerId,
    name: &'static str,
    /// When it next does something.
    next_at: Millis,
    /// What it is typing (what that answers, and to whom directly), posted at `next_at`.
    draft: Option<Draft>,
    /// The latest direct message to it that it has answered.
    answered: Option<protocol::Seq>,
    calls: BotCalls,
}

#[derive(Debug)]
struct Draft {
    text: String,
    reply_to: Option<protocol::Seq>,
    to: Option<protocol::UserId>,
}

/// The demo's moderation: which fake user moderates, which spams, and when they next act.
#[derive(Debug)]
struct Moderation {
    rng: StdRng,
    /// The moderator's index among the fake users, and the spammer's.
    moderator: usize,
    spammer: usize,
    /// When the spammer next posts.
    spam_at: Millis,
    /// When the moderator next looks for spam to remove.
    remove_at: Option<Millis>,
}

impl Moderation {
    fn due(&self) -> Millis {
        self.remove_at
            .map_or(self.spam_at, |at| at.min(self.spam_at))
    }
}

/// The fake moderator's index among the fake users (when there are more than this), and the
/// spammer's (when there are more than this).
const MODERATOR_BOT: usize = 2;
const SPAMMER_BOT: usize = 3;

/// An in-page chat room with fake users.
#[derive(Debug)]
pub struct MockRoom {
    /// The room, the fake users' sessions, the page's connections and storage in memory.
    pair: Pair,
    rng: StdRng,
    bots: Vec<Bot>,
    next_conn: u64,
    /// Work for the page's side of fake users' calls, oldest first.
    media: Vec<BotMedia>,
    /// The fake moderator and spammer, when the room has them.
    moderation: Option<Moderation>,
    /// The page's open connections.
    page: Vec<ConnectionId>,
    /// The page's people are moderators here (the demo's setting).
    page_moderators: bool,
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
        // The moderator's identity, with its role, is in the room's storage from the start;
        // it and the spam come from a random source of their own.
        let mut mod_rng = StdRng::seed_from_u64(seed ^ 0x6d6f_6465_7261_7465);
        let moderator_identity = (bots > MODERATOR_BOT).then(|| {
            let hex = |rng: &mut StdRng, bytes: usize| {
                (0..bytes)
                    .map(|_| format!("{:02x}", rng.random::<u8>()))
                    .collect::<String>()
            };
            protocol::session::Identity {
                user_id: hex(&mut mod_rng, 12),
                token: Some(hex(&mut mod_rng, 32)),
            }
        });
        let users = moderator_identity
            .iter()
            .map(|identity| protocol::UserRecord {
                id: identity.user_id.clone(),
                name: script::NAMES[MODERATOR_BOT].to_owned(),
                token_hash: protocol::hash_token(identity.token.as_deref().unwrap_or("")),
                joined_at: Some(now),
                last_seen: None,
                role: Some(protocol::Role::Moderator),
                timed_out_until: None,
                ban: None,
            })
            .collect();
        let snapshot = RoomSnapshot {
            complete: true,
            users,
            ..RoomSnapshot::default()
        };
        let mut pair = Pair::seeded(config, snapshot, engine_seed);
        pair.now = now;
        let moderation = (bots > SPAMMER_BOT).then(|| Moderation {
            spam_at: now + mod_rng.random_range(60_000..150_000),
            rng: mod_rng,
            moderator: MODERATOR_BOT,
            spammer: SPAMMER_BOT,
            remove_at: None,
        });
        let mut room = Self {
            pair,
            rng,
            bots: Vec::new(),
            next_conn: 1,
            media: Vec::new(),
            moderation,
            page: Vec::new(),
            page_moderators: false,
        };
        for (i, name) in script::NAMES.iter().take(bots).enumerate() {
            let peer = room.pair.add_session(SessionConfig {
                nonce_prefix: format!("bot{i}"),
                // A fake user reads nothing: it keeps no timeline.
                keep_messages: 0,
                render: |_| "".into(),
            });
            room.pair
                .session_mut(peer)
                .set_wanted_name(now, Some((*name).to_owned()));
            if i == MODERATOR_BOT {
                room.pair
                    .session_mut(peer)
                    .set_identity(moderator_identity.clone());
            }
            let next_at = now + room.rng.random_range(500..4_000);
            room.bots.push(Bot {
                peer,
                name,
                next_at,
                draft: None,
                answered: None,
                calls: BotCalls::default(),
            });
            room.pair.open_session(peer);
        }
        room
    }

    /// A page client connects; its HANDSHAKE is waiting in [`Self::take_frames`].
    pub fn connect(&mut self, now: Millis) -> ConnectionId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.pair.advance_to(now);
        let conn = self.pair.connect(id);
        self.page.push(conn);
        conn
    }

    /// Makes the page's people moderators here (`true`), or members again: as the room's
    /// operator, for whoever is identified now and whoever identifies later.
    pub fn set_page_moderators(&mut self, now: Millis, on: bool) {
        self.page_moderators = on;
        self.pair.advance_to(now);
        self.grant_page();
    }

    /// The page's identified people get the role the setting says (a role they have is kept).
    fn grant_page(&mut self) {
        let role = self.page_moderators.then_some(protocol::Role::Moderator);
        let users: Vec<protocol::UserId> = self
            .page
            .iter()
            .filter_map(|conn| self.pair.room.user_of(*conn).cloned())
            .collect();
        for user in users {
            match self.pair.room.role_of(&user) {
                Some(protocol::Role::Owner) => {}
                _ => self.pair.room.handle_operator_role(&user, role),
            }
        }
        self.pair.run();
    }

    /// A page client sends a text frame.
    pub fn send(&mut self, now: Millis, conn: ConnectionId, text: &str) {
        self.pair.advance_to(now);
        self.pair.frame(conn, text);
        self.grant_page();
        self.hear();
    }

    /// A page client closes.
    pub fn disconnect(&mut self, now: Millis, conn: ConnectionId) {
        self.pair.advance_to(now);
        self.pair.disconnect(conn);
        self.page.retain(|c| *c != conn);
        self.hear();
    }

    /// Frames the room has sent to `conn` since the last call, oldest first.
    pub fn take_frames(&mut self, conn: ConnectionId) -> Vec<String> {
        self.pair
            .take(conn)
            .iter()
            .map(protocol::ServerAction::to_json)
            .collect()
    }

    /// Runs every fake user's actions (and the room's own work) due up to `now`.
    pub fn advance(&mut self, now: Millis) {
        loop {
            self.hear();
            let call_due = (0..self.bots.len())
                .filter_map(|i| Some((i, self.bots[i].calls.due()?)))
                .filter(|&(_, at)| at <= now)
                .min_by_key(|&(_, at)| at);
            let act_due = (0..self.bots.len())
                .filter(|&i| self.bots[i].next_at <= now)
                .min_by_key(|&i| self.bots[i].next_at);
            let next_act = act_due.map(|j| self.bots[j].next_at);
            if let Some(at) = self.moderation.as_ref().map(Moderation::due)
                && at <= now
                && next_act.is_none_or(|next| at <= next)
                && call_due.is_none_or(|(_, call)| at <= call)
            {
                self.pair.advance_to(at);
                self.moderation_step(at);
                continue;
            }
            if let Some((i, at)) = call_due
                && act_due.is_none_or(|j| at <= self.bots[j].next_at)
            {
                self.pair.advance_to(at);
                self.bot_call_step(i, at);
                continue;
            }
            let Some(i) = act_due else { break };
            let at = self.bots[i].next_at;
            self.pair.advance_to(at);
            let typed = self.bot_act(i);
            // Someone who starts typing posts a little later; anyone else acts again within
            // seconds.
            let wait = if typed {
                self.rng.random_range(1_500..4_000)
            } else {
                self.rng.random_range(1_500..9_000)
            };
            self.bots[i].next_at = at + wait;
        }
        self.pair.advance_to(now);
        self.hear();
    }

    /// When the next fake user acts: a caller can sleep until then.
    pub fn next_event_at(&self) -> Option<Millis> {
        let bots = self.bots.iter().map(|b| b.next_at).min();
        let calls = self.bots.iter().filter_map(|b| b.calls.due()).min();
        let moderation = self.moderation.as_ref().map(Moderation::due);
        bots.into_iter()
            .chain(calls)
            .chain(moderation)
            .chain(self.pair.next_wakeup())
            .min()
    }

    /// What the page must do for fake users' calls since the last call, oldest first.
    pub fn take_bot_media(&mut self) -> Vec<BotMedia> {
        std::mem::take(&mut self.media)
    }

    /// Fake user `bot`'s media made an offer, an answer or an ICE candidate: it goes to the
    /// other side of its call.
    pub fn bot_signal(&mut self, now: Millis, bot: usize, kind: protocol::CallKind, data: String) {
        let Some(peer) = self.bots.get(bot).map(|b| b.peer) else {
            return;
        };
        self.pair.advance_to(now);
        self.pair.session_mut(peer).send_call_signal(kind, data);
        self.pair.run();
        self.hear();
    }

    /// Fake users take in what happened to them: the calls that ring them, are answered,
    /// carry signals or end. (Everything else their sessions report is of no use to them.)
    fn hear(&mut self) {
        use protocol::session::{CallEvent, Event};
        for i in 0..self.bots.len() {
            let peer = self.bots[i].peer;
            let now = self.pair.now;
            while let Some(event) = self.pair.session_mut(peer).poll_event() {
                let Event::Call(event) = event else { continue };
                let name = self.pair.session(peer).my_name().unwrap_or("").to_owned();
                let from_fake = self
                    .pair
                    .session(peer)
                    .call()
                    .is_some_and(|c| self.is_fake(&c.peer));
                let bots = &mut self.bots[i].calls;
                match event {
                    CallEvent::Incoming if from_fake => {
                        self.pair.session_mut(peer).decline_call(now);
                    }
                    CallEvent::Incoming => {
                        bots.answer_at = Some(now + self.rng.random_range(1_500..3_500));
                    }
                    CallEvent::Accepted => {
                        bots.hang_up_at = Some(now + self.rng.random_range(60_000..120_000));
                        self.media.push(BotMedia::MakeOffer { bot: i, name });
                    }
                    CallEvent::Signal(protocol::CallKind::Offer, sdp) => {
                        self.media.push(BotMedia::Offer { bot: i, name, sdp });
                    }
                    CallEvent::Signal(protocol::CallKind::Answer, sdp) => {
                        self.media.push(BotMedia::Answer { bot: i, sdp });
                    }
                    CallEvent::Signal(_, candidate) => {
                        self.media.push(BotMedia::Ice { bot: i, candidate });
                    }
                    CallEvent::Ended => {
                        bots.answer_at = None;
                        bots.hang_up_at = None;
                        self.pair.session_mut(peer).dismiss_call();
                        self.media.push(BotMedia::Ended { bot: i });
                    }
                }
            }
        }
        self.pair.run();
    }

    /// A call timer of fake user `i` is due at `at`: it answers, hangs up, or calls.
    fn bot_call_step(&mut self, i: usize, at: Millis) {
        let peer = self.bots[i].peer;
        let calls = &mut self.bots[i].calls;
        if calls.answer_at.is_some_and(|t| t <= at) {
            calls.answer_at = None;
            calls.hang_up_at = Some(at + self.rng.random_range(60_000..120_000));
            self.pair.session_mut(peer).accept_call(at, true);
        } else if calls.hang_up_at.is_some_and(|t| t <= at) {
            calls.hang_up_at = None;
            self.pair.session_mut(peer).hang_up(at);
        } else if let Some((_, user)) = calls.ring_at.take() {
            calls.rang = true;
            // Not online, or in a call: it does not ring (start_call says why; nobody needs
            // to hear it).
            let _rings = self.pair.session_mut(peer).start_call(at, &user, true);
        }
        self.pair.run();
        self.hear();
    }

    /// The spammer posts, or the moderator removes the spam it finds (a little later; when it
    /// is not connected, again in a while).
    fn moderation_step(&mut self, at: Millis) {
        let Some(moderation) = self.moderation.as_mut() else {
            return;
        };
        let (moderator, spammer) = (
            self.bots[moderation.moderator].peer,
            self.bots[moderation.spammer].peer,
        );
        if moderation.remove_at.is_some_and(|t| t <= at) {
            let spammer_id = self
                .pair
                .session(spammer)
                .identity()
                .map(|identity| identity.user_id.clone());
            let spam = self
                .pair
                .stored
                .iter()
                .rev()
                .find(|m| {
                    !m.deleted
                        && Some(&m.user_id) == spammer_id.as_ref()
                        && script::SPAM.contains(&m.raw.as_str())
                })
                .map(|m| m.seq);
            moderation.remove_at = match spam {
                Some(_) if !self.pair.is_connected(moderator) => {
                    Some(at + moderation.rng.random_range(10_000..30_000))
                }
                Some(seq) => {
                    self.pair.session_mut(moderator).delete_message(at, seq);
                    None
                }
                None => None,
            };
        } else {
            let text = script::SPAM[moderation.rng.random_range(0..script::SPAM.len())];
            moderation.spam_at = at + moderation.rng.random_range(180_000..360_000);
            if self.pair.is_connected(spammer) {
                let _nonce = self
                    .pair
                    .session_mut(spammer)
                    .send_message_to(at, text, None, None);
                moderation.remove_at = Some(at + moderation.rng.random_range(4_000..15_000));
            }
        }
        self.pair.run();
        self.hear();
    }

    /// The name of someone online other than this fake user, picked by the room's seed.
    fn someone_else(&mut self, peer: PeerId) -> Option<String> {
        let session = self.pair.session(peer);
        let others: Vec<String> = session
            .online()
            .iter()
            .filter(|u| !session.is_me(u))
            .filter_map(|u| session.names().get(u).map(str::to_owned))
            .collect();
        (!others.is_empty()).then(|| others[self.rng.random_range(0..others.len())].clone())
    }

    /// Whether `user` is one of this room's fake users.
    fn is_fake(&self, user: &str) -> bool {
        self.bots.iter().any(|b| {
            self.pair
                .session(b.peer)
                .identity()
                .is_some_and(|identity| identity.user_id == user)
        })
    }

    /// The id of someone online other than this fake user who can read direct messages (a
    /// client of ours: every fake user, and the page), picked by the room's seed.
    fn someone_else_id(&mut self, peer: PeerId) -> Option<protocol::UserId> {
        let session = self.pair.session(peer);
        let others: Vec<protocol::UserId> = session
            .online()
            .iter()
            .filter(|u| !session.is_me(u))
            .cloned()
            .collect();
        (!others.is_empty()).then(|| others[self.rng.random_range(0..others.len())].clone())
    }

    /// One action of fake user `i`; true if it started typing (and posts next time).
    fn bot_act(&mut self, i: usize) -> bool {
        let peer = self.bots[i].peer;
        if !self.pair.is_connected(peer) {
            self.pair.open_session(peer);
            return false;
        }
        let now = self.pair.now;
        // A change the room would not take (a reaction to a message deleted meanwhile, say):
        // a fake user lets it go, as a person would dismiss it.
        let given_up: Vec<String> = self
            .pair
            .session(peer)
            .changes()
            .iter()
            .filter(|c| c.delivery != Delivery::Pending)
            .map(|c| c.nonce.clone())
            .collect();
        for nonce in given_up {
            self.pair.session_mut(peer).dismiss_change(&nonce);
        }
        if let Some(Draft { text, reply_to, to }) = self.bots[i].draft.take() {
            // Every scripted message fits the room: a refusal would only be a bug.
            let _nonce = self
                .pair
                .session_mut(peer)
                .send_message_to(now, &text, reply_to, to);
            self.pair.run();
            return false;
        }
        // Written to directly: it answers, directly (typed first, as any message).
        let me = self
            .pair
            .session(peer)
            .identity()
            .map(|identity| identity.user_id.clone());
        let unanswered = self
            .pair
            .stored
            .iter()
            .rev()
            .find(|m| m.to.is_some() && m.to == me)
            .filter(|m| self.bots[i].answered.is_none_or(|seq| m.seq > seq))
            .map(|m| (m.seq, m.user_id.clone()))
            // Fake users answer people, not each other (two would answer each other forever).
            .filter(|(_, from)| !self.is_fake(from));
        if let Some((seq, from)) = unanswered {
            self.bots[i].answered = Some(seq);
            // Someone who writes to a fake user is called back, once, a little later.
            let calls = &mut self.bots[i].calls;
            if !calls.rang && calls.ring_at.is_none() {
                let at = now + self.rng.random_range(20_000..40_000);
                calls.ring_at = Some((at, from.clone()));
            }
            let text = script::DIRECT[self.rng.random_range(0..script::DIRECT.len())];
            self.bots[i].draft = Some(Draft {
                text: text.to_owned(),
                reply_to: None,
                to: Some(from.clone()),
            });
            self.pair.session_mut(peer).note_typing_to(now, Some(from));
            self.pair.run();
            return true;
        }
        let last = self.pair.session(peer).last_own_message();
        let heard = self.pair.session(peer).last_arrived();
        // In a call a fake user neither leaves nor renames itself.
        let roll = match self.rng.random_range(0..100) {
            75.. if self.pair.session(peer).in_call() => 67,
            roll => roll,
        };
        match roll {
            0..=60 => {
                let text = script::MESSAGES[self.rng.random_range(0..script::MESSAGES.len())];
                // Now and then an answer to the latest message from someone else (yours too).
                let reply_to = heard.filter(|_| self.rng.random_range(0..5) == 0);
                // Now and then someone online is named (you too).
                let text = match self.rng.random_range(0..6) {
                    0 => self
                        .someone_else(peer)
                        .map_or_else(|| text.to_owned(), |name| format!("@{name} {text}")),
                    _ => text.to_owned(),
                };
                // Now and then to someone online directly (you too), not to the room.
                let to = (self.rng.random_range(0..8) == 0)
                    .then(|| self.someone_else_id(peer))
                    .flatten();
                let (text, reply_to) = match &to {
                    Some(_) => {
                        let direct = script::DIRECT[self.rng.random_range(0..script::DIRECT.len())];
                        (direct.to_owned(), None)
                    }
                    None => (text, reply_to),
                };
                // Typed first, posted at the next turn.
                self.pair.session_mut(peer).note_typing_to(now, to.clone());
                self.bots[i].draft = Some(Draft { text, reply_to, to });
                self.pair.run();
                return true;
            }
            // A reaction to the latest message from someone else (yours too).
            61..=66 => {
                let emoji = script::REACTIONS[self.rng.random_range(0..script::REACTIONS.len())];
                if let Some(seq) = heard {
                    self.pair.session_mut(peer).react(now, seq, emoji, true);
                }
            }
            // Now and then a typo is fixed, or a message taken back.
            67..=71 if last.is_some() => {
                let text = script::EDITS[self.rng.random_range(0..script::EDITS.len())];
                if let Some(seq) = last {
                    let _fits = self.pair.session_mut(peer).edit_message(now, seq, text);
                }
            }
            72..=74 if last.is_some() => {
                if let Some(seq) = last {
                    self.pair.session_mut(peer).delete_message(now, seq);
                }
            }
            67..=74 => {}
            75..=84 => {
                let suffix = script::SUFFIXES[self.rng.random_range(0..script::SUFFIXES.len())];
                let name = format!("{}{suffix}", self.bots[i].name);
                self.pair.session_mut(peer).set_wanted_name(now, Some(name));
            }
            _ => self.pair.drop_session(peer),
        }
        self.pair.run();
        false
    }
}

#[cfg(test)]
mod tests;
