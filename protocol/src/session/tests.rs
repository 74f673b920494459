//! The session against the real room engine, through the in-memory [`Pair`]: frames pass as
//! JSON, storage is slowed, fails, or loses its history, and connections drop.

use super::*;
use crate::testing::{Pair, PeerId};
use crate::wire::{CallEnd, CallKind, CallSignal};

fn joined(pair: &mut Pair, name: &str) -> PeerId {
    let peer = pair.add_session(SessionConfig {
        nonce_prefix: name.to_owned(),
        ..SessionConfig::default()
    });
    let now = pair.now;
    pair.session_mut(peer)
        .set_wanted_name(now, Some(name.to_owned()));
    pair.open_session(peer);
    assert_eq!(pair.session(peer).phase(), Phase::Online);
    // Everyone hears of them with the presence tick.
    let tick = pair.room.config().presence_tick_ms;
    pair.advance(tick);
    peer
}

fn say(pair: &mut Pair, peer: PeerId, text: &str) -> String {
    let now = pair.now;
    let nonce = pair
        .session_mut(peer)
        .send_message(now, text, None)
        .expect("a message the room takes");
    pair.run();
    nonce
}

fn events(pair: &mut Pair, peer: PeerId) -> Vec<Event> {
    std::iter::from_fn(|| pair.session_mut(peer).poll_event()).collect()
}

fn pending_states(pair: &Pair, peer: PeerId) -> Vec<(String, Delivery)> {
    pair.session(peer)
        .pending()
        .iter()
        .map(|m| (m.raw.clone(), m.delivery))
        .collect()
}

fn texts(pair: &Pair, peer: PeerId) -> Vec<String> {
    pair.session(peer)
        .messages()
        .iter()
        .map(|m| m.raw.clone())
        .collect()
}

/// A room with `messages` from Ada that keeps few in memory (older pages come from storage),
/// and Linus, who joined after them.
fn long_room(messages: usize) -> (Pair, PeerId) {
    let config = crate::RoomConfig {
        cache_messages: 30,
        handshake_messages: 20,
        ..crate::RoomConfig::default()
    };
    let mut pair = Pair::with(config, crate::RoomSnapshot::default());
    let writer = joined(&mut pair, "Ada");
    for i in 0..messages {
        pair.advance(1_000);
        say(&mut pair, writer, &format!("m{i}"));
    }
    let me = joined(&mut pair, "Linus");
    (pair, me)
}

#[test]
fn two_people_see_each_other_their_names_and_their_messages_rendered_here() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    say(&mut pair, ada, "hi *Linus*");
    for peer in [ada, linus] {
        let session = pair.session(peer);
        assert!(session.pending().is_empty());
        let [message] = session.messages() else {
            panic!("{:?}", session.messages());
        };
        assert_eq!(session.names().shown(&message.user_id), "Ada");
        assert!(message.html.contains("<em>Linus</em>"), "{}", message.html);
        assert_eq!(session.online().len(), 2);
        assert_eq!(session.is_me(&message.user_id), peer == ada);
    }
    // Only the other one hears of it as news.
    assert!(
        events(&mut pair, linus)
            .iter()
            .any(|e| matches!(e, Event::Arrived { .. }))
    );
    assert!(
        !events(&mut pair, ada)
            .iter()
            .any(|e| matches!(e, Event::Arrived { .. }))
    );
}

/// The bug this session was built to fix: under group commit a refusal is sent at once
/// while an accepted message's echo waits for its storage batch. A is accepted, B is refused
/// (too complex: a rule only the room checks) before A's echo arrives. A must end sent and B
/// not sent, whatever the order of the answers.
#[test]
fn a_refusal_before_an_earlier_messages_echo_fails_only_its_own_message() {
    let mut pair = Pair::new();
    let me = joined(&mut pair, "Ada");
    pair.storage_delay = 200;
    say(&mut pair, me, "A");
    let deep = format!("{} deep", ">".repeat(300));
    say(&mut pair, me, &deep);
    // B's refusal has arrived; A's echo has not.
    assert_eq!(
        pending_states(&pair, me),
        vec![
            ("A".to_owned(), Delivery::Pending),
            (deep.clone(), Delivery::Refused)
        ]
    );
    pair.advance(200);
    assert_eq!(texts(&pair, me), vec!["A"]);
    assert_eq!(pending_states(&pair, me), vec![(deep, Delivery::Refused)]);
    // Refused for what it is: it is never sent again by itself, even on a new connection.
    pair.drop_session(me);
    pair.open_session(me);
    pair.advance(1_000);
    assert_eq!(texts(&pair, me), vec!["A"]);
    assert_eq!(pair.stored.len(), 1);
}

