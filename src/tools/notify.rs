//! `cm-notify`: the mentions of me in topic messages.

use crate::cli::{Args, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::Result;
use crate::notify;
use crate::out::Out;
use crate::topics;

const ALL: Flag = flag("all", "include mentions already read");

/// `cm-notify`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-notify",
    about: "list and clear the mentions of you in topic messages",
    description: "A topic message that names you (@name, matching your display name in the mesh, in any case) \
leaves a notification. cm-notify list shows the unread ones, newest first, each opened with its topic's key: \
topic, sender, message id and text. --all shows the read ones too. Listing does not mark anything read: \
cm-notify read does, for the ids given or for all of them.

With --json, list writes one line per mention: {\"type\":\"notification\", \"id\", \"message_id\", \"topic\", \
\"topic_id\", \"from\", \"text\", \"read\", \"created_at\"} (\"decrypt_error\" instead of \"text\" when it cannot \
be read).",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "list unread mentions (with --all, every one)",
            args: &[],
            flags: &[ALL],
        },
        Sub {
            name: "read",
            aliases: &["clear"],
            about: "mark mentions read: these ids, or all of them",
            args: &[pos("ID").optional().many()],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-notify list",
            what: "What you were mentioned in and have not read.",
        },
        Example {
            cmd: "cm-notify list --json | jq -r .text",
            what: "Just the texts.",
        },
        Example {
            cmd: "cm-notify read",
            what: "Mark every mention read.",
        },
    ],
    env: &[
        ("CLAUDEMESH_MESH", "The mesh to use when --mesh is not given."),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let mut conn = ctx.connect()?;
    if args.sub == Some("read") {
        let n = notify::read(&mut conn, &args.positionals)?;
        conn.close();
        if out.json {
            return out.json(&serde_json::json!({"type": "notifications_read", "marked": n}));
        }
        return out.line(format!(
            "marked {n} mention{} read",
            if n == 1 { "" } else { "s" }
        ));
    }
    let member = topics::member_key(&ctx)?;
    let list = notify::list(&mut conn, &member, args.has(&ALL))?;
    conn.close();
    if list.is_empty() && !out.json {
        return out.line(if args.has(&ALL) {
            "no mentions"
        } else {
            "no unread mentions"
        });
    }
    for m in &list {
        if out.json {
            out.json(m)?;
        } else {
            out.line(m.words())?;
        }
    }
    Ok(())
}
