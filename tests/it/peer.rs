//! Members of a test mesh as a user has them: each a config directory of its own, driven through the real
//! binaries (`cm-send`, `cm-peers`, `cm-inbox`, `cm-pipe`), whose JSON Lines come back parsed.
//!
//! `Mesh::new(&broker, &["alice", "bob"])` makes a mesh with the library (create, then a signed invite per
//! further member) and writes each member's `identity.json` and `config.json`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use claudemesh::client::rest;
use claudemesh::config::{Config, Identity, MeshEntry, Paths};
use claudemesh::crypto::{Keypair, b64, random_bytes};
use claudemesh::time::{fmt_rfc3339, now_ms};
use serde_json::Value;

use crate::harness::{Broker, Mesh, TempDir};

/// The tool `cm-NAME` of this build.
pub fn bin(name: &str) -> PathBuf {
    crate::harness::bin(name)
}

/// A member with its own config directory.
pub struct Peer {
    pub name: String,
    pub dir: TempDir,
    pub key: Keypair,
    pub slug: String,
    /// Extra environment for every command (`CLAUDEMESH_SESSION_ID`, ...).
    pub env: Vec<(String, String)>,
}

/// What a finished command left.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub out: String,
    pub err: String,
}

impl Run {
    /// Stdout as JSON Lines.
    pub fn lines(&self) -> Vec<Value> {
        self.out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }

    /// Asserts exit 0 and returns the JSON Lines.
    pub fn ok(&self) -> Vec<Value> {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.out,
            self.err
        );
        self.lines()
    }
}

impl Peer {
    pub fn config_dir(&self) -> PathBuf {
        self.dir.0.join("cfg")
    }

    pub fn pubkey(&self) -> String {
        self.key.public_hex()
    }

    /// Takes `other`'s meshes into this peer's config, as if this peer had joined them too.
    pub fn adopt(&self, other: &Peer) {
        let mine = Paths::at(self.config_dir()).unwrap();
        let theirs = Config::load(&Paths::at(other.config_dir()).unwrap()).unwrap();
        let mut config = Config::load(&mine).unwrap();
        for m in theirs.meshes {
            config.upsert_mesh(m);
        }
        config.save(&mine).unwrap();
    }

    /// `bin` with this peer's config directory and nothing inherited that would pick another mesh or session.
    pub fn cmd(&self, bin_name: &str) -> Command {
        let mut c = Command::new(bin(bin_name));
        c.env("CLAUDEMESH_CONFIG_DIR", self.config_dir())
            .env_remove("CLAUDEMESH_MESH")
            .env_remove("CLAUDEMESH_SESSION_ID")
            .env_remove("CLAUDE_CODE_SESSION_ID")
            .env_remove("CLAUDEMESH_DISPLAY_NAME");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `bin args...` with `input` on stdin.
    pub fn run_with(&self, bin_name: &str, args: &[&str], input: &str) -> Run {
        let mut child = self
            .cmd(bin_name)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_string();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let o = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Run {
            code: o.status.code(),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn run(&self, bin_name: &str, args: &[&str]) -> Run {
        self.run_with(bin_name, args, "")
    }

    /// `cm-send --json TO TEXT`: the one result line.
    pub fn send(&self, to: &str, text: &str) -> Value {
        let mut lines = self.run("cm-send", &["--json", to, text]).ok();
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines.remove(0)
    }

    /// `cm-inbox --json`: every message waiting, now acknowledged.
    pub fn inbox(&self) -> Vec<Value> {
        self.run("cm-inbox", &["--json"]).ok()
    }

    /// Starts `cm-pipe` and waits for its first `connection` event.
    pub fn pipe(&self) -> Pipe {
        let mut child = self
            .cmd("cm-pipe")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("cm-pipe wrote a line that is not JSON: {line:?}: {e}")
                });
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut p = Pipe {
            stdin: child.stdin.take(),
            child,
            rx,
            seen: Vec::new(),
        };
        let c = p.expect("connection");
        assert_eq!(c["state"], "connected", "{c}");
        p
    }
}

/// A running `cm-pipe`.
pub struct Pipe {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<Value>,
    /// Every event read so far, in order.
    pub seen: Vec<Value>,
}

impl Pipe {
    /// Writes one command line.
    pub fn cmd(&mut self, v: Value) {
        self.raw(&v.to_string());
    }

