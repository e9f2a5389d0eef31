//! `cm-webhook`: URLs on the broker that turn a signed HTTP POST into a message.

use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::Result;
use crate::out::Out;
use crate::services::webhooks;

const TO: Flag = flag(
    "to",
    "where a post's body goes: a member (NAME), a group (@group), a topic without a key (#topic) or everyone \
     (*, the default)",
)
.short('t')
.value("PEER|@GROUP|#TOPIC")
.complete(Complete::Peer);

/// `cm-webhook`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-webhook",
    about: "URLs on the broker that turn a signed HTTP POST into a message",
    description: "cm-webhook makes inbound webhooks: a URL on the broker's own port that a service (GitHub, CI, \
a monitoring alert, curl) POSTs JSON to, and that delivers the body as a message from webhook:NAME. \
cm-webhook create NAME prints the URL and the webhook's secret, once: keep the secret where the sender \
needs it (GitHub's webhook \"Secret\" field, or the vault), because no later command shows it again. \
--to NAME sends the bodies to that member (every session of it), --to @group to the group's members, --to \
'#topic' to a topic made with cm-topic create --plaintext, and without --to to every member, as the \
original claudemesh did. Posts are sent on your behalf: for everyone and groups you are left out as from your \
own sends, and a member whose grants (cm-grant) refuse you does not get them. An encrypted topic is refused: the broker holds no topic key to seal with.

A post proves it knows the secret in one of two ways. Signed, as GitHub does: X-Hub-Signature-256: \
sha256=HEX, the HMAC-SHA256 of the body under the secret, with an X-GitHub-Delivery id that the webhook takes \
once; the same id again is refused as a replay (409). Or with Authorization: Bearer SECRET, and optionally \
X-Webhook-Timestamp: UNIX-SECONDS, refused when more than 300 seconds from the broker's clock. A body is JSON \
of at most 64 KiB (larger: 413). A bad or missing signature is 401, an unknown or deleted webhook 404, and \
too many posts at once 429; the broker logs each refusal on one line.

The broker reads a body in clear as it arrives (it has to, to check the HMAC), and stores none of it in clear: \
for members it seals the body (crypto_box_seal) to each recipient's member key, and cm-inbox, cm-pipe and \
cm-mcp show it as a message from webhook:NAME whose text is the JSON. A topic without a key holds its posts \
in plaintext, as it holds every post. The broker does keep each webhook's secret, since checking an HMAC \
needs the key itself: whoever reads the broker's data directory can sign posts, until the webhook is \
deleted.

cm-webhook list shows the mesh's webhooks (name, where they go, who made them, URL), never their secrets. \
cm-webhook delete NAME removes one (its creator or a mesh admin may): its URL answers 404 from then on. To \
rotate a secret, delete the webhook and create it again.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "create",
            aliases: &["add", "new"],
            about: "make a webhook and print its URL and secret, once",
            args: &[pos("NAME")],
            flags: &[TO],
        },
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "the mesh's webhooks, without their secrets",
            args: &[],
            flags: &[],
        },
        Sub {
            name: "delete",
            aliases: &["rm", "remove"],
            about: "delete a webhook; its URL answers 404",
            args: &[pos("NAME")],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-webhook create github --to @reviewers",
            what: "A webhook for GitHub; paste the URL and the secret into the repository's webhook settings.",
        },
        Example {
            cmd: "body='{\"status\":\"failed\"}'; sig=$(printf %s \"$body\" | openssl dgst -sha256 -hmac \"$SECRET\" | sed 's/^.* //'); curl -H \"X-Hub-Signature-256: sha256=$sig\" -H \"X-GitHub-Delivery: $(uuidgen)\" -d \"$body\" \"$URL\"",
            what: "A signed post, as GitHub makes it.",
        },
        Example {
            cmd: "curl -H \"Authorization: Bearer $SECRET\" -H \"X-Webhook-Timestamp: $(date +%s)\" -d '{\"alert\":\"disk full\"}' \"$URL\"",
            what: "The bearer form, with a timestamp.",
        },
        Example {
            cmd: "cm-webhook list",
            what: "The mesh's webhooks.",
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
    let name = args.pos(0).unwrap_or_default();
    if matches!(args.sub, Some("create" | "delete")) {
        webhooks::check_name(name)?;
    }
    let ctx = Ctx::load(args.mesh.as_deref())?;
    match args.sub {
        Some("create") => {
            let c = webhooks::create(&ctx, name, args.value(&TO))?;
            if out.json {
                return out.json(&c);
            }
            let to = match args.value(&TO) {
                Some(t) if c.to != "*" => t,
                _ => "every member",
            };
            out.line(format!("created webhook {} (posts go to {to})", c.name))?;
            out.line(format!("url:    {}", c.url))?;
            out.line(format!("secret: {}", c.secret))?;
            out.line(
                "the secret is shown this once: sign posts with it (X-Hub-Signature-256) or send it as a bearer token",
            )
        }
        Some("delete") => {
            webhooks::delete(&ctx, name)?;
            if out.json {
                return out
                    .json(&serde_json::json!({"type": "deleted", "name": name, "deleted": true}));
            }
            out.line(format!("deleted webhook {name}"))
        }
        _ => {
            let hooks = webhooks::list(&ctx)?;
            if out.json {
                return hooks.iter().try_for_each(|h| out.json(h));
            }
            if hooks.is_empty() {
                return out.line(format!("no webhooks in mesh {}", ctx.mesh.slug));
            }
            let width = |f: fn(&webhooks::Hook) -> usize, min: usize| {
                hooks.iter().map(f).max().unwrap_or(0).max(min)
            };
            let nw = width(|h| h.name.chars().count(), 4);
            let tw = width(|h| target(h).chars().count(), 2);
            let bw = width(
                |h| h.created_by.as_deref().unwrap_or("-").chars().count(),
                7,
            );
            out.line(format!(
                "{:nw$}  {:tw$}  {:bw$}  URL",
                "NAME", "TO", "MADE BY"
            ))?;
            for h in &hooks {
                out.line(format!(
                    "{:nw$}  {:tw$}  {:bw$}  {}",
                    h.name,
                    target(h),
                    h.created_by.as_deref().unwrap_or("-"),
                    h.url
                ))?;
            }
            Ok(())
        }
    }
}

/// Where a webhook's posts go, as people read it: a member by name (or the start of its key), else as stored.
fn target(h: &webhooks::Hook) -> String {
    match &h.to_name {
        Some(n) => n.clone(),
        None if h.to.len() == 64 => format!("{}…", h.to.get(..16).unwrap_or(&h.to)),
        None => h.to.clone(),
    }
}
