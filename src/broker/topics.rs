//! Topics on the broker: create, list, join, leave, members, history, mark read; sealed topic keys and the
//! re-seal protocol; topic messages (one row each, pushed live to every member's connections and to event
//! streams); mentions and their notifications.
//!
//! The broker never holds a topic key: the creator's client seals one copy per member, and members who hold it
//! seal copies for members who joined later (`topic_pending_seals`, `topic_seal`). Bodies of an encrypted topic are
//! secretboxes the broker stores as they came; an unencrypted topic (created without keys) takes base64
//! plaintext, and only it.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::cluster::Event;
use super::hub::{Hub, IfLost, PKey, Presence};
use super::net::ConnId;
use super::store::{SealedKey, Topic, TopicMessage, TopicMessageRow, TopicPage, new_id};
use crate::crypto::b64;
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, Frame, codes};

/// The most mentions one message notifies.
const MAX_MENTIONED: usize = 32;
/// A topic's name: 1-64 of `A-Z a-z 0-9 _ - .`.
const MAX_NAME: usize = 64;
/// The length of a sealed topic key: the sealer's x25519 key, the box's tag and the 32-byte key.
const SEALED_KEY_LEN: usize = 32 + 16 + 32;
/// The shortest id prefix `replyToId` may give.
const MIN_REPLY_PREFIX: usize = 6;

/// What the hub keeps for topics besides the store: open event streams and the REST keys' token buckets.
#[derive(Debug, Default)]
pub(super) struct TopicState {
    /// Event streams by connection.
    pub(super) streams: HashMap<ConnId, Stream>,
}

/// An open `GET /api/v1/topics/:name/stream`.
#[derive(Debug, Clone)]
pub(super) struct Stream {
    pub(super) topic_id: String,
    /// The API key it was opened with; revoking the key ends the stream.
    pub(super) key_id: String,
}

/// Who posts: a presence over WebSocket, or an API key's issuer over REST.
#[derive(Debug, Clone)]
pub(super) struct Poster {
    pub(super) mesh_id: String,
    pub(super) member_id: String,
    pub(super) member_pubkey: String,
    pub(super) session_pubkey: Option<String>,
    pub(super) name: String,
}

impl Poster {
    pub(super) fn of(p: &Presence) -> Poster {
        Poster {
            mesh_id: p.mesh_id.clone(),
            member_id: p.member_id.clone(),
            member_pubkey: p.member_pubkey.clone(),
            session_pubkey: p.session_pubkey.clone(),
            name: p.display_name.clone(),
        }
    }
}

/// A message to post.
#[derive(Debug, Clone, Default)]
pub(super) struct NewPost {
    pub(super) nonce: String,
    pub(super) ciphertext: String,
    pub(super) body_version: i64,
    pub(super) reply_to: Option<String>,
    pub(super) mentions: Option<Vec<String>>,
    pub(super) client_message_id: Option<String>,
    /// The sender's priority: carried by the live pushes (a topic post reaches every live member whatever its
    /// status, so it does not gate them) and not stored.
    pub(super) priority: wire::Priority,
}

/// A stored post.
#[derive(Debug, Clone)]
pub(super) struct Posted {
    pub(super) message_id: String,
    pub(super) reply_to_id: Option<String>,
    /// Members notified of a mention.
    pub(super) notified: usize,
    /// A live connection had it pushed.
    pub(super) pushed: bool,
    /// The repeat of a `client_message_id` this member sent before.
    pub(super) duplicate: bool,
}

/// A refused topic request: an error code and what to tell the person.
#[derive(Debug, Clone)]
pub(super) struct Refused {
    pub(super) code: &'static str,
    pub(super) message: String,
}

impl Refused {
    pub(super) fn new(code: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            code,
            message: message.into(),
        }
    }

    fn internal(e: &crate::error::Error) -> Refused {
        super::log::error("topic request failed", &[("error", e)]);
        Refused::new("internal", format!("broker storage error: {e}"))
    }

    /// The HTTP status that says the same.
    pub(super) fn status(&self) -> u16 {
        match self.code {
            codes::TOPIC_NOT_FOUND | codes::NOT_FOUND | codes::KEY_NOT_SEALED => 404,
            codes::FORBIDDEN | "not_member" => 403,
            "topic_encrypted" | codes::TOPIC_UNENCRYPTED | codes::AMBIGUOUS_PREFIX => 409,
            "internal" => 500,
            _ => 400,
        }
    }
}

type Refusal<T> = std::result::Result<T, Refused>;

fn store<T>(r: crate::error::Result<T>) -> Refusal<T> {
    r.map_err(|e| Refused::internal(&e))
}

/// A topic name as given (`#dev` or `dev`), checked.
fn topic_name(name: &str) -> Refusal<&str> {
    let n = name.trim().trim_start_matches('#');
    let ok = !n.is_empty()
        && n.len() <= MAX_NAME
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(n)
    } else {
        Err(Refused::new(
            codes::INVALID_ARGS,
            format!("topic names are 1-{MAX_NAME} of A-Z a-z 0-9 _ - . (got {name:?})"),
        ))
    }
}

