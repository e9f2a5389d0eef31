//! What a send reaches and what its `ack` means.
//!
//! A display name resolves to the member's key, so the message reaches every live session of that member and is
//! stored while it has none; a full key or a key prefix addresses exactly that key (member or session). `*` and
//! `@group` are sealed per recipient (DESIGN §5): one crypto_box per member, sent as `copies`, so the broker
//! stores no plaintext for them either. The wording follows the broker's `ack`: `queued:false` means a live
//! connection of the recipient had it pushed now.

use std::io::BufRead;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::roster::Roster;
use crate::client::{Conn, Ctx};
use crate::crypto::{self, Keypair};
use crate::error::{Code, Error, Result};
use crate::out::Out;
use crate::out::short_key;
use crate::target::{self, Candidate, Resolved, Target};
use crate::wire::{Ack, Priority, SealedCopy, SendMessage};

/// Where a message goes once its target is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// One key: a member (all its sessions; stored while it is offline) or one session.
    Dm { key: String, name: Option<String> },
    /// `*` or `@group`: one sealed copy per member key. `offline` counts the members with no live connection.
    Fanout {
        spec: String,
        members: Vec<String>,
        offline: usize,
    },
}

fn topic_unavailable() -> Error {
    Error::generic("topics take 'cm-topic post' or 'cm-send #topic', not this path")
}

/// Resolves `target` against the rosters of the meshes it may be in. Returns the index of the roster whose mesh
/// to send on. `rosters` is never empty.
pub fn destination(target: &Target, rosters: &[Roster]) -> Result<(usize, Dest)> {
    let group = match target {
        Target::Topic(_) => return Err(topic_unavailable()),
        Target::Everyone => Some(None),
        Target::Group(g) => Some(Some(g.as_str())),
        _ => None,
    };
    if let Some(group) = group {
        let spec = match group {
            None => "*".to_string(),
            Some(g) => format!("@{g}"),
        };
        let [roster] = rosters else {
            let slugs: Vec<&str> = rosters.iter().map(|r| r.mesh.as_str()).collect();
            return Err(Error::usage(format!(
                "sending to {spec} needs --mesh: several meshes joined ({})",
                slugs.join(", ")
            )));
        };
        let members = roster.fan_out(group);
        if members.is_empty() {
            return Err(Error::not_found(match group {
                None => format!("no other members in mesh {}", roster.mesh),
                Some(g) => format!("no members of @{g} besides you in mesh {}", roster.mesh),
            }));
        }
        let offline = members.iter().filter(|m| !m.online).count();
        let members = members.iter().map(|m| m.pubkey.clone()).collect();
        return Ok((
            0,
            Dest::Fanout {
                spec,
                members,
                offline,
            },
        ));
    }
    let candidates: Vec<Candidate> = rosters.iter().flat_map(Roster::candidates).collect();
    let resolved = target::resolve(target, &candidates).map_err(|mut e| {
        // An original broker lists the online members only: say so, or "no peer named" reads as no such member.
        if e.code == Code::NotFound && rosters.iter().any(|r| r.online_only) {
            e.msg.push_str(
                "; this broker lists online members only, so an offline one is reached by its full key",
            );
        }
        e
    })?;
    let Resolved::Peer { key, peer } = resolved else {
        return Err(Error::internal("a peer target resolved to a group"));
    };
    let Some(peer) = peer else {
        if let [_] = rosters {
            return Ok((0, Dest::Dm { key, name: None }));
        }
        return Err(Error::usage(format!(
            "no peer with key {} in any joined mesh: pick the mesh with --mesh",
            short_key(&key)
        )));
    };
    let idx = rosters
        .iter()
        .position(|r| r.mesh == peer.mesh)
        .ok_or_else(|| Error::internal("a resolved peer is in no roster"))?;
    // A name means the person: their member key reaches all their sessions, and waits for them when offline.
    let by_name = match target {
        Target::Name(_) => true,
        Target::KeyPrefix(p) => {
            !peer.pubkey.starts_with(p.as_str()) && !peer.member_pubkey.starts_with(p.as_str())
        }
        _ => false,
    };
    let key = if by_name {
        peer.member_pubkey.clone()
    } else {
        key
    };
    let name = rosters[idx]
        .name_of(&key)
        .map(str::to_string)
        .or_else(|| Some(peer.name.clone()));
    Ok((idx, Dest::Dm { key, name }))
}

