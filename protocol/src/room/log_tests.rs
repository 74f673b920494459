//! One room on two nodes: two engines that share one log (as a cluster's stream), each with its
//! own clients. Each node checks what its clients ask and appends it; the log numbers it; both
//! nodes apply every event in the log's order. Whatever each node accepted, and in whatever
//! order the log took it, both end as one room.

use proptest::prelude::*;

use super::*;
use crate::markdown::emoji_table;
use crate::wire::*;

/// A node: an engine and what its connections were sent.
struct Node {
    room: Room,
    open: Vec<ConnectionId>,
    inbox: HashMap<ConnectionId, Vec<ServerAction>>,
    /// How much of the log it has applied.
    applied: usize,
}

/// Two nodes of one room and the log they share: (event, the node that appended it).
struct Cluster {
    nodes: Vec<Node>,
    log: Vec<(LogEvent, usize)>,
    now: Millis,
}

impl Cluster {
    fn new() -> Self {
        Self::starting_from(RoomSnapshot::default())
    }

    /// Two nodes on what storage holds (each reads it when it starts).
    fn starting_from(snapshot: RoomSnapshot) -> Self {
        let config = RoomConfig {
            rate_burst: 100_000,
            rate_per_second: 100_000,
            shared_log: true,
            ..RoomConfig::default()
        };
        // Each node its own generator: ids made on one never collide with the other's.
        let nodes = [[1; 32], [2; 32]]
            .into_iter()
            .map(|seed| Node {
                room: Room::new(config.clone(), snapshot.clone(), seed),
                open: Vec::new(),
                inbox: HashMap::new(),
                applied: 0,
            })
            .collect();
        Self {
            nodes,
            log: Vec::new(),
            now: crate::testing::Pair::T0,
        }
    }

    /// The log's seq of entry `index`: a stream that also numbers other things skips some.
    fn seq_of(index: usize) -> Seq {
        3 * (index as Seq + 1)
    }

    /// Carries out what node `n` asked: sends reach its connections; events are appended to
    /// the log (not applied yet); signals reach the other nodes at once.
    fn append(&mut self, n: usize) {
        let mut relayed = Vec::new();
        let node = &mut self.nodes[n];
        while let Some(effect) = node.room.poll_effect() {
            match effect {
                Effect::Send { to, action } => node.inbox.entry(to).or_default().push(action),
                Effect::Multicast { to, action } => {
                    for conn in to {
                        node.inbox.entry(conn).or_default().push(action.clone());
                    }
                }
                Effect::Close { to, .. } => {
                    node.open.retain(|c| *c != to);
                    node.room.handle_disconnect(self.now, to);
                }
                Effect::Broadcast(action) => {
                    for conn in &node.open {
                        node.inbox.entry(*conn).or_default().push(action.clone());
                    }
                }
                Effect::PersistMessage(m) => self.log.push((LogEvent::Message(m), n)),
                Effect::PersistChange(c) => self.log.push((LogEvent::Change(c), n)),
                Effect::PersistAudit(e) => self.log.push((LogEvent::Audit(e), n)),
                Effect::PersistUser(u) => self.log.push((LogEvent::User(u), n)),
                Effect::PersistRole { user_id, role, by } => {
                    self.log.push((LogEvent::Role { user_id, role, by }, n));
                }
                Effect::PersistSettings { settings, by } => {
                    self.log.push((LogEvent::Settings { settings, by }, n));
                }
                Effect::Relay(signal) => relayed.push(signal),
                Effect::LoadHistory { .. }
                | Effect::LoadConversations { .. }
                | Effect::Search(_) => {}
            }
        }
        for signal in relayed {
            for m in (0..self.nodes.len()).filter(|m| *m != n) {
                self.nodes[m].room.handle_relayed(self.now, signal.clone());
                self.append(m);
            }
        }
    }

    /// Every node appends what it asked for, then applies the log to its end, until quiet.
    fn run(&mut self) {
        loop {
            for n in 0..self.nodes.len() {
                self.append(n);
            }
            let mut any = false;
            for n in 0..self.nodes.len() {
                while self.nodes[n].applied < self.log.len() {
                    let index = self.nodes[n].applied;
                    let (event, from) = self.log[index].clone();
                    let now = self.now;
                    let room = &mut self.nodes[n].room;
                    room.handle_logged(now, Self::seq_of(index), event, from == n);
                    self.nodes[n].applied += 1;
                    any = true;
                }
            }
            if !any {
                return;
            }
        }
    }

