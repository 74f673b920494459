//! Engine unit tests: each rule of the contract, driven through its public inputs.

use super::*;
use crate::testing::Pair;
use crate::wire::*;

const T0: Millis = Pair::T0;

/// The room and an in-memory host (`crate::testing::Pair`), answering nothing by itself but
/// storage writes: history requests wait for each test to answer.
struct Harness;

impl Harness {
    #[allow(clippy::new_ret_no_self)]
    fn new() -> Pair {
        Self::with(RoomConfig::default(), RoomSnapshot::default())
    }

    fn with(config: RoomConfig, snapshot: RoomSnapshot) -> Pair {
        let mut pair = Pair::with(config, snapshot);
        pair.answer_history = false;
        pair
    }
}

/// A known user identifying again with its token, asking for what came after `since`.
fn returning(user: UserId, token: String, since: Seq) -> ClientAction {
    ClientAction::HandshakeUserInfo(HandshakeUserInfo {
        user_id: Some(user),
        token: Some(token),
        since: Some(since),
        protocol_version: None,
    })
}

fn message(text: &str, nonce: Option<&str>) -> ClientAction {
    ClientAction::Message(SendMessage {
        raw_message: text.to_owned(),
        user_id: None,
        nonce: nonce.map(str::to_owned),
        reply_to: None,
        to: None,
    })
}

fn rename(name: &str, claim: Option<&str>) -> ClientAction {
    ClientAction::NameChange(ChangeName {
        name: name.to_owned(),
        user_id: claim.map(str::to_owned),
    })
}

fn stored(seq: Seq, user: &str, raw: &str) -> StoredMessage {
    StoredMessage {
        seq,
        id: format!("m{seq}"),
        user_id: user.to_owned(),
        raw: raw.to_owned(),
        html: format!("<p>{raw}</p>\n"),
        timestamp: T0 + i64::try_from(seq).unwrap_or(0),
        ..StoredMessage::default()
    }
}

/// Lets the presence tick pass; the `PRESENCE` frames `conn` got.
pub(super) fn presence_after_tick(h: &mut Pair, conn: ConnectionId) -> Vec<crate::wire::Presence> {
    let tick = h.room.config().presence_tick_ms;
    h.advance(tick);
    h.take(conn)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Presence(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn connect_sends_handshake_then_new_user_gets_the_legacy_sequence() {
    let mut h = Harness::new();
    let conn = h.connect(1);
    let first = h.take(conn);
    assert!(matches!(&first[..], [ServerAction::Handshake(hs)]
        if hs.server_name == "General" && hs.messages.is_empty()
            && hs.protocol_version == Some(PROTOCOL_VERSION)));

    h.act(
        conn,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo::default()),
    );
    let got = h.take(conn);
    // Legacy order: NAME_CHANGE (Anonymous), USER_INFO, then USER_CONNECTED.
    let [
        ServerAction::NameChange(named),
        ServerAction::UserInfo(info),
        ServerAction::UserConnected(connected),
    ] = &got[..]
    else {
        panic!("unexpected sequence {got:?}");
    };
    assert_eq!(named.name, DEFAULT_NAME);
    assert_eq!(named.user_id, info.user_id);
    assert_eq!(connected.user_id, info.user_id);
    let token = info.token.as_deref().expect("token");
    assert_eq!(token.len(), 64);
    // Storage keeps the token's hash, never the token.
    let record = &h.user(&info.user_id).expect("stored user");
    assert_eq!(record.token_hash, hash_token(token));
    assert_ne!(record.token_hash, token);
}

#[test]
fn two_users_chat_and_everyone_gets_each_message_once() {
    let mut h = Harness::new();
    let (a, alice, _) = h.join(1);
    let (b, _bob, _) = h.join(2);
    h.take(a);
    h.say(a, "hello **bob**");
    let at_a = h.messages(a);
    let at_b = h.messages(b);
    assert_eq!(at_a, at_b);
    assert_eq!(at_a.len(), 1);
    assert_eq!(at_a[0].user_id, alice);
    assert_eq!(at_a[0].seq, Some(1));
    assert_eq!(at_a[0].html_message, "<p>hello <strong>bob</strong></p>\n");
    assert_eq!(at_a[0].timestamp, h.now);
    assert_eq!(h.stored.len(), 1);
}

#[test]
fn nothing_is_broadcast_before_storage_confirms() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    h.auto_persist = false;
    h.say(a, "one");
    h.say(a, "two");
    assert!(h.messages(a).is_empty(), "broadcast before stored");
    assert_eq!(h.unconfirmed, vec![1, 2]);
    h.room.handle_persisted(h.now, 1);
    h.pump();
    assert_eq!(
        h.messages(a).iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![Some(1)]
    );
    h.room.handle_persisted(h.now, 2);
    h.pump();
    assert_eq!(
        h.messages(a).iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![Some(2)]
    );
}

#[test]
fn a_failed_store_is_reported_to_its_author_only() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    let (b, _, _) = h.join(2);
    h.take(a);
    h.take(b);
    h.auto_persist = false;
    h.act(a, message("lost", Some("n1")));
    h.room.handle_persist_failed(h.now);
    h.pump();
    assert_eq!(h.errors(a), vec![ErrorCode::StorageFailed]);
    assert!(h.take(b).is_empty());
    // The nonce is free again: a resend is accepted as a new message.
    h.auto_persist = true;
    h.act(a, message("lost", Some("n1")));
    assert_eq!(h.messages(b).len(), 1);
}

#[test]
fn a_payload_user_id_is_never_trusted() {
    let mut h = Harness::new();
    let (a, alice, _) = h.join(1);
    let (b, bob, _) = h.join(2);
    h.take(a);
    h.take(b);
    let forged = ClientAction::Message(SendMessage {
        raw_message: "I am alice".into(),
        user_id: Some(alice.clone()),
        nonce: None,
        reply_to: None,
        to: None,
    });
    h.act(b, forged);
    assert_eq!(h.errors(b), vec![ErrorCode::UserMismatch]);
    assert!(h.messages(a).is_empty());
    h.act(b, rename("Mallory", Some(&alice)));
    assert_eq!(h.errors(b), vec![ErrorCode::UserMismatch]);
    assert!(h.user(&alice).expect("stored user").name == DEFAULT_NAME);
    // Naming yourself correctly is fine: the asker hears its echo at once, everyone with
    // the presence tick.
    h.act(b, rename("Bob", Some(&bob)));
    assert!(matches!(&h.take(b)[..], [ServerAction::NameChange(n)] if n.name == "Bob"));
    let told = presence_after_tick(&mut h, a);
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].names.get(&bob).map(String::as_str), Some("Bob"));
    // A legacy client ignores PRESENCE: it is told the name just before Bob's next message,
    // once.
    h.say(b, "hi");
    h.say(b, "again");
    let got = h.take(a);
    assert!(
        matches!(&got[..], [ServerAction::NameChange(n), ServerAction::Message(_), ServerAction::Message(_)]
            if n.user_id == bob && n.name == "Bob"),
        "{got:?}"
    );
    // Renamed again: told the new name before the next message, once more.
    h.act(b, rename("Robert", Some(&bob)));
    h.take(b);
    h.say(b, "renamed");
    h.say(b, "and again");
    // (The PRESENCE that ends the tick first is ignored by a legacy client.)
    let got: Vec<ServerAction> = h
        .take(a)
        .into_iter()
        .filter(|x| !matches!(x, ServerAction::Presence(_)))
        .collect();
    assert!(
        matches!(&got[..], [ServerAction::NameChange(n), ServerAction::Message(_), ServerAction::Message(_)]
            if n.user_id == bob && n.name == "Robert"),
        "{got:?}"
    );
}

