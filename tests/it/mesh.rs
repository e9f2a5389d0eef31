//! `cm-mesh` and `cm-doctor` against a real broker, each person in a config directory of their own: create,
//! invite, join (two and three members), members and who is online, rename, leave, and the checks.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use claudemesh::client::{Conn, ConnOpts};
use serde_json::Value;

use crate::harness::{Broker, TempDir, User, lines};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// `alice` makes mesh `dev` on `b` and returns her `new --json` line.
fn new_mesh(alice: &User, b: &Broker, name: &str) -> Value {
    let out = alice.json("cm-mesh", &["new", name, "--broker", &b.ws_url()]);
    assert_eq!(out.len(), 1, "{out:?}");
    out[0].clone()
}

/// An invite link from `owner` to `slug` with extra flags.
fn invite(owner: &User, slug: &str, flags: &[&str]) -> Value {
    let mut args = vec!["invite", "--mesh", slug];
    args.extend(flags);
    let out = owner.json("cm-mesh", &args);
    assert_eq!(out.len(), 1, "{out:?}");
    out[0].clone()
}

/// `members --json` as `who` sees it: (name, role, online, you) sorted by name.
fn members(who: &User, slug: &str) -> Vec<(String, String, bool, bool)> {
    let mut m: Vec<_> = who
        .json("cm-mesh", &["members", "--mesh", slug])
        .iter()
        .map(|v| {
            assert_eq!(v["type"], "member");
            assert_eq!(v["pubkey"].as_str().unwrap().len(), 64);
            assert!(v["joined_at"].as_str().unwrap().ends_with('Z'));
            (
                v["name"].as_str().unwrap().to_string(),
                v["role"].as_str().unwrap().to_string(),
                v["online"].as_bool().unwrap(),
                v["you"].as_bool().unwrap(),
            )
        })
        .collect();
    m.sort();
    m
}

fn row(name: &str, role: &str, online: bool, you: bool) -> (String, String, bool, bool) {
    (name.into(), role.into(), online, you)
}

