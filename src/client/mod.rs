//! Talking to a broker: every tool goes through here, and none touches a socket itself.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | what both socket kinds share: [`ConnOpts`], [`SessionAuth`], the hello frames, broker error codes → [`Code`] |
//! | `transport.rs` | broker URLs, TCP with timeouts, TLS (webpki roots, plus a private CA from `$CLAUDEMESH_CA_FILE`/`$SSL_CERT_FILE` or the broker's `cm login --ca-file`), certificate refusals, the WebSocket upgrade |
//! | [`ctx`] | [`Ctx`]: the config, the chosen mesh and who to speak as, for one-shot tools |
//! | [`features`] | [`Features`]: what the broker offers beyond the original's protocol, from `hello_ack`; the one place that decides per feature |
//! | [`conn`] | [`Conn`]: one blocking socket for one-shot tools — hello, request/reply by `_reqId`, close |
//! | [`session`] | [`Session`]: a long-lived socket on its own I/O thread — keepalive, reconnect, re-sent sends, deduped inbound |
//! | [`inbound`] | [`Inbound`]: a `push` decoded and decrypted for the application |
//! | [`pace`] | [`Pacer`]: a `rate_limit` refusal waited out as long as the broker says, then sent again |
//! | [`request`] | [`Requester`]: a [`Conn`] or a [`Session`] asked one frame; one request on a fresh connection |
//! | [`rest`] | the broker's HTTP endpoints: create a mesh, register an invite, join, health |
//!
//! Who a socket speaks as: a [`Conn`] or [`Session`] says `hello` as the member (a control-plane presence), or, given
//! a [`SessionAuth`], `session_hello` with the session key and a fresh attestation signed by the member key at every
//! connect, so a session outlives any one attestation (original-cli §15 item 38).

pub mod conn;
pub mod ctx;
pub mod features;
pub mod inbound;
pub mod pace;
pub mod request;
pub mod rest;
pub mod session;
pub(crate) mod transport;

pub use conn::Conn;
pub use ctx::Ctx;
pub use features::{Feature, Features};
pub use inbound::{Inbound, Origin, decode_push};
pub use pace::Pacer;
pub use request::{Requester, ask_once, unexpected};
pub use session::{Event, Session, SessionOpts, Sink};

use crate::config::MeshEntry;
use crate::crypto::Keypair;
use crate::error::{Code, Error, Result};
use crate::time::now_ms;
use crate::wire::{self, Frame};
use std::time::Duration;
use transport::BrokerUrl;

/// The attestation lifetime the original client uses, and ours by default (the broker allows at most 24 h).
pub const ATTESTATION_TTL: Duration = Duration::from_secs(12 * 3600);

/// A per-session key to speak as with `session_hello`; the member key that attests it comes from the mesh entry.
#[derive(Debug, Clone)]
pub struct SessionAuth {
    /// The session's ed25519 key, kept on disk per session so queued DMs to it stay readable.
    pub session: Keypair,
}

/// How to open a socket.
#[derive(Debug, Clone)]
pub struct ConnOpts {
    /// Speak as this session (`session_hello`) instead of as the member (`hello`).
    pub session: Option<SessionAuth>,
    /// The display name peers see; the broker falls back to the member's.
    pub display_name: Option<String>,
    /// Ask the broker not to push queued messages (capability `"pull"`); one-shot tools fetch what they want.
    pub pull: bool,
    /// How long a request may wait for its reply.
    pub timeout: Duration,
    /// `ai`, `human` or `connector`, echoed in peer lists.
    pub peer_type: String,
    /// The client's channel name, echoed in peer lists.
    pub channel: String,
}

impl Default for ConnOpts {
    fn default() -> ConnOpts {
        ConnOpts {
            session: None,
            display_name: None,
            pull: true,
            timeout: Duration::from_secs(10),
            peer_type: "ai".into(),
            channel: "claudemesh-cli".into(),
        }
    }
}

