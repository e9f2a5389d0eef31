//! Tasks as people use them: the real cm-task against a real broker, with real processes racing for a claim,
//! a claim lapsing after its lease on the broker's test clock, and the creator's cm-pipe told of a completion.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Broker, Mesh, TempDir, lines, text};
use crate::peer::Peer;

fn by<'a>(peers: &'a [Peer], name: &str) -> &'a Peer {
    peers.iter().find(|p| p.name == name).unwrap()
}

/// `cm-task ARGS --json` as `p`, expecting success.
fn task(p: &Peer, args: &[&str]) -> Vec<Value> {
    let mut a = args.to_vec();
    a.push("--json");
    p.run("cm-task", &a).ok()
}

/// `cm-task ARGS` as `p`, expecting exit status `code`; its stderr.
fn fails(p: &Peer, args: &[&str], code: i32) -> String {
    let r = p.run("cm-task", args);
    assert_eq!(r.code, Some(code), "cm-task {args:?}: {}{}", r.out, r.err);
    assert_eq!(r.err.lines().count(), 1, "one line: {}", r.err);
    r.err
}

fn create(p: &Peer, title: &str) -> String {
    let c = task(p, &["create", title]);
    assert_eq!(c[0]["type"], "task_created", "{c:?}");
    c[0]["id"].as_str().unwrap().to_string()
}

/// The task `id` as `p` lists it.
fn status(p: &Peer, id: &str) -> Value {
    task(p, &["list"])
        .into_iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id}"))
}

