//! WebSocket authentication: `hello` (member key) and `session_hello` (session key attested by the member key).
//!
//! The checks run in the original broker's order (reference §3.1, §3.2), because clients and tests tell refusals
//! apart by the first code that fails. They read the raw JSON rather than a parsed frame: a `hello` whose
//! timestamp is a string must still be refused with `timestamp_skew` after the checks that come before it, which a
//! frame that failed to parse as a whole cannot tell.

use std::collections::{HashSet, VecDeque};

use serde_json::Value;

use crate::broker::store::{Member, Mesh, Store};
use crate::crypto::{self, CryptoError};
use crate::wire;

/// Clock skew a hello may have (ms).
pub const MAX_SKEW_MS: i64 = 60_000;
/// The longest an attestation may still be valid (ms).
pub const MAX_ATTESTATION_TTL_MS: i64 = 24 * 3_600_000;

/// A refused hello: the error frame's code and message, and the close that follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The WebSocket close code: 4002 for a revoked member, 1013 for a full mesh, 1011 when the broker failed,
    /// 1008 for every other refusal.
    pub fn close_code(&self) -> u16 {
        match self.code {
            wire::codes::REVOKED => 4002,
            wire::codes::CAPACITY => 1013,
            "internal" => 1011,
            _ => 1008,
        }
    }
}

/// Who a hello proved to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub mesh: Mesh,
    pub member: Member,
    /// Set for `session_hello` only.
    pub session_pubkey: Option<String>,
    /// Names what was signed: the same key means the same hello, sent again.
    pub replay_key: [u8; 32],
}

/// The hellos accepted while they could still verify, so that each is accepted once.
///
/// A hello verifies while its timestamp is within [`MAX_SKEW_MS`] of the clock, so one accepted at `now` can
/// come back until `now + 2 * MAX_SKEW_MS` at most; it is remembered that long, in the order accepted.
#[derive(Debug, Default)]
pub struct SeenHellos {
    keys: HashSet<[u8; 32]>,
    order: VecDeque<(i64, [u8; 32])>,
}

impl SeenHellos {
    /// True the first time `key` is offered within its window; it is remembered from then on.
    pub fn first_use(&mut self, key: [u8; 32], now: i64) -> bool {
        while let Some(&(until, k)) = self.order.front() {
            if until > now {
                break;
            }
            self.keys.remove(&k);
            self.order.pop_front();
        }
        if !self.keys.insert(key) {
            return false;
        }
        self.order.push_back((now + 2 * MAX_SKEW_MS, key));
        true
    }

    /// How many hellos are remembered.
    pub fn remembered(&self) -> usize {
        self.order.len()
    }
}

fn replay_key(kind: &str, signed: &str) -> [u8; 32] {
    crypto::sha256(format!("{kind}\n{signed}").as_bytes())
}

/// What the hub knows that the checks need: whether the mesh is full for this connection.
pub trait Capacity {
    /// True when `mesh_id` has no room for another connection with this session key (`None`: a member hello).
    fn full(&self, mesh_id: &str, session_pubkey: Option<&str>) -> bool;
}

