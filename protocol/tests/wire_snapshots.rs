//! Snapshot of the JSON of every wire type, so that a renamed field or tag cannot slip through.
//! Review changes with `cargo insta review` (or `INSTA_UPDATE=always cargo test -p protocol`
//! and read the diff of `tests/snapshots/`).

use std::collections::BTreeMap;

use protocol::*;

fn record(seq: u64) -> MessageRecord {
    MessageRecord {
        raw_message: "**hi** :wave:".into(),
        html_message: "<p><strong>hi</strong> 👋</p>\n".into(),
        timestamp: 1_502_699_195_143,
        user_id: "u1".into(),
        seq: Some(seq),
        id: Some(format!("id{seq}")),
        nonce: Some("n1".into()),
        ..MessageRecord::default()
    }
}

#[test]
fn client_actions() {
    let actions = [
        ClientAction::Message(SendMessage {
            raw_message: "hello".into(),
            user_id: Some("u1".into()),
            nonce: Some("c-1".into()),
            reply_to: None,
            to: None,
        }),
        ClientAction::Message(SendMessage {
            raw_message: "just us".into(),
            nonce: Some("c-3".into()),
            to: Some("u2".into()),
            ..SendMessage::default()
        }),
        ClientAction::Typing(Typing::default()),
        ClientAction::Typing(Typing {
            to: Some("u2".into()),
        }),
        ClientAction::Message(SendMessage {
            raw_message: "a reply".into(),
            reply_to: Some(2),
            ..SendMessage::default()
        }),
        ClientAction::React(React {
            target: 2,
            emoji: "🎉".into(),
            on: true,
            nonce: None,
        }),
        ClientAction::NameChange(ChangeName {
            name: "Ann".into(),
            user_id: None,
        }),
        ClientAction::HandshakeUserInfo(HandshakeUserInfo::default()),
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            user_id: Some("u1".into()),
            token: Some("secret".into()),
            since: Some(41),
            protocol_version: None,
        }),
        ClientAction::HistoryRequest(HistoryRequest {
            before: 42,
            limit: 50,
            with: None,
        }),
        ClientAction::HistoryRequest(HistoryRequest {
            before: 42,
            limit: 50,
            with: Some("u2".into()),
        }),
        ClientAction::EditMessage(EditMessage {
            target: 2,
            raw_message: "hello, edited".into(),
            nonce: Some("c-2".into()),
        }),
        ClientAction::DeleteMessage(DeleteMessage {
            target: 2,
            nonce: None,
        }),
        ClientAction::SetRole(SetRole {
            user_id: "u2".into(),
            role: Some(Role::Moderator),
            nonce: Some("r-1".into()),
        }),
        ClientAction::SetRole(SetRole {
            user_id: "u2".into(),
            role: None,
            nonce: None,
        }),
        ClientAction::SetRoom(SetRoom {
            settings: RoomSettings {
                topic: "Be kind".into(),
                slow_mode_seconds: 0,
            },
            nonce: Some("s-1".into()),
        }),
        ClientAction::Moderate(Moderate {
            kind: ModerationKind::TimeOut,
            user_id: "u3".into(),
            minutes: Some(10),
            reason: None,
            address: false,
            nonce: Some("m-1".into()),
        }),
        ClientAction::Moderate(Moderate {
            kind: ModerationKind::Ban,
            user_id: "u3".into(),
            minutes: None,
            reason: Some("spam".into()),
            address: true,
            nonce: Some("m-2".into()),
        }),
        ClientAction::Report(Report {
            target: 7,
            reason: "spam".into(),
            nonce: Some("r-1".into()),
        }),
        ClientAction::ResolveReport(ResolveReport {
            report: 9,
            nonce: Some("r-2".into()),
        }),
        ClientAction::AuditRequest(AuditRequest {
            nonce: Some("a-1".into()),
        }),
        ClientAction::PeopleRequest(PeopleRequest {
            after: Some("u1".into()),
            limit: 100,
        }),
        ClientAction::Call(CallSignal {
            to: Some("u2".into()),
            video: Some(true),
            nonce: Some("c1".into()),
            ..CallSignal::new("c1", CallKind::Ring)
        }),
        ClientAction::Call(CallSignal {
            data: Some("v=0".into()),
            ..CallSignal::new("c1", CallKind::Offer)
        }),
        ClientAction::Call(CallSignal {
            audio: Some(false),
            video: Some(true),
            ..CallSignal::new("c1", CallKind::Media)
        }),
    ];
    let lines: Vec<String> = actions.iter().map(ClientAction::to_json).collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn server_actions() {
    let names = BTreeMap::from([("u1".to_owned(), "Ann".to_owned())]);
    let actions = [
        ServerAction::Handshake(Handshake {
            server_name: "General".into(),
            messages: vec![record(1)],
            user_names: names.clone(),
            protocol_version: Some(PROTOCOL_VERSION),
            latest_seq: Some(1),
            online: Some(vec!["u1".into()]),
            online_count: Some(1_204),
            limits: Some(RoomLimits {
                max_message_chars: 4000,
                max_name_chars: 32,
                rate_burst: 10,
                rate_per_second: 5,
            }),
            people: Some(vec![Person {
                user_id: "u1".into(),
                joined_at: Some(1_502_699_000_000),
                last_seen: None,
            }]),
            ice_servers: vec![IceServer {
                urls: vec!["stun:stun.example.org:3478".into()],
                username: None,
                credential: None,
            }],
            roles: BTreeMap::from([
                ("u1".to_owned(), Role::Owner),
                ("u2".to_owned(), Role::Moderator),
            ]),
            timed_out: vec![Moderated {
                kind: ModerationKind::TimeOut,
                user_id: "u3".into(),
                until: Some(1_502_699_600_000),
                reason: None,
            }],
            banned: vec![Moderated {
                kind: ModerationKind::Ban,
                user_id: "u4".into(),
                until: None,
                reason: None,
            }],
            room: RoomSettings {
                topic: "Be kind".into(),
                slow_mode_seconds: 30,
            },
        }),
        ServerAction::Moderated(Moderated {
            kind: ModerationKind::TimeOut,
            user_id: "u3".into(),
            until: Some(1_502_699_600_000),
            reason: None,
        }),
        ServerAction::Audit(Audit {
            entries: vec![AuditEntry {
                seq: 9,
                at: 1_502_699_000_000,
                by: "u3".into(),
                action: AuditAction::Report,
                user_id: Some("u1".into()),
                target: Some(7),
                report: None,
                reason: Some("spam".into()),
                until: None,
            }],
            open_reports: Vec::new(),
            live: true,
            nonce: Some("r-1".into()),
        }),
        ServerAction::Room(RoomChanged {
            settings: RoomSettings {
                topic: String::new(),
                slow_mode_seconds: 10,
            },
            by: "u2".into(),
        }),
        ServerAction::Moderated(Moderated {
            kind: ModerationKind::Kick,
            user_id: "u3".into(),
            until: None,
            reason: Some("cool down".into()),
        }),
        ServerAction::Moderated(Moderated {
            kind: ModerationKind::EndTimeOut,
            user_id: "u3".into(),
            until: None,
            reason: None,
        }),
        ServerAction::Role(RoleChanged {
            user_id: "u2".into(),
            role: Some(Role::Moderator),
            by: "u1".into(),
        }),
        ServerAction::Role(RoleChanged {
            user_id: "u2".into(),
            role: None,
            by: "u1".into(),
        }),
        ServerAction::MessageChanged(MessageRecord {
            raw_message: String::new(),
            html_message: REMOVED_HTML.into(),
            deleted: true,
            removed: true,
            changed_seq: Some(9),
            ..record(3)
        }),
        ServerAction::UserInfo(UserInfo {
            user_id: "u1".into(),
            name: "Anonymous".into(),
            token: Some("t0k3n".into()),
        }),
        ServerAction::Message(record(2)),
        ServerAction::Message(MessageRecord {
            to: Some("u2".into()),
            ..record(3)
        }),
        ServerAction::Typing(TypingUser {
            user_id: "u1".into(),
            direct: false,
        }),
        ServerAction::Typing(TypingUser {
            user_id: "u1".into(),
            direct: true,
        }),
        ServerAction::MessageChanged(MessageRecord {
            edited_at: Some(1_502_699_200_000),
            changed_seq: Some(3),
            reactions: vec![Reaction {
                emoji: "🎉".into(),
                users: vec!["u1".into()],
            }],
            reply_to: Some(1),
            ..record(2)
        }),
        ServerAction::MessageChanged(MessageRecord {
            raw_message: String::new(),
            html_message: DELETED_HTML.into(),
            deleted: true,
            changed_seq: Some(4),
            ..record(2)
        }),
        ServerAction::NameChange(NameChanged::new("u1".into(), "Ann".into())),
        ServerAction::UserConnected(UserRef::of("u1".into())),
        ServerAction::UserConnected(UserRef {
            joined_at: Some(1_502_699_000_000),
            ..UserRef::of("u1".into())
        }),
        ServerAction::UserDisconnected(UserRef {
            last_seen: Some(1_502_699_300_000),
            ..UserRef::of("u1".into())
        }),
        ServerAction::Resume(Resume {
            since: 1,
            messages: vec![record(2)],
            gap_too_big: false,
            user_names: names.clone(),
        }),
        ServerAction::History(History {
            before: 2,
            with: None,
            messages: vec![record(1)],
            has_more: false,
            user_names: names.clone(),
        }),
        ServerAction::History(History {
            before: 9,
            with: Some("u2".into()),
            messages: vec![MessageRecord {
                to: Some("u2".into()),
                ..record(4)
            }],
            has_more: true,
            user_names: names.clone(),
        }),
        ServerAction::Conversations(Conversations {
            conversations: vec![ConversationSummary {
                with: "u2".into(),
                last: MessageRecord {
                    to: Some("u2".into()),
                    ..record(4)
                },
                unread: 0,
            }],
            user_names: names.clone(),
        }),
        ServerAction::People(PeoplePage {
            after: Some("u1".into()),
            people: vec![Person {
                user_id: "u2".into(),
                joined_at: Some(1_502_699_000_000),
                last_seen: None,
            }],
            user_names: BTreeMap::from([("u2".to_owned(), "Bo".to_owned())]),
            next: Some("u2".into()),
            online_count: 1_204,
        }),
        ServerAction::Presence(Presence {
            joined: vec![UserRef {
                joined_at: Some(1_502_699_000_000),
                ..UserRef::of("u5".to_owned())
            }],
            online_count: Some(1_205),
            ..Presence::default()
        }),
        ServerAction::Call(CallSignal {
            from: Some("u1".into()),
            video: Some(false),
            ..CallSignal::new("c1", CallKind::Ring)
        }),
        ServerAction::Call(CallSignal {
            reason: Some(CallEnd::AnsweredElsewhere),
            ..CallSignal::new("c1", CallKind::Ended)
        }),
        ServerAction::Message(MessageRecord {
            to: Some("u2".into()),
            raw_message: "Call, 4 min".into(),
            call: Some(CallRecord {
                outcome: CallOutcome::Answered,
                secs: 230,
            }),
            ..record(5)
        }),
        ServerAction::error(ErrorCode::RateLimited, "slow down"),
        ServerAction::error_for(ErrorCode::MessageTooLong, "too long", Some("n-7".into())),
    ];
    let lines: Vec<String> = actions.iter().map(ServerAction::to_json).collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn error_codes() {
    let codes = [
        ErrorCode::InvalidJson,
        ErrorCode::UnknownType,
        ErrorCode::InvalidPayload,
        ErrorCode::FrameTooLarge,
        ErrorCode::BinaryFrame,
        ErrorCode::NotIdentified,
        ErrorCode::AlreadyIdentified,
        ErrorCode::IdentityRejected,
        ErrorCode::UserMismatch,
        ErrorCode::EmptyMessage,
        ErrorCode::MessageTooLong,
        ErrorCode::InvalidNonce,
        ErrorCode::InvalidName,
        ErrorCode::RateLimited,
        ErrorCode::InvalidHistoryRequest,
        ErrorCode::StorageFailed,
        ErrorCode::MessageTooComplex,
        ErrorCode::TooManyIdentities,
        ErrorCode::HistoryFailed,
        ErrorCode::UnknownMessage,
        ErrorCode::NotYourMessage,
        ErrorCode::UnknownEmoji,
        ErrorCode::TooManyReactions,
        ErrorCode::UnknownUser,
        ErrorCode::InvalidSearch,
        ErrorCode::SearchFailed,
        ErrorCode::InvalidCall,
        ErrorCode::CallBusy,
        ErrorCode::Unavailable,
        ErrorCode::MessageDeleted,
        ErrorCode::Unchangeable,
        ErrorCode::NotAllowed,
        ErrorCode::TimedOut,
        ErrorCode::InvalidModeration,
        ErrorCode::SlowMode,
        ErrorCode::Banned,
        ErrorCode::InvalidReport,
    ];
    let json = serde_json::to_string(&codes[..]).unwrap();
    insta::assert_snapshot!(json);
}