#[test]
fn resuming_an_identity_needs_its_token() {
    let mut h = Harness::new();
    let (a, alice, token) = h.join(1);
    h.act(a, rename("Alice", None));
    h.disconnect(a);

    // Without the token (as a legacy client would): a new identity and an explanation.
    let thief = h.connect(2);
    h.take(thief);
    h.act(
        thief,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            user_id: Some(alice.clone()),
            token: None,
            since: None,
            protocol_version: None,
        }),
    );
    let got = h.take(thief);
    assert!(
        got.iter()
            .any(|x| matches!(x, ServerAction::Error(e) if e.code == ErrorCode::IdentityRejected))
    );
    let info = got
        .iter()
        .find_map(|x| match x {
            ServerAction::UserInfo(i) => Some(i),
            _ => None,
        })
        .expect("info");
    assert_ne!(info.user_id, alice);

    // With a wrong token: the same.
    let thief2 = h.connect(3);
    h.act(
        thief2,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            user_id: Some(alice.clone()),
            token: Some("0".repeat(64)),
            since: None,
            protocol_version: None,
        }),
    );
    assert!(h.errors(thief2).contains(&ErrorCode::IdentityRejected));

    // With it: the same identity and name, and no new token.
    let back = h.connect(4);
    h.take(back);
    h.act(
        back,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            user_id: Some(alice.clone()),
            token: Some(token),
            since: None,
            protocol_version: None,
        }),
    );
    let got = h.take(back);
    assert!(
        matches!(&got[0], ServerAction::UserInfo(i) if i.user_id == alice && i.name == "Alice" && i.token.is_none())
    );
}

#[test]
fn actions_before_identifying_are_refused_and_identifying_twice_too() {
    let mut h = Harness::new();
    let conn = h.connect(1);
    h.take(conn);
    h.say(conn, "hi");
    h.act(conn, rename("x", None));
    assert_eq!(
        h.errors(conn),
        vec![ErrorCode::NotIdentified, ErrorCode::NotIdentified]
    );
    assert!(h.stored.is_empty());
    h.act(
        conn,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo::default()),
    );
    h.take(conn);
    h.act(
        conn,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo::default()),
    );
    assert_eq!(h.errors(conn), vec![ErrorCode::AlreadyIdentified]);
}

#[test]
fn name_rules() {
    let mut h = Harness::new();
    let (a, alice, _) = h.join(1);
    h.take(a);
    for bad in ["", "   ", "a\u{0}b", "tab\there", &"n".repeat(33)] {
        h.act(a, rename(bad, None));
        assert_eq!(h.errors(a), vec![ErrorCode::InvalidName], "{bad:?}");
    }
    h.act(a, rename("  Alice Liddell  ", None));
    let got = h.take(a);
    assert!(matches!(&got[..], [ServerAction::NameChange(n)]
        if n.name == "Alice Liddell" && n.id_name_pair.get(&alice).map(String::as_str) == Some("Alice Liddell")));
    assert_eq!(h.user(&alice).expect("stored user").name, "Alice Liddell");
}

#[test]
fn message_rules() {
    let config = RoomConfig {
        max_message_chars: 10,
        ..RoomConfig::default()
    };
    let mut h = Harness::with(config, RoomSnapshot::default());
    let (a, _, _) = h.join(1);
    h.take(a);
    h.say(a, "");
    h.say(a, " \n\t ");
    h.say(a, "12345678901");
    h.act(a, message("ok", Some("")));
    h.act(a, message("ok", Some(&"n".repeat(65))));
    assert_eq!(
        h.errors(a),
        vec![
            ErrorCode::EmptyMessage,
            ErrorCode::EmptyMessage,
            ErrorCode::MessageTooLong,
            ErrorCode::InvalidNonce,
            ErrorCode::InvalidNonce
        ]
    );
    // The limit counts characters, not bytes.
    h.say(a, "éééééééééé");
    assert_eq!(h.messages(a).len(), 1);
    assert_eq!(h.stored.len(), 1);
}

#[test]
fn rate_limit_is_per_connection_on_the_passed_in_clock() {
    let config = RoomConfig {
        rate_burst: 3,
        rate_per_second: 1,
        ..RoomConfig::default()
    };
    let mut h = Harness::with(config, RoomSnapshot::default());
    let (a, _, _) = h.join(1);
    let (b, _, _) = h.join(2);
    h.take(a);
    for i in 0..5 {
        h.say(a, &format!("flood {i}"));
    }
    assert_eq!(
        h.errors(a),
        vec![ErrorCode::RateLimited, ErrorCode::RateLimited]
    );
    assert_eq!(h.stored.len(), 3);
    // Another connection is not affected.
    h.say(b, "calm");
    assert!(h.errors(b).is_empty());
    assert_eq!(h.stored.len(), 4);
    // After a second on the room's clock, one more is allowed.
    h.now += 1_000;
    h.say(a, "later");
    h.say(a, "too soon");
    assert_eq!(h.errors(a), vec![ErrorCode::RateLimited]);
    assert_eq!(h.stored.len(), 5);
}

#[test]
fn a_resent_nonce_is_stored_once_and_echoed_to_the_resender() {
    let mut h = Harness::new();
    let (a, alice, token) = h.join(1);
    let (b, _, _) = h.join(2);
    h.take(a);
    h.act(a, message("once", Some("abc")));
    let echo = h.messages(a);
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].nonce.as_deref(), Some("abc"));
    h.take(b);
    // The sender lost the echo, reconnects and resends with the same nonce.
    h.disconnect(a);
    let a2 = h.connect(3);
    h.act(
        a2,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            user_id: Some(alice),
            token: Some(token),
            since: None,
            protocol_version: None,
        }),
    );
    h.take(a2);
    h.act(a2, message("once", Some("abc")));
    assert_eq!(h.stored.len(), 1, "stored twice");
    assert_eq!(h.messages(a2), echo, "the resender gets the stored copy");
    assert!(h.messages(b).is_empty(), "others see it once");
    // The same nonce from another user is a different message.
    h.act(b, message("mine", Some("abc")));
    assert_eq!(h.stored.len(), 2);
}

