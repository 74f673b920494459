//! Every example of `../shared/LEGACY-PROTOCOL.md` decodes into our types and encodes back to
//! the same JSON, so a legacy client cannot tell our server from the original.

use protocol::{
    ClientAction, ConnectionId, Effect, HandshakeUserInfo, Room, RoomConfig, RoomSnapshot,
    ServerAction, decode_client, decode_server,
};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("test JSON")
}

/// Decodes a server example and checks it encodes to the very same bytes.
fn server_round_trip(text: &str) -> ServerAction {
    let action = decode_server(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(action.to_json(), text);
    action
}

fn client_round_trip(text: &str) -> ClientAction {
    let action = decode_client(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(action.to_json(), text);
    action
}

#[test]
fn handshake() {
    let text = r#"{"type":"HANDSHAKE","payload":{"serverName":"General","messages":[{"rawMessage":"hi *there*","htmlMessage":"<p>hi <em>there</em></p>\n","timestamp":1502699195143,"userId":"598e0f2d6d1f2a3b4c5d6e7f"}],"userNames":{"598e0f2d6d1f2a3b4c5d6e7f":"Ann"}}}"#;
    let ServerAction::Handshake(hs) = server_round_trip(text) else {
        panic!()
    };
    assert_eq!(hs.server_name, "General");
    assert_eq!(hs.messages[0].timestamp, 1_502_699_195_143);
    assert_eq!(hs.protocol_version, None);
}

#[test]
fn handshake_user_info_new_and_returning() {
    // `userId: undefined` disappears in JSON.stringify: a first-time user sends an empty payload.
    let new = client_round_trip(r#"{"type":"HANDSHAKE_USER_INFO","payload":{}}"#);
    assert_eq!(
        new,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo::default())
    );
    let back = client_round_trip(r#"{"type":"HANDSHAKE_USER_INFO","payload":{"userId":"u1"}}"#);
    assert!(
        matches!(back, ClientAction::HandshakeUserInfo(i) if i.user_id.as_deref() == Some("u1"))
    );
}

#[test]
fn user_info_name_change_and_user_connected() {
    server_round_trip(r#"{"type":"USER_INFO","payload":{"userId":"u1","name":"Anonymous"}}"#);
    let ServerAction::NameChange(change) = server_round_trip(
        r#"{"type":"NAME_CHANGE","payload":{"userId":"u1","name":"Bob","idNamePair":{"u1":"Bob"}}}"#,
    ) else {
        panic!()
    };
    assert_eq!(
        change,
        protocol::NameChanged::new("u1".into(), "Bob".into())
    );
    server_round_trip(r#"{"type":"USER_CONNECTED","payload":{"userId":"u1"}}"#);
}

#[test]
fn client_message_and_name_change() {
    let message =
        client_round_trip(r#"{"type":"MESSAGE","payload":{"rawMessage":"**hey**","userId":"u1"}}"#);
    assert!(matches!(message, ClientAction::Message(m) if m.raw_message == "**hey**"));
    client_round_trip(r#"{"type":"NAME_CHANGE","payload":{"name":"Bob","userId":"u1"}}"#);
}

#[test]
fn server_message_in_the_documented_field_order_decodes_to_the_same_json() {
    let text = r#"{"type":"MESSAGE","payload":{"htmlMessage":"<p>...</p>","rawMessage":"...","userId":"u1","timestamp":1502699195143}}"#;
    let action = decode_server(text).expect("decodes");
    assert_eq!(json(&action.to_json()), json(text));
}

/// Drives a room the way the legacy client does and checks every frame it would receive is an
/// object payload of the documented shape (our extra fields are allowed, theirs must be there).
#[test]
fn a_legacy_session_against_the_engine() {
    let mut room = Room::new(RoomConfig::default(), RoomSnapshot::default(), [3; 32]);
    let conn = ConnectionId(1);
    room.handle_connect(1, conn);
    room.handle_frame(2, conn, r#"{"type":"HANDSHAKE_USER_INFO","payload":{}}"#);
    let mut frames = Vec::new();
    let drive = |room: &mut Room, frames: &mut Vec<Value>| {
        while let Some(effect) = room.poll_effect() {
            match effect {
                Effect::Send { action, .. }
                | Effect::Multicast { action, .. }
                | Effect::Broadcast(action) => frames.push(json(&action.to_json())),
                Effect::PersistMessage(m) => room.handle_persisted(3, m.seq),
                _ => {}
            }
        }
    };
    drive(&mut room, &mut frames);
    let user_id = frames[2]["payload"]["userId"]
        .as_str()
        .expect("USER_INFO")
        .to_owned();
    room.handle_frame(
        4,
        conn,
        &format!(r#"{{"type":"MESSAGE","payload":{{"rawMessage":"*hi*","userId":"{user_id}"}}}}"#),
    );
    drive(&mut room, &mut frames);
    room.handle_frame(
        5,
        conn,
        &format!(r#"{{"type":"NAME_CHANGE","payload":{{"name":"Ann","userId":"{user_id}"}}}}"#),
    );
    drive(&mut room, &mut frames);

    let types: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "HANDSHAKE",
            "NAME_CHANGE",
            "USER_INFO",
            "USER_CONNECTED",
            // Ours (who came online, by tick): a legacy reducer ignores a type it does not know.
            "PRESENCE",
            "MESSAGE",
            "NAME_CHANGE"
        ]
    );
    for frame in &frames {
        assert!(
            frame["payload"].is_object(),
            "payload must be an object: {frame}"
        );
    }
    let hs = &frames[0]["payload"];
    assert!(
        hs["serverName"].is_string() && hs["messages"].is_array() && hs["userNames"].is_object()
    );
    assert_eq!(frames[1]["payload"]["name"], "Anonymous");
    assert_eq!(frames[1]["payload"]["idNamePair"][&user_id], "Anonymous");
    let message = &frames[5]["payload"];
    assert_eq!(message["rawMessage"], "*hi*");
    assert_eq!(message["htmlMessage"], "<p><em>hi</em></p>\n");
    assert_eq!(message["userId"], user_id.as_str());
    assert_eq!(message["timestamp"], 4);
    assert_eq!(frames[6]["payload"]["idNamePair"][&user_id], "Ann");
}
