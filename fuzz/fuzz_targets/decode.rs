//! Any bytes: the decoders answer with an action or an error, never a panic, and whatever
//! decodes encodes to JSON that decodes to the same action.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(action) = protocol::decode_client(&text) {
        assert_eq!(protocol::decode_client(&action.to_json()).ok(), Some(action));
    }
    if let Ok(action) = protocol::decode_server(&text) {
        assert_eq!(protocol::decode_server(&action.to_json()).ok(), Some(action));
    }
});