/// Base64 of exactly `len` bytes (any length when `None`).
fn b64_of_len(s: &str, len: Option<usize>) -> bool {
    b64::decode(s).is_ok_and(|b| len.is_none_or(|l| b.len() == l))
}

/// A topic message as history and pushes carry it.
pub(super) fn history_entry(r: &TopicMessageRow) -> wire::TopicMessage {
    let m = &r.message;
    wire::TopicMessage {
        id: m.id.clone(),
        sender_pubkey: m
            .sender_session_pubkey
            .clone()
            .unwrap_or_else(|| r.sender_member_pubkey.clone()),
        sender_member_id: m.sender_member_id.clone(),
        sender_member_pubkey: Some(r.sender_member_pubkey.clone()),
        // A webhook's post names the webhook (`webhook:<name>`, kept as its sender key), not its maker.
        sender_name: match m.sender_session_pubkey.as_deref() {
            Some(w) if w.starts_with("webhook:") => w.to_string(),
            _ => r.sender_name.clone(),
        },
        nonce: m.nonce.clone(),
        ciphertext: m.ciphertext.clone(),
        body_version: u32::try_from(m.body_version).ok(),
        reply_to_id: m.reply_to_id.clone(),
        created_at: fmt_rfc3339(m.created_at),
    }
}

/// A topic message for REST and event streams: the history shape, plus `text` for a plaintext (v1) body, which
/// the broker can read anyway, so a client with only curl reads it too.
pub(super) fn rest_entry(topic: &Topic, r: &TopicMessageRow) -> Value {
    let mut v = serde_json::to_value(history_entry(r)).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("topic".into(), topic.name.clone().into());
        o.insert("topicId".into(), topic.id.clone().into());
        if let Some(t) = plaintext(&r.message) {
            o.insert("text".into(), t.into());
        }
    }
    v
}

