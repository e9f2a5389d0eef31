//! `cm-bridge` between two meshes on two brokers: a post on one side appears once on the other with its author,
//! and bridges in opposite directions do not send a message back where it came from.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Broker, TempDir, User};

/// Two brokers with a mesh each: north (alice, bob; topic dev) and south (alice, carol; topic ops). Alice, in
/// both, runs the bridges.
struct World {
    _dirs: (TempDir, TempDir),
    brokers: (Broker, Broker),
    alice: User,
    bob: User,
    carol: User,
}

fn world(tag: &str) -> World {
    let (dn, ds) = (
        TempDir::new(&format!("{tag}-n")),
        TempDir::new(&format!("{tag}-s")),
    );
    let (bn, bs) = (Broker::start(&dn, &[]), Broker::start(&ds, &[]));
    let (alice, bob, carol) = (User::new("alice"), User::new("bob"), User::new("carol"));
    alice.json("cm-mesh", &["new", "north", "--broker", &bn.ws_url()]);
    alice.json("cm-mesh", &["new", "south", "--broker", &bs.ws_url()]);
    for (who, mesh) in [(&bob, "north"), (&carol, "south")] {
        let inv = alice.json("cm-mesh", &["invite", "--mesh", mesh]);
        who.json("cm-mesh", &["join", inv[0]["url"].as_str().unwrap()]);
    }
    alice.json("cm-topic", &["create", "dev", "--mesh", "north"]);
    alice.json("cm-topic", &["create", "ops", "--mesh", "south"]);
    World {
        _dirs: (dn, ds),
        brokers: (bn, bs),
        alice,
        bob,
        carol,
    }
}

/// A running `cm-bridge run`, its JSON lines read as they come.
struct Bridge {
    child: Child,
    rx: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Bridge {
    fn start(u: &User, direction: &str) -> Bridge {
        let config = u.dir.0.join(format!("bridge-{direction}.json"));
        let c = json!({"bridges": [{"a": {"mesh": "north", "topic": "dev"},
            "b": {"mesh": "south", "topic": "#ops"}, "direction": direction}]});
        std::fs::write(&config, c.to_string()).unwrap();
        let mut child = u
            .cmd("cm-bridge")
            .arg("run")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line).expect("a JSON line");
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut b = Bridge {
            child,
            rx,
            seen: Vec::new(),
        };
        b.expect(|v| {
            v["type"] == "connection" && v["mesh"] == "north" && v["state"] == "connected"
        });
        b.expect(|v| {
            v["type"] == "connection" && v["mesh"] == "south" && v["state"] == "connected"
        });
        b
    }

