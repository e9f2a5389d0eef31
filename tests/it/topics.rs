//! Topics as people use them, each on a machine of their own against a real broker: encrypted topics read by
//! their members and, after a re-seal, by a member who came later; threads in `cm-topic tail`; mentions in
//! `cm-notify`; API keys with `cm-apikey`; and a client with nothing but HTTP posting to a topic and following it
//! over server-sent events. After each, the broker's database holds none of the messages in clear.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use claudemesh::crypto::b64;
use serde_json::{Value, json};

use crate::harness::{Broker, TempDir, User, lines, text};

/// A mesh `dev` made by the first of `names`, which every other one joins.
fn mesh(tag: &str, names: &[&str]) -> (TempDir, Broker, Vec<User>) {
    let dir = TempDir::new(tag);
    let b = Broker::start(&dir, &[]);
    let users: Vec<User> = names.iter().map(|n| User::new(n)).collect();
    users[0].json("cm-mesh", &["new", "dev", "--broker", &b.ws_url()]);
    for u in &users[1..] {
        join(&users[0], u);
    }
    (dir, b, users)
}

/// `who` joins `owner`'s mesh dev with an invite of its own.
fn join(owner: &User, who: &User) {
    let inv = owner.json("cm-mesh", &["invite", "--mesh", "dev"]);
    who.json("cm-mesh", &["join", inv[0]["url"].as_str().unwrap()]);
}

/// Asserts that the broker's database files hold none of `bodies`, in clear or as base64.
fn assert_not_stored(b: &Broker, bodies: &[&str]) {
    let db = b.db_bytes();
    assert!(!db.is_empty());
    for body in bodies {
        for needle in [body.to_string(), b64::encode(body.as_bytes())] {
            assert!(
                !db.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "the broker's database holds {needle:?}"
            );
        }
    }
}

/// A running `cm-topic tail`, its stdout read line by line.
struct Tail {
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Tail {
    fn start(u: &User, args: &[&str]) -> Tail {
        let mut child = u
            .cmd("cm-topic")
            .arg("tail")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Tail {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line for which `want` holds, within 15 s.
    fn expect(&mut self, want: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            match self
                .rx
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if want(&l) {
                        return l;
                    }
                }
                Err(_) => panic!("no such line from the tail; seen: {:#?}", self.seen),
            }
        }
    }

    /// The next JSON line whose `text` is `text`.
    fn message(&mut self, text: &str) -> Value {
        let l = self.expect(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["text"] == text));
        serde_json::from_str(&l).unwrap()
    }

    /// Ctrl-C: the exit status and what was left on stderr.
    fn interrupt(mut self) -> (Option<i32>, String) {
        // SAFETY: the pid is this test's child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let until = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < until, "the tail did not end on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code(), err)
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(u: &User, topic: &str, text: &str, extra: &[&str]) -> Value {
    let mut args = vec!["post", topic, text];
    args.extend(extra);
    let out = u.json("cm-topic", &args);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["type"], "topic_post");
    out[0].clone()
}

fn history(u: &User, topic: &str) -> Vec<Value> {
    u.json("cm-topic", &["history", topic])
}

fn texts(msgs: &[Value]) -> Vec<&str> {
    msgs.iter()
        .map(|m| m["text"].as_str().unwrap_or("<none>"))
        .collect()
}

/// alice makes #dev in a mesh of alice and bob; bob joins it.
fn dev_topic(tag: &str, more: &[&str]) -> (TempDir, Broker, Vec<User>) {
    let names: Vec<&str> = ["alice", "bob"].iter().chain(more).copied().collect();
    let (d, b, users) = mesh(tag, &names);
    users[0].ok("cm-topic", &["create", "dev"]);
    users[1].ok("cm-topic", &["join", "dev"]);
    (d, b, users)
}

