//! `cm-broker` as a process, spoken to over raw HTTP and WebSocket: authentication refusals, encrypted DMs,
//! store-and-forward across a crash, fan-out, idempotency, limits, redelivery, and no plaintext at rest.

use std::time::Duration;

use claudemesh::crypto::{self, Keypair};
use claudemesh::time::now_ms;
use serde_json::{Value, json};

use crate::harness::{Broker, Mesh, TempDir, Ws};

/// A DM from `from` (its member key) to the key `to`, sealed with crypto_box.
fn dm(from: &Keypair, to: &str, id: &str, text: &str) -> Value {
    let (nonce, ct) = crypto::encrypt_dm(text.as_bytes(), to, from).unwrap();
    json!({"type": "send", "id": id, "targetSpec": to, "priority": "now", "nonce": nonce, "ciphertext": ct})
}

fn open(push: &Value, me: &Keypair) -> String {
    let sender = push["senderPubkey"].as_str().unwrap();
    let pt = crypto::decrypt_dm(
        push["nonce"].as_str().unwrap(),
        push["ciphertext"].as_str().unwrap(),
        sender,
        me,
    )
    .expect("the push opens with the recipient's key");
    String::from_utf8(pt).unwrap()
}

/// Sends `frame` on a fresh socket and returns the error code and the close that followed.
fn refused(b: &Broker, frame: &Value) -> (String, (u16, String)) {
    let mut ws = b.ws();
    ws.send(frame);
    let err = ws.recv_type("error");
    let close = ws.expect_close();
    (err["code"].as_str().unwrap().to_string(), close)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn broker_refuses_every_bad_hello_with_its_code() {
    let dir = TempDir::new("auth");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "auth");
    let bob = mesh.join(&b, "bob");
    let s = Keypair::generate();
    let exp = now_ms() + 3_600_000;
    let hello = |extra: Value| mesh.hello_frame(&bob, extra);
    let session = |exp: i64, extra: Value| mesh.session_frame(&bob, &s, exp, extra);
    let c1008 = |code: &str| (code.to_string(), (1008, code.to_string()));

    assert_eq!(
        refused(&b, &hello(json!({"sessionPubkey": "ABC"}))),
        c1008("bad_session_pubkey")
    );
    assert_eq!(
        refused(&b, &session(exp, json!({"sessionPubkey": "nope"}))),
        c1008("bad_session_pubkey")
    );
    assert_eq!(
        refused(&b, &session(exp, json!({"parentMemberPubkey": "nope"}))),
        c1008("bad_parent_pubkey")
    );
    let mut wrong = session(exp, json!({}));
    wrong["parentAttestation"]["sessionPubkey"] = Keypair::generate().public_hex().into();
    assert_eq!(refused(&b, &wrong), c1008("attestation_mismatch"));
    assert_eq!(
        refused(&b, &hello(json!({"timestamp": now_ms() - 61_000}))),
        c1008("timestamp_skew")
    );
    assert_eq!(
        refused(&b, &hello(json!({"timestamp": "soon"}))),
        c1008("timestamp_skew")
    );
    assert_eq!(
        refused(&b, &hello(json!({"signature": "xyz"}))),
        c1008("malformed")
    );
    assert_eq!(
        refused(&b, &hello(json!({"pubkey": "12"}))),
        c1008("malformed")
    );
    assert_eq!(
        refused(&b, &hello(json!({"signature": "ab".repeat(64)}))),
        c1008("bad_signature")
    );
    assert_eq!(
        refused(&b, &session(exp, json!({"signature": "ab".repeat(64)}))),
        c1008("bad_signature")
    );
    assert_eq!(
        refused(&b, &session(now_ms() - 1, json!({}))),
        c1008("expired")
    );
    assert_eq!(
        refused(&b, &session(now_ms() + 25 * 3_600_000, json!({}))),
        c1008("ttl_too_long")
    );
    assert_eq!(
        refused(&b, &session(exp, json!({"parentMemberId": mesh.admin.id}))),
        c1008("parent_member_id_mismatch")
    );

    // Not a member (an unknown key), or a member's key with another member's id.
    let stranger = crate::harness::Member {
        key: Keypair::generate(),
        id: bob.id.clone(),
        name: "x".into(),
    };
    assert_eq!(
        refused(&b, &mesh.hello_frame(&stranger, json!({}))),
        c1008("unauthorized")
    );
    let liar = crate::harness::Member {
        key: bob.key.clone(),
        id: mesh.admin.id.clone(),
        name: "x".into(),
    };
    assert_eq!(
        refused(&b, &mesh.hello_frame(&liar, json!({}))),
        c1008("unauthorized")
    );

    // Before hello: no_hello, and the socket stays usable.
    let mut ws = b.ws();
    ws.send(&json!({"type": "list_peers", "_reqId": "early"}));
    let err = ws.recv();
    assert_eq!(
        (
            err["code"].as_str(),
            err["_reqId"].as_str(),
            err["id"].as_str()
        ),
        (Some("no_hello"), Some("early"), Some("early"))
    );
    ws.send(&hello(json!({})));
    assert_eq!(ws.recv_type("hello_ack")["memberId"], bob.id.as_str());
    ws.send(&hello(json!({})));
    assert_eq!(ws.recv()["code"], "already_authenticated");
    ws.send_raw("{oops".into());
    assert_eq!(ws.recv()["code"], "malformed");
    ws.send(&json!({"type": "frobnicate", "_reqId": "f"}));
    let err = ws.recv();
    assert_eq!(
        (err["code"].as_str(), err["_reqId"].as_str()),
        (Some("unknown_type"), Some("f"))
    );

    // Revoked: 4002. A ban while connected closes with 4002 too.
    let mut admin = mesh.connect(&b, &mesh.admin);
    let ack = admin.request(json!({"type": "ban", "target": "bob"}), "ban_ack");
    assert_eq!(ack["banned"], "bob");
    assert_eq!(ws.expect_close(), (4002, "banned".to_string()));
    assert_eq!(
        refused(&b, &hello(json!({}))),
        ("revoked".to_string(), (4002, "revoked".to_string()))
    );

    // Capacity: the mesh's live presences are counted, and freed when they leave.
    let dir2 = TempDir::new("capacity");
    let small = Broker::start(&dir2, &["--max-conns-per-mesh", "1"]);
    let m2 = Mesh::create(&small, "small");
    let first = m2.connect(&small, &m2.admin);
    let (code, close) = refused(&small, &m2.hello_frame(&m2.admin, json!({})));
    assert_eq!((code.as_str(), close.0), ("capacity", 1013));
    first.close();
    m2.connect(&small, &m2.admin);
}