    /// Node `n` alone applies the log to its end (the other lags behind).
    fn apply(&mut self, n: usize) {
        self.append(n);
        while self.nodes[n].applied < self.log.len() {
            let index = self.nodes[n].applied;
            let (event, from) = self.log[index].clone();
            let now = self.now;
            self.nodes[n]
                .room
                .handle_logged(now, Self::seq_of(index), event, from == n);
            self.nodes[n].applied += 1;
            self.append(n);
        }
    }

    /// Every node tells the others who is online through it (a cluster's heartbeat).
    fn tell_presence(&mut self) {
        for n in 0..self.nodes.len() {
            let online = self.nodes[n].room.online_here();
            for m in (0..self.nodes.len()).filter(|m| *m != n) {
                let now = self.now;
                let node = format!("node{n}");
                self.nodes[m]
                    .room
                    .handle_node_presence(now, &node, online.clone());
            }
        }
        self.run();
    }

    /// Ends the presence tick on every node.
    fn tick(&mut self) {
        self.now += 10_000;
        for node in &mut self.nodes {
            node.room.handle_timeout(self.now);
        }
        self.run();
    }

    fn connect(&mut self, n: usize, id: u64) -> ConnectionId {
        let conn = ConnectionId(id);
        self.nodes[n].open.push(conn);
        self.nodes[n].room.handle_connect(self.now, conn);
        self.run();
        conn
    }

    /// Action `action` on node `n`'s connection `conn`, without running the log.
    fn ask(&mut self, n: usize, conn: ConnectionId, action: ClientAction) {
        self.nodes[n].room.handle_action(self.now, conn, action);
        self.append(n);
    }

    fn act(&mut self, n: usize, conn: ConnectionId, action: ClientAction) {
        self.ask(n, conn, action);
        self.run();
    }

    fn take(&mut self, n: usize, conn: ConnectionId) -> Vec<ServerAction> {
        self.nodes[n].inbox.remove(&conn).unwrap_or_default()
    }

    /// A new person on node `n`: their connection, id and token.
    fn join(&mut self, n: usize, id: u64) -> (ConnectionId, UserId, String) {
        let conn = self.connect(n, id);
        self.act(n, conn, identify(None, None));
        let info = self
            .take(n, conn)
            .into_iter()
            .find_map(|a| match a {
                ServerAction::UserInfo(info) => Some(info),
                _ => None,
            })
            .expect("a new identity");
        (conn, info.user_id, info.token.expect("a token"))
    }

    fn disconnect(&mut self, n: usize, conn: ConnectionId) {
        self.nodes[n].open.retain(|c| *c != conn);
        self.nodes[n].room.handle_disconnect(self.now, conn);
        self.run();
    }
}

fn identify(user_id: Option<UserId>, token: Option<String>) -> ClientAction {
    ClientAction::HandshakeUserInfo(HandshakeUserInfo {
        user_id,
        token,
        since: None,
        protocol_version: Some(crate::PROTOCOL_VERSION),
    })
}

fn say(text: &str, nonce: &str, to: Option<&UserId>) -> ClientAction {
    ClientAction::Message(SendMessage {
        raw_message: text.to_owned(),
        user_id: None,
        nonce: Some(nonce.to_owned()),
        reply_to: None,
        to: to.cloned(),
    })
}

fn react(target: Seq, emoji: &str, nonce: &str) -> ClientAction {
    ClientAction::React(React {
        target,
        emoji: emoji.to_owned(),
        on: true,
        nonce: Some(nonce.to_owned()),
    })
}

/// The messages a connection was sent, as (seq, text).
fn messages(actions: &[ServerAction]) -> Vec<(Option<Seq>, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            ServerAction::Message(m) => Some((m.seq, m.raw_message.clone())),
            _ => None,
        })
        .collect()
}

/// The last state of message `seq` a connection was told of.
fn last_state(actions: &[ServerAction], seq: Seq) -> Option<MessageRecord> {
    actions.iter().rev().find_map(|a| match a {
        ServerAction::Message(m) | ServerAction::MessageChanged(m) if m.seq == Some(seq) => {
            Some(m.clone())
        }
        _ => None,
    })
}

