//! One conformance suite for every `Store` driver: the embedded SQLite store always, and
//! MongoDB when `CAHAT_MONGODB_URI` names a server (SecantusDB in `.ci/run`, a real `mongo`
//! in the GitHub workflow). Under CI the MongoDB run is required, not skipped.

use protocol::{ChangeKind, DELETED_HTML, StoredChange, StoredMessage, UserRecord, hash_token};
use std::time::Duration;

use real_server::sealing::{DataKeys, KeyCheck};
use real_server::store::{Sealed, Search, Store, Write};
use real_server::{MongoStore, SqliteStore};

fn message(seq: u64, user: &str, nonce: Option<&str>) -> StoredMessage {
    StoredMessage {
        seq,
        id: format!("id-{seq}-{user}"),
        user_id: user.to_owned(),
        raw: format!("raw {seq}"),
        html: format!("<p>raw {seq}</p>\n"),
        timestamp: 1_700_000_000_000 + i64::try_from(seq).unwrap(),
        nonce: nonce.map(str::to_owned),
        ..StoredMessage::default()
    }
}

fn change(seq: u64, target: u64, kind: ChangeKind) -> StoredChange {
    StoredChange {
        seq,
        target,
        user_id: "u1".into(),
        at: 1_700_000_100_000,
        kind,
    }
}

fn user(id: &str, name: &str) -> UserRecord {
    UserRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        token_hash: hash_token(&format!("token of {id}")),
        joined_at: Some(1_700_000_000_000),
        last_seen: None,
        role: None,
        timed_out_until: None,
        ban: None,
    }
}

/// A room name no other test (or earlier run against the same server) uses.
fn fresh_room(test: &str) -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{test}-{suffix}")
}

async fn seqs<S: Store>(store: &S, room: &str) -> Vec<u64> {
    let snapshot = store.load_snapshot(room, 10_000).await.unwrap();
    snapshot.messages.iter().map(|m| m.seq).collect()
}

async fn empty_room<S: Store>(store: S) {
    let snapshot = store
        .load_snapshot(&fresh_room("empty"), 100)
        .await
        .unwrap();
    assert!(snapshot.messages.is_empty());
    assert!(snapshot.users.is_empty());
    assert!(snapshot.complete);
    assert_eq!(snapshot.latest_seq, 0);
}

async fn writes_come_back_in_order<S: Store>(store: S) {
    let room = fresh_room("order");
    let batch = vec![
        Write::User(user("u1", "Anonymous")),
        Write::Message(message(1, "u1", Some("n1"))),
        Write::Message(message(2, "u1", None)),
        Write::User(user("u1", "Ann")),
        Write::User(UserRecord {
            last_seen: Some(1_700_000_500_000),
            ..user("u2", "Bob")
        }),
    ];
    store.write_batch(&room, batch).await.unwrap();
    store
        .write_batch(&room, vec![Write::Message(message(3, "u2", None))])
        .await
        .unwrap();
    let snapshot = store.load_snapshot(&room, 100).await.unwrap();
    assert_eq!(snapshot.latest_seq, 3);
    assert!(snapshot.complete);
    assert_eq!(
        snapshot.messages,
        vec![
            message(1, "u1", Some("n1")),
            message(2, "u1", None),
            message(3, "u2", None)
        ]
    );
    let mut users = snapshot.users;
    users.sort_by(|a, b| a.id.cmp(&b.id));
    let bob = UserRecord {
        last_seen: Some(1_700_000_500_000),
        ..user("u2", "Bob")
    };
    assert_eq!(
        users,
        vec![user("u1", "Ann"), bob],
        "when they joined and were last seen too"
    );
}

async fn snapshots_hold_the_latest<S: Store>(store: S) {
    let room = fresh_room("latest");
    let batch = (1..=30)
        .map(|s| Write::Message(message(s, "u", None)))
        .collect();
    store.write_batch(&room, batch).await.unwrap();
    let snapshot = store.load_snapshot(&room, 10).await.unwrap();
    assert_eq!(
        snapshot.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (21..=30).collect::<Vec<_>>()
    );
    assert!(!snapshot.complete);
    assert_eq!(snapshot.latest_seq, 30);
}

