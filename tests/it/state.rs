//! Shared state, memory, reminders and profiles, as people use them: the real cm-state, cm-memory, cm-remind and
//! cm-profile against a real broker, with a second member reading what the first one changed.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use claudemesh::client::{Conn, ConnOpts, Inbound, Session, SessionAuth, SessionOpts, decode_push};
use claudemesh::config::{Paths, SessionKey};
use claudemesh::time::parse_rfc3339;
use claudemesh::wire::{self, Frame};
use serde_json::{Value, json};

use crate::harness::{Broker, TempDir, User, lines, text};

/// alice makes mesh dev on `b`; bob joins it.
fn pair(b: &Broker) -> (User, User) {
    let (alice, bob) = (User::new("alice"), User::new("bob"));
    alice.json("cm-mesh", &["new", "dev", "--broker", &b.ws_url()]);
    let inv = alice.json("cm-mesh", &["invite"]);
    let url = inv[0]["url"].as_str().unwrap_or_else(|| panic!("{inv:?}"));
    bob.json("cm-mesh", &["join", url]);
    (alice, bob)
}

/// A connection as `u`'s member. Tried twice: a connect in this busy test process has been seen to fail once with
/// EINTR during the WebSocket handshake, which the client's transport does not retry.
fn open(u: &User, opts: &ConnOpts) -> Conn {
    Conn::open(&u.mesh("dev"), opts)
        .or_else(|e| {
            assert!(e.msg.contains("interrupted"), "{e}");
            Conn::open(&u.mesh("dev"), opts)
        })
        .unwrap()
}

fn conn(u: &User) -> Conn {
    open(u, &ConnOpts::default())
}

/// What is pending for `u`'s member, waiting up to `wait_ms` for the first message; nothing is acknowledged.
fn inbox(u: &User, wait_ms: u64) -> Vec<Inbound> {
    let mesh = u.mesh("dev");
    let opts = ConnOpts {
        timeout: Duration::from_millis(wait_ms + 5000),
        ..ConnOpts::default()
    };
    let mut c = open(u, &opts);
    let fetch = wire::InboxFetch {
        wait_ms: Some(wait_ms),
        ..wire::InboxFetch::default()
    };
    let Frame::Inbox(i) = c.request(fetch).unwrap() else {
        panic!("no inbox")
    };
    c.close();
    let key = mesh.keypair().unwrap();
    i.messages
        .iter()
        .map(|p| decode_push(p, "dev", &key, None))
        .collect()
}

fn peers(u: &User) -> Vec<wire::Peer> {
    let mut c = conn(u);
    let Frame::PeersList(l) = c.request(wire::ListPeers::default()).unwrap() else {
        panic!("no peers_list")
    };
    c.close();
    l.peers
}