#[test]
fn people_on_two_nodes_see_every_message_once_in_one_order_with_the_logs_seqs() {
    let mut c = Cluster::new();
    let (a, _, _) = c.join(0, 1);
    let (b, _, _) = c.join(1, 2);
    c.take(0, a);
    c.take(1, b);
    // Both nodes accept before either hears the log: the log decides the order.
    c.ask(0, a, say("one", "a1", None));
    c.ask(1, b, say("two", "b1", None));
    c.ask(0, a, say("three", "a2", None));
    c.run();
    let at_a = messages(&c.take(0, a));
    let at_b = messages(&c.take(1, b));
    assert_eq!(at_a.len(), 3, "{at_a:?}");
    assert_eq!(at_a, at_b, "one order, the same seqs, on both nodes");
    let seqs: Vec<Seq> = at_a.iter().filter_map(|m| m.0).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        seqs.iter().all(|s| s % 3 == 0),
        "the log's own numbers: {seqs:?}"
    );
    assert_eq!(c.nodes[0].room.latest_seq(), c.nodes[1].room.latest_seq());
}

#[test]
fn a_client_resuming_on_a_node_behind_the_log_gets_the_rest_once_without_a_gap() {
    let mut c = Cluster::new();
    let (a, ann, ann_token) = c.join(0, 1);
    let (b, _, _) = c.join(1, 2);
    c.take(0, a);
    // Bob writes through node 2; node 1 applies it (Ann reads it), node 2 lags behind.
    for i in 0..3 {
        c.ask(1, b, say(&format!("burst {i}"), &format!("b{i}"), None));
    }
    c.apply(0);
    let seen = messages(&c.take(0, a));
    assert_eq!(seen.len(), 3, "{seen:?}");
    let since = seen[2].0.expect("a seq");
    assert!(c.nodes[1].room.latest_seq() < since, "node 2 is behind");

    // Node 1 dies (nothing more is heard from it); Ann resumes on node 2 from the last
    // message she read, before node 2 has caught up.
    let again = ConnectionId(3);
    c.nodes[1].open.push(again);
    c.nodes[1].room.handle_connect(c.now, again);
    let resume = HandshakeUserInfo {
        since: Some(since),
        ..match identify(Some(ann.clone()), Some(ann_token.clone())) {
            ClientAction::HandshakeUserInfo(info) => info,
            _ => unreachable!(),
        }
    };
    c.nodes[1].room.handle_action(
        c.now,
        again,
        ClientAction::HandshakeUserInfo(resume.clone()),
    );
    c.append(1);
    let got = c.take(1, again);
    let answer = got.iter().find_map(|x| match x {
        ServerAction::Resume(r) => Some(r),
        _ => None,
    });
    assert!(
        answer.is_some_and(|r| !r.gap_too_big && r.messages.is_empty()),
        "no gap: the rest comes as node 2 catches up: {got:?}"
    );
    // Node 2 catches up and Bob writes on: Ann gets what she had not read, once.
    c.act(1, b, say("after", "b3", None));
    let after: Vec<String> = messages(&c.take(1, again))
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    assert_eq!(after, ["after"], "what she read is not sent again");
    let bob_saw = messages(&c.take(1, b));
    assert_eq!(bob_saw.len(), 4, "everyone else gets it all: {bob_saw:?}");

    // A since further ahead than a node may lag (a room reset, a confused client): the room
    // does not know it, and says so.
    let far = ConnectionId(4);
    c.nodes[1].open.push(far);
    c.nodes[1].room.handle_connect(c.now, far);
    let latest = c.nodes[1].room.latest_seq();
    let beyond = HandshakeUserInfo {
        since: Some(latest + RoomConfig::default().max_resume as Seq + 1),
        ..resume
    };
    c.act(1, far, ClientAction::HandshakeUserInfo(beyond));
    let got = c.take(1, far);
    assert!(
        got.iter()
            .any(|x| matches!(x, ServerAction::Resume(r) if r.gap_too_big)),
        "{got:?}"
    );
}

#[test]
fn an_identity_made_on_one_node_works_on_the_other_with_its_name() {
    let mut c = Cluster::new();
    let (a, alice, token) = c.join(0, 1);
    let (b, _, _) = c.join(1, 2);
    c.act(
        0,
        a,
        ClientAction::NameChange(ChangeName {
            user_id: None,
            name: "Alice".into(),
        }),
    );
    c.tick();
    let told = c.take(1, b);
    assert!(
        told.iter().any(|x| matches!(x, ServerAction::Presence(p)
            if p.names.get(&alice).map(String::as_str) == Some("Alice"))),
        "the other node's people learn the new name: {told:?}"
    );
    // Alice comes back through the other node with her token: the same identity.
    c.disconnect(0, a);
    let a2 = c.connect(1, 3);
    c.act(1, a2, identify(Some(alice.clone()), Some(token)));
    let back = c.take(1, a2);
    assert!(
        back.iter().any(|x| matches!(x, ServerAction::UserInfo(i)
            if i.user_id == alice && i.name == "Alice" && i.token.is_none())),
        "{back:?}"
    );
    assert!(
        !back.iter().any(|x| matches!(x, ServerAction::Error(_))),
        "{back:?}"
    );
    // A wrong token is still refused there.
    let a3 = c.connect(1, 4);
    c.act(1, a3, identify(Some(alice.clone()), Some("0".repeat(64))));
    assert!(
        c.take(1, a3)
            .iter()
            .any(|x| matches!(x, ServerAction::Error(e)
            if e.code == ErrorCode::IdentityRejected))
    );
}

