//! `cm-send`, `cm-peers`, `cm-inbox` and `cm-pipe` against a real `cm-broker`, each member in its own config
//! directory.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Broker, Mesh, TempDir};
use crate::peer::Peer;

fn broker(tag: &str) -> (TempDir, Broker) {
    let dir = TempDir::new(tag);
    let b = Broker::start(&dir, &[]);
    (dir, b)
}

fn texts(msgs: &[Value]) -> Vec<&str> {
    msgs.iter()
        .map(|m| m["text"].as_str().unwrap_or("<none>"))
        .collect()
}

fn by<'a>(peers: &'a [Peer], name: &str) -> &'a Peer {
    peers.iter().find(|p| p.name == name).unwrap()
}

#[test]
fn dms_both_ways_with_honest_status() {
    let (_d, b) = broker("dm");
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));
    let mut pipe = bob.pipe();

    // alice → bob, who is online through cm-pipe: pushed now.
    let r = alice.send("BOB", "hi bob");
    assert_eq!(r["type"], "send_result");
    assert_eq!(r["status"], "sent", "{r}");
    assert_eq!(r["recipient_online"], true);
    assert_eq!(
        r["to"],
        bob.pubkey().as_str(),
        "a name addresses the member key"
    );
    assert_eq!(r["name"], "bob");
    assert!(r["message_id"].as_str().is_some_and(|m| !m.is_empty()));
    let m = pipe.expect("message");
    assert_eq!(m["text"], "hi bob");
    assert_eq!(m["from"]["name"], "alice");
    assert_eq!(m["from"]["pubkey"], alice.pubkey().as_str());
    assert_eq!(m["from"]["member_pubkey"], alice.pubkey().as_str());
    assert_eq!(m["id"], r["message_id"]);
    assert!(m["sent_at"].as_str().unwrap().ends_with('Z'));

    // bob → alice, who has no live connection: stored, and said so.
    pipe.cmd(json!({"cmd": "send", "to": "alice", "text": "hello back", "id": 7}));
    let r = pipe.expect("send_result");
    assert_eq!(
        (r["status"].as_str(), r["recipient_online"].as_bool()),
        (Some("queued"), Some(false)),
        "{r}"
    );
    assert_eq!(r["id"], 7);
    let got = alice.inbox();
    assert_eq!(texts(&got), ["hello back"]);
    assert_eq!(got[0]["from"]["name"], "bob");
    assert_eq!(got[0]["to"], alice.pubkey().as_str());
    assert!(
        alice.inbox().is_empty(),
        "acknowledged messages do not come again"
    );

    // The human words.
    let r = alice.run("cm-send", &["bob", "two", "words"]);
    assert_eq!(
        (r.code, r.out.trim()),
        (Some(0), "sent to bob (online)"),
        "{}",
        r.err
    );
    assert_eq!(pipe.expect("message")["text"], "two words");
    let (status, _) = pipe.close();
    assert!(status.success());
    let r = alice.run("cm-send", &["bob", "later"]);
    assert_eq!(r.out.trim(), "queued for bob (offline)", "{}", r.err);
}

#[test]
fn a_dm_to_an_offline_member_waits_for_cm_inbox() {
    let (_d, b) = broker("offline");
    let peers = Mesh::new(&b, &["alice", "carol"]);
    let (alice, carol) = (by(&peers, "alice"), by(&peers, "carol"));
    let prefix = &carol.pubkey()[..6];
    let r = alice.run("cm-send", &[prefix, "-p", "now", "see you tomorrow"]);
    assert_eq!(
        (r.code, r.out.trim()),
        (Some(0), "queued for carol (offline)"),
        "{}",
        r.err
    );
    let r = alice.run(
        "cm-send",
        &["--reply-to", "0123456789abcdef", "carol", "second"],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);

    // --peek shows without acknowledging.
    let peek = carol.run("cm-inbox", &["--peek", "--json"]).ok();
    assert_eq!(texts(&peek), ["see you tomorrow", "second"]);
    assert_eq!(peek[0]["priority"], "now");
    assert_eq!(peek[1]["reply_to"], "0123456789abcdef");

    // Human lines, then nothing left.
    let r = carol.run("cm-inbox", &[]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.out);
    let rest = |l: &str| l.split_once(' ').map(|(_, r)| r.to_string()).unwrap();
    assert_eq!(rest(lines[0]), "[now] alice: see you tomorrow");
    assert_eq!(rest(lines[1]), "alice: second  ↳ reply to 01234567");
    assert!(
        lines[0].as_bytes()[2] == b':',
        "a clock time first: {}",
        lines[0]
    );
    let r = carol.run("cm-inbox", &[]);
    assert_eq!((r.code, r.out.as_str()), (Some(0), ""));

    // The broker holds no plaintext of either.
    let db = b.db_bytes();
    for text in ["see you tomorrow", "second"] {
        assert!(
            !db.windows(text.len()).any(|w| w == text.as_bytes()),
            "{text:?} is in the database"
        );
    }
}

