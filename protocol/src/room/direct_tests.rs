//! Direct messages: one privacy rule ([`StoredMessage::visible_to`]) on every path a message
//! takes out of the room (live, handshake, resume, history from memory and from storage) and
//! on every change to one.

use super::*;
use crate::testing::Pair;
use crate::wire::*;

fn direct(text: &str, to: &str, nonce: &str) -> ClientAction {
    ClientAction::Message(SendMessage {
        raw_message: text.to_owned(),
        nonce: Some(nonce.to_owned()),
        to: Some(to.to_owned()),
        ..SendMessage::default()
    })
}

pub(super) fn identify(user: &str, token: &str, since: Option<Seq>, ours: bool) -> ClientAction {
    ClientAction::HandshakeUserInfo(HandshakeUserInfo {
        user_id: Some(user.to_owned()),
        token: Some(token.to_owned()),
        since,
        protocol_version: ours.then_some(PROTOCOL_VERSION),
    })
}

/// Every message record a connection received, in whatever frame it came.
fn records(pair: &mut Pair, conn: ConnectionId) -> Vec<MessageRecord> {
    pair.take(conn)
        .into_iter()
        .flat_map(|action| match action {
            ServerAction::Message(m) | ServerAction::MessageChanged(m) => vec![m],
            ServerAction::Handshake(h) => h.messages,
            ServerAction::Resume(r) => r.messages,
            ServerAction::History(h) => h.messages,
            _ => Vec::new(),
        })
        .collect()
}

fn texts(records: &[MessageRecord]) -> Vec<&str> {
    records.iter().map(|m| m.raw_message.as_str()).collect()
}

pub(super) struct Three {
    pub(super) pair: Pair,
    pub(super) alice: (ConnectionId, UserId, String),
    pub(super) bob: (ConnectionId, UserId, String),
    pub(super) carol: (ConnectionId, UserId, String),
    /// A v1 client: it would show a direct message as a room message.
    pub(super) dave: (ConnectionId, UserId, String),
}

pub(super) fn three(config: RoomConfig) -> Three {
    let mut pair = Pair::with(config, RoomSnapshot::default());
    let alice = pair.join_ours(1);
    let bob = pair.join_ours(2);
    let carol = pair.join_ours(3);
    let dave = pair.join(4);
    for conn in [alice.0, bob.0, carol.0, dave.0] {
        pair.take(conn);
    }
    Three {
        pair,
        alice,
        bob,
        carol,
        dave,
    }
}

#[test]
fn a_direct_message_reaches_its_two_people_only_and_is_stored_with_them() {
    let mut t = three(RoomConfig::default());
    // Alice on a second tab: every connection of hers hears it.
    let second = t.pair.connect(11);
    t.pair
        .act(second, identify(&t.alice.1, &t.alice.2, None, true));
    t.pair.take(second);
    t.pair.say(t.carol.0, "hello room");
    t.pair.act(t.alice.0, direct("psst bob", &t.bob.1, "d1"));

    for conn in [t.alice.0, second, t.bob.0] {
        assert_eq!(
            texts(&records(&mut t.pair, conn)),
            ["hello room", "psst bob"]
        );
    }
    for conn in [t.carol.0, t.dave.0] {
        assert_eq!(texts(&records(&mut t.pair, conn)), ["hello room"]);
    }
    let stored = &t.pair.stored[1];
    assert_eq!(stored.to.as_deref(), Some(t.bob.1.as_str()));
    assert_eq!(stored.user_id, t.alice.1);
}

