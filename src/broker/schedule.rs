//! Scheduled messages and reminders: kept in the store, fired by the hub's timer, each due time exactly once.
//!
//! A schedule holds its body as the client sealed it (a crypto_box to `to`, or one box per recipient in
//! `copies`), so the broker never holds a reminder's text; an original client's plaintext `message` is kept as
//! given and delivered as the original delivers it (base64 body, empty nonce). Firing is a stored send from the
//! scheduling member (and session): one delivery row per recipient, pushed to live connections, queued for the
//! rest, with `subtype` (default `reminder`) and priority `now`.
//!
//! Exactly once: the message rows and the schedule's next fire time (or its end, for a one-shot) are written in
//! the same batch transaction, so a crash either loses both or keeps both. At start every overdue schedule fires
//! once; a cron schedule then goes on from the next match after now, never catching up on what it missed.
//!
//! The timer is [`Handler::next_deadline`](super::net::Handler::next_deadline): the earliest fire time, mapped
//! onto the monotonic clock. A broker started with the test clock serves `POST /debug/clock`, which moves the
//! scheduler's "now" (only the scheduler's: authentication keeps the real time), so a test can reach a cron
//! match without waiting for it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cluster::Event;
use super::grants::Cap;
use super::hub::{Hub, PKey};
use super::log;
use super::net::{ConnId, Io, Request, Response};
use super::routing::{BLOCKED, MAX_MESSAGE_BYTES, Missing};
use super::store::{Message, ScheduleRow, new_id};
use super::topics::Poster;
use crate::cron::{Cron, fmt_offset, parse_offset};
use crate::crypto::{b64, parse_pubkey_hex};
use crate::error::{Error, Result};
use crate::time::now_ms;
use crate::wire::{self, Priority, SealedCopy, codes};

/// Pending scheduled messages one member may have.
const MAX_PER_MEMBER: usize = 1000;
/// Schedules fired per timer call; more wait for the next call, right after.
const FIRE_BATCH: usize = 100;
/// How long to wait before trying again after a fire failed.
const RETRY: Duration = Duration::from_secs(1);

/// The scheduler's timer and clock.
#[derive(Debug)]
pub(super) struct Scheduler {
    /// Added to the real time (test clock only).
    offset_ms: i64,
    /// When the hub next needs its timer; at start, at once, so overdue schedules fire.
    pub(super) deadline: Option<Instant>,
}

impl Scheduler {
    pub(super) fn new() -> Scheduler {
        Scheduler {
            offset_ms: 0,
            deadline: Some(Instant::now()),
        }
    }
}

/// A cron schedule's next fire time after `after`.
fn next_cron(expr: &str, tz: Option<&str>, after: i64) -> Option<i64> {
    let offset = tz.map_or(Ok(0), parse_offset).ok()?;
    Cron::parse(expr).ok()?.next_after(after, offset)
}

fn is_fanout(to: &str) -> bool {
    to == "*" || (to.len() > 1 && to.starts_with('@'))
}

impl Hub {
    /// The scheduler's now: the real time, moved by the test clock.
    pub(super) fn sched_now(&self) -> i64 {
        now_ms().saturating_add(self.sched.offset_ms)
    }

    /// Points the timer at the next due schedule.
    pub(super) fn rearm_schedules(&mut self, now: Instant) {
        self.sched.deadline = match self.store.schedule_next_due() {
            Ok(Some(at)) => {
                let wait = u64::try_from(at.saturating_sub(self.sched_now())).unwrap_or(0);
                Some(now + Duration::from_millis(wait))
            }
            Ok(None) => None,
            Err(e) => {
                log::error("reading the next schedule failed", &[("error", &e)]);
                Some(now + RETRY)
            }
        };
    }

