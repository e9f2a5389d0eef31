//! Several cm-brokers on one PostgreSQL database serving one mesh: members on different brokers are one mesh to
//! each other (messages, broadcasts, topics, peers live across brokers), a reminder fires once while both brokers'
//! timers run, and a broker killed with `kill -9` under load loses nothing acknowledged and doubles nothing.
//!
//! The server is `$CM_TEST_POSTGRES`, else a private cluster (see `testdb`); without either the tests skip, and
//! fail when CI is set.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use claudemesh::time::{fmt_rfc3339, now_ms};
use serde_json::{Value, json};

use crate::harness::{Broker, Mesh, TempDir};
use crate::peer::{Peer, Pipe};
use crate::testdb;

/// Two brokers on one fresh database, each with its own data directory.
fn two_brokers(dir: &TempDir) -> Option<(String, Broker, Broker)> {
    let url = testdb::fresh_database("cl")?;
    let a = Broker::start_in(&dir.0.join("a"), &["--database-url", &url]);
    let b = Broker::start_in(&dir.0.join("b"), &["--database-url", &url]);
    Some((url, a, b))
}

/// Points `p` at these brokers, in order.
fn use_brokers(p: &Peer, urls: &[String]) {
    let mut args = vec!["brokers"];
    args.extend(urls.iter().map(String::as_str));
    let r = p.run("cm-mesh", &args);
    assert_eq!(r.code, Some(0), "{}", r.err);
}

fn message_with(p: &mut Pipe, text: &str) -> Value {
    p.wait_for(Duration::from_secs(15), |v| {
        v["type"] == "message" && v["text"] == text
    })
}

