//! Calls: signalling reaches only the other person of the call, rings time out, nobody else
//! can speak into a call, and every call leaves its record in the two people's conversation.

use super::direct_tests::{identify, three};
use super::*;
use crate::testing::Pair;
use crate::wire::{CallEnd, CallKind, CallOutcome, CallSignal};

fn ring(id: &str, to: &str) -> ClientAction {
    ClientAction::Call(CallSignal {
        to: Some(to.to_owned()),
        video: Some(true),
        nonce: Some(id.to_owned()),
        ..CallSignal::new(id, CallKind::Ring)
    })
}

fn signal(id: &str, kind: CallKind, data: Option<&str>) -> ClientAction {
    ClientAction::Call(CallSignal {
        data: data.map(str::to_owned),
        nonce: Some(format!("{id}-n")),
        ..CallSignal::new(id, kind)
    })
}

/// The call signals a connection received.
fn calls(pair: &mut Pair, conn: ConnectionId) -> Vec<CallSignal> {
    pair.take(conn)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Call(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn kinds(signals: &[CallSignal]) -> Vec<CallKind> {
    signals.iter().map(|s| s.kind).collect()
}

#[test]
fn signalling_reaches_only_the_callee_and_the_call_leaves_its_record_with_them() {
    let mut t = three(RoomConfig::default());
    // Bob has a second tab: the ring reaches both, the one that answers takes the call.
    let bob_tab = t.pair.connect(12);
    t.pair
        .act(bob_tab, identify(&t.bob.1, &t.bob.2, None, true));
    t.pair.take(bob_tab);

    t.pair.act(t.alice.0, ring("c1", &t.bob.1));
    for conn in [t.bob.0, bob_tab] {
        let heard = calls(&mut t.pair, conn);
        assert_eq!(kinds(&heard), [CallKind::Ring]);
        assert_eq!(heard[0].from.as_deref(), Some(t.alice.1.as_str()));
    }
    t.pair.act(bob_tab, signal("c1", CallKind::Accept, None));
    assert_eq!(kinds(&calls(&mut t.pair, t.alice.0)), [CallKind::Accept]);
    let elsewhere = calls(&mut t.pair, t.bob.0);
    assert_eq!(kinds(&elsewhere), [CallKind::Ended]);
    assert_eq!(elsewhere[0].reason, Some(CallEnd::AnsweredElsewhere));

    t.pair
        .act(t.alice.0, signal("c1", CallKind::Offer, Some("v=0 offer")));
    t.pair
        .act(bob_tab, signal("c1", CallKind::Answer, Some("v=0 answer")));
    t.pair.act(
        t.alice.0,
        signal("c1", CallKind::Ice, Some("{\"candidate\":\"a\"}")),
    );
    t.pair.act(
        bob_tab,
        signal("c1", CallKind::Ice, Some("{\"candidate\":\"b\"}")),
    );
    let to_bob = calls(&mut t.pair, bob_tab);
    assert_eq!(kinds(&to_bob), [CallKind::Offer, CallKind::Ice]);
    assert_eq!(to_bob[0].data.as_deref(), Some("v=0 offer"));
    assert_eq!(
        kinds(&calls(&mut t.pair, t.alice.0)),
        [CallKind::Answer, CallKind::Ice]
    );
    // Bob's other tab, Carol and the v1 client heard nothing of it.
    for conn in [t.bob.0, t.carol.0, t.dave.0] {
        assert!(t.pair.take(conn).is_empty(), "{conn:?} heard the call");
    }

    t.pair.advance(125_000);
    t.pair.act(t.alice.0, signal("c1", CallKind::Hangup, None));
    let heard = t.pair.take(bob_tab);
    assert!(matches!(&heard[0], ServerAction::Call(s) if s.reason == Some(CallEnd::HungUp)));
    // The record: a direct message from the caller, stored, and seen by the two only.
    let stored = t.pair.stored.last().expect("the call's record is stored");
    assert_eq!(stored.user_id, t.alice.1);
    assert_eq!(stored.to.as_deref(), Some(t.bob.1.as_str()));
    let record = stored.call.expect("a call record");
    assert_eq!((record.outcome, record.secs), (CallOutcome::Answered, 125));
    assert_eq!(stored.raw, "Call, 3 min");
    assert!(matches!(&heard[1], ServerAction::Message(m) if m.call == Some(record)));
    for conn in [t.alice.0, t.bob.0] {
        let records = t.pair.messages(conn);
        assert_eq!(records.len(), 1, "{conn:?}");
        assert_eq!(records[0].call, Some(record));
    }
    assert!(t.pair.messages(t.carol.0).is_empty());
    assert!(t.pair.messages(t.dave.0).is_empty());
}

#[test]
fn a_ring_nobody_answers_times_out_as_missed() {
    let config = RoomConfig {
        call_ring_ms: 20_000,
        ..RoomConfig::default()
    };
    let mut t = three(config);
    t.pair.act(t.alice.0, ring("c1", &t.bob.1));
    t.pair.take(t.bob.0);
    assert_eq!(t.pair.room.poll_timeout(), Some(t.pair.now + 20_000));
    t.pair.advance(19_999);
    assert!(calls(&mut t.pair, t.alice.0).is_empty());
    t.pair.advance(1);
    for conn in [t.alice.0, t.bob.0] {
        let heard = calls(&mut t.pair, conn);
        assert_eq!(kinds(&heard), [CallKind::Ended], "{conn:?}");
        assert_eq!(heard[0].reason, Some(CallEnd::Missed));
    }
    assert_eq!(t.pair.room.poll_timeout(), None);
    let stored = t.pair.stored.last().expect("record");
    assert_eq!(stored.raw, "Missed call");
    // Answering too late is refused: the call is gone.
    t.pair.act(t.bob.0, signal("c1", CallKind::Accept, None));
    assert_eq!(t.pair.errors(t.bob.0), [ErrorCode::InvalidCall]);
    // Declining is recorded as declined.
    t.pair.act(t.alice.0, ring("c2", &t.bob.1));
    t.pair.act(t.bob.0, signal("c2", CallKind::Decline, None));
    assert_eq!(
        calls(&mut t.pair, t.alice.0)[0].reason,
        Some(CallEnd::Declined)
    );
    assert_eq!(
        t.pair.stored.last().map(|m| m.raw.as_str()),
        Some("Declined call")
    );
}

#[test]
fn a_third_person_cannot_speak_into_someone_elses_call() {
    let mut t = three(RoomConfig::default());
    t.pair.act(t.alice.0, ring("c1", &t.bob.1));
    // Before it is answered nobody may send media signals, Carol least of all.
    t.pair.act(t.carol.0, signal("c1", CallKind::Accept, None));
    t.pair.act(
        t.carol.0,
        signal("c1", CallKind::Ice, Some("{\"candidate\":\"evil\"}")),
    );
    t.pair.act(t.carol.0, signal("c1", CallKind::Hangup, None));
    assert_eq!(
        t.pair.errors(t.carol.0),
        [
            ErrorCode::InvalidCall,
            ErrorCode::InvalidCall,
            ErrorCode::InvalidCall
        ]
    );
    t.pair.act(t.bob.0, signal("c1", CallKind::Accept, None));
    calls(&mut t.pair, t.alice.0);
    // Carol, and Alice's and Bob's other tabs, cannot inject candidates or offers.
    let alice_tab = t.pair.connect(11);
    t.pair
        .act(alice_tab, identify(&t.alice.1, &t.alice.2, None, true));
    t.pair.take(alice_tab);
    for (conn, kind) in [
        (t.carol.0, CallKind::Ice),
        (t.carol.0, CallKind::Offer),
        (alice_tab, CallKind::Ice),
        (alice_tab, CallKind::Hangup),
        (t.dave.0, CallKind::Ice),
        // The callee answers; it does not offer.
        (t.bob.0, CallKind::Offer),
    ] {
        t.pair.act(conn, signal("c1", kind, Some("x")));
        assert_eq!(
            t.pair.errors(conn),
            [ErrorCode::InvalidCall],
            "{conn:?} {kind:?}"
        );
    }
    assert!(calls(&mut t.pair, t.alice.0).is_empty());
    assert!(calls(&mut t.pair, t.bob.0).is_empty());
    // A client cannot say the room's own words.
    t.pair.act(t.alice.0, signal("c1", CallKind::Ended, None));
    assert_eq!(t.pair.errors(t.alice.0), [ErrorCode::InvalidCall]);
    // The call goes on.
    t.pair.act(
        t.alice.0,
        signal("c1", CallKind::Ice, Some("{\"candidate\":\"a\"}")),
    );
    assert_eq!(kinds(&calls(&mut t.pair, t.bob.0)), [CallKind::Ice]);
}

#[test]
fn calls_are_bounded_one_at_a_time_and_end_with_their_connection() {
    let config = RoomConfig {
        max_call_signal_bytes: 100,
        call_signal_burst: 3,
        call_signals_per_second: 1,
        ..RoomConfig::default()
    };
    let mut t = three(config);
    // Nobody calls oneself, a v1 client, or someone not here.
    t.pair.act(t.alice.0, ring("c0", &t.alice.1));
    t.pair.act(t.alice.0, ring("c0", &t.dave.1));
    t.pair.act(t.alice.0, ring("c0", "nobody"));
    assert_eq!(t.pair.errors(t.alice.0), [ErrorCode::Unavailable; 3]);
    t.pair.act(t.dave.0, ring("c0", &t.alice.1));
    assert_eq!(t.pair.errors(t.dave.0), [ErrorCode::Unavailable]);

    t.pair.act(t.alice.0, ring("c1", &t.bob.1));
    t.pair.act(t.bob.0, signal("c1", CallKind::Accept, None));
    t.pair.take(t.alice.0);
    // One call at a time per person: Carol cannot ring either of them, nor reuse the id.
    t.pair.act(t.carol.0, ring("c2", &t.bob.1));
    t.pair.act(t.carol.0, ring("c1", &t.alice.1));
    assert_eq!(
        t.pair.errors(t.carol.0),
        [ErrorCode::CallBusy, ErrorCode::InvalidCall]
    );
    // A signal larger than the bound is refused, with its nonce.
    let big = "x".repeat(101);
    t.pair
        .act(t.alice.0, signal("c1", CallKind::Offer, Some(&big)));
    let refused = t.pair.take(t.alice.0);
    assert!(matches!(&refused[..], [ServerAction::Error(e)]
        if e.code == ErrorCode::InvalidCall && e.nonce.as_deref() == Some("c1-n")));
    // Signals have their own rate: a burst of three (the refused offer took one), then one a
    // second.
    for _ in 0..3 {
        t.pair
            .act(t.alice.0, signal("c1", CallKind::Ice, Some("c")));
    }
    assert_eq!(t.pair.errors(t.alice.0), [ErrorCode::RateLimited]);
    assert_eq!(kinds(&calls(&mut t.pair, t.bob.0))[1..], [CallKind::Ice; 2]);

    // Bob's connection closes: the call ends for Alice, and is recorded.
    t.pair.advance(5_000);
    t.pair.disconnect(t.bob.0);
    let ended = calls(&mut t.pair, t.alice.0);
    assert_eq!(
        ended.last().and_then(|s| s.reason),
        Some(CallEnd::Disconnected)
    );
    let record = t.pair.stored.last().and_then(|m| m.call).expect("record");
    assert_eq!((record.outcome, record.secs), (CallOutcome::Answered, 5));
    // Alice is free again.
    t.pair.act(t.alice.0, ring("c3", &t.carol.1));
    assert_eq!(kinds(&calls(&mut t.pair, t.carol.0)), [CallKind::Ring]);
}

#[test]
fn nobody_edits_deletes_or_reacts_to_a_calls_record() {
    let mut t = three(RoomConfig::default());
    t.pair.act(t.alice.0, ring("c1", &t.bob.1));
    t.pair.act(t.bob.0, signal("c1", CallKind::Accept, None));
    t.pair.advance(26_000);
    t.pair.act(t.alice.0, signal("c1", CallKind::Hangup, None));
    let stored = t.pair.stored.last().expect("the call's record").clone();
    assert_eq!(stored.raw, "Call, 26 s");
    t.pair.take(t.alice.0);
    t.pair.take(t.bob.0);
    let changes = [
        ClientAction::EditMessage(crate::wire::EditMessage {
            target: stored.seq,
            raw_message: "Call, 3 h".into(),
            nonce: Some("e1".into()),
        }),
        ClientAction::DeleteMessage(crate::wire::DeleteMessage {
            target: stored.seq,
            nonce: Some("d1".into()),
        }),
        ClientAction::React(crate::wire::React {
            target: stored.seq,
            emoji: "👍".into(),
            on: true,
            nonce: Some("r1".into()),
        }),
    ];
    // Not the caller, whose message it is, nor the one called.
    for (who, action) in [
        (t.alice.0, &changes[0]),
        (t.alice.0, &changes[1]),
        (t.bob.0, &changes[2]),
    ] {
        t.pair.act(who, action.clone());
        let refused: Vec<(ErrorCode, Option<String>)> = t
            .pair
            .take(who)
            .into_iter()
            .filter_map(|a| match a {
                ServerAction::Error(e) => Some((e.code, e.nonce)),
                ServerAction::MessageChanged(m) => panic!("changed: {m:?}"),
                _ => None,
            })
            .collect();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, ErrorCode::Unchangeable);
    }
    assert_eq!(
        t.pair.stored.last(),
        Some(&stored),
        "stored as the room wrote it"
    );
}