/// Moves the broker's scheduler clock to `at` (RFC 3339).
fn clock(b: &Broker, at: &str) {
    // A fresh agent: the shared one may hold a connection to a killed broker of another test that had this port.
    let agent = ureq::AgentBuilder::new().max_idle_connections(0).build();
    let r = agent
        .post(&b.http_url("/debug/clock"))
        .send_json(json!({"nowMs": parse_rfc3339(at).unwrap()}))
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Polls `f` until it returns `Some`, for at most `secs`.
fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(x) = f() {
            return x;
        }
        assert!(Instant::now() < until, "gave up after {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn state_compare_and_set_refuses_conflicts_and_watch_streams_changes() {
    let dir = TempDir::new("state");
    let b = Broker::start(&dir, &[]);
    let (alice, bob) = pair(&b);

    let set = alice.json("cm-state", &["set", "build/status", "green"]);
    assert_eq!(set[0]["type"], "state");
    assert_eq!(set[0]["value"], "green");
    assert_eq!(set[0]["version"], 1);
    assert_eq!(set[0]["updated_by"], "alice");
    // Bob sees it, and writes on top of the version he read.
    assert_eq!(bob.ok("cm-state", &["get", "build/status"]), "green\n");
    let v2 = bob.json(
        "cm-state",
        &["set", "build/status", "{\"ok\":false}", "--if-version", "1"],
    );
    assert_eq!(
        (v2[0]["version"].clone(), v2[0]["value"].clone()),
        (json!(2), json!({"ok": false}))
    );
    // Alice's write on the stale version is refused and changes nothing.
    let e = alice.fails(
        "cm-state",
        &["set", "build/status", "red", "--if-version", "1"],
        11,
    );
    assert_eq!(
        e,
        "cm-state: state \"build/status\" is at version 2, not 1\n"
    );
    assert_eq!(
        alice.json("cm-state", &["get", "build/status"])[0]["version"],
        2
    );
    // Version 0: only if not set.
    alice.fails(
        "cm-state",
        &["set", "build/status", "x", "--if-version", "0"],
        11,
    );
    alice.json(
        "cm-state",
        &["set", "deploy/lock", "alice", "--if-version", "0"],
    );
    // Delete with compare-and-set; a deleted key reads as not set, and is made again at a fresh version.
    bob.fails("cm-state", &["del", "deploy/lock", "--if-version", "7"], 11);
    bob.ok("cm-state", &["del", "deploy/lock", "--if-version", "1"]);
    let e = alice.fails("cm-state", &["get", "deploy/lock"], 5);
    assert!(
        e.contains("no state key \"deploy/lock\" in mesh dev"),
        "{e}"
    );
    let again = alice.json(
        "cm-state",
        &["set", "deploy/lock", "bob", "--if-version", "0"],
    );
    assert_eq!(again[0]["version"], 3, "a version is never reused");
    let listed = alice.json("cm-state", &["list"]);
    let keys: Vec<&str> = listed.iter().map(|v| v["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["build/status", "deploy/lock"]);
    alice.fails("cm-state", &["set", "k", "v", "--if-version", "-1"], 3);

    // Two people incrementing one counter with compare-and-set lose no update.
    let bump = |u: &User| {
        for _ in 0..4 {
            loop {
                let o = u.run("cm-state", &["get", "counter", "--json"]);
                let (n, v) = if o.status.code() == Some(5) {
                    (0, 0)
                } else {
                    let cur = &lines(&text(&o.stdout))[0];
                    (
                        cur["value"].as_i64().unwrap(),
                        cur["version"].as_i64().unwrap(),
                    )
                };
                let next = (n + 1).to_string();
                let set = u.run(
                    "cm-state",
                    &["set", "counter", &next, "--if-version", &v.to_string()],
                );
                match set.status.code() {
                    Some(0) => break,
                    Some(11) => assert!(text(&set.stderr).contains("is at version")),
                    c => panic!("{c:?}: {}", text(&set.stderr)),
                }
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| bump(&alice));
        s.spawn(|| bump(&bob));
    });
    assert_eq!(alice.ok("cm-state", &["get", "counter"]), "8\n");

    // bob watches one key: he sees alice's changes to it, and nothing else.
    let mut watch = bob
        .cmd("cm-state")
        .args(["watch", "w", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str::<Value>(&l).unwrap());
        }
    });
    // The watcher is listening once a change reaches it.
    let first = eventually(10, || {
        alice.ok("cm-state", &["set", "w", "1"]);
        rx.recv_timeout(Duration::from_millis(500)).ok()
    });
    assert_eq!(first["type"], "state_change");
    assert_eq!(first["key"], "w");
    assert_eq!(first["updated_by"], "alice");
    while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
    alice.ok("cm-state", &["set", "other", "\"x\""]);
    alice.ok("cm-state", &["set", "w", "[1,2]"]);
    alice.ok("cm-state", &["del", "w"]);
    let next = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (next["key"].clone(), next["value"].clone()),
        (json!("w"), json!([1, 2]))
    );
    let del = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (del["key"].clone(), del["deleted"].clone()),
        (json!("w"), json!(true))
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "only w"
    );
    let _ = watch.kill();
    let _ = watch.wait();

    // Values stay out of the broker's log.
    let log = std::fs::read_to_string(b.data.join("broker.log")).unwrap();
    assert!(!log.contains("green"), "{log}");
}

