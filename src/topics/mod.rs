//! Topics for the tools: named conversations of a mesh whose bodies are sealed under a topic key.
//!
//! How a topic key travels (docs/protocol.md §6): the creator makes 32 random bytes and seals a copy to every
//! current member's key (`crypto::seal_topic_key`, sealed with the creator's member key); the broker stores the
//! sealed copies only. A member who joins later has none until a member who holds the key seals one for it: the
//! one-shot tools do that after a post or a read, `cm-topic tail` every 30 s and whenever someone joins.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the topic key (fetch, open, re-seal), create, post, history and how a message is shown |
//! | [`tail`] | `cm-topic tail`: history, then the live stream, re-sealing in the background |

pub mod tail;

use serde::Serialize;

use crate::client::{Conn, Ctx};
use crate::client::{Requester, unexpected};
use crate::crypto::{self, Keypair, b64};
use crate::error::{Code, Error, Result};
use crate::out::short_id;
use crate::time::parse_rfc3339;
use crate::wire::{self, Frame, SendMessage};

/// Mentions are parsed the same by the tools and the broker, so the rule lives in a module both use.
pub use crate::mention::mentions;

/// A topic as this member can open it.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The name (or id) it was asked for, without `#`.
    pub name: String,
    pub id: String,
    pub encrypted: bool,
    /// The topic key, when the topic is encrypted and a copy is sealed for this member.
    pub key: Option<[u8; 32]>,
    /// The page of history asked for, oldest first.
    pub history: Vec<wire::TopicMessage>,
}

impl Opened {
    /// The topic is encrypted and no copy of its key is sealed for this member yet.
    pub fn waiting_for_key(&self) -> bool {
        self.encrypted && self.key.is_none()
    }
}

/// The member key a topic key is sealed to, from the mesh entry.
pub fn member_key(ctx: &Ctx) -> Result<Keypair> {
    Keypair::from_secret_hex(&ctx.mesh.secret_key).map_err(|e| {
        Error::auth(format!(
            "mesh {}: bad member secret key: {e}",
            ctx.mesh.slug
        ))
    })
}

/// `dev` from `#dev` or `dev`; an empty name is a usage error.
pub fn topic_arg(topic: &str) -> Result<&str> {
    let t = topic.trim().trim_start_matches('#');
    if t.is_empty() {
        return Err(Error::usage("give a topic name, like dev or '#dev'"));
    }
    Ok(t)
}

/// Reads a page of the topic's history (`limit` newest before `before`) and fetches this member's topic key.
pub fn open(
    r: &mut impl Requester,
    topic: &str,
    member: &Keypair,
    limit: u32,
    before: Option<&str>,
) -> Result<Opened> {
    let name = topic_arg(topic)?.to_string();
    let reply = r.ask(Frame::TopicHistory(wire::TopicHistory {
        topic: name.clone(),
        limit: Some(limit),
        before_id: before.map(str::to_string),
        req_id: None,
    }))?;
    let Frame::TopicHistoryResponse(h) = reply else {
        return Err(unexpected("topic_history", &reply));
    };
    // The original broker's history names no topic id, and a post addressed by name there is dropped (a false
    // success), so the id comes from the topic list.
    let (id, listed_encrypted) = match h.topic_id.clone() {
        Some(id) => (id, None),
        None => {
            let t = list(r)?
                .into_iter()
                .find(|t| t.name == name || t.id == name)
                .ok_or_else(|| Error::not_found(format!("no topic #{name} in this mesh")))?;
            (t.id, t.encrypted)
        }
    };
    let encrypted = h
        .encrypted
        .or(listed_encrypted)
        .unwrap_or_else(|| h.messages.iter().any(|m| m.body_version == Some(2)));
    let key = if encrypted {
        fetch_key(r, &id, member)?
    } else {
        None
    };
    let mut history = h.messages;
    history.reverse();
    Ok(Opened {
        name,
        id,
        encrypted,
        key,
        history,
    })
}

/// The topic keys a long-lived session (cm-pipe, cm-mcp) opens pushed topic posts with, fetched the first time
/// a topic's post needs one and kept while the session lives. A topic whose key is not sealed for this member
/// yet is asked again only [`Keyring::RETRY`] later, so a busy topic does not cost a request per post.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: std::collections::HashMap<String, [u8; 32]>,
    missing: std::collections::HashMap<String, std::time::Instant>,
}

