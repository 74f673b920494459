//! Roles: owners make and unmake moderators, moderators and owners remove the room messages
//! of those they outrank, and nobody else does either.

use super::direct_tests::identify;
use super::*;
use crate::testing::Pair;
use crate::wire::*;

struct Room3 {
    pair: Pair,
    /// The owner, made by the operator (in the snapshot the room starts from).
    olga: ConnectionId,
    bob: (ConnectionId, UserId, String),
    carol: (ConnectionId, UserId, String),
}

pub(super) const OLGA: &str = "olga";

fn room() -> Room3 {
    let mut pair = Pair::with(RoomConfig::default(), owner_snapshot());
    let olga = pair.connect(1);
    pair.act(olga, identify(OLGA, "olga-token", None, true));
    let bob = pair.join_ours(2);
    let carol = pair.join_ours(3);
    for conn in [olga, bob.0, carol.0] {
        pair.take(conn);
    }
    Room3 {
        pair,
        olga,
        bob,
        carol,
    }
}

/// A room's storage holding only its owner, Olga (token `olga-token`).
pub(super) fn owner_snapshot() -> RoomSnapshot {
    RoomSnapshot {
        users: vec![UserRecord {
            id: OLGA.to_owned(),
            name: "Olga".to_owned(),
            token_hash: hash_token("olga-token"),
            joined_at: Some(1),
            last_seen: None,
            role: Some(Role::Owner),
            timed_out_until: None,
            ban: None,
        }],
        ..RoomSnapshot::default()
    }
}

fn set_role(user: &str, role: Option<Role>, nonce: &str) -> ClientAction {
    ClientAction::SetRole(SetRole {
        user_id: user.to_owned(),
        role,
        nonce: Some(nonce.to_owned()),
    })
}

fn delete(target: Seq, nonce: &str) -> ClientAction {
    ClientAction::DeleteMessage(DeleteMessage {
        target,
        nonce: Some(nonce.to_owned()),
    })
}

/// The refusals a connection got: code and nonce.
pub(super) fn refusals(pair: &mut Pair, conn: ConnectionId) -> Vec<(ErrorCode, Option<String>)> {
    pair.take(conn)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Error(e) => Some((e.code, e.nonce)),
            _ => None,
        })
        .collect()
}

