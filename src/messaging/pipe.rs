//! `cm-pipe`: one long-lived [`Session`] driven by JSON Lines. Commands come in on stdin, one object per line;
//! events go out on stdout, one object per line, flushed as they happen.
//!
//! Commands (each may carry an `id`, echoed on its answer):
//!
//! | `cmd` | fields | answer |
//! |---|---|---|
//! | `send` | `to`, `text`, `priority`?, `reply_to`?, `client_id`? | `send_result` once the broker has stored it |
//! | `peers` | `all`? | `peers` |
//! | `members` | | `members` |
//! | `status` | `status`: `idle`, `working` or `dnd` | `ok` |
//! | `summary` | `summary` | `ok` |
//! | `join_group`, `leave_group` | `group`, `role`? | `ok` |
//! | `ping` | | `pong` |
//!
//! Unprompted events: `message` (acknowledged to the broker once its line is written), `peer_joined`,
//! `peer_left`, other broker events as `system` (`task_created`, `task_claimed`, `task_completed`,
//! `task_released`, `context_shared`, ...), `connection` (`connected`, or `disconnected` with
//! `retry_in_ms`), and `error`. A bad line gets an `error` and the pipe carries on.
//!
//! Across a broker restart the session reconnects by itself; sends made meanwhile are kept and sent after the
//! reconnect, names resolve against the last roster seen, and the status, summary and groups set through the
//! pipe are set again. At the end of stdin the pipe waits a few seconds for outstanding sends, then closes; one still
//! unanswered is reported as `unknown` (exit 9) when a connection was up while it waited, since the broker may
//! have stored it, and as not sent otherwise. `client_id` sends again under the id such a report names. SIGTERM
//! and SIGHUP stop it the same way (exit 0), and so does Ctrl-C (exit 130).

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::signal::{self, Signal};

use serde::Serialize;
use serde_json::{Value, json};

use super::roster::{PeerRow, Roster};
use super::send::{self, Outgoing, SendResult};
use crate::client::{Ctx, Event, Session, SessionOpts};
use crate::error::{Code, Error, Result};
use crate::out::Out;
use crate::out::event_line;
use crate::target::Target;
use crate::wire::{Frame, Group, JoinGroup, LeaveGroup, SetStatus, SetSummary, Status};

/// How long the end of stdin waits for the broker to confirm outstanding sends.
const DRAIN: Duration = Duration::from_secs(5);
/// The longest command line.
const MAX_LINE: usize = 1 << 20;

/// The commands, for did-you-mean.
const COMMANDS: &[&str] = &[
    "send",
    "peers",
    "members",
    "status",
    "summary",
    "join_group",
    "leave_group",
    "ping",
];

/// What the pipe waits for: a line of stdin or an event of the session, merged into one channel so the loop
/// blocks on both at once.
enum Input {
    Line(Vec<u8>),
    TooLong,
    End(Option<std::io::Error>),
    Session(Box<Event>),
    /// SIGTERM, SIGHUP or Ctrl-C: stop as at the end of stdin, then exit as the signal says.
    Stop(Signal),
}

fn read_lines(mut input: impl BufRead, tx: mpsc::Sender<Input>) {
    loop {
        let mut buf = Vec::new();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
        match (&mut input).take(limit).read_until(b'\n', &mut buf) {
            Ok(0) => {
                let _ = tx.send(Input::End(None));
                return;
            }
            Ok(_) if buf.len() > MAX_LINE && !buf.ends_with(b"\n") => {
                // Skip the rest of the line.
                loop {
                    buf.clear();
                    match (&mut input).take(limit).read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if buf.ends_with(b"\n") => break,
                        Ok(_) => {}
                    }
                }
                if tx.send(Input::TooLong).is_err() {
                    return;
                }
            }
            Ok(_) => {
                if tx.send(Input::Line(buf)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Input::End(Some(e)));
                return;
            }
        }
    }
}

/// A member in a `members` event.
#[derive(Serialize)]
struct MemberRow<'a> {
    member_id: &'a str,
    name: &'a str,
    pubkey: &'a str,
    role: &'a str,
    groups: &'a [Group],
    online: bool,
    joined_at: &'a str,
    is_self: bool,
}

