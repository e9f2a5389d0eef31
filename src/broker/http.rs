//! The hub's HTTP routes: health, metrics, mesh creation, invite registration, `POST /join` and the webhooks'
//! `POST /hooks/<id>` (in [`super::webhooks`]).
//!
//! A route that writes commits before it answers (an HTTP response cannot be taken back the way a batched
//! WebSocket reply can), which also settles whatever the iteration had batched so far.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::hub::Hub;
use super::log;
use super::net::{Io, Request, Response};
use super::store::{Invite, Member, Mesh, new_id};
use crate::crypto::{self, CryptoError};
use crate::time::now_ms;
use crate::wire;

use super::auth::MAX_SKEW_MS;

fn fail(status: u16, error: &str) -> Response {
    Response::json(status, &json!({"ok": false, "error": error}))
}

fn internal(e: &crate::error::Error) -> Response {
    log::error("http request failed", &[("error", e)]);
    fail(500, "storage error")
}

/// `My Mesh!` → `my-mesh`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    slug
}

/// The string a v1 invite's owner signs (reference §2.6.1), rebuilt from the payload; `None` if a field is
/// missing.
pub fn invite_v1_signed(p: &Value) -> Option<String> {
    let s = |k: &str| p.get(k).and_then(Value::as_str);
    let n = |k: &str| p.get(k).and_then(Value::as_i64);
    Some(format!(
        "{}|{}|{}|{}|{}|{}|{}|{}",
        n("v")?,
        s("mesh_id")?,
        s("mesh_slug")?,
        s("broker_url")?,
        n("expires_at")?,
        s("mesh_root_key")?,
        s("role")?,
        s("owner_pubkey")?
    ))
}

fn verify_invite_payload(p: &Value) -> bool {
    let (Some(signed), Some(owner), Some(sig)) = (
        invite_v1_signed(p),
        p.get("owner_pubkey").and_then(Value::as_str),
        p.get("signature").and_then(Value::as_str),
    ) else {
        return false;
    };
    crypto::verify_hex(owner, signed.as_bytes(), sig).is_ok()
}

/// Compares without stopping at the first difference, so the time taken does not tell how much of a guessed token
/// was right.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn body_json(req: &Request) -> Option<Value> {
    serde_json::from_slice::<Value>(&req.body)
        .ok()
        .filter(Value::is_object)
}

fn signature_error(e: CryptoError) -> Response {
    match e {
        CryptoError::BadSignature => fail(401, "bad_signature"),
        _ => fail(400, "malformed signature"),
    }
}

impl Hub {
    /// Logs an HTTP request the broker refused (status 400 and up), with the error code of its body.
    pub(super) fn log_refused(req: &Request, resp: &Response) {
        if resp.status < 400 {
            return;
        }
        let error = serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        // The original's webhook URL carries its secret; a sender still using it must not leave it in the log.
        let path = if req.path.starts_with("/hook/") {
            "/hook/(redacted)"
        } else {
            req.path.as_str()
        };
        log::warn(
            "http request refused",
            &[
                ("peer", &req.peer),
                ("method", &req.method),
                ("path", &path),
                ("status", &resp.status),
                ("error", &error),
            ],
        );
    }

