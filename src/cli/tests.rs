//! The parser, help, man pages and completions, on small example tables.
//!
//! Compiled only for `cargo test` (declared `#[cfg(test)]` by its parent), so its `unwrap`s fail a test, never a user.
#![cfg(test)]

use super::*;
use crate::error::Code;

const PRIORITY: Flag = flag("priority", "now, next or low")
    .short('p')
    .value("LEVEL")
    .complete(Complete::Values(&["now", "next", "low"]));
const TAG: Flag = flag("tag", "a tag [may repeat]").value("TAG").repeat();
const WAIT: Flag = flag("wait", "wait for a reply")
    .short('w')
    .value("SECS")
    .optional();
const ALL: Flag = flag("all", "everyone").short('a');
const FILE: Flag = flag("file", "attach 'a' file")
    .value("PATH")
    .complete(Complete::File);
const YES: Flag = flag("yes", "do not ask").short('y');
const PUBLIC: Flag = flag("public", "anyone may join");
const REMOTE: Flag = flag("remote", "ask the broker too").short('r');

static SEND: Tool = Tool {
    name: "cm-send",
    about: "send a message",
    description: "Sends a message.\n\n.A line that starts with a dot, and a back\\slash.",
    section: 1,
    args: &[
        pos("TARGET").complete(Complete::Peer),
        pos("MESSAGE").many(),
    ],
    flags: &[PRIORITY, TAG, WAIT, ALL, FILE],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[Example {
        cmd: "cm-send bob 'hi there'",
        what: "Say hi to bob.",
    }],
    env: &[],
};

static MESH: Tool = Tool {
    name: "cm-mesh",
    about: "manage meshes",
    description: "Manages meshes.",
    section: 1,
    args: &[],
    flags: &[YES],
    subs: &[
        Sub {
            name: "new",
            aliases: &["create"],
            about: "create a mesh",
            args: &[pos("NAME")],
            flags: &[PUBLIC],
        },
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "list meshes",
            args: &[],
            flags: &[REMOTE],
        },
    ],
    mesh_flag: false,
    config_dir: true,
    trailing: false,
    examples: &[],
    env: &[("CM_X", "an example variable")],
};

static BARE: Tool = Tool {
    name: "cm-reserve",
    about: "reserve paths",
    description: "Reserves paths.",
    section: 1,
    args: &[pos("PATH").optional().many()],
    flags: &[YES],
    subs: &[Sub {
        name: "list",
        aliases: &["ls"],
        about: "list them",
        args: &[],
        flags: &[REMOTE],
    }],
    mesh_flag: false,
    config_dir: true,
    trailing: false,
    examples: &[],
    env: &[],
};

static TRAIL: Tool = Tool {
    name: "cm",
    about: "front door",
    description: "Runs tools.",
    section: 1,
    args: &[pos("VERB").optional(), pos("ARGS").optional().many()],
    flags: &[],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: true,
    examples: &[],
    env: &[],
};

static DAEMON: Tool = Tool {
    name: "cm-broker",
    about: "run a broker",
    description: "Serves.",
    section: 8,
    args: &[],
    flags: &[YES],
    subs: &[Sub {
        name: "copy-store",
        aliases: &[],
        about: "copy the store",
        args: &[],
        flags: &[REMOTE],
    }],
    mesh_flag: false,
    config_dir: false,
    trailing: false,
    examples: &[],
    env: &[],
};

/// The toolkit the man pages' SEE ALSO names.
static TOOLKIT: &[&Tool] = &[&SEND, &MESH, &TRAIL];

fn go(tool: &'static Tool, args: &[&str]) -> Result<Parsed> {
    parse(tool, args.iter().map(OsString::from))
}