#[test]
fn a_direct_message_reaches_only_its_two_people_whichever_node_they_are_on() {
    let mut c = Cluster::new();
    let (a, _, _) = c.join(0, 1);
    let (b, bob, _) = c.join(1, 2);
    let (c0, _, _) = c.join(0, 3);
    let (c1, _, _) = c.join(1, 4);
    for (n, conn) in [(0, a), (1, b), (0, c0), (1, c1)] {
        c.take(n, conn);
    }
    c.act(0, a, say("just us", "d1", Some(&bob)));
    assert_eq!(messages(&c.take(0, a)).len(), 1, "its author");
    assert_eq!(
        messages(&c.take(1, b)).len(),
        1,
        "its reader, on the other node"
    );
    assert!(messages(&c.take(0, c0)).is_empty(), "a third person here");
    assert!(messages(&c.take(1, c1)).is_empty(), "a third person there");
}

#[test]
fn a_message_sent_through_both_nodes_at_once_is_kept_once() {
    let mut c = Cluster::new();
    let (a, alice, token) = c.join(0, 1);
    let a2 = c.connect(1, 2);
    c.act(1, a2, identify(Some(alice), Some(token)));
    let (b, _, _) = c.join(1, 3);
    c.take(0, a);
    c.take(1, a2);
    c.take(1, b);
    // The same nonce through both connections (a resend after a reconnect, say).
    c.ask(0, a, say("once", "n1", None));
    c.ask(1, a2, say("once", "n1", None));
    c.run();
    for (n, conn) in [(0, a), (1, a2), (1, b)] {
        let got = messages(&c.take(n, conn));
        assert_eq!(got.len(), 1, "node {n}: {got:?}");
    }
}

#[test]
fn a_delete_and_an_edit_accepted_at_once_on_two_nodes_end_the_same_everywhere() {
    for delete_first in [true, false] {
        let mut c = Cluster::new();
        let (a, alice, token) = c.join(0, 1);
        let a2 = c.connect(1, 2);
        c.act(1, a2, identify(Some(alice), Some(token)));
        c.act(0, a, say("draft", "m", None));
        let seq = messages(&c.take(0, a))[0].0.expect("a seq");
        let edit = super::tests::edit(seq, "final", "e");
        let delete = super::tests::delete(seq, "d");
        if delete_first {
            c.ask(0, a, delete);
            c.ask(1, a2, edit);
        } else {
            c.ask(1, a2, edit);
            c.ask(0, a, delete);
        }
        c.run();
        let here = last_state(&c.take(0, a), seq).expect("told on node 0");
        let there = last_state(&c.take(1, a2), seq).expect("told on node 1");
        assert!(here.deleted && here.raw_message.is_empty(), "{here:?}");
        assert_eq!(
            (here.deleted, here.raw_message.as_str(), here.changed_seq),
            (there.deleted, there.raw_message.as_str(), there.changed_seq),
        );
    }
}

proptest! {
    /// Reactions accepted on two nodes at once, past the cap between them, in any order the
    /// log takes them: both nodes end with the same reactions, never more than the cap.
    #[test]
    fn reactions_past_the_cap_from_two_nodes_end_the_same_everywhere(
        order in proptest::collection::vec(any::<bool>(), 2 * MAX_REACTIONS),
    ) {
        let mut c = Cluster::new();
        let (a, _, _) = c.join(0, 1);
        let (b, _, _) = c.join(1, 2);
        c.act(0, a, say("react to me", "m", None));
        let seq = messages(&c.take(0, a))[0].0.expect("a seq");
        let emoji: Vec<&str> = emoji_table().iter().map(|(_, e)| *e).take(2 * MAX_REACTIONS).collect();
        // Each node's people ask for different emoji; the log interleaves them as `order` says.
        let (mut here, mut there) = (0, MAX_REACTIONS);
        for on_first in order {
            let (n, conn, i) = if on_first { (0, a, &mut here) } else { (1, b, &mut there) };
            if *i < 2 * MAX_REACTIONS && (n == 1 || *i < MAX_REACTIONS) {
                c.ask(n, conn, react(seq, emoji[*i], &format!("r{i}")));
                *i += 1;
            }
        }
        c.run();
        let at_a = last_state(&c.take(0, a), seq).expect("told on node 0");
        let at_b = last_state(&c.take(1, b), seq).expect("told on node 1");
        prop_assert!(at_a.reactions.len() <= MAX_REACTIONS);
        prop_assert_eq!(&at_a.reactions, &at_b.reactions);
        prop_assert_eq!(at_a.changed_seq, at_b.changed_seq);
    }
}

