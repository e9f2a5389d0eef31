//! A real `cm-broker` on 127.0.0.1:0 with a temporary data directory, and a raw protocol client for it: meshes
//! made over HTTP with fresh keys, members joined through signed invites, WebSocket connections with signed
//! hellos.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use claudemesh::crypto::{Keypair, b64, random_bytes};
use claudemesh::time::now_ms;
use claudemesh::wire;
use serde_json::{Value, json};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

pub const BROKER: &str = env!("CARGO_BIN_EXE_cm-broker");

/// A directory under cargo's scratch space, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("broker-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `--database-url` for a broker on `data` under `CM_IT_STORE=postgres` (unless the test names a store itself):
/// one fresh database per data directory, so a broker restarted on the same directory finds its data, as with
/// SQLite. How the whole suite is run against the PostgreSQL store.
fn store_args(data: &Path, args: &[&str]) -> Vec<String> {
    if std::env::var("CM_IT_STORE").as_deref() != Ok("postgres")
        || args.iter().any(|a| a.starts_with("--database-url"))
    {
        return Vec::new();
    }
    #[cfg(feature = "postgres")]
    {
        static DBS: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());
        let mut dbs = DBS.lock().unwrap();
        let url = match dbs.iter().find(|(d, _)| d == data) {
            Some((_, u)) => u.clone(),
            None => {
                let u = crate::testdb::fresh_database("h")
                    .expect("CM_IT_STORE=postgres needs a server");
                dbs.push((data.to_path_buf(), u.clone()));
                u
            }
        };
        vec!["--database-url".into(), url]
    }
    #[cfg(not(feature = "postgres"))]
    panic!("CM_IT_STORE=postgres needs the postgres feature")
}

/// The database `store_args` gave the brokers on `data`.
#[cfg(feature = "postgres")]
fn pg_database_of(data: &Path) -> Option<String> {
    let args = store_args(data, &[]);
    (args.len() == 2).then(|| args[1].clone())
}

