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

/// `cm` put in `dir` as an install puts it: a hard link to cargo's build (a copy across file systems).
fn cm_in(dir: &Path) -> PathBuf {
    let bin = dir.join("cm");
    if std::fs::hard_link(CM, &bin).is_err() {
        std::fs::copy(CM, &bin).unwrap();
    }
    bin
}

/// `cm` copied alone into an empty directory, run with an empty `PATH`: no `cm-*` tool can be found.
fn lone_cm(args: &[&str]) -> Output {
    let dir = TempDir::new("alone");
    // A hard link cannot be "text file busy" the way a fresh copy can while another test forks.
    let bin = cm_in(&dir.0);
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
        // Nothing is linked beside cargo's cm: the help says how to make the links.
        assert!(out.contains("cm links makes them"), "{out}");
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
fn every_tool_but_the_broker_is_in_cm_itself() {
    // cm alone, no links, nothing on PATH: its own tools still run, by verb.
    let o = lone_cm(&["topic", "--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("cm-topic - "), "{}", stdout(&o));
    let o = lone_cm(&["--list"]);
    let names: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(names.len(), 28, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("cm-") && n != "cm-broker"),
        "{names:?}"
    );
    // cm-broker is an executable of its own.
    let o = lone_cm(&["broker"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "cm: \"broker\" needs cm-broker, which is not installed\n"
    );
}

#[test]
fn links_make_each_tool_callable_by_its_name_once() {
    let dir = TempDir::new("links");
    let bin = cm_in(&dir.0);
    // The user's own script of a tool's name, and an older install's binary of another.
    std::fs::write(dir.0.join("cm-peers"), "#!/bin/sh\necho mine\n").unwrap();
    std::fs::copy(&bin, dir.0.join("cm-send")).unwrap();
    let o = Command::new(&bin).arg("links").output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("made ")).count(),
        26,
        "{out}"
    );
    assert!(
        out.contains("replaced") && out.contains("cm-send (an older claudemesh executable)"),
        "{out}"
    );
    assert!(
        out.ends_with(&format!(
            "27 of 28 tools linked in {} (27 new)\n",
            dir.0.display()
        )),
        "{out}"
    );
    assert!(
        stderr(&o).starts_with("cm: left alone, not claudemesh's: ")
            && stderr(&o).contains("cm-peers"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("cm-peers")).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
    assert_eq!(
        std::fs::read_link(dir.0.join("cm-inbox")).unwrap(),
        Path::new("cm")
    );
    let o = Command::new(&bin).arg("help").output().unwrap();
    assert!(
        !stdout(&o).contains("cm links makes them"),
        "{}",
        stdout(&o)
    );
    // Called by a link's name, cm is that tool.
    let o = Command::new(dir.0.join("cm-send"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(stdout(&o).starts_with("cm-send - "), "{}", stdout(&o));
    // Again: nothing new, and JSON says what each is.
    std::fs::remove_file(dir.0.join("cm-peers")).unwrap();
    let o = Command::new(&bin)
        .args(["links", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let states: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        states.iter().filter(|s| *s == "kept").count(),
        27,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| *s == "made").count(),
        1,
        "{states:?}"
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
    let bin = cm_in(&dir.0);
    // Stand-ins for the one tool cm is not, and for a tool of someone else's: print the arguments, exit 7.
    let script = "#!/bin/sh\nfor a in \"$@\"; do echo \"[$a]\"; done\nexit 7\n";
    for name in ["cm-broker", "cm-extra", "cm-mesh"] {
        let tool = dir.0.join(name);
        std::fs::write(&tool, script).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let empty = TempDir::new("path");
    let run = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .env("PATH", &empty.0)
            .output()
            .unwrap()
    };

    let o = run(&["--json", "broker", "--listen", "x", "--", "x y"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(stdout(&o), "[--json]\n[--listen]\n[x]\n[--]\n[x y]\n");

    let o = run(&["help", "broker"]);
    assert_eq!(stdout(&o), "[--help]\n");

    // Git-style: a verb that is not in the table runs cm-VERB.
    let o = run(&["extra", "ls"]);
    assert_eq!(stdout(&o), "[ls]\n");

    // A verb cm does itself is done by cm, whatever lies beside it; its arguments reach it unchanged.
    let o = run(&["--json", "create", "dev", "--nope"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("cm-mesh: unknown flag --nope"),
        "{}",
        stderr(&o)
    );
    let o = run(&["help", "list"]);
    assert!(stdout(&o).starts_with("cm-mesh - "), "{}", stdout(&o));
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

#[test]
fn without_links_claude_code_is_given_cm_and_the_verb() {
    let dir = TempDir::new("nolinks");
    let bin = cm_in(&dir.0);
    let home = dir.0.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let o = Command::new(&bin)
        .args(["install", "--no-skill"])
        .env("HOME", &home)
        .env("CLAUDEMESH_CONFIG_DIR", dir.0.join("cfg"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let claude: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join(".claude.json")).unwrap()).unwrap();
    let server = &claude["mcpServers"]["claudemesh"];
    assert_eq!(server["command"], bin.display().to_string(), "{server}");
    assert_eq!(server["args"], serde_json::json!(["mcp"]), "{server}");
    let settings = std::fs::read_to_string(home.join(".claude/settings.json")).unwrap();
    assert!(
        settings.contains(&format!("{} inbox --hook", bin.display())),
        "{settings}"
    );
    // What it registered runs: the MCP server answers initialize on stdin.
    let mut mcp = Command::new(&bin)
        .arg("mcp")
        .env("HOME", &home)
        .env("CLAUDEMESH_CONFIG_DIR", dir.0.join("cfg"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    let mut stdin = mcp.stdin.take().unwrap();
    writeln!(stdin, "{init}").unwrap();
    drop(stdin);
    let o = mcp.wait_with_output().unwrap();
    assert!(
        stdout(&o).contains(r#""id":1"#) && stdout(&o).contains("serverInfo"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn templates_lists_the_five_and_shows_one() {
    let o = cm(&["templates", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["type"], "template");
            v["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "dev-team",
            "research",
            "ops-incident",
            "simulation",
            "personal"
        ]
    );

    let o = cm(&["--json", "templates", "ops-incident"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["state_keys"]["incident-status"], "investigating");
    assert_eq!(v["groups"][0]["name"], "oncall");
    assert_eq!(v["suggested_roles"][0], "commander");

    let o = cm(&["templates", "dev-team"]);
    let out = stdout(&o);
    assert!(
        out.contains("group @frontend (roles: lead, member)"),
        "{out}"
    );
    assert!(out.contains("state deploy-frozen = \"false\""), "{out}");
}

#[test]
fn an_unknown_template_is_a_usage_error_naming_the_five() {
    let o = cm(&["templates", "dev-teem"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o),
        "cm: no template named \"dev-teem\"; the templates are dev-team, research, ops-incident, simulation, personal\n"
    );
}