fn roles_told(pair: &mut Pair, conn: ConnectionId) -> Vec<(UserId, Option<Role>, UserId)> {
    pair.take(conn)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Role(r) => Some((r.user_id, r.role, r.by)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_owner_makes_and_unmakes_moderators_everyone_is_told_and_it_is_stored() {
    let mut t = room();
    let bob = t.bob.1.clone();
    t.pair
        .act(t.olga, set_role(&bob, Some(Role::Moderator), "r1"));
    for conn in [t.olga, t.bob.0, t.carol.0] {
        assert_eq!(
            roles_told(&mut t.pair, conn),
            [(bob.clone(), Some(Role::Moderator), OLGA.to_owned())]
        );
    }
    assert_eq!(t.pair.room.role_of(&bob), Some(Role::Moderator));
    let stored = t.pair.users.iter().find(|u| u.id == bob).map(|u| u.role);
    assert_eq!(stored, Some(Some(Role::Moderator)));
    // A newcomer's handshake names both roles.
    let handshake_roles = |pair: &mut Pair, id: u64| {
        let newcomer = pair.connect(id);
        pair.take(newcomer)
            .into_iter()
            .find_map(|a| match a {
                ServerAction::Handshake(h) => Some(h.roles),
                _ => None,
            })
            .expect("a handshake")
    };
    let roles = handshake_roles(&mut t.pair, 9);
    assert_eq!(roles.into_iter().collect::<Vec<_>>(), {
        let mut expected = vec![
            (bob.clone(), Role::Moderator),
            (OLGA.to_owned(), Role::Owner),
        ];
        expected.sort();
        expected
    });
    // Unmade: a member again, told and stored.
    t.pair.act(t.olga, set_role(&bob, None, "r2"));
    assert_eq!(
        roles_told(&mut t.pair, t.carol.0),
        [(bob.clone(), None, OLGA.to_owned())]
    );
    let stored = t.pair.users.iter().find(|u| u.id == bob).map(|u| u.role);
    assert_eq!(stored, Some(None));
    let roles = handshake_roles(&mut t.pair, 10);
    assert_eq!(
        roles.into_iter().collect::<Vec<_>>(),
        [(OLGA.to_owned(), Role::Owner)]
    );
    // A user write (a rename) leaves a role as it is in storage.
    t.pair
        .act(t.olga, set_role(&bob, Some(Role::Moderator), "r3"));
    t.pair.act(
        t.bob.0,
        ClientAction::NameChange(ChangeName {
            name: "Bobby".to_owned(),
            user_id: None,
        }),
    );
    let stored = t.pair.users.iter().find(|u| u.id == bob).cloned();
    assert_eq!(
        stored.map(|u| (u.name, u.role)),
        Some(("Bobby".to_owned(), Some(Role::Moderator)))
    );
}

#[test]
fn only_an_owner_sets_roles_and_nobody_makes_or_unmakes_an_owner_here() {
    let mut t = room();
    let (bob, carol) = (t.bob.1.clone(), t.carol.1.clone());
    // A member, and a moderator, cannot.
    t.pair
        .act(t.carol.0, set_role(&carol, Some(Role::Moderator), "c1"));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::NotAllowed, Some("c1".to_owned()))]
    );
    t.pair
        .act(t.olga, set_role(&bob, Some(Role::Moderator), "o1"));
    t.pair
        .act(t.bob.0, set_role(&carol, Some(Role::Moderator), "b1"));
    assert!(
        refusals(&mut t.pair, t.bob.0).contains(&(ErrorCode::NotAllowed, Some("b1".to_owned())))
    );
    // Owners are the operator's: not made, not unmade, here.
    t.pair
        .act(t.olga, set_role(&carol, Some(Role::Owner), "o2"));
    t.pair.act(t.olga, set_role(OLGA, None, "o3"));
    t.pair.act(t.olga, set_role("nobody", None, "o4"));
    assert_eq!(
        refusals(&mut t.pair, t.olga),
        [
            (ErrorCode::NotAllowed, Some("o2".to_owned())),
            (ErrorCode::NotAllowed, Some("o3".to_owned())),
            (ErrorCode::UnknownUser, Some("o4".to_owned())),
        ]
    );
    assert_eq!(t.pair.room.role_of(&carol), None);
    assert_eq!(t.pair.room.role_of(OLGA), Some(Role::Owner));
}

#[test]
fn moderators_remove_the_room_messages_of_those_they_outrank_and_the_text_is_gone() {
    let mut t = room();
    let (bob, carol) = (t.bob.1.clone(), t.carol.1.clone());
    t.pair
        .act(t.olga, set_role(&bob, Some(Role::Moderator), "o1"));
    // The messages' seqs follow the role's event in the room's log.
    let s = t.pair.room.latest_seq();
    t.pair.say(t.carol.0, "spam spam spam"); // s + 1
    t.pair.say(t.olga, "the owner speaks"); // s + 2
    t.pair.say(t.bob.0, "the moderator speaks"); // s + 3
    t.pair.act(
        t.carol.0,
        ClientAction::Message(SendMessage {
            raw_message: "just for olga".to_owned(),
            to: Some(OLGA.to_owned()),
            ..SendMessage::default()
        }),
    ); // s + 4
    for conn in [t.olga, t.bob.0, t.carol.0] {
        t.pair.take(conn);
    }
    // A member removes nobody's; a moderator neither an owner's nor a fellow's own rank's.
    t.pair.act(t.carol.0, delete(s + 3, "c1"));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::NotYourMessage, Some("c1".to_owned()))]
    );
    t.pair.act(t.bob.0, delete(s + 2, "b1"));
    // Someone's direct message is not the moderator's to see, nor to remove.
    t.pair.act(t.bob.0, delete(s + 4, "b2"));
    assert_eq!(
        refusals(&mut t.pair, t.bob.0),
        [
            (ErrorCode::NotYourMessage, Some("b1".to_owned())),
            (ErrorCode::UnknownMessage, Some("b2".to_owned())),
        ]
    );
    // The moderator removes the member's: everyone sees it removed, its text gone.
    t.pair.act(t.bob.0, delete(s + 1, "b3"));
    for conn in [t.olga, t.bob.0, t.carol.0] {
        let changed: Vec<MessageRecord> = t
            .pair
            .take(conn)
            .into_iter()
            .filter_map(|a| match a {
                ServerAction::MessageChanged(m) => Some(m),
                _ => None,
            })
            .collect();
        let [m] = &changed[..] else {
            panic!("{changed:?}")
        };
        assert!(m.deleted && m.removed, "{m:?}");
        assert_eq!(
            (m.raw_message.as_str(), m.html_message.as_str()),
            ("", REMOVED_HTML)
        );
        assert_eq!(m.user_id, carol);
    }
    let stored = &t.pair.stored[0];
    assert!(stored.removed && stored.deleted && stored.raw.is_empty());
    // The owner outranks the moderator.
    t.pair.act(t.olga, delete(s + 3, "o2"));
    assert!(refusals(&mut t.pair, t.olga).is_empty());
    assert!(t.pair.stored[2].removed);
    // A removed message takes nothing more, not even from an owner.
    t.pair.act(t.olga, delete(s + 1, "o3"));
    assert_eq!(
        refusals(&mut t.pair, t.olga),
        [(ErrorCode::MessageDeleted, Some("o3".to_owned()))]
    );
    // Authors still delete their own (a delete, not a removal).
    t.pair.act(t.olga, delete(s + 2, "o4"));
    assert!(t.pair.stored[1].deleted && !t.pair.stored[1].removed);
}

