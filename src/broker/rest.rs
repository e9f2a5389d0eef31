//! The REST surface under `/api/v1`, for programs that speak HTTP and nothing else: post to a topic, read its
//! history, follow it as a server-sent event stream, list topics, peers, members and mentions, and hand out a
//! topic's sealed key and seal it for who waits (the original CLI's key routes, in its shapes).
//!
//! Every request carries `Authorization: Bearer cm_...` (an API key, see [`super::apikeys`]) and acts as the
//! member that made the key, within the key's capabilities and topic scopes. Errors are JSON,
//! `{"error": code, "message": text}`, with 400 (bad request), 401 (no key, or an unknown, revoked or expired
//! one), 403 (a capability or topic scope the key lacks, or a topic the member may not reach), 404, 409 (a body of
//! the wrong kind for the topic) and 429 (the key's token bucket is empty).
//!
//! A stream gets `ready`, then every message stored from then on, pushed by the hub as it is stored (no polling),
//! each with `id:` set to the message id; a reconnect with `Last-Event-ID` first gets what it missed.

use serde_json::{Value, json};

use super::apikeys::Caller;
use super::hub::{Hub, IfLost};
use super::net::{ConnId, HttpAction, Io, Request, Response};
use super::store::{Topic, TopicPage};
use super::topics::{NewPost, Poster, Refused, Stream, rest_entry};
use crate::crypto::b64;
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::Frame;

/// The most messages a stream replays after `Last-Event-ID`.
const MAX_REPLAY: usize = 1000;

fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    Response::json(status, &json!({"error": code, "message": message.into()}))
}

fn refused(r: &Refused) -> Response {
    error(r.status(), r.code, r.message.clone())
}

fn respond(r: Result<Value, Response>) -> HttpAction {
    HttpAction::Respond(match r {
        Ok(v) => Response::json(200, &v),
        Err(e) => e,
    })
}

/// The value of `name` in a query string (`%XX` and `+` decoded).
fn query<'a>(req: &'a Request, name: &str) -> Option<String> {
    let q: &'a str = req.query.as_deref()?;
    q.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | ""))
}

fn body(req: &Request) -> Result<Value, Response> {
    serde_json::from_slice::<Value>(&req.body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| error(400, "bad_request", "the body must be a JSON object"))
}

