//! A mesh served by more than one broker address: `cm-mesh brokers`, one-shot tools and a running `cm-pipe` that
//! move to the next broker when one is down, and the one line when none answers.
//!
//! Two brokers on one SQLite file cannot run at once, so "the other broker" is the same data directory served on
//! another port after the first is killed: what the clients see of a broker that went away while another of the
//! same mesh stayed up.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Broker, Mesh, TempDir};

/// A port nothing listens on now, for a broker that starts later.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tools_and_a_running_pipe_move_to_the_mesh_s_other_broker() {
    let dir = TempDir::new("two-brokers");
    let data = dir.0.join("data");
    let first = Broker::start_in(&data, &[]);
    let peers = Mesh::new(&first, &["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    let one = first.ws_url();
    let one_addr = first.addr.to_string();
    let port = free_port();
    let two = format!("ws://127.0.0.1:{port}/ws");

    // The second is not up yet: kept, with a warning.
    for p in [alice, bob] {
        let r = p.run("cm-mesh", &["brokers", &one, &two]);
        assert_eq!(r.code, Some(0), "{}", r.err);
        assert!(
            r.err.contains(&format!(
                "kept {two}, which cannot be reached now: cannot reach broker at {two}: connection refused"
            )),
            "{}",
            r.err
        );
        assert_eq!(
            r.out,
            format!("mesh {} uses 2 brokers: {one}, {two}\n", p.slug)
        );
    }
    let listed = alice.run("cm-mesh", &["brokers", "--json"]).ok();
    let urls: Vec<(&str, bool)> = listed
        .iter()
        .map(|l| (l["url"].as_str().unwrap(), l["primary"].as_bool().unwrap()))
        .collect();
    assert_eq!(urls, [(one.as_str(), true), (two.as_str(), false)]);

    let mut pipe = bob.pipe();
    first.kill();
    let second = Broker::start_in(&data, &["--listen", &format!("127.0.0.1:{port}")]);
    assert_eq!(second.ws_url(), two);

    // The first broker refuses connections now; the send goes through the second.
    let sent = alice.send(&bob.pubkey(), "after the move");
    assert!(
        sent["status"] == "sent" || sent["status"] == "queued",
        "{sent}"
    );
    let m = pipe.wait_for(Duration::from_secs(30), |v| {
        v["type"] == "message" && v["text"] == "after the move"
    });
    assert_eq!(m["text"], "after the move");

    // cm-doctor names the dead broker as a warning while the other serves.
    let d = alice.run("cm-doctor", &["--json"]);
    let lines: Vec<Value> = d.lines();
    let broker_checks: Vec<&Value> = lines
        .iter()
        .filter(|l| l["name"].as_str().is_some_and(|n| n.ends_with(" broker")))
        .collect();
    assert_eq!(broker_checks.len(), 2, "{lines:#?}");
    assert!(
        broker_checks.iter().any(|c| c["ok"] == true
            && c["fix"].is_null()
            && c["detail"].as_str().unwrap().starts_with(&two)),
        "{broker_checks:#?}"
    );
    assert!(
        broker_checks.iter().any(|c| c["ok"] == true
            && c["fix"].is_string()
            && c["detail"].as_str().unwrap().contains(&one_addr)),
        "{broker_checks:#?}"
    );
    drop(pipe);

    // Neither answers: one line naming both, the network's exit status.
    second.kill();
    let r = alice.run("cm-send", &[&bob.pubkey(), "nowhere"]);
    assert_eq!(r.code, Some(4), "{}", r.err);
    assert_eq!(
        r.err.trim_end(),
        format!(
            "cm-send: no broker of mesh {} answers: cannot reach broker at {one}: connection refused; \
             cannot reach broker at {two}: connection refused",
            alice.slug
        )
    );
}

#[test]
fn a_broker_that_does_not_serve_the_mesh_is_refused_and_nothing_changes() {
    let dir = TempDir::new("wrong-broker");
    let b = Broker::start(&dir, &[]);
    let elsewhere_dir = TempDir::new("wrong-broker-other");
    let elsewhere = Broker::start(&elsewhere_dir, &[]);
    let peers = Mesh::new(&b, &["alice"]);
    let alice = &peers[0];
    let before = std::fs::read(alice.config_dir().join("config.json")).unwrap();

    let r = alice.run("cm-mesh", &["brokers", &b.ws_url(), &elsewhere.ws_url()]);
    assert_eq!(r.code, Some(2), "{}", r.err);
    assert!(
        r.err.starts_with(&format!(
            "cm-mesh: {} does not take mesh {}'s member (broker refused hello: ",
            elsewhere.ws_url(),
            alice.slug
        )) && r.err.trim_end().ends_with("); nothing changed"),
        "{}",
        r.err
    );
    assert_eq!(
        std::fs::read(alice.config_dir().join("config.json")).unwrap(),
        before
    );
    let r = alice.run("cm-mesh", &["brokers"]);
    assert_eq!(r.out, format!("{}\n", b.ws_url()));
    // Not a URL at all: a usage error, before anything is asked.
    assert_eq!(alice.run("cm-mesh", &["brokers", "ftp://x"]).code, Some(3));
}
