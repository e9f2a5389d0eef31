//! `cm-apikey`: keys for the broker's REST surface.

use crate::apikey;
use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::{Error, Result};
use crate::out::Out;

const CAP: Flag = flag(
    "cap",
    "what it may do: send,read,state_write,admin (default send,read)",
)
.value("CAPS")
.complete(Complete::Values(&[
    "send,read",
    "read",
    "send",
    "state_write",
    "admin",
]));
const SCOPE: Flag = flag("scope", "only this topic (repeat for several)")
    .value("TOPIC")
    .repeat()
    .complete(Complete::Topic);
const EXPIRES: Flag = flag(
    "expires",
    "stop working after a duration (30d) or at a time",
)
.value("WHEN");

/// `cm-apikey`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-apikey",
    about: "create, list and revoke API keys for the broker's REST surface",
    description: "An API key lets a program that speaks only HTTP use the mesh as you: post to topics, read \
their history, follow them as a server-sent event stream, list peers, members and mentions, under /api/v1 on the \
broker's own port, with the header Authorization: Bearer cm_.... See cm-broker(8) for the endpoints.

cm-apikey create makes a key and prints its secret once; the broker keeps only a hash of it. --cap limits what it \
may do (send, read, state_write, admin; default send,read; admin only for mesh admins), --scope limits it to \
topics (repeat it for several), --expires ends it after a duration (30d) or at a time (RFC 3339). cm-apikey list \
shows your keys (a mesh admin sees every key of the mesh), whether each is active, revoked or expired, and when it \
was last used. cm-apikey revoke ID ends a key at once, by its id or the start of it; open streams made with it \
close.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "create",
            aliases: &["new", "issue"],
            about: "make a key and print its secret once",
            args: &[pos("LABEL").optional()],
            flags: &[CAP, SCOPE, EXPIRES],
        },
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "list keys",
            args: &[],
            flags: &[],
        },
        Sub {
            name: "revoke",
            aliases: &["rm"],
            about: "revoke a key by its id or the start of it",
            args: &[pos("ID")],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-apikey create ci --scope deploys --expires 30d",
            what: "A key for CI that can only reach #deploys, for a month.",
        },
        Example {
            cmd: "curl -H \"Authorization: Bearer $KEY\" http://127.0.0.1:7900/api/v1/topics",
            what: "Use it.",
        },
        Example {
            cmd: "cm-apikey revoke 1a2b3c",
            what: "Revoke it.",
        },
    ],
    env: &[
        ("CLAUDEMESH_MESH", "The mesh to use when --mesh is not given."),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    match args.sub {
        Some("create") => create(&ctx, args, out),
        Some("revoke") => {
            let id = args.pos(0).unwrap_or_default().trim();
            if id.is_empty() {
                return Err(Error::usage("revoke needs a key id"));
            }
            let mut conn = ctx.connect()?;
            let id = apikey::revoke(&mut conn, id)?;
            conn.close();
            if out.json {
                return out.json(&serde_json::json!({"type": "apikey_revoked", "id": id}));
            }
            out.line(format!("revoked {id}"))
        }
        _ => {
            let mut conn = ctx.connect()?;
            let keys = apikey::list(&mut conn)?;
            conn.close();
            if keys.is_empty() && !out.json {
                return out.line("no API keys: cm-apikey create");
            }
            for k in &keys {
                if out.json {
                    out.json(k)?;
                } else {
                    out.line(k.words())?;
                }
            }
            Ok(())
        }
    }
}

fn create(ctx: &Ctx, args: &Args, out: &mut Out) -> Result<()> {
    let caps: Vec<String> = args
        .value(&CAP)
        .unwrap_or("send,read")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    if caps.is_empty() {
        return Err(Error::usage(
            "--cap needs at least one of send, read, state_write, admin",
        ));
    }
    let scopes: Vec<String> = args
        .values(&SCOPE)
        .iter()
        .map(|s| s.trim().trim_start_matches('#').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let expires = args.value(&EXPIRES).map(apikey::expiry).transpose()?;
    let label = match args.pos(0) {
        Some(l) => l.to_string(),
        None => format!(
            "{}-{}",
            TOOL.name,
            crate::time::fmt_rfc3339(crate::time::now_ms())
        ),
    };
    let mut conn = ctx.connect()?;
    let k = apikey::create(
        &mut conn,
        &label,
        caps,
        (!scopes.is_empty()).then_some(scopes),
        expires.clone(),
    )?;
    conn.close();
    if out.json {
        return out.json(
            &serde_json::json!({"type": "apikey", "id": k.id, "label": k.label,
            "secret": k.secret, "prefix": k.prefix, "capabilities": k.capabilities,
            "topic_scopes": k.topic_scopes, "expires_at": expires, "created_at": k.created_at}),
        );
    }
    out.line(format!(
        "created key {} ({}; {}{})",
        k.id,
        k.label,
        k.capabilities.join(","),
        k.topic_scopes
            .as_ref()
            .map(|s| format!("; only {}", s.join(",")))
            .unwrap_or_default()
    ))?;
    out.line("the secret, shown only now (the broker keeps just a hash):")?;
    out.line(k.secret)
}