/// A running broker; killed (SIGKILL) when dropped.
pub struct Broker {
    child: Child,
    /// It serves TLS (started with `--tls-cert`): its URLs are `wss://` and `https://`.
    pub tls: bool,
    pub addr: SocketAddr,
    pub data: PathBuf,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl Broker {
    /// Starts a broker on a fresh data directory inside `dir`.
    pub fn start(dir: &TempDir, args: &[&str]) -> Broker {
        Broker::start_in(&dir.0.join("data"), args)
    }

    /// Starts a broker on `data` (which may hold an earlier broker's database).
    pub fn start_in(data: &Path, args: &[&str]) -> Broker {
        Broker::start_with_env(data, args, &[])
    }

    /// Starts a broker on `data` with extra environment variables (`CM_BROKER_TEST_CLOCK=1`).
    pub fn start_with_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Broker {
        std::fs::create_dir_all(data).unwrap();
        Broker::spawn(data, &data.join("broker.log"), args, env)
    }

    /// Starts a broker on `data` (created by the broker if missing) that logs to `log_path`.
    pub fn start_logged(data: &Path, log_path: &Path, args: &[&str]) -> Broker {
        Broker::spawn(data, log_path, args, &[])
    }

    fn spawn(data: &Path, log_path: &Path, args: &[&str], env: &[(&str, &str)]) -> Broker {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap();
        // A DATABASE_URL of the developer's would move every test broker to it: tests name it by flag.
        let mut child = Command::new(BROKER)
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(store_args(data, args))
            .args(args)
            .env_remove("DATABASE_URL")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let line = line.trim();
        let tls = line.starts_with("listening on wss://");
        let Some(addr) = line
            .strip_prefix("listening on ws://")
            .or_else(|| line.strip_prefix("listening on wss://"))
            .and_then(|s| s.strip_suffix("/ws"))
        else {
            let _ = child.kill();
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("cm-broker did not start: {line:?}\n{log}");
        };
        Broker {
            child,
            tls,
            addr: addr.parse().unwrap(),
            data: data.to_path_buf(),
            log: log_path.to_path_buf(),
        }
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The broker's resident memory in KiB (Linux).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Sends `sig` and waits (at most 10 s) for the exit; returns its status code.
    pub fn signal(mut self, sig: libc::c_int) -> Option<i32> {
        // SAFETY: the pid is this test's child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                std::time::Instant::now() < until,
                "cm-broker did not stop on signal {sig}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs JSON; any status comes back with its JSON body.
    pub fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = ureq::post(&self.http_url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.send_json(body.clone()) {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&self.http_url(path)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// Opens a WebSocket at `/ws` (no hello yet).
    pub fn ws(&self) -> Ws {
        let tcp = TcpStream::connect(self.addr).unwrap();
        // Generous for the handshake, short afterwards so a read can poll for a deadline.
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://{}/ws", self.addr), tcp).unwrap();
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Ws { ws, closed: None }
    }

    /// Every byte of the SQLite files (database and WAL), or of the PostgreSQL database's rows under
    /// `CM_IT_STORE=postgres`, to look for what must not be there.
    pub fn db_bytes(&self) -> Vec<u8> {
        #[cfg(feature = "postgres")]
        if let Some(url) = pg_database_of(&self.data) {
            return crate::testdb::dump(&url);
        }
        let mut all = Vec::new();
        for name in ["broker.db", "broker.db-wal"] {
            if let Ok(b) = std::fs::read(self.data.join(name)) {
                all.extend(b);
            }
        }
        all
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw WebSocket client.
pub struct Ws {
    ws: WebSocket<TcpStream>,
    /// The close the broker sent, once seen.
    pub closed: Option<(u16, String)>,
}

impl Ws {
    pub fn send(&mut self, v: &Value) {
        self.ws.send(Message::text(v.to_string())).unwrap();
    }

    pub fn send_raw(&mut self, text: String) {
        self.ws.send(Message::text(text)).unwrap();
    }

    /// The next JSON frame within `wait`, or `None`. A close is recorded in `closed` and ends the wait.
    pub fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let until = Instant::now() + wait;
        while Instant::now() < until && self.closed.is_none() {
            match self.ws.read() {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Message::Close(c)) => {
                    self.closed = Some(c.map_or((1005, String::new()), |c| {
                        (u16::from(c.code), c.reason.to_string())
                    }));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    self.closed.get_or_insert((1006, String::new()));
                }
                Err(e) => {
                    self.closed.get_or_insert((1006, format!("{e}")));
                }
            }
        }
        None
    }

    /// The next frame; fails the test after 5 s.
    pub fn recv(&mut self) -> Value {
        self.recv_within(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no frame (closed: {:?})", self.closed))
    }

    /// The next frame of type `ty`, skipping others (system events, pushes) on the way.
    pub fn recv_type(&mut self, ty: &str) -> Value {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Some(v) = self.recv_within(Duration::from_millis(200))
                && v["type"] == ty
            {
                return v;
            }
        }
        panic!("no {ty} frame (closed: {:?})", self.closed)
    }

    /// Every frame that arrives within `wait`.
    pub fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let until = Instant::now() + wait;
        let mut out = Vec::new();
        while Instant::now() < until {
            if let Some(v) = self.recv_within(until.saturating_duration_since(Instant::now())) {
                out.push(v);
            }
        }
        out
    }

    /// Waits for the broker's close frame.
    pub fn expect_close(&mut self) -> (u16, String) {
        let until = Instant::now() + Duration::from_secs(5);
        while self.closed.is_none() && Instant::now() < until {
            self.recv_within(Duration::from_millis(200));
        }
        self.closed
            .clone()
            .expect("the broker did not close the socket")
    }

    /// A request with `_reqId`, and its answer.
    pub fn request(&mut self, mut v: Value, answer: &str) -> Value {
        let id = format!("r{}", now_ms());
        v["_reqId"] = id.clone().into();
        self.send(&v);
        loop {
            let f = self.recv_type(answer);
            if f["_reqId"] == id.as_str() {
                return f;
            }
        }
    }

    /// Closes with a close frame (a clean leave).
    pub fn close(mut self) {
        let _ = self.ws.close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }));
        let _ = self.ws.flush();
        let _ = self.recv_within(Duration::from_millis(300));
    }
}

/// A member of a test mesh: its key and member id.
#[derive(Clone)]
pub struct Member {
    pub key: Keypair,
    pub id: String,
    pub name: String,
}

impl Member {
    pub fn pubkey(&self) -> String {
        self.key.public_hex()
    }
}

/// A mesh made through `POST /cli/mesh/create`; `owner` signs its invites.
pub struct Mesh {
    pub id: String,
    pub slug: String,
    pub owner: Keypair,
    pub admin: Member,
}

/// The body of `POST /cli/mesh/create`, signed by `creator`.
pub fn create_body(name: &str, creator: &Keypair, owner: &Keypair) -> Value {
    let ts = now_ms();
    let signed = wire::mesh_create_signed(name, &creator.public_hex(), &owner.public_hex(), ts);
    json!({"name": name, "pubkey": creator.public_hex(), "ownerPubkey": owner.public_hex(), "displayName": "admin",
           "timestamp": ts, "signature": creator.sign_hex(&signed)})
}

impl Mesh {
    pub fn create(b: &Broker, name: &str) -> Mesh {
        let (creator, owner) = (Keypair::generate(), Keypair::generate());
        let (status, v) = b.post(
            "/cli/mesh/create",
            &create_body(name, &creator, &owner),
            &[],
        );
        assert_eq!(status, 200, "{v}");
        Mesh {
            id: v["id"].as_str().unwrap().into(),
            slug: v["slug"].as_str().unwrap().into(),
            owner,
            admin: Member {
                key: creator,
                id: v["memberId"].as_str().unwrap().into(),
                name: "admin".into(),
            },
        }
    }

