//! Messages: `send` and its recipients, delivery rows pushed under a lease until `client_ack`, priority gating,
//! `inbox_fetch` (with waiting) and `message_status`.
//!
//! Every stored message has one delivery row per recipient (a member, meaning all its connections, or one
//! session). A row is pushed to each eligible live connection once, again to every connection that (re)connects,
//! and again when its lease runs out, until a connection of the recipient member acknowledges it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::grants::Cap;
use super::hub::{Hub, IfLost, PKey, RateLimit, groups_of, in_group};
use super::log;
use super::net::ConnId;
use super::store::{Message, NewDelivery, Pending, new_id};
use super::topics::Poster;
use crate::error::Result;
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, Frame, Priority, SealedCopy, Status, codes};

/// The refusal of a direct message its recipient does not take from the sender, in the original broker's words
/// (its clients match them): the same for a block and a missing `dm` grant, so it does not say which.
pub(super) const BLOCKED: &str = "blocked by recipient grants (sender lacks dm capability)";
/// The longest wait between redeliveries of an unacknowledged push.
pub const MAX_LEASE: Duration = Duration::from_secs(600);
/// The largest `send` payload (ciphertexts, nonces and target), as the original counts it.
pub const MAX_MESSAGE_BYTES: usize = 65_536;
/// The longest an `inbox_fetch` may wait.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// How much of a backlog one drain pushes, in deliveries and in bytes. A member that returns to ten thousand
/// messages gets them a window at a time, the next as the last is acknowledged: all at once they would pass the
/// transport's per-connection output limit, which drops the connection, at every reconnect.
const DRAIN_WINDOW: usize = 1000;
const DRAIN_BYTES: usize = 2 << 20;

#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub(super) due: Instant,
    pub(super) attempts: u32,
    /// About what the push weighs on the wire, for the drain window.
    pub(super) bytes: usize,
}

/// About what a push of `d` weighs on the wire: its body and some 500 bytes of keys, ids and names.
fn weight(d: &Pending) -> usize {
    d.message.ciphertext.len() + d.message.nonce.len() + 512
}

/// An `inbox_fetch` waiting for a delivery.
#[derive(Debug, Clone)]
pub(super) struct Waiter {
    pub(super) pk: PKey,
    pub(super) req_id: Option<String>,
    pub(super) deadline: Instant,
    pub(super) limit: usize,
    pub(super) session: Option<String>,
}

/// `now` on the wall clock, in ms: the brokers' shared clock, moved as far as `now` is from the present (a test
/// that moves the hub's clock moves this one with it).
fn wall_ms(now: Instant) -> i64 {
    let present = Instant::now();
    let ahead = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if now >= present {
        crate::time::now_ms().saturating_add(ahead(now - present))
    } else {
        crate::time::now_ms().saturating_sub(ahead(present - now))
    }
}

/// How long tokens leased from a shared bucket stay spendable here: long enough to spend a lease, short enough
/// that tokens left on one broker do not add to a burst taken on another.
pub(super) const LEASE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    pub(super) tokens: f64,
    pub(super) last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(super) fn new(rl: RateLimit, now: Instant) -> Bucket {
        Bucket {
            tokens: rl.burst,
            last: now,
        }
    }

    /// Takes a token, or says how long until there is one.
    pub(super) fn take(&mut self, rl: RateLimit, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rl.per_second).min(rl.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rl.per_second))
        }
    }
}

/// Whether a presence with `status` gets a `priority` message pushed now.
fn deliverable(status: Status, priority: Priority) -> bool {
    match priority {
        Priority::Now => true,
        Priority::Next => status == Status::Idle,
        Priority::Low => false,
    }
}

fn short(key: &str) -> &str {
    key.get(..16).unwrap_or(key)
}