/// The member a socket authenticates as, taken from a mesh entry.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub mesh_id: String,
    pub member_id: String,
    pub slug: String,
    pub member: Keypair,
    /// The broker tried first: the mesh's `brokerUrl`, or the one that answered last.
    pub url: BrokerUrl,
    /// The mesh's other brokers, tried in order when `url` cannot be reached.
    pub also: Vec<BrokerUrl>,
}

impl Who {
    pub(crate) fn from_mesh(mesh: &MeshEntry) -> Result<Who> {
        let mut who = Who::new(
            &mesh.mesh_id,
            &mesh.member_id,
            &mesh.slug,
            &mesh.secret_key,
            &mesh.broker_url,
        )?;
        for u in mesh.brokers().into_iter().skip(1) {
            who.also.push(
                transport::parse_url(u)
                    .map_err(|e| e.context(format_args!("mesh {}'s brokerUrls", mesh.slug)))?,
            );
        }
        Ok(who)
    }

    pub(crate) fn new(
        mesh_id: &str,
        member_id: &str,
        slug: &str,
        secret_key_hex: &str,
        broker_url: &str,
    ) -> Result<Who> {
        let member = Keypair::from_secret_hex(secret_key_hex)
            .map_err(|e| Error::auth(format!("mesh {slug}: bad member secret key: {e}")))?;
        Ok(Who {
            mesh_id: mesh_id.into(),
            member_id: member_id.into(),
            slug: slug.into(),
            member,
            url: transport::parse_url(broker_url)?,
            also: Vec::new(),
        })
    }

    /// Every broker, in the order a connect tries them.
    pub(crate) fn urls(&self) -> impl Iterator<Item = &BrokerUrl> {
        std::iter::once(&self.url).chain(&self.also)
    }

    /// Makes the `i`th of [`Who::urls`] the one tried first, so a session that moved to another broker stays
    /// there rather than waiting on a dead one at every reconnect.
    pub(crate) fn prefer(&mut self, i: usize) {
        if let Some(other) = i.checked_sub(1).and_then(|j| self.also.get_mut(j)) {
            std::mem::swap(&mut self.url, other);
        }
    }
}

/// The presence's session id: `$CLAUDEMESH_SESSION_ID`, else `<pid>-<ms>` (reference §3.1).
pub(crate) fn session_id() -> String {
    match std::env::var("CLAUDEMESH_SESSION_ID") {
        Ok(s) if !s.is_empty() => s,
        _ => format!("{}-{}", std::process::id(), now_ms()),
    }
}

/// This machine's host name, if it has one.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// The signed hello frame for one connect: `hello` as the member, or `session_hello` with an attestation that
/// expires `ttl` from now, minted here so no connect ever replays an old one.
/// The clock in ms, but never the same value twice in this process: the broker accepts each signed hello once,
/// and two hellos of one key signed in the same millisecond would be the same hello.
fn hello_timestamp() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = now_ms();
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(prev + 1)
}

pub(crate) fn hello_frame(who: &Who, opts: &ConnOpts, session_id: &str, ttl: Duration) -> Frame {
    let ts = hello_timestamp();
    let member_pk = who.member.public_hex();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let capabilities = if opts.pull {
        vec![wire::CAP_PULL.to_string()]
    } else {
        Vec::new()
    };
    match &opts.session {
        None => Frame::Hello(wire::Hello {
            signature: who.member.sign_hex(&wire::hello_signed(
                &who.mesh_id,
                &who.member_id,
                &member_pk,
                ts,
            )),
            mesh_id: who.mesh_id.clone(),
            member_id: who.member_id.clone(),
            pubkey: member_pk,
            display_name: opts.display_name.clone(),
            session_id: session_id.into(),
            pid: std::process::id(),
            cwd,
            hostname: hostname(),
            peer_type: Some(opts.peer_type.clone()),
            channel: Some(opts.channel.clone()),
            timestamp: ts,
            capabilities,
            ..wire::Hello::default()
        }),
        Some(auth) => {
            let session_pk = auth.session.public_hex();
            let expires_at = ts + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
            let parent_attestation = wire::Attestation {
                signature: who.member.sign_hex(&wire::attestation_signed(
                    &member_pk,
                    &session_pk,
                    expires_at,
                )),
                session_pubkey: session_pk.clone(),
                parent_member_pubkey: member_pk.clone(),
                expires_at,
            };
            Frame::SessionHello(wire::SessionHello {
                signature: auth.session.sign_hex(&wire::session_hello_signed(
                    &who.mesh_id,
                    &member_pk,
                    &session_pk,
                    ts,
                )),
                mesh_id: who.mesh_id.clone(),
                parent_member_id: Some(who.member_id.clone()),
                parent_member_pubkey: member_pk,
                session_pubkey: session_pk,
                parent_attestation,
                display_name: opts.display_name.clone(),
                session_id: session_id.into(),
                pid: std::process::id(),
                cwd,
                hostname: hostname(),
                peer_type: Some(opts.peer_type.clone()),
                channel: Some(opts.channel.clone()),
                timestamp: ts,
                capabilities,
                ..wire::SessionHello::default()
            })
        }
    }
}