fn moderate(kind: ModerationKind, user: &str, minutes: Option<u32>, nonce: &str) -> ClientAction {
    ClientAction::Moderate(Moderate {
        kind,
        user_id: user.to_owned(),
        minutes,
        reason: None,
        address: false,
        nonce: Some(nonce.to_owned()),
    })
}

fn moderated(pair: &mut Pair, conn: ConnectionId) -> Vec<Moderated> {
    pair.take(conn)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Moderated(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn a_timed_out_member_reads_but_cannot_write_or_react_until_it_ends_on_the_rooms_clock() {
    let mut t = room();
    let (bob, carol) = (t.bob.1.clone(), t.carol.1.clone());
    t.pair
        .act(t.olga, set_role(&bob, Some(Role::Moderator), "o1"));
    t.pair.say(t.olga, "hello"); // 1
    for conn in [t.olga, t.bob.0, t.carol.0] {
        t.pair.take(conn);
    }
    let start = t.pair.now;
    t.pair.act(
        t.bob.0,
        moderate(ModerationKind::TimeOut, &carol, Some(10), "m1"),
    );
    let until = start + 10 * 60_000;
    for conn in [t.olga, t.bob.0, t.carol.0] {
        assert_eq!(
            moderated(&mut t.pair, conn),
            [Moderated {
                kind: ModerationKind::TimeOut,
                user_id: carol.clone(),
                until: Some(until),
                reason: None,
            }]
        );
    }
    let kept = t.pair.users.iter().find(|u| u.id == carol).cloned();
    assert_eq!(kept.and_then(|u| u.timed_out_until), Some(until));
    // She can write nothing, nor react, and is told so with the nonce; nothing is stored.
    let stored = t.pair.stored.len();
    t.pair.act(
        t.carol.0,
        ClientAction::Message(SendMessage {
            raw_message: "let me speak".into(),
            nonce: Some("c1".into()),
            ..SendMessage::default()
        }),
    );
    t.pair.act(
        t.carol.0,
        ClientAction::React(React {
            target: 1,
            emoji: "👍".into(),
            on: true,
            nonce: Some("c2".into()),
        }),
    );
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [
            (ErrorCode::TimedOut, Some("c1".to_owned())),
            (ErrorCode::TimedOut, Some("c2".to_owned())),
        ]
    );
    assert_eq!(t.pair.stored.len(), stored);
    // She still reads; a newcomer is told of her time-out.
    t.pair.say(t.bob.0, "you can still read this");
    assert!(
        t.pair
            .messages(t.carol.0)
            .iter()
            .any(|m| m.raw_message == "you can still read this")
    );
    let newcomer = t.pair.connect(9);
    let told = t.pair.take(newcomer).into_iter().find_map(|a| match a {
        ServerAction::Handshake(h) => Some(h.timed_out),
        _ => None,
    });
    assert_eq!(
        told.map(|m| m
            .into_iter()
            .map(|d| (d.user_id, d.until))
            .collect::<Vec<_>>()),
        Some(vec![(carol.clone(), Some(until))])
    );
    // Ten minutes on, the room's clock ends it by itself.
    t.pair.advance(10 * 60_000);
    t.pair.say(t.carol.0, "back");
    assert!(refusals(&mut t.pair, t.carol.0).is_empty());
    assert_eq!(t.pair.stored.last().map(|m| m.raw.as_str()), Some("back"));
    // Ended early by a moderator: told to everyone.
    t.pair.act(
        t.bob.0,
        moderate(ModerationKind::TimeOut, &carol, Some(60), "m2"),
    );
    t.pair.act(
        t.bob.0,
        moderate(ModerationKind::EndTimeOut, &carol, None, "m3"),
    );
    let told = moderated(&mut t.pair, t.olga);
    assert_eq!(
        told.last().map(|m| (m.kind, m.until)),
        Some((ModerationKind::EndTimeOut, None))
    );
    t.pair.say(t.carol.0, "free again");
    assert!(refusals(&mut t.pair, t.carol.0).is_empty());
}

#[test]
fn only_who_outranks_someone_times_them_out_and_for_a_bounded_time() {
    let mut t = room();
    let (bob, carol) = (t.bob.1.clone(), t.carol.1.clone());
    t.pair
        .act(t.olga, set_role(&bob, Some(Role::Moderator), "o1"));
    t.pair.take(t.olga);
    let time_out =
        |user: &str, minutes, nonce| moderate(ModerationKind::TimeOut, user, Some(minutes), nonce);
    t.pair.act(t.carol.0, time_out(&bob, 10, "c1"));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::NotAllowed, Some("c1".to_owned()))]
    );
    t.pair.act(t.bob.0, time_out(OLGA, 10, "b1"));
    t.pair.act(t.bob.0, time_out(&bob, 10, "b2"));
    t.pair.act(t.bob.0, time_out(&carol, 0, "b3"));
    t.pair
        .act(t.bob.0, time_out(&carol, MAX_TIME_OUT_MINUTES + 1, "b4"));
    t.pair.act(t.bob.0, time_out("nobody", 10, "b5"));
    assert_eq!(
        refusals(&mut t.pair, t.bob.0),
        [
            (ErrorCode::NotAllowed, Some("b1".to_owned())),
            (ErrorCode::NotAllowed, Some("b2".to_owned())),
            (ErrorCode::InvalidModeration, Some("b3".to_owned())),
            (ErrorCode::InvalidModeration, Some("b4".to_owned())),
            (ErrorCode::UnknownUser, Some("b5".to_owned())),
        ]
    );
    // The owner times out the moderator.
    t.pair.act(t.olga, time_out(&bob, 10, "o2"));
    assert!(refusals(&mut t.pair, t.olga).is_empty());
    assert!(t.pair.room.timed_out_until(&bob, t.pair.now).is_some());
}