/// A delivery as the `push` a client gets, with the priority it is delivered with ([`Hub::priority_of`]): the
/// one place a stored message becomes a wire frame.
fn push_of(d: &Pending, priority: Priority) -> wire::Push {
    let m = &d.message;
    // A webhook's message names the webhook (`webhook:<name>`, kept as its sender key) and not its maker.
    let webhook = (m.subtype.as_deref() == Some("webhook"))
        .then(|| m.sender_session_pubkey.clone())
        .flatten();
    wire::Push {
        message_id: m.id.clone(),
        mesh_id: m.mesh_id.clone(),
        sender_pubkey: m
            .sender_session_pubkey
            .clone()
            .unwrap_or_else(|| d.sender_member_pubkey.clone()),
        sender_member_pubkey: Some(d.sender_member_pubkey.clone()),
        sender_member_id: Some(m.sender_member_id.clone()),
        sender_name: Some(webhook.clone().unwrap_or_else(|| d.sender_name.clone())),
        target_spec: Some(m.target_spec.clone()),
        priority,
        nonce: m.nonce.clone(),
        ciphertext: m.ciphertext.clone(),
        created_at: fmt_rfc3339(m.created_at),
        client_message_id: m.client_message_id.clone(),
        subtype: m.subtype.clone(),
        reply_to_id: m.reply_to_id.clone(),
        body_version: m.body_version,
        event: webhook.and_then(|w| w.strip_prefix("webhook:").map(str::to_string)),
        ..wire::Push::default()
    }
}

/// What a recipient that is not (or no longer) a member or session of the mesh does to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Missing {
    /// The whole message is refused: a `send` names its recipients now, so a wrong one is the sender's mistake.
    Refuse,
    /// The others still get theirs: a schedule's recipients were checked when it was made, and may have left since.
    Skip,
}

/// Who a stored message reached at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Reached {
    /// A connection got it: pushed, or as the answer to its waiting `inbox_fetch`.
    pub(super) pushed: bool,
    /// A recipient has a live connection that takes pushes.
    pub(super) online: bool,
}

impl Hub {
    /// Pushes a delivery to a presence and starts its lease.
    pub(super) fn push_to(&mut self, pk: PKey, d: &Pending, now: Instant, if_lost: IfLost) {
        let lease = self.cfg.lease;
        let Some(p) = self.presences.get_mut(&pk) else {
            return;
        };
        let Some(conn) = p.conn else { return };
        p.inflight.insert(
            d.delivery_id,
            Lease {
                due: now + lease,
                attempts: 0,
                bytes: weight(d),
            },
        );
        if matches!(if_lost, IfLost::Drop) {
            self.batch_leases.push((pk, d.delivery_id));
        }
        self.metrics.messages_out += 1;
        let push = push_of(d, self.priority_of(d));
        self.emit(conn, Frame::Push(push), if_lost);
    }

    /// Pushes the pending deliveries the presence may get now and does not hold yet, oldest first, up to a
    /// window ([`DRAIN_WINDOW`]); the rest follow from [`Hub::on_client_ack`].
    pub(super) fn drain(&mut self, pk: PKey, now: Instant) {
        let Some(p) = self.presences.get(&pk).filter(|p| p.pushable()) else {
            return;
        };
        let (member, session, status) = (p.member_id.clone(), p.session_pubkey.clone(), p.status);
        let mut room = DRAIN_WINDOW.saturating_sub(p.inflight.len());
        let mut bytes = p.inflight.values().map(|l| l.bytes).sum::<usize>();
        let held = |hub: &Hub, d: &Pending| {
            hub.presences
                .get(&pk)
                .is_some_and(|p| p.inflight.contains_key(&d.delivery_id))
        };
        // The oldest rows are the held ones, then the window: read those, not the whole backlog, unless they are
        // all held or not pushable now (a pile of `low` ones), when only the whole backlog can tell.
        let limit = p.inflight.len() + 2 * DRAIN_WINDOW;
        let read = |hub: &Hub, limit| hub.store.pending(&member, session.as_deref(), limit);
        let mut pending = match read(self, limit) {
            Ok(x) => x,
            Err(e) => return log::error("reading pending deliveries failed", &[("error", &e)]),
        };
        if pending.len() == limit
            && pending
                .iter()
                .all(|d| held(self, d) || !deliverable(status, self.priority_of(d)))
        {
            pending = match read(self, usize::MAX) {
                Ok(x) => x,
                Err(e) => return log::error("reading pending deliveries failed", &[("error", &e)]),
            };
        }
        let mut more = pending.len() == limit;
        for d in pending {
            if held(self, &d) || !deliverable(status, self.priority_of(&d)) {
                continue;
            }
            if room == 0 || bytes >= DRAIN_BYTES {
                more = true;
                break;
            }
            bytes += weight(&d);
            room -= 1;
            self.push_to(pk, &d, now, IfLost::Send);
        }
        if let Some(p) = self.presences.get_mut(&pk) {
            p.backlog = more;
        }
    }