#[test]
fn a_resend_while_storage_is_pending_is_dropped() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    h.take(a);
    h.auto_persist = false;
    h.act(a, message("x", Some("n")));
    h.act(a, message("x", Some("n")));
    assert_eq!(h.unconfirmed, vec![1]);
    h.room.handle_persisted(h.now, 1);
    h.pump();
    assert_eq!(h.messages(a).len(), 1);
}

#[test]
fn handshake_carries_the_latest_hundred_and_names() {
    let snapshot = RoomSnapshot {
        messages: (1..=150)
            .map(|s| stored(s, "old", &format!("m{s}")))
            .collect(),
        complete: true,
        latest_seq: 150,
        users: vec![UserRecord {
            id: "old".into(),
            name: "Oldtimer".into(),
            token_hash: hash_token("t"),
            joined_at: None,
            last_seen: None,
            role: None,
            timed_out_until: None,
            ban: None,
        }],
        settings: Default::default(),
        ..RoomSnapshot::default()
    };
    let mut h = Harness::with(RoomConfig::default(), snapshot);
    let conn = h.connect(1);
    let got = h.take(conn);
    let ServerAction::Handshake(hs) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(hs.messages.len(), 100);
    assert_eq!(hs.messages.first().and_then(|m| m.seq), Some(51));
    assert_eq!(hs.messages.last().and_then(|m| m.seq), Some(150));
    assert_eq!(hs.latest_seq, Some(150));
    assert_eq!(
        hs.user_names.get("old").map(String::as_str),
        Some("Oldtimer")
    );
    // New messages continue the sequence.
    h.act(
        conn,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo::default()),
    );
    h.say(conn, "next");
    assert_eq!(h.messages(conn)[0].seq, Some(151));
}

#[test]
fn resume_returns_exactly_what_was_missed() {
    let mut h = Harness::new();
    let (a, alice, token) = h.join(1);
    let (b, _, _) = h.join(2);
    h.say(b, "one");
    let seen = h.messages(a);
    assert_eq!(seen.len(), 1);
    h.disconnect(a);
    h.say(b, "two");
    h.say(b, "three");
    let a2 = h.connect(3);
    h.say(b, "four"); // after a2's handshake: reaches it by broadcast, not by RESUME
    h.act(a2, returning(alice, token, 1));
    let got = h.take(a2);
    let resume = got
        .iter()
        .find_map(|x| match x {
            ServerAction::Resume(r) => Some(r),
            _ => None,
        })
        .expect("RESUME");
    assert!(!resume.gap_too_big);
    let seqs: Vec<_> = resume.messages.iter().filter_map(|m| m.seq).collect();
    assert_eq!(seqs, vec![2, 3]);
    let broadcast: Vec<_> = got
        .iter()
        .filter_map(|x| match x {
            ServerAction::Message(m) => m.seq,
            _ => None,
        })
        .collect();
    assert_eq!(broadcast, vec![4]);
}

#[test]
fn resume_says_when_the_gap_is_too_big() {
    let config = RoomConfig {
        cache_messages: 5,
        ..RoomConfig::default()
    };
    let mut h = Harness::with(config, RoomSnapshot::default());
    let (a, _, _) = h.join(1);
    for i in 0..8 {
        h.now += 1_000;
        h.say(a, &format!("m{i}"));
    }
    let b = h.connect(2);
    h.act(
        b,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            since: Some(1),
            ..HandshakeUserInfo::default()
        }),
    );
    let got = h.take(b);
    assert!(
        got.iter().any(
            |x| matches!(x, ServerAction::Resume(r) if r.gap_too_big && r.messages.is_empty())
        )
    );
    // A gap the cache still covers is served.
    let c = h.connect(3);
    h.act(
        c,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            since: Some(5),
            ..HandshakeUserInfo::default()
        }),
    );
    let got = h.take(c);
    assert!(
        got.iter().any(
            |x| matches!(x, ServerAction::Resume(r) if !r.gap_too_big && r.messages.len() == 3)
        )
    );
}

/// A room whose memory holds messages 101 to 120 (older ones only in storage).
fn messages_101_to_120() -> RoomSnapshot {
    RoomSnapshot {
        messages: (101..=120).map(|s| stored(s, "u", "x")).collect(),
        complete: false,
        latest_seq: 120,
        users: Vec::new(),
        ..RoomSnapshot::default()
    }
}

#[test]
fn history_pages_come_from_memory_or_storage() {
    let snapshot = messages_101_to_120();
    let mut h = Harness::with(RoomConfig::default(), snapshot);
    let conn = h.connect(1);
    h.take(conn);
    let request = |before, limit| {
        ClientAction::HistoryRequest(HistoryRequest {
            before,
            limit,
            with: None,
        })
    };
    h.act(conn, request(111, 5));
    let got = h.take(conn);
    assert!(matches!(&got[..], [ServerAction::History(p)]
        if p.before == 111 && p.has_more
            && p.messages.iter().filter_map(|m| m.seq).collect::<Vec<_>>() == vec![106, 107, 108, 109, 110]));
    // Older than memory holds: storage is asked, and its answer is passed on.
    h.act(conn, request(103, 50));
    assert_eq!(h.history_requests, vec![(conn, 103, 50)]);
    h.room.handle_history_loaded(
        h.now,
        conn,
        (103, None),
        (53..=102).map(|s| stored(s, "u", "y")).collect(),
        true,
    );
    h.pump();
    let got = h.take(conn);
    assert!(matches!(&got[..], [ServerAction::History(p)] if p.messages.len() == 50 && p.has_more));
    // A failed read is reported, not passed off as an empty page.
    h.act(conn, request(103, 10));
    h.room.handle_history_failed(h.now, conn);
    h.pump();
    // With its own code: it is about no message of the asker's.
    assert_eq!(h.errors(conn), vec![ErrorCode::HistoryFailed]);
    // Limits are capped and 0 is refused.
    h.act(conn, request(120, 0));
    assert_eq!(h.errors(conn), vec![ErrorCode::InvalidHistoryRequest]);
    h.act(conn, request(121, 10_000));
    assert_eq!(h.history_requests.last(), Some(&(conn, 121, 100)));
}

#[test]
fn presence_tracks_users_not_connections() {
    let mut h = Harness::new();
    let (a, alice, token) = h.join(1);
    let watcher = h.connect(9);
    h.take(watcher);
    // A second tab of the same user: no presence change.
    let a2 = h.connect(2);
    h.act(
        a2,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            user_id: Some(alice.clone()),
            token: Some(token),
            since: None,
            protocol_version: None,
        }),
    );
    assert!(presence_after_tick(&mut h, watcher).is_empty());
    let late = h.connect(3);
    let got = h.take(late);
    assert!(
        matches!(&got[0], ServerAction::Handshake(hs) if hs.online.as_deref() == Some(&[alice.clone()][..]))
    );
    h.disconnect(a);
    assert!(
        presence_after_tick(&mut h, watcher).is_empty(),
        "still online in the other tab"
    );
    h.disconnect(a2);
    let left = h.now;
    assert_eq!(
        presence_after_tick(&mut h, watcher),
        vec![crate::wire::Presence {
            left: vec![UserRef {
                last_seen: Some(left),
                ..UserRef::of(alice)
            }],
            online_count: Some(0),
            ..crate::wire::Presence::default()
        }]
    );
}