impl Keyring {
    pub const RETRY: std::time::Duration = std::time::Duration::from_secs(5);

    /// Opens `m` when it is a topic post waiting for its key; does nothing to any other message. A post whose
    /// key cannot be had keeps its `decrypt_error`.
    pub fn open(
        &mut self,
        r: &mut impl Requester,
        member: &Keypair,
        m: &mut crate::client::Inbound,
    ) {
        let Some(topic) = m.sealed_topic().map(str::to_string) else {
            return;
        };
        if !self.keys.contains_key(&topic) {
            if self
                .missing
                .get(&topic)
                .is_some_and(|t| t.elapsed() < Keyring::RETRY)
            {
                return;
            }
            match fetch_key(r, &topic, member) {
                Ok(Some(k)) => {
                    self.missing.remove(&topic);
                    self.keys.insert(topic.clone(), k);
                }
                Ok(None) | Err(_) => {
                    self.missing
                        .insert(topic.clone(), std::time::Instant::now());
                    return;
                }
            }
        }
        if let Some(k) = self.keys.get(&topic) {
            m.open_topic(k);
        }
    }
}

/// This member's copy of an encrypted topic's key, opened; `None` while no copy is sealed for it.
pub fn fetch_key(
    r: &mut impl Requester,
    topic_id: &str,
    member: &Keypair,
) -> Result<Option<[u8; 32]>> {
    let reply = match r.ask(Frame::TopicKey(wire::TopicKey {
        topic: topic_id.to_string(),
        req_id: None,
    })) {
        Ok(f) => f,
        Err(e) if e.code == Code::NotFound && e.msg.contains("sealed") => return Ok(None),
        Err(e) => return Err(e),
    };
    let Frame::TopicKeyResponse(k) = reply else {
        return Err(unexpected("topic_key", &reply));
    };
    crypto::open_topic_key(&k.encrypted_key, &k.nonce, member)
        .map(Some)
        .map_err(|e| Error::auth(format!("cannot open the topic key sealed for you: {e}")))
}

/// Seals the topic key for every member of the topic who has no copy yet; returns their names. A refusal for
/// one member (another holder was faster, the member left) does not stop the others. The broker names at most 50
/// such members per request, so this asks again until a round seals nobody.
pub fn reseal(
    r: &mut impl Requester,
    topic_id: &str,
    key: &[u8; 32],
    member: &Keypair,
) -> Result<Vec<String>> {
    let mut sealed = Vec::new();
    loop {
        let reply = r.ask(Frame::TopicPendingSeals(wire::TopicPendingSeals {
            topic: topic_id.to_string(),
            req_id: None,
        }))?;
        let Frame::TopicPendingSealsResponse(p) = reply else {
            return Err(unexpected("topic_pending_seals", &reply));
        };
        let before = sealed.len();
        for m in p.pending {
            let Ok((encrypted_key, nonce)) = crypto::seal_topic_key(key, &m.pubkey, member) else {
                continue;
            };
            let seal = Frame::TopicSeal(wire::TopicSeal {
                topic: topic_id.to_string(),
                member_id: m.member_id,
                encrypted_key,
                nonce,
                req_id: None,
            });
            if r.ask(seal).is_ok() {
                sealed.push(m.display_name);
            }
        }
        if sealed.len() == before {
            return Ok(sealed);
        }
    }
}

/// How many bytes of sealed keys one `topic_create` may carry: frames hold at most 64 KiB, some 270 keys.
const CREATE_KEYS_BUDGET: usize = 56 * 1024;

/// A topic made by [`create`].
#[derive(Debug, Clone)]
pub struct Created {
    pub created: wire::TopicCreated,
    /// Members whose sealed key did not fit in the request; they get it from a member who holds it once they
    /// join (see [`reseal`]).
    pub unsealed: usize,
}

