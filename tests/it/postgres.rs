//! cm-broker on PostgreSQL (`--database-url`), walked as a user would with the real binaries: two members, a DM,
//! a topic post, shared state, memory, a reminder, and a restart that keeps all of it.
//!
//! The server is `$CM_TEST_POSTGRES`, else a private cluster started for this process (see `testdb`); without
//! either the tests skip, and fail when CI is set. `CM_IT_STORE=postgres cargo test --test it` runs every other
//! integration test's broker on PostgreSQL too (see the harness).

use std::process::Command;

use serde_json::Value;

use crate::harness::{BROKER, Broker, TempDir, User, text};
use crate::testdb;

/// alice makes mesh dev on `b`; bob joins it.
fn pair(b: &Broker) -> (User, User) {
    let (alice, bob) = (User::new("alice"), User::new("bob"));
    alice.json("cm-mesh", &["new", "dev", "--broker", &b.ws_url()]);
    let inv = alice.json("cm-mesh", &["invite"]);
    let url = inv[0]["url"].as_str().unwrap_or_else(|| panic!("{inv:?}"));
    bob.json("cm-mesh", &["join", url]);
    (alice, bob)
}

/// What `u` finds waiting, waiting up to 10 s for the first message, as JSON Lines.
fn inbox(u: &User) -> Vec<Value> {
    u.json("cm-inbox", &["--wait", "10"])
}

fn texts(v: &[Value]) -> Vec<String> {
    v.iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_everyday_path_on_postgresql_survives_a_restart() {
    let Some(url) = testdb::fresh_database("it") else {
        return;
    };
    let dir = TempDir::new("pg-everyday");
    let data = dir.0.join("data");
    let b = Broker::start_in(&data, &["--database-url", &url]);
    let addr = b.addr.to_string();
    let (status, health) = b.get("/health");
    assert_eq!(status, 200, "{health}");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["store_backend"], "postgres");
    assert!(
        b.get("/metrics")
            .1
            .contains("claudemesh_store_info{backend=\"postgres\"} 1")
    );
    assert!(
        b.log_text().contains("store=\"postgres 127.0.0.1:"),
        "{}",
        b.log_text()
    );

    let (alice, bob) = pair(&b);
    alice.ok("cm", &["send", "bob", "hello over postgres"]);
    assert_eq!(texts(&inbox(&bob)), ["hello over postgres"]);

    alice.ok("cm-topic", &["create", "dev"]);
    bob.ok("cm-topic", &["join", "dev"]);
    let post = alice.json("cm-topic", &["post", "dev", "the build is green"]);
    assert_eq!(post[0]["type"], "topic_post");

    alice.ok("cm", &["state", "set", "where", "on-postgres"]);
    assert_eq!(
        bob.ok("cm", &["state", "get", "where"]).trim(),
        "on-postgres"
    );

    alice.json(
        "cm-memory",
        &["remember", "the deploy key rotates monthly", "--tag", "ops"],
    );
    alice.json("cm-memory", &["remember", "deploys go out on Tuesdays"]);
    let found = bob.json("cm-memory", &["recall", "deploy", "key"]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0]["content"], "the deploy key rotates monthly");
    assert_eq!(found[0]["snippet"], "the [deploy] [key] rotates monthly");

    let set = alice.json("cm-remind", &["--in", "1s", "stretch your legs"]);
    assert_eq!(set[0]["type"], "scheduled");
    let got = inbox(&alice);
    assert_eq!(texts(&got), ["stretch your legs"]);
    assert_eq!(got[0]["subtype"], "reminder");

    // A restart on the same database keeps everything; nothing went to a SQLite file.
    b.kill();
    let b = Broker::start_in(&data, &["--database-url", &url, "--listen", &addr]);
    assert!(!data.join("broker.db").exists(), "SQLite was used");
    assert_eq!(
        bob.ok("cm", &["state", "get", "where"]).trim(),
        "on-postgres"
    );
    let history = bob.json("cm-topic", &["history", "dev"]);
    assert_eq!(texts(&history), ["the build is green"]);
    assert_eq!(bob.json("cm-memory", &["recall", "Tuesdays"]).len(), 1);
    assert!(alice.json("cm-remind", &["list"]).is_empty(), "fired once");
    alice.ok("cm", &["send", "bob", "after the restart"]);
    assert_eq!(texts(&inbox(&bob)), ["after the restart"]);
    drop(b);
}

#[test]
fn two_brokers_started_at_once_on_an_empty_database_both_serve() {
    let Some(url) = testdb::fresh_database("race") else {
        return;
    };
    let dir = TempDir::new("pg-race");
    let (d1, d2) = (dir.0.join("one"), dir.0.join("two"));
    // Both spawn before either has migrated: the advisory lock makes the second wait for the first's schema.
    let (url1, url2) = (url.clone(), url.clone());
    let one = std::thread::spawn(move || Broker::start_in(&d1, &["--database-url", &url1]));
    let two = std::thread::spawn(move || Broker::start_in(&d2, &["--database-url", &url2]));
    let (one, two) = (one.join().unwrap(), two.join().unwrap());
    for b in [&one, &two] {
        assert_eq!(b.get("/health").0, 200);
    }
    // One database: a mesh made through one broker is known to the other.
    let alice = User::new("alice");
    alice.json("cm-mesh", &["new", "dev", "--broker", &one.ws_url()]);
    let bob = User::new("bob");
    let inv = alice.json("cm-mesh", &["invite"]);
    let link = inv[0]["url"]
        .as_str()
        .unwrap()
        .replace(&one.addr.to_string(), &two.addr.to_string());
    bob.json("cm-mesh", &["join", &link]);
    alice.ok("cm", &["state", "set", "k", "v"]);
    assert_eq!(bob.ok("cm", &["state", "get", "k"]).trim(), "v");
}

