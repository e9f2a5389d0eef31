//! Inbound webhooks: `create_webhook`, `list_webhooks`, `delete_webhook`, and `POST /hooks/<id>`, which turns a
//! signed body into a message to a member, a group, everyone, or a topic without a key.
//!
//! A post proves it knows the webhook's secret in one of two ways: GitHub's `X-Hub-Signature-256:
//! sha256=<hex HMAC-SHA256 of the body>` with its `X-GitHub-Delivery` id, which the webhook takes once (a repeat
//! is a replay, 409); or `Authorization: Bearer <secret>`, with an optional `X-Webhook-Timestamp` (Unix seconds)
//! that must be within [`WINDOW_S`] of the broker's clock, and an optional `X-GitHub-Delivery` taken once too.
//! The broker reads the body in clear on the way in (it checks the HMAC over it) and stores none of it so: for a
//! member, a group or everyone it seals the body (`crypto_box_seal`) to each recipient's member key, which needs
//! no secret of the broker's; a topic it cannot seal for, holding no topic key, so only a topic without a key
//! takes webhook posts, whose bodies are base64 plaintext like every post there.
//!
//! Each refusal is answered with `{ok:false, error}` and logged on one line by [`Hub::log_refused`].

use std::collections::HashMap;

use serde_json::json;

use super::hub::{Hub, PKey};
use super::net::{ConnId, Io, Request, Response};
use super::routing::Missing;
use super::store::{Message, NewDelivery, Topic, WebhookRow, new_id};
use super::topics::{NewPost, Poster};
use crate::crypto::{self, b64, hex};
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, Priority, codes};

/// The largest body a webhook takes: the transport's limit on every request body, so a larger one is refused
/// with 413 before it is read.
pub(super) const MAX_BODY: usize = super::net::MAX_BODY;
/// How far an `X-Webhook-Timestamp` may be from the broker's clock.
pub(super) const WINDOW_S: i64 = 300;
const MAX_NAME: usize = 64;
const MAX_DELIVERY_ID: usize = 128;
/// The original's code for a bad `create_webhook`.
const INVALID_WEBHOOK: &str = "invalid_webhook";
const WEBHOOK_EXISTS: &str = "webhook_exists";
const WEBHOOK_NOT_FOUND: &str = "webhook_not_found";

/// What a message from a webhook says it came from, in `senderPubkey` and `senderName` (the original's form).
pub(super) fn sender_of(name: &str) -> String {
    format!("webhook:{name}")
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn fail(status: u16, error: &str) -> Response {
    Response::json(status, &json!({"ok": false, "error": error}))
}

fn internal(e: &crate::error::Error) -> Response {
    super::log::error("webhook post failed", &[("error", e)]);
    fail(500, "storage error")
}

/// Compares without stopping at the first difference, so the time taken does not tell how much of a guess was
/// right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a post proved it knows the secret, or the refusal.
fn authenticate(req: &Request, w: &WebhookRow, now_s: i64) -> Result<(), Response> {
    if let Some(sig) = req.header("x-hub-signature-256") {
        let want = hex::encode(&crypto::hmac_sha256(w.secret.as_bytes(), &req.body));
        let got = sig.trim().strip_prefix("sha256=").unwrap_or_default();
        if !same(got.to_ascii_lowercase().as_bytes(), want.as_bytes()) {
            return Err(fail(401, "bad_signature"));
        }
        if req
            .header("x-github-delivery")
            .is_none_or(|d| d.trim().is_empty())
        {
            return Err(fail(
                400,
                "a signed post names its delivery in X-GitHub-Delivery, so that a replay of it can be refused",
            ));
        }
        return Ok(());
    }
    let Some(token) = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Err(fail(401, "missing_signature"));
    };
    if !same(token.as_bytes(), w.secret.as_bytes()) {
        return Err(fail(401, "bad_token"));
    }
    if let Some(ts) = req.header("x-webhook-timestamp") {
        let Ok(ts) = ts.trim().parse::<i64>() else {
            return Err(fail(400, "X-Webhook-Timestamp is Unix seconds"));
        };
        if (now_s - ts).abs() > WINDOW_S {
            return Err(fail(401, "timestamp_outside_window"));
        }
    }
    Ok(())
}

impl Hub {
    /// Where a webhook posts to, as `webhook_ack` and `webhook_list` say: under `--public-url`, else the path,
    /// which the client puts its broker's address in front of.
    fn hook_url(&self, id: &str) -> String {
        format!(
            "{}/hooks/{id}",
            self.cfg.public_url.as_deref().unwrap_or("")
        )
    }