#[test]
fn a_kick_tells_the_person_why_closes_their_connections_and_they_may_come_back() {
    let mut t = room();
    let (bob, carol) = (t.bob.1.clone(), t.carol.1.clone());
    t.pair
        .act(t.olga, set_role(&bob, Some(Role::Moderator), "o1"));
    // Carol on a second tab too.
    let carol_tab = t.pair.connect(7);
    t.pair.act(
        carol_tab,
        super::direct_tests::identify(&carol, &t.carol.2, None, true),
    );
    for conn in [t.olga, t.bob.0, t.carol.0, carol_tab] {
        t.pair.take(conn);
    }
    let kick = |user: &str, reason: &str, nonce: &str| {
        ClientAction::Moderate(Moderate {
            kind: ModerationKind::Kick,
            user_id: user.to_owned(),
            minutes: None,
            reason: Some(reason.to_owned()),
            address: false,
            nonce: Some(nonce.to_owned()),
        })
    };
    // A member kicks nobody; a reason has a bound.
    t.pair.act(t.carol.0, kick(&bob, "go", "c1"));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::NotAllowed, Some("c1".to_owned()))]
    );
    t.pair.act(
        t.bob.0,
        kick(&carol, &"x".repeat(MAX_REASON_CHARS + 1), "b1"),
    );
    assert_eq!(
        refusals(&mut t.pair, t.bob.0),
        [(ErrorCode::InvalidModeration, Some("b1".to_owned()))]
    );
    t.pair.act(t.bob.0, kick(&carol, "cool down", "b2"));
    for conn in [t.carol.0, carol_tab] {
        let told = moderated(&mut t.pair, conn);
        assert!(
            told.iter()
                .any(|m| m.kind == ModerationKind::Kick && m.reason.as_deref() == Some("cool down")),
            "{told:?}"
        );
    }
    let mut closed: Vec<ConnectionId> = t.pair.closed.iter().map(|c| c.0).collect();
    closed.sort();
    assert_eq!(closed, [t.carol.0, carol_tab]);
    assert!(
        t.pair
            .closed
            .iter()
            .all(|c| c.1 == super::roles::KICKED_CODE)
    );
    // Everyone else sees that it happened, not why.
    let told = moderated(&mut t.pair, t.olga);
    assert_eq!(
        told.iter()
            .map(|m| (m.kind, m.reason.clone()))
            .collect::<Vec<_>>(),
        [(ModerationKind::Kick, None)]
    );
    // She may come back.
    let back = t.pair.connect(8);
    t.pair.act(
        back,
        super::direct_tests::identify(&carol, &t.carol.2, None, true),
    );
    t.pair.say(back, "I am back");
    assert!(refusals(&mut t.pair, back).is_empty());
}

