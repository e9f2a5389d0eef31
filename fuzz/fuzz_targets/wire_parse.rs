//! The frame decoder: any text a socket may carry.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = claudemesh::wire::parse(text) {
        // What was read writes back and reads again as the same kind of frame.
        let again = claudemesh::wire::parse(&frame.to_json()).expect("a frame it wrote reads back");
        assert_eq!(again.type_name(), frame.type_name());
    }
    let _ = claudemesh::wire::peek_req_id(text);
});
