//! `cm`: the front door. `cm VERB ARGS...` runs the `cm-*` tool that does VERB, git-style, so the original CLI's
//! verbs (`new`, `invite`, `join`, `send`, ...) keep working while each tool stays small and separately useful.

use std::path::Path;

use serde::Serialize;

use crate::cli::{Args, Complete, Example, Flag, Tool, did_you_mean, flag, pos};
use crate::error::{Error, Result};
use crate::multicall::{self, Link};
use crate::out::Out;
use crate::tools::ALL;

pub use crate::cli::Verb;

const fn v(names: &'static [&'static str], tool: &'static str, sub: Option<&'static str>) -> Verb {
    Verb {
        names,
        tool,
        sub,
        fallback: None,
    }
}

impl Verb {
    const fn or_else(mut self, sub: &'static str) -> Verb {
        self.fallback = Some(sub);
        self
    }
}

/// Every verb of the original CLI, and the tool and subcommand that does it here.
pub const VERBS: &[Verb] = &[
    v(&["new", "create"], "cm-mesh", Some("new")),
    v(&["invite", "share"], "cm-mesh", Some("invite")),
    v(&["join", "add"], "cm-mesh", Some("join")),
    v(&["list", "ls"], "cm-mesh", Some("list")),
    v(&["use"], "cm-mesh", Some("use")),
    v(&["rename"], "cm-mesh", Some("rename")),
    v(&["leave"], "cm-mesh", Some("leave")),
    v(&["members", "member"], "cm-mesh", Some("members")),
    v(&["mesh"], "cm-mesh", None),
    v(&["peers", "peer"], "cm-peers", None),
    v(&["send"], "cm-send", None),
    v(&["inbox"], "cm-inbox", None),
    v(&["state"], "cm-state", None),
    v(&["remember"], "cm-memory", Some("remember")),
    v(&["recall"], "cm-memory", Some("recall")),
    v(&["forget"], "cm-memory", Some("forget")),
    v(&["memory"], "cm-memory", None),
    v(&["task", "tasks"], "cm-task", None),
    v(&["context"], "cm-context", None),
    v(&["reserve", "reservations"], "cm-reserve", None),
    v(&["vault"], "cm-vault", None),
    v(&["grant"], "cm-grant", Some("grant")),
    v(&["revoke"], "cm-grant", Some("revoke")),
    v(&["block"], "cm-grant", Some("block")),
    v(&["unblock"], "cm-grant", Some("unblock")),
    v(&["grants"], "cm-grant", Some("list")),
    v(&["webhook", "webhooks"], "cm-webhook", None),
    v(&["remind", "schedule"], "cm-remind", None),
    v(&["profile"], "cm-profile", None),
    v(&["topic"], "cm-topic", None),
    v(
        &["notifications", "notification", "notify"],
        "cm-notify",
        None,
    )
    .or_else("list"),
    v(&["apikey", "api-key"], "cm-apikey", None),
    v(&["bridge"], "cm-bridge", None),
    v(&["file"], "cm-file", None),
    v(&["doctor", "status"], "cm-doctor", None),
    v(&["whoami"], "cm-id", Some("whoami")),
    v(&["register"], "cm-id", Some("register")),
    v(&["login"], "cm-id", Some("login")),
    v(&["logout"], "cm-id", Some("logout")),
    v(&["id"], "cm-id", None),
    v(&["install"], "cm-install", None),
    v(&["uninstall"], "cm-uninstall", None),
    v(&["launch", "connect"], "cm-launch", None),
    v(&["pipe"], "cm-pipe", None),
    v(&["mcp"], "cm-mcp", None),
    v(&["up"], "cm-up", Some("up")),
    v(&["down"], "cm-up", Some("down")),
    v(&["broker"], "cm-broker", None),
];

const fn count_names() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < VERBS.len() {
        n += VERBS[i].names.len();
        i += 1;
    }
    n
}

const N_NAMES: usize = count_names() + 4;