#[test]
fn a_failed_history_page_fails_no_message() {
    let (mut pair, me) = long_room(120);
    assert_eq!(pair.session(me).history(), History::More);
    pair.storage_delay = 500;
    pair.fail_history = true;
    say(&mut pair, me, "waiting for storage");
    let now = pair.now;
    pair.session_mut(me).request_history(now);
    pair.run();
    assert_eq!(
        pair.session(me).history(),
        History::More,
        "can be asked again"
    );
    assert!(events(&mut pair, me).contains(&Event::Notice(Notice::HistoryFailed)));
    assert_eq!(
        pending_states(&pair, me),
        vec![("waiting for storage".to_owned(), Delivery::Pending)]
    );
    pair.advance(500);
    assert!(pair.session(me).pending().is_empty());
    // Storage can read again: the page arrives above.
    pair.fail_history = false;
    let first = pair.session(me).messages()[0].seq;
    let now = pair.now;
    pair.session_mut(me).request_history(now);
    pair.run();
    assert!(pair.session(me).messages()[0].seq < first);
}

#[test]
fn a_message_storage_could_not_keep_is_not_sent_until_retried() {
    let mut pair = Pair::new();
    let me = joined(&mut pair, "Ada");
    pair.fail_storage = true;
    say(&mut pair, me, "lost");
    let key = pair.session(me).pending()[0].key.clone();
    assert_eq!(
        pending_states(&pair, me),
        vec![("lost".to_owned(), Delivery::Failed)]
    );
    pair.fail_storage = false;
    let now = pair.now;
    pair.session_mut(me).retry(now, &key);
    pair.run();
    assert!(pair.session(me).pending().is_empty());
    assert_eq!(texts(&pair, me), vec!["lost"]);
}

#[test]
fn a_dropped_connection_resumes_without_gap_or_duplicate_and_sends_what_waited_once() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    say(&mut pair, ada, "one");
    pair.drop_session(linus);
    assert_eq!(pair.session(linus).phase(), Phase::Closed);
    say(&mut pair, ada, "two");
    say(&mut pair, ada, "three");
    // Written while the connection is down: it waits, and goes once the room is back.
    say(&mut pair, linus, "while away");
    assert_eq!(pair.stored.len(), 3);
    let identity = pair.session(linus).identity().cloned();
    pair.open_session(linus);
    assert_eq!(
        pair.session(linus).identity().cloned(),
        identity,
        "the same person"
    );
    assert_eq!(
        texts(&pair, linus),
        vec!["one", "two", "three", "while away"]
    );
    let seqs: Vec<_> = pair
        .session(linus)
        .messages()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, vec![Some(1), Some(2), Some(3), Some(4)]);
    assert_eq!(pair.stored.len(), 4, "stored once");
    assert_eq!(texts(&pair, ada), texts(&pair, linus));
}

#[test]
fn quick_messages_go_out_at_the_rooms_rate_and_none_is_refused_or_reordered() {
    let mut pair = Pair::new();
    let me = joined(&mut pair, "Ada");
    let burst = pair.session(me).limits().expect("announced").rate_burst as usize;
    let written: Vec<String> = (0..burst * 3).map(|i| format!("m{i}")).collect();
    for text in &written {
        say(&mut pair, me, text);
    }
    // The burst, less the name change the room counted too, goes at once.
    assert_eq!(texts(&pair, me).len(), burst - 1, "the burst goes at once");
    while let Some(at) = pair.next_wakeup() {
        pair.advance_to(at);
    }
    assert_eq!(texts(&pair, me), written);
    assert!(
        !events(&mut pair, me)
            .iter()
            .any(|e| matches!(e, Event::Notice(Notice::RateLimited)))
    );
}

#[test]
fn a_name_is_asked_for_once_and_again_when_the_room_forgot_us() {
    let mut pair = Pair::new();
    let me = joined(&mut pair, "Grace");
    assert_eq!(pair.session(me).my_name(), Some("Grace"));
    // Online under that name already: nothing to send.
    let now = pair.now;
    pair.session_mut(me)
        .set_wanted_name(now, Some("Grace".into()));
    assert_eq!(pair.session_mut(me).poll_transmit(), None);
    pair.session_mut(me)
        .set_wanted_name(now, Some("Hopper".into()));
    pair.run();
    assert_eq!(pair.session(me).my_name(), Some("Hopper"));
    // A room that lost its users (a new room at the same address) gives a new identity;
    // the name we want is sent again.
    let mut other = Pair::new();
    let config = pair.session(me).config.clone();
    let peer = other.add_session(config);
    other
        .session_mut(peer)
        .set_identity(pair.session(me).identity().cloned());
    other
        .session_mut(peer)
        .set_wanted_name(now, Some("Hopper".into()));
    other.open_session(peer);
    assert!(events(&mut other, peer).contains(&Event::Notice(Notice::IdentityRejected)));
    assert_eq!(other.session(peer).my_name(), Some("Hopper"));
}

