//! Search: checked in the room, run by the host beside it, checked again when it comes back;
//! never finds others' direct messages, paged, one at a time per connection.

use super::*;
use crate::testing::Pair;
use crate::wire::*;

fn search(query: &str, before: Option<Seq>, nonce: &str) -> ClientAction {
    ClientAction::Search(Search {
        query: query.to_owned(),
        before,
        nonce: Some(nonce.to_owned()),
    })
}

fn results(pair: &mut Pair, conn: ConnectionId) -> Vec<SearchResults> {
    pair.take(conn)
        .into_iter()
        .filter_map(|action| match action {
            ServerAction::SearchResults(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn refusals(pair: &mut Pair, conn: ConnectionId) -> Vec<(ErrorCode, Option<String>)> {
    pair.take(conn)
        .into_iter()
        .filter_map(|action| match action {
            ServerAction::Error(e) => Some((e.code, e.nonce)),
            _ => None,
        })
        .collect()
}

fn texts(r: &SearchResults) -> Vec<&str> {
    r.messages.iter().map(|m| m.raw_message.as_str()).collect()
}

fn roomy() -> RoomConfig {
    RoomConfig {
        rate_burst: 10_000,
        rate_per_second: 10_000,
        ..RoomConfig::default()
    }
}

#[test]
fn a_search_pages_back_through_the_whole_room_newest_first() {
    let mut pair = Pair::with(roomy(), RoomSnapshot::default());
    let (alice, _, _) = pair.join_ours(1);
    for i in 1..=300 {
        let text = if i % 10 == 0 {
            format!("Needle number {i}")
        } else {
            format!("hay {i}")
        };
        pair.say(alice, &text);
    }
    pair.take(alice);
    let mut found = Vec::new();
    let mut before = None;
    for page in 0.. {
        assert!(page < 10, "paging must end");
        pair.act(alice, search("needle", before, &format!("s{page}")));
        let answers = results(&mut pair, alice);
        assert_eq!(answers.len(), 1);
        let answer = &answers[0];
        assert_eq!(answer.nonce.as_deref(), Some(format!("s{page}").as_str()));
        assert!(answer.messages.len() <= 20);
        found.extend(texts(answer).into_iter().map(str::to_owned));
        before = answer.next;
        if before.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (1..=30)
        .rev()
        .map(|i| format!("Needle number {}", i * 10))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn nobody_finds_the_direct_messages_of_others() {
    let mut pair = Pair::with(roomy(), RoomSnapshot::default());
    let (alice, alice_id, _) = pair.join_ours(1);
    let (bob, bob_id, _) = pair.join_ours(2);
    let (carol, _, _) = pair.join_ours(3);
    let dave = pair.join(4).0;
    pair.say(carol, "plan for the room");
    pair.act(
        alice,
        ClientAction::Message(SendMessage {
            raw_message: "secret plan".into(),
            nonce: Some("d1".into()),
            to: Some(bob_id.clone()),
            ..SendMessage::default()
        }),
    );
    for conn in [alice, bob, carol, dave] {
        pair.take(conn);
    }
    for (conn, expected) in [
        (alice, vec!["secret plan", "plan for the room"]),
        (bob, vec!["secret plan", "plan for the room"]),
        (carol, vec!["plan for the room"]),
        (dave, vec!["plan for the room"]),
    ] {
        pair.act(conn, search("plan", None, "q"));
        let answers = results(&mut pair, conn);
        assert_eq!(answers.len(), 1, "{conn:?}");
        assert_eq!(texts(&answers[0]), expected, "{conn:?}");
    }
    // Even a host whose storage hands back too much: the room checks again.
    pair.answer_searches = false;
    pair.act(carol, search("plan", None, "q2"));
    let task = pair.held_searches.remove(0);
    let everything = pair.stored.clone();
    pair.room
        .handle_search_done(pair.now, task, everything, None);
    pair.run();
    let answers = results(&mut pair, carol);
    assert_eq!(texts(&answers[0]), ["plan for the room"]);
    assert!(!alice_id.is_empty());
}

#[test]
fn an_edit_is_found_by_its_new_words_and_a_deleted_message_not_at_all() {
    let mut pair = Pair::with(roomy(), RoomSnapshot::default());
    let (alice, _, _) = pair.join_ours(1);
    pair.say(alice, "meet at noon");
    pair.say(alice, "lunch at the harbour");
    pair.act(
        alice,
        ClientAction::EditMessage(crate::EditMessage {
            target: 1,
            raw_message: "meet at the station".into(),
            nonce: Some("e1".into()),
        }),
    );
    pair.act(
        alice,
        ClientAction::DeleteMessage(crate::DeleteMessage {
            target: 2,
            nonce: Some("x1".into()),
        }),
    );
    pair.take(alice);
    pair.act(alice, search("noon", None, "a"));
    assert!(results(&mut pair, alice)[0].messages.is_empty());
    pair.act(alice, search("station", None, "b"));
    assert_eq!(
        texts(&results(&mut pair, alice)[0]),
        ["meet at the station"]
    );
    pair.act(alice, search("harbour", None, "c"));
    assert!(results(&mut pair, alice)[0].messages.is_empty());
}

#[test]
fn a_bad_query_is_refused_with_its_nonce() {
    let mut pair = Pair::with(roomy(), RoomSnapshot::default());
    let (alice, _, _) = pair.join_ours(1);
    pair.take(alice);
    pair.act(alice, search("  ?! ", None, "q1"));
    pair.act(alice, search(&"x".repeat(201), None, "q2"));
    pair.act(alice, search("a b c d e f g h i", None, "q3"));
    assert_eq!(
        refusals(&mut pair, alice),
        [
            (ErrorCode::InvalidSearch, Some("q1".into())),
            (ErrorCode::InvalidSearch, Some("q2".into())),
            (ErrorCode::InvalidSearch, Some("q3".into())),
        ]
    );
    assert!(pair.held_searches.is_empty());
}

#[test]
fn one_search_at_a_time_per_connection_and_searches_spend_the_rate() {
    let mut pair = Pair::new();
    let (alice, _, _) = pair.join_ours(1);
    let (bob, _, _) = pair.join_ours(2);
    pair.say(alice, "hello");
    pair.take(alice);
    pair.take(bob);
    pair.answer_searches = false;
    pair.act(alice, search("hello", None, "s1"));
    pair.act(alice, search("hello", None, "s2"));
    assert_eq!(
        refusals(&mut pair, alice),
        [(ErrorCode::RateLimited, Some("s2".into()))]
    );
    // Someone else's search is theirs.
    pair.act(bob, search("hello", None, "b1"));
    assert_eq!(pair.held_searches.len(), 2);
    // Answered (or failed), the connection may search again.
    let task = pair.held_searches.remove(0);
    pair.room.handle_search_failed(pair.now, task);
    pair.run();
    assert_eq!(
        refusals(&mut pair, alice),
        [(ErrorCode::SearchFailed, Some("s1".into()))]
    );
    pair.act(alice, search("hello", None, "s3"));
    assert_eq!(pair.held_searches.len(), 2);
    // A burst of searches runs out of the connection's rate like any action.
    pair.answer_searches = true;
    pair.held_searches.clear();
    let mut limited = 0;
    for i in 0..30 {
        pair.act(bob, search("hello", None, &format!("r{i}")));
        limited += refusals(&mut pair, bob)
            .iter()
            .filter(|(code, _)| *code == ErrorCode::RateLimited)
            .count();
    }
    assert!(limited >= 15, "{limited} of 30 were limited");
}
