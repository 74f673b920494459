//! Any sequence of connects, disconnects, frames, clock steps, slow or failing storage and
//! client sessions coming and going: the room never panics, stored seqs only grow, and every
//! frame a client receives has an object payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::session::SessionConfig;
use protocol::testing::{Pair, PeerId};
use protocol::ConnectionId;

fuzz_target!(|data: &[u8]| {
    let mut pair = Pair::new();
    let peers = [
        pair.add_session(SessionConfig::default()),
        pair.add_session(SessionConfig::default()),
    ];
    // Ops are separated by 0xFF: the first byte picks the op and the connection, the rest is
    // the frame text.
    for op in data.split(|b| *b == 0xFF) {
        let Some((&head, rest)) = op.split_first() else { continue };
        let id = u64::from(head >> 4);
        let conn = ConnectionId(id);
        let peer: PeerId = peers[(id & 1) as usize];
        let byte = rest.first().copied().unwrap_or(0);
        let now = pair.now;
        match head & 0x0F {
            0 => {
                pair.connect(id);
            }
            1 => pair.disconnect(conn),
            2 => pair.advance(i64::from(byte) * 10),
            3 => pair.fail_storage = !pair.fail_storage,
            4 => pair.storage_delay = i64::from(byte),
            5 => pair.open_session(peer),
            6 => pair.drop_session(peer),
            7 => {
                let text = String::from_utf8_lossy(rest);
                let _refused = pair.session_mut(peer).send_message(now, &text, None);
                pair.run();
            }
            8 => {
                pair.session_mut(peer).request_history(now);
                pair.run();
            }
            _ => pair.frame(conn, &String::from_utf8_lossy(rest)),
        }
        for frame in pair.take(conn) {
            assert!(frame.to_json().contains(r#""payload":{"#));
        }
        assert!(pair.stored.windows(2).all(|w| w[0].seq < w[1].seq));
    }
});
