//! The send-target parser: `cm-send TO`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = claudemesh::target::Target::parse(&text) {
        assert!(!e.msg.is_empty() && !e.msg.contains('\n'), "{e}");
    }
});
