//! cm-install, cm-uninstall and cm-launch against a temporary HOME that looks like a real Claude Code user's.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use serde_json::{Value, json};

/// A temporary HOME and config directory, removed on drop.
struct Home {
    root: PathBuf,
}

impl Home {
    fn new(tag: &str) -> Home {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root =
            std::env::temp_dir().join(format!("cm-it-claude-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(root.join("home")).unwrap();
        fs::create_dir_all(root.join("cfg")).unwrap();
        fs::create_dir_all(root.join("bin")).unwrap();
        Home { root }
    }
    fn home(&self) -> PathBuf {
        self.root.join("home")
    }
    fn cfg(&self) -> PathBuf {
        self.root.join("cfg")
    }
    fn claude_json(&self) -> PathBuf {
        self.home().join(".claude.json")
    }
    fn settings(&self) -> PathBuf {
        self.home().join(".claude/settings.json")
    }
    fn skill(&self) -> PathBuf {
        self.home().join(".claude/skills/claudemesh/SKILL.md")
    }
    fn record(&self) -> PathBuf {
        self.cfg().join("installed.json")
    }
    fn backups(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.home().join(".claude/backups")) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn cmd(&self, bin: &str) -> Command {
        let mut c = Command::new(bin);
        c.env_clear()
            .env("HOME", self.home())
            .env("CLAUDEMESH_CONFIG_DIR", self.cfg())
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.root.join("bin").display()),
            );
        c
    }

    fn run(&self, bin: &str, args: &[&str]) -> Output {
        self.cmd(bin).args(args).output().unwrap()
    }