fn set_room(topic: &str, slow_mode_seconds: u32, nonce: &str) -> ClientAction {
    ClientAction::SetRoom(SetRoom {
        settings: RoomSettings {
            topic: topic.to_owned(),
            slow_mode_seconds,
        },
        nonce: Some(nonce.to_owned()),
    })
}

fn post(text: &str, nonce: &str, to: Option<&str>) -> ClientAction {
    ClientAction::Message(SendMessage {
        raw_message: text.to_owned(),
        nonce: Some(nonce.to_owned()),
        to: to.map(str::to_owned),
        ..SendMessage::default()
    })
}

#[test]
fn moderators_set_the_topic_and_a_slow_mode_that_holds_members_in_the_room() {
    let mut t = room();
    let bob = t.bob.1.clone();
    t.pair
        .act(t.olga, set_role(&bob, Some(Role::Moderator), "o1"));
    for conn in [t.olga, t.bob.0, t.carol.0] {
        t.pair.take(conn);
    }
    // A member sets nothing; a moderator nothing over the bounds.
    t.pair.act(t.carol.0, set_room("mine", 0, "c1"));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::NotAllowed, Some("c1".to_owned()))]
    );
    t.pair
        .act(t.bob.0, set_room(&"x".repeat(MAX_TOPIC_CHARS + 1), 0, "b1"));
    t.pair
        .act(t.bob.0, set_room("", MAX_SLOW_MODE_SECONDS + 1, "b2"));
    assert_eq!(
        refusals(&mut t.pair, t.bob.0),
        [
            (ErrorCode::InvalidModeration, Some("b1".to_owned())),
            (ErrorCode::InvalidModeration, Some("b2".to_owned())),
        ]
    );
    t.pair.act(t.bob.0, set_room("  Be kind  ", 30, "b3"));
    let wanted = RoomSettings {
        topic: "Be kind".to_owned(),
        slow_mode_seconds: 30,
    };
    let told: Vec<RoomChanged> = t
        .pair
        .take(t.carol.0)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Room(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        [RoomChanged {
            settings: wanted.clone(),
            by: bob.clone(),
        }]
    );
    assert_eq!(t.pair.settings, wanted, "stored");
    // Slow mode: a member waits between room messages; not in direct ones; a moderator not.
    t.pair.act(t.carol.0, post("one", "c2", None));
    t.pair.act(t.carol.0, post("two", "c3", None));
    t.pair.act(t.carol.0, post("psst", "c4", Some(&bob)));
    t.pair.act(t.bob.0, post("mod one", "b4", None));
    t.pair.act(t.bob.0, post("mod two", "b5", None));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::SlowMode, Some("c3".to_owned()))]
    );
    assert!(refusals(&mut t.pair, t.bob.0).is_empty());
    t.pair.advance(30_000);
    t.pair.act(t.carol.0, post("three", "c5", None));
    assert!(refusals(&mut t.pair, t.carol.0).is_empty());
    let texts: Vec<&str> = t.pair.stored.iter().map(|m| m.raw.as_str()).collect();
    assert_eq!(texts, ["one", "psst", "mod one", "mod two", "three"]);
    // A room started again on what storage holds has them, and says so to newcomers.
    let mut again = Pair::with(
        RoomConfig::default(),
        RoomSnapshot {
            settings: t.pair.settings.clone(),
            ..RoomSnapshot::default()
        },
    );
    let newcomer = again.connect(1);
    let room = again.take(newcomer).into_iter().find_map(|a| match a {
        ServerAction::Handshake(h) => Some(h.room),
        _ => None,
    });
    assert_eq!(room, Some(wanted));
}

