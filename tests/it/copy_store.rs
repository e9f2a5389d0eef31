//! Moving a mesh from a SQLite broker to PostgreSQL with `cm-broker copy-store`, walked as an operator and the
//! members would: a mesh of three on SQLite with a DM left unread, a topic, state, a memory, a reminder due later
//! and an API key; the broker stopped, the store copied, a broker started on the database at the same address;
//! and everything the members had is there. A second copy into the same database is refused and changes nothing.
//!
//! The server is `$CM_TEST_POSTGRES`, else a private cluster (see `testdb`); without either the test skips, and
//! fails when CI is set.

use std::process::Command;

use serde_json::Value;

use crate::harness::{BROKER, Broker, TempDir, User, lines, text};
use crate::testdb;
use crate::topics::http;

fn texts(v: &[Value]) -> Vec<&str> {
    v.iter().filter_map(|m| m["text"].as_str()).collect()
}

/// `cm-broker copy-store --data DATA --database-url URL [extra]`: (exit code, stdout, stderr).
fn copy_store(data: &std::path::Path, url: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(BROKER)
        .args(["copy-store", "--data"])
        .arg(data)
        .args(["--database-url", url])
        .args(extra)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    (o.status.code(), text(&o.stdout), text(&o.stderr))
}

/// Rows of each table of `url`'s database that a mesh's data lives in.
fn counts(url: &str) -> Vec<(String, i64)> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    [
        "meshes",
        "members",
        "deliveries",
        "topic_messages",
        "memories",
        "api_keys",
    ]
    .iter()
    .map(|t| {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .unwrap()
            .get(0);
        (t.to_string(), n)
    })
    .collect()
}

#[test]
fn a_mesh_moved_from_sqlite_to_postgresql_keeps_what_its_members_had() {
    let Some(url) = testdb::fresh_database("copy") else {
        return;
    };
    let dir = TempDir::new("copy-store");
    let sqlite = dir.0.join("sqlite");
    let b = Broker::start_in(&sqlite, &[]);
    let addr = b.addr;
    let (alice, bob, carol) = (User::new("alice"), User::new("bob"), User::new("carol"));
    alice.json("cm-mesh", &["new", "dev", "--broker", &b.ws_url()]);
    for u in [&bob, &carol] {
        let inv = alice.json("cm-mesh", &["invite"]);
        u.json("cm-mesh", &["join", inv[0]["url"].as_str().unwrap()]);
    }
    // carol is away: the DMs wait for her, unread.
    alice.ok("cm", &["send", "carol", "while you were away"]);
    bob.ok("cm", &["send", "carol", "ping me when back"]);
    alice.ok("cm-topic", &["create", "dev"]);
    bob.ok("cm-topic", &["join", "dev"]);
    alice.ok("cm-topic", &["post", "dev", "the build is green"]);
    bob.ok("cm-topic", &["post", "dev", "shipping it"]);
    alice.ok("cm", &["state", "set", "release", "v1.4"]);
    alice.json(
        "cm-memory",
        &["remember", "the deploy key rotates monthly", "--tag", "ops"],
    );
    alice.json("cm-remind", &["--in", "2h", "standup notes"]);
    let notes = dir.0.join("notes.txt");
    std::fs::write(&notes, b"the release notes\n").unwrap();
    let put = alice.json("cm-file", &["put", notes.to_str().unwrap(), "--to", "bob"]);
    let file_id = put[0]["id"].as_str().unwrap().to_string();
    let told = bob.json("cm-inbox", &["--wait", "10"]);
    assert_eq!(told.len(), 1, "bob is told of the file: {told:?}");
    let made = alice.json("cm-apikey", &["create", "ci"]);
    let key = made[0]["secret"].as_str().unwrap().to_string();
    let (status, _) = http(addr, "GET", "/api/v1/members", Some(&key), None);
    assert_eq!(status, 200);
    assert_eq!(b.signal(libc::SIGTERM), Some(0));

    let pg = dir.0.join("pg");
    let (code, out, err) = copy_store(&sqlite, &url, &["--json"]);
    assert_eq!(code, Some(0), "{err}");
    let report = lines(&out);
    let rows = |t: &str| {
        report
            .iter()
            .find(|l| l["type"] == "table" && l["table"] == t)
            .and_then(|l| l["rows"].as_i64())
            .unwrap_or_else(|| panic!("no {t} in {out}"))
    };
    assert_eq!(
        (rows("meshes"), rows("members"), rows("topic_messages")),
        (1, 3, 2)
    );
    assert!(rows("deliveries") >= 2, "{out}");
    let total = report
        .iter()
        .find(|l| l["type"] == "total")
        .unwrap_or_else(|| panic!("no total in {out}"));
    let sum: i64 = report
        .iter()
        .filter(|l| l["type"] == "table")
        .filter_map(|l| l["rows"].as_i64())
        .sum();
    assert_eq!(total["rows"].as_i64(), Some(sum), "{out}");
    assert_eq!(
        (&total["files"], &total["damaged"]),
        (&Value::from(1), &serde_json::json!([])),
        "{out}"
    );

    // The broker on PostgreSQL, at the address the members know, in a data directory of its own: the files'
    // ciphertext is in the database now.
    let b = Broker::start_in(
        &pg,
        &["--database-url", &url, "--listen", &addr.to_string()],
    );
    let inbox = carol.json("cm-inbox", &["--wait", "10"]);
    let mut got = texts(&inbox);
    got.sort();
    assert_eq!(
        got,
        ["ping me when back", "while you were away"],
        "{inbox:?}"
    );
    let history = bob.json("cm-topic", &["history", "dev"]);
    assert_eq!(texts(&history), ["the build is green", "shipping it"]);
    assert_eq!(carol.ok("cm", &["state", "get", "release"]).trim(), "v1.4");
    let found = bob.json("cm-memory", &["recall", "deploy"]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["content"], "the deploy key rotates monthly");
    let reminders = alice.json("cm-remind", &["list"]);
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    let got_file = dir.0.join("got.txt");
    bob.ok(
        "cm-file",
        &["get", &file_id, "-o", got_file.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&got_file).unwrap(), b"the release notes\n");
    let (status, members) = http(addr, "GET", "/api/v1/members", Some(&key), None);
    assert_eq!(status, 200, "{members}");
    let mut names: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["displayName"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "bob", "carol"], "{members}");

    // New rows after the copy take ids past the copied ones.
    alice.ok("cm", &["send", "bob", "on postgres now"]);
    assert_eq!(
        texts(&bob.json("cm-inbox", &["--wait", "10"])),
        ["on postgres now"]
    );
    carol.ok("cm-topic", &["join", "dev"]);
    carol.ok("cm-topic", &["post", "dev", "back"]);
    let history = alice.json("cm-topic", &["history", "dev"]);
    assert_eq!(
        texts(&history),
        ["the build is green", "shipping it", "back"]
    );
    alice.json("cm-memory", &["remember", "standups are at ten"]);
    assert_eq!(bob.json("cm-memory", &["recall", "standups"]).len(), 1);

    // A second copy into a database that holds a mesh is refused, and nothing is doubled.
    let before = counts(&url);
    let (code, out, err) = copy_store(&sqlite, &url, &[]);
    assert_eq!(code, Some(6), "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("already holds"), "{err}");
    assert_eq!(counts(&url), before);
    drop(b);
}

