//! The everyday paths of people who use more than one mesh, walked as a user would with the real binaries: a
//! default mesh every tool uses, `cm use`, `cm join "$(cm invite)"`, the original's spellings.

use crate::harness::{Broker, TempDir, User, text};

/// `who` makes mesh `name` on `b`.
fn new_mesh(who: &User, b: &Broker, name: &str) {
    who.ok("cm", &["new", name, "--broker", &b.ws_url()]);
}

/// `owner`'s invite to `slug` as `$(cm invite)` captures it: stdout is a pipe, so it holds the link alone.
fn invite_link(owner: &User, slug: &str) -> String {
    let o = owner.run("cm", &["invite", "--mesh", slug]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(
        out.lines().count(),
        1,
        "stdout holds the link alone: {out:?}"
    );
    assert!(out.starts_with("ic://join/"), "{out:?}");
    assert!(
        text(&o.stderr).contains("expires 20"),
        "the rest goes to stderr: {}",
        text(&o.stderr)
    );
    // What `$(...)` gives: the output without its trailing newline.
    out.trim_end_matches('\n').to_string()
}

#[test]
fn a_second_mesh_leaves_every_tool_on_the_default_one() {
    let dir = TempDir::new("default-mesh");
    let b = Broker::start(&dir, &[]);
    let (alice, bob) = (User::new("alice"), User::new("bob"));
    new_mesh(&alice, &b, "dev");
    new_mesh(&alice, &b, "ops");

    // The first mesh made is the default; every tool uses it without --mesh.
    alice.ok("cm", &["state", "set", "where", "in-dev"]);
    assert_eq!(alice.ok("cm", &["state", "get", "where"]).trim(), "in-dev");
    alice.ok("cm", &["remember", "the dev notes"]);
    assert!(alice.ok("cm", &["members"]).contains("alice"));
    let list = alice.json("cm", &["list"]);
    let defaults: Vec<_> = list
        .iter()
        .map(|m| (m["slug"].clone(), m["default"].clone()))
        .collect();
    assert_eq!(
        defaults,
        vec![("dev".into(), true.into()), ("ops".into(), false.into())]
    );
    let human = alice.ok("cm", &["list"]);
    assert!(
        human.lines().next().unwrap().starts_with("* dev "),
        "{human}"
    );
    assert_eq!(
        alice.ok("cm", &["use"]).trim(),
        "dev (the first mesh joined)"
    );

    // `cm use` changes it for every tool; --mesh and CLAUDEMESH_MESH still pick another.
    assert_eq!(
        alice.ok("cm", &["use", "ops"]).trim(),
        "the default mesh is now ops"
    );
    assert_eq!(alice.file("config.json")["defaultMesh"], "ops");
    alice.fails("cm", &["state", "get", "where"], 5);
    alice.ok("cm", &["state", "set", "where", "in-ops"]);
    assert_eq!(
        alice
            .ok("cm", &["state", "get", "where", "--mesh", "dev"])
            .trim(),
        "in-dev"
    );
    let o = alice
        .cmd("cm")
        .args(["state", "get", "where"])
        .env("CLAUDEMESH_MESH", "dev")
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout).trim(), "in-dev", "{}", text(&o.stderr));
    let who = &alice.json("cm", &["whoami"])[0];
    assert_eq!(who["default_mesh"], "ops");
    assert!(alice.ok("cm", &["whoami"]).contains("(default)"));
    let e = alice.fails("cm", &["state", "get", "where", "--mesh", "nope"], 5);
    assert!(
        e.contains("--mesh SLUG") && e.contains("CLAUDEMESH_MESH") && e.contains("cm use"),
        "the error names the three ways: {e}"
    );

    // Bob joins dev with the link as `$(cm invite)` gives it, and with whitespace around it.
    let link = invite_link(&alice, "dev");
    bob.ok("cm", &["join", &format!("  {link}\n")]);
    assert_eq!(bob.json("cm", &["list"])[0]["default"], true);

    // Names still resolve across meshes: bob is only in dev, alice's default is ops.
    let sent = alice.ok("cm", &["send", "bob", "hello from ops-by-default"]);
    assert!(sent.contains("bob"), "{sent}");
    let inbox = bob.ok("cm", &["inbox"]);
    assert!(inbox.contains("hello from ops-by-default"), "{inbox}");

    // `*` goes to the default mesh (ops, where alice is alone), not an error about several meshes.
    let e = alice.fails("cm", &["send", "*", "anyone?"], 5);
    assert!(e.contains("no other members in mesh ops"), "{e}");
    let all = alice.ok("cm", &["send", "--mesh", "dev", "*", "all of dev"]);
    assert!(all.contains("1 member"), "{all}");

    // Renaming the default keeps it the default; leaving it makes the first mesh left the default.
    alice.ok("cm", &["rename", "ops", "infra"]);
    assert_eq!(alice.file("config.json")["defaultMesh"], "infra");
    let o = alice.run("cm", &["leave", "infra"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("the default mesh is dev"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        alice.ok("cm", &["use"]).trim(),
        "dev (the first mesh joined)"
    );
}

#[test]
fn the_original_spellings_work() {
    let dir = TempDir::new("spellings");
    let b = Broker::start(&dir, &[]);
    let alice = User::new("alice");
    new_mesh(&alice, &b, "dev");
    new_mesh(&alice, &b, "ops");

    assert!(alice.ok("cm", &["member", "list"]).contains("alice"));
    assert!(alice.ok("cm", &["members", "list"]).contains("alice"));
    alice.fails("cm", &["members", "bogus"], 3);
    let key = alice.json("cm", &["apikey", "issue", "ci"]);
    assert_eq!(key[0]["label"], "ci", "{key:?}");
    alice.ok("cm", &["notifications"]);
    alice.ok("cm", &["notifications", "--json"]);
    alice.ok("cm", &["notification", "list"]);

    // An invite for someone: the address is its label, said back; nothing is mailed.
    let o = alice.run("cm", &["invite", "carol@example.com"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("ic://join/"));
    assert!(
        text(&o.stderr).contains("for carol@example.com"),
        "{}",
        text(&o.stderr)
    );
    let j = alice.json("cm", &["invite", "carol@example.com"]);
    assert_eq!(j[0]["for"], "carol@example.com");

    // `rename NEW` and `leave` with no argument act on the default mesh (no terminal, so no question).
    alice.ok("cm", &["rename", "devs"]);
    assert_eq!(alice.json("cm", &["use"])[0]["slug"], "devs");
    alice.ok("cm", &["leave"]);
    let left: Vec<_> = alice
        .json("cm", &["list"])
        .iter()
        .map(|m| m["slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec!["ops"]);
}

#[test]
fn topic_tail_says_at_once_that_the_broker_is_down() {
    let dir = TempDir::new("tail-down");
    let b = Broker::start(&dir, &[]);
    let alice = User::new("alice");
    new_mesh(&alice, &b, "dev");
    alice.ok("cm", &["topic", "create", "general"]);
    b.kill();

    let other = alice.fails("cm", &["state", "list"], 4);
    let started = std::time::Instant::now();
    let e = alice.fails("cm", &["topic", "tail", "general"], 4);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // The same words as every other tool, not a timeout of a request never sent.
    let words = |s: &str| s.split_once(": ").map(|(_, r)| r.trim().to_string());
    assert_eq!(words(&e), words(&other), "{e}");
    assert!(!e.contains("in time"), "{e}");
}

/// bob's `cm-pipe` ends by `signal`; alice, watching through a pipe of her own, is told at once, and every view
/// of bob agrees with what `cm send` says.
fn a_closed_session_is_offline_at_once(tag: &str, signal: libc::c_int) {
    use crate::harness::Mesh;
    let dir = TempDir::new(tag);
    let b = Broker::start(&dir, &[]);
    let peers = Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (&peers[0], &peers[1]);
    let mut watcher = alice.pipe();
    let mut pipe = bob.pipe();
    watcher.wait_for(std::time::Duration::from_secs(10), |v| {
        v["type"] == "peer_joined" && v["name"] == "bob"
    });
    let live = |who: &crate::peer::Peer| -> Vec<serde_json::Value> {
        who.run("cm-peers", &["--json"])
            .ok()
            .into_iter()
            .filter(|p| p["name"] == "bob")
            .collect()
    };
    assert!(
        live(alice)
            .iter()
            .any(|p| p["status"] == "idle" && p["online"] == true),
        "{:?}",
        live(alice)
    );

    pipe.signal(signal);
    pipe.wait_exit();
    // Told at once, not when the broker's reconnect grace runs out.
    watcher.wait_for(std::time::Duration::from_secs(5), |v| {
        v["type"] == "peer_left" && v["name"] == "bob"
    });
    // The README's own filter finds nobody, and every row of bob agrees with what cm send says.
    let rows = live(alice);
    assert!(
        rows.iter()
            .all(|p| p["status"] != "idle" && p["online"] == false),
        "bob's closed session still shows as idle: {rows:?}"
    );
    let sent = alice.send("bob", "are you there?");
    assert_eq!(sent["status"], "queued", "{sent}");
}

#[test]
fn a_session_stopped_with_sigterm_is_offline_at_once_in_every_view() {
    a_closed_session_is_offline_at_once("closed-term", libc::SIGTERM);
}

#[test]
fn a_session_killed_without_a_close_is_offline_at_once_in_every_view() {
    a_closed_session_is_offline_at_once("closed-kill", libc::SIGKILL);
}

/// Runs `cm ARGS` as `who` with `$USER` unset, as on a machine where nothing sets it: (status, stdout, stderr).
fn run_without_user(who: &User, args: &[&str]) -> (Option<i32>, String, String) {
    let o = who
        .cmd("cm")
        .env_remove("USER")
        .args(args)
        .output()
        .unwrap();
    (o.status.code(), text(&o.stdout), text(&o.stderr))
}

#[test]
fn three_people_on_one_machine_get_real_and_distinct_names() {
    let dir = TempDir::new("names");
    let b = Broker::start(&dir, &[]);
    let (alice, bob, carol) = (User::new("alice"), User::new("bob"), User::new("carol"));
    let git = std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if git {
        std::fs::write(
            alice.home().join(".gitconfig"),
            "[user]\n\tname = Alice Liddell\n",
        )
        .unwrap();
    }
    let host = claudemesh::client::hostname().unwrap();

    let (code, _, err) = run_without_user(&alice, &["new", "dev", "--broker", &b.ws_url()]);
    assert_eq!(code, Some(0), "{err}");
    let alice_name = if git { "Alice Liddell" } else { host.as_str() };
    let from = if git {
        "git config user.name"
    } else {
        "the host name"
    };
    assert!(
        err.contains(&format!("your name in dev is {alice_name:?} (from {from};")),
        "new says which name it picked: {err}"
    );

    // Bob and carol have neither $USER nor git: both get the host name, and the second one a free variant.
    let link = invite_link(&alice, "dev");
    let (code, _, err) = run_without_user(&bob, &["join", &link]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("is {host:?} (from the host name;")),
        "{err}"
    );
    let link = invite_link(&alice, "dev");
    let (code, _, err) = run_without_user(&carol, &["join", &link]);
    assert_eq!(code, Some(0), "{err}");
    let carol_name = format!("{host}-2");
    assert!(
        err.contains(&format!(
            "is {carol_name:?}: {host:?} (from the host name) is another member's"
        )),
        "{err}"
    );
    let mut names: Vec<String> = alice
        .json("cm", &["members"])
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut want = vec![alice_name.to_string(), host.clone(), carol_name.clone()];
    want.sort();
    assert_eq!(names, want);

    // A name another member has is refused; a free one is taken, and cm launch uses it.
    let e = bob.fails("cm", &["profile", "name", &carol_name], 6);
    assert!(e.contains("another member of mesh dev"), "{e}");
    bob.ok("cm", &["profile", "name", "robert"]);
    let (code, out, err) = run_without_user(&bob, &["launch", "--print-command"]);
    assert_eq!(code, Some(0), "{err}");
    let launch: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        launch["env"]["CLAUDEMESH_DISPLAY_NAME"], "robert",
        "{launch}"
    );
    // The joined name is used too, before any profile edit.
    let (_, out, _) = run_without_user(&carol, &["launch", "--print-command"]);
    let launch: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        launch["env"]["CLAUDEMESH_DISPLAY_NAME"],
        carol_name.as_str()
    );
}

#[test]
fn man_pages_and_completions_reach_the_user() {
    let erin = User::new("erin");
    // The harness sets XDG_DATA_HOME, the default place, as a user's login would.
    let data = erin.dir.0.join("xdg");
    let said = erin.ok("cm", &["docs", "install"]);
    assert!(said.contains("wrote 120 files"), "{said}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (installed, committed) in [
        ("man/man1/cm-send.1", "man/cm-send.1"),
        ("man/man8/cm-broker.8", "man/cm-broker.8"),
        ("bash-completion/completions/cm", "completions/bash/cm"),
        ("zsh/site-functions/_cm-topic", "completions/zsh/_cm-topic"),
        (
            "fish/vendor_completions.d/cm.fish",
            "completions/fish/cm.fish",
        ),
    ] {
        assert_eq!(
            std::fs::read_to_string(data.join(installed)).unwrap(),
            std::fs::read_to_string(root.join(committed)).unwrap(),
            "{installed}"
        );
    }
    assert!(
        erin.ok("cm", &["docs", "man", "send"])
            .starts_with(".TH CM\\-SEND 1")
    );
    erin.fails("cm", &["docs", "man", "nosuch"], 5);

    // `cm VERB <TAB>` completes as the verb's tool does. bash-completion loads a script by the command's name;
    // a stand-in loader does the same here.
    let comps = data.join("bash-completion/completions");
    let bash = |words: &str, cword: usize| {
        let script = format!(
            "__load_completion() {{ source {0}/\"$1\"; }}\nsource {0}/cm\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\n_cm\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            comps.display()
        );
        let o = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        text(&o.stdout)
    };
    let topic = bash("cm topic ''", 2);
    assert!(topic.lines().any(|l| l == "tail"), "{topic}");
    assert_eq!(bash("cm send --pr", 2).trim(), "--priority");
    assert!(bash("cm new --b", 2).lines().any(|l| l == "--broker"));
    assert!(bash("cm up --na", 2).lines().any(|l| l == "--name"));

    // fish finds the installed scripts itself (when installed, as .ci/run does).
    let bin = crate::harness::bin("cm");
    let path = format!("{}:/usr/bin:/bin", bin.parent().unwrap().display());
    let fish = |line: &str| {
        std::process::Command::new("fish")
            .args(["-c", &format!("complete -C {line:?}")])
            .env_clear()
            .env("PATH", &path)
            .env("HOME", erin.home())
            .env("XDG_DATA_HOME", &data)
            .output()
            .ok()
            .map(|o| text(&o.stdout))
    };
    if let Some(out) = fish("cm topic t") {
        assert!(out.lines().any(|l| l.starts_with("tail\t")), "{out}");
        let out = fish("cm send --pr").unwrap();
        assert!(out.starts_with("--priority\t"), "{out}");
    }
}

#[test]
fn login_to_a_broker_nobody_listens_on_warns() {
    let fay = User::new("fay");
    let o = fay.run("cm", &["login", "http://127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    assert!(
        err.contains("no broker answers at ws://127.0.0.1:1/ws yet"),
        "{err}"
    );
    assert_eq!(fay.file("brokers.json")["default"], "ws://127.0.0.1:1/ws");
}

/// `man` formats every page without a warning at 80 columns (where `man` is installed).
#[test]
fn the_man_pages_format_without_warnings() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    for e in std::fs::read_dir(&root).unwrap() {
        let path = e.unwrap().path();
        let Ok(o) = std::process::Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .env("MANPAGER", "cat")
            .output()
        else {
            return;
        };
        assert!(
            o.stderr.is_empty(),
            "{}: {}",
            path.display(),
            text(&o.stderr)
        );
    }
}