#[test]
fn members_read_each_other_and_a_reply_names_its_message() {
    let (_d, b, users) = mesh("topic-e2e", &["alice", "bob"]);
    let (alice, bob) = (&users[0], &users[1]);

    let made = alice.json(
        "cm-topic",
        &["create", "dev", "--description", "the dev room"],
    );
    assert_eq!(
        (&made[0]["created"], &made[0]["encrypted"]),
        (&json!(true), &json!(true))
    );
    let again = alice.ok("cm-topic", &["create", "#dev"]);
    assert!(again.starts_with("#dev exists already ("), "{again}");

    // bob was a member of the mesh when the topic was made, so a copy of the key waits for him.
    let joined = bob.json("cm-topic", &["join", "dev"]);
    assert_eq!(joined[0]["key"], true, "{joined:?}");

    let first = post(alice, "dev", "the build is green", &[]);
    assert_eq!(first["body_version"], 2);
    let mut tail = Tail::start(bob, &["dev", "--json"]);
    // The backfill shows the tail is subscribed.
    let m = tail.message("the build is green");
    assert_eq!(m["from"]["name"], "alice");
    assert_eq!(m["id"], first["message_id"]);

    let hello = post(alice, "dev", "hello @bob", &[]);
    assert_eq!(hello["status"], "sent", "bob's tail is online: {hello}");
    assert_eq!(hello["mentions"], json!(["bob"]));
    let m = tail.message("hello @bob");
    assert_eq!(m["type"], "message");
    assert_eq!(m["topic"], "dev");
    assert_eq!(m["body_version"], 2);

    // A reply by a prefix of the id; the broker stores the whole id.
    let hello_id = hello["message_id"].as_str().unwrap();
    let reply = post(bob, "dev", "hi alice", &["--reply-to", &hello_id[..7]]);
    let m = tail.message("hi alice");
    assert_eq!(m["reply_to"], hello_id, "{m}");
    let h = history(alice, "dev");
    assert_eq!(texts(&h), ["the build is green", "hello @bob", "hi alice"]);
    assert_eq!(h[2]["reply_to"], hello_id);
    assert_eq!(h[2]["id"], reply["message_id"]);
    assert_not_stored(&b, &["the build is green", "hello @bob", "hi alice"]);
}

#[test]
fn bad_replies_and_plaintext_posts_to_an_encrypted_topic_are_refused() {
    let (_d, _b, users) = dev_topic("topic-refusals", &[]);
    let bob = &users[1];
    let e = bob.fails("cm-topic", &["post", "dev", "x", "--reply-to", "zzzzzz"], 5);
    assert!(e.contains("no message zzzzzz in #dev"), "{e}");
    let e = bob.fails("cm-topic", &["post", "dev", "x", "--reply-to", "abc"], 3);
    assert!(e.contains("6+"), "{e}");
    let e = bob.fails("cm-topic", &["post", "dev", "x", "--plaintext"], 3);
    assert!(e.contains("encrypted"), "{e}");
}

