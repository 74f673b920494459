//! The moderation log and reports: every moderation action and report is an event of the
//! room's log, stored before it is told, and told only to moderators and owners.

use super::direct_tests::identify;
use super::*;
use crate::testing::Pair;
use crate::wire::*;

use super::role_tests::{OLGA, refusals};

/// A room whose owner is Olga (from storage), with `config`: Olga, then Bob (made a
/// moderator) and Carol and Dave (members) on connections 1 to 4.
fn room(config: RoomConfig) -> (Pair, [(ConnectionId, UserId); 4]) {
    let mut pair = Pair::with(config, super::role_tests::owner_snapshot());
    let olga = pair.connect(1);
    pair.act(olga, identify(OLGA, "olga-token", None, true));
    let bob = pair.join_ours(2);
    let carol = pair.join_ours(3);
    let dave = pair.join_ours(4);
    pair.act(
        olga,
        ClientAction::SetRole(SetRole {
            user_id: bob.1.clone(),
            role: Some(Role::Moderator),
            nonce: None,
        }),
    );
    let all = [
        (olga, OLGA.to_owned()),
        (bob.0, bob.1),
        (carol.0, carol.1),
        (dave.0, dave.1),
    ];
    for (conn, _) in &all {
        pair.take(*conn);
    }
    (pair, all)
}

/// The `AUDIT` frames a connection got.
fn audits(pair: &mut Pair, conn: ConnectionId) -> Vec<Audit> {
    pair.take(conn)
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Audit(audit) => Some(audit),
            _ => None,
        })
        .collect()
}

fn report(target: Seq, reason: &str, nonce: &str) -> ClientAction {
    ClientAction::Report(Report {
        target,
        reason: reason.to_owned(),
        nonce: Some(nonce.to_owned()),
    })
}

fn ask_audit(nonce: &str) -> ClientAction {
    ClientAction::AuditRequest(AuditRequest {
        nonce: Some(nonce.to_owned()),
    })
}

fn seq_of(pair: &Pair, text: &str) -> Seq {
    pair.stored
        .iter()
        .find(|m| m.raw == text)
        .map_or(0, |m| m.seq)
}

#[test]
fn every_moderation_action_is_a_stored_event_told_only_to_moderators_and_owners() {
    let (mut pair, [olga, bob, carol, dave]) = room(RoomConfig::default());
    pair.say(carol.0, "spam spam");
    let spam = seq_of(&pair, "spam spam");
    pair.act(
        bob.0,
        ClientAction::DeleteMessage(DeleteMessage {
            target: spam,
            nonce: None,
        }),
    );
    let moderate = |kind, minutes, reason: Option<&str>| {
        ClientAction::Moderate(Moderate {
            kind,
            user_id: carol.1.clone(),
            minutes,
            reason: reason.map(str::to_owned),
            address: false,
            nonce: None,
        })
    };
    pair.act(bob.0, moderate(ModerationKind::TimeOut, Some(10), None));
    pair.act(bob.0, moderate(ModerationKind::EndTimeOut, None, None));
    pair.act(
        olga.0,
        ClientAction::SetRoom(SetRoom {
            settings: RoomSettings {
                topic: "Be kind".to_owned(),
                slow_mode_seconds: 0,
            },
            nonce: None,
        }),
    );
    pair.act(bob.0, moderate(ModerationKind::Ban, Some(60), Some("spam")));
    pair.act(bob.0, moderate(ModerationKind::Unban, None, None));

    // Stored, in the log's order, with who did what to whom and why.
    type Row = (
        AuditAction,
        UserId,
        Option<UserId>,
        Option<Seq>,
        Option<String>,
    );
    let stored: Vec<Row> = pair
        .audit
        .iter()
        .map(|e| {
            (
                e.action,
                e.by.clone(),
                e.user_id.clone(),
                e.target,
                e.reason.clone(),
            )
        })
        .collect();
    let c = Some(carol.1.clone());
    assert_eq!(
        stored,
        [
            (
                AuditAction::Moderator,
                OLGA.to_owned(),
                Some(bob.1.clone()),
                None,
                None
            ),
            (
                AuditAction::Remove,
                bob.1.clone(),
                c.clone(),
                Some(spam),
                None
            ),
            (AuditAction::TimeOut, bob.1.clone(), c.clone(), None, None),
            (
                AuditAction::EndTimeOut,
                bob.1.clone(),
                c.clone(),
                None,
                None
            ),
            (AuditAction::RoomSettings, OLGA.to_owned(), None, None, None),
            (
                AuditAction::Ban,
                bob.1.clone(),
                c.clone(),
                None,
                Some("spam".to_owned())
            ),
            (AuditAction::Unban, bob.1.clone(), c.clone(), None, None),
        ]
    );
    let seqs: Vec<Seq> = pair.audit.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > 0,
        "{seqs:?}"
    );
    assert!(seqs[1] > spam, "sequenced in the room's one log");
    // Told live to the moderator and the owner, as stored; to no member.
    for conn in [olga.0, bob.0] {
        let told: Vec<AuditEntry> = audits(&mut pair, conn)
            .into_iter()
            .filter(|a| a.live)
            .flat_map(|a| a.entries)
            .collect();
        assert_eq!(told, pair.audit[1..], "connection {conn:?}");
    }
    assert!(audits(&mut pair, dave.0).is_empty());
    // Asked for: the latest, newest first; a member is refused, naming the nonce.
    pair.act(bob.0, ask_audit("a1"));
    let answer = audits(&mut pair, bob.0);
    let mut newest_first = pair.audit.clone();
    newest_first.reverse();
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].entries, newest_first);
    assert_eq!(answer[0].nonce.as_deref(), Some("a1"));
    pair.act(dave.0, ask_audit("d1"));
    assert_eq!(
        refusals(&mut pair, dave.0),
        [(ErrorCode::NotAllowed, Some("d1".to_owned()))]
    );
}

