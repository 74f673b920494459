//! Our changes (edits, deletes, reactions) in the session's outbox: each kept with its state
//! until the room says it stored it, refused ones kept for the person, nothing lost to a
//! reconnect or to a rate refusal.

use super::*;
use crate::testing::{Pair, PeerId};

fn joined(pair: &mut Pair, name: &str) -> PeerId {
    let peer = pair.add_session(SessionConfig {
        nonce_prefix: name.to_owned(),
        ..SessionConfig::default()
    });
    pair.open_session(peer);
    assert_eq!(pair.session(peer).phase(), Phase::Online);
    peer
}

fn say(pair: &mut Pair, peer: PeerId, text: &str) -> Seq {
    let now = pair.now;
    pair.session_mut(peer)
        .send_message(now, text, None)
        .expect("a message the room takes");
    pair.run();
    pair.session(peer)
        .messages()
        .last()
        .and_then(|m| m.seq)
        .expect("stored")
}

fn notices(session: &mut Session) -> Vec<Notice> {
    std::iter::from_fn(|| session.poll_event())
        .filter_map(|e| match e {
            Event::Notice(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn states(session: &Session) -> Vec<(ChangeAsk, Delivery, bool)> {
    session
        .changes()
        .iter()
        .map(|c| (c.ask.clone(), c.delivery, c.reason.is_some()))
        .collect()
}

/// The room refuses the action with `nonce` as too fast; once the wait is over, what goes again.
fn refused_for_rate_then_woken(session: &mut Session, nonce: &str) -> Vec<ClientAction> {
    session.handle_frame(
        20,
        &format!(
            r#"{{"type":"ERROR","payload":{{"code":"RATE_LIMITED","message":"too fast","nonce":"{nonce}"}}}}"#
        ),
    );
    let wake = session.poll_timeout().expect("a wake-up");
    session.handle_timeout(wake);
    std::iter::from_fn(|| session.poll_transmit()).collect()
}

/// A session talking to a room that the test plays, frame by frame, as a room would.
fn online_alone() -> Session {
    let mut session = Session::new(SessionConfig::default());
    session.connected(0);
    while session.poll_transmit().is_some() {}
    session.handle_frame(
        0,
        r#"{"type":"HANDSHAKE","payload":{"serverName":"R","messages":[{"rawMessage":"hi","htmlMessage":"","timestamp":1,"userId":"me","seq":1}],"userNames":{"me":"Me"},"protocolVersion":2,"latestSeq":1,"limits":{"maxMessageChars":4000,"maxNameChars":32,"rateBurst":10,"ratePerSecond":5}}}"#,
    );
    session.handle_frame(
        0,
        r#"{"type":"USER_INFO","payload":{"userId":"me","name":"Me","token":"t"}}"#,
    );
    assert_eq!(session.phase(), Phase::Online);
    while session.poll_event().is_some() {}
    session
}

#[test]
fn an_edit_refused_for_rate_waits_says_so_and_goes_again_with_its_nonce() {
    let mut session = online_alone();
    session.edit_message(10, 1, "hello").expect("an edit");
    let Some(ClientAction::EditMessage(sent)) = session.poll_transmit() else {
        panic!("the edit goes out");
    };
    let nonce = sent.nonce.clone().expect("a nonce");
    session.handle_frame(
        20,
        &format!(
            r#"{{"type":"ERROR","payload":{{"code":"RATE_LIMITED","message":"too fast","nonce":"{nonce}"}}}}"#
        ),
    );
    // Not saved yet, and it says so; not dropped, not sent again at once.
    assert_eq!(
        states(&session),
        vec![(ChangeAsk::Edit("hello".into()), Delivery::Pending, true)]
    );
    assert!(!session.changes()[0].in_flight);
    assert_eq!(notices(&mut session), vec![Notice::RateLimited]);
    assert!(session.poll_transmit().is_none());
    // After the wait it goes again, the same edit with the same nonce.
    let wake = session.poll_timeout().expect("a wake-up");
    session.handle_timeout(wake);
    assert_eq!(
        session.poll_transmit(),
        Some(ClientAction::EditMessage(sent))
    );
    // The room stores it and says so by its nonce: the outbox is empty, the text is new.
    session.handle_frame(
        wake + 5,
        &format!(
            r#"{{"type":"MESSAGE_CHANGED","payload":{{"rawMessage":"hello","htmlMessage":"","timestamp":1,"userId":"me","seq":1,"changedSeq":2,"editedAt":30,"changeNonce":"{nonce}"}}}}"#
        ),
    );
    assert!(session.changes().is_empty());
    assert_eq!(session.messages()[0].raw, "hello");
}

#[test]
fn a_rate_refusal_of_a_reaction_sends_it_and_what_came_after_it_again_in_order() {
    let mut session = online_alone();
    session.react(10, 1, "👍", true);
    session.edit_message(10, 1, "later").expect("an edit");
    session
        .send_message(10, "a new message", None)
        .expect("a message");
    let sent: Vec<ClientAction> = std::iter::from_fn(|| session.poll_transmit()).collect();
    assert_eq!(sent.len(), 3);
    let ClientAction::React(first) = &sent[0] else {
        panic!("the reaction first: {sent:?}");
    };
    let nonce = first.nonce.clone().expect("nonce");
    let again = refused_for_rate_then_woken(&mut session, &nonce);
    assert_eq!(
        again, sent,
        "all three again, in the order they were written"
    );
}

#[test]
fn a_change_storage_could_not_keep_is_shown_failed_and_goes_through_on_retry() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    let seq = say(&mut pair, ada, "lunch?");
    pair.fail_storage = true;
    let now = pair.now;
    pair.session_mut(linus).react(now, seq, "👍", true);
    pair.run();
    assert_eq!(
        states(pair.session(linus)),
        vec![(
            ChangeAsk::React {
                emoji: "👍".into(),
                on: true
            },
            Delivery::Failed,
            true
        )]
    );
    assert!(pair.session(ada).messages()[0].reactions.is_empty());
    // Storage is back; the person retries.
    pair.fail_storage = false;
    let nonce = pair.session(linus).changes()[0].nonce.clone();
    pair.session_mut(linus).retry_change(now, &nonce);
    pair.run();
    assert!(pair.session(linus).changes().is_empty());
    for peer in [ada, linus] {
        assert_eq!(pair.session(peer).messages()[0].reactions.len(), 1);
    }
}

#[test]
fn a_refused_change_is_kept_with_its_reason_until_dismissed_and_a_second_delete_is_as_asked() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    let seq = say(&mut pair, ada, "mine");
    let now = pair.now;
    // Linus cannot edit Ada's message: refused, with the room's reason, kept.
    pair.session_mut(linus)
        .edit_message(now, seq, "his now")
        .expect("checked as a message");
    pair.run();
    let [refused] = pair.session(linus).changes()[..] else {
        panic!("kept");
    };
    assert_eq!(refused.delivery, Delivery::Refused);
    assert!(
        refused
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("author")),
        "{refused:?}"
    );
    let nonce = refused.nonce.clone();
    pair.session_mut(linus).dismiss_change(&nonce);
    assert!(pair.session(linus).changes().is_empty());
    // Ada deletes twice at once: the second finds it deleted, which is what she asked.
    pair.auto_persist = false;
    pair.session_mut(ada).delete_message(now, seq);
    pair.session_mut(ada).delete_message(now, seq);
    pair.run();
    pair.confirm_held();
    assert!(pair.session(ada).changes().is_empty());
    assert!(pair.session(ada).messages()[0].deleted);
}

#[test]
fn a_change_in_flight_when_the_connection_drops_goes_again_once_and_is_stored_once() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    let seq = say(&mut pair, ada, "lunch?");
    pair.auto_persist = false;
    let now = pair.now;
    pair.session_mut(linus).react(now, seq, "🍕", true);
    pair.session_mut(linus)
        .edit_message(now, seq, "not his")
        .expect("an edit");
    pair.run();
    assert_eq!(pair.unconfirmed.len(), 1, "the reaction waits for storage");
    // The connection drops before the room's answer: nothing is lost.
    pair.drop_session(linus);
    assert_eq!(pair.session(linus).changes().len(), 2);
    pair.open_session(linus);
    // The reaction went again; the room already has it on its way: no second event.
    assert_eq!(pair.unconfirmed.len(), 1);
    pair.confirm_held();
    assert_eq!(
        states(pair.session(linus)),
        vec![(ChangeAsk::Edit("not his".into()), Delivery::Refused, true)],
        "the reaction is stored; the edit was refused on the new connection too"
    );
    assert_eq!(pair.stored[0].reactions.len(), 1);
    assert_eq!(pair.session(ada).messages()[0].reactions.len(), 1);
}