/// What a route needs before it runs.
#[derive(Clone, Copy, PartialEq)]
enum Route<'a> {
    PostMessage,
    Topics,
    History(&'a str),
    Stream(&'a str),
    MarkRead(&'a str),
    Key(&'a str),
    PendingSeals(&'a str),
    Seal(&'a str),
    Peers,
    Members,
    Notifications,
    NotificationsRead,
}

fn route<'a>(method: &str, path: &'a [&'a str]) -> Result<Route<'a>, Response> {
    let r = match path {
        ["messages"] => ("POST", Route::PostMessage),
        ["topics"] => ("GET", Route::Topics),
        ["topics", t, "messages"] => ("GET", Route::History(t)),
        ["topics", t, "stream"] => ("GET", Route::Stream(t)),
        ["topics", t, "read"] => ("PATCH", Route::MarkRead(t)),
        ["topics", t, "key"] => ("GET", Route::Key(t)),
        ["topics", t, "pending-seals"] => ("GET", Route::PendingSeals(t)),
        ["topics", t, "seal"] => ("POST", Route::Seal(t)),
        ["peers"] => ("GET", Route::Peers),
        ["members"] => ("GET", Route::Members),
        ["notifications"] => ("GET", Route::Notifications),
        ["notifications", "read"] => ("POST", Route::NotificationsRead),
        _ => return Err(error(404, "not_found", "no such endpoint under /api/v1")),
    };
    if r.0 != method {
        return Err(error(405, "method_not_allowed", format!("use {}", r.0)));
    }
    Ok(r.1)
}

impl Hub {
    /// Answers a request under `/api/v1/`.
    pub(super) fn rest(&mut self, io: &mut Io, conn: ConnId, req: &Request) -> HttpAction {
        let rest = req.path.trim_start_matches("/api/v1").trim_matches('/');
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let route = match route(&req.method, &segs) {
            Ok(r) => r,
            Err(e) => return HttpAction::Respond(e),
        };
        let caller = match self.api_caller(req.header("authorization"), io.now()) {
            Ok(c) => c,
            Err((status, code, msg)) => {
                self.count_error(code);
                return HttpAction::Respond(error(status, code, msg));
            }
        };
        let need = match route {
            Route::PostMessage | Route::Seal(_) => "send",
            _ => "read",
        };
        if !caller.can(need) {
            return HttpAction::Respond(error(
                403,
                "missing_capability",
                format!("this API key lacks the {need} capability"),
            ));
        }
        match route {
            Route::PostMessage => respond(self.rest_post(io, &caller, req)),
            Route::Topics => respond(self.rest_topics(&caller)),
            Route::History(t) => respond(self.rest_history(&caller, t, req)),
            Route::Stream(t) => self.rest_stream(conn, &caller, t, req),
            Route::MarkRead(t) => respond(self.rest_mark_read(io, &caller, t)),
            Route::Key(t) => respond(self.rest_key(&caller, t)),
            Route::PendingSeals(t) => respond(self.rest_pending_seals(&caller, t)),
            Route::Seal(t) => respond(self.rest_seal(io, &caller, t, req)),
            Route::Peers => respond(Ok(self.rest_peers(&caller))),
            Route::Members => respond(self.rest_members(&caller)),
            Route::Notifications => respond(self.rest_notifications(&caller, req)),
            Route::NotificationsRead => respond(self.rest_notifications_read(io, &caller, req)),
        }
    }

    /// The topic a key reaches: it exists, is in the key's scopes, and its member may read it.
    fn rest_topic(&self, caller: &Caller, reference: &str) -> Result<Topic, Response> {
        let topic = self
            .find_topic(&caller.key.mesh_id, &percent_decode(reference))
            .map_err(|r| refused(&r))?;
        if !caller.reaches(&topic.name) {
            return Err(error(
                403,
                "topic_out_of_scope",
                format!("this API key does not reach #{}", topic.name),
            ));
        }
        self.may_read(&topic, &caller.member.id)
            .map_err(|r| refused(&r))?;
        Ok(topic)
    }

    /// Commits now: an HTTP answer cannot be taken back once written.
    fn committed(&mut self, io: &mut Io, v: Value) -> Result<Value, Response> {
        if self.settle(io) {
            Ok(v)
        } else {
            Err(error(
                500,
                "internal",
                "broker storage error: not saved; retry",
            ))
        }
    }

    fn rest_post(
        &mut self,
        io: &mut Io,
        caller: &Caller,
        req: &Request,
    ) -> Result<Value, Response> {
        let b = body(req)?;
        let s = |k: &str| b.get(k).and_then(Value::as_str);
        let Some(name) = s("topic") else {
            return Err(error(400, "bad_request", "topic is required"));
        };
        let topic = self.rest_topic(caller, name)?;
        let post = if let Some(text) = s("text") {
            if topic.encrypted {
                return Err(error(
                    409,
                    "topic_encrypted",
                    format!(
                        "#{} is encrypted: post a ciphertext sealed with the topic key, not text",
                        topic.name
                    ),
                ));
            }
            NewPost {
                nonce: b64::encode(&[0u8; 24]),
                ciphertext: b64::encode(text.as_bytes()),
                body_version: 1,
                ..NewPost::default()
            }
        } else {
            let (Some(nonce), Some(ciphertext)) = (s("nonce"), s("ciphertext")) else {
                return Err(error(
                    400,
                    "bad_request",
                    "give ciphertext and nonce (base64), or text for a topic without a key",
                ));
            };
            NewPost {
                nonce: nonce.to_string(),
                ciphertext: ciphertext.to_string(),
                body_version: b.get("bodyVersion").and_then(Value::as_i64).unwrap_or(1),
                ..NewPost::default()
            }
        };
        let mentions = b.get("mentions").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
        let priority = match s("priority") {
            None => crate::wire::Priority::default(),
            Some(p) => p.parse().map_err(|_| {
                error(
                    400,
                    "bad_request",
                    format!("priority is now, next or low, not {p:?}"),
                )
            })?,
        };
        let post = NewPost {
            reply_to: s("replyToId").map(str::to_string),
            mentions,
            priority,
            ..post
        };
        let poster = Poster {
            mesh_id: caller.key.mesh_id.clone(),
            member_id: caller.member.id.clone(),
            member_pubkey: caller.member.pubkey.clone(),
            session_pubkey: None,
            name: caller.member.display_name.clone(),
        };
        let posted = self
            .post(&poster, &topic, post, None)
            .map_err(|r| refused(&r))?;
        let mut v = json!({"messageId": posted.message_id, "topic": topic.name, "topicId": topic.id,
            "notifications": posted.notified, "bodyVersion": if topic.encrypted { 2 } else { 1 }});
        if let Some(r) = posted.reply_to_id {
            v["replyToId"] = r.into();
        }
        self.committed(io, v)
    }

    /// `GET /topics/:t/key`: the caller's sealed copy of the topic key, in the shape the original CLI opens
    /// (`encryptedKey` is base64 of the sealer's x25519 key ‖ crypto_box; `senderPubkey` is that key in hex).
    fn rest_key(&mut self, caller: &Caller, t: &str) -> Result<Value, Response> {
        let topic = self.rest_topic(caller, t)?;
        match self.topic_key(&caller.key.mesh_id, &caller.member.id, &topic.id) {
            Ok(Frame::TopicKeyResponse(k)) => {
                let sender = b64::decode(&k.encrypted_key)
                    .ok()
                    .filter(|b| b.len() >= 32)
                    .map(|b| crate::crypto::hex::encode(&b[..32]));
                Ok(
                    json!({"topic": topic.name, "topicId": topic.id, "encryptedKey": k.encrypted_key,
                    "nonce": k.nonce, "senderPubkey": sender,
                    "createdAt": fmt_rfc3339(topic.created_at)}),
                )
            }
            Ok(f) => Err(error(
                500,
                "internal",
                format!("topic_key gave {}", f.type_name()),
            )),
            // The original's code for a member without a copy.
            Err(r) if r.code == crate::wire::codes::KEY_NOT_SEALED => {
                Err(error(404, "key_not_sealed_for_member", r.message))
            }
            Err(r) => Err(refused(&r)),
        }
    }

    /// `GET /topics/:t/pending-seals`: the topic's members without a copy of its key (at most 50).
    fn rest_pending_seals(&mut self, caller: &Caller, t: &str) -> Result<Value, Response> {
        let topic = self.rest_topic(caller, t)?;
        let pending = match self.topic_pending(&caller.key.mesh_id, &topic.id) {
            Ok(Frame::TopicPendingSealsResponse(p)) => p.pending,
            Ok(f) => {
                return Err(error(
                    500,
                    "internal",
                    format!("topic_pending_seals gave {}", f.type_name()),
                ));
            }
            Err(r) => return Err(refused(&r)),
        };
        let pending: Vec<Value> = pending
            .into_iter()
            .map(|m| json!({"memberId": m.member_id, "pubkey": m.pubkey, "displayName": m.display_name}))
            .collect();
        // The original names the topic's key sender here; ours has none (each copy carries its sealer), so
        // an encrypted topic says the caller's own copy's sealer, and an unencrypted one null, as there.
        let sender = if topic.encrypted {
            self.rest_key(caller, t)
                .ok()
                .and_then(|k| k.get("senderPubkey").cloned())
                .unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        Ok(
            json!({"topic": topic.name, "topicId": topic.id, "senderPubkey": sender, "pending": pending}),
        )
    }

    /// `POST /topics/:t/seal {memberId, encryptedKey, nonce}`: a holder's copy of the key for a member without one.
    fn rest_seal(
        &mut self,
        io: &mut Io,
        caller: &Caller,
        t: &str,
        req: &Request,
    ) -> Result<Value, Response> {
        let topic = self.rest_topic(caller, t)?;
        let b = body(req)?;
        let s = |k: &str| {
            b.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let seal = crate::wire::TopicSeal {
            topic: topic.id.clone(),
            member_id: s("memberId"),
            encrypted_key: s("encryptedKey"),
            nonce: s("nonce"),
            req_id: None,
        };
        if seal.member_id.is_empty() {
            return Err(error(400, "bad_request", "memberId is required"));
        }
        match self.topic_seal(&caller.key.mesh_id, &caller.member.id, &seal) {
            Ok(_) => {}
            Err(r) if r.message.starts_with("recipient_not_in_topic") => {
                return Err(error(404, "recipient_not_in_topic", r.message));
            }
            Err(r) => return Err(refused(&r)),
        }
        let v = json!({"topic": topic.name, "topicId": topic.id, "memberId": seal.member_id,
            "sealedAt": fmt_rfc3339(now_ms())});
        self.committed(io, v)
    }

    fn rest_topics(&mut self, caller: &Caller) -> Result<Value, Response> {
        let listings = self
            .store
            .topics(&caller.key.mesh_id, &caller.member.id)
            .map_err(|e| error(500, "internal", e.msg))?;
        let topics: Vec<Value> = listings
            .into_iter()
            .filter(|l| (l.joined || l.topic.visibility == "public") && caller.reaches(&l.topic.name))
            .map(|l| {
                json!({"id": l.topic.id, "name": l.topic.name, "description": l.topic.description,
                    "visibility": l.topic.visibility, "encrypted": l.topic.encrypted, "joined": l.joined,
                    "memberCount": l.member_count, "unread": l.unread,
                    "createdAt": fmt_rfc3339(l.topic.created_at)})
            })
            .collect();
        Ok(json!({ "topics": topics }))
    }

    fn rest_history(&mut self, caller: &Caller, t: &str, req: &Request) -> Result<Value, Response> {
        let topic = self.rest_topic(caller, t)?;
        let limit =
            match query(req, "limit") {
                Some(l) => Some(l.parse::<u32>().map_err(|_| {
                    error(400, "bad_request", "limit must be a number from 1 to 200")
                })?),
                None => None,
            };
        let before = query(req, "before");
        let rows = self
            .history_page(&topic, limit, before.as_deref())
            .map_err(|r| refused(&r))?;
        let messages: Vec<Value> = rows.iter().map(|r| rest_entry(&topic, r)).collect();
        Ok(
            json!({"topic": topic.name, "topicId": topic.id, "encrypted": topic.encrypted,
            "messages": messages}),
        )
    }

    fn rest_stream(&mut self, conn: ConnId, caller: &Caller, t: &str, req: &Request) -> HttpAction {
        let topic = match self.rest_topic(caller, t) {
            Ok(t) => t,
            Err(e) => return HttpAction::Respond(e),
        };
        let replay = match req
            .header("last-event-id")
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(id) => match self.seq_of(&topic, id) {
                Ok(seq) => {
                    match self
                        .store
                        .topic_messages(&topic.id, TopicPage::After(seq, MAX_REPLAY))
                    {
                        Ok(rows) => rows,
                        Err(e) => return HttpAction::Respond(error(500, "internal", e.msg)),
                    }
                }
                Err(r) => return HttpAction::Respond(refused(&r)),
            },
            None => Vec::new(),
        };
        let ready = json!({"topic": topic.name, "topicId": topic.id, "encrypted": topic.encrypted,
            "connectedAt": fmt_rfc3339(now_ms())});
        self.emit_sse(conn, "ready", None, ready.to_string(), IfLost::Send);
        for r in &replay {
            let data = rest_entry(&topic, r).to_string();
            self.emit_sse(conn, "message", Some(&r.message.id), data, IfLost::Send);
        }
        self.topic_state.streams.insert(
            conn,
            Stream {
                topic_id: topic.id,
                key_id: caller.key.id.clone(),
            },
        );
        HttpAction::EventStream
    }

    fn rest_mark_read(&mut self, io: &mut Io, caller: &Caller, t: &str) -> Result<Value, Response> {
        let topic = self.rest_topic(caller, t)?;
        let at = self
            .mark_read(&topic, &caller.member.id)
            .map_err(|r| refused(&r))?;
        let v = json!({"topic": topic.name, "topicId": topic.id, "readAt": fmt_rfc3339(at)});
        self.committed(io, v)
    }

    /// The mesh's members with a live connection, here or on another broker, one entry per member.
    fn rest_peers(&self, caller: &Caller) -> Value {
        let mut seen = std::collections::HashSet::new();
        let mut peers: Vec<Value> = self
            .mesh_keys(&caller.key.mesh_id)
            .iter()
            .filter_map(|k| self.presences.get(k))
            .filter(|p| p.conn.is_some() && p.visible)
            .filter(|p| seen.insert(p.member_id.clone()))
            .map(|p| {
                json!({"pubkey": p.member_pubkey, "memberId": p.member_id, "displayName": p.display_name,
                    "status": p.status, "summary": p.summary, "groups": p.groups, "via": "ws"})
            })
            .collect();
        // As `list_peers` shows them to a member who is none of them: the visible ones.
        for p in self.peers_elsewhere(&caller.key.mesh_id, "") {
            let member_id = p.member_id.clone().unwrap_or_default();
            if seen.insert(member_id.clone()) {
                peers.push(json!({"pubkey": p.member_pubkey, "memberId": member_id,
                    "displayName": p.display_name, "status": p.status, "summary": p.summary,
                    "groups": p.groups, "via": "ws"}));
            }
        }
        json!({ "peers": peers })
    }

    fn rest_members(&mut self, caller: &Caller) -> Result<Value, Response> {
        let members = self
            .store
            .members(&caller.key.mesh_id)
            .map_err(|e| error(500, "internal", e.msg))?;
        let mut live: Vec<_> = self
            .mesh_keys(&caller.key.mesh_id)
            .iter()
            .filter_map(|k| self.presences.get(k))
            .filter(|p| p.conn.is_some())
            .map(|p| (p.member_id.clone(), p.status))
            .collect();
        live.extend(
            self.elsewhere(&caller.key.mesh_id)
                .into_iter()
                .filter_map(|r| {
                    let p: crate::wire::Peer = serde_json::from_str(&r.listing).ok()?;
                    Some((r.member_id, p.status))
                }),
        );
        let members: Vec<Value> = members
            .into_iter()
            .filter(|m| m.revoked_at.is_none())
            .map(|m| {
                let status = live.iter().find(|(id, _)| *id == m.id).map(|(_, s)| *s);
                json!({"memberId": m.id, "pubkey": m.pubkey, "displayName": m.display_name, "role": m.role,
                    "joinedAt": fmt_rfc3339(m.joined_at), "online": status.is_some(),
                    "status": status.map_or("offline", |s| s.as_str())})
            })
            .collect();
        Ok(json!({ "members": members }))
    }

    fn rest_notifications(&mut self, caller: &Caller, req: &Request) -> Result<Value, Response> {
        let all = truthy(query(req, "all")) || query(req, "include").as_deref() == Some("all");
        let rows = self
            .store
            .notifications(&caller.member.id, !all, 50)
            .map_err(|e| error(500, "internal", e.msg))?;
        let notifications: Vec<Value> = rows
            .iter()
            .filter(|n| caller.reaches(&n.topic_name))
            .map(|n| {
                let mut v = json!({"id": n.id, "notificationId": n.id, "messageId": n.message.message.id,
                    "topicId": n.message.message.topic_id, "topicName": n.topic_name,
                    "senderName": n.message.sender_name, "senderPubkey": n.message.sender_member_pubkey,
                    "nonce": n.message.message.nonce, "ciphertext": n.message.message.ciphertext,
                    "bodyVersion": n.message.message.body_version, "kind": n.kind,
                    "createdAt": fmt_rfc3339(n.created_at), "readAt": n.read_at.map(fmt_rfc3339)});
                if let Some(t) = super::topics::plaintext(&n.message.message) {
                    v["text"] = t.into();
                }
                v
            })
            .collect();
        Ok(json!({"notifications": notifications, "mentionedAs": caller.member.display_name}))
    }

    fn rest_notifications_read(
        &mut self,
        io: &mut Io,
        caller: &Caller,
        req: &Request,
    ) -> Result<Value, Response> {
        let b = body(req)?;
        let ids: Option<Vec<String>> = b.get("ids").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
        let all = b.get("all").and_then(Value::as_bool) == Some(true);
        if ids.is_none() && !all {
            return Err(error(400, "bad_request", "give ids: [...] or all: true"));
        }
        let ids = if all { None } else { ids };
        let marked = self
            .store
            .mark_notifications_read(&caller.member.id, ids.as_deref(), now_ms())
            .map_err(|e| error(500, "internal", e.msg))?;
        self.committed(io, json!({ "marked": marked }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn routes_and_methods() {
        assert!(matches!(
            route("GET", &["topics", "dev", "stream"]),
            Ok(Route::Stream("dev"))
        ));
        assert_eq!(
            route("GET", &["messages"]).err().map(|r| r.status),
            Some(405)
        );
        assert_eq!(route("GET", &["nope"]).err().map(|r| r.status), Some(404));
        assert!(matches!(
            route("GET", &["topics", "ops", "key"]),
            Ok(Route::Key("ops"))
        ));
        assert!(matches!(
            route("POST", &["topics", "ops", "seal"]),
            Ok(Route::Seal("ops"))
        ));
    }
}
