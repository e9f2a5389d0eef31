//! The broker's HTTP request parser: the first bytes any client sends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match claudemesh::broker::net::parse_request_head(data) {
        Ok(Some((method, path, body))) => {
            assert!(!method.is_empty());
            assert!(path.starts_with('/') || path == "*");
            assert!(body <= 64 * 1024);
        }
        Ok(None) => {}
        Err(status) => assert!(matches!(status, 400 | 411 | 413 | 431), "{status}"),
    }
});
