//! The config reader: `config.json` as another version or a hand edit left it, and broker URLs.
#![no_main]

use claudemesh::config::{Config, broker_ws_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(url) = std::str::from_utf8(data) {
        let _ = broker_ws_url(url);
    }
    let Ok(c) = serde_json::from_slice::<Config>(data) else {
        return;
    };
    for sel in [None, Some("dev")] {
        if let Err(e) = c.mesh(sel) {
            assert!(!e.msg.contains('\n'), "{e}");
        }
    }
    for m in &c.meshes {
        let _ = m.keypair();
    }
    let back = serde_json::to_vec(&c).expect("a config serializes");
    serde_json::from_slice::<Config>(&back).expect("a config it wrote reads back");
});
