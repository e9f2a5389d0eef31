//! The broker's own HTTP endpoints (docs/protocol.md §5): create a mesh, register an invite, join with an
//! invite, health. Each call takes the broker's URL in either form (`ws[s]://host/ws` or `http[s]://host`) and
//! gives up after 10 s.

use super::transport::{BrokerUrl, parse_url, tls_config};
use crate::crypto::{Keypair, sha256_hex};
use crate::error::{Code, Error, Result, io_message};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A mesh the broker created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedMesh {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// The creator's member id in the new mesh.
    pub member_id: String,
}

/// The outcome of `POST /join`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub member_id: String,
    /// The key was already a member; no invite use was spent.
    pub already_member: bool,
}

/// Creates a mesh whose owner key is `owner_pubkey` (kept by the client), with `creator` as its first member.
/// `token` is the broker's admin token (from `brokers.json`), needed when not on the broker's loopback.
pub fn create_mesh(
    broker_url: &str,
    creator: &Keypair,
    owner_pubkey: &str,
    name: &str,
    display_name: Option<&str>,
    token: Option<&str>,
) -> Result<CreatedMesh> {
    let ts = super::now_ms();
    let pk = creator.public_hex();
    let signature = creator.sign_hex(&format!(
        "claudemesh-mesh-create|{name}|{pk}|{owner_pubkey}|{ts}"
    ));
    let mut body = json!({
        "name": name, "pubkey": pk, "ownerPubkey": owner_pubkey, "timestamp": ts, "signature": signature,
    });
    if let Some(d) = display_name {
        body["displayName"] = d.into();
    }
    let v = post(broker_url, "/cli/mesh/create", &body, token)?;
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let member_id = match v["memberId"].as_str() {
        Some(m) => m.to_string(),
        None => s("member_id"),
    };
    if s("id").is_empty() || member_id.is_empty() {
        return Err(Error::generic(format!(
            "broker at {broker_url} answered mesh create without an id"
        )));
    }
    Ok(CreatedMesh {
        id: s("id"),
        slug: s("slug"),
        name: s("name"),
        member_id,
    })
}

/// Registers a v1 invite token with the broker, signed by the mesh owner key.
pub fn register_invite(
    broker_url: &str,
    mesh_id: &str,
    owner: &Keypair,
    token: &str,
    max_uses: u32,
) -> Result<()> {
    let ts = super::now_ms();
    let hash = sha256_hex(token.as_bytes());
    let signature = owner.sign_hex(&format!(
        "claudemesh-invite-register|{mesh_id}|{hash}|{max_uses}|{ts}"
    ));
    let body = json!({
        "meshId": mesh_id, "token": token, "maxUses": max_uses, "timestamp": ts, "signature": signature,
    });
    post(broker_url, "/cli/mesh/invite", &body, None).map(|_| ())
}

/// Claims a v1 invite (`POST /join`, reference §2.6.1): `token` exactly as it appeared in the link, `payload` the
/// decoded invite object.
pub fn join(
    broker_url: &str,
    token: &str,
    payload: &Value,
    peer_pubkey: &str,
    display_name: &str,
) -> Result<Joined> {
    let body = json!({
        "invite_token": token, "invite_payload": payload, "peer_pubkey": peer_pubkey,
        "display_name": display_name,
    });
    let v = post(broker_url, "/join", &body, None)?;
    if v["ok"] == false {
        let e = v["error"].as_str().unwrap_or("join refused");
        return Err(Error::generic(format!("broker refused the invite: {e}")));
    }
    let member_id = v["memberId"].as_str().unwrap_or_default().to_string();
    if member_id.is_empty() {
        return Err(Error::generic(format!(
            "broker at {broker_url} answered join without a member id"
        )));
    }
    Ok(Joined {
        member_id,
        already_member: v["alreadyMember"] == true,
    })
}

/// `GET /health`: the broker's answer and how long it took.
pub fn health(broker_url: &str) -> Result<(Value, Duration)> {
    health_dated(broker_url).map(|(v, d, _)| (v, d))
}

