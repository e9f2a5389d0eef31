//! Who the bench speaks as: members it makes on a broker that lets it (a mesh created over HTTP, members joined
//! through one signed invite), or members of an existing mesh read from a file.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::fleet::Fleet;
use crate::client::Requester;
use crate::client::conn::with_req_id;
use crate::client::transport::BrokerUrl;
use crate::client::{ConnOpts, Who, broker_error, hello_frame, random_id, rest};
use crate::crypto::{self, Keypair};
use crate::error::{Code, Error, Result};
use crate::invite;
use crate::wire::{self, Frame};

/// A member of the mesh under test.
#[derive(Clone)]
pub(super) struct Member {
    pub mesh_id: String,
    pub member_id: String,
    pub key: Keypair,
}

impl Member {
    pub fn pubkey(&self) -> String {
        self.key.public_hex()
    }
}

/// One line of `--members FILE`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    mesh_id: String,
    member_id: String,
    pubkey: String,
    secret_key: String,
}

/// Reads `--members FILE`: JSON lines of `meshId`, `memberId`, `pubkey`, `secretKey`.
pub(super) fn read(path: &str) -> Result<Vec<Member>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::from(e).context(format_args!("reading {path}")))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |why: String| Error::usage(format!("{path}:{}: {why}", n + 1));
        let l: Line = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        let key = Keypair::from_secret_hex(&l.secret_key).map_err(|e| at(e.to_string()))?;
        if key.public_hex() != l.pubkey {
            return Err(at("secretKey does not belong to pubkey".into()));
        }
        out.push(Member {
            mesh_id: l.mesh_id,
            member_id: l.member_id,
            key,
        });
    }
    if out.is_empty() {
        return Err(Error::usage(format!("{path}: no members")));
    }
    Ok(out)
}

/// Makes a mesh with `n` members on the broker: the creator and `n - 1` joined through one invite.
pub(super) fn create(url: &BrokerUrl, tag: &str, n: usize) -> Result<Vec<Member>> {
    let (creator, owner) = (Keypair::generate(), Keypair::generate());
    let name = format!(
        "bench-{tag}-{}",
        &crypto::hex::encode(&crypto::random_bytes::<3>())
    );
    let mesh = rest::create_mesh(
        &url.http,
        &creator,
        &owner.public_hex(),
        &name,
        Some("bench-0"),
        None,
    )
    .map_err(|e| {
        let hint = if matches!(e.code, Code::Auth | Code::Permission) {
            " (a broker that does not let this address create meshes needs --members FILE)"
        } else {
            ""
        };
        Error::new(
            e.code,
            format!("creating a mesh to measure: {}{hint}", e.msg),
        )
    })?;
    let mut out = vec![Member {
        mesh_id: mesh.id.clone(),
        member_id: mesh.member_id,
        key: creator,
    }];
    if n > 1 {
        let uses = u32::try_from(n - 1).map_err(|_| Error::usage("too many members"))?;
        let root = crypto::b64::encode_url(&crypto::random_bytes::<32>());
        let expires = crate::time::now_ms() / 1000 + 3600;
        let inv = invite::make(
            &owner, &mesh.id, &mesh.slug, &url.ws, expires, &root, "member",
        )?;
        rest::register_invite(&url.http, &mesh.id, &owner, &inv.token, uses)?;
        let payload = serde_json::to_value(&inv.payload)
            .map_err(|e| Error::internal(format!("encoding an invite: {e}")))?;
        for i in 1..n {
            let key = Keypair::generate();
            let name = format!("bench-{i}");
            let joined = rest::join(&url.http, &inv.token, &payload, &key.public_hex(), &name)?;
            out.push(Member {
                mesh_id: mesh.id.clone(),
                member_id: joined.member_id,
                key,
            });
        }
    }
    Ok(out)
}

/// The first `n` members of `--members FILE`, or `n` fresh ones in a new mesh.
pub(super) fn get(
    url: &BrokerUrl,
    file: Option<&[Member]>,
    tag: &str,
    n: usize,
) -> Result<Vec<Member>> {
    match file {
        Some(m) if m.len() >= n => Ok(m[..n].to_vec()),
        Some(m) => Err(Error::usage(format!(
            "{tag} needs {n} members; --members has {}",
            m.len()
        ))),
        None => create(url, tag, n),
    }
}

/// What the bench reads from a broker frame; everything else is skipped unparsed.
#[derive(Deserialize)]
pub(super) struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, rename = "messageId", borrow)]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(default, rename = "client_message_id", borrow)]
    pub client_message_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub error: Option<Cow<'a, str>>,
    #[serde(default, rename = "retryAfterMs")]
    pub retry_after_ms: Option<u64>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(default, rename = "topicId", borrow)]
    pub topic_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub nonce: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub ciphertext: Option<Cow<'a, str>>,
}

impl Incoming<'_> {
    pub fn parse(text: &str) -> Option<Incoming<'_>> {
        serde_json::from_str(text).ok()
    }
}

/// `{"type":"client_ack","brokerMessageId":ID}`.
pub(super) fn client_ack(message_id: &str) -> String {
    serde_json::json!({"type": "client_ack", "brokerMessageId": message_id}).to_string()
}