#[test]
fn a_bad_url_or_an_unreachable_database_is_one_line_and_its_own_exit_code() {
    let dir = TempDir::new("pg-bad");
    let run = |args: &[&str], env: Option<&str>| {
        let mut c = Command::new(BROKER);
        c.args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir.0.join("data"))
            .args(args)
            .env_remove("DATABASE_URL");
        if let Some(v) = env {
            c.env("DATABASE_URL", v);
        }
        let o = c.output().unwrap();
        let err = text(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        (o.status.code(), err)
    };
    let (code, err) = run(&["--database-url", "mysql://x/y"], None);
    assert_eq!(code, Some(3));
    assert!(
        err.starts_with("cm-broker: --database-url: expected a postgres://"),
        "{err}"
    );
    let (code, err) = run(
        &[],
        Some("postgres://u:hunter2@127.0.0.1:5432/db?sslmode=verify"),
    );
    assert_eq!(code, Some(3));
    assert!(
        err.contains("DATABASE_URL: sslmode=verify: expected"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    // Port 1 on loopback: nothing listens there.
    let (code, err) = run(
        &["--database-url", "postgres://u:hunter2@127.0.0.1:1/db"],
        None,
    );
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("127.0.0.1:1/db") && err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    // The flag wins over the variable; an empty variable is unset (and the broker would use SQLite).
    let (code, _) = run(
        &["--database-url", "postgres://u@127.0.0.1:1/db"],
        Some("nope"),
    );
    assert_eq!(code, Some(4));
}

/// `cm-broker` on `url`, expected to stop at start: its exit code and its one line on stderr.
fn refused(dir: &TempDir, url: &str) -> (Option<i32>, String) {
    let o = Command::new(BROKER)
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(dir.0.join("refused"))
        .args(["--database-url", url])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{url}: {err}");
    (o.status.code(), err.trim().to_string())
}

#[test]
fn the_database_is_reached_over_tls_as_sslmode_asks() {
    let dir = TempDir::new("pg-tls");
    let ca = crate::tls::Ca::new(&dir.0, "db");
    let other = crate::tls::Ca::new(&dir.0, "other");
    let (cert, key) = (dir.0.join("db.pem"), dir.0.join("db.key"));
    ca.issue(&["localhost"], &cert, &key);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    // This cluster refuses every connection that is not TLS: a broker that works on it spoke TLS.
    let Some(db) = testdb::tls_cluster(&read(&cert), &read(&key)) else {
        return;
    };
    let port = db
        .url
        .rsplit(':')
        .next()
        .and_then(|r| r.split('/').next())
        .unwrap();
    let by_name = format!("postgres://postgres@localhost:{port}/postgres?hostaddr=127.0.0.1");
    let by_ip = db.url.clone();
    let ca_pem = ca.pem.display().to_string();

    // The certificate proved: its CA and the name connected to.
    let b = Broker::start_in(
        &dir.0.join("full"),
        &[
            "--database-url",
            &format!("{by_name}&sslmode=verify-full&sslrootcert={ca_pem}"),
        ],
    );
    let (alice, bob) = pair(&b);
    alice.ok("cm", &["send", "bob", "over TLS to the database"]);
    assert_eq!(texts(&inbox(&bob)), ["over TLS to the database"]);
    drop(b);

    // Another CA's certificate, or one for another name, is refused in one line, exit 2 as the clients refuse
    // a broker's; the URL's password never shows.
    let (code, err) = refused(
        &dir,
        &format!(
            "{by_name}&sslmode=verify-full&sslrootcert={}",
            other.pem.display()
        ),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not signed by a CA in sslrootcert"), "{err}");
    let (code, err) = refused(
        &dir,
        &format!("{by_ip}?sslmode=verify-full&sslrootcert={ca_pem}"),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("does not name 127.0.0.1"), "{err}");
    // The web's roots do not know a private CA.
    let (code, err) = refused(&dir, &format!("{by_name}&sslmode=verify-full"));
    assert_eq!(code, Some(2), "{err}");

    // verify-ca checks the chain only; require encrypts and checks nothing, as with psql.
    for url in [
        format!("{by_ip}?sslmode=verify-ca&sslrootcert={ca_pem}"),
        format!("{by_ip}?sslmode=require"),
    ] {
        let b = Broker::start_in(&dir.0.join("ca"), &["--database-url", &url]);
        let (status, _) = b.get("/health");
        assert_eq!(status, 200, "{url}");
    }
    // With TLS turned off the server refuses, and the broker says why.
    let (code, err) = refused(&dir, &format!("{by_ip}?sslmode=disable"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no encryption"), "{err}");
    // A root file that is not there stops the broker before it connects.
    let (code, err) = refused(
        &dir,
        &format!("{by_ip}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
    );
    assert!(matches!(code, Some(3 | 10)), "{code:?} {err}");
    assert!(err.contains("sslrootcert /nonexistent/ca.pem"), "{err}");
}