#[test]
fn presence_is_one_frame_per_tick_for_everyone_however_many_change() {
    let mut h = Harness::new();
    let watcher = h.connect(1);
    h.act(
        watcher,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            protocol_version: Some(PROTOCOL_VERSION),
            ..HandshakeUserInfo::default()
        }),
    );
    presence_after_tick(&mut h, watcher);
    let start = h.now;
    // Fifty people identify within one tick; one leaves again, one renames.
    let mut joined = Vec::new();
    for id in 10..60 {
        let conn = h.connect(id);
        h.act(
            conn,
            ClientAction::HandshakeUserInfo(HandshakeUserInfo::default()),
        );
        let user = h.take(conn).into_iter().find_map(|a| match a {
            ServerAction::UserInfo(info) => Some(info.user_id),
            _ => None,
        });
        joined.push((conn, user.expect("identified")));
    }
    h.act(joined[1].0, rename("Ana", None));
    h.disconnect(joined[2].0);
    assert_eq!(
        h.room.poll_timeout(),
        Some(start + h.room.config().presence_tick_ms)
    );
    assert!(
        h.take(watcher).is_empty(),
        "nothing before the tick ends, however many changed"
    );
    let told = presence_after_tick(&mut h, watcher);
    let [presence] = &told[..] else {
        panic!("one frame for the tick: {told:?}");
    };
    let mut online: Vec<&str> = presence.joined.iter().map(|u| u.user_id.as_str()).collect();
    online.sort_unstable();
    let mut expected: Vec<&str> = joined
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, (_, u))| u.as_str())
        .collect();
    expected.sort_unstable();
    assert_eq!(online, expected, "each person once, as at the tick's end");
    assert!(presence.joined.iter().all(|u| u.joined_at == Some(start)));
    assert_eq!(presence.left.len(), 1);
    assert_eq!(presence.left[0].user_id, joined[2].1);
    assert_eq!(
        presence.names,
        BTreeMap::from([(joined[1].1.clone(), "Ana".to_owned())])
    );
    // Each of the fifty legacy clients heard that one frame too (and ignores it).
    assert_eq!(presence_after_tick(&mut h, joined[0].0).len(), 1);
    // Nothing changed since: no frame, no timer.
    assert_eq!(h.room.poll_timeout(), None);
    // A message of someone whose presence is still in a running tick tells the tick first.
    let late = h.connect(99);
    h.act(
        late,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo::default()),
    );
    h.take(late);
    h.say(late, "hi, I just came");
    let got = h.take(watcher);
    assert!(
        matches!(&got[..], [ServerAction::Presence(p), ServerAction::Message(_)] if p.joined.len() == 1),
        "{got:?}"
    );
}

#[test]
fn bad_frames_get_errors_and_change_nothing() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    h.take(a);
    for (text, code) in [
        ("{", ErrorCode::InvalidJson),
        ("\"str\"", ErrorCode::InvalidJson),
        (
            r#"{"type":"DROP_TABLE","payload":{}}"#,
            ErrorCode::UnknownType,
        ),
        (
            r#"{"type":"MESSAGE","payload":{"rawMessage":["x"]}}"#,
            ErrorCode::InvalidPayload,
        ),
        (
            r#"{"type":"MESSAGE","payload":null}"#,
            ErrorCode::InvalidPayload,
        ),
    ] {
        h.frame(a, text);
        assert_eq!(h.errors(a), vec![code], "{text}");
    }
    assert!(h.stored.is_empty());
    h.frame(a, r#"{"type":"MESSAGE","payload":{"rawMessage":"fine"}}"#);
    assert_eq!(h.messages(a).len(), 1);
}

#[test]
fn stored_html_is_rendered_here_not_taken_from_the_client() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    h.take(a);
    h.frame(
        a,
        r#"{"type":"MESSAGE","payload":{"rawMessage":"<img src=x onerror=alert(1)>","htmlMessage":"<script>alert(1)</script>"}}"#,
    );
    let got = h.messages(a);
    assert_eq!(
        got[0].html_message,
        "<p>&lt;img src=x onerror=alert(1)&gt;</p>\n"
    );
    assert_eq!(h.stored[0].html, got[0].html_message);
}

#[test]
fn the_cache_is_bounded() {
    let config = RoomConfig {
        cache_messages: 10,
        rate_burst: 1000,
        ..RoomConfig::default()
    };
    let mut h = Harness::with(config, RoomSnapshot::default());
    let (a, _, _) = h.join(1);
    for i in 0..50 {
        h.act(a, message("x", Some(&format!("n{i}"))));
    }
    assert_eq!(h.room.recent.len(), 10);
    assert_eq!(h.room.nonces.len(), 10);
    assert_eq!(h.room.recent_floor, 40);
}

