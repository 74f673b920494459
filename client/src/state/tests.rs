//! The client state over its rooms' sessions: what a user sees after each server frame
//! (unread counts, notices, names, what survives a reload), and what the client sends back.
//! The session's own rules are tested in `protocol` (`session/tests.rs`), against the real
//! room engine through `protocol::testing::Pair`.

use protocol::session::{ComposeError, RATE_LIMIT_RETRY_MS};
use protocol::{
    ClientAction, ErrorPayload, Handshake, History as HistoryPage, MessageRecord, NameChanged,
    Resume, ServerAction, UserInfo, UserRef,
};

use super::*;

fn state() -> AppState {
    AppState::new(Settings::default(), "page".into())
}

fn record(seq: u64, user: &str, text: &str, nonce: Option<&str>) -> MessageRecord {
    MessageRecord {
        raw_message: text.into(),
        html_message: "<b>server html is never used</b>".into(),
        timestamp: 1_000 + seq as i64,
        user_id: user.into(),
        seq: Some(seq),
        id: None,
        nonce: nonce.map(Into::into),
        ..MessageRecord::default()
    }
}

fn handshake(messages: Vec<MessageRecord>, latest: u64) -> ServerAction {
    ServerAction::Handshake(Handshake {
        server_name: "General".into(),
        messages,
        user_names: [("u1".to_string(), "Ada".to_string())].into(),
        protocol_version: Some(2),
        latest_seq: Some(latest),
        limits: None,
        online: Some(vec!["u1".into()]),
        online_count: Some(1),
        people: None,
        ice_servers: Vec::new(),
        roles: Default::default(),
        timed_out: Default::default(),
        banned: Vec::new(),
        room: Default::default(),
    })
}

/// A frame from the room, then what the network loop would do: settle the room.
fn recv(s: &mut AppState, id: RoomId, action: ServerAction) -> Settled {
    s.receive(id, &action.to_json(), 0);
    s.settle(id, 0)
}

/// Asks for the page of older messages: what goes out.
fn load_older(s: &mut AppState, id: RoomId) -> Settled {
    s.request_history(id, 0);
    s.settle(id, 0)
}

/// The room's timer comes due at `now`: what goes out.
fn wake(s: &mut AppState, id: RoomId, now: Millis) -> Settled {
    s.wake(id, now);
    s.settle(id, now)
}

/// The connection opens: what the session sends first.
fn opened(s: &mut AppState, id: RoomId) -> Settled {
    s.link_opened(id, 0);
    s.settle(id, 0)
}

/// You write a message (checked as the composer checks it first).
fn compose(s: &mut AppState, id: RoomId, text: &str, now: Millis) -> Settled {
    assert_eq!(s.room(id).unwrap().session.check_message(text), Ok(()));
    s.compose(id, text, None, now);
    s.settle(id, now)
}

/// The connection opens and the room identifies us as `me` (with the token "tok").
fn identified(s: &mut AppState, id: RoomId, me: &str) -> Settled {
    let mut out = opened(s, id);
    let more = recv(
        s,
        id,
        ServerAction::UserInfo(UserInfo {
            user_id: me.into(),
            name: "Anonymous".into(),
            token: Some("tok".into()),
        }),
    );
    out.send.extend(more.send);
    out.wake_at = more.wake_at;
    out
}

/// Only what was sent: the first frame (identification) left out.
fn after_hello(out: Settled) -> Vec<ClientAction> {
    out.send
        .into_iter()
        .filter(|a| !matches!(a, ClientAction::HandshakeUserInfo(_)))
        .collect()
}

/// Two rooms, both handshaken and identified as "me".
fn two_rooms(s: &mut AppState, a: &str, b: &str) -> (RoomId, RoomId) {
    let (a, _) = s.add_room(a).unwrap();
    let (b, _) = s.add_room(b).unwrap();
    for id in [a, b] {
        recv(s, id, handshake(vec![], 0));
        identified(s, id, "me");
    }
    (a, b)
}