    /// Fires every schedule that is due. Called by the transport's timer.
    pub(super) fn fire_due(&mut self, now: Instant) {
        let at = self.sched_now();
        let due = match self.store.schedules_due(at, FIRE_BATCH) {
            Ok(d) => d,
            Err(e) => {
                log::error("reading due schedules failed", &[("error", &e)]);
                self.sched.deadline = Some(now + RETRY);
                return;
            }
        };
        let mut failed = false;
        for row in &due {
            if let Err(e) = self.fire(row, at, now) {
                log::error(
                    "firing a scheduled message failed",
                    &[("id", &row.id), ("error", &e)],
                );
                failed = true;
            }
        }
        self.rearm_schedules(now);
        // Nothing due to take but something overdue: another broker holds it and is firing it now; its commit
        // tells this one (`Event::Schedules`), and the retry covers a broker that dies first.
        if failed || (due.is_empty() && self.sched.deadline.is_some_and(|d| d <= now)) {
            self.sched.deadline = self.sched.deadline.map(|d| d.max(now + RETRY));
        }
        if !due.is_empty() {
            self.tell(Event::Schedules);
        }
    }

    /// Delivers one due schedule and moves it on, in the batch's transaction: a stored send from the scheduling
    /// member (and session), through the same recipients and fan-out as `send`.
    fn fire(&mut self, row: &ScheduleRow, at: i64, now: Instant) -> Result<()> {
        let sender = match self.store.member(&row.member_id)? {
            Some(m) if m.revoked_at.is_none() => m,
            // The member left or was banned: its schedules end with it.
            _ => {
                self.store.schedule_cancel(&row.id)?;
                return Ok(());
            }
        };
        let next = row
            .cron
            .as_deref()
            .and_then(|c| next_cron(c, row.tz.as_deref(), at));
        let copies: Option<Vec<SealedCopy>> = match row.copies.as_deref().map(serde_json::from_str)
        {
            Some(Ok(c)) => Some(c),
            // Copies this broker wrote and cannot read will not read better in a second: this fire reaches no
            // one, said in the log, and the schedule moves on rather than failing again every second.
            Some(Err(e)) => {
                log::error(
                    "a scheduled message's copies are unreadable",
                    &[("id", &row.id), ("error", &e)],
                );
                Some(Vec::new())
            }
            None => None,
        };
        let deliveries = self
            .recipients(
                &row.mesh_id,
                &sender.id,
                &row.target_spec,
                copies.as_deref(),
                Missing::Skip,
            )
            .map_err(Error::internal)?;
        if !deliveries.is_empty() {
            let (nonce, ciphertext) = match &row.message {
                Some(text) => (String::new(), b64::encode(text.as_bytes())),
                None => (row.nonce.clone(), row.ciphertext.clone()),
            };
            let name = match &row.session_pubkey {
                Some(sp) => self
                    .store
                    .session(&row.mesh_id, sp)?
                    .and_then(|s| s.display_name)
                    .unwrap_or_else(|| sender.display_name.clone()),
                None => sender.display_name.clone(),
            };
            let poster = Poster {
                mesh_id: row.mesh_id.clone(),
                member_id: sender.id,
                member_pubkey: sender.pubkey,
                session_pubkey: row.session_pubkey.clone(),
                name,
            };
            let message = Message {
                id: new_id(),
                mesh_id: poster.mesh_id.clone(),
                sender_member_id: poster.member_id.clone(),
                sender_session_pubkey: poster.session_pubkey.clone(),
                target_spec: row.target_spec.clone(),
                priority: Priority::Now,
                nonce,
                ciphertext,
                client_message_id: None,
                subtype: Some(row.subtype.clone().unwrap_or_else(|| "reminder".into())),
                reply_to_id: None,
                body_version: None,
                created_at: now_ms(),
            };
            // No socket to leave out: a reminder to one's own session reaches it.
            self.store_and_fan_out(&poster, &message, deliveries, None, now)?;
        }
        self.store.schedule_fired(&row.id, next, at)?;
        log::info(
            "firing a scheduled message",
            &[("id", &row.id), ("mesh", &row.mesh_id)],
        );
        Ok(())
    }