    /// The presences a delivery reaches: the recipient member's connections (or the one session's), except
    /// the socket it came from, in connection order.
    pub(super) fn reached_by(&self, d: &Pending, from: Option<ConnId>) -> Vec<PKey> {
        self.by_member
            .get(&d.recipient_member_id)
            .into_iter()
            .flatten()
            .copied()
            .filter(|pk| {
                self.presences.get(pk).is_some_and(|p| {
                    p.conn.is_some()
                        && p.conn != from
                        && (d.recipient_session_pubkey.is_none()
                            || p.session_pubkey == d.recipient_session_pubkey)
                })
            })
            .collect()
    }

    /// Answers the `inbox_fetch` waiting on `conn` with what is pending now.
    /// With `durable`, the answer reports a delivery of this batch: if the batch is lost, an empty inbox goes
    /// out instead, so the client still gets its answer.
    pub(super) fn answer_waiter(&mut self, conn: ConnId, durable: bool) {
        let Some(w) = self.waiters.remove(&conn) else {
            return;
        };
        let Some(p) = self.presences.get(&w.pk) else {
            return;
        };
        let messages = match self
            .store
            .pending(&p.member_id, w.session.as_deref(), w.limit)
        {
            Ok(x) => x.iter().map(|d| push_of(d, self.priority_of(d))).collect(),
            Err(e) => return self.store_error(conn, &e, w.req_id.as_deref()),
        };
        let if_lost = if durable {
            let empty = wire::Inbox {
                messages: Vec::new(),
                req_id: w.req_id.clone(),
            };
            IfLost::Instead(Box::new(Frame::Inbox(empty)))
        } else {
            IfLost::Send
        };
        let frame = Frame::Inbox(wire::Inbox {
            messages,
            req_id: w.req_id,
        });
        self.emit(conn, frame, if_lost);
    }

    fn refuse_send(&mut self, conn: ConnId, id: &str, error: String) {
        let code = error.split(':').next().unwrap_or("send").replace(' ', "_");
        self.count_error(&code);
        log::warn(
            "send refused",
            &[("conn", &conn), ("code", &code), ("reason", &error)],
        );
        self.reply(conn, wire::Ack::refused(id, error));
    }

    /// Takes a token from the bucket of `member_id` (a member, `webhook:<id>` or `key:<id>`), or says how long
    /// until there is one.
    ///
    /// With other brokers on the store the bucket is the store's, so the limit holds wherever the sends go: this
    /// broker takes a lease of a few tokens at a time (a tenth of a second's worth) and spends it for at most
    /// [`LEASE`], so a busy sender costs the database a statement per lease, not per send.
    pub(super) fn take_token(&mut self, member_id: &str, now: Instant) -> Result<(), Duration> {
        let Some(rl) = self.cfg.rate_limit else {
            return Ok(());
        };
        if self.cluster.is_none() {
            return self
                .buckets
                .entry(member_id.to_string())
                .or_insert_with(|| Bucket::new(rl, now))
                .take(rl, now);
        }
        let lease = self.buckets.entry(member_id.to_string()).or_insert(Bucket {
            tokens: 0.0,
            last: now,
        });
        if lease.tokens >= 1.0 && now.saturating_duration_since(lease.last) < LEASE {
            lease.tokens -= 1.0;
            return Ok(());
        }
        let chunk = (rl.per_second / 10.0).floor().clamp(1.0, rl.burst.max(1.0)) as u32;
        match self
            .store
            .take_tokens(member_id, chunk, rl.per_second, rl.burst, wall_ms(now))
        {
            Ok((0, wait_ms)) => Err(Duration::from_millis(wait_ms)),
            Ok((granted, _)) => {
                *lease = Bucket {
                    tokens: f64::from(granted) - 1.0,
                    last: now,
                };
                Ok(())
            }
            // A database that fails here fails the send's own writes too; the limit lets it through rather than
            // refuse it for a fault of the broker's.
            Err(e) => {
                log::error("taking from a shared rate limit failed", &[("error", &e)]);
                Ok(())
            }
        }
    }