#[test]
fn a_room_shows_its_handshake_rendered_by_us_not_the_server() {
    let mut s = state();
    let (id, new) = s.add_room("mock://general").unwrap();
    assert!(new);
    assert_eq!(s.active, Some(id));
    recv(
        &mut s,
        id,
        handshake(
            vec![record(1, "u1", "**hi** <img src=x onerror=alert(1)>", None)],
            1,
        ),
    );
    let room = s.room(id).unwrap();
    assert_eq!(room.title(), "General");
    assert_eq!(room.session.messages().len(), 1);
    let html = &room.session.messages()[0].html;
    assert!(html.contains("<strong>hi</strong>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("server html"), "{html}");
    assert_eq!(room.name_of("u1"), "Ada");
    assert_eq!(room.session.history(), History::Complete);
}

#[test]
fn adding_the_same_address_twice_gives_the_same_room_and_bad_ones_are_refused() {
    let mut s = state();
    let (a, _) = s.add_room("ws://localhost:4000").unwrap();
    let (b, new) = s.add_room("ws://LOCALHOST:4000/").unwrap();
    assert_eq!((a, new), (b, false));
    assert_eq!(s.rooms.len(), 1);
    assert!(s.add_room("http://x").is_err());
    assert_eq!(s.rooms.len(), 1);
}

#[test]
fn a_sent_message_is_pending_until_its_echo_then_shown_once() {
    let mut s = state();
    let (id, _) = s.add_room("mock://a").unwrap();
    recv(&mut s, id, handshake(vec![], 0));
    identified(&mut s, id, "me");
    let out = compose(&mut s, id, "hello", 5);
    let ClientAction::Message(sent) = &out.send[0] else {
        panic!("expected MESSAGE, got {out:?}")
    };
    let nonce = sent.nonce.clone().unwrap();
    assert_eq!(s.room(id).unwrap().session.pending().len(), 1);
    assert_eq!(
        s.room(id).unwrap().session.pending()[0].delivery,
        Delivery::Pending
    );
    recv(
        &mut s,
        id,
        ServerAction::Message(record(1, "me", "hello", Some(&nonce))),
    );
    let room = s.room(id).unwrap();
    assert!(room.session.pending().is_empty());
    assert_eq!(room.session.messages().len(), 1);
    assert_eq!(room.session.messages()[0].delivery, Delivery::Sent);
    // The same message again (a resend answered with the stored copy) is not shown twice.
    recv(
        &mut s,
        id,
        ServerAction::Message(record(1, "me", "hello", Some(&nonce))),
    );
    assert_eq!(s.room(id).unwrap().session.messages().len(), 1);
}

#[test]
fn messages_typed_offline_are_sent_after_identification_with_the_same_nonce() {
    let mut s = state();
    let (id, _) = s.add_room("mock://a").unwrap();
    let out = compose(&mut s, id, "typed while connecting", 5);
    assert!(out.send.is_empty(), "not sent before the room knows us");
    let out = identified(&mut s, id, "me");
    let first = match &after_hello(out)[..] {
        [ClientAction::Message(m)] => m.nonce.clone(),
        other => panic!("{other:?}"),
    };
    // The connection drops and comes back: the same message, the same nonce.
    s.link_lost(id, 1, 500, 0);
    let out = identified(&mut s, id, "me");
    match &after_hello(out)[..] {
        [ClientAction::Message(m)] => assert_eq!(m.nonce, first),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reconnect_resumes_from_the_last_seq_and_fills_the_gap_without_duplicates() {
    let mut s = state();
    let (id, _) = s.add_room("ws://h:1").unwrap();
    recv(
        &mut s,
        id,
        handshake(
            vec![record(1, "u1", "one", None), record(2, "u1", "two", None)],
            2,
        ),
    );
    identified(&mut s, id, "me");
    s.link_lost(id, 1, 500, 0);
    let out = opened(&mut s, id);
    match &out.send[..] {
        [ClientAction::HandshakeUserInfo(info)] => {
            assert_eq!(info.since, Some(2));
            assert_eq!(info.user_id.as_deref(), Some("me"));
            assert_eq!(info.token.as_deref(), Some("tok"));
        }
        other => panic!("{other:?}"),
    }
    // The new handshake overlaps what we have; the resume brings what was in between.
    recv(
        &mut s,
        id,
        handshake(
            vec![record(2, "u1", "two", None), record(4, "u1", "four", None)],
            4,
        ),
    );
    recv(
        &mut s,
        id,
        ServerAction::Resume(Resume {
            since: 2,
            messages: vec![
                record(3, "u1", "three", None),
                record(4, "u1", "four", None),
            ],
            gap_too_big: false,
            user_names: Default::default(),
        }),
    );
    let seqs: Vec<_> = s
        .room(id)
        .unwrap()
        .session
        .messages()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, vec![Some(1), Some(2), Some(3), Some(4)]);
}

#[test]
fn unread_counts_only_others_messages_in_rooms_not_shown() {
    let mut s = state();
    let (a, b) = two_rooms(&mut s, "mock://a", "mock://b");
    recv(&mut s, b, ServerAction::Message(record(1, "u1", "x", None)));
    recv(&mut s, b, ServerAction::Message(record(2, "u1", "y", None)));
    recv(
        &mut s,
        b,
        ServerAction::Message(record(3, "me", "mine", None)),
    );
    recv(
        &mut s,
        a,
        ServerAction::Message(record(1, "u1", "seen", None)),
    );
    assert_eq!(s.room(b).unwrap().unread, 2);
    assert_eq!(s.room(a).unwrap().unread, 0);
    assert_eq!(s.total_unread(), 2);
    s.select(b);
    assert_eq!(s.total_unread(), 0);
}

#[test]
fn names_apply_everywhere_or_in_one_room_and_are_resent_after_a_reconnect() {
    let mut s = state();
    let (a, b) = two_rooms(&mut s, "mock://a", "mock://b");
    s.set_name("  Grace  ", NameScope::All, 0).unwrap();
    for id in [a, b] {
        assert!(matches!(&s.settle(id, 0).send[..],
            [ClientAction::NameChange(c)] if c.name == "Grace"));
    }
    assert_eq!(s.settings.display_name.as_deref(), Some("Grace"));
    recv(
        &mut s,
        a,
        ServerAction::NameChange(NameChanged::new("me".into(), "Grace".into())),
    );
    recv(
        &mut s,
        b,
        ServerAction::NameChange(NameChanged::new("me".into(), "Grace".into())),
    );
    s.set_name("Hopper", NameScope::Room(b), 0).unwrap();
    assert!(s.settle(a, 0).send.is_empty(), "only the one room changes");
    assert!(matches!(&s.settle(b, 0).send[..],
        [ClientAction::NameChange(c)] if c.name == "Hopper"));
    assert_eq!(s.room(b).unwrap().name_override.as_deref(), Some("Hopper"));
    // A room that forgot us: the name we want is sent again when it identifies us.
    s.link_lost(a, 1, 500, 0);
    let out = identified(&mut s, a, "new-me");
    match &after_hello(out)[..] {
        [ClientAction::NameChange(change)] => assert_eq!(change.name, "Grace"),
        other => panic!("{other:?}"),
    }
    assert!(s.set_name("   ", NameScope::All, 0).is_err());
    assert!(s.set_name(&"x".repeat(33), NameScope::All, 0).is_err());
}

#[test]
fn presence_follows_the_room() {
    let mut s = state();
    let (id, _) = s.add_room("mock://a").unwrap();
    recv(&mut s, id, handshake(vec![], 0));
    identified(&mut s, id, "me");
    recv(
        &mut s,
        id,
        ServerAction::UserConnected(UserRef::of("u2".into())),
    );
    recv(
        &mut s,
        id,
        ServerAction::NameChange(NameChanged::new("u2".into(), "Bob".into())),
    );
    recv(
        &mut s,
        id,
        ServerAction::UserDisconnected(UserRef::of("u1".into())),
    );
    let people: Vec<_> = s
        .room(id)
        .unwrap()
        .people()
        .into_iter()
        .map(|p| (p.1, p.2))
        .collect();
    assert_eq!(
        people,
        vec![("Anonymous".into(), true), ("Bob".into(), false)]
    );
}

#[test]
fn history_pages_go_above_and_end_when_the_room_has_no_more() {
    let mut s = state();
    let (id, _) = s.add_room("ws://h:1").unwrap();
    recv(&mut s, id, handshake(vec![record(51, "u1", "x", None)], 51));
    assert_eq!(s.room(id).unwrap().session.history(), History::More);
    assert!(
        load_older(&mut s, id).send.is_empty(),
        "not before identification"
    );
    identified(&mut s, id, "me");
    let out = load_older(&mut s, id);
    assert!(matches!(&out.send[..], [ClientAction::HistoryRequest(r)] if r.before == 51));
    assert_eq!(s.room(id).unwrap().session.history(), History::Loading);
    assert!(
        load_older(&mut s, id).send.is_empty(),
        "one request at a time"
    );
    recv(
        &mut s,
        id,
        ServerAction::History(HistoryPage {
            before: 51,
            with: None,
            messages: (1..=50).map(|n| record(n, "u1", "old", None)).collect(),
            has_more: false,
            user_names: Default::default(),
        }),
    );
    let room = s.room(id).unwrap();
    assert_eq!(room.session.messages().len(), 51);
    assert_eq!(room.session.messages()[0].seq, Some(1));
    assert_eq!(room.session.history(), History::Complete);
}

#[test]
fn refusals_are_shown_and_rate_limits_retry() {
    let mut s = state();
    let (id, _) = s.add_room("mock://a").unwrap();
    let out = recv(
        &mut s,
        id,
        ServerAction::Error(ErrorPayload {
            code: protocol::ErrorCode::RateLimited,
            message: "slow down".into(),
            nonce: None,
        }),
    );
    assert_eq!(out.wake_at, Some(RATE_LIMIT_RETRY_MS));
    assert!(s.room(id).unwrap().notice.is_some());
    // A room that announced no limits (a v1 server) takes the engine's default length.
    let session = &s.room(id).unwrap().session;
    assert_eq!(session.check_message("   "), Err(ComposeError::Blank));
    assert_eq!(
        session.check_message(&"x".repeat(4001)),
        Err(ComposeError::TooLong(4000))
    );
}

#[test]
fn saved_state_round_trips_without_mock_identities() {
    let mut s = state();
    let (_real, mock) = two_rooms(&mut s, "ws://h:1", "mock://m");
    s.set_name("Grace", NameScope::All, 0).unwrap();
    s.select(mock);
    compose(&mut s, mock, "recall me", 1);
    let saved = s.to_saved();
    let text = serde_json::to_string(&saved).unwrap();
    let back: Saved = serde_json::from_str(&text).unwrap();
    assert_eq!(back, saved);
    let restored = AppState::from_saved(back, "page2".into());
    assert_eq!(restored.rooms.len(), 2);
    assert_eq!(
        restored.active_room().unwrap().address.to_string(),
        "mock://m"
    );
    assert_eq!(
        restored
            .room(restored.rooms[0].id)
            .unwrap()
            .session
            .identity()
            .as_ref()
            .unwrap()
            .user_id,
        "me"
    );
    assert!(
        restored.rooms[1].session.identity().is_none(),
        "mock rooms end with the page"
    );
    assert_eq!(restored.settings.display_name.as_deref(), Some("Grace"));
    assert_eq!(restored.sent, vec!["recall me".to_string()]);
    // Unknown fields and missing ones are fine; a broken address is dropped, not fatal.
    let odd: Saved =
        serde_json::from_str(r#"{"rooms":[{"address":"nope://x"}],"future":1}"#).unwrap();
    assert!(AppState::from_saved(odd, "p".into()).rooms.is_empty());
}

#[test]
fn a_flooding_server_cannot_grow_a_room_without_bound() {
    let mut s = state();
    let (id, _) = s.add_room("ws://h:1").unwrap();
    recv(&mut s, id, handshake(vec![], 0));
    let total = MAX_KEPT_MESSAGES as u64 + 25;
    for seq in 1..=total {
        recv(
            &mut s,
            id,
            ServerAction::Message(record(seq, "u1", "spam", None)),
        );
    }
    let room = s.room(id).unwrap();
    assert_eq!(room.session.messages().len(), MAX_KEPT_MESSAGES);
    assert_eq!(room.session.messages().last().unwrap().seq, Some(total));
    assert_eq!(room.session.messages()[0].seq, Some(26));
    assert_eq!(
        room.session.history(),
        History::More,
        "the dropped ones can be paged in again"
    );
}

#[test]
fn a_v1_server_without_seq_or_id_still_gets_every_message_once_with_distinct_keys() {
    let mut s = state();
    let (id, _) = s.add_room("ws://legacy:4000").unwrap();
    recv(
        &mut s,
        id,
        ServerAction::Handshake(Handshake {
            server_name: "Old".into(),
            messages: vec![],
            user_names: Default::default(),
            protocol_version: None,
            latest_seq: None,
            online: None,
            online_count: None,
            limits: None,
            people: None,
            ice_servers: Vec::new(),
            roles: Default::default(),
            timed_out: Default::default(),
            banned: Vec::new(),
            room: Default::default(),
        }),
    );
    assert_eq!(s.room(id).unwrap().session.history(), History::Unsupported);
    identified(&mut s, id, "me");
    let out = compose(&mut s, id, "same text", 1);
    assert_eq!(out.send.len(), 1);
    let v1 = |user: &str| MessageRecord {
        raw_message: "same text".into(),
        html_message: String::new(),
        timestamp: 5,
        user_id: user.into(),
        ..MessageRecord::default()
    };
    // A v1 echo has no nonce: it confirms the oldest pending message with the same text.
    recv(&mut s, id, ServerAction::Message(v1("me")));
    recv(&mut s, id, ServerAction::Message(v1("other")));
    let room = s.room(id).unwrap();
    assert!(room.session.pending().is_empty());
    assert_eq!(room.session.messages().len(), 2);
    assert_ne!(
        room.session.messages()[0].key,
        room.session.messages()[1].key
    );
}

#[test]
fn while_the_tab_is_hidden_the_shown_room_counts_unread_too() {
    let mut s = state();
    let (a, _) = two_rooms(&mut s, "mock://a", "mock://b");
    assert_eq!(s.active, Some(a));
    s.set_page_visible(false);
    recv(
        &mut s,
        a,
        ServerAction::Message(record(1, "u1", "while away", None)),
    );
    assert_eq!(s.room(a).unwrap().unread, 1);
    assert_eq!(s.total_unread(), 1);
    s.set_page_visible(true);
    assert_eq!(s.total_unread(), 0);
    recv(
        &mut s,
        a,
        ServerAction::Message(record(2, "u1", "seen", None)),
    );
    assert_eq!(s.total_unread(), 0);
}

#[test]
fn a_refused_message_is_kept_as_failed_until_retried_or_discarded() {
    let mut s = state();
    let (id, _) = s.add_room("ws://h:1").unwrap();
    recv(&mut s, id, handshake(vec![], 0));
    identified(&mut s, id, "me");
    compose(&mut s, id, "first", 1);
    compose(&mut s, id, "second", 2);
    let refusal = ServerAction::Error(ErrorPayload {
        code: protocol::ErrorCode::StorageFailed,
        message: "could not store".into(),
        nonce: None,
    });
    recv(&mut s, id, refusal.clone());
    let room = s.room(id).unwrap();
    assert_eq!(room.session.pending()[0].delivery, Delivery::Failed);
    assert_eq!(room.session.pending()[1].delivery, Delivery::Pending);
    let key = room.session.pending()[0].key.clone();
    // A reconnect resends only what is still waiting.
    s.link_lost(id, 1, 10, 0);
    let out = identified(&mut s, id, "me");
    assert!(
        matches!(&after_hello(out)[..], [ClientAction::Message(m)] if m.raw_message == "second")
    );
    // Retry sends it again with the same nonce.
    s.retry_message(id, &key, 0);
    let out = s.settle(id, 0);
    assert!(matches!(&out.send[..], [ClientAction::Message(m)] if m.raw_message == "first"));
    recv(&mut s, id, refusal);
    assert_eq!(s.take_back_message(id, &key).as_deref(), Some("first"));
    let room = s.room(id).unwrap();
    assert_eq!(room.session.pending().len(), 1);
    assert_eq!(room.session.pending()[0].raw, "second");
}

#[test]
fn a_refusal_that_names_its_nonce_fails_that_message_not_the_oldest() {
    // Under group commit a refusal comes at once while an accepted message's echo waits for
    // its storage batch: A is accepted, B is refused before A's echo arrives.
    let mut s = state();
    let (id, _) = s.add_room("ws://h:1").unwrap();
    recv(&mut s, id, handshake(vec![], 0));
    identified(&mut s, id, "me");
    compose(&mut s, id, "A", 1);
    compose(&mut s, id, "B", 2);
    let b_nonce = s.room(id).unwrap().session.pending()[1].nonce.clone();
    recv(
        &mut s,
        id,
        ServerAction::Error(ErrorPayload {
            code: protocol::ErrorCode::MessageTooLong,
            message: "too long".into(),
            nonce: b_nonce,
        }),
    );
    let room = s.room(id).unwrap();
    assert_eq!(
        room.session.pending()[0].delivery,
        Delivery::Pending,
        "A is still sending"
    );
    assert_eq!(
        room.session.pending()[1].delivery,
        Delivery::Refused,
        "B is not sent"
    );
}

#[test]
fn removing_a_room_keeps_your_identity_there_for_when_you_add_it_again() {
    let mut s = state();
    let (id, _) = s.add_room("ws://h:1").unwrap();
    recv(&mut s, id, handshake(vec![], 0));
    identified(&mut s, id, "me");
    s.remove_room(id);
    assert!(s.rooms.is_empty());
    // Across a reload too.
    let mut s = AppState::from_saved(s.to_saved(), "p2".into());
    let (again, new) = s.add_room("ws://h:1/").unwrap();
    assert!(new);
    let identity = s.room(again).unwrap().session.identity().cloned().unwrap();
    assert_eq!(
        (identity.user_id.as_str(), identity.token.as_deref()),
        ("me", Some("tok"))
    );
    match &opened(&mut s, again).send[..] {
        [ClientAction::HandshakeUserInfo(info)] => assert_eq!(info.user_id.as_deref(), Some("me")),
        other => panic!("{other:?}"),
    }
    assert!(
        s.to_saved().past_identities.is_empty(),
        "in use again, not kept twice"
    );
}

#[test]
fn quick_messages_go_out_at_the_rooms_rate_in_the_order_written() {
    let mut s = state();
    let (id, _) = s.add_room("ws://h:1").unwrap();
    let mut hs = handshake(vec![], 0);
    if let ServerAction::Handshake(h) = &mut hs {
        h.limits = Some(protocol::RoomLimits {
            max_message_chars: 40,
            max_name_chars: 32,
            rate_burst: 3,
            rate_per_second: 2,
        });
    }
    recv(&mut s, id, hs);
    identified(&mut s, id, "me");
    // The room's own limit is checked before sending.
    assert_eq!(
        s.room(id).unwrap().session.check_message(&"x".repeat(41)),
        Err(ComposeError::TooLong(40))
    );
    let mut sent: Vec<String> = Vec::new();
    fn sent_texts(sent: &mut Vec<String>, out: Settled) -> Option<Millis> {
        for action in out.send {
            if let ClientAction::Message(m) = action {
                sent.push(m.raw_message);
            }
        }
        out.wake_at
    }
    let mut wait = None;
    for i in 0..6 {
        wait = sent_texts(&mut sent, compose(&mut s, id, &format!("m{i}"), 0));
    }
    // Three go at once (the burst); the rest wait for tokens, in order.
    assert_eq!(sent, ["m0", "m1", "m2"]);
    assert_eq!(wait, Some(501));
    sent_texts(&mut sent, wake(&mut s, id, 501));
    assert_eq!(sent, ["m0", "m1", "m2", "m3"]);
    // m3 is refused for rate anyway (the room's clock differed): it and every later one go
    // again, in order; m4 never overtakes it.
    let nonce = s.room(id).unwrap().session.pending()[3].nonce.clone();
    let out = recv(
        &mut s,
        id,
        ServerAction::Error(ErrorPayload {
            code: protocol::ErrorCode::RateLimited,
            message: "slow down".into(),
            nonce,
        }),
    );
    assert_eq!(out.wake_at, Some(RATE_LIMIT_RETRY_MS));
    sent_texts(&mut sent, wake(&mut s, id, 3_000));
    assert_eq!(sent, ["m0", "m1", "m2", "m3", "m3", "m4", "m5"]);
}

#[test]
fn a_message_written_while_the_room_is_down_survives_a_reload_and_goes_out_once() {
    let mut s = state();
    let (id, _) = s.add_room("ws://h:1").unwrap();
    recv(&mut s, id, handshake(vec![], 0));
    identified(&mut s, id, "me");
    s.link_lost(id, 1, 10, 0);
    let out = compose(&mut s, id, "written while down", 5);
    assert!(
        out.send.is_empty(),
        "nothing goes out while the room is down"
    );
    let nonce = s.room(id).unwrap().session.pending()[0].nonce.clone();
    // Reload: the room keeps its name, and the message waits with the same nonce.
    let mut s = AppState::from_saved(s.to_saved(), "p2".into());
    let id = s.rooms[0].id;
    let room = s.room(id).unwrap();
    assert_eq!(room.title(), "General");
    assert!(!room.session.reached());
    assert_eq!(room.session.pending().len(), 1);
    assert_eq!(room.session.pending()[0].nonce, nonce);
    assert_eq!(room.session.pending()[0].delivery, Delivery::Pending);
    // The room is back: it goes out once, with its nonce.
    recv(&mut s, id, handshake(vec![], 0));
    let out = identified(&mut s, id, "me");
    assert!(matches!(&after_hello(out)[..], [ClientAction::Message(m)]
        if m.raw_message == "written while down" && m.nonce == nonce));
    assert!(wake(&mut s, id, 100).send.is_empty(), "sent once");
    // Mock rooms remember nothing of the kind.
    let (mock, _) = s.add_room("mock://x").unwrap();
    compose(&mut s, mock, "in a mock room", 1);
    let saved = s.to_saved();
    assert!(
        saved
            .rooms
            .iter()
            .all(|r| r.address != "mock://x" || r.pending.is_empty())
    );
}

#[test]
fn the_latest_messages_are_kept_across_a_reload_and_the_room_resumes_after_them() {
    let mut s = state();
    let (id, _) = s.add_room("ws://h:1").unwrap();
    let records: Vec<MessageRecord> = (1..=80)
        .map(|i| record(i, "u1", &format!("m{i}"), None))
        .collect();
    recv(&mut s, id, handshake(records, 80));
    identified(&mut s, id, "me");
    let kept = s.history_to_keep(id).unwrap();
    assert_eq!(kept.messages.len(), 50);
    assert_eq!(kept.messages[0].seq, Some(31));
    assert_eq!(kept.user_names.get("u1").map(String::as_str), Some("Ada"));
    // After a reload, before the room answers: the messages and their authors are shown.
    let mut s = AppState::from_saved(s.to_saved(), "p2".into());
    let id = s.rooms[0].id;
    s.restore_history(id, kept);
    let room = s.room(id).unwrap();
    assert_eq!(room.session.messages().len(), 50);
    assert_eq!(room.name_of("u1"), "Ada");
    assert_eq!(room.session.history(), History::More);
    // The room answers: it is asked for what came after the newest kept message.
    let out = opened(&mut s, id);
    assert!(
        matches!(&out.send[..], [ClientAction::HandshakeUserInfo(info)] if info.since == Some(80))
    );
    // Mock rooms keep nothing.
    let (mock, _) = s.add_room("mock://x").unwrap();
    assert!(s.history_to_keep(mock).is_none());
}

#[test]
fn a_direct_conversation_counts_its_own_unread_and_sends_to_its_person() {
    let mut s = state();
    let (id, _) = two_rooms(&mut s, "ws://a:1", "ws://b:2");
    recv(
        &mut s,
        id,
        ServerAction::NameChange(NameChanged::new("u2".into(), "Ana".into())),
    );
    // Ana writes to me while the room itself is shown.
    let direct = MessageRecord {
        to: Some("me".into()),
        ..record(1, "u2", "just us", None)
    };
    recv(&mut s, id, ServerAction::Message(direct));
    let room = s.room(id).unwrap();
    assert_eq!((room.unread, room.direct_unread.get("u2")), (0, Some(&1)));
    assert_eq!(room.conversations(), ["u2"]);
    assert_eq!(s.total_unread(), 1);
    // The room's view does not show it; the conversation does, and opening it reads it.
    assert_eq!(room.shown_messages().count(), 0);
    s.open_conversation(id, Some("u2".into()));
    let room = s.room(id).unwrap();
    assert_eq!(room.direct_unread.get("u2"), None);
    assert_eq!(room.conversation_title(), "Ana");
    assert_eq!(
        room.shown_messages()
            .map(|m| m.raw.as_str())
            .collect::<Vec<_>>(),
        ["just us"]
    );
    assert_ne!(room.draft_key(), "ws://a:1/", "a draft of its own");
    // What I write here goes to Ana only; typing is said to her only.
    let out = compose(&mut s, id, "hi Ana", 2);
    assert!(matches!(&out.send[..],
        [ClientAction::Message(m)] if m.to.as_deref() == Some("u2")));
    s.typing(id, 3);
    assert!(matches!(&s.settle(id, 0).send[..],
        [ClientAction::Typing(t)] if t.to.as_deref() == Some("u2")));
    // A room message now counts for the room, which is not shown.
    recv(
        &mut s,
        id,
        ServerAction::Message(record(2, "u2", "room talk", None)),
    );
    assert_eq!(s.room(id).unwrap().unread, 1);
    // Back to the room: its unread is read.
    s.open_conversation(id, None);
    assert_eq!(s.room(id).unwrap().unread, 0);
}

#[test]
fn your_own_names_for_people_show_everywhere_survive_a_reload_and_stay_yours() {
    let mut s = state();
    let (id, mock) = two_rooms(&mut s, "ws://a:1", "mock://b");
    for room in [id, mock] {
        recv(
            &mut s,
            room,
            ServerAction::NameChange(NameChanged::new("u2".into(), "Sam".into())),
        );
    }
    assert!(
        s.set_alias(id, "u2", Some("   ")).is_ok(),
        "blank takes nothing"
    );
    assert_eq!(s.room(id).unwrap().name_of("u2"), "Sam");
    assert!(
        s.set_alias(id, "u2", Some("\u{202e}evil")).is_err(),
        "checked like a name"
    );
    s.set_alias(id, "u2", Some("Sam from work")).unwrap();
    s.set_alias(mock, "u2", Some("Mock Sam")).unwrap();
    let room = s.room(id).unwrap();
    assert_eq!(room.name_of("u2"), "Sam from work");
    assert_eq!(room.chosen_name_of("u2"), "Sam");
    assert_eq!(
        room.alias_note("u2").as_deref(),
        Some("calls themselves Sam")
    );
    // Typing and the people list use it too.
    recv(
        &mut s,
        id,
        ServerAction::UserConnected(UserRef::of("u2".into())),
    );
    recv(
        &mut s,
        id,
        ServerAction::Typing(protocol::TypingUser {
            user_id: "u2".into(),
            direct: false,
        }),
    );
    let room = s.room(id).unwrap();
    assert_eq!(
        room.typing_line().as_deref(),
        Some("Sam from work is typing…")
    );
    assert!(
        room.people()
            .iter()
            .any(|(_, name, _)| name == "Sam from work")
    );
    // Their rename changes what they call themselves, not your name for them.
    recv(
        &mut s,
        id,
        ServerAction::NameChange(NameChanged::new("u2".into(), "Samuel".into())),
    );
    assert_eq!(s.room(id).unwrap().name_of("u2"), "Sam from work");
    // Kept across a reload for the server room (never sent: no action went out for it), not
    // for the mock room, whose people end with the page; and kept when the room is removed.
    let saved = s.to_saved();
    assert_eq!(saved.aliases.len(), 1);
    let again = AppState::from_saved(saved, "next".into());
    let room = again
        .rooms
        .iter()
        .find(|r| r.address.to_string() == "ws://a:1/")
        .unwrap();
    assert_eq!(
        room.aliases.get("u2").map(String::as_str),
        Some("Sam from work")
    );
    let mut again = again;
    let removed = again.rooms[0].id;
    again.remove_room(removed);
    assert_eq!(again.to_saved().aliases.len(), 1);
    let (back, _) = again.add_room("ws://a:1").unwrap();
    assert_eq!(again.room(back).unwrap().aliases.len(), 1);
}

/// One call at a time in the whole page: a ring in another room while a call is on is
/// declined at once and never shown; when it is over, the next ring is shown and notified if
/// the tab is hidden.
#[test]
fn a_ring_while_another_room_has_a_call_is_declined() {
    use protocol::{CallKind, CallSignal};
    let mut s = state();
    let (a, _) = s.add_room("ws://a:4000").unwrap();
    let (b, _) = s.add_room("ws://b:4000").unwrap();
    for id in [a, b] {
        recv(&mut s, id, handshake(vec![], 0));
        identified(&mut s, id, "me");
    }
    let ring = |from: &str, id: &str| {
        ServerAction::Call(CallSignal {
            from: Some(from.into()),
            video: Some(true),
            ..CallSignal::new(id, CallKind::Ring)
        })
    };
    s.start_call(a, "u1", true, 0).expect("rings");
    assert_eq!(
        s.start_call(b, "u1", true, 0),
        Err(protocol::session::CallError::Busy)
    );
    let out = recv(&mut s, b, ring("u1", "x1"));
    assert!(out.calls.is_empty(), "{:?}", out.calls);
    assert!(matches!(&out.send[..], [protocol::ClientAction::Call(c)]
        if c.kind == CallKind::Decline && c.call_id == "x1"));
    assert_eq!(s.call_room(), Some(a));

    s.hang_up(a, 0);
    s.settle(a, 0);
    s.set_page_visible(false);
    let out = recv(&mut s, b, ring("u1", "x2"));
    assert_eq!(out.calls, [protocol::session::CallEvent::Incoming]);
    assert_eq!(out.notify.len(), 1);
    assert_eq!(out.notify[0].0, "Ada is calling you");
    assert_eq!(s.call_room(), Some(b));
}

/// The devices come a while after a call is asked for: the call goes on only if it still may,
/// by the clock (a ring runs out even when nobody has said so yet).
#[test]
fn a_call_goes_ahead_when_the_devices_come_only_if_it_still_may() {
    use protocol::session::RING_GIVE_UP_MS;
    use protocol::{CallKind, CallSignal};
    let mut s = state();
    let (a, _) = s.add_room("ws://a:4000").unwrap();
    recv(&mut s, a, handshake(vec![], 0));
    identified(&mut s, a, "me");
    // Nothing rings: a new call may go ahead, and sends video as asked.
    assert_eq!(s.call_go_ahead(a, false, true, 0), Some(true));
    assert_eq!(
        s.call_go_ahead(a, true, false, 0),
        None,
        "no ring to answer"
    );
    let rang = ServerAction::Call(CallSignal {
        from: Some("u1".into()),
        video: Some(true),
        ..CallSignal::new("x1", CallKind::Ring)
    });
    recv(&mut s, a, rang);
    // The answer receives the caller's video; a new call waits for this one.
    assert_eq!(s.call_go_ahead(a, true, false, 1_000), Some(true));
    assert_eq!(s.call_go_ahead(a, false, true, 1_000), None);
    // The ring has run out by the time the devices come: no answer goes.
    assert_eq!(s.call_go_ahead(a, true, false, RING_GIVE_UP_MS), None);
}

/// A reply's original (or a search result) is revealed by the session: the state says so
/// for the view once it is in the timeline, and opening another conversation forgets it.
#[test]
fn a_revealed_message_is_told_to_the_view_once_it_is_there() {
    let mut s = state();
    let (id, _) = s.add_room("ws://a:4000").unwrap();
    let messages = (1..=3).map(|seq| record(seq, "u1", "hi", None)).collect();
    recv(&mut s, id, handshake(messages, 3));
    identified(&mut s, id, "me");
    s.reveal(id, 2, 0);
    s.settle(id, 0);
    assert_eq!(s.room(id).unwrap().revealed, Some(2));
    s.shown_revealed(id);
    assert_eq!(s.room(id).unwrap().revealed, None);
    s.reveal(id, 3, 0);
    s.settle(id, 0);
    s.open_conversation(id, Some("u1".into()));
    assert_eq!(s.room(id).unwrap().revealed, None);
}

/// `@` offers people by the name they chose or by yours for them; the mention carries theirs.
#[test]
fn a_mention_is_offered_by_your_own_name_for_someone_and_carries_theirs() {
    let mut s = state();
    let (id, _) = s.add_room("ws://a:4000").unwrap();
    recv(&mut s, id, handshake(vec![], 0));
    identified(&mut s, id, "me");
    recv(
        &mut s,
        id,
        ServerAction::UserConnected(UserRef::of("u2".to_owned())),
    );
    recv(
        &mut s,
        id,
        ServerAction::NameChange(NameChanged::new("u2".into(), "Bob".into())),
    );
    s.set_alias(id, "u2", Some("Bobby")).unwrap();
    let room = s.room(id).unwrap();
    let offered = vec![("Bobby (Bob)".to_owned(), "Bob".to_owned())];
    assert_eq!(room.mention_candidates("Bobb", 6), offered);
    assert_eq!(room.mention_candidates("bo", 6), offered);
    assert!(room.mention_candidates("x", 6).is_empty());
    // Without an alias, their name alone.
    s.set_alias(id, "u2", None).unwrap();
    let room = s.room(id).unwrap();
    assert_eq!(
        room.mention_candidates("b", 6),
        vec![("Bob".to_owned(), "Bob".to_owned())]
    );
    assert!(room.mention_candidates("Bobb", 6).is_empty());
}

#[test]
fn conversations_the_room_lists_are_shown_with_what_came_while_away_and_page_on_their_own() {
    let mut s = state();
    let (id, _) = two_rooms(&mut s, "ws://a:1", "ws://b:2");
    // The room's timeline is recent; the conversation with Ana is older than all of it.
    recv(
        &mut s,
        id,
        handshake(vec![record(900, "u3", "room talk", None)], 900),
    );
    let conversations = |latest: MessageRecord, unread| {
        ServerAction::Conversations(protocol::Conversations {
            conversations: vec![protocol::ConversationSummary {
                with: "u2".into(),
                last: latest,
                unread,
            }],
            user_names: [("u2".to_owned(), "Ana".to_owned())].into(),
        })
    };
    let latest = MessageRecord {
        to: Some("me".into()),
        ..record(40, "u2", "call me", None)
    };
    recv(&mut s, id, conversations(latest.clone(), 2));
    let room = s.room(id).unwrap();
    assert_eq!(room.conversations(), ["u2"]);
    assert_eq!(room.name_of("u2"), "Ana");
    assert_eq!(room.direct_unread.get("u2"), Some(&2));
    assert_eq!(s.total_unread(), 2);
    // A conversation listed by a room that lies about it (not between us) is not shown.
    let lie = MessageRecord {
        to: Some("u4".into()),
        ..record(41, "u5", "not yours", None)
    };
    recv(&mut s, id, conversations(lie, 1));
    let room = s.room(id).unwrap();
    assert_eq!(room.conversations(), ["u2"]);
    assert!(room.session.messages().iter().all(|m| m.raw != "not yours"));

    // Opened: its latest message, read; the next page asked is its own, before it.
    s.open_conversation(id, Some("u2".into()));
    let room = s.room(id).unwrap();
    assert_eq!(room.direct_unread.get("u2"), None);
    assert_eq!(
        room.shown_messages()
            .map(|m| m.raw.as_str())
            .collect::<Vec<_>>(),
        ["call me"]
    );
    assert_eq!(
        room.session.history_in(Some("u2")),
        History::More,
        "older messages of it are in the room"
    );
    let out = load_older(&mut s, id);
    assert!(
        matches!(&out.send[..], [ClientAction::HistoryRequest(r)]
            if r.before == 40 && r.with.as_deref() == Some("u2")),
        "{:?}",
        out.send
    );
    recv(
        &mut s,
        id,
        ServerAction::History(HistoryPage {
            before: 40,
            with: Some("u2".into()),
            messages: vec![MessageRecord {
                to: Some("me".into()),
                ..record(12, "u2", "are you there?", None)
            }],
            has_more: false,
            user_names: Default::default(),
        }),
    );
    let room = s.room(id).unwrap();
    assert_eq!(
        room.shown_messages()
            .map(|m| m.raw.as_str())
            .collect::<Vec<_>>(),
        ["are you there?", "call me"]
    );
    assert_eq!(room.session.history_in(Some("u2")), History::Complete);
    // The room's own history still goes on from the room's first message.
    s.open_conversation(id, None);
    let out = load_older(&mut s, id);
    assert!(
        matches!(&out.send[..], [ClientAction::HistoryRequest(r)]
            if r.before == 900 && r.with.is_none()),
        "{:?}",
        out.send
    );
}