/// Creates a topic. Encrypted unless `plaintext`: a fresh 32-byte key, sealed here for every member of the mesh
/// (the broker stores the sealed copies and never the key), ours first, as many as fit in one frame.
pub fn create(
    r: &mut impl Requester,
    member: &Keypair,
    name: &str,
    description: Option<&str>,
    visibility: Option<&str>,
    plaintext: bool,
) -> Result<Created> {
    let name = topic_arg(name)?;
    let mut unsealed = 0;
    let keys = if plaintext {
        None
    } else {
        // The original broker makes a topic's key itself and hands it out over REST only; a key sealed here
        // would be thrown away and the topic's posts unreadable to us. Say so before anything is made.
        let features = r.features();
        if !features.has(crate::client::Feature::TopicKeys) {
            return Err(features.lacks(
                crate::client::Feature::TopicKeys,
                "an encrypted topic (--plaintext makes one without a key)",
            ));
        }
        let reply = r.ask(Frame::Members(wire::Members::default()))?;
        let Frame::MembersList(list) = reply else {
            return Err(unexpected("members", &reply));
        };
        let key = crypto::random_bytes::<32>();
        let me = member.public_hex();
        let mut members = list.members;
        members.sort_by_key(|m| m.pubkey != me);
        let mut keys = Vec::new();
        let mut bytes = 0;
        for m in members {
            if bytes > CREATE_KEYS_BUDGET {
                unsealed += 1;
                continue;
            }
            let (encrypted_key, nonce) =
                crypto::seal_topic_key(&key, &m.pubkey, member).map_err(|e| {
                    Error::internal(format!("sealing the topic key for {}: {e}", m.display_name))
                })?;
            bytes += m.member_id.len() + encrypted_key.len() + nonce.len() + 48;
            keys.push(wire::SealedTopicKey {
                member_id: m.member_id,
                encrypted_key,
                nonce,
            });
        }
        Some(keys)
    };
    let reply = r.ask(Frame::TopicCreate(wire::TopicCreate {
        name: name.to_string(),
        description: description.map(str::to_string),
        visibility: visibility.map(str::to_string),
        keys,
        req_id: None,
    }))?;
    match reply {
        Frame::TopicCreated(created) => Ok(Created { created, unsealed }),
        f => Err(unexpected("topic_create", &f)),
    }
}

/// The mesh's topics, with whether we joined each and how many of its messages we have not read.
pub fn list(r: &mut impl Requester) -> Result<Vec<wire::TopicInfo>> {
    match r.ask(Frame::TopicList(wire::TopicList::default()))? {
        Frame::TopicListResponse(l) => Ok(l.topics),
        f => Err(unexpected("topic_list", &f)),
    }
}

/// Joins the topic `name` (a name, `#name` accepted) as the member `me` (its key). The original broker answers
/// nothing to a join; there it is confirmed by reading the topic's members.
pub fn join(r: &mut impl Requester, name: &str, me: &str) -> Result<()> {
    let topic = topic_arg(name)?.to_string();
    let join = Frame::TopicJoin(wire::TopicJoin {
        topic: topic.clone(),
        role: None,
        req_id: None,
    });
    if r.post(join)?.is_some() {
        return Ok(());
    }
    if members(r, &topic)?.iter().any(|m| m.pubkey == me) {
        Ok(())
    } else {
        Err(Error::permission(format!(
            "the broker did not add you to #{topic} (it answers nothing to a join, and you are not among its members)"
        )))
    }
}

/// Leaves the topic `name`, as the member `me`; confirmed by a read where the broker answers nothing.
pub fn leave(r: &mut impl Requester, name: &str, me: &str) -> Result<()> {
    let topic = topic_arg(name)?.to_string();
    let leave = Frame::TopicLeave(wire::TopicLeave {
        topic: topic.clone(),
        req_id: None,
    });
    if r.post(leave)?.is_some() {
        return Ok(());
    }
    if members(r, &topic)?.iter().any(|m| m.pubkey == me) {
        Err(Error::generic(format!(
            "the broker kept you in #{topic} (it answers nothing to a leave, and you are still among its members)"
        )))
    } else {
        Ok(())
    }
}

/// The topic's members, with whether each is online and holds a copy of the key.
pub fn members(r: &mut impl Requester, name: &str) -> Result<Vec<wire::TopicMember>> {
    let reply = r.ask(Frame::TopicMembers(wire::TopicMembers {
        topic: topic_arg(name)?.to_string(),
        req_id: None,
    }))?;
    match reply {
        Frame::TopicMembersResponse(m) => Ok(m.members),
        f => Err(unexpected("topic_members", &f)),
    }
}

