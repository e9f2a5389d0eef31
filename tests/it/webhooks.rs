//! Webhooks as people use them: made with the real cm-webhook, posted to over HTTP as GitHub or curl would,
//! read with cm-inbox, cm-pipe and cm-topic; refusals logged; and no body in clear in the broker's data
//! directory after it was delivered to members.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Broker, Mesh, TempDir};
use crate::peer::Peer;
use claudemesh::crypto::{hex, hmac_sha256};

fn fails(p: &Peer, args: &[&str], code: i32) -> String {
    let r = p.run("cm-webhook", args);
    assert_eq!(
        r.code,
        Some(code),
        "cm-webhook {args:?}: {}{}",
        r.out,
        r.err
    );
    assert_eq!(r.err.lines().count(), 1, "one line: {}", r.err);
    r.err
}

/// `cm-webhook create ARGS --json`: the one result line.
fn create(p: &Peer, args: &[&str]) -> Value {
    let mut a = vec!["create", "--json"];
    a.extend_from_slice(args);
    let mut lines = p.run("cm-webhook", &a).ok();
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.remove(0)
}

/// POSTs `body` to `url` with `headers`: the status and the JSON answer.
fn post(url: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = ureq::post(url).set("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(body) {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

/// A post signed as GitHub signs one.
fn signed(url: &str, secret: &str, body: &str, delivery: &str) -> (u16, Value) {
    let sig = format!(
        "sha256={}",
        hex::encode(&hmac_sha256(secret.as_bytes(), body.as_bytes()))
    );
    post(
        url,
        body.as_bytes(),
        &[
            ("X-Hub-Signature-256", &sig),
            ("X-GitHub-Delivery", delivery),
            ("X-GitHub-Event", "push"),
        ],
    )
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn a_signed_post_reaches_its_member_sealed_and_bad_ones_are_refused() {
    let dir = TempDir::new("webhook");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (&peers[0], &peers[1], &peers[2]);
    const MARK: &str = "wh-body-4d1c9e-never-in-clear";

    let c = create(alice, &["ci", "--to", "bob"]);
    assert_eq!(
        (&c["type"], &c["ok"], &c["name"]),
        (&json!("created"), &json!(true), &json!("ci"))
    );
    assert_eq!(s(&c, "to"), bob.pubkey(), "{c}");
    let (url, secret) = (s(&c, "url").to_string(), s(&c, "secret").to_string());
    assert!(url.starts_with(&b.http_url("/hooks/")), "{url}");
    assert!(
        !url.contains(&secret),
        "the secret stays out of the URL: {url}"
    );
    assert_eq!(secret.len(), 64);

    // Signed as GitHub does: bob's inbox has it, from webhook:ci, the body as its text.
    let body = json!({"ref": "refs/heads/main", "note": MARK}).to_string();
    let (st, r) = signed(&url, &secret, &body, "d-0001");
    assert_eq!(
        (st, &r["ok"], &r["delivered"]),
        (200, &json!(true), &json!(1)),
        "{r}"
    );
    let got = bob.inbox();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["from"]["name"], "webhook:ci", "{}", got[0]);
    assert_eq!(got[0]["subtype"], "webhook");
    assert_eq!(got[0]["text"], body.as_str());
    assert!(carol.inbox().is_empty() && alice.inbox().is_empty());

    // The same delivery again is a replay; a wrong or missing signature is 401; nothing more arrives.
    let (st, r) = signed(&url, &secret, &body, "d-0001");
    assert_eq!((st, &r["error"]), (409, &json!("replayed")), "{r}");
    let (st, r) = signed(&url, &"0".repeat(64), &body, "d-0002");
    assert_eq!((st, &r["error"]), (401, &json!("bad_signature")), "{r}");
    let (st, r) = post(&url, body.as_bytes(), &[]);
    assert_eq!((st, &r["error"]), (401, &json!("missing_signature")), "{r}");
    let (st, _) = post(&url, body.as_bytes(), &[("Authorization", "Bearer nope")]);
    assert_eq!(st, 401);
    let sig = format!(
        "sha256={}",
        hex::encode(&hmac_sha256(secret.as_bytes(), body.as_bytes()))
    );
    let (st, _) = post(&url, body.as_bytes(), &[("X-Hub-Signature-256", &sig)]);
    assert_eq!(st, 400, "a signed post without its delivery id");
    let (st, _) = signed(&url, &secret, "not json", "d-0003");
    assert_eq!(st, 400);
    assert!(bob.inbox().is_empty());

    // The bearer form, with a timestamp inside the window and one outside it.
    let now = claudemesh::time::now_ms() / 1000;
    let bearer = format!("Bearer {secret}");
    let (st, r) = post(
        &url,
        br#"{"alert":"disk-7c1"}"#,
        &[
            ("Authorization", &bearer),
            ("X-Webhook-Timestamp", &now.to_string()),
        ],
    );
    assert_eq!((st, &r["delivered"]), (200, &json!(1)), "{r}");
    let stale = (now - 1000).to_string();
    let (st, r) = post(
        &url,
        br#"{"alert":"old"}"#,
        &[("Authorization", &bearer), ("X-Webhook-Timestamp", &stale)],
    );
    assert_eq!(
        (st, &r["error"]),
        (401, &json!("timestamp_outside_window")),
        "{r}"
    );
    let got = bob.inbox();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["text"], r#"{"alert":"disk-7c1"}"#);

    // 64 KiB is the limit: a body of exactly that is taken, one byte more is refused before it is read.
    let pad = "x".repeat(64 * 1024 - 10);
    let big = format!(r#"{{"pad":"{pad}"}}"#);
    assert_eq!(big.len(), 64 * 1024);
    let (st, r) = signed(&url, &secret, &big, "d-big");
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        bob.inbox()[0]["text"].as_str().map(str::len),
        Some(big.len())
    );
    let path = url.trim_start_matches(&b.http_url(""));
    let mut tcp = std::net::TcpStream::connect(b.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{{",
        64 * 1024 + 1
    )
    .unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");

    // The original's form, the secret in the path, is not served.
    let (st, _) = post(&b.http_url(&format!("/hook/mesh/{secret}")), b"{}", &[]);
    assert_eq!(st, 404);

    // A group: carol joins @ops and has the post in her cm-pipe, from webhook:team; bob is not in @ops.
    const GROUP_MARK: &str = "wh-group-77a0-never-in-clear";
    assert_eq!(carol.run("cm-profile", &["join", "@ops"]).code, Some(0));
    let team = create(alice, &["team", "--to", "@ops"]);
    let mut pipe = carol.pipe();
    let body = json!({"incident": GROUP_MARK}).to_string();
    let (st, r) = signed(s(&team, "url"), s(&team, "secret"), &body, "g-1");
    assert_eq!((st, &r["delivered"]), (200, &json!(1)), "{r}");
    let m = pipe.wait_for(Duration::from_secs(10), |v| v["type"] == "message");
    assert_eq!(
        (&m["from"]["name"], &m["text"]),
        (&json!("webhook:team"), &json!(body)),
        "{m}"
    );
    pipe.close();
    assert!(bob.inbox().is_empty());

    // A topic takes webhook posts only without a key; its posts name the webhook.
    alice
        .run("cm-topic", &["create", "feed", "--plaintext", "--json"])
        .ok();
    alice.run("cm-topic", &["create", "sealed", "--json"]).ok();
    let e = fails(alice, &["create", "nope", "--to", "#sealed"], 3);
    assert!(e.contains("#sealed is encrypted"), "{e}");
    let feed = create(alice, &["feed", "--to", "#feed"]);
    assert_eq!(s(&feed, "to"), "#feed");
    let (st, r) = signed(
        s(&feed, "url"),
        s(&feed, "secret"),
        r#"{"build":"green"}"#,
        "t-1",
    );
    assert_eq!(st, 200, "{r}");
    let h = alice.run("cm-topic", &["history", "feed", "--json"]).ok();
    let last = h.last().unwrap();
    assert_eq!(
        (&last["text"], &last["from"]["name"]),
        (&json!(r#"{"build":"green"}"#), &json!("webhook:feed")),
        "{last}"
    );

    // list shows where each goes, never a secret; names are the mesh's.
    let l = alice.run("cm-webhook", &["list", "--json"]);
    let rows = l.ok();
    assert_eq!(
        rows.iter().map(|r| s(r, "name")).collect::<Vec<_>>(),
        ["ci", "feed", "team"]
    );
    assert!(!l.out.contains(&secret), "{}", l.out);
    assert_eq!(
        (&rows[0]["created_by"], &rows[0]["to_name"]),
        (&json!("alice"), &json!("bob"))
    );
    let table = bob.run("cm-webhook", &["list"]);
    assert!(table.out.starts_with("NAME "), "{}", table.out);
    assert!(table.out.contains("\nci    bob   "), "{}", table.out);
    assert!(fails(alice, &["create", "ci"], 6).contains("\"ci\""));
    assert!(fails(alice, &["create", "bad name"], 3).contains("webhook name"));
    assert!(fails(alice, &["create", "x", "--to", "zed"], 5).contains("zed"));

    // Only its creator or an admin deletes it; a deleted webhook's URL is 404.
    assert!(fails(bob, &["delete", "ci"], 7).contains("alice"));
    let d = alice.run("cm-webhook", &["delete", "ci", "--json"]).ok();
    assert_eq!(
        d[0],
        json!({"type": "deleted", "name": "ci", "deleted": true})
    );
    let (st, r) = signed(&url, &secret, &body, "d-after");
    assert_eq!((st, &r["error"]), (404, &json!("unknown_webhook")), "{r}");
    assert!(fails(alice, &["delete", "ci"], 5).contains("no webhook named"));

    // Each refusal is one line of the broker's log.
    let log = b.log_text();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("http request refused"))
        .collect();
    for status in [
        "status=401",
        "status=409",
        "status=413",
        "status=404",
        "status=400",
    ] {
        assert!(
            refused.iter().any(|l| l.contains(status)),
            "{status} in {refused:?}"
        );
    }
    assert!(!log.contains(MARK) && !log.contains(&secret), "{log}");

    // Nothing of the members' bodies is in clear in the data directory.
    b.kill();
    let files = walk(&dir.0.join("data"));
    assert!(files.iter().any(|f| f.ends_with("broker.db")), "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for m in [MARK, GROUP_MARK, "refs/heads/main", "disk-7c1"] {
            assert!(
                !bytes.windows(m.len()).any(|w| w == m.as_bytes()),
                "{m:?} is in clear in {}",
                f.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn behind_a_proxy_the_urls_are_the_public_address() {
    let dir = TempDir::new("webhook-public");
    let b = Broker::start(&dir, &["--public-url", "https://mesh.example.com/"]);
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let c = create(&peers[0], &["ci"]);
    assert!(
        s(&c, "url").starts_with("https://mesh.example.com/hooks/"),
        "{c}"
    );
    assert_eq!(s(&c, "to"), "*");
    let l = peers[0].run("cm-webhook", &["list", "--json"]).ok();
    assert_eq!(l[0]["url"], c["url"]);
    // The broker serves the path the proxy forwards.
    let path = s(&c, "url").trim_start_matches("https://mesh.example.com");
    let (st, r) = signed(&b.http_url(path), s(&c, "secret"), "{}", "p-1");
    assert_eq!(
        (st, &r["delivered"]),
        (200, &json!(1)),
        "everyone but its maker: {r}"
    );
    assert_eq!(peers[1].inbox().len(), 1);
    assert!(peers[0].inbox().is_empty());
    // A member who blocked the maker gets none of its webhooks' posts.
    assert_eq!(peers[1].run("cm-grant", &["block", "alice"]).code, Some(0));
    let (st, r) = signed(&b.http_url(path), s(&c, "secret"), "{}", "p-2");
    assert_eq!((st, &r["delivered"]), (200, &json!(0)), "{r}");
    assert!(peers[1].inbox().is_empty());
}

#[test]
fn posts_beyond_the_rate_limit_are_told_when_to_come_back() {
    let dir = TempDir::new("webhook-rate");
    let b = Broker::start(&dir, &["--rate-limit", "1:2"]);
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let c = create(&peers[0], &["alerts", "--to", "bob"]);
    let bearer = format!("Bearer {}", s(&c, "secret"));
    let post_one = || {
        let req = ureq::post(s(&c, "url")).set("Authorization", &bearer);
        match req.send_bytes(b"{}") {
            Ok(r) => (r.status(), None),
            Err(ureq::Error::Status(code, r)) => {
                (code, r.header("retry-after").map(str::to_string))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(post_one().0, 200);
    assert_eq!(post_one().0, 200);
    let (st, retry) = post_one();
    assert_eq!(st, 429);
    assert_eq!(retry.as_deref(), Some("1"));
    // The burst was the webhook's own: its maker's sends are untouched.
    assert_eq!(peers[0].send("bob", "still here")["status"], "queued");
    assert_eq!(peers[1].inbox().len(), 3);
}
