//! The driver against a store that fails part-way through a batch, on paused tokio time:
//! the durable part is echoed, the rest is refused to its author by nonce, nothing is lost
//! or stored twice.

use std::sync::Mutex;

use protocol::{ClientAction, ErrorCode, RoomConfig, RoomSnapshot, SendMessage};

use super::*;
use crate::store::{StoreError, Write};

/// Stores in memory; the next batch fails after `fail_after` writes (writes are applied in
/// order, so those are durable); every write takes 50 ms of (paused) time.
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
        let fail_after = self
            .fail_after
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
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
        _before: Seq,
        _limit: u32,
    ) -> crate::store::Result<(Vec<StoredMessage>, bool)> {
        Ok((Vec::new(), false))
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

fn stored_texts(store: &FlakyStore) -> Vec<String> {
    store
        .written
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|w| match w {
            Write::Message(m) => Some(m.raw.clone()),
            Write::Change(_) | Write::User(_) => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_fails_part_way_echoes_what_was_stored_and_refuses_the_rest_by_nonce() {
    let store = Arc::new(FlakyStore::default());
    let room = Room::new(RoomConfig::default(), RoomSnapshot::default(), [3; 32]);
    let driver = Driver::new(
        room,
        "test",
        Arc::clone(&store),
        Arc::new(Metrics::default()),
    );
    let (inputs, inputs_rx) = mpsc::channel(64);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(driver.run(inputs_rx, async {
        let _stop = stopped.await;
    }));

    let conn = ConnectionId(1);
    let (outbox, mut inbox) = Outbox::channel(64, 1 << 20);
    let send = |input| {
        let inputs = inputs.clone();
        async move { inputs.send(input).await.expect("driver running") }
    };
    send(Input::Connect {
        conn,
        handle: ConnectionHandle {
            outbox,
            close: Arc::new(CloseSignal::default()),
        },
        peer: None,
    })
    .await;
    send(Input::Frame {
        conn,
        text: frame(&ClientAction::HandshakeUserInfo(Default::default())),
    })
    .await;
    // Let the identity be stored first, in a batch of its own.
    tokio::time::sleep(Duration::from_millis(100)).await;
    received(&mut inbox);

    // Three messages in one storage batch, which fails after its first write.
    *store.fail_after.lock().unwrap_or_else(|p| p.into_inner()) = Some(1);
    for (text, nonce) in [("one", "n1"), ("two", "n2"), ("three", "n3")] {
        send(Input::Frame {
            conn,
            text: message(text, nonce),
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = received(&mut inbox);
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
    send(Input::Frame {
        conn,
        text: message("two", "n2"),
    })
    .await;
    send(Input::Frame {
        conn,
        text: message("three", "n3"),
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let echoed: Vec<_> = received(&mut inbox)
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

    // Shutdown writes what is pending and ends.
    let _stopped = stop.send(());
    task.await.expect("the driver ends cleanly");
}