/// Opens `count` sockets, the `i`th as `members[i % len]` with a plain `hello` (pushed to, never announced), each
/// fleet socket to the next of `urls` in turn, and waits until every one has its `hello_ack`. Returns, per
/// socket, how long its hello took.
pub(super) fn connect(
    fleet: &mut Fleet,
    urls: &[BrokerUrl],
    members: &[Member],
    count: usize,
) -> Result<Vec<Duration>> {
    let opts = ConnOpts {
        pull: false,
        peer_type: "bench".into(),
        channel: "cm-bench".into(),
        ..ConnOpts::default()
    };
    if urls.is_empty() {
        return Err(Error::usage("no broker to connect to"));
    }
    let url_of = |socket: usize| &urls[socket % urls.len()];
    let first = fleet.len();
    let mut hellos = Vec::with_capacity(count);
    for i in 0..count {
        let m = &members[i % members.len()];
        let who = Who {
            mesh_id: m.mesh_id.clone(),
            member_id: m.member_id.clone(),
            slug: "bench".into(),
            member: m.key.clone(),
            url: url_of(first + i).clone(),
            also: Vec::new(),
        };
        // A session id of its own per socket: the original broker replaces a presence whose session id it has
        // already, which would end every socket but the last.
        let session_id = format!("cm-bench-{}", first + i);
        hellos
            .push(hello_frame(&who, &opts, &session_id, crate::client::ATTESTATION_TTL).to_json());
    }
    for i in 0..count {
        fleet.open(url_of(first + i))?;
    }
    let start = Instant::now();
    for (i, h) in hellos.iter().enumerate() {
        fleet.io.send(first + i, h.as_bytes());
    }
    fleet.flush();
    let mut took: Vec<Option<Duration>> = vec![None; count];
    let mut left = count;
    let mut refused: Option<Error> = None;
    let mut last = Instant::now();
    let mut features = None;
    while left > 0 && refused.is_none() {
        fleet.turn(Some(Duration::from_millis(100)), &mut |_, i, text| {
            let Some(f) = Incoming::parse(text) else { return };
            let Some(slot) = i.checked_sub(first).and_then(|k| took.get_mut(k)) else {
                return;
            };
            match f.ty.as_ref() {
                "hello_ack" if slot.is_none() => {
                    if features.is_none()
                        && let Ok(wire::Frame::HelloAck(a)) = wire::parse(text)
                    {
                        features = Some(crate::client::Features::of(&a));
                    }
                    *slot = Some(start.elapsed());
                    left -= 1;
                    last = Instant::now();
                }
                "error" if slot.is_none() => {
                    let code = f.code.as_deref().unwrap_or("error");
                    let hint = match code {
                        "capacity" => " (start the broker with larger --max-conns-per-mesh and --max-conns-per-addr)",
                        _ => "",
                    };
                    refused.get_or_insert_with(|| {
                        Error::auth(format!(
                            "the broker refused hello: {code}: {}{hint}",
                            f.message.as_deref().unwrap_or_default()
                        ))
                    });
                }
                _ => {}
            }
        })?;
        if let Some(why) = (first..first + count).find_map(|i| {
            (took[i - first].is_none())
                .then(|| fleet.io.socks[i].closed.clone())
                .flatten()
        }) {
            refused.get_or_insert_with(|| {
                Error::network(format!("a socket closed during hello: {why}"))
            });
        }
        if last.elapsed() > Duration::from_secs(30) {
            return Err(Error::network(format!(
                "{left} of {count} hellos unanswered for 30 s"
            )));
        }
    }
    if let Some(e) = refused {
        return Err(e);
    }
    if let Some(f) = features {
        fleet.features = f;
    }
    Ok(took.into_iter().map(Option::unwrap_or_default).collect())
}

/// How long a request made through [`Ask`] waits for its reply.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// One socket of the fleet as a [`Requester`], so the library's own request sequences (a topic's create, join and
/// key) run over the bench's connections, before a clock starts. It waits with the loop, one request at a time;
/// frames for other sockets are read and dropped meanwhile.
pub(super) struct Ask<'a> {
    pub fleet: &'a mut Fleet,
    pub sock: usize,
}

impl Requester for Ask<'_> {
    fn features(&self) -> crate::client::Features {
        self.fleet.features.clone()
    }

    fn tell(&mut self, frame: Frame) -> Result<()> {
        self.fleet.io.send(self.sock, frame.to_json().as_bytes());
        self.fleet.flush();
        Ok(())
    }

    fn ask(&mut self, frame: Frame) -> Result<Frame> {
        self.fleet.features.check(&frame)?;
        let what = frame.type_name();
        let req_id = random_id();
        let text = with_req_id(&frame, &req_id)?;
        let sock = self.sock;
        self.fleet.io.send(sock, text.as_bytes());
        self.fleet.flush();
        let since = Instant::now();
        let mut reply: Option<Result<Frame>> = None;
        loop {
            self.fleet
                .turn(Some(Duration::from_millis(100)), &mut |_, i, text| {
                    if i != sock || reply.is_some() {
                        return;
                    }
                    match wire::parse(text) {
                        Ok(f) if f.req_id() == Some(&req_id) => reply = Some(Ok(f)),
                        Ok(_) => {}
                        Err(e) if wire::peek_req_id(text).as_deref() == Some(&req_id) => {
                            reply = Some(Err(Error::internal(format!(
                                "the broker's answer to {what} did not parse: {e}"
                            ))));
                        }
                        Err(_) => {}
                    }
                })?;
            match reply.take() {
                Some(Ok(Frame::Error(e))) => return Err(broker_error(&e.code, &e.message)),
                Some(r) => return r,
                None => {}
            }
            if let Some(why) = &self.fleet.io.socks[sock].closed {
                return Err(Error::network(format!(
                    "the connection closed while waiting for {what}: {why}"
                )));
            }
            if since.elapsed() > ASK_TIMEOUT {
                return Err(Error::network(format!(
                    "no answer to {what} within {} s",
                    ASK_TIMEOUT.as_secs()
                )));
            }
        }
    }
}