#[test]
fn broker_dm_round_trip_is_end_to_end_encrypted() {
    let dir = TempDir::new("dm");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "dm");
    let bob = mesh.join(&b, "bob");
    let mut a = mesh.connect(&b, &mesh.admin);
    let mut bw = mesh.connect(&b, &bob);
    a.send(&dm(
        &mesh.admin.key,
        &bob.pubkey(),
        "m1",
        "hello bob, this is secret",
    ));
    let ack = a.recv_type("ack");
    assert_eq!(
        (
            ack["id"].as_str(),
            ack["queued"].as_bool(),
            ack["recipientOnline"].as_bool()
        ),
        (Some("m1"), Some(false), Some(true))
    );
    let push = bw.recv_type("push");
    assert_eq!(push["messageId"], ack["messageId"]);
    assert_eq!(push["senderMemberPubkey"], mesh.admin.pubkey());
    assert_eq!(open(&push, &bob.key), "hello bob, this is secret");

    // And back, from a session key to the member key; the reply is sealed with the session's key.
    let skey = Keypair::generate();
    let mut bs = mesh.connect_session(&b, &bob, &skey);
    assert_eq!(a.recv_type("push")["event"], "peer_joined");
    let peers = a.request(json!({"type": "list_peers"}), "peers_list");
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pubkey"] == skey.public_hex().as_str() && p["peerRole"] == "session")
    );
    bs.send(&dm(&skey, &mesh.admin.pubkey(), "r1", "hi admin"));
    assert!(bs.recv_type("ack")["error"].is_null());
    let push = a.recv_type("push");
    assert_eq!(push["senderPubkey"], skey.public_hex());
    assert_eq!(open(&push, &mesh.admin.key), "hi admin");
}

