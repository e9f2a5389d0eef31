//! `cm-apikey`: keys for the broker's REST surface (`/api/v1`), made, listed and revoked over the member's
//! connection. The secret is shown once; the broker keeps only its hash.

use serde::Serialize;

use crate::client::{Requester, unexpected};
use crate::error::{Error, Result};
use crate::time::{fmt_rfc3339, now_ms, parse_duration, parse_rfc3339};
use crate::wire::{self, Frame};

/// When a key stops working: an RFC 3339 time, or a duration from now (`30d`, `12h`).
pub fn expiry(s: &str) -> Result<String> {
    let at = match parse_duration(s) {
        Ok(d) => now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)),
        Err(_) => parse_rfc3339(s).map_err(|_| {
            Error::usage(format!(
                "--expires takes a duration like 30d or a time like 2026-01-02T15:04:05Z (got {s:?})"
            ))
        })?,
    };
    if at <= now_ms() {
        return Err(Error::usage(format!("--expires {s} is in the past")));
    }
    Ok(fmt_rfc3339(at))
}

/// Makes a key. `caps` from `send`, `read`, `state_write`, `admin`; `scopes` limits it to these topics.
pub fn create(
    r: &mut impl Requester,
    label: &str,
    caps: Vec<String>,
    scopes: Option<Vec<String>>,
    expires_at: Option<String>,
) -> Result<wire::ApikeyCreated> {
    let reply = r.ask(Frame::ApikeyCreate(wire::ApikeyCreate {
        label: label.to_string(),
        capabilities: caps,
        topic_scopes: scopes,
        expires_at,
        req_id: None,
    }))?;
    match reply {
        Frame::ApikeyCreated(c) => Ok(c),
        f => Err(unexpected("apikey_create", &f)),
    }
}

/// A key in a list: one JSON line with `"type": "apikey"`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyLine {
    r#type: &'static str,
    pub id: String,
    pub label: String,
    pub prefix: String,
    /// `active`, `revoked` or `expired`.
    pub state: &'static str,
    pub capabilities: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_scopes: Option<Vec<String>>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl KeyLine {
    /// `ci-bot  active  a1b2c3d4  cm_AbCdEfGh…  send,read  scope: dev  last used 2026-…`.
    pub fn words(&self) -> String {
        let mut s = format!(
            "{}  {}  {}  {}…  {}",
            self.label,
            self.state,
            crate::out::short_id(&self.id),
            self.prefix,
            self.capabilities.join(",")
        );
        if let Some(t) = &self.topic_scopes {
            s += &format!("  scope: {}", t.join(","));
        }
        s += &format!(
            "  last used: {}",
            self.last_used_at.as_deref().unwrap_or("never")
        );
        s
    }
}

/// The keys this member may see (every key of the mesh for an admin), newest first.
pub fn list(r: &mut impl Requester) -> Result<Vec<KeyLine>> {
    let reply = r.ask(Frame::ApikeyList(wire::ApikeyList::default()))?;
    let Frame::ApikeyListResponse(l) = reply else {
        return Err(unexpected("apikey_list", &reply));
    };
    let now = now_ms();
    Ok(l.keys
        .into_iter()
        .map(|k| {
            let expired = k
                .expires_at
                .as_deref()
                .and_then(|e| parse_rfc3339(e).ok())
                .is_some_and(|e| e <= now);
            KeyLine {
                r#type: "apikey",
                state: match (&k.revoked_at, expired) {
                    (Some(_), _) => "revoked",
                    (None, true) => "expired",
                    (None, false) => "active",
                },
                id: k.id,
                label: k.label,
                prefix: k.prefix,
                capabilities: k.capabilities,
                topic_scopes: k.topic_scopes,
                created_at: k.created_at,
                last_used_at: k.last_used_at,
                expires_at: k.expires_at,
                revoked_at: k.revoked_at,
            }
        })
        .collect())
}

/// Revokes the key whose id is or starts with `id`; returns its full id.
pub fn revoke(r: &mut impl Requester, id: &str) -> Result<String> {
    let reply = r.ask(Frame::ApikeyRevoke(wire::ApikeyRevoke {
        id: id.to_string(),
        req_id: None,
    }))?;
    let Frame::ApikeyRevokeResponse(a) = reply else {
        return Err(unexpected("apikey_revoke", &reply));
    };
    match a.status.as_str() {
        "revoked" => Ok(a.id.unwrap_or_else(|| id.to_string())),
        "not_unique" => Err(Error::usage(format!(
            "{id} matches {} keys: give more of the id",
            a.matches.unwrap_or(2)
        ))),
        _ => Err(Error::not_found(format!("no API key {id}"))),
    }
}
