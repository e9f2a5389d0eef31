//! API keys: minted over WebSocket (`apikey_create`, `apikey_list`, `apikey_revoke`), presented to the REST
//! surface as `Authorization: Bearer cm_...`.
//!
//! The secret is `cm_` and the base64url of 32 random bytes; it is shown once, and the broker keeps only its
//! SHA-256 (hex) and its first 11 characters, which find the row. Keys belong to the member that made them;
//! mesh admins see and revoke every key of the mesh, and only they may mint keys with the `admin` capability.

use std::time::Instant;

use super::hub::{Hub, PKey};
use super::net::ConnId;
use super::store::{ApiKey, Member, new_id};
use crate::crypto::{self, b64};
use crate::time::{fmt_rfc3339, now_ms, parse_rfc3339};
use crate::wire::{self, Frame, codes};

/// The capabilities a key may carry.
pub const CAPABILITIES: &[&str] = &["send", "read", "state_write", "admin"];
/// How long a secret's lookup prefix is: `cm_` and 8 characters.
const PREFIX_LEN: usize = 11;

/// A REST caller: a live key and the member that issued it.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    pub(super) key: ApiKey,
    pub(super) member: Member,
    capabilities: Vec<String>,
    scopes: Option<Vec<String>>,
}

impl Caller {
    /// The key has `cap`, or `admin`.
    pub(super) fn can(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap || c == "admin")
    }
    /// The key may reach the topic named `name`.
    pub(super) fn reaches(&self, name: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|s| s.iter().any(|t| t == name))
    }
}

