//! Bounded property tests of every parser that reads untrusted input: the frame decoder, the invite parser, the
//! target parser, the config reader and the HTTP request head. Each feeds 20 000 mutations of valid samples (bit
//! flips, truncations, splices, random UTF-8 and JSON tokens) from a seeded PRNG of our own, and asserts that
//! nothing panics, nothing takes long, and every refusal is a one-line error of the right kind.
//!
//! The same functions are fuzz targets in `fuzz/` for long runs outside CI (see RELIABILITY.md). A failure
//! prints the seed and the input; `CM_FUZZ_SEED=N` replays a run, `CM_FUZZ_CASES=N` changes its length.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use claudemesh::config::{Config, broker_ws_url};
use claudemesh::crypto::{Keypair, b64};
use claudemesh::error::Code;
use claudemesh::target::Target;
use claudemesh::{invite, wire};
use serde_json::json;

/// xorshift64*: small, fast, and the same sequence for the same seed everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Tokens that tend to break JSON readers and the code behind them.
const JSON_TOKENS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1e999",
    "-1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "9007199254740993",
    "0.5",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\udfff\\ud800\"",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "{\"type\":\"hello\"}",
    "\"x\"",
    ",",
    ":",
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
];

/// Characters of every UTF-8 length, and ones that mean something to paths, URLs, SQL and terminals.
const CHARS: &[&str] = &[
    "\u{0}",
    "\u{7f}",
    "\u{80}",
    "é",
    "\u{7ff}",
    "\u{800}",
    "\u{fffd}",
    "\u{ffff}",
    "\u{10000}",
    "\u{10ffff}",
    "\u{202e}",
    "\n",
    "\r\n",
    "\t",
    " ",
    "/",
    "..",
    "%",
    "%00",
    "?",
    "#",
    "@",
    "*",
    "'",
    "\"",
    ";",
    "--",
    "|",
    "\u{1b}[2J",
];

/// One random change to `data`, drawing splices from `samples`.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, samples: &[Vec<u8>]) {
    let len = data.len();
    match rng.below(10) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = *rng.pick(&[
                0, 0xff, 0x7f, 0x80, 0xc3, 0xed, b'"', b'\\', b'{', b'}', b'\r', b'\n', b':',
            ]);
        }
        2 => data.truncate(rng.below(len + 1)),
        3 if len > 0 => {
            let (a, b) = (rng.below(len), rng.below(len));
            data.drain(a.min(b)..a.max(b));
        }
        4 => {
            let other = rng.pick(samples);
            if !other.is_empty() {
                let (a, b) = (rng.below(other.len()), rng.below(other.len()));
                let chunk = other[a.min(b)..a.max(b)].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
        }
        5 => {
            let t = rng.pick(JSON_TOKENS).as_bytes().to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, t);
        }
        6 => {
            let t = rng.pick(CHARS).as_bytes().to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, t);
        }
        7 if len > 0 => {
            // Replace a JSON value-ish run (between delimiters) with a token.
            let at = rng.below(len);
            let end = data[at..]
                .iter()
                .position(|&c| matches!(c, b',' | b'}' | b']'))
                .map_or(len, |p| at + p);
            let t = rng.pick(JSON_TOKENS).as_bytes().to_vec();
            data.splice(at..end, t);
        }
        8 if len > 0 && len < 200_000 => {
            let (a, b) = (rng.below(len), rng.below(len));
            let chunk = data[a.min(b)..a.max(b)].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        _ => {
            let n = rng.below(4);
            for _ in 0..n {
                let at = rng.below(data.len() + 1);
                data.insert(at, rng.next() as u8);
            }
        }
    }
}