/// Every verb name and alias, `help`, `links`, `docs` and `templates`: what a shell offers after `cm`.
static VERB_NAMES: [&str; N_NAMES] = {
    let mut out = [""; N_NAMES];
    let mut k = 0;
    let mut i = 0;
    while i < VERBS.len() {
        let mut j = 0;
        while j < VERBS[i].names.len() {
            out[k] = VERBS[i].names[j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    out[k] = "help";
    out[k + 1] = "links";
    out[k + 2] = "docs";
    out[k + 3] = "templates";
    out
};

const LIST: Flag = flag(
    "list",
    "print the names of the tools this cm is, one a line",
);

/// `cm`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm",
    about: "run a claudemesh command: cm VERB runs the cm-* tool that does VERB",
    description: "cm is the front door to the claudemesh toolkit, and the toolkit itself: one executable that is \
every tool but cm-broker, as busybox is. Called by a tool's name (cm-send, a link to cm) it is that tool; called as \
cm, each verb is done by one tool: cm send runs cm-send, cm new runs cm-mesh new, cm whoami runs cm-id whoami. The \
arguments after the verb are passed on unchanged, and cm exits with the tool's status. cm help lists every verb and \
the tool behind it; cm help VERB shows that tool's options; cm --list prints the tools cm is, one a line.

cm links [DIR] makes the cm-* links to cm in DIR (default: the directory that holds cm), which cargo install does \
not; cm up makes them too. It is idempotent and says what it made. A link to another cm, or an older install's \
cm-* binary, is replaced; a file of such a name that is not claudemesh's is left alone, named, and makes the exit \
status 1. Without the links every tool still runs as cm VERB.

cm docs install [DIR] puts the man pages and the bash, zsh and fish completions of cm and every tool where man \
and the shells look for them: DIR/man/man1 and man8, DIR/bash-completion/completions, DIR/zsh/site-functions and \
DIR/fish/vendor_completions.d, DIR being $XDG_DATA_HOME, else ~/.local/share (cargo install installs neither). It \
says what it wrote and what a shell may still need. cm docs man TOOL prints one man page; cm docs bash, zsh or \
fish [TOOL] prints a completion script (default: cm's). The completion of cm completes the words after a verb as \
that verb's tool does, so cm topic <TAB> offers cm-topic's subcommands.

cm-broker is an executable of its own (it is deployed alone, and keeps SQLite out of the clients): cm looks for it, \
and for a cm-VERB that is not one of cm's own, first in the directory that holds the cm executable, then on PATH. \
A verb whose tool is not installed is an error (exit status 1) that names the missing tool.

The verbs: new (create), invite (share), join (add), list (ls), use, rename, leave, members (member) and mesh run \
cm-mesh; peers (peer) runs cm-peers; send, inbox, state, profile, topic, bridge, file, pipe, mcp and broker run \
cm-VERB; remember, recall, forget and memory run cm-memory; remind (schedule) runs cm-remind; task (tasks) runs \
cm-task; context runs cm-context; reserve (reservations) runs cm-reserve; vault runs cm-vault; webhook (webhooks) runs cm-webhook; grant, revoke, \
block, unblock and grants run cm-grant grant, revoke, block, unblock and list; \
notifications (notification, notify) runs cm-notify; apikey (api-key) runs cm-apikey; doctor (status) runs \
cm-doctor; whoami, register, login, logout and id run cm-id; install and uninstall run cm-install and \
cm-uninstall; launch (connect) runs cm-launch; up and down run cm-up up and cm-up down.

cm with no verb starts Claude Code as a session on the mesh, as cm launch does, when a mesh is joined (with \
--mesh SLUG, on that mesh); with no mesh joined it prints this list of verbs.

An invite URL in place of the verb (ic://join/..., or an https URL whose path holds /join/ or /i/) joins that mesh, \
as cm-mesh join URL does.

cm templates lists the mesh templates of the original CLI (dev-team, research, ops-incident, simulation and \
personal), each with its description; cm templates NAME shows one: its groups and their roles, its state keys and \
their initial values, its suggested roles and its system prompt hint. With --json each template is one line. An \
unknown NAME is a usage error (exit status 3) that lists the five.

--json and --mesh SLUG given before the verb are passed on to the tool.",
    section: 1,
    args: &[
        pos("VERB").optional().complete(Complete::Values(&VERB_NAMES)),
        pos("ARGS")
            .optional()
            .many()
            .complete(Complete::Verbs(VERBS)),
    ],
    flags: &[LIST],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: true,
    examples: &[
        Example { cmd: "cm new dev", what: "Create a mesh named dev (runs cm-mesh new dev)." },
        Example { cmd: "cm send bob 'the build is green'", what: "Send bob a message (runs cm-send)." },
        Example { cmd: "cm ic://join/...", what: "Join the mesh an invite is for (runs cm-mesh join)." },
        Example { cmd: "cm templates dev-team", what: "Show the dev-team template's groups, state keys and roles." },
        Example { cmd: "cm help send", what: "Show cm-send's options." },
        Example { cmd: "cm docs install", what: "Install the man pages and completions under ~/.local/share." },
    ],
    env: &[("PATH", "Where cm looks for a tool that is not in its own directory.")],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    if args.has(&LIST) {
        for (t, _) in multicall::TOOLS {
            if out.json {
                out.json(&serde_json::json!({"type": "tool", "name": t.name}))?;
            } else {
                out.line(t.name)?;
            }
        }
        return Ok(());
    }
    let Some(verb) = args.pos(0) else {
        if !args.json && mesh_joined() {
            let mut launch = Args::default();
            launch.mesh = args.mesh.clone();
            return crate::tools::launch::run(&launch, out);
        }
        return list(out);
    };
    let rest = &args.positionals[1..];
    if verb == "links" {
        // The arguments after a verb are the verb's: `cm links --json DIR` as well as `cm --json links DIR`.
        let (mut json, mut dir) = (out.json, None);
        for a in rest {
            match a.as_str() {
                "--json" => json = true,
                f if f.starts_with('-') => {
                    return Err(Error::usage(format!("cm links: unknown flag {f}")));
                }
                d if dir.is_none() => dir = Some(Path::new(d)),
                _ => return Err(Error::usage("cm links takes one DIR")),
            }
        }
        if json == out.json {
            return links(dir, out);
        }
        return links(dir, &mut Out::new(json));
    }
    if verb == "docs" {
        return docs(rest, out);
    }
    if verb == "templates" {
        return templates(rest, out);
    }
    if verb == "help" {
        return match rest.first() {
            None => list(out),
            Some(v) => {
                let (tool, _) = resolve(v, &[])?;
                exec(v, &tool, &["--help".to_string()])
            }
        };
    }
    if is_invite_url(verb) {
        return exec(
            "join",
            "cm-mesh",
            &forward(args, Some("join"), &args.positionals),
        );
    }
    let (tool, sub) = resolve(verb, rest)?;
    exec(verb, &tool, &forward(args, sub, rest))
}

/// The subcommand to give `tool` for `rest`: the verb's own, else its fallback when `rest` names none of the
/// tool's subcommands.
fn sub_for(v: &Verb, rest: &[String]) -> Option<&'static str> {
    v.sub.or_else(|| {
        let fallback = v.fallback?;
        let t = ALL.iter().find(|t| t.name == v.tool)?;
        let named = rest.iter().any(|a| {
            t.subs
                .iter()
                .any(|s| s.name == a.as_str() || s.aliases.contains(&a.as_str()))
        });
        (!named).then_some(fallback)
    })
}

/// Whether the config lists a mesh (an unreadable config counts as none: `cm` then shows its help).
fn mesh_joined() -> bool {
    let Ok(dir) = crate::config::Paths::locate() else {
        return false;
    };
    crate::config::Config::load(&crate::config::Paths { dir }).is_ok_and(|c| !c.meshes.is_empty())
}

/// The tool's arguments: the subcommand, `--json` and `--mesh` when given to `cm`, then the rest verbatim.
fn forward(args: &Args, sub: Option<&str>, rest: &[String]) -> Vec<String> {
    let mut argv: Vec<String> = sub.into_iter().map(String::from).collect();
    if args.json {
        argv.push("--json".into());
    }
    if let Some(m) = &args.mesh {
        argv.extend(["--mesh".into(), m.clone()]);
    }
    argv.extend(rest.iter().cloned());
    argv
}

/// The tool and subcommand for `verb`: one from [`VERBS`], else an installed `cm-VERB`.
fn resolve(verb: &str, rest: &[String]) -> Result<(String, Option<&'static str>)> {
    if let Some(v) = VERBS.iter().find(|v| v.names.contains(&verb)) {
        return Ok((v.tool.to_string(), sub_for(v, rest)));
    }
    // Only a plain word may name a tool, so `cm ../x` cannot reach outside the search path.
    let plain = verb
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let tool = format!("cm-{verb}");
    if plain && !verb.is_empty() && installed(&tool) {
        return Ok((tool, None));
    }
    Err(match did_you_mean(verb, VERB_NAMES) {
        Some(m) => Error::usage(format!(
            "unknown command \"{verb}\" (did you mean \"{m}\"?)"
        )),
        None => Error::usage(format!("unknown command \"{verb}\"; see 'cm help'")),
    })
}

/// `ic://join/...`, `https://host/join/...`, `https://host/i/...`.
fn is_invite_url(s: &str) -> bool {
    if s.starts_with("ic://join/") {
        return true;
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.and_then(|r| r.split_once('/'))
        .is_some_and(|(_, path)| {
            format!("/{path}").contains("/join/") || format!("/{path}").contains("/i/")
        })
}

/// Whether `tool` can be run: one of cm's own, or installed beside cm or on PATH.
fn installed(tool: &str) -> bool {
    multicall::tool(tool).is_some() || multicall::find(tool).is_some()
}

/// Runs `tool` with `argv` in place of `cm`: in this process when it is one of cm's own, else the executable of
/// that name; or says plainly that it is not installed.
fn exec(verb: &str, tool: &str, argv: &[String]) -> Result<()> {
    if let Some((t, run)) = multicall::tool(tool) {
        crate::cli::main_with(t, run, argv.iter().map(std::ffi::OsString::from));
    }
    let Some(path) = multicall::find(tool) else {
        return Err(Error::generic(format!(
            "\"{verb}\" needs {tool}, which is not installed"
        )));
    };
    let mut cmd = std::process::Command::new(&path);
    cmd.args(argv);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.arg0(tool).exec();
        Err(Error::from(e).context(format!("running {}", path.display())))
    }
    #[cfg(not(unix))]
    {
        let status = cmd
            .status()
            .map_err(|e| Error::from(e).context(format!("running {}", path.display())))?;
        std::process::exit(status.code().unwrap_or(1))
    }
}

/// `cm templates [NAME] [--json]`: the mesh templates, all or one.
fn templates(rest: &[String], out: &mut Out) -> Result<()> {
    let (mut json, mut name) = (out.json, None);
    for a in rest {
        match a.as_str() {
            "--json" => json = true,
            f if f.starts_with('-') => {
                return Err(Error::usage(format!("cm templates: unknown flag {f}")));
            }
            n if name.is_none() => name = Some(n),
            _ => return Err(Error::usage("cm templates takes one NAME")),
        }
    }
    if json == out.json {
        return crate::templates::show(name, out);
    }
    crate::templates::show(name, &mut Out::new(json))
}

/// `cm docs ...`: man pages and completions, installed or printed.
fn docs(rest: &[String], out: &mut Out) -> Result<()> {
    let tool = |name: Option<&String>| -> Result<&'static Tool> {
        let name = name.map_or("cm", |n| n.as_str());
        ALL.iter()
            .copied()
            .find(|t| t.name == name || t.name == format!("cm-{name}"))
            .ok_or_else(|| Error::not_found(format!("no tool named {name:?}; see 'cm --list'")))
    };
    let args: Vec<&String> = rest.iter().filter(|a| *a != "--json").collect();
    let json = out.json || rest.iter().any(|a| a == "--json");
    match args.first().map(|s| s.as_str()) {
        Some("install") => {
            let dir = match args.get(1) {
                Some(d) => std::path::PathBuf::from(d.as_str()),
                None => default_docs_dir()?,
            };
            if args.len() > 2 {
                return Err(Error::usage("cm docs install takes one DIR"));
            }
            install_docs(&dir, &mut Out::new(json))
        }
        Some("man") if args.len() <= 2 => {
            out.line(crate::cli::man(tool(args.get(1).copied())?, ALL).trim_end())
        }
        Some("bash") if args.len() <= 2 => {
            out.line(crate::cli::bash(tool(args.get(1).copied())?).trim_end())
        }
        Some("zsh") if args.len() <= 2 => {
            out.line(crate::cli::zsh(tool(args.get(1).copied())?).trim_end())
        }
        Some("fish") if args.len() <= 2 => {
            out.line(crate::cli::fish(tool(args.get(1).copied())?).trim_end())
        }
        _ => Err(Error::usage(
            "cm docs takes install [DIR], man TOOL, or bash|zsh|fish [TOOL]",
        )),
    }
}

/// `$XDG_DATA_HOME`, else `~/.local/share`: where man and the shells look for a user's own pages and completions.
fn default_docs_dir() -> Result<std::path::PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(d.into());
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".local/share"))
        .ok_or_else(|| {
            Error::io("cannot find ~/.local/share: set HOME, or give cm docs install a DIR")
        })
}

