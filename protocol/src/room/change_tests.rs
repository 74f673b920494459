//! Changes (edits, deletes, reactions) checked against what is in flight: a change is judged
//! against the message as it will be once every change the room has already accepted is
//! stored, so quick changes end as they would one at a time, and nobody is told of a change
//! that storage will never hold.

use proptest::prelude::*;

use super::tests::{delete, edit};
use super::*;
use crate::markdown::emoji_table;
use crate::testing::Pair;
use crate::wire::*;

/// A room whose storage answers only when the test says (`Pair::unconfirmed`), with a rate
/// limit out of the way: these tests are about order, not speed.
fn slow_storage() -> Pair {
    let config = RoomConfig {
        rate_burst: 100_000,
        rate_per_second: 100_000,
        ..RoomConfig::default()
    };
    let mut pair = Pair::with(config, RoomSnapshot::default());
    pair.answer_history = false;
    pair.auto_persist = false;
    pair
}

fn react(target: Seq, emoji: &str, on: bool, nonce: &str) -> ClientAction {
    ClientAction::React(React {
        target,
        emoji: emoji.to_owned(),
        on,
        nonce: Some(nonce.to_owned()),
    })
}

/// The refusals a connection got: (code, nonce).
fn refusals(h: &mut Pair, conn: ConnectionId) -> Vec<(ErrorCode, Option<String>)> {
    h.take(conn)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Error(e) => Some((e.code, e.nonce)),
            _ => None,
        })
        .collect()
}

/// The latest `MESSAGE_CHANGED` a connection got, if any (the rest is dropped).
fn last_change(h: &mut Pair, conn: ConnectionId) -> Option<MessageRecord> {
    h.take(conn)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::MessageChanged(m) => Some(m),
            _ => None,
        })
        .next_back()
}

/// Two people in a room with one stored message (seq 1, by the first).
fn one_message() -> (Pair, ConnectionId, ConnectionId) {
    let mut h = slow_storage();
    let (a, _, _) = h.join_ours(1);
    let (b, _, _) = h.join_ours(2);
    h.say(a, "lunch?");
    h.confirm_held();
    h.take(a);
    h.take(b);
    (h, a, b)
}

#[test]
fn a_reaction_on_then_off_at_once_ends_off_a_thousand_times() {
    let (mut h, a, b) = one_message();
    for round in 0..1000 {
        // Both in the same instant, before storage has confirmed the first.
        h.act(b, react(1, "👍", true, &format!("on{round}")));
        h.act(b, react(1, "👍", false, &format!("off{round}")));
        h.confirm_held();
        assert!(
            h.take(b)
                .iter()
                .all(|x| !matches!(x, ServerAction::Error(_)))
        );
        let live = last_change(&mut h, a).expect("the room told of the changes");
        assert!(live.reactions.is_empty(), "round {round}: {live:?}");
        assert!(h.stored[0].reactions.is_empty(), "round {round}: stored");
    }
    // On, off, on: on.
    h.act(b, react(1, "👍", true, "x1"));
    h.act(b, react(1, "👍", false, "x2"));
    h.act(b, react(1, "👍", true, "x3"));
    h.confirm_held();
    assert_eq!(h.stored[0].reactions.len(), 1);
    assert_eq!(last_change(&mut h, a).map(|m| m.reactions.len()), Some(1));
}