#[test]
fn a_broadcast_reaches_three_peers_sealed_for_each() {
    let (_d, b) = broker("broadcast");
    let peers = Mesh::new(&b, &["alice", "bob", "carol", "dave"]);
    let (alice, bob, carol, dave) = (
        by(&peers, "alice"),
        by(&peers, "bob"),
        by(&peers, "carol"),
        by(&peers, "dave"),
    );
    let mut pb = bob.pipe();
    let mut pc = carol.pipe();
    let text = "standup moves to 10:30";
    let r = alice.send("*", text);
    assert_eq!(r["status"], "sent", "{r}");
    assert_eq!(
        (r["recipients"].as_u64(), r["offline"].as_u64()),
        (Some(3), Some(1)),
        "{r}"
    );
    assert_eq!(r["to"], "*");
    for p in [&mut pb, &mut pc] {
        let m = p.expect("message");
        assert_eq!(
            (m["text"].as_str(), m["to"].as_str()),
            (Some(text), Some("*"))
        );
        assert_eq!(m["from"]["name"], "alice");
    }
    assert_eq!(texts(&dave.inbox()), [text]);
    assert!(
        alice.inbox().is_empty(),
        "a broadcast does not come back to its sender"
    );
    let db = b.db_bytes();
    assert!(
        !db.windows(text.len()).any(|w| w == text.as_bytes()),
        "a broadcast's plaintext is in the database"
    );

    let r = alice.run("cm-send", &["*", "again"]);
    assert_eq!(
        r.out.trim(),
        "sent to 3 members (1 offline, queued)",
        "{}",
        r.err
    );

    // A group: bob joins eng/backend through his pipe; @eng reaches him alone.
    pb.cmd(json!({"cmd": "join_group", "group": "eng/backend", "id": "j"}));
    let ok = pb.expect("ok");
    assert_eq!(
        (ok["cmd"].as_str(), ok["id"].as_str()),
        (Some("join_group"), Some("j"))
    );
    let r = alice.run("cm-send", &["@eng", "eng only"]);
    assert_eq!(r.out.trim(), "sent to 1 member of @eng", "{}", r.err);
    assert_eq!(
        pb.wait_for(Duration::from_secs(10), |v| v["text"] == "eng only")["to"],
        "@eng"
    );
    let r = alice.run("cm-send", &["@ops", "nobody"]);
    assert_eq!(r.code, Some(5), "{}", r.err);
    assert_eq!(
        r.err.trim(),
        "cm-send: no members of @ops besides you in mesh dev"
    );
    let later = pc.drain(Duration::from_millis(500));
    assert!(later.iter().all(|v| v["text"] != "eng only"), "{later:?}");
}

