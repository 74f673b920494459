//! The driver against a store that fails part-way through a batch, on paused tokio time:
//! the durable part is echoed, the rest is refused to its author by nonce, nothing is lost
//! or stored twice.

use std::sync::Mutex;

use protocol::{ClientAction, ErrorCode, RoomConfig, RoomSnapshot, SendMessage};

use super::*;
use crate::store::{StoreError, Write};

/// Stores in memory; the next batch longer than `fail_after` fails after that many writes
/// (writes are applied in order, so those are durable); every write takes 50 ms of (paused)
/// time.
#[derive(Default)]
struct FlakyStore {
    written: Mutex<Vec<Write>>,
    fail_after: Mutex<Option<usize>>,
}

impl Store for FlakyStore {
    async fn load_snapshot(
        &self,
        _room: &str,
        _recent: usize,
    ) -> crate::store::Result<RoomSnapshot> {
        Ok(RoomSnapshot::default())
    }

    async fn write_batch(&self, _room: &str, batch: Vec<Write>) -> Result<(), BatchError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Used up by the first batch it cuts short.
        let fail_after = {
            let mut slot = self.fail_after.lock().unwrap_or_else(|p| p.into_inner());
            slot.filter(|k| *k < batch.len()).and_then(|_| slot.take())
        };
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        match fail_after {
            Some(k) if k < batch.len() => {
                written.extend(batch.into_iter().take(k));
                Err(BatchError {
                    written: k,
                    source: StoreError::Corrupt("disk full".into()),
                })
            }
            _ => {
                written.extend(batch);
                Ok(())
            }
        }
    }

    async fn load_history(
        &self,
        _room: &str,
        _viewer: Option<&str>,
        _with: Option<&str>,
        _before: Seq,
        _limit: u32,
    ) -> crate::store::Result<(Vec<StoredMessage>, bool)> {
        Ok((Vec::new(), false))
    }

    async fn load_conversations(
        &self,
        _room: &str,
        _viewer: &str,
        _since: Seq,
        _limit: u32,
    ) -> crate::store::Result<Vec<protocol::DirectConversation>> {
        Ok(Vec::new())
    }

    async fn load_key_checks(
        &self,
        _room: &str,
    ) -> crate::store::Result<Vec<crate::sealing::KeyCheck>> {
        Ok(Vec::new())
    }

    async fn save_key_check(
        &self,
        _room: &str,
        _check: crate::sealing::KeyCheck,
    ) -> crate::store::Result<()> {
        Ok(())
    }

    async fn remove_key_check(&self, _room: &str, _id: &str) -> crate::store::Result<()> {
        Ok(())
    }

    async fn load_messages_after(
        &self,
        _room: &str,
        _after: Seq,
        _limit: u32,
    ) -> crate::store::Result<Vec<StoredMessage>> {
        Ok(Vec::new())
    }

    async fn load_audit_after(
        &self,
        _room: &str,
        _after: Seq,
        _limit: u32,
    ) -> crate::store::Result<Vec<protocol::AuditEntry>> {
        Ok(Vec::new())
    }

    async fn compact(&self, _room: &str) -> crate::store::Result<()> {
        Ok(())
    }

    /// A slow search: ten seconds, then (unless it runs out of time first) one result.
    async fn search(
        &self,
        _room: &str,
        search: crate::store::Search,
    ) -> crate::store::Result<protocol::search::SearchPage> {
        let work = tokio::time::sleep(Duration::from_secs(10));
        if tokio::time::timeout(search.timeout, work).await.is_err() {
            return Err(StoreError::TimedOut(search.timeout));
        }
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let messages = written
            .iter()
            .filter_map(|w| match w {
                Write::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        Ok(protocol::search::SearchPage {
            messages,
            next: None,
        })
    }
}

fn frame(action: &ClientAction) -> Utf8Bytes {
    Utf8Bytes::from(action.to_json())
}

fn message(text: &str, nonce: &str) -> Utf8Bytes {
    frame(&ClientAction::Message(SendMessage {
        raw_message: text.into(),
        user_id: None,
        nonce: Some(nonce.into()),
        reply_to: None,
        to: None,
    }))
}

fn received(inbox: &mut Inbox) -> Vec<ServerAction> {
    std::iter::from_fn(|| inbox.try_recv())
        .map(|f| protocol::decode_server(f.as_str()).expect("a server frame"))
        .collect()
}

/// The messages the store holds, in the order written: those a single process wrote
/// (`Write::Message`), or those of a cluster's stream (`Write::LoggedMessage`).
fn messages_written(store: &FlakyStore, logged: bool) -> Vec<StoredMessage> {
    store
        .written
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|w| match (w, logged) {
            (Write::Message(m), false) | (Write::LoggedMessage(m), true) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn stored_texts(store: &FlakyStore) -> Vec<String> {
    messages_written(store, false)
        .into_iter()
        .map(|m| m.raw)
        .collect()
}

/// A driver running over `store`, with one connection open on it.
struct Running {
    inputs: mpsc::Sender<Input>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    conn: ConnectionId,
    inbox: Inbox,
}

impl Running {
    async fn start(store: &Arc<FlakyStore>, seed: u8, search_timeout: Duration) -> Self {
        Self::start_with(store, seed, search_timeout, Duration::ZERO).await
    }

    async fn start_with(
        store: &Arc<FlakyStore>,
        seed: u8,
        search_timeout: Duration,
        write_delay: Duration,
    ) -> Self {
        let room = Room::new(RoomConfig::default(), RoomSnapshot::default(), [seed; 32]);
        let driver = Driver::new(
            room,
            "test",
            Arc::clone(store),
            Arc::new(Metrics::default()),
        )
        .with_search_timeout(search_timeout)
        .with_write_delay(write_delay);
        let (inputs, inputs_rx) = mpsc::channel(64);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(driver.run(inputs_rx, async {
            let _stop = stopped.await;
        }));
        let conn = ConnectionId(1);
        let (outbox, inbox) = Outbox::channel(64, 1 << 20);
        let running = Self {
            inputs,
            stop,
            task,
            conn,
            inbox,
        };
        running
            .send_input(Input::Connect {
                conn,
                handle: ConnectionHandle {
                    outbox,
                    close: Arc::new(CloseSignal::default()),
                },
                peer: None,
            })
            .await;
        running
    }

    async fn send_input(&self, input: Input) {
        self.inputs.send(input).await.expect("driver running");
    }

    /// A frame from the connection.
    async fn send(&self, text: Utf8Bytes) {
        self.send_input(Input::Frame {
            conn: self.conn,
            text,
        })
        .await;
    }

    fn received(&mut self) -> Vec<ServerAction> {
        received(&mut self.inbox)
    }

    /// Shutdown writes what is pending and ends.
    async fn stop(self) {
        let _stopped = self.stop.send(());
        self.task.await.expect("the driver ends cleanly");
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_fails_part_way_echoes_what_was_stored_and_refuses_the_rest_by_nonce() {
    let store = Arc::new(FlakyStore::default());
    let mut room = Running::start(&store, 3, Duration::from_secs(2)).await;
    room.send(frame(&ClientAction::HandshakeUserInfo(Default::default())))
        .await;
    // Let the identity be stored first, in a batch of its own.
    tokio::time::sleep(Duration::from_millis(100)).await;
    room.received();

    // Three messages in one storage batch, which fails after its first write.
    *store.fail_after.lock().unwrap_or_else(|p| p.into_inner()) = Some(1);
    for (text, nonce) in [("one", "n1"), ("two", "n2"), ("three", "n3")] {
        room.send(message(text, nonce)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = room.received();
    let echoed: Vec<_> = got
        .iter()
        .filter_map(|a| match a {
            ServerAction::Message(m) => m.nonce.clone(),
            _ => None,
        })
        .collect();
    let refused: Vec<_> = got
        .iter()
        .filter_map(|a| match a {
            ServerAction::Error(e) => Some((e.code, e.nonce.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(echoed, vec!["n1".to_owned()], "{got:?}");
    assert_eq!(
        refused,
        vec![
            (ErrorCode::StorageFailed, Some("n2".to_owned())),
            (ErrorCode::StorageFailed, Some("n3".to_owned()))
        ]
    );
    assert_eq!(stored_texts(&store), vec!["one"]);

    // Storage works again: the refused messages are sent again (same nonces) and stored once.
    room.send(message("two", "n2")).await;
    room.send(message("three", "n3")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let echoed: Vec<_> = room
        .received()
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Message(m) => Some((m.seq, m.raw_message)),
            _ => None,
        })
        .collect();
    assert_eq!(stored_texts(&store), vec!["one", "two", "three"]);
    assert_eq!(echoed.len(), 2);
    assert!(
        echoed.iter().all(|(seq, _)| seq.is_some_and(|s| s > 1)),
        "{echoed:?}"
    );

    room.stop().await;
}

/// A search runs beside the room: while one takes ten seconds in the store, the room goes on
/// storing and echoing messages at once; the results come when it ends, and a search past
/// the room's time gets SEARCH_FAILED with its nonce.
#[tokio::test(start_paused = true)]
async fn a_slow_search_never_holds_the_room_up_and_one_past_its_time_fails_by_nonce() {
    let store = Arc::new(FlakyStore::default());
    let search = |nonce: &str| {
        frame(&ClientAction::Search(protocol::Search {
            query: "needle".into(),
            before: None,
            nonce: Some(nonce.into()),
        }))
    };
    let mut room = Running::start(&store, 3, Duration::from_secs(30)).await;
    room.send(frame(&ClientAction::HandshakeUserInfo(
        protocol::HandshakeUserInfo {
            protocol_version: Some(protocol::PROTOCOL_VERSION),
            ..Default::default()
        },
    )))
    .await;
    room.send(message("the needle", "n1")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    room.received();

    room.send(search("s1")).await;
    room.send(message("while it searches", "n2")).await;
    // The message is echoed after its storage write (50 ms), long before the search ends.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = room.received();
    assert!(
        got.iter()
            .any(|a| matches!(a, ServerAction::Message(m) if m.nonce.as_deref() == Some("n2"))),
        "{got:?}"
    );
    assert!(
        !got.iter()
            .any(|a| matches!(a, ServerAction::SearchResults(_)))
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let got = room.received();
    let results: Vec<_> = got
        .iter()
        .filter_map(|a| match a {
            ServerAction::SearchResults(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 1, "{got:?}");
    assert_eq!(results[0].nonce.as_deref(), Some("s1"));
    let texts: Vec<_> = results[0]
        .messages
        .iter()
        .map(|m| m.raw_message.as_str())
        .collect();
    assert_eq!(
        texts,
        ["the needle"],
        "the store's extra candidates are checked away"
    );
    room.stop().await;

    // The same, with a room that allows a search one second: SEARCH_FAILED, by nonce.
    let mut room = Running::start(&store, 4, Duration::from_secs(1)).await;
    room.send(search("s2")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused: Vec<_> = room
        .received()
        .into_iter()
        .filter_map(|a| match a {
            ServerAction::Error(e) => Some((e.code, e.nonce)),
            _ => None,
        })
        .collect();
    assert_eq!(refused, [(ErrorCode::SearchFailed, Some("s2".to_owned()))]);
    room.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_cluster_node_writes_a_failed_part_of_the_streams_events_again_before_anything_after_it()
{
    let store = Arc::new(FlakyStore::default());
    let room = Room::new(RoomConfig::default(), RoomSnapshot::default(), [4; 32]);
    let (logged_tx, logged) = mpsc::channel(64);
    let driver = Driver::new(
        room,
        "test",
        Arc::clone(&store),
        Arc::new(Metrics::default()),
    )
    .with_shared_log(crate::cluster::detached(), logged);
    let (_inputs, inputs_rx) = mpsc::channel(64);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(driver.run(inputs_rx, async {
        let _stop = stopped.await;
    }));
    let event = |seq: Seq| crate::cluster::LogInput::Logged {
        seq,
        event: protocol::LogEvent::Message(StoredMessage {
            id: format!("m{seq}"),
            user_id: "u".into(),
            raw: format!("event {seq}"),
            html: format!("<p>event {seq}</p>"),
            ..StoredMessage::default()
        }),
        here: false,
    };
    // Event 1 is being written while 2 and 3 come: theirs is the next batch, which fails
    // after its first write; 4 and 5 come while 3 waits to be written again.
    logged_tx.send(event(1)).await.expect("driver running");
    tokio::time::sleep(Duration::from_millis(10)).await;
    *store.fail_after.lock().unwrap_or_else(|p| p.into_inner()) = Some(1);
    for seq in 2..=3 {
        logged_tx.send(event(seq)).await.expect("driver running");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let written = |store: &FlakyStore| -> Vec<Seq> {
        messages_written(store, true)
            .iter()
            .map(|m| m.seq)
            .collect()
    };
    assert_eq!(written(&store), vec![1, 2], "3 failed");
    for seq in 4..=5 {
        logged_tx.send(event(seq)).await.expect("driver running");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(written(&store), vec![1, 2], "nothing after 3 before 3");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        written(&store),
        vec![1, 2, 3, 4, 5],
        "in order, each once, none skipped"
    );
    let _stopped = stop.send(());
    task.await.expect("the driver ends cleanly");
}

#[tokio::test]
async fn an_outbox_is_bounded_in_frames_and_bytes_and_knows_when_either_end_is_gone() {
    let frame = |text: &str| Utf8Bytes::from(text.to_owned());
    let (outbox, mut inbox) = Outbox::channel(2, 10);
    // One frame larger than the byte bound still goes into an empty queue.
    assert_eq!(outbox.offer(frame(&"x".repeat(20))), Ok(()));
    assert_eq!(outbox.offer(frame("y")), Err(OfferError::Full), "bytes");
    assert_eq!(inbox.try_recv().map(|f| f.len()), Some(20));
    assert_eq!(outbox.offer(frame("a")), Ok(()));
    assert_eq!(outbox.offer(frame("b")), Ok(()));
    assert_eq!(outbox.offer(frame("c")), Err(OfferError::Full), "frames");
    assert_eq!(inbox.recv().await.as_deref(), Some("a"));
    assert_eq!(inbox.recv().await.as_deref(), Some("b"));
    // The writer waits for the next frame, and wakes for it.
    let second = outbox.clone();
    let waiting = tokio::spawn(async move { inbox.recv().await.map(|f| f.to_string()) });
    tokio::task::yield_now().await;
    assert_eq!(second.offer(frame("late")), Ok(()));
    let mut inbox = match tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await {
        Ok(Ok(got)) => {
            assert_eq!(got.as_deref(), Some("late"));
            // A fresh pair for the ends' tests.
            let (outbox, inbox) = Outbox::channel(2, 10);
            drop(second);
            drop(outbox);
            inbox
        }
        other => panic!("the writer was not woken: {other:?}"),
    };
    // Every outbox gone: the writer hears the room let the connection go.
    assert_eq!(inbox.recv().await, None);
    // The writer gone: offers say so.
    let (outbox, inbox) = Outbox::channel(2, 10);
    drop(inbox);
    assert_eq!(outbox.offer(frame("z")), Err(OfferError::Closed));
}

/// A busy room wakes a connection's writer at most once per write delay, with everything
/// queued since; after a quiet moment the next frame wakes it at once.
#[tokio::test(start_paused = true)]
async fn a_busy_room_wakes_each_writer_once_per_write_delay_and_a_quiet_one_at_once() {
    let delay = Duration::from_millis(100);
    let store = Arc::new(FlakyStore::default());
    let room = Running::start_with(&store, 4, Duration::from_secs(2), delay).await;
    let Running {
        inputs,
        stop,
        task,
        conn,
        mut inbox,
    } = room;
    let start = tokio::time::Instant::now();
    // The writer: when each wake came, and what it took then (as the real writer takes all
    // that is queued).
    let (woke_tx, mut woke) = mpsc::unbounded_channel::<(Duration, Vec<ServerAction>)>();
    let writer = tokio::spawn(async move {
        while let Some(first) = inbox.recv().await {
            let at = start.elapsed();
            let mut took = vec![protocol::decode_server(first.as_str()).expect("a frame")];
            took.extend(received(&mut inbox));
            if woke_tx.send((at, took)).is_err() {
                break;
            }
        }
    });
    let kinds = |took: &[ServerAction]| -> Vec<String> {
        took.iter()
            .map(|a| a.to_json().split('"').nth(3).unwrap_or("").to_owned())
            .collect()
    };
    // The HANDSHAKE of a quiet room goes at once.
    let (at, took) = woke.recv().await.expect("a wake");
    assert_eq!(
        (at, kinds(&took)),
        (Duration::ZERO, vec!["HANDSHAKE".to_owned()])
    );
    // Identifying right after: its answers wait for the delay, and come in one wake.
    let identify = frame(&ClientAction::HandshakeUserInfo(Default::default()));
    inputs
        .send(Input::Frame {
            conn,
            text: identify,
        })
        .await
        .expect("driver running");
    let (at, took) = woke.recv().await.expect("a wake");
    assert_eq!(at, delay, "{:?}", kinds(&took));
    assert!(
        kinds(&took).contains(&"USER_INFO".to_owned()),
        "{:?}",
        kinds(&took)
    );
    let presence = woke.recv().await.expect("the presence tick");
    assert!(presence.0 >= delay * 2, "{presence:?}");
    // A second of quiet: a message is echoed as soon as storage has it (50 ms), not later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = start.elapsed();
    inputs
        .send(Input::Frame {
            conn,
            text: message("after a quiet moment", "q1"),
        })
        .await
        .expect("driver running");
    let (at, took) = woke.recv().await.expect("a wake");
    assert_eq!(kinds(&took), ["MESSAGE"]);
    assert_eq!(at - sent, Duration::from_millis(50), "stored, then at once");
    let _stopped = stop.send(());
    task.await.expect("the driver ends cleanly");
    writer.abort();
}