    pub(super) fn on_schedule(&mut self, conn: ConnId, pk: PKey, s: wire::Schedule, now: Instant) {
        let req = s.req_id.as_deref();
        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let (mesh, member, session) = (
            p.mesh_id.clone(),
            p.member_id.clone(),
            p.session_pubkey.clone(),
        );
        let invalid = |h: &mut Hub, msg: String| h.error(conn, codes::INVALID_ARGS, msg, req);
        let to = s.to.trim();
        let to = if to == "@all" { "*" } else { to };
        if to.starts_with('#') {
            return invalid(
                self,
                "scheduling a message to a topic is not supported".into(),
            );
        }
        if !is_fanout(to) && parse_pubkey_hex(to).is_err() {
            return invalid(
                self,
                format!("\"to\" must be a 64-hex key, * or @group, not {to:?}"),
            );
        }
        let copies = s.copies.filter(|c| !c.is_empty());
        let sealed = !s.nonce.is_empty() && !s.ciphertext.is_empty();
        if copies.is_none() && !sealed && s.message.is_empty() {
            return invalid(
                self,
                "nothing to deliver: give nonce and ciphertext, copies, or message".into(),
            );
        }
        if is_fanout(to) && copies.is_none() && s.message.is_empty() {
            return invalid(
                self,
                format!("a message to {to} is sealed per member: give copies"),
            );
        }
        let size = to.len()
            + s.message.len()
            + s.nonce.len()
            + s.ciphertext.len()
            + copies
                .iter()
                .flatten()
                .map(|c| c.to.len() + c.nonce.len() + c.ciphertext.len())
                .sum::<usize>();
        if size > MAX_MESSAGE_BYTES {
            return self.error(
                conn,
                codes::PAYLOAD_TOO_LARGE,
                format!(
                    "a scheduled message is at most {MAX_MESSAGE_BYTES} bytes, this one is {size}"
                ),
                req,
            );
        }
        let keys = copies
            .iter()
            .flatten()
            .map(|c| c.to.as_str())
            .chain((!is_fanout(to)).then_some(to));
        for key in keys {
            match self.recipient_of(&mesh, key) {
                // Refused now like the DM it would become, rather than accepted and dropped when it fires.
                Ok(Some((to_member, _)))
                    if !is_fanout(to) && !self.grants.allows(&to_member, &member, Cap::Dm) =>
                {
                    return self.error(conn, codes::FORBIDDEN, BLOCKED, req);
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    let short = key.get(..16).unwrap_or(key);
                    return self.error(
                        conn,
                        "not_member",
                        format!("{short} is not a member or session of this mesh"),
                        req,
                    );
                }
                Err(e) => return self.store_error(conn, &e, req),
            }
        }
        let at = self.sched_now();
        let cron = s.cron.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let (cron, tz, first) = match cron {
            Some(expr) => {
                let parsed = match Cron::parse(expr) {
                    Ok(c) => c,
                    Err(e) => return self.error(conn, codes::INVALID_CRON, e.msg, req),
                };
                let offset = match s.tz.as_deref().map(parse_offset).transpose() {
                    Ok(o) => o,
                    Err(e) => return invalid(self, e.msg),
                };
                let Some(first) = parsed.next_after(at, offset.unwrap_or(0)) else {
                    return self.error(
                        conn,
                        codes::INVALID_CRON,
                        format!("cron expression {expr:?} never matches"),
                        req,
                    );
                };
                (Some(parsed.to_string()), offset.map(fmt_offset), first)
            }
            None if s.deliver_at <= 0 => {
                return invalid(
                    self,
                    "deliverAt (ms since the epoch) or cron is required".into(),
                );
            }
            // A time in the past fires at once.
            None => (None, None, s.deliver_at),
        };
        match self.store.schedules_of(&mesh, &member) {
            Ok(v) if v.len() >= MAX_PER_MEMBER => {
                return self.error(
                    conn,
                    codes::RATE_LIMITED,
                    format!("at most {MAX_PER_MEMBER} pending scheduled messages per member"),
                    req,
                );
            }
            Ok(_) => {}
            Err(e) => return self.store_error(conn, &e, req),
        }
        let row = ScheduleRow {
            id: new_id(),
            mesh_id: mesh,
            member_id: member,
            session_pubkey: session,
            target_spec: to.to_string(),
            nonce: s.nonce,
            ciphertext: s.ciphertext,
            copies: copies.map(|c| serde_json::to_string(&c).unwrap_or_else(|_| "[]".into())),
            message: Some(s.message).filter(|m| !m.is_empty()),
            subtype: Some(s.subtype.unwrap_or_else(|| "reminder".into())),
            cron: cron.clone(),
            tz,
            next_fire_at: Some(first),
            fired_count: 0,
            created_at: now_ms(),
        };
        if let Err(e) = self.store.schedule_insert(&row) {
            return self.store_error(conn, &e, req);
        }
        self.tell(Event::Schedules);
        let ack = wire::ScheduledAck {
            scheduled_id: row.id,
            deliver_at: first,
            cron,
            req_id: s.req_id.clone(),
        };
        self.reply_durable(conn, ack, Hub::durable_failure(req));
        self.rearm_schedules(now);
    }