/// Marks everything in the topic read for us. `false`: sent to a broker that answers nothing to it (the
/// original), and that has no unread counts to read it back by, so nothing says it was done.
pub fn mark_read(r: &mut impl Requester, name: &str) -> Result<bool> {
    let confirmed = r
        .post(Frame::TopicMarkRead(wire::TopicMarkRead {
            topic: topic_arg(name)?.to_string(),
            req_id: None,
        }))?
        .is_some();
    Ok(confirmed)
}

/// What became of a post.
#[derive(Debug, Clone, Serialize)]
pub struct Posted {
    r#type: &'static str,
    /// `sent` (a member had it pushed live) or `stored` (in history for the members to read later).
    pub status: &'static str,
    pub message_id: String,
    pub topic: String,
    pub topic_id: String,
    /// 2 sealed under the topic key, 1 base64 plaintext.
    pub body_version: u32,
    pub mentions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// Members this post sealed the topic key for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resealed: Vec<String>,
}

impl Posted {
    /// `posted to #dev (a1b2c3d4, encrypted, 1 mention)`.
    pub fn words(&self) -> String {
        let mut s = format!(
            "posted to #{} ({}, {}",
            self.topic,
            short_id(&self.message_id),
            if self.body_version == 2 {
                "encrypted"
            } else {
                "plaintext"
            }
        );
        if let Some(r) = &self.reply_to {
            s += &format!(", in reply to {}", short_id(r));
        }
        match self.mentions.len() {
            0 => {}
            1 => s += ", 1 mention",
            n => s += &format!(", {n} mentions"),
        }
        s += ")";
        if self.status == "stored" {
            s += "; nobody in it is online, it waits in its history";
        }
        if !self.resealed.is_empty() {
            s += &format!("; sealed the topic key for {}", self.resealed.join(", "));
        }
        s
    }
}

/// A post sealed and ready to go: the `send` and what [`Posted`] reports of it.
#[derive(Debug, Clone)]
pub struct Draft {
    pub send: SendMessage,
    pub topic: Opened,
    /// 2 sealed under the topic key, 1 base64 plaintext.
    pub body_version: u32,
    pub mentions: Vec<String>,
}

/// Seals `text` for a topic: under the topic key, or base64 plaintext for a topic without one (`plaintext` asks
/// for that and is refused for an encrypted topic).
pub fn draft(
    conn: &mut Conn,
    member: &Keypair,
    topic: &str,
    text: &str,
    reply_to: Option<&str>,
    plaintext: bool,
) -> Result<Draft> {
    if text.trim().is_empty() {
        return Err(Error::usage("the message is empty"));
    }
    let t = open(conn, topic, member, 1, None)?;
    if plaintext && t.encrypted {
        return Err(Error::usage(format!(
            "#{} is encrypted: --plaintext is only for topics created without a key",
            t.name
        )));
    }
    let (nonce, ciphertext, body_version) = match (t.encrypted, &t.key) {
        (false, _) => (b64::encode(&[0u8; 24]), b64::encode(text.as_bytes()), 1),
        (true, Some(key)) => {
            let (nonce, ciphertext) = seal_body(text.as_bytes(), key);
            (nonce, ciphertext, 2)
        }
        (true, None) => return Err(no_key(&t.name)),
    };
    let mentions = mentions(text);
    let send = SendMessage {
        target_spec: format!("#{}", t.id),
        nonce,
        ciphertext,
        body_version: Some(body_version),
        reply_to_id: reply_to.map(str::to_string),
        mentions: Some(mentions.clone()),
        ..SendMessage::default()
    };
    Ok(Draft {
        send,
        topic: t,
        body_version,
        mentions,
    })
}

/// After a post: seals the key for any member still waiting for it; a failure waits for the next post.
pub fn reseal_waiting(conn: &mut Conn, t: &Opened, member: &Keypair) -> Vec<String> {
    match &t.key {
        Some(k) => reseal(conn, &t.id, k, member).unwrap_or_default(),
        None => Vec::new(),
    }
}

