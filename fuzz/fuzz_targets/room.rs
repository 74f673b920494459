//! Any sequence of connects, disconnects, frames, clock steps and storage answers: the room
//! never panics, seqs only grow, and every frame a client receives has an object payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{ConnectionId, Effect, Room, RoomConfig, RoomSnapshot};

fuzz_target!(|data: &[u8]| {
    let mut room = Room::new(RoomConfig::default(), RoomSnapshot::default(), [5; 32]);
    let mut now = 1_700_000_000_000i64;
    let mut pending = Vec::new();
    let mut last_seq = 0;
    // Ops are separated by 0xFF: the first byte picks the op and the connection, the rest is
    // the frame text.
    for op in data.split(|b| *b == 0xFF) {
        let Some((&head, rest)) = op.split_first() else { continue };
        let conn = ConnectionId(u64::from(head >> 4));
        match head & 0x0F {
            0 => room.handle_connect(now, conn),
            1 => room.handle_disconnect(now, conn),
            2 => now += i64::from(u16::from_le_bytes([rest.first().copied().unwrap_or(0), 0])) * 10,
            3 => {
                if let Some(seq) = pending.pop() {
                    room.handle_persist_failed(now, seq);
                }
            }
            4 => {
                if let Some(&seq) = pending.last() {
                    room.handle_persisted(now, seq);
                    pending.clear();
                }
            }
            _ => room.handle_frame(now, conn, &String::from_utf8_lossy(rest)),
        }
        while let Some(effect) = room.poll_effect() {
            match effect {
                Effect::PersistMessage(m) => {
                    assert!(m.seq > last_seq);
                    last_seq = m.seq;
                    pending.push(m.seq);
                }
                Effect::Send { action, .. } | Effect::Broadcast(action) => {
                    assert!(action.to_json().contains(r#""payload":{"#));
                }
                Effect::PersistUser(_) | Effect::LoadHistory { .. } => {}
            }
        }
    }
});
