//! File reservations as people use them: two members with clones of one repository, the real cm-reserve
//! against a real broker, and the pre-commit hook in real git commits. Glob matching is held to git's own.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::harness::{Broker, Mesh, TempDir, lines, text};
use crate::peer::Peer;

/// `git ARGS` in `dir`, with no user or system config and a fixed author, as `p` (so a hook speaks as `p`).
fn git_as(p: Option<&Peer>, dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env_remove("CLAUDEMESH_MESH")
        .env_remove("CLAUDEMESH_SESSION_ID")
        .env_remove("CLAUDE_CODE_SESSION_ID");
    if let Some(p) = p {
        c.env("CLAUDEMESH_CONFIG_DIR", p.config_dir());
    }
    c.output().unwrap()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = git_as(None, dir, args);
    assert!(o.status.success(), "git {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

fn write(dir: &Path, rel: &str, body: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// `cm-reserve ARGS` as `p` in `dir`: (exit code, stdout, stderr).
fn reserve(p: &Peer, dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = p
        .cmd("cm-reserve")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (o.status.code(), text(&o.stdout), text(&o.stderr))
}

fn ok(p: &Peer, dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = reserve(p, dir, &a);
    assert_eq!(code, Some(0), "cm-reserve {args:?}: {err}");
    lines(&out)
}

fn fails(p: &Peer, dir: &Path, args: &[&str], want: i32) -> String {
    let (code, out, err) = reserve(p, dir, args);
    assert_eq!(code, Some(want), "cm-reserve {args:?}: {out}{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

/// An `origin` repository with one commit and two clones of it: (origin, alice's, bob's).
fn repos(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    let seed = dir.0.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "-q", "-b", "main"]);
    for f in ["src/lib.rs", "src/parser/mod.rs", "docs/guide.md", "README"] {
        write(&seed, f, "first\n");
    }
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "first"]);
    let origin = dir.0.join("origin.git");
    git(&dir.0, &["clone", "-q", "--bare", "seed", "origin.git"]);
    git(&dir.0, &["clone", "-q", "origin.git", "alice"]);
    git(&dir.0, &["clone", "-q", "origin.git", "bob"]);
    (origin, dir.0.join("alice"), dir.0.join("bob"))
}

#[test]
fn patterns_match_what_git_ls_files_matches() {
    let dir = TempDir::new("reserve-glob");
    let r = dir.0.join("r");
    std::fs::create_dir_all(&r).unwrap();
    git(&r, &["init", "-q"]);
    for f in [
        "top.rs",
        "README",
        ".hidden.rs",
        "src/lib.rs",
        "src/main.rs",
        "src/a/m.rs",
        "src/a/b/deep.rs",
        "src/a/b/notes.md",
        "srcx/other.rs",
        "docs/x.md",
        "docs/src/y.rs",
        "foo.rs/inner",
        "lib/a1.c",
        "lib/ab.c",
    ] {
        write(&r, f, "x");
    }
    git(&r, &["add", "-A"]);
    let files: Vec<String> = git(&r, &["ls-files"]).lines().map(str::to_string).collect();
    let patterns = [
        "src/**",
        "*.rs",
        "src",
        "src/",
        "**/*.rs",
        "src/**/*.rs",
        "src/*",
        "src/*.rs",
        "src/a",
        "src/a/**",
        "**",
        "**/src/**",
        "src/**/b",
        "**/b/**",
        "docs",
        "s*",
        "lib/a?.c",
        "lib/a[0-9].c",
        "lib/a[!0-9].c",
        "README",
        "foo.rs",
        "*.md",
        "**/*.md",
        "src/a/b/deep.rs",
    ];
    for p in patterns {
        let by_git: Vec<String> = git(&r, &["ls-files", "--", &format!(":(glob){p}")])
            .lines()
            .map(str::to_string)
            .collect();
        let g = claudemesh::glob::Glob::parse(p).unwrap();
        let ours: Vec<String> = files.iter().filter(|f| g.matches(f)).cloned().collect();
        assert_eq!(ours, by_git, "pattern {p:?}");
        // Two patterns git finds a common file for overlap.
        for q in patterns {
            let h = claudemesh::glob::Glob::parse(q).unwrap();
            if files.iter().any(|f| g.matches(f) && h.matches(f)) {
                assert!(g.overlaps(&h), "{p} and {q} share a file");
            }
        }
    }
}

#[test]
fn an_exclusive_reservation_refuses_the_other_member_s_commit_in_the_hook() {
    let dir = TempDir::new("reserve-hook");
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    let (_, mine, theirs) = repos(&dir);

    // Alice holds the parser exclusively; a scope is the origin's, the same in both clones.
    let got = ok(
        alice,
        &mine,
        &[
            "src/parser/**",
            "--exclusive",
            "--reason",
            "rewriting the parser",
        ],
    );
    assert_eq!(
        (&got[0]["path"], &got[0]["exclusive"], &got[0]["holder"]),
        (&json!("src/parser/**"), &json!(true), &json!("alice"))
    );
    let scope = got[0]["scope"].as_str().unwrap().to_string();
    assert!(scope.ends_with("/origin"), "{scope}");
    let listed = ok(bob, &theirs, &["list"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["scope"], scope.as_str());

    // Bob asking for an overlapping path is told who has it and why, and gets none of what he asked for.
    let e = fails(bob, &theirs, &["src/parser/mod.rs", "docs"], 13);
    assert!(
        e.contains("src/parser/mod.rs is reserved exclusively by alice as src/parser/**")
            && e.contains("\"rewriting the parser\"")
            && e.contains("nothing reserved"),
        "{e}"
    );
    let (_, out, _) = reserve(bob, &theirs, &["src/parser/mod.rs", "--json"]);
    let c = lines(&out);
    assert_eq!(
        (&c[0]["type"], &c[0]["held"], &c[0]["holder"]),
        (&json!("conflict"), &json!("src/parser/**"), &json!("alice"))
    );
    assert_eq!(ok(bob, &theirs, &["list"]).len(), 1);
    // Patterns are relative to where one stands: `*.rs` in src/parser is src/parser/*.rs.
    assert!(fails(bob, &theirs.join("src/parser"), &["*.rs"], 13).contains("src/parser/*.rs is"));
    // Shared reservations of one path live side by side.
    ok(bob, &theirs, &["docs"]);
    ok(alice, &mine, &["docs/guide.md"]);

    // Bob has a pre-commit hook of his own; installing ours keeps it aside and runs it after the check.
    let hooks = theirs.join(".git/hooks");
    let user_hook =
        "#!/bin/sh\n# bob's own\necho ran >> \"$(git rev-parse --git-dir)/user-hook-ran\"\n";
    write(&hooks, "pre-commit", user_hook);
    std::fs::set_permissions(
        hooks.join("pre-commit"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let h = ok(bob, &theirs, &["hook", "install"]);
    assert_eq!(h[0]["state"], "installed");
    assert!(
        h[0]["user_hook"]
            .as_str()
            .unwrap()
            .ends_with("pre-commit.claudemesh-user")
    );

    // A commit touching the parser is refused, naming alice and her reason.
    write(&theirs, "src/parser/mod.rs", "bob's change\n");
    git(&theirs, &["add", "src/parser/mod.rs"]);
    let o = git_as(Some(bob), &theirs, &["commit", "-q", "-m", "parser"]);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "the commit went through: {err}");
    assert!(
        err.contains("commit refused: src/parser/mod.rs is reserved exclusively by alice")
            && err.contains("rewriting the parser")
            && err.contains("--no-verify"),
        "{err}"
    );
    assert!(!theirs.join(".git/user-hook-ran").exists());
    // --no-verify is the way round.
    let o = git_as(
        Some(bob),
        &theirs,
        &["commit", "-q", "--no-verify", "-m", "parser"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));

    // A commit elsewhere goes through, and bob's own hook runs after the check.
    write(&theirs, "docs/guide.md", "bob's docs\n");
    git(&theirs, &["add", "docs/guide.md"]);
    let o = git_as(Some(bob), &theirs, &["commit", "-q", "-m", "docs"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(theirs.join(".git/user-hook-ran")).unwrap(),
        "ran\n"
    );
    // A rename out of the reserved paths touches them too.
    git(&theirs, &["mv", "src/parser/mod.rs", "src/mod.rs"]);
    let o = git_as(Some(bob), &theirs, &["commit", "-q", "-m", "move"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("src/parser/mod.rs is reserved"));
    git(&theirs, &["reset", "-q", "--hard"]);

    // Alice's own reservation never stands in her way.
    ok(alice, &mine, &["hook", "install"]);
    write(&mine, "src/parser/mod.rs", "alice's rewrite\n");
    git(&mine, &["add", "-A"]);
    let o = git_as(Some(alice), &mine, &["commit", "-q", "-m", "rewrite"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    // check names the paths outright too.
    let e = fails(bob, &theirs, &["check", "src/parser/x.rs"], 13);
    assert!(e.contains("by alice"), "{e}");
    assert_eq!(reserve(bob, &theirs, &["check", "src/lib.rs"]).0, Some(0));

    // Released, bob's commit of the parser goes through.
    let gone = ok(alice, &mine, &["release", "src/parser/**"]);
    assert_eq!(gone[0]["path"], "src/parser/**");
    write(&theirs, "src/parser/mod.rs", "bob again\n");
    git(&theirs, &["add", "-A"]);
    let o = git_as(Some(bob), &theirs, &["commit", "-q", "-m", "parser again"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    // Uninstalling gives bob's hook back byte for byte, with its mode.
    let h = ok(bob, &theirs, &["hook", "uninstall"]);
    assert_eq!(h[0]["state"], "removed");
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-commit")).unwrap(),
        user_hook
    );
    let mode = std::fs::metadata(hooks.join("pre-commit"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    assert!(!hooks.join("pre-commit.claudemesh-user").exists());
    // Alice had none: uninstalling leaves none, and a second uninstall says there is nothing to remove.
    ok(alice, &mine, &["hook", "uninstall"]);
    assert!(!mine.join(".git/hooks/pre-commit").exists());
    assert!(
        fails(alice, &mine, &["hook", "uninstall"], 5).contains("no claudemesh pre-commit hook")
    );
}

#[test]
fn reservations_end_on_their_own_and_bad_input_is_one_line() {
    let dir = TempDir::new("reserve-ttl");
    let b = Broker::start_with_env(&dir.0.join("data"), &[], &[("CM_BROKER_TEST_CLOCK", "1")]);
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    let (_, mine, theirs) = repos(&dir);

    ok(
        alice,
        &mine,
        &["src", "-x", "--ttl", "1m", "-r", "a minute"],
    );
    assert!(fails(bob, &theirs, &["src/**"], 13).contains("alice"));
    // Reserving again renews in place: still one.
    ok(alice, &mine, &["src", "-x", "--ttl", "1m"]);
    assert_eq!(ok(bob, &theirs, &["list"]).len(), 1);
    let (code, out, _) = reserve(bob, &theirs, &["list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("PATH ") && out.contains("src   exclusive  alice"),
        "{out}"
    );

    let (status, v) = b.post("/debug/clock", &json!({"offsetMs": 61_000}), &[]);
    assert_eq!(status, 200, "{v}");
    assert!(ok(bob, &theirs, &["list"]).is_empty());
    ok(bob, &theirs, &["src/**", "--exclusive"]);
    assert_eq!(ok(alice, &mine, &["list", "--all"]).len(), 1);

    // Bad input: one line and the status that says what kind.
    assert!(fails(bob, &theirs, &["lib/[ab"], 3).contains("unclosed ["));
    assert!(fails(bob, &theirs, &["../x"], 3).contains("outside the repository"));
    assert!(fails(bob, &theirs, &["x", "--ttl", "soon"], 3).contains("--ttl"));
    assert!(fails(bob, &theirs, &["x", "--ttl", "30d"], 3).contains("7 days"));
    assert!(fails(bob, &theirs, &["release", "docs"], 5).contains("no reservation of docs"));
    assert!(fails(bob, &theirs, &[], 3).contains("PATH-GLOB"));
    let outside = bob
        .cmd("cm-reserve")
        .arg("src")
        .current_dir(&dir.0)
        .env("GIT_CEILING_DIRECTORIES", dir.0.parent().unwrap())
        .output()
        .unwrap();
    assert_eq!(outside.status.code(), Some(3));
    assert!(text(&outside.stderr).contains("not in a git work tree"));
    assert!(fails(bob, &theirs, &["hook", "reinstall"], 3).contains("install or uninstall"));
    // --repo names a scope from anywhere.
    let got = ok(bob, &dir.0, &["notes/**", "--repo", "example.org/notes"]);
    assert_eq!(got[0]["scope"], "example.org/notes");
    assert_eq!(ok(bob, &theirs, &["release"]).len(), 1);
}
