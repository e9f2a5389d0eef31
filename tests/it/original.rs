//! Our tools against the original claudemesh broker, imitated by [`crate::imitation::Original`] in front of a
//! real cm-broker: each user path either works by the way that broker has, or fails at once with one line and exit
//! 12 — never a 10 s timeout, never a false success.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Broker, TempDir};
use crate::imitation::Original;
use crate::peer::{Peer, Run};

/// Exit status for a feature the broker does not have (`Code::Unsupported`).
const UNSUPPORTED: i32 = 12;

/// Far below the tools' 10 s request timeout: what a tool that waited for an answer never coming could not do.
const PROMPT: Duration = Duration::from_secs(4);

fn setup(names: &[&str]) -> (TempDir, Broker, Original, Vec<Peer>) {
    let dir = TempDir::new("original");
    let broker = Broker::start(&dir, &[]);
    let original = Original::start(&broker);
    let peers = crate::harness::Mesh::at(&original.ws_url(), "dev", names);
    (dir, broker, original, peers)
}

/// Runs `tool args` as `p`, and checks that it ended well within [`PROMPT`].
fn timed(p: &Peer, tool: &str, args: &[&str]) -> Run {
    let start = Instant::now();
    let r = p.run(tool, args);
    assert!(
        start.elapsed() < PROMPT,
        "{tool} {args:?} took {:?}: {}{}",
        start.elapsed(),
        r.out,
        r.err
    );
    r
}

fn ok(p: &Peer, tool: &str, args: &[&str]) -> Vec<Value> {
    timed(p, tool, args).ok()
}

/// Expects exit 12 with one line on stderr, and returns that line.
fn unsupported(p: &Peer, tool: &str, args: &[&str]) -> String {
    let r = timed(p, tool, args);
    assert_eq!(
        r.code,
        Some(UNSUPPORTED),
        "{tool} {args:?}: {}{}",
        r.out,
        r.err
    );
    assert_eq!(r.err.lines().count(), 1, "{}", r.err);
    assert!(r.err.contains("original claudemesh broker"), "{}", r.err);
    r.err
}

#[test]
fn peers_and_sends_take_the_roster_from_list_peers() {
    let (_d, _b, original, peers) = setup(&["alice", "bob", "carol"]);
    let (alice, bob, carol) = (&peers[0], &peers[1], &peers[2]);
    let mut pipe = bob.pipe();

    let listed = ok(alice, "cm-peers", &["--json"]);
    assert!(listed.iter().any(|p| p["name"] == "bob"), "{listed:?}");

    let sent = ok(alice, "cm-send", &["--json", "bob", "by name"]);
    assert_eq!(sent[0]["status"], "sent", "{sent:?}");
    let got = pipe.expect("message");
    assert_eq!(got["text"], "by name");

    let key = bob.pubkey();
    ok(alice, "cm-send", &["--json", &key, "by key"]);
    assert_eq!(pipe.expect("message")["text"], "by key");

    ok(alice, "cm-send", &["--json", "*", "to everyone"]);
    assert_eq!(pipe.expect("message")["text"], "to everyone");

    // Carol has no session: the original lists only who is online, and has no member list to find her by name.
    let r = timed(alice, "cm-send", &["carol", "hello?"]);
    assert_eq!(r.code, Some(5), "{}{}", r.out, r.err);
    assert!(
        r.err.contains("carol") && r.err.contains("lists online members only"),
        "{}",
        r.err
    );
    // Her full key needs no roster: it is sealed to her and queued.
    let queued = ok(alice, "cm-send", &["--json", &carol.pubkey(), "for later"]);
    assert_eq!(queued[0]["status"], "queued", "{queued:?}");
    assert_eq!(original.dropped(), Vec::<String>::new());
    drop(pipe);
}

#[test]
fn the_inbox_is_what_the_broker_pushes_at_connect() {
    let (_d, _b, original, peers) = setup(&["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    let queued = ok(
        alice,
        "cm-send",
        &["--json", &bob.pubkey(), "while you were out"],
    );
    assert_eq!(queued[0]["status"], "queued");

    let inbox = ok(bob, "cm-inbox", &["--json"]);
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0]["text"], "while you were out");
    // Acknowledged: it does not come again.
    assert!(ok(bob, "cm-inbox", &["--json"]).is_empty());
    assert!(
        !original.dropped().contains(&"inbox_fetch".to_string()),
        "{:?}",
        original.dropped()
    );
}