    /// A key of the mesh as a recipient: a member (all its connections) or a session of a member.
    pub(super) fn recipient_of(
        &self,
        mesh_id: &str,
        key: &str,
    ) -> Result<Option<(String, Option<String>)>> {
        if let Some(member) = self
            .by_member_key
            .get(&(mesh_id.to_string(), key.to_string()))
        {
            return Ok(Some((member.clone(), None)));
        }
        if let Some(m) = self.store.member_by_pubkey(mesh_id, key)? {
            return Ok(m.revoked_at.is_none().then_some((m.id, None)));
        }
        if let Some(p) = self
            .by_session
            .get(&(mesh_id.to_string(), key.to_string()))
            .and_then(|pk| self.presences.get(pk))
        {
            return Ok(Some((p.member_id.clone(), Some(key.to_string()))));
        }
        if let Some(s) = self.store.session(mesh_id, key)? {
            let live = self
                .store
                .member(&s.member_id)?
                .is_some_and(|m| m.revoked_at.is_none());
            return Ok(live.then_some((s.member_id, Some(key.to_string()))));
        }
        Ok(None)
    }

    /// Who a message of `sender_member_id` to `target` reaches, as delivery rows: the sealed `copies`'
    /// recipients, the key's member or session, or (an original client's unsealed broadcast) every other member
    /// in the target, stored for the offline ones. `Err` is the refusal for the `ack`.
    /// Used by `send` and by fired schedules alike, so a reminder reaches whom the same `send` would.
    pub(super) fn recipients(
        &self,
        mesh_id: &str,
        sender_member_id: &str,
        target: &str,
        copies: Option<&[SealedCopy]>,
        missing: Missing,
    ) -> std::result::Result<Vec<NewDelivery>, String> {
        let internal = |e: crate::error::Error| format!("internal: {e}");
        // A key is a direct message; `*` and `@group` are broadcasts, whose copies skip whoever refuses them.
        let direct = crate::crypto::parse_pubkey_hex(target).is_ok();
        let refuses = |member: &str, cap| !self.grants.allows(member, sender_member_id, cap);
        if let Some(copies) = copies {
            // A member with a presence is a member in good standing (a revocation ends its presences), so the
            // mesh's presences answer for most copies of a broadcast without a query each.
            let present: HashMap<&str, &str> = if copies.len() > 1 {
                self.mesh_keys(mesh_id)
                    .iter()
                    .filter_map(|pk| self.presences.get(pk))
                    .map(|q| (q.member_pubkey.as_str(), q.member_id.as_str()))
                    .collect()
            } else {
                HashMap::new()
            };
            let mut out = Vec::with_capacity(copies.len());
            for c in copies {
                let found = match present.get(c.to.as_str()) {
                    Some(member) => Some((member.to_string(), None)),
                    None => self.recipient_of(mesh_id, &c.to).map_err(internal)?,
                };
                let Some((member, session)) = found else {
                    if missing == Missing::Skip {
                        continue;
                    }
                    return Err(format!(
                        "not_member: {} is not a member or session of this mesh",
                        short(&c.to)
                    ));
                };
                if direct && refuses(&member, Cap::Dm) {
                    if missing == Missing::Skip {
                        continue;
                    }
                    return Err(BLOCKED.to_string());
                }
                if !direct && refuses(&member, Cap::Broadcast) {
                    continue;
                }
                out.push(NewDelivery {
                    recipient_member_id: member,
                    recipient_session_pubkey: session,
                    nonce: Some(c.nonce.clone()),
                    ciphertext: Some(c.ciphertext.clone()),
                });
            }
            return Ok(out);
        }
        let group = match target {
            "*" | "@all" => None,
            t if t.len() > 1 && t.starts_with('@') => Some(&t[1..]),
            t if crate::crypto::parse_pubkey_hex(t).is_ok() => {
                return match self.recipient_of(mesh_id, t).map_err(internal)? {
                    Some((member, _)) if refuses(&member, Cap::Dm) => match missing {
                        Missing::Skip => Ok(Vec::new()),
                        Missing::Refuse => Err(BLOCKED.to_string()),
                    },
                    Some((member, session)) => Ok(vec![NewDelivery {
                        recipient_member_id: member,
                        recipient_session_pubkey: session,
                        nonce: None,
                        ciphertext: None,
                    }]),
                    None if missing == Missing::Skip => Ok(Vec::new()),
                    None => Err(format!(
                        "unknown target: no member or session {} in this mesh",
                        short(t)
                    )),
                };
            }
            t => {
                return Err(format!(
                    "unknown target: {t:?} is not a key, *, @group or #topic"
                ));
            }
        };
        // Members reached only through hidden presences are skipped, as the original skips hidden peers.
        let members = self.store.members(mesh_id).map_err(internal)?;
        // The members' presences on other brokers count as theirs here do: (visible, groups) of each.
        let mut elsewhere: HashMap<String, Vec<(bool, Vec<wire::Group>)>> = HashMap::new();
        for r in self.elsewhere(mesh_id).into_iter().filter(|r| !r.pull) {
            elsewhere
                .entry(r.member_id)
                .or_default()
                .push((r.visible, groups_of(&r.groups)));
        }
        let mut out = Vec::new();
        for m in members
            .into_iter()
            .filter(|m| m.revoked_at.is_none() && m.id != sender_member_id)
            .filter(|m| !refuses(&m.id, Cap::Broadcast))
        {
            let live: Vec<(bool, &[wire::Group])> = self
                .by_member
                .get(&m.id)
                .into_iter()
                .flatten()
                .filter_map(|pk| self.presences.get(pk))
                .filter(|q| !q.pull)
                .map(|q| (q.visible, q.groups.as_slice()))
                .chain(
                    elsewhere
                        .get(&m.id)
                        .into_iter()
                        .flatten()
                        .map(|(v, g)| (*v, g.as_slice())),
                )
                .collect();
            if !live.is_empty() && live.iter().all(|(visible, _)| !visible) {
                continue;
            }
            let matches = match group {
                None => true,
                Some(g) => {
                    in_group(&groups_of(&m.groups), g)
                        || live.iter().any(|(_, groups)| in_group(groups, g))
                }
            };
            if matches {
                out.push(NewDelivery {
                    recipient_member_id: m.id,
                    recipient_session_pubkey: None,
                    nonce: None,
                    ciphertext: None,
                });
            }
        }
        Ok(out)
    }