#[test]
fn an_edit_and_a_delete_reach_everyone_live_after_a_dropped_connection_and_on_a_new_one() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    say(&mut pair, ada, "helo");
    say(&mut pair, ada, "wrong room");
    let first = pair.session(ada).messages()[0].seq.expect("stored");
    assert_eq!(pair.session(ada).last_own_message(), Some(first + 1));
    let now = pair.now;
    pair.session_mut(ada)
        .edit_message(now, first, "hello")
        .expect("fits");
    pair.run();
    let shown = |pair: &Pair, peer| {
        pair.session(peer)
            .messages()
            .iter()
            .map(|m| (m.raw.clone(), m.edited_at.is_some(), m.deleted))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shown(&pair, linus),
        vec![
            ("hello".into(), true, false),
            ("wrong room".into(), false, false)
        ]
    );
    assert!(pair.session(linus).messages()[0].html.contains("hello"));
    // Linus is away while the second message is deleted; he resumes and sees it gone.
    pair.drop_session(linus);
    let now = pair.now;
    pair.session_mut(ada).delete_message(now, first + 1);
    pair.run();
    pair.open_session(linus);
    let expected = vec![("hello".into(), true, false), (String::new(), false, true)];
    assert_eq!(shown(&pair, linus), expected);
    assert_eq!(shown(&pair, ada), expected);
    assert_eq!(pair.session(ada).last_own_message(), Some(first));
    // Someone new sees the same.
    let grace = joined(&mut pair, "Grace");
    assert_eq!(shown(&pair, grace), expected);
    // Only the author may: Grace's try is refused, and nothing changes.
    let now = pair.now;
    pair.session_mut(grace).delete_message(now, first);
    pair.run();
    assert!(
        events(&mut pair, grace)
            .iter()
            .any(|e| matches!(e, Event::Notice(Notice::Refused(text)) if text.contains("author")))
    );
    assert_eq!(shown(&pair, linus), expected);
}

#[test]
fn a_reaction_is_seen_by_everyone_and_taken_back_only_by_who_gave_it() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    say(&mut pair, ada, "release is out");
    let seq = pair.session(linus).messages()[0].seq.expect("stored");
    assert_eq!(pair.session(linus).last_arrived(), Some(seq));
    let now = pair.now;
    pair.session_mut(linus).react(now, seq, "🎉", true);
    pair.session_mut(ada).react(now, seq, "🎉", true);
    pair.run();
    let reactions = |pair: &Pair, peer| pair.session(peer).messages()[0].reactions.clone();
    assert_eq!(reactions(&pair, ada), reactions(&pair, linus));
    assert_eq!(reactions(&pair, ada)[0].users.len(), 2);
    // Linus takes his back; Ada's stays.
    pair.session_mut(linus).react(now, seq, "🎉", false);
    pair.run();
    let ada_id = pair.session(ada).identity().map(|i| i.user_id.clone());
    assert_eq!(
        reactions(&pair, linus)[0].users,
        ada_id.into_iter().collect::<Vec<_>>()
    );
}

#[test]
fn typing_shows_for_a_while_at_most_every_few_seconds_and_ends_with_the_message() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    let ada_id = pair.session(ada).identity().map(|i| i.user_id.clone());
    let typing = |pair: &Pair| pair.session(linus).typing().cloned().collect::<Vec<_>>();
    let now = pair.now;
    pair.session_mut(ada).note_typing(now);
    pair.run();
    assert_eq!(typing(&pair), ada_id.iter().cloned().collect::<Vec<_>>());
    // Key presses soon after say nothing new.
    pair.session_mut(ada).note_typing(now + 1_000);
    assert_eq!(pair.session_mut(ada).poll_transmit(), None);
    // It expires on its own.
    pair.advance(TYPING_SHOWN_MS);
    assert!(typing(&pair).is_empty());
    let now = pair.now;
    pair.session_mut(ada).note_typing(now);
    pair.run();
    assert_eq!(typing(&pair).len(), 1);
    // The message it was is here: no longer typing.
    say(&mut pair, ada, "done");
    assert!(typing(&pair).is_empty());
    // Typing the next one is said again at once.
    let now = pair.now;
    pair.session_mut(ada).note_typing(now);
    pair.run();
    assert_eq!(typing(&pair).len(), 1);
}