async fn history_pages<S: Store>(store: S) {
    let room = fresh_room("history");
    let batch = (1..=25)
        .map(|s| Write::Message(message(s, "u", None)))
        .collect();
    store.write_batch(&room, batch).await.unwrap();
    let (page, more) = store.load_history(&room, None, None, 21, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (11..=20).collect::<Vec<_>>()
    );
    assert!(more);
    let (page, more) = store.load_history(&room, None, None, 11, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert!(!more);
    let (page, more) = store.load_history(&room, None, None, 1, 10).await.unwrap();
    assert!(page.is_empty() && !more);
}

async fn stored_messages_are_never_overwritten<S: Store>(store: S) {
    let room = fresh_room("overwrite");
    store
        .write_batch(&room, vec![Write::Message(message(1, "u", Some("n")))])
        .await
        .unwrap();
    let mut forged = message(1, "mallory", None);
    forged.raw = "replaced".into();
    assert!(
        store
            .write_batch(&room, vec![Write::Message(forged)])
            .await
            .is_err()
    );
    // The same (author, nonce) under another seq is refused too.
    assert!(
        store
            .write_batch(&room, vec![Write::Message(message(2, "u", Some("n")))])
            .await
            .is_err()
    );
    let snapshot = store.load_snapshot(&room, 10).await.unwrap();
    assert_eq!(snapshot.messages, vec![message(1, "u", Some("n"))]);
}

async fn a_logged_message_is_stored_once_however_often_it_is_written<S: Store>(store: S) {
    let room = fresh_room("logged");
    let mut again = message(2, "u", Some("n"));
    again.raw = "the same nonce, another seq".into();
    let batch = vec![
        Write::LoggedMessage(message(1, "u", Some("n"))),
        Write::LoggedMessage(message(1, "u", Some("n"))),
        Write::LoggedMessage(again),
        Write::LoggedMessage(message(3, "v", None)),
    ];
    // Two nodes write the same log: every write after a duplicate still lands.
    for _ in 0..2 {
        store.write_batch(&room, batch.clone()).await.unwrap();
    }
    assert_eq!(seqs(&store, &room).await, vec![1, 3]);
    let snapshot = store.load_snapshot(&room, 10).await.unwrap();
    assert_eq!(snapshot.messages[0], message(1, "u", Some("n")));
}

async fn a_change_folded_in_late_never_undoes_a_later_one<S: Store>(store: S) {
    let room = fresh_room("late");
    store
        .write_batch(&room, vec![Write::Message(message(1, "u", None))])
        .await
        .unwrap();
    let edit = |seq, text: &str| {
        change(
            seq,
            1,
            ChangeKind::Edit {
                raw: text.into(),
                html: format!("<p>{text}</p>"),
            },
        )
    };
    // Another node already folded in change 3; this one comes late with change 2.
    for late in [edit(3, "three"), edit(2, "two")] {
        store
            .write_batch(&room, vec![Write::Change(late)])
            .await
            .unwrap();
    }
    let snapshot = store.load_snapshot(&room, 10).await.unwrap();
    assert_eq!(snapshot.messages[0].raw, "three");
    assert_eq!(snapshot.messages[0].changed_seq, Some(3));
}

async fn a_failed_batch_reports_what_landed<S: Store>(store: S) {
    let room = fresh_room("partial");
    store
        .write_batch(&room, vec![Write::Message(message(2, "u", None))])
        .await
        .unwrap();
    let batch = vec![
        Write::Message(message(1, "u", None)),
        Write::Message(message(2, "other", None)),
        Write::Message(message(3, "u", None)),
    ];
    let err = store.write_batch(&room, batch).await.unwrap_err();
    // Whatever the driver's atomicity, exactly the first `written` writes are durable.
    let expected: Vec<u64> = match err.written {
        0 => vec![2],
        1 => vec![1, 2],
        n => panic!("{n} writes cannot have landed before the duplicate"),
    };
    assert_eq!(seqs(&store, &room).await, expected);
}

async fn rooms_are_separate<S: Store>(store: S) {
    let (a, b) = (fresh_room("a"), fresh_room("b"));
    store
        .write_batch(
            &a,
            vec![
                Write::Message(message(1, "u", Some("n"))),
                Write::User(user("u", "A")),
            ],
        )
        .await
        .unwrap();
    // The same seq, user and nonce in another room is a different message.
    store
        .write_batch(
            &b,
            vec![
                Write::Message(message(1, "u", Some("n"))),
                Write::User(user("u", "B")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot(&a, 10).await.unwrap().users,
        vec![user("u", "A")]
    );
    assert_eq!(
        store.load_snapshot(&b, 10).await.unwrap().users,
        vec![user("u", "B")]
    );
    assert_eq!(seqs(&store, &a).await, vec![1]);
}

async fn changes_are_folded_into_their_messages<S: Store>(store: S) {
    let room = fresh_room("changes");
    let edit = ChangeKind::Edit {
        raw: "edited".into(),
        html: "<p>edited</p>\n".into(),
    };
    store
        .write_batch(
            &room,
            vec![
                Write::Message(message(1, "u1", Some("n1"))),
                Write::Message(message(2, "u1", None)),
                Write::Message(StoredMessage {
                    reply_to: Some(1),
                    ..message(3, "u1", None)
                }),
                Write::Change(change(4, 1, edit.clone())),
                Write::Change(change(
                    8,
                    3,
                    ChangeKind::React {
                        emoji: "👍".into(),
                        on: true,
                    },
                )),
                Write::Change(change(5, 2, ChangeKind::Delete)),
                // An edit of a deleted message leaves it deleted (its seq is kept); a change to
                // a message never stored changes nothing.
                Write::Change(change(6, 2, edit)),
                Write::Change(change(7, 99, ChangeKind::Delete)),
            ],
        )
        .await
        .unwrap();
    let snapshot = store.load_snapshot(&room, 100).await.unwrap();
    assert_eq!(snapshot.latest_seq, 8, "the latest seq may be a change's");
    let [one, two, three] = &snapshot.messages[..] else {
        panic!("{:?}", snapshot.messages);
    };
    assert_eq!(
        (one.raw.as_str(), one.edited_at, one.changed_seq),
        ("edited", Some(1_700_000_100_000), Some(4))
    );
    assert_eq!(one.nonce.as_deref(), Some("n1"), "the rest is kept");
    assert!(two.deleted);
    assert_eq!((two.raw.as_str(), two.html.as_str()), ("", DELETED_HTML));
    assert_eq!(two.changed_seq, Some(6));
    assert_eq!((three.changed_seq, three.deleted), (Some(8), false));
    assert_eq!(three.reply_to, Some(1), "a reply keeps what it answers");
    assert_eq!(one.reply_to, None);
    assert_eq!(three.reactions.len(), 1);
    assert_eq!(three.reactions[0].emoji, "👍");
    assert_eq!(three.reactions[0].users, vec!["u1".to_owned()]);
    // History pages bring them as they are now, too.
    let (page, _) = store.load_history(&room, None, None, 3, 10).await.unwrap();
    assert_eq!(page[0].raw, "edited");
    assert!(page[1].deleted);
}

/// Others' direct messages never leave storage for a viewer: not for a third person, not for
/// a viewer without identity (or a legacy client); the two people get theirs in order.
async fn direct_messages_are_read_only_for_their_two_people<S: Store>(store: S) {
    let room = fresh_room("direct");
    let direct = |seq, from: &str, to: &str| StoredMessage {
        to: Some(to.to_owned()),
        ..message(seq, from, None)
    };
    let batch = vec![
        Write::Message(message(1, "carol", None)),
        Write::Message(direct(2, "alice", "bob")),
        Write::Message(message(3, "carol", None)),
        Write::Message(direct(4, "bob", "alice")),
        Write::Message(direct(5, "carol", "dave")),
        // The record a call leaves is a direct message like any, with the call kept.
        Write::Message(StoredMessage {
            raw: "Call, 4 min".into(),
            call: Some(protocol::CallRecord {
                outcome: protocol::CallOutcome::Answered,
                secs: 230,
            }),
            ..direct(6, "bob", "alice")
        }),
    ];
    store.write_batch(&room, batch).await.unwrap();
    let page = |viewer: Option<&'static str>| {
        let store = &store;
        let room = room.clone();
        async move {
            let (page, more) = store
                .load_history(&room, viewer, None, 7, 10)
                .await
                .unwrap();
            assert!(!more);
            page.iter().map(|m| m.seq).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(Some("alice")).await, [1, 2, 3, 4, 6]);
    assert_eq!(page(Some("bob")).await, [1, 2, 3, 4, 6]);
    assert_eq!(page(Some("carol")).await, [1, 3, 5]);
    assert_eq!(page(Some("erin")).await, [1, 3]);
    assert_eq!(page(None).await, [1, 3]);
    // The recipient is kept, and the snapshot (the engine's memory) has every message.
    let snapshot = store.load_snapshot(&room, 10).await.unwrap();
    assert_eq!(snapshot.messages.len(), 6);
    assert_eq!(snapshot.messages[1], direct(2, "alice", "bob"));
    let call = snapshot.messages[5].call.expect("the call record is kept");
    assert_eq!(
        (call.outcome, call.secs),
        (protocol::CallOutcome::Answered, 230)
    );
    let (page, _) = store
        .load_history(&room, Some("alice"), None, 7, 1)
        .await
        .unwrap();
    assert_eq!(page[0].call, Some(call));
    // A page that is short of visible ones says whether older visible ones exist.
    let (page, more) = store
        .load_history(&room, Some("erin"), None, 7, 1)
        .await
        .unwrap();
    assert_eq!(
        (page.iter().map(|m| m.seq).collect::<Vec<_>>(), more),
        (vec![3], true)
    );
}

/// Search: every page checked by the one rule, paged to the start of the room however small
/// the scan bound, following edits and deletes, never finding others' direct messages.
async fn search_finds_what_each_viewer_may_see_page_by_page<S: Store>(store: S) {
    let room = fresh_room("search");
    let text = |seq: u64, raw: &str| StoredMessage {
        raw: raw.to_owned(),
        ..message(seq, "carol", None)
    };
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for seq in 1..=250 {
        if seq % 25 == 0 {
            batch.push(Write::Message(text(
                seq,
                &format!("A needle in the haystack, {seq}"),
            )));
            expected.push(seq);
        } else {
            batch.push(Write::Message(text(seq, &format!("hay {seq}"))));
        }
    }
    batch.push(Write::Message(StoredMessage {
        raw: "the needle is mine".into(),
        to: Some("bob".into()),
        ..message(251, "alice", None)
    }));
    batch.push(Write::Message(text(252, "Needle, gone soon")));
    batch.push(Write::Message(text(253, "plain words")));
    batch.push(Write::Change(change(254, 252, ChangeKind::Delete)));
    batch.push(Write::Change(change(
        255,
        253,
        ChangeKind::Edit {
            raw: "now with a needle".into(),
            html: "<p>now with a needle</p>\n".into(),
        },
    )));
    batch.push(Write::Change(change(
        256,
        100,
        ChangeKind::Edit {
            raw: "no longer".into(),
            html: "<p>no longer</p>\n".into(),
        },
    )));
    store.write_batch(&room, batch).await.unwrap();
    expected.retain(|seq| *seq != 100);
    expected.push(253);
    expected.reverse();

    let all = |viewer: Option<&'static str>, query: &'static str| {
        let store = &store;
        let room = room.clone();
        async move {
            let query = protocol::search::SearchQuery::parse(query).unwrap();
            let mut found = Vec::new();
            let mut before = None;
            for _ in 0..200 {
                let page = store
                    .search(
                        &room,
                        Search {
                            viewer: viewer.map(str::to_owned),
                            query: query.clone(),
                            before,
                            limit: 4,
                            scan: 60,
                            timeout: Duration::from_secs(10),
                        },
                    )
                    .await
                    .unwrap();
                assert!(page.messages.len() <= 4);
                found.extend(page.messages.iter().map(|m| m.seq));
                match page.next {
                    Some(next) => before = Some(next),
                    None => return found,
                }
            }
            panic!("search never reached the start of the room");
        }
    };
    assert_eq!(all(Some("carol"), "needle").await, expected);
    assert_eq!(all(None, "NEEDLE").await, expected);
    let mut with_direct = expected.clone();
    with_direct.insert(1, 251);
    assert_eq!(all(Some("alice"), "needle").await, with_direct);
    assert_eq!(all(Some("bob"), "needle").await, with_direct);
    assert_eq!(all(Some("carol"), "needle mine").await, Vec::<u64>::new());
    assert_eq!(all(Some("bob"), "needle mine").await, [251]);
    assert_eq!(all(Some("carol"), "haystack 200").await, [200]);
    assert_eq!(all(Some("carol"), "longer").await, [100]);
}

/// Each store says the privacy rule in its own language (SQL, a BSON filter); over generated
/// messages (three authors, each message to the room or to one of the others) and every kind
/// of viewer (each of them, a stranger, none), history and search give each viewer exactly
/// what `protocol::may_see`, the rule itself, lets them see.
async fn each_viewer_reads_exactly_what_the_rule_lets_them<S: Store>(store: S) {
    let room = fresh_room("visible");
    let people = ["ann", "bob", "cy"];
    // A fixed pseudo-random sequence (an LCG): the same messages on every run and store.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((state >> 33) % n).unwrap()
    };
    let written: Vec<StoredMessage> = (1..=120u64)
        .map(|seq| {
            let author = people[next(3)];
            let to = people.get(next(5)).filter(|to| **to != author);
            StoredMessage {
                raw: format!("word {seq}"),
                to: to.map(|to| (*to).to_owned()),
                ..message(seq, author, None)
            }
        })
        .collect();
    assert!(written.iter().any(|m| m.to.is_some()) && written.iter().any(|m| m.to.is_none()));
    let batch = written.iter().cloned().map(Write::Message).collect();
    store.write_batch(&room, batch).await.unwrap();
    let query = protocol::search::SearchQuery::parse("word").unwrap();
    for viewer in [None, Some("ann"), Some("bob"), Some("cy"), Some("dee")] {
        let expected: Vec<u64> = written
            .iter()
            .filter(|m| protocol::may_see(viewer, &m.user_id, m.to.as_deref()))
            .map(|m| m.seq)
            .collect();
        let (page, more) = store
            .load_history(&room, viewer, None, 1000, 1000)
            .await
            .unwrap();
        assert!(!more);
        let mut read: Vec<u64> = page.iter().map(|m| m.seq).collect();
        read.sort_unstable();
        assert_eq!(read, expected, "history read by {viewer:?}");
        let mut found = Vec::new();
        let mut before = None;
        loop {
            let search = Search {
                viewer: viewer.map(str::to_owned),
                query: query.clone(),
                before,
                limit: 50,
                scan: 1000,
                timeout: Duration::from_secs(10),
            };
            let page = store.search(&room, search).await.unwrap();
            found.extend(page.messages.iter().map(|m| m.seq));
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        found.sort_unstable();
        assert_eq!(found, expected, "search by {viewer:?}");
    }
}

/// A person's conversations and each conversation's pages: exactly the one rule
/// ([`protocol::conversations_of`], [`StoredMessage::in_page_for`]) over generated direct
/// messages, some deleted, for every viewer, `since` and bound.
async fn conversations_are_listed_and_paged_as_the_rule_says<S: Store>(store: S) {
    let room = fresh_room("conversations");
    let people = ["ann", "bob", "cy", "dee"];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((state >> 33) % n).unwrap()
    };
    let mut written: Vec<StoredMessage> = (1..=150u64)
        .map(|seq| {
            let author = people[next(4)];
            let to = people.get(next(6)).filter(|to| **to != author);
            StoredMessage {
                raw: format!("word {seq}"),
                to: to.map(|to| (*to).to_owned()),
                ..message(seq, author, None)
            }
        })
        .collect();
    let mut batch: Vec<Write> = written.iter().cloned().map(Write::Message).collect();
    for seq in 151..=170u64 {
        let target = u64::try_from(next(150)).unwrap() + 1;
        let author = written[usize::try_from(target - 1).unwrap()]
            .user_id
            .clone();
        let delete = StoredChange {
            user_id: author,
            ..change(seq, target, ChangeKind::Delete)
        };
        delete.apply(&mut written[usize::try_from(target - 1).unwrap()]);
        batch.push(Write::Change(delete));
    }
    store.write_batch(&room, batch).await.unwrap();
    let summary = |found: &[protocol::DirectConversation]| {
        found
            .iter()
            .map(|c| (c.with.clone(), c.last.seq, c.last.deleted, c.unread))
            .collect::<Vec<_>>()
    };
    for viewer in ["ann", "bob", "cy", "dee", "eve"] {
        for (since, limit) in [(0, 10), (75, 10), (140, 10), (u64::MAX, 10), (60, 2)] {
            let expected = protocol::conversations_of(
                written.iter().rev(),
                viewer,
                since,
                usize::try_from(limit).unwrap(),
            );
            let found = store
                .load_conversations(&room, viewer, since, limit)
                .await
                .unwrap();
            assert_eq!(
                summary(&found),
                summary(&expected),
                "conversations of {viewer} since {since}, at most {limit}"
            );
        }
        for with in people {
            let expected: Vec<u64> = written
                .iter()
                .filter(|m| m.in_page_for(Some(viewer), Some(with)))
                .map(|m| m.seq)
                .collect();
            let (page, more) = store
                .load_history(&room, Some(viewer), Some(with), 1000, 1000)
                .await
                .unwrap();
            assert!(!more);
            let read: Vec<u64> = page.iter().map(|m| m.seq).collect();
            assert_eq!(read, expected, "{viewer}'s conversation with {with}");
        }
        // No identity: no conversation.
        let (page, _) = store
            .load_history(&room, None, Some(viewer), 1000, 1000)
            .await
            .unwrap();
        assert!(page.is_empty());
    }
    // The generated room has conversations to compare, unread ones among them.
    let ann = protocol::conversations_of(written.iter().rev(), "ann", 75, 10);
    assert!(
        ann.len() >= 2 && ann.iter().any(|c| c.unread > 0),
        "{ann:?}"
    );
}

/// Roles are written by role writes only: a user write (a rename, a last-seen time) keeps
/// the role stored, so a role the operator granted while the server ran is never lost; a role
/// for nobody the room knows makes nobody up.
async fn roles_are_kept_apart_from_the_rest_of_a_person<S: Store>(store: S) {
    let room = fresh_room("roles");
    let batch = vec![
        Write::User(user("ann", "Ann")),
        Write::User(user("bob", "Bob")),
        Write::Role {
            user_id: "ann".into(),
            role: Some(protocol::Role::Owner),
        },
        Write::Role {
            user_id: "bob".into(),
            role: Some(protocol::Role::Moderator),
        },
        Write::Role {
            user_id: "ghost".into(),
            role: Some(protocol::Role::Owner),
        },
    ];
    store.write_batch(&room, batch).await.unwrap();
    let roles = |snapshot: protocol::RoomSnapshot| {
        let mut roles: Vec<(String, String, Option<protocol::Role>)> = snapshot
            .users
            .into_iter()
            .map(|u| (u.id, u.name, u.role))
            .collect();
        roles.sort();
        roles
    };
    assert_eq!(
        roles(store.load_snapshot(&room, 10).await.unwrap()),
        [
            ("ann".into(), "Ann".into(), Some(protocol::Role::Owner)),
            ("bob".into(), "Bob".into(), Some(protocol::Role::Moderator)),
        ]
    );
    // A server's older copy of Bob (no role) renames him: his role stays.
    let renamed = UserRecord {
        last_seen: Some(1_700_000_100_000),
        ..user("bob", "Bobby")
    };
    store
        .write_batch(&room, vec![Write::User(renamed)])
        .await
        .unwrap();
    store
        .write_batch(
            &room,
            vec![Write::Role {
                user_id: "ann".into(),
                role: None,
            }],
        )
        .await
        .unwrap();
    let snapshot = store.load_snapshot(&room, 10).await.unwrap();
    let bob = snapshot.users.iter().find(|u| u.id == "bob").cloned();
    assert_eq!(
        bob.map(|u| (u.name, u.last_seen, u.role)),
        Some((
            "Bobby".into(),
            Some(1_700_000_100_000),
            Some(protocol::Role::Moderator)
        ))
    );
    assert_eq!(
        roles(snapshot)[0],
        ("ann".into(), "Ann".into(), None),
        "a member again"
    );
}

/// A time-out is kept with the person, and its end clears it.
async fn a_time_out_is_kept_with_its_person_until_it_is_ended<S: Store>(store: S) {
    let room = fresh_room("timeouts");
    let timed_out = UserRecord {
        timed_out_until: Some(1_700_000_600_000),
        ban: None,
        ..user("carol", "Carol")
    };
    store
        .write_batch(&room, vec![Write::User(timed_out.clone())])
        .await
        .unwrap();
    let until = |snapshot: protocol::RoomSnapshot| snapshot.users[0].timed_out_until;
    assert_eq!(
        until(store.load_snapshot(&room, 1).await.unwrap()),
        Some(1_700_000_600_000)
    );
    let ended = UserRecord {
        timed_out_until: None,
        ban: None,
        ..timed_out
    };
    store
        .write_batch(&room, vec![Write::User(ended)])
        .await
        .unwrap();
    assert_eq!(until(store.load_snapshot(&room, 1).await.unwrap()), None);
}

/// A ban is kept with the person (until, reason, addresses, who), and lifting it clears it;
/// the rest of the person stays as written.
async fn a_ban_is_kept_with_its_person_until_it_is_lifted<S: Store>(store: S) {
    let room = fresh_room("bans");
    let ban = protocol::Ban {
        until: Some(1_700_000_600_000),
        reason: Some("spam «links»".into()),
        addresses: vec!["203.0.113.9".into(), "2001:db8:1:2::".into()],
        by: "olga".into(),
    };
    let banned = UserRecord {
        ban: Some(ban.clone()),
        ..user("carol", "Carol")
    };
    let forever = UserRecord {
        ban: Some(protocol::Ban {
            until: None,
            reason: None,
            addresses: Vec::new(),
            by: "olga".into(),
        }),
        ..user("dave", "Dave")
    };
    store
        .write_batch(
            &room,
            vec![Write::User(banned.clone()), Write::User(forever.clone())],
        )
        .await
        .unwrap();
    let bans = |snapshot: protocol::RoomSnapshot| {
        let mut users: Vec<(String, Option<protocol::Ban>)> =
            snapshot.users.into_iter().map(|u| (u.id, u.ban)).collect();
        users.sort_by(|a, b| a.0.cmp(&b.0));
        users
    };
    assert_eq!(
        bans(store.load_snapshot(&room, 1).await.unwrap()),
        [
            ("carol".to_owned(), Some(ban)),
            ("dave".to_owned(), forever.ban.clone()),
        ]
    );
    let lifted = UserRecord {
        ban: None,
        name: "Caro".into(),
        ..banned
    };
    store
        .write_batch(&room, vec![Write::User(lifted)])
        .await
        .unwrap();
    let snapshot = store.load_snapshot(&room, 1).await.unwrap();
    let carol = snapshot.users.iter().find(|u| u.id == "carol").cloned();
    assert_eq!(carol.map(|u| (u.name, u.ban)), Some(("Caro".into(), None)));
    assert_eq!(bans(snapshot)[1], ("dave".to_owned(), forever.ban));
}

/// The moderation log: kept in seq order, each event once, its seqs counted in the room's
/// latest; a resolve closes its report.
async fn the_moderation_log_keeps_each_event_once_and_which_reports_are_open<S: Store>(store: S) {
    use protocol::{AuditAction, AuditEntry};
    let (room, other) = (fresh_room("audit"), fresh_room("audit-other"));
    let entry = |seq, action, target, report| AuditEntry {
        seq,
        at: 1_700_000_000_000 + i64::try_from(seq).unwrap_or(0),
        by: "olga".into(),
        action,
        user_id: Some("carol".into()),
        target,
        report,
        reason: Some(format!("why «{seq}»")),
        until: None,
    };
    let events = vec![
        entry(5, AuditAction::Report, Some(1), None),
        entry(6, AuditAction::TimeOut, None, None),
        entry(7, AuditAction::Report, Some(2), None),
        entry(8, AuditAction::Resolve, Some(1), Some(5)),
    ];
    let mut writes: Vec<Write> = events.iter().cloned().map(Write::Audit).collect();
    // A node writing an event of the shared log again: kept once.
    writes.push(Write::Audit(events[1].clone()));
    store.write_batch(&room, writes).await.unwrap();
    let snapshot = store.load_snapshot(&room, 10).await.unwrap();
    assert_eq!(snapshot.audit, events);
    assert_eq!(snapshot.open_reports, [events[2].clone()]);
    assert_eq!(
        snapshot.latest_seq, 8,
        "the log's seqs go on after the moderation log's"
    );
    let elsewhere = store.load_snapshot(&other, 10).await.unwrap();
    assert!(elsewhere.audit.is_empty() && elsewhere.open_reports.is_empty());
}

/// A room's settings (topic, slow mode) are kept per room and replaced whole.
async fn room_settings_are_kept_per_room<S: Store>(store: S) {
    let (room, other) = (fresh_room("settings"), fresh_room("settings-other"));
    let kind = protocol::RoomSettings {
        topic: "Be kind".into(),
        slow_mode_seconds: 30,
    };
    assert_eq!(
        store.load_snapshot(&room, 1).await.unwrap().settings,
        protocol::RoomSettings::default()
    );
    store
        .write_batch(&room, vec![Write::Settings(kind.clone())])
        .await
        .unwrap();
    assert_eq!(store.load_snapshot(&room, 1).await.unwrap().settings, kind);
    assert_eq!(
        store.load_snapshot(&other, 1).await.unwrap().settings,
        protocol::RoomSettings::default()
    );
    let calm = protocol::RoomSettings {
        topic: String::new(),
        slow_mode_seconds: 0,
    };
    store
        .write_batch(&room, vec![Write::Settings(calm.clone())])
        .await
        .unwrap();
    assert_eq!(store.load_snapshot(&room, 1).await.unwrap().settings, calm);
}

/// A message a moderator removed: its text gone from the row and from search, marked removed
/// on every path.
async fn a_removed_message_keeps_no_text_anywhere<S: Store>(store: S) {
    let room = fresh_room("removed");
    let spam = StoredMessage {
        raw: "buy cheapwatches now".into(),
        ..message(1, "carol", None)
    };
    let remove = StoredChange {
        user_id: "bob".into(),
        ..change(2, 1, ChangeKind::Remove)
    };
    store
        .write_batch(&room, vec![Write::Message(spam)])
        .await
        .unwrap();
    store
        .write_batch(&room, vec![Write::Change(remove)])
        .await
        .unwrap();
    let snapshot = store.load_snapshot(&room, 10).await.unwrap();
    let kept = &snapshot.messages[0];
    assert!(kept.deleted && kept.removed, "{kept:?}");
    assert_eq!(
        (kept.raw.as_str(), kept.html.as_str()),
        ("", protocol::REMOVED_HTML)
    );
    let (page, _) = store.load_history(&room, None, None, 10, 10).await.unwrap();
    assert!(page[0].removed && page[0].raw.is_empty());
    let search = Search {
        viewer: None,
        query: protocol::search::SearchQuery::parse("cheapwatches").unwrap(),
        before: None,
        limit: 10,
        scan: 100,
        timeout: Duration::from_secs(10),
    };
    assert!(
        store
            .search(&room, search)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
}

/// The check values of the keys that sealed a room's text are kept per room, each once (its
/// first value), in the order they were saved.
async fn data_key_checks_are_kept_per_room_each_once<S: Store>(store: S) {
    let room = fresh_room("keys");
    let check = |id: &str, check: &str| KeyCheck {
        id: id.to_owned(),
        check: check.to_owned(),
    };
    assert!(store.load_key_checks(&room).await.unwrap().is_empty());
    store
        .save_key_check(&room, check("k1", "c1"))
        .await
        .unwrap();
    store
        .save_key_check(&room, check("k2", "c2"))
        .await
        .unwrap();
    store
        .save_key_check(&room, check("k1", "other"))
        .await
        .unwrap();
    assert_eq!(
        store.load_key_checks(&room).await.unwrap(),
        [check("k1", "c1"), check("k2", "c2")]
    );
    assert!(
        store
            .load_key_checks(&fresh_room("other"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Re-sealing reads every message and moderation event in seq order (direct messages too),
/// replaces a message's text only while no change was folded in since it was read, and
/// replaces a moderation event; a key's check value can be forgotten.
async fn records_are_read_in_order_and_replaced_unless_changed_meanwhile<S: Store>(store: S) {
    let room = fresh_room("reseal");
    let direct = StoredMessage {
        to: Some("u2".into()),
        ..message(2, "u1", None)
    };
    let report = protocol::AuditEntry {
        seq: 4,
        at: 1_700_000_000_004,
        by: "u2".into(),
        action: protocol::AuditAction::Report,
        user_id: Some("u1".into()),
        target: Some(1),
        report: None,
        reason: Some("first words".into()),
        until: None,
    };
    store
        .write_batch(
            &room,
            vec![
                Write::Message(message(1, "u1", None)),
                Write::Message(direct),
                Write::Message(message(3, "u1", None)),
                Write::Audit(report.clone()),
                Write::Change(change(
                    5,
                    3,
                    ChangeKind::React {
                        emoji: "👍".into(),
                        on: true,
                    },
                )),
            ],
        )
        .await
        .unwrap();
    let all = store.load_messages_after(&room, 0, 10).await.unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[1].to.as_deref(), Some("u2"), "direct messages too");
    let after_one = store.load_messages_after(&room, 1, 1).await.unwrap();
    assert_eq!(after_one.iter().map(|m| m.seq).collect::<Vec<_>>(), [2]);

    let anew = |seq: u64| StoredMessage {
        raw: format!("anew {seq}"),
        html: format!("<p>anew {seq}</p>"),
        ..message(seq, "u1", None)
    };
    store
        .write_batch(
            &room,
            vec![
                // Unchanged since read: replaced.
                Write::Reseal {
                    message: anew(1),
                    changed_seq: None,
                },
                // Changed since (a reaction, seq 5), read before it: left as it is.
                Write::Reseal {
                    message: anew(3),
                    changed_seq: None,
                },
                Write::ResealAudit(protocol::AuditEntry {
                    reason: Some("words anew".into()),
                    ..report.clone()
                }),
            ],
        )
        .await
        .unwrap();
    let all = store.load_messages_after(&room, 0, 10).await.unwrap();
    assert_eq!(
        (all[0].raw.as_str(), all[0].html.as_str()),
        ("anew 1", "<p>anew 1</p>")
    );
    assert_eq!(all[2].raw, "raw 3", "changed meanwhile: not replaced");
    assert_eq!(all[2].reactions.len(), 1);
    store
        .write_batch(
            &room,
            vec![Write::Reseal {
                message: anew(3),
                changed_seq: Some(5),
            }],
        )
        .await
        .unwrap();
    let all = store.load_messages_after(&room, 0, 10).await.unwrap();
    assert_eq!(all[2].raw, "anew 3");
    assert_eq!(all[2].reactions.len(), 1, "only the text is replaced");
    let audit = store.load_audit_after(&room, 0, 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].reason.as_deref(), Some("words anew"));

    store
        .save_key_check(
            &room,
            KeyCheck {
                id: "k1".into(),
                check: "c1".into(),
            },
        )
        .await
        .unwrap();
    store.remove_key_check(&room, "k1").await.unwrap();
    assert!(store.load_key_checks(&room).await.unwrap().is_empty());
    store.compact(&room).await.unwrap();
}

macro_rules! conformance {
    ($driver:ident, $open:expr) => {
        mod $driver {
            use super::*;

            conformance!(@tests $open;
                empty_room,
                writes_come_back_in_order,
                snapshots_hold_the_latest,
                history_pages,
                stored_messages_are_never_overwritten,
                a_failed_batch_reports_what_landed,
                a_logged_message_is_stored_once_however_often_it_is_written,
                a_change_folded_in_late_never_undoes_a_later_one,
                rooms_are_separate,
                changes_are_folded_into_their_messages,
                direct_messages_are_read_only_for_their_two_people,
                search_finds_what_each_viewer_may_see_page_by_page,
                each_viewer_reads_exactly_what_the_rule_lets_them,
                conversations_are_listed_and_paged_as_the_rule_says,
                roles_are_kept_apart_from_the_rest_of_a_person,
                a_removed_message_keeps_no_text_anywhere,
                a_time_out_is_kept_with_its_person_until_it_is_ended,
                a_ban_is_kept_with_its_person_until_it_is_lifted,
                the_moderation_log_keeps_each_event_once_and_which_reports_are_open,
                room_settings_are_kept_per_room,
                data_key_checks_are_kept_per_room_each_once,
                records_are_read_in_order_and_replaced_unless_changed_meanwhile,
            );
        }
    };
    (@tests $open:expr; $($test:ident,)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                if let Some((store, _keep_until_done)) = $open.await {
                    super::$test(store).await;
                }
            }
        )*
    };
}

/// Each test gets its own database file, removed when the returned guard drops.
async fn open_sqlite() -> Option<(SqliteStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).unwrap();
    Some((store, dir))
}

async fn open_mongo() -> Option<(MongoStore, ())> {
    match std::env::var("CAHAT_MONGODB_URI") {
        Ok(uri) => Some((
            MongoStore::connect(&uri, "cahat_conformance")
                .await
                .unwrap(),
            (),
        )),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI must run the MongoDB conformance suite: set CAHAT_MONGODB_URI")
        }
        Err(_) => {
            eprintln!(
                "skipped: CAHAT_MONGODB_URI is not set (scripts/test-all.sh starts SecantusDB and sets it)"
            );
            None
        }
    }
}

/// Either store with what people wrote sealed ([`Sealed`]): the same suite, the same answers.
async fn open_sealed_sqlite() -> Option<(Sealed<SqliteStore>, tempfile::TempDir)> {
    let (store, dir) = open_sqlite().await?;
    Some((Sealed::new(store, DataKeys::generate().unwrap()), dir))
}

async fn open_sealed_mongo() -> Option<(Sealed<MongoStore>, ())> {
    let (store, keep) = open_mongo().await?;
    Some((Sealed::new(store, DataKeys::generate().unwrap()), keep))
}

conformance!(sqlite, open_sqlite());
conformance!(mongodb, open_mongo());
conformance!(sealed_sqlite, open_sealed_sqlite());
conformance!(sealed_mongodb, open_sealed_mongo());