#[test]
fn an_event_the_log_refuses_is_refused_to_its_asker_and_one_it_holds_already_is_not() {
    let mut c = Cluster::new();
    let (a, _, _) = c.join(0, 1);
    c.take(0, a);
    c.ask(0, a, say("lost", "n1", None));
    let (lost, _) = c.log.pop().expect("appended");
    c.nodes[0].room.handle_not_logged(c.now, lost, false);
    c.append(0);
    let told = c.take(0, a);
    assert!(
        matches!(&told[..], [ServerAction::Error(e)]
            if e.code == ErrorCode::StorageFailed && e.nonce.as_deref() == Some("n1")),
        "{told:?}"
    );
    // The log already holds this one (sent through another node): no refusal, and nothing
    // waits for it here any more.
    c.ask(0, a, say("twice", "n2", None));
    let (held, _) = c.log.pop().expect("appended");
    c.nodes[0].room.handle_not_logged(c.now, held, true);
    c.run();
    assert!(c.take(0, a).is_empty());
    assert!(c.nodes[0].room.pending.is_empty());
    // Both nonces are free: sent again, each is kept.
    c.act(0, a, say("lost", "n1", None));
    c.act(0, a, say("twice", "n2", None));
    assert_eq!(messages(&c.take(0, a)).len(), 2);
}

#[test]
fn a_role_set_on_one_node_holds_on_the_other_and_its_moderator_removes_there() {
    let mut c = Cluster::starting_from(super::role_tests::owner_snapshot());
    let o = c.connect(0, 1);
    c.act(
        0,
        o,
        identify(Some("olga".into()), Some("olga-token".into())),
    );
    let (b, bob, _) = c.join(1, 2);
    let (m, _, _) = c.join(0, 3);
    c.run();
    c.take(1, b);
    c.take(0, m);
    c.act(
        0,
        o,
        ClientAction::SetRole(SetRole {
            user_id: bob.clone(),
            role: Some(Role::Moderator),
            nonce: None,
        }),
    );
    c.run();
    assert!(
        c.take(1, b)
            .iter()
            .any(|x| matches!(x, ServerAction::Role(r)
            if r.user_id == bob && r.role == Some(Role::Moderator))),
        "told on the other node"
    );
    assert_eq!(c.nodes[1].room.role_of(&bob), Some(Role::Moderator));
    // The moderator, on node 1, removes a member's message written on node 0.
    c.act(0, m, say("spam", "m1", None));
    let seq = messages(&c.take(1, b))[0].0.expect("numbered");
    c.act(
        1,
        b,
        ClientAction::DeleteMessage(DeleteMessage {
            target: seq,
            nonce: Some("rm".into()),
        }),
    );
    c.run();
    let seen = last_state(&c.take(0, m), seq).expect("told");
    assert!(seen.removed && seen.raw_message.is_empty(), "{seen:?}");
    // A time-out given on node 1 holds on node 0, where its member is.
    let member = c.nodes[0]
        .room
        .connections
        .get(&m)
        .and_then(|x| x.user.clone())
        .expect("identified");
    c.act(
        1,
        b,
        ClientAction::Moderate(Moderate {
            kind: ModerationKind::TimeOut,
            user_id: member.clone(),
            minutes: Some(5),
            reason: None,
            address: false,
            nonce: None,
        }),
    );
    c.run();
    let told = c.take(0, m);
    assert!(
        told.iter().any(|x| matches!(x, ServerAction::Moderated(d)
            if d.user_id == member && d.until.is_some())),
        "{told:?}"
    );
    c.act(0, m, say("more spam", "m2", None));
    assert!(
        c.take(0, m)
            .iter()
            .any(|x| matches!(x, ServerAction::Error(e)
            if e.code == ErrorCode::TimedOut)),
        "refused on the member's own node"
    );
    // A kick on node 1 closes the member's connection on node 0 (where the heartbeat says
    // they are), saying why.
    c.tell_presence();
    c.take(0, m);
    c.act(
        1,
        b,
        ClientAction::Moderate(Moderate {
            kind: ModerationKind::Kick,
            user_id: member.clone(),
            minutes: None,
            reason: Some("enough".into()),
            address: false,
            nonce: None,
        }),
    );
    c.run();
    assert!(
        c.take(0, m)
            .iter()
            .any(|x| matches!(x, ServerAction::Moderated(d)
            if d.kind == ModerationKind::Kick && d.reason.as_deref() == Some("enough"))),
        "told why on its own node"
    );
    assert!(!c.nodes[0].open.contains(&m), "closed there");
}