/// Posts `text` to a topic on a one-shot connection (see [`draft`]), then seals the key for any member still
/// waiting for it.
pub fn post(
    conn: &mut Conn,
    member: &Keypair,
    topic: &str,
    text: &str,
    reply_to: Option<&str>,
    plaintext: bool,
) -> Result<Posted> {
    let d = draft(conn, member, topic, text, reply_to, plaintext)?;
    let ack = conn.send(d.send)?;
    let resealed = reseal_waiting(conn, &d.topic, member);
    Ok(Posted {
        r#type: "topic_post",
        status: if ack.queued { "stored" } else { "sent" },
        message_id: ack.message_id,
        topic: d.topic.name,
        topic_id: d.topic.id,
        body_version: d.body_version,
        mentions: d.mentions,
        reply_to: reply_to.map(str::to_string),
        duplicate: ack.duplicate == Some(true),
        resealed,
    })
}

/// A body sealed under the topic key (body version 2): `(nonce, ciphertext)` in base64, as a `send` carries them.
pub fn seal_body(text: &[u8], key: &[u8; 32]) -> (String, String) {
    let n = crypto::random_bytes::<24>();
    (
        b64::encode(&n),
        b64::encode(&crypto::secretbox_easy(text, &n, key)),
    )
}

/// The error for an encrypted topic whose key is not sealed for this member yet.
pub fn no_key(name: &str) -> Error {
    Error::generic(format!(
        "no copy of #{name}'s key is sealed for you yet: it is sealed when a member who holds it next posts, \
         reads or tails #{name}; try again then"
    ))
}

/// Who wrote a message.
#[derive(Debug, Clone, Serialize)]
pub struct Author {
    pub name: String,
    /// The key the sender spoke as (its session key, or its member key).
    pub pubkey: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_pubkey: Option<String>,
}

/// A topic message as the tools show it; serialized as one JSON line with `"type": "message"`.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    r#type: &'static str,
    pub id: String,
    pub topic: String,
    pub topic_id: String,
    pub from: Author,
    /// The plaintext; absent when it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrypt_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub body_version: u32,
    /// RFC 3339 UTC.
    pub sent_at: String,
}

/// Opens a body: base64 plaintext (v1), or a secretbox under the topic key (v2).
pub fn open_body(
    nonce: &str,
    ciphertext: &str,
    body_version: u32,
    key: Option<&[u8; 32]>,
) -> std::result::Result<String, String> {
    let bytes = if body_version == 2 {
        let Some(key) = key else {
            return Err("encrypted, and no copy of the topic key is sealed for you yet".into());
        };
        let n = crypto::nonce_from_b64(nonce).map_err(|e| e.to_string())?;
        let ct = b64::decode(ciphertext).map_err(|e| e.to_string())?;
        crypto::secretbox_open_easy(&ct, &n, key).map_err(|e| format!("cannot decrypt: {e}"))?
    } else {
        b64::decode(ciphertext).map_err(|e| e.to_string())?
    };
    String::from_utf8(bytes).map_err(|_| "the message is not UTF-8".into())
}

impl Line {
    /// A history entry of `t`, opened with its key.
    pub fn of(t: &Opened, m: &wire::TopicMessage) -> Line {
        let v = m.body_version.unwrap_or(1);
        let (text, decrypt_error) = match open_body(&m.nonce, &m.ciphertext, v, t.key.as_ref()) {
            Ok(x) => (Some(x), None),
            Err(e) => (None, Some(e)),
        };
        Line {
            r#type: "message",
            id: m.id.clone(),
            topic: t.name.clone(),
            topic_id: t.id.clone(),
            from: Author {
                name: m.sender_name.clone(),
                pubkey: m.sender_pubkey.clone(),
                member_pubkey: m.sender_member_pubkey.clone(),
            },
            text,
            decrypt_error,
            reply_to: m.reply_to_id.clone(),
            body_version: v,
            sent_at: m.created_at.clone(),
        }
    }

    /// The text, or why there is none, in brackets.
    pub fn shown_text(&self) -> String {
        match (&self.text, &self.decrypt_error) {
            (Some(t), _) => t.clone(),
            (None, Some(e)) => format!("[{e}]"),
            (None, None) => "[no text]".into(),
        }
    }
}