    /// A v1 invite payload for this mesh, signed by the owner but not registered.
    pub fn invite_payload(&self, b: &Broker, role: &str) -> Value {
        let mut payload = json!({"v": 1, "mesh_id": self.id, "mesh_slug": self.slug,
            "broker_url": format!("ws://{}/ws", b.addr), "expires_at": now_ms() / 1000 + 3600,
            "mesh_root_key": b64::encode_url(&random_bytes::<32>()), "role": role,
            "owner_pubkey": self.owner.public_hex()});
        sign_invite(&self.owner, &mut payload);
        payload
    }

    /// Registers `payload` as an invite of `max_uses` uses: its token.
    pub fn register_invite(&self, b: &Broker, payload: &Value, max_uses: u32) -> String {
        let token = b64::encode_url(payload.to_string().as_bytes());
        let ts = now_ms();
        let sig = self.owner.sign_hex(&wire::invite_register_signed(
            &self.id, &token, max_uses, ts,
        ));
        let body = json!({"meshId": self.id, "token": token, "maxUses": max_uses, "timestamp": ts, "signature": sig});
        let (status, v) = b.post("/cli/mesh/invite", &body, &[]);
        assert_eq!(status, 200, "{v}");
        token
    }

    /// A v1 invite signed by the owner and registered with the broker: (token, decoded payload).
    pub fn invite(&self, b: &Broker, max_uses: u32, role: &str) -> (String, Value) {
        let payload = self.invite_payload(b, role);
        (self.register_invite(b, &payload, max_uses), payload)
    }

    /// A new member with a fresh key, joined through an invite.
    pub fn join(&self, b: &Broker, name: &str) -> Member {
        let (token, payload) = self.invite(b, 1, "member");
        let key = Keypair::generate();
        let body = json!({"invite_token": token, "invite_payload": payload, "peer_pubkey": key.public_hex(),
                          "display_name": name});
        let (status, v) = b.post("/join", &body, &[]);
        assert_eq!(status, 200, "{v}");
        Member {
            key,
            id: v["memberId"].as_str().unwrap().into(),
            name: name.into(),
        }
    }