#[test]
fn slow_mode_counts_only_messages_taken_and_answers_a_resend_with_its_echo() {
    let mut t = room();
    t.pair.act(t.olga, set_room("", 30, "o1"));
    t.pair.take(t.carol.0);
    // Refused for its length: not a message, so the clock has not started.
    let long = "x".repeat(RoomConfig::default().max_message_chars + 1);
    t.pair.act(t.carol.0, post(&long, "c1", None));
    t.pair.act(t.carol.0, post("one", "c2", None));
    // The same message again (a client resending after a reconnect): its echo, no refusal.
    t.pair.act(t.carol.0, post("one", "c2", None));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::MessageTooLong, Some("c1".to_owned()))]
    );
    let texts: Vec<&str> = t.pair.stored.iter().map(|m| m.raw.as_str()).collect();
    assert_eq!(texts, ["one"]);
    // A new one within the interval waits, as before.
    t.pair.act(t.carol.0, post("two", "c3", None));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::SlowMode, Some("c3".to_owned()))]
    );
}

#[test]
fn a_time_out_answers_a_resend_of_a_message_taken_before_it_with_its_echo() {
    let mut t = room();
    let carol = t.carol.1.clone();
    t.pair.act(t.carol.0, post("said in time", "c1", None));
    t.pair.act(
        t.olga,
        moderate(ModerationKind::TimeOut, &carol, Some(10), "o1"),
    );
    t.pair.take(t.carol.0);
    t.pair.act(t.carol.0, post("said in time", "c1", None));
    let back = t.pair.take(t.carol.0);
    assert!(
        back.iter()
            .any(|a| matches!(a, ServerAction::Message(m) if m.nonce.as_deref() == Some("c1"))),
        "its echo: {back:?}"
    );
    assert!(
        !back.iter().any(|a| matches!(a, ServerAction::Error(_))),
        "{back:?}"
    );
    // Anything new is refused.
    t.pair.act(t.carol.0, post("more", "c2", None));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::TimedOut, Some("c2".to_owned()))]
    );
}

fn ban(user: &str, minutes: Option<u32>, reason: &str, address: bool, nonce: &str) -> ClientAction {
    ClientAction::Moderate(Moderate {
        kind: ModerationKind::Ban,
        user_id: user.to_owned(),
        minutes,
        reason: Some(reason.to_owned()),
        address,
        nonce: Some(nonce.to_owned()),
    })
}

fn address(text: &str) -> Option<std::net::IpAddr> {
    text.parse().ok()
}

/// Connects `id` from `from` and identifies as `user` with `token` (a new identity when
/// `None`): what it received.
fn arrive(
    pair: &mut Pair,
    id: u64,
    from: &str,
    user: Option<(&str, &str)>,
) -> (ConnectionId, Vec<ServerAction>) {
    let conn = pair.connect_from(id, address(from));
    let info = match user {
        Some((user, token)) => identify(user, token, None, true),
        None => ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            protocol_version: Some(crate::PROTOCOL_VERSION),
            ..HandshakeUserInfo::default()
        }),
    };
    pair.act(conn, info);
    (conn, pair.take(conn))
}

fn banned_error(got: &[ServerAction]) -> Option<String> {
    got.iter().find_map(|a| match a {
        ServerAction::Error(e) if e.code == ErrorCode::Banned => Some(e.message.clone()),
        _ => None,
    })
}

fn identified(got: &[ServerAction]) -> bool {
    got.iter().any(|a| matches!(a, ServerAction::UserInfo(_)))
}

