//! `cm-id`: identity and broker logins in a temporary config directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A config directory (not yet created) under cargo's scratch space, removed when dropped.
struct Cfg(PathBuf);

impl Cfg {
    fn new(tag: &str) -> Cfg {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("id-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        Cfg(base)
    }

    fn dir(&self) -> PathBuf {
        self.0.join("cfg")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(crate::harness::bin("cm-id"))
            .args(args)
            .env("CLAUDEMESH_CONFIG_DIR", self.dir())
            .output()
            .unwrap()
    }

    fn secret(&self) -> String {
        let id: Value =
            serde_json::from_slice(&std::fs::read(self.dir().join("identity.json")).unwrap())
                .unwrap();
        id["secretKey"].as_str().unwrap().to_string()
    }
}

impl Drop for Cfg {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn one_json(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    let out = stdout(o);
    assert_eq!(out.lines().count(), 1, "{out}");
    serde_json::from_str(out.trim_end()).unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn register_then_whoami_shows_the_key_and_never_the_secret() {
    let c = Cfg::new("whoami");
    let reg = c.run(&["register", "--name", "alice", "--json"]);
    let r = one_json(&reg);
    assert_eq!(r["type"], "identity");
    assert_eq!(r["display_name"], "alice");
    assert_eq!(r["config_dir"], c.dir().display().to_string());
    let pubkey = r["pubkey"].as_str().unwrap().to_string();
    assert_eq!(pubkey.len(), 64);

    let who = c.run(&["whoami", "--json"]);
    let w = one_json(&who);
    assert_eq!(w["type"], "whoami");
    assert_eq!(w["pubkey"], pubkey.as_str());
    assert_eq!(w["display_name"], "alice");
    assert_eq!(w["meshes"], serde_json::json!([]));
    let human = c.run(&["whoami"]);
    assert_eq!(human.status.code(), Some(0), "{}", stderr(&human));
    assert!(
        stdout(&human).starts_with(&format!("pubkey   {pubkey}\nname     alice\n")),
        "{}",
        stdout(&human)
    );

    let secret = c.secret();
    let seed = &secret[..64];
    for o in [&reg, &who, &human] {
        for s in [stdout(o), stderr(o)] {
            assert!(!s.contains(seed), "secret printed: {s}");
        }
    }
}

#[test]
fn whoami_without_an_identity_exits_2() {
    let c = Cfg::new("noid");
    let o = c.run(&["whoami"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "cm-id: no identity: run 'cm register'\n");
    assert_eq!(stdout(&o), "");
}

#[test]
fn register_twice_exits_6_unless_forced() {
    let c = Cfg::new("twice");
    let first = one_json(&c.run(&["register", "--json"]));
    let o = c.run(&["register"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(stderr(&o).contains("exists already"), "{}", stderr(&o));
    let again = one_json(&c.run(&["whoami", "--json"]));
    assert_eq!(again["pubkey"], first["pubkey"]);
    let forced = one_json(&c.run(&["register", "--force", "--json"]));
    assert_ne!(forced["pubkey"], first["pubkey"]);
}

#[test]
fn config_files_are_private() {
    let c = Cfg::new("modes");
    std::fs::create_dir_all(c.dir()).unwrap();
    std::fs::set_permissions(c.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(c.run(&["register"]).status.code(), Some(0));
    assert_eq!(
        c.run(&["login", "http://127.0.0.1:7900"]).status.code(),
        Some(0)
    );
    assert_eq!(mode(&c.dir()), 0o700);
    for f in ["identity.json", "brokers.json"] {
        assert_eq!(mode(&c.dir().join(f)), 0o600, "{f}");
    }
    let names: Vec<_> = std::fs::read_dir(c.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
}

#[test]
fn a_corrupt_config_is_reported_and_left_alone() {
    let c = Cfg::new("corrupt");
    assert_eq!(c.run(&["register"]).status.code(), Some(0));
    let path = c.dir().join("config.json");
    let bad = b"{\"version\": 1, \"meshes\": [ {\"slug\": \"dev\"";
    std::fs::write(&path, bad).unwrap();
    let o = c.run(&["whoami"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("cm-id: ") && err.contains("config.json is not valid: "),
        "{err}"
    );
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert_eq!(err.lines().count(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), bad);
}

#[test]
fn login_records_the_ws_url_and_logout_forgets_it() {
    let c = Cfg::new("login");
    assert_eq!(c.run(&["register"]).status.code(), Some(0));
    let l = one_json(&c.run(&[
        "login",
        "https://Broker.Example.com/",
        "--token",
        "tok-123",
        "--json",
    ]));
    assert_eq!(l["url"], "wss://broker.example.com/ws");
    assert_eq!(
        c.run(&["login", "http://127.0.0.1:7900"]).status.code(),
        Some(0)
    );
    let who = c.run(&["whoami", "--json"]);
    assert!(!stdout(&who).contains("tok-123"));
    let w = one_json(&who);
    assert_eq!(
        w["logins"],
        serde_json::json!([
            {"url": "wss://broker.example.com/ws", "default": false, "token": true},
            {"url": "ws://127.0.0.1:7900/ws", "default": true, "token": false},
        ])
    );
    let o = c.run(&["logout", "https://broker.example.com"]);
    assert_eq!(stdout(&o), "logged out of wss://broker.example.com/ws\n");
    let o = c.run(&["logout", "https://broker.example.com"]);
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(c.run(&["logout"]).status.code(), Some(0));
    assert_eq!(c.run(&["logout"]).status.code(), Some(5));
    let bad = c.run(&["login", "ftp://x"]);
    assert_eq!(bad.status.code(), Some(3), "{}", stderr(&bad));
}
