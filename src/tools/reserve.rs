//! `cm-reserve`: advisory reservations of paths in a repository, their conflicts, and the pre-commit hook that
//! keeps a commit off what another member holds exclusively.

use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::{Code, Error, Result};
use crate::glob::Glob;
use crate::out::{Out, notice};
use crate::reserve::{self, Conflict, Outcome, Place, Reservation, hook};
use crate::time::parse_duration;

const EXCLUSIVE: Flag = flag(
    "exclusive",
    "nobody else may reserve these paths, and their commits touching them are refused",
)
.short('x');
const TTL: Flag = flag(
    "ttl",
    "how long the reservation lasts: 30m, 1h (the default), 2d",
)
.value("DURATION");
const REASON: Flag = flag(
    "reason",
    "what you are doing, shown to whoever runs into it",
)
.short('r')
.value("TEXT");
const REPO: Flag = flag(
    "repo",
    "the repository's scope, when not the one here (see cm-reserve list --all)",
)
.value("SCOPE");
const ALL: Flag = flag("all", "list: every repository's reservations in the mesh").short('a');
const HOOK: Flag = flag(
    "hook",
    "check: as the pre-commit hook does; a broker out of reach warns and lets the commit through",
);

/// `cm-reserve`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-reserve",
    about: "reserve paths of a repository, see conflicts, and keep commits off others' exclusive paths",
    description: "cm-reserve says which paths of a git repository you are working on, so the other members of \
the mesh (and their Claude Code sessions) keep off them. Reservations are advisory: they are reported, never \
waited on, and they end on their own.

cm-reserve PATH-GLOB... reserves the paths, shared, for an hour; --exclusive makes it exclusive, --ttl sets how \
long, --reason says why. A pattern that overlaps another member's reservation where either is exclusive is a \
conflict: nothing is reserved, and cm-reserve exits with status 13 naming the holder, the pattern held, how long \
it has left and the reason (with --json every conflict is a line {\"type\":\"conflict\", \"path\", \"held\", \
\"holder\", \"exclusive\", \"reason\", \"expires_at\"}). Shared reservations of the same paths live side by side. \
Reserving a pattern you hold again renews it.

