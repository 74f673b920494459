//! The people online in O(page): `HANDSHAKE` lists the first `handshake_people` of them by id
//! and counts them all; `PEOPLE_REQUEST` gives the rest by page; `PRESENCE` keeps the count.

use super::tests::presence_after_tick;
use super::*;
use crate::testing::Pair;
use crate::wire::*;

fn room_of(handshake_people: usize) -> Pair {
    let config = RoomConfig {
        handshake_people,
        ..RoomConfig::default()
    };
    Pair::with(config, RoomSnapshot::default())
}

fn handshake_of(h: &mut Pair, id: u64) -> (ConnectionId, Handshake) {
    let conn = h.connect(id);
    let handshake = h.take(conn).into_iter().find_map(|a| match a {
        ServerAction::Handshake(hs) => Some(hs),
        _ => None,
    });
    (conn, handshake.expect("a HANDSHAKE first"))
}

fn ask(after: Option<&str>, limit: u32) -> ClientAction {
    ClientAction::PeopleRequest(PeopleRequest {
        after: after.map(str::to_owned),
        limit,
    })
}

fn page_of(h: &mut Pair, conn: ConnectionId) -> PeoplePage {
    let got = h.take(conn);
    let mut pages = got.into_iter().filter_map(|a| match a {
        ServerAction::People(page) => Some(page),
        _ => None,
    });
    let page = pages.next().expect("a PEOPLE page");
    assert!(pages.next().is_none(), "one page per request");
    page
}

#[test]
fn a_handshake_lists_the_first_people_online_and_counts_them_all_and_pages_give_the_rest_once() {
    let mut h = room_of(3);
    let mut everyone: Vec<UserId> = (1..=10).map(|i| h.join(i).1).collect();
    everyone.sort_unstable();
    let (conn, handshake) = handshake_of(&mut h, 100);
    assert_eq!(handshake.online_count, Some(10));
    assert_eq!(
        handshake.online.as_deref(),
        Some(&everyone[..3]),
        "the first three by id"
    );
    let people: Vec<&str> = handshake
        .people
        .iter()
        .flatten()
        .map(|p| p.user_id.as_str())
        .collect();
    assert_eq!(
        people,
        everyone[..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        handshake.user_names.len() <= 3,
        "names of those listed only: {:?}",
        handshake.user_names
    );

    // Paging on from the last one listed reaches everyone else, each once, in id order; a
    // page is at most the room's size however many are asked for.
    let mut seen: Vec<UserId> = handshake.online.clone().unwrap_or_default();
    let mut after = seen.last().cloned();
    while let Some(from) = after {
        h.act(conn, ask(Some(&from), 1_000));
        let page = page_of(&mut h, conn);
        assert_eq!(page.after.as_deref(), Some(from.as_str()));
        assert!(!page.people.is_empty() && page.people.len() <= 3);
        assert_eq!(page.online_count, 10);
        for person in &page.people {
            assert!(page.user_names.contains_key(&person.user_id));
            assert!(person.joined_at.is_some());
        }
        seen.extend(page.people.into_iter().map(|p| p.user_id));
        after = page.next;
    }
    assert_eq!(seen, everyone, "everyone once, in order");

    // No `after`: from the first; a limit of 0 still gives one (a page of none would end the
    // paging).
    h.act(conn, ask(None, 0));
    let page = page_of(&mut h, conn);
    assert_eq!(page.people.len(), 1);
    assert_eq!(page.people[0].user_id, everyone[0]);
    assert_eq!(page.next.as_deref(), Some(everyone[0].as_str()));
    // An id that is no one's is a place in the order all the same.
    h.act(conn, ask(Some("~"), 5));
    let page = page_of(&mut h, conn);
    assert!(page.people.is_empty() && page.next.is_none());
}

#[test]
fn asking_for_people_spends_the_rate_like_any_request() {
    let mut h = room_of(3);
    h.join(1);
    let (conn, _) = handshake_of(&mut h, 100);
    let burst = h.room.config().rate_burst;
    for _ in 0..=burst {
        h.act(conn, ask(None, 3));
    }
    let got = h.take(conn);
    let pages = got
        .iter()
        .filter(|a| matches!(a, ServerAction::People(_)))
        .count();
    let refused = got
        .iter()
        .filter(|a| matches!(a, ServerAction::Error(e) if e.code == ErrorCode::RateLimited))
        .count();
    assert_eq!((pages, refused), (burst as usize, 1));
}

#[test]
fn the_count_is_of_people_not_connections_nor_nodes_and_presence_tells_it() {
    let mut h = room_of(2);
    let (watcher, _, _) = h.join_ours(1);
    let (a, alice, token) = h.join(2);
    h.take(watcher);
    // Alice's second tab: one person still.
    let a2 = h.connect(3);
    h.act(
        a2,
        ClientAction::HandshakeUserInfo(HandshakeUserInfo {
            user_id: Some(alice.clone()),
            token: Some(token),
            ..HandshakeUserInfo::default()
        }),
    );
    assert_eq!(handshake_of(&mut h, 50).1.online_count, Some(2));
    // Another node says Alice and two others are online through it.
    let now = h.now;
    h.room.handle_node_presence(
        now,
        "node1",
        vec![alice.clone(), "far-1".to_owned(), "far-2".to_owned()],
    );
    let told = presence_after_tick(&mut h, watcher);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].online_count, Some(4));
    assert_eq!(handshake_of(&mut h, 51).1.online_count, Some(4));
    // Alice closes both tabs here: still online through node1.
    h.disconnect(a);
    h.disconnect(a2);
    assert_eq!(handshake_of(&mut h, 52).1.online_count, Some(4));
    // node1 stops: only the watcher is left.
    let now = h.now;
    h.room.handle_node_presence(now, "node1", Vec::new());
    presence_after_tick(&mut h, watcher);
    let (_, handshake) = handshake_of(&mut h, 53);
    assert_eq!(handshake.online_count, Some(1));
    assert_eq!(handshake.online.map(|o| o.len()), Some(1));
}
