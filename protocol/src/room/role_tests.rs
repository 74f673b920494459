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

const OLGA: &str = "olga";

fn room() -> Room3 {
    let snapshot = RoomSnapshot {
        users: vec![UserRecord {
            id: OLGA.to_owned(),
            name: "Olga".to_owned(),
            token_hash: hash_token("olga-token"),
            joined_at: Some(1),
            last_seen: None,
            role: Some(Role::Owner),
        }],
        ..RoomSnapshot::default()
    };
    let mut pair = Pair::with(RoomConfig::default(), snapshot);
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
fn refusals(pair: &mut Pair, conn: ConnectionId) -> Vec<(ErrorCode, Option<String>)> {
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
    let newcomer = t.pair.connect(9);
    let roles = t
        .pair
        .take(newcomer)
        .into_iter()
        .find_map(|a| match a {
            ServerAction::Handshake(h) => Some(h.roles),
            _ => None,
        })
        .expect("a handshake");
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
    t.pair.say(t.carol.0, "spam spam spam"); // 1
    t.pair.say(t.olga, "the owner speaks"); // 2
    t.pair.say(t.bob.0, "the moderator speaks"); // 3
    t.pair.act(
        t.carol.0,
        ClientAction::Message(SendMessage {
            raw_message: "just for olga".to_owned(),
            to: Some(OLGA.to_owned()),
            ..SendMessage::default()
        }),
    ); // 4
    for conn in [t.olga, t.bob.0, t.carol.0] {
        t.pair.take(conn);
    }
    // A member removes nobody's; a moderator neither an owner's nor a fellow's own rank's.
    t.pair.act(t.carol.0, delete(3, "c1"));
    assert_eq!(
        refusals(&mut t.pair, t.carol.0),
        [(ErrorCode::NotYourMessage, Some("c1".to_owned()))]
    );
    t.pair.act(t.bob.0, delete(2, "b1"));
    // Someone's direct message is not the moderator's to see, nor to remove.
    t.pair.act(t.bob.0, delete(4, "b2"));
    assert_eq!(
        refusals(&mut t.pair, t.bob.0),
        [
            (ErrorCode::NotYourMessage, Some("b1".to_owned())),
            (ErrorCode::UnknownMessage, Some("b2".to_owned())),
        ]
    );
    // The moderator removes the member's: everyone sees it removed, its text gone.
    t.pair.act(t.bob.0, delete(1, "b3"));
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
    t.pair.act(t.olga, delete(3, "o2"));
    assert!(refusals(&mut t.pair, t.olga).is_empty());
    assert!(t.pair.stored[2].removed);
    // A removed message takes nothing more, not even from an owner.
    t.pair.act(t.olga, delete(1, "o3"));
    assert_eq!(
        refusals(&mut t.pair, t.olga),
        [(ErrorCode::MessageDeleted, Some("o3".to_owned()))]
    );
    // Authors still delete their own (a delete, not a removal).
    t.pair.act(t.olga, delete(2, "o4"));
    assert!(t.pair.stored[1].deleted && !t.pair.stored[1].removed);
}