#[test]
fn copy_store_without_a_sqlite_store_is_not_found() {
    let dir = TempDir::new("copy-none");
    let (code, _, err) = copy_store(&dir.0.join("nothing"), "postgres://u@127.0.0.1:1/db", &[]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("broker.db"), "{err}");
    // A running broker's flag is refused, not ignored: the operator meant something copy-store does not do.
    let (code, _, err) = copy_store(
        &dir.0.join("nothing"),
        "postgres://u@127.0.0.1:1/db",
        &["--listen", "127.0.0.1:7900"],
    );
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(
        err.trim(),
        "cm-broker: --listen does not apply to 'cm-broker copy-store'; see 'cm-broker --help'"
    );
}

#[test]
fn a_copy_beside_a_broker_that_still_serves_reads_one_snapshot() {
    let Some(url) = testdb::fresh_database("copylive") else {
        return;
    };
    let dir = TempDir::new("copy-live");
    let sqlite = dir.0.join("sqlite");
    let b = Broker::start_in(&sqlite, &[]);
    let (alice, bob) = (User::new("alice"), User::new("bob"));
    alice.json("cm-mesh", &["new", "dev", "--broker", &b.ws_url()]);
    let inv = alice.json("cm-mesh", &["invite"]);
    bob.json("cm-mesh", &["join", inv[0]["url"].as_str().unwrap()]);
    // The broker keeps writing while the copy reads.
    let sender = std::thread::spawn(move || {
        for i in 0..20 {
            alice.ok("cm", &["send", "bob", &format!("message {i}")]);
        }
        alice
    });
    let (code, out, err) = copy_store(&sqlite, &url, &["--json"]);
    assert_eq!(code, Some(0), "{err}");
    let report = lines(&out);
    let rows = |t: &str| {
        report
            .iter()
            .find(|l| l["table"] == t)
            .and_then(|l| l["rows"].as_i64())
            .unwrap()
    };
    assert_eq!((rows("meshes"), rows("members")), (1, 2));
    // One snapshot: every message copied has its delivery.
    assert_eq!(rows("messages"), rows("deliveries"), "{out}");
    sender.join().unwrap();
    assert_eq!(b.signal(libc::SIGTERM), Some(0));
}
