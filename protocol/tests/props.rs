//! Property tests: no input, however odd, panics the decoder or the room, and the room's
//! invariants hold under any sequence of inputs.

use proptest::prelude::*;
use protocol::{
    ConnectionId, Effect, Room, RoomConfig, RoomSnapshot, ServerAction, decode_client,
    decode_server,
};

/// JSON-ish text built from the protocol's own vocabulary, so the generator reaches deep into
/// payload decoding instead of failing at the first brace.
fn frame() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("MESSAGE".to_owned()),
        Just("NAME_CHANGE".to_owned()),
        Just("HANDSHAKE_USER_INFO".to_owned()),
        Just("HISTORY_REQUEST".to_owned()),
        Just("EDIT_MESSAGE".to_owned()),
        Just("DELETE_MESSAGE".to_owned()),
        Just("REACT".to_owned()),
        Just("TYPING".to_owned()),
        Just("HANDSHAKE".to_owned()),
        Just("SET_ROLE".to_owned()),
        Just("MODERATE".to_owned()),
        Just("SET_ROOM".to_owned()),
        Just("REPORT".to_owned()),
        Just("RESOLVE_REPORT".to_owned()),
        Just("AUDIT_REQUEST".to_owned()),
        "[A-Z_]{0,12}",
    ];
    let value = prop_oneof![
        Just("null".to_owned()),
        // Small numbers: seqs that exist (edit and delete targets).
        (0u8..6).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        ".{0,40}".prop_map(|s| serde_json::Value::String(s).to_string()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("true".to_owned()),
        Just("\"🎉\"".to_owned()),
        // The people the room starts with (an owner, a member) and their tokens, and the
        // moderation vocabulary, so that moderation goes past its first checks.
        Just("\"olga\"".to_owned()),
        Just("\"olga-token\"".to_owned()),
        Just("\"mia\"".to_owned()),
        Just("\"mia-token\"".to_owned()),
        Just("\"moderator\"".to_owned()),
        Just("\"owner\"".to_owned()),
        Just("\"ban\"".to_owned()),
        Just("\"unban\"".to_owned()),
        Just("\"timeOut\"".to_owned()),
        Just("\"endTimeOut\"".to_owned()),
        Just("\"kick\"".to_owned()),
        Just(r#"{"topic":"t","slowModeSeconds":10}"#.to_owned()),
    ];
    let field = prop_oneof![
        Just("rawMessage".to_owned()),
        Just("name".to_owned()),
        Just("userId".to_owned()),
        Just("nonce".to_owned()),
        Just("token".to_owned()),
        Just("since".to_owned()),
        Just("before".to_owned()),
        Just("limit".to_owned()),
        Just("target".to_owned()),
        Just("emoji".to_owned()),
        Just("on".to_owned()),
        Just("replyTo".to_owned()),
        Just("protocolVersion".to_owned()),
        Just("kind".to_owned()),
        Just("role".to_owned()),
        Just("minutes".to_owned()),
        Just("reason".to_owned()),
        Just("address".to_owned()),
        Just("report".to_owned()),
        Just("settings".to_owned()),
        "[a-z]{1,6}",
    ];
    let fields = prop::collection::vec((field, value), 0..5).prop_map(|fields| {
        let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", inner.join(","))
    });
    prop_oneof![
        (kind, fields).prop_map(|(k, p)| format!(r#"{{"type":"{k}","payload":{p}}}"#)),
        ".{0,60}",
    ]
}

#[derive(Debug, Clone)]
enum Input {
    Connect(u8),
    Disconnect(u8),
    Frame(u8, String),
    Tick(u16),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        1 => (0u8..4).prop_map(Input::Connect),
        1 => (0u8..4).prop_map(Input::Disconnect),
        6 => (0u8..4, frame()).prop_map(|(c, f)| Input::Frame(c, f)),
        1 => any::<u16>().prop_map(Input::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_client(&text);
        let _ = decode_server(&text);
    }

    #[test]
    fn decoders_never_panic_on_near_miss_frames(text in frame()) {
        let _ = decode_client(&text);
        let _ = decode_server(&text);
    }

    #[test]
    fn the_room_never_panics_and_keeps_its_invariants(inputs in prop::collection::vec(input(), 1..80)) {
        let person = |id: &str, role| protocol::UserRecord {
            id: id.to_owned(),
            name: id.to_owned(),
            token_hash: protocol::hash_token(&format!("{id}-token")),
            joined_at: Some(1),
            last_seen: None,
            role,
            timed_out_until: None,
            ban: None,
        };
        let snapshot = RoomSnapshot {
            users: vec![person("olga", Some(protocol::Role::Owner)), person("mia", None)],
            ..RoomSnapshot::default()
        };
        let mut room = Room::new(RoomConfig::default(), snapshot, [9; 32]);
        let mut now = 1_000_000i64;
        let mut last_persisted = 0u64;
        let mut last_broadcast = 0u64;
        for input in inputs {
            match input {
                Input::Connect(c) => room.handle_connect(now, ConnectionId(c.into())),
                Input::Disconnect(c) => room.handle_disconnect(now, ConnectionId(c.into())),
                Input::Frame(c, text) => room.handle_frame(now, ConnectionId(c.into()), &text),
                Input::Tick(ms) => now += i64::from(ms),
            }
            while let Some(effect) = room.poll_effect() {
                match effect {
                    // The host's log numbers events; the engine asks for them unnumbered.
                    Effect::PersistMessage(m) => {
                        prop_assert_eq!(m.seq, 0, "the host numbers events");
                        last_persisted += 1;
                        prop_assert!(!m.raw.trim().is_empty());
                        room.handle_persisted(now, last_persisted);
                    }
                    Effect::PersistChange(c) => {
                        prop_assert_eq!(c.seq, 0, "the host numbers events");
                        prop_assert!(c.target <= last_persisted, "a change follows its message");
                        last_persisted += 1;
                        room.handle_persisted(now, last_persisted);
                    }
                    Effect::PersistAudit(e) => {
                        prop_assert_eq!(e.seq, 0, "the host numbers events");
                        last_persisted += 1;
                        room.handle_persisted(now, last_persisted);
                    }
                    Effect::Broadcast(ServerAction::Message(m)) => {
                        let seq = m.seq.unwrap_or(0);
                        prop_assert!(seq > last_broadcast, "broadcast out of order");
                        last_broadcast = seq;
                    }
                    Effect::Send { action, .. }
                    | Effect::Multicast { action, .. }
                    | Effect::Broadcast(action) => {
                        // Every frame a client receives has an object payload.
                        let json: serde_json::Value = serde_json::from_str(&action.to_json()).unwrap();
                        prop_assert!(json["payload"].is_object());
                    }
                    Effect::PersistUser(_)
                    | Effect::Close { .. }
                    | Effect::PersistRole { .. }
                    | Effect::PersistSettings { .. }
                    | Effect::LoadHistory { .. }
                    | Effect::LoadConversations { .. }
                    | Effect::Search(_)
                    | Effect::Relay(_) => {}
                }
            }
        }
    }
}