fn run(tool: &'static Tool, args: &[&str]) -> Args {
    match go(tool, args) {
        Ok(Parsed::Run(a)) => a,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn err(tool: &'static Tool, args: &[&str]) -> String {
    match go(tool, args) {
        Err(e) => {
            assert_eq!(e.code, Code::Usage, "{e}");
            e.msg
        }
        Ok(p) => panic!("{args:?} parsed: {p:?}"),
    }
}

#[test]
fn flags_and_positionals() {
    let a = run(
        &SEND,
        &[
            "--json",
            "bob",
            "-p",
            "now",
            "hello",
            "--mesh=dev",
            "world",
            "-a",
        ],
    );
    assert!(a.json);
    assert_eq!(a.mesh.as_deref(), Some("dev"));
    assert_eq!(a.positionals, ["bob", "hello", "world"]);
    assert_eq!(a.value(&PRIORITY), Some("now"));
    assert!(a.has(&ALL));
    assert_eq!(a.sub, None);
}

#[test]
fn values_attached_and_repeated() {
    let a = run(
        &SEND,
        &[
            "-pnow",
            "--priority=low",
            "--tag",
            "a",
            "--tag=b",
            "bob",
            "hi",
        ],
    );
    assert_eq!(
        a.values(&PRIORITY),
        ["low"],
        "a flag given twice keeps the last"
    );
    assert_eq!(a.values(&TAG), ["a", "b"]);
}

#[test]
fn optional_values() {
    let a = run(&SEND, &["--wait", "bob", "hi"]);
    assert!(a.has(&WAIT));
    assert_eq!(a.value(&WAIT), None);
    assert_eq!(a.positionals, ["bob", "hi"]);
    let a = run(&SEND, &["--wait=30", "-w5", "bob", "hi"]);
    assert_eq!(a.value(&WAIT), Some("5"));
}

#[test]
fn typed_values_name_the_flag() {
    let a = run(&SEND, &["--priority=low", "bob", "hi"]);
    assert_eq!(a.get::<String>(&PRIORITY).unwrap().as_deref(), Some("low"));
    assert_eq!(a.get::<u32>(&WAIT).unwrap(), None);
    let a = run(&SEND, &["--wait=soon", "bob", "hi"]);
    let e = a.get::<u32>(&WAIT).unwrap_err();
    assert_eq!(e.code, Code::Usage);
    assert_eq!(e.msg, "--wait: invalid digit found in string");
}

#[test]
fn double_dash_ends_flags() {
    let a = run(&SEND, &["bob", "--", "--all", "-p"]);
    assert_eq!(a.positionals, ["bob", "--all", "-p"]);
    assert!(!a.has(&ALL));
}

#[test]
fn help_and_version() {
    assert!(matches!(go(&SEND, &["bob", "--help"]), Ok(Parsed::Help)));
    assert!(matches!(go(&SEND, &["-h"]), Ok(Parsed::Help)));
    assert!(matches!(go(&MESH, &["--version"]), Ok(Parsed::Version)));
    assert!(matches!(go(&MESH, &["new", "-h"]), Ok(Parsed::Help)));
}

#[test]
fn usage_errors() {
    assert_eq!(
        err(&SEND, &["--jsn", "bob", "hi"]),
        "unknown flag --jsn (did you mean --json?)"
    );
    assert_eq!(
        err(&SEND, &["-x", "bob", "hi"]),
        "unknown flag -x; see 'cm-send --help'"
    );
    assert_eq!(err(&SEND, &[]), "missing TARGET; see 'cm-send --help'");
    assert_eq!(
        err(&SEND, &["bob"]),
        "missing MESSAGE; see 'cm-send --help'"
    );
    assert_eq!(
        err(&SEND, &["bob", "hi", "-p"]),
        "missing LEVEL for -p; see 'cm-send --help'"
    );
    assert_eq!(
        err(&SEND, &["--all=yes", "bob", "hi"]),
        "--all takes no value; see 'cm-send --help'"
    );
    assert_eq!(
        err(&MESH, &["list", "extra"]),
        "unexpected argument \"extra\"; see 'cm-mesh --help'"
    );
    assert_eq!(
        err(&MESH, &["--mesh", "x", "list"]),
        "unknown flag --mesh; see 'cm-mesh --help'"
    );
}

#[cfg(unix)]
#[test]
fn non_utf8_is_a_usage_error() {
    use std::os::unix::ffi::OsStringExt;
    let bad = OsString::from_vec(vec![b'b', 0xff]);
    let e = parse(&SEND, [OsString::from("bob"), bad.clone()]).unwrap_err();
    assert_eq!(e.code, Code::Usage);
    assert!(e.msg.contains("not valid UTF-8"), "{}", e.msg);
    let e = parse(
        &SEND,
        [OsString::from("--priority"), bad, "bob".into(), "hi".into()],
    )
    .unwrap_err();
    assert_eq!(e.code, Code::Usage);
}

#[test]
fn subcommands() {
    let a = run(&MESH, &["create", "dev", "--public"]);
    assert_eq!(a.sub, Some("new"));
    assert_eq!(a.positionals, ["dev"]);
    assert!(a.has(&PUBLIC));
    // Flags before the subcommand, the tool's own among them.
    let a = run(&MESH, &["-y", "--public", "new", "dev"]);
    assert_eq!(a.sub, Some("new"));
    assert!(a.has(&YES) && a.has(&PUBLIC));
    let a = run(&MESH, &["ls", "-r", "--json"]);
    assert_eq!(a.sub, Some("list"));
    assert!(a.json && a.has(&REMOTE));
}

#[test]
fn subcommand_errors() {
    assert_eq!(
        err(&MESH, &["nwe", "dev"]),
        "unknown subcommand \"nwe\" (did you mean \"new\"?)"
    );
    assert_eq!(
        err(&MESH, &["zzz"]),
        "unknown subcommand \"zzz\"; see 'cm-mesh --help'"
    );
    assert_eq!(
        err(&MESH, &[]),
        "missing subcommand (new, list); see 'cm-mesh --help'"
    );
    assert_eq!(err(&MESH, &["new"]), "missing NAME; see 'cm-mesh --help'");
    assert_eq!(
        err(&MESH, &["list", "--public"]),
        "unknown flag --public; see 'cm-mesh --help'"
    );
    assert_eq!(
        err(&MESH, &["--public", "list"]),
        "--public does not apply to 'cm-mesh list'; see 'cm-mesh --help'"
    );
}

#[test]
fn a_first_word_that_names_no_subcommand_starts_the_tools_own_positionals() {
    let a = run(&BARE, &["src/**", "list", "-y"]);
    assert_eq!(
        (a.sub, a.positionals.as_slice()),
        (None, &["src/**".to_string(), "list".into()][..])
    );
    assert!(a.has(&YES));
    let a = run(&BARE, &["ls", "--remote"]);
    assert_eq!((a.sub, a.positionals.len()), (Some("list"), 0));
    assert!(a.has(&REMOTE));
    assert_eq!(run(&BARE, &[]).sub, None);
    assert_eq!(
        err(&BARE, &["src", "--remote"]),
        "--remote applies to 'cm-reserve list' only; see 'cm-reserve --help'"
    );
    let h = crate::cli::help::help(&BARE);
    assert!(
        h.contains("Usage: cm-reserve [OPTIONS] [PATH...]\n       cm-reserve list [OPTIONS]\n"),
        "{h}"
    );
}

#[test]
fn a_daemon_runs_without_a_subcommand_and_takes_no_positionals() {
    let a = run(&DAEMON, &["-y"]);
    assert_eq!((a.sub, a.positionals.len()), (None, 0));
    assert!(a.has(&YES));
    let a = run(&DAEMON, &["copy-store", "-y", "--remote"]);
    assert_eq!(a.sub, Some("copy-store"));
    assert!(a.has(&YES) && a.has(&REMOTE));
    assert!(err(&DAEMON, &["serve"]).starts_with("unknown subcommand \"serve\""));
    assert_eq!(
        err(&DAEMON, &["--remote"]),
        "--remote applies to 'cm-broker copy-store' only; see 'cm-broker --help'"
    );
    let h = crate::cli::help::help(&DAEMON);
    assert!(
        h.contains("Usage: cm-broker [OPTIONS]\n       cm-broker copy-store [OPTIONS]\n"),
        "{h}"
    );
}

#[test]
fn trailing_takes_everything_after_the_first_positional() {
    let a = run(
        &TRAIL,
        &["--json", "send", "--jsn", "-p", "now", "--", "--help"],
    );
    assert!(a.json);
    assert_eq!(
        a.positionals,
        ["send", "--jsn", "-p", "now", "--", "--help"]
    );
    let a = run(&TRAIL, &[]);
    assert!(a.positionals.is_empty());
    assert_eq!(
        err(&TRAIL, &["--jsn"]),
        "unknown flag --jsn (did you mean --json?)"
    );
}

#[test]
fn suggestions() {
    let verbs = ["new", "send", "peers", "topic", "notifications"];
    assert_eq!(did_you_mean("sned", verbs), Some("send"));
    assert_eq!(did_you_mean("peer", verbs), Some("peers"));
    assert_eq!(did_you_mean("topc", verbs), Some("topic"));
    assert_eq!(did_you_mean("notif", verbs), Some("notifications"));
    assert_eq!(did_you_mean("bogus", verbs), None);
    assert_eq!(did_you_mean("x", verbs), None);
    assert_eq!(parse::distance("kitten", "sitting"), 3);
    assert_eq!(parse::distance("", "abc"), 3);
}

#[test]
fn help_text() {
    let h = help(&SEND);
    assert!(
        h.starts_with("cm-send - send a message\n\nUsage: cm-send [OPTIONS] TARGET MESSAGE...\n"),
        "{h}"
    );
    assert!(
        h.contains("  -p, --priority LEVEL  now, next or low\n"),
        "{h}"
    );
    assert!(
        h.contains("  -w, --wait[=SECS]     wait for a reply\n"),
        "{h}"
    );
    assert!(h.contains("      --mesh SLUG       "), "{h}");
    let h = help(&MESH);
    assert!(
        h.contains("Usage: cm-mesh new [OPTIONS] NAME\n       cm-mesh list [OPTIONS]\n"),
        "{h}"
    );
    assert!(h.contains("  new, create    create a mesh\n"), "{h}");
    assert!(h.contains("Options for list:\n  -r, --remote"), "{h}");
    assert!(!h.contains("--mesh"), "{h}");
    assert_eq!(
        version(&SEND),
        format!("cm-send {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn man_page() {
    let m = man(&SEND, TOOLKIT);
    assert!(m.starts_with(".TH CM\\-SEND 1 \"\" \"claudemesh "), "{m}");
    assert!(
        m.contains(".TP\n\\fB\\-p\\fR, \\fB\\-\\-priority\\fR \\fILEVEL\\fR\nnow, next or low\n"),
        "{m}"
    );
    assert!(
        m.contains("\\fB\\-w\\fR, \\fB\\-\\-wait\\fR[=\\fISECS\\fR]"),
        "{m}"
    );
    assert!(
        m.contains("\n\\&.A line that starts with a dot, and a back\\eslash.\n"),
        "{m}"
    );
    assert!(
        m.contains("\\fB\\-\\-json\\fR") && m.contains("\\fB\\-\\-mesh\\fR \\fISLUG\\fR"),
        "{m}"
    );
    assert!(m.contains(".SH EXIT STATUS\n.TP\n\\fB0\\fR\n"), "{m}");
    assert!(m.contains("\\fB10\\fR\n"), "{m}");
    assert!(m.contains("\\fBCLAUDEMESH_CONFIG_DIR\\fR"), "{m}");
    assert!(
        m.contains(".SH EXAMPLES\n.TP\n\\fBcm\\-send bob 'hi there'\\fR\nSay hi to bob.\n"),
        "{m}"
    );
    assert!(m.contains(".SH SEE ALSO\n.BR cm (1)"), "{m}");
    assert!(!m.lines().any(|l| l.is_empty()), "no blank lines in roff");
    let m = man(&MESH, TOOLKIT);
    assert!(
        m.contains(
            ".SH SUBCOMMANDS\n.TP\n\\fBnew\\fR, \\fBcreate\\fR \\fINAME\\fR\ncreate a mesh\n.RS\n"
        ),
        "{m}"
    );
    assert!(m.contains("\\fBCM_X\\fR\nan example variable"), "{m}");
    assert_eq!(m, man(&MESH, TOOLKIT), "deterministic");
}

#[test]
fn completions_cover_every_flag() {
    for tool in [&SEND, &MESH, &TRAIL] {
        let (b, z, f) = (bash(tool), zsh(tool), fish(tool));
        for fl in all_flags(tool) {
            assert!(
                b.contains(&format!("--{}", fl.long)),
                "bash {}: --{}",
                tool.name,
                fl.long
            );
            assert!(
                z.contains(&format!("--{}", fl.long)),
                "zsh {}: --{}",
                tool.name,
                fl.long
            );
            assert!(
                f.contains(&format!("-l {}", fl.long)),
                "fish {}: --{}",
                tool.name,
                fl.long
            );
        }
        for s in tool.subs {
            assert!(b.contains(s.name) && z.contains(s.name) && f.contains(s.name));
        }
    }
    let b = bash(&SEND);
    assert!(
        b.contains("__claudemesh_peers() {\n    cm-peers --json 2>/dev/null | awk"),
        "{b}"
    );
    assert!(b.contains("compgen -W \"now next low\""), "{b}");
    let z = zsh(&SEND);
    assert!(
        z.contains("'(-p --priority)'{-p+,--priority=}'[now, next or low]:LEVEL:(now next low)'"),
        "{z}"
    );
    assert!(
        z.contains("'*'--tag='[a tag \\[may repeat\\]]:TAG: '"),
        "{z}"
    );
    let f = fish(&SEND);
    assert!(
        f.contains("complete -c cm-send -l file -r -F -d 'attach \\'a\\' file'"),
        "{f}"
    );
    assert!(f.contains("-a '(__claudemesh_meshes)'"), "{f}");
}