Patterns match as git's :(glob) pathspecs: * and ? never cross a /, so *.rs is the .rs files at the top and \
**/*.rs every one; src/** is everything under src; a pattern without wildcards names that path and everything \
under it, so src is the directory. They are relative to where you stand, as git's are: *.rs in src/ is src/*.rs. \
Quote them, or the shell expands them first.

A repository is known by its origin remote in one spelling (https://github.com/a/b.git and git@github.com:a/b are \
github.com/a/b), so every clone on every machine shares its reservations; without an origin, by the path of its \
root. --repo SCOPE names one outright. Reservations are a member's: the sessions of one member share them.

cm-reserve list prints the live reservations of this repository (--all: of every repository in the mesh), with \
--json as {\"type\":\"reservation\", \"id\", \"scope\", \"path\", \"exclusive\", \"reason\", \"holder\", \
\"created_at\", \"expires_at\"} lines. cm-reserve release [PATH-GLOB...] releases your own reservations of those \
patterns (exactly as reserved), or all of yours in this repository; naming one you do not hold exits with status 5.

cm-reserve check [PATH...] exits with status 13 if another member holds one of the paths exclusively; without \
paths it checks what is staged for the next commit (renames as both names). cm-reserve hook install puts that \
check into the repository's pre-commit hook (core.hooksPath honoured), so such a commit is refused with the \
holder's name and reason; git commit --no-verify commits anyway. A pre-commit hook that was there already is kept \
aside as pre-commit.claudemesh-user and run after the check; cm-reserve hook uninstall removes the hook and puts \
that one back, byte for byte. The hook lets a commit through, with a warning, when no broker answers: a \
reservation is advice, not a lock.

The words list, release, check and hook are the verbs; a path of that name is written ./list.",
    section: 1,
    args: &[pos("PATH-GLOB").optional().many().complete(Complete::File)],
    flags: &[EXCLUSIVE, TTL, REASON, REPO],
    subs: &[
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "the live reservations of this repository (--all: of the mesh)",
            args: &[],
            flags: &[ALL],
        },
        Sub {
            name: "release",
            aliases: &[],
            about: "release your reservations of these patterns, or all of yours here",
            args: &[pos("PATH-GLOB").optional().many().complete(Complete::File)],
            flags: &[],
        },
        Sub {
            name: "check",
            aliases: &[],
            about: "exit 13 if another member holds one of the paths (or the staged ones) exclusively",
            args: &[pos("PATH").optional().many().complete(Complete::File)],
            flags: &[HOOK],
        },
        Sub {
            name: "hook",
            aliases: &[],
            about: "install or uninstall the pre-commit hook",
            args: &[pos("ACTION").complete(Complete::Values(&["install", "uninstall"]))],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-reserve 'src/parser/**' --exclusive --reason 'rewriting the parser'",
            what: "Keep everyone else off the parser for an hour.",
        },
        Example {
            cmd: "cm-reserve docs --ttl 30m",
            what: "A shared reservation of the docs directory.",
        },
        Example {
            cmd: "cm-reserve list",
            what: "Who is working on what in this repository.",
        },
        Example {
            cmd: "cm-reserve release",
            what: "Done: release all of yours here.",
        },
        Example {
            cmd: "cm-reserve hook install",
            what: "Refuse commits touching what others hold exclusively.",
        },
    ],
    env: &[
        (
            "CLAUDEMESH_MESH",
            "The mesh to use when --mesh is not given.",
        ),
        (
            "CLAUDEMESH_SESSION_ID",
            "Set by cm launch: speak as that session.",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    if let Some(sub) = args.sub
        && let Some(f) = [&EXCLUSIVE, &TTL, &REASON]
            .into_iter()
            .find(|f| args.has(f))
    {
        return Err(Error::usage(format!(
            "--{} applies to reserving, not to 'cm-reserve {sub}'",
            f.long
        )));
    }
    let rest = &args.positionals;
    match args.sub {
        Some("list") => list(args, out),
        Some("release") => {
            let ctx = Ctx::load(args.mesh.as_deref())?;
            let place = Place::find(&reserve::cwd()?, args.value(&REPO))?;
            let globs = globs(&place, rest)?;
            let gone = reserve::release(&ctx, &place, &globs)?;
            if out.json {
                return gone.iter().try_for_each(|r| out.json(r));
            }
            if gone.is_empty() {
                return out.line(format!("you hold no reservations in {}", place.scope));
            }
            for r in &gone {
                out.line(format!("released {}", r.path))?;
            }
            Ok(())
        }
        Some("check") => check(args, out, rest),
        Some("hook") => hook_verb(args, out, rest),
        _ => add(args, out),
    }
}

fn globs(place: &Place, typed: &[String]) -> Result<Vec<Glob>> {
    typed.iter().map(|t| place.pattern(t)).collect()
}

fn mode(r: &Reservation) -> &'static str {
    if r.exclusive { "exclusive" } else { "shared" }
}

fn add(args: &Args, out: &mut Out) -> Result<()> {
    let ttl = args
        .value(&TTL)
        .map(|t| parse_duration(t).map_err(|e| e.context("--ttl")))
        .transpose()?;
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let place = Place::find(&reserve::cwd()?, args.value(&REPO))?;
    let globs = globs(&place, &args.positionals)?;
    let outcome = reserve::reserve(
        &ctx,
        &place,
        &globs,
        args.has(&EXCLUSIVE),
        ttl,
        args.value(&REASON),
    )?;
    match outcome {
        Outcome::Granted(made) => {
            if out.json {
                return made.iter().try_for_each(|r| out.json(r));
            }
            for r in &made {
                out.line(format!(
                    "reserved {} ({}) for {} in {}",
                    r.path,
                    mode(r),
                    reserve::left(&r.expires_at),
                    r.scope
                ))?;
            }
            Ok(())
        }
        Outcome::Refused(conflicts) => {
            conflicts_out(out, &conflicts)?;
            Err(reserve::conflict_error(
                "",
                &conflicts,
                "; nothing reserved",
            ))
        }
    }
}

/// With --json the conflicts as lines; a person reads the first in the error and the rest here.
fn conflicts_out(out: &mut Out, conflicts: &[Conflict]) -> Result<()> {
    if out.json {
        return conflicts.iter().try_for_each(|c| out.json(c));
    }
    for c in conflicts.iter().skip(1) {
        let why = c
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        out.line(format!(
            "{}: held by {} as {} for {}{why}",
            c.path,
            c.holder,
            c.held,
            reserve::left(&c.expires_at)
        ))?;
    }
    Ok(())
}

fn list(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let scope = if args.has(&ALL) {
        None
    } else {
        Some(Place::find(&reserve::cwd()?, args.value(&REPO))?.scope)
    };
    let found = reserve::list(&ctx, scope.as_deref())?;
    if out.json {
        return found.iter().try_for_each(|r| out.json(r));
    }
    if found.is_empty() {
        return out.line(match &scope {
            Some(s) => format!("no reservations in {s}"),
            None => format!("no reservations in mesh {}", ctx.mesh.slug),
        });
    }
    let pw = found
        .iter()
        .map(|r| r.path.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let hw = found
        .iter()
        .map(|r| r.holder.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    out.line(format!(
        "{:pw$}  {:9}  {:hw$}  {:5}  REASON",
        "PATH", "MODE", "HOLDER", "LEFT"
    ))?;
    let mut last = String::new();
    for r in &found {
        if args.has(&ALL) && r.scope != last {
            out.line(format!("{}:", r.scope))?;
            last = r.scope.clone();
        }
        out.line(format!(
            "{:pw$}  {:9}  {:hw$}  {:5}  {}",
            r.path,
            mode(r),
            r.holder,
            reserve::left(&r.expires_at),
            r.reason.as_deref().unwrap_or("-")
        ))?;
    }
    Ok(())
}

fn check(args: &Args, out: &mut Out, paths: &[String]) -> Result<()> {
    let in_hook = args.has(&HOOK);
    let found = (|| {
        let ctx = Ctx::load(args.mesh.as_deref())?;
        let place = Place::find(&reserve::cwd()?, args.value(&REPO))?;
        let paths = match (paths.is_empty(), &place.repo) {
            (true, Some(repo)) => repo.staged()?,
            (true, None) => {
                return Err(Error::usage(
                    "check: name the PATHs, or run it in a work tree",
                ));
            }
            (false, _) => globs(&place, paths)?.iter().map(Glob::to_string).collect(),
        };
        reserve::check(&ctx, &place, &paths)
    })();
    let conflicts = match found {
        Ok(c) => c,
        // Advice must not stop work: with no broker, or no mesh here, the hook lets the commit through.
        Err(e)
            if in_hook
                && matches!(
                    e.code,
                    Code::Network | Code::Unknown | Code::NotFound | Code::Auth | Code::Unsupported
                ) =>
        {
            notice(format!("reservations not checked: {e}"));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if conflicts.is_empty() {
        return Ok(());
    }
    conflicts_out(out, &conflicts)?;
    let (what, hint) = if in_hook {
        (
            "commit refused: ",
            "; git commit --no-verify commits anyway",
        )
    } else {
        ("", "")
    };
    Err(reserve::conflict_error(what, &conflicts, hint))
}

fn hook_verb(args: &Args, out: &mut Out, rest: &[String]) -> Result<()> {
    let repo = reserve::Repo::at(&reserve::cwd()?)?;
    let done = match rest.first().map(String::as_str) {
        Some("install") => {
            let c = crate::multicall::command("cm-reserve");
            let command: Vec<String> = std::iter::once(c.program).chain(c.args).collect();
            hook::install(&repo, &command, args.mesh.as_deref())?
        }
        Some("uninstall" | "remove") => hook::uninstall(&repo)?,
        _ => return Err(Error::usage("hook: install or uninstall")),
    };
    let (state, hook, user) = match &done {
        hook::Done::Installed { hook, kept } => ("installed", hook, kept.as_ref()),
        hook::Done::Updated { hook } => ("updated", hook, None),
        hook::Done::Removed { hook, restored } => ("removed", hook, restored.as_ref()),
    };
    if out.json {
        return out.json(&serde_json::json!({
            "type": "hook", "state": state, "path": hook.display().to_string(),
            "user_hook": user.map(|p| p.display().to_string()),
        }));
    }
    out.line(format!("{state} the pre-commit hook {}", hook.display()))?;
    match (&done, user) {
        (hook::Done::Installed { .. }, Some(k)) => out.line(format!(
            "your own hook is kept as {} and runs after the check",
            k.display()
        )),
        (hook::Done::Removed { .. }, Some(_)) => out.line("your own hook is back as it was"),
        _ => Ok(()),
    }
}