/// The nonce named by each `ERROR` the connection got.
fn refusals(h: &mut Pair, conn: ConnectionId) -> Vec<(ErrorCode, Option<String>)> {
    h.take(conn)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Error(ErrorPayload { code, nonce, .. }) => Some((code, nonce)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_refusal_names_the_nonce_it_refuses() {
    let config = RoomConfig {
        max_message_chars: 10,
        rate_burst: 3,
        rate_per_second: 1,
        ..RoomConfig::default()
    };
    let mut h = Harness::with(config, RoomSnapshot::default());
    let (a, _, _) = h.join(1);
    h.take(a);
    h.act(a, message("far too long for it", Some("n-long")));
    h.act(a, message("  ", Some("n-blank")));
    h.act(a, message(&">".repeat(10), Some("n-deep")));
    h.act(a, message("over the rate", Some("n-rate")));
    assert_eq!(
        refusals(&mut h, a),
        vec![
            (ErrorCode::MessageTooLong, Some("n-long".into())),
            (ErrorCode::EmptyMessage, Some("n-blank".into())),
            (ErrorCode::RateLimited, Some("n-rate".into())),
        ],
        "each refusal names its own message; `>` 10 times is within the allowance"
    );
    // A nonce that is itself invalid is not echoed back.
    h.now += 10_000;
    h.act(a, message("ok", Some(&"n".repeat(65))));
    assert_eq!(refusals(&mut h, a), vec![(ErrorCode::InvalidNonce, None)]);
    // Not identified: the refusal still names the message.
    let b = h.connect(2);
    h.take(b);
    h.act(b, message("hi", Some("n-anon")));
    assert_eq!(
        refusals(&mut h, b),
        vec![(ErrorCode::NotIdentified, Some("n-anon".into()))]
    );
}

#[test]
fn a_failed_store_names_the_message_and_a_failed_history_read_names_none() {
    let mut h = Harness::new();
    h.auto_persist = false;
    let (a, _, _) = h.join(1);
    h.take(a);
    h.act(a, message("first", Some("n-1")));
    h.act(a, message("second", Some("n-2")));
    let [_, second] = h.unconfirmed[..] else {
        panic!("two writes pending: {:?}", h.unconfirmed)
    };
    // The first one fails while the second is still being written.
    h.room.handle_persist_failed(h.now);
    h.pump();
    assert_eq!(
        refusals(&mut h, a),
        vec![(ErrorCode::StorageFailed, Some("n-1".into()))]
    );
    h.room.handle_persisted(h.now, second);
    h.pump();
    let told = h.messages(a);
    assert_eq!(told.len(), 1);
    assert_eq!(
        (told[0].raw_message.as_str(), told[0].seq),
        ("second", Some(second))
    );
    h.room.handle_history_failed(h.now, a);
    h.pump();
    assert_eq!(refusals(&mut h, a), vec![(ErrorCode::HistoryFailed, None)]);
}

#[test]
fn a_message_that_renders_to_far_more_html_is_refused() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    h.take(a);
    // 4,000 `>` render to over 100 KB of nested quotes: 27 times the source.
    h.act(a, message(&">".repeat(4000), Some("deep")));
    h.act(a, message(&"> - ".repeat(1000), Some("lists")));
    assert_eq!(
        refusals(&mut h, a),
        vec![
            (ErrorCode::MessageTooComplex, Some("deep".into())),
            (ErrorCode::MessageTooComplex, Some("lists".into())),
        ]
    );
    assert!(h.stored.is_empty(), "nothing refused is stored");
    // A wide table, lists and quotes people write are accepted.
    let table = format!(
        "|{}|\n|{}|\n|{}|",
        "h|".repeat(14),
        "-|".repeat(14),
        "x|".repeat(14)
    );
    for fine in [
        table.as_str(),
        "> quote\n>> reply\n\n- a\n  - b\n    - c",
        "**bold** _it_",
    ] {
        h.now += 1_000;
        h.say(a, fine);
    }
    assert_eq!(h.stored.len(), 3);
}

#[test]
fn names_refused_with_the_reason() {
    let mut h = Harness::new();
    let (a, alice, _) = h.join(1);
    h.take(a);
    for (bad, why) in [
        ("\u{200B}\u{200B}", "visible"),
        ("\u{3164}", "visible"),
        ("abc\u{202E}gnp.exe", "override"),
        ("Z\u{35C}\u{35C}\u{35C}\u{35C}\u{35C}", "accents"),
    ] {
        h.now += 1_000;
        h.act(a, rename(bad, None));
        let got = h.take(a);
        assert!(
            matches!(&got[..], [ServerAction::Error(e)]
                if e.code == ErrorCode::InvalidName && e.message.contains(why)),
            "{bad:?}: {got:?}"
        );
    }
    // Stored in NFC: the same name typed two ways is one name.
    h.act(a, rename("Zoe\u{301}", None));
    assert_eq!(h.user(&alice).expect("stored user").name, "Zo\u{e9}");
}

#[test]
fn new_identities_are_limited_per_address() {
    let config = RoomConfig {
        identity_burst: 3,
        identities_per_minute: 6,
        ..RoomConfig::default()
    };
    let mut h = Harness::with(config, RoomSnapshot::default());
    let attacker: IpAddr = "192.0.2.7".parse().expect("ip");
    let identify = |h: &mut Pair, id: u64, from: IpAddr, info: HandshakeUserInfo| {
        let conn = h.connect_from(id, Some(from));
        h.act(conn, ClientAction::HandshakeUserInfo(info));
        conn
    };
    let watcher = h.connect(100);
    h.take(watcher);
    let mut kept = None;
    for id in 0..3 {
        let conn = identify(&mut h, id, attacker, HandshakeUserInfo::default());
        let info = h.take(conn).into_iter().find_map(|a| match a {
            ServerAction::UserInfo(info) => Some(info),
            _ => None,
        });
        kept = info.map(|i| (i.user_id, i.token));
    }
    // The fourth new identity from that address is refused, stores nothing, announces nothing.
    let users_before = h.users.len();
    let names_seen = |h: &mut Pair| {
        presence_after_tick(h, watcher)
            .iter()
            .map(|p| p.joined.len())
            .sum::<usize>()
    };
    assert_eq!(names_seen(&mut h), 3);
    let refused = identify(&mut h, 10, attacker, HandshakeUserInfo::default());
    assert_eq!(h.errors(refused), vec![ErrorCode::TooManyIdentities]);
    assert_eq!(h.users.len(), users_before);
    assert_eq!(names_seen(&mut h), 0);
    h.act(refused, message("hi", None));
    assert_eq!(h.errors(refused), vec![ErrorCode::NotIdentified]);
    // An IPv6 neighbour in the same /64 counts as the same subscriber; another is unaffected.
    let v6 = |s: &str| -> IpAddr { s.parse().expect("ip") };
    for id in 20..23 {
        identify(
            &mut h,
            id,
            v6("2001:db8:1:2::1"),
            HandshakeUserInfo::default(),
        );
    }
    let same_64 = identify(
        &mut h,
        23,
        v6("2001:db8:1:2:ffff::9"),
        HandshakeUserInfo::default(),
    );
    assert_eq!(h.errors(same_64), vec![ErrorCode::TooManyIdentities]);
    let other = identify(
        &mut h,
        24,
        v6("2001:db8:1:3::1"),
        HandshakeUserInfo::default(),
    );
    assert!(h.errors(other).is_empty());
    // A known identity with its token is not a new one.
    let (user_id, token) = kept.expect("an identity was issued");
    let back = identify(
        &mut h,
        30,
        attacker,
        HandshakeUserInfo {
            user_id: Some(user_id.clone()),
            token,
            since: None,
            protocol_version: None,
        },
    );
    assert!(
        h.take(back)
            .iter()
            .any(|a| matches!(a, ServerAction::UserInfo(i) if i.user_id == user_id))
    );
    // The budget refills: one new identity every ten seconds.
    h.now += 10_000;
    let later = identify(&mut h, 40, attacker, HandshakeUserInfo::default());
    assert!(h.errors(later).is_empty());
}

#[test]
fn answers_are_bounded_in_bytes_and_paging_still_reaches_the_start() {
    let config = RoomConfig {
        max_answer_bytes: 20_000,
        ..RoomConfig::default()
    };
    // 30 messages of about 4 KB each on the wire: 120 KB, six times the budget.
    let big = "x".repeat(2000);
    let snapshot = RoomSnapshot {
        messages: (1..=30).map(|s| stored(s, "u", &big)).collect(),
        complete: true,
        latest_seq: 30,
        users: Vec::new(),
        settings: Default::default(),
        ..RoomSnapshot::default()
    };
    let mut h = Harness::with(config, snapshot);
    let conn = h.connect(1);
    let handshake = h.take(conn).into_iter().find_map(|a| match a {
        ServerAction::Handshake(hs) => Some(hs),
        _ => None,
    });
    let handshake = handshake.expect("HANDSHAKE");
    let size =
        |records: &[MessageRecord]| records.iter().map(MessageRecord::wire_len).sum::<usize>();
    assert!(size(&handshake.messages) <= 20_000);
    assert!(!handshake.messages.is_empty());
    assert_eq!(handshake.messages.last().and_then(|m| m.seq), Some(30));
    // Page back to the start: every page fits, and together they hold every message once.
    let mut seen: Vec<Seq> = handshake.messages.iter().filter_map(|m| m.seq).collect();
    let mut before = seen[0];
    let mut pages = 0;
    loop {
        h.now += 1_000;
        h.act(
            conn,
            ClientAction::HistoryRequest(HistoryRequest {
                before,
                limit: 100,
                with: None,
            }),
        );
        let page = h.take(conn).into_iter().find_map(|a| match a {
            ServerAction::History(p) => Some(p),
            _ => None,
        });
        let page = page.expect("HISTORY");
        assert!(size(&page.messages) <= 20_000);
        let seqs: Vec<Seq> = page.messages.iter().filter_map(|m| m.seq).collect();
        seen.splice(0..0, seqs.iter().copied());
        pages += 1;
        if !page.has_more {
            break;
        }
        before = seqs[0];
        assert!(pages < 30, "paging moves on");
    }
    assert_eq!(seen, (1..=30).collect::<Vec<_>>());
    // A resume that would be larger than the budget says gapTooBig instead.
    h.act(
        conn,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            since: Some(0),
            ..HandshakeUserInfo::default()
        }),
    );
    let resume = h.take(conn).into_iter().find_map(|a| match a {
        ServerAction::Resume(r) => Some(r),
        _ => None,
    });
    assert!(resume.is_some_and(|r| r.gap_too_big && r.messages.is_empty()));
}