#[test]
fn a_report_on_one_node_reaches_the_moderator_on_the_other_who_resolves_it_there() {
    let mut c = Cluster::starting_from(super::role_tests::owner_snapshot());
    // The owner on node 1; a member who writes and one who reports on node 0.
    let o = c.connect(1, 1);
    c.act(
        1,
        o,
        identify(Some("olga".into()), Some("olga-token".into())),
    );
    let (w, _, _) = c.join(0, 2);
    let (r, reporter, _) = c.join(0, 3);
    c.act(0, w, say("spam", "w1", None));
    c.run();
    let seq = messages(&c.take(0, r))[0].0.expect("numbered");
    for n in [0, 1] {
        for conn in c.nodes[n].open.clone() {
            c.take(n, conn);
        }
    }
    c.act(
        0,
        r,
        ClientAction::Report(Report {
            target: seq,
            reason: "spam".into(),
            nonce: Some("r1".into()),
        }),
    );
    c.run();
    let audits = |actions: Vec<ServerAction>| -> Vec<Audit> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                ServerAction::Audit(audit) => Some(audit),
                _ => None,
            })
            .collect()
    };
    // The reporter is answered on their node; the owner is told on hers.
    let answered = audits(c.take(0, r));
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].nonce.as_deref(), Some("r1"));
    let told = audits(c.take(1, o));
    assert_eq!(told.len(), 1, "{told:?}");
    let report = told[0].entries[0].clone();
    assert_eq!(
        (report.action, report.by.as_str(), report.target),
        (AuditAction::Report, reporter.as_str(), Some(seq))
    );
    assert!(report.seq > seq, "numbered by the shared log");
    // Both nodes hold it open; resolved on node 1, it is closed on both.
    for n in [0, 1] {
        assert_eq!(c.nodes[n].room.open_reports.len(), 1, "node {n}");
    }
    c.act(
        1,
        o,
        ClientAction::ResolveReport(ResolveReport {
            report: report.seq,
            nonce: None,
        }),
    );
    c.run();
    for n in [0, 1] {
        assert!(c.nodes[n].room.open_reports.is_empty(), "node {n}");
        let actions: Vec<AuditAction> = c.nodes[n].room.audit_entries().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [AuditAction::Report, AuditAction::Resolve],
            "node {n}"
        );
    }
}

#[test]
fn log_events_travel_between_nodes_as_json_unchanged() {
    let message = StoredMessage {
        seq: 7,
        id: "abc".into(),
        user_id: "u1".into(),
        html: "<p>hi</p>\n".into(),
        raw: "hi".into(),
        timestamp: 1,
        nonce: Some("n".into()),
        reply_to: Some(3),
        to: Some("u2".into()),
        call: Some(CallRecord {
            outcome: CallOutcome::Answered,
            secs: 5,
        }),
        ..StoredMessage::default()
    };
    let events = [
        LogEvent::Message(message),
        LogEvent::Change(StoredChange {
            seq: 8,
            target: 7,
            user_id: "u1".into(),
            at: 2,
            kind: ChangeKind::React {
                emoji: "👍".into(),
                on: true,
            },
        }),
        LogEvent::User(UserRecord {
            id: "u1".into(),
            name: "Ann".into(),
            token_hash: "00".into(),
            joined_at: Some(1),
            last_seen: None,
            role: None,
            timed_out_until: None,
            ban: None,
        }),
        LogEvent::Role {
            user_id: "u1".into(),
            role: Some(Role::Moderator),
            by: "u0".into(),
        },
    ];
    for event in events {
        let json = event.to_json();
        assert_eq!(
            LogEvent::from_json(json.as_bytes()).ok(),
            Some(event),
            "{json}"
        );
    }
    assert!(LogEvent::from_json(b"{\"event\":\"message\"}").is_err());
}

/// The people a PRESENCE frame says came online and went offline.
fn presence(actions: &[ServerAction]) -> (Vec<UserId>, Vec<UserId>) {
    let (mut joined, mut left) = (Vec::new(), Vec::new());
    for action in actions {
        if let ServerAction::Presence(p) = action {
            joined.extend(p.joined.iter().map(|u| u.user_id.clone()));
            left.extend(p.left.iter().map(|u| u.user_id.clone()));
        }
    }
    (joined, left)
}