#[test]
fn new_invite_join_and_members_with_two_people() {
    let dir = TempDir::new("mesh-two");
    let b = Broker::start(&dir, &[]);
    let (alice, bob) = (User::new("alice"), User::new("bob"));

    let o = alice.run(
        "cm-mesh",
        &["new", "dev", "--broker", &b.ws_url(), "--json"],
    );
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("cm-mesh: made your identity ("), "{err}");
    let made = &lines(&String::from_utf8_lossy(&o.stdout))[0];
    assert_eq!(made["type"], "mesh");
    assert_eq!(made["slug"], "dev");
    assert_eq!(made["name"], "dev");
    assert_eq!(made["broker_url"], b.ws_url().as_str());
    let mesh_id = made["mesh_id"].as_str().unwrap().to_string();

    // The identity is the member key; the owner key is another, kept in owners.json; the root key is 32 bytes.
    let id = alice.file("identity.json");
    let entry = alice.mesh("dev");
    assert_eq!(entry.pubkey, id["pubkey"].as_str().unwrap());
    assert_eq!(entry.member_id, made["member_id"].as_str().unwrap());
    assert_eq!(entry.invite_version, Some(1));
    let root = entry.root_key.clone().unwrap();
    assert_eq!(
        claudemesh::crypto::b64::decode_url(&root).unwrap().len(),
        32
    );
    let owners = alice.file("owners.json");
    let owner_pk = owners["meshes"][&mesh_id]["pubkey"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(owner_pk, entry.pubkey);
    for f in ["config.json", "identity.json", "owners.json"] {
        assert_eq!(mode(&alice.config_dir().join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&alice.config_dir()), 0o700);
    let list = alice.json("cm-mesh", &["list"]);
    assert_eq!(list.len(), 1);
    assert_eq!(
        (&list[0]["slug"], &list[0]["owner"]),
        (&"dev".into(), &true.into())
    );

    let inv = invite(&alice, "dev", &[]);
    assert_eq!(inv["type"], "invite");
    assert_eq!(inv["role"], "member");
    assert_eq!(inv["uses"], 1);
    let url = inv["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("ic://join/{}", inv["token"].as_str().unwrap()));
    let expires = claudemesh::time::parse_rfc3339(inv["expires_at"].as_str().unwrap()).unwrap();
    let week = 7 * 86_400_000;
    assert!(
        (expires - claudemesh::time::now_ms() - week).abs() < 5_000,
        "{inv}"
    );
    // The human form off a terminal: the link alone on stdout, when it expires on stderr.
    let o = alice.run("cm-mesh", &["invite", "--expires", "1h"]);
    let human = String::from_utf8_lossy(&o.stdout);
    let human: Vec<&str> = human.lines().collect();
    assert!(
        human.len() == 1 && human[0].starts_with("ic://join/"),
        "{human:?}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("cm-mesh: expires 20"));

    let joined = bob.json("cm-mesh", &["join", &url, "--name", "bobby"]);
    assert_eq!(joined[0]["type"], "joined");
    assert_eq!(joined[0]["slug"], "dev");
    assert_eq!(joined[0]["mesh_id"], mesh_id.as_str());
    assert_eq!(joined[0]["already_member"], false);
    let be = bob.mesh("dev");
    assert_eq!(
        be.root_key.as_deref(),
        Some(root.as_str()),
        "the invite carries the root key"
    );
    assert_eq!(be.broker_url, b.ws_url());
    assert_eq!(
        be.pubkey,
        bob.file("identity.json")["pubkey"].as_str().unwrap()
    );
    assert!(!bob.config_dir().join("owners.json").exists());
    assert_eq!(bob.json("cm-mesh", &["list"])[0]["owner"], false);

    // Joining again is not an error; the used-up invite is not spent again.
    let again = bob.json("cm-mesh", &["join", &url]);
    assert_eq!(again[0]["already_member"], true);
    assert_eq!(again[0]["member_id"], joined[0]["member_id"]);
    assert!(
        bob.ok("cm-mesh", &["join", &url])
            .starts_with("already in mesh dev")
    );

    // Only the owner's machine can invite.
    let e = bob.fails("cm-mesh", &["invite"], 7);
    assert_eq!(
        e.trim(),
        "cm-mesh: only the mesh owner can invite (this machine has no owner key for \"dev\")"
    );

    // Alice sees herself online (her own query is a connection) and bob offline, until bob connects.
    assert_eq!(
        members(&alice, "dev"),
        vec![
            row("alice", "admin", true, true),
            row("bobby", "member", false, false)
        ]
    );
    let conn = Conn::open(&bob.mesh("dev"), &ConnOpts::default()).unwrap();
    assert_eq!(
        members(&alice, "dev"),
        vec![
            row("alice", "admin", true, true),
            row("bobby", "member", true, false)
        ]
    );
    let human = alice.ok("cm-mesh", &["members"]);
    assert!(
        human.contains("● alice  admin   ") && human.contains("online (you)"),
        "{human}"
    );
    assert!(human.contains("● bobby  member  "), "{human}");
    conn.close();
    // Bob's connection is gone once it closed, and so is each query's own.
    let mut offline = false;
    for _ in 0..20 {
        if members(&alice, "dev").contains(&row("bobby", "member", false, false)) {
            offline = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(offline, "bob is offline once his connection closed");
    assert!(members(&bob, "dev").contains(&row("alice", "admin", false, false)));
    let human = alice.ok("cm-mesh", &["members"]);
    assert!(human.contains("○ bobby  member  "), "{human}");
    assert!(human.contains("offline"), "{human}");
}

#[test]
fn three_members_share_one_invite_and_a_fourth_is_refused() {
    let dir = TempDir::new("mesh-three");
    let b = Broker::start(&dir, &[]);
    let people = ["alice", "bob", "carol", "dave"].map(User::new);
    let [alice, bob, carol, dave] = &people;
    new_mesh(alice, &b, "team");
    let inv = invite(
        alice,
        "team",
        &["--uses", "2", "--role", "admin", "--expires", "2h"],
    );
    assert_eq!((&inv["uses"], &inv["role"]), (&2.into(), &"admin".into()));
    let url = inv["url"].as_str().unwrap();
    // The bare token works as well as the link.
    bob.json("cm-mesh", &["join", url]);
    carol.json("cm-mesh", &["join", inv["token"].as_str().unwrap()]);
    let e = dave.fails("cm-mesh", &["join", url], 7);
    assert!(
        e.contains("the invite has been used up; ask for a new one (invite_exhausted)"),
        "{e}"
    );

    // A fresh invite lets dave in; every member sees the same roster.
    let url2 = invite(alice, "team", &[])["url"]
        .as_str()
        .unwrap()
        .to_string();
    dave.json("cm-mesh", &["join", &url2]);
    let all = members(carol, "team");
    let names: Vec<(&str, &str)> = all.iter().map(|m| (m.0.as_str(), m.1.as_str())).collect();
    assert_eq!(
        names,
        vec![
            ("alice", "admin"),
            ("bob", "admin"),
            ("carol", "admin"),
            ("dave", "member")
        ]
    );
    assert_eq!(all.iter().filter(|m| m.3).count(), 1);
    assert!(all.iter().any(|m| m.0 == "carol" && m.2 && m.3));

    // Invites made within one second are still distinct, and each works.
    let several: Vec<String> = (0..3)
        .map(|_| {
            invite(alice, "team", &[])["token"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(several[0] != several[1] && several[1] != several[2] && several[0] != several[2]);
    let erin = User::new("erin");
    erin.json("cm-mesh", &["join", &several[2]]);
}

#[test]
fn bad_invites_and_flags_are_refused_with_their_codes() {
    let dir = TempDir::new("mesh-bad");
    let b = Broker::start(&dir, &[]);
    let (alice, bob) = (User::new("alice"), User::new("bob"));
    new_mesh(&alice, &b, "dev");
    for (flags, want) in [
        (vec!["--role", "owner"], "--role must be member or admin"),
        (vec!["--uses", "0"], "--uses must be at least 1"),
        (
            vec!["--uses", "-1"],
            "--uses: expected a positive whole number",
        ),
        (vec!["--expires", "soon"], "--expires: not a duration"),
    ] {
        let mut args = vec!["invite"];
        args.extend(flags);
        let e = alice.fails("cm-mesh", &args, 3);
        assert!(e.contains(want), "{e}");
    }
    for bad in ["ic://join/garbage", "nope", "https://example.com/i/abc123"] {
        bob.fails("cm-mesh", &["join", bad], 3);
    }
    // A link whose signature does not verify.
    let token = invite(&alice, "dev", &[])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut payload: Value =
        serde_json::from_slice(&claudemesh::crypto::b64::decode_url(&token).unwrap()).unwrap();
    payload["role"] = "admin".into();
    let forged = claudemesh::crypto::b64::encode_url(payload.to_string().as_bytes());
    let e = bob.fails("cm-mesh", &["join", &forged], 2);
    assert!(e.contains("signature does not verify"), "{e}");
    // An expired one is refused before the broker is asked.
    // Long enough to be registered on a loaded machine; then waited out to the second it names.
    let made = invite(&alice, "dev", &["--expires", "4s"]);
    let short = made["url"].as_str().unwrap().to_string();
    let until = claudemesh::time::parse_rfc3339(made["expires_at"].as_str().unwrap()).unwrap();
    let left = until + 1100 - claudemesh::time::now_ms();
    std::thread::sleep(Duration::from_millis(left.max(0) as u64));
    let e = bob.fails("cm-mesh", &["join", &short], 2);
    assert!(e.contains("invite expired on "), "{e}");
    assert!(
        !bob.config_dir().join("config.json").exists()
            || bob.file("config.json")["meshes"] == Value::Array(vec![])
    );
    // No mesh to invite to.
    let e = bob.fails("cm-mesh", &["invite"], 5);
    assert!(e.contains("no meshes joined"), "{e}");
    // No broker there.
    let e = User::new("carol").fails(
        "cm-mesh",
        &["new", "x", "--broker", "ws://127.0.0.1:9/ws"],
        4,
    );
    assert!(
        e.contains("cannot reach broker at http://127.0.0.1:9"),
        "{e}"
    );
}

#[test]
fn a_taken_slug_is_renamed_first_then_the_join_works() {
    // Both data directories live as long as their brokers: a temporary one would be deleted under the second
    // broker as it starts.
    let (dir, dir2) = (TempDir::new("mesh-rename"), TempDir::new("mesh-rename-2"));
    let (b1, b2) = (Broker::start(&dir, &[]), Broker::start(&dir2, &[]));
    let (alice, bob) = (User::new("alice"), User::new("bob"));
    new_mesh(&alice, &b1, "dev");
    new_mesh(&bob, &b2, "dev");
    let url = invite(&alice, "dev", &[])["url"]
        .as_str()
        .unwrap()
        .to_string();
    let e = bob.fails("cm-mesh", &["join", &url], 6);
    assert!(
        e.contains("rename it first ('cm-mesh rename dev NEW')"),
        "{e}"
    );

    // Session keys follow a renamed mesh.
    let sessions = bob.config_dir().join("sessions/dev");
    std::fs::create_dir_all(&sessions).unwrap();
    std::fs::write(sessions.join("s1.json"), "{}").unwrap();
    let r = bob.json("cm-mesh", &["rename", "dev", "mine"]);
    assert_eq!(
        (&r[0]["old"], &r[0]["slug"]),
        (&"dev".into(), &"mine".into())
    );
    assert!(bob.config_dir().join("sessions/mine/s1.json").exists());
    assert_eq!(bob.mesh("mine").name, "mine");

    bob.json("cm-mesh", &["join", &url]);
    let slugs: Vec<Value> = bob
        .json("cm-mesh", &["list"])
        .iter()
        .map(|m| m["slug"].clone())
        .collect();
    assert_eq!(slugs, vec![Value::from("mine"), Value::from("dev")]);
    assert_eq!(bob.mesh("dev").broker_url, b1.ws_url());
    assert_eq!(bob.mesh("mine").broker_url, b2.ws_url());

    assert!(
        bob.fails("cm-mesh", &["rename", "mine", "dev"], 6)
            .contains("another mesh is joined here as \"dev\"")
    );
    assert!(
        bob.fails("cm-mesh", &["rename", "mine", "Bad Name"], 3)
            .contains("invalid slug")
    );
    assert!(
        bob.fails("cm-mesh", &["rename", "nope", "x"], 5)
            .contains("no mesh \"nope\" joined")
    );
    assert_eq!(
        bob.ok("cm-mesh", &["rename", "mine", "ours"]),
        "renamed mine to ours\n"
    );
    // Several meshes and no --mesh: the default one, the first joined here.
    let first = bob.json("cm-mesh", &["list"])[0]["slug"].clone();
    assert_eq!(bob.json("cm-mesh", &["use"])[0]["slug"], first);
    bob.ok("cm-mesh", &["members"]);
}

#[test]
fn leave_keeps_the_owner_key_unless_told_to_forget_it() {
    let dir = TempDir::new("mesh-leave");
    let b = Broker::start(&dir, &[]);
    let alice = User::new("alice");
    let one = new_mesh(&alice, &b, "one");
    let two = new_mesh(&alice, &b, "two");
    let o = alice.run("cm-mesh", &["leave", "one"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "left one on this machine\n"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("kept the owner key of one"));
    let owners = alice.file("owners.json");
    assert!(owners["meshes"][one["mesh_id"].as_str().unwrap()].is_object());

    let left = alice.json("cm-mesh", &["leave", "two", "--forget-owner-key"]);
    assert_eq!(left[0]["owner_key_kept"], false);
    let owners = alice.file("owners.json");
    assert!(owners["meshes"][two["mesh_id"].as_str().unwrap()].is_null());
    assert!(alice.json("cm-mesh", &["list"]).is_empty());
    assert!(
        alice
            .ok("cm-mesh", &["list"])
            .starts_with("no meshes joined")
    );
    alice.fails("cm-mesh", &["leave", "two"], 5);
}

/// The checks `cm-doctor --json` printed, by name, and its summary.
fn doctor(u: &User, code: i32) -> (Vec<Value>, Value) {
    let o = u.run("cm-doctor", &["--json"]);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut all = lines(&String::from_utf8_lossy(&o.stdout));
    let summary = all.pop().unwrap();
    assert_eq!(summary["type"], "summary");
    assert!(all.iter().all(|c| c["type"] == "check"));
    (all, summary)
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

#[test]
fn doctor_passes_a_good_setup_and_names_what_is_wrong() {
    let dir = TempDir::new("doctor");
    let b = Broker::start(&dir, &[]);
    let alice = User::new("alice");

    // Nothing set up yet: the config directory is missing, and doctor does not make it.
    let (checks, summary) = doctor(&alice, 1);
    assert_eq!(check(&checks, "config directory")["ok"], false);
    assert!(!alice.config_dir().exists());
    assert_eq!(summary["failed"], 1);

    new_mesh(&alice, &b, "dev");
    let (checks, summary) = doctor(&alice, 0);
    assert_eq!(summary["ok"], true);
    for name in [
        "config directory",
        "config.json mode",
        "identity.json mode",
        "owners.json mode",
        "config.json",
        "identity",
        "owner keys",
        "mesh dev keys",
        "mesh dev broker",
        "mesh dev auth",
        "mesh dev clock",
    ] {
        let c = check(&checks, name);
        assert_eq!(c["ok"], true, "{c}");
        assert!(c.get("fix").is_none(), "{c}");
    }
    assert!(
        check(&checks, "mesh dev broker")["detail"]
            .as_str()
            .unwrap()
            .contains(" ms ")
    );
    assert_eq!(
        check(&checks, "mesh dev auth")["detail"],
        "hello as alice (admin)"
    );
    // Not registered with Claude Code is a warning, not a failure.
    let mcp = check(&checks, "Claude Code MCP");
    assert_eq!(
        (&mcp["ok"], &mcp["fix"]),
        (&true.into(), &"cm install".into())
    );
    std::fs::write(
        alice.home().join(".claude.json"),
        r#"{"mcpServers":{"claudemesh":{"command":"cm-mcp","args":[]}}}"#,
    )
    .unwrap();
    let out = alice.ok("cm-doctor", &[]);
    assert!(out.contains("✓ Claude Code MCP (registered in "), "{out}");
    assert!(out.ends_with("all checks passed\n"), "{out}");

    // A readable config file and a broker that is gone both fail, with what to do.
    let cfg = alice.config_dir().join("config.json");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(b);
    let o = alice.run("cm-doctor", &[]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("✗ config.json mode (0644: others can read the keys in it)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("    → chmod 600 {}", cfg.display())),
        "{out}"
    );
    assert!(
        out.contains("✗ mesh dev broker (cannot reach broker at "),
        "{out}"
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "cm-doctor: 2 checks failed\n"
    );
    assert_eq!(mode(&cfg), 0o644, "doctor changes nothing");

    // A broken identity key.
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut id = alice.file("identity.json");
    id["secretKey"] = "00".repeat(64).into();
    std::fs::write(alice.config_dir().join("identity.json"), id.to_string()).unwrap();
    let (checks, _) = doctor(&alice, 1);
    assert_eq!(check(&checks, "identity")["ok"], false);
}

#[test]
fn a_banned_member_joining_again_is_told_it_was_revoked() {
    let dir = TempDir::new("banned-join");
    let b = Broker::start(&dir, &[]);
    let (alice, bob) = (User::new("alice"), User::new("bob"));
    new_mesh(&alice, &b, "dev");
    let first = invite(&alice, "dev", &["--uses", "5"]);
    let url = first["url"].as_str().unwrap();
    bob.json("cm-mesh", &["join", url]);
    // Joining again with the same link while a member: nothing changes, no use of the invite is taken.
    let again = bob.json("cm-mesh", &["join", url]);
    assert_eq!(again[0]["already_member"], true);

    let mut admin = Conn::open(&alice.mesh("dev"), &ConnOpts::default()).unwrap();
    let ack = admin
        .request(claudemesh::wire::Ban {
            target: "bob".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ack.type_name(), "ban_ack");

    // bob still has the mesh in his config; the broker knows better, with the old link and with a new one.
    for link in [
        url.to_string(),
        invite(&alice, "dev", &[])["url"]
            .as_str()
            .unwrap()
            .to_string(),
    ] {
        let err = bob.fails("cm-mesh", &["join", &link], 2);
        assert!(err.contains("revoked"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // The first invite lost no use to any of that: four more people can join with it.
    for name in ["c1", "c2", "c3", "c4"] {
        User::new(name).json("cm-mesh", &["join", url]);
    }
}

#[test]
fn new_from_a_template_sets_up_its_state_groups_and_hint() {
    let dir = TempDir::new("template");
    let b = Broker::start(&dir, &[]);
    let alice = User::new("alice");
    let out = alice.json(
        "cm-mesh",
        &[
            "new",
            "dev",
            "--broker",
            &b.ws_url(),
            "--template",
            "dev-team",
        ],
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["template"]["name"], "dev-team");

    let get = |key: &str| -> Value {
        let v = alice.json("cm-state", &["get", key]);
        v[0]["value"].clone()
    };
    assert_eq!(get("sprint"), "current");
    assert_eq!(get("deploy-frozen"), false);
    assert_eq!(get("pr-queue"), Value::Array(vec![]));
    let t = get("mesh.template");
    assert_eq!(t["name"], "dev-team");
    assert_eq!(t["suggested_roles"][2], "reviewer");
    assert!(
        t["system_prompt_hint"]
            .as_str()
            .unwrap()
            .contains("deploy freezes")
    );

    let p = alice.json("cm-profile", &[]);
    let groups: Vec<(&str, &str)> = p[0]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap(), g["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        groups,
        [
            ("frontend", "lead"),
            ("backend", "lead"),
            ("devops", "lead"),
            ("qa", "lead")
        ]
    );

    // A person reads the roles and the hint straight after creating.
    let human = alice.ok(
        "cm-mesh",
        &[
            "new",
            "inc",
            "--broker",
            &b.ws_url(),
            "--template",
            "ops-incident",
        ],
    );
    assert!(
        human.contains("suggested roles: commander, primary-oncall, scribe, responder"),
        "{human}"
    );
    assert!(human.contains("hint: INCIDENT MODE."), "{human}");
}

#[test]
fn an_unknown_template_creates_nothing() {
    let dir = TempDir::new("badtemplate");
    let b = Broker::start(&dir, &[]);
    let bob = User::new("bob");
    let e = bob.fails(
        "cm-mesh",
        &[
            "new",
            "dev",
            "--broker",
            &b.ws_url(),
            "--template",
            "dev-teem",
        ],
        3,
    );
    assert_eq!(
        e,
        "cm-mesh: no template named \"dev-teem\"; the templates are dev-team, research, ops-incident, simulation, personal\n"
    );
    // Neither an identity nor a mesh was made.
    assert!(!bob.config_dir().join("identity.json").exists());
    assert!(
        !bob.config_dir().join("config.json").exists()
            || bob.file("config.json")["meshes"] == Value::Array(vec![])
    );
}