#[test]
fn recall_ranks_the_better_match_first_and_forget_hides_it() {
    let dir = TempDir::new("memory");
    let b = Broker::start(&dir, &[]);
    let (alice, bob) = pair(&b);
    let key = alice.json(
        "cm-memory",
        &["remember", "the deploy key rotates monthly", "--tag", "ops"],
    )[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    alice.json(
        "cm-memory",
        &["remember", "deploys", "go", "out", "on", "Tuesdays"],
    );
    bob.json("cm-memory", &["remember", "lunch is at noon", "-t", "food"]);

    // Bob finds alice's note first: it matches both words (and "deploys" matches "deploy").
    let found = bob.json("cm-memory", &["recall", "deploy", "key"]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0]["id"], key.as_str());
    assert_eq!(found[0]["content"], "the deploy key rotates monthly");
    assert_eq!(found[0]["tags"], json!(["ops"]));
    assert_eq!(found[0]["remembered_by"], "alice");
    assert!(found[0]["remembered_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(found[0]["snippet"], "the [deploy] [key] rotates monthly");
    assert!(found[0]["score"].as_f64().unwrap() > found[1]["score"].as_f64().unwrap());
    assert_eq!(found[1]["content"], "deploys go out on Tuesdays");
    // Tags are searched; --limit keeps the best.
    assert_eq!(
        bob.json("cm-memory", &["recall", "food"])[0]["content"],
        "lunch is at noon"
    );
    assert_eq!(
        bob.json("cm-memory", &["recall", "deploy", "-n", "1"])
            .len(),
        1
    );
    let human = bob.ok("cm-memory", &["recall", "deploy", "key"]);
    assert!(
        human.starts_with(&format!("{}  alice 20", &key[..8])),
        "{human}"
    );
    assert!(
        human.contains("\n  the [deploy] [key] rotates monthly\n"),
        "{human}"
    );
    // What people type is text, never FTS5 syntax.
    for q in [
        "\"",
        "key*",
        "a:b",
        "-deploy",
        "(deploy",
        "NEAR(deploy key)",
        "deploy OR",
        "'; drop",
    ] {
        bob.ok("cm-memory", &["recall", "--", q]);
    }
    assert!(bob.json("cm-memory", &["recall", "zebra"]).is_empty());

    // Forget by id prefix; then it is not found, and forgetting it again is "not found".
    let gone = alice.json("cm-memory", &["forget", &key[..8]]);
    assert_eq!(gone[0]["id"], key.as_str());
    let found = bob.json("cm-memory", &["recall", "deploy", "key"]);
    assert_eq!(found.len(), 1);
    assert_ne!(found[0]["id"], key.as_str());
    alice.fails("cm-memory", &["forget", &key], 5);
    alice.fails("cm-memory", &["forget", "zz"], 3);
    alice.fails("cm-memory", &["remember", "  "], 3);
}

#[test]
fn a_reminder_set_for_two_seconds_arrives_once_across_broker_restarts() {
    let dir = TempDir::new("remind");
    let data = dir.0.join("data");
    let b = Broker::start_in(&data, &[]);
    let addr = b.addr.to_string();
    let (alice, _bob) = pair(&b);

    let set = alice.json("cm-remind", &["--in", "2s", "stretch your legs"]);
    assert_eq!(set[0]["type"], "scheduled");
    assert_eq!(set[0]["to_name"], "yourself");
    let id = set[0]["id"].as_str().unwrap().to_string();
    let listed = alice.json("cm-remind", &["list"]);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(
        listed[0]["text"], "stretch your legs",
        "the sender reads its own reminder"
    );
    // The broker stores only ciphertext.
    let bytes = b.db_bytes();
    assert!(
        !bytes.windows(7).any(|w| w == b"stretch"),
        "plaintext in the database"
    );

    // Down before it is due, up after: it is delivered once, at start.
    b.kill();
    std::thread::sleep(Duration::from_millis(2500));
    let b = Broker::start_in(&data, &["--listen", &addr]);
    let got = inbox(&alice, 5000);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].subtype.as_deref(), Some("reminder"));
    assert_eq!(got[0].text.as_deref(), Some("stretch your legs"));
    assert_eq!(
        got[0].from.member_pubkey.as_deref(),
        Some(alice.mesh("dev").pubkey.as_str())
    );
    let first = got[0].id.clone();
    assert!(
        alice.json("cm-remind", &["list"]).is_empty(),
        "a fired reminder is done"
    );

    // Another restart does not fire it again; a second reminder fires while the broker is up, once.
    alice.json("cm-remind", &["--in", "1s", "drink water"]);
    b.kill();
    let b = Broker::start_in(&data, &["--listen", &addr]);
    std::thread::sleep(Duration::from_millis(2000));
    b.kill();
    let _b = Broker::start_in(&data, &["--listen", &addr]);
    let got = eventually(10, || {
        let g = inbox(&alice, 3000);
        (g.len() >= 2).then_some(g)
    });
    let texts: Vec<&str> = got.iter().filter_map(|m| m.text.as_deref()).collect();
    assert_eq!(texts, ["stretch your legs", "drink water"]);
    assert_eq!(got[0].id, first);
    assert!(!_b.db_bytes().windows(11).any(|w| w == b"drink water"));

    // Without a time the reminder is sent now (a crontab line); cancel takes an id prefix.
    let now = alice.json("cm-remind", &["right now"]);
    assert_eq!(
        (now[0]["type"].clone(), now[0]["queued"].clone()),
        (json!("sent"), json!(true))
    );
    let later = alice.json("cm-remind", &["--at", "2099-01-01T00:00:00Z", "far"]);
    let lid = later[0]["id"].as_str().unwrap();
    assert_eq!(later[0]["deliver_at"], "2099-01-01T00:00:00Z");
    let c = alice.json("cm-remind", &["cancel", &lid[..8]]);
    assert_eq!(c[0]["id"], lid);
    alice.fails("cm-remind", &["cancel", &lid[..8]], 5);
    let e = alice.fails("cm-remind", &["--to", "bobb", "hi"], 5);
    assert!(e.contains("did you mean \"bob\""), "{e}");
}