#[test]
fn someone_online_through_one_node_is_online_on_every_node_until_no_node_has_them() {
    let mut c = Cluster::new();
    let (b, _, _) = c.join(1, 2);
    c.tick();
    c.take(1, b);
    let (a, alice, token) = c.join(0, 1);
    c.tell_presence();
    c.tick();
    assert_eq!(
        presence(&c.take(1, b)).0,
        vec![alice.clone()],
        "told as come online"
    );
    // A newcomer to node 1 finds her among those online.
    let newcomer = c.connect(1, 3);
    let handshake = c.take(1, newcomer);
    assert!(
        matches!(handshake.first(), Some(ServerAction::Handshake(h))
            if h.online.as_ref().is_some_and(|o| o.contains(&alice))),
        "{handshake:?}"
    );
    // Online through both nodes: leaving one keeps her online.
    let a2 = c.connect(1, 4);
    c.act(1, a2, identify(Some(alice.clone()), Some(token.clone())));
    c.disconnect(0, a);
    c.tell_presence();
    c.tick();
    assert_eq!(
        presence(&c.take(1, b)),
        (vec![], vec![]),
        "still online through node 1"
    );
    // Her last connection closes: offline everywhere.
    c.disconnect(1, a2);
    c.tell_presence();
    c.tick();
    assert_eq!(presence(&c.take(1, b)).1, vec![alice.clone()]);
    // Back through node 0, which then dies: once its host stops hearing from it, she is
    // offline on node 1, last seen then.
    let a3 = c.connect(0, 5);
    c.act(0, a3, identify(Some(alice.clone()), Some(token)));
    c.tell_presence();
    c.tick();
    assert_eq!(presence(&c.take(1, b)).0, vec![alice.clone()]);
    c.nodes[1]
        .room
        .handle_node_presence(c.now, "node0", Vec::new());
    c.tick();
    let told = c.take(1, b);
    assert_eq!(presence(&told).1, vec![alice.clone()], "{told:?}");
    let last_seen = told.iter().find_map(|x| match x {
        ServerAction::Presence(p) => p.left.first().and_then(|u| u.last_seen),
        _ => None,
    });
    assert!(last_seen.is_some(), "{told:?}");
}

#[test]
fn typing_is_heard_on_the_other_node_by_whoever_may_hear_it() {
    let mut c = Cluster::new();
    let (a, _, _) = c.join(0, 1);
    let (b, bob, _) = c.join(1, 2);
    let (c1, _, _) = c.join(1, 3);
    c.tell_presence();
    for (n, conn) in [(0, a), (1, b), (1, c1)] {
        c.take(n, conn);
    }
    let typing =
        |to: Option<&UserId>| ClientAction::Typing(crate::wire::Typing { to: to.cloned() });
    let heard = |actions: Vec<ServerAction>| -> Vec<bool> {
        actions
            .into_iter()
            .filter_map(|x| match x {
                ServerAction::Typing(t) => Some(t.direct),
                _ => None,
            })
            .collect()
    };
    c.act(0, a, typing(None));
    assert_eq!(
        heard(c.take(1, b)),
        vec![false],
        "typing in the room crosses nodes"
    );
    assert_eq!(heard(c.take(1, c1)), vec![false]);
    c.act(0, a, typing(Some(&bob)));
    assert_eq!(heard(c.take(1, b)), vec![true], "to Bob, on the other node");
    assert!(heard(c.take(1, c1)).is_empty(), "not to a third person");
    assert!(heard(c.take(0, a)).is_empty(), "never to the one typing");
}

fn call(id: &str, kind: CallKind) -> CallSignal {
    CallSignal::new(id, kind)
}

/// One call signal as a connection got it: (kind, from, data, reason).
type Heard = (CallKind, Option<UserId>, Option<String>, Option<CallEnd>);

