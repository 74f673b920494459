//! What the page and the Web Worker that runs the demo's rooms say to each other: JSON text
//! over `postMessage`, the way a room server's frames go over a socket. The page's mock
//! transport speaks the [`ToWorker`] side; the worker (`mock-worker`) the [`FromWorker`] side.
//! Frames inside are the rooms' own (`protocol`'s wire actions), passed through untouched.

use protocol::CallKind;
use serde::{Deserialize, Serialize};

use crate::BotMedia;

/// From the page to the worker. (Externally tagged, `{"connect":{...}}`: an internally tagged
/// enum buffers every message to find its tag, which cost the client some 10 KB of code.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToWorker {
    /// First of all: how the rooms run. `started_wall` is the page's wall clock (ms) when it
    /// started; simulated time runs from there at `speed` simulated ms per real ms.
    #[serde(rename_all = "camelCase")]
    Start {
        seed: u64,
        speed: f64,
        started_wall: f64,
    },
    /// The page opens connection `conn` (its own number) to room `room`.
    Connect { conn: u64, room: String },
    /// A text frame on connection `conn`.
    Send { conn: u64, frame: String },
    /// The page closed connection `conn`.
    Close { conn: u64 },
    /// The page's people are moderators in every room (`on`), or members again: the demo's
    /// setting, for trying the moderation controls.
    Moderators { on: bool },
    /// Fake user `bot`'s media in the page made a call signal.
    BotSignal {
        room: String,
        bot: usize,
        kind: CallKind,
        data: String,
    },
}

/// From the worker to the page (externally tagged, as [`ToWorker`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FromWorker {
    /// The worker listens: the page may send.
    Ready,
    /// Connection `conn` is open.
    Opened { conn: u64 },
    /// Frames of the room for connection `conn`, oldest first.
    Frames { conn: u64, frames: Vec<String> },
    /// The page's side of a fake user's call in room `room`.
    Media { room: String, item: BotMedia },
}

impl ToWorker {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A message of the page, or `None` if it is not one.
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

impl FromWorker {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A message of the worker, or `None` if it is not one.
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A stable hash of a room name, to give each mock room its own sequence from one seed.
pub fn room_seed(seed: u64, name: &str) -> u64 {
    seed ^ name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_travel_as_json_unchanged() {
        let to = [
            ToWorker::Start {
                seed: 7,
                speed: 2.5,
                started_wall: 1_700_000_000_000.0,
            },
            ToWorker::Connect {
                conn: 1,
                room: "Lobby".into(),
            },
            ToWorker::Send {
                conn: 1,
                frame: r#"{"type":"MESSAGE"}"#.into(),
            },
            ToWorker::Close { conn: 1 },
            ToWorker::Moderators { on: true },
            ToWorker::BotSignal {
                room: "Lobby".into(),
                bot: 2,
                kind: CallKind::Answer,
                data: "v=0".into(),
            },
        ];
        for message in to {
            assert_eq!(ToWorker::from_json(&message.to_json()), Some(message));
        }
        let from = [
            FromWorker::Ready,
            FromWorker::Opened { conn: 3 },
            FromWorker::Frames {
                conn: 3,
                frames: vec!["a".into(), "b".into()],
            },
            FromWorker::Media {
                room: "Lobby".into(),
                item: BotMedia::Ice {
                    bot: 1,
                    candidate: "c".into(),
                },
            },
        ];
        for message in from {
            assert_eq!(FromWorker::from_json(&message.to_json()), Some(message));
        }
        assert_eq!(ToWorker::from_json("{\"nonsense\":{}}"), None);
    }
}