/// Writes every tool's man page and completions under `dir`, as a package would install them.
fn install_docs(dir: &Path, out: &mut Out) -> Result<()> {
    let mut n = 0;
    for t in ALL {
        let files = [
            (
                format!("man/man{0}/{1}.{0}", t.section, t.name),
                crate::cli::man(t, ALL),
            ),
            (
                format!("bash-completion/completions/{}", t.name),
                crate::cli::bash(t),
            ),
            (
                format!("zsh/site-functions/_{}", t.name),
                crate::cli::zsh(t),
            ),
            (
                format!("fish/vendor_completions.d/{}.fish", t.name),
                crate::cli::fish(t),
            ),
        ];
        for (rel, text) in files {
            let path = dir.join(&rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::from(e).context(format!("making {}", parent.display())))?;
            }
            std::fs::write(&path, text)
                .map_err(|e| Error::from(e).context(format!("writing {}", path.display())))?;
            n += 1;
            if out.json {
                out.json(&serde_json::json!({"type": "doc", "tool": t.name, "path": path}))?;
            }
        }
    }
    if out.json {
        return Ok(());
    }
    out.line(format!(
        "wrote {n} files for {} tools under {}",
        ALL.len(),
        dir.display()
    ))?;
    out.line(format!(
        "man: {} (found when {} is on PATH; else add it to MANPATH)",
        dir.join("man").display(),
        dir.parent()
            .map_or(dir.to_path_buf(), |p| p.join("bin"))
            .display()
    ))?;
    out.line(format!(
        "bash: {} (bash-completion loads them by name)",
        dir.join("bash-completion/completions").display()
    ))?;
    out.line(format!(
        "zsh: fpath+=({}) before compinit in ~/.zshrc",
        dir.join("zsh/site-functions").display()
    ))?;
    out.line(format!(
        "fish: {} (read by fish itself)",
        dir.join("fish/vendor_completions.d").display()
    ))
}