/// The last messages shown, so a reply can say what it answers.
#[derive(Debug, Default)]
pub struct Thread {
    recent: std::collections::VecDeque<(String, String, String)>,
}

/// How many shown messages a reply can point back to.
const THREAD_MEMORY: usize = 256;
/// How long a quoted snippet may be.
const SNIPPET: usize = 60;

/// The text with its whitespace collapsed, at most 60 characters, `…` when cut.
pub fn snippet(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= SNIPPET {
        return flat;
    }
    let mut s: String = flat.chars().take(SNIPPET).collect();
    s.push('…');
    s
}

impl Thread {
    /// The human rows for a message: a `↳ in reply to` line when it answers one, then
    /// `HH:MM:SS  name  #id8  text`. Remembers it for later replies.
    pub fn render(&mut self, l: &Line) -> Vec<String> {
        let mut rows = Vec::new();
        if let Some(parent) = &l.reply_to {
            let quoted = self
                .recent
                .iter()
                .rev()
                .find(|(id, _, _)| id == parent)
                .map(|(_, name, snip)| format!("{name}: \"{snip}\""))
                .unwrap_or_else(|| format!("{}…", short_id(parent)));
            rows.push(format!("  ↳ in reply to {quoted}"));
        }
        let now = crate::time::now_ms();
        let at = parse_rfc3339(&l.sent_at).unwrap_or(now);
        rows.push(format!(
            "{}  {}  #{}  {}",
            crate::out::local_time(at, now),
            l.from.name,
            short_id(&l.id),
            l.shown_text()
        ));
        self.recent
            .push_back((l.id.clone(), l.from.name.clone(), snippet(&l.shown_text())));
        if self.recent.len() > THREAD_MEMORY {
            self.recent.pop_front();
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `members` with `n` members (the caller among them, last) and keeps the `topic_create` it gets.
    struct Mesh {
        members: Vec<wire::Member>,
        create: Option<wire::TopicCreate>,
    }

    impl crate::client::Requester for Mesh {
        fn features(&self) -> crate::client::Features {
            crate::client::Features::all()
        }
        fn tell(&mut self, frame: Frame) -> Result<()> {
            Err(Error::internal(format!("unexpected {}", frame.type_name())))
        }
        fn ask(&mut self, frame: Frame) -> Result<Frame> {
            Ok(match frame {
                Frame::Members(_) => Frame::MembersList(wire::MembersList {
                    members: self.members.clone(),
                    req_id: None,
                }),
                Frame::TopicCreate(c) => {
                    self.create = Some(c);
                    Frame::TopicCreated(wire::TopicCreated {
                        created: true,
                        ..wire::TopicCreated::default()
                    })
                }
                f => return Err(Error::internal(format!("unexpected {}", f.type_name()))),
            })
        }
    }

    #[test]
    fn a_large_mesh_gets_the_keys_that_fit_in_one_request_ours_first() {
        let me = Keypair::from_seed(&[9; 32]);
        let mut members: Vec<wire::Member> = (0..400u16)
            .map(|i| wire::Member {
                member_id: format!("{i:032}"),
                pubkey: {
                    let mut seed = [1u8; 32];
                    seed[..2].copy_from_slice(&i.to_le_bytes());
                    Keypair::from_seed(&seed).public_hex()
                },
                ..wire::Member::default()
            })
            .filter(|m| m.pubkey != me.public_hex())
            .collect();
        members.push(wire::Member {
            member_id: "me".into(),
            pubkey: me.public_hex(),
            ..wire::Member::default()
        });
        let total = members.len();
        let mut mesh = Mesh {
            members,
            create: None,
        };
        let c = create(&mut mesh, &me, "big", None, None, false).unwrap();
        let sent = mesh.create.unwrap();
        let frame = Frame::TopicCreate(sent.clone()).to_json();
        assert!(frame.len() < 64 * 1024, "{} bytes", frame.len());
        let keys = sent.keys.unwrap();
        assert_eq!(keys[0].member_id, "me");
        assert_eq!(keys.len() + c.unsealed, total);
        assert!(c.unsealed > 0 && keys.len() > 200, "{} sealed", keys.len());

        let mut small = Mesh {
            members: mesh.members[total - 3..].to_vec(),
            create: None,
        };
        let c = create(&mut small, &me, "small", None, None, false).unwrap();
        assert_eq!(
            (c.unsealed, small.create.unwrap().keys.unwrap().len()),
            (0, 3)
        );
    }

    /// Answers as the original broker does: a history without the topic's id, a list with it.
    struct Original {
        topics: Vec<wire::TopicInfo>,
    }

    impl crate::client::Requester for Original {
        fn features(&self) -> crate::client::Features {
            crate::client::Features::default()
        }
        fn tell(&mut self, frame: Frame) -> Result<()> {
            Err(Error::internal(format!("unexpected {}", frame.type_name())))
        }
        fn ask(&mut self, frame: Frame) -> Result<Frame> {
            Ok(match frame {
                Frame::TopicHistory(h) => Frame::TopicHistoryResponse(wire::TopicHistoryResponse {
                    topic: h.topic,
                    ..wire::TopicHistoryResponse::default()
                }),
                Frame::TopicList(_) => Frame::TopicListResponse(wire::TopicListResponse {
                    topics: self.topics.clone(),
                    req_id: None,
                }),
                f => return Err(Error::internal(format!("unexpected {}", f.type_name()))),
            })
        }
    }

    #[test]
    fn a_history_without_the_topic_id_takes_it_from_the_list() {
        let me = Keypair::from_seed(&[9; 32]);
        let mut b = Original {
            topics: vec![wire::TopicInfo {
                id: "t0p1c1d".into(),
                name: "dev".into(),
                encrypted: Some(false),
                ..wire::TopicInfo::default()
            }],
        };
        let t = open(&mut b, "#dev", &me, 1, None).unwrap();
        assert_eq!((t.id.as_str(), t.encrypted), ("t0p1c1d", false));
        // Not addressed by its name, which that broker would drop while saying nothing.
        let e = open(&mut b, "ops", &me, 1, None).unwrap_err();
        assert_eq!(e.code, Code::NotFound, "{e}");
    }

    #[test]
    fn bodies_open_by_version() {
        let key = [7u8; 32];
        let n = [1u8; 24];
        let ct = b64::encode(&crypto::secretbox_easy(b"hi", &n, &key));
        assert_eq!(
            open_body(&b64::encode(&n), &ct, 2, Some(&key)).unwrap(),
            "hi"
        );
        assert!(open_body(&b64::encode(&n), &ct, 2, None).is_err());
        let (n2, ct2) = seal_body(b"sealed", &key);
        assert_eq!(open_body(&n2, &ct2, 2, Some(&key)).unwrap(), "sealed");
        assert!(open_body(&b64::encode(&n), &ct, 2, Some(&[8u8; 32])).is_err());
        assert_eq!(
            open_body("", &b64::encode(b"plain"), 1, None).unwrap(),
            "plain"
        );
    }

    #[test]
    fn replies_quote_what_they_answer() {
        let line = |id: &str, text: &str, reply: Option<&str>| Line {
            r#type: "message",
            id: id.into(),
            topic: "dev".into(),
            topic_id: "t".into(),
            from: Author {
                name: "alice".into(),
                pubkey: "aa".into(),
                member_pubkey: None,
            },
            text: Some(text.into()),
            decrypt_error: None,
            reply_to: reply.map(Into::into),
            body_version: 2,
            sent_at: "2026-05-04T10:00:00.000Z".into(),
        };
        let mut t = Thread::default();
        let rows = t.render(&line("abcdefgh1234", "first  words\nhere", None));
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0].ends_with("  alice  #abcdefgh  first  words\nhere"),
            "{rows:?}"
        );
        let rows = t.render(&line("zzzzzzzz", "answer", Some("abcdefgh1234")));
        assert_eq!(rows[0], "  ↳ in reply to alice: \"first words here\"");
        let rows = t.render(&line("yyyyyyyy", "x", Some("unknown123")));
        assert_eq!(rows[0], "  ↳ in reply to unknown1…");
        assert_eq!(snippet(&"x".repeat(70)).chars().count(), 61);
    }
}