#[test]
fn no_path_gives_a_direct_message_to_a_third_person() {
    // A small memory, so that history pages come from storage too.
    let config = RoomConfig {
        cache_messages: 5,
        ..RoomConfig::default()
    };
    let mut t = three(config);
    t.pair.act(t.alice.0, direct("secret", &t.bob.1, "d1"));
    for i in 0..8 {
        t.pair.say(t.carol.0, &format!("room {i}"));
    }
    t.pair
        .act(t.bob.0, direct("secret reply", &t.alice.1, "d2"));
    for conn in [t.alice.0, t.bob.0, t.carol.0, t.dave.0] {
        t.pair.take(conn);
    }
    let secret = |rs: &[MessageRecord]| rs.iter().any(|m| m.raw_message.starts_with("secret"));

    // A newcomer's handshake (before anyone is identified): room messages only.
    let newcomer = t.pair.connect(20);
    assert!(!secret(&records(&mut t.pair, newcomer)));

    // Carol and Dave come back and resume from the start of what memory has.
    for (who, ours) in [(&t.carol, true), (&t.dave, false)] {
        t.pair.disconnect(who.0);
        let conn = t.pair.connect(who.0.0 + 100);
        t.pair.act(conn, identify(&who.1, &who.2, Some(4), ours));
        let got = records(&mut t.pair, conn);
        assert!(got.iter().any(|m| m.raw_message == "room 7"), "{got:?}");
        assert!(!secret(&got), "{got:?}");
        // History, from memory and then from storage, down to the start.
        for before in [10, 5, 2] {
            let page = ClientAction::HistoryRequest(HistoryRequest {
                before,
                limit: 100,
                with: None,
            });
            t.pair.act(conn, page);
        }
        let pages = records(&mut t.pair, conn);
        assert!(pages.iter().any(|m| m.raw_message == "room 0"), "{pages:?}");
        assert!(!secret(&pages), "{pages:?}");
    }

    // Bob, on a new connection without `since`: the handshake has none, and his direct
    // messages among the latest follow identification.
    t.pair.disconnect(t.bob.0);
    let bob = t.pair.connect(30);
    t.pair.act(bob, identify(&t.bob.1, &t.bob.2, None, true));
    assert_eq!(
        texts(&records(&mut t.pair, bob)).last(),
        Some(&"secret reply")
    );
    // And his history from storage has the older one.
    t.pair.act(
        bob,
        ClientAction::HistoryRequest(HistoryRequest {
            before: 3,
            limit: 100,
            with: None,
        }),
    );
    assert_eq!(texts(&records(&mut t.pair, bob)), ["secret", "room 0"]);
    // The older pages came from storage (memory keeps 5), which was asked as each viewer.
    assert!(
        t.pair.history_requests.len() >= 3,
        "{:?}",
        t.pair.history_requests
    );
}

#[test]
fn only_its_two_people_can_change_a_direct_message_and_only_they_hear_of_it() {
    let mut t = three(RoomConfig::default());
    t.pair.act(t.alice.0, direct("psst", &t.bob.1, "d1"));
    for conn in [t.alice.0, t.bob.0, t.carol.0, t.dave.0] {
        t.pair.take(conn);
    }
    let react = |nonce: &str| {
        ClientAction::React(crate::wire::React {
            target: 1,
            emoji: "👍".to_owned(),
            on: true,
            nonce: Some(nonce.to_owned()),
        })
    };
    // Carol cannot react to what she cannot see (and is not told it exists).
    t.pair.act(t.carol.0, react("r1"));
    assert_eq!(t.pair.errors(t.carol.0), [ErrorCode::UnknownMessage]);
    // Bob can; Alice and Bob hear of it, nobody else.
    t.pair.act(t.bob.0, react("r2"));
    for conn in [t.alice.0, t.bob.0] {
        let got = records(&mut t.pair, conn);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].reactions[0].users, [t.bob.1.clone()]);
    }
    assert!(t.pair.take(t.carol.0).is_empty());
    assert!(t.pair.take(t.dave.0).is_empty());
}