#[test]
fn a_report_reaches_the_moderators_stays_open_until_resolved_and_is_bounded() {
    let config = RoomConfig {
        reports_per_person: 2,
        max_open_reports: 3,
        ..RoomConfig::default()
    };
    let (mut pair, [olga, bob, carol, dave]) = room(config);
    for text in ["one", "two", "three", "four"] {
        pair.say(olga.0, text);
    }
    pair.act(
        olga.0,
        ClientAction::Message(SendMessage {
            raw_message: "just for dave".to_owned(),
            to: Some(dave.1.clone()),
            ..SendMessage::default()
        }),
    );
    for (conn, _) in [olga.clone(), bob.clone(), carol.clone(), dave.clone()] {
        pair.take(conn);
    }
    let [one, two, three, four, direct] =
        ["one", "two", "three", "four", "just for dave"].map(|t| seq_of(&pair, t));

    // Carol reports "one": her report's entry answers her nonce; the moderators see it.
    pair.act(carol.0, report(one, "  rude  ", "r1"));
    let answer = audits(&mut pair, carol.0);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0].nonce.as_deref(), Some("r1"));
    let entry = answer[0].entries[0].clone();
    assert_eq!(
        (
            entry.action,
            entry.by.as_str(),
            entry.target,
            entry.reason.as_deref()
        ),
        (
            AuditAction::Report,
            carol.1.as_str(),
            Some(one),
            Some("rude")
        )
    );
    assert_eq!(entry.user_id.as_deref(), Some(OLGA));
    for conn in [olga.0, bob.0] {
        let told = audits(&mut pair, conn);
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].entries, std::slice::from_ref(&entry));
        assert_eq!(told[0].nonce, None);
    }
    assert!(
        audits(&mut pair, dave.0).is_empty(),
        "members do not see others' reports"
    );

    // Refused, each with the nonce: no reason, too long a one, the same message again, a
    // direct message, a message the room does not have.
    for (target, reason) in [
        (two, "   "),
        (two, &*"x".repeat(MAX_REASON_CHARS + 1)),
        (one, "again"),
        (direct, "dm"),
        (9_999, "nothing"),
    ] {
        pair.act(carol.0, report(target, reason, "bad"));
    }
    assert_eq!(
        refusals(&mut pair, carol.0),
        vec![(ErrorCode::InvalidReport, Some("bad".to_owned())); 5]
    );
    // Two open reports a person at most; three for the room.
    pair.act(carol.0, report(two, "spam", "r2"));
    pair.act(carol.0, report(three, "spam", "r3"));
    assert_eq!(
        refusals(&mut pair, carol.0),
        [(ErrorCode::InvalidReport, Some("r3".to_owned()))]
    );
    pair.act(dave.0, report(three, "spam", "d1"));
    pair.act(dave.0, report(four, "spam", "d2"));
    assert_eq!(
        refusals(&mut pair, dave.0),
        [(ErrorCode::InvalidReport, Some("d2".to_owned()))]
    );
    pair.act(bob.0, ask_audit("a1"));
    let answer = audits(&mut pair, bob.0).into_iter().find(|a| !a.live);
    let open: Vec<(UserId, Option<Seq>)> = answer
        .expect("an answer")
        .open_reports
        .into_iter()
        .map(|r| (r.by, r.target))
        .collect();
    assert_eq!(
        open,
        [
            (carol.1.clone(), Some(one)),
            (carol.1.clone(), Some(two)),
            (dave.1.clone(), Some(three)),
        ]
    );

    // Only a moderator or owner resolves; then the report is closed, for good.
    let first = entry.seq;
    let resolve = |report, nonce: &str| {
        ClientAction::ResolveReport(ResolveReport {
            report,
            nonce: Some(nonce.to_owned()),
        })
    };
    pair.act(dave.0, resolve(first, "d3"));
    assert_eq!(
        refusals(&mut pair, dave.0),
        [(ErrorCode::NotAllowed, Some("d3".to_owned()))]
    );
    pair.act(bob.0, resolve(first, "b1"));
    let resolved = pair.audit.last().cloned().expect("stored");
    assert_eq!(
        (resolved.action, resolved.report, resolved.by.as_str()),
        (AuditAction::Resolve, Some(first), bob.1.as_str())
    );
    pair.act(bob.0, resolve(first, "b2"));
    assert_eq!(
        refusals(&mut pair, bob.0),
        [(ErrorCode::InvalidReport, Some("b2".to_owned()))]
    );
    // Room for one more now: Dave's second report is taken.
    pair.act(dave.0, report(four, "spam", "d4"));
    assert!(refusals(&mut pair, dave.0).is_empty());

    // A restart from what storage holds keeps the open reports and the log, and numbers on
    // after it.
    let mut open: Vec<AuditEntry> = pair
        .audit
        .iter()
        .filter(|e| e.action == AuditAction::Report)
        .filter(|r| {
            !pair
                .audit
                .iter()
                .any(|e| e.action == AuditAction::Resolve && e.report == Some(r.seq))
        })
        .cloned()
        .collect();
    open.sort_by_key(|r| r.seq);
    let snapshot = RoomSnapshot {
        users: pair.users.clone(),
        audit: pair.audit.clone(),
        open_reports: open.clone(),
        ..RoomSnapshot::default()
    };
    let latest = pair.audit.last().map_or(0, |e| e.seq);
    let restarted = Room::new(RoomConfig::default(), snapshot, [2; 32]);
    assert_eq!(restarted.latest_seq(), latest);
    assert_eq!(restarted.audit_entries().count(), pair.audit.len());
    assert_eq!(open.len(), 3);
}
