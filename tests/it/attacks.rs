//! Attacks on a real broker and on the tools: forged and replayed signatures, members of other meshes, revoked
//! members, session keys without attestation, SQL metacharacters, path traversal; each refused with its code and
//! logged. Then what is left behind: no plaintext in the broker's data directory, private files everywhere, and
//! no secret key in any tool's output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use claudemesh::config::Paths;
use claudemesh::crypto::{self, Keypair, b64};
use claudemesh::time::now_ms;
use claudemesh::wire;
use serde_json::{Value, json};

use crate::harness::{Broker, Member, Mesh, TempDir, User, Ws, sign_invite};
use crate::peer::Run;

fn dm(from: &Keypair, to: &str, id: &str, text: &str) -> Value {
    let (nonce, ct) = crypto::encrypt_dm(text.as_bytes(), to, from).unwrap();
    json!({"type": "send", "id": id, "targetSpec": to, "priority": "now", "nonce": nonce, "ciphertext": ct})
}

/// Sends `frame` on a fresh socket: the refusal's code and the close code.
fn refused(b: &Broker, frame: &Value) -> (String, u16) {
    let mut ws = b.ws();
    ws.send(frame);
    let err = ws.recv_type("error");
    (
        err["code"].as_str().unwrap().to_string(),
        ws.expect_close().0,
    )
}

/// The broker logged a refusal with this code.
fn logged(b: &Broker, what: &str, code: &str) {
    let log = b.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(what) && l.contains(&format!("code={code}"))),
        "no {what:?} line with code={code} in the log:\n{log}"
    );
}

fn ack_error(ws: &mut Ws, id: &str) -> String {
    loop {
        let a = ws.recv_type("ack");
        if a["id"] == id {
            return a["error"].as_str().unwrap_or_default().to_string();
        }
    }
}

#[test]
fn attacks_refusals_were_not_logged() {
    let dir = TempDir::new("unlogged");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "unlogged");
    let bob = mesh.join(&b, "bob");
    let mut bad = mesh.hello_frame(&bob, json!({}));
    bad["signature"] = "ab".repeat(64).into();
    assert_eq!(refused(&b, &bad).0, "bad_signature");
    logged(&b, "hello refused", "bad_signature");
    let mut ws = mesh.connect(&b, &bob);
    let stranger = Keypair::generate().public_hex();
    ws.send(&json!({"type": "send", "id": "s", "targetSpec": "*", "priority": "now", "nonce": "", "ciphertext": "",
        "copies": [{"to": stranger, "nonce": "", "ciphertext": ""}]}));
    assert!(ack_error(&mut ws, "s").starts_with("not_member:"));
    logged(&b, "send refused", "not_member");
    assert_eq!(
        ws.request(json!({"type": "ban", "target": "admin"}), "error")["code"],
        "forbidden"
    );
    logged(&b, "request refused", "forbidden");
    assert_eq!(b.post("/join", &json!({}), &[]).0, 400);
    assert!(
        b.log_text()
            .lines()
            .any(|l| l.contains("http request refused")
                && l.contains("path=/join")
                && l.contains("status=400")),
        "{}",
        b.log_text()
    );
}