#[test]
fn a_broadcast_too_large_for_one_frame_goes_out_in_several() {
    let (_d, b) = broker("bigcast");
    let peers = Mesh::new(&b, &["alice", "bob", "carol", "dave"]);
    let (alice, bob, carol, dave) = (
        by(&peers, "alice"),
        by(&peers, "bob"),
        by(&peers, "carol"),
        by(&peers, "dave"),
    );
    let mut pb = bob.pipe();
    let mut pc = carol.pipe();
    // Three sealed copies of 30 KB do not fit in one 64 KiB frame; each one does.
    let text = "0123456789abcdef ".repeat(30_000 / 17);
    let r = alice.send("*", &text);
    assert_eq!(r["status"], "sent", "{r}");
    assert_eq!(
        (r["recipients"].as_u64(), r["offline"].as_u64()),
        (Some(3), Some(1)),
        "{r}"
    );
    for p in [&mut pb, &mut pc] {
        let m = p.expect("message");
        assert_eq!(m["text"].as_str(), Some(text.as_str()));
        assert_eq!(m["to"], "*");
        let more = p.drain(Duration::from_millis(300));
        assert!(more.iter().all(|v| v["type"] != "message"), "{more:?}");
    }
    assert_eq!(texts(&dave.inbox()), [text.as_str()]);

    // The same from cm-pipe.
    pb.cmd(json!({"cmd": "send", "to": "*", "text": text, "id": "big"}));
    let res = pb.wait_for(Duration::from_secs(10), |v| v["type"] == "send_result");
    assert_eq!(
        (res["status"].as_str(), res["id"].as_str()),
        (Some("sent"), Some("big")),
        "{res}"
    );
    let m = pc.expect("message");
    assert_eq!(
        (m["text"].as_str(), m["from"]["name"].as_str()),
        (Some(text.as_str()), Some("bob"))
    );
    assert_eq!(texts(&dave.inbox()), [text.as_str()]);
}

#[test]
fn unknown_and_ambiguous_targets() {
    let (_d, b) = broker("targets");
    let peers = Mesh::new(&b, &["alice", "bob", "sam", "Sam"]);
    let alice = by(&peers, "alice");
    let r = alice.run("cm-send", &["bobb", "hi"]);
    assert_eq!(r.code, Some(5));
    assert_eq!(
        r.err.trim(),
        r#"cm-send: no peer named "bobb" in mesh dev (did you mean "bob"?)"#
    );
    assert_eq!(r.out, "");
    let r = alice.run("cm-send", &["sam", "hi"]);
    assert_eq!(r.code, Some(3), "{}", r.err);
    assert!(
        r.err
            .starts_with(r#"cm-send: "sam" matches 2 members: sam ("#),
        "{}",
        r.err
    );
    assert!(r.err.contains("Sam ("), "{}", r.err);
    let r = alice.run("cm-send", &["ffff", "hi"]);
    assert_eq!(r.code, Some(5));
    let r = alice.run("cm-send", &["#deploys", "hi"]);
    assert_eq!(r.code, Some(5));
    assert_eq!(r.err.trim(), "cm-send: no topic #deploys in this mesh");
    let r = alice.run("cm-send", &["bob"]);
    assert_eq!(r.code, Some(3));
    let r = alice.run("cm-send", &["-p", "soon", "bob", "hi"]);
    assert_eq!(r.code, Some(3));
    // A full key needs no roster entry; one that is no member's is refused by the broker.
    let stranger = claudemesh::crypto::Keypair::generate().public_hex();
    let r = alice.run("cm-send", &[&stranger, "hi"]);
    assert_eq!(r.code, Some(5), "{}", r.err);
    assert!(
        r.err
            .starts_with("cm-send: broker refused the message: unknown target"),
        "{}",
        r.err
    );
    let r = alice.run("cm-send", &[&"ab".repeat(32), "hi"]);
    assert_eq!(r.code, Some(3), "not a key at all: {}", r.err);
    // The key of a member works even when spelled in capitals.
    let bob = by(&peers, "bob");
    assert_eq!(
        alice.send(&bob.pubkey().to_uppercase(), "by key")["name"],
        "bob"
    );
}

#[test]
fn stdin_sends_a_message_per_line_and_keeps_going() {
    let (_d, b) = broker("stdin");
    let peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (by(&peers, "alice"), by(&peers, "bob"), by(&peers, "carol"));
    let input = "first line\n\n{\"to\":\"carol\",\"text\":\"json line\",\"priority\":\"low\"}\n{\"to\":\"nobody\",\"text\":\"x\"}\nlast line\n";
    let r = alice.run_with("cm-send", &["--json", "--stdin", "bob"], input);
    assert_eq!(r.code, Some(5), "{}", r.err);
    assert_eq!(r.err.trim(), "cm-send: 1 of 4 messages failed");
    let lines = r.lines();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["send_result", "send_result", "error", "send_result"]
    );
    assert_eq!(lines[2]["line"], 4);
    assert_eq!(lines[1]["priority"], "low");
    assert_eq!(texts(&bob.inbox()), ["first line", "last line"]);
    assert_eq!(texts(&carol.inbox()), ["json line"]);

    let r = alice.run_with("cm-send", &["--stdin"], "no target here\n");
    assert_eq!(r.code, Some(3));
    assert!(r.err.starts_with("cm-send: line 1: no target"), "{}", r.err);
}