    /// A signed `hello` for `m`; `extra` fields are added (or removed when `null`).
    pub fn hello_frame(&self, m: &Member, extra: Value) -> Value {
        let ts = hello_ts();
        let pk = m.pubkey();
        let sig = m
            .key
            .sign_hex(&wire::hello_signed(&self.id, &m.id, &pk, ts));
        let mut v = json!({"type": "hello", "meshId": self.id, "memberId": m.id, "pubkey": pk, "sessionId": "it",
            "pid": std::process::id(), "cwd": "/", "timestamp": ts, "signature": sig});
        merge(&mut v, extra);
        v
    }

    /// A signed `session_hello` for `session`, attested by `m` until `expires_at`.
    pub fn session_frame(
        &self,
        m: &Member,
        session: &Keypair,
        expires_at: i64,
        extra: Value,
    ) -> Value {
        let now = hello_ts();
        let (parent, sp) = (m.pubkey(), session.public_hex());
        let att_sig = m
            .key
            .sign_hex(&wire::attestation_signed(&parent, &sp, expires_at));
        let sig = session.sign_hex(&wire::session_hello_signed(&self.id, &parent, &sp, now));
        let mut v = json!({"type": "session_hello", "meshId": self.id, "parentMemberId": m.id,
            "parentMemberPubkey": parent, "sessionPubkey": sp,
            "parentAttestation": {"sessionPubkey": sp, "parentMemberPubkey": parent, "expiresAt": expires_at,
                                  "signature": att_sig},
            "displayName": format!("{}-session", m.name), "sessionId": sp[..8].to_string(), "pid": 1, "cwd": "/",
            "timestamp": now, "signature": sig});
        merge(&mut v, extra);
        v
    }

    /// A connection authenticated with `hello`.
    pub fn connect(&self, b: &Broker, m: &Member) -> Ws {
        let mut ws = b.ws();
        ws.send(&self.hello_frame(m, json!({})));
        let ack = ws.recv_type("hello_ack");
        assert_eq!(ack["memberId"], m.id.as_str());
        ws
    }

    /// A connection authenticated with `session_hello` for `session`.
    pub fn connect_session(&self, b: &Broker, m: &Member, session: &Keypair) -> Ws {
        let mut ws = b.ws();
        ws.send(&self.session_frame(m, session, now_ms() + 3_600_000, json!({})));
        ws.recv_type("hello_ack");
        ws
    }
}

/// Signs a v1 invite payload (reference §2.6.1) with `owner`, replacing any signature it had.
pub fn sign_invite(owner: &Keypair, payload: &mut Value) {
    let p = |k: &str| payload[k].to_string().trim_matches('"').to_string();
    let signed = [
        "v",
        "mesh_id",
        "mesh_slug",
        "broker_url",
        "expires_at",
        "mesh_root_key",
        "role",
        "owner_pubkey",
    ]
    .map(p)
    .join("|");
    payload["signature"] = owner.sign_hex(&signed).into();
}

/// Adds `extra`'s fields to `v`; a `null` removes the field.
pub fn merge(v: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (v, extra) {
        for (k, x) in b {
            if x.is_null() {
                a.remove(&k);
            } else {
                a.insert(k, x);
            }
        }
    }
}

// ---- People on their own machines, running the real cm-mesh, cm-doctor and cm-up ----

/// The path of a tool of this build in a directory laid out as `cargo install` and `cm links` leave one: `cm`,
/// `cm-broker`, and a `cm-*` link to `cm` for every other tool. `cm` and `cm-broker` are hard links to cargo's
/// build, so a tool finds its fellows beside it as an installed one does.
pub fn bin(name: &str) -> PathBuf {
    installed().join(name)
}

fn installed() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Earlier runs' directories hold hard links to builds since replaced: let those go.
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("bin-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = base.join(format!("bin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (from, to) in [(env!("CARGO_BIN_EXE_cm"), "cm"), (BROKER, "cm-broker")] {
            if std::fs::hard_link(from, dir.join(to)).is_err() {
                std::fs::copy(from, dir.join(to)).unwrap();
            }
        }
        let o = Command::new(dir.join("cm")).arg("links").output().unwrap();
        assert!(o.status.success(), "cm links: {}", text(&o.stderr));
        dir
    })
}