/// `cm links [DIR]`: the `cm-*` links to this cm in DIR, or beside it.
fn links(dir: Option<&Path>, out: &mut Out) -> Result<()> {
    let cm = multicall::cm_path()?;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => cm
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| Error::generic("cm's own directory is unknown"))?,
    };
    let done = multicall::make_links(&dir, &cm)?;
    let (new, foreign) = multicall::summary(&done);
    for (name, what) in &done {
        let path = dir.join(name);
        if out.json {
            let state = match what {
                Link::Made => "made",
                Link::Kept => "kept",
                Link::Replaced => "replaced",
                Link::Foreign => "foreign",
            };
            out.json(
                &serde_json::json!({"type": "link", "name": name, "path": path, "state": state}),
            )?;
            continue;
        }
        match what {
            Link::Made => out.line(format!("made {}", path.display()))?,
            Link::Replaced => out.line(format!(
                "replaced {} (an older claudemesh executable) with a link",
                path.display()
            ))?,
            Link::Kept | Link::Foreign => {}
        }
    }
    if !out.json {
        out.line(format!(
            "{} of {} tools linked in {} ({new} new)",
            done.len() - foreign.len(),
            done.len(),
            dir.display()
        ))?;
    }
    if foreign.is_empty() {
        return Ok(());
    }
    let paths: Vec<String> = foreign
        .iter()
        .map(|n| dir.join(n).display().to_string())
        .collect();
    Err(Error::generic(format!(
        "left alone, not claudemesh's: {}; remove {} and run cm links again (cm VERB works meanwhile)",
        paths.join(", "),
        if paths.len() == 1 { "it" } else { "them" }
    )))
}