    /// Stores `message` from `sender` with one delivery row per recipient, then hands each delivery to the
    /// recipient's live connections but `from` (the socket it came from): as the answer to a waiting
    /// `inbox_fetch`, else as a push if its priority passes the presence's status. What is not pushed waits for
    /// the next drain. The one path from a stored message to its recipients, for `send` and fired schedules.
    pub(super) fn store_and_fan_out(
        &mut self,
        sender: &Poster,
        message: &Message,
        deliveries: Vec<NewDelivery>,
        from: Option<ConnId>,
        now: Instant,
    ) -> Result<Reached> {
        let ids = self.store.insert_message(message, &deliveries)?;
        self.tell_deliveries(&ids);
        let mut reached = Reached::default();
        for (d, delivery_id) in deliveries.into_iter().zip(ids) {
            let mut copy = message.clone();
            if let Some(nonce) = d.nonce {
                copy.nonce = nonce;
            }
            if let Some(ciphertext) = d.ciphertext {
                copy.ciphertext = ciphertext;
            }
            let pending = Pending {
                delivery_id,
                recipient_member_id: d.recipient_member_id,
                recipient_session_pubkey: d.recipient_session_pubkey,
                sender_member_pubkey: sender.member_pubkey.clone(),
                sender_name: sender.name.clone(),
                message: copy,
            };
            let r = self.hand_out(&pending, from, now, IfLost::Drop);
            reached.online |= r.online;
            reached.pushed |= r.pushed;
        }
        Ok(reached)
    }

    /// What a message reached, counting the recipients' presences on other brokers when none here took it: those
    /// brokers push it as soon as this batch commits.
    fn reached_elsewhere(&self, mesh_id: &str, recipients: &[String], here: Reached) -> Reached {
        if here.pushed || self.cluster.is_none() || recipients.is_empty() {
            return here;
        }
        let there = self
            .elsewhere(mesh_id)
            .iter()
            .any(|r| !r.pull && recipients.contains(&r.member_id));
        Reached {
            pushed: there,
            online: here.online || there,
        }
    }

