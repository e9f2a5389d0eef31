//! `cm`, the front door, run as a real process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CM: &str = env!("CARGO_BIN_EXE_cm");

/// A directory under cargo's scratch space for integration tests, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cm-{tag}-{}-{n}", std::process::id()));
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

fn cm(args: &[&str]) -> Output {
    Command::new(CM).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `cm` copied alone into an empty directory, run with an empty `PATH`: no `cm-*` tool can be found.
fn lone_cm(args: &[&str]) -> Output {
    let dir = TempDir::new("alone");
    let bin = dir.0.join("cm");
    // A hard link cannot be "text file busy" the way a fresh copy can while another test forks.
    if std::fs::hard_link(CM, &bin).is_err() {
        std::fs::copy(CM, &bin).unwrap();
    }
    let empty = TempDir::new("path");
    Command::new(&bin)
        .args(args)
        .env("PATH", &empty.0)
        .output()
        .unwrap()
}

#[test]
fn help_lists_tools_and_verbs() {
    // No mesh joined, so bare `cm` prints the help instead of starting Claude Code.
    let empty = TempDir::new("nomesh");
    let bare = Command::new(CM)
        .env("CLAUDEMESH_CONFIG_DIR", &empty.0)
        .output()
        .unwrap();
    for o in [cm(&["help"]), bare] {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("Tools:"), "{out}");
        for t in claudemesh::tools::ALL {
            assert!(out.contains(t.name), "{} missing from cm help", t.name);
        }
        assert!(out.contains("new, create"), "{out}");
        assert!(out.contains("cm-mesh new"), "{out}");
    }
}

#[test]
fn help_as_json_lines() {
    let o = cm(&["--json", "help"]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|v| v["type"] == "tool" && v["name"] == "cm")
    );
    assert!(
        lines
            .iter()
            .any(|v| v["type"] == "verb" && v["name"] == "send" && v["tool"] == "cm-send")
    );
}

#[test]
fn unknown_verb_is_a_usage_error() {
    let o = cm(&["bogus"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stderr(&o), "cm: unknown command \"bogus\"; see 'cm help'\n");
    assert!(o.stdout.is_empty());
}

#[test]
fn typo_gets_did_you_mean() {
    let o = cm(&["sned", "bob", "hi"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        "cm: unknown command \"sned\" (did you mean \"send\"?)\n"
    );
}

#[test]
fn version() {
    let o = cm(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), format!("cm {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn missing_tool_says_so() {
    let o = lone_cm(&["topic", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "cm: \"topic\" needs cm-topic, which is not installed\n"
    );
    let o = lone_cm(&["ic://join/abc"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "cm: \"join\" needs cm-mesh, which is not installed\n"
    );
}

#[test]
fn bad_flag_is_a_usage_error() {
    let o = cm(&["--jsn"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        "cm: unknown flag --jsn (did you mean --json?)\n"
    );
}

#[cfg(unix)]
#[test]
fn runs_the_tool_beside_it_with_the_arguments_verbatim() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("beside");
    let bin = dir.0.join("cm");
    if std::fs::hard_link(CM, &bin).is_err() {
        std::fs::copy(CM, &bin).unwrap();
    }
    // A stand-in cm-mesh that prints its arguments and exits 7.
    let tool = dir.0.join("cm-mesh");
    std::fs::write(
        &tool,
        "#!/bin/sh\nfor a in \"$@\"; do echo \"[$a]\"; done\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let empty = TempDir::new("path");
    let run = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .env("PATH", &empty.0)
            .output()
            .unwrap()
    };

    let o = run(&["--json", "create", "dev", "--public", "--", "x y"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "[new]\n[--json]\n[dev]\n[--public]\n[--]\n[x y]\n"
    );

    let o = run(&["https://example.org/join/abc", "--name", "me"]);
    assert_eq!(
        stdout(&o),
        "[join]\n[https://example.org/join/abc]\n[--name]\n[me]\n"
    );

    let o = run(&["help", "list"]);
    assert_eq!(stdout(&o), "[--help]\n");

    // Git-style: a verb that is not in the table runs cm-VERB.
    let o = run(&["mesh", "ls"]);
    assert_eq!(stdout(&o), "[ls]\n");
}

#[test]
fn a_closed_stdout_is_success() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(CM)
        .arg("help")
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}