/// One queue: messages and changes go in the order they were asked for, and a rate refusal
/// of a message sends the change asked after it again too (and nothing before it).
#[test]
fn messages_and_changes_go_in_the_order_asked_and_a_rate_refusal_resends_from_its_item_on() {
    let mut session = online_alone();
    session.send_message(10, "first", None).expect("a message");
    session.react(10, 1, "👍", true);
    session.send_message(10, "second", None).expect("a message");
    session.edit_message(10, 1, "edited").expect("an edit");
    let sent: Vec<ClientAction> = std::iter::from_fn(|| session.poll_transmit()).collect();
    let kinds: Vec<&str> = sent
        .iter()
        .map(|a| match a {
            ClientAction::Message(_) => "message",
            ClientAction::React(_) => "react",
            ClientAction::EditMessage(_) => "edit",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["message", "react", "message", "edit"]);
    let ClientAction::Message(second) = &sent[2] else {
        panic!("{sent:?}");
    };
    let nonce = second.nonce.clone().expect("nonce");
    let again = refused_for_rate_then_woken(&mut session, &nonce);
    assert_eq!(
        again,
        sent[2..],
        "the refused message and the edit after it, once"
    );
}

/// A refusal that names a message's nonce settles that message, whatever its reason: it is
/// refused, not left "sending" for ever.
#[test]
fn a_message_refused_for_any_reason_by_its_nonce_is_refused_not_left_waiting() {
    let mut session = online_alone();
    let nonce = session
        .send_message_to(10, "psst", None, Some("nobody".into()))
        .expect("a message");
    while session.poll_transmit().is_some() {}
    session.handle_frame(
        20,
        &format!(
            r#"{{"type":"ERROR","payload":{{"code":"UNKNOWN_USER","message":"a direct message goes to someone else known in this room","nonce":"{nonce}"}}}}"#
        ),
    );
    let pending = session.pending();
    let [refused] = pending[..] else {
        panic!("{pending:?}");
    };
    assert_eq!(refused.delivery, Delivery::Refused);
    assert!(!refused.in_flight);
}