#[test]
fn attacks_forged_and_replayed_signatures_are_refused_and_logged() {
    let dir = TempDir::new("forge");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "forge");
    let bob = mesh.join(&b, "bob");
    let mallory = Keypair::generate();

    // Bob's hello, signed by someone else.
    let mut forged = mesh.hello_frame(&bob, json!({}));
    let ts = forged["timestamp"].as_i64().unwrap();
    forged["signature"] = mallory
        .sign_hex(&wire::hello_signed(&mesh.id, &bob.id, &bob.pubkey(), ts))
        .into();
    assert_eq!(refused(&b, &forged), ("bad_signature".into(), 1008));
    // A captured hello, replayed after the skew window (signed 61 s ago).
    let old = now_ms() - 61_000;
    let mut replay = mesh.hello_frame(&bob, json!({}));
    replay["timestamp"] = old.into();
    replay["signature"] = bob
        .key
        .sign_hex(&wire::hello_signed(&mesh.id, &bob.id, &bob.pubkey(), old))
        .into();
    assert_eq!(refused(&b, &replay), ("timestamp_skew".into(), 1008));
    // The same capture with its timestamp moved forward: the signature no longer matches.
    replay["timestamp"] = now_ms().into();
    assert_eq!(refused(&b, &replay), ("bad_signature".into(), 1008));
    // A valid hello carried into another mesh or another member's id.
    let other = Mesh::create(&b, "other");
    let mut moved = mesh.hello_frame(&bob, json!({}));
    moved["meshId"] = other.id.clone().into();
    assert_eq!(refused(&b, &moved), ("bad_signature".into(), 1008));

    // Session hellos: an attestation signed by a stranger, an expired one replayed, one rewritten for another
    // session key, and a session hello signed by the member key instead of the session key.
    let s = Keypair::generate();
    let exp = now_ms() + 3_600_000;
    let mut f = mesh.session_frame(&bob, &s, exp, json!({}));
    f["parentAttestation"]["signature"] = mallory
        .sign_hex(&wire::attestation_signed(
            &bob.pubkey(),
            &s.public_hex(),
            exp,
        ))
        .into();
    assert_eq!(refused(&b, &f), ("bad_signature".into(), 1008));
    let f = mesh.session_frame(&bob, &s, now_ms() - 1_000, json!({}));
    assert_eq!(refused(&b, &f), ("expired".into(), 1008));
    let s2 = Keypair::generate();
    let mut f = mesh.session_frame(&bob, &s, exp, json!({}));
    let sig = s2.sign_hex(&wire::session_hello_signed(
        &mesh.id,
        &bob.pubkey(),
        &s2.public_hex(),
        f["timestamp"].as_i64().unwrap(),
    ));
    f["sessionPubkey"] = s2.public_hex().into();
    f["parentAttestation"]["sessionPubkey"] = s2.public_hex().into();
    f["signature"] = sig.into();
    assert_eq!(refused(&b, &f), ("bad_signature".into(), 1008));
    let mut f = mesh.session_frame(&bob, &s, exp, json!({}));
    f["signature"] = bob
        .key
        .sign_hex(&wire::session_hello_signed(
            &mesh.id,
            &bob.pubkey(),
            &s.public_hex(),
            f["timestamp"].as_i64().unwrap(),
        ))
        .into();
    assert_eq!(refused(&b, &f), ("bad_signature".into(), 1008));

    // HTTP: a mesh creation signed by the wrong key, a stale one, an invite registered by a non-owner, and
    // /join with a forged or tampered invite.
    let creator = Keypair::generate();
    let mut body = crate::harness::create_body("x", &creator, &Keypair::generate());
    body["signature"] = mallory.sign_hex("nothing").into();
    assert_eq!(b.post("/cli/mesh/create", &body, &[]).0, 401);
    let mut body = crate::harness::create_body("x", &creator, &Keypair::generate());
    body["timestamp"] = (now_ms() - 120_000).into();
    assert_eq!(
        b.post("/cli/mesh/create", &body, &[]),
        (401, json!({"ok": false, "error": "timestamp_skew"}))
    );
    let (token, payload) = mesh.invite(&b, 5, "member");
    let ts = now_ms();
    let reg = json!({"meshId": mesh.id, "token": format!("{token}x"), "maxUses": 5, "timestamp": ts,
        "signature": mallory.sign_hex(&wire::invite_register_signed(&mesh.id, &format!("{token}x"), 5, ts))});
    assert_eq!(b.post("/cli/mesh/invite", &reg, &[]).0, 401);
    let mut tampered = payload.clone();
    tampered["role"] = "admin".into();
    let join = |p: &Value| {
        json!({"invite_token": token, "invite_payload": p, "peer_pubkey": Keypair::generate().public_hex(),
               "display_name": "eve"})
    };
    assert_eq!(
        b.post("/join", &join(&tampered), &[]),
        (400, json!({"ok": false, "error": "invite_bad_signature"}))
    );
    let mut forged = payload.clone();
    forged["owner_pubkey"] = mallory.public_hex().into();
    sign_invite(&mallory, &mut forged);
    assert_eq!(
        b.post("/join", &join(&forged), &[]),
        (400, json!({"ok": false, "error": "invite_owner_mismatch"}))
    );

    // Nothing got in, and each refusal is in the log.
    for code in ["bad_signature", "timestamp_skew", "expired"] {
        logged(&b, "hello refused", code);
    }
    let log = b.log_text();
    for (path, error) in [
        ("/cli/mesh/create", "timestamp_skew"),
        ("/cli/mesh/invite", "bad_signature"),
        ("/join", "invite_bad_signature"),
        ("/join", "invite_owner_mismatch"),
    ] {
        assert!(
            log.lines().any(|l| l.contains("http request refused")
                && l.contains(&format!("path={path}"))
                && l.contains(&format!("error={error}"))),
            "{path} {error} not logged:\n{log}"
        );
    }
    let mut a = mesh.connect(&b, &mesh.admin);
    let members = a.request(json!({"type": "members"}), "members_list");
    assert_eq!(members["members"].as_array().unwrap().len(), 2);
}

#[test]
fn attacks_a_captured_hello_is_accepted_once() {
    let dir = TempDir::new("hello-replay");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "replay");
    let bob = mesh.join(&b, "bob");

    // A member hello, captured on the way and sent again within the skew window.
    let hello = mesh.hello_frame(&bob, json!({}));
    let mut real = b.ws();
    real.send(&hello);
    real.recv_type("hello_ack");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(refused(&b, &hello), ("replayed".into(), 1008));
    assert!(real.request(json!({"type": "list_peers"}), "peers_list")["peers"].is_array());

    // A session hello, the same: the replay is refused and the real session keeps its socket and its pushes.
    let s = Keypair::generate();
    let frame = mesh.session_frame(&bob, &s, now_ms() + 3_600_000, json!({}));
    let mut session = b.ws();
    session.send(&frame);
    session.recv_type("hello_ack");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(refused(&b, &frame), ("replayed".into(), 1008));
    let mut admin = mesh.connect(&b, &mesh.admin);
    admin.send(&dm(
        &mesh.admin.key,
        &s.public_hex(),
        "to-session",
        "still yours",
    ));
    assert_eq!(ack_error(&mut admin, "to-session"), "");
    let push = session.recv_type("push");
    assert_eq!(push["senderPubkey"], mesh.admin.pubkey().as_str());

    // The holder of the key signs a new hello and gets in, as ever.
    let mut again = mesh.connect_session(&b, &bob, &s);
    assert!(again.request(json!({"type": "list_peers"}), "peers_list")["peers"].is_array());
    logged(&b, "hello refused", "replayed");
}