    /// Hands a stored delivery to the recipient's live connections here but `from`: as the answer to a waiting
    /// `inbox_fetch`, else as a push if its priority passes the presence's status, unless it holds it already.
    pub(super) fn hand_out(
        &mut self,
        pending: &Pending,
        from: Option<ConnId>,
        now: Instant,
        if_lost: IfLost,
    ) -> Reached {
        let mut reached = Reached::default();
        for target in self.reached_by(pending, from) {
            let Some(p) = self.presences.get(&target) else {
                continue;
            };
            let (status, pull, target_conn) = (p.status, p.pull, p.conn);
            reached.online |= !pull;
            if p.inflight.contains_key(&pending.delivery_id) {
                continue;
            }
            // A connection waiting in inbox_fetch gets it as the answer; a pull one gets nothing else.
            if let Some(c) =
                target_conn.filter(|c| self.waiters.get(c).is_some_and(|w| w.pk == target))
            {
                self.answer_waiter(c, matches!(if_lost, IfLost::Drop));
                reached.pushed = true;
            } else if !pull && deliverable(status, self.priority_of(pending)) {
                self.push_to(target, pending, now, if_lost.clone());
                reached.pushed = true;
            }
        }
        reached
    }

    pub(super) fn on_send(&mut self, conn: ConnId, pk: PKey, s: wire::SendMessage, now: Instant) {
        self.metrics.messages_in += 1;
        let Some(sender) = self.presences.get(&pk).map(Poster::of) else {
            return;
        };
        if let Err(wait) = self.take_token(&sender.member_id, now) {
            let rl = self.cfg.rate_limit.unwrap_or(RateLimit {
                per_second: 0.0,
                burst: 0.0,
            });
            let msg = format!(
                "rate_limit: max {} msg/min (burst {}) — slow down",
                rl.per_second * 60.0,
                rl.burst
            );
            self.count_error("rate_limit");
            let mut ack = wire::Ack::refused(&s.id, msg);
            // Rounded up, so a client that waits exactly this long finds its token.
            ack.retry_after_ms = Some((wait.as_micros().div_ceil(1000) as u64).max(1));
            return self.reply(conn, ack);
        }
        let size = s.ciphertext.len()
            + s.nonce.len()
            + s.target_spec.len()
            + s.copies
                .iter()
                .flatten()
                .map(|c| c.to.len() + c.nonce.len() + c.ciphertext.len())
                .sum::<usize>();
        if size > MAX_MESSAGE_BYTES {
            let msg =
                format!("payload too large: {size} bytes > MAX_MESSAGE_BYTES={MAX_MESSAGE_BYTES}");
            return self.refuse_send(conn, &s.id, msg);
        }
        if s.target_spec.starts_with('#') {
            return self.on_topic_send(conn, pk, s);
        }
        let client_id = s.client_message_id.clone().filter(|c| !c.is_empty());
        if let Some(c) = &client_id {
            match self
                .store
                .message_by_client_id(&sender.mesh_id, &sender.member_id, c)
            {
                Ok(Some(first)) => return self.ack_duplicate(conn, &s.id, &first),
                Ok(None) => {}
                Err(e) => return self.refuse_send(conn, &s.id, format!("internal: {e}")),
            }
        }
        let deliveries = match self.recipients(
            &sender.mesh_id,
            &sender.member_id,
            &s.target_spec,
            s.copies.as_deref(),
            Missing::Refuse,
        ) {
            Ok(d) => d,
            Err(msg) => return self.refuse_send(conn, &s.id, msg),
        };
        let message = Message {
            id: new_id(),
            mesh_id: sender.mesh_id.clone(),
            sender_member_id: sender.member_id.clone(),
            sender_session_pubkey: sender.session_pubkey.clone(),
            target_spec: s.target_spec,
            priority: s.priority,
            nonce: s.nonce,
            ciphertext: s.ciphertext,
            client_message_id: client_id,
            subtype: s.subtype,
            reply_to_id: s.reply_to_id,
            body_version: s.body_version,
            created_at: now_ms(),
        };
        // Only brokers sharing a database ask who else holds the recipients.
        let recipients: Vec<String> = match self.cluster {
            Some(_) => deliveries
                .iter()
                .map(|d| d.recipient_member_id.clone())
                .collect(),
            None => Vec::new(),
        };
        let reached = match self.store_and_fan_out(&sender, &message, deliveries, Some(conn), now) {
            Ok(r) => r,
            Err(e) => {
                log::error("storing a message failed", &[("error", &e)]);
                let msg = format!("internal: message not stored: {e}");
                return self.refuse_send(conn, &s.id, msg);
            }
        };
        let reached = self.reached_elsewhere(&message.mesh_id, &recipients, reached);
        let ack = wire::Ack {
            id: s.id.clone(),
            message_id: message.id,
            queued: !reached.pushed,
            recipient_online: Some(reached.online),
            ..wire::Ack::default()
        };
        let instead = wire::Ack::refused(
            &s.id,
            "internal: message not stored (broker storage error); retry",
        );
        self.reply_durable(conn, ack, instead);
    }