#[test]
fn the_start_of_the_room_and_a_since_from_the_future_are_said_plainly() {
    let snapshot = messages_101_to_120();
    let mut h = Harness::with(RoomConfig::default(), snapshot);
    let conn = h.connect(1);
    h.take(conn);
    for before in [0, 1] {
        h.act(
            conn,
            ClientAction::HistoryRequest(HistoryRequest {
                before,
                limit: 10,
                with: None,
            }),
        );
        let got = h.take(conn);
        assert!(
            matches!(&got[..], [ServerAction::History(p)] if p.messages.is_empty() && !p.has_more),
            "before {before}: {got:?}"
        );
    }
    // A since beyond anything this room has (it was reset, or the client is confused): the
    // client is told to start afresh rather than given an empty resume.
    h.act(
        conn,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            since: Some(500),
            ..HandshakeUserInfo::default()
        }),
    );
    let got = h.take(conn);
    assert!(
        got.iter()
            .any(|a| matches!(a, ServerAction::Resume(r) if r.gap_too_big)),
        "{got:?}"
    );
}

pub(super) fn edit(target: Seq, text: &str, nonce: &str) -> ClientAction {
    ClientAction::EditMessage(crate::wire::EditMessage {
        target,
        raw_message: text.to_owned(),
        nonce: Some(nonce.to_owned()),
    })
}

pub(super) fn delete(target: Seq, nonce: &str) -> ClientAction {
    ClientAction::DeleteMessage(crate::wire::DeleteMessage {
        target,
        nonce: Some(nonce.to_owned()),
    })
}

fn changed(h: &mut Pair, conn: ConnectionId) -> Vec<MessageRecord> {
    h.take(conn)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::MessageChanged(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn an_author_edits_and_deletes_their_message_and_everyone_sees_it_as_it_is_now() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    let (b, _, _) = h.join(2);
    h.say(a, "helo");
    h.take(a);
    h.take(b);
    h.now += 1_000;
    let edited = h.now;
    h.act(a, edit(1, "hello **all**", "e1"));
    let [at_b] = &changed(&mut h, b)[..] else {
        panic!("one change");
    };
    assert_eq!(at_b.seq, Some(1));
    assert_eq!(at_b.raw_message, "hello **all**");
    assert_eq!(at_b.html_message, "<p>hello <strong>all</strong></p>\n");
    assert_eq!(at_b.edited_at, Some(edited));
    assert_eq!(at_b.changed_seq, Some(2), "the change has a seq of its own");
    assert_eq!(changed(&mut h, a).len(), 1, "the author hears it too");
    h.act(a, delete(1, "d1"));
    let [gone] = &changed(&mut h, b)[..] else {
        panic!("one change");
    };
    assert!(gone.deleted);
    assert_eq!(gone.raw_message, "", "the text is gone for everyone");
    assert_eq!(gone.html_message, DELETED_HTML);
    assert_eq!(gone.changed_seq, Some(3));
    // Storage holds it as it is now.
    assert!(h.stored[0].deleted && h.stored[0].raw.is_empty());
    // A deleted message cannot be edited or deleted again.
    h.act(a, edit(1, "back", "e2"));
    assert_eq!(h.errors(a), vec![ErrorCode::MessageDeleted]);
}

#[test]
fn every_seq_is_the_one_the_hosts_log_gave() {
    // A log that numbers events 10 apart (a cluster's stream numbers more than this room's
    // events): messages, changes, replies, handshakes and resumes all use its numbers.
    let mut h = Harness::new();
    h.log_step = 10;
    let (a, alice, token) = h.join(1);
    let (b, _, _) = h.join(2);
    h.say(b, "one");
    assert_eq!(
        h.messages(a).iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![Some(10)]
    );
    h.act(b, edit(10, "uno", "e1"));
    let [edited] = &changed(&mut h, a)[..] else {
        panic!("one change");
    };
    assert_eq!((edited.seq, edited.changed_seq), (Some(10), Some(20)));
    // A reply names a seq the log gave; one it did not give (yet) is refused.
    for (answered, nonce) in [(10, "r1"), (25, "r2")] {
        h.act(
            b,
            ClientAction::Message(SendMessage {
                raw_message: "re".into(),
                user_id: None,
                nonce: Some(nonce.into()),
                reply_to: Some(answered),
                to: None,
            }),
        );
    }
    assert_eq!(h.errors(b), vec![ErrorCode::UnknownMessage]);
    let replies: Vec<_> = h.messages(a).iter().map(|m| (m.seq, m.reply_to)).collect();
    assert_eq!(replies, vec![(Some(30), Some(10))]);
    // Away and back: the resume starts after the seq it last saw, in the log's numbers.
    h.disconnect(a);
    h.say(b, "two");
    let a2 = h.connect(3);
    match h.take(a2).first() {
        Some(ServerAction::Handshake(hs)) => assert_eq!(hs.latest_seq, Some(40)),
        other => panic!("a handshake first, got {other:?}"),
    }
    h.act(a2, returning(alice, token, 30));
    let resumed: Vec<_> = h
        .take(a2)
        .into_iter()
        .filter_map(|x| match x {
            ServerAction::Resume(r) => Some(r),
            _ => None,
        })
        .collect();
    let [resume] = &resumed[..] else {
        panic!("one RESUME: {resumed:?}");
    };
    assert!(!resume.gap_too_big);
    assert_eq!(
        resume.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![Some(40)]
    );
    assert_eq!(h.room.latest_seq(), 40);
}

#[test]
fn only_the_author_may_change_a_message_and_refusals_name_the_nonce() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    let (b, _, _) = h.join(2);
    h.say(a, "mine");
    h.take(b);
    h.act(b, edit(1, "yours now", "e1"));
    h.act(b, delete(1, "d1"));
    h.act(b, edit(99, "nothing there", "e2"));
    let refusals: Vec<(ErrorCode, Option<String>)> = h
        .take(b)
        .into_iter()
        .filter_map(|x| match x {
            ServerAction::Error(e) => Some((e.code, e.nonce)),
            _ => None,
        })
        .collect();
    assert_eq!(
        refusals,
        vec![
            (ErrorCode::NotYourMessage, Some("e1".into())),
            (ErrorCode::NotYourMessage, Some("d1".into())),
            (ErrorCode::UnknownMessage, Some("e2".into())),
        ]
    );
    assert!(changed(&mut h, a).is_empty());
    // An edit is checked as a message is.
    h.act(a, edit(1, "   ", "e3"));
    h.act(a, edit(1, &"x".repeat(4001), "e4"));
    assert_eq!(
        h.errors(a),
        vec![ErrorCode::EmptyMessage, ErrorCode::MessageTooLong]
    );
    assert_eq!(h.stored[0].raw, "mine");
}

