//! `cm-grant`: who may DM you, copy you on broadcasts, push to you with `now`, or fetch your files; blocks.

use crate::cli::{Args, Complete, Example, Sub, Tool, pos};
use crate::client::Ctx;
use crate::error::Result;
use crate::out::Out;
use crate::services::grants::{self, Grant};

const CAPS: &[&str] = &["dm", "broadcast", "now", "files", "all"];

/// `cm-grant`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-grant",
    about: "who may DM you, copy you on broadcasts, push with now, or fetch your files; block members",
    description: "cm-grant decides what other members of the mesh may do to you, and the broker enforces it for \
every client, not only this one. There are four capabilities: dm (direct messages to you or your sessions), \
broadcast (your copy of a * or @group message), now (a message with priority now, pushed even while you are \
busy) and files (listing and fetching the files you uploaded with cm-file). all is all four; the original CLI's \
file-read is files. With no decision of yours every member may do all four, as before grants existed.

cm-grant grant NAME CAP... allows those to NAME whatever everyone else may; cm-grant revoke NAME [CAP...] \
refuses them (all four when none is named). NAME is a display name, a key or the start of one, or * for \
everyone without a grant of their own: cm-grant revoke '*' now turns now into an allow list that only the \
members you grant it to are on.

cm-grant block NAME stops everything from NAME: its direct messages are refused, its broadcasts and group \
messages skip you (and only you), a message it schedules for you is refused (and one scheduled before the \
block is dropped when it fires), it can no longer list or fetch your files, and the files it shares with \
you are no longer listed or fetched. cm-grant unblock NAME lifts the block; the grants you gave NAME stay as they \
were. Blocks and grants are about members: every session of NAME, now and later, is covered. Messages stored for \
you before a block are still delivered; topics are shared rooms and are not filtered.

What the sender sees. A direct message you do not take (blocked, or dm refused) is refused: cm-send exits with \
status 7 and says \"blocked by recipient grants (sender lacks dm capability)\", the same words for a block and \
a missing grant, so the sender learns that you do not take its messages but not why. A broadcast or group \
message skips you without a word to the sender. A message with priority now that you have not granted now to \
is delivered as next: it is pushed when you are idle, and it is not refused.

cm-grant list (also cm-grant grants) prints what everyone may do, then each member you decided something about. \
With --json each line is {\"type\":\"grant\", \"name\", \"pubkey\", \"blocked\", \"caps\", \"granted\", \
\"revoked\"}: caps is what the member may do now, granted and revoked are your decisions about it; the first \
line is everyone's (name \"*\", no pubkey). grant, revoke, block and unblock print the line of the member they \
changed. An original claudemesh broker keeps no grants: cm-grant exits with status 12 there and changes nothing.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "grant",
            aliases: &["allow"],
            about: "allow capabilities to a member, or to everyone (*)",
            args: &[
                pos("NAME").complete(Complete::Peer),
                pos("CAP").many().complete(Complete::Values(CAPS)),
            ],
            flags: &[],
        },
        Sub {
            name: "revoke",
            aliases: &["deny"],
            about: "refuse capabilities (all when none is named) to a member, or to everyone (*)",
            args: &[
                pos("NAME").complete(Complete::Peer),
                pos("CAP")
                    .optional()
                    .many()
                    .complete(Complete::Values(CAPS)),
            ],
            flags: &[],
        },
        Sub {
            name: "block",
            aliases: &[],
            about: "hear nothing from a member",
            args: &[pos("NAME").complete(Complete::Peer)],
            flags: &[],
        },
        Sub {
            name: "unblock",
            aliases: &[],
            about: "lift a block; the member's grants stay",
            args: &[pos("NAME").complete(Complete::Peer)],
            flags: &[],
        },
        Sub {
            name: "list",
            aliases: &["ls", "grants"],
            about: "what everyone may do, then each member you decided something about",
            args: &[],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-grant block spammy",
            what: "Nothing from spammy reaches you; its DMs are refused.",
        },
        Example {
            cmd: "cm-grant revoke '*' now && cm-grant grant alice now",
            what: "Only alice may interrupt you with priority now; the others' arrive as next.",
        },
        Example {
            cmd: "cm-grant revoke bob files",
            what: "Bob no longer lists or fetches the files you uploaded.",
        },
        Example {
            cmd: "cm-grant list --json | jq -r 'select(.blocked) | .name'",
            what: "Whom you blocked.",
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
    let who = args.pos(0).unwrap_or_default();
    let rest: Vec<&str> = args
        .positionals
        .iter()
        .skip(1)
        .map(String::as_str)
        .collect();
    let (key, after, what) = match args.sub {
        Some("grant") => {
            let caps = grants::caps(&rest, false)?;
            let what = format!("granted {} to", caps.join(", "));
            let (key, after) = grants::set(&ctx, who, caps, true)?;
            (key, after, what)
        }
        Some("revoke") => {
            let caps = grants::caps(&rest, true)?;
            let what = format!("revoked {} from", caps.join(", "));
            let (key, after) = grants::set(&ctx, who, caps, false)?;
            (key, after, what)
        }
        Some(b @ ("block" | "unblock")) => {
            let (key, after) = grants::block(&ctx, who, b == "block")?;
            (key, after, format!("{b}ed"))
        }
        _ => return list(&ctx, out, &grants::list(&ctx)?),
    };
    let Some(g) = grants::about(after, &key, who) else {
        return out.line(format!("{what} {who} in mesh {}", ctx.mesh.slug));
    };
    if out.json {
        return out.json(&g);
    }
    let name = if g.name == "*" { "everyone" } else { &g.name };
    out.line(format!(
        "{what} {name} in mesh {}: {}",
        ctx.mesh.slug,
        may(&g)
    ))
}

/// `may dm, broadcast, files`, `nothing from bob reaches you (blocked)`.
fn may(g: &Grant) -> String {
    if g.blocked {
        return format!("nothing from {} reaches you (blocked)", g.name);
    }
    if g.caps.is_empty() {
        return "may do nothing".into();
    }
    format!("may {}", g.caps.join(", "))
}

fn list(ctx: &Ctx, out: &mut Out, found: &[Grant]) -> Result<()> {
    if out.json {
        for g in found {
            out.json(g)?;
        }
        return Ok(());
    }
    let nw = found
        .iter()
        .map(|g| g.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    out.line(format!("{:nw$}  MAY", "MEMBER"))?;
    for g in found {
        let mut line = format!("{:nw$}  {}", g.name, g.caps.join(", "));
        if g.name == "*" {
            line = format!(
                "{:nw$}  {}  (everyone else)",
                "*",
                if g.caps.is_empty() {
                    "-".into()
                } else {
                    g.caps.join(", ")
                }
            );
        } else if g.blocked {
            line = format!("{:nw$}  -  (blocked)", g.name);
        } else if g.caps.is_empty() {
            line = format!("{:nw$}  -", g.name);
        }
        out.line(line)?;
    }
    // The `*` line is always there: what everyone without a decision of their own may do.
    if found.len() == 1 {
        out.line(format!(
            "no member has grants or a block of their own in mesh {}",
            ctx.mesh.slug
        ))?;
    }
    Ok(())
}
