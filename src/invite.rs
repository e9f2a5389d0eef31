//! v1 invites (reference §2.6.1): a JSON payload signed by the mesh owner's ed25519 key, carried as base64url in
//! `ic://join/<token>`.
//!
//! The owner key stays with the owner's client, which makes and signs invites itself; the broker only checks them
//! at `POST /join`. The token is sent to the broker exactly as it appeared in the link, so it is never re-encoded
//! after parsing.

use serde::{Deserialize, Serialize};

use crate::crypto::{self, Keypair, b64};
use crate::error::{Error, Result};
use crate::time;

/// The invite payload. Serialized in exactly this key order, `signature` last, as the original broker builds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Format version: 1.
    pub v: u32,
    /// The broker's id for the mesh.
    pub mesh_id: String,
    /// The mesh's slug.
    pub mesh_slug: String,
    /// The broker's WebSocket URL.
    pub broker_url: String,
    /// When the invite stops working, unix seconds.
    pub expires_at: i64,
    /// The mesh root key, base64url.
    pub mesh_root_key: String,
    /// `admin` or `member`: the role the joiner gets.
    pub role: String,
    /// The mesh owner's ed25519 public key, 64 hex.
    pub owner_pubkey: String,
    /// The owner's signature over [`canonical`], 128 hex.
    pub signature: String,
}

/// A freshly made invite.
#[derive(Debug, Clone)]
pub struct Invite {
    /// What was signed.
    pub payload: Payload,
    /// base64url (no padding) of the payload's JSON.
    pub token: String,
    /// `ic://join/<token>`.
    pub url: String,
}

/// An invite read from a link or a bare token.
#[derive(Debug, Clone)]
pub struct ParsedInvite {
    /// The token exactly as it appeared in the input.
    pub token: String,
    /// The decoded payload (not yet verified: see [`verify`]).
    pub payload: Payload,
}

/// The signed string: `v|mesh_id|mesh_slug|broker_url|expires_at|mesh_root_key|role|owner_pubkey`.
pub fn canonical(p: &Payload) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}",
        p.v,
        p.mesh_id,
        p.mesh_slug,
        p.broker_url,
        p.expires_at,
        p.mesh_root_key,
        p.role,
        p.owner_pubkey
    )
}

/// Makes and signs an invite with the mesh owner's key.
pub fn make(
    owner: &Keypair,
    mesh_id: &str,
    mesh_slug: &str,
    broker_url: &str,
    expires_at: i64,
    mesh_root_key: &str,
    role: &str,
) -> Result<Invite> {
    let mut payload = Payload {
        v: 1,
        mesh_id: mesh_id.to_string(),
        mesh_slug: mesh_slug.to_string(),
        broker_url: broker_url.to_string(),
        expires_at,
        mesh_root_key: mesh_root_key.to_string(),
        role: role.to_string(),
        owner_pubkey: owner.public_hex(),
        signature: String::new(),
    };
    check_shape(&payload, false)?;
    payload.signature = owner.sign_hex(&canonical(&payload));
    let json = serde_json::to_vec(&payload)
        .map_err(|e| Error::internal(format!("encoding invite: {e}")))?;
    let token = b64::encode_url(&json);
    let url = format!("ic://join/{token}");
    Ok(Invite {
        payload,
        token,
        url,
    })
}