    /// Checks where a new webhook's posts go and gives it as stored: `*`, `@group`, `#topic` (one without a
    /// key), or a member's key.
    fn webhook_target(
        &self,
        mesh: &str,
        to: Option<&str>,
    ) -> Result<String, (&'static str, String)> {
        let to = to.map(str::trim).unwrap_or("*");
        let internal = |e: crate::error::Error| ("internal", format!("broker storage error: {e}"));
        match to {
            "" | "*" | "@all" => Ok("*".into()),
            g if g.starts_with('@') => {
                let name = &g[1..];
                if name.is_empty() || name.len() > MAX_NAME || name.contains(char::is_whitespace) {
                    return Err((INVALID_WEBHOOK, format!("{g:?} is not a group name")));
                }
                Ok(g.to_string())
            }
            t if t.starts_with('#') => {
                let topic = self.find_topic(mesh, t).map_err(|r| (r.code, r.message))?;
                if topic.encrypted {
                    return Err((
                        INVALID_WEBHOOK,
                        format!(
                            "#{} is encrypted, and the broker holds no topic key to seal a webhook's body with: \
                             point the webhook at a member, a group or a topic made with --plaintext",
                            topic.name
                        ),
                    ));
                }
                Ok(format!("#{}", topic.name))
            }
            k if crypto::parse_pubkey_hex(k).is_ok() => {
                let k = k.to_ascii_lowercase();
                match self.store.member_by_pubkey(mesh, &k).map_err(internal)? {
                    Some(m) if m.revoked_at.is_none() => Ok(k),
                    _ => Err((
                        codes::NOT_FOUND,
                        format!("no member with key {} in this mesh", &k[..16]),
                    )),
                }
            }
            other => Err((
                INVALID_WEBHOOK,
                format!("a webhook goes to a member's key, *, @group or #topic, not {other:?}"),
            )),
        }
    }

    pub(super) fn on_create_webhook(&mut self, conn: ConnId, pk: PKey, c: wire::CreateWebhook) {
        let req = c.req_id.as_deref();
        let Some((mesh, member, creator)) = self.speaker(pk) else {
            return;
        };
        if !valid_name(&c.name) {
            let m = format!("a webhook name is 1 to {MAX_NAME} characters of A-Z a-z 0-9 _ - .");
            return self.error(conn, INVALID_WEBHOOK, m, req);
        }
        let target = match self.webhook_target(&mesh, c.to.as_deref()) {
            Ok(t) => t,
            Err((code, m)) => return self.error(conn, code, m, req),
        };
        let row = WebhookRow {
            id: new_id(),
            mesh_id: mesh.clone(),
            name: c.name.clone(),
            // Two UUIDs' worth as the original's: 64 hex characters.
            secret: hex::encode(&crypto::random_bytes::<32>()),
            target_spec: target.clone(),
            created_by: member,
            creator_name: creator,
            created_at: now_ms(),
            ..WebhookRow::default()
        };
        match self.store.webhook_insert(&row) {
            Ok(true) => {}
            Ok(false) => {
                let m = format!("this mesh has a webhook named {:?} already", c.name);
                return self.error(conn, WEBHOOK_EXISTS, m, req);
            }
            Err(e) => return self.store_error(conn, &e, req),
        }
        super::log::info(
            "webhook created",
            &[
                ("mesh", &mesh),
                ("webhook", &row.id),
                ("name", &row.name),
                ("to", &target),
            ],
        );
        let ack = wire::WebhookAck {
            name: row.name,
            url: self.hook_url(&row.id),
            secret: row.secret,
            id: Some(row.id),
            to: Some(target),
            req_id: c.req_id.clone(),
        };
        self.reply_durable(conn, ack, Hub::durable_failure(req));
    }

    pub(super) fn on_list_webhooks(&mut self, conn: ConnId, pk: PKey, l: wire::ListWebhooks) {
        let Some((mesh, _, _)) = self.speaker(pk) else {
            return;
        };
        let rows = match self.store.webhooks(&mesh) {
            Ok(r) => r,
            Err(e) => return self.store_error(conn, &e, l.req_id.as_deref()),
        };
        let members = match self.store.members(&mesh) {
            Ok(m) => m,
            Err(e) => return self.store_error(conn, &e, l.req_id.as_deref()),
        };
        let webhooks = rows
            .into_iter()
            .map(|w| wire::WebhookInfo {
                url: self.hook_url(&w.id),
                name: w.name,
                active: !w.creator_revoked,
                created_at: fmt_rfc3339(w.created_at),
                to_name: members
                    .iter()
                    .find(|m| m.pubkey == w.target_spec)
                    .map(|m| m.display_name.clone()),
                to: Some(w.target_spec),
                created_by: Some(w.creator_name),
            })
            .collect();
        self.reply(
            conn,
            wire::WebhookList {
                webhooks,
                req_id: l.req_id,
            },
        );
    }