    pub(super) fn on_list_scheduled(&mut self, conn: ConnId, pk: PKey, req_id: Option<&str>) {
        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let (mesh, member, member_pubkey) = (
            p.mesh_id.clone(),
            p.member_id.clone(),
            p.member_pubkey.clone(),
        );
        let rows = match self.store.schedules_of(&mesh, &member) {
            Ok(r) => r,
            Err(e) => return self.store_error(conn, &e, req_id),
        };
        let messages = rows
            .into_iter()
            .map(|r| wire::ScheduledEntry {
                fired_count: r
                    .cron
                    .as_ref()
                    .map(|_| u32::try_from(r.fired_count).unwrap_or(u32::MAX)),
                copies: r
                    .copies
                    .as_deref()
                    .and_then(|c| serde_json::from_str(c).ok()),
                sender_pubkey: Some(r.session_pubkey.unwrap_or_else(|| member_pubkey.clone())),
                id: r.id,
                to: r.target_spec,
                message: r.message.unwrap_or_default(),
                deliver_at: r.next_fire_at.unwrap_or_default(),
                created_at: r.created_at,
                cron: r.cron,
                tz: r.tz,
                subtype: r.subtype,
                nonce: r.nonce,
                ciphertext: r.ciphertext,
            })
            .collect();
        self.reply(
            conn,
            wire::ScheduledList {
                messages,
                req_id: req_id.map(str::to_string),
            },
        );
    }

    pub(super) fn on_cancel_scheduled(
        &mut self,
        conn: ConnId,
        pk: PKey,
        c: wire::CancelScheduled,
        now: Instant,
    ) {
        let req = c.req_id.as_deref();
        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let (mesh, member) = (p.mesh_id.clone(), p.member_id.clone());
        let id = c.scheduled_id.trim();
        if id.is_empty() {
            return self.error(conn, codes::INVALID_ARGS, "scheduledId is required", req);
        }
        let rows = match self.store.schedules_of(&mesh, &member) {
            Ok(r) => r,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let found: Vec<&ScheduleRow> = match rows.iter().find(|r| r.id == id) {
            Some(exact) => vec![exact],
            None => rows.iter().filter(|r| r.id.starts_with(id)).collect(),
        };
        let full = match found.as_slice() {
            [one] => one.id.clone(),
            [] => {
                let ack = wire::CancelScheduledAck {
                    scheduled_id: id.to_string(),
                    ok: false,
                    req_id: c.req_id.clone(),
                };
                return self.reply(conn, ack);
            }
            _ => {
                return self.error(
                    conn,
                    codes::AMBIGUOUS_PREFIX,
                    format!("{id:?} starts more than one scheduled message's id"),
                    req,
                );
            }
        };
        let ok = match self.store.schedule_cancel(&full) {
            Ok(ok) => ok,
            Err(e) => return self.store_error(conn, &e, req),
        };
        self.tell(Event::Schedules);
        let ack = wire::CancelScheduledAck {
            scheduled_id: full,
            ok,
            req_id: c.req_id.clone(),
        };
        self.reply_durable(conn, ack, Hub::durable_failure(req));
        self.rearm_schedules(now);
    }

    /// `POST /debug/clock {"nowMs"}` or `{"offsetMs"}`: moves the scheduler's clock (test clock only).
    pub(super) fn debug_clock(&mut self, io: &mut Io, req: &Request) -> Response {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let offset = match (body.get("nowMs"), body.get("offsetMs")) {
            (Some(t), _) => t.as_i64().map(|t| t - now_ms()),
            (None, Some(o)) => o.as_i64(),
            (None, None) => None,
        };
        let Some(offset) = offset else {
            return Response::json(
                400,
                &json!({"ok": false, "error": "give nowMs or offsetMs (integers)"}),
            );
        };
        self.sched.offset_ms = offset;
        log::warn("test clock moved", &[("offset_ms", &offset)]);
        self.rearm_schedules(io.now());
        Response::json(
            200,
            &json!({"ok": true, "nowMs": self.sched_now(), "offsetMs": offset}),
        )
    }
}