#[test]
fn peers_lists_sessions_and_members_with_control_plane_hidden() {
    let (_d, b) = broker("peers");
    let mut peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    peers[1]
        .env
        .push(("CLAUDEMESH_SESSION_ID".into(), "bob-session-1".into()));
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));
    let mut pipe = bob.pipe();
    pipe.cmd(json!({"cmd": "summary", "summary": "reviewing the parser"}));
    pipe.expect("ok");
    let rows = alice.run("cm-peers", &["--json"]).ok();
    let find = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {rows:?}"))
    };
    let b_row = find("bob");
    assert_eq!(b_row["peer_role"], "session");
    assert_eq!(b_row["status"], "idle");
    assert_eq!(b_row["summary"], "reviewing the parser");
    assert_eq!(b_row["member_pubkey"], bob.pubkey().as_str());
    assert_ne!(
        b_row["pubkey"],
        bob.pubkey().as_str(),
        "a session speaks with its own key"
    );
    for k in [
        "name",
        "pubkey",
        "member_pubkey",
        "role",
        "status",
        "summary",
        "groups",
        "hostname",
        "cwd",
    ] {
        assert!(b_row.get(k).is_some(), "{k} missing: {b_row}");
    }
    assert_eq!(find("carol")["status"], "offline");
    assert_eq!(find("alice")["is_self"], true);
    assert!(rows.iter().all(|r| r["peer_role"] != "control-plane"));
    let all = alice.run("cm-peers", &["--json", "--all"]).ok();
    assert!(
        all.iter().any(|r| r["peer_role"] == "control-plane"),
        "{all:?}"
    );
    let human = alice.run("cm-peers", &[]);
    assert_eq!(human.code, Some(0), "{}", human.err);
    assert!(
        human
            .out
            // Our own query connection is the only control-plane one: not worth a mention.
            .starts_with("mesh dev\n"),
        "{}",
        human.out
    );
    assert!(human.out.contains("  bob    idle"), "{}", human.out);

    // A DM to bob by name reaches his session; one to the session's key prefix too.
    let r = alice.send("bob", "to the member");
    assert_eq!(r["status"], "sent", "{r}");
    assert_eq!(pipe.expect("message")["text"], "to the member");
    let session_key = b_row["pubkey"].as_str().unwrap();
    let r = alice.send(&session_key[..12], "to the session");
    assert_eq!(r["to"], session_key);
    assert_eq!(pipe.expect("message")["text"], "to the session");
}

#[test]
fn pipe_commands_errors_and_presence_events() {
    let (_d, b) = broker("pipe");
    let mut peers = Mesh::new(&b, &["alice", "bob"]);
    peers[1]
        .env
        .push(("CLAUDEMESH_SESSION_ID".into(), "bob-s".into()));
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));
    let mut pa = alice.pipe();
    pa.raw("this is not json");
    let e = pa.expect("error");
    assert!(
        e["message"].as_str().unwrap().starts_with("not JSON"),
        "{e}"
    );
    pa.cmd(json!({"cmd": "sned", "id": "x"}));
    let e = pa.expect("error");
    assert_eq!((e["id"].as_str(), e["code"].as_i64()), (Some("x"), Some(3)));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(r#"did you mean "send"?"#),
        "{e}"
    );
    pa.cmd(json!({"cmd": "send", "to": "zed", "text": "x", "id": 2}));
    let e = pa.expect("error");
    assert_eq!(
        (e["id"].as_i64(), e["code"].as_i64()),
        (Some(2), Some(5)),
        "{e}"
    );
    pa.cmd(json!({"cmd": "ping", "id": 3}));
    let p = pa.expect("pong");
    assert_eq!(
        (p["connected"].as_bool(), p["id"].as_i64()),
        (Some(true), Some(3))
    );
    pa.cmd(json!({"cmd": "status", "status": "busy"}));
    assert_eq!(pa.expect("error")["code"], 3);

    // A session joining and leaving is announced.
    let pb = bob.pipe();
    let j = pa.expect("peer_joined");
    assert_eq!(j["name"], "bob");
    drop(pb.close());
    let l = pa.expect("peer_left");
    assert_eq!(l["name"], "bob");

    pa.cmd(json!({"cmd": "peers", "id": "p"}));
    let p = pa.expect("peers");
    assert_eq!(p["id"], "p");
    assert!(
        p["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "bob" && r["status"] == "offline")
    );
    pa.cmd(json!({"cmd": "members"}));
    let m = pa.expect("members");
    assert_eq!(m["members"].as_array().unwrap().len(), 2);

    // Sent just before the end of input: confirmed before the pipe exits 0.
    pa.cmd(json!({"cmd": "send", "to": "bob", "text": "bye", "id": "last"}));
    let (status, rest) = pa.close();
    assert!(status.success());
    assert!(
        rest.iter()
            .any(|v| v["type"] == "send_result" && v["id"] == "last"),
        "{rest:?}"
    );
    assert_eq!(texts(&bob.inbox()), ["bye"]);
}

