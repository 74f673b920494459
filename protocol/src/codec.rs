//! Decoding frames into actions, with an error that says which part was wrong.
//!
//! serde's adjacently tagged enums report every failure as one opaque message; a client deserves
//! to know whether its JSON, its `type` or its payload was at fault, so we look at the envelope
//! first and only then decode the payload.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{DecodeError, Result};
use crate::wire::{ClientAction, ServerAction};

/// The envelope, read without building a tree: `type` and `payload` stay text until we know
/// which type to read the payload as. (Reading through `serde_json::Value` instead costs a
/// second copy of every payload's decoder in the browser client, and a tree per frame on the
/// server.)
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

/// A frame's envelope: its type (a string) and its payload (JSON text, `null` if absent).
fn envelope(text: &str) -> Result<(String, &str)> {
    // A derived struct would also take an array, field by position.
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError::InvalidJson("expected an object".into()));
    }
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let kind = match envelope.kind {
        Some(raw) => serde_json::from_str::<String>(raw.get())
            .map_err(|_| DecodeError::UnknownType(raw.get().to_owned()))?,
        None => return Err(DecodeError::UnknownType(String::new())),
    };
    Ok((kind, envelope.payload.map_or("null", RawValue::get)))
}

/// The payload as `T`; it must be an object (an array would fill a struct by position).
fn payload<T: DeserializeOwned>(kind: &str, raw: &str) -> Result<T> {
    let invalid = |detail: String| DecodeError::InvalidPayload {
        kind: kind.to_owned(),
        detail,
    };
    if raw.trim_start().starts_with('[') {
        return Err(invalid("the payload must be an object".into()));
    }
    serde_json::from_str(raw).map_err(|e| invalid(e.to_string()))
}

/// Decodes a frame a client sent.
pub fn decode_client(text: &str) -> Result<ClientAction> {
    let (kind, raw) = envelope(text)?;
    Ok(match kind.as_str() {
        "MESSAGE" => ClientAction::Message(payload(&kind, raw)?),
        "NAME_CHANGE" => ClientAction::NameChange(payload(&kind, raw)?),
        "HANDSHAKE_USER_INFO" => ClientAction::HandshakeUserInfo(payload(&kind, raw)?),
        "HISTORY_REQUEST" => ClientAction::HistoryRequest(payload(&kind, raw)?),
        "SET_ROLE" => ClientAction::SetRole(payload(&kind, raw)?),
        "MODERATE" => ClientAction::Moderate(payload(&kind, raw)?),
        "SET_ROOM" => ClientAction::SetRoom(payload(&kind, raw)?),
        "REPORT" => ClientAction::Report(payload(&kind, raw)?),
        "RESOLVE_REPORT" => ClientAction::ResolveReport(payload(&kind, raw)?),
        "AUDIT_REQUEST" => ClientAction::AuditRequest(payload(&kind, raw)?),
        "PEOPLE_REQUEST" => ClientAction::PeopleRequest(payload(&kind, raw)?),
        "SEARCH" => ClientAction::Search(payload(&kind, raw)?),
        "CALL" => ClientAction::Call(payload(&kind, raw)?),
        "EDIT_MESSAGE" => ClientAction::EditMessage(payload(&kind, raw)?),
        "DELETE_MESSAGE" => ClientAction::DeleteMessage(payload(&kind, raw)?),
        "REACT" => ClientAction::React(payload(&kind, raw)?),
        "TYPING" => ClientAction::Typing(payload(&kind, raw)?),
        _ => return Err(DecodeError::UnknownType(kind)),
    })
}

/// Decodes a frame a server sent.
pub fn decode_server(text: &str) -> Result<ServerAction> {
    let (kind, raw) = envelope(text)?;
    Ok(match kind.as_str() {
        "HANDSHAKE" => ServerAction::Handshake(payload(&kind, raw)?),
        "USER_INFO" => ServerAction::UserInfo(payload(&kind, raw)?),
        "MESSAGE" => ServerAction::Message(payload(&kind, raw)?),
        "NAME_CHANGE" => ServerAction::NameChange(payload(&kind, raw)?),
        "USER_CONNECTED" => ServerAction::UserConnected(payload(&kind, raw)?),
        "USER_DISCONNECTED" => ServerAction::UserDisconnected(payload(&kind, raw)?),
        "PRESENCE" => ServerAction::Presence(payload(&kind, raw)?),
        "RESUME" => ServerAction::Resume(payload(&kind, raw)?),
        "HISTORY" => ServerAction::History(payload(&kind, raw)?),
        "SEARCH_RESULTS" => ServerAction::SearchResults(payload(&kind, raw)?),
        "CONVERSATIONS" => ServerAction::Conversations(payload(&kind, raw)?),
        "PEOPLE" => ServerAction::People(payload(&kind, raw)?),
        "ROLE" => ServerAction::Role(payload(&kind, raw)?),
        "MODERATED" => ServerAction::Moderated(payload(&kind, raw)?),
        "ROOM" => ServerAction::Room(payload(&kind, raw)?),
        "AUDIT" => ServerAction::Audit(payload(&kind, raw)?),
        "CALL" => ServerAction::Call(payload(&kind, raw)?),
        "ERROR" => ServerAction::Error(payload(&kind, raw)?),
        "MESSAGE_CHANGED" => ServerAction::MessageChanged(payload(&kind, raw)?),
        "TYPING" => ServerAction::Typing(payload(&kind, raw)?),
        _ => return Err(DecodeError::UnknownType(kind)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn each_failure_has_its_own_code() {
        let code = |text: &str| decode_client(text).map(|_| ()).map_err(|e| e.code());
        assert_eq!(code("not json"), Err(ErrorCode::InvalidJson));
        assert_eq!(code("[1,2]"), Err(ErrorCode::InvalidJson));
        assert_eq!(code(r#"{"payload":{}}"#), Err(ErrorCode::UnknownType));
        assert_eq!(code(r#"{"type":7}"#), Err(ErrorCode::UnknownType));
        assert_eq!(
            code(r#"{"type":"HACK","payload":{}}"#),
            Err(ErrorCode::UnknownType)
        );
        assert_eq!(
            code(r#"{"type":"MESSAGE"}"#),
            Err(ErrorCode::InvalidPayload)
        );
        assert_eq!(
            code(r#"{"type":"MESSAGE","payload":{"rawMessage":5}}"#),
            Err(ErrorCode::InvalidPayload)
        );
        assert_eq!(
            code(r#"{"type":"HISTORY_REQUEST","payload":{"before":-1,"limit":5}}"#),
            Err(ErrorCode::InvalidPayload)
        );
        assert_eq!(
            code(r#"{"type":"MESSAGE","payload":["hi"]}"#),
            Err(ErrorCode::InvalidPayload)
        );
        assert_eq!(
            code(r#"{"type":"HISTORY_REQUEST","payload":[5,10]}"#),
            Err(ErrorCode::InvalidPayload)
        );
        assert_eq!(
            code(r#"{"type":"MESSAGE","payload":{"rawMessage":"hi"}}"#),
            Ok(())
        );
    }

    #[test]
    fn extra_envelope_and_payload_fields_are_ignored() {
        let action = decode_client(
            r#"{"type":"NAME_CHANGE","payload":{"name":"Ann","wsAddress":"ws://x"},"meta":1}"#,
        );
        assert!(matches!(action, Ok(ClientAction::NameChange(c)) if c.name == "Ann"));
    }
}