/// `GET /health` as [`health`], with the broker's clock from its `Date` header when it sent one (ms since the
/// epoch, to the second).
pub fn health_dated(broker_url: &str) -> Result<(Value, Duration, Option<i64>)> {
    let url = parse_url(broker_url)?;
    let base = &url.http;
    let start = Instant::now();
    let r = agent(&url)?.get(&format!("{base}/health")).call();
    let elapsed = start.elapsed();
    let date = match &r {
        Ok(resp) => resp.header("date").and_then(crate::time::parse_http_date),
        Err(_) => None,
    };
    let v = answer(base, r)?;
    Ok((v, elapsed, date))
}

fn agent(url: &BrokerUrl) -> Result<ureq::Agent> {
    let mut b = ureq::AgentBuilder::new().timeout(TIMEOUT);
    if url.tls {
        b = b.tls_config(tls_config(url)?);
    }
    Ok(b.build())
}

fn post(broker_url: &str, path: &str, body: &Value, token: Option<&str>) -> Result<Value> {
    let url = parse_url(broker_url)?;
    let base = url.http.as_str();
    let mut req = agent(&url)?.post(&format!("{base}{path}"));
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    answer(base, req.send_json(body))
}

/// The JSON body of a 2xx answer, or the error its status and `error` field call for.
fn answer(base: &str, r: std::result::Result<ureq::Response, ureq::Error>) -> Result<Value> {
    match r {
        Ok(resp) => resp.into_json::<Value>().map_err(|e| {
            Error::network(format!(
                "broker at {base} sent an unreadable answer: {}",
                io_message(&e)
            ))
        }),
        Err(ureq::Error::Status(status, resp)) => {
            let body = resp.into_string().unwrap_or_default();
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.trim().chars().take(200).collect());
            Err(status_error(status, &detail))
        }
        Err(ureq::Error::Transport(t)) if let Some(e) = refused_certificate(base, &t) => Err(e),
        Err(ureq::Error::Transport(t)) => Err(Error::network(format!(
            "cannot reach broker at {base}: {}",
            transport_message(&t)
        ))),
    }
}

/// The error for an HTTP status, carrying the broker's `error` string.
fn status_error(status: u16, detail: &str) -> Error {
    let code = match status {
        400 | 413 | 422 => Code::Usage,
        401 => Code::Auth,
        403 => Code::Permission,
        404 | 410 => Code::NotFound,
        409 => Code::Exists,
        _ => Code::Generic,
    };
    if detail == crate::wire::codes::TIMESTAMP_SKEW {
        return Error::auth(super::clock_off(detail));
    }
    let detail = if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        detail.to_string()
    };
    Error::new(code, format!("broker refused: {detail}"))
}

/// The certificate refusal inside a ureq transport error, said as the WebSocket path says it.
fn refused_certificate(base: &str, t: &ureq::Transport) -> Option<Error> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    while let Some(e) = src {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return super::transport::certificate_refused(base, io);
        }
        src = e.source();
    }
    None
}

/// `connection refused`, `timed out`, ... from the innermost I/O error, else ureq's own words.
fn transport_message(t: &ureq::Transport) -> String {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    while let Some(e) = src {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    "timed out after 10 s".into()
                }
                _ => io_message(io),
            };
        }
        src = e.source();
    }
    match t.message() {
        Some(m) => format!("{}: {m}", t.kind()),
        None => t.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status_error(400, "bad").code, Code::Usage);
        assert_eq!(status_error(401, "").code, Code::Auth);
        assert_eq!(status_error(403, "").code, Code::Permission);
        assert_eq!(status_error(404, "").code, Code::NotFound);
        assert_eq!(status_error(409, "").code, Code::Exists);
        assert_eq!(status_error(413, "").code, Code::Usage);
        assert_eq!(status_error(502, "").code, Code::Generic);
        assert_eq!(
            status_error(400, "invite_expired").msg,
            "broker refused: invite_expired"
        );
        // A skewed clock is the same error over HTTP as over WebSocket.
        let skew = status_error(401, "timestamp_skew");
        assert_eq!(skew.code, Code::Auth);
        assert!(
            skew.msg
                .starts_with("this machine's clock looks off: more than 60 s off"),
            "{}",
            skew.msg
        );
    }

    #[test]
    fn refused_is_network() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = health(&format!("ws://127.0.0.1:{port}/ws")).unwrap_err();
        assert_eq!(e.code, Code::Network);
        assert_eq!(
            e.msg,
            format!("cannot reach broker at http://127.0.0.1:{port}: connection refused")
        );
    }
}