#[test]
fn pipe_carries_on_across_a_broker_restart() {
    let dir = TempDir::new("restart");
    let b = Broker::start(&dir, &[]);
    let addr = b.addr.to_string();
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));
    let mut pipe = bob.pipe();
    pipe.cmd(json!({"cmd": "peers"}));
    pipe.expect("peers");
    pipe.cmd(json!({"cmd": "status", "status": "working"}));
    pipe.expect("ok");

    let data = b.data.clone();
    b.kill();
    let d = pipe.wait_for(Duration::from_secs(10), |v| {
        v["type"] == "connection" && v["state"] == "disconnected"
    });
    assert!(d["retry_in_ms"].as_u64().is_some(), "{d}");
    // Sent while the broker is down: kept, and delivered after the reconnect (the name from the last roster).
    pipe.cmd(json!({"cmd": "send", "to": "alice", "text": "sent while down", "id": "down"}));
    let b = Broker::start_in(&data, &["--listen", &addr]);
    let c = pipe.wait_for(Duration::from_secs(30), |v| {
        v["type"] == "connection" && v["state"] == "connected"
    });
    assert_eq!(c["mesh"], "dev");
    let r = pipe.wait_for(Duration::from_secs(10), |v| v["type"] == "send_result");
    assert_eq!(
        (r["id"].as_str(), r["status"].as_str()),
        (Some("down"), Some("queued")),
        "{r}"
    );
    assert_eq!(texts(&alice.inbox()), ["sent while down"]);

    // Still receiving, and its status was set again (only `now` is pushed to a working connection). A pipe is a
    // peer: a session presence of its own, listed without --all.
    let rows = alice.run("cm-peers", &["--json"]).ok();
    let is_bob =
        |r: &&Value| r["member_pubkey"] == bob.pubkey().as_str() && r["peer_role"] == "session";
    assert_eq!(
        rows.iter().find(is_bob).map(|r| r["status"].clone()),
        Some(json!("working")),
        "{rows:?}"
    );
    let r = alice
        .run(
            "cm-send",
            &["--json", "-p", "now", "bob", "after the restart"],
        )
        .ok();
    assert_eq!(r[0]["status"], "sent", "{r:?}");
    assert_eq!(pipe.expect("message")["text"], "after the restart");
    let (status, _) = pipe.close();
    assert!(status.success());
    drop(b);
}

#[test]
fn inbox_wait_blocks_until_a_message_arrives() {
    let (_d, b) = broker("wait");
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));

    let start = Instant::now();
    let r = bob.run("cm-inbox", &["--wait", "1"]);
    assert_eq!((r.code, r.out.as_str()), (Some(0), ""), "{}", r.err);
    assert!(start.elapsed() >= Duration::from_millis(900));

    let child = bob
        .cmd("cm-inbox")
        .args(["--json", "--wait", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let r = alice.send("bob", "wake up");
    // A waiting inbox counts as a live pull: the message went out at once.
    assert_eq!(r["status"], "sent", "{r}");
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got["text"], "wake up");
    assert!(bob.inbox().is_empty());
    let r = bob.run("cm-inbox", &["3"]);
    assert_eq!(r.code, Some(3));
}

