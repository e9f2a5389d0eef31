//! `cm-peers`: who is in the mesh, connected or not.

use crate::cli::{Args, Example, Flag, Tool, flag};
use crate::client::Ctx;
use crate::error::{Error, Result};
use crate::messaging::roster::{self, Roster};
use crate::out::Out;

const ALL: Flag = flag(
    "all",
    "also list control-plane connections (one-shot tools)",
);

/// `cm-peers`' flag table.
pub static TOOL: Tool = Tool {
    name: "cm-peers",
    about: "list the peers of a mesh: live sessions and offline members",
    description: "cm-peers lists who is in the mesh: every live session (a Claude Code session, a cm-pipe, ...), \
then every member that has no session connected, as \"offline\" (a message to it waits until it returns) or \
\"online\" (connected only through tools). Without --mesh it lists every joined mesh.

The connections of one-shot tools like this one (control-plane connections) are hidden unless --all is given.

With --json, one line per peer: {\"type\":\"peer\", \"mesh\", \"name\", \"pubkey\", \"member_pubkey\", \
\"role\" (admin or member), \"peer_role\" (session, control-plane or member), \"status\" (idle, working, dnd; \
online or offline for a member row), \"online\", \"summary\", \"groups\", \"hostname\", \"cwd\", \"is_self\", ...}. \
pubkey is the key to send to.",
    section: 1,
    args: &[],
    flags: &[ALL],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-peers",
            what: "Who is here, in every joined mesh.",
        },
        Example {
            cmd: "cm-peers --json | jq -r 'select(.status == \"idle\") | .name'",
            what: "The names of idle sessions.",
        },
    ],
    env: &[
        ("CLAUDEMESH_MESH", "The mesh to use when --mesh is not given."),
    ],
};

fn fetch(ctx: &Ctx) -> Result<Roster> {
    let mut conn = ctx.connect()?;
    let own_key = conn.sender().public_hex();
    let r = Roster::fetch(&mut conn, &ctx.mesh.slug, &ctx.mesh.pubkey, &own_key)?;
    conn.close();
    Ok(r)
}

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let ctxs = Ctx::load_all(args.mesh.as_deref())?;
    let all = args.has(&ALL);
    let mut failed: Option<Error> = None;
    for (i, ctx) in ctxs.iter().enumerate() {
        let r = match fetch(ctx) {
            Ok(r) => r,
            Err(e) if ctxs.len() == 1 => return Err(e),
            Err(e) => {
                let e = e.context(format!("mesh {}", ctx.mesh.slug));
                if let Some(prev) = failed.replace(e) {
                    crate::out::warn(TOOL.name, prev);
                }
                continue;
            }
        };
        let (rows, hidden) = r.rows(all);
        if out.json {
            for row in &rows {
                out.json(row)?;
            }
            continue;
        }
        if i > 0 {
            out.line("")?;
        }
        for line in roster::table(&r.mesh, &rows, hidden) {
            out.line(line)?;
        }
    }
    failed.map_or(Ok(()), Err)
}