#[test]
fn a_change_is_seen_only_once_stored_and_a_failed_one_is_told_to_its_author() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    let (b, _, _) = h.join(2);
    h.say(a, "one");
    h.take(a);
    h.take(b);
    h.auto_persist = false;
    h.act(a, edit(1, "uno", "e1"));
    assert!(changed(&mut h, b).is_empty(), "not before storage");
    h.room.handle_persisted(h.now, 2);
    h.pump();
    assert_eq!(changed(&mut h, b).len(), 1);
    h.take(a);
    h.act(a, edit(1, "eins", "e2"));
    h.room.handle_persist_failed(h.now);
    h.pump();
    let refusal = h.take(a);
    assert!(matches!(&refusal[..], [ServerAction::Error(e)]
        if e.code == ErrorCode::StorageFailed && e.nonce.as_deref() == Some("e2")));
    assert!(changed(&mut h, b).is_empty());
}

#[test]
fn resume_and_handshake_bring_messages_as_they_are_now() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    for text in ["one", "two", "three"] {
        h.say(a, text);
    }
    let (b, bob, token) = h.join(2);
    h.take(b);
    h.disconnect(b);
    // While Bob is away: message 1 is edited, 2 is deleted, and 4 is new.
    h.act(a, edit(1, "one, edited", "e1"));
    h.act(a, delete(2, "d1"));
    h.say(a, "four");
    let back = h.connect(3);
    h.act(back, returning(bob, token, 3));
    let got = h.take(back);
    let handshake = got
        .iter()
        .find_map(|x| match x {
            ServerAction::Handshake(hs) => Some(hs),
            _ => None,
        })
        .expect("handshake");
    assert_eq!(
        handshake.latest_seq,
        Some(6),
        "changes count in the room's order"
    );
    assert_eq!(handshake.messages[0].raw_message, "one, edited");
    assert!(handshake.messages[1].deleted);
    let resume = got
        .iter()
        .find_map(|x| match x {
            ServerAction::Resume(r) => Some(r),
            _ => None,
        })
        .expect("resume");
    assert!(!resume.gap_too_big);
    let seqs: Vec<_> = resume
        .messages
        .iter()
        .map(|m| (m.seq, m.changed_seq))
        .collect();
    assert_eq!(
        seqs,
        vec![(Some(1), Some(4)), (Some(2), Some(5)), (Some(6), None)]
    );
}

#[test]
fn a_room_reopened_from_storage_continues_after_its_latest_change() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    h.say(a, "one");
    h.act(a, edit(1, "uno", "e1"));
    let snapshot = RoomSnapshot {
        messages: h.stored.clone(),
        complete: true,
        latest_seq: 2,
        users: h.users.clone(),
        settings: Default::default(),
        ..RoomSnapshot::default()
    };
    let mut again = Harness::with(RoomConfig::default(), snapshot);
    let (c, _, _) = again.join(1);
    again.say(c, "two");
    assert_eq!(again.stored[0].seq, 3);
}

fn react(target: Seq, emoji: &str, on: bool) -> ClientAction {
    ClientAction::React(crate::wire::React {
        target,
        emoji: emoji.to_owned(),
        on,
        nonce: Some(format!("r-{emoji}-{on}")),
    })
}

#[test]
fn reactions_are_a_set_per_person_and_emoji_and_anyone_may_react() {
    let mut h = Harness::new();
    let (a, alice, _) = h.join(1);
    let (b, bob, _) = h.join(2);
    h.say(a, "lunch?");
    h.take(a);
    h.take(b);
    h.act(b, react(1, "👍", true));
    h.act(a, react(1, "👍", true));
    // The same reaction twice is one: no event, nothing to store.
    h.act(b, react(1, "👍", true));
    h.act(b, react(1, "🍕", true));
    let last = changed(&mut h, a).pop().expect("changes");
    assert_eq!(
        last.reactions,
        vec![
            crate::wire::Reaction {
                emoji: "👍".into(),
                users: vec![bob.clone(), alice.clone()],
            },
            crate::wire::Reaction {
                emoji: "🍕".into(),
                users: vec![bob.clone()],
            },
        ]
    );
    assert_eq!(
        last.changed_seq,
        Some(4),
        "three changes, the repeat was none"
    );
    // Taking one back; the last one of an emoji takes the emoji away.
    h.act(b, react(1, "🍕", false));
    h.act(b, react(1, "👍", false));
    let last = changed(&mut h, b).pop().expect("changes");
    assert_eq!(last.reactions.len(), 1);
    assert_eq!(last.reactions[0].users, vec![alice]);
    assert_eq!(h.stored[0].reactions, last.reactions, "stored as it is now");
    // Only emoji of the table.
    h.act(b, react(1, "not an emoji", true));
    assert_eq!(h.errors(b), vec![ErrorCode::UnknownEmoji]);
    // A deleted message keeps no reactions and takes none.
    h.act(a, delete(1, "d1"));
    assert!(
        changed(&mut h, b)
            .pop()
            .is_some_and(|m| m.reactions.is_empty())
    );
    h.act(b, react(1, "👍", true));
    assert_eq!(h.errors(b), vec![ErrorCode::MessageDeleted]);
}