/// Moves the broker's test clock `secs` ahead of the real time.
fn clock_ahead(b: &Broker, secs: i64) {
    let (code, v) = b.post("/debug/clock", &json!({"offsetMs": secs * 1000}), &[]);
    assert_eq!(code, 200, "{v}");
}

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
fn ten_members_claim_one_task_at_once_and_exactly_one_gets_it() {
    let dir = TempDir::new("task-race");
    let b = Broker::start(&dir, &[]);
    let names: Vec<String> = std::iter::once("alice".to_string())
        .chain((0..10).map(|i| format!("w{i}")))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let peers = Mesh::new(&b, &refs);
    let alice = by(&peers, "alice");
    for round in 0..3 {
        let id = create(alice, &format!("race {round}"));
        // Every claimer is started before any is waited for, so the ten requests reach the broker together.
        let children: Vec<_> = peers[1..]
            .iter()
            .map(|p| {
                let child = p
                    .cmd("cm-task")
                    .args(["claim", &id, "--json"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (p.name.clone(), child)
            })
            .collect();
        let mut winners = Vec::new();
        let mut refused = 0;
        for (name, child) in children {
            let o = child.wait_with_output().unwrap();
            match o.status.code() {
                Some(0) => {
                    let l = lines(&text(&o.stdout));
                    assert_eq!(
                        (l[0]["status"].as_str(), l[0]["claimed_by"].as_str()),
                        (Some("claimed"), Some(name.as_str()))
                    );
                    winners.push(name);
                }
                Some(11) => {
                    let e = text(&o.stderr);
                    assert!(
                        e.starts_with("cm-task: task ") && e.contains("is claimed by w"),
                        "{e}"
                    );
                    refused += 1;
                }
                c => panic!("{name}: exit {c:?}: {}", text(&o.stderr)),
            }
        }
        assert_eq!(
            (winners.len(), refused),
            (1, 9),
            "round {round}: {winners:?}"
        );
        let t = status(alice, &id);
        assert_eq!(
            (t["status"].as_str(), t["claimed_by"].as_str()),
            (Some("claimed"), Some(winners[0].as_str()))
        );
    }
}

#[test]
fn verbs_filters_errors_and_the_creator_hears_of_a_completion() {
    let dir = TempDir::new("task-verbs");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (by(&peers, "alice"), by(&peers, "bob"), by(&peers, "carol"));
    let mut pipe = alice.pipe();

    let c = task(
        alice,
        &[
            "create",
            "fix",
            "the",
            "login",
            "test",
            "--priority",
            "high",
            "--tag",
            "ci",
            "--assignee",
            "bob",
        ],
    );
    let fix = c[0]["id"].as_str().unwrap().to_string();
    assert_eq!(c[0]["title"], "fix the login test");
    let docs = create(alice, "write the docs");
    let t = status(bob, &fix);
    assert_eq!(
        (
            &t["status"],
            &t["priority"],
            &t["assignee"],
            &t["created_by"],
            &t["tags"]
        ),
        (
            &json!("open"),
            &json!("high"),
            &json!("bob"),
            &json!("alice"),
            &json!(["ci"])
        )
    );

    // Claimed by the start of its id; a second claim is a conflict naming the holder.
    let short = &fix[..8];
    let claimed = task(bob, &["claim", short]);
    assert_eq!(claimed[0]["claimed_by"], "bob");
    let e = fails(carol, &["claim", short], 11);
    assert!(e.contains("claimed by bob"), "{e}");
    // Only the holder completes a claim, and only the holder or the creator releases it.
    assert!(fails(carol, &["complete", short], 11).contains("claimed by bob"));
    assert!(fails(carol, &["release", short], 7).contains("only they or the task's creator"));

    let open = task(alice, &["list", "--status", "open"]);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], docs.as_str());
    let bobs = task(alice, &["list", "--assignee", "bob"]);
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0]["id"], fix.as_str());
    assert!(task(alice, &["list", "--assignee", "carol"]).is_empty());

    let done = task(bob, &["complete", short, "fixed", "in", "a4c1d2e"]);
    assert_eq!(
        (&done[0]["status"], &done[0]["result"]),
        (&json!("completed"), &json!("fixed in a4c1d2e"))
    );
    let n = pipe.wait_for(Duration::from_secs(10), |v| {
        v["type"] == "system" && v["event"] == "task_completed"
    });
    assert_eq!(
        (
            &n["data"]["id"],
            &n["data"]["title"],
            &n["data"]["result"],
            &n["data"]["completedBy"]
        ),
        (
            &json!(fix),
            &json!("fix the login test"),
            &json!("fixed in a4c1d2e"),
            &json!("bob")
        ),
        "{n}"
    );
    let completed = task(carol, &["list", "--status", "completed"]);
    assert_eq!(completed.len(), 1);
    assert!(completed[0]["completed_at"].as_str().is_some());
    assert!(fails(carol, &["claim", short], 11).contains("completed already"));
    assert!(fails(bob, &["complete", short], 11).contains("completed already"));

    // Release: the holder gives it back, and it can be claimed again.
    task(carol, &["claim", &docs]);
    let r = task(carol, &["release", &docs]);
    assert_eq!(
        (&r[0]["status"], &r[0]["claimed_by"]),
        (&json!("open"), &Value::Null)
    );
    assert!(fails(carol, &["release", &docs], 11).contains("not claimed"));
    task(bob, &["claim", &docs]);
    task(alice, &["release", &docs]);

    // The human table.
    let table = alice.run("cm-task", &["list"]);
    assert_eq!(table.code, Some(0), "{}", table.err);
    let rows: Vec<&str> = table.out.lines().collect();
    assert!(
        rows[0].starts_with("ID ") && rows[0].ends_with("TITLE"),
        "{}",
        table.out
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("completed")
                && r.contains("fix the login test #ci  → fixed in a4c1d2e")),
        "{}",
        table.out
    );

    // Bad input: one line and the right status.
    assert!(fails(alice, &["claim", "zzzzzzzz"], 5).contains("no task \"zzzzzzzz\""));
    assert!(fails(alice, &["complete", "no!"], 3).contains("task id"));
    assert!(fails(alice, &["list", "--status", "closed"], 3).contains("--status"));
    assert!(fails(alice, &["create"], 3).contains("TITLE"));
    assert!(fails(alice, &["create", " "], 3).contains("title"));
    assert!(fails(alice, &["create", "x", "--priority", "meh"], 3).contains("priority"));
    drop(pipe.close());
}