/// The token inside an invite link: `ic://join/<t>`, `claudemesh://join/<t>`, `https://host[/xx]/join/<t>`, or a bare
/// token. Short codes (`https://host/i/<code>`) are refused: resolving them needs the original's web service.
fn extract_token(input: &str) -> Result<&str> {
    let s = input.trim();
    // A link pasted with what was printed around it (`cm invite`'s expiry line, a chat message): the link.
    let s = match s.split_whitespace().find(|w| {
        ["ic://", "claudemesh://", "https://", "http://"]
            .iter()
            .any(|p| w.starts_with(p))
    }) {
        Some(link) if s.contains(char::is_whitespace) => link,
        _ => s,
    };
    let bad = || {
        Error::usage(format!(
            "not an invite: {s:?} (expected ic://join/TOKEN or https://HOST/join/TOKEN)"
        ))
    };
    let short = || {
        Error::usage(
            "short invite codes (https://HOST/i/CODE) need the claudemesh web service; ask for the full link \
             (ic://join/...)",
        )
    };
    let path = if let Some(rest) = s
        .strip_prefix("ic://")
        .or_else(|| s.strip_prefix("claudemesh://"))
    {
        rest
    } else if let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    {
        // Skip the host.
        rest.split_once('/').map(|(_, p)| p).ok_or_else(bad)?
    } else {
        let is_token = s.len() > 20
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'='));
        return if is_token { Ok(s) } else { Err(bad()) };
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    // An optional two-letter locale: `/en/join/...`.
    if parts.len() == 3 && parts[0].len() == 2 && parts[0].bytes().all(|c| c.is_ascii_alphabetic())
    {
        parts.remove(0);
    }
    match parts.as_slice() {
        ["join", token] => Ok(token),
        ["i", _] => Err(short()),
        // `claudemesh://CODE` is the original's short form of `https://claudemesh.com/i/CODE`.
        [code] if s.starts_with("claudemesh://") && code.len() <= 16 => Err(short()),
        _ => Err(bad()),
    }
}

