//! `cm up` and `cm down` on a fresh machine (a temporary HOME and XDG data directory, a free port): the broker
//! started in the background, an identity and a first mesh made, nothing made twice, and only our broker stopped.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Broker, TempDir, User, lines, text};

/// Whether `pid` is a process that has not exited (a zombie counts as exited).
fn running(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

fn up_json(u: &User) -> Value {
    serde_json::from_slice(&std::fs::read(u.data_dir().join("up.json")).unwrap()).unwrap()
}

/// `cm-up up --listen 127.0.0.1:0 --json` as `u`: (broker, identity, meshes).
fn up(u: &User) -> (Value, Value, Vec<Value>) {
    let mut out = u.json("cm-up", &["up", "--listen", "127.0.0.1:0"]);
    let meshes = out.split_off(2);
    assert_eq!(
        (&out[0]["type"], &out[1]["type"]),
        (&"broker".into(), &"identity".into())
    );
    assert!(meshes.iter().all(|m| m["type"] == "mesh"));
    (out[0].clone(), out[1].clone(), meshes)
}

#[test]
fn up_on_a_fresh_machine_twice_then_down() {
    let zoe = User::new("zoe");
    let (broker, identity, meshes) = up(&zoe);
    assert_eq!(broker["state"], "started");
    let pid = broker["pid"].as_u64().unwrap();
    assert!(running(pid));
    let url = broker["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with("ws://127.0.0.1:") && !url.ends_with(":0/ws"),
        "{url}"
    );
    // The broker's data, pid file and log are in the XDG data directory.
    assert_eq!(broker["data_dir"], zoe.data_dir().display().to_string());
    assert_eq!(up_json(&zoe)["pid"].as_u64(), Some(pid));
    assert_eq!(up_json(&zoe)["url"], url.as_str());
    assert!(zoe.data_dir().join("broker.log").exists());
    assert!(zoe.data_dir().join("broker.db").exists());
    // An identity and a mesh named after the user, on that broker, owned here.
    assert_eq!(identity["created"], true);
    assert_eq!(identity["pubkey"], zoe.file("identity.json")["pubkey"]);
    assert_eq!(meshes.len(), 1);
    assert_eq!(
        (&meshes[0]["slug"], &meshes[0]["created"]),
        (&"zoe".into(), &true.into())
    );
    assert_eq!(meshes[0]["broker_url"], url.as_str());
    assert_eq!(zoe.json("cm-mesh", &["list"])[0]["owner"], true);
    let members = zoe.json("cm-mesh", &["members"]);
    assert_eq!(
        (&members[0]["name"], &members[0]["role"]),
        (&"zoe".into(), &"admin".into())
    );

    // Twice in a row: everything is found, nothing is made.
    let config = std::fs::read(zoe.config_dir().join("config.json")).unwrap();
    let (broker2, identity2, meshes2) = up(&zoe);
    assert_eq!(
        (&broker2["state"], broker2["pid"].as_u64()),
        (&"running".into(), Some(pid))
    );
    assert_eq!(identity2["created"], false);
    assert_eq!(identity2["pubkey"], identity["pubkey"]);
    assert_eq!(meshes2.len(), 1);
    assert_eq!(meshes2[0]["created"], false);
    assert_eq!(
        std::fs::read(zoe.config_dir().join("config.json")).unwrap(),
        config
    );
    let human = zoe.ok("cm-up", &["up", "--listen", "127.0.0.1:0"]);
    assert!(
        human.contains(&format!("broker    {url} (already running, pid {pid})")),
        "{human}"
    );
    assert!(human.contains("everything is up already"), "{human}");
    assert!(
        human.contains("cm invite") && human.contains("cm install"),
        "{human}"
    );

    let st = zoe.json("cm-up", &["status"]);
    assert_eq!(
        (&st[0]["running"], st[0]["pid"].as_u64()),
        (&true.into(), Some(pid))
    );

    // Someone else on the broker: the first mesh takes invites.
    let ann = User::new("ann");
    let link = zoe.json("cm-mesh", &["invite"])[0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ann.json("cm-mesh", &["join", &link])[0]["slug"], "zoe");

    // cm down through the front door stops it and forgets it; a second down has nothing to do.
    let o = zoe.cmd("cm").args(["down"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!("stopped the broker at {url} (pid {pid})\n")
    );
    assert!(!running(pid));
    assert!(!zoe.data_dir().join("up.json").exists());
    let again = zoe.json("cm-up", &["down"]);
    assert_eq!(again[0]["stopped"], false);
    assert_eq!(
        zoe.ok("cm-up", &["down"]),
        "no broker started by cm up is running\n"
    );
    assert_eq!(zoe.json("cm-up", &["status"])[0]["running"], false);

    // Up again on the same data: the same database, so the mesh is still there.
    let o = zoe
        .cmd("cm")
        .args(["up", "--listen", "127.0.0.1:0", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = lines(&text(&o.stdout));
    assert_eq!(out[0]["state"], "started");
    assert_ne!(out[0]["pid"].as_u64(), Some(pid));
    assert_eq!(out[2]["created"], false);
    zoe.json("cm-up", &["down"]);
}

#[test]
fn down_after_a_crash_forgets_the_dead_broker() {
    let u = User::new("kim");
    let data = u.dir.0.join("elsewhere");
    let d = data.to_str().unwrap();
    let out = u.json("cm-up", &["up", "--listen", "127.0.0.1:0", "--data", d]);
    let pid = out[0]["pid"].as_u64().unwrap();
    assert!(data.join("up.json").exists() && !u.data_dir().join("up.json").exists());
    // SAFETY: the pid is the broker this test started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    for _ in 0..100 {
        if !running(pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = u.json("cm-up", &["status", "--data", d]);
    assert_eq!(
        (&st[0]["running"], st[0]["pid"].as_u64()),
        (&false.into(), Some(pid))
    );
    let down = u.json("cm-up", &["down", "--data", d]);
    assert_eq!(
        (&down[0]["stopped"], down[0]["stale_pid"].as_u64()),
        (&false.into(), Some(pid))
    );
    assert!(!data.join("up.json").exists());
    // A dead broker in up.json is replaced by a new one.
    let out = u.json("cm-up", &["up", "--listen", "127.0.0.1:0", "--data", d]);
    assert_eq!(out[0]["state"], "started");
    let down = u.json("cm-up", &["down", "--data", d]);
    assert_eq!(down[0]["stopped"], true);
}

#[test]
fn up_uses_a_broker_that_already_answers_and_down_leaves_it_alone() {
    let dir = TempDir::new("up-external");
    let b = Broker::start(&dir, &[]);
    let u = User::new("lee");
    let listen = b.addr.to_string();
    let out = u.json("cm-up", &["up", "--listen", &listen]);
    assert_eq!(out[0]["state"], "external");
    assert!(out[0].get("pid").is_none());
    assert_eq!(out[0]["url"], b.ws_url().as_str());
    assert_eq!(out[2]["broker_url"], b.ws_url().as_str());
    assert!(!u.data_dir().join("up.json").exists());
    assert_eq!(u.json("cm-up", &["down"])[0]["stopped"], false);
    assert_eq!(b.get("/health").0, 200);
}

#[test]
fn a_broker_that_cannot_start_is_reported() {
    let u = User::new("max");
    // The port is taken by something that is not a broker: it hangs up on every connection.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    let e = u.fails("cm-up", &["up", "--listen", &listen], 1);
    assert!(
        e.starts_with(&format!("cm-up: cm-broker did not start on {listen}: ")),
        "{e}"
    );
    assert!(e.contains("broker.log"), "{e}");
    assert!(!u.data_dir().join("up.json").exists());
}

#[test]
fn up_where_cargo_install_left_only_cm_and_the_broker_makes_the_links() {
    let zoe = User::new("zoe");
    // What `cargo install` leaves in its bin directory: cm and cm-broker, no links.
    let dir = TempDir::new("cargo-bin");
    for name in ["cm", "cm-broker"] {
        let (from, to) = (crate::harness::bin(name), dir.0.join(name));
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    let like = zoe.cmd("cm");
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(dir.0.join("cm"));
        for (k, v) in like.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.args(args).output().unwrap()
    };
    let o = run(&["up", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(
        out.lines().next(),
        Some(format!("made 28 cm-* links in {}", dir.0.display()).as_str()),
        "{out}"
    );
    let o = std::process::Command::new(dir.0.join("cm-peers"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        text(&o.stdout).starts_with("cm-peers "),
        "{}",
        text(&o.stdout)
    );
    // Up again: the links are there, so nothing is said of them.
    let o = run(&["up", "--listen", "127.0.0.1:0"]);
    assert!(!text(&o.stdout).contains("links"), "{}", text(&o.stdout));
    assert_eq!(run(&["down"]).status.code(), Some(0));
}

#[test]
fn a_second_mesh_goes_on_the_broker_up_started_wherever_it_listens() {
    let zoe = User::new("zoe");
    let (broker, _, _) = up(&zoe);
    let url = broker["url"].as_str().unwrap().to_string();
    let made = zoe.json("cm-mesh", &["new", "ops"]);
    assert_eq!(made[0]["broker_url"], url.as_str(), "{made:?}");
    // A broker chosen with cm login stays the default.
    let other = User::new("yan");
    other.ok("cm-id", &["login", &url]);
    up(&other);
    assert_eq!(other.file("brokers.json")["default"], url.as_str());
    zoe.ok("cm-up", &["down"]);
    other.ok("cm-up", &["down"]);
}