/// The exit code for a broker `error` frame's code: `not_found`-like → NotFound, `forbidden` → Permission,
/// `invalid*`/`malformed`/`*_too_large` → Usage, anything else → Generic.
pub fn code_for(broker_code: &str) -> Code {
    match broker_code {
        c if c == "not_found" || c.ends_with("_not_found") || c == "key_not_sealed" => {
            Code::NotFound
        }
        "forbidden" | "not_member" => Code::Permission,
        c if c.starts_with("invalid") || c == "malformed" || c.ends_with("_too_large") => {
            Code::Usage
        }
        "exists" | "already_exists" | "webhook_exists" => Code::Exists,
        crate::wire::codes::VERSION_CONFLICT | crate::wire::codes::TASK_NOT_CLAIMABLE => {
            Code::Conflict
        }
        _ => Code::Generic,
    }
}

/// The error for a broker `error` frame: its message (or its code when there is none) under [`code_for`].
/// What to say when the broker refused a signature as `timestamp_skew`: the broker's words (ours say by how much;
/// the original's do not) and what to do. Always [`Code::Auth`], over WebSocket and HTTP alike.
pub(crate) fn clock_off(broker_message: &str) -> String {
    let how = broker_message.split_once("timestamp_skew: ").map_or(
        "more than 60 s off the broker's clock".to_string(),
        |(_, how)| how.to_string(),
    );
    format!(
        "this machine's clock looks off: {how} (it is {} here); set it right, e.g. with NTP, and try again \
         (timestamp_skew)",
        crate::time::fmt_rfc3339(now_ms())
    )
}

pub(crate) fn broker_error(code: &str, message: &str) -> Error {
    let msg = if message.is_empty() { code } else { message };
    Error::new(code_for(code), msg)
}

/// The error for a failed `send` ack, by the prefixes docs/protocol.md §3 lists.
pub(crate) fn ack_error(error: &str) -> Error {
    let code = if error.starts_with("unknown target")
        || error.starts_with("no connected peer")
        || error.starts_with("not_found")
    {
        Code::NotFound
    } else if error.starts_with("not_member") || error.starts_with("blocked") {
        Code::Permission
    } else if [
        "payload too large",
        "ambiguous_prefix",
        "invalid_argument",
        "topic_encrypted",
        "topic_unencrypted",
    ]
    .iter()
    .any(|p| error.starts_with(p))
    {
        Code::Usage
    } else {
        Code::Generic
    };
    Error::new(code, format!("broker refused the message: {error}"))
}

/// A short random id (16 hex characters) for `_reqId`s and message ids.
/// How large a `send` frame may be before its sealed copies go out in several: the broker's 64 KiB frame and
/// message limit (the original's too), less room for `_reqId` and the ids of the parts.
const SEND_FRAME_BUDGET: usize = 60 * 1024;