/// Why a bearer token was refused: a status, an error code and a message.
pub(super) type AuthError = (u16, &'static str, String);

fn list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn key_frame(k: &ApiKey) -> wire::ApiKey {
    wire::ApiKey {
        id: k.id.clone(),
        label: k.label.clone(),
        prefix: k.secret_prefix.clone(),
        capabilities: list(&k.capabilities),
        topic_scopes: k.topic_scopes.as_deref().map(list),
        created_at: fmt_rfc3339(k.created_at),
        last_used_at: k.last_used_at.map(fmt_rfc3339),
        revoked_at: k.revoked_at.map(fmt_rfc3339),
        expires_at: k.expires_at.map(fmt_rfc3339),
    }
}

impl Hub {
    /// `apikey_create`, `apikey_list`, `apikey_revoke`.
    pub(super) fn on_apikey_frame(&mut self, conn: ConnId, pk: PKey, frame: Frame) {
        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let (mesh, member_id) = (p.mesh_id.clone(), p.member_id.clone());
        let req_id = frame.req_id().map(str::to_string);
        let req = req_id.as_deref();
        let member = match self.store.member(&member_id) {
            Ok(Some(m)) => m,
            Ok(None) => return self.error(conn, codes::UNAUTHORIZED, "no such member", req),
            Err(e) => return self.store_error(conn, &e, req),
        };
        match frame {
            Frame::ApikeyCreate(c) => self.apikey_create(conn, &mesh, &member, c, req),
            Frame::ApikeyList(_) => {
                let keys = match self.store.api_keys(&mesh) {
                    Ok(k) => k,
                    Err(e) => return self.store_error(conn, &e, req),
                };
                let keys = keys
                    .iter()
                    .filter(|k| member.role == "admin" || k.issued_by_member_id == member.id)
                    .map(key_frame)
                    .collect();
                let list = wire::ApikeyListResponse {
                    keys,
                    req_id: req_id.clone(),
                };
                self.reply(conn, list);
            }
            Frame::ApikeyRevoke(r) => self.apikey_revoke(conn, &mesh, &member, &r.id, req),
            _ => {}
        }
    }

    fn apikey_create(
        &mut self,
        conn: ConnId,
        mesh: &str,
        member: &Member,
        c: wire::ApikeyCreate,
        req: Option<&str>,
    ) {
        let invalid = |h: &mut Hub, msg: String| h.error(conn, codes::INVALID_ARGS, msg, req);
        let label = c.label.trim();
        if label.is_empty() || label.len() > 200 {
            return invalid(self, "a key needs a label of 1-200 characters".into());
        }
        let mut caps: Vec<String> = Vec::new();
        for cap in &c.capabilities {
            if !CAPABILITIES.contains(&cap.as_str()) {
                return invalid(
                    self,
                    format!(
                        "unknown capability {cap:?} (expected {})",
                        CAPABILITIES.join(", ")
                    ),
                );
            }
            if !caps.contains(cap) {
                caps.push(cap.clone());
            }
        }
        if caps.is_empty() {
            return invalid(self, "a key needs at least one capability".into());
        }
        if caps.iter().any(|c| c == "admin") && member.role != "admin" {
            return self.error(
                conn,
                codes::FORBIDDEN,
                "only a mesh admin may create a key with the admin capability",
                req,
            );
        }
        let scopes: Option<Vec<String>> = c.topic_scopes.map(|s| {
            s.iter()
                .map(|t| t.trim().trim_start_matches('#').to_string())
                .filter(|t| !t.is_empty())
                .collect()
        });
        let expires_at = match c.expires_at.as_deref().map(parse_rfc3339).transpose() {
            Ok(e) => e,
            Err(e) => return invalid(self, format!("expiresAt: {e}")),
        };
        if expires_at.is_some_and(|e| e <= now_ms()) {
            return invalid(self, "expiresAt is in the past".into());
        }
        let secret = format!("cm_{}", b64::encode_url(&crypto::random_bytes::<32>()));
        let key = ApiKey {
            id: new_id(),
            mesh_id: mesh.to_string(),
            label: label.to_string(),
            secret_hash: crypto::sha256_hex(secret.as_bytes()),
            secret_prefix: secret[..PREFIX_LEN].to_string(),
            capabilities: serde_json::to_string(&caps).unwrap_or_else(|_| "[]".into()),
            topic_scopes: scopes
                .as_ref()
                .map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into())),
            issued_by_member_id: member.id.clone(),
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
            expires_at,
        };
        if let Err(e) = self.store.insert_api_key(&key) {
            return self.store_error(conn, &e, req);
        }
        let created = wire::ApikeyCreated {
            id: key.id.clone(),
            secret,
            label: key.label.clone(),
            prefix: key.secret_prefix.clone(),
            capabilities: caps,
            topic_scopes: scopes,
            created_at: fmt_rfc3339(key.created_at),
            req_id: req.map(str::to_string),
        };
        self.reply_durable(conn, created, Hub::durable_failure(req));
    }

    fn apikey_revoke(
        &mut self,
        conn: ConnId,
        mesh: &str,
        member: &Member,
        id: &str,
        req: Option<&str>,
    ) {
        let id = id.trim();
        if id.is_empty() {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                "which key? give its id or an id prefix",
                req,
            );
        }
        let keys = match self.store.api_keys(mesh) {
            Ok(k) => k,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let found: Vec<&ApiKey> = keys
            .iter()
            .filter(|k| member.role == "admin" || k.issued_by_member_id == member.id)
            .filter(|k| k.id.starts_with(id))
            .collect();
        let answer =
            |status: &str, id: Option<String>, matches: Option<u32>| wire::ApikeyRevokeResponse {
                status: status.to_string(),
                id,
                matches,
                req_id: req.map(str::to_string),
            };
        match found.as_slice() {
            [] => self.reply(conn, answer("not_found", None, None)),
            [k] => {
                let key_id = k.id.clone();
                if let Err(e) = self.store.revoke_api_key(&key_id, now_ms()) {
                    return self.store_error(conn, &e, req);
                }
                // A stream opened with the key ends with it.
                let streams: Vec<ConnId> = self
                    .topic_state
                    .streams
                    .iter()
                    .filter(|(_, s)| s.key_id == key_id)
                    .map(|(c, _)| *c)
                    .collect();
                for c in streams {
                    self.topic_state.streams.remove(&c);
                    self.close(c, 1000, "api key revoked");
                }
                self.reply_durable(
                    conn,
                    answer("revoked", Some(key_id), None),
                    Hub::durable_failure(req),
                );
            }
            many => {
                let n = u32::try_from(many.len()).unwrap_or(u32::MAX);
                self.reply(conn, answer("not_unique", None, Some(n)));
            }
        }
    }

    /// The caller behind `Authorization: Bearer cm_...`, or why not: 401 for a missing, unknown, revoked or
    /// expired key (or one whose member was removed), 429 when the key's token bucket is empty.
    pub(super) fn api_caller(
        &mut self,
        authorization: Option<&str>,
        now: Instant,
    ) -> Result<Caller, AuthError> {
        let token = authorization
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty());
        let Some(secret) = token else {
            return Err((
                401,
                "missing_api_key",
                "send Authorization: Bearer cm_...".into(),
            ));
        };
        let invalid = || (401, "invalid_api_key", "unknown API key".to_string());
        if !secret.starts_with("cm_") || secret.len() < PREFIX_LEN {
            return Err(invalid());
        }
        let hash = crypto::sha256_hex(secret.as_bytes());
        let key = self
            .store
            .api_keys_by_prefix(&secret[..PREFIX_LEN])
            .map_err(|e| (500, "internal", format!("broker storage error: {e}")))?
            .into_iter()
            .find(|k| same(&k.secret_hash, &hash))
            .ok_or_else(invalid)?;
        let at = now_ms();
        if key.revoked_at.is_some() {
            return Err((401, "revoked_api_key", "this API key was revoked".into()));
        }
        if key.expires_at.is_some_and(|e| e <= at) {
            return Err((401, "expired_api_key", "this API key has expired".into()));
        }
        let member = match self.store.member(&key.issued_by_member_id) {
            Ok(Some(m)) if m.revoked_at.is_none() => m,
            Ok(_) => {
                return Err((
                    401,
                    "invalid_api_key",
                    "the member that made this key is no longer in the mesh".into(),
                ));
            }
            Err(e) => return Err((500, "internal", format!("broker storage error: {e}"))),
        };
        if let Some(rl) = self.cfg.rate_limit
            && let Err(wait) = self.take_token(&format!("key:{}", key.id), now)
        {
            return Err((
                429,
                "rate_limited",
                format!(
                    "at most {} requests a second per key; slow down (a request is taken again in {} ms)",
                    rl.per_second,
                    wait.as_millis() + 1
                ),
            ));
        }
        // Best effort: the request does not fail when the time cannot be recorded.
        if let Err(e) = self.store.touch_api_key(&key.id, at) {
            super::log::warn("could not record an API key's use", &[("error", &e)]);
        }
        Ok(Caller {
            capabilities: list(&key.capabilities),
            scopes: key.topic_scopes.as_deref().map(list),
            key,
            member,
        })
    }
}