#[test]
fn a_running_tail_seals_the_key_for_a_member_who_joins_later() {
    let (_d, b, users) = dev_topic("topic-late-tail", &[]);
    let (alice, bob) = (&users[0], &users[1]);
    post(alice, "dev", "before carol", &[]);
    let mut tail = Tail::start(bob, &["dev", "--json"]);
    tail.message("before carol");

    // carol joins the mesh after the topic was made: no copy of the key for her yet.
    let carol = User::new("carol");
    join(alice, &carol);
    let o = carol.run("cm-topic", &["join", "dev"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains("no copy of #dev's key is sealed for you yet"));
    // bob's tail holds the key and seals a copy for her when she joins.
    let deadline = Instant::now() + Duration::from_secs(15);
    let h = loop {
        let h = history(&carol, "dev");
        if h.iter().all(|m| m["text"].is_string()) {
            break h;
        }
        assert!(Instant::now() < deadline, "carol never got the key: {h:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(texts(&h), ["before carol"]);
    post(&carol, "dev", "carol here", &[]);
    tail.message("carol here");
    let members = alice.json("cm-topic", &["members", "dev"]);
    let names: Vec<&str> = members
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert!(members.iter().all(|m| m["has_key"] == true), "{members:?}");
    assert_not_stored(&b, &["before carol", "carol here"]);
}

#[test]
fn ctrl_c_ends_a_tail_quietly_with_130() {
    let (_d, _b, users) = dev_topic("topic-ctrl-c", &[]);
    let (alice, bob) = (&users[0], &users[1]);
    post(alice, "dev", "hello", &[]);
    let mut tail = Tail::start(bob, &["dev", "--json"]);
    tail.message("hello");
    let (code, err) = tail.interrupt();
    assert_eq!((code, err.as_str()), (Some(130), ""));
}

#[test]
fn without_a_tail_the_next_post_seals_the_key_for_a_later_member() {
    let (_d, b, users) = dev_topic("topic-late-post", &[]);
    let alice = &users[0];
    let dave = User::new("dave");
    join(alice, &dave);
    dave.ok("cm-topic", &["join", "dev"]);
    let e = dave.fails("cm-topic", &["post", "dev", "can I?"], 1);
    assert!(
        e.contains("no copy of #dev's key is sealed for you yet"),
        "{e}"
    );
    let p = post(alice, "dev", "welcome dave", &[]);
    assert_eq!(p["resealed"], json!(["dave"]), "{p}");
    assert_eq!(texts(&history(&dave, "dev")).last(), Some(&"welcome dave"));

    // cm-send '#topic' posts too.
    let r = dave.json("cm-send", &["#dev", "sent with cm-send"]);
    assert_eq!(r[0]["type"], "send_result");
    assert_eq!(r[0]["name"], "#dev");
    assert_eq!(
        texts(&history(alice, "dev")).last(),
        Some(&"sent with cm-send")
    );
    assert_not_stored(&b, &["welcome dave", "sent with cm-send"]);
}

#[test]
fn tail_renders_threads_and_lists_show_unread() {
    let (_d, b, users) = mesh("topic-thread", &["alice", "bob"]);
    let (alice, bob) = (&users[0], &users[1]);
    alice.ok("cm-topic", &["create", "ops"]);
    let q = post(alice, "ops", "who   has the\npager?", &[]);
    let q_id = q["message_id"].as_str().unwrap().to_string();
    post(bob, "ops", "me", &["--reply-to", &q_id]);

    // bob's posting joined him; alice has not read it.
    let list = alice.json("cm-topic", &["list"]);
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            &list[0]["name"],
            &list[0]["unread"],
            &list[0]["member_count"]
        ),
        (&json!("ops"), &json!(1), &json!(2))
    );
    alice.ok("cm-topic", &["read", "ops"]);
    assert_eq!(alice.json("cm-topic", &["list"])[0]["unread"], 0);

    let mut tail = Tail::start(alice, &["ops", "--limit", "10"]);
    let row = |name: &str, text: &str| {
        let (name, text) = (name.to_string(), text.to_string());
        move |l: &str| {
            let parts: Vec<&str> = l.splitn(4, "  ").collect();
            parts.len() == 4
                && parts[0].len() == 8
                && parts[0].chars().filter(|c| *c == ':').count() == 2
                && parts[1] == name
                && parts[2].len() == 9
                && parts[2].starts_with('#')
                && parts[3] == text
        }
    };
    tail.expect(row("alice", "who   has the"));
    tail.expect(|l| l == "pager?");
    tail.expect(|l| l == "  ↳ in reply to alice: \"who has the pager?\"");
    tail.expect(row("bob", "me"));
    // Live, a reply to a reply.
    let me_id = history(alice, "ops")[1]["id"].as_str().unwrap().to_string();
    post(bob, "ops", "it is on my desk", &["--reply-to", &me_id[..6]]);
    tail.expect(|l| l == "  ↳ in reply to bob: \"me\"");
    tail.expect(row("bob", "it is on my desk"));
    let (code, err) = tail.interrupt();
    assert_eq!((code, err.as_str()), (Some(130), ""));

    let human = alice.ok("cm-topic", &["history", "ops", "--limit", "2"]);
    let rows: Vec<&str> = human.lines().collect();
    assert_eq!(rows.len(), 4, "{human}");
    // The first reply's parent is not on this page: its id stands in for it.
    assert_eq!(rows[0], format!("  ↳ in reply to {}…", &q_id[..8]));
    assert!(row("bob", "me")(rows[1]), "{human}");
    assert_eq!(rows[2], "  ↳ in reply to bob: \"me\"");
    assert!(row("bob", "it is on my desk")(rows[3]), "{human}");
    assert_not_stored(&b, &["who   has the\npager?", "it is on my desk"]);
}

#[test]
fn a_mention_lands_in_notifications() {
    let (_d, b, users) = mesh("topic-mention", &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (&users[0], &users[1], &users[2]);
    alice.ok("cm-topic", &["create", "dev"]);
    let p = post(alice, "dev", "@Bob please review, @nobody too", &[]);
    assert_eq!(p["mentions"], json!(["bob", "nobody"]));

    let n = bob.json("cm-notify", &["list"]);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0]["type"], "notification");
    assert_eq!(n[0]["topic"], "dev");
    assert_eq!(n[0]["from"], "alice");
    assert_eq!(n[0]["text"], "@Bob please review, @nobody too");
    assert_eq!(n[0]["message_id"], p["message_id"]);
    assert_eq!(n[0]["read"], false);
    assert!(carol.json("cm-notify", &["list"]).is_empty());
    assert!(
        alice.json("cm-notify", &["list"]).is_empty(),
        "no self-mention"
    );
    let human = bob.ok("cm-notify", &["list"]);
    assert!(
        human.starts_with("#dev  alice  #") && human.trim_end().ends_with("(new)"),
        "{human}"
    );

    assert_eq!(bob.json("cm-notify", &["read"])[0]["marked"], 1);
    assert!(bob.json("cm-notify", &["list"]).is_empty());
    let all = bob.json("cm-notify", &["list", "--all"]);
    assert_eq!((all.len(), &all[0]["read"]), (1, &json!(true)));
    assert_not_stored(&b, &["@Bob please review, @nobody too"]);
}