    /// Answers one HTTP request.
    pub(super) fn http(&mut self, io: &mut Io, req: &Request) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/health") => self.health(),
            ("GET", "/metrics") => self.prometheus(io),
            ("POST", "/cli/mesh/create") => self.mesh_create(io, req),
            ("POST", "/cli/mesh/invite") => self.invite_register(io, req),
            ("POST", "/join") => self.join(io, req),
            ("POST", "/debug/clock") if self.cfg.test_clock => self.debug_clock(io, req),
            ("POST", p) if p.starts_with("/hooks/") => {
                self.webhook_post(io, req, &p["/hooks/".len()..])
            }
            (_, p) if p.starts_with("/hooks/") => fail(405, "method_not_allowed"),
            // The original's form carries the secret in the URL, where proxies and logs keep it; not served.
            (_, p) if p.starts_with("/hook/") => fail(
                404,
                "no /hook/<mesh>/<secret> here: cm-broker's webhooks are POST /hooks/<id>, signed",
            ),
            (_, "/health" | "/metrics" | "/cli/mesh/create" | "/cli/mesh/invite" | "/join") => {
                fail(405, "method_not_allowed")
            }
            _ => fail(404, "not_found"),
        }
    }

    /// The store's answer to a query that reads it, and how long the answer took: what `/health` and
    /// `/metrics` report, so that a load balancer or a scrape sees a broker whose database does not answer.
    fn probe_store(&self) -> (std::result::Result<(), String>, std::time::Duration) {
        let start = std::time::Instant::now();
        let r = self.store.ping().map_err(|e| e.msg);
        (r, start.elapsed())
    }

    /// 200 while the store reads and its last write held; 503 with the failure otherwise.
    fn health(&self) -> Response {
        let (probe, took) = self.probe_store();
        let mut v = json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": self.started.elapsed().as_secs(),
            "store": "ok",
            "store_backend": self.store.backend(),
            "store_ms": took.as_secs_f64() * 1000.0,
        });
        let mut status = 200;
        if let Err(e) = probe {
            (v["status"], v["store"], v["store_error"]) =
                ("error".into(), "error".into(), e.into());
            status = 503;
        }
        if let Some((at, e)) = &self.write_failure {
            v["status"] = "error".into();
            v["store"] = "error".into();
            v["last_write_failure"] = json!({"at": crate::time::fmt_rfc3339(*at), "error": e});
            status = 503;
        }
        Response::json(status, &v)
    }

    fn prometheus(&self, io: &Io) -> Response {
        let net = io.metrics();
        let pending = self.store.pending_count().unwrap_or(-1);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        metric(
            "claudemesh_connections",
            "gauge",
            "Open WebSocket connections.",
            net.open_ws.to_string(),
        );
        metric(
            "claudemesh_presences",
            "gauge",
            "Authenticated presences, live or in reconnect grace.",
            self.presence_count().to_string(),
        );
        metric(
            "claudemesh_messages_in_total",
            "counter",
            "send requests received.",
            self.metrics.messages_in.to_string(),
        );
        metric(
            "claudemesh_messages_out_total",
            "counter",
            "Message pushes written to connections.",
            self.metrics.messages_out.to_string(),
        );
        metric(
            "claudemesh_deliveries_pending",
            "gauge",
            "Deliveries stored and not yet acknowledged (queue depth).",
            pending.to_string(),
        );
        let (probe, took) = self.probe_store();
        metric(
            "claudemesh_store_up",
            "gauge",
            "1 while the store answers a query and its last write held (as /health says), else 0.",
            u8::from(probe.is_ok() && self.write_failure.is_none()).to_string(),
        );
        metric(
            "claudemesh_store_probe_seconds",
            "gauge",
            "How long the store took to answer this scrape's query.",
            format!("{:.6}", took.as_secs_f64()),
        );
        metric(
            "claudemesh_commit_failures_total",
            "counter",
            "Batches whose commit failed.",
            self.metrics.commit_failures.to_string(),
        );
        let _ = write!(
            out,
            "# HELP claudemesh_store_info The store's backend, as a label.\n# TYPE claudemesh_store_info gauge\n\
             claudemesh_store_info{{backend=\"{}\"}} 1\n",
            self.store.backend()
        );
        let _ = write!(
            out,
            "# HELP claudemesh_errors_total Errors answered, by code.\n# TYPE claudemesh_errors_total counter\n"
        );
        for (code, n) in &self.metrics.errors {
            let _ = writeln!(out, "claudemesh_errors_total{{code=\"{code}\"}} {n}");
        }
        Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            headers: Vec::new(),
            body: out.into_bytes(),
        }
    }

    /// Commits now; on failure the whole batch so far is lost and the request fails.
    fn commit_now(&mut self, io: &mut Io) -> bool {
        self.settle(io)
    }

    fn mesh_create(&mut self, io: &mut Io, req: &Request) -> Response {
        // A set token binds loopback too: behind a reverse proxy on the same host every request comes from
        // loopback, so exempting it would let anyone past the proxy create meshes.
        let token = match (self.cfg.admin_token.as_deref(), req.peer.ip().is_loopback()) {
            (Some(token), _) => Some(token),
            (None, true) => None,
            (None, false) => {
                return fail(
                    403,
                    "mesh creation from another host needs the broker's --admin-token",
                );
            }
        };
        if let Some(token) = token {
            let bearer = req
                .header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim);
            match bearer {
                None | Some("") => return fail(401, "missing_bearer_token"),
                Some(b) if !same_secret(b, token) => return fail(403, "invalid_admin_token"),
                Some(_) => {}
            }
        }
        let Some(body) = body_json(req) else {
            return fail(400, "body must be a JSON object");
        };
        let s = |k: &str| body.get(k).and_then(Value::as_str);
        let (Some(name), Some(pubkey), Some(owner), Some(ts), Some(sig)) = (
            s("name").filter(|n| !n.trim().is_empty()),
            s("pubkey"),
            s("ownerPubkey"),
            body.get("timestamp").and_then(Value::as_i64),
            s("signature"),
        ) else {
            return fail(
                400,
                "name, pubkey, ownerPubkey, timestamp, signature required",
            );
        };
        if crypto::parse_pubkey_hex(pubkey).is_err() {
            return fail(400, "pubkey must be 64 hex chars (32 bytes)");
        }
        if crypto::parse_pubkey_hex(owner).is_err() {
            return fail(400, "ownerPubkey must be 64 hex chars (32 bytes)");
        }
        if (now_ms() - ts).abs() > MAX_SKEW_MS {
            return fail(401, "timestamp_skew");
        }
        if let Err(e) = crypto::verify_hex(
            pubkey,
            wire::mesh_create_signed(name, pubkey, owner, ts).as_bytes(),
            sig,
        ) {
            return signature_error(e);
        }
        let base = match slugify(s("slug").unwrap_or(name)) {
            b if b.is_empty() => "mesh".to_string(),
            b => b,
        };
        let mut slug = None;
        for n in 1..=100 {
            let candidate = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            match self.store.slug_taken(&candidate) {
                Ok(false) => {
                    slug = Some(candidate);
                    break;
                }
                Ok(true) => {}
                Err(e) => return internal(&e),
            }
        }
        let Some(slug) = slug else {
            return fail(409, "slug_taken");
        };
        let now = now_ms();
        let mesh = Mesh {
            id: new_id(),
            name: name.to_string(),
            slug,
            owner_pubkey: owner.to_string(),
            created_at: now,
            archived_at: None,
        };
        let member = Member {
            id: new_id(),
            mesh_id: mesh.id.clone(),
            pubkey: pubkey.to_string(),
            display_name: s("displayName")
                .filter(|d| !d.is_empty())
                .map_or_else(|| format!("{name}-owner"), str::to_string),
            role: "admin".into(),
            role_tag: None,
            groups: "[]".into(),
            message_mode: "push".into(),
            joined_at: now,
            last_seen_at: None,
            revoked_at: None,
        };
        if let Err(e) = self.store.create_mesh(&mesh, &member) {
            return internal(&e);
        }
        if !self.commit_now(io) {
            return fail(500, "storage error");
        }
        log::info("mesh created", &[("mesh", &mesh.id), ("slug", &mesh.slug)]);
        Response::json(
            200,
            &json!({"id": mesh.id, "slug": mesh.slug, "name": mesh.name, "member_id": member.id, "memberId": member.id}),
        )
    }

    fn invite_register(&mut self, io: &mut Io, req: &Request) -> Response {
        let Some(body) = body_json(req) else {
            return fail(400, "body must be a JSON object");
        };
        let s = |k: &str| body.get(k).and_then(Value::as_str);
        let max_uses = body
            .get("maxUses")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0);
        let (Some(mesh_id), Some(token), Some(max_uses), Some(ts), Some(sig)) = (
            s("meshId"),
            s("token"),
            max_uses,
            body.get("timestamp").and_then(Value::as_i64),
            s("signature"),
        ) else {
            return fail(
                400,
                "meshId, token, maxUses (a positive integer), timestamp, signature required",
            );
        };
        let mesh = match self.store.mesh(mesh_id) {
            Ok(Some(m)) if m.archived_at.is_none() => m,
            Ok(_) => return fail(404, "mesh_not_found"),
            Err(e) => return internal(&e),
        };
        if (now_ms() - ts).abs() > MAX_SKEW_MS {
            return fail(401, "timestamp_skew");
        }
        let signed = wire::invite_register_signed(mesh_id, token, max_uses, ts);
        if let Err(e) = crypto::verify_hex(&mesh.owner_pubkey, signed.as_bytes(), sig) {
            return signature_error(e);
        }
        let payload = crypto::b64::decode_url(token)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let Some(payload) = payload.filter(Value::is_object) else {
            return fail(400, "invalid invite token");
        };
        let p = |k: &str| payload.get(k).and_then(Value::as_str);
        if p("mesh_id") != Some(mesh_id) {
            return fail(400, "invite_mesh_mismatch");
        }
        if p("owner_pubkey") != Some(mesh.owner_pubkey.as_str()) {
            return fail(400, "invite_owner_mismatch");
        }
        if !verify_invite_payload(&payload) {
            return fail(400, "invite_bad_signature");
        }
        let role = match p("role") {
            Some(r @ ("admin" | "member")) => r.to_string(),
            _ => return fail(400, "invite role must be admin or member"),
        };
        let expires_at = payload
            .get("expires_at")
            .and_then(Value::as_i64)
            .map(|s| s.saturating_mul(1000));
        if expires_at.is_some_and(|e| e < now_ms()) {
            return fail(400, "invite_expired");
        }
        match self.store.invite_by_token(token) {
            Ok(Some(_)) => return fail(409, "invite_exists"),
            Ok(None) => {}
            Err(e) => return internal(&e),
        }
        let invite = Invite {
            id: new_id(),
            mesh_id: mesh.id.clone(),
            token: token.to_string(),
            token_hash: crypto::sha256_hex(token.as_bytes()),
            payload: payload.to_string(),
            max_uses: i64::from(max_uses),
            used_count: 0,
            role,
            expires_at,
            created_at: now_ms(),
            revoked_at: None,
        };
        if let Err(e) = self.store.insert_invite(&invite) {
            return internal(&e);
        }
        if !self.commit_now(io) {
            return fail(500, "storage error");
        }
        Response::json(200, &json!({"ok": true, "inviteId": invite.id}))
    }

    /// `POST /join`: the v1 invite claim, every check in the original's order (reference §2.6.1).
    fn join(&mut self, io: &mut Io, req: &Request) -> Response {
        let bad = |e: &str| fail(400, e);
        let body = body_json(req).unwrap_or(Value::Null);
        let s = |k: &str| body.get(k).and_then(Value::as_str);
        let (Some(token), Some(payload), Some(peer_pubkey), Some(display_name)) = (
            s("invite_token").filter(|t| !t.is_empty()),
            body.get("invite_payload").filter(|p| p.is_object()),
            s("peer_pubkey"),
            s("display_name").filter(|d| !d.is_empty()),
        ) else {
            return bad("invite_token, invite_payload, peer_pubkey, display_name required");
        };
        if crypto::parse_pubkey_hex(peer_pubkey).is_err() {
            return bad("peer_pubkey must be 64 hex chars (32 bytes)");
        }
        if !verify_invite_payload(payload) {
            return bad("invite_bad_signature");
        }
        let p = |k: &str| payload.get(k).and_then(Value::as_str).unwrap_or_default();
        let mesh = match self.store.mesh(p("mesh_id")) {
            Ok(Some(m)) if m.archived_at.is_none() => m,
            Ok(_) => return bad("mesh_not_found"),
            Err(e) => return internal(&e),
        };
        if mesh.owner_pubkey.is_empty() {
            return bad("mesh_missing_owner_key");
        }
        if mesh.owner_pubkey != p("owner_pubkey") {
            return bad("invite_owner_mismatch");
        }
        let invite = match self.store.invite_by_token(token) {
            Ok(Some(i)) => i,
            Ok(None) => return bad("invite_not_found"),
            Err(e) => return internal(&e),
        };
        if invite.mesh_id != mesh.id {
            return bad("invite_mesh_mismatch");
        }
        // The signed payload proves only that the owner signed *some* invite: the one that
        // decides role, expiry and uses is the one stored under this token.
        let stored = serde_json::from_str::<Value>(&invite.payload).unwrap_or(Value::Null);
        if stored != *payload {
            let differ = differing_keys(&stored, payload);
            log::warn(
                "invite mismatch",
                &[
                    ("mesh", &mesh.id),
                    ("invite", &invite.id),
                    ("fields", &differ),
                ],
            );
            return bad("invite_mismatch");
        }
        if invite.revoked_at.is_some() {
            return bad("invite_revoked");
        }
        if invite.expires_at.is_some_and(|e| e < now_ms()) {
            return bad("invite_expired");
        }
        match self.store.member_by_pubkey(&mesh.id, peer_pubkey) {
            Ok(Some(m)) if m.revoked_at.is_none() => {
                return Response::json(
                    200,
                    &json!({"ok": true, "memberId": m.id, "alreadyMember": true}),
                );
            }
            // The key was banned: an invite does not undo that, only `unban` does.
            Ok(Some(_)) => return fail(403, "member_revoked"),
            Ok(None) => {}
            Err(e) => return internal(&e),
        }
        let role = invite.role.as_str();
        if role != "admin" && role != "member" {
            return bad("member_insert_failed");
        }
        match self.store.use_invite(&invite.id) {
            Ok(true) => {}
            Ok(false) => return bad("invite_exhausted"),
            Err(e) => return internal(&e),
        }
        let member = Member {
            id: new_id(),
            mesh_id: mesh.id.clone(),
            pubkey: peer_pubkey.to_string(),
            display_name: display_name.to_string(),
            role: role.to_string(),
            role_tag: None,
            groups: "[]".into(),
            message_mode: "push".into(),
            joined_at: now_ms(),
            last_seen_at: None,
            revoked_at: None,
        };
        if let Err(e) = self.store.insert_member(&member) {
            log::error("member insert failed", &[("error", &e)]);
            return bad("member_insert_failed");
        }
        if !self.commit_now(io) {
            return fail(500, "storage error");
        }
        log::info(
            "member joined",
            &[("mesh", &mesh.id), ("member", &member.id)],
        );
        Response::json(200, &json!({"ok": true, "memberId": member.id}))
    }
}

/// The top-level keys whose values differ between two invite payloads, comma-separated.
fn differing_keys(a: &Value, b: &Value) -> String {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return "payload".into();
    };
    let mut keys: Vec<&str> = a
        .keys()
        .chain(b.keys())
        .map(String::as_str)
        .filter(|k| a.get(*k) != b.get(*k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("My Mesh!"), "my-mesh");
        assert_eq!(slugify("  --Dev  Team__2 "), "dev-team-2");
        assert_eq!(slugify("ünïcode"), "n-code");
        assert_eq!(slugify("!!!"), "");
    }

    #[test]
    fn same_secret_compares_whole_strings() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