/// The text of a v1 (base64 plaintext) body.
pub(super) fn plaintext(m: &TopicMessage) -> Option<String> {
    if m.body_version != 1 {
        return None;
    }
    b64::decode(&m.ciphertext)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

impl Hub {
    /// A live topic of the mesh, by id or name (a leading `#` is ignored).
    pub(super) fn find_topic(&self, mesh_id: &str, reference: &str) -> Refusal<Topic> {
        let r = reference.trim().trim_start_matches('#');
        store(self.store.topic(mesh_id, r))?.ok_or_else(|| {
            Refused::new(
                codes::TOPIC_NOT_FOUND,
                format!("no topic #{r} in this mesh"),
            )
        })
    }

    /// Whether a member is in a topic.
    pub(super) fn in_topic(&self, topic_id: &str, member_id: &str) -> Refusal<bool> {
        Ok(store(self.store.topic_members(topic_id))?
            .iter()
            .any(|m| m.member_id == member_id))
    }

    /// Reading a topic: anyone in the mesh for a public one, members for the others.
    pub(super) fn may_read(&self, topic: &Topic, member_id: &str) -> Refusal<()> {
        if topic.visibility == "public" || self.in_topic(&topic.id, member_id)? {
            return Ok(());
        }
        Err(Refused::new(
            "not_member",
            format!(
                "#{} is {}: only its members may read it",
                topic.name, topic.visibility
            ),
        ))
    }

    /// Posting: members post; anyone in the mesh posting to a public topic joins it first.
    fn may_post(&mut self, topic: &Topic, member_id: &str) -> Refusal<()> {
        if self.in_topic(&topic.id, member_id)? {
            return Ok(());
        }
        self.join_to_post(topic, member_id)
    }

    /// [`Hub::may_post`] for one who is not in the topic: joins a public topic, is refused any other.
    fn join_to_post(&mut self, topic: &Topic, member_id: &str) -> Refusal<()> {
        if topic.visibility != "public" {
            return Err(Refused::new(
                "not_member",
                format!(
                    "#{} is {}: only its members may post",
                    topic.name, topic.visibility
                ),
            ));
        }
        self.add_to_topic(topic, member_id, "member")
    }

    /// Adds a member to a topic and tells the topic's other members, whose tools may seal the key for it.
    pub(super) fn add_to_topic(
        &mut self,
        topic: &Topic,
        member_id: &str,
        role: &str,
    ) -> Refusal<()> {
        if !store(self.store.join_topic(&topic.id, member_id, role, now_ms()))? {
            return Ok(());
        }
        let member = store(self.store.member(member_id))?;
        let (name, pubkey) = member
            .map(|m| (m.display_name, m.pubkey))
            .unwrap_or_default();
        let data = json!({"topic": topic.name, "topicId": topic.id, "memberId": member_id,
            "name": name, "pubkey": pubkey});
        let mut members = self.topic_member_set(&topic.id)?;
        members.remove(member_id);
        self.system_push(&topic.mesh_id, &members, "topic_member_joined", data);
        Ok(())
    }

    fn topic_member_set(&self, topic_id: &str) -> Refusal<HashSet<String>> {
        Ok(store(self.store.topic_members(topic_id))?
            .into_iter()
            .filter(|m| !m.revoked)
            .map(|m| m.member_id)
            .collect())
    }

    /// The live, push-capable connections of these members in the mesh (except `except`), with their member.
    fn topic_conns(
        &self,
        mesh_id: &str,
        members: &HashSet<String>,
        except: Option<ConnId>,
    ) -> Vec<(ConnId, String)> {
        self.mesh_keys(mesh_id)
            .iter()
            .filter_map(|k| self.presences.get(k))
            .filter(|p| p.pushable() && members.contains(&p.member_id))
            .filter_map(|p| p.conn.map(|c| (c, p.member_id.clone())))
            .filter(|(c, _)| Some(*c) != except)
            .collect()
    }

    /// A system event to these members' live connections, here and on the other brokers, dropped if the batch that
    /// caused it is lost.
    fn system_push(&mut self, mesh_id: &str, members: &HashSet<String>, event: &str, data: Value) {
        if members.is_empty() {
            return;
        }
        let push = wire::Push::system(mesh_id, &new_id(), &fmt_rfc3339(now_ms()), event, data);
        self.push_to_members(mesh_id, members, None, &Frame::Push(push));
    }

    /// A frame to these members' live connections but `except`, here and on the other brokers.
    fn push_to_members(
        &mut self,
        mesh_id: &str,
        members: &HashSet<String>,
        except: Option<ConnId>,
        frame: &Frame,
    ) -> usize {
        let text = frame.to_json();
        self.tell(Event::Members {
            mesh: mesh_id.to_string(),
            members: members.iter().cloned().collect(),
            frame: text.clone(),
        });
        let conns = self.topic_conns(mesh_id, members, except);
        for (c, _) in &conns {
            self.emit_text(*c, text.clone(), IfLost::Drop);
        }
        conns.len()
    }

    /// Whether one of `members` is live on another broker, which pushes what this batch tells it once it commits.
    fn live_elsewhere(&self, mesh_id: &str, members: &HashSet<String>) -> bool {
        self.cluster.is_some()
            && self
                .elsewhere(mesh_id)
                .iter()
                .any(|r| !r.pull && members.contains(&r.member_id))
    }

    /// An event to the topic's event streams here.
    pub(super) fn stream_event(&mut self, topic_id: &str, id: &str, data: &str, if_lost: IfLost) {
        let streams: Vec<ConnId> = self
            .topic_state
            .streams
            .iter()
            .filter(|(_, s)| s.topic_id == topic_id)
            .map(|(c, _)| *c)
            .collect();
        for c in streams {
            self.emit_sse(c, "message", Some(id), data.to_string(), if_lost.clone());
        }
    }

    /// A `replyToId` resolved in the topic: a whole id or a prefix of at least 6 characters of exactly one.
    fn reply_target(&self, topic: &Topic, given: &str) -> Refusal<String> {
        let given = given.trim();
        if given.len() < MIN_REPLY_PREFIX || !given.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Refused::new(
                codes::INVALID_ARGUMENT,
                format!(
                    "reply-to needs a message id or {MIN_REPLY_PREFIX}+ of its first characters (got {given:?})"
                ),
            ));
        }
        let found = store(self.store.topic_messages_by_prefix(&topic.id, given, 6))?;
        match found.as_slice() {
            [] => Err(Refused::new(
                codes::NOT_FOUND,
                format!("no message {given} in #{}", topic.name),
            )),
            [one] => Ok(one.message.id.clone()),
            many => {
                let ids: Vec<&str> = many.iter().map(|r| r.message.id.as_str()).collect();
                Err(Refused::new(
                    codes::AMBIGUOUS_PREFIX,
                    format!(
                        "{given} matches several messages in #{}: {}",
                        topic.name,
                        ids.join(", ")
                    ),
                ))
            }
        }
    }

    /// Stores a topic message, notifies its mentions and pushes it to every live connection of the topic's
    /// members but `from`, and to the topic's event streams.
    pub(super) fn post(
        &mut self,
        poster: &Poster,
        topic: &Topic,
        post: NewPost,
        from: Option<ConnId>,
    ) -> Refusal<Posted> {
        // The topic's members, read once: who may post, and whom the post reaches. (Read twice, in `may_post` and
        // again for the pushes, the list was a fifth of the broker's time in cm-bench topic.)
        let listing = store(self.store.topic_members(&topic.id))?;
        let mut members: HashSet<String> = listing
            .iter()
            .filter(|m| !m.revoked)
            .map(|m| m.member_id.clone())
            .collect();
        if !listing.iter().any(|m| m.member_id == poster.member_id) {
            self.join_to_post(topic, &poster.member_id)?;
            members.insert(poster.member_id.clone());
        }
        let post_priority = post.priority;
        if let Some(c) = &post.client_message_id
            && let Some(first) = store(self.store.topic_message_by_client_id(
                &topic.id,
                &poster.member_id,
                c,
            ))?
        {
            return Ok(Posted {
                message_id: first,
                reply_to_id: None,
                notified: 0,
                pushed: false,
                duplicate: true,
            });
        }
        match (topic.encrypted, post.body_version) {
            (true, 2) | (false, 1) => {}
            (true, _) => {
                return Err(Refused::new(
                    "topic_encrypted",
                    format!(
                        "#{} is encrypted: post bodyVersion 2, sealed with the topic key",
                        topic.name
                    ),
                ));
            }
            (false, _) => {
                return Err(Refused::new(
                    codes::TOPIC_UNENCRYPTED,
                    format!(
                        "#{} has no topic key: post bodyVersion 1 (base64 plaintext)",
                        topic.name
                    ),
                ));
            }
        }
        let nonce_len = (post.body_version == 2).then_some(24);
        if !b64_of_len(&post.nonce, nonce_len) || !b64_of_len(&post.ciphertext, None) {
            return Err(Refused::new(
                codes::INVALID_ARGUMENT,
                "nonce and ciphertext must be base64 (a 24-byte nonce for bodyVersion 2)",
            ));
        }
        let reply_to_id = match post.reply_to.as_deref().filter(|r| !r.trim().is_empty()) {
            Some(r) => Some(self.reply_target(topic, r)?),
            None => None,
        };
        let message = TopicMessage {
            id: new_id(),
            topic_id: topic.id.clone(),
            sender_member_id: poster.member_id.clone(),
            sender_session_pubkey: poster.session_pubkey.clone(),
            nonce: post.nonce,
            ciphertext: post.ciphertext,
            body_version: post.body_version,
            reply_to_id: reply_to_id.clone(),
            client_message_id: post.client_message_id,
            created_at: now_ms(),
        };
        let seq = store(self.store.insert_topic_message(&message))?;
        let mentions = match post.mentions {
            Some(m) => m,
            None => plaintext(&message)
                .map(|t| crate::mention::mentions(&t))
                .unwrap_or_default(),
        };
        let row = TopicMessageRow {
            seq,
            message,
            sender_member_pubkey: poster.member_pubkey.clone(),
            sender_name: poster.name.clone(),
        };
        let notified = self.notify_mentions(poster, topic, &row, &mentions)?;

        let push = Frame::Push(wire::Push {
            message_id: row.message.id.clone(),
            mesh_id: topic.mesh_id.clone(),
            sender_pubkey: poster
                .session_pubkey
                .clone()
                .unwrap_or_else(|| poster.member_pubkey.clone()),
            sender_member_pubkey: Some(poster.member_pubkey.clone()),
            sender_member_id: Some(poster.member_id.clone()),
            sender_name: Some(poster.name.clone()),
            target_spec: Some(format!("#{}", topic.id)),
            priority: post_priority,
            nonce: row.message.nonce.clone(),
            ciphertext: row.message.ciphertext.clone(),
            created_at: fmt_rfc3339(row.message.created_at),
            client_message_id: row.message.client_message_id.clone(),
            topic: Some(topic.name.clone()),
            topic_id: Some(topic.id.clone()),
            reply_to_id: reply_to_id.clone(),
            body_version: u32::try_from(row.message.body_version).ok(),
            ..wire::Push::default()
        });
        let pushed = self.push_to_members(&topic.mesh_id, &members, from, &push);
        self.metrics.messages_out += pushed as u64;
        let pushed = pushed > 0 || self.live_elsewhere(&topic.mesh_id, &members);
        let event = rest_entry(topic, &row).to_string();
        self.tell(Event::Stream {
            topic: topic.id.clone(),
            id: row.message.id.clone(),
            data: event.clone(),
        });
        self.stream_event(&topic.id, &row.message.id, &event, IfLost::Drop);
        Ok(Posted {
            message_id: row.message.id,
            reply_to_id,
            notified,
            pushed,
            duplicate: false,
        })
    }

    /// Writes a notification for each member a mention names (display names, case-insensitively, not the poster)
    /// and pushes `mention` to their live connections.
    fn notify_mentions(
        &mut self,
        poster: &Poster,
        topic: &Topic,
        row: &TopicMessageRow,
        names: &[String],
    ) -> Refusal<usize> {
        let names: HashSet<String> = names
            .iter()
            .take(16)
            .map(|n| n.trim().trim_start_matches('@').to_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Ok(0);
        }
        let mentioned: Vec<_> = store(self.store.members(&topic.mesh_id))?
            .into_iter()
            .filter(|m| m.revoked_at.is_none() && m.id != poster.member_id)
            .filter(|m| names.contains(&m.display_name.to_lowercase()))
            .take(MAX_MENTIONED)
            .collect();
        let now = now_ms();
        let mut notified = HashSet::new();
        for m in &mentioned {
            if store(self.store.insert_notification(
                &new_id(),
                &row.message.id,
                &m.id,
                "mention",
                now,
            ))? {
                notified.insert(m.id.clone());
            }
        }
        let data = json!({"topic": topic.name, "topicId": topic.id, "messageId": row.message.id,
            "senderName": poster.name});
        self.system_push(&topic.mesh_id, &notified, "mention", data);
        Ok(notified.len())
    }

    /// `send` to `#topic`: one stored row, pushed to the members online now. Refusals are `ack`s whose `error`
    /// starts with the refusal's code (`unknown target:` for a topic that does not exist).
    pub(super) fn on_topic_send(&mut self, conn: ConnId, pk: PKey, s: wire::SendMessage) {
        let Some(poster) = self.presences.get(&pk).map(Poster::of) else {
            return;
        };
        let result = self
            .find_topic(&poster.mesh_id, &s.target_spec)
            .map_err(|r| match r.code {
                codes::TOPIC_NOT_FOUND => Refused::new("unknown target", r.message),
                _ => r,
            })
            .and_then(|topic| {
                let post = NewPost {
                    nonce: s.nonce.clone(),
                    ciphertext: s.ciphertext.clone(),
                    body_version: i64::from(s.body_version.unwrap_or(1)),
                    reply_to: s.reply_to_id.clone(),
                    mentions: s.mentions.clone(),
                    client_message_id: s.client_message_id.clone().filter(|c| !c.is_empty()),
                    priority: s.priority,
                };
                self.post(&poster, &topic, post, Some(conn))
            });
        match result {
            Ok(p) => {
                let ack = wire::Ack {
                    id: s.id.clone(),
                    message_id: p.message_id,
                    queued: !p.pushed,
                    recipient_online: Some(p.pushed),
                    duplicate: p.duplicate.then_some(true),
                    ..wire::Ack::default()
                };
                let instead = wire::Ack::refused(
                    &s.id,
                    "internal: message not stored (broker storage error); retry",
                );
                self.reply_durable(conn, ack, instead);
            }
            Err(r) => {
                self.count_error(r.code);
                self.reply(
                    conn,
                    wire::Ack::refused(&s.id, format!("{}: {}", r.code, r.message)),
                );
            }
        }
    }

    /// The topic requests of an authenticated connection.
    pub(super) fn on_topic_frame(&mut self, conn: ConnId, pk: PKey, frame: Frame) {
        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let (mesh, member) = (p.mesh_id.clone(), p.member_id.clone());
        let req_id = frame.req_id().map(str::to_string);
        let req = req_id.as_deref();
        let result = match frame {
            Frame::TopicCreate(t) => self.topic_create(&mesh, &member, t),
            Frame::TopicList(_) => self.topic_list(&mesh, &member),
            Frame::TopicJoin(t) => self.topic_join(&mesh, &member, &t),
            Frame::TopicLeave(t) => self
                .find_topic(&mesh, &t.topic)
                .and_then(|topic| store(self.store.leave_topic(&topic.id, &member)))
                .map(|_| Frame::Ack(wire::Ack::done(req))),
            Frame::TopicMembers(t) => self.topic_members(&mesh, &member, &t.topic),
            Frame::TopicHistory(t) => self.topic_history(&mesh, &member, &t),
            Frame::TopicMarkRead(t) => self.topic_mark_read(&mesh, &member, &t.topic),
            Frame::TopicKey(t) => self.topic_key(&mesh, &member, &t.topic),
            Frame::TopicPendingSeals(t) => self.topic_pending(&mesh, &t.topic),
            Frame::TopicSeal(t) => self.topic_seal(&mesh, &member, &t),
            Frame::NotificationsList(n) => self.notifications_list(&member, &n),
            Frame::NotificationsRead(n) => store(self.store.mark_notifications_read(
                &member,
                if n.all == Some(true) {
                    None
                } else {
                    Some(n.ids.as_deref().unwrap_or(&[]))
                },
                now_ms(),
            ))
            .map(|marked| {
                Frame::NotificationsReadResponse(wire::NotificationsReadResponse {
                    marked: u32::try_from(marked).unwrap_or(u32::MAX),
                    req_id: None,
                })
            }),
            _ => return,
        };
        match result {
            Ok(reply) => {
                let reply = with_req_id(reply, req);
                self.reply_durable(conn, reply, Hub::durable_failure(req));
            }
            Err(r) => self.error(conn, r.code, r.message, req),
        }
    }

    fn topic_create(&mut self, mesh: &str, member: &str, t: wire::TopicCreate) -> Refusal<Frame> {
        let name = topic_name(&t.name)?.to_string();
        let visibility = t.visibility.as_deref().unwrap_or("public");
        if !matches!(visibility, "public" | "private" | "dm") {
            return Err(Refused::new(
                codes::INVALID_ARGS,
                format!("visibility must be public, private or dm (got {visibility:?})"),
            ));
        }
        if let Some(existing) = store(self.store.topic(mesh, &name))?.filter(|x| x.name == name) {
            if existing.visibility == "public" || self.in_topic(&existing.id, member)? {
                self.add_to_topic(&existing, member, "member")?;
            }
            return Ok(created(&existing, false));
        }
        let keys = t.keys.unwrap_or_default();
        let members = store(self.store.members(mesh))?;
        for k in &keys {
            if !members
                .iter()
                .any(|m| m.id == k.member_id && m.revoked_at.is_none())
            {
                return Err(Refused::new(
                    codes::INVALID_ARGS,
                    format!("keys: {} is not a member of this mesh", k.member_id),
                ));
            }
            if !b64_of_len(&k.encrypted_key, Some(SEALED_KEY_LEN))
                || !b64_of_len(&k.nonce, Some(24))
            {
                return Err(Refused::new(
                    codes::INVALID_ARGS,
                    "keys: encryptedKey must be base64 of 80 bytes and nonce of 24",
                ));
            }
        }
        if !keys.is_empty() && !keys.iter().any(|k| k.member_id == member) {
            return Err(Refused::new(
                codes::INVALID_ARGS,
                "keys: seal the topic key for yourself too",
            ));
        }
        let now = now_ms();
        let topic = Topic {
            id: new_id(),
            mesh_id: mesh.to_string(),
            name,
            description: t.description.filter(|d| !d.trim().is_empty()),
            visibility: visibility.to_string(),
            created_by_member_id: Some(member.to_string()),
            encrypted: !keys.is_empty(),
            created_at: now,
            archived_at: None,
        };
        store(self.store.insert_topic(&topic))?;
        store(self.store.join_topic(&topic.id, member, "lead", now))?;
        for k in keys {
            store(self.store.put_topic_key(&SealedKey {
                topic_id: topic.id.clone(),
                member_id: k.member_id,
                encrypted_key: k.encrypted_key,
                nonce: k.nonce,
                sealed_by_member_id: member.to_string(),
                created_at: now,
            }))?;
        }
        super::log::info(
            "topic created",
            &[
                ("mesh", &mesh),
                ("topic", &topic.id),
                ("encrypted", &topic.encrypted),
            ],
        );
        Ok(created(&topic, true))
    }

    fn topic_list(&mut self, mesh: &str, member: &str) -> Refusal<Frame> {
        let topics = store(self.store.topics(mesh, member))?
            .into_iter()
            .filter(|l| l.joined || l.topic.visibility == "public")
            .map(|l| wire::TopicInfo {
                id: l.topic.id,
                name: l.topic.name,
                description: l.topic.description,
                visibility: l.topic.visibility,
                member_count: u32::try_from(l.member_count).unwrap_or(u32::MAX),
                created_at: fmt_rfc3339(l.topic.created_at),
                encrypted: Some(l.topic.encrypted),
                joined: Some(l.joined),
                unread: Some(u32::try_from(l.unread).unwrap_or(u32::MAX)),
            })
            .collect();
        Ok(Frame::TopicListResponse(wire::TopicListResponse {
            topics,
            req_id: None,
        }))
    }

    fn topic_join(&mut self, mesh: &str, member: &str, t: &wire::TopicJoin) -> Refusal<Frame> {
        let topic = self.find_topic(mesh, &t.topic)?;
        let role = t.role.as_deref().unwrap_or("member");
        if !matches!(role, "lead" | "member" | "observer") {
            return Err(Refused::new(
                codes::INVALID_ARGS,
                format!("role must be lead, member or observer (got {role:?})"),
            ));
        }
        if topic.visibility != "public"
            && !self.in_topic(&topic.id, member)?
            && store(self.store.topic_key(&topic.id, member))?.is_none()
            && store(self.store.member(member))?.is_none_or(|m| m.role != "admin")
        {
            return Err(Refused::new(
                codes::FORBIDDEN,
                format!(
                    "#{} is {}: it is joined by those its members sealed the key for",
                    topic.name, topic.visibility
                ),
            ));
        }
        self.add_to_topic(&topic, member, role)?;
        Ok(Frame::Ack(wire::Ack::default()))
    }

    fn topic_members(&mut self, mesh: &str, member: &str, reference: &str) -> Refusal<Frame> {
        let topic = self.find_topic(mesh, reference)?;
        self.may_read(&topic, member)?;
        let mut online: HashSet<String> = self
            .mesh_keys(mesh)
            .iter()
            .filter_map(|k| self.presences.get(k))
            .filter(|p| p.conn.is_some())
            .map(|p| p.member_id.clone())
            .collect();
        online.extend(self.elsewhere(mesh).into_iter().map(|r| r.member_id));
        let members = store(self.store.topic_members(&topic.id))?
            .into_iter()
            .filter(|m| !m.revoked)
            .map(|m| wire::TopicMember {
                online: Some(online.contains(&m.member_id)),
                has_key: topic.encrypted.then_some(m.has_key),
                member_id: m.member_id,
                pubkey: m.pubkey,
                display_name: m.display_name,
                role: m.role,
                joined_at: fmt_rfc3339(m.joined_at),
                last_read_at: m.last_read_at.map(fmt_rfc3339),
            })
            .collect();
        Ok(Frame::TopicMembersResponse(wire::TopicMembersResponse {
            topic: reference.to_string(),
            members,
            req_id: None,
        }))
    }

    /// The `seq` of a message of the topic, given its whole id.
    pub(super) fn seq_of(&self, topic: &Topic, id: &str) -> Refusal<i64> {
        store(self.store.topic_messages_by_prefix(&topic.id, id, 1))?
            .into_iter()
            .find(|r| r.message.id == id)
            .map(|r| r.seq)
            .ok_or_else(|| {
                Refused::new(
                    codes::NOT_FOUND,
                    format!("no message {id} in #{}", topic.name),
                )
            })
    }

    /// A page of history, newest first: `limit` 1-200 (default 50) before the message `before`.
    pub(super) fn history_page(
        &self,
        topic: &Topic,
        limit: Option<u32>,
        before: Option<&str>,
    ) -> Refusal<Vec<TopicMessageRow>> {
        let limit = limit.map_or(50, |l| l.clamp(1, 200)) as usize;
        let before = match before.filter(|b| !b.is_empty()) {
            Some(id) => Some(self.seq_of(topic, id)?),
            None => None,
        };
        store(
            self.store
                .topic_messages(&topic.id, TopicPage::Before(before, limit)),
        )
    }

    fn topic_history(
        &mut self,
        mesh: &str,
        member: &str,
        t: &wire::TopicHistory,
    ) -> Refusal<Frame> {
        let topic = self.find_topic(mesh, &t.topic)?;
        self.may_read(&topic, member)?;
        let rows = self.history_page(&topic, t.limit, t.before_id.as_deref())?;
        Ok(Frame::TopicHistoryResponse(wire::TopicHistoryResponse {
            topic: t.topic.clone(),
            topic_id: Some(topic.id.clone()),
            encrypted: Some(topic.encrypted),
            messages: rows.iter().map(history_entry).collect(),
            req_id: None,
        }))
    }

    /// Marks the topic read for a member; a public topic is joined first.
    pub(super) fn mark_read(&mut self, topic: &Topic, member: &str) -> Refusal<i64> {
        self.may_post(topic, member)?;
        let now = now_ms();
        store(self.store.mark_topic_read(&topic.id, member, now))?;
        Ok(now)
    }

    fn topic_mark_read(&mut self, mesh: &str, member: &str, reference: &str) -> Refusal<Frame> {
        let topic = self.find_topic(mesh, reference)?;
        self.mark_read(&topic, member)?;
        Ok(Frame::Ack(wire::Ack::default()))
    }

    pub(super) fn topic_key(
        &mut self,
        mesh: &str,
        member: &str,
        reference: &str,
    ) -> Refusal<Frame> {
        let topic = self.find_topic(mesh, reference)?;
        if !topic.encrypted {
            return Err(Refused::new(
                codes::TOPIC_UNENCRYPTED,
                format!("#{} has no topic key: its bodies are plaintext", topic.name),
            ));
        }
        let Some(k) = store(self.store.topic_key(&topic.id, member))? else {
            return Err(Refused::new(
                codes::KEY_NOT_SEALED,
                format!(
                    "no copy of #{}'s key is sealed for you yet: a member who holds it seals one when they next \
                     post, read or tail it",
                    topic.name
                ),
            ));
        };
        Ok(Frame::TopicKeyResponse(wire::TopicKeyResponse {
            topic: reference.to_string(),
            topic_id: topic.id,
            encrypted_key: k.encrypted_key,
            nonce: k.nonce,
            req_id: None,
        }))
    }

    pub(super) fn topic_pending(&mut self, mesh: &str, reference: &str) -> Refusal<Frame> {
        let topic = self.find_topic(mesh, reference)?;
        let pending = if !topic.encrypted {
            Vec::new()
        } else if topic.visibility == "public" {
            // Anyone in the mesh may read a public topic, and the original CLI asks for its key before it joins:
            // so every member without a copy is waiting, topic member or not, however late they came.
            let mut out = Vec::new();
            for m in store(self.store.members(mesh))? {
                if out.len() >= 50 {
                    break;
                }
                if m.revoked_at.is_some()
                    || store(self.store.topic_key(&topic.id, &m.id))?.is_some()
                {
                    continue;
                }
                out.push(wire::PendingSeal {
                    member_id: m.id,
                    pubkey: m.pubkey,
                    display_name: m.display_name,
                });
            }
            out
        } else {
            store(self.store.topic_members(&topic.id))?
                .into_iter()
                .filter(|m| !m.revoked && !m.has_key)
                .take(50)
                .map(|m| wire::PendingSeal {
                    member_id: m.member_id,
                    pubkey: m.pubkey,
                    display_name: m.display_name,
                })
                .collect()
        };
        Ok(Frame::TopicPendingSealsResponse(
            wire::TopicPendingSealsResponse {
                topic: reference.to_string(),
                topic_id: topic.id,
                pending,
                req_id: None,
            },
        ))
    }

    pub(super) fn topic_seal(
        &mut self,
        mesh: &str,
        member: &str,
        t: &wire::TopicSeal,
    ) -> Refusal<Frame> {
        let topic = self.find_topic(mesh, &t.topic)?;
        if !topic.encrypted {
            return Err(Refused::new(
                codes::TOPIC_UNENCRYPTED,
                format!("#{} has no topic key to seal", topic.name),
            ));
        }
        if store(self.store.topic_key(&topic.id, member))?.is_none() {
            return Err(Refused::new(
                codes::FORBIDDEN,
                format!(
                    "only a member holding #{}'s key may seal it for others",
                    topic.name
                ),
            ));
        }
        // A public topic's readers are the whole mesh (see topic_pending); a private one's, its members.
        let recipient = if topic.visibility == "public" {
            store(self.store.members(mesh))?
                .into_iter()
                .any(|m| m.id == t.member_id && m.revoked_at.is_none())
        } else {
            store(self.store.topic_members(&topic.id))?
                .into_iter()
                .any(|m| m.member_id == t.member_id && !m.revoked)
        };
        if !recipient {
            return Err(Refused::new(
                codes::NOT_FOUND,
                format!(
                    "recipient_not_in_topic: {} is not a member of #{}",
                    t.member_id, topic.name
                ),
            ));
        }
        if !b64_of_len(&t.encrypted_key, Some(SEALED_KEY_LEN)) || !b64_of_len(&t.nonce, Some(24)) {
            return Err(Refused::new(
                codes::INVALID_ARGS,
                "encryptedKey must be base64 of 80 bytes and nonce of 24",
            ));
        }
        // A copy that exists stays: a second holder racing the first changes nothing, and nobody can replace a
        // member's key with another.
        store(self.store.put_topic_key(&SealedKey {
            topic_id: topic.id.clone(),
            member_id: t.member_id.clone(),
            encrypted_key: t.encrypted_key.clone(),
            nonce: t.nonce.clone(),
            sealed_by_member_id: member.to_string(),
            created_at: now_ms(),
        }))?;
        Ok(Frame::Ack(wire::Ack::default()))
    }

    fn notifications_list(&mut self, member: &str, n: &wire::NotificationsList) -> Refusal<Frame> {
        let limit = n.limit.map_or(50, |l| l.clamp(1, 200)) as usize;
        let rows = store(self.store.notifications(member, n.all != Some(true), limit))?;
        let notifications = rows
            .into_iter()
            .map(|r| {
                let e = history_entry(&r.message);
                wire::Notification {
                    id: r.id,
                    message_id: e.id,
                    topic_id: r.message.message.topic_id.clone(),
                    topic_name: r.topic_name,
                    sender_name: e.sender_name,
                    sender_pubkey: e.sender_pubkey,
                    nonce: e.nonce,
                    ciphertext: e.ciphertext,
                    body_version: e.body_version,
                    kind: r.kind,
                    created_at: fmt_rfc3339(r.created_at),
                    read_at: r.read_at.map(fmt_rfc3339),
                }
            })
            .collect();
        Ok(Frame::NotificationsListResponse(
            wire::NotificationsListResponse {
                notifications,
                req_id: None,
            },
        ))
    }

    /// An event stream ended.
    pub(super) fn forget_stream(&mut self, conn: ConnId) {
        self.topic_state.streams.remove(&conn);
    }
}

fn created(t: &Topic, created: bool) -> Frame {
    Frame::TopicCreated(wire::TopicCreated {
        topic: wire::TopicRef {
            id: t.id.clone(),
            name: t.name.clone(),
            visibility: t.visibility.clone(),
            encrypted: Some(t.encrypted),
        },
        created,
        req_id: None,
    })
}

/// Sets the reply's `_reqId` (a generic `ack` also carries it in `id`).
fn with_req_id(frame: Frame, req_id: Option<&str>) -> Frame {
    if let Frame::Ack(_) = frame {
        return Frame::Ack(wire::Ack::done(req_id));
    }
    let Some(r) = req_id else { return frame };
    match serde_json::to_value(&frame) {
        Ok(Value::Object(mut o)) => {
            o.insert("_reqId".into(), r.into());
            serde_json::from_value(Value::Object(o)).unwrap_or(frame)
        }
        _ => frame,
    }
}