/// Reads an invite link or bare token and decodes its payload. Nothing is verified yet: see [`verify`].
pub fn parse(input: &str) -> Result<ParsedInvite> {
    let token = extract_token(input)?;
    let json = b64::decode_url(token)
        .map_err(|e| Error::usage(format!("invite token is malformed: {e}")))?;
    let payload: Payload = serde_json::from_slice(&json)
        .map_err(|e| Error::usage(format!("invite token is malformed: {e}")))?;
    Ok(ParsedInvite {
        token: token.to_string(),
        payload,
    })
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// The field checks the original applies before verifying (its zod schema); `signed` also checks the signature's.
fn check_shape(p: &Payload, signed: bool) -> Result<()> {
    let bad = |what: &str| Error::usage(format!("invite is malformed: {what}"));
    if p.v != 1 {
        return Err(Error::usage(format!(
            "unsupported invite version {} (this client reads v1)",
            p.v
        )));
    }
    for (name, val) in [
        ("mesh_id", &p.mesh_id),
        ("mesh_slug", &p.mesh_slug),
        ("broker_url", &p.broker_url),
        ("mesh_root_key", &p.mesh_root_key),
    ] {
        if val.is_empty() {
            return Err(bad(&format!("{name} is empty")));
        }
    }
    if p.expires_at <= 0 {
        return Err(bad("expires_at is not a positive time"));
    }
    if p.role != "admin" && p.role != "member" {
        return Err(bad(&format!("role {:?} is not admin or member", p.role)));
    }
    if !is_hex(&p.owner_pubkey, 64) {
        return Err(bad("owner_pubkey is not 64 hex characters"));
    }
    if signed && !is_hex(&p.signature, 128) {
        return Err(bad("signature is not 128 hex characters"));
    }
    Ok(())
}

/// Checks an invite's shape, that it has not expired at `now_secs`, and that its owner key signed it.
pub fn verify(inv: &ParsedInvite, now_secs: i64) -> Result<()> {
    let p = &inv.payload;
    check_shape(p, true)?;
    if p.expires_at < now_secs {
        let when = time::fmt_rfc3339(p.expires_at.saturating_mul(1000));
        return Err(Error::auth(format!("invite expired on {when}")));
    }
    let msg = canonical(p);
    crypto::verify_hex(
        &p.owner_pubkey.to_ascii_lowercase(),
        msg.as_bytes(),
        &p.signature,
    )
    .map_err(|_| {
        Error::auth("invite signature does not verify: it was not signed by its mesh owner key")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;
    use serde_json::Value;

    fn vectors() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/crypto.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn owner(v: &Value) -> Keypair {
        Keypair::from_secret_hex(
            v["identities"]["mesh-owner"]["secret_hex"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    }

    fn vector_invite(v: &Value) -> Invite {
        let p = &v["invite_v1"]["payload"];
        let s = |k: &str| p[k].as_str().unwrap();
        make(
            &owner(v),
            s("mesh_id"),
            s("mesh_slug"),
            s("broker_url"),
            p["expires_at"].as_i64().unwrap(),
            s("mesh_root_key"),
            s("role"),
        )
        .unwrap()
    }

    #[test]
    fn makes_the_vector_byte_for_byte() {
        let v = vectors();
        let want = &v["invite_v1"];
        let inv = vector_invite(&v);
        assert_eq!(canonical(&inv.payload), want["canonical"].as_str().unwrap());
        assert_eq!(
            inv.payload.signature,
            want["payload"]["signature"].as_str().unwrap()
        );
        assert_eq!(inv.token, want["token"].as_str().unwrap());
        assert_eq!(inv.url, want["url"].as_str().unwrap());
        assert_eq!(serde_json::to_value(&inv.payload).unwrap(), want["payload"]);
    }

    #[test]
    fn parses_and_verifies_the_vector_in_every_form() {
        let v = vectors();
        let want = &v["invite_v1"];
        let token = want["token"].as_str().unwrap();
        for input in [
            want["url"].as_str().unwrap().to_string(),
            format!("  {token}\n"),
            format!("https://claudemesh.com/join/{token}"),
            format!("https://claudemesh.com/en/join/{token}/"),
            format!("http://127.0.0.1:7900/join/{token}?ref=x"),
            format!("claudemesh://join/{token}"),
        ] {
            let p = parse(&input).unwrap();
            assert_eq!(p.token, token, "{input}");
            assert_eq!(canonical(&p.payload), want["canonical"].as_str().unwrap());
            verify(&p, 1_800_000_000).unwrap();
        }
    }

    #[test]
    fn short_codes_need_the_web_service() {
        for input in [
            "https://claudemesh.com/i/abc123",
            "https://claudemesh.com/de/i/abc123",
            "claudemesh://i/abc123",
        ] {
            let e = parse(input).unwrap_err();
            assert_eq!(e.code, Code::Usage, "{input}");
            assert!(e.msg.contains("short invite codes"), "{}", e.msg);
        }
    }

    #[test]
    fn rejects_what_is_not_an_invite() {
        for input in [
            "",
            "hello",
            "ic://nope/abc",
            "https://host/",
            "https://host/join/",
            "ftp://x/join/y",
        ] {
            assert_eq!(parse(input).unwrap_err().code, Code::Usage, "{input}");
        }
        let e = parse(&"A".repeat(40)).unwrap_err();
        assert!(e.msg.contains("malformed"), "{}", e.msg);
        let not_payload = b64::encode_url(br#"{"v":1,"mesh_id":"x"}"#);
        assert!(
            parse(&not_payload)
                .unwrap_err()
                .msg
                .contains("missing field")
        );
    }

    #[test]
    fn expired_invites_say_when() {
        let v = vectors();
        let p = parse(v["invite_v1"]["url"].as_str().unwrap()).unwrap();
        verify(&p, 1_893_456_000).unwrap();
        let e = verify(&p, 1_893_456_001).unwrap_err();
        assert_eq!(e.code, Code::Auth);
        assert_eq!(e.msg, "invite expired on 2030-01-01T00:00:00.000Z");
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let v = vectors();
        let good = parse(v["invite_v1"]["url"].as_str().unwrap()).unwrap();
        let mut p = good.clone();
        p.payload.role = "admin".into();
        assert_eq!(verify(&p, 0).unwrap_err().code, Code::Auth);
        let mut p = good.clone();
        p.payload.owner_pubkey = v["identities"]["alice"]["pubkey_hex"]
            .as_str()
            .unwrap()
            .into();
        assert_eq!(verify(&p, 0).unwrap_err().code, Code::Auth);
        let mut p = good.clone();
        p.payload.role = "root".into();
        assert_eq!(verify(&p, 0).unwrap_err().code, Code::Usage);
        let mut p = good;
        p.payload.signature.truncate(100);
        assert_eq!(verify(&p, 0).unwrap_err().code, Code::Usage);
    }

    #[test]
    fn made_invites_verify() {
        let kp = Keypair::generate();
        let inv = make(
            &kp,
            "mesh",
            "dev",
            "ws://h/ws",
            2_000_000_000,
            "cm9vdA",
            "admin",
        )
        .unwrap();
        let p = parse(&inv.url).unwrap();
        assert_eq!(p.payload, inv.payload);
        verify(&p, 1_900_000_000).unwrap();
        assert!(make(&kp, "", "dev", "ws://h/ws", 1, "k", "member").is_err());
        assert!(make(&kp, "m", "dev", "ws://h/ws", 1, "k", "owner").is_err());
    }
}