fn is_key(s: &str) -> bool {
    crypto::parse_pubkey_hex(s).is_ok()
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// A timestamp must be a JSON integer within the skew window.
fn check_timestamp(v: &Value, now: i64, what: &str) -> Result<i64, Refusal> {
    match v.get("timestamp").and_then(Value::as_i64) {
        Some(ts) if (now - ts).abs() <= MAX_SKEW_MS => Ok(ts),
        Some(ts) => Err(Refusal::new(
            wire::codes::TIMESTAMP_SKEW,
            format!(
                "{what} rejected: timestamp_skew: signed {} s {} the broker's clock",
                (ts - now).abs() / 1000,
                if ts > now { "ahead of" } else { "behind" }
            ),
        )),
        None => Err(Refusal::new(
            wire::codes::TIMESTAMP_SKEW,
            format!("{what} rejected: timestamp_skew"),
        )),
    }
}

fn check_signature(pubkey: &str, signed: &str, sig: &str, what: &str) -> Result<(), Refusal> {
    match crypto::verify_hex(pubkey, signed.as_bytes(), sig) {
        Ok(()) => Ok(()),
        Err(CryptoError::BadSignature) => Err(Refusal::new(
            wire::codes::BAD_SIGNATURE,
            format!("{what} rejected: bad_signature"),
        )),
        Err(_) => Err(Refusal::new(
            wire::codes::MALFORMED,
            format!("{what} rejected: malformed"),
        )),
    }
}

fn is_sig(s: &str) -> bool {
    s.len() == 128 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

fn internal(e: crate::error::Error) -> Refusal {
    Refusal::new("internal", format!("broker error: {e}"))
}

/// Finds the member behind a verified key: refused if it is unknown, revoked or its mesh is archived.
fn member_of(
    store: &dyn Store,
    mesh_id: &str,
    pubkey: &str,
    what: &str,
) -> Result<(Mesh, Member), Refusal> {
    let unauthorized = || {
        Refusal::new(
            wire::codes::UNAUTHORIZED,
            format!("{what} not found in mesh"),
        )
    };
    let mesh = match store.mesh(mesh_id).map_err(internal)? {
        Some(m) if m.archived_at.is_none() => m,
        _ => return Err(unauthorized()),
    };
    let member = store
        .member_by_pubkey(mesh_id, pubkey)
        .map_err(internal)?
        .ok_or_else(unauthorized)?;
    if member.revoked_at.is_some() {
        return Err(Refusal::new(
            wire::codes::REVOKED,
            format!(
                "You've been removed from \"{}\". Contact the mesh owner to rejoin.",
                mesh.name
            ),
        ));
    }
    Ok((mesh, member))
}

/// Checks a `hello` (reference §3.1, tightened: `memberId` must be the key's member; `sessionPubkey` is ignored
/// once its shape passed).
pub fn hello(
    v: &Value,
    now: i64,
    cap: &dyn Capacity,
    store: &dyn Store,
) -> Result<Verified, Refusal> {
    const WHAT: &str = "hello";
    if let Some(sp) = v.get("sessionPubkey").filter(|s| !s.is_null())
        && !sp.as_str().is_some_and(|s| s.is_empty() || is_key(s))
    {
        return Err(Refusal::new(
            wire::codes::BAD_SESSION_PUBKEY,
            "sessionPubkey must be 64 lowercase hex",
        ));
    }
    let mesh_id = str_field(v, "meshId").unwrap_or_default();
    if cap.full(mesh_id, None) {
        return Err(Refusal::new(
            wire::codes::CAPACITY,
            "mesh at connection capacity",
        ));
    }
    let ts = check_timestamp(v, now, WHAT)?;
    let (Some(mesh_id), Some(member_id), Some(pubkey), Some(sig)) = (
        str_field(v, "meshId"),
        str_field(v, "memberId"),
        str_field(v, "pubkey"),
        str_field(v, "signature"),
    ) else {
        return Err(Refusal::new(
            wire::codes::MALFORMED,
            "hello rejected: malformed",
        ));
    };
    if !is_key(pubkey) || !is_sig(sig) {
        return Err(Refusal::new(
            wire::codes::MALFORMED,
            "hello rejected: malformed",
        ));
    }
    let signed = wire::hello_signed(mesh_id, member_id, pubkey, ts);
    check_signature(pubkey, &signed, sig, WHAT)?;
    let (mesh, member) = member_of(store, mesh_id, pubkey, "pubkey")?;
    if member.id != member_id {
        return Err(Refusal::new(
            wire::codes::UNAUTHORIZED,
            "memberId does not belong to pubkey",
        ));
    }
    Ok(Verified {
        mesh,
        member,
        session_pubkey: None,
        replay_key: replay_key(WHAT, &signed),
    })
}

/// Checks a `session_hello` (reference §3.2).
pub fn session_hello(
    v: &Value,
    now: i64,
    cap: &dyn Capacity,
    store: &dyn Store,
) -> Result<Verified, Refusal> {
    let session = str_field(v, "sessionPubkey").filter(|s| is_key(s));
    let Some(session) = session else {
        return Err(Refusal::new(
            wire::codes::BAD_SESSION_PUBKEY,
            "sessionPubkey must be 64 lowercase hex",
        ));
    };
    let Some(parent) = str_field(v, "parentMemberPubkey").filter(|s| is_key(s)) else {
        return Err(Refusal::new(
            wire::codes::BAD_PARENT_PUBKEY,
            "parentMemberPubkey must be 64 lowercase hex",
        ));
    };
    let att = v.get("parentAttestation").unwrap_or(&Value::Null);
    if str_field(att, "sessionPubkey") != Some(session)
        || str_field(att, "parentMemberPubkey") != Some(parent)
    {
        return Err(Refusal::new(
            wire::codes::ATTESTATION_MISMATCH,
            "parentAttestation keys differ from the session_hello's",
        ));
    }
    let mesh_id = str_field(v, "meshId").unwrap_or_default();
    if cap.full(mesh_id, Some(session)) {
        return Err(Refusal::new(
            wire::codes::CAPACITY,
            "mesh at connection capacity",
        ));
    }

    const ATT: &str = "attestation";
    let Some(expires_at) = att.get("expiresAt").and_then(Value::as_i64) else {
        return Err(Refusal::new(
            wire::codes::MALFORMED,
            "attestation rejected: malformed",
        ));
    };
    if expires_at <= now {
        return Err(Refusal::new(
            wire::codes::EXPIRED,
            "attestation rejected: expired",
        ));
    }
    if expires_at > now + MAX_ATTESTATION_TTL_MS {
        return Err(Refusal::new(
            wire::codes::TTL_TOO_LONG,
            "attestation rejected: ttl_too_long",
        ));
    }
    let att_sig = str_field(att, "signature").filter(|s| is_sig(s));
    let Some(att_sig) = att_sig else {
        return Err(Refusal::new(
            wire::codes::MALFORMED,
            "attestation rejected: malformed",
        ));
    };
    check_signature(
        parent,
        &wire::attestation_signed(parent, session, expires_at),
        att_sig,
        ATT,
    )?;

    const WHAT: &str = "session_hello";
    let ts = check_timestamp(v, now, WHAT)?;
    let (Some(mesh_id), Some(sig)) = (
        str_field(v, "meshId"),
        str_field(v, "signature").filter(|s| is_sig(s)),
    ) else {
        return Err(Refusal::new(
            wire::codes::MALFORMED,
            "session_hello rejected: malformed",
        ));
    };
    let signed = wire::session_hello_signed(mesh_id, parent, session, ts);
    check_signature(session, &signed, sig, WHAT)?;

    let (mesh, member) = member_of(store, mesh_id, parent, "parent pubkey")?;
    if let Some(pid) = str_field(v, "parentMemberId").filter(|s| !s.is_empty())
        && pid != member.id
    {
        return Err(Refusal::new(
            wire::codes::PARENT_MEMBER_ID_MISMATCH,
            "parentMemberId does not belong to parentMemberPubkey",
        ));
    }
    Ok(Verified {
        mesh,
        member,
        session_pubkey: Some(session.to_string()),
        replay_key: replay_key(WHAT, &signed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_is_first_used_once_per_window() {
        let mut seen = SeenHellos::default();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert!(seen.first_use(a, 0));
        assert!(!seen.first_use(a, 1_000));
        assert!(seen.first_use(b, 1_000));
        assert!(!seen.first_use(a, 2 * MAX_SKEW_MS - 1));
        // Past the window the hello cannot verify any more; forgetting it is safe.
        assert!(seen.first_use(a, 2 * MAX_SKEW_MS));
        assert_eq!(seen.remembered(), 2);
        assert!(seen.first_use([3u8; 32], 10 * MAX_SKEW_MS));
        assert_eq!(seen.remembered(), 1);
    }
}