/// `{"type":"peers",...}`.
#[derive(Serialize)]
struct PeersEvent<'a> {
    r#type: &'static str,
    mesh: &'a str,
    peers: Vec<PeerRow>,
    /// Control-plane presences left out (`"all": true` lists them).
    hidden: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Value>,
}

/// `{"type":"members",...}`.
#[derive(Serialize)]
struct MembersEvent<'a> {
    r#type: &'static str,
    mesh: &'a str,
    members: Vec<MemberRow<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Value>,
}

struct Waiting {
    outgoing: Outgoing,
    id: Option<Value>,
    /// A connection was up while it waited, so the session wrote it: without an ack its outcome is unknown.
    went_out: bool,
}

struct Pipe<'s> {
    session: &'s Session,
    mesh: String,
    own_member: String,
    own_key: String,
    connected: bool,
    last_reason: String,
    roster: Option<Roster>,
    waiting: HashMap<String, Waiting>,
    status: Option<Status>,
    summary: Option<String>,
    groups: Vec<(String, Option<String>)>,
    /// Keys of the encrypted topics whose posts arrive here.
    keys: crate::topics::Keyring,
}

/// Runs `cm-pipe` for `ctx`'s mesh, as a session of its own, until `input` ends.
pub fn run(ctx: &Ctx, input: impl BufRead + Send + 'static, out: &mut Out) -> Result<()> {
    // A pipe is a peer (DESIGN §3) with a session key of its own for as long as it runs; messages to the
    // member's key reach it too. It never takes a launched session's key: that session's cm-mcp holds the
    // socket, and two pushed sockets of one session key would keep replacing each other.
    let session = Some(crate::client::SessionAuth {
        session: crate::crypto::Keypair::generate(),
    });
    let opts = SessionOpts {
        conn: crate::client::ConnOpts {
            pull: false,
            session,
            ..ctx.conn_opts()
        },
        ..SessionOpts::default()
    };
    let (tx, rx) = mpsc::channel();
    // Before the session's threads start, so the signals reach only the thread that waits for them. A stopped
    // pipe still closes its socket cleanly, so peers see it leave at once.
    let stop = tx.clone();
    signal::watch(
        &[Signal::Interrupt, Signal::Terminate, Signal::Hangup],
        move |s| {
            let _ = stop.send(Input::Stop(s));
        },
    )?;
    let events = tx.clone();
    let sink = Box::new(move |e| {
        let _ = events.send(Input::Session(Box::new(e)));
    });
    let session = Session::start_with(&ctx.mesh, opts, sink)?;
    std::thread::Builder::new()
        .name("cm-pipe-stdin".into())
        .spawn(move || read_lines(input, tx))
        .map_err(|e| Error::internal(format!("starting the stdin reader: {e}")))?;
    let mut pipe = Pipe {
        session: &session,
        mesh: ctx.mesh.slug.clone(),
        own_member: ctx.mesh.pubkey.clone(),
        own_key: session.sender().public_hex(),
        connected: false,
        last_reason: String::new(),
        roster: None,
        waiting: HashMap::new(),
        status: None,
        summary: None,
        groups: Vec::new(),
        keys: crate::topics::Keyring::default(),
    };
    let result = pipe.run(&rx, out);
    let result = result.and_then(|stopped| {
        pipe.finish(&rx, out)?;
        stopped.map_or(Ok(()), Signal::outcome)
    });
    drop(pipe);
    session.close();
    result
}

