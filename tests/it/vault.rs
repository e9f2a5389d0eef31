//! The vault as people use it: secrets set by one member with the real cm-vault, read by those it was sealed
//! for and by nobody else, and never in clear in the broker's data directory.

use serde_json::json;

use crate::harness::{Broker, Mesh, TempDir};
use crate::peer::Peer;

fn fails(p: &Peer, args: &[&str], code: i32) -> String {
    let r = p.run("cm-vault", args);
    assert_eq!(r.code, Some(code), "cm-vault {args:?}: {}{}", r.out, r.err);
    assert_eq!(r.err.lines().count(), 1, "one line: {}", r.err);
    r.err
}

/// `cm-vault get ARGS` to a pipe, expecting success: stdout as it is.
fn get(p: &Peer, args: &[&str]) -> String {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    let r = p.run("cm-vault", &a);
    assert_eq!(r.code, Some(0), "cm-vault {a:?}: {}", r.err);
    r.out
}

#[test]
fn secrets_open_for_their_readers_only_and_never_reach_the_broker_in_clear() {
    let dir = TempDir::new("vault");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob", "carol", "dave"]);
    let (alice, bob, carol, dave) = (&peers[0], &peers[1], &peers[2], &peers[3]);
    const TOKEN: &str = "tok-7f3a9c1e-never-in-clear";
    const DB: &str = "postgres://app:s3cr3t-pa55@db/app";
    const OPS: &str = "ops-pager-key-91b2";

    // For herself by default; the value from stdin stays out of argv.
    let r = alice.run_with(
        "cm-vault",
        &["set", "API_TOKEN", "--description", "the CI token"],
        TOKEN,
    );
    assert_eq!(
        (r.code, r.out.trim()),
        (Some(0), "stored API_TOKEN, sealed for you"),
        "{}",
        r.err
    );
    assert_eq!(get(alice, &["API_TOKEN"]), TOKEN);
    assert!(fails(bob, &["get", "API_TOKEN"], 5).contains("no secret \"API_TOKEN\" you may read"));

    // For a member by name, and for a group.
    let r = alice
        .run("cm-vault", &["set", "DB_URL", DB, "--for", "bob", "--json"])
        .ok();
    assert_eq!(
        r[0],
        json!({"type": "stored", "key": "DB_URL", "readers": 1})
    );
    assert_eq!(get(bob, &["DB_URL"]), DB);
    assert!(fails(carol, &["get", "DB_URL"], 5).contains("DB_URL"));
    assert_eq!(carol.run("cm-profile", &["join", "@ops"]).code, Some(0));
    let r = alice.run_with("cm-vault", &["set", "PAGER", "-", "--for", "@ops"], OPS);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(get(carol, &["PAGER"]), OPS);
    assert!(fails(dave, &["get", "PAGER"], 5).contains("PAGER"));

    // --env prints export lines for eval, quoted for the shell.
    let env = get(bob, &["--env", "DB_URL"]);
    assert_eq!(env, format!("export DB_URL='{DB}'\n"));
    let sh = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("eval \"{}\"; printf %s \"$DB_URL\"", env.trim()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sh.stdout), DB);
    let j = bob.run("cm-vault", &["get", "DB_URL", "--json"]).ok();
    assert_eq!(
        (&j[0]["value"], &j[0]["owner"]),
        (&json!(DB), &json!("alice"))
    );

    // list shows who may read what, never a value.
    let l = alice.run("cm-vault", &["list", "--json"]);
    let rows = l.ok();
    assert_eq!(rows.len(), 3);
    assert!(!l.out.contains(TOKEN) && !l.out.contains("s3cr3t"));
    let db = rows.iter().find(|e| e["key"] == "DB_URL").unwrap();
    assert_eq!(
        (&db["owner"], &db["readers"]),
        (&json!("alice"), &json!(["bob"]))
    );
    let theirs = bob.run("cm-vault", &["list", "--json"]).ok();
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    let table = alice.run("cm-vault", &["list"]);
    assert!(table.out.starts_with("KEY "), "{}", table.out);
    assert!(table.out.contains("the CI token"), "{}", table.out);

    // Bob's own DB_URL comes before alice's shared one; --from picks hers.
    bob.run("cm-vault", &["set", "DB_URL", "bobs-own", "--json"])
        .ok();
    assert_eq!(get(bob, &["DB_URL"]), "bobs-own");
    assert_eq!(get(bob, &["DB_URL", "--from", "alice"]), DB);

    // Setting again replaces the value and the readers; deleting is one's own.
    alice
        .run("cm-vault", &["set", "DB_URL", "rotated-value", "--json"])
        .ok();
    assert!(fails(bob, &["get", "DB_URL", "--from", "alice"], 5).contains("from alice"));
    assert_eq!(get(alice, &["DB_URL"]), "rotated-value");
    alice.run("cm-vault", &["delete", "DB_URL", "--json"]).ok();
    assert!(fails(alice, &["get", "DB_URL"], 5).contains("DB_URL"));
    assert!(fails(alice, &["delete", "DB_URL"], 5).contains("no secret"));

    // Bad input: one line and the status that says what kind.
    assert!(fails(alice, &["set", "bad key!", "x"], 3).contains("vault key"));
    assert!(
        fails(alice, &["set", "K", "x", "--for", "zed"], 5).contains("no member named \"zed\"")
    );
    assert!(fails(alice, &["set", "K", "x", "--type", "blob"], 3).contains("env or file"));
    alice
        .run("cm-vault", &["set", "not-a-name", "x", "--json"])
        .ok();
    assert!(fails(alice, &["get", "--env", "not-a-name"], 3).contains("shell variable"));

    // Nothing secret is in clear in the broker's data directory.
    b.kill();
    let files = walk(&dir.0.join("data"));
    assert!(files.iter().any(|f| f.ends_with("broker.db")), "{files:?}");
    for entry in files {
        let bytes = std::fs::read(&entry).unwrap();
        for s in [TOKEN, DB, OPS, "s3cr3t", "rotated-value", "bobs-own"] {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{s:?} is in clear in {}",
                entry.display()
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