    fn ack_duplicate(&mut self, conn: ConnId, id: &str, first: &str) {
        let pending = self
            .store
            .deliveries_of(first)
            .map(|d| d.iter().any(|d| d.delivered_at.is_none()));
        let ack = wire::Ack {
            id: id.to_string(),
            message_id: first.to_string(),
            queued: pending.unwrap_or(false),
            duplicate: Some(true),
            ..wire::Ack::default()
        };
        self.reply(conn, ack);
    }

    /// `client_ack` has no reply (as the original's); one that could not be saved is answered with
    /// `ack_not_stored`, so that a reader does not take the message for consumed.
    pub(super) fn on_client_ack(&mut self, conn: ConnId, pk: PKey, a: wire::ClientAck) {
        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let (mesh, member) = (p.mesh_id.clone(), p.member_id.clone());
        let broker_id = a.broker_message_id.as_deref().filter(|s| !s.is_empty());
        let client_id = a.client_message_id.as_deref().filter(|s| !s.is_empty());
        let id = broker_id.or(client_id).unwrap_or_default().to_string();
        let refusal = |why: &str| {
            let mut e = wire::ErrorFrame::new(
                codes::ACK_NOT_STORED,
                format!("client_ack of {id} was not saved ({why}); the message stays pending"),
            );
            e.id = Some(id.clone());
            e
        };
        let done = match self
            .store
            .mark_delivered(&mesh, &member, broker_id, client_id, now_ms())
        {
            Ok(ids) => ids,
            Err(e) => {
                log::error("recording a client_ack failed", &[("error", &e)]);
                let text = Frame::Error(refusal(&e.to_string()));
                return self.reply(conn, text);
            }
        };
        if !done.is_empty() {
            self.reply_if_lost(conn, Frame::Error(refusal("broker storage error")));
        }
        let mut refill = Vec::new();
        for &pk in self.by_member.get(&member).into_iter().flatten() {
            if let Some(q) = self.presences.get_mut(&pk) {
                for id in &done {
                    q.inflight.remove(id);
                }
                let held = q.inflight.values().map(|l| l.bytes).sum::<usize>();
                if q.backlog && q.inflight.len() <= DRAIN_WINDOW / 2 && held <= DRAIN_BYTES / 2 {
                    refill.push(pk);
                }
            }
        }
        for pk in refill {
            self.drain(pk, Instant::now());
        }
    }

    pub(super) fn on_inbox_fetch(
        &mut self,
        conn: ConnId,
        pk: PKey,
        f: wire::InboxFetch,
        now: Instant,
    ) {
        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let session = match (&p.session_pubkey, f.session_pubkey.as_deref()) {
            (Some(own), _) => Some(own.clone()),
            (None, Some(sp)) => match self.recipient_of(&p.mesh_id, sp) {
                Ok(Some((member, Some(_)))) if member == p.member_id => Some(sp.to_string()),
                _ => None,
            },
            (None, None) => None,
        };
        let limit = f.limit.map_or(100, |l| l.clamp(1, 1000) as usize);
        let pending = match self.store.pending(&p.member_id, session.as_deref(), limit) {
            Ok(x) => x,
            Err(e) => return self.store_error(conn, &e, f.req_id.as_deref()),
        };
        let wait = f
            .wait_ms
            .map(Duration::from_millis)
            .unwrap_or_default()
            .min(MAX_WAIT);
        if pending.is_empty() && !wait.is_zero() {
            self.waiters.insert(
                conn,
                Waiter {
                    pk,
                    req_id: f.req_id,
                    deadline: now + wait,
                    limit,
                    session,
                },
            );
            return;
        }
        let messages = pending
            .iter()
            .map(|d| push_of(d, self.priority_of(d)))
            .collect();
        self.reply(
            conn,
            wire::Inbox {
                messages,
                req_id: f.req_id,
            },
        );
    }