#[test]
fn broker_stores_a_dm_for_an_offline_member_across_a_crash() {
    let dir = TempDir::new("restart");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "restart");
    let bob = mesh.join(&b, "bob");
    let mut a = mesh.connect(&b, &mesh.admin);
    a.send(&dm(
        &mesh.admin.key,
        &bob.pubkey(),
        "q1",
        "kept across kill -9",
    ));
    let ack = a.recv_type("ack");
    assert_eq!(
        (ack["queued"].as_bool(), ack["recipientOnline"].as_bool()),
        (Some(true), Some(false))
    );
    let data = b.data.clone();
    b.kill();

    let b = Broker::start_in(&data, &[]);
    let mut bw = mesh.connect(&b, &bob);
    let push = bw.recv_type("push");
    assert_eq!(push["messageId"], ack["messageId"]);
    assert_eq!(open(&push, &bob.key), "kept across kill -9");
    bw.send(&json!({"type": "client_ack", "brokerMessageId": push["messageId"]}));
    let mut a = mesh.connect(&b, &mesh.admin);
    let st = a.request(
        json!({"type": "message_status", "messageId": ack["messageId"]}),
        "message_status_result",
    );
    assert_eq!(st["delivered"], true);
}

#[test]
fn broker_fans_out_broadcasts_and_groups_as_per_recipient_copies() {
    let dir = TempDir::new("fanout");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "fanout");
    let bob = mesh.join(&b, "bob");
    let carol = mesh.join(&b, "carol");
    let mut a = mesh.connect(&b, &mesh.admin);
    let mut bw = mesh.connect(&b, &bob);
    let mut cw = mesh.connect(&b, &carol);

    let seal = |to: &crate::harness::Member, text: &str| {
        let (nonce, ct) =
            crypto::encrypt_dm(text.as_bytes(), &to.pubkey(), &mesh.admin.key).unwrap();
        json!({"to": to.pubkey(), "nonce": nonce, "ciphertext": ct})
    };
    let send = json!({"type": "send", "id": "all", "targetSpec": "*", "priority": "now", "nonce": "", "ciphertext": "",
        "copies": [seal(&bob, "broadcast for bob"), seal(&carol, "broadcast for carol")]});
    a.send(&send);
    assert_eq!(a.recv_type("ack")["queued"], false);
    let pb = bw.recv_type("push");
    let pc = cw.recv_type("push");
    assert_eq!(pb["messageId"], pc["messageId"]);
    assert_eq!(
        (pb["targetSpec"].as_str(), pc["targetSpec"].as_str()),
        (Some("*"), Some("*"))
    );
    assert_eq!(open(&pb, &bob.key), "broadcast for bob");
    assert_eq!(open(&pc, &carol.key), "broadcast for carol");

    // A group: carol joins eng/backend; the sender picks the group's members from the member list and seals
    // a copy to each. @eng (hierarchical) reaches her and not bob.
    cw.request(json!({"type": "join_group", "name": "eng/backend"}), "ack");
    let members = a.request(json!({"type": "members"}), "members_list");
    let in_eng: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"].as_str().unwrap().starts_with("eng"))
        })
        .map(|m| m["pubkey"].as_str().unwrap())
        .collect();
    assert_eq!(in_eng, [carol.pubkey()]);
    a.send(&json!({"type": "send", "id": "g", "targetSpec": "@eng", "priority": "now", "nonce": "", "ciphertext": "",
        "copies": [seal(&carol, "for the eng group")]}));
    a.recv_type("ack");
    let p = cw.recv_type("push");
    assert_eq!(
        (p["targetSpec"].as_str(), open(&p, &carol.key).as_str()),
        (Some("@eng"), "for the eng group")
    );
    assert!(
        bw.drain(Duration::from_millis(500))
            .iter()
            .all(|f| f["type"] != "push")
    );

    // A copy to someone outside the mesh is refused.
    a.send(&json!({"type": "send", "id": "bad", "targetSpec": "*", "priority": "now", "nonce": "", "ciphertext": "",
        "copies": [{"to": Keypair::generate().public_hex(), "nonce": "", "ciphertext": ""}]}));
    assert!(
        a.recv_type("ack")["error"]
            .as_str()
            .unwrap()
            .starts_with("not_member:")
    );

    // The copies are stored one row per recipient, none of them readable.
    drop(b);
    let db = rusqlite::Connection::open(dir.0.join("data/broker.db")).unwrap();
    let copies: i64 = db
        .query_row(
            "SELECT count(*) FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE m.target_spec = '*' AND d.ciphertext IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(copies, 2);
}