#[test]
fn the_prompt_hook_hands_messages_to_claude_code() {
    let (_d, b) = broker("hook");
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));
    let hook_input = r#"{"session_id":"s","hook_event_name":"UserPromptSubmit","prompt":"hi"}"#;
    let r = bob.run_with("cm-inbox", &["--hook"], hook_input);
    assert_eq!((r.code, r.out.as_str(), r.err.as_str()), (Some(0), "", ""));

    let sent = alice.send("bob", "please review PR 12");
    let r = bob.run_with("cm-inbox", &["--hook"], hook_input);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(r.out.lines().count(), 1);
    let v: Value = serde_json::from_str(&r.out).unwrap();
    assert!(r.out.starts_with(
        r#"{"hookSpecificOutput":{"hookEventName":"UserPromptSubmit","additionalContext":"#
    ));
    let ctx = v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(ctx.contains("please review PR 12"), "{ctx}");
    assert!(ctx.contains("from: alice (key "), "{ctx}");
    assert!(ctx.contains(sent["message_id"].as_str().unwrap()), "{ctx}");
    assert!(
        ctx.contains(&format!(
            "cm-send --mesh dev --reply-to {} {}",
            sent["message_id"].as_str().unwrap(),
            alice.pubkey()
        )),
        "{ctx}"
    );
    let r = bob.run_with("cm-inbox", &["--hook"], hook_input);
    assert_eq!(r.out, "", "acknowledged after the hook's line");

    // Too much for one prompt: what does not fit stays for the next one.
    let long = "y".repeat(2000);
    for _ in 0..6 {
        alice.send("bob", &long);
    }
    let first = bob.run_with("cm-inbox", &["--hook"], hook_input);
    assert!(first.out.len() < 10_000, "{}", first.out.len());
    let n1 = first.out.matches(&long).count();
    assert!(n1 > 0 && n1 < 6, "{n1}");
    let second = bob.run_with("cm-inbox", &["--hook"], hook_input);
    assert_eq!(n1 + second.out.matches(&long).count(), 6);

    // A failure never blocks the prompt.
    let lost = TempDir::new("hook-nothing");
    let r = std::process::Command::new(crate::peer::bin("cm-inbox"))
        .arg("--hook")
        .env("CLAUDEMESH_CONFIG_DIR", lost.0.join("cfg"))
        .env_remove("CLAUDEMESH_MESH")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    assert_eq!(r.stdout, b"");
    assert_eq!(String::from_utf8_lossy(&r.stderr).lines().count(), 1);
}