#[test]
fn members_on_two_brokers_are_one_mesh() {
    let dir = TempDir::new("cluster");
    let Some((_url, a, b)) = two_brokers(&dir) else {
        return;
    };
    let peers = Mesh::new(&a, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (&peers[0], &peers[1], &peers[2]);
    use_brokers(bob, &[b.ws_url()]);
    alice
        .run("cm-topic", &["create", "dev", "--plaintext", "--json"])
        .ok();
    bob.run("cm-topic", &["join", "dev", "--json"]).ok();

    let mut bobs = bob.pipe();
    // alice on A sees bob on B, with what he said of himself.
    bobs.cmd(json!({"cmd": "summary", "summary": "on the other broker"}));
    bobs.expect("ok");
    let peers = alice.run("cm-peers", &["--json"]).ok();
    let bob_row = peers
        .iter()
        .find(|p| p["name"] == "bob" && p["online"] == true)
        .unwrap_or_else(|| panic!("bob is not among alice's peers: {peers:#?}"));
    assert_eq!(bob_row["summary"], "on the other broker", "{bob_row}");
    assert_eq!(bob_row["online"], true, "{bob_row}");

    // A direct message from A reaches bob's session on B live, and the sender hears it was delivered.
    let sent = alice.send("bob", "across the brokers");
    assert_eq!(sent["status"], "sent", "{sent}");
    let m = message_with(&mut bobs, "across the brokers");
    assert_eq!(m["from"]["name"], "alice", "{m}");

    // A broadcast and a topic post from A too.
    alice.send("*", "to everyone");
    message_with(&mut bobs, "to everyone");
    alice
        .run("cm-topic", &["create", "dev", "--plaintext", "--json"])
        .ok();
    bob.run("cm-topic", &["join", "dev", "--json"]).ok();
    let posted = alice
        .run("cm-topic", &["post", "dev", "the build is green", "--json"])
        .ok();
    // Its poster hears it reached someone: bob, live on the other broker.
    assert_eq!(posted[0]["status"], "sent", "{posted:?}");
    let t = message_with(&mut bobs, "the build is green");
    assert_eq!(t["topic"], "dev", "{t}");
    let members = alice.run("cm-topic", &["members", "dev", "--json"]).ok();
    let bob_row = members
        .iter()
        .find(|m| m["name"] == "bob")
        .unwrap_or_else(|| panic!("{members:?}"));
    assert_eq!(bob_row["online"], true, "{bob_row}");

    // The other way: bob on B to carol, who reads it through A.
    bob.send("carol", "back to A");
    let got = carol.run("cm-inbox", &["--json", "--wait", "10"]).ok();
    let texts: Vec<&str> = got.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains(&"back to A"), "{got:#?}");

    // bob leaves: alice's broker shows him offline.
    drop(bobs.close());
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let peers = alice.run("cm-peers", &["--json"]).ok();
        if peers
            .iter()
            .any(|p| p["name"] == "bob" && p["online"] == false)
        {
            break;
        }
        assert!(Instant::now() < until, "bob is still online: {peers:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_reminder_fires_once_while_two_brokers_run() {
    let dir = TempDir::new("cluster-remind");
    let Some((_url, a, b)) = two_brokers(&dir) else {
        return;
    };
    let peers = Mesh::new(&a, &["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    use_brokers(bob, &[b.ws_url()]);
    let mut alices = alice.pipe();
    let mut bobs = bob.pipe();
    // Set on both brokers, all due at one instant, so both brokers' timers go off together and race for them.
    let n = 20;
    let due = fmt_rfc3339((now_ms() / 1000 + 8) * 1000);
    for i in 0..n {
        let who = if i % 2 == 0 { alice } else { bob };
        let r = who.run(
            "cm-remind",
            &[
                "--at",
                &due,
                "--to",
                "alice",
                &format!("reminder {i}"),
                "--json",
            ],
        );
        assert_eq!(r.code, Some(0), "{}", r.err);
    }
    let mut got: HashMap<String, usize> = HashMap::new();
    let until = Instant::now() + Duration::from_secs(14);
    while Instant::now() < until && got.values().sum::<usize>() < n {
        for v in alices.drain(Duration::from_millis(200)) {
            if v["type"] == "message" {
                *got.entry(v["text"].as_str().unwrap_or("").to_string())
                    .or_default() += 1;
            }
        }
    }
    for v in alices.drain(Duration::from_secs(2)) {
        if v["type"] == "message" {
            *got.entry(v["text"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
    }
    let want: HashMap<String, usize> = (0..n).map(|i| (format!("reminder {i}"), 1)).collect();
    assert_eq!(got, want, "each reminder exactly once");
    // Nothing else is waiting for alice either: no broker fired a second copy that her pipe was not pushed.
    drop(alices.close());
    let left = alice.run("cm-inbox", &["--json"]).ok();
    assert!(left.is_empty(), "fired again: {left:#?}");
    assert!(alice.run("cm-remind", &["list", "--json"]).ok().is_empty());
    assert!(bob.run("cm-remind", &["list", "--json"]).ok().is_empty());
    drop(bobs.drain(Duration::from_millis(10)));
}

/// Sends `n` messages to `to` through a running pipe, each with a client id, and returns what the broker said of
/// each: client id to status.
fn send_all(
    p: &mut Pipe,
    tag: &str,
    to: &str,
    n: usize,
    kill_after: Option<(usize, &mut Option<Broker>)>,
) -> HashMap<String, String> {
    let mut status = HashMap::new();
    let mut kill_after = kill_after;
    for i in 0..n {
        let id = format!("{tag}-{i}");
        p.cmd(json!({"cmd": "send", "to": to, "text": id, "client_id": id, "id": id}));
        let r = p.wait_for(Duration::from_secs(30), |v| {
            v["type"] == "send_result" && v["id"] == id.as_str()
        });
        status.insert(id, r["status"].as_str().unwrap_or("").to_string());
        if let Some((at, broker)) = kill_after.as_mut()
            && i + 1 == *at
            && let Some(b) = broker.take()
        {
            // SIGKILL: no close frames, nothing flushed beyond what was committed.
            let _ = b.signal(libc::SIGKILL);
        }
    }
    status
}

#[test]
fn a_broker_killed_under_load_loses_nothing_acknowledged_and_doubles_nothing() {
    let dir = TempDir::new("cluster-kill");
    let Some((_url, a, b)) = two_brokers(&dir) else {
        return;
    };
    let peers = Mesh::new(&a, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (&peers[0], &peers[1], &peers[2]);
    // bob reads and carol sends on B, moving to A when it goes; alice sends on A throughout.
    use_brokers(bob, &[b.ws_url(), a.ws_url()]);
    use_brokers(carol, &[b.ws_url(), a.ws_url()]);
    let mut bobs = bob.pipe();
    let mut alices = alice.pipe();
    let mut carols = carol.pipe();
    let mut b = Some(b);

    let n = 60;
    let from_alice = send_all(&mut alices, "alice", "bob", n, None);
    let mut from_carol = send_all(&mut carols, "carol", "bob", n, Some((n / 2, &mut b)));
    assert!(b.is_none(), "B was killed");
    // What carol could not learn the outcome of, she sends again under the same client id: stored once.
    for (id, s) in from_carol.iter_mut() {
        if s != "sent" && s != "queued" {
            carols.cmd(json!({"cmd": "send", "to": "bob", "text": id, "client_id": id, "id": format!("again-{id}")}));
            let again = format!("again-{id}");
            let r = carols.wait_for(Duration::from_secs(30), |v| {
                v["type"] == "send_result" && v["id"] == again.as_str()
            });
            *s = r["status"].as_str().unwrap_or("").to_string();
        }
    }
    let acked: HashSet<String> = from_alice
        .iter()
        .chain(from_carol.iter())
        .filter(|(_, s)| *s == "sent" || *s == "queued")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(acked.len(), 2 * n, "{from_alice:?} {from_carol:?}");

    let mut seen: HashMap<String, usize> = HashMap::new();
    let until = Instant::now() + Duration::from_secs(60);
    while seen.len() < acked.len() && Instant::now() < until {
        for v in bobs.drain(Duration::from_millis(300)) {
            if v["type"] == "message" {
                *seen
                    .entry(v["text"].as_str().unwrap_or("").to_string())
                    .or_default() += 1;
            }
        }
    }
    for v in bobs.drain(Duration::from_secs(1)) {
        if v["type"] == "message" {
            *seen
                .entry(v["text"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
    }
    let missing: Vec<&String> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never arrived: {missing:?}"
    );
    let doubled: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "arrived more than once: {doubled:?}");
    drop(a);
}

#[test]
fn bench_spreads_its_peers_over_two_brokers() {
    let dir = TempDir::new("cluster-bench");
    let Some((_url, a, b)) = two_brokers(&dir) else {
        return;
    };
    let run = |args: &[&str]| {
        let o = std::process::Command::new(crate::harness::bin("cm-bench"))
            .args(args)
            .args(["--broker", &a.ws_url(), "--broker", &b.ws_url(), "--json"])
            .env_remove("CLAUDEMESH_SESSION_ID")
            .output()
            .unwrap();
        (
            o.status.code(),
            crate::harness::text(&o.stdout),
            crate::harness::text(&o.stderr),
        )
    };
    // Half the peers say hello to B: every DM between a peer on A and one on B crosses the database.
    let (code, out, err) = run(&["dm", "--peers", "4", "--messages", "5"]);
    assert_eq!(code, Some(0), "{err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        [&r["sent"], &r["delivered"], &r["brokers"]],
        [20, 20, 2],
        "{r}"
    );
    // Both brokers' CPU is counted: found by their ports, as one broker's is.
    assert!(r["broker_cpu_s"].is_number(), "{r}");
    let (code, out, err) = run(&["fanout", "--peers", "3", "--messages", "2"]);
    assert_eq!(code, Some(0), "{err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!([&r["sent"], &r["delivered"]], [2, 6], "{r}");

    let (code, _, err) = run(&["dm", "--broker-pid", "1"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("--broker-pid: 1 given for 2 brokers"), "{err}");
}

#[test]
fn a_members_rate_limit_holds_across_brokers() {
    let dir = TempDir::new("cluster-rate");
    let Some(url) = testdb::fresh_database("clr") else {
        return;
    };
    // Three sends in a burst, then one per 100 s: nothing refills while the test runs.
    let args = ["--database-url", url.as_str(), "--rate-limit", "0.01:3"];
    let a = Broker::start_in(&dir.0.join("a"), &args);
    let b = Broker::start_in(&dir.0.join("b"), &args);
    let mesh = Mesh::create(&a, "rate");
    let bob = mesh.join(&a, "bob");
    let dm = |id: &str| {
        let (nonce, ct) =
            claudemesh::crypto::encrypt_dm(b"x", &bob.pubkey(), &mesh.admin.key).unwrap();
        json!({"type": "send", "id": id, "targetSpec": bob.pubkey(), "priority": "now", "nonce": nonce,
            "ciphertext": ct})
    };
    let mut socks = [mesh.connect(&a, &mesh.admin), mesh.connect(&b, &mesh.admin)];
    let mut errors = Vec::new();
    for i in 0..5 {
        let ws = &mut socks[i % 2];
        ws.send(&dm(&i.to_string()));
        errors.push(ws.recv_type("ack")["error"].as_str().map(str::to_string));
    }
    // The member's burst is three sends wherever they go; a broker of its own would have given it three more.
    let accepted = errors.iter().filter(|e| e.is_none()).count();
    assert_eq!(accepted, 3, "{errors:?}");
    for e in errors.iter().flatten() {
        assert!(e.starts_with("rate_limit:"), "{errors:?}");
    }
}

#[test]
fn a_file_uploaded_through_one_broker_downloads_through_the_other() {
    let dir = TempDir::new("cluster-file");
    let Some((_url, a, b)) = two_brokers(&dir) else {
        return;
    };
    let peers = Mesh::new(&a, &["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    use_brokers(bob, &[b.ws_url()]);
    // Three chunks and a bit, so the download reads several rows.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let src = dir.0.join("report.bin");
    std::fs::write(&src, &body).unwrap();
    let put = alice
        .run(
            "cm-file",
            &["put", src.to_str().unwrap(), "--to", "bob", "--json"],
        )
        .ok();
    let id = put[0]["id"].as_str().unwrap().to_string();
    let got = dir.0.join("got.bin");
    let r = bob.run("cm-file", &["get", &id, "-o", got.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(std::fs::read(&got).unwrap(), body);
    // Neither broker keeps it on disk: the database is where both find it.
    for data in [dir.0.join("a"), dir.0.join("b")] {
        let on_disk = std::fs::read_dir(data.join("files")).map_or(0, |d| d.count());
        assert_eq!(on_disk, 0, "{}", data.display());
    }
    // Removed by its uploader through A, it is gone through B too.
    let r = alice.run("cm-file", &["rm", &id]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let r = bob.run("cm-file", &["get", &id, "-o", got.to_str().unwrap()]);
    assert_ne!(r.code, Some(0), "{}", r.out);
}

#[test]
fn rest_answers_the_same_on_both_brokers() {
    let dir = TempDir::new("cluster-rest");
    let Some((_url, a, b)) = two_brokers(&dir) else {
        return;
    };
    let peers = Mesh::new(&a, &["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    use_brokers(bob, &[b.ws_url()]);
    let made = alice.run("cm-apikey", &["create", "ci", "--json"]).ok();
    let key = made[0]["secret"].as_str().unwrap().to_string();
    let mut bobs = bob.pipe();
    bobs.cmd(json!({"cmd": "summary", "summary": "on B"}));
    bobs.expect("ok");
    for broker in [&a, &b] {
        let (status, v) =
            crate::topics::http(broker.addr, "GET", "/api/v1/peers", Some(&key), None);
        assert_eq!(status, 200, "{v}");
        let bob_row = v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["displayName"] == "bob")
            .unwrap_or_else(|| panic!("bob is not among the peers {} lists: {v}", broker.addr));
        assert_eq!(bob_row["summary"], "on B", "{bob_row}");
        let (status, v) =
            crate::topics::http(broker.addr, "GET", "/api/v1/members", Some(&key), None);
        assert_eq!(status, 200, "{v}");
        let bob_row = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["displayName"] == "bob")
            .unwrap_or_else(|| panic!("no bob in {v}"));
        assert_eq!(bob_row["online"], true, "{} says {bob_row}", broker.addr);
    }
}