    /// Deletes a webhook: its creator or a mesh admin may.
    pub(super) fn on_delete_webhook(&mut self, conn: ConnId, pk: PKey, d: wire::DeleteWebhook) {
        let req = d.req_id.as_deref();
        let Some((mesh, member, _)) = self.speaker(pk) else {
            return;
        };
        let found = self
            .store
            .webhooks(&mesh)
            .map(|all| all.into_iter().find(|w| w.name == d.name));
        let w = match found {
            Ok(Some(w)) => w,
            Ok(None) => {
                let m = format!("this mesh has no webhook named {:?}", d.name);
                return self.error(conn, WEBHOOK_NOT_FOUND, m, req);
            }
            Err(e) => return self.store_error(conn, &e, req),
        };
        let admin = match self.store.member(&member) {
            Ok(m) => m.is_some_and(|m| m.role == "admin"),
            Err(e) => return self.store_error(conn, &e, req),
        };
        if w.created_by != member && !admin {
            let m = format!(
                "webhook {:?} is {}'s: only its creator or a mesh admin deletes it",
                w.name, w.creator_name
            );
            return self.error(conn, codes::FORBIDDEN, m, req);
        }
        if let Err(e) = self.store.webhook_delete(&mesh, &w.name) {
            return self.store_error(conn, &e, req);
        }
        super::log::info(
            "webhook deleted",
            &[("mesh", &mesh), ("webhook", &w.id), ("name", &w.name)],
        );
        let ack = wire::WebhookAck {
            name: w.name,
            req_id: d.req_id.clone(),
            ..wire::WebhookAck::default()
        };
        self.reply_durable(conn, ack, Hub::durable_failure(req));
    }

    /// `POST /hooks/<id>`: checks the post, then delivers its body where the webhook points, committed before the
    /// answer.
    pub(super) fn webhook_post(&mut self, io: &mut Io, req: &Request, id: &str) -> Response {
        let w = match self.store.webhook(id) {
            // A webhook of a member who was removed stops with its maker.
            Ok(Some(w)) if !w.creator_revoked => w,
            Ok(_) => return fail(404, "unknown_webhook"),
            Err(e) => return internal(&e),
        };
        if req.body.len() > MAX_BODY {
            return fail(413, "payload_too_large");
        }
        if let Err(r) = authenticate(req, &w, now_ms() / 1000) {
            return r;
        }
        let Some(text) = std::str::from_utf8(&req.body)
            .ok()
            .filter(|t| serde_json::from_str::<serde_json::Value>(t).is_ok())
        else {
            return fail(400, "the body must be JSON");
        };
        if let Err(wait) = self.take_token(&format!("webhook:{}", w.id), io.now()) {
            let mut r = fail(429, "rate_limited");
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            r.headers
                .push(("Retry-After".into(), secs.max(1).to_string()));
            return r;
        }
        let delivery = req
            .header("x-github-delivery")
            .map(str::trim)
            .filter(|d| !d.is_empty());
        if delivery.is_some_and(|d| d.len() > MAX_DELIVERY_ID) {
            return fail(400, "X-GitHub-Delivery is at most 128 characters");
        }
        // Everything that can refuse the post comes before its first write, so a refused delivery id is not
        // taken and the sender's retry is not mistaken for a replay.
        let plan = match self.webhook_plan(&w, text) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if let Some(d) = delivery {
            match self.store.webhook_delivery_take(&w.id, d, now_ms()) {
                Ok(true) => {}
                Ok(false) => return fail(409, "replayed"),
                Err(e) => return internal(&e),
            }
        }
        let (delivered, message_id) = match self.webhook_deliver(io, &w, plan, text) {
            Ok(d) => d,
            Err(e) => return internal(&e),
        };
        if !self.settle(io) {
            return fail(500, "storage error");
        }
        super::log::info(
            "webhook delivered",
            &[
                ("webhook", &w.id),
                ("name", &w.name),
                ("to", &w.target_spec),
                ("recipients", &delivered),
                ("message", &message_id),
                ("delivery", &delivery.unwrap_or("-")),
            ],
        );
        Response::json(
            200,
            &json!({"ok": true, "delivered": delivered, "messageId": message_id}),
        )
    }

