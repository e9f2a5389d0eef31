//! Inbound webhooks: URLs on the broker that turn a signed HTTP POST into a message to a member, a group,
//! everyone or a topic without a key. The secret is shown once, when the webhook is made.

use serde::Serialize;

use crate::client::{Conn, Ctx, Requester, ask_once as ask, transport, unexpected};
use crate::error::{Error, Result};
use crate::messaging::roster::Roster;
use crate::target::{self, Resolved, Target};
use crate::wire::{self, Frame};

/// A webhook just made: the only time its secret is seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    pub r#type: &'static str,
    /// The original CLI's `{ok:true, name, url, secret}`.
    pub ok: bool,
    pub name: String,
    pub url: String,
    pub secret: String,
    /// Where its posts go, as the broker stored it (`*` on an original broker, which sends to everyone).
    pub to: String,
}

/// A webhook as `cm-webhook list --json` prints it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    pub r#type: &'static str,
    pub name: String,
    pub url: String,
    pub to: String,
    /// The member's name when `to` is a member's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    pub created_at: String,
    pub active: bool,
}

/// A URL as the broker gave it, made whole: cm-broker sends the path, for the broker's address as this
/// machine reaches it (`wss://h/ws` → `https://h/hooks/<id>`); an original broker sends a whole URL.
fn whole_url(ctx: &Ctx, url: &str) -> String {
    if !url.starts_with('/') {
        return url.to_string();
    }
    match transport::parse_url(&ctx.mesh.broker_url) {
        Ok(b) => format!("{}{url}", b.http),
        Err(_) => url.to_string(),
    }
}

/// The `to` of `create_webhook` for `--to`: `*`, `@group` and `#topic` as they are, a name or key prefix as the
/// member key it names (a webhook's posts are sealed to a member, so every session of it reads them).
fn target_spec(conn: &mut Conn, ctx: &Ctx, to: &str) -> Result<String> {
    let t = Target::parse(to)?;
    if matches!(t, Target::Everyone | Target::Group(_) | Target::Topic(_)) {
        return Ok(target::resolve(&t, &[])?.spec());
    }
    let own_key = conn.sender().public_hex();
    let roster = Roster::fetch(conn, &ctx.mesh.slug, &ctx.mesh.pubkey, &own_key)?;
    let candidates = roster.candidates();
    Ok(match target::resolve(&t, &candidates)? {
        Resolved::Peer { peer: Some(c), .. } => c.member_pubkey.clone(),
        r => r.spec(),
    })
}

/// Makes the webhook `name`, its posts going to `to` (a name, key, `*`, `@group` or `#topic`; everyone when
/// `None`, as the original).
pub fn create(ctx: &Ctx, name: &str, to: Option<&str>) -> Result<Created> {
    let mut conn = ctx.connect()?;
    // Everyone is what `create_webhook` without `to` means, on any broker, the original too.
    let to = match to {
        Some(t) => Some(target_spec(&mut conn, ctx, t)?).filter(|t| t != "*"),
        None => None,
    };
    let c = wire::CreateWebhook {
        name: name.to_string(),
        to,
        ..wire::CreateWebhook::default()
    };
    let reply = conn.ask(c.into());
    conn.close();
    match reply? {
        Frame::WebhookAck(a) if !a.secret.is_empty() => Ok(Created {
            r#type: "created",
            ok: true,
            url: whole_url(ctx, &a.url),
            to: a.to.unwrap_or_else(|| "*".into()),
            name: a.name,
            secret: a.secret,
        }),
        f => Err(unexpected("create_webhook", &f)),
    }
}

/// The mesh's webhooks.
pub fn list(ctx: &Ctx) -> Result<Vec<Hook>> {
    match ask(ctx, wire::ListWebhooks::default())? {
        Frame::WebhookList(l) => Ok(l
            .webhooks
            .into_iter()
            .map(|w| Hook {
                r#type: "webhook",
                url: whole_url(ctx, &w.url),
                name: w.name,
                to: w.to.unwrap_or_else(|| "*".into()),
                to_name: w.to_name,
                created_by: w.created_by,
                created_at: w.created_at,
                active: w.active,
            })
            .collect()),
        f => Err(unexpected("list_webhooks", &f)),
    }
}

/// Deletes the webhook `name`: its URL answers 404 from then on.
pub fn delete(ctx: &Ctx, name: &str) -> Result<()> {
    let d = wire::DeleteWebhook {
        name: name.to_string(),
        ..wire::DeleteWebhook::default()
    };
    match ask(ctx, d)? {
        Frame::WebhookAck(_) => Ok(()),
        f => Err(unexpected("delete_webhook", &f)),
    }
}

/// A webhook name as the broker takes it, checked here so that a bad one costs no connection.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{name:?} is not a webhook name: 1 to 64 characters of A-Z a-z 0-9 _ - ."
        )))
    }
}