/// A message sealed for its destination, with what its result line needs.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub mesh: String,
    /// The target spec: a key, `*` or `@group`.
    pub to: String,
    pub name: Option<String>,
    /// For `*`/`@group`: how many members get a copy, and how many of them are offline.
    pub fanout: Option<(usize, usize)>,
    pub priority: Priority,
    /// The frame to send; `id` and `client_message_id` are filled in by the connection.
    pub send: SendMessage,
}

/// Seals `text` for `dest` with `sender` (the key the connection speaks as, which the broker reports as the
/// sender, so the recipient opens the box with it).
pub fn seal(
    mesh: &str,
    dest: Dest,
    text: &str,
    priority: Priority,
    reply_to: Option<&str>,
    sender: &Keypair,
) -> Result<Outgoing> {
    if text.trim().is_empty() {
        return Err(Error::usage("the message is empty"));
    }
    let cannot = |key: &str, e: crypto::CryptoError| {
        Error::usage(format!("cannot encrypt to {}: {e}", short_key(key)))
    };
    let reply_to_id = reply_to.map(str::to_string);
    let (send, to, name, fanout) = match dest {
        Dest::Dm { key, name } => {
            let (nonce, ciphertext) =
                crypto::encrypt_dm(text.as_bytes(), &key, sender).map_err(|e| cannot(&key, e))?;
            let send = SendMessage {
                target_spec: key.clone(),
                priority,
                nonce,
                ciphertext,
                reply_to_id,
                ..SendMessage::default()
            };
            (send, key, name, None)
        }
        Dest::Fanout {
            spec,
            members,
            offline,
        } => {
            let copies = members
                .iter()
                .map(|m| {
                    let (nonce, ciphertext) =
                        crypto::encrypt_dm(text.as_bytes(), m, sender).map_err(|e| cannot(m, e))?;
                    Ok(SealedCopy {
                        to: m.clone(),
                        nonce,
                        ciphertext,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let send = SendMessage {
                target_spec: spec.clone(),
                priority,
                copies: Some(copies),
                reply_to_id,
                ..SendMessage::default()
            };
            (send, spec, None, Some((members.len(), offline)))
        }
    };
    Ok(Outgoing {
        mesh: mesh.to_string(),
        to,
        name,
        fanout,
        priority,
        send,
    })
}

/// `{"type":"send_result",...}`: what became of a message.
#[derive(Debug, Clone, Serialize)]
pub struct SendResult {
    r#type: &'static str,
    /// `sent` (pushed to a live connection now), `queued` (stored until the recipient is back, idle, or pulls
    /// it), or `failed`.
    pub status: &'static str,
    pub recipient_online: bool,
    /// The broker's id (empty when it failed).
    pub message_id: String,
    /// A key, `*` or `@group`.
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub mesh: String,
    pub priority: Priority,
    pub client_message_id: String,
    /// For `*`/`@group`: members that got a copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<usize>,
    /// For `*`/`@group`: of those, how many had no live connection (their copy waits for them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code the error maps to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The `id` of the `cm-pipe` command, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
}

impl SendResult {
    fn base(o: &Outgoing, client_message_id: &str) -> SendResult {
        SendResult {
            r#type: "send_result",
            status: "failed",
            recipient_online: false,
            message_id: String::new(),
            to: o.to.clone(),
            name: o.name.clone(),
            mesh: o.mesh.clone(),
            priority: o.priority,
            client_message_id: client_message_id.to_string(),
            recipients: o.fanout.map(|f| f.0),
            offline: o.fanout.map(|f| f.1),
            duplicate: None,
            error: None,
            code: None,
            id: None,
        }
    }

    /// The result an `ack` without an error reports.
    pub fn from_ack(o: &Outgoing, client_message_id: &str, ack: &Ack) -> SendResult {
        SendResult {
            status: if ack.queued { "queued" } else { "sent" },
            recipient_online: ack.recipient_online.unwrap_or(!ack.queued),
            message_id: ack.message_id.clone(),
            duplicate: ack.duplicate.filter(|d| *d),
            ..SendResult::base(o, client_message_id)
        }
    }

    /// The result of a send the broker refused, or that never got an answer (`unknown` for [`Code::Unknown`]).
    pub fn failed(o: &Outgoing, client_message_id: &str, e: &Error) -> SendResult {
        SendResult {
            status: if e.code == Code::Unknown {
                "unknown"
            } else {
                "failed"
            },
            error: Some(e.msg.clone()),
            code: Some(e.code.exit_status()),
            ..SendResult::base(o, client_message_id)
        }
    }

    /// The error a failed result stands for.
    pub fn error(&self) -> Option<Error> {
        let msg = self.error.as_ref()?;
        let code = match self.code {
            Some(3) => Code::Usage,
            Some(4) => Code::Network,
            Some(5) => Code::NotFound,
            Some(7) => Code::Permission,
            Some(9) => Code::Unknown,
            _ => Code::Generic,
        };
        Some(Error::new(code, msg.clone()))
    }

    /// `sent to bob (online)`, `queued for bob (offline)`, `sent to 3 members of @eng (1 offline, queued)`.
    pub fn words(&self) -> String {
        let who = match self.recipients {
            Some(n) => {
                let of = if self.to.starts_with('@') {
                    format!(" of {}", self.to)
                } else {
                    String::new()
                };
                format!("{n} member{}{of}", if n == 1 { "" } else { "s" })
            }
            None => self.name.clone().unwrap_or_else(|| short_key(&self.to)),
        };
        let why_held = if self.priority == Priority::Low {
            "low priority: delivered when read"
        } else {
            "busy: delivered when idle"
        };
        match (self.status, self.recipients) {
            ("failed", _) => format!(
                "not sent to {who}: {}",
                self.error.as_deref().unwrap_or("failed")
            ),
            ("unknown", _) => format!(
                "maybe sent to {who}: {}",
                self.error.as_deref().unwrap_or("unknown")
            ),
            ("sent", None) => format!("sent to {who} (online)"),
            ("sent", Some(_)) => match self.offline {
                Some(n) if n > 0 => format!("sent to {who} ({n} offline, queued)"),
                _ => format!("sent to {who}"),
            },
            (_, None) if !self.recipient_online => format!("queued for {who} (offline)"),
            (_, None) => format!("queued for {who} (online, {why_held})"),
            (_, Some(_)) if !self.recipient_online => format!("queued for {who} (none online)"),
            (_, Some(_)) => format!("queued for {who} (online, {why_held})"),
        }
    }
}

/// Sends for a one-shot tool (`cm-send`): one pull connection per mesh, opened when first needed and kept for
/// the run, with rosters refreshed when they are older than half a minute.
pub struct Sender {
    ctxs: Vec<Ctx>,
    conns: Vec<Option<Conn>>,
    rosters: Vec<Option<(Instant, Roster)>>,
}

/// How long a message that went out without an answer is sent again before its outcome is called unknown.
pub const UNKNOWN_AFTER: Duration = Duration::from_secs(15);

/// How long a roster is used before it is asked for again.
const ROSTER_TTL: Duration = Duration::from_secs(30);

impl Sender {
    /// Loads the config: the mesh `mesh` names, else every joined mesh (names resolve across them).
    pub fn new(mesh: Option<&str>) -> Result<Sender> {
        let ctxs = Ctx::load_all(mesh)?;
        let n = ctxs.len();
        Ok(Sender {
            ctxs,
            conns: (0..n).map(|_| None).collect(),
            rosters: (0..n).map(|_| None).collect(),
        })
    }

    /// Which of the meshes in use is the default one: the only one when `--mesh` or `$CLAUDEMESH_MESH` chose.
    fn default_index(&self) -> usize {
        let default = self.ctxs[0].config.default_entry().map(|m| m.slug.as_str());
        self.ctxs
            .iter()
            .position(|c| Some(c.mesh.slug.as_str()) == default)
            .unwrap_or(0)
    }

    fn conn(&mut self, i: usize) -> Result<&mut Conn> {
        let conn = match self.conns[i].take() {
            Some(c) => c,
            None => self.ctxs[i].connect()?,
        };
        Ok(self.conns[i].insert(conn))
    }

    fn roster(&mut self, i: usize) -> Result<Roster> {
        if let Some((at, r)) = &self.rosters[i]
            && at.elapsed() < ROSTER_TTL
        {
            return Ok(r.clone());
        }
        let (slug, member) = (
            self.ctxs[i].mesh.slug.clone(),
            self.ctxs[i].mesh.pubkey.clone(),
        );
        let conn = self.conn(i)?;
        let own_key = conn.sender().public_hex();
        let r =
            Roster::fetch(conn, &slug, &member, &own_key).inspect_err(|_| self.conns[i] = None)?;
        self.rosters[i] = Some((Instant::now(), r.clone()));
        Ok(r)
    }

    /// Resolves `to`, seals `text` for it, sends it and waits for the broker's answer. A connection lost on the
    /// way is opened again and the message sent once more under the same `client_message_id`, which the broker
    /// stores only once.
    ///
    /// When the connection keeps failing after the message went out, it is sent again (same id) until
    /// [`UNKNOWN_AFTER`] has passed; then the outcome is [`Code::Unknown`], naming the id, and
    /// `client_id` = that id sends it again without storing it twice.
    pub fn send(
        &mut self,
        to: &str,
        text: &str,
        priority: Priority,
        reply_to: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<SendResult> {
        let target = Target::parse(to)?;
        let (i, dest) = match target {
            Target::Topic(t) => return self.topic(&t, text, priority, reply_to, client_id),
            // Everyone and a group are of one mesh: the default one, unless --mesh named another.
            Target::Everyone | Target::Group(_) => {
                let i = self.default_index();
                let roster = self.roster(i)?;
                (i, destination(&target, std::slice::from_ref(&roster))?.1)
            }
            _ => {
                let rosters = (0..self.ctxs.len())
                    .map(|i| self.roster(i))
                    .collect::<Result<Vec<_>>>()?;
                destination(&target, &rosters)?
            }
        };
        let slug = self.ctxs[i].mesh.slug.clone();
        let o = seal(
            &slug,
            dest,
            text,
            priority,
            reply_to,
            self.conn(i)?.sender(),
        )?;
        self.deliver(i, o, client_id)
    }

    /// Gives a sealed send to the broker under `client_id` (or a fresh one), sent again under that id when the
    /// connection drops before the answer; the one path every send takes.
    fn deliver(
        &mut self,
        i: usize,
        mut o: Outgoing,
        client_id: Option<&str>,
    ) -> Result<SendResult> {
        let cmid = client_id.map_or_else(crate::client::new_client_message_id, str::to_string);
        o.send.client_message_id = Some(cmid.clone());
        let ack = match self.conn(i)?.send(o.send.clone()) {
            Err(e) if e.code == Code::Network => self.resend(i, &o.send, e),
            r => r,
        };
        Ok(SendResult::from_ack(&o, &cmid, &ack?))
    }

    /// Sends `send` again, under its id, on fresh connections until the broker answers or [`UNKNOWN_AFTER`]
    /// passes; `first` is why the first try got no answer.
    fn resend(&mut self, i: usize, send: &SendMessage, first: Error) -> Result<Ack> {
        let deadline = Instant::now() + UNKNOWN_AFTER;
        let mut pause = Duration::from_millis(100);
        loop {
            self.conns[i] = None;
            match self.conn(i).and_then(|c| c.send(send.clone())) {
                Err(e) if e.code == Code::Network => {}
                r => return r,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.conns[i] = None;
                let id = send.client_message_id.as_deref().unwrap_or_default();
                return Err(Error::unknown(format!(
                    "unknown: may have been delivered ({}); client id {id}: send it again with --client-id {id} \
                     to have it stored once",
                    first.msg
                )));
            }
            // Backing off between reconnects, not waiting for an event.
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Posts to a topic of the one mesh in use (see [`crate::topics::post`]).
    fn topic(
        &mut self,
        topic: &str,
        text: &str,
        priority: Priority,
        reply_to: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<SendResult> {
        let i = self.default_index();
        let ctx = &self.ctxs[i];
        let (member, slug) = (crate::topics::member_key(ctx)?, ctx.mesh.slug.clone());
        let mut d = crate::topics::draft(self.conn(i)?, &member, topic, text, reply_to, false)?;
        d.send.priority = priority;
        let o = Outgoing {
            mesh: slug,
            to: format!("#{}", d.topic.id),
            name: Some(format!("#{}", d.topic.name)),
            fanout: None,
            priority,
            send: d.send,
        };
        let r = self.deliver(i, o, client_id)?;
        for n in crate::topics::reseal_waiting(self.conn(i)?, &d.topic, &member) {
            crate::out::notice(format!("sealed #{}'s key for {n}", d.topic.name));
        }
        Ok(r)
    }

    /// Sends a message per line of `input`: plain text to `default_to`, or JSON `{"to", "text", "priority"?,
    /// "reply_to"?}` (a line starting with `{`). Writes a result per message; a failed line is reported (on
    /// stdout as `{"type":"error","line":N,...}` with `--json`, else on stderr) and the rest still go. Fails at
    /// the end, with the first failure's code, if any line failed.
    pub fn stream(
        &mut self,
        tool: &str,
        default_to: Option<&str>,
        priority: Priority,
        reply_to: Option<&str>,
        input: impl BufRead,
        out: &mut Out,
    ) -> Result<()> {
        let (mut total, mut failed, mut unknown, mut code) = (0usize, 0usize, 0usize, None);
        for (n, line) in input.lines().enumerate() {
            let line = line.map_err(|e| Error::from(e).context("reading stdin"))?;
            if line.trim().is_empty() {
                continue;
            }
            total += 1;
            let r = self.line(&line, default_to, priority, reply_to);
            match r {
                Ok(r) if out.json => out.json(&r)?,
                Ok(r) => out.line(r.words())?,
                Err(e) => {
                    if e.code == Code::Unknown {
                        unknown += 1;
                    } else {
                        failed += 1;
                    }
                    code.get_or_insert(e.code);
                    if out.json {
                        let v = serde_json::json!({"type": "error", "line": n + 1,
                            "message": e.msg, "code": e.code.exit_status()});
                        out.line(crate::out::event_line(&v))?;
                    } else {
                        crate::out::warn(tool, format!("line {}: {e}", n + 1));
                    }
                }
            }
        }
        let Some(code) = code else {
            return Ok(());
        };
        let of = format!("of {total} message{}", if total == 1 { "" } else { "s" });
        let msg = match (failed, unknown) {
            (f, 0) => format!("{f} {of} failed"),
            (0, u) => format!("{u} {of} may have been delivered (unknown)"),
            (f, u) => format!("{f} {of} failed and {u} may have been delivered (unknown)"),
        };
        Err(Error::new(code, msg))
    }

    fn line(
        &mut self,
        line: &str,
        default_to: Option<&str>,
        priority: Priority,
        reply_to: Option<&str>,
    ) -> Result<SendResult> {
        let no_target = || Error::usage("no target: give TARGET, or JSON lines with \"to\"");
        if !line.trim_start().starts_with('{') {
            let to = default_to.ok_or_else(no_target)?;
            return self.send(to, line.trim_end_matches('\r'), priority, reply_to, None);
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Error::usage(format!("not a JSON object: {e}")))?;
        let s = |k: &str| -> Result<Option<&str>> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(Error::usage(format!("{k:?} must be a string"))),
            }
        };
        let to = s("to")?.or(default_to).ok_or_else(no_target)?;
        let text = s("text")?.ok_or_else(|| Error::usage("the line has no \"text\""))?;
        let priority = match s("priority")? {
            Some(p) => p.parse()?,
            None => priority,
        };
        let reply_to = s("reply_to")?.or(reply_to);
        self.send(to, text, priority, reply_to, s("client_id")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Group, Member, Peer};

    fn kp(seed: u8) -> Keypair {
        Keypair::from_seed(&[seed; 32])
    }

    fn member(name: &str, k: &Keypair, groups: &[&str], online: bool) -> Member {
        Member {
            member_id: format!("m-{name}"),
            pubkey: k.public_hex(),
            display_name: name.into(),
            role: "member".into(),
            groups: groups
                .iter()
                .map(|g| Group {
                    name: (*g).into(),
                    role: None,
                })
                .collect(),
            online,
            ..Member::default()
        }
    }

    fn roster(mesh: &str, me: &Keypair, others: &[(&str, &Keypair, &[&str], bool)]) -> Roster {
        let mut members = vec![member("me", me, &[], true)];
        members.extend(others.iter().map(|(n, k, g, o)| member(n, k, g, *o)));
        Roster {
            mesh: mesh.into(),
            own_member: me.public_hex(),
            own_key: me.public_hex(),
            peers: Vec::new(),
            members,
            online_only: false,
        }
    }

    #[test]
    fn a_name_resolves_to_the_member_key_even_through_a_session() {
        let (me, bob, bob_session) = (kp(1), kp(2), kp(3));
        let mut r = roster("dev", &me, &[("Bob", &bob, &[], true)]);
        r.peers.push(Peer {
            pubkey: bob_session.public_hex(),
            member_pubkey: bob.public_hex(),
            display_name: "bob".into(),
            peer_role: "session".into(),
            ..Peer::default()
        });
        let (i, d) = destination(&Target::parse("BOB").unwrap(), std::slice::from_ref(&r)).unwrap();
        assert_eq!(i, 0);
        assert_eq!(
            d,
            Dest::Dm {
                key: bob.public_hex(),
                name: Some("Bob".into())
            }
        );
        // A prefix of the session key addresses that session.
        let prefix = bob_session.public_hex()[..10].to_string();
        let (_, d) = destination(&Target::parse(&prefix).unwrap(), &[r]).unwrap();
        assert!(matches!(d, Dest::Dm { key, .. } if key == bob_session.public_hex()));
    }

    #[test]
    fn names_across_meshes() {
        let (me, bob, bob2) = (kp(1), kp(2), kp(4));
        let dev = roster("dev", &me, &[("bob", &bob, &[], true)]);
        let ops = roster("ops", &me, &[("carol", &bob2, &[], true)]);
        let (i, _) = destination(&Target::parse("carol").unwrap(), &[dev.clone(), ops]).unwrap();
        assert_eq!(i, 1);
        let ops = roster("ops", &me, &[("bob", &bob2, &[], true)]);
        let e =
            destination(&Target::parse("bob").unwrap(), &[dev.clone(), ops.clone()]).unwrap_err();
        assert_eq!(e.code, Code::Usage);
        assert!(e.msg.contains("pick a mesh with --mesh"), "{}", e.msg);
        let e =
            destination(&Target::parse("bobb").unwrap(), std::slice::from_ref(&dev)).unwrap_err();
        assert_eq!(e.code, Code::NotFound);
        assert!(e.msg.contains(r#"did you mean "bob"?"#), "{}", e.msg);
        let e = destination(&Target::Everyone, &[dev, ops]).unwrap_err();
        assert_eq!(e.code, Code::Usage);
    }

    #[test]
    fn fan_out_and_topics() {
        let (me, a, b) = (kp(1), kp(2), kp(3));
        let r = roster(
            "dev",
            &me,
            &[("a", &a, &["eng/backend"], true), ("b", &b, &[], false)],
        );
        let (_, d) = destination(&Target::Everyone, std::slice::from_ref(&r)).unwrap();
        assert_eq!(
            d,
            Dest::Fanout {
                spec: "*".into(),
                members: vec![a.public_hex(), b.public_hex()],
                offline: 1
            }
        );
        let (_, d) =
            destination(&Target::parse("@eng").unwrap(), std::slice::from_ref(&r)).unwrap();
        assert!(matches!(d, Dest::Fanout { members, .. } if members == [a.public_hex()]));
        let e = destination(&Target::parse("@ops").unwrap(), std::slice::from_ref(&r)).unwrap_err();
        assert_eq!(e.code, Code::NotFound);
        let e = destination(&Target::parse("#deploys").unwrap(), &[r]).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                Code::Generic,
                "topics take 'cm-topic post' or 'cm-send #topic', not this path"
            )
        );
    }

    #[test]
    fn copies_are_sealed_per_member() {
        let (me, a, b) = (kp(1), kp(2), kp(3));
        let dest = Dest::Fanout {
            spec: "*".into(),
            members: vec![a.public_hex(), b.public_hex()],
            offline: 0,
        };
        let o = seal("dev", dest, "hello all", Priority::Next, None, &me).unwrap();
        assert!(o.send.nonce.is_empty() && o.send.ciphertext.is_empty());
        let copies = o.send.copies.unwrap();
        for (c, k) in copies.iter().zip([&a, &b]) {
            assert_eq!(c.to, k.public_hex());
            let plain = crypto::decrypt_dm(&c.nonce, &c.ciphertext, &me.public_hex(), k).unwrap();
            assert_eq!(plain, b"hello all");
        }
        let dm = Dest::Dm {
            key: a.public_hex(),
            name: None,
        };
        assert_eq!(
            seal("dev", dm, "  ", Priority::Next, None, &me)
                .unwrap_err()
                .code,
            Code::Usage
        );
    }

    #[test]
    fn honest_words() {
        let o = Outgoing {
            mesh: "dev".into(),
            to: "ab".repeat(32),
            name: Some("bob".into()),
            fanout: None,
            priority: Priority::Next,
            send: SendMessage::default(),
        };
        let ack = |queued, online| Ack {
            message_id: "m1".into(),
            queued,
            recipient_online: Some(online),
            ..Ack::default()
        };
        let w = |o: &Outgoing, a: Ack| SendResult::from_ack(o, "c1", &a).words();
        assert_eq!(w(&o, ack(false, true)), "sent to bob (online)");
        assert_eq!(w(&o, ack(true, false)), "queued for bob (offline)");
        assert_eq!(
            w(&o, ack(true, true)),
            "queued for bob (online, busy: delivered when idle)"
        );
        let anon = Outgoing {
            name: None,
            ..o.clone()
        };
        assert_eq!(w(&anon, ack(true, false)), "queued for abababab… (offline)");
        let group = Outgoing {
            to: "@eng".into(),
            name: None,
            fanout: Some((3, 1)),
            ..o.clone()
        };
        assert_eq!(
            w(&group, ack(false, true)),
            "sent to 3 members of @eng (1 offline, queued)"
        );
        assert_eq!(
            w(&group, ack(true, false)),
            "queued for 3 members of @eng (none online)"
        );
        let r = SendResult::from_ack(&o, "c1", &ack(true, false));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["type"], "send_result");
        assert_eq!(j["status"], "queued");
        assert_eq!(j["recipient_online"], false);
        assert_eq!(j["message_id"], "m1");
        let f = SendResult::failed(&o, "c1", &Error::not_found("unknown target: x"));
        assert_eq!(f.error().unwrap().code, Code::NotFound);
        assert_eq!(f.words(), "not sent to bob: unknown target: x");
    }
}