#[test]
fn a_ban_closes_their_connections_and_keeps_them_and_their_address_out_until_it_ends() {
    let mut t = room();
    let (bob, carol) = (t.bob.1.clone(), t.carol.1.clone());
    t.pair
        .act(t.olga, set_role(&bob, Some(Role::Moderator), "o1"));
    // Carol also has a tab from her home network.
    let (carol_tab, got) = arrive(&mut t.pair, 7, "203.0.113.9", Some((&carol, &t.carol.2)));
    assert!(identified(&got));
    for conn in [t.olga, t.bob.0, t.carol.0] {
        t.pair.take(conn);
    }
    // A member bans nobody; a moderator not an owner; a ban has bounds.
    t.pair.act(t.carol.0, ban(&bob, None, "no", false, "c1"));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::NotAllowed, Some("c1".to_owned()))]
    );
    t.pair.act(t.bob.0, ban(OLGA, None, "no", false, "b1"));
    for (minutes, reason) in [
        (Some(0), "spam"),
        (Some(MAX_BAN_MINUTES + 1), "spam"),
        (Some(60), &*"x".repeat(MAX_REASON_CHARS + 1)),
    ] {
        t.pair
            .act(t.bob.0, ban(&carol, minutes, reason, true, "b2"));
    }
    assert_eq!(
        refusals(&mut t.pair, t.bob.0),
        [
            (ErrorCode::NotAllowed, Some("b1".to_owned())),
            (ErrorCode::InvalidModeration, Some("b2".to_owned())),
            (ErrorCode::InvalidModeration, Some("b2".to_owned())),
            (ErrorCode::InvalidModeration, Some("b2".to_owned())),
        ]
    );
    assert!(t.pair.closed.is_empty());

    // An hour's ban, with her address: both her connections are told why and closed.
    t.pair
        .act(t.bob.0, ban(&carol, Some(60), "spam links", true, "b3"));
    for conn in [t.carol.0, carol_tab] {
        let why = banned_error(&t.pair.take(conn));
        assert_eq!(
            why.as_deref(),
            Some("you are banned from this room for 60 more min: spam links")
        );
    }
    let mut closed: Vec<(ConnectionId, u16)> = t.pair.closed.iter().map(|c| (c.0, c.1)).collect();
    closed.sort();
    assert_eq!(closed, [(t.carol.0, BANNED_CODE), (carol_tab, BANNED_CODE)]);
    assert!(t.pair.closed.iter().all(|c| c.2.contains("spam links")));
    // Everyone else sees that she was banned and until when, not why.
    let until = t.pair.now + 60 * 60_000;
    let told = moderated(&mut t.pair, t.olga);
    assert_eq!(
        told.iter()
            .map(|m| (m.kind, m.user_id.clone(), m.until, m.reason.clone()))
            .collect::<Vec<_>>(),
        [(ModerationKind::Ban, carol.clone(), Some(until), None)]
    );
    // Kept with her record: who, until when, why, and the address.
    let stored = t.pair.user(&carol).and_then(|u| u.ban.clone());
    assert_eq!(
        stored,
        Some(Ban {
            until: Some(until),
            reason: Some("spam links".to_owned()),
            addresses: vec!["203.0.113.9".to_owned()],
            by: bob.clone(),
        })
    );
    assert!(!t.pair.room.is_online(&carol));

    // She cannot come back, nor get a new identity from her address; others can.
    let (_, got) = arrive(&mut t.pair, 20, "198.51.100.1", Some((&carol, &t.carol.2)));
    assert!(banned_error(&got).is_some() && !identified(&got), "{got:?}");
    let (_, got) = arrive(&mut t.pair, 21, "203.0.113.9", None);
    assert!(banned_error(&got).is_some() && !identified(&got), "{got:?}");
    let (_, got) = arrive(&mut t.pair, 22, "198.51.100.1", None);
    assert!(banned_error(&got).is_none() && identified(&got), "{got:?}");
    // A newcomer's handshake lists the ban.
    let newcomer = t.pair.connect(23);
    let listed = t.pair.take(newcomer).into_iter().find_map(|a| match a {
        ServerAction::Handshake(h) => Some(h.banned),
        _ => None,
    });
    assert_eq!(
        listed.map(|b| b
            .into_iter()
            .map(|m| (m.user_id, m.until))
            .collect::<Vec<_>>()),
        Some(vec![(carol.clone(), Some(until))])
    );

    // After the hour, on the room's clock, she is back, and her network gets new identities.
    t.pair.advance_to(until);
    let (back, got) = arrive(&mut t.pair, 24, "203.0.113.9", Some((&carol, &t.carol.2)));
    assert!(identified(&got) && banned_error(&got).is_none(), "{got:?}");
    t.pair.say(back, "I am back");
    assert!(refusals(&mut t.pair, back).is_empty());
    let (_, got) = arrive(&mut t.pair, 25, "203.0.113.9", None);
    assert!(identified(&got), "{got:?}");
}