/// Each member's role, by display name.
fn roles(b: &Broker, mesh: &Mesh) -> Vec<(String, String)> {
    let mut a = mesh.connect(b, &mesh.admin);
    let list = a.request(json!({"type": "members"}), "members_list");
    let mut roles: Vec<(String, String)> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("displayName"), s("role"))
        })
        .collect();
    roles.sort();
    roles
}

#[test]
fn attacks_invite_fields_come_from_its_token_and_the_stored_invite() {
    let dir = TempDir::new("invite-mix");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "mix");
    let other = Mesh::create(&b, "other");
    let join = |token: &str, payload: &Value, name: &str| {
        b.post(
            "/join",
            &json!({"invite_token": token, "invite_payload": payload,
                    "peer_pubkey": Keypair::generate().public_hex(), "display_name": name}),
            &[],
        )
    };
    let mismatch = (400, json!({"ok": false, "error": "invite_mismatch"}));

    // An admin invite of one use, used; a member invite of five.
    let (admin_token, admin_payload) = mesh.invite(&b, 1, "admin");
    assert_eq!(join(&admin_token, &admin_payload, "carol").0, 200);
    let (token, payload) = mesh.invite(&b, 5, "member");

    // The member invite's token with the used admin invite's payload: the reported escalation.
    assert_eq!(join(&token, &admin_payload, "eve"), mismatch);
    // An admin payload the owner signed but never registered.
    assert_eq!(
        join(&token, &mesh.invite_payload(&b, "admin"), "eve"),
        mismatch
    );
    // Every field the owner signs, changed and signed again by the owner.
    for (field, value) in [
        ("role", json!("admin")),
        ("expires_at", json!(now_ms() / 1000 + 86_400 * 365)),
        ("mesh_slug", json!("elsewhere")),
        ("broker_url", json!("ws://203.0.113.1/ws")),
        ("mesh_root_key", json!(b64::encode_url(&[7u8; 32]))),
        ("v", json!(2)),
    ] {
        let mut p = payload.clone();
        p[field] = value;
        sign_invite(&mesh.owner, &mut p);
        assert_eq!(join(&token, &p, "eve"), mismatch, "{field}");
    }
    // A key the signature does not cover.
    let mut p = payload.clone();
    p["max_uses"] = json!(1000);
    assert_eq!(join(&token, &p, "eve"), mismatch);
    // The exhausted admin token with the live member payload.
    assert_eq!(join(&admin_token, &payload, "eve"), mismatch);
    // Two meshes mixed: the other mesh's token with this mesh's payload, and the reverse.
    let (other_token, other_payload) = other.invite(&b, 5, "admin");
    assert_eq!(
        join(&other_token, &payload, "eve"),
        (400, json!({"ok": false, "error": "invite_mesh_mismatch"}))
    );
    assert_eq!(
        join(&token, &other_payload, "eve"),
        (400, json!({"ok": false, "error": "invite_mesh_mismatch"}))
    );

    // None of that used the member invite: its five uses are all left, each as a member.
    for name in ["m1", "m2", "m3", "m4", "m5"] {
        assert_eq!(join(&token, &payload, name).0, 200, "{name}");
    }
    assert_eq!(
        join(&token, &payload, "m6"),
        (400, json!({"ok": false, "error": "invite_exhausted"}))
    );
    let want: Vec<(String, String)> = [
        ("admin", "admin"),
        ("carol", "admin"),
        ("m1", "member"),
        ("m2", "member"),
        ("m3", "member"),
        ("m4", "member"),
        ("m5", "member"),
    ]
    .iter()
    .map(|(n, r)| (n.to_string(), r.to_string()))
    .collect();
    assert_eq!(roles(&b, &mesh), want);
    let log = b.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("invite mismatch") && l.contains("fields=role,signature")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("http request refused")
            && l.contains("path=/join")
            && l.contains("error=invite_mismatch")),
        "{log}"
    );
}