#[test]
fn a_message_takes_a_bounded_number_of_different_reactions() {
    let mut h = Harness::with(
        RoomConfig {
            rate_burst: 100,
            ..RoomConfig::default()
        },
        RoomSnapshot::default(),
    );
    let (a, _, _) = h.join(1);
    h.say(a, "react to me");
    let table = [
        "👍", "👎", "💯", "⏰", "😠", "🍎", "👶", "🎈", "🍺", "🍻", "🔔",
    ];
    let more = [
        "🎉", "🍕", "👀", "🚀", "🦀", "😅", "👋", "🎂", "❤️", "🙂", "🤔",
    ];
    let emoji: Vec<&str> = table
        .iter()
        .chain(more.iter())
        .copied()
        .filter(|e| crate::markdown::shortcode_of(e).is_some())
        .collect();
    assert!(
        emoji.len() > MAX_REACTIONS,
        "enough emoji in the table for the test"
    );
    h.take(a);
    for e in &emoji {
        h.act(a, react(1, e, true));
    }
    assert_eq!(h.errors(a).len(), emoji.len() - MAX_REACTIONS);
    assert_eq!(h.stored[0].reactions.len(), MAX_REACTIONS);
}

#[test]
fn a_reply_names_the_message_it_answers_which_must_be_a_message_of_the_room() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    h.say(a, "question");
    h.act(a, edit(1, "the question", "e1"));
    h.take(a);
    let reply = |to: Seq, nonce: &str| {
        ClientAction::Message(SendMessage {
            raw_message: "answer".into(),
            user_id: None,
            nonce: Some(nonce.into()),
            reply_to: Some(to),
            to: None,
        })
    };
    h.act(a, reply(1, "r1"));
    let [answer] = &h.messages(a)[..] else {
        panic!("the reply");
    };
    assert_eq!(answer.reply_to, Some(1));
    assert_eq!(h.stored[1].reply_to, Some(1));
    // Not a message: a change's seq, nothing yet, or 0.
    for (to, nonce) in [(2, "r2"), (99, "r3"), (0, "r4")] {
        h.act(a, reply(to, nonce));
    }
    assert_eq!(h.errors(a), vec![ErrorCode::UnknownMessage; 3]);
    // A reply to a deleted message is still a reply: the client says what it answered.
    h.act(a, delete(1, "d1"));
    h.act(a, reply(1, "r5"));
    assert_eq!(h.stored.last().map(|m| m.reply_to), Some(Some(1)));
}

#[test]
fn a_reply_to_a_message_the_log_has_not_numbered_yet_is_taken_by_the_seq_it_will_get() {
    let mut h = Harness::new();
    let (a, _, _) = h.join(1);
    h.take(a);
    h.auto_persist = false;
    h.say(a, "first");
    let reply = |to| {
        ClientAction::Message(SendMessage {
            raw_message: "re".into(),
            user_id: None,
            nonce: None,
            reply_to: Some(to),
            to: None,
        })
    };
    // Seq 1 is what "first" will get; seq 3 nothing will.
    h.act(a, reply(1));
    h.act(a, reply(3));
    assert_eq!(h.errors(a), vec![ErrorCode::UnknownMessage]);
    h.confirm_held();
    let told: Vec<_> = h.messages(a).iter().map(|m| (m.seq, m.reply_to)).collect();
    assert_eq!(told, vec![(Some(1), None), (Some(2), Some(1))]);
}

#[test]
fn a_reply_to_a_message_still_being_stored_or_just_stored_is_taken() {
    let mut h = Harness::with(
        RoomConfig {
            rate_burst: 100,
            ..RoomConfig::default()
        },
        RoomSnapshot::default(),
    );
    let (a, _, _) = h.join(1);
    h.auto_persist = false;
    h.say(a, "orig");
    for i in 0..20 {
        h.say(a, &format!("f{i}"));
        if i == 5 {
            // Storage confirms a first batch while the rest wait.
            for seq in 1..=3 {
                h.room.handle_persisted(h.now, seq);
            }
            h.pump();
        }
    }
    h.act(
        a,
        ClientAction::Message(SendMessage {
            raw_message: "answer".into(),
            user_id: None,
            nonce: None,
            reply_to: Some(1),
            to: None,
        }),
    );
    assert_eq!(h.errors(a), Vec::<ErrorCode>::new());
}

#[test]
fn typing_reaches_the_others_who_speak_our_protocol_and_is_never_stored() {
    let mut h = Harness::new();
    let ours = |h: &mut Pair, id: u64| {
        let conn = h.connect(id);
        h.act(
            conn,
            ClientAction::HandshakeUserInfo(HandshakeUserInfo {
                protocol_version: Some(PROTOCOL_VERSION),
                ..HandshakeUserInfo::default()
            }),
        );
        h.take(conn);
        conn
    };
    let a = ours(&mut h, 1);
    let b = ours(&mut h, 2);
    let (legacy, _, _) = h.join(3);
    h.take(a);
    h.take(b);
    h.take(legacy);
    h.act(a, ClientAction::Typing(crate::wire::Typing::default()));
    assert!(matches!(&h.take(b)[..], [ServerAction::Typing(_)]));
    assert!(h.take(a).is_empty(), "not to oneself");
    assert!(h.take(legacy).is_empty(), "not to a legacy client");
    assert!(h.stored.is_empty());
    // Someone not identified cannot type.
    let stranger = h.connect(4);
    h.take(stranger);
    h.act(
        stranger,
        ClientAction::Typing(crate::wire::Typing::default()),
    );
    assert_eq!(h.errors(stranger), vec![ErrorCode::NotIdentified]);
}

#[test]
fn the_people_list_knows_who_is_online_who_was_here_lately_and_since_when() {
    let mut h = Harness::new();
    let (a, alice, _) = h.join(1);
    h.advance(60_000);
    let bob_came = h.now;
    let (b, bob, _) = h.join(2);
    h.advance(60_000);
    h.disconnect(b);
    let left = h.now;
    // Bob's last visit is kept (for after a restart too).
    assert_eq!(h.user(&bob).and_then(|u| u.last_seen), Some(left));
    assert_eq!(h.user(&bob).and_then(|u| u.joined_at), Some(bob_came));
    let said = presence_after_tick(&mut h, a);
    assert!(said.iter().any(|p| p.left
        == [UserRef {
            last_seen: Some(left),
            ..UserRef::of(bob.clone())
        }]));
    let c = h.connect(3);
    let [ServerAction::Handshake(handshake)] = &h.take(c)[..] else {
        panic!("a handshake first");
    };
    let people = handshake.people.clone().unwrap_or_default();
    assert_eq!(
        people,
        vec![
            crate::wire::Person {
                user_id: alice.clone(),
                joined_at: Some(T0),
                last_seen: None,
            },
            crate::wire::Person {
                user_id: bob.clone(),
                joined_at: Some(bob_came),
                last_seen: Some(left),
            },
        ]
    );
    assert!(
        handshake.user_names.contains_key(&bob),
        "names of the recent too"
    );
    // Coming online says since when they are here.
    h.act(
        c,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo::default()),
    );
    let came = h.now;
    let carol_joined = presence_after_tick(&mut h, a)
        .into_iter()
        .find_map(|p| Some(p.joined.first()?.joined_at));
    assert_eq!(carol_joined, Some(Some(came)));
}