// ---- HTTP with nothing but a socket ----

/// One HTTP/1.1 request on a fresh connection; the status and the JSON body.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(k) = key {
        req += &format!("Authorization: Bearer {k}\r\n");
    }
    if !body.is_empty() {
        req += "Content-Type: application/json\r\n";
    }
    // A PATCH goes without a length when it has no body, as curl -X PATCH sends it.
    if !body.is_empty() || method == "POST" {
        req += &format!("Content-Length: {}\r\n", body.len());
    }
    req += "\r\n";
    req += &body;
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = resp
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// A server-sent event: its name, id and data.
#[derive(Debug)]
struct Event {
    event: String,
    id: Option<String>,
    data: String,
}

/// `GET .../stream` on a raw socket, read event by event.
struct Sse {
    r: BufReader<TcpStream>,
    status: u16,
}

impl Sse {
    fn open(addr: SocketAddr, path: &str, key: &str, last_event_id: Option<&str>) -> Sse {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {key}\r\n"
        );
        if let Some(id) = last_event_id {
            req += &format!("Last-Event-ID: {id}\r\n");
        }
        req += "\r\n";
        s.write_all(req.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Sse { r, status }
    }

    /// The next event (comments skipped); `None` at the end of the stream.
    fn next(&mut self) -> Option<Event> {
        let mut ev = Event {
            event: String::new(),
            id: None,
            data: String::new(),
        };
        let mut line = String::new();
        loop {
            line.clear();
            if self.r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let l = line.trim_end_matches('\n');
            if l.is_empty() {
                if ev.event.is_empty() && ev.data.is_empty() {
                    continue;
                }
                return Some(ev);
            }
            if let Some(v) = l.strip_prefix("event: ") {
                ev.event = v.to_string();
            } else if let Some(v) = l.strip_prefix("id: ") {
                ev.id = Some(v.to_string());
            } else if let Some(v) = l.strip_prefix("data: ") {
                ev.data += v;
            }
        }
    }
}

