//! `cm-context`: share what this session learned, and find what the others did.

use crate::cli::{Args, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::Result;
use crate::out::{Out, short_id};
use crate::services::context::{self, Context, NewContext};
use crate::time::{fmt_ago, now_ms, parse_rfc3339};

const FILES: Flag = flag(
    "files",
    "files this session read, separated by commas (repeat for more)",
)
.value("LIST")
.repeat();
const FINDINGS: Flag = flag(
    "findings",
    "key findings, separated by commas (repeat for more)",
)
.value("LIST")
.repeat();
const FINDING: Flag = flag(
    "finding",
    "one key finding, commas and all (repeat for more)",
)
.short('f')
.value("TEXT")
.repeat();
const TAGS: Flag = flag("tags", "tags, separated by commas (repeat for more)")
    .short('t')
    .value("LIST")
    .repeat();

/// `cm-context`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-context",
    about: "share what this session learned; find what the others did",
    description: "cm-context keeps, for each session of the mesh, a summary of what it learned: the files it read, \
its key findings and tags, so another session finds it before it reads the same files again. cm-context share \
SUMMARY shares one, with --files a.rs,b.rs, --findings x,y (or --finding for one that holds commas) and --tags \
t1,t2. A session has one context: sharing again replaces the one it shared before, under the same name. Two \
sessions of one member under different names (CLAUDEMESH_DISPLAY_NAME) keep one each. Every other session of \
the mesh gets a context_shared event (cm-pipe prints it as {\"type\":\"system\", \"event\":\"context_shared\", \
...}).

cm-context get QUERY prints the contexts whose summary, findings or files hold QUERY, in any case, or that carry \
it as a tag (a leading # is dropped); the words of QUERY are searched together, as one phrase. At most 20, the \
newest first. cm-context list prints every context of the mesh, the newest first (at most 100).

With --json every context is one JSON object: {\"type\":\"context\", \"peer_name\", \"summary\", \"files_read\", \
\"key_findings\", \"tags\", \"updated_at\"}; share prints {\"type\":\"context_shared\", \"id\", \"shared\":true, \
\"summary\", \"replaced\"}.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "share",
            aliases: &["set"],
            about: "share this session's context, replacing its earlier one",
            args: &[pos("SUMMARY").many()],
            flags: &[FILES, FINDINGS, FINDING, TAGS],
        },
        Sub {
            name: "get",
            aliases: &["search", "find"],
            about: "the contexts that mention a word or carry a tag",
            args: &[pos("QUERY").many()],
            flags: &[],
        },
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "every context of the mesh, newest first",
            args: &[],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-context share 'token refresh lives in auth/session.rs' --files src/auth/session.rs \
--findings 'refresh races on reconnect' --tags auth",
            what: "Share what this session found out.",
        },
        Example {
            cmd: "cm-context get auth",
            what: "Who has looked at auth already, and what they found.",
        },
        Example {
            cmd: "cm-context list --json | jq -r '.peer_name + \": \" + .summary'",
            what: "One line per session.",
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
        (
            "CLAUDEMESH_DISPLAY_NAME",
            "The name to share under; a context is kept per member and name.",
        ),
    ],
};

/// The values of a comma-list flag, each split at its commas.
fn split<'a>(args: &'a Args, f: &Flag) -> Vec<&'a str> {
    args.values(f)
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let words = args.positionals.join(" ");
    match args.sub {
        Some("share") => {
            let mut findings = split(args, &FINDINGS);
            findings.extend(args.values(&FINDING));
            let new = NewContext {
                files: split(args, &FILES),
                findings,
                tags: split(args, &TAGS),
            };
            let s = context::share(&ctx, &words, &new)?;
            if out.json {
                let mut v = serde_json::json!({"type": "context_shared", "id": s.id, "shared": true,
                    "summary": words.trim()});
                if let Some(r) = s.replaced {
                    v["replaced"] = r.into();
                }
                return out.json(&v);
            }
            let what = if s.replaced == Some(true) {
                "replaced your earlier context"
            } else {
                "shared context"
            };
            out.line(format!(
                "{what} {} in mesh {}",
                short_id(&s.id),
                ctx.mesh.slug
            ))
        }
        Some("get") => {
            let found = context::get(&ctx, &words)?;
            if found.is_empty() && !out.json {
                return out.line(format!("no context matches {:?}", words.trim()));
            }
            print(out, &found, true)
        }
        _ => {
            let found = context::list(&ctx)?;
            if found.is_empty() && !out.json {
                return out.line(format!("no context shared in mesh {}", ctx.mesh.slug));
            }
            print(out, &found, false)
        }
    }
}

/// Each context as a JSON line, or as a block: who and when, the summary, and with `full` its files and findings.
fn print(out: &mut Out, found: &[Context], full: bool) -> Result<()> {
    if out.json {
        for c in found {
            out.json(c)?;
        }
        return Ok(());
    }
    let now = now_ms();
    for c in found {
        let ago = match parse_rfc3339(&c.updated_at).map(|t| fmt_ago(now - t)) {
            Ok(a) if a == "now" => a,
            Ok(a) => format!("{a} ago"),
            Err(_) => c.updated_at.clone(),
        };
        let tags: String = c.tags.iter().map(|t| format!(" #{t}")).collect();
        out.line(format!("{}  {ago}{tags}", c.peer_name))?;
        for l in c.summary.lines() {
            out.line(format!("  {l}"))?;
        }
        if full && !c.files_read.is_empty() {
            out.line(format!("  files: {}", c.files_read.join(", ")))?;
        }
        if full {
            for f in &c.key_findings {
                out.line(format!("  - {f}"))?;
            }
        }
    }
    Ok(())
}