#[test]
fn attacks_member_of_another_mesh_gets_nothing() {
    let dir = TempDir::new("othermesh");
    let b = Broker::start(&dir, &[]);
    let a_mesh = Mesh::create(&b, "alpha");
    let bob = a_mesh.join(&b, "bob");
    let b_mesh = Mesh::create(&b, "beta");
    let carol = b_mesh.join(&b, "carol");

    // Carol's own valid signature, into mesh alpha: she is not a member there.
    let carol_in_alpha = Member {
        key: carol.key.clone(),
        id: carol.id.clone(),
        name: "carol".into(),
    };
    assert_eq!(
        refused(&b, &a_mesh.hello_frame(&carol_in_alpha, json!({}))),
        ("unauthorized".into(), 1008)
    );
    let cs = Keypair::generate();
    assert_eq!(
        refused(
            &b,
            &a_mesh.session_frame(&carol_in_alpha, &cs, now_ms() + 60_000, json!({}))
        ),
        ("unauthorized".into(), 1008)
    );
    logged(&b, "hello refused", "unauthorized");

    // In her own mesh she cannot reach into alpha: not by key, not by sealed copy, not by message id or ack.
    let mut admin = a_mesh.connect(&b, &a_mesh.admin);
    admin.send(&dm(&a_mesh.admin.key, &bob.pubkey(), "a1", "alpha only"));
    let alpha_msg = admin.recv_type("ack")["messageId"]
        .as_str()
        .unwrap()
        .to_string();
    let bs = Keypair::generate();
    let mut bob_session = a_mesh.connect_session(&b, &bob, &bs);
    bob_session.recv_type("push");
    let mut c = b_mesh.connect(&b, &carol);
    c.send(&dm(&carol.key, &bob.pubkey(), "x1", "hi bob"));
    assert!(ack_error(&mut c, "x1").starts_with("unknown target:"));
    c.send(&dm(&carol.key, &bs.public_hex(), "x2", "hi bob's session"));
    assert!(ack_error(&mut c, "x2").starts_with("unknown target:"));
    let (nonce, ct) = crypto::encrypt_dm(b"copy", &bob.pubkey(), &carol.key).unwrap();
    c.send(&json!({"type": "send", "id": "x3", "targetSpec": "*", "priority": "now", "nonce": "", "ciphertext": "",
        "copies": [{"to": bob.pubkey(), "nonce": nonce, "ciphertext": ct}]}));
    assert!(ack_error(&mut c, "x3").starts_with("not_member:"));
    logged(&b, "send refused", "not_member");
    let st = c.request(
        json!({"type": "message_status", "messageId": alpha_msg}),
        "error",
    );
    assert_eq!(st["code"], "not_found");
    c.send(&json!({"type": "client_ack", "brokerMessageId": alpha_msg}));
    let inbox = c.request(
        json!({"type": "inbox_fetch", "sessionPubkey": bs.public_hex()}),
        "inbox",
    );
    assert_eq!(inbox["messages"], json!([]));
    let peers = c.request(json!({"type": "list_peers"}), "peers_list");
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["memberPubkey"] == carol.pubkey().as_str()),
        "{peers}"
    );
    let members = c.request(json!({"type": "members"}), "members_list");
    assert!(!members.to_string().contains(&bob.pubkey()));
    // Carol's ack changed nothing: the message still waits for bob.
    let st = admin.request(
        json!({"type": "message_status", "messageId": alpha_msg}),
        "message_status_result",
    );
    assert_eq!(st["delivered"], false, "{st}");
}

#[test]
fn attacks_revoked_member_is_refused_everywhere() {
    let dir = TempDir::new("revoked");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "revoked");
    let bob = mesh.join(&b, "bob");
    let dave = mesh.join(&b, "dave");
    let bs = Keypair::generate();
    let mut bob_member = mesh.connect(&b, &bob);
    let mut bob_session = mesh.connect_session(&b, &bob, &bs);
    let mut admin = mesh.connect(&b, &mesh.admin);

    // Not an admin: refused, and logged.
    let mut d = mesh.connect(&b, &dave);
    let e = d.request(json!({"type": "ban", "target": "bob"}), "error");
    assert_eq!(e["code"], "forbidden");
    logged(&b, "request refused", "forbidden");

    let ack = admin.request(json!({"type": "ban", "target": "bob"}), "ban_ack");
    assert_eq!(ack["banned"], "bob");
    assert_eq!(bob_member.expect_close().0, 4002);
    assert_eq!(bob_session.expect_close().0, 4002);
    assert_eq!(
        refused(&b, &mesh.hello_frame(&bob, json!({}))),
        ("revoked".into(), 4002)
    );
    let s2 = Keypair::generate();
    assert_eq!(
        refused(
            &b,
            &mesh.session_frame(&bob, &s2, now_ms() + 60_000, json!({}))
        ),
        ("revoked".into(), 4002)
    );
    logged(&b, "hello refused", "revoked");
    // Nobody can still write to bob, not even to the session key the broker remembers.
    admin.send(&dm(&mesh.admin.key, &bob.pubkey(), "r1", "gone"));
    assert!(ack_error(&mut admin, "r1").starts_with("unknown target:"));
    admin.send(&dm(&mesh.admin.key, &bs.public_hex(), "r2", "gone"));
    assert!(ack_error(&mut admin, "r2").starts_with("unknown target:"));
    // A fresh invite does not undo a ban.
    let (token, payload) = mesh.invite(&b, 1, "member");
    let body = json!({"invite_token": token, "invite_payload": payload, "peer_pubkey": bob.pubkey(),
                      "display_name": "bob again"});
    assert_eq!(
        b.post("/join", &body, &[]),
        (403, json!({"ok": false, "error": "member_revoked"}))
    );
}