#[test]
fn an_unban_lets_them_back_and_a_ban_survives_a_restart() {
    let mut t = room();
    let carol = t.carol.1.clone();
    // The owner bans Carol, who is offline, until the ban is lifted.
    t.pair.disconnect(t.carol.0);
    t.pair.act(t.olga, ban(&carol, None, "", false, "o1"));
    assert!(refusals(&mut t.pair, t.olga).is_empty());
    let ban_of = |pair: &Pair| pair.room.ban_of(&carol, pair.now).cloned();
    assert_eq!(ban_of(&t.pair).map(|b| b.until), Some(None));
    // Ten years on it holds: no reason, and no address was known or asked.
    t.pair.advance(10 * 365 * 86_400_000);
    let (_, got) = arrive(&mut t.pair, 7, "203.0.113.9", Some((&carol, &t.carol.2)));
    assert_eq!(
        banned_error(&got).as_deref(),
        Some("you are banned from this room until a moderator lifts the ban")
    );

    // The room restarts from what storage holds (the owner as the operator made her):
    // still banned.
    let mut users = t.pair.users.clone();
    users.retain(|u| u.id != OLGA);
    users.extend(owner_snapshot().users);
    let snapshot = RoomSnapshot {
        users,
        ..RoomSnapshot::default()
    };
    let mut pair = Pair::with(RoomConfig::default(), snapshot);
    pair.now = t.pair.now;
    let (olga, got) = arrive(&mut pair, 1, "198.51.100.1", Some((OLGA, "olga-token")));
    assert!(identified(&got));
    let (_, got) = arrive(&mut pair, 2, "203.0.113.9", Some((&carol, &t.carol.2)));
    assert!(banned_error(&got).is_some(), "{got:?}");

    // Lifted: everyone is told, it is stored, and she is back.
    pair.act(
        olga,
        ClientAction::Moderate(Moderate {
            kind: ModerationKind::Unban,
            user_id: carol.clone(),
            minutes: None,
            reason: None,
            address: false,
            nonce: Some("o2".to_owned()),
        }),
    );
    let told = moderated(&mut pair, olga);
    assert_eq!(
        told.iter().map(|m| m.kind).collect::<Vec<_>>(),
        [ModerationKind::Unban]
    );
    assert_eq!(pair.user(&carol).map(|u| u.ban.clone()), Some(None));
    let (_, got) = arrive(&mut pair, 3, "203.0.113.9", Some((&carol, &t.carol.2)));
    assert!(identified(&got) && banned_error(&got).is_none(), "{got:?}");
}

#[test]
fn a_ban_given_on_another_node_closes_the_persons_connections_here() {
    let mut t = room();
    let carol = t.carol.1.clone();
    let mut record = t.pair.user(&carol).cloned().expect("carol's record");
    record.ban = Some(Ban {
        until: None,
        reason: Some("trolling".to_owned()),
        addresses: Vec::new(),
        by: OLGA.to_owned(),
    });
    let seq = t.pair.room.latest_seq() + 1;
    t.pair
        .room
        .handle_logged(t.pair.now, seq, LogEvent::User(record), false);
    t.pair.pump();
    assert_eq!(
        banned_error(&t.pair.take(t.carol.0)).as_deref(),
        Some("you are banned from this room until a moderator lifts the ban: trolling")
    );
    assert_eq!(
        t.pair.closed.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(),
        [(t.carol.0, BANNED_CODE)]
    );
    let told = moderated(&mut t.pair, t.bob.0);
    assert_eq!(
        told.iter().map(|m| (m.kind, m.until)).collect::<Vec<_>>(),
        [(ModerationKind::Ban, None)]
    );
}
