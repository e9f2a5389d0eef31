//! `cm-broker --tls-cert --tls-key`: a team that runs its broker on its own certificate, with the real binaries.
//! The certificates are made here (a private CA and a leaf for 127.0.0.1 and localhost), as an operator with
//! their own CA would have them; the clients trust that CA through `CLAUDEMESH_CA_FILE` and nothing else.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::Value;

use crate::harness::{Broker, TempDir, User, lines, text};

/// A private CA, its PEM file written for the clients.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub pem: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem, issuer.pem()).unwrap();
        Ca { issuer, pem }
    }

    /// A leaf for `names`, written as the broker reads it: `cert` (leaf then CA) and `key`.
    pub fn issue(&self, names: &[&str], cert: &Path, key: &Path) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let k = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&k, &self.issuer).unwrap();
        std::fs::write(cert, format!("{}{}", leaf.pem(), self.issuer.pem())).unwrap();
        std::fs::write(key, k.serialize_pem()).unwrap();
    }

    /// A rustls client that trusts this CA alone, for the HTTPS calls a program without the tools makes.
    fn agent(&self) -> ureq::Agent {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .tls_config(Arc::new(config))
            .build()
    }
}

/// A broker serving TLS with a leaf of `ca`; the files stay in `dir` (`tls.pem`, `tls.key`) for a reload.
fn tls_broker(dir: &TempDir, ca: &Ca) -> Broker {
    let (cert, key) = (dir.0.join("tls.pem"), dir.0.join("tls.key"));
    ca.issue(&["127.0.0.1", "localhost"], &cert, &key);
    let b = Broker::start(
        dir,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(b.tls, "the broker says wss:// when it serves TLS");
    b
}

/// `tool ARGS` as `who`, trusting the CA file `ca` (or only the web's roots).
fn run(who: &User, ca: Option<&Path>, tool: &str, args: &[&str]) -> Output {
    cmd(who, ca, tool).args(args).output().unwrap()
}

fn cmd(who: &User, ca: Option<&Path>, tool: &str) -> Command {
    let mut c = who.cmd(tool);
    c.env_remove("SSL_CERT_FILE");
    match ca {
        Some(ca) => c.env("CLAUDEMESH_CA_FILE", ca),
        None => c.env_remove("CLAUDEMESH_CA_FILE"),
    };
    c
}

fn ok(who: &User, ca: &Path, tool: &str, args: &[&str]) -> String {
    let o = run(who, Some(ca), tool, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{tool} {args:?}: {}",
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Runs `tool ARGS`, expects `code`, and returns stderr, which must be one line.
fn fails(who: &User, ca: Option<&Path>, tool: &str, args: &[&str], code: i32) -> String {
    let o = run(who, ca, tool, args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{tool} {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    err
}

/// alice makes mesh `dev` on `b` and bob joins it, both trusting `ca`.
fn mesh(b: &Broker, ca: &Path) -> (User, User) {
    let (alice, bob) = (User::new("alice"), User::new("bob"));
    ok(&alice, ca, "cm", &["new", "dev", "--broker", &b.ws_url()]);
    let link = ok(&alice, ca, "cm", &["invite"]);
    ok(&bob, ca, "cm", &["join", link.trim()]);
    (alice, bob)
}

/// A running `cm-pipe`, its JSON lines on a channel.
struct Pipe {
    child: Child,
    lines: Receiver<Value>,
}

impl Pipe {
    fn start(who: &User, ca: &Path) -> Pipe {
        let mut child = cmd(who, Some(ca), "cm-pipe")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&l).unwrap()).is_err() {
                    return;
                }
            }
        });
        let mut p = Pipe { child, lines };
        p.expect("connection");
        p
    }

    /// The next event of type `ty`; fails on a reconnect (a second `connection`) unless that is what is wanted.
    fn expect(&mut self, ty: &str) -> Value {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let v = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {ty} from cm-pipe"));
            if v["type"] == ty {
                return v;
            }
            assert_ne!(v["type"], "disconnected", "the session dropped: {v}");
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it holds, for at most 10 s.
fn eventually(mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "gave up after 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_mesh_on_a_tls_broker_sends_receives_and_serves_rest() {
    let dir = TempDir::new("tls-e2e");
    let ca = Ca::new(&dir.0, "team");
    let b = tls_broker(&dir, &ca);
    let (alice, bob) = mesh(&b, &ca.pem);
    assert!(bob.mesh("dev").broker_url.starts_with("wss://"));

    // Live, through a session that holds its connection.
    let mut pipe = Pipe::start(&bob, &ca.pem);
    let sent = lines(&ok(
        &alice,
        &ca.pem,
        "cm-send",
        &["bob", "over tls", "--json"],
    ));
    assert_eq!(sent[0]["status"], "sent", "{}", sent[0]);
    assert_eq!(pipe.expect("message")["text"], "over tls");
    // Stored for later, and read by a one-shot tool.
    drop(pipe);
    ok(&alice, &ca.pem, "cm-send", &["bob", "while you were away"]);
    let inbox = lines(&ok(&bob, &ca.pem, "cm-inbox", &["--json"]));
    let texts: Vec<&str> = inbox.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains(&"while you were away"), "{inbox:?}");

    // REST, server-sent events and health are https:// on the same port.
    let made = lines(&ok(
        &alice,
        &ca.pem,
        "cm-apikey",
        &["create", "ci", "--json"],
    ));
    let key = made[0]["secret"].as_str().unwrap().to_string();
    let agent = ca.agent();
    let base = format!("https://127.0.0.1:{}", b.addr.port());
    let health: Value = agent
        .get(&format!("{base}/health"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let peers: Value = agent
        .get(&format!("{base}/api/v1/members"))
        .set("Authorization", &format!("Bearer {key}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert!(peers.to_string().contains("bob"), "{peers}");
    ok(
        &alice,
        &ca.pem,
        "cm-topic",
        &["create", "ops", "--plaintext"],
    );
    let stream = agent
        .get(&format!("{base}/api/v1/topics/ops/stream"))
        .set("Authorization", &format!("Bearer {key}"))
        .call()
        .unwrap();
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let mut sse = BufReader::new(stream.into_reader());
    let mut first = String::new();
    sse.read_line(&mut first).unwrap();
    assert_eq!(first.trim(), "event: ready");
    ok(&alice, &ca.pem, "cm-topic", &["post", "ops", "deployed"]);
    let mut seen = String::new();
    while !seen.contains("deployed") {
        let mut l = String::new();
        assert!(sse.read_line(&mut l).unwrap() > 0, "stream ended: {seen}");
        seen.push_str(&l);
    }

    // Plain HTTP on the TLS port gets no HTTP answer, and the broker serves on.
    let mut raw = std::net::TcpStream::connect(b.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    ok(&alice, &ca.pem, "cm-peers", &[]);
}

#[test]
fn a_certificate_the_client_does_not_trust_is_refused_in_one_line() {
    let dir = TempDir::new("tls-untrusted");
    let ca = Ca::new(&dir.0, "team");
    let other = Ca::new(&dir.0, "other");
    let b = tls_broker(&dir, &ca);
    let (alice, _bob) = mesh(&b, &ca.pem);
    let url = b.ws_url();

    // Only the web's roots, or another CA: refused, exit 2 (as any failed authentication), never retried.
    for trust in [None, Some(other.pem.as_path())] {
        let e = fails(&alice, trust, "cm-peers", &[], 2);
        assert_eq!(
            e.trim(),
            format!(
                "cm-peers: refusing broker at {url}: its TLS certificate is not signed by a CA this machine \
                 trusts; for a private CA or a self-signed certificate, name its PEM file with cm login URL \
                 --ca-file FILE or CLAUDEMESH_CA_FILE"
            )
        );
    }
    // The HTTP calls say the same.
    let e = fails(&alice, None, "cm", &["new", "ops", "--broker", &url], 2);
    assert!(
        e.contains("its TLS certificate is not signed by a CA this machine trusts"),
        "{e}"
    );

    // A certificate for another name is refused too, and says so.
    let (cert, key) = (dir.0.join("wrong.pem"), dir.0.join("wrong.key"));
    ca.issue(&["broker.example"], &cert, &key);
    let dir2 = TempDir::new("tls-wrong-name");
    let wrong = Broker::start(
        &dir2,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let e = fails(
        &alice,
        Some(&ca.pem),
        "cm",
        &["new", "ops", "--broker", &wrong.ws_url()],
        2,
    );
    assert!(
        e.contains("its TLS certificate is for another host name"),
        "{e}"
    );

    // The setting that stays: cm login records the CA file for that broker, and every tool trusts it there.
    let o = run(
        &alice,
        None,
        "cm",
        &["login", &url, "--ca-file", other.pem.to_str().unwrap()],
    );
    assert!(
        text(&o.stderr).contains("its TLS certificate is not signed by a CA this machine trusts"),
        "login checks the broker with the file it was given: {}",
        text(&o.stderr)
    );
    fails(&alice, None, "cm-peers", &[], 2);
    ok(
        &alice,
        &ca.pem,
        "cm",
        &["login", &url, "--ca-file", ca.pem.to_str().unwrap()],
    );
    let o = run(&alice, None, "cm-peers", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let who = lines(&ok(&alice, &ca.pem, "cm", &["whoami", "--json"]));
    assert_eq!(
        who[0]["logins"][0]["ca_file"],
        ca.pem.canonicalize().unwrap().to_str().unwrap()
    );
    // ...for that broker only: another on a different port is not trusted through it.
    let e = fails(
        &alice,
        None,
        "cm",
        &["new", "ops", "--broker", &wrong.ws_url()],
        2,
    );
    assert!(e.contains("not signed by a CA this machine trusts"), "{e}");
    fails(
        &alice,
        None,
        "cm",
        &["login", &url, "--ca-file", "/nonexistent.pem"],
        10,
    );
    let e = fails(
        &alice,
        None,
        "cm",
        &[
            "login",
            "ws://127.0.0.1:9/ws",
            "--ca-file",
            ca.pem.to_str().unwrap(),
        ],
        3,
    );
    assert!(e.contains("not a TLS broker"), "{e}");

    // A CA's own certificate served as the broker's (openssl req -x509 without CA:FALSE) is named as such.
    let dir3 = TempDir::new("tls-ca-as-leaf");
    let (cert, key) = (dir3.0.join("ca.pem"), dir3.0.join("ca.key"));
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let k = KeyPair::generate().unwrap();
    std::fs::write(&cert, params.self_signed(&k).unwrap().pem()).unwrap();
    std::fs::write(&key, k.serialize_pem()).unwrap();
    let ca_leaf = Broker::start(
        &dir3,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let e = fails(
        &alice,
        Some(&cert),
        "cm",
        &["new", "ops", "--broker", &ca_leaf.ws_url()],
        2,
    );
    assert!(
        e.contains("its TLS certificate is a CA's certificate, not a server's"),
        "{e}"
    );

    // A CA file that is not there is the user's to fix, and says which.
    let e = fails(
        &alice,
        Some(&dir.0.join("missing.pem")),
        "cm-peers",
        &[],
        10,
    );
    assert!(
        e.contains("CLAUDEMESH_CA_FILE") && e.contains("missing.pem"),
        "{e}"
    );
}

#[test]
fn sighup_serves_a_new_certificate_to_new_connections_and_keeps_open_ones() {
    let dir = TempDir::new("tls-reload");
    let (old, new) = (Ca::new(&dir.0, "old"), Ca::new(&dir.0, "new"));
    let b = tls_broker(&dir, &old);
    let (alice, bob) = mesh(&b, &old.pem);
    let mut pipe = Pipe::start(&bob, &old.pem);
    fails(&alice, Some(&new.pem), "cm-peers", &[], 2);

    // Renewal: the files change, then SIGHUP.
    new.issue(
        &["127.0.0.1", "localhost"],
        &dir.0.join("tls.pem"),
        &dir.0.join("tls.key"),
    );
    let hup = |b: &Broker| {
        // SAFETY: the pid is this test's running child.
        unsafe { libc::kill(b.pid() as libc::pid_t, libc::SIGHUP) };
    };
    hup(&b);
    eventually(|| b.log_text().contains("TLS certificate reloaded"));
    ok(&alice, &new.pem, "cm-peers", &[]);
    fails(&alice, Some(&old.pem), "cm-peers", &[], 2);

    // bob's session, made under the old certificate, is still the same connection and still receives.
    ok(&alice, &new.pem, "cm-send", &["bob", "after the renewal"]);
    assert_eq!(pipe.expect("message")["text"], "after the renewal");

    // A botched renewal keeps the certificate that works, and the log says why.
    std::fs::write(dir.0.join("tls.key"), "not a key\n").unwrap();
    hup(&b);
    eventually(|| b.log_text().contains("TLS certificate not reloaded"));
    ok(&alice, &new.pem, "cm-peers", &[]);
    let mut b = b;
    assert!(b.alive());
}