    /// Where a post goes, worked out without writing: the topic, or one sealed delivery per recipient.
    fn webhook_plan(&self, w: &WebhookRow, text: &str) -> Result<Plan, Response> {
        let creator_key = match self.store.member(&w.created_by) {
            Ok(Some(m)) => m.pubkey,
            Ok(None) => return Err(fail(404, "unknown_webhook")),
            Err(e) => return Err(internal(&e)),
        };
        let poster = Poster {
            mesh_id: w.mesh_id.clone(),
            member_id: w.created_by.clone(),
            member_pubkey: creator_key,
            session_pubkey: Some(sender_of(&w.name)),
            name: sender_of(&w.name),
        };
        if w.target_spec.starts_with('#') {
            let refused = |r: super::topics::Refused| fail(r.status(), r.code);
            let topic = self
                .find_topic(&w.mesh_id, &w.target_spec)
                .map_err(refused)?;
            if topic.encrypted {
                return Err(fail(409, "topic_encrypted"));
            }
            if topic.visibility != "public"
                && !self.in_topic(&topic.id, &w.created_by).map_err(refused)?
            {
                return Err(fail(403, "not_member"));
            }
            return Ok(Plan::Topic(poster, Box::new(topic)));
        }
        // Sent on its maker's behalf, so it reaches whom the maker's own send would: not the maker itself for `*`
        // and groups, and nobody whose grants refuse the maker (skipped, as a schedule's recipients are).
        let mut deliveries = self
            .recipients(
                &w.mesh_id,
                &w.created_by,
                &w.target_spec,
                None,
                Missing::Skip,
            )
            .map_err(|e| {
                super::log::error("webhook recipients failed", &[("error", &e)]);
                fail(500, "storage error")
            })?;
        let keys: HashMap<String, String> = self
            .store
            .members(&w.mesh_id)
            .map_err(|e| internal(&e))?
            .into_iter()
            .map(|m| (m.id, m.pubkey))
            .collect();
        deliveries.retain_mut(|d| {
            let sealed = keys
                .get(&d.recipient_member_id)
                .and_then(|k| crypto::parse_pubkey_hex(k).ok())
                .and_then(|k| crypto::ed25519_pk_to_x25519(&k).ok())
                .map(|x| b64::encode(&crypto::seal(text.as_bytes(), &x)));
            // A sealed box carries no nonce of its own.
            d.nonce = Some(String::new());
            d.ciphertext = sealed;
            d.ciphertext.is_some()
        });
        Ok(Plan::Sealed(poster, deliveries))
    }

    /// Stores and hands out what [`Hub::webhook_plan`] worked out: how many it reached, and the message's id.
    fn webhook_deliver(
        &mut self,
        io: &mut Io,
        w: &WebhookRow,
        plan: Plan,
        text: &str,
    ) -> crate::error::Result<(usize, String)> {
        match plan {
            Plan::Sealed(poster, deliveries) => {
                let message = Message {
                    id: new_id(),
                    mesh_id: w.mesh_id.clone(),
                    sender_member_id: w.created_by.clone(),
                    sender_session_pubkey: Some(sender_of(&w.name)),
                    target_spec: w.target_spec.clone(),
                    priority: Priority::Next,
                    nonce: String::new(),
                    ciphertext: String::new(),
                    client_message_id: None,
                    subtype: Some("webhook".into()),
                    reply_to_id: None,
                    body_version: None,
                    created_at: now_ms(),
                };
                let n = deliveries.len();
                self.store_and_fan_out(&poster, &message, deliveries, None, io.now())?;
                Ok((n, message.id))
            }
            Plan::Topic(poster, topic) => {
                let post = NewPost {
                    nonce: b64::encode(&[0u8; 24]),
                    ciphertext: b64::encode(text.as_bytes()),
                    body_version: 1,
                    // A payload's `@name`s are not addressed to members.
                    mentions: Some(Vec::new()),
                    ..NewPost::default()
                };
                let posted = self
                    .post(&poster, &topic, post, None)
                    .map_err(|r| crate::error::Error::internal(r.message))?;
                let members = self.store.topic_members(&topic.id)?.len();
                Ok((members, posted.message_id))
            }
        }
    }
}

/// Where a post goes: a topic, or the sealed deliveries of members; with who it says it is from.
enum Plan {
    Topic(Poster, Box<Topic>),
    Sealed(Poster, Vec<NewDelivery>),
}
