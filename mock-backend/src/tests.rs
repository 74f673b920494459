//! The mock room: deterministic per seed, lively, and a real room to the page client.

use super::*;
use protocol::ServerAction;

const T0: Millis = 1_800_000_000_000;

fn run(seed: u64, minutes: i64) -> Vec<String> {
    let mut room = MockRoom::new("Demo", 4, seed, T0);
    let conn = room.connect(T0);
    let mut frames = room.take_frames(conn);
    let mut now = T0;
    while now < T0 + minutes * 60_000 {
        now += 250;
        room.advance(now);
        frames.extend(room.take_frames(conn));
    }
    frames
}

/// The frame's action type; every frame must decode as a server action.
fn kind(frame: &str) -> String {
    assert!(
        protocol::decode_server(frame).is_ok(),
        "undecodable frame {frame}"
    );
    let value: serde_json::Value = serde_json::from_str(frame).expect("JSON");
    value["type"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_same_seed_gives_the_same_room() {
    assert_eq!(run(7, 3), run(7, 3));
    assert_ne!(run(7, 3), run(8, 3));
}

#[test]
fn fake_users_chat_rename_leave_and_come_back() {
    let frames = run(42, 10);
    let kinds: Vec<String> = frames.iter().map(|f| kind(f)).collect();
    let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
    assert_eq!(kinds[0], "HANDSHAKE");
    assert!(count("MESSAGE") >= 30, "{}", count("MESSAGE"));
    let presence: Vec<protocol::Presence> = frames
        .iter()
        .filter_map(|f| match protocol::decode_server(f) {
            Ok(ServerAction::Presence(p)) => Some(p),
            _ => None,
        })
        .collect();
    let sum = |f: fn(&protocol::Presence) -> usize| presence.iter().map(f).sum::<usize>();
    assert!(sum(|p| p.names.len()) >= 2, "renames");
    assert!(sum(|p| p.left.len()) >= 1, "someone left");
    assert!(sum(|p| p.joined.len()) >= 1, "someone came");
    // Varied markdown reaches the page.
    let raws: Vec<String> = frames
        .iter()
        .filter_map(|f| match protocol::decode_server(f) {
            Ok(ServerAction::Message(m)) => Some(m.raw_message),
            _ => None,
        })
        .collect();
    for feature in ["**", "- ", "```", "](https://", ":"] {
        assert!(
            raws.iter().any(|r| r.contains(feature)),
            "no message with {feature}"
        );
    }
    // Several distinct authors.
    let authors: std::collections::HashSet<String> = frames
        .iter()
        .filter_map(|f| match protocol::decode_server(f) {
            Ok(ServerAction::Message(m)) => Some(m.user_id),
            _ => None,
        })
        .collect();
    assert!(authors.len() >= 3, "{authors:?}");
}

#[test]
fn a_user_who_leaves_comes_back_as_themselves() {
    let frames = run(42, 10);
    let mut left = Vec::new();
    for frame in &frames {
        if let Ok(ServerAction::Presence(p)) = protocol::decode_server(frame) {
            if p.joined.iter().any(|u| left.contains(&u.user_id)) {
                return;
            }
            left.extend(p.left.into_iter().map(|u| u.user_id));
        }
    }
    panic!("nobody came back under the same id");
}

#[test]
fn the_page_client_is_a_real_member_of_the_room() {
    let mut room = MockRoom::new("Demo", 2, 1, T0);
    let conn = room.connect(T0);
    room.send(T0, conn, r#"{"type":"HANDSHAKE_USER_INFO","payload":{}}"#);
    room.send(
        T0 + 10,
        conn,
        r#"{"type":"MESSAGE","payload":{"rawMessage":"hi **bots**","nonce":"p1"}}"#,
    );
    let frames = room.take_frames(conn);
    let echo = frames
        .iter()
        .find_map(|f| match protocol::decode_server(f) {
            Ok(ServerAction::Message(m)) if m.nonce.as_deref() == Some("p1") => Some(m),
            _ => None,
        })
        .expect("own message echoed");
    assert_eq!(echo.html_message, "<p>hi <strong>bots</strong></p>\n");
    // The engine's rules hold here too.
    room.send(
        T0 + 20,
        conn,
        r#"{"type":"MESSAGE","payload":{"rawMessage":"   "}}"#,
    );
    assert!(
        room.take_frames(conn)
            .iter()
            .any(|f| f.contains("EMPTY_MESSAGE"))
    );
    // A second page connection (another tab) sees the room's history.
    let other = room.connect(T0 + 30);
    let handshake = room.take_frames(other).remove(0);
    assert!(handshake.contains("hi **bots**"), "{handshake}");
}

#[test]
fn older_history_is_served_from_memory() {
    let mut room = MockRoom::new("Demo", 4, 3, T0);
    let mut now = T0;
    while room.pair.stored.iter().filter(|m| m.to.is_none()).count() < 150 {
        now += 1_000;
        room.advance(now);
    }
    let conn = room.connect(now);
    // Edits and deletes take seqs too: the stored messages' seqs have gaps. Fake users' direct
    // messages to each other are not the page's to see.
    let stored: Vec<u64> = room
        .pair
        .stored
        .iter()
        .filter(|m| m.to.is_none())
        .map(|m| m.seq)
        .collect();
    let first = stored[stored.len() - 100];
    room.send(
        now,
        conn,
        &format!(r#"{{"type":"HISTORY_REQUEST","payload":{{"before":{first},"limit":20}}}}"#),
    );
    let page = room
        .take_frames(conn)
        .into_iter()
        .find_map(|f| match protocol::decode_server(&f) {
            Ok(ServerAction::History(h)) => Some(h),
            _ => None,
        })
        .expect("HISTORY");
    let seqs: Vec<u64> = page.messages.iter().filter_map(|m| m.seq).collect();
    assert_eq!(seqs, stored[stored.len() - 120..stored.len() - 100]);
    assert!(page.has_more);
}

#[test]
fn fake_users_sometimes_edit_or_delete_what_they_posted() {
    let frames = run(5, 30);
    let changes: Vec<protocol::MessageRecord> = frames
        .iter()
        .filter_map(|f| match protocol::decode_server(f) {
            Ok(ServerAction::MessageChanged(m)) => Some(m),
            _ => None,
        })
        .collect();
    assert!(changes.iter().any(|m| m.edited_at.is_some() && !m.deleted));
    assert!(
        changes
            .iter()
            .any(|m| m.deleted && m.raw_message.is_empty())
    );
}

#[test]
fn fake_users_react_to_what_others_say() {
    let frames = run(11, 20);
    let reacted = frames.iter().any(|f| {
        matches!(protocol::decode_server(f),
            Ok(ServerAction::MessageChanged(m)) if !m.reactions.is_empty())
    });
    assert!(reacted);
}

#[test]
fn fake_users_answer_each_other() {
    let frames = run(11, 20);
    let replied = frames.iter().any(|f| {
        matches!(protocol::decode_server(f),
            Ok(ServerAction::Message(m)) if m.reply_to.is_some())
    });
    assert!(replied);
}

#[test]
fn fake_users_type_before_they_post() {
    let mut room = MockRoom::new("Demo", 4, 3, T0);
    let conn = room.connect(T0);
    room.send(
        T0,
        conn,
        r#"{"type":"HANDSHAKE_USER_INFO","payload":{"protocolVersion":2}}"#,
    );
    let mut now = T0;
    let mut typed = false;
    while now < T0 + 60_000 && !typed {
        now += 250;
        room.advance(now);
        typed = room
            .take_frames(conn)
            .iter()
            .any(|f| matches!(protocol::decode_server(f), Ok(ServerAction::Typing(_))));
    }
    assert!(typed);
}

#[test]
fn fake_users_mention_someone_now_and_then() {
    let frames = run(11, 20);
    let mentioned = frames.iter().any(|f| {
        matches!(protocol::decode_server(f),
            Ok(ServerAction::Message(m)) if m.raw_message.starts_with('@'))
    });
    assert!(mentioned);
}

/// Fake users write to the page directly now and then, and answer what it writes to them,
/// directly; what they write to each other never reaches the page.
#[test]
fn fake_users_write_directly_and_answer_directly() {
    let mut room = MockRoom::new("Demo", 3, 5, T0);
    let (conn, me) = page_client(&mut room);
    let mut now = T0;
    let mut frames = Vec::new();
    let mut wrote = false;
    while now < T0 + 20 * 60_000 {
        now += 250;
        room.advance(now);
        let new = room.take_frames(conn);
        // The first fake user who writes to the page is written back to.
        if !wrote
            && let Some(from) = new.iter().find_map(|f| match protocol::decode_server(f) {
                Ok(ServerAction::Message(m)) if m.to.as_deref() == Some(me.as_str()) => {
                    Some(m.user_id)
                }
                _ => None,
            })
        {
            wrote = true;
            room.send(
                now,
                conn,
                &format!(
                    r#"{{"type":"MESSAGE","payload":{{"rawMessage":"hello you","nonce":"d1","to":"{from}"}}}}"#
                ),
            );
        }
        frames.extend(new);
    }
    let direct: Vec<protocol::MessageRecord> = frames
        .iter()
        .filter_map(|f| match protocol::decode_server(f) {
            Ok(ServerAction::Message(m)) if m.to.is_some() => Some(m),
            _ => None,
        })
        .collect();
    assert!(wrote, "no fake user wrote to the page in 20 minutes");
    assert!(
        direct
            .iter()
            .all(|m| m.user_id == me || m.to.as_deref() == Some(me.as_str())),
        "someone else's direct message reached the page"
    );
    let mine = direct
        .iter()
        .position(|m| m.nonce.as_deref() == Some("d1"))
        .expect("the page's direct message, echoed");
    let to = direct[mine].to.clone();
    assert!(
        direct[mine + 1..]
            .iter()
            .any(|m| Some(&m.user_id) == to.as_ref()),
        "the fake user did not answer"
    );
    // And they wrote to each other too, which the page never saw.
    assert!(
        room.pair
            .stored
            .iter()
            .any(|m| m.to.is_some() && m.to.as_deref() != Some(me.as_str()) && m.user_id != me)
    );
}

/// Direct messages stay a small part of a room's talk: fake users do not answer each other's
/// (two of them would, forever, and the room would fall silent).
#[test]
fn fake_users_talk_mostly_in_the_room() {
    let mut room = MockRoom::new("Demo", 4, 7, T0);
    let mut now = T0;
    while now < T0 + 30 * 60_000 {
        now += 1_000;
        room.advance(now);
    }
    let direct = room.pair.stored.iter().filter(|m| m.to.is_some()).count();
    let all = room.pair.stored.len();
    assert!(all >= 300, "{all}");
    assert!(direct * 5 < all, "{direct} of {all} are direct");
}

/// The page client, identified as a client of ours; returns (connection, its user id).
fn page_client(room: &mut MockRoom) -> (ConnectionId, protocol::UserId) {
    let conn = room.connect(T0);
    room.send(
        T0,
        conn,
        &format!(
            r#"{{"type":"HANDSHAKE_USER_INFO","payload":{{"protocolVersion":{}}}}}"#,
            protocol::PROTOCOL_VERSION
        ),
    );
    let me = room
        .take_frames(conn)
        .iter()
        .find_map(|f| match protocol::decode_server(f) {
            Ok(ServerAction::UserInfo(info)) => Some(info.user_id),
            _ => None,
        })
        .expect("an identity");
    (conn, me)
}

fn calls_of(frames: &[String]) -> Vec<protocol::CallSignal> {
    frames
        .iter()
        .filter_map(|f| match protocol::decode_server(f) {
            Ok(ServerAction::Call(s)) => Some(s),
            _ => None,
        })
        .collect()
}

/// A fake user called answers, and the page gets what its media needs in the right order:
/// the fake user's answer comes after the page's offer, through the page's media work.
#[test]
fn a_fake_user_answers_a_call_through_the_pages_media() {
    let mut room = MockRoom::new("Demo", 3, 5, T0);
    let (conn, _me) = page_client(&mut room);
    let bob = room
        .pair
        .session(room.bots[0].peer)
        .identity()
        .expect("id")
        .user_id
        .clone();
    room.send(
        T0,
        conn,
        &format!(r#"{{"type":"CALL","payload":{{"callId":"k1","kind":"ring","to":"{bob}","video":true}}}}"#),
    );
    let mut now = T0;
    let mut accepted = false;
    while now < T0 + 10_000 && !accepted {
        now += 250;
        room.advance(now);
        accepted = calls_of(&room.take_frames(conn))
            .iter()
            .any(|s| s.kind == protocol::CallKind::Accept);
    }
    assert!(accepted, "the fake user did not answer within 10 s");
    room.send(
        now,
        conn,
        r#"{"type":"CALL","payload":{"callId":"k1","kind":"offer","data":"v=0 page"}}"#,
    );
    let work = room.take_bot_media();
    assert!(
        matches!(&work[..], [BotMedia::Offer { bot: 0, sdp, .. }] if sdp == "v=0 page"),
        "{work:?}"
    );
    room.bot_signal(now, 0, protocol::CallKind::Answer, "v=0 bot".into());
    let heard = calls_of(&room.take_frames(conn));
    assert_eq!(heard.len(), 1);
    assert_eq!(heard[0].kind, protocol::CallKind::Answer);
    assert_eq!(heard[0].data.as_deref(), Some("v=0 bot"));
    // The page hangs up: the fake user's media is told to close, and the record is the page's.
    room.send(
        now + 5_000,
        conn,
        r#"{"type":"CALL","payload":{"callId":"k1","kind":"hangup"}}"#,
    );
    assert_eq!(room.take_bot_media(), [BotMedia::Ended { bot: 0 }]);
    assert_eq!(
        room.pair.stored.last().map(|m| m.raw.as_str()),
        Some("Call, 5 s")
    );
}

/// Someone who writes to a fake user directly is called back once, a little later.
#[test]
fn a_fake_user_calls_back_who_wrote_to_it() {
    let mut room = MockRoom::new("Demo", 3, 5, T0);
    let (conn, _me) = page_client(&mut room);
    let bob = room
        .pair
        .session(room.bots[0].peer)
        .identity()
        .expect("id")
        .user_id
        .clone();
    room.send(
        T0,
        conn,
        &format!(
            r#"{{"type":"MESSAGE","payload":{{"rawMessage":"hi","nonce":"d1","to":"{bob}"}}}}"#
        ),
    );
    let mut now = T0;
    let mut rings = Vec::new();
    while now < T0 + 3 * 60_000 {
        now += 250;
        room.advance(now);
        rings.extend(
            calls_of(&room.take_frames(conn))
                .into_iter()
                .filter(|s| s.kind == protocol::CallKind::Ring),
        );
    }
    assert_eq!(rings.len(), 1, "{rings:?}");
    assert_eq!(rings[0].from.as_deref(), Some(bob.as_str()));
}

#[test]
fn a_change_the_room_refuses_a_fake_user_lets_go() {
    let mut room = MockRoom::new("Demo", 4, 11, T0);
    let (conn, _) = page_client(&mut room);
    let mut now = T0;
    let mut refused = std::collections::BTreeSet::new();
    let mut said = 0;
    while now < T0 + 20 * 60_000 {
        now += 250;
        // The page says something every 20 s and takes it back a moment later: fake users
        // who react to it then are refused (MESSAGE_DELETED).
        if (now - T0) % 20_000 == 0 {
            said += 1;
            let text = format!(
                r#"{{"type":"MESSAGE","payload":{{"rawMessage":"taken back soon {said}","nonce":"p{said}"}}}}"#
            );
            room.send(now, conn, &text);
        }
        room.advance(now);
        for frame in room.take_frames(conn) {
            if let Ok(ServerAction::Message(m)) = protocol::decode_server(&frame)
                && m.nonce.as_deref().is_some_and(|n| n.starts_with('p'))
                && let Some(seq) = m.seq
            {
                let delete = format!(
                    r#"{{"type":"DELETE_MESSAGE","payload":{{"target":{seq},"nonce":"d{seq}"}}}}"#
                );
                room.send(now + 2_000, conn, &delete);
            }
        }
        for bot in &room.bots {
            for change in room.pair.session(bot.peer).changes() {
                if change.delivery != Delivery::Pending {
                    refused.insert(change.nonce.clone());
                }
            }
        }
    }
    let kept: usize = room
        .bots
        .iter()
        .map(|bot| room.pair.session(bot.peer).changes().len())
        .sum();
    assert!(
        refused.len() >= 3,
        "fake users were refused now and then: {refused:?}"
    );
    assert!(
        kept < refused.len(),
        "{kept} kept of {} refused",
        refused.len()
    );
}

#[test]
fn the_fake_moderator_removes_the_spammers_messages_and_the_page_sees_it() {
    let frames = run(7, 15);
    let messages: Vec<protocol::MessageRecord> = frames
        .iter()
        .filter_map(|f| match protocol::decode_server(f) {
            Ok(ServerAction::Message(m) | ServerAction::MessageChanged(m)) => Some(m),
            _ => None,
        })
        .collect();
    let spam: Vec<u64> = messages
        .iter()
        .filter(|m| script::SPAM.contains(&m.raw_message.as_str()))
        .filter_map(|m| m.seq)
        .collect();
    assert!(spam.len() >= 2, "spam now and then: {spam:?}");
    let removed: Vec<u64> = messages
        .iter()
        .filter(|m| m.removed)
        .filter_map(|m| m.seq)
        .collect();
    assert!(
        spam.iter().filter(|s| removed.contains(s)).count() >= 2,
        "the moderator removes it: spam {spam:?}, removed {removed:?}"
    );
    // Only spam is removed: the moderator's role is the room's, told in its handshake.
    assert!(removed.iter().all(|r| spam.contains(r)), "{removed:?}");
    let roles = frames
        .iter()
        .find_map(|f| match protocol::decode_server(f) {
            Ok(ServerAction::Handshake(h)) => Some(h.roles),
            _ => None,
        });
    assert_eq!(
        roles.map(|r| r.into_values().collect::<Vec<_>>()),
        Some(vec![protocol::Role::Moderator])
    );
}

#[test]
fn the_page_can_be_made_a_moderator_and_remove_a_fake_users_message() {
    let mut room = MockRoom::new("Demo", 4, 3, T0);
    let (conn, me) = page_client(&mut room);
    let mut now = T0;
    while room
        .pair
        .stored
        .iter()
        .all(|m| m.user_id == me || m.to.is_some())
    {
        now += 1_000;
        room.advance(now);
    }
    let target = room
        .pair
        .stored
        .iter()
        .find(|m| m.user_id != me && m.to.is_none())
        .map(|m| m.seq)
        .unwrap_or_default();
    let delete = |nonce: &str| {
        protocol::ClientAction::DeleteMessage(protocol::DeleteMessage {
            target,
            nonce: Some(nonce.to_owned()),
        })
        .to_json()
    };
    // A member: refused.
    room.take_frames(conn);
    room.send(now, conn, &delete("d1"));
    assert!(
        room.take_frames(conn)
            .iter()
            .any(|f| f.contains("NOT_YOUR_MESSAGE"))
    );
    // Made a moderator by the setting: told so, and the removal is taken.
    room.set_page_moderators(now, true);
    let told = room.take_frames(conn);
    assert!(
        told.iter().any(|f| matches!(protocol::decode_server(f),
            Ok(ServerAction::Role(r)) if r.user_id == me && r.role == Some(protocol::Role::Moderator))),
        "{told:?}"
    );
    room.send(now, conn, &delete("d2"));
    assert!(
        room.pair
            .stored
            .iter()
            .any(|m| m.seq == target && m.removed)
    );
    // The setting off: a member again.
    room.set_page_moderators(now, false);
    assert_eq!(room.pair.room.role_of(&me), None);
}