/// How many cases each property runs: `CM_FUZZ_CASES`, else 20 000.
fn cases() -> usize {
    std::env::var("CM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn seed(salt: u64) -> u64 {
    std::env::var("CM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_0000 + salt)
}

/// Runs `check` on `cases()` mutants of `samples` (1 to 4 mutations each, sometimes the sample itself). A
/// panic or a slow case fails with the seed and the input.
pub fn property(name: &str, salt: u64, samples: &[Vec<u8>], check: impl Fn(&[u8])) {
    let seed = seed(salt);
    let mut rng = Rng::new(seed);
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for case in 0..cases() {
        let mut data = rng.pick(samples).clone();
        for _ in 0..rng.below(5) {
            mutate(&mut rng, &mut data, samples);
        }
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| check(&data)));
        let took = t.elapsed();
        slowest = slowest.max(took);
        if let Err(p) = r {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "{name}: case {case} (CM_FUZZ_SEED={seed}) panicked: {msg}\ninput: {:?}",
                String::from_utf8_lossy(&data)
            );
        }
        // Generous for a debug build on a busy machine; a hang or a quadratic blow-up is far beyond it.
        assert!(
            took < Duration::from_secs(2),
            "{name}: case {case} (CM_FUZZ_SEED={seed}) took {took:?}\ninput: {:?}",
            String::from_utf8_lossy(&data)
        );
    }
    eprintln!(
        "{name}: {} cases in {:?}, slowest {slowest:?}",
        cases(),
        started.elapsed()
    );
}

