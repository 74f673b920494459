//! The one check of a message's text: made by the room on every message and edit it is sent,
//! and by the client session before it sends one (so the person hears of it at once).

/// Why a message's text does not fit a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextProblem {
    /// Nothing but white space.
    #[error("the message is empty")]
    Blank,
    /// More characters than the room takes (its limit).
    #[error("the message is longer than this room's {0} characters")]
    TooLong(usize),
}

/// Whether `raw` may be a message of a room that takes at most `max_chars` characters.
pub fn check_text(raw: &str, max_chars: usize) -> Result<(), TextProblem> {
    if raw.trim().is_empty() {
        return Err(TextProblem::Blank);
    }
    if raw.chars().count() > max_chars {
        return Err(TextProblem::TooLong(max_chars));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TextProblem;
    use crate::testing::Pair;
    use crate::wire::{ClientAction, SendMessage};
    use crate::{ErrorCode, RoomConfig, RoomSnapshot};

    #[test]
    fn the_session_refuses_before_sending_exactly_what_the_room_refuses() {
        let config = RoomConfig {
            max_message_chars: 5,
            ..RoomConfig::default()
        };
        let mut pair = Pair::with(config, RoomSnapshot::default());
        let (conn, _, _) = pair.join_ours(1);
        let peer = pair.add_session(crate::session::SessionConfig::default());
        pair.open_session(peer);
        let texts = [
            "",
            "   ",
            "\n\t",
            "hello",
            "héllo",
            "hello!",
            "🦀🦀🦀🦀🦀",
            "🦀🦀🦀🦀🦀🦀",
            " a ",
        ];
        for text in texts {
            let session = pair.session(peer).check_message(text).err();
            pair.act(
                conn,
                ClientAction::Message(SendMessage {
                    raw_message: text.to_owned(),
                    ..SendMessage::default()
                }),
            );
            let room = pair.errors(conn).first().copied();
            let expected = match session {
                None => None,
                Some(TextProblem::Blank) => Some(ErrorCode::EmptyMessage),
                Some(TextProblem::TooLong(5)) => Some(ErrorCode::MessageTooLong),
                Some(other) => panic!("{other:?}"),
            };
            assert_eq!(room, expected, "{text:?}");
        }
    }
}