#[test]
fn a_client_with_only_http_posts_and_follows_a_topic() {
    let (_d, b, users) = mesh("topic-rest", &["alice", "bob"]);
    let (alice, bob) = (&users[0], &users[1]);
    alice.ok("cm-topic", &["create", "ops", "--plaintext"]);
    alice.ok("cm-topic", &["create", "secret"]);
    let made = alice.json("cm-apikey", &["create", "ci", "--expires", "1d"]);
    let key = made[0]["secret"].as_str().unwrap().to_string();
    assert!(key.starts_with("cm_") && key.len() == 46, "{key}");
    let key_id = made[0]["id"].as_str().unwrap().to_string();
    let a = b.addr;

    let (s, topics) = http(a, "GET", "/api/v1/topics", Some(&key), None);
    assert_eq!(s, 200, "{topics}");
    let names: Vec<&str> = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ops", "secret"]);

    // Follow, then post; the stream has it at once, with the message id as the event id.
    let mut sse = Sse::open(a, "/api/v1/topics/ops/stream", &key, None);
    assert_eq!(sse.status, 200);
    let ready = sse.next().unwrap();
    assert_eq!(ready.event, "ready");
    let ready: Value = serde_json::from_str(&ready.data).unwrap();
    assert_eq!(ready["topic"], "ops");
    let (s, posted) = http(
        a,
        "POST",
        "/api/v1/messages",
        Some(&key),
        Some(&json!({"topic": "ops", "text": "deploy done @bob"})),
    );
    assert_eq!(s, 200, "{posted}");
    assert_eq!(posted["notifications"], 1);
    let id1 = posted["messageId"].as_str().unwrap().to_string();
    let ev = sse.next().unwrap();
    assert_eq!(
        (ev.event.as_str(), ev.id.as_deref()),
        ("message", Some(id1.as_str()))
    );
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(data["text"], "deploy done @bob");
    assert_eq!(data["senderName"], "alice");

    // The members read it with the tools; bob was mentioned.
    assert_eq!(texts(&history(bob, "ops")), ["deploy done @bob"]);
    assert_eq!(
        bob.json("cm-notify", &["list"])[0]["text"],
        "deploy done @bob"
    );

    // A post from the tools reaches the stream too; a reconnect with Last-Event-ID gets what it missed.
    post(bob, "ops", "thanks", &["--reply-to", &id1]);
    let ev = sse.next().unwrap();
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(
        (data["text"].as_str(), data["replyToId"].as_str()),
        (Some("thanks"), Some(id1.as_str()))
    );
    drop(sse);
    let mut again = Sse::open(a, "/api/v1/topics/ops/stream", &key, Some(&id1));
    assert_eq!(again.next().unwrap().event, "ready");
    let replayed = again.next().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&replayed.data).unwrap()["text"],
        "thanks"
    );

    let (s, h) = http(
        a,
        "GET",
        "/api/v1/topics/ops/messages?limit=1",
        Some(&key),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(h["messages"].as_array().unwrap().len(), 1);
    assert_eq!(h["messages"][0]["text"], "thanks");
    let (s, r) = http(a, "PATCH", "/api/v1/topics/ops/read", Some(&key), None);
    assert_eq!(s, 200, "{r}");
    for path in ["/api/v1/peers", "/api/v1/members", "/api/v1/notifications"] {
        let (s, v) = http(a, "GET", path, Some(&key), None);
        assert_eq!(s, 200, "{path}: {v}");
    }
    let (_, m) = http(a, "GET", "/api/v1/members", Some(&key), None);
    assert_eq!(m["members"].as_array().unwrap().len(), 2);

    // Refusals, as JSON with their status.
    let refused = |(s, v): (u16, Value), status: u16, code: &str| {
        assert_eq!((s, v["error"].as_str()), (status, Some(code)), "{v}");
        assert!(v["message"].is_string());
    };
    refused(
        http(a, "GET", "/api/v1/topics", None, None),
        401,
        "missing_api_key",
    );
    refused(
        http(
            a,
            "GET",
            "/api/v1/topics",
            Some("cm_notakeyatallnotakeyatallnotakeyatallnot"),
            None,
        ),
        401,
        "invalid_api_key",
    );
    refused(
        http(
            a,
            "POST",
            "/api/v1/messages",
            Some(&key),
            Some(&json!({"topic": "secret", "text": "psst"})),
        ),
        409,
        "topic_encrypted",
    );
    refused(
        http(
            a,
            "POST",
            "/api/v1/messages",
            Some(&key),
            Some(&json!({"topic": "nope", "text": "x"})),
        ),
        404,
        "topic_not_found",
    );
    refused(
        http(
            a,
            "POST",
            "/api/v1/messages",
            Some(&key),
            Some(&json!({"topic": "ops"})),
        ),
        400,
        "bad_request",
    );
    refused(
        http(a, "GET", "/api/v1/nothing", Some(&key), None),
        404,
        "not_found",
    );
    let narrow = alice.json(
        "cm-apikey",
        &["create", "reader", "--cap", "read", "--scope", "ops"],
    );
    let narrow = narrow[0]["secret"].as_str().unwrap();
    refused(
        http(
            a,
            "POST",
            "/api/v1/messages",
            Some(narrow),
            Some(&json!({"topic": "ops", "text": "x"})),
        ),
        403,
        "missing_capability",
    );
    refused(
        http(
            a,
            "GET",
            "/api/v1/topics/secret/messages",
            Some(narrow),
            None,
        ),
        403,
        "topic_out_of_scope",
    );
    let e = alice.fails("cm-apikey", &["create", "x", "--cap", "admin,fly"], 3);
    assert!(e.contains("unknown capability \"fly\""), "{e}");
    let e = bob.fails("cm-apikey", &["create", "x", "--cap", "admin"], 7);
    assert!(e.contains("only a mesh admin"), "{e}");

    // Revoked: 401 at once, and an open stream made with the key ends.
    let mut open = Sse::open(a, "/api/v1/topics/ops/stream", &key, None);
    assert_eq!(open.next().unwrap().event, "ready");
    let revoked = alice.ok("cm-apikey", &["revoke", &key_id[..8]]);
    assert_eq!(revoked.trim(), format!("revoked {key_id}"));
    refused(
        http(a, "GET", "/api/v1/topics", Some(&key), None),
        401,
        "revoked_api_key",
    );
    assert!(open.next().is_none(), "the stream should end with its key");
    let keys = alice.json("cm-apikey", &["list"]);
    let ci = keys.iter().find(|k| k["id"] == key_id.as_str()).unwrap();
    assert_eq!(ci["state"], "revoked");
    assert!(ci["last_used_at"].is_string());
    assert!(!keys.iter().any(|k| k.get("secret").is_some()));
    alice.fails("cm-apikey", &["revoke", "zzzzzzzz"], 5);

    // The database holds the key's hash, never the key.
    let db = b.db_bytes();
    assert!(!db.windows(key.len()).any(|w| w == key.as_bytes()));
}