#[test]
fn attacks_session_key_without_attestation_is_not_trusted() {
    let dir = TempDir::new("noattest");
    let b = Broker::start(&dir, &[]);
    let mesh = Mesh::create(&b, "noattest");
    let bob = mesh.join(&b, "bob");
    let stolen = Keypair::generate();

    // A plain hello naming a session key: the connection is the member's, the key is not taken.
    let mut ws = b.ws();
    ws.send(&mesh.hello_frame(&bob, json!({"sessionPubkey": stolen.public_hex()})));
    ws.recv_type("hello_ack");
    let peers = ws.request(json!({"type": "list_peers"}), "peers_list");
    assert!(!peers.to_string().contains(&stolen.public_hex()), "{peers}");
    let mut a = mesh.connect(&b, &mesh.admin);
    a.send(&dm(
        &mesh.admin.key,
        &stolen.public_hex(),
        "n1",
        "to nobody",
    ));
    assert!(ack_error(&mut a, "n1").starts_with("unknown target:"));

    // session_hello with no attestation, a self-signed one, and one by a key that is not a member.
    let exp = now_ms() + 60_000;
    let mut f = mesh.session_frame(&bob, &stolen, exp, json!({}));
    f.as_object_mut().unwrap().remove("parentAttestation");
    assert_eq!(refused(&b, &f), ("attestation_mismatch".into(), 1008));
    let mut f = mesh.session_frame(&bob, &stolen, exp, json!({}));
    f["parentAttestation"]["signature"] = stolen
        .sign_hex(&wire::attestation_signed(
            &bob.pubkey(),
            &stolen.public_hex(),
            exp,
        ))
        .into();
    assert_eq!(refused(&b, &f), ("bad_signature".into(), 1008));
    let outsider = Member {
        key: Keypair::generate(),
        id: bob.id.clone(),
        name: "outsider".into(),
    };
    let f = mesh.session_frame(&outsider, &stolen, exp, json!({"parentMemberId": null}));
    assert_eq!(refused(&b, &f), ("unauthorized".into(), 1008));
    logged(&b, "hello refused", "attestation_mismatch");
}

#[test]
fn attacks_sql_metacharacters_are_only_data() {
    let dir = TempDir::new("sql");
    let b = Broker::start(&dir, &[]);
    let nasty = "x'); DROP TABLE members; --";
    let mesh = Mesh::create(&b, nasty);
    assert_eq!(mesh.slug, "x-drop-table-members");
    let name = "Robert'); DROP TABLE messages;-- \"%_\\";
    let bob = mesh.join(&b, name);
    let mut bw = b.ws();
    bw.send(&mesh.hello_frame(
        &bob,
        json!({"displayName": "' OR '1'='1", "sessionId": "'; DELETE FROM deliveries; --",
               "cwd": "/tmp/'\"", "groups": [{"name": "eng' OR 1=1 --"}]}),
    ));
    bw.recv_type("hello_ack");
    bw.request(
        json!({"type": "join_group", "name": "a%'_\";DROP/**/TABLE/**/meshes--"}),
        "ack",
    );
    let mut a = mesh.connect(&b, &mesh.admin);
    let mut send = dm(&mesh.admin.key, &bob.pubkey(), "q1", "hello");
    send["client_message_id"] = "' OR '1'='1".into();
    a.send(&send);
    let first = a.recv_type("ack");
    assert!(first["error"].is_null(), "{first}");
    let mut again = send.clone();
    again["id"] = "q2".into();
    a.send(&again);
    let dup = a.recv_type("ack");
    assert_eq!(
        (&dup["messageId"], &dup["duplicate"]),
        (&first["messageId"], &json!(true))
    );
    // A second id that only a wildcard or an injected OR would match is a different message.
    send["client_message_id"] = "%".into();
    send["id"] = "q3".into();
    a.send(&send);
    let other = a.recv_type("ack");
    assert_ne!(other["messageId"], first["messageId"]);
    assert_eq!(
        a.request(
            json!({"type": "message_status", "messageId": "%' OR 1=1"}),
            "error"
        )["code"],
        "invalid_argument"
    );
    a.send(&json!({"type": "send", "id": "t", "targetSpec": "#x' OR 1=1", "priority": "now", "nonce": "", "ciphertext": ""}));
    assert!(ack_error(&mut a, "t").starts_with("unknown target:"));
    // Bans by a name full of metacharacters match that name only.
    let e = a.request(json!({"type": "ban", "target": "%"}), "error");
    assert_eq!(e["code"], "not_found");

    // Names come back exactly as given, and every table is there.
    let members = a.request(json!({"type": "members"}), "members_list");
    assert!(
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["displayName"] == name),
        "{members}"
    );
    let peers = a.request(json!({"type": "list_peers"}), "peers_list");
    let bp = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["memberPubkey"] == bob.pubkey().as_str())
        .unwrap()
        .clone();
    assert_eq!(bp["displayName"], "' OR '1'='1");
    assert_eq!(bp["sessionId"], "'; DELETE FROM deliveries; --");
    assert!(
        bp["groups"]
            .to_string()
            .contains("a%'_\\\";DROP/**/TABLE/**/meshes--")
    );
    drop(bw);
    let data = b.data.clone();
    b.kill();
    let db = rusqlite::Connection::open(data.join("broker.db")).unwrap();
    for t in [
        "meshes",
        "members",
        "messages",
        "deliveries",
        "sessions",
        "invites",
    ] {
        let n: i64 = db
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap();
        assert!(n >= 1 || t == "sessions", "{t} is empty");
    }
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn attacks_path_traversal_in_names_is_refused() {
    let dir = TempDir::new("paths");
    let b = Broker::start(&dir, &[]);
    let mut peers = Mesh::new(&b, &["alice"]);
    let alice = &mut peers[0];
    let outside = dir.0.join("escaped");
    for id in ["../../escaped", "..", "a/b", &"a".repeat(200)] {
        alice.env = vec![("CLAUDEMESH_SESSION_ID".into(), id.into())];
        let r = alice.run_with("cm-pipe", &[], "");
        assert_eq!(r.code, Some(3), "{id:?}: {r:?}");
        assert!(r.err.contains("invalid session id"), "{id:?}: {}", r.err);
        let r = alice.run("cm-send", &["alice", "x"]);
        assert_eq!(r.code, Some(3), "{id:?}: {r:?}");
    }
    assert!(!outside.exists());
    assert!(!alice.config_dir().join("sessions").exists());
    // A mesh slug from a hostile invite cannot name a path either.
    let paths = Paths::at(alice.config_dir()).unwrap();
    for slug in ["../x", "..", "a/b", ""] {
        assert!(paths.session_key(slug, "s").is_err(), "{slug:?}");
    }
    let mut c = claudemesh::config::Config::load(&paths).unwrap();
    c.meshes[0].slug = "../../escaped".into();
    c.save(&paths).unwrap();
    alice.env = vec![("CLAUDEMESH_SESSION_ID".into(), "fine".into())];
    let r = alice.run("cm-pipe", &["--mesh", "../../escaped"]);
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.err.contains("invalid mesh slug"), "{}", r.err);
    assert!(!outside.exists());
}