#[test]
fn a_direct_message_goes_to_someone_else_known_and_answers_its_own_conversation() {
    let mut t = three(RoomConfig::default());
    let refused = |pair: &mut Pair, conn| {
        pair.take(conn)
            .into_iter()
            .filter_map(|a| match a {
                ServerAction::Error(e) => Some((e.code, e.nonce)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    t.pair.act(t.alice.0, direct("me?", &t.alice.1, "n1"));
    t.pair.act(t.alice.0, direct("who?", "nobody", "n2"));
    let code = ErrorCode::UnknownUser;
    assert_eq!(
        refused(&mut t.pair, t.alice.0),
        [(code, Some("n1".to_owned())), (code, Some("n2".to_owned()))]
    );
    // A v1 client could not show one apart from the room's messages: refused.
    t.pair.act(t.dave.0, direct("hi", &t.bob.1, "n3"));
    assert_eq!(
        refused(&mut t.pair, t.dave.0),
        [(code, Some("n3".to_owned()))]
    );

    // Replies stay in their conversation.
    t.pair.act(t.alice.0, direct("psst", &t.bob.1, "n4")); // seq 1
    t.pair.say(t.carol.0, "room"); // seq 2
    let reply = |to: Option<&UserId>, reply_to: Seq, nonce: &str| {
        ClientAction::Message(SendMessage {
            raw_message: "re".to_owned(),
            nonce: Some(nonce.to_owned()),
            reply_to: Some(reply_to),
            to: to.cloned(),
            ..SendMessage::default()
        })
    };
    for conn in [t.alice.0, t.bob.0, t.carol.0] {
        t.pair.take(conn);
    }
    // Carol cannot answer it in the room (she cannot see it), nor can Bob.
    t.pair.act(t.carol.0, reply(None, 1, "c1"));
    t.pair.act(t.bob.0, reply(None, 1, "b1"));
    // A direct reply cannot answer a room message, nor another pair's message.
    t.pair.act(t.bob.0, reply(Some(&t.alice.1), 2, "b2"));
    t.pair.act(t.carol.0, reply(Some(&t.bob.1), 1, "c2"));
    let unknown = ErrorCode::UnknownMessage;
    assert_eq!(
        refused(&mut t.pair, t.carol.0),
        [
            (unknown, Some("c1".to_owned())),
            (unknown, Some("c2".to_owned()))
        ]
    );
    assert_eq!(
        refused(&mut t.pair, t.bob.0),
        [
            (unknown, Some("b1".to_owned())),
            (unknown, Some("b2".to_owned()))
        ]
    );
    // Bob answers Alice where she wrote to him.
    t.pair.act(t.bob.0, reply(Some(&t.alice.1), 1, "b3"));
    let got = records(&mut t.pair, t.alice.0);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].reply_to, got[0].to.as_ref()),
        (Some(1), Some(&t.alice.1))
    );
    assert!(t.pair.take(t.carol.0).is_empty());
}

#[test]
fn typing_to_someone_is_heard_by_them_only() {
    let mut t = three(RoomConfig::default());
    t.pair.act(
        t.alice.0,
        ClientAction::Typing(crate::wire::Typing {
            to: Some(t.bob.1.clone()),
        }),
    );
    assert!(matches!(&t.pair.take(t.bob.0)[..],
        [ServerAction::Typing(TypingUser { user_id, direct: true })] if *user_id == t.alice.1));
    assert!(t.pair.take(t.carol.0).is_empty());
    assert!(t.pair.take(t.dave.0).is_empty());
    assert!(t.pair.take(t.alice.0).is_empty());
}

/// A direct message stored while its recipient's new connection has had its `HANDSHAKE` but
/// not yet identified reaches no one there live: it comes with the identification, as
/// missed (with `since` or without), once.
#[test]
fn a_direct_message_between_handshake_and_identification_is_not_lost() {
    for since in [None, Some(0)] {
        let mut t = three(RoomConfig::default());
        t.pair.say(t.carol.0, "hello room");
        let second = t.pair.connect(21);
        t.pair.take(second);
        t.pair
            .act(t.alice.0, direct("while you connect", &t.bob.1, "d1"));
        t.pair
            .act(second, identify(&t.bob.1, &t.bob.2, since, true));
        let got = records(&mut t.pair, second);
        let texts = texts(&got);
        assert_eq!(
            texts.iter().filter(|t| **t == "while you connect").count(),
            1,
            "{since:?}: {texts:?}"
        );
        // Carol's new connection, the same way: nothing of it.
        let third = t.pair.connect(22);
        t.pair.take(third);
        t.pair.act(t.alice.0, direct("again", &t.bob.1, "d2"));
        t.pair
            .act(third, identify(&t.carol.1, &t.carol.2, since, true));
        let got = records(&mut t.pair, third);
        assert!(got.iter().all(|m| m.to.is_none()), "{since:?}");
    }
}

fn conversations(pair: &mut Pair, conn: ConnectionId) -> Vec<Conversations> {
    pair.take(conn)
        .into_iter()
        .filter_map(|action| match action {
            ServerAction::Conversations(list) => Some(list),
            _ => None,
        })
        .collect()
}

fn page_with(before: Seq, with: &str) -> ClientAction {
    ClientAction::HistoryRequest(HistoryRequest {
        before,
        limit: 100,
        with: Some(with.to_owned()),
    })
}

#[test]
fn a_person_is_told_every_conversation_they_have_and_pages_one_on_its_own() {
    // Memory keeps 5: the conversations are older than that, and come from storage.
    let config = RoomConfig {
        cache_messages: 5,
        ..RoomConfig::default()
    };
    let mut t = three(config);
    t.pair.act(t.alice.0, direct("old one", &t.bob.1, "d1"));
    t.pair.act(t.bob.0, direct("old answer", &t.alice.1, "d2"));
    t.pair
        .act(t.carol.0, direct("carol to bob", &t.bob.1, "d3"));
    for i in 0..7 {
        t.pair.say(t.dave.0, &format!("room {i}"));
    }
    for conn in [t.alice.0, t.bob.0, t.carol.0, t.dave.0] {
        t.pair.take(conn);
    }

    // Bob comes back having seen up to seq 1: both conversations, the latest first, each with
    // its latest message; Carol's came while he was away (his own answer is not unread).
    t.pair.disconnect(t.bob.0);
    let bob = t.pair.connect(30);
    t.pair.act(bob, identify(&t.bob.1, &t.bob.2, Some(1), true));
    let lists = conversations(&mut t.pair, bob);
    assert_eq!(lists.len(), 1, "told once: {lists:?}");
    let told: Vec<(&str, Option<Seq>, &str, u32)> = lists[0]
        .conversations
        .iter()
        .map(|c| {
            (
                c.with.as_str(),
                c.last.seq,
                c.last.raw_message.as_str(),
                c.unread,
            )
        })
        .collect();
    assert_eq!(
        told,
        [
            (t.carol.1.as_str(), Some(3), "carol to bob", 1),
            (t.alice.1.as_str(), Some(2), "old answer", 0),
        ]
    );
    assert_eq!(
        lists[0].user_names.get(&t.carol.1).map(String::as_str),
        Some("Anonymous")
    );

    // His conversation with Alice pages on its own: only its messages, from storage.
    let asked = t.pair.history_requests.len();
    t.pair.act(bob, page_with(2, &t.alice.1));
    let pages: Vec<History> = t
        .pair
        .take(bob)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::History(h) => Some(h),
            _ => None,
        })
        .collect();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].with.as_deref(), Some(t.alice.1.as_str()));
    assert_eq!(texts(&pages[0].messages), ["old one"]);
    assert!(!pages[0].has_more);
    assert_eq!(
        t.pair.history_requests.len(),
        asked + 1,
        "storage was asked"
    );

    // Someone outside a conversation pages it and finds nothing of it.
    t.pair.act(t.carol.0, page_with(20, &t.alice.1));
    assert!(records(&mut t.pair, t.carol.0).is_empty());

    // Without `since` nothing counts as missed; a v1 client is told nothing (it would not
    // understand).
    t.pair.disconnect(t.alice.0);
    let alice = t.pair.connect(31);
    t.pair
        .act(alice, identify(&t.alice.1, &t.alice.2, None, true));
    let lists = conversations(&mut t.pair, alice);
    let told: Vec<(&str, u32)> = lists[0]
        .conversations
        .iter()
        .map(|c| (c.with.as_str(), c.unread))
        .collect();
    assert_eq!(told, [(t.bob.1.as_str(), 0)]);
    t.pair.disconnect(t.dave.0);
    let dave = t.pair.connect(32);
    t.pair
        .act(dave, identify(&t.dave.1, &t.dave.2, None, false));
    assert!(conversations(&mut t.pair, dave).is_empty());
}

#[test]
fn the_conversations_told_are_bounded_in_count() {
    let config = RoomConfig {
        max_conversations: 1,
        ..RoomConfig::default()
    };
    let mut t = three(config);
    t.pair.act(t.alice.0, direct("to bob", &t.bob.1, "d1"));
    t.pair.act(t.alice.0, direct("to carol", &t.carol.1, "d2"));
    t.pair.disconnect(t.alice.0);
    let alice = t.pair.connect(31);
    t.pair
        .act(alice, identify(&t.alice.1, &t.alice.2, None, true));
    let lists = conversations(&mut t.pair, alice);
    let with: Vec<&str> = lists[0]
        .conversations
        .iter()
        .map(|c| c.with.as_str())
        .collect();
    assert_eq!(with, [t.carol.1.as_str()], "the latest one only");
}
