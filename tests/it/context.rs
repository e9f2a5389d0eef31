//! Context as sessions use it: the real cm-context against a real broker, two members sharing what they learned,
//! finding each other's by a word and by a tag, a share replacing the one before, and cm-pipe told of a share.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Broker, Mesh, TempDir};
use crate::peer::Peer;

fn by<'a>(peers: &'a [Peer], name: &str) -> &'a Peer {
    peers.iter().find(|p| p.name == name).unwrap()
}

/// `cm-context ARGS --json` as `p`, expecting success.
fn context(p: &Peer, args: &[&str]) -> Vec<Value> {
    let mut a = args.to_vec();
    a.push("--json");
    p.run("cm-context", &a).ok()
}

/// `cm-context ARGS` as `p`, expecting exit status `code`; its stderr, one line.
fn fails(p: &Peer, args: &[&str], code: i32) -> String {
    let r = p.run("cm-context", args);
    assert_eq!(
        r.code,
        Some(code),
        "cm-context {args:?}: {}{}",
        r.out,
        r.err
    );
    assert_eq!(r.err.lines().count(), 1, "one line: {}", r.err);
    r.err
}

fn names(found: &[Value]) -> Vec<&str> {
    found
        .iter()
        .map(|c| c["peer_name"].as_str().unwrap())
        .collect()
}

#[test]
fn two_members_share_find_by_word_and_tag_and_a_share_replaces_the_one_before() {
    let dir = TempDir::new("context");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));
    let mut pipe = bob.pipe();

    assert!(context(alice, &["list"]).is_empty());
    let empty = alice.run("cm-context", &["list"]);
    assert_eq!(empty.code, Some(0), "{}", empty.err);
    assert!(
        empty.out.starts_with("no context shared in mesh "),
        "{}",
        empty.out
    );

    let s = context(
        alice,
        &[
            "share",
            "Token refresh lives in src/auth/session.rs",
            "--files",
            "src/auth/session.rs,src/auth/retry.rs",
            "--findings",
            "refresh races on reconnect",
            "--finding",
            "the retry loop, not the timer, is the bug",
            "--tags",
            "auth,bugs",
        ],
    );
    assert_eq!(
        (
            &s[0]["type"],
            &s[0]["shared"],
            &s[0]["replaced"],
            &s[0]["summary"]
        ),
        (
            &json!("context_shared"),
            &json!(true),
            &json!(false),
            &json!("Token refresh lives in src/auth/session.rs")
        ),
        "{s:?}"
    );
    let first_id = s[0]["id"].as_str().unwrap().to_string();
    // Bob's session is told, with the whole context.
    let ev = pipe.wait_for(Duration::from_secs(10), |v| {
        v["type"] == "system" && v["event"] == "context_shared"
    });
    assert_eq!(
        (
            &ev["data"]["peerName"],
            &ev["data"]["tags"],
            &ev["data"]["id"]
        ),
        (&json!("alice"), &json!(["auth", "bugs"]), &json!(first_id)),
        "{ev}"
    );
    context(
        bob,
        &[
            "share",
            "The lexer drops CRLF",
            "--tags",
            "parser",
            "--files",
            "src/lex.rs",
        ],
    );

    // By a word of the summary, in any case; of a finding; of a file; by a tag, with or without its #.
    let got = context(bob, &["get", "TOKEN", "refresh"]);
    assert_eq!(names(&got), ["alice"]);
    assert_eq!(
        got[0],
        json!({"type": "context", "peer_name": "alice",
            "summary": "Token refresh lives in src/auth/session.rs",
            "files_read": ["src/auth/session.rs", "src/auth/retry.rs"],
            "key_findings": ["refresh races on reconnect", "the retry loop, not the timer, is the bug"],
            "tags": ["auth", "bugs"], "updated_at": got[0]["updated_at"]})
    );
    assert!(got[0]["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(names(&context(bob, &["get", "races"])), ["alice"]);
    assert_eq!(names(&context(alice, &["get", "lex.rs"])), ["bob"]);
    assert_eq!(names(&context(alice, &["get", "#parser"])), ["bob"]);
    assert_eq!(names(&context(alice, &["get", "bugs"])), ["alice"]);
    assert_eq!(names(&context(alice, &["get", "src/"])), ["bob", "alice"]);
    assert!(context(alice, &["get", "nothing like it"]).is_empty());
    let none = alice.run("cm-context", &["get", "nothing"]);
    assert_eq!(none.out, "no context matches \"nothing\"\n");

    // Newest first; sharing again replaces, under the same id, and moves it to the top.
    assert_eq!(names(&context(alice, &["list"])), ["bob", "alice"]);
    let again = context(
        alice,
        &["share", "Auth is done; see the PR", "--tags", "auth"],
    );
    assert_eq!(
        (&again[0]["id"], &again[0]["replaced"]),
        (&json!(first_id), &json!(true))
    );
    let all = context(bob, &["list"]);
    assert_eq!(names(&all), ["alice", "bob"]);
    assert_eq!(
        (
            &all[0]["summary"],
            &all[0]["files_read"],
            &all[0]["key_findings"]
        ),
        (&json!("Auth is done; see the PR"), &json!([]), &json!([]))
    );
    assert!(context(bob, &["get", "races"]).is_empty());

    // A second session of alice under another name keeps its own.
    let o = alice
        .cmd("cm-context")
        .args(["share", "Docs need a deploy page", "--json"])
        .env("CLAUDEMESH_DISPLAY_NAME", "alice-docs")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        names(&context(bob, &["list"])),
        ["alice-docs", "alice", "bob"]
    );

    // The human views.
    let shared = alice.run("cm-context", &["share", "Auth is done", "--tags", "auth"]);
    assert!(
        shared.out.starts_with("replaced your earlier context "),
        "{}",
        shared.out
    );
    let got = bob.run("cm-context", &["get", "lexer"]);
    assert_eq!(got.code, Some(0), "{}", got.err);
    let rows: Vec<&str> = got.out.lines().collect();
    assert_eq!(rows[0], "bob  now #parser", "{}", got.out);
    assert_eq!(
        &rows[1..],
        ["  The lexer drops CRLF", "  files: src/lex.rs"]
    );

    // Bad input: one line and the usage status.
    assert!(fails(alice, &["share"], 3).contains("SUMMARY"));
    assert!(fails(alice, &["share", " "], 3).contains("summary"));
    assert!(fails(alice, &["get"], 3).contains("QUERY"));
    let long = "x".repeat(9000);
    assert!(fails(alice, &["share", &long], 3).contains("summary"));
    let tags: Vec<String> = (0..17).map(|i| format!("t{i}")).collect();
    assert!(fails(alice, &["share", "x", "--tags", &tags.join(",")], 3).contains("tags"));
    drop(pipe.close());
}