// ---- what is left behind ----

/// Every file and directory under `root`, with its mode.
fn modes(root: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            out.push((e.path(), m.permissions().mode() & 0o777, m.is_dir()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Fails if `run`'s output shows any of `secrets`.
fn no_secret(what: &str, run: &Run, secrets: &[String]) {
    for s in secrets {
        assert!(
            !run.out.contains(s.as_str()) && !run.err.contains(s.as_str()),
            "{what} printed a secret key"
        );
    }
}

/// The secret halves of every key `peer` holds: the member key as a whole and as its seed.
fn secrets_of(keys: &[&Keypair]) -> Vec<String> {
    keys.iter()
        .flat_map(|k| {
            let s = k.secret_hex();
            [s.clone(), s[..64].to_string()]
        })
        .collect()
}

#[test]
fn attacks_broker_keeps_no_plaintext_and_only_private_files() {
    let dir = TempDir::new("atrest");
    let data = dir.0.join("fresh-data");
    let b = Broker::start_logged(&data, &dir.0.join("broker.log"), &[]);
    let peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (&peers[0], &peers[1], &peers[2]);
    let secrets = secrets_of(&[&alice.key, &bob.key, &carol.key]);
    let dm_text = "dm: the vault code is 7261";
    let all_text = "broadcast: meet at the old mill";
    let group_text = "group: eng ships friday";

    // Bob and carol listen with cm-pipe; carol is in @eng.
    let mut cp = carol.pipe();
    cp.cmd(json!({"cmd": "join_group", "group": "eng", "id": 1}));
    cp.expect("ok");
    let r = alice.run("cm-send", &["--json", &bob.name, dm_text]);
    no_secret("cm-send", &r, &secrets);
    r.ok();
    let r = alice.run("cm-send", &["--json", "*", all_text]);
    no_secret("cm-send", &r, &secrets);
    r.ok();
    let r = alice.run("cm-send", &["--json", "@eng", group_text]);
    no_secret("cm-send", &r, &secrets);
    r.ok();
    let got: Vec<String> = (0..2)
        .map(|_| cp.expect("message")["text"].as_str().unwrap().to_string())
        .collect();
    assert!(got.contains(&all_text.to_string()) && got.contains(&group_text.to_string()));
    let r = bob.run("cm-inbox", &["--json"]);
    no_secret("cm-inbox", &r, &secrets);
    let texts: Vec<String> = r
        .ok()
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect();
    assert!(texts.contains(&dm_text.to_string()) && texts.contains(&all_text.to_string()));
    for (tool, args) in [
        ("cm-peers", vec!["--json"]),
        ("cm-peers", vec![]),
        ("cm-inbox", vec![]),
        ("cm-id", vec!["whoami", "--json"]),
        ("cm-id", vec!["whoami"]),
        ("cm-send", vec!["nobody-here", "x"]),
    ] {
        no_secret(tool, &alice.run(tool, &args), &secrets);
    }
    // A file, shared with bob: the broker holds its chunks, never its content.
    let file_text = "file: the floor plan of the old mill";
    let path = dir.0.join("plan.txt");
    std::fs::write(&path, file_text).unwrap();
    let r = alice.run(
        "cm-file",
        &["put", path.to_str().unwrap(), "--to", &bob.name, "--json"],
    );
    no_secret("cm-file", &r, &secrets);
    let id = r.ok()[0]["id"].as_str().unwrap().to_string();
    let out = dir.0.join("plan-copy.txt");
    let r = bob.run("cm-file", &["get", &id, "-o", out.to_str().unwrap()]);
    no_secret("cm-file", &r, &secrets);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), file_text);
    let (_, rest) = cp.close();
    assert!(!format!("{rest:?}").contains(&carol.key.secret_hex()));

    // Everything the broker wrote: not one plaintext, not in base64 either; 0700 directories, 0600 files.
    let files = modes(&data);
    assert!(files.iter().any(|(p, ..)| p.ends_with("broker.db")));
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let mut bytes = Vec::new();
    for (p, mode, is_dir) in &files {
        assert_eq!(
            *mode,
            if *is_dir { 0o700 } else { 0o600 },
            "{}",
            p.display()
        );
        if !is_dir {
            bytes.extend(std::fs::read(p).unwrap());
        }
    }
    for t in [dm_text, all_text, group_text, file_text] {
        assert!(!contains(&bytes, t.as_bytes()), "plaintext at rest: {t}");
        assert!(!contains(&bytes, b64::encode(t.as_bytes()).as_bytes()));
    }
    for s in &secrets {
        assert!(!contains(&bytes, s.as_bytes()), "a secret key at rest");
    }
    // The peers' own config: 0700 directories, 0600 files.
    for p in &peers {
        for (path, mode, is_dir) in modes(&p.config_dir()) {
            assert_eq!(
                mode,
                if is_dir { 0o700 } else { 0o600 },
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn attacks_no_tool_prints_a_secret_and_config_stays_private() {
    let dir = TempDir::new("secrets");
    let b = Broker::start(&dir, &[]);
    let (alice, bob) = (User::new("alice"), User::new("bob"));
    let mut runs: Vec<(String, std::process::Output)> = Vec::new();
    let mut run = |u: &User, tool: &str, args: &[&str]| {
        let o = u.run(tool, args);
        runs.push((format!("{} {tool} {args:?}", u.name), o.clone()));
        o
    };
    let made = run(
        &alice,
        "cm-mesh",
        &["new", "dev", "--broker", &b.ws_url(), "--json"],
    );
    assert!(made.status.success());
    let inv = run(&alice, "cm-mesh", &["invite", "--json"]);
    let url = crate::harness::lines(&String::from_utf8_lossy(&inv.stdout))[0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(run(&bob, "cm-mesh", &["join", &url]).status.success());
    for u in [&alice, &bob] {
        for (tool, args) in [
            ("cm-mesh", vec!["list"]),
            ("cm-mesh", vec!["list", "--json"]),
            ("cm-mesh", vec!["members", "--json"]),
            ("cm-id", vec!["whoami"]),
            ("cm-id", vec!["whoami", "--json"]),
            ("cm-peers", vec!["--json"]),
            ("cm-doctor", vec![]),
            ("cm-doctor", vec!["--json"]),
            ("cm-inbox", vec!["--json"]),
        ] {
            run(u, tool, &args);
        }
    }
    assert!(
        run(&alice, "cm-send", &["bob", "hello bob"])
            .status
            .success()
    );
    run(&bob, "cm-inbox", &[]);
    run(&alice, "cm-send", &["nobody", "x"]);
    run(&alice, "cm-mesh", &["join", "ic://join/not-a-token"]);
    // A session of its own: cm-pipe makes and keeps a session key.
    let mut pipe = bob.cmd("cm-pipe");
    pipe.env("CLAUDEMESH_SESSION_ID", "s1");
    let o = pipe.output().unwrap();
    runs.push(("bob cm-pipe".into(), o));

    // Every secret either of them holds, from every file in their config directories.
    let mut secrets = Vec::new();
    for u in [&alice, &bob] {
        for (path, mode, is_dir) in modes(&u.config_dir()) {
            assert_eq!(
                mode,
                if is_dir { 0o700 } else { 0o600 },
                "{}",
                path.display()
            );
            if !is_dir && path.extension().is_some_and(|e| e == "json") {
                let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                collect_secrets(&v, &mut secrets);
            }
        }
        assert_eq!(
            std::fs::metadata(u.config_dir())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
    assert!(
        secrets.len() >= 4,
        "expected identity, owner and session secrets, found {}",
        secrets.len()
    );
    assert!(
        bob.config_dir().join("sessions").exists(),
        "cm-pipe kept no session key"
    );
    for (what, o) in &runs {
        for s in &secrets {
            for half in [s.as_str(), &s[..64.min(s.len())]] {
                assert!(
                    !contains(&o.stdout, half.as_bytes()) && !contains(&o.stderr, half.as_bytes()),
                    "{what} printed a secret key"
                );
            }
        }
    }
}

/// Values of every key named like `secret*` (hex strings of at least 64 characters).
fn collect_secrets(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k.to_ascii_lowercase().contains("secret")
                    && let Some(s) = x.as_str()
                    && s.len() >= 64
                {
                    out.push(s.to_string());
                }
                collect_secrets(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_secrets(x, out)),
        _ => {}
    }
}

#[test]
fn attacks_file_names_cannot_leave_the_download_directory() {
    use claudemesh::files::FileKey;
    let dir = TempDir::new("filepath");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    // Alice speaks the protocol herself and names her upload as a path out of the downloader's directory.
    let entry = claudemesh::config::Config::load(&Paths::at(alice.config_dir()).unwrap())
        .unwrap()
        .meshes[0]
        .clone();
    let me = Member {
        key: alice.key.clone(),
        id: entry.member_id.clone(),
        name: "alice".into(),
    };
    let mesh = Mesh {
        id: entry.mesh_id.clone(),
        slug: entry.slug.clone(),
        owner: Keypair::generate(),
        admin: me.clone(),
    };
    let mut ws = mesh.connect(&b, &me);
    let mut upload = |name: &str, body: &[u8]| -> String {
        let key = FileKey::generate();
        let ct = key.seal_chunk(0, true, body);
        ws.send(&json!({"type": "file_put", "name": name, "size": body.len(), "chunkSize": 48128, "_reqId": "put",
                   "recipients": [{"pubkey": bob.pubkey(), "sealedKey": key.seal_to(&bob.pubkey()).unwrap()}]}));
        let ready = loop {
            let f = ws.recv();
            if f["_reqId"] == "put" {
                break f;
            }
        };
        assert_eq!(ready["type"], "file_put_ready", "{name:?}: {ready}");
        let id = ready["fileId"].as_str().unwrap().to_string();
        ws.send(&json!({"type": "file_chunk", "fileId": id, "seq": 0, "data": b64::encode(&ct)}));
        ws.recv_type("file_chunk_ack");
        ws.request(
            json!({"type": "file_put_done", "fileId": id, "sha256": crypto::sha256_hex(&ct)}),
            "file_stored",
        );
        id
    };
    let cwd = dir.0.join("downloads/inner");
    std::fs::create_dir_all(&cwd).unwrap();
    for (name, lands) in [
        ("../../escaped.txt", "escaped.txt"),
        ("/etc/cm-escaped", "cm-escaped"),
        ("..\\..\\win.txt", "win.txt"),
        ("..", "file"),
    ] {
        let id = upload(name, b"what the file says");
        let r = bob
            .cmd("cm-file")
            .args(["get", &id, "--json"])
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{name:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert_eq!(
            std::fs::read(cwd.join(lands)).unwrap(),
            b"what the file says",
            "{name:?}"
        );
    }
    assert!(!dir.0.join("escaped.txt").exists() && !dir.0.join("downloads/escaped.txt").exists());
    // A name with control characters (a terminal escape, a line break) is refused at upload.
    ws.send(&json!({"type": "file_put", "name": "a\nb\u{1b}[2J", "size": 1, "chunkSize": 48128, "_reqId": "bad",
        "recipients": [{"pubkey": bob.pubkey(), "sealedKey": FileKey::generate().seal_to(&bob.pubkey()).unwrap()}]}));
    assert_eq!(ws.recv_type("error")["code"], "invalid_args");
    assert!(!Path::new("/etc/cm-escaped").exists());
    // The broker keeps files under ids of its own, never under a name it was given.
    let files: Vec<String> = std::fs::read_dir(b.data.join("files"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| f.bytes().all(|c| c.is_ascii_alphanumeric())),
        "{files:?}"
    );
}

#[test]
fn attacks_api_keys_beyond_their_scope_or_revoked_are_refused_and_logged() {
    let dir = TempDir::new("apikeys");
    let b = Broker::start(&dir, &[]);
    let (alice, carol) = (User::new("alice"), User::new("carol"));
    alice.json("cm-mesh", &["new", "dev", "--broker", &b.ws_url()]);
    carol.json("cm-mesh", &["new", "other", "--broker", &b.ws_url()]);
    alice.ok("cm-topic", &["create", "ops", "--plaintext"]);
    alice.ok("cm-topic", &["create", "hr", "--plaintext"]);
    carol.ok("cm-topic", &["create", "theirs", "--plaintext"]);
    let secret = |u: &User, args: &[&str]| {
        let mut a = vec!["create"];
        a.extend(args);
        let made = &u.json("cm-apikey", &a)[0];
        (
            made["id"].as_str().unwrap().to_string(),
            made["secret"].as_str().unwrap().to_string(),
        )
    };
    let (_, reader) = secret(&alice, &["reader", "--cap", "read", "--scope", "ops"]);
    let (id, full) = secret(&alice, &["ci"]);
    let call = |method: &str, path: &str, key: &str, body: Option<Value>| -> (u16, Value) {
        let req =
            ureq::request(method, &b.http_url(path)).set("Authorization", &format!("Bearer {key}"));
        let r = match body {
            Some(v) => req.send_json(v),
            None => req.call(),
        };
        match r {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{path}: {e}"),
        }
    };
    let code = |r: (u16, Value)| (r.0, r.1["error"].as_str().unwrap_or_default().to_string());
    // Beyond its capabilities and its topics.
    assert_eq!(
        code(call(
            "POST",
            "/api/v1/messages",
            &reader,
            Some(json!({"topic": "ops", "text": "x"}))
        )),
        (403, "missing_capability".into())
    );
    assert_eq!(
        code(call("GET", "/api/v1/topics/hr/messages", &reader, None)),
        (403, "topic_out_of_scope".into())
    );
    // Another mesh's topic does not exist for this key, whatever its name.
    let (s, _) = call("GET", "/api/v1/topics/theirs/messages", &full, None);
    assert_eq!(s, 404);
    let (s, topics) = call("GET", "/api/v1/topics", &full, None);
    assert_eq!(s, 200);
    assert!(!topics.to_string().contains("theirs"), "{topics}");
    // SQL and path characters in a topic name are a name like any other.
    let (s, _) = call(
        "GET",
        "/api/v1/topics/ops'%20OR%20'1'='1/messages",
        &full,
        None,
    );
    assert_eq!(s, 404);
    let (s, _) = call("GET", "/api/v1/topics/..%2F..%2Fetc/messages", &full, None);
    assert_eq!(s, 404);
    // Revoked: refused at once.
    alice.ok("cm-apikey", &["revoke", &id]);
    assert_eq!(
        code(call("GET", "/api/v1/topics", &full, None)),
        (401, "revoked_api_key".into())
    );
    let log = b.log_text();
    for error in [
        "missing_capability",
        "topic_out_of_scope",
        "revoked_api_key",
    ] {
        assert!(
            log.lines().any(
                |l| l.contains("http request refused") && l.contains(&format!("error={error}"))
            ),
            "{error} not logged:\n{log}"
        );
    }
    // The broker keeps only the keys' hashes.
    let db = b.db_bytes();
    for k in [&reader, &full] {
        assert!(!contains(&db, k.as_bytes()));
    }
}