/// A `send` as the frames it goes out in: itself, or, when its sealed copies do not fit in one frame, parts that
/// each carry some of them. Part `k > 0` has the `id` and `client_message_id` of the whole with `-k` added, so a
/// repeat of the whole splits the same way and the broker stores each part once. A single copy too large for a
/// frame stays as it is, for the broker to refuse.
pub(crate) fn split_send(send: wire::SendMessage) -> Vec<wire::SendMessage> {
    let Some(copies) = send.copies.as_ref().filter(|c| c.len() > 1) else {
        return vec![send];
    };
    let size = |c: &wire::SealedCopy| c.to.len() + c.nonce.len() + c.ciphertext.len() + 40;
    let base = Frame::Send(wire::SendMessage {
        copies: Some(Vec::new()),
        ..send.clone()
    })
    .to_json()
    .len();
    if base + copies.iter().map(size).sum::<usize>() <= SEND_FRAME_BUDGET {
        return vec![send];
    }
    let mut groups: Vec<Vec<wire::SealedCopy>> = vec![Vec::new()];
    let mut used = base;
    for c in copies {
        let n = size(c);
        if used + n > SEND_FRAME_BUDGET && groups.last().is_some_and(|g| !g.is_empty()) {
            groups.push(Vec::new());
            used = base;
        }
        used += n;
        if let Some(g) = groups.last_mut() {
            g.push(c.clone());
        }
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(k, g)| {
            let suffix = |s: &str| {
                if k == 0 {
                    s.to_string()
                } else {
                    format!("{s}-{k}")
                }
            };
            wire::SendMessage {
                id: suffix(&send.id),
                client_message_id: send.client_message_id.as_deref().map(suffix),
                copies: Some(g),
                ..send.clone()
            }
        })
        .collect()
}

/// The acks of a split `send`'s parts as the ack of the whole: the first part's ids, queued unless some part was
/// pushed, online if any recipient was, a duplicate if every part was.
pub(crate) fn merge_acks(acks: Vec<wire::Ack>) -> wire::Ack {
    let queued = acks.iter().all(|a| a.queued);
    let online = acks
        .iter()
        .filter_map(|a| a.recipient_online)
        .reduce(|a, b| a || b);
    let duplicate = acks.iter().all(|a| a.duplicate == Some(true));
    let mut it = acks.into_iter();
    let first = it.next().unwrap_or_default();
    wire::Ack {
        queued,
        recipient_online: online,
        duplicate: duplicate.then_some(true),
        ..first
    }
}

/// A fresh `client_message_id`: the time in milliseconds (12 hex digits), then 64 random bits.
///
/// Why time first: the broker indexes client ids to store a resent message once, and ids in time order land
/// together at the end of that index instead of on a random page each.
pub fn new_client_message_id() -> String {
    let ms = u64::try_from(crate::time::now_ms()).unwrap_or(0);
    format!("{ms:012x}{}", random_id())
}