#[test]
fn broker_stores_a_repeated_client_message_id_once() {
    let dir = TempDir::new("dedupe");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "dedupe");
    let bob = mesh.join(&b, "bob");
    let mut a = mesh.connect(&b, &mesh.admin);
    let mut send = dm(&mesh.admin.key, &bob.pubkey(), "1", "once");
    send["client_message_id"] = "cmid-1".into();
    a.send(&send);
    let first = a.recv_type("ack");
    send["id"] = "2".into();
    a.send(&send);
    let again = a.recv_type("ack");
    assert_eq!(again["messageId"], first["messageId"]);
    assert_eq!(
        (again["id"].as_str(), again["duplicate"].as_bool()),
        (Some("2"), Some(true))
    );
    let mut bw = mesh.connect(&b, &bob);
    let pushes: Vec<Value> = bw
        .drain(Duration::from_millis(700))
        .into_iter()
        .filter(|f| f["type"] == "push")
        .collect();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0]["client_message_id"], "cmid-1");
}

#[test]
fn broker_rate_limits_sends_per_member() {
    let dir = TempDir::new("rate");
    let b = Broker::start(&dir, &["--rate-limit", "1:2"]);
    let mesh = Mesh::create(&b, "rate");
    let bob = mesh.join(&b, "bob");
    let mut a = mesh.connect(&b, &mesh.admin);
    let errors: Vec<Option<String>> = (0..3)
        .map(|i| {
            a.send(&dm(&mesh.admin.key, &bob.pubkey(), &i.to_string(), "x"));
            a.recv_type("ack")["error"].as_str().map(str::to_string)
        })
        .collect();
    assert!(errors[0].is_none() && errors[1].is_none(), "{errors:?}");
    assert!(
        errors[2].as_deref().unwrap().starts_with("rate_limit:"),
        "{errors:?}"
    );
    // The refusal says when a token is back: within the second a token takes at one a second.
    a.send(&dm(&mesh.admin.key, &bob.pubkey(), "3", "x"));
    let refused = a.recv_type("ack");
    let after = refused["retryAfterMs"].as_u64().unwrap_or(0);
    assert!((1..=1000).contains(&after), "{refused}");
    // The bucket is the member's, shared by all its connections.
    let mut a2 = mesh.connect(&b, &mesh.admin);
    a2.send(&dm(&mesh.admin.key, &bob.pubkey(), "4", "x"));
    assert!(
        a2.recv_type("ack")["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("rate_limit:"))
    );
    std::thread::sleep(Duration::from_millis(1100));
    a2.send(&dm(&mesh.admin.key, &bob.pubkey(), "5", "x"));
    assert!(a2.recv_type("ack")["error"].is_null());
}

#[test]
fn broker_closes_a_socket_that_sends_a_frame_over_64_kib() {
    let dir = TempDir::new("frame");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "frame");
    let bob = mesh.join(&b, "bob");
    let mut a = mesh.connect(&b, &mesh.admin);
    // Just under the limit is a normal send.
    let mut send = dm(&mesh.admin.key, &bob.pubkey(), "ok", "x");
    let room = 65_536 - send.to_string().len() - 100;
    send["padding"] = "p".repeat(room).into();
    a.send(&send);
    assert!(a.recv_type("ack")["error"].is_null());
    send["padding"] = "p".repeat(70 * 1024).into();
    a.send(&send);
    assert_eq!(a.recv_type("error")["code"], "payload_too_large");
    assert_eq!(a.expect_close().0, 1009);
}