#[test]
fn a_cron_job_fires_at_its_minute_under_a_test_clock() {
    let dir = TempDir::new("cron");
    let b = Broker::start_with_env(&dir.0.join("data"), &[], &[("CM_BROKER_TEST_CLOCK", "1")]);
    let (alice, bob) = pair(&b);
    bob.ok("cm-profile", &["join", "@eng"]);
    // Monday 2030-01-07, 07:58:30 UTC; 09:00 at +01:00 is 08:00 UTC.
    clock(&b, "2030-01-07T07:58:30Z");
    let set = alice.json(
        "cm-remind",
        &[
            "--to",
            "@eng",
            "--cron",
            "0 9 * * mon-fri",
            "--tz",
            "+01:00",
            "stand-up",
        ],
    );
    assert_eq!(set[0]["deliver_at"], "2030-01-07T08:00:00Z");
    assert_eq!(set[0]["cron"], "0 9 * * mon-fri");
    assert_eq!(set[0]["tz"], "+01:00");
    assert_eq!(set[0]["to"], "@eng");

    // A minute early: nothing.
    clock(&b, "2030-01-07T07:59:00Z");
    assert!(inbox(&bob, 1500).is_empty());
    // Two seconds before the minute: it arrives, once.
    clock(&b, "2030-01-07T07:59:58Z");
    let got = inbox(&bob, 6000);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].text.as_deref(), Some("stand-up"));
    assert_eq!(got[0].subtype.as_deref(), Some("reminder"));
    assert_eq!(got[0].to.as_deref(), Some("@eng"));
    let listed = alice.json("cm-remind", &["list"]);
    assert_eq!(listed[0]["deliver_at"], "2030-01-08T08:00:00Z");
    assert_eq!(listed[0]["fired_count"], 1);
    assert_eq!(listed[0]["text"], "stand-up");

    // Days missed are not caught up: Friday fires once, and the next is Monday.
    clock(&b, "2030-01-11T08:00:30Z");
    let listed = eventually(10, || {
        let l = alice.json("cm-remind", &["list"]);
        (l[0]["fired_count"] == 2).then_some(l)
    });
    assert_eq!(listed[0]["deliver_at"], "2030-01-14T08:00:00Z");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(inbox(&bob, 100).len(), 2);

    // A bad cron is refused before it reaches the broker; a broker without the test clock has no clock route.
    let e = alice.fails("cm-remind", &["--cron", "0 25 * * *", "x"], 3);
    assert!(e.contains("hour 25 is out of range 0-23"), "{e}");
    alice.fails(
        "cm-remind",
        &["--cron", "@daily", "--tz", "Europe/Paris", "x"],
        3,
    );
    let plain_dir = TempDir::new("cron-plain");
    let plain = Broker::start(&plain_dir, &[]);
    let agent = ureq::AgentBuilder::new().max_idle_connections(0).build();
    match agent
        .post(&plain.http_url("/debug/clock"))
        .send_json(json!({"nowMs": 0}))
    {
        Err(ureq::Error::Status(404, _)) => {}
        r => panic!("{r:?}"),
    }
}