/// The call signals a connection was sent.
fn calls(actions: &[ServerAction]) -> Vec<Heard> {
    actions
        .iter()
        .filter_map(|x| match x {
            ServerAction::Call(c) => Some((c.kind, c.from.clone(), c.data.clone(), c.reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_crosses_nodes_ring_accept_offer_answer_candidates_and_its_record() {
    let mut c = Cluster::new();
    let (a, alice, _) = c.join(0, 1);
    let (b, bob, _) = c.join(1, 2);
    let (third, _, _) = c.join(1, 3);
    c.tell_presence();
    for (n, conn) in [(0, a), (1, b), (1, third)] {
        c.take(n, conn);
    }
    let mut ring = call("c1", CallKind::Ring);
    ring.to = Some(bob.clone());
    c.act(0, a, ClientAction::Call(ring));
    let rung = calls(&c.take(1, b));
    assert_eq!(
        rung,
        vec![(CallKind::Ring, Some(alice.clone()), None, None)]
    );
    assert!(
        calls(&c.take(1, third)).is_empty(),
        "nobody else hears the ring"
    );
    c.act(1, b, ClientAction::Call(call("c1", CallKind::Accept)));
    assert_eq!(
        calls(&c.take(0, a)),
        vec![(CallKind::Accept, Some(bob.clone()), None, None)]
    );
    let with = |kind, data: &str| {
        let mut signal = call("c1", kind);
        signal.data = Some(data.to_owned());
        ClientAction::Call(signal)
    };
    c.act(0, a, with(CallKind::Offer, "offer-sdp"));
    let offer = calls(&c.take(1, b));
    assert_eq!(
        offer,
        vec![(
            CallKind::Offer,
            Some(alice.clone()),
            Some("offer-sdp".into()),
            None
        )]
    );
    c.act(1, b, with(CallKind::Answer, "answer-sdp"));
    c.act(1, b, with(CallKind::Ice, "candidate"));
    let back: Vec<_> = calls(&c.take(0, a))
        .into_iter()
        .map(|x| (x.0, x.2))
        .collect();
    assert_eq!(
        back,
        vec![
            (CallKind::Answer, Some("answer-sdp".into())),
            (CallKind::Ice, Some("candidate".into()))
        ]
    );
    // Someone else on Bob's node cannot speak in their call.
    c.act(1, third, with(CallKind::Ice, "forged"));
    c.act(1, third, ClientAction::Call(call("c1", CallKind::Hangup)));
    assert!(
        calls(&c.take(0, a)).is_empty(),
        "nothing forged reaches Alice"
    );
    assert!(
        c.take(1, third)
            .iter()
            .all(|x| matches!(x, ServerAction::Error(e) if e.code == ErrorCode::InvalidCall))
    );
    // Bob hangs up: Alice hears it, and both see the call's record as a direct message.
    c.now += 5_000;
    c.act(1, b, ClientAction::Call(call("c1", CallKind::Hangup)));
    let at_a = c.take(0, a);
    assert_eq!(
        calls(&at_a),
        vec![(CallKind::Ended, None, None, Some(CallEnd::HungUp))]
    );
    let at_b = c.take(1, b);
    for told in [&at_a, &at_b] {
        let record = told.iter().find_map(|x| match x {
            ServerAction::Message(m) => m.call,
            _ => None,
        });
        assert_eq!(
            record.map(|r| (r.outcome, r.secs)),
            Some((CallOutcome::Answered, 5))
        );
    }
    assert!(
        messages(&c.take(1, third)).is_empty(),
        "the record is theirs only"
    );
}

#[test]
fn a_callee_on_both_nodes_takes_the_call_on_one_and_the_other_stops_ringing() {
    let mut c = Cluster::new();
    let (a, _, _) = c.join(0, 1);
    let (b1, bob, token) = c.join(1, 2);
    let b0 = c.connect(0, 3);
    c.act(0, b0, identify(Some(bob.clone()), Some(token)));
    c.tell_presence();
    for (n, conn) in [(0, a), (1, b1), (0, b0)] {
        c.take(n, conn);
    }
    let mut ring = call("c2", CallKind::Ring);
    ring.to = Some(bob.clone());
    c.act(0, a, ClientAction::Call(ring));
    assert_eq!(calls(&c.take(0, b0)).len(), 1, "rings here");
    assert_eq!(calls(&c.take(1, b1)).len(), 1, "and there");
    c.act(1, b1, ClientAction::Call(call("c2", CallKind::Accept)));
    assert_eq!(calls(&c.take(0, a))[0].0, CallKind::Accept);
    assert_eq!(
        calls(&c.take(0, b0)),
        vec![(
            CallKind::Ended,
            None,
            None,
            Some(CallEnd::AnsweredElsewhere)
        )]
    );
    assert!(
        calls(&c.take(1, b1)).is_empty(),
        "the one that took it goes on"
    );
    // Bob's node then stops being heard from: the call ends as disconnected.
    c.disconnect(0, b0);
    c.nodes[0]
        .room
        .handle_node_presence(c.now, "node1", Vec::new());
    c.run();
    assert_eq!(
        calls(&c.take(0, a)),
        vec![(CallKind::Ended, None, None, Some(CallEnd::Disconnected))]
    );
}