#[test]
fn broker_redelivers_an_unacknowledged_push_after_the_lease() {
    let dir = TempDir::new("lease");
    let b = Broker::start(&dir, &["--lease", "1"]);
    let mesh = Mesh::create(&b, "lease");
    let bob = mesh.join(&b, "bob");
    let mut a = mesh.connect(&b, &mesh.admin);
    let mut bw = mesh.connect(&b, &bob);
    a.send(&dm(&mesh.admin.key, &bob.pubkey(), "l", "again and again"));
    let id = a.recv_type("ack")["messageId"].clone();
    assert_eq!(bw.recv_type("push")["messageId"], id);
    let again = bw
        .recv_within(Duration::from_secs(4))
        .expect("pushed again after the lease");
    assert_eq!(
        (again["type"].as_str(), &again["messageId"]),
        (Some("push"), &id)
    );
    bw.send(&json!({"type": "client_ack", "brokerMessageId": id}));
    let later = bw.drain(Duration::from_secs(4));
    assert!(
        later.iter().all(|f| f["type"] != "push"),
        "no push after the ack: {later:?}"
    );
}

#[test]
fn broker_database_holds_no_dm_plaintext() {
    let dir = TempDir::new("plaintext");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "plaintext");
    let bob = mesh.join(&b, "bob");
    let mut a = mesh.connect(&b, &mesh.admin);
    const SECRET: &str = "the-launch-code-is-0451";
    a.send(&dm(&mesh.admin.key, &bob.pubkey(), "p1", SECRET));
    a.recv_type("ack");
    let (nonce, ct) =
        crypto::encrypt_dm(SECRET.as_bytes(), &bob.pubkey(), &mesh.admin.key).unwrap();
    a.send(&json!({"type": "send", "id": "p2", "targetSpec": "*", "priority": "next", "nonce": "", "ciphertext": "",
        "copies": [{"to": bob.pubkey(), "nonce": nonce, "ciphertext": ct}]}));
    a.recv_type("ack");
    let mut bw: Ws = mesh.connect(&b, &bob);
    let push = bw.recv_type("push");
    assert_eq!(open(&push, &bob.key), SECRET);
    let bytes = b.db_bytes();
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, SECRET.as_bytes()),
        "plaintext found in the database files"
    );
    assert!(!contains(
        &bytes,
        crypto::b64::encode(SECRET.as_bytes()).as_bytes()
    ));
}

#[test]
fn broker_http_health_metrics_and_mesh_creation_rules() {
    let dir = TempDir::new("http");
    let b = Broker::start(&dir, &["--admin-token", "t0ken"]);
    // A set admin token binds loopback too (a reverse proxy on this host makes every request loopback).
    let body = |n: &str| crate::harness::create_body(n, &Keypair::generate(), &Keypair::generate());
    let code = |v: &Value| v["error"].as_str().map(str::to_owned);
    let (s, v) = b.post("/cli/mesh/create", &body("tok"), &[]);
    assert_eq!(
        (s, code(&v).as_deref()),
        (401, Some("missing_bearer_token")),
        "{v}"
    );
    let (s, v) = b.post(
        "/cli/mesh/create",
        &body("tok"),
        &[("Authorization", "Bearer nope")],
    );
    assert_eq!(
        (s, code(&v).as_deref()),
        (403, Some("invalid_admin_token")),
        "{v}"
    );
    let (s, v) = b.post(
        "/cli/mesh/create",
        &body("tok"),
        &[("Authorization", "Bearer t0ken")],
    );
    assert_eq!(s, 200, "{v}");
    let dir = TempDir::new("http-open");
    let b = Broker::start(&dir, &[]);
    let (status, body) = b.get("/health");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, health["status"].as_str(), health["store"].as_str()),
        (200, Some("ok"), Some("ok"))
    );
    let (status, body) = b.get("/nowhere");
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap()["ok"].as_bool()
        ),
        (404, Some(false))
    );
    let mesh = Mesh::create(&b, "Http Mesh");
    assert_eq!(mesh.slug, "http-mesh");
    assert_eq!(Mesh::create(&b, "http mesh").slug, "http-mesh-2");
    let (status, body) = b.get("/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("claudemesh_deliveries_pending 0"), "{body}");
    assert!(
        body.contains("# TYPE claudemesh_connections gauge"),
        "{body}"
    );
    // /join is idempotent for a member and refuses a used-up invite.
    let (token, payload) = mesh.invite(&b, 1, "member");
    let key = Keypair::generate();
    let join = json!({"invite_token": token, "invite_payload": payload, "peer_pubkey": key.public_hex(), "display_name": "d"});
    let (s1, v1) = b.post("/join", &join, &[]);
    let (s2, v2) = b.post("/join", &join, &[]);
    assert_eq!(
        (
            s1,
            s2,
            v2["alreadyMember"].as_bool(),
            v1["memberId"] == v2["memberId"]
        ),
        (200, 200, Some(true), true)
    );
    let mut other = join.clone();
    other["peer_pubkey"] = Keypair::generate().public_hex().into();
    assert_eq!(
        b.post("/join", &other, &[]),
        (400, json!({"ok": false, "error": "invite_exhausted"}))
    );
}