pub(crate) fn random_id() -> String {
    crate::crypto::hex::encode(&crate::crypto::random_bytes::<8>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(to: usize, bytes: usize) -> wire::SealedCopy {
        wire::SealedCopy {
            to: format!("{to:064x}"),
            nonce: "n".repeat(32),
            ciphertext: "c".repeat(bytes),
        }
    }

    fn broadcast(copies: Vec<wire::SealedCopy>) -> wire::SendMessage {
        wire::SendMessage {
            id: "abc".into(),
            client_message_id: Some("abc".into()),
            target_spec: "*".into(),
            copies: Some(copies),
            ..wire::SendMessage::default()
        }
    }

    #[test]
    fn a_send_that_fits_goes_out_whole() {
        let s = broadcast((0..10).map(|i| copy(i, 1000)).collect());
        assert_eq!(split_send(s.clone()), [s]);
    }

    #[test]
    fn copies_too_many_for_a_frame_go_out_in_parts_that_fit() {
        let copies: Vec<_> = (0..100).map(|i| copy(i, 2000)).collect();
        let parts = split_send(broadcast(copies.clone()));
        assert!(parts.len() >= 4, "{}", parts.len());
        let ids: Vec<_> = parts.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(&ids[..3], ["abc", "abc-1", "abc-2"]);
        for p in &parts {
            assert_eq!(p.client_message_id.as_deref(), Some(p.id.as_str()));
            assert!(Frame::Send(p.clone()).to_json().len() <= 64 * 1024);
        }
        let again: Vec<_> = parts
            .iter()
            .flat_map(|p| p.copies.clone().unwrap())
            .collect();
        assert_eq!(again, copies, "every copy once, in order");
        assert_eq!(
            split_send(broadcast(copies)),
            parts,
            "a repeat splits the same way"
        );
    }

    #[test]
    fn a_copy_too_large_for_any_frame_is_left_for_the_broker_to_refuse() {
        let parts = split_send(broadcast(vec![copy(1, 100), copy(2, 70_000), copy(3, 100)]));
        let sizes: Vec<usize> = parts
            .iter()
            .map(|p| p.copies.as_ref().unwrap().len())
            .collect();
        assert_eq!(sizes, [1, 1, 1]);
    }

    #[test]
    fn the_parts_acks_merge_into_one() {
        let ack = |id: &str, queued, online, duplicate| wire::Ack {
            id: id.into(),
            message_id: format!("m-{id}"),
            queued,
            recipient_online: Some(online),
            duplicate,
            ..wire::Ack::default()
        };
        let m = merge_acks(vec![
            ack("a", true, false, Some(true)),
            ack("a-1", false, true, None),
        ]);
        assert_eq!((m.id.as_str(), m.message_id.as_str()), ("a", "m-a"));
        assert_eq!(
            (m.queued, m.recipient_online, m.duplicate),
            (false, Some(true), None)
        );
        let m = merge_acks(vec![
            ack("a", true, false, Some(true)),
            ack("a-1", true, false, Some(true)),
        ]);
        assert_eq!(
            (m.queued, m.recipient_online, m.duplicate),
            (true, Some(false), Some(true))
        );
    }
    use crate::crypto::verify_hex;

    fn who() -> Who {
        let kp = Keypair::from_seed(&[7; 32]);
        Who::new("m1", "mem1", "dev", &kp.secret_hex(), "ws://127.0.0.1:1/ws").unwrap()
    }

    #[test]
    fn member_hello_is_signed() {
        let w = who();
        let Frame::Hello(h) = hello_frame(&w, &ConnOpts::default(), "s1", ATTESTATION_TTL) else {
            panic!("not a hello")
        };
        assert_eq!(h.capabilities, vec!["pull".to_string()]);
        assert_eq!(h.peer_type.as_deref(), Some("ai"));
        assert_eq!(h.channel.as_deref(), Some("claudemesh-cli"));
        assert_eq!((h.mesh_id.as_str(), h.session_id.as_str()), ("m1", "s1"));
        verify_hex(&w.member.public_hex(), h.signed().as_bytes(), &h.signature).unwrap();
    }

    #[test]
    fn session_hello_carries_a_fresh_attestation() {
        let w = who();
        let s = Keypair::from_seed(&[9; 32]);
        let opts = ConnOpts {
            session: Some(SessionAuth { session: s.clone() }),
            pull: false,
            ..ConnOpts::default()
        };
        let Frame::SessionHello(h) = hello_frame(&w, &opts, "s1", Duration::from_secs(30)) else {
            panic!("not a session_hello")
        };
        assert!(h.capabilities.is_empty());
        let att = &h.parent_attestation;
        assert_eq!(att.expires_at, h.timestamp + 30_000);
        assert_eq!(att.session_pubkey, s.public_hex());
        verify_hex(
            &w.member.public_hex(),
            att.signed().as_bytes(),
            &att.signature,
        )
        .unwrap();
        verify_hex(&s.public_hex(), h.signed().as_bytes(), &h.signature).unwrap();
    }

    #[test]
    fn codes() {
        assert_eq!(code_for("topic_not_found"), Code::NotFound);
        assert_eq!(code_for("not_found"), Code::NotFound);
        assert_eq!(code_for("forbidden"), Code::Permission);
        assert_eq!(code_for("invalid_args"), Code::Usage);
        assert_eq!(code_for("malformed"), Code::Usage);
        assert_eq!(code_for("file_too_large"), Code::Usage);
        assert_eq!(code_for("vector_error"), Code::Generic);
        assert_eq!(ack_error("unknown target: bob").code, Code::NotFound);
        assert_eq!(ack_error("not_member: x").code, Code::Permission);
    }
}