#[test]
fn names_resolve_across_joined_meshes() {
    let (_d, b) = broker("meshes");
    let dev = Mesh::named(&b, "dev", &["alice", "bob", "dana"]);
    let ops = Mesh::named(&b, "ops", &["alice-ops", "carol", "dana"]);
    let alice = by(&dev, "alice");
    alice.adopt(by(&ops, "alice-ops"));
    let carol = by(&ops, "carol");

    let r = alice.send("carol", "found in ops");
    assert_eq!(
        (r["mesh"].as_str(), r["name"].as_str()),
        (Some("ops"), Some("carol")),
        "{r}"
    );
    assert_eq!(texts(&carol.inbox()), ["found in ops"]);
    let r = alice.send("bob", "found in dev");
    assert_eq!(r["mesh"], "dev");

    let r = alice.run("cm-send", &["dana", "which one?"]);
    assert_eq!(r.code, Some(3), "{}", r.err);
    assert!(
        r.err.contains(" in dev, dana (") && r.err.contains(" in ops; pick a mesh with --mesh"),
        "{}",
        r.err
    );
    let r = alice.run("cm-send", &["--mesh", "ops", "dana", "this one"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(texts(&by(&ops, "dana").inbox()), ["this one"]);
    assert!(by(&dev, "dana").inbox().is_empty());
    // `*` is of one mesh: the default one, the first joined.
    let r = alice.run("cm-send", &["*", "everyone?"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(r.out.contains("2 members"), "{}", r.out);

    // cm-peers and cm-inbox look at every mesh.
    let rows = alice.run("cm-peers", &["--json"]).ok();
    let meshes: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["mesh"].as_str().unwrap()).collect();
    assert_eq!(meshes.into_iter().collect::<Vec<_>>(), ["dev", "ops"]);
    by(&dev, "bob").send("alice", "from dev");
    carol.send("alice-ops", "from ops");
    let mut got = alice.inbox();
    got.sort_by_key(|m| m["mesh"].as_str().unwrap().to_string());
    assert_eq!(texts(&got), ["from dev", "from ops"]);
    let r = alice.run("cm-inbox", &["--peek"]);
    assert_eq!(r.out, "");
}

#[test]
fn inside_a_plain_claude_session_the_tools_and_the_hook_act_as_that_session() {
    let (_d, b) = broker("claude-session");
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));
    let id = "0e4f9b2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b";
    // A command Claude runs in bob's `claude` (not started by cm launch): Claude Code sets its session id.
    let o = bob
        .cmd("cm-send")
        .env("CLAUDE_CODE_SESSION_ID", id)
        .args(["alice", "from bob's session"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let got = alice.inbox();
    let m = got
        .iter()
        .find(|m| m["text"] == "from bob's session")
        .unwrap_or_else(|| panic!("{got:?}"));
    let session_key = m["from"]["pubkey"].as_str().unwrap().to_string();
    assert_ne!(
        session_key,
        bob.pubkey(),
        "it spoke as the member, not the session"
    );
    assert_eq!(m["from"]["member_pubkey"], bob.pubkey().as_str());

    // alice answers that session's key; bob's prompt hook, told the session id only on stdin, hands it over.
    alice.send(&session_key, "reply to the session");
    let input = json!({"session_id": id, "hook_event_name": "UserPromptSubmit", "prompt": "hi"})
        .to_string();
    let hook = bob.run_with("cm-inbox", &["--hook"], &input);
    assert_eq!(hook.code, Some(0), "{hook:?}");
    assert!(hook.out.contains("reply to the session"), "{hook:?}");
}

#[test]
fn one_key_in_two_meshes_gets_each_meshs_dms_only_where_it_is_a_member() {
    use crate::harness::{User, lines};
    use std::io::{BufRead, BufReader};
    let (_d, b) = broker("one-key-two-meshes");
    let (alice, bob, carol) = (User::new("alice"), User::new("bob"), User::new("carol"));
    alice.json("cm-mesh", &["new", "dev", "--broker", &b.ws_url()]);
    carol.json("cm-mesh", &["new", "ops", "--broker", &b.ws_url()]);
    // bob joins both from one machine: one identity, the same key, a member of each mesh.
    for (owner, mesh) in [(&alice, "dev"), (&carol, "ops")] {
        let inv = owner.json("cm-mesh", &["invite", "--mesh", mesh]);
        bob.json("cm-mesh", &["join", inv[0]["url"].as_str().unwrap()]);
    }
    // Connected in dev only.
    let mut pipe = bob
        .cmd("cm-pipe")
        .args(["--mesh", "dev"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let out = pipe.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });
    let next = |ty: &str| loop {
        let v = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        if v["type"] == ty {
            return v;
        }
    };
    assert_eq!(next("connection")["state"], "connected");

    // In ops bob is offline, however live his key is in dev: the DM waits for him there.
    let r = &carol.json("cm-send", &["bob", "for ops"])[0];
    assert_eq!(
        (r["status"].as_str(), r["recipient_online"].as_bool()),
        (Some("queued"), Some(false)),
        "{r}"
    );
    let r = &alice.json("cm-send", &["bob", "for dev"])[0];
    assert_eq!(r["status"], "sent", "{r}");
    let m = next("message");
    assert_eq!(
        (m["text"].as_str(), m["mesh"].as_str()),
        (Some("for dev"), Some("dev"))
    );
    let later: Vec<Value> = rx
        .recv_timeout(Duration::from_millis(300))
        .into_iter()
        .collect();
    assert!(later.iter().all(|v| v["type"] != "message"), "{later:?}");
    let _ = pipe.kill();
    let _ = pipe.wait();
    let got = lines(&bob.ok("cm-inbox", &["--json", "--mesh", "ops"]));
    assert_eq!(texts(&got), ["for ops"]);
    assert_eq!(got[0]["from"]["name"], "carol");
}