/// A line of `cm --json help`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Entry<'a> {
    Tool {
        name: &'a str,
        about: &'a str,
    },
    Verb {
        name: &'a str,
        aliases: &'a [&'a str],
        tool: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        sub: Option<&'a str>,
        installed: bool,
    },
}

/// `cm help`: every verb with the tool behind it, then every tool.
fn list(out: &mut Out) -> Result<()> {
    if out.json {
        for v in VERBS {
            let installed = installed(v.tool);
            let (name, aliases) = (v.names[0], &v.names[1..]);
            out.json(&Entry::Verb {
                name,
                aliases,
                tool: v.tool,
                sub: v.sub,
                installed,
            })?;
        }
        for t in ALL {
            out.json(&Entry::Tool {
                name: t.name,
                about: t.about,
            })?;
        }
        return Ok(());
    }
    out.line(format!("cm - {}\n", TOOL.about))?;
    out.line(
        "Usage: cm VERB [ARGS...]\n       cm INVITE-URL\n       cm help [VERB]\n       cm links [DIR]        \
         (make the cm-* links)\n       cm docs install [DIR] (man pages and completions)\n       cm templates [NAME]   \
         (the mesh templates)\n       cm --list\n       cm                    (with a mesh joined: cm launch)\n\n\
         Verbs:",
    )?;
    // The widest names set the column, so no row is pushed out of line.
    let nw = VERBS
        .iter()
        .map(|v| v.names.join(", ").chars().count())
        .max()
        .unwrap_or(0);
    for v in VERBS {
        let cmd = match v.sub {
            Some(s) => format!("{} {s}", v.tool),
            None => v.tool.to_string(),
        };
        let about = if !installed(v.tool) {
            "(not installed)"
        } else {
            about(v)
        };
        out.line(format!("  {:nw$} {cmd:18} {about}", v.names.join(", ")).trim_end())?;
    }
    out.line("\nTools:")?;
    let width = ALL.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in ALL {
        out.line(format!("  {:width$}  {}", t.name, t.about))?;
    }
    if !multicall::command("cm-send").args.is_empty() {
        out.line(
            "\nThe cm-* commands are not linked beside cm yet: cm links makes them (cm up does too); \
             meanwhile cm VERB runs each.",
        )?;
    }
    Ok(())
}

