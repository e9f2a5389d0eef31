//! `cm-send`, `cm-peers`, `cm-inbox` and `cm-pipe` against a real `cm-broker`, each member in its own config
//! directory.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Broker, Mesh, TempDir};
use crate::peer::Peer;

fn broker(tag: &str) -> (TempDir, Broker) {
    let dir = TempDir::new(tag);
    let b = Broker::start(&dir, &[]);
    (dir, b)
}

fn texts(msgs: &[Value]) -> Vec<&str> {
    msgs.iter()
        .map(|m| m["text"].as_str().unwrap_or("<none>"))
        .collect()
}

fn by<'a>(peers: &'a [Peer], name: &str) -> &'a Peer {
    peers.iter().find(|p| p.name == name).unwrap()
}

#[test]
fn dms_both_ways_with_honest_status() {
    let (_d, b) = broker("dm");
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));
    let mut pipe = bob.pipe();

    // alice → bob, who is online through cm-pipe: pushed now.
    let r = alice.send("BOB", "hi bob");
    assert_eq!(r["type"], "send_result");
    assert_eq!(r["status"], "sent", "{r}");
    assert_eq!(r["recipient_online"], true);
    assert_eq!(
        r["to"],
        bob.pubkey().as_str(),
        "a name addresses the member key"
    );
    assert_eq!(r["name"], "bob");
    assert!(r["message_id"].as_str().is_some_and(|m| !m.is_empty()));
    let m = pipe.expect("message");
    assert_eq!(m["text"], "hi bob");
    assert_eq!(m["from"]["name"], "alice");
    assert_eq!(m["from"]["pubkey"], alice.pubkey().as_str());
    assert_eq!(m["from"]["member_pubkey"], alice.pubkey().as_str());
    assert_eq!(m["id"], r["message_id"]);
    assert!(m["sent_at"].as_str().unwrap().ends_with('Z'));

    // bob → alice, who has no live connection: stored, and said so.
    pipe.cmd(json!({"cmd": "send", "to": "alice", "text": "hello back", "id": 7}));
    let r = pipe.expect("send_result");
    assert_eq!(
        (r["status"].as_str(), r["recipient_online"].as_bool()),
        (Some("queued"), Some(false)),
        "{r}"
    );
    assert_eq!(r["id"], 7);
    let got = alice.inbox();
    assert_eq!(texts(&got), ["hello back"]);
    assert_eq!(got[0]["from"]["name"], "bob");
    assert_eq!(got[0]["to"], alice.pubkey().as_str());
    assert!(
        alice.inbox().is_empty(),
        "acknowledged messages do not come again"
    );

    // The human words.
    let r = alice.run("cm-send", &["bob", "two", "words"]);
    assert_eq!(
        (r.code, r.out.trim()),
        (Some(0), "sent to bob (online)"),
        "{}",
        r.err
    );
    assert_eq!(pipe.expect("message")["text"], "two words");
    let (status, _) = pipe.close();
    assert!(status.success());
    let r = alice.run("cm-send", &["bob", "later"]);
    assert_eq!(r.out.trim(), "queued for bob (offline)", "{}", r.err);
}