/// Not a check but a measurement: `cargo test --release --test it broker_measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn broker_measure_throughput_and_idle_memory() {
    let dir = TempDir::new("measure");
    let b = Broker::start(&dir, &["--rate-limit", "0", "--max-conns-per-mesh", "5000"]);
    let mesh = Mesh::create(&b, "measure");
    let bob = mesh.join(&b, "bob");
    let mut bw = mesh.connect(&b, &bob);
    const SENDERS: usize = 4;
    const EACH: usize = 2000;
    let frames: Vec<String> = (0..EACH)
        .map(|i| dm(&mesh.admin.key, &bob.pubkey(), &i.to_string(), "ping").to_string())
        .collect();
    let mut senders: Vec<Ws> = (0..SENDERS)
        .map(|_| mesh.connect(&b, &mesh.admin))
        .collect();
    let start = std::time::Instant::now();
    let threads: Vec<_> = senders
        .drain(..)
        .map(|mut ws| {
            let frames = frames.clone();
            std::thread::spawn(move || {
                for f in frames {
                    ws.send_raw(f);
                }
                (0..EACH).for_each(|_| {
                    ws.recv_type("ack");
                })
            })
        })
        .collect();
    let mut pushed = 0;
    while pushed < SENDERS * EACH {
        let p = bw.recv_type("push");
        bw.send(&json!({"type": "client_ack", "brokerMessageId": p["messageId"]}));
        pushed += 1;
    }
    threads.into_iter().for_each(|t| t.join().unwrap());
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} DMs stored, acked, pushed and client-acked in {secs:.2}s: {:.0}/s",
        SENDERS * EACH,
        (SENDERS * EACH) as f64 / secs
    );

    let before = b.rss_kib();
    const IDLE: usize = 1000;
    // Control-plane presences: sessions in one mesh would also measure the n² peer_joined announcements.
    let idle: Vec<Ws> = (0..IDLE).map(|_| mesh.connect(&b, &bob)).collect();
    let after = b.rss_kib();
    println!(
        "{IDLE} idle connections: RSS {before} KiB -> {after} KiB, {:.1} KiB each",
        (after - before) as f64 / IDLE as f64
    );
    drop(idle);
}

#[test]
fn sigterm_stops_the_broker_with_0_and_ctrl_c_with_130() {
    let dir = TempDir::new("broker-signals");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "signals");
    let bob = mesh.join(&b, "bob");
    let mut ws = mesh.connect(&b, &bob);
    let log = b.log.clone();
    assert_eq!(b.signal(libc::SIGTERM), Some(0));
    // Connections are closed with 1001, going away.
    ws.recv_within(Duration::from_secs(5));
    assert_eq!(ws.closed.as_ref().map(|c| c.0), Some(1001));
    assert!(std::fs::read_to_string(&log).unwrap().contains("SIGTERM"));

    let b = Broker::start_in(&dir.0.join("data"), &[]);
    assert_eq!(b.signal(libc::SIGINT), Some(130));
    assert!(std::fs::read_to_string(&log).unwrap().contains("SIGINT"));
}