/// What a verb does, from its tool's table when that tool is part of this build.
fn about(v: &Verb) -> &'static str {
    let Some(t) = ALL.iter().find(|t| t.name == v.tool) else {
        return "";
    };
    v.sub
        .and_then(|s| t.subs.iter().find(|x| x.name == s))
        .map_or(t.about, |s| s.about)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_urls() {
        assert!(is_invite_url("ic://join/abc"));
        assert!(is_invite_url("https://claudemesh.com/join/abc"));
        assert!(is_invite_url("https://example.org/i/abc"));
        assert!(is_invite_url("http://127.0.0.1:7900/join/abc"));
        assert!(!is_invite_url("https://example.org/"));
        assert!(!is_invite_url("send"));
        assert!(!is_invite_url("ic://other/abc"));
    }

    #[test]
    fn every_name_is_one_verb() {
        let mut names: Vec<&str> = VERB_NAMES.to_vec();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a verb name appears twice");
        assert!(!names.contains(&""));
    }

    #[test]
    fn maps_the_original_verbs() {
        let find = |n: &str| {
            VERBS
                .iter()
                .find(|v| v.names.contains(&n))
                .map(|v| (v.tool, v.sub))
        };
        assert_eq!(find("create"), Some(("cm-mesh", Some("new"))));
        assert_eq!(find("share"), Some(("cm-mesh", Some("invite"))));
        assert_eq!(find("recall"), Some(("cm-memory", Some("recall"))));
        assert_eq!(find("api-key"), Some(("cm-apikey", None)));
        assert_eq!(find("down"), Some(("cm-up", Some("down"))));
        assert_eq!(find("whoami"), Some(("cm-id", Some("whoami"))));
    }

    #[test]
    fn the_man_page_names_every_verb() {
        let words: Vec<&str> = TOOL
            .description
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .collect();
        for name in VERB_NAMES {
            assert!(
                words.contains(&name),
                "cm's description does not mention {name}"
            );
        }
    }

    #[test]
    fn unknown_verbs_get_a_suggestion() {
        let e = resolve("sned", &[]).unwrap_err();
        assert_eq!(e.msg, "unknown command \"sned\" (did you mean \"send\"?)");
        assert_eq!(e.code, crate::error::Code::Usage);
    }
}