/// A refusal a user sees: one line, not empty.
fn one_line(msg: &str) {
    assert!(!msg.trim().is_empty(), "empty error message");
    assert!(!msg.contains('\n'), "error message spans lines: {msg:?}");
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Valid frames of every kind a broker or client reads.
pub fn frame_samples() -> Vec<Vec<u8>> {
    let k = Keypair::from_seed(&[3; 32]);
    let pk = k.public_hex();
    let sig = "ab".repeat(64);
    [
        json!({"type": "hello", "meshId": "m", "memberId": "i", "pubkey": pk, "sessionId": "s", "pid": 1, "cwd": "/",
               "timestamp": 1_700_000_000_000i64, "signature": sig, "groups": [{"name": "eng", "role": "lead"}],
               "capabilities": ["pull"]}),
        json!({"type": "session_hello", "meshId": "m", "parentMemberId": "i", "parentMemberPubkey": pk,
               "sessionPubkey": pk, "parentAttestation": {"sessionPubkey": pk, "parentMemberPubkey": pk,
               "expiresAt": 1_700_000_000_000i64, "signature": sig}, "sessionId": "s", "pid": 1, "cwd": "/",
               "timestamp": 1_700_000_000_000i64, "signature": sig}),
        json!({"type": "send", "id": "1", "targetSpec": "*", "priority": "now", "nonce": "bm9uY2U=", "ciphertext": "Y3Q=",
               "client_message_id": "c1", "copies": [{"to": pk, "nonce": "bg==", "ciphertext": "Yw=="}],
               "mentions": ["bob"], "replyToId": "r", "bodyVersion": 2, "subtype": "x"}),
        json!({"type": "push", "messageId": "m1", "meshId": "m", "senderPubkey": pk, "senderMemberPubkey": pk,
               "priority": "next", "nonce": "bg==", "ciphertext": "Yw==", "createdAt": "2026-01-01T00:00:00Z",
               "targetSpec": "@eng", "subtype": "system", "event": "peer_joined", "eventData": {"name": "bob"}}),
        json!({"type": "ack", "id": "1", "messageId": "m1", "queued": true, "recipientOnline": false, "duplicate": true}),
        json!({"type": "error", "code": "bad_signature", "message": "no", "id": "x", "_reqId": "r"}),
        json!({"type": "hello_ack", "presenceId": "p", "memberDisplayName": "bob", "memberProfile":
               {"roleTag": null, "groups": [], "messageMode": "push"}, "serverTime": 1}),
        json!({"type": "client_ack", "brokerMessageId": "m1", "clientMessageId": "c1"}),
        json!({"type": "inbox_fetch", "limit": 10, "waitMs": 500, "sessionPubkey": pk, "_reqId": "r"}),
        json!({"type": "inbox", "messages": [], "_reqId": "r"}),
        json!({"type": "list_peers", "_reqId": "r"}),
        json!({"type": "peers_list", "peers": [{"pubkey": pk, "memberPubkey": pk, "displayName": "b", "status": "idle",
               "groups": [], "sessionId": "s", "connectedAt": "2026-01-01T00:00:00Z", "cwd": "/", "peerRole": "session"}]}),
        json!({"type": "set_status", "status": "working"}),
        json!({"type": "message_status", "messageId": "abcdefgh", "_reqId": "r"}),
        json!({"type": "join_group", "name": "eng/backend", "role": "lead"}),
        json!({"type": "ban", "target": "bob", "_reqId": "r"}),
        json!({"type": "frobnicate", "x": 1}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect()
}

#[test]
fn fuzz_frame_decoder() {
    property("wire::parse", 1, &frame_samples(), |data| {
        let t = text(data);
        match wire::parse(&t) {
            Ok(frame) => {
                // What was read writes back and reads again as the same kind of frame.
                let again = wire::parse(&frame.to_json()).expect("a frame it wrote reads back");
                assert_eq!(again.type_name(), frame.type_name());
            }
            // A decoder error is for logs and error frames (where JSON escapes it), not a user's terminal: it
            // may quote the input, line breaks and all.
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        let _ = wire::peek_req_id(&t);
    });
}

fn invite_samples() -> Vec<Vec<u8>> {
    let owner = Keypair::from_seed(&[5; 32]);
    let root = b64::encode_url(&[7; 32]);
    let inv = invite::make(
        &owner,
        "mesh-id",
        "dev",
        "wss://broker.example/ws",
        1_900_000_000,
        &root,
        "member",
    )
    .unwrap();
    let payload = serde_json::to_string(&inv.payload).unwrap();
    vec![
        inv.url.clone().into_bytes(),
        inv.token.clone().into_bytes(),
        format!("https://claudemesh.com/join/{}", inv.token).into_bytes(),
        format!("https://claudemesh.com/en/join/{}", inv.token).into_bytes(),
        b"claudemesh://abc".to_vec(),
        b"https://claudemesh.com/i/abcdef".to_vec(),
        // The payload itself: mutations land inside the JSON, then get encoded as a token.
        format!("JSON:{payload}").into_bytes(),
    ]
}

#[test]
fn fuzz_invite_parser() {
    let now = 1_800_000_000;
    property("invite::parse", 2, &invite_samples(), |data| {
        let t = text(data);
        let input = match t.strip_prefix("JSON:") {
            Some(json) => format!("ic://join/{}", b64::encode_url(json.as_bytes())),
            None => t,
        };
        match invite::parse(&input) {
            // Verifying costs an ed25519 check, slow in a debug build: every eighth parsed invite is verified.
            Ok(inv) if data.len() % 8 == 0 => {
                if let Err(e) = invite::verify(&inv, now) {
                    one_line(&e.msg);
                    assert_ne!(e.code, Code::Internal, "{}", e.msg);
                }
            }
            Ok(_) => {}
            Err(e) => {
                one_line(&e.msg);
                assert_eq!(e.code, Code::Usage, "{}", e.msg);
            }
        }
    });
}

#[test]
fn fuzz_target_parser() {
    let samples: Vec<Vec<u8>> = [
        "bob",
        "*",
        "@all",
        "@eng/backend",
        "#dev",
        "#0123456789abcdef",
        &"ab".repeat(32),
        &"AB".repeat(32),
        "abcd",
        "Bob Smith",
        "  padded  ",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    property("Target::parse", 3, &samples, |data| {
        match Target::parse(&text(data)) {
            Ok(Target::Key(k)) => assert_eq!(k.len(), 64),
            Ok(Target::Group(g)) => assert!(!g.is_empty() && !g.contains(' ')),
            Ok(Target::Topic(t)) => assert!(!t.is_empty() && !t.contains(char::is_whitespace)),
            Ok(_) => {}
            Err(e) => {
                one_line(&e.msg);
                assert_eq!(e.code, Code::Usage);
            }
        }
    });
}

#[test]
fn fuzz_config_reader() {
    let k = Keypair::from_seed(&[9; 32]);
    let config = json!({"version": 1, "displayName": "alice", "groups": [{"name": "eng", "role": "lead"}],
        "messageMode": "push", "accountId": "acc", "futureKey": {"kept": true},
        "meshes": [{"meshId": "m1", "memberId": "i1", "slug": "dev", "name": "Dev", "pubkey": k.public_hex(),
                    "secretKey": k.secret_hex(), "brokerUrl": "wss://b.example/ws", "joinedAt": "2026-01-01T00:00:00Z",
                    "rootKey": b64::encode_url(&[1; 32]), "inviteVersion": 1},
                   {"meshId": "m2", "memberId": "i2", "slug": "ops", "name": "Ops", "pubkey": "00".repeat(32),
                    "secretKey": "11".repeat(64), "brokerUrl": "ws://127.0.0.1:7900/ws", "joinedAt": "x"}]});
    let samples = vec![
        serde_json::to_vec_pretty(&config).unwrap(),
        config.to_string().into_bytes(),
        b"{}".to_vec(),
        b"URL:wss://broker.example:443/ws".to_vec(),
        b"URL:http://127.0.0.1:7900".to_vec(),
        b"URL:broker.example".to_vec(),
    ];
    let secret = k.secret_hex();
    property("config", 4, &samples, |data| {
        if let Some(url) = data.strip_prefix(b"URL:") {
            if let Err(e) = broker_ws_url(&text(url)) {
                one_line(&e.msg);
            }
            return;
        }
        let Ok(c) = serde_json::from_slice::<Config>(data) else {
            return;
        };
        for sel in [None, Some("dev"), Some("DEV"), Some("nope")] {
            if let Err(e) = c.mesh(sel) {
                one_line(&e.msg);
                assert!(!e.msg.contains(&secret), "an error shows the secret key");
            }
        }
        for m in &c.meshes {
            if let Err(e) = m.keypair() {
                one_line(&e.msg);
                assert!(!e.msg.contains(&secret), "an error shows the secret key");
            }
            if m.secret_key.len() >= 32 {
                assert!(
                    !format!("{m:?}").contains(&m.secret_key),
                    "Debug shows the secret key"
                );
            }
        }
        // What was read writes back and reads again.
        let back = serde_json::to_vec(&c).unwrap();
        serde_json::from_slice::<Config>(&back).expect("a config it wrote reads back");
    });
}

fn head_samples() -> Vec<Vec<u8>> {
    [
        &b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /ws?v=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        b"POST /join HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"ok\": true}\n",
        b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"POST /cli/mesh/create HTTP/1.0\r\nAuthorization: Bearer t\r\nContent-Length: 2\r\n\r\n{}",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

#[test]
fn fuzz_http_request_head() {
    use claudemesh::broker::net::parse_request_head;
    property(
        "parse_request_head",
        5,
        &head_samples(),
        |data| match parse_request_head(data) {
            Ok(Some((method, path, body))) => {
                assert!(!method.is_empty() && !method.contains([' ', '\r', '\n']));
                assert!(path.starts_with('/') || path == "*", "{path:?}");
                assert!(body <= 64 * 1024);
            }
            Ok(None) => assert!(data.len() <= 16 * 1024 + 64 * 1024 + 4),
            Err(status) => assert!(
                matches!(status, 400 | 411 | 413 | 431),
                "unexpected status {status}"
            ),
        },
    );
}

#[test]
fn fuzz_mutator_is_deterministic() {
    let samples = frame_samples();
    let run = |seed| {
        let mut rng = Rng::new(seed);
        let mut d = samples[0].clone();
        for _ in 0..50 {
            mutate(&mut rng, &mut d, &samples);
        }
        d
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}