#[test]
fn state_set_is_confirmed_by_reading_it_back() {
    let (_d, _b, _o, peers) = setup(&["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    let set = ok(
        alice,
        "cm-state",
        &["set", "build/status", "green", "--json"],
    );
    assert_eq!(set[0]["key"], "build/status", "{set:?}");
    assert_eq!(set[0]["value"], "green", "{set:?}");
    assert_eq!(set[0]["version"], 1, "{set:?}");
    let got = timed(bob, "cm-state", &["get", "build/status"]);
    assert_eq!(got.out, "green\n", "{}", got.err);
    let e = unsupported(alice, "cm-state", &["del", "build/status"]);
    assert!(e.starts_with("cm-state: "), "{e}");
}

#[test]
fn topics_are_addressed_by_id_and_joins_need_no_reply() {
    let (_d, _b, _o, peers) = setup(&["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    ok(
        alice,
        "cm-topic",
        &["create", "dev", "--plaintext", "--json"],
    );
    let joined = ok(bob, "cm-topic", &["join", "dev", "--json"]);
    assert_eq!(joined.len(), 1, "{joined:?}");
    ok(
        bob,
        "cm-topic",
        &["post", "--json", "--plaintext", "dev", "hello from bob"],
    );
    let history = ok(alice, "cm-topic", &["history", "dev", "--json"]);
    assert!(
        history.iter().any(|m| m["text"] == "hello from bob"),
        "{history:?}"
    );
    let read = ok(bob, "cm-topic", &["read", "dev", "--json"]);
    assert_eq!(read[0]["confirmed"], false, "{read:?}");
    ok(bob, "cm-topic", &["leave", "dev", "--json"]);
    let members = ok(alice, "cm-topic", &["members", "dev", "--json"]);
    assert!(!members.iter().any(|m| m["name"] == "bob"), "{members:?}");

    // Its keys come from the broker and over REST only: say so before creating anything.
    unsupported(alice, "cm-topic", &["create", "ops"]);
    let list = ok(alice, "cm-topic", &["list", "--json"]);
    assert!(!list.iter().any(|t| t["name"] == "ops"), "{list:?}");
}

#[test]
fn what_the_original_lacks_fails_at_once_and_sends_nothing() {
    let (_d, _b, original, peers) = setup(&["alice"]);
    let alice = &peers[0];
    unsupported(alice, "cm-profile", &[]);
    unsupported(alice, "cm-notify", &["list"]);
    unsupported(alice, "cm-file", &["list"]);
    let path = alice.dir.0.join("notes.txt");
    std::fs::write(&path, "x").unwrap();
    unsupported(alice, "cm-file", &["put", path.to_str().unwrap()]);
    // It keeps grants in a file of its own client's: refused before a name is looked up or anything is sent.
    unsupported(alice, "cm-grant", &["block", "bob"]);
    unsupported(alice, "cm-grant", &["list"]);
    unsupported(alice, "cm-task", &["watch"]);
    unsupported(alice, "cm-webhook", &["create", "ci", "--to", "@ops"]);
    assert_eq!(original.dropped(), Vec::<String>::new());
}

#[test]
fn a_summary_is_sent_and_said_to_be_unconfirmed() {
    let (_d, _b, _o, peers) = setup(&["alice"]);
    let alice = &peers[0];
    let r = timed(alice, "cm-profile", &["summary", "fixing CI"]);
    assert_eq!(r.code, Some(0), "{}{}", r.out, r.err);
    assert!(r.out.contains("not confirm"), "{}", r.out);
}

#[test]
fn reminders_list_and_set_without_a_member_list() {
    let (_d, _b, _o, peers) = setup(&["alice"]);
    let alice = &peers[0];
    ok(alice, "cm-remind", &["--in", "1h", "stand-up", "--json"]);
    let list = ok(alice, "cm-remind", &["list", "--json"]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["text"], "stand-up", "{list:?}");
}

#[test]
fn the_bench_runs_against_the_original() {
    let dir = TempDir::new("original-bench");
    let broker = Broker::start(&dir, &["--rate-limit", "0"]);
    let original = Original::start(&broker);
    let bench = |args: &[&str]| {
        std::process::Command::new(crate::harness::bin("cm-bench"))
            .args(args)
            .args(["--broker", &original.ws_url(), "--json"])
            .env_remove("CLAUDEMESH_SESSION_ID")
            .output()
            .unwrap()
    };
    // Each member its own session id: the original replaces a presence of the same one.
    for (args, delivered) in [
        (&["dm", "--peers", "3", "--messages", "4"][..], 12),
        (&["fanout", "--peers", "3", "--messages", "2"][..], 6),
    ] {
        let o = bench(args);
        let err = crate::harness::text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        let r = crate::harness::lines(&crate::harness::text(&o.stdout)).remove(0);
        assert_eq!(r["delivered"], delivered, "{r}");
    }
    // Its topics take keys only over REST: said at once.
    let start = Instant::now();
    let o = bench(&["topic", "--peers", "2", "--messages", "2"]);
    assert_eq!(
        o.status.code(),
        Some(UNSUPPORTED),
        "{}",
        crate::harness::text(&o.stderr)
    );
    assert!(start.elapsed() < PROMPT);
}

#[test]
fn the_doctor_says_which_broker_it_is() {
    let (_d, _b, _o, peers) = setup(&["alice"]);
    let r = timed(&peers[0], "cm-doctor", &[]);
    assert!(
        r.out.contains("an original claudemesh broker"),
        "{}{}",
        r.out,
        r.err
    );
}

#[test]
fn context_is_shared_though_the_answer_names_no_request() {
    let (_d, _b, _o, peers) = setup(&["alice"]);
    let alice = &peers[0];
    let s = ok(
        alice,
        "cm-context",
        &["share", "auth is in src/auth", "--tags", "auth", "--json"],
    );
    assert_eq!(
        (&s[0]["type"], &s[0]["shared"]),
        (&json!("context_shared"), &json!(true))
    );
    assert!(s[0].get("replaced").is_none(), "{s:?}");
    let human = timed(alice, "cm-context", &["share", "auth is done"]);
    assert!(human.out.starts_with("shared context "), "{}", human.out);
    let got = ok(alice, "cm-context", &["get", "auth", "--json"]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["summary"], "auth is done");
}