impl Pipe<'_> {
    /// Until stdin ends (`None`) or a signal stops the pipe.
    fn run(&mut self, rx: &mpsc::Receiver<Input>, out: &mut Out) -> Result<Option<Signal>> {
        loop {
            match rx.recv() {
                Ok(Input::Line(bytes)) => match String::from_utf8(bytes) {
                    Ok(line) => self.command(&line, out)?,
                    Err(_) => self.error(out, &Error::usage("the line is not UTF-8"), None)?,
                },
                Ok(Input::TooLong) => {
                    let e = Error::usage(format!("a command line is longer than {MAX_LINE} bytes"));
                    self.error(out, &e, None)?;
                }
                Ok(Input::Session(ev)) if matches!(*ev, Event::Closed) => return Err(self.ended()),
                Ok(Input::Session(ev)) => self.event(*ev, out)?,
                Ok(Input::End(None)) => return Ok(None),
                Ok(Input::Stop(s)) => return Ok(Some(s)),
                Ok(Input::End(Some(e))) => return Err(Error::from(e).context("reading stdin")),
                Err(_) => return Err(self.ended()),
            }
        }
    }

    /// After stdin ends: wait a little for the broker to confirm what was sent.
    fn finish(&mut self, rx: &mpsc::Receiver<Input>, out: &mut Out) -> Result<()> {
        let deadline = Instant::now() + DRAIN;
        while !self.waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(Input::Session(ev)) if matches!(*ev, Event::Closed) => break,
                Ok(Input::Session(ev)) => self.event(*ev, out)?,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if self.waiting.is_empty() {
            return Ok(());
        }
        let n = self.waiting.len();
        let mut unknown = 0;
        for (cmid, w) in std::mem::take(&mut self.waiting) {
            let e = if w.went_out {
                unknown += 1;
                Error::unknown(format!(
                    "unknown: may have been delivered (no answer from the broker before the input ended); \
                     client id {cmid}: send it again with \"client_id\": \"{cmid}\" to have it stored once"
                ))
            } else {
                Error::network("not sent: no connection to the broker before the input ended")
            };
            let mut r = SendResult::failed(&w.outgoing, &cmid, &e);
            r.id = w.id;
            out.json(&r)?;
        }
        let msg = format!(
            "{n} message{} not confirmed by the broker before the input ended",
            if n == 1 { " was" } else { "s were" }
        );
        Err(if unknown > 0 {
            Error::unknown(format!("{msg}; {unknown} may have been delivered"))
        } else {
            Error::network(msg)
        })
    }

    fn ended(&self) -> Error {
        let why = if self.last_reason.is_empty() {
            "the session ended".to_string()
        } else {
            format!("the session ended: {}", self.last_reason)
        };
        Error::network(why)
    }

    fn error(&mut self, out: &mut Out, e: &Error, id: Option<Value>) -> Result<()> {
        let mut v = json!({"type": "error", "message": e.msg, "code": e.code.exit_status()});
        if let Some(id) = id {
            v["id"] = id;
        }
        out.line(event_line(&v))
    }

    fn ok(&mut self, out: &mut Out, cmd: &str, id: Option<Value>, applied: bool) -> Result<()> {
        let mut v = json!({"type": "ok", "cmd": cmd});
        if !applied {
            // Set again once the connection is back.
            v["deferred"] = true.into();
        }
        if let Some(id) = id {
            v["id"] = id;
        }
        out.line(event_line(&v))
    }

    fn event(&mut self, ev: Event, out: &mut Out) -> Result<()> {
        match ev {
            Event::Connected { hello_ack } => {
                self.connected = true;
                for w in self.waiting.values_mut() {
                    w.went_out = true;
                }
                self.reapply();
                out.line(event_line(&json!({"type": "connection", "state": "connected",
                    "mesh": self.mesh, "name": hello_ack.member_display_name, "pubkey": self.own_key})))
            }
            Event::Disconnected { reason, retry_in } => {
                self.connected = false;
                self.last_reason = reason.clone();
                let mut v = json!({"type": "connection", "state": "disconnected", "mesh": self.mesh,
                    "reason": reason});
                if let Some(d) = retry_in {
                    v["retry_in_ms"] = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).into();
                }
                out.line(event_line(&v))
            }
            Event::Message(mut m) => {
                let mut r = self.session;
                self.keys.open(&mut r, self.session.member(), &mut m);
                out.json(&super::inbox::message_json(&m))?;
                out.flush()?;
                self.session.ack(&m.id);
                Ok(())
            }
            Event::System { event, data } => {
                if event == "peer_joined" || event == "peer_left" {
                    out.line(event_line(&json!({"type": event, "mesh": self.mesh,
                        "name": data["name"], "pubkey": data["pubkey"]})))
                } else {
                    out.line(event_line(&json!({"type": "system", "mesh": self.mesh,
                        "event": event, "data": data})))
                }
            }
            Event::Reply(Frame::Error(e)) => {
                let err = crate::client::broker_error(&e.code, &e.message);
                self.error(out, &err, None)
            }
            Event::Reply(_) => Ok(()),
            Event::Acked {
                client_message_id,
                ack,
            } => match self.waiting.remove(&client_message_id) {
                Some(w) => {
                    let mut r = SendResult::from_ack(&w.outgoing, &client_message_id, &ack);
                    r.id = w.id;
                    out.json(&r)
                }
                None => Ok(()),
            },
            Event::Failed {
                client_message_id,
                error,
            } => match self.waiting.remove(&client_message_id) {
                Some(w) => {
                    let mut r = SendResult::failed(&w.outgoing, &client_message_id, &error);
                    r.id = w.id;
                    out.json(&r)
                }
                None => self.error(out, &error, None),
            },
            Event::Closed => Err(self.ended()),
        }
    }

    /// Sets again, on a fresh connection, what was set through the pipe.
    fn reapply(&self) {
        if let Some(s) = self.status {
            self.session.fire(SetStatus {
                status: s,
                ..SetStatus::default()
            });
        }
        if let Some(s) = &self.summary {
            self.session.fire(SetSummary {
                summary: s.clone(),
                ..SetSummary::default()
            });
        }
        for (name, role) in &self.groups {
            self.session.fire(JoinGroup {
                name: name.clone(),
                role: role.clone(),
                ..JoinGroup::default()
            });
        }
    }

    fn command(&mut self, line: &str, out: &mut Out) -> Result<()> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return self.error(out, &Error::usage("a command is a JSON object"), None),
            Err(e) => return self.error(out, &Error::usage(format!("not JSON: {e}")), None),
        };
        let id = v.get("id").cloned();
        let result = match v.get("cmd").and_then(Value::as_str) {
            None => Err(Error::usage(r#"missing "cmd""#)),
            Some("send") => self.send(&v, id.clone()),
            Some("peers") => self.peers(&v, id.clone(), out),
            Some("members") => self.members(id.clone(), out),
            Some("status") => field(&v, "status")
                .and_then(|s| s.parse::<Status>())
                .and_then(|s| {
                    self.status = Some(s);
                    self.apply(SetStatus {
                        status: s,
                        ..SetStatus::default()
                    })
                })
                .and_then(|applied| self.ok(out, "status", id.clone(), applied)),
            Some("summary") => field(&v, "summary")
                .map(str::to_string)
                .and_then(|s| {
                    self.summary = Some(s.clone());
                    self.apply(SetSummary {
                        summary: s,
                        ..SetSummary::default()
                    })
                })
                .and_then(|applied| self.ok(out, "summary", id.clone(), applied)),
            Some("join_group") => self.join_group(&v, id.clone(), out),
            Some("leave_group") => field(&v, "group")
                .map(|g| g.trim_start_matches('@').to_string())
                .and_then(|g| {
                    self.groups.retain(|(n, _)| *n != g);
                    self.apply(LeaveGroup {
                        name: g,
                        ..LeaveGroup::default()
                    })
                })
                .and_then(|applied| self.ok(out, "leave_group", id.clone(), applied)),
            Some("ping") => {
                let mut v = json!({"type": "pong", "connected": self.connected});
                if let Some(id) = id.clone() {
                    v["id"] = id;
                }
                out.line(event_line(&v))
            }
            Some(other) => {
                let hint = match crate::cli::did_you_mean(other, COMMANDS.iter().copied()) {
                    Some(m) => format!(" (did you mean {m:?}?)"),
                    None => format!(" (expected one of {})", COMMANDS.join(", ")),
                };
                Err(Error::usage(format!("unknown cmd {other:?}{hint}")))
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.error(out, &e, id),
        }
    }

    /// Sends a request that answers with `ack`; `false` when not connected (it is set at the next connect).
    fn apply(&self, frame: impl Into<Frame>) -> Result<bool> {
        if !self.connected {
            return Ok(false);
        }
        // Where the broker answers nothing to it (the original), it is sent and taken as set.
        let mut s = self.session;
        crate::client::Requester::post(&mut s, frame.into()).map(|_| true)
    }

    /// The roster to resolve against: a fresh one when connected, else the last one seen.
    fn roster(&mut self) -> Option<&Roster> {
        if self.connected {
            let mut s = self.session;
            if let Ok(r) = Roster::fetch(&mut s, &self.mesh, &self.own_member, &self.own_key) {
                self.roster = Some(r);
            }
        }
        self.roster.as_ref()
    }

    fn send(&mut self, v: &Value, id: Option<Value>) -> Result<()> {
        let to = field(v, "to")?;
        let text = field(v, "text")?;
        let priority = optional(v, "priority")?
            .map(str::parse)
            .transpose()?
            .unwrap_or_default();
        let reply_to = optional(v, "reply_to")?;
        let target = Target::parse(to)?;
        let (mesh, own_member, own_key) = (
            self.mesh.clone(),
            self.own_member.clone(),
            self.own_key.clone(),
        );
        let roster = match self.roster() {
            Some(r) => r.clone(),
            None if matches!(target, Target::Key(_)) => Roster {
                mesh: mesh.clone(),
                own_member,
                own_key,
                peers: Vec::new(),
                members: Vec::new(),
                online_only: false,
            },
            None => {
                return Err(Error::network(format!(
                    "not connected to the broker yet, so {to:?} cannot be looked up; a full key works offline"
                )));
            }
        };
        let (_, dest) = send::destination(&target, std::slice::from_ref(&roster))?;
        let outgoing = send::seal(&mesh, dest, text, priority, reply_to, self.session.sender())?;
        let mut outgoing = outgoing;
        if let Some(c) = optional(v, "client_id")? {
            outgoing.send.client_message_id = Some(c.to_string());
        }
        let cmid = self.session.send(outgoing.send.clone());
        let went_out = self.connected;
        self.waiting.insert(
            cmid,
            Waiting {
                outgoing,
                id,
                went_out,
            },
        );
        Ok(())
    }

    fn fresh_roster(&mut self) -> Result<Roster> {
        if !self.connected {
            return Err(Error::network("not connected to the broker (reconnecting)"));
        }
        let mut s = self.session;
        let r = Roster::fetch(&mut s, &self.mesh, &self.own_member, &self.own_key)?;
        self.roster = Some(r.clone());
        Ok(r)
    }

    fn peers(&mut self, v: &Value, id: Option<Value>, out: &mut Out) -> Result<()> {
        let all = v.get("all").and_then(Value::as_bool).unwrap_or(false);
        let r = self.fresh_roster()?;
        let (rows, hidden) = r.rows(all);
        out.json(&PeersEvent {
            r#type: "peers",
            mesh: &self.mesh,
            peers: rows,
            hidden,
            id,
        })
    }

    fn members(&mut self, id: Option<Value>, out: &mut Out) -> Result<()> {
        if !self.connected {
            return Err(Error::network("not connected to the broker (reconnecting)"));
        }
        let list = super::roster::members(&mut self.session)?;
        let rows: Vec<MemberRow> = list
            .iter()
            .map(|m| MemberRow {
                member_id: &m.member_id,
                name: &m.display_name,
                pubkey: &m.pubkey,
                role: &m.role,
                groups: &m.groups,
                online: m.online,
                joined_at: &m.joined_at,
                is_self: m.pubkey == self.own_member,
            })
            .collect();
        out.json(&MembersEvent {
            r#type: "members",
            mesh: &self.mesh,
            members: rows,
            id,
        })
    }

    fn join_group(&mut self, v: &Value, id: Option<Value>, out: &mut Out) -> Result<()> {
        let name = field(v, "group")?.trim_start_matches('@').to_string();
        if !matches!(Target::parse(&format!("@{name}")), Ok(Target::Group(_))) {
            return Err(Error::usage(format!("invalid group name {name:?}")));
        }
        let role = optional(v, "role")?.map(str::to_string);
        self.groups.retain(|(n, _)| *n != name);
        self.groups.push((name.clone(), role.clone()));
        let applied = self.apply(JoinGroup {
            name,
            role,
            ..JoinGroup::default()
        })?;
        self.ok(out, "join_group", id, applied)
    }
}

/// A required string field of a command.
fn field<'v>(v: &'v Value, name: &str) -> Result<&'v str> {
    match v.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::usage(format!("{name:?} must be a string"))),
        None => Err(Error::usage(format!(
            "{} needs {name:?}",
            v["cmd"].as_str().unwrap_or("the command")
        ))),
    }
}

/// An optional string field; `null` counts as absent.
fn optional<'v>(v: &'v Value, name: &str) -> Result<Option<&'v str>> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::new(
            Code::Usage,
            format!("{name:?} must be a string"),
        )),
    }
}