    pub(super) fn on_message_status(&mut self, conn: ConnId, pk: PKey, m: wire::MessageStatus) {
        let req = m.req_id.as_deref();
        let id = m.message_id.as_str();
        if !(8..=32).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return self.error(
                conn,
                codes::INVALID_ARGUMENT,
                "messageId must be 8-32 characters of [A-Za-z0-9]",
                req,
            );
        }
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        let found = match self.store.messages_by_prefix(&mesh, id, 2) {
            Ok(x) => x,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let msg = match found.as_slice() {
            [] => {
                return self.error(
                    conn,
                    codes::NOT_FOUND,
                    "no message with that id in this mesh",
                    req,
                );
            }
            [one] => one.clone(),
            _ => {
                return self.error(
                    conn,
                    codes::AMBIGUOUS_PREFIX,
                    "that prefix matches more than one message",
                    req,
                );
            }
        };
        let states = match self.store.deliveries_of(&msg.id) {
            Ok(x) => x,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let delivered = !states.is_empty() && states.iter().all(|d| d.delivered_at.is_some());
        let delivered_at = states
            .iter()
            .filter_map(|d| d.delivered_at)
            .max()
            .filter(|_| delivered)
            .map(fmt_rfc3339);
        let recipients = states
            .iter()
            .map(|d| wire::Recipient {
                name: d.recipient_name.clone(),
                pubkey: d
                    .recipient_session_pubkey
                    .clone()
                    .unwrap_or_else(|| d.recipient_member_pubkey.clone()),
                status: if d.delivered_at.is_some() {
                    "delivered"
                } else {
                    "pending"
                }
                .to_string(),
            })
            .collect();
        self.reply(
            conn,
            wire::MessageStatusResult {
                message_id: m.message_id.clone(),
                target_spec: msg.target_spec,
                delivered,
                delivered_at,
                recipients,
                req_id: m.req_id.clone(),
            },
        );
    }

    /// Pushes again what waited a whole lease without an acknowledgement, backing off per retry.
    pub(super) fn redeliver(&mut self, now: Instant) {
        let mut due = Vec::new();
        for (pk, p) in &self.presences {
            if p.pushable() {
                due.extend(
                    p.inflight
                        .iter()
                        .filter(|(_, l)| l.due <= now)
                        .map(|(id, l)| (*pk, *id, l.attempts)),
                );
            }
        }
        for (pk, delivery_id, attempts) in due {
            let d = match self.store.pending_delivery(delivery_id) {
                Ok(d) => d,
                Err(e) => {
                    log::error("reading a delivery for redelivery failed", &[("error", &e)]);
                    continue;
                }
            };
            let priority = d.as_ref().map(|d| self.priority_of(d));
            let Some(p) = self.presences.get_mut(&pk) else {
                continue;
            };
            // Also the recipient's: a lease of a batch that was lost may name a row id SQLite has since reused.
            let ours = |d: &Pending| {
                d.recipient_member_id == p.member_id
                    && (d.recipient_session_pubkey.is_none()
                        || d.recipient_session_pubkey == p.session_pubkey)
            };
            match (d, priority) {
                (Some(d), Some(priority)) if ours(&d) && deliverable(p.status, priority) => {
                    let attempts = attempts + 1;
                    let lease = self
                        .cfg
                        .lease
                        .saturating_mul(1 << attempts.min(20))
                        .min(MAX_LEASE);
                    p.inflight.insert(
                        delivery_id,
                        Lease {
                            due: now + lease,
                            attempts,
                            bytes: weight(&d),
                        },
                    );
                    if let Some(conn) = p.conn {
                        self.metrics.messages_out += 1;
                        self.emit(conn, Frame::Push(push_of(&d, priority)), IfLost::Send);
                    }
                }
                // Acknowledged meanwhile, or held back by status until the presence is idle again.
                _ => {
                    p.inflight.remove(&delivery_id);
                }
            }
        }
    }
}