    /// The next event for which `want` holds, within 15 s.
    fn expect(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            match self
                .rx
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if want(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("no such event from the bridge; seen: {:#?}", self.seen),
            }
        }
    }

    /// SIGTERM: the bridge stops cleanly with exit status 0.
    fn stop(self) {
        self.signal(libc::SIGTERM, 0);
    }

    /// Ctrl-C: the bridge closes its sessions and exits 130, silently.
    fn interrupt(self) {
        self.signal(libc::SIGINT, 130);
    }

    fn signal(mut self, sig: libc::c_int, code: i32) {
        // SAFETY: the pid is this test's child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        let until = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < until,
                "the bridge did not end on signal {sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(code));
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn texts(u: &User, mesh: &str, topic: &str) -> Vec<String> {
    u.json("cm-topic", &["history", topic, "--mesh", mesh])
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Polls `u`'s history of `topic` until `want` holds for its texts, within 15 s.
fn wait_for(u: &User, mesh: &str, topic: &str, want: impl Fn(&[String]) -> bool) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let t = texts(u, mesh, topic);
        if want(&t) {
            return t;
        }
        assert!(
            Instant::now() < until,
            "{mesh}#{topic} never got there: {t:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// For a short while, the texts of `topic` stay exactly `expected`: nothing comes back around.
fn stays(u: &User, mesh: &str, topic: &str, expected: usize) {
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let t = texts(u, mesh, topic);
        assert_eq!(t.len(), expected, "{mesh}#{topic}: {t:?}");
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn bridge_forwards_both_ways_with_the_author() {
    let w = world("bridge-both");
    let mut bridge = Bridge::start(&w.alice, "both");

    w.bob.json("cm-topic", &["post", "dev", "hello from north"]);
    let ev = bridge.expect(|v| v["type"] == "forwarded");
    assert_eq!(ev["from"]["mesh"], "north");
    assert_eq!(ev["to"]["mesh"], "south");
    assert_eq!(ev["sender"]["name"], "bob");
    let south = wait_for(&w.carol, "south", "ops", |t| !t.is_empty());
    assert_eq!(south.len(), 1);
    assert!(
        south[0].starts_with("[from bob on north#dev at ")
            && south[0].ends_with("] hello from north"),
        "{south:?}"
    );

    w.carol
        .json("cm-topic", &["post", "ops", "hello from south"]);
    let north = wait_for(&w.bob, "north", "dev", |t| t.len() >= 2);
    assert_eq!(north[0], "hello from north");
    assert!(
        north[1].starts_with("[from carol on south#ops at ")
            && north[1].ends_with("] hello from south"),
        "{north:?}"
    );

    stays(&w.bob, "north", "dev", 2);
    stays(&w.carol, "south", "ops", 2);
    bridge.stop();
}

#[test]
fn bridge_opposite_bridges_do_not_loop() {
    let w = world("bridge-loop");
    let mut there = Bridge::start(&w.alice, "a_to_b");
    let mut back = Bridge::start(&w.alice, "b_to_a");

    w.bob.json("cm-topic", &["post", "dev", "once only"]);
    there.expect(|v| v["type"] == "forwarded");
    let dropped = back.expect(|v| v["type"] == "dropped");
    assert_eq!(dropped["reason"], "forwarded_already");
    w.carol.json("cm-topic", &["post", "ops", "and back"]);
    back.expect(|v| v["type"] == "forwarded");
    let dropped = there.expect(|v| v["type"] == "dropped");
    assert_eq!(dropped["reason"], "forwarded_already");

    let north = wait_for(&w.bob, "north", "dev", |t| t.len() >= 2);
    let south = wait_for(&w.carol, "south", "ops", |t| t.len() >= 2);
    assert_eq!(north.iter().filter(|t| t.ends_with("once only")).count(), 1);
    assert_eq!(south.iter().filter(|t| t.ends_with("once only")).count(), 1);
    assert_eq!(north.iter().filter(|t| t.ends_with("and back")).count(), 1);
    assert_eq!(south.iter().filter(|t| t.ends_with("and back")).count(), 1);
    stays(&w.bob, "north", "dev", 2);
    stays(&w.carol, "south", "ops", 2);
    there.stop();
    back.interrupt();
}

#[test]
fn bridge_survives_a_broker_restart() {
    let World {
        _dirs,
        brokers: (north, _south),
        alice,
        bob,
        carol,
    } = world("bridge-restart");
    let mut bridge = Bridge::start(&alice, "both");
    let (data, addr) = (north.data.clone(), north.addr.to_string());
    north.kill();
    bridge.expect(|v| {
        v["type"] == "connection" && v["mesh"] == "north" && v["state"] == "disconnected"
    });
    carol.json("cm-topic", &["post", "ops", "while north was down"]);
    let _north = Broker::start_in(&data, &["--listen", &addr]);
    bridge
        .expect(|v| v["type"] == "connection" && v["mesh"] == "north" && v["state"] == "connected");
    let north = wait_for(&bob, "north", "dev", |t| !t.is_empty());
    assert_eq!(north.len(), 1);
    assert!(north[0].ends_with("] while north was down"), "{north:?}");

    bob.json("cm-topic", &["post", "dev", "after the restart"]);
    let south = wait_for(&carol, "south", "ops", |t| t.len() >= 2);
    assert!(
        south[1].starts_with("[from bob on north#dev at "),
        "{south:?}"
    );
    stays(&bob, "north", "dev", 2);
    stays(&carol, "south", "ops", 2);
    bridge.stop();
}

#[test]
fn bridge_init_writes_an_example_once() {
    let u = User::new("ivy");
    let path = u.dir.0.join("b.json");
    let p = path.to_str().unwrap();
    u.ok("cm-bridge", &["init", p]);
    let c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(c["bridges"][0]["direction"], "both");
    u.fails("cm-bridge", &["init", p], 6);
    let e = u.fails(
        "cm-bridge",
        &["run", u.dir.0.join("none.json").to_str().unwrap()],
        10,
    );
    assert!(e.contains("none.json"), "{e}");
}