#[test]
fn profile_edits_show_in_other_peers_lists_at_once() {
    let dir = TempDir::new("profile");
    let b = Broker::start(&dir, &[]);
    let (alice, bob) = pair(&b);
    // alice's Claude session, launched as session "s1".
    let paths = Paths::at(alice.config_dir()).unwrap();
    let key = SessionKey::load_or_create(&paths, "dev", "s1")
        .unwrap()
        .keypair()
        .unwrap();
    let session_pk = key.public_hex();
    let opts = SessionOpts {
        conn: ConnOpts {
            session: Some(SessionAuth { session: key }),
            display_name: Some("alice-claude".into()),
            pull: false,
            ..ConnOpts::default()
        },
        ..SessionOpts::default()
    };
    let session = Session::start(&alice.mesh("dev"), opts).unwrap();
    let seen = |f: &dyn Fn(&wire::Peer) -> bool| {
        eventually(5, || {
            peers(&bob)
                .into_iter()
                .find(|p| p.pubkey == session_pk)
                .filter(|p| f(p))
        })
    };
    seen(&|p| p.display_name == "alice-claude");
    let in_session = |args: &[&str]| {
        let o = alice
            .cmd("cm-profile")
            .args(args)
            .env("CLAUDEMESH_SESSION_ID", "s1")
            .env("CLAUDEMESH_MESH", "dev")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };

    // From a plain shell: the member, so every live session of it.
    let out = alice.ok("cm-profile", &["summary", "fixing", "CI"]);
    assert_eq!(
        out,
        "summary: fixing CI, for you as a member (every session of yours)\n"
    );
    seen(&|p| p.summary.as_deref() == Some("fixing CI"));
    alice.ok("cm-profile", &["role-tag", "reviewer"]);
    seen(&|p| p.role_tag.as_deref() == Some("reviewer"));

    // Inside the session: that session.
    let out = in_session(&["status", "working"]);
    assert!(
        out.starts_with("status: working, for this session ("),
        "{out}"
    );
    seen(&|p| p.status == wire::Status::Working);
    in_session(&["--hook", "status", "idle"]);
    seen(&|p| p.status == wire::Status::Idle);
    in_session(&["status", "dnd"]);
    in_session(&["--hook", "status", "working"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        seen(&|_| true).status,
        wire::Status::Dnd,
        "a hook never ends dnd"
    );
    in_session(&["join", "@eng", "--role", "lead"]);
    seen(&|p| {
        p.groups
            .iter()
            .any(|g| g.name == "eng" && g.role.as_deref() == Some("lead"))
    });
    in_session(&["name", "Alice (reviewing)"]);
    seen(&|p| p.display_name == "Alice (reviewing)");
    let shown: Value = serde_json::from_str(&in_session(&["--json"])).unwrap();
    assert_eq!(shown["scope"], "session");
    assert_eq!(shown["session_pubkey"], session_pk.as_str());
    assert_eq!(shown["status"], "dnd");
    assert_eq!(shown["online"], true);
    // The member's own profile did not take the session's edits.
    let member = alice.json("cm-profile", &[]);
    assert_eq!(member[0]["scope"], "member");
    assert_eq!(member[0]["status"], "idle");
    assert_eq!(member[0]["summary"], "fixing CI");
    assert_eq!(member[0]["groups"], json!([]));

    // Hidden from others, seen by yourself; then visible again.
    in_session(&["visible", "false"]);
    eventually(5, || {
        (!peers(&bob).iter().any(|p| p.pubkey == session_pk)).then_some(())
    });
    assert!(peers(&alice).iter().any(|p| p.pubkey == session_pk));
    in_session(&["visible", "true"]);
    seen(&|_| true);

    // Member edits are kept: a new session starts with them.
    alice.ok("cm-profile", &["join", "@ops"]);
    drop(session);
    let other = claudemesh::crypto::Keypair::generate();
    let other_pk = other.public_hex();
    let _s2 = Session::start(
        &alice.mesh("dev"),
        SessionOpts {
            conn: ConnOpts {
                session: Some(SessionAuth { session: other }),
                pull: false,
                ..ConnOpts::default()
            },
            ..SessionOpts::default()
        },
    )
    .unwrap();
    let p = eventually(5, || peers(&bob).into_iter().find(|p| p.pubkey == other_pk));
    assert_eq!(p.summary.as_deref(), Some("fixing CI"));
    assert_eq!(p.role_tag.as_deref(), Some("reviewer"));
    assert!(p.groups.iter().any(|g| g.name == "ops"));

    // The hook is silent and succeeds outside a session, and with a broker that is gone.
    let o = alice.run("cm-profile", &["--hook", "status", "working"]);
    assert_eq!(
        (o.status.code(), o.stdout.len(), o.stderr.len()),
        (Some(0), 0, 0)
    );
    alice.fails("cm-profile", &["status", "busy"], 3);
    alice.fails("cm-profile", &["colour", "red"], 3);
    b.kill();
    let t = Instant::now();
    in_session(&["--hook", "status", "idle"]);
    assert!(t.elapsed() < Duration::from_secs(5));
}