#[test]
fn rest_requests_past_the_rate_limit_get_429() {
    let dir = TempDir::new("topic-429");
    let b = Broker::start(&dir, &["--rate-limit", "1:3"]);
    let alice = User::new("alice");
    alice.json("cm-mesh", &["new", "dev", "--broker", &b.ws_url()]);
    let key = alice.json("cm-apikey", &["create", "ci"])[0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let statuses: Vec<u16> = (0..6)
        .map(|_| http(b.addr, "GET", "/api/v1/topics", Some(&key), None).0)
        .collect();
    assert_eq!(&statuses[..3], [200, 200, 200]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let (_, v) = http(b.addr, "GET", "/api/v1/topics", Some(&key), None);
    assert!(
        v["error"] == "rate_limited" || v["topics"].is_array(),
        "{v}"
    );
}

#[test]
fn private_topics_keep_to_their_members() {
    let (_d, _b, users) = mesh("topic-private", &["alice", "bob", "carol"]);
    let (alice, bob) = (&users[0], &users[1]);
    alice.ok("cm-topic", &["create", "hr", "--visibility", "private"]);
    // bob and carol hold sealed copies, so they may join; someone who came later may not.
    bob.ok("cm-topic", &["join", "hr"]);
    let dave = User::new("dave");
    join(alice, &dave);
    let e = dave.fails("cm-topic", &["join", "hr"], 7);
    assert!(e.contains("#hr is private"), "{e}");
    dave.fails("cm-topic", &["history", "hr"], 7);
    // Creating it again under another visibility does not let him in.
    let again = dave.ok("cm-topic", &["create", "hr", "--visibility", "public"]);
    assert!(again.starts_with("#hr exists already"), "{again}");
    dave.fails("cm-topic", &["history", "hr"], 7);
    assert!(dave.json("cm-topic", &["list"]).is_empty());
    let e = alice.fails("cm-topic", &["create", "bad name"], 3);
    assert!(e.contains("topic names are"), "{e}");
    let e = alice.fails("cm-topic", &["history", "nope"], 5);
    assert!(e.contains("no topic #nope"), "{e}");
    let lines = lines(&alice.ok("cm-topic", &["list", "--json"]));
    assert_eq!(lines[0]["visibility"], "private");
}

#[test]
fn send_to_a_topic_keeps_its_priority_and_its_client_id() {
    let (_d, _b, users) = mesh("topic-send", &["alice", "bob"]);
    let (alice, bob) = (&users[0], &users[1]);
    alice.ok("cm-topic", &["create", "ops"]);
    bob.ok("cm-topic", &["join", "ops"]);
    // bob is online in a session that prints what reaches it.
    let mut pipe = bob
        .cmd("cm-pipe")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    let stdout = pipe.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line)
                && tx.send(v).is_err()
            {
                return;
            }
        }
    });
    let next = |ty: &str| loop {
        let v = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("cm-pipe wrote no {ty} event"));
        if v["type"] == ty {
            break v;
        }
    };
    assert_eq!(next("connection")["state"], "connected");

    let args = ["#ops", "-p", "low", "--client-id", "ops-1", "disk at 91%"];
    let first = alice.json("cm-send", &args);
    assert_eq!(first[0]["client_message_id"], "ops-1", "{first:?}");
    assert_eq!(first[0]["priority"], "low");
    // What bob receives carries the priority it was sent with.
    let m = next("message");
    assert_eq!(m["priority"], "low", "{m}");
    assert_eq!(m["client_message_id"], "ops-1", "{m}");
    // The same client id again is the same message, stored once.
    let again = alice.json("cm-send", &args);
    assert_eq!(again[0]["message_id"], first[0]["message_id"]);
    assert_eq!(again[0]["duplicate"], true, "{again:?}");
    let h = alice.json("cm-topic", &["history", "ops"]);
    assert_eq!(h.len(), 1, "{h:?}");
    let _ = pipe.kill();
    let _ = pipe.wait();
}