/// A person on a machine of their own: `HOME`, `XDG_DATA_HOME` and so `~/.claudemesh` all under one temp dir,
/// and `$USER` set to their name. A broker that `cm up` left running in it is killed when it is dropped.
pub struct User {
    pub dir: TempDir,
    pub name: String,
}

impl User {
    pub fn new(name: &str) -> User {
        let dir = TempDir::new(&format!("user-{name}"));
        std::fs::create_dir_all(dir.0.join("home")).unwrap();
        User {
            dir,
            name: name.to_string(),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.0.join("home")
    }

    /// `~/.claudemesh`.
    pub fn config_dir(&self) -> PathBuf {
        self.home().join(".claudemesh")
    }

    /// `$XDG_DATA_HOME/claudemesh-broker`, the broker data directory `cm up` uses by default.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.0.join("xdg/claudemesh-broker")
    }

    /// A command for `tool` (`cm-mesh`) in this person's environment, and nobody else's.
    pub fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(bin(tool));
        c.env("HOME", self.home())
            .env("XDG_DATA_HOME", self.dir.0.join("xdg"))
            .env("USER", &self.name)
            .env_remove("LOGNAME")
            .env_remove("CLAUDEMESH_CONFIG_DIR")
            .env_remove("CLAUDEMESH_MESH")
            .env_remove("CLAUDEMESH_SESSION_ID")
            .env_remove("CLAUDE_CODE_SESSION_ID")
            .env_remove("CLAUDEMESH_DISPLAY_NAME")
            .stdin(Stdio::null());
        c
    }

    /// Runs `tool ARGS`.
    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
        self.cmd(tool).args(args).output().unwrap()
    }

    /// Runs `tool ARGS`, expects exit 0, and returns stdout.
    pub fn ok(&self, tool: &str, args: &[&str]) -> String {
        let o = self.run(tool, args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{tool} {args:?}: {}",
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// Runs `tool ARGS --json`, expects exit 0, and returns its lines.
    pub fn json(&self, tool: &str, args: &[&str]) -> Vec<Value> {
        let mut a = args.to_vec();
        a.push("--json");
        lines(&self.ok(tool, &a))
    }

    /// Runs `tool ARGS`, expects exit status `code`, and returns stderr.
    pub fn fails(&self, tool: &str, args: &[&str], code: i32) -> String {
        let o = self.run(tool, args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{tool} {args:?}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stderr)
    }

    /// `~/.claudemesh/<file>` as JSON.
    pub fn file(&self, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.config_dir().join(name)).unwrap()).unwrap()
    }

    /// The mesh entry `slug` in config.json, as the library reads it.
    pub fn mesh(&self, slug: &str) -> claudemesh::config::MeshEntry {
        let paths = claudemesh::config::Paths::at(self.config_dir()).unwrap();
        claudemesh::config::Config::load(&paths)
            .unwrap()
            .mesh(Some(slug))
            .unwrap()
            .clone()
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let up = self.data_dir().join("up.json");
        if let Ok(v) =
            std::fs::read(&up).map(|b| serde_json::from_slice::<Value>(&b).unwrap_or_default())
            && let Some(pid) = v["pid"].as_i64()
        {
            // SAFETY: the pid is the broker this test's `cm up` started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// JSON Lines, parsed.
pub fn lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

impl Broker {
    /// The URL clients use: `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/ws", self.addr)
    }
}

/// The clock in ms, never twice the same in this process: the broker accepts each signed hello once.
pub fn hello_ts() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = now_ms();
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(prev + 1)
}
