//! Decoding frames into actions, with an error that says which part was wrong.
//!
//! serde's adjacently tagged enums report every failure as one opaque message; a client deserves
//! to know whether its JSON, its `type` or its payload was at fault, so we look at the envelope
//! first and only then decode the payload.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{DecodeError, Result};
use crate::wire::{ClientAction, ServerAction};

const CLIENT_TYPES: &[&str] = &[
    "MESSAGE",
    "NAME_CHANGE",
    "HANDSHAKE_USER_INFO",
    "HISTORY_REQUEST",
];

const SERVER_TYPES: &[&str] = &[
    "HANDSHAKE",
    "USER_INFO",
    "MESSAGE",
    "NAME_CHANGE",
    "USER_CONNECTED",
    "USER_DISCONNECTED",
    "RESUME",
    "HISTORY",
    "ERROR",
];

/// Decodes one frame a client sent.
pub fn decode_client(text: &str) -> Result<ClientAction> {
    decode(text, CLIENT_TYPES)
}

/// Decodes one frame a server sent. Unknown types are an error here too; a client ignores them.
pub fn decode_server(text: &str) -> Result<ServerAction> {
    decode(text, SERVER_TYPES)
}

fn decode<T: DeserializeOwned>(text: &str, known: &[&str]) -> Result<T> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(DecodeError::InvalidJson("expected an object".into()));
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(other) => return Err(DecodeError::UnknownType(other.to_string())),
        None => return Err(DecodeError::UnknownType(String::new())),
    };
    if !known.contains(&kind.as_str()) {
        return Err(DecodeError::UnknownType(kind));
    }
    // Only the envelope's two fields are read; anything else (a legacy `wsAddress`) is dropped.
    let payload = object.remove("payload").unwrap_or(Value::Null);
    // Every payload is an object. serde would also read a struct from a JSON array (by field
    // position), which no client means to send.
    if payload.is_array() {
        return Err(DecodeError::InvalidPayload {
            kind,
            detail: "the payload must be an object".into(),
        });
    }
    let envelope = Value::Object(
        [
            ("type".to_owned(), Value::String(kind.clone())),
            ("payload".to_owned(), payload),
        ]
        .into_iter()
        .collect(),
    );
    serde_json::from_value(envelope).map_err(|e| DecodeError::InvalidPayload {
        kind,
        detail: e.to_string(),
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
