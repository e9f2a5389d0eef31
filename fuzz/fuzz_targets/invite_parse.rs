//! The invite parser and verifier: links and tokens pasted by users.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match claudemesh::invite::parse(&text) {
        Ok(inv) => {
            if let Err(e) = claudemesh::invite::verify(&inv, 1_800_000_000) {
                assert!(!e.msg.is_empty() && !e.msg.contains('\n'), "{e}");
            }
        }
        Err(e) => assert!(!e.msg.is_empty() && !e.msg.contains('\n'), "{e}"),
    }
});