    pub fn raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next event for which `want` holds, within `wait`; others are skipped (and kept in `seen`).
    pub fn wait_for(&mut self, wait: Duration, want: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if want(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("no matching event within {wait:?}; seen: {:#?}", self.seen),
            }
        }
    }

    /// The next event of type `ty`, within 10 s.
    pub fn expect(&mut self, ty: &str) -> Value {
        self.wait_for(Duration::from_secs(10), |v| v["type"] == ty)
    }

    /// Every event that arrives within `wait`.
    pub fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let until = Instant::now() + wait;
        let mut out = Vec::new();
        while let Ok(v) = self
            .rx
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.seen.push(v.clone());
            out.push(v);
        }
        out
    }

    /// Closes stdin and waits for the exit (at most 15 s); returns the status and what was left on stdout.
    pub fn close(mut self) -> (ExitStatus, Vec<Value>) {
        drop(self.stdin.take());
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                let rest = self.drain(Duration::from_millis(300));
                return (s, rest);
            }
            assert!(
                Instant::now() < until,
                "cm-pipe did not exit at the end of its input"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends the process `signal` (`libc::SIGTERM`), as a user's `kill` would.
    pub fn signal(&self, signal: i32) {
        // SAFETY: the pid is this test's own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Waits (at most 10 s) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < until, "cm-pipe did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stderr so far (after the process ended).
    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mesh {
    /// A mesh named `dev` on `broker` with a member per name (the first creates it), each a [`Peer`].
    // What a test holds of a mesh is its members, so that is what making one returns.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(broker: &Broker, names: &[&str]) -> Vec<Peer> {
        Mesh::named(broker, "dev", names)
    }

    /// A mesh called `mesh_name` with a member per name.
    pub fn named(broker: &Broker, mesh_name: &str, names: &[&str]) -> Vec<Peer> {
        Mesh::at(&format!("ws://{}/ws", broker.addr), mesh_name, names)
    }

    /// A mesh called `mesh_name` on the broker at `url` (a proxy in front of one, say), with a member per name.
    pub fn at(url: &str, mesh_name: &str, names: &[&str]) -> Vec<Peer> {
        let url = url.to_string();
        let owner = Keypair::generate();
        let mut peers: Vec<Peer> = Vec::new();
        let mut mesh: Option<rest::CreatedMesh> = None;
        for name in names {
            let dir = TempDir::new(&format!("peer-{name}"));
            let paths = Paths::at(dir.0.join("cfg")).unwrap();
            let id = Identity::create(&paths, Some(name), false).unwrap();
            let key = id.keypair().unwrap();
            let member_id = match &mesh {
                None => {
                    let m = rest::create_mesh(
                        &url,
                        &key,
                        &owner.public_hex(),
                        mesh_name,
                        Some(name),
                        None,
                    )
                    .unwrap();
                    let member_id = m.member_id.clone();
                    mesh = Some(m);
                    member_id
                }
                Some(m) => {
                    let root = b64::encode_url(&random_bytes::<32>());
                    let expires = now_ms() / 1000 + 3600;
                    let inv = claudemesh::invite::make(
                        &owner, &m.id, &m.slug, &url, expires, &root, "member",
                    )
                    .unwrap();
                    rest::register_invite(&url, &m.id, &owner, &inv.token, 1).unwrap();
                    let payload = serde_json::to_value(&inv.payload).unwrap();
                    rest::join(&url, &inv.token, &payload, &key.public_hex(), name)
                        .unwrap()
                        .member_id
                }
            };
            let Some(m) = &mesh else { unreachable!() };
            let entry = MeshEntry {
                mesh_id: m.id.clone(),
                member_id,
                slug: m.slug.clone(),
                name: m.name.clone(),
                pubkey: key.public_hex(),
                secret_key: key.secret_hex(),
                broker_url: url.clone(),
                broker_urls: Vec::new(),
                joined_at: fmt_rfc3339(now_ms()),
                root_key: None,
                invite_version: Some(1),
                extra: Default::default(),
            };
            let mut config = Config::load(&paths).unwrap();
            config.display_name = Some(name.to_string());
            config.upsert_mesh(entry);
            config.save(&paths).unwrap();
            peers.push(Peer {
                name: name.to_string(),
                dir,
                key,
                slug: m.slug.clone(),
                env: Vec::new(),
            });
        }
        peers
    }
}