/// What an operator's load balancer and Prometheus see when the database stops answering the store's probe
/// query: here a hand-made change under the running broker (`sqlite3 broker.db` renaming the table the probe
/// reads) makes that query fail; once it is undone, both say healthy again with no restart.
#[test]
fn health_and_metrics_report_a_store_that_stops_answering() {
    let dir = TempDir::new("store-health");
    let b = Broker::start(&dir, &[]);
    let scrape = |b: &Broker| {
        let (status, text) = b.get("/metrics");
        assert_eq!(status, 200);
        let up = text
            .lines()
            .find_map(|l| l.strip_prefix("claudemesh_store_up "))
            .map(str::to_string);
        assert!(
            text.lines()
                .any(|l| l.starts_with("claudemesh_store_probe_seconds ")),
            "{text}"
        );
        up
    };
    let (status, body) = b.get("/health");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &health["store"]), (200, &json!("ok")), "{health}");
    assert!(health["store_ms"].as_f64().is_some(), "{health}");
    assert_eq!(scrape(&b).as_deref(), Some("1"));

    let db = rusqlite::Connection::open(b.data.join("broker.db")).unwrap();
    let alter = |sql: &str| {
        db.execute_batch(&format!(
            "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON; {sql}"
        ))
        .unwrap()
    };
    alter("ALTER TABLE meshes RENAME TO meshes_away;");
    let (status, body) = b.get("/health");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 503, "{health}");
    assert_eq!(
        (&health["status"], &health["store"]),
        (&json!("error"), &json!("error"))
    );
    assert!(
        health["store_error"]
            .as_str()
            .is_some_and(|e| e.contains("meshes")),
        "{health}"
    );
    assert_eq!(scrape(&b).as_deref(), Some("0"));

    alter("ALTER TABLE meshes_away RENAME TO meshes;");
    let (status, body) = b.get("/health");
    assert_eq!(status, 200, "{body}");
    assert_eq!(scrape(&b).as_deref(), Some("1"));
}

/// The unit an operator installs: its ExecStart is a command line cm-broker takes (run here with a free port and a
/// temporary data directory in place of its own), its reload is SIGHUP, and it keeps the hardening it promises.
#[test]
fn the_systemd_unit_runs_a_broker_that_reloads_on_sighup() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/cm-broker.service"),
    )
    .unwrap();
    let value = |key: &str| -> Vec<&str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    };
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "claudemesh-broker"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(value(key), [want], "{key}");
    }
    let exec = value("ExecStart");
    let mut args: Vec<String> = exec[0].split_whitespace().map(str::to_string).collect();
    assert_eq!(args.remove(0), "/usr/local/bin/cm-broker");
    let dir = TempDir::new("systemd-unit");
    for (flag, with) in [
        ("--listen", "127.0.0.1:0".to_string()),
        ("--data", dir.0.join("state").display().to_string()),
    ] {
        let i = args.iter().position(|a| a == flag).unwrap();
        assert_eq!(
            (flag, args[i + 1].as_str()),
            (
                flag,
                if flag == "--data" {
                    "/var/lib/claudemesh-broker"
                } else {
                    "127.0.0.1:7900"
                }
            )
        );
        args[i + 1] = with;
    }
    let mut child = std::process::Command::new(crate::harness::bin("cm-broker"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening on ws://127.0.0.1:"), "{line}");
    let pid = child.id() as libc::pid_t;
    // SAFETY: signals to this test's own running child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let addr = line.trim().trim_start_matches("listening on ws://");
    let addr = addr.trim_end_matches("/ws");
    let health = ureq::get(&format!("http://{addr}/health")).call().unwrap();
    assert_eq!(health.status(), 200, "a reload does not stop the broker");
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));

    let man = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/cm-broker.8"),
    )
    .unwrap();
    let see_also = &man[man.find(".SH SEE ALSO").unwrap()..];
    assert!(
        see_also.contains("contrib/systemd/cm\\-broker.service"),
        "{see_also}"
    );
}
