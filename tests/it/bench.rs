//! `cm-bench` against a real broker: every scenario, tiny, read back as JSON lines. Figures are checked for
//! their presence and their counts, never for their size.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Broker, Mesh, TempDir, bin, lines, text};

fn bench(b: &Broker, args: &[&str]) -> std::process::Output {
    Command::new(bin("cm-bench"))
        .args(args)
        .args(["--broker", &b.ws_url(), "--json"])
        .env_remove("CLAUDEMESH_SESSION_ID")
        .output()
        .unwrap()
}

fn report(b: &Broker, args: &[&str]) -> Value {
    let o = bench(b, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o.stderr));
    let mut l = lines(&text(&o.stdout));
    assert_eq!(l.len(), 1, "{args:?}");
    let r = l.remove(0);
    assert_eq!(r["scenario"], args[0]);
    for k in [
        "peers",
        "sent",
        "delivered",
        "elapsed_s",
        "throughput_msgs_per_s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "broker_rss_mb",
    ] {
        assert!(r[k].is_number(), "{k} in {r}");
    }
    r
}

#[test]
fn bench_runs_every_scenario() {
    let dir = TempDir::new("bench");
    let b = Broker::start(&dir, &["--rate-limit", "0"]);

    let r = report(&b, &["dm", "--peers", "3", "--messages", "5"]);
    assert_eq!([&r["sent"], &r["delivered"]], [15, 15]);
    assert_eq!(r["window"], 1);

    let r = report(
        &b,
        &["dm", "-n", "2", "-m", "4", "--rate", "1000", "--size", "40"],
    );
    assert_eq!(r["delivered"], 8);
    assert_eq!(r["rate"], 1000.0);

    let r = report(&b, &["fanout", "--peers", "3", "--messages", "2"]);
    assert_eq!([&r["sent"], &r["delivered"]], [2, 6]);
    assert_eq!(r["frames"], 1);

    let r = report(&b, &["idle", "--peers", "50"]);
    assert_eq!([&r["sent"], &r["delivered"], &r["open"]], [50, 50, 50]);
    assert!(r["per_conn_kib"].is_number(), "{r}");

    let r = report(&b, &["topic", "--peers", "3", "--messages", "4"]);
    assert_eq!([&r["sent"], &r["delivered"]], [4, 12]);
    assert!(r["last_delivery_p50_ms"].is_number(), "{r}");
    assert!(r.get("unreadable").is_none(), "{r}");

    let r = report(&b, &["topic", "-n", "2", "-m", "5", "--window", "3"]);
    assert_eq!([&r["sent"], &r["delivered"], &r["window"]], [5, 10, 3]);

    let r = report(&b, &["cold", "--messages", "2"]);
    assert_eq!([&r["sent"], &r["delivered"]], [2, 2]);
    assert!(r["binary_bytes"].as_u64().is_some_and(|n| n > 0), "{r}");

    // Members of a mesh the bench did not make.
    let mesh = Mesh::create(&b, "theirs");
    let file = dir.0.join("members.jsonl");
    let all: Vec<String> = [mesh.admin.clone(), mesh.join(&b, "x"), mesh.join(&b, "y")]
        .iter()
        .map(|m| {
            json!({"meshId": mesh.id, "memberId": m.id, "pubkey": m.pubkey(), "secretKey": m.key.secret_hex()})
                .to_string()
        })
        .collect();
    std::fs::write(&file, all.join("\n")).unwrap();
    let file = file.display().to_string();
    let r = report(&b, &["dm", "-n", "3", "-m", "2", "--members", &file]);
    assert_eq!(r["delivered"], 6);
    let o = bench(&b, &["dm", "-n", "4", "--members", &file]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("dm needs 4 members; --members has 3"));

    // A topic in a mesh the bench did not make: its key is sealed for every member, as cm-topic create does.
    let r = report(&b, &["topic", "-n", "2", "-m", "3", "--members", &file]);
    assert_eq!([&r["sent"], &r["delivered"]], [3, 6]);
    let o = bench(&b, &["topic", "-n", "0"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let o = bench(&b, &["nope"]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn bench_is_paced_by_a_rate_limited_broker() {
    let dir = TempDir::new("bench-paced");
    // 5 sends a second per member, bursts of 3: each peer's run outgrows its burst.
    let b = Broker::start(&dir, &["--rate-limit", "5:3"]);
    for (args, delivered) in [
        (&["dm", "-n", "3", "-m", "10"][..], 30),
        (&["topic", "-n", "2", "-m", "8"][..], 16),
        (&["fanout", "-n", "3", "-m", "6"][..], 18),
    ] {
        let r = report(&b, args);
        assert_eq!(r["delivered"], delivered, "{args:?}: {r}");
        assert_eq!(r["refused"], 0, "{args:?}: {r}");
        assert!(r["paced"].as_u64().is_some_and(|n| n > 0), "{args:?}: {r}");
        assert!(
            r["paced_ms"].as_f64().is_some_and(|ms| ms > 0.0),
            "{args:?}: {r}"
        );
    }
}