#[test]
fn a_claim_lapses_after_the_lease_once_its_holder_has_no_session() {
    let dir = TempDir::new("task-lease");
    let b = Broker::start_with_env(
        &dir.0.join("data"),
        &["--task-lease", "60"],
        &[("CM_BROKER_TEST_CLOCK", "1")],
    );
    let peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (by(&peers, "alice"), by(&peers, "bob"), by(&peers, "carol"));
    let (gone, kept) = (
        create(alice, "held by nobody"),
        create(alice, "held by a live session"),
    );
    // Bob claims from a shell and has no session; carol has one running.
    task(bob, &["claim", &gone]);
    let session = carol.pipe();
    task(carol, &["claim", &kept]);

    // Within the lease both hold.
    clock_ahead(&b, 30);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(status(alice, &gone)["status"], "claimed");

    clock_ahead(&b, 61);
    eventually(10, || {
        (status(alice, &gone)["status"] == "open").then_some(())
    });
    let t = status(alice, &gone);
    assert_eq!(
        (&t["claimed_by"], &t["claimed_at"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(status(alice, &kept)["claimed_by"], "carol");
    // Open again, anyone may take it.
    task(alice, &["claim", &gone]);

    // Carol's session ends: her claim lapses a lease after the last renewal.
    drop(session.close());
    clock_ahead(&b, 61 + 30);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(status(alice, &kept)["status"], "claimed");
    clock_ahead(&b, 61 + 61);
    eventually(10, || {
        (status(alice, &kept)["status"] == "open").then_some(())
    });
}

/// `cm-task watch --json` as `p`, its lines on a channel; killed when dropped.
struct Watch {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<Value>,
}

impl Watch {
    fn start(p: &Peer, viewer: &Peer) -> Watch {
        use std::io::{BufRead, BufReader};
        let mut child = p
            .cmd("cm-task")
            .args(["watch", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str::<Value>(&l).unwrap());
            }
        });
        // It listens once its session is a peer of the mesh.
        eventually(10, || {
            let peers = viewer.run("cm-peers", &["--json"]).ok();
            peers
                .iter()
                .any(|v| v["name"] == p.name.as_str() && v["channel"] == "cm-task-watch")
                .then_some(())
        });
        Watch { child, rx }
    }

    fn next(&self) -> Value {
        self.rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a task event within 10 s")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_change_to_a_task_reaches_the_watchers_and_the_pipes_of_the_mesh() {
    let dir = TempDir::new("task-events");
    let b = Broker::start_with_env(
        &dir.0.join("data"),
        &["--task-lease", "60"],
        &[("CM_BROKER_TEST_CLOCK", "1")],
    );
    let peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (by(&peers, "alice"), by(&peers, "bob"), by(&peers, "carol"));
    let watch = Watch::start(alice, bob);
    let mut pipe = bob.pipe();
    let shape = |e: &Value| {
        (
            e["event"].as_str().unwrap_or_default().to_string(),
            e["by"].as_str().map(str::to_string),
            e["task"]["status"].as_str().unwrap_or_default().to_string(),
        )
    };
    let s = |x: &str| Some(x.to_string());

    let id = create(carol, "fix the login test");
    let e = watch.next();
    assert_eq!(e["type"], "task_event");
    assert_eq!(
        shape(&e),
        ("created".into(), s("carol"), "open".into()),
        "{e}"
    );
    assert_eq!(
        (
            &e["task"]["id"],
            &e["task"]["title"],
            &e["task"]["created_by"]
        ),
        (&json!(id), &json!("fix the login test"), &json!("carol"))
    );
    // Bob's cm-pipe prints the broker's event as it came.
    let p = pipe.wait_for(Duration::from_secs(10), |v| v["event"] == "task_created");
    assert_eq!(
        (
            &p["type"],
            &p["data"]["id"],
            &p["data"]["by"],
            &p["data"]["status"]
        ),
        (
            &json!("system"),
            &json!(id),
            &json!("carol"),
            &json!("open")
        ),
        "{p}"
    );

    task(bob, &["claim", &id]);
    let e = watch.next();
    assert_eq!(
        shape(&e),
        ("claimed".into(), s("bob"), "claimed".into()),
        "{e}"
    );
    assert_eq!(e["task"]["claimed_by"], "bob");
    let p = pipe.wait_for(Duration::from_secs(10), |v| v["event"] == "task_claimed");
    assert_eq!(p["data"]["claimedBy"], "bob", "{p}");

    task(bob, &["release", &id]);
    let e = watch.next();
    assert_eq!(
        shape(&e),
        ("released".into(), s("bob"), "open".into()),
        "{e}"
    );
    assert_eq!(
        (&e["reason"], &e["from"]),
        (&json!("released"), &json!("bob"))
    );

    // A claim from a shell, with no session to keep it, lapses after the lease: by nobody.
    task(carol, &["claim", &id]);
    assert_eq!(shape(&watch.next()).0, "claimed");
    clock_ahead(&b, 61);
    let e = watch.next();
    assert_eq!(shape(&e), ("released".into(), None, "open".into()), "{e}");
    assert_eq!(
        (&e["reason"], &e["from"]),
        (&json!("lease_expired"), &json!("carol"))
    );

    task(bob, &["claim", &id]);
    assert_eq!(shape(&watch.next()).0, "claimed");
    task(bob, &["complete", &id, "fixed"]);
    let e = watch.next();
    assert_eq!(
        shape(&e),
        ("completed".into(), s("bob"), "completed".into()),
        "{e}"
    );
    assert_eq!(e["task"]["result"], "fixed");
    let p = pipe.wait_for(Duration::from_secs(10), |v| v["event"] == "task_completed");
    assert_eq!(
        (&p["data"]["completedBy"], &p["data"]["result"]),
        (&json!("bob"), &json!("fixed"))
    );
    // Nothing else: one event per change.
    assert!(watch.rx.recv_timeout(Duration::from_millis(500)).is_err());
    drop(pipe.close());
}