#[test]
fn a_direct_conversation_is_the_two_peoples_and_works_like_the_room() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    let grace = joined(&mut pair, "Grace");
    let id = |pair: &Pair, peer| pair.session(peer).identity().map(|i| i.user_id.clone());
    let (ada_id, linus_id) = (id(&pair, ada), id(&pair, linus));
    let now = pair.now;
    pair.session_mut(ada).note_typing_to(now, linus_id.clone());
    pair.run();
    assert_eq!(
        pair.session(linus)
            .typing_in(ada_id.as_deref())
            .cloned()
            .collect::<Vec<_>>(),
        ada_id.iter().cloned().collect::<Vec<_>>()
    );
    // Typing to Linus is not typing in the room, and Grace hears nothing.
    assert_eq!(pair.session(linus).typing().count(), 0);
    assert_eq!(pair.session(grace).typing_in(ada_id.as_deref()).count(), 0);

    let nonce = pair
        .session_mut(ada)
        .send_message_to(now, "just us", None, linus_id.clone())
        .expect("taken");
    // Pending at once, in the conversation.
    assert_eq!(
        pair.session(ada).conversations(),
        linus_id.iter().cloned().collect::<Vec<_>>()
    );
    pair.run();
    assert!(
        pair.session(ada).pending().is_empty(),
        "the echo confirmed {nonce}"
    );
    say(&mut pair, grace, "room talk");
    // Linus hears of it as a direct message (unread in the conversation, not the room).
    assert!(events(&mut pair, linus).contains(&Event::Arrived {
        from: ada_id.clone().unwrap_or_default(),
        mentions_me: false,
        direct: true,
    }));
    assert_eq!(
        pair.session(linus).conversations(),
        ada_id.iter().cloned().collect::<Vec<_>>()
    );
    let shown = |pair: &Pair, peer: PeerId, with: Option<&str>| {
        let session = pair.session(peer);
        let me = session
            .identity()
            .map(|i| i.user_id.clone())
            .unwrap_or_default();
        session
            .messages()
            .iter()
            .filter(|m| m.is_in(&me, with))
            .map(|m| m.raw.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(shown(&pair, linus, ada_id.as_deref()), ["just us"]);
    assert_eq!(shown(&pair, ada, linus_id.as_deref()), ["just us"]);
    assert_eq!(shown(&pair, linus, None), ["room talk"]);
    assert_eq!(texts(&pair, grace), ["room talk"]);
    assert!(pair.session(grace).conversations().is_empty());
    // Linus reacts; both see it, Grace still knows nothing.
    let seq = pair.session(linus).messages()[0].seq.expect("stored");
    pair.session_mut(linus).react(now, seq, "👍", true);
    pair.run();
    assert_eq!(pair.session(ada).messages()[0].reactions.len(), 1);
    assert_eq!(texts(&pair, grace), ["room talk"]);
}

fn call_events(pair: &mut Pair, peer: PeerId) -> Vec<CallEvent> {
    events(pair, peer)
        .into_iter()
        .filter_map(|e| match e {
            Event::Call(c) => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_rings_is_answered_carries_signals_and_ends_on_both_sides() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    let grace = joined(&mut pair, "Grace");
    let linus_id = pair.session(linus).identity().expect("id").user_id.clone();
    let ada_id = pair.session(ada).identity().expect("id").user_id.clone();
    for peer in [ada, linus, grace] {
        events(&mut pair, peer);
    }
    let now = pair.now;
    // Nobody calls oneself or someone not here.
    assert_eq!(
        pair.session_mut(ada).start_call(now, &ada_id, true),
        Err(CallError::NotHere)
    );
    assert_eq!(
        pair.session_mut(ada).start_call(now, "nobody", true),
        Err(CallError::NotHere)
    );
    let id = pair
        .session_mut(ada)
        .start_call(now, &linus_id, true)
        .expect("rings");
    pair.run();
    assert_eq!(call_events(&mut pair, linus), [CallEvent::Incoming]);
    let incoming = pair.session(linus).call().expect("a call").clone();
    assert_eq!(
        (incoming.peer.as_str(), incoming.outgoing),
        (ada_id.as_str(), false)
    );
    assert_eq!(incoming.phase, CallPhase::Incoming);
    // One call at a time: Grace's ring to Linus is refused by the room, and she is told.
    let grace_call = pair.session_mut(grace).start_call(now, &linus_id, false);
    assert!(grace_call.is_ok());
    pair.run();
    assert_eq!(call_events(&mut pair, grace), [CallEvent::Ended]);
    assert!(matches!(
        pair.session(grace).call().map(|c| &c.phase),
        Some(CallPhase::Refused(_))
    ));
    assert_eq!(
        pair.session(linus).call().map(|c| c.id.as_str()),
        Some(id.as_str())
    );

    pair.session_mut(linus).accept_call(now, false);
    pair.run();
    assert_eq!(call_events(&mut pair, ada), [CallEvent::Accepted]);
    assert_eq!(pair.session(ada).call().map(|c| c.peer_video), Some(false));
    pair.session_mut(ada)
        .send_call_signal(CallKind::Offer, "v=0 offer".into());
    pair.run();
    assert_eq!(
        call_events(&mut pair, linus),
        [CallEvent::Signal(CallKind::Offer, "v=0 offer".into())]
    );
    pair.session_mut(linus).set_call_media(false, false);
    pair.run();
    let seen = pair.session(ada).call().expect("call");
    assert_eq!((seen.peer_audio, seen.peer_video), (false, false));
    assert!(call_events(&mut pair, grace).is_empty());

    pair.advance(61_000);
    let now = pair.now;
    pair.session_mut(linus).hang_up(now);
    pair.run();
    assert_eq!(call_events(&mut pair, ada), [CallEvent::Ended]);
    for peer in [ada, linus] {
        let call = pair.session(peer).call().expect("the ended call shows");
        assert_eq!(call.phase, CallPhase::Ended(CallEnd::HungUp));
        let last = pair
            .session(peer)
            .messages()
            .last()
            .expect("the record")
            .clone();
        assert_eq!(last.raw, "Call, 2 min");
        assert!(last.call.is_some(), "kept as the call's record");
        // Up in an empty box edits one's own latest message: never the call's record.
        assert_ne!(pair.session(peer).last_own_message(), last.seq);
    }
    assert!(
        pair.session(grace)
            .messages()
            .iter()
            .all(|m| !m.raw.starts_with("Call"))
    );
}

#[test]
fn a_ring_ends_when_the_connection_goes_or_nobody_settles_it() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    let linus_id = pair.session(linus).identity().expect("id").user_id.clone();
    let now = pair.now;
    pair.session_mut(ada)
        .start_call(now, &linus_id, true)
        .expect("rings");
    pair.run();
    events(&mut pair, ada);
    // The caller's connection drops: the callee's ring stops, as missed.
    pair.drop_session(ada);
    pair.run();
    assert_eq!(
        pair.session(ada).call().map(|c| &c.phase),
        Some(&CallPhase::Ended(CallEnd::Disconnected))
    );
    assert_eq!(
        pair.session(linus).call().map(|c| &c.phase),
        Some(&CallPhase::Ended(CallEnd::Missed))
    );
    // A session gives up on a ring by itself too, if the room never says.
    let mut lonely = Session::new(SessionConfig::default());
    lonely.connected(0);
    lonely.handle_action(
        0,
        ServerAction::Call(CallSignal {
            from: Some("u9".into()),
            ..CallSignal::new("x", CallKind::Ring)
        }),
    );
    assert_eq!(lonely.poll_timeout(), Some(RING_GIVE_UP_MS));
    lonely.handle_timeout(RING_GIVE_UP_MS);
    assert_eq!(
        lonely.call().map(|c| &c.phase),
        Some(&CallPhase::Ended(CallEnd::Missed))
    );
}

#[test]
fn a_message_asked_for_is_revealed_once_history_paged_in_reaches_it_or_given_up() {
    let (mut pair, me) = long_room(200);
    let first = pair.session(me).messages()[0].seq.expect("stored");
    events(&mut pair, me);
    // One the timeline has: revealed at once, nothing asked of the room.
    let now = pair.now;
    pair.session_mut(me).reveal(now, first + 3);
    assert_eq!(pair.history_requests.len(), 0);
    assert_eq!(events(&mut pair, me), vec![Event::Revealed(first + 3)]);
    // One far back: pages come, one after the other, until it is there; then it is said.
    let now = pair.now;
    pair.session_mut(me).reveal(now, 5);
    assert_eq!(pair.session(me).revealing(), Some(5));
    pair.run();
    assert!(
        pair.history_requests.len() >= 2,
        "{:?}",
        pair.history_requests
    );
    assert!(pair.session(me).find(5).is_some());
    assert_eq!(pair.session(me).revealing(), None);
    assert_eq!(events(&mut pair, me), vec![Event::Revealed(5)]);
    // One that is not there (a seq the timeline reaches back past): given up, no page asked.
    let asked = pair.history_requests.len();
    let now = pair.now;
    let missing = pair.session(me).latest_seq().unwrap_or(0) + 50;
    pair.session_mut(me).reveal(now, missing);
    pair.run();
    assert_eq!(pair.session(me).revealing(), None);
    assert_eq!(pair.history_requests.len(), asked);
    assert!(!events(&mut pair, me).contains(&Event::Revealed(missing)));
}

#[test]
fn a_reveal_does_not_page_on_through_a_failing_store() {
    let (mut pair, me) = long_room(120);
    pair.fail_history = true;
    let now = pair.now;
    pair.session_mut(me).reveal(now, 2);
    pair.run();
    assert_eq!(
        pair.history_requests.len(),
        1,
        "one page asked, not one after another"
    );
    assert_eq!(pair.session(me).revealing(), None);
    assert_eq!(pair.session(me).history(), History::More);
}

#[test]
fn the_session_says_what_may_be_changed_or_reacted_to() {
    let mut pair = Pair::new();
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    say(&mut pair, ada, "mine");
    let now = pair.now;
    pair.session_mut(ada).delete_message(now, 1);
    pair.run();
    say(&mut pair, ada, "kept");
    let session = pair.session(ada);
    let [deleted, kept] = session.messages() else {
        panic!("{:?}", session.messages());
    };
    assert!(session.may_change(kept) && session.may_react(kept) && session.is_mine(kept));
    assert!(!session.may_change(deleted) && !session.may_react(deleted));
    let theirs = pair.session(linus);
    let kept = theirs.find(kept.seq.unwrap_or(0)).expect("seen by both");
    assert!(!theirs.may_change(kept) && theirs.may_react(kept) && !theirs.is_mine(kept));
    // Not stored yet: ours, and nothing to change or react to until it is.
    pair.storage_delay = 1_000;
    let now = pair.now;
    pair.session_mut(ada)
        .send_message(now, "on its way", None)
        .expect("a message the room takes");
    let session = pair.session(ada);
    let [waiting] = session.pending()[..] else {
        panic!("{:?}", session.pending());
    };
    assert!(
        session.is_mine(waiting) && !session.may_change(waiting) && !session.may_react(waiting)
    );
}

#[test]
fn conversations_older_than_the_timeline_are_listed_and_page_on_their_own() {
    let config = crate::RoomConfig {
        cache_messages: 30,
        handshake_messages: 20,
        ..crate::RoomConfig::default()
    };
    let mut pair = Pair::with(config, crate::RoomSnapshot::default());
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    let grace = joined(&mut pair, "Grace");
    let id = |pair: &Pair, peer| {
        pair.session(peer)
            .identity()
            .map(|i| i.user_id.clone())
            .unwrap_or_default()
    };
    let (ada_id, linus_id) = (id(&pair, ada), id(&pair, linus));
    say(&mut pair, grace, "before");
    pair.drop_session(linus);
    // While Linus is away Ada writes to him twice, then the room talks on for long.
    for text in ["are you there?", "call me"] {
        let now = pair.now;
        pair.session_mut(ada)
            .send_message_to(now, text, None, Some(linus_id.clone()))
            .expect("taken");
        pair.run();
    }
    for i in 0..60 {
        pair.advance(1_000);
        say(&mut pair, grace, &format!("m{i}"));
    }
    pair.open_session(linus);
    pair.run();
    // Too much to resume; the room lists the conversation all the same, with what he missed.
    let got = events(&mut pair, linus);
    assert!(got.contains(&Event::Notice(Notice::GapTooBig)), "{got:?}");
    assert!(
        got.contains(&Event::Missed {
            from: ada_id.clone(),
            count: 2
        }),
        "{got:?}"
    );
    assert_eq!(
        pair.session(linus).conversations(),
        std::slice::from_ref(&ada_id)
    );
    let shown = |pair: &Pair, with: Option<&str>| {
        pair.session(linus)
            .messages()
            .iter()
            .filter(|m| m.is_in(&linus_id, with))
            .map(|m| m.raw.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shown(&pair, Some(&ada_id)),
        ["call me"],
        "its latest, as listed"
    );
    assert_eq!(pair.session(linus).history_in(Some(&ada_id)), History::More);
    // Its own page brings the rest of it, and says it is whole.
    let now = pair.now;
    pair.session_mut(linus)
        .request_history_in(now, Some(&ada_id));
    pair.run();
    assert_eq!(shown(&pair, Some(&ada_id)), ["are you there?", "call me"]);
    assert_eq!(
        pair.session(linus).history_in(Some(&ada_id)),
        History::Complete
    );
    // The room's own history goes on from the room's first message here, not from the old
    // direct messages below it: what it shows stays one unbroken run.
    let room_before = shown(&pair, None);
    assert_eq!(pair.session(linus).history(), History::More);
    let now = pair.now;
    pair.session_mut(linus).request_history(now);
    pair.run();
    let numbers = |texts: &[String]| -> Vec<usize> {
        texts
            .iter()
            .filter_map(|t| t.strip_prefix('m')?.parse().ok())
            .collect()
    };
    let first_before = numbers(&room_before)[0];
    let room = shown(&pair, None);
    let after = numbers(&room);
    assert!(after.len() > room_before.len(), "{room:?}");
    assert_eq!(after.last(), Some(&59));
    assert!(after.contains(&(first_before - 1)), "no gap: {room:?}");
    assert!(
        after.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap: {room:?}"
    );
}

#[test]
fn a_message_of_a_conversation_is_revealed_through_its_own_pages() {
    let (mut pair, me) = long_room(80);
    let writer = PeerId(0);
    let writer_id = pair
        .session(writer)
        .identity()
        .map(|i| i.user_id.clone())
        .unwrap_or_default();
    let mut seqs = Vec::new();
    for text in ["an old word", "a later one"] {
        let now = pair.now;
        pair.session_mut(me)
            .send_message_to(now, text, None, Some(writer_id.clone()))
            .expect("taken");
        pair.run();
        seqs.push(pair.session(me).latest_seq().expect("stored"));
    }
    for i in 0..60 {
        pair.advance(1_000);
        say(&mut pair, writer, &format!("n{i}"));
    }
    // This person on a new device, which knows only what the room tells it.
    let fresh = pair.add_session(SessionConfig::default());
    let identity = pair.session(me).identity().cloned();
    pair.session_mut(fresh).set_identity(identity);
    pair.open_session(fresh);
    pair.run();
    assert!(pair.session(fresh).find(seqs[1]).is_some(), "listed");
    assert!(pair.session(fresh).find(seqs[0]).is_none());
    let asked = pair.history_requests.len();
    let now = pair.now;
    pair.session_mut(fresh)
        .reveal_in(now, seqs[0], Some(writer_id.clone()));
    pair.run();
    assert_eq!(
        events(&mut pair, fresh).last(),
        Some(&Event::Revealed(seqs[0]))
    );
    assert_eq!(
        pair.history_requests.len(),
        asked + 1,
        "one page of the conversation, not the room's pages down to it"
    );
}

#[test]
fn an_owner_makes_a_moderator_who_may_remove_members_messages_and_everyone_sees_them_removed() {
    let (mut pair, olga) = with_an_owner();
    let bob = joined(&mut pair, "Bob");
    let carol = joined(&mut pair, "Carol");
    let bob_id = pair
        .session(bob)
        .identity()
        .map(|i| i.user_id.clone())
        .unwrap_or_default();
    assert_eq!(
        pair.session(carol).role_of("olga"),
        Some(crate::Role::Owner)
    );
    let now = pair.now;
    pair.session_mut(olga)
        .set_role(now, bob_id.clone(), Some(crate::Role::Moderator));
    pair.run();
    for peer in [olga, bob, carol] {
        assert_eq!(
            pair.session(peer).role_of(&bob_id),
            Some(crate::Role::Moderator)
        );
    }
    say(&mut pair, carol, "spam spam");
    say(&mut pair, olga, "the owner's word");
    let find = |pair: &Pair, peer, text: &str| {
        pair.session(peer)
            .messages()
            .iter()
            .find(|m| m.raw == text)
            .cloned()
            .expect("there")
    };
    let spam = find(&pair, bob, "spam spam");
    let owners = find(&pair, bob, "the owner's word");
    assert!(pair.session(bob).may_remove(&spam));
    assert!(!pair.session(bob).may_remove(&owners), "not an owner's");
    assert!(
        !pair.session(carol).may_remove(&owners),
        "a member removes nothing"
    );
    assert!(
        !pair.session(carol).may_remove(&spam),
        "her own she deletes"
    );
    let now = pair.now;
    pair.session_mut(bob)
        .delete_message(now, spam.seq.expect("stored"));
    pair.run();
    for peer in [olga, bob, carol] {
        let seen = pair
            .session(peer)
            .find(spam.seq.expect("stored"))
            .cloned()
            .expect("kept");
        assert!(
            seen.deleted && seen.removed && seen.raw.is_empty(),
            "{seen:?}"
        );
    }
}

#[test]
fn a_timed_out_person_is_told_until_when_and_their_session_wakes_when_it_ends() {
    let (mut pair, olga) = with_an_owner();
    let carol = joined(&mut pair, "Carol");
    let carol_id = id_of(&pair, carol);
    assert!(pair.session(olga).may_moderate(&carol_id));
    assert!(!pair.session(carol).may_moderate("olga"));
    let now = pair.now;
    pair.session_mut(olga)
        .time_out(now, carol_id.clone(), Some(5));
    pair.run();
    let until = now + 5 * 60_000;
    for peer in [olga, carol] {
        assert_eq!(
            pair.session(peer).timed_out_until(&carol_id, pair.now),
            Some(until)
        );
    }
    assert!(
        pair.session(carol)
            .poll_timeout()
            .is_some_and(|at| at <= until),
        "her page is woken when it ends"
    );
    // What she sends meanwhile is refused and kept as not sent.
    let now = pair.now;
    pair.session_mut(carol)
        .send_message(now, "let me talk", None)
        .expect("taken");
    pair.run();
    assert_eq!(
        pending_states(&pair, carol),
        [("let me talk".to_owned(), Delivery::Refused)]
    );
    // At its end, by the clock alone.
    pair.advance_to(until);
    assert_eq!(
        pair.session(carol).timed_out_until(&carol_id, pair.now),
        None
    );
}

#[test]
fn a_banned_person_is_told_why_and_their_session_knows_not_to_come_back_by_itself() {
    let (mut pair, olga) = with_an_owner();
    let carol = joined(&mut pair, "Carol");
    let carol_id = id_of(&pair, carol);
    let now = pair.now;
    pair.session_mut(olga)
        .ban(now, carol_id.clone(), Some(60), "spam".to_owned(), false);
    pair.run();
    // Olga sees the ban and until when; Carol's session was refused, closed, and says why.
    let until = now + 60 * 60_000;
    assert_eq!(
        pair.session(olga).banned_until(&carol_id, pair.now),
        Some(Some(until))
    );
    assert_eq!(
        pair.session(carol).refused_banned(),
        Some("you are banned from this room for 60 more min: spam")
    );
    assert_eq!(pair.session(carol).phase(), crate::session::Phase::Closed);
    assert!(
        events(&mut pair, carol)
            .iter()
            .any(|e| matches!(e, Event::Notice(Notice::Refused(m)) if m.contains("spam"))),
    );
    // Someone joining later learns of the ban; the unban reaches everyone.
    let dave = joined(&mut pair, "Dave");
    assert_eq!(
        pair.session(dave).banned_until(&carol_id, pair.now),
        Some(Some(until))
    );
    let now = pair.now;
    pair.session_mut(olga).unban(now, carol_id.clone());
    pair.run();
    for peer in [olga, dave] {
        assert_eq!(pair.session(peer).banned_until(&carol_id, pair.now), None);
    }
    // Carol opens the room again by hand: she is back, and the refusal is forgotten.
    pair.open_session(carol);
    assert_eq!(pair.session(carol).refused_banned(), None);
    assert_eq!(pair.session(carol).phase(), crate::session::Phase::Online);
}

#[test]
fn in_slow_mode_a_message_that_comes_too_soon_waits_and_goes_once_the_interval_has_passed() {
    let snapshot = crate::RoomSnapshot {
        settings: crate::RoomSettings {
            topic: "Be kind".to_owned(),
            slow_mode_seconds: 10,
        },
        ..crate::RoomSnapshot::default()
    };
    let mut pair = Pair::with(crate::RoomConfig::default(), snapshot);
    let ada = joined(&mut pair, "Ada");
    let linus = joined(&mut pair, "Linus");
    assert_eq!(pair.session(ada).room_settings().topic, "Be kind");
    say(&mut pair, ada, "one");
    say(&mut pair, ada, "two");
    // Not refused for good: waiting, as for the room's rate.
    assert_eq!(
        pending_states(&pair, ada),
        [("two".to_owned(), Delivery::Pending)]
    );
    assert_eq!(texts(&pair, linus), ["one"]);
    pair.advance(10_000);
    assert_eq!(texts(&pair, linus), ["one", "two"]);
    assert!(pair.session(ada).pending().is_empty());
}

/// The identity the room gave `peer`'s session.
fn id_of(pair: &Pair, peer: PeerId) -> String {
    pair.session(peer)
        .identity()
        .map(|i| i.user_id.clone())
        .unwrap_or_default()
}

/// A room whose operator made Olga its owner, and Olga's session in it.
fn with_an_owner() -> (Pair, PeerId) {
    let snapshot = crate::RoomSnapshot {
        users: vec![crate::UserRecord {
            id: "olga".to_owned(),
            name: "Olga".to_owned(),
            token_hash: crate::hash_token("olga-token"),
            joined_at: Some(1),
            last_seen: None,
            role: Some(crate::Role::Owner),
            timed_out_until: None,
            ban: None,
        }],
        ..crate::RoomSnapshot::default()
    };
    let mut pair = Pair::with(crate::RoomConfig::default(), snapshot);
    let olga = pair.add_session(SessionConfig::default());
    pair.session_mut(olga).set_identity(Some(Identity {
        user_id: "olga".to_owned(),
        token: Some("olga-token".to_owned()),
    }));
    pair.open_session(olga);
    (pair, olga)
}

#[test]
fn the_people_online_past_the_handshakes_first_page_are_asked_for_page_by_page_and_kept_counted() {
    let config = crate::RoomConfig {
        handshake_people: 2,
        ..crate::RoomConfig::default()
    };
    let mut pair = Pair::with(config, crate::RoomSnapshot::default());
    let others: Vec<PeerId> = ["Ada", "Bo", "Cy", "Di", "Ed"]
        .iter()
        .map(|name| joined(&mut pair, name))
        .collect();
    let me = joined(&mut pair, "Linus");
    let session = pair.session(me);
    assert_eq!(session.online_count(), 6);
    assert!(
        session.online().len() < 6,
        "the handshake lists two: {:?}",
        session.online()
    );
    assert!(session.has_more_people());
    let mut pages = 0;
    while pair.session(me).has_more_people() {
        let now = pair.now;
        pair.session_mut(me).more_people(now);
        pair.run();
        pages += 1;
        assert!(pages < 10, "the paging ends");
    }
    let session = pair.session(me);
    assert_eq!(session.online().len(), 6, "{:?}", session.online());
    for peer in &others {
        let name = pair.session(*peer).my_name().map(str::to_owned);
        let id = pair
            .session(*peer)
            .identity()
            .map(|i| i.user_id.clone())
            .expect("identified");
        assert!(pair.session(me).online().contains(&id));
        assert_eq!(pair.session(me).names().get(&id).map(str::to_owned), name);
    }
    // Someone leaves: the count and the list follow the room's PRESENCE.
    pair.drop_session(others[0]);
    let tick = pair.room.config().presence_tick_ms;
    pair.advance(tick);
    assert_eq!(pair.session(me).online_count(), 5);
    assert_eq!(pair.session(me).online().len(), 5);
}