#[test]
fn forty_different_reactions_at_once_twenty_are_taken_twenty_refused_by_nonce() {
    let (mut h, a, b) = one_message();
    let emoji: Vec<&str> = emoji_table().iter().map(|(_, e)| *e).take(40).collect();
    assert_eq!(emoji.len(), 40);
    for (i, e) in emoji.iter().enumerate() {
        h.act(b, react(1, e, true, &format!("r{i}")));
    }
    // Only the accepted ones were handed to storage.
    assert_eq!(h.unconfirmed.len(), MAX_REACTIONS);
    h.confirm_held();
    let refused = refusals(&mut h, b);
    let expected: Vec<(ErrorCode, Option<String>)> = (MAX_REACTIONS..40)
        .map(|i| (ErrorCode::TooManyReactions, Some(format!("r{i}"))))
        .collect();
    assert_eq!(refused, expected);
    // Everyone was told of exactly the twenty the room keeps, and storage holds them.
    let told: Vec<MessageRecord> = h
        .take(a)
        .into_iter()
        .filter_map(|x| match x {
            ServerAction::MessageChanged(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(told.len(), MAX_REACTIONS);
    let kept: Vec<&str> = h.stored[0]
        .reactions
        .iter()
        .map(|r| r.emoji.as_str())
        .collect();
    assert_eq!(kept, emoji[..MAX_REACTIONS]);
    assert_eq!(told.last().map(|m| m.reactions.len()), Some(MAX_REACTIONS));
    // A reaction already on the message is still welcome from someone else.
    h.act(a, react(1, emoji[0], true, "again"));
    h.confirm_held();
    assert!(refusals(&mut h, a).is_empty());
    assert_eq!(h.stored[0].reactions[0].users.len(), 2);
}

#[test]
fn after_a_delete_not_yet_stored_an_edit_or_reaction_is_refused_by_its_nonce() {
    let (mut h, a, b) = one_message();
    h.act(a, delete(1, "d1"));
    h.act(a, edit(1, "back again", "e1"));
    h.act(b, react(1, "👍", true, "r1"));
    h.act(a, delete(1, "d2"));
    assert_eq!(h.unconfirmed.len(), 1, "only the delete goes to storage");
    h.confirm_held();
    assert_eq!(
        refusals(&mut h, a),
        vec![
            (ErrorCode::MessageDeleted, Some("e1".into())),
            (ErrorCode::MessageDeleted, Some("d2".into())),
        ]
    );
    assert_eq!(
        refusals(&mut h, b),
        vec![(ErrorCode::MessageDeleted, Some("r1".into()))]
    );
    assert!(h.stored[0].deleted);
    // Once stored, the same.
    h.act(a, edit(1, "back again", "e2"));
    assert_eq!(
        refusals(&mut h, a),
        vec![(ErrorCode::MessageDeleted, Some("e2".into()))]
    );
}

#[test]
fn a_change_judged_on_one_that_storage_then_failed_leaves_the_message_consistent() {
    let (mut h, a, b) = one_message();
    // "on" is accepted, then "off" is judged against it; storage loses the "on".
    h.act(b, react(1, "👍", true, "on"));
    h.act(b, react(1, "👍", false, "off"));
    let [_, off] = h.unconfirmed[..] else {
        panic!("two writes: {:?}", h.unconfirmed);
    };
    h.unconfirmed.clear();
    // Storage never held the "on" (it failed); the "off" it folds in changes nothing.
    h.room.handle_persist_failed(h.now);
    h.room.handle_persisted(h.now, off);
    h.run();
    assert_eq!(
        refusals(&mut h, b),
        vec![(ErrorCode::StorageFailed, Some("on".into()))]
    );
    let live = last_change(&mut h, a).expect("the off is told");
    assert!(live.reactions.is_empty());
    assert!(h.stored[0].reactions.is_empty());
}

#[test]
fn whoever_asked_for_a_change_is_told_it_is_stored_by_its_nonce_even_when_it_changed_nothing() {
    let (mut h, a, b) = one_message();
    h.act(b, react(1, "👍", true, "on"));
    h.confirm_held();
    let stored = last_change(&mut h, b).expect("the change, stored");
    assert_eq!(stored.change_nonce.as_deref(), Some("on"));
    assert_eq!(stored.reactions.len(), 1);
    // Everyone hears it with the same record.
    assert_eq!(last_change(&mut h, a), Some(stored));
    // The same reaction again changes nothing and stores nothing: only the asker hears so.
    h.act(b, react(1, "👍", true, "again"));
    assert!(h.unconfirmed.is_empty());
    let told = last_change(&mut h, b).expect("told");
    assert_eq!(told.change_nonce.as_deref(), Some("again"));
    assert_eq!(told.reactions.len(), 1);
    assert_eq!(last_change(&mut h, a), None);
}

/// One change a client asks for in the property test.
#[derive(Debug, Clone)]
enum Op {
    Edit(u8),
    Delete,
    React(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u8..4).prop_map(Op::Edit),
        1 => Just(Op::Delete),
        // More emoji than a message takes, so the cap is reached.
        12 => (0u8..24, any::<bool>()).prop_map(|(e, on)| Op::React(e, on)),
    ]
}

/// What one run of a script ends with: each client's refusals, what a watcher was told last,
/// and what storage holds.
#[derive(Debug, PartialEq)]
struct Outcome {
    refusals: Vec<Vec<(ErrorCode, Option<String>)>>,
    live: Option<MessageRecord>,
    stored: StoredMessage,
}

/// Three people change message 1 (by the first of them) as `script` says. Storage confirms
/// its writes when a step says so (its `true`), or, `one_by_one`, before the next action
/// arrives: the changes one by one.
fn run_script(script: &[(usize, Op, bool)], one_by_one: bool) -> Outcome {
    let mut h = slow_storage();
    let people: Vec<ConnectionId> = (1..=3).map(|i| h.join_ours(i).0).collect();
    let watcher = h.join_ours(9).0;
    h.say(people[0], "a message");
    h.confirm_held();
    for conn in people.iter().chain([&watcher]) {
        h.take(*conn);
    }
    let emoji: Vec<&str> = emoji_table().iter().map(|(_, e)| *e).collect();
    for (i, (who, op, confirm_now)) in script.iter().enumerate() {
        let conn = people[*who];
        let nonce = format!("n{i}");
        let action = match op {
            Op::Edit(text) => edit(1, &format!("edited {text}"), &nonce),
            Op::Delete => delete(1, &nonce),
            Op::React(e, on) => react(1, emoji[usize::from(*e)], *on, &nonce),
        };
        h.act(conn, action);
        if one_by_one || *confirm_now {
            h.confirm_held();
        }
    }
    h.confirm_held();
    let mut told = Vec::new();
    for conn in &people {
        told.push(refusals(&mut h, *conn));
    }
    let live = last_change(&mut h, watcher);
    Outcome {
        refusals: told,
        live,
        stored: h.stored[0].clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any interleaving of three people's changes to one message with storage's answers ends
    /// (each refusal, what everyone was told, what storage holds) as the same changes one by
    /// one do; and what everyone was told last is what storage holds.
    #[test]
    fn changes_in_flight_end_as_the_same_changes_one_by_one(
        script in prop::collection::vec((0usize..3, op(), any::<bool>()), 1..80)
    ) {
        let interleaved = run_script(&script, false);
        let one_by_one = run_script(&script, true);
        prop_assert_eq!(&interleaved, &one_by_one);
        if let Some(live) = &interleaved.live {
            let live = MessageRecord { change_nonce: None, ..live.clone() };
            prop_assert_eq!(live, interleaved.stored.to_record());
        }
        prop_assert!(interleaved.stored.reactions.len() <= MAX_REACTIONS);
    }
}