    /// Writes the files of a user who has used Claude Code for a while.
    fn seed(&self) -> (String, String) {
        let claude = r#"{
  "numStartups": 41,
  "zeta": {"b": 2, "a": 1},
  "projects": {
    "/home/u/work": {"allowedTools": [], "mcpServers": {"local": {"command": "x"}}, "hasTrustDialogAccepted": true}
  },
  "oauthAccount": {"accountUuid": "0b7e5a4c-0000-4000-8000-000000000001", "emailAddress": "u@example.com"},
  "mcpServers": {"github": {"type": "http", "url": "https://example.com/mcp"}, "fs": {"command": "npx", "args": ["fs"]}},
  "autoUpdates": false,
  "alpha": [3, 1, 2],
  "tipsHistory": {"z": 1, "m": 2, "a": 3}
}
"#;
        let settings = r#"{
  "permissions": {"allow": ["Bash(git status)"], "deny": []},
  "model": "opus",
  "hooks": {
    "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
    "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit.sh"}]}]
  },
  "env": {"B": "2", "A": "1"}
}
"#;
        fs::write(self.claude_json(), claude).unwrap();
        fs::create_dir_all(self.settings().parent().unwrap()).unwrap();
        fs::write(self.settings(), settings).unwrap();
        for f in [self.claude_json(), self.settings()] {
            fs::set_permissions(f, fs::Permissions::from_mode(0o644)).unwrap();
        }
        (claude.to_string(), settings.to_string())
    }

    /// Every file under the root: path → (bytes, mtime).
    fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, SystemTime)>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    walk(&p, out);
                } else {
                    out.insert(p.clone(), (fs::read(&p).unwrap(), m.modified().unwrap()));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.root, &mut out);
        out
    }

    /// Every file and folder under HOME and the Claude folder, with its mode and (for files) bytes; the config
    /// directory is left out, as the install record lives there.
    fn tree(&self) -> BTreeMap<PathBuf, (u32, Option<Vec<u8>>)> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Option<Vec<u8>>)>) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            for e in rd {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                let mode = m.permissions().mode() & 0o7777;
                if m.is_dir() {
                    out.insert(p.clone(), (mode, None));
                    walk(&p, out);
                } else {
                    out.insert(p.clone(), (mode, Some(fs::read(&p).unwrap())));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.home(), &mut out);
        walk(&self.root.join("ccd"), &mut out);
        out
    }

    /// A mesh `dev` in config.json.
    fn join_mesh(&self) {
        self.join_mesh_at("ws://127.0.0.1:9/ws");
    }

    /// A mesh `dev` in config.json, on the broker at `url`.
    fn join_mesh_at(&self, url: &str) {
        let kp = claudemesh::crypto::Keypair::generate();
        let config = json!({"version": 1, "meshes": [{
            "meshId": "mesh-1", "memberId": "member-1", "slug": "dev", "name": "Dev",
            "pubkey": kp.public_hex(), "secretKey": kp.secret_hex(),
            "brokerUrl": url, "joinedAt": "2026-01-01T00:00:00Z"
        }]});
        fs::write(self.cfg().join("config.json"), config.to_string()).unwrap();
    }

    /// A stand-in `claude` on PATH that records its arguments and environment in `<root>/claude.argv` and
    /// `<root>/claude.env`.
    fn fake_claude(&self) -> PathBuf {
        let path = self.root.join("bin/claude");
        let script = format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{0}/claude.argv'\nenv > '{0}/claude.env'\n",
            self.root.display()
        );
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn claude_argv(&self) -> Vec<String> {
        fs::read_to_string(self.root.join("claude.argv"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn claude_env(&self) -> BTreeMap<String, String> {
        fs::read_to_string(self.root.join("claude.env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A tool of this build, as a path string.
fn tool(name: &str) -> String {
    crate::harness::bin(name).display().to_string()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}, stderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn parse(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `v` without the groups whose command is one of ours (contains `cm-`).
fn without_our_hooks(mut v: Value) -> Value {
    let events = v["hooks"].as_object_mut().unwrap();
    for groups in events.values_mut() {
        groups
            .as_array_mut()
            .unwrap()
            .retain(|g| !g.to_string().contains("--hook"));
    }
    events.retain(|_, g| !g.as_array().unwrap().is_empty());
    v
}

#[test]
fn install_keeps_every_other_key_in_order() {
    let h = Home::new("keep");
    let (claude, settings) = h.seed();
    let out = ok(&h.run(&tool("cm-install"), &[]));
    assert!(out.contains("added mcpServers.claudemesh"), "{out}");
    assert!(out.contains("added hook UserPromptSubmit: "), "{out}");
    assert!(out.contains("added hook Stop: "), "{out}");
    assert!(
        out.contains("wrote ~/.claude/skills/claudemesh/SKILL.md"),
        "{out}"
    );

    // ~/.claude.json: ours added, everything else identical, in the same order.
    let mut after = parse(&h.claude_json());
    let ours = after["mcpServers"]
        .as_object_mut()
        .unwrap()
        .shift_remove("claudemesh")
        .unwrap();
    assert_eq!(ours["type"], "stdio", "{ours}");
    assert_eq!(ours["command"], json!(tool("cm-mcp")), "{ours}");
    assert_eq!(ours["args"], json!([]));
    let before: Value = serde_json::from_str(&claude).unwrap();
    assert_eq!(after.to_string(), before.to_string());
    assert_eq!(mode(&h.claude_json()), 0o644, "the file's mode is kept");
    assert!(
        h.backups().is_empty(),
        "the original is kept in the install record"
    );

    // settings.json: our hooks added beside the others.
    let after = parse(&h.settings());
    let prompt = after["hooks"]["UserPromptSubmit"].to_string();
    assert!(prompt.contains("cm-inbox --hook\""), "{prompt}");
    assert!(
        prompt.contains("cm-profile --hook status working\""),
        "{prompt}"
    );
    let stop = after["hooks"]["Stop"].as_array().unwrap();
    assert_eq!(stop[0]["hooks"][0]["command"], "notify-send done");
    assert!(
        stop[1]["hooks"][0]["command"]
            .as_str()
            .unwrap()
            .ends_with("cm-profile --hook status idle")
    );
    let before: Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(without_our_hooks(after).to_string(), before.to_string());
    assert_eq!(mode(&h.settings()), 0o644);

    assert_eq!(
        fs::read_to_string(h.skill()).unwrap(),
        claudemesh::install::SKILL
    );
    let record = parse(&h.record());
    assert_eq!(record["hooks"].as_array().unwrap().len(), 3);
    assert_eq!(record["mcp_server"], ours);
    assert_eq!(mode(&h.record()), 0o600);
}

#[test]
fn install_twice_changes_nothing() {
    let h = Home::new("twice");
    h.seed();
    ok(&h.run(&tool("cm-install"), &[]));
    let before = h.snapshot();
    let out = ok(&h.run(&tool("cm-install"), &[]));
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(out.lines().all(|l| l.starts_with("unchanged ")), "{out}");
    let out = ok(&h.run(&tool("cm-install"), &["--json"]));
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["type"], "install_item");
        assert_eq!(v["action"], "unchanged", "{line}");
    }
    assert_eq!(h.snapshot(), before, "a second install touched a file");
}

#[test]
fn dry_run_writes_nothing() {
    let h = Home::new("dry");
    h.seed();
    let before = h.snapshot();
    let out = ok(&h.run(&tool("cm-install"), &["--dry-run"]));
    assert!(
        out.contains("would add mcpServers.claudemesh in ~/.claude.json\n"),
        "{out}"
    );
    assert!(out.contains("would add hook UserPromptSubmit: "), "{out}");
    assert!(out.contains("would add hook Stop: "), "{out}");
    assert!(
        out.contains("would write ~/.claude/skills/claudemesh/SKILL.md\n"),
        "{out}"
    );
    let out = ok(&h.run(&tool("cm-install"), &["--dry-run", "--json"]));
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["action"], "would_add");
    assert_eq!(first["item"], "mcpServers.claudemesh");
    assert_eq!(h.snapshot(), before);

    ok(&h.run(&tool("cm-install"), &[]));
    let before = h.snapshot();
    let out = ok(&h.run(&tool("cm-uninstall"), &["--dry-run"]));
    assert!(out.contains("would remove mcpServers.claudemesh"), "{out}");
    assert_eq!(h.snapshot(), before);
}

#[test]
fn no_hooks_and_no_skill() {
    let h = Home::new("nohooks");
    let (_, settings) = h.seed();
    let out = ok(&h.run(&tool("cm-install"), &["--no-hooks", "--no-skill"]));
    assert_eq!(
        out.lines().filter(|l| !l.starts_with("Restart")).count(),
        1,
        "{out}"
    );
    assert_eq!(fs::read_to_string(h.settings()).unwrap(), settings);
    assert!(!h.skill().exists());
}

#[test]
fn uninstall_restores_the_original() {
    let h = Home::new("restore");
    let (claude, settings) = h.seed();
    let before = h.tree();
    ok(&h.run(&tool("cm-install"), &[]));
    let out = ok(&h.run(&tool("cm-uninstall"), &[]));
    assert!(out.contains("removed mcpServers.claudemesh"), "{out}");
    assert!(out.contains("removed hook Stop: "), "{out}");
    assert_eq!(fs::read_to_string(h.claude_json()).unwrap(), claude);
    assert_eq!(fs::read_to_string(h.settings()).unwrap(), settings);
    assert!(!h.skill().exists());
    assert!(!h.skill().parent().unwrap().exists());
    assert!(!h.record().exists());
    assert_eq!(h.tree(), before, "files, folders and modes as they were");

    let out = ok(&h.run(&tool("cm-uninstall"), &[]));
    assert!(out.starts_with("Nothing to remove"), "{out}");
}

#[test]
fn uninstall_leaves_what_the_user_changed() {
    let h = Home::new("changed");
    h.seed();
    ok(&h.run(&tool("cm-install"), &[]));
    let mut doc = parse(&h.claude_json());
    doc["mcpServers"]["claudemesh"]["env"] = json!({"X": "1"});
    fs::write(h.claude_json(), doc.to_string()).unwrap();
    fs::write(h.skill(), "my own notes\n").unwrap();
    let out = ok(&h.run(&tool("cm-uninstall"), &[]));
    assert!(!out.contains("mcpServers"), "{out}");
    assert!(out.contains("removed hook"), "{out}");
    assert_eq!(
        parse(&h.claude_json())["mcpServers"]["claudemesh"]["env"]["X"],
        "1"
    );
    assert_eq!(fs::read_to_string(h.skill()).unwrap(), "my own notes\n");
}

#[test]
fn fresh_home_round_trip() {
    let h = Home::new("fresh");
    let before = h.tree();
    ok(&h.run(&tool("cm-install"), &[]));
    assert_eq!(mode(&h.claude_json()), 0o600);
    assert!(h.backups().is_empty(), "nothing to back up");
    let settings = parse(&h.settings());
    assert_eq!(
        settings["hooks"]["UserPromptSubmit"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    ok(&h.run(&tool("cm-uninstall"), &[]));
    // Files, keys and folders that install created are gone again.
    assert!(!h.claude_json().exists());
    assert!(!h.settings().exists());
    assert!(!h.skill().exists());
    assert_eq!(h.tree(), before);
}

#[test]
fn not_installed_says_so() {
    let h = Home::new("none");
    h.seed();
    let before = h.snapshot();
    let out = ok(&h.run(&tool("cm-uninstall"), &[]));
    assert_eq!(out, "Nothing to remove: claudemesh is not installed.\n");
    assert_eq!(h.snapshot(), before);
}

#[test]
fn invalid_json_writes_nothing() {
    let h = Home::new("invalid");
    h.seed();
    fs::write(h.settings(), "{\"hooks\": {").unwrap();
    let before = h.snapshot();
    let o = h.run(&tool("cm-install"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("cm-install: ~/.claude/settings.json is not valid JSON"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(h.snapshot(), before);

    let h = Home::new("invalid2");
    fs::write(h.claude_json(), "[1, 2]").unwrap();
    let o = h.run(&tool("cm-install"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("~/.claude.json is not a JSON object"));
    assert!(!h.settings().exists());
}

#[test]
fn launch_runs_claude_as_a_mesh_session() {
    let h = Home::new("launch");
    h.join_mesh();
    h.fake_claude();
    ok(&h.run(
        &tool("cm-launch"),
        &["--name", "alice", "--", "--model", "opus", "hi there"],
    ));
    let argv = h.claude_argv();
    assert_eq!(
        argv[..3],
        [
            "--dangerously-load-development-channels",
            "server:claudemesh",
            "--session-id"
        ]
    );
    let id = &argv[3];
    assert!(claudemesh::launch::is_uuid(id), "{id}");
    assert_eq!(argv[4..], ["--model", "opus", "hi there"]);
    let env = h.claude_env();
    assert_eq!(env["CLAUDEMESH_SESSION_ID"], *id);
    assert_eq!(env["CLAUDEMESH_MESH"], "dev");
    assert_eq!(env["CLAUDEMESH_DISPLAY_NAME"], "alice");
    assert_eq!(Path::new(&env["CLAUDEMESH_CONFIG_DIR"]), h.cfg());
    assert_eq!(env["HOME"], h.home().display().to_string());
    assert!(h.cfg().join(format!("sessions/dev/{id}.json")).is_file());

    // A second launch is a new session.
    ok(&h.run(&tool("cm-launch"), &[]));
    assert_ne!(h.claude_argv()[3], *id);
}

#[test]
fn launch_resume_keeps_the_session_id() {
    let h = Home::new("resume");
    h.join_mesh();
    h.fake_claude();
    let id = "0b7e5a4c-7d1e-4c4e-9a51-3f0c2d9e8b17";
    let o = h
        .cmd(&tool("cm-launch"))
        .args(["--resume", id])
        .env("USER", "bob")
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(
        h.claude_argv(),
        [
            "--dangerously-load-development-channels",
            "server:claudemesh",
            "--resume",
            id
        ]
    );
    let env = h.claude_env();
    assert_eq!(env["CLAUDEMESH_SESSION_ID"], id);
    assert_eq!(env["CLAUDEMESH_DISPLAY_NAME"], "bob");
    assert!(h.cfg().join(format!("sessions/dev/{id}.json")).is_file());

    ok(&h.run(&tool("cm-launch"), &["--continue"]));
    let argv = h.claude_argv();
    assert_eq!(argv[2..], ["--continue"]);
    assert!(claudemesh::launch::is_uuid(
        &h.claude_env()["CLAUDEMESH_SESSION_ID"]
    ));

    let o = h.run(&tool("cm-launch"), &["--resume", "../../etc"]);
    assert_eq!(o.status.code(), Some(3));
    let o = h.run(&tool("cm-launch"), &["--resume", id, "--continue"]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn launch_in_print_mode_says_it_gets_no_channel() {
    let h = Home::new("printmode");
    h.join_mesh();
    h.fake_claude();
    let o = h.run(&tool("cm-launch"), &["--", "-p", "summarize"]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cm-launch: claude -p does not read --dangerously-load-development-channels"),
        "{err}"
    );
    let o = h.run(&tool("cm-launch"), &["--", "--model", "opus"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("claude -p"));
}

#[test]
fn launch_print_command() {
    let h = Home::new("print");
    h.join_mesh();
    let claude = h.fake_claude();
    let o = h
        .cmd(&tool("cm-launch"))
        .args(["--print-command", "--name", "carol", "--", "-p", "x"])
        .output()
        .unwrap();
    let out = ok(&o);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["type"], "launch");
    assert_eq!(v["argv"][0], claude.display().to_string());
    assert_eq!(v["argv"][5], "-p");
    assert_eq!(v["env"]["CLAUDEMESH_DISPLAY_NAME"], "carol");
    let id = v["env"]["CLAUDEMESH_SESSION_ID"].as_str().unwrap();
    assert_eq!(v["argv"][4], id);
    assert!(!h.root.join("claude.argv").exists(), "claude ran");
}

#[test]
fn launch_finds_claude_bin() {
    let h = Home::new("bin");
    h.join_mesh();
    let claude = h.fake_claude();
    let moved = h.root.join("my-claude");
    fs::rename(&claude, &moved).unwrap();
    let o = h.run(&tool("cm-launch"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "cm-launch: claude not found on PATH (set CLAUDE_BIN)\n"
    );
    ok(&h
        .cmd(&tool("cm-launch"))
        .env("CLAUDE_BIN", &moved)
        .output()
        .unwrap());
    assert_eq!(h.claude_argv()[1], "server:claudemesh");
}

#[test]
fn bare_cm_launches_when_a_mesh_is_joined() {
    let h = Home::new("bare");
    h.fake_claude();
    let help = ok(&h.run(&tool("cm"), &[]));
    assert!(help.contains("Verbs:"), "{help}");
    assert!(
        !h.root.join("claude.argv").exists(),
        "claude ran without a mesh"
    );

    h.join_mesh();
    ok(&h.run(&tool("cm"), &["--mesh", "dev"]));
    let argv = h.claude_argv();
    assert_eq!(
        argv[..3],
        [
            "--dangerously-load-development-channels",
            "server:claudemesh",
            "--session-id"
        ]
    );
    let env = h.claude_env();
    assert_eq!(env["CLAUDEMESH_MESH"], "dev");
    assert_eq!(env["CLAUDEMESH_SESSION_ID"], argv[3]);

    // `cm --json` still lists the verbs.
    fs::remove_file(h.root.join("claude.argv")).unwrap();
    let lines = ok(&h.run(&tool("cm"), &["--json"]));
    assert!(lines.starts_with("{\"type\":\"verb\""), "{lines}");
    assert!(!h.root.join("claude.argv").exists());
}

#[test]
fn launch_without_a_mesh() {
    let h = Home::new("nomesh");
    h.fake_claude();
    let o = h.run(&tool("cm-launch"), &[]);
    assert_eq!(o.status.code(), Some(5));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("cm-launch: no meshes joined"), "{err}");
    assert!(!h.root.join("claude.argv").exists());
}

#[test]
fn symlinked_files_stay_links() {
    let h = Home::new("link");
    let (claude, _) = h.seed();
    let real = h.root.join("dotfiles-claude.json");
    fs::rename(h.claude_json(), &real).unwrap();
    std::os::unix::fs::symlink(&real, h.claude_json()).unwrap();
    ok(&h.run(&tool("cm-install"), &[]));
    assert!(fs::symlink_metadata(h.claude_json()).unwrap().is_symlink());
    assert!(parse(&real)["mcpServers"]["claudemesh"].is_object());
    ok(&h.run(&tool("cm-uninstall"), &[]));
    assert!(fs::symlink_metadata(h.claude_json()).unwrap().is_symlink());
    assert_eq!(fs::read_to_string(&real).unwrap(), claude);
}

/// What a user of the TypeScript claudemesh who tried this one has: Claude Code's own `.claude.json` (no final
/// newline, a number JSON cannot hold in a double, an escaped U+2028, compact objects), an older
/// `mcpServers.claudemesh`, a prompt hook of their own running our command, their own skill file.
fn seed_own_entries(h: &Home, claude_dir: &Path, claude_json: &Path) -> (String, String, String) {
    let inbox = format!("{} --hook", tool("cm-inbox"));
    let claude = "{\n  \"numStartups\": 41,\n  \"big\": 12345678901234567890123,\n  \"float\": 1.50,\n  \"sep\": \"a\\u2028b\\/c\",\n  \"compact\": {\"b\":2,\"a\":[1,2]},\n  \"mcpServers\": {\n    \"claudemesh\": {\n      \"command\": \"claudemesh\",\n      \"args\": [\n        \"mcp\"\n      ]\n    }\n  },\n  \"projects\": {}\n}"
        .to_string();
    let settings = format!(
        "{{\n    \"hooks\": {{\n        \"UserPromptSubmit\": [\n            {{\"hooks\": [{{\"type\": \"command\", \"command\": \"{inbox}\"}}]}}\n        ]\n    }}\n}}\n"
    );
    let skill = "---\nname: claudemesh\ndescription: my own notes\n---\nmine\n".to_string();
    fs::create_dir_all(claude_dir.join("skills/claudemesh")).unwrap();
    fs::write(claude_json, &claude).unwrap();
    fs::write(claude_dir.join("settings.json"), &settings).unwrap();
    fs::write(claude_dir.join("skills/claudemesh/SKILL.md"), &skill).unwrap();
    fs::set_permissions(claude_json, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(
        claude_dir.join("settings.json"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let _ = h;
    (claude, settings, skill)
}

#[test]
fn uninstall_gives_back_the_users_own_entries_byte_for_byte() {
    let h = Home::new("own");
    let dot = h.home().join(".claude");
    let (claude, settings, skill) = seed_own_entries(&h, &dot, &h.claude_json());
    let before = h.tree();

    let out = ok(&h.run(&tool("cm-install"), &[]));
    assert!(out.contains("replaced mcpServers.claudemesh"), "{out}");
    assert!(out.contains("unchanged hook UserPromptSubmit: "), "{out}");
    // Only our entry changed in .claude.json: everything around it keeps its bytes.
    let text = fs::read_to_string(h.claude_json()).unwrap();
    let ours = parse(&h.claude_json())["mcpServers"]["claudemesh"].clone();
    assert_eq!(ours["type"], "stdio");
    let (head, tail) = claude.split_once("    \"claudemesh\": {").unwrap();
    let tail = &tail[tail.find("\n    }").unwrap() + 6..];
    assert!(text.starts_with(head) && text.ends_with(tail), "{text}");
    assert_eq!(mode(&h.claude_json()), 0o600);
    assert_eq!(mode(&h.settings()), 0o644);
    // The user's hook is not doubled.
    let prompt = parse(&h.settings())["hooks"]["UserPromptSubmit"].to_string();
    assert_eq!(prompt.matches("cm-inbox --hook").count(), 1, "{prompt}");

    let out = ok(&h.run(&tool("cm-uninstall"), &[]));
    assert!(
        out.contains("restored ~/.claude/skills/claudemesh/SKILL.md"),
        "{out}"
    );
    assert_eq!(fs::read_to_string(h.claude_json()).unwrap(), claude);
    assert_eq!(fs::read_to_string(h.settings()).unwrap(), settings);
    assert_eq!(fs::read_to_string(h.skill()).unwrap(), skill);
    assert_eq!(h.tree(), before, "files, folders and modes as they were");
}

#[test]
fn uninstall_after_claude_code_rewrote_the_file_keeps_its_changes() {
    let h = Home::new("rewrote");
    let dot = h.home().join(".claude");
    let (claude, _, _) = seed_own_entries(&h, &dot, &h.claude_json());
    ok(&h.run(&tool("cm-install"), &[]));
    // Claude Code counts a start, as it does on every start.
    let text = fs::read_to_string(h.claude_json()).unwrap();
    fs::write(
        h.claude_json(),
        text.replace("\"numStartups\": 41", "\"numStartups\": 42"),
    )
    .unwrap();
    ok(&h.run(&tool("cm-uninstall"), &[]));
    assert_eq!(
        fs::read_to_string(h.claude_json()).unwrap(),
        claude.replace("\"numStartups\": 41", "\"numStartups\": 42"),
        "our entry out, the user's back, Claude Code's change kept"
    );
    assert_eq!(mode(&h.claude_json()), 0o600);
}

#[test]
fn claude_config_dir_is_where_everything_goes() {
    let h = Home::new("ccd");
    let ccd = h.root.join("ccd");
    fs::create_dir_all(&ccd).unwrap();
    let (claude, settings, skill) = seed_own_entries(&h, &ccd, &ccd.join(".claude.json"));
    let before = h.tree();
    let run = |bin: &str, args: &[&str]| {
        h.cmd(&tool(bin))
            .args(args)
            .env("CLAUDE_CONFIG_DIR", &ccd)
            .output()
            .unwrap()
    };
    let out = ok(&run("cm-install", &[]));
    assert!(
        out.contains(&format!(
            "mcpServers.claudemesh in {}",
            ccd.join(".claude.json").display()
        )),
        "{out}"
    );
    assert!(!h.home().join(".claude.json").exists());
    assert!(!h.home().join(".claude/settings.json").exists());
    assert_eq!(
        parse(&ccd.join(".claude.json"))["mcpServers"]["claudemesh"]["type"],
        "stdio"
    );
    assert_eq!(
        fs::read_to_string(ccd.join("skills/claudemesh/SKILL.md")).unwrap(),
        claudemesh::install::SKILL
    );

    // doctor and cm launch look there too.
    let o = run("cm-doctor", &["--json"]);
    let doctor = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = doctor
        .lines()
        .find(|l| l.contains("Claude Code MCP"))
        .unwrap_or_else(|| panic!("{doctor}"));
    assert!(
        line.contains("registered in") && line.contains("ccd"),
        "{line}"
    );
    h.join_mesh();
    h.fake_claude();
    let o = run("cm-launch", &[]);
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = h.run(&tool("cm-launch"), &[]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("run cm-install"),
        "without CLAUDE_CONFIG_DIR it is not registered"
    );

    ok(&run("cm-uninstall", &[]));
    assert_eq!(
        fs::read_to_string(ccd.join(".claude.json")).unwrap(),
        claude
    );
    assert_eq!(
        fs::read_to_string(ccd.join("settings.json")).unwrap(),
        settings
    );
    assert_eq!(
        fs::read_to_string(ccd.join("skills/claudemesh/SKILL.md")).unwrap(),
        skill
    );
    let mut after = h.tree();
    after.retain(|p, _| !p.starts_with(h.home().join(".claude")));
    let mut want = before;
    want.retain(|p, _| !p.starts_with(h.home().join(".claude")));
    assert_eq!(after, want);
}

#[test]
fn the_prompt_hook_gives_up_within_a_second_when_the_broker_hangs() {
    // A broker that accepts the connection and never answers the handshake.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let h = Home::new("hang");
    h.join_mesh_at(&format!("ws://{addr}/ws"));
    let input = r#"{"session_id":"s","hook_event_name":"UserPromptSubmit","prompt":"hi"}"#;
    let started = std::time::Instant::now();
    let mut child = h
        .cmd(&tool("cm-inbox"))
        .arg("--hook")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Claude Code writes the input and keeps the pipe open while it waits.
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    let took = started.elapsed();
    drop(stdin);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        took < std::time::Duration::from_millis(1300),
        "the hook took {took:?}"
    );
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no answer from the broker within"), "{err}");
}