#[test]
fn the_original_clis_key_routes_serve_a_member_who_joined_after_the_key() {
    // The original CLI gets a topic's key over REST before it ever joins the topic: GET /key, and a holder's
    // pending-seals and seal. carol comes to the mesh after #ops's key was made, and only asks for the key.
    let (_d, b, users) = mesh("topic-late-rest", &["alice"]);
    let alice = &users[0];
    alice.ok("cm-topic", &["create", "ops"]);
    let carol = User::new("carol");
    join(alice, &carol);
    let carol_key = carol.json("cm-apikey", &["create", "cli", "--expires", "1d"])[0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let alice_key = alice.json("cm-apikey", &["create", "cli", "--expires", "1d"])[0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let a = b.addr;
    let (s, e) = http(a, "GET", "/api/v1/topics/ops/key", Some(&carol_key), None);
    assert_eq!(
        (s, e["error"].as_str()),
        (404, Some("key_not_sealed_for_member")),
        "{e}"
    );
    let (s, p) = http(
        a,
        "GET",
        "/api/v1/topics/ops/pending-seals",
        Some(&alice_key),
        None,
    );
    assert_eq!(s, 200, "{p}");
    let pending: Vec<&str> = p["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(pending, ["carol"], "{p}");
    assert!(
        p["senderPubkey"].as_str().is_some_and(|k| k.len() == 64),
        "{p}"
    );

    // The owner's next post seals the key for her, though she never joined the topic.
    let posted = post(alice, "ops", "rotate the certs", &[]);
    assert!(
        posted["resealed"].to_string().contains("carol") || posted.to_string().contains("carol"),
        "{posted}"
    );
    let (s, k) = http(a, "GET", "/api/v1/topics/ops/key", Some(&carol_key), None);
    assert_eq!(s, 200, "{k}");
    assert_eq!(k["topic"], "ops");
    let me = carol.mesh("dev").keypair().unwrap();
    let topic_key = claudemesh::crypto::open_topic_key(
        k["encryptedKey"].as_str().unwrap(),
        k["nonce"].as_str().unwrap(),
        &me,
    )
    .unwrap();
    let (s, h) = http(
        a,
        "GET",
        "/api/v1/topics/ops/messages",
        Some(&carol_key),
        None,
    );
    assert_eq!(s, 200, "{h}");
    let m = &h["messages"][0];
    let nonce: [u8; 24] = b64::decode(m["nonce"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let body = claudemesh::crypto::secretbox_open_easy(
        &b64::decode(m["ciphertext"].as_str().unwrap()).unwrap(),
        &nonce,
        &topic_key,
    )
    .unwrap();
    assert_eq!(body, b"rotate the certs");

    // A seal for someone not in the mesh is refused in the original's words; one that exists stays.
    let (s, e) = http(
        a,
        "POST",
        "/api/v1/topics/ops/seal",
        Some(&alice_key),
        Some(
            &json!({"memberId": "nobody", "encryptedKey": k["encryptedKey"], "nonce": k["nonce"]}),
        ),
    );
    assert_eq!(
        (s, e["error"].as_str()),
        (404, Some("recipient_not_in_topic")),
        "{e}"
    );
    let (s, p) = http(
        a,
        "GET",
        "/api/v1/topics/ops/pending-seals",
        Some(&alice_key),
        None,
    );
    assert_eq!(
        (s, p["pending"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{p}"
    );
    assert_not_stored(&b, &["rotate the certs"]);
}
