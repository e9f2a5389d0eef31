//! `cm-state`: shared key/value state of a mesh, with compare-and-set and a stream of changes.

use crate::cli::{Args, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::{Error, Result};
use crate::out::{self, Out};
use crate::services::state::{self, Entry, show_value};
use crate::time::{fmt_ago, now_ms, parse_rfc3339};

const IF_VERSION: Flag = flag(
    "if-version",
    "write only if the key is at version N (0: only if it is not set)",
)
.value("N");

/// `cm-state`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-state",
    about: "get, set, list, delete and watch the mesh's shared state",
    description: "cm-state reads and writes the mesh's shared state: JSON values under keys, the same for every \
member and session of the mesh. cm-state set KEY VALUE stores VALUE as JSON if it parses as JSON (42, true, \
{\"a\":1}, \"quoted\") and as a string otherwise. Each write of a key is atomic and bumps its version.

cm-state set --if-version N writes only if the key is still at version N, and --if-version 0 only if the key is \
not set; otherwise it changes nothing and exits with status 11 (a conflict), naming the key's current version. Two sessions can \
so take turns on a key without a lock: get it, work out the new value, set it with the version you read, and read \
again on a conflict. cm-state del takes --if-version too.

cm-state get KEY prints the value alone (a string as it is, anything else as JSON), ready for $(...); a key that \
is not set exits with status 5. cm-state list prints every key. cm-state watch [KEY...] prints each change other \
connections make to those keys (every key when none is given) as it happens, until interrupted; a lost \
connection is made again, and changes made while it was down are not replayed.

Inside a session started by cm launch the tool speaks as that session; elsewhere as your member. With --json \
every line is one JSON object: {\"type\":\"state\",...} for get, set and list, {\"type\":\"state_change\",...} for \
watch.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "get",
            aliases: &[],
            about: "print a key's value",
            args: &[pos("KEY")],
            flags: &[],
        },
        Sub {
            name: "set",
            aliases: &["put"],
            about: "set a key to a JSON value or a string",
            args: &[pos("KEY"), pos("VALUE")],
            flags: &[IF_VERSION],
        },
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "list every key",
            args: &[],
            flags: &[],
        },
        Sub {
            name: "del",
            aliases: &["rm", "delete"],
            about: "delete a key",
            args: &[pos("KEY")],
            flags: &[IF_VERSION],
        },
        Sub {
            name: "watch",
            aliases: &[],
            about: "print changes to keys as they happen",
            args: &[pos("KEY").optional().many()],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-state set deploy/lock '{\"by\":\"alice\"}' --if-version 0",
            what: "Take the deploy lock, unless someone holds it.",
        },
        Example {
            cmd: "cm-state get build/status",
            what: "The value alone, for $(...).",
        },
        Example {
            cmd: "cm-state watch build/status --json | jq -r .value",
            what: "Follow one key.",
        },
        Example {
            cmd: "cm-state del deploy/lock --if-version 3",
            what: "Release the lock, if it is still the one you took.",
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
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let key = || args.pos(0).unwrap_or_default();
    match args.sub {
        Some("get") => {
            let e = state::get(&ctx, key())?;
            if out.json {
                return out.json(&e);
            }
            out.line(show_value(&e.value))
        }
        Some("set") => {
            let value = state::parse_value(args.pos(1).unwrap_or_default());
            let e = state::set(&ctx, key(), value, if_version(args)?)?;
            if out.json {
                return out.json(&e);
            }
            out.line(format!("{} = {} (version {})", e.key, e.value, e.version))
        }
        Some("del") => {
            state::del(&ctx, key(), if_version(args)?)?;
            if out.json {
                return out.json(&serde_json::json!({"type": "deleted", "key": key()}));
            }
            out.line(format!("deleted {}", key()))
        }
        Some("watch") => {
            let keys = args.positionals.clone();
            state::watch(
                &ctx,
                &keys,
                |c| {
                    if out.json {
                        return out.json(c);
                    }
                    if c.deleted {
                        return out.line(format!("{} deleted by {}", c.key, c.updated_by));
                    }
                    let v = c
                        .version
                        .map(|v| format!(", version {v}"))
                        .unwrap_or_default();
                    out.line(format!("{} = {} (by {}{v})", c.key, c.value, c.updated_by))
                },
                |note| out::warn(TOOL.name, note),
            )
        }
        _ => list(&ctx, out),
    }
}

fn if_version(args: &Args) -> Result<Option<i64>> {
    args.value(&IF_VERSION)
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                Error::usage(format!(
                    "--if-version: expected a version (0 or more), got {v:?}"
                ))
            })
        })
        .transpose()
}

fn list(ctx: &Ctx, out: &mut Out) -> Result<()> {
    let entries: Vec<Entry> = state::list(ctx)?;
    if out.json {
        for e in &entries {
            out.json(e)?;
        }
        return Ok(());
    }
    if entries.is_empty() {
        return out.line(format!("no state in mesh {}", ctx.mesh.slug));
    }
    let wk = entries
        .iter()
        .map(|e| e.key.chars().count())
        .max()
        .unwrap_or(0);
    let now = now_ms();
    for e in &entries {
        let ago = parse_rfc3339(&e.updated_at)
            .map_or_else(|_| e.updated_at.clone(), |t| fmt_ago(now - t));
        out.line(format!(
            "{:wk$}  {}  (v{}, {} {ago})",
            e.key, e.value, e.version, e.updated_by
        ))?;
    }
    Ok(())
}
