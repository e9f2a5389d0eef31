//! Grants and blocks as people use them: the real cm-grant against a real broker, with the senders' own tools
//! and a hostile client's raw frames finding the broker, not the recipient's client, in the way.

use claudemesh::config::{Config, Paths};
use claudemesh::crypto;
use serde_json::{Value, json};

use crate::harness::{Broker, Member, Mesh, TempDir, Ws};
use crate::peer::{Peer, Run};

fn by<'a>(peers: &'a [Peer], name: &str) -> &'a Peer {
    peers.iter().find(|p| p.name == name).unwrap()
}

/// `cm-grant ARGS --json` as `p`, expecting success.
fn grant(p: &Peer, args: &[&str]) -> Vec<Value> {
    let mut a = args.to_vec();
    a.push("--json");
    p.run("cm-grant", &a).ok()
}

/// `tool ARGS` as `p`, expecting exit status `code` and one line on stderr.
fn fails(p: &Peer, tool: &str, args: &[&str], code: i32) -> Run {
    let r = p.run(tool, args);
    assert_eq!(r.code, Some(code), "{tool} {args:?}: {}{}", r.out, r.err);
    assert_eq!(r.err.lines().count(), 1, "one line: {}", r.err);
    r
}

fn texts(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The line of `name` in `cm-grant list --json` as `p` sees it.
fn line_of(p: &Peer, name: &str) -> Option<Value> {
    grant(p, &["list"]).into_iter().find(|g| g["name"] == name)
}

#[test]
fn a_block_refuses_dms_with_status_7_and_unblock_lets_them_through_again() {
    let dir = TempDir::new("grant-block");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (by(&peers, "alice"), by(&peers, "bob"), by(&peers, "carol"));

    let g = grant(alice, &["block", "bob"]);
    assert_eq!(
        (&g[0]["name"], &g[0]["blocked"], &g[0]["caps"]),
        (&json!("bob"), &json!(true), &json!([])),
        "{g:?}"
    );
    let r = fails(bob, "cm-send", &["alice", "let me in"], 7);
    assert!(
        r.err
            .contains("blocked by recipient grants (sender lacks dm capability)"),
        "{}",
        r.err
    );
    fails(bob, "cm-send", &["--json", "alice", "again"], 7);
    // Only bob: carol still gets through, and the block is one way.
    assert_eq!(carol.send("alice", "from carol")["status"], "queued");
    assert_eq!(alice.send("bob", "from alice")["status"], "queued");
    assert_eq!(texts(&alice.inbox()), ["from carol"]);
    assert_eq!(texts(&bob.inbox()), ["from alice"]);

    // The human list says so, and the original's `cm grants` and `cm unblock` reach the same tool.
    let r = alice.run("cm", &["grants"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(
        r.out
            .lines()
            .any(|l| l.starts_with("bob ") && l.ends_with("(blocked)")),
        "{}",
        r.out
    );
    let r = alice.run("cm", &["unblock", "bob"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(
        r.out.trim(),
        "unblocked bob in mesh dev: may dm, broadcast, now, files"
    );
    assert_eq!(bob.send("alice", "let me in")["status"], "queued");
    assert_eq!(texts(&alice.inbox()), ["let me in"]);

    // Bad input: one line and its own status.
    let r = fails(alice, "cm-grant", &["block", "nobody"], 5);
    assert!(r.err.contains("no peer named \"nobody\""), "{}", r.err);
    let r = fails(alice, "cm-grant", &["grant", "bob", "state-write"], 3);
    assert!(r.err.contains("nothing enforces"), "{}", r.err);
    fails(alice, "cm-grant", &["grant", "bob"], 3);
    fails(alice, "cm-grant", &["block", "*"], 3);
    let r = fails(alice, "cm-grant", &["block", "alice"], 3);
    assert!(r.err.contains("not yourself"), "{}", r.err);
}

#[test]
fn a_broadcast_skips_the_members_who_refuse_it_and_no_one_else() {
    let dir = TempDir::new("grant-fanout");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob", "carol", "dave"]);
    let (alice, bob, carol, dave) = (
        by(&peers, "alice"),
        by(&peers, "bob"),
        by(&peers, "carol"),
        by(&peers, "dave"),
    );
    grant(alice, &["block", "bob"]);
    // dave takes bob's DMs but not his broadcasts.
    grant(dave, &["revoke", "bob", "broadcast"]);
    let r = bob.send("*", "hello all");
    assert_eq!(r["status"], "queued", "{r}");
    assert_eq!(texts(&carol.inbox()), ["hello all"]);
    assert!(alice.inbox().is_empty());
    assert!(dave.inbox().is_empty());
    assert_eq!(bob.send("dave", "just you")["status"], "queued");
    assert_eq!(texts(&dave.inbox()), ["just you"]);
    // Others' broadcasts still reach alice.
    carol.send("*", "from carol");
    assert_eq!(texts(&alice.inbox()), ["from carol"]);
}

#[test]
fn now_without_the_grant_arrives_as_next_and_a_grant_restores_it() {
    let dir = TempDir::new("grant-now");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (by(&peers, "alice"), by(&peers, "bob"), by(&peers, "carol"));
    let mut pipe = alice.pipe();
    pipe.cmd(json!({"cmd": "status", "status": "working"}));
    pipe.expect("ok");
    let now = |p: &Peer, text: &str| {
        let mut l = p
            .run("cm-send", &["--json", "--priority", "now", "alice", text])
            .ok();
        l.remove(0)
    };
    // Everyone may push with now until alice says otherwise: pushed to her working session at once.
    assert_eq!(now(bob, "first")["status"], "sent");
    pipe.wait_for(std::time::Duration::from_secs(10), |v| v["text"] == "first");

    // now becomes an allow list: bob's arrive as next, held while she works; carol, granted, still interrupts.
    let g = grant(alice, &["revoke", "*", "now"]);
    assert_eq!(g[0]["caps"], json!(["dm", "broadcast", "files"]), "{g:?}");
    let shown = alice.run("cm-grant", &["list"]);
    assert_eq!(
        shown.out,
        format!(
            "MEMBER  MAY\n*       dm, broadcast, files  (everyone else)\n\
             no member has grants or a block of their own in mesh {}\n",
            alice.slug
        )
    );
    grant(alice, &["grant", "carol", "now"]);
    assert_eq!(now(bob, "second")["status"], "queued");
    assert_eq!(now(carol, "from carol")["status"], "sent");
    let m = pipe.wait_for(std::time::Duration::from_secs(10), |v| {
        v["type"] == "message"
    });
    assert_eq!(
        (&m["text"], &m["priority"]),
        (&json!("from carol"), &json!("now")),
        "{m}"
    );
    let peek = alice.run("cm-inbox", &["--peek", "--json"]).ok();
    let second = peek.iter().find(|m| m["text"] == "second").unwrap();
    assert_eq!(second["priority"], "next", "{second}");

    // Granted to bob: his now interrupts again.
    grant(alice, &["grant", "bob", "now"]);
    assert_eq!(now(bob, "third")["status"], "sent");
    // Revoked from bob alone, while everyone else's stays as it is.
    let g = grant(alice, &["revoke", "bob", "now"]);
    assert_eq!(
        (&g[0]["name"], &g[0]["revoked"], &g[0]["caps"]),
        (
            &json!("bob"),
            &json!(["now"]),
            &json!(["dm", "broadcast", "files"])
        ),
        "{g:?}"
    );
    assert_eq!(now(bob, "fourth")["status"], "queued");
    // Idle again, she gets what was held, as next.
    pipe.cmd(json!({"cmd": "status", "status": "idle"}));
    let m = pipe.wait_for(std::time::Duration::from_secs(10), |v| {
        v["text"] == "fourth"
    });
    assert_eq!(m["priority"], "next", "{m}");
    drop(pipe.close());
}

#[test]
fn grants_and_blocks_survive_a_broker_restart() {
    let dir = TempDir::new("grant-restart");
    let b = Broker::start(&dir, &[]);
    let addr = b.addr.to_string();
    let peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (by(&peers, "alice"), by(&peers, "bob"), by(&peers, "carol"));
    grant(alice, &["block", "bob"]);
    grant(alice, &["revoke", "carol", "files", "now"]);
    let before = grant(alice, &["list"]);
    let data = b.data.clone();
    b.kill();
    let _b = Broker::start_in(&data, &["--listen", &addr]);
    assert_eq!(grant(alice, &["list"]), before);
    fails(bob, "cm-send", &["alice", "after the restart"], 7);
    assert_eq!(carol.send("alice", "still fine")["status"], "queued");
    assert_eq!(
        line_of(alice, "carol").unwrap()["caps"],
        json!(["dm", "broadcast"])
    );
}

#[test]
fn files_the_uploader_does_not_share_with_a_member_are_neither_listed_nor_fetched() {
    let dir = TempDir::new("grant-files");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));
    let src = dir.0.join("notes.txt");
    std::fs::write(&src, "for bob").unwrap();
    let put = alice
        .run(
            "cm-file",
            &["put", src.to_str().unwrap(), "--to", "bob", "--json"],
        )
        .ok();
    let id = put[0]["id"].as_str().unwrap().to_string();
    let listed = |p: &Peer| p.run("cm-file", &["list", "--json"]).ok();
    assert_eq!(listed(bob).len(), 1);

    grant(alice, &["revoke", "bob", "files"]);
    assert!(listed(bob).is_empty());
    assert_eq!(listed(alice).len(), 1, "the uploader still sees its own");
    let out = dir.0.join("got.txt");
    let r = fails(
        bob,
        "cm-file",
        &["get", &id, "-o", out.to_str().unwrap()],
        7,
    );
    assert!(r.err.contains("does not share files with you"), "{}", r.err);
    assert!(!out.exists());

    grant(alice, &["grant", "bob", "files"]);
    let r = bob.run("cm-file", &["get", &id, "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "for bob");

    // A file from a member one blocked is nothing one hears of either.
    grant(bob, &["block", "alice"]);
    assert!(listed(bob).is_empty());
    fails(
        bob,
        "cm-file",
        &["get", &id, "-o", out.to_str().unwrap(), "--force"],
        7,
    );
    grant(bob, &["unblock", "alice"]);
    assert_eq!(listed(bob).len(), 1);
}

/// A raw socket of `p`, authenticated with a member `hello`.
fn raw(b: &Broker, p: &Peer) -> (Mesh, Member, Ws) {
    let config = Config::load(&Paths::at(p.config_dir()).unwrap()).unwrap();
    let entry = config.mesh(None).unwrap().clone();
    let m = Member {
        key: p.key.clone(),
        id: entry.member_id.clone(),
        name: p.name.clone(),
    };
    let mesh = Mesh {
        id: entry.mesh_id.clone(),
        slug: entry.slug.clone(),
        owner: claudemesh::crypto::Keypair::generate(),
        admin: m.clone(),
    };
    let ws = mesh.connect(b, &m);
    (mesh, m, ws)
}

/// The `ack` of the send `id` on `ws`.
fn ack(ws: &mut Ws, id: &str) -> Value {
    loop {
        let a = ws.recv_type("ack");
        if a["id"] == id {
            return a;
        }
    }
}

#[test]
fn a_hostile_client_s_raw_frames_cannot_get_round_a_block() {
    let dir = TempDir::new("grant-raw");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (by(&peers, "alice"), by(&peers, "bob"), by(&peers, "carol"));
    grant(alice, &["block", "bob"]);
    let (mesh, a, _alice_ws) = raw(&b, alice);
    // A session of alice's, so there is a session key to aim at too.
    let session = claudemesh::crypto::Keypair::generate();
    let _alice_session = mesh.connect_session(&b, &a, &session);
    let (_, m, mut ws) = raw(&b, bob);
    let seal = |to: &str, text: &str| crypto::encrypt_dm(text.as_bytes(), to, &m.key).unwrap();

    let direct = |ws: &mut Ws, id: &str, to: &str, extra: Value| {
        let (nonce, ct) = seal(to, id);
        let mut f = json!({"type": "send", "id": id, "targetSpec": to, "priority": "now", "nonce": nonce,
            "ciphertext": ct});
        crate::harness::merge(&mut f, extra);
        ws.send(&f);
        ack(ws, id)
    };
    let blocked = "blocked by recipient grants (sender lacks dm capability)";
    // To her member key, to her session key, and with a sealed copy riding along: all refused.
    let a_key = alice.pubkey();
    assert_eq!(direct(&mut ws, "d1", &a_key, json!({}))["error"], blocked);
    assert_eq!(
        direct(&mut ws, "d2", &session.public_hex(), json!({}))["error"],
        blocked
    );
    let (n, c) = seal(&a_key, "copy");
    let copies = json!({"copies": [{"to": a_key, "nonce": n, "ciphertext": c}]});
    assert_eq!(
        direct(&mut ws, "d3", &a_key, copies.clone())["error"],
        blocked
    );
    // A broadcast whose only copy is hers is taken and reaches no one; one with carol's copy too reaches carol.
    let fanout = |ws: &mut Ws, id: &str, tos: &[String]| {
        let copies: Vec<Value> = tos
            .iter()
            .map(|to| {
                let (nonce, ct) = seal(to, id);
                json!({"to": to, "nonce": nonce, "ciphertext": ct})
            })
            .collect();
        ws.send(
            &json!({"type": "send", "id": id, "targetSpec": "*", "priority": "now", "nonce": "",
            "ciphertext": "", "copies": copies}),
        );
        ack(ws, id)
    };
    let a1 = fanout(&mut ws, "b1", std::slice::from_ref(&a_key));
    assert!(a1["error"].is_null(), "{a1}");
    let a2 = fanout(&mut ws, "b2", &[a_key.clone(), carol.pubkey()]);
    assert!(a2["error"].is_null(), "{a2}");
    // An unsealed broadcast and group message of an original client skip her too.
    for (id, spec) in [("u1", "*"), ("u2", "@all")] {
        ws.send(
            &json!({"type": "send", "id": id, "targetSpec": spec, "priority": "next", "nonce": "",
            "ciphertext": "aGk="}),
        );
        assert!(ack(&mut ws, id)["error"].is_null());
    }
    // A reminder aimed at her is refused like the DM it would become.
    let (nonce, ct) = seal(&a_key, "later");
    let e = ws.request(
        json!({"type": "schedule", "to": a_key, "ciphertext": ct, "nonce": nonce,
            "deliverAt": claudemesh::time::now_ms() + 3_600_000, "_reqId": "s1"}),
        "error",
    );
    assert_eq!(
        (&e["code"], &e["message"]),
        (&json!("forbidden"), &json!(blocked)),
        "{e}"
    );
    // Bob's own grants are about who may reach bob: granting himself, or alice, changes nothing for alice.
    let e = ws.request(
        json!({"type": "grant_block", "peer": m.pubkey(), "blocked": false, "_reqId": "g1"}),
        "error",
    );
    assert_eq!(e["code"], "invalid_args", "{e}");
    let s = ws.request(
        json!({"type": "grant_set", "peer": a_key, "caps": ["dm"], "allow": true, "_reqId": "g2"}),
        "grant_state",
    );
    assert_eq!(s["peers"][0]["name"], "alice", "{s}");
    let e = ws.request(
        json!({"type": "grant_set", "peer": a_key, "caps": ["root"], "allow": true, "_reqId": "g3"}),
        "error",
    );
    assert_eq!(e["code"], "invalid_args", "{e}");
    assert_eq!(direct(&mut ws, "d4", &a_key, json!({}))["error"], blocked);

    // Nothing of bob's was stored for alice; carol has b2, u1 and u2.
    assert!(alice.inbox().is_empty());
    assert_eq!(carol.inbox().len(), 3);
}
