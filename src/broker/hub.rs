//! The hub: every mesh's presences, message routing and delivery, on top of the transport's [`Handler`] seam.
//!
//! The hub owns all state and the store connection and runs on the transport's one thread, so there are no
//! locks. Replies are not handed to the transport as they are made: they wait in an outbox until the iteration's
//! writes are committed ([`Handler::end_of_batch`]). If the commit fails, a reply that promised a durable write
//! (an `ack` of a stored message) is replaced by an error and the pushes of that message are dropped, so no client
//! ever holds an `ack` for a message the broker does not have.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::auth::{self, Capacity, Refusal};
use super::log;
use super::net::{ConnId, Handler, HttpAction, Io, Request};
use super::store::{NewDelivery, Pending, SqliteStore, Store, new_id};
use crate::error::Result;
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, Frame, Group, Priority, Status, codes};

/// How long a session that dropped without a close frame keeps its presence for a silent reattach.
pub const GRACE: Duration = Duration::from_secs(90);
/// The longest wait between redeliveries of an unacknowledged push.
pub const MAX_LEASE: Duration = Duration::from_secs(600);
/// The largest `send` payload (ciphertexts, nonces and target), as the original counts it.
pub const MAX_MESSAGE_BYTES: usize = 65_536;
/// The longest an `inbox_fetch` may wait.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// A per-member token bucket for `send`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sends allowed per second, sustained.
    pub per_second: f64,
    /// Sends allowed at once.
    pub burst: f64,
}

/// What the hub needs from the broker's options.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Holds `broker.db`.
    pub data_dir: PathBuf,
    /// Needed for `POST /cli/mesh/create` from an address that is not loopback.
    pub admin_token: Option<String>,
    /// Live presences a mesh may have.
    pub max_conns_per_mesh: usize,
    /// `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// How long a push waits for `client_ack` before it is pushed again (doubling per retry).
    pub lease: Duration,
}

/// A presence's key in the hub: the id of the connection that created it (a reattach keeps it).
type PKey = ConnId;

/// One authenticated presence: a live connection, or a session in its reconnect grace.
#[derive(Debug, Clone)]
struct Presence {
    id: String,
    /// `None` while in grace.
    conn: Option<ConnId>,
    grace_until: Option<Instant>,
    mesh_id: String,
    member_id: String,
    member_pubkey: String,
    /// Set for a `session_hello` presence.
    session_pubkey: Option<String>,
    /// Asked not to be pushed messages (`capabilities:["pull"]`).
    pull: bool,
    display_name: String,
    status: Status,
    summary: Option<String>,
    groups: Vec<Group>,
    profile: wire::Profile,
    visible: bool,
    session_id: String,
    pid: u32,
    cwd: String,
    hostname: Option<String>,
    peer_type: Option<String>,
    channel: Option<String>,
    model: Option<String>,
    connected_at: i64,
    /// Pushed deliveries waiting for `client_ack`, by delivery id.
    inflight: HashMap<i64, Lease>,
}

impl Presence {
    /// The routing key: the session key, else the member key.
    fn pubkey(&self) -> &str {
        self.session_pubkey
            .as_deref()
            .unwrap_or(&self.member_pubkey)
    }
    /// Session presences are peers: announced, listed, reattachable. A pull session socket is an auxiliary
    /// socket of its session and is none of these.
    fn is_peer(&self) -> bool {
        self.session_pubkey.is_some() && !self.pull
    }
    fn pushable(&self) -> bool {
        self.conn.is_some() && !self.pull
    }
    fn role(&self) -> &'static str {
        if self.session_pubkey.is_some() {
            "session"
        } else {
            "control-plane"
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    due: Instant,
    attempts: u32,
}

/// An `inbox_fetch` waiting for a delivery.
#[derive(Debug, Clone)]
struct Waiter {
    pk: PKey,
    req_id: Option<String>,
    deadline: Instant,
    limit: usize,
    session: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// What to send instead when the batch's commit fails.
#[derive(Debug, Clone)]
enum IfLost {
    /// Not about this batch's writes: send it anyway.
    Send,
    /// A push of a message that is not stored: drop it.
    Drop,
    /// A reply that promised a durable write: send this error instead.
    Instead(String),
}

#[derive(Debug, Clone)]
enum Out {
    Text(ConnId, String, IfLost),
    Close(ConnId, u16, String),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub(super) struct Metrics {
    pub messages_in: u64,
    pub messages_out: u64,
    pub commit_failures: u64,
    pub errors: std::collections::BTreeMap<String, u64>,
}

/// The broker's application state.
pub struct Hub {
    pub(super) store: Box<dyn Store>,
    pub(super) cfg: HubConfig,
    pub(super) started: Instant,
    pub(super) metrics: Metrics,
    /// Every open WebSocket; `None` until it authenticates.
    conns: HashMap<ConnId, Option<PKey>>,
    presences: HashMap<PKey, Presence>,
    /// Presences per mesh, in connection order.
    by_mesh: HashMap<String, BTreeSet<PKey>>,
    /// Peer (non-pull session) presences by (mesh, session key).
    by_session: HashMap<(String, String), PKey>,
    waiters: HashMap<ConnId, Waiter>,
    buckets: HashMap<String, Bucket>,
    outbox: Vec<Out>,
}

impl Capacity for Hub {
    fn full(&self, mesh_id: &str, session_pubkey: Option<&str>) -> bool {
        // Taking over a session's own presence (reattach or replace) needs no new room.
        if let Some(sp) = session_pubkey
            && self
                .by_session
                .contains_key(&(mesh_id.to_string(), sp.to_string()))
        {
            return false;
        }
        self.live_in_mesh(mesh_id) >= self.cfg.max_conns_per_mesh
    }
}

fn groups_of(json: &str) -> Vec<Group> {
    serde_json::from_str(json).unwrap_or_default()
}

/// `@eng` reaches `eng` and `eng/backend`.
fn in_group(groups: &[Group], target: &str) -> bool {
    groups.iter().any(|g| {
        g.name == target
            || (g.name.len() > target.len()
                && g.name.starts_with(target)
                && g.name.as_bytes()[target.len()] == b'/')
    })
}

fn upsert_group(groups: &mut Vec<Group>, name: &str, role: Option<&str>) {
    match groups.iter_mut().find(|g| g.name == name) {
        Some(g) => g.role = role.map(str::to_string),
        None => groups.push(Group {
            name: name.to_string(),
            role: role.map(str::to_string),
        }),
    }
}

/// Whether a presence with `status` gets a `priority` message pushed now.
fn deliverable(status: Status, priority: &str) -> bool {
    match priority {
        "now" => true,
        "next" => status == Status::Idle,
        _ => false,
    }
}

fn short(key: &str) -> &str {
    key.get(..16).unwrap_or(key)
}

fn str_of<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

fn opt_string(v: &Value, name: &str) -> Option<String> {
    str_of(v, name)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A delivery as the `push` a client gets.
fn push_of(d: &Pending) -> wire::Push {
    wire::Push {
        message_id: d.message_id.clone(),
        mesh_id: d.mesh_id.clone(),
        sender_pubkey: d
            .sender_session_pubkey
            .clone()
            .unwrap_or_else(|| d.sender_member_pubkey.clone()),
        sender_member_pubkey: Some(d.sender_member_pubkey.clone()),
        sender_member_id: Some(d.sender_member_id.clone()),
        sender_name: Some(d.sender_name.clone()),
        target_spec: Some(d.target_spec.clone()),
        priority: d.priority.parse().unwrap_or(Priority::Next),
        nonce: d.nonce.clone(),
        ciphertext: d.ciphertext.clone(),
        created_at: fmt_rfc3339(d.created_at),
        client_message_id: d.client_message_id.clone(),
        subtype: d.subtype.clone(),
        reply_to_id: d.reply_to_id.clone(),
        body_version: d.body_version.and_then(|v| u32::try_from(v).ok()),
        ..wire::Push::default()
    }
}

impl From<&super::Options> for HubConfig {
    fn from(o: &super::Options) -> HubConfig {
        HubConfig {
            data_dir: o.data.clone(),
            admin_token: o.admin_token.clone(),
            max_conns_per_mesh: o.max_conns_per_mesh,
            rate_limit: o
                .rate_limit
                .map(|(per_second, burst)| RateLimit { per_second, burst }),
            lease: o.lease,
        }
    }
}

impl Hub {
    /// Opens the store under `opts.data`, with no connections yet.
    pub fn open(opts: &super::Options) -> Result<Hub> {
        Hub::with_config(HubConfig::from(opts))
    }

    /// Opens the store under `cfg.data_dir`.
    pub fn with_config(cfg: HubConfig) -> Result<Hub> {
        let store = SqliteStore::open(&cfg.data_dir)?;
        Ok(Hub::with_store(Box::new(store), cfg))
    }

    /// A hub over any store.
    pub fn with_store(store: Box<dyn Store>, cfg: HubConfig) -> Hub {
        Hub {
            store,
            cfg,
            started: Instant::now(),
            metrics: Metrics::default(),
            conns: HashMap::new(),
            presences: HashMap::new(),
            by_mesh: HashMap::new(),
            by_session: HashMap::new(),
            waiters: HashMap::new(),
            buckets: HashMap::new(),
            outbox: Vec::new(),
        }
    }

    /// Presences with a live connection in the mesh (the capacity count).
    fn live_in_mesh(&self, mesh_id: &str) -> usize {
        self.by_mesh.get(mesh_id).map_or(0, |set| {
            set.iter()
                .filter(|pk| self.presences.get(pk).is_some_and(|p| p.conn.is_some()))
                .count()
        })
    }

    /// Presences (live or in grace) of the whole broker.
    pub(super) fn presence_count(&self) -> usize {
        self.presences.len()
    }

    fn mesh_keys(&self, mesh_id: &str) -> Vec<PKey> {
        self.by_mesh
            .get(mesh_id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    // ---- output ----

    fn emit(&mut self, conn: ConnId, frame: Frame, if_lost: IfLost) {
        self.outbox.push(Out::Text(conn, frame.to_json(), if_lost));
    }

    fn reply(&mut self, conn: ConnId, frame: impl Into<Frame>) {
        self.emit(conn, frame.into(), IfLost::Send);
    }

    /// A reply that reports a write of this batch; `instead` goes out if the write is not committed.
    fn reply_durable(&mut self, conn: ConnId, frame: impl Into<Frame>, instead: impl Into<Frame>) {
        let instead = instead.into().to_json();
        self.emit(conn, frame.into(), IfLost::Instead(instead));
    }

    fn count_error(&mut self, code: &str) {
        *self.metrics.errors.entry(code.to_string()).or_default() += 1;
    }

    fn error(
        &mut self,
        conn: ConnId,
        code: &str,
        message: impl Into<String>,
        req_id: Option<&str>,
    ) {
        self.count_error(code);
        self.reply(
            conn,
            wire::ErrorFrame::new(code, message).with_req_id(req_id),
        );
    }

    /// An error for a request whose write failed; the batch may be lost, the answer is not.
    fn store_error(&mut self, conn: ConnId, e: &crate::error::Error, req_id: Option<&str>) {
        log::error("store request failed", &[("error", e)]);
        self.error(
            conn,
            "internal",
            format!("broker storage error: {e}"),
            req_id,
        );
    }

    fn durable_failure(req_id: Option<&str>) -> wire::ErrorFrame {
        wire::ErrorFrame::new(
            "internal",
            "broker storage error: the change was not saved; retry",
        )
        .with_req_id(req_id)
    }

    fn ack_done(&mut self, conn: ConnId, req_id: Option<&str>) {
        if req_id.is_some() {
            self.reply(conn, wire::Ack::done(req_id));
        }
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        self.outbox.push(Out::Close(conn, code, reason.to_string()));
    }

    /// Commits the open transaction and hands the outbox to the transport: as written if the commit held, with
    /// the failure replies otherwise.
    pub(super) fn settle(&mut self, io: &mut Io) -> bool {
        let ok = match self.store.commit() {
            Ok(()) => true,
            Err(e) => {
                self.metrics.commit_failures += 1;
                log::error(
                    "commit failed; the batch's requests are answered with errors",
                    &[("error", &e)],
                );
                false
            }
        };
        for out in std::mem::take(&mut self.outbox) {
            match out {
                Out::Text(conn, text, lost) => match (ok, lost) {
                    (true, _) | (false, IfLost::Send) => io.send(conn, text),
                    (false, IfLost::Drop) => {}
                    (false, IfLost::Instead(text)) => io.send(conn, text),
                },
                Out::Close(conn, code, reason) => io.close(conn, code, &reason),
            }
        }
        ok
    }

    /// A system event to every other live, push-capable connection of the mesh.
    fn announce(&mut self, mesh_id: &str, except: PKey, event: &str, data: Value) {
        let push = wire::Push::system(mesh_id, &new_id(), &fmt_rfc3339(now_ms()), event, data);
        let text = Frame::Push(push).to_json();
        for pk in self.mesh_keys(mesh_id) {
            if pk == except {
                continue;
            }
            if let Some(conn) = self
                .presences
                .get(&pk)
                .filter(|p| p.pushable())
                .and_then(|p| p.conn)
            {
                self.outbox
                    .push(Out::Text(conn, text.clone(), IfLost::Send));
            }
        }
    }

    // ---- presences ----

    fn authenticate(&mut self, conn: ConnId, v: &Value, session: bool, now: Instant) {
        let verified = if session {
            auth::session_hello(v, now_ms(), self, self.store.as_ref())
        } else {
            auth::hello(v, now_ms(), self, self.store.as_ref())
        };
        let verified = match verified {
            Ok(x) => x,
            Err(r) => return self.refuse(conn, &r),
        };
        let (mesh, member) = (verified.mesh, verified.member);
        let pull = v
            .get("capabilities")
            .and_then(Value::as_array)
            .is_some_and(|caps| caps.iter().any(|c| c.as_str() == Some(wire::CAP_PULL)));
        let display_name =
            opt_string(v, "displayName").unwrap_or_else(|| member.display_name.clone());
        let groups = match v.get("groups").filter(|g| !g.is_null()) {
            Some(g) => serde_json::from_value(g.clone()).unwrap_or_default(),
            None => groups_of(&member.groups),
        };
        let session_id = str_of(v, "sessionId").unwrap_or_default().to_string();
        let cwd = str_of(v, "cwd").unwrap_or_default().to_string();
        let pid = v
            .get("pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);

        if let Some(sp) = &verified.session_pubkey
            && let Err(e) = self.store.upsert_session(&super::store::Session {
                mesh_id: mesh.id.clone(),
                session_pubkey: sp.clone(),
                member_id: member.id.clone(),
                display_name: Some(display_name.clone()),
                session_id: Some(session_id.clone()).filter(|s| !s.is_empty()),
                last_seen_at: now_ms(),
            })
        {
            // The presence works without it; only a DM to this session while it is offline needs the row.
            log::warn("could not remember a session key", &[("error", &e)]);
        }

        // A session that is still (or was recently) connected takes its presence over, silently.
        let existing = match (&verified.session_pubkey, pull) {
            (Some(sp), false) => self.by_session.get(&(mesh.id.clone(), sp.clone())).copied(),
            _ => None,
        };
        let pk = if let Some(pk) = existing {
            let old = self.presences.get(&pk).and_then(|p| p.conn);
            if let Some(old) = old {
                self.close(old, 1000, "session_replaced");
                self.conns.remove(&old);
                self.waiters.remove(&old);
            }
            if let Some(p) = self.presences.get_mut(&pk) {
                p.conn = Some(conn);
                p.grace_until = None;
                p.inflight.clear();
                p.display_name = display_name;
                p.session_id = session_id;
                p.cwd = cwd;
                p.pid = pid;
            }
            pk
        } else {
            let p = Presence {
                id: new_id(),
                conn: Some(conn),
                grace_until: None,
                mesh_id: mesh.id.clone(),
                member_id: member.id.clone(),
                member_pubkey: member.pubkey.clone(),
                session_pubkey: verified.session_pubkey.clone(),
                pull,
                display_name,
                status: Status::Idle,
                summary: None,
                groups,
                profile: wire::Profile::default(),
                visible: true,
                session_id,
                pid,
                cwd,
                hostname: opt_string(v, "hostname"),
                peer_type: opt_string(v, "peerType"),
                channel: opt_string(v, "channel"),
                model: opt_string(v, "model"),
                connected_at: now_ms(),
                inflight: HashMap::new(),
            };
            let pk = conn;
            if p.is_peer() {
                self.by_session
                    .insert((mesh.id.clone(), p.pubkey().to_string()), pk);
            }
            let announce = p.is_peer();
            let data = json!({"name": p.display_name, "pubkey": p.pubkey(), "groups": p.groups});
            self.by_mesh.entry(mesh.id.clone()).or_default().insert(pk);
            self.presences.insert(pk, p);
            if announce {
                self.announce(&mesh.id, pk, "peer_joined", data);
            }
            pk
        };
        self.conns.insert(conn, Some(pk));

        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let ack = wire::HelloAck {
            presence_id: p.id.clone(),
            member_display_name: p.display_name.clone(),
            member_id: Some(member.id.clone()),
            member_role: Some(member.role.clone()),
            mesh_id: Some(mesh.id.clone()),
            mesh_slug: Some(mesh.slug.clone()),
            mesh_name: Some(mesh.name.clone()),
            member_profile: Some(wire::MemberProfile {
                role_tag: member.role_tag.clone(),
                groups: groups_of(&member.groups),
                message_mode: member.message_mode.clone(),
            }),
            mesh_policy: Some(wire::MeshPolicy {
                self_editable: wire::SelfEditable {
                    display_name: true,
                    role_tag: true,
                    groups: true,
                    message_mode: true,
                },
            }),
            server_time: Some(now_ms()),
            ..wire::HelloAck::default()
        };
        self.reply(conn, ack);
        self.drain(pk, now);
    }

    fn refuse(&mut self, conn: ConnId, r: &Refusal) {
        self.error(conn, r.code, r.message.clone(), None);
        self.close(conn, r.close_code(), r.code);
    }

    /// Removes a presence for good, with `peer_left` if it was a peer.
    fn remove_presence(&mut self, pk: PKey) {
        let Some(p) = self.presences.remove(&pk) else {
            return;
        };
        if let Some(set) = self.by_mesh.get_mut(&p.mesh_id) {
            set.remove(&pk);
            if set.is_empty() {
                self.by_mesh.remove(&p.mesh_id);
            }
        }
        if p.is_peer() {
            let key = (p.mesh_id.clone(), p.pubkey().to_string());
            if self.by_session.get(&key) == Some(&pk) {
                self.by_session.remove(&key);
            }
            self.announce(
                &p.mesh_id,
                pk,
                "peer_left",
                json!({"name": p.display_name, "pubkey": p.pubkey()}),
            );
        }
    }

    // ---- delivery ----

    /// Pushes a delivery to a presence and starts its lease.
    fn push_to(&mut self, pk: PKey, d: &Pending, now: Instant, if_lost: IfLost) {
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
            },
        );
        self.metrics.messages_out += 1;
        self.emit(conn, Frame::Push(push_of(d)), if_lost);
    }

    /// Pushes every pending delivery the presence may get now and does not hold yet, oldest first.
    fn drain(&mut self, pk: PKey, now: Instant) {
        let Some(p) = self.presences.get(&pk).filter(|p| p.pushable()) else {
            return;
        };
        let (member, session, status) = (p.member_id.clone(), p.session_pubkey.clone(), p.status);
        let pending = match self.store.pending(&member, session.as_deref(), usize::MAX) {
            Ok(x) => x,
            Err(e) => return log::error("reading pending deliveries failed", &[("error", &e)]),
        };
        for d in pending {
            let held = self
                .presences
                .get(&pk)
                .is_some_and(|p| p.inflight.contains_key(&d.delivery_id));
            if !held && deliverable(status, &d.priority) {
                self.push_to(pk, &d, now, IfLost::Send);
            }
        }
    }

    /// The presences a delivery reaches: the recipient member's connections (or the one session's), except
    /// the socket it came from.
    fn reached_by(&self, mesh_id: &str, d: &Pending, from: Option<ConnId>) -> Vec<PKey> {
        self.mesh_keys(mesh_id)
            .into_iter()
            .filter(|pk| {
                self.presences.get(pk).is_some_and(|p| {
                    p.conn.is_some()
                        && p.conn != from
                        && p.member_id == d.recipient_member_id
                        && (d.recipient_session_pubkey.is_none()
                            || p.session_pubkey == d.recipient_session_pubkey)
                })
            })
            .collect()
    }

    /// Answers the `inbox_fetch` waiting on `conn` with what is pending now.
    fn answer_waiter(&mut self, conn: ConnId, if_lost: IfLost) {
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
            Ok(x) => x.iter().map(push_of).collect(),
            Err(e) => return self.store_error(conn, &e, w.req_id.as_deref()),
        };
        let frame = Frame::Inbox(wire::Inbox {
            messages,
            req_id: w.req_id,
        });
        self.emit(conn, frame, if_lost);
    }

    // ---- requests ----

    /// One request of an authenticated connection; `ty` and `req_id` as they came, for the unknown ones.
    fn on_frame(
        &mut self,
        conn: ConnId,
        pk: PKey,
        frame: Frame,
        ty: &str,
        req_id: Option<&str>,
        now: Instant,
    ) {
        match frame {
            Frame::Send(s) => self.on_send(conn, pk, s, now),
            Frame::ClientAck(a) => self.on_client_ack(pk, a),
            Frame::InboxFetch(f) => self.on_inbox_fetch(conn, pk, f, now),
            Frame::MessageStatus(m) => self.on_message_status(conn, pk, m),
            Frame::ListPeers(l) => self.on_list_peers(conn, pk, l.req_id.as_deref()),
            Frame::Members(m) => self.on_members(conn, pk, m.req_id.as_deref()),
            Frame::SetStatus(s) => {
                let became_idle = self.presences.get_mut(&pk).is_some_and(|p| {
                    let was = std::mem::replace(&mut p.status, s.status);
                    was != Status::Idle && s.status == Status::Idle
                });
                if became_idle {
                    self.drain(pk, now);
                }
                self.ack_done(conn, s.req_id.as_deref());
            }
            Frame::SetSummary(s) => {
                if let Some(p) = self.presences.get_mut(&pk) {
                    p.summary = Some(s.summary).filter(|s| !s.is_empty());
                }
                self.ack_done(conn, s.req_id.as_deref());
            }
            Frame::SetVisible(s) => {
                let changed = self.presences.get_mut(&pk).and_then(|p| {
                    let was = std::mem::replace(&mut p.visible, s.visible);
                    (was != s.visible && !p.pull).then(|| {
                        (
                            p.mesh_id.clone(),
                            json!({"name": p.display_name, "pubkey": p.pubkey()}),
                        )
                    })
                });
                if let Some((mesh, data)) = changed {
                    self.announce(
                        &mesh,
                        pk,
                        if s.visible {
                            "peer_visible"
                        } else {
                            "peer_hidden"
                        },
                        data,
                    );
                }
                self.ack_done(conn, s.req_id.as_deref());
            }
            Frame::SetProfile(s) => {
                if let Some(p) = self.presences.get_mut(&pk) {
                    let pr = &mut p.profile;
                    pr.avatar = s.avatar.or(pr.avatar.take());
                    pr.title = s.title.or(pr.title.take());
                    pr.bio = s.bio.or(pr.bio.take());
                    pr.capabilities = s.capabilities.or(pr.capabilities.take());
                }
                self.ack_done(conn, s.req_id.as_deref());
            }
            Frame::JoinGroup(g) => self.on_group(
                conn,
                pk,
                &g.name,
                Some(g.role.as_deref()),
                g.req_id.as_deref(),
            ),
            Frame::LeaveGroup(g) => self.on_group(conn, pk, &g.name, None, g.req_id.as_deref()),
            Frame::Ban(b) => self.on_ban(conn, pk, &b.target, b.req_id.as_deref()),
            Frame::Unban(b) => self.on_unban(conn, pk, &b.target, b.req_id.as_deref()),
            _ => self.error(
                conn,
                "unknown_type",
                format!("unknown message type {ty:?}"),
                req_id,
            ),
        }
    }

    fn refuse_send(&mut self, conn: ConnId, id: &str, error: String) {
        let code = error.split(':').next().unwrap_or("send").replace(' ', "_");
        self.count_error(&code);
        self.reply(conn, wire::Ack::refused(id, error));
    }

    fn take_token(&mut self, member_id: &str, now: Instant) -> bool {
        let Some(rl) = self.cfg.rate_limit else {
            return true;
        };
        let b = self.buckets.entry(member_id.to_string()).or_insert(Bucket {
            tokens: rl.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rl.per_second).min(rl.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// A key of the mesh as a recipient: a member (all its connections) or a session of a member.
    fn recipient_of(&self, mesh_id: &str, key: &str) -> Result<Option<(String, Option<String>)>> {
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

    /// Who a send reaches, as delivery rows. `Err` is the refusal for the `ack`.
    fn recipients(
        &self,
        p: &Presence,
        s: &wire::SendMessage,
    ) -> std::result::Result<Vec<NewDelivery>, String> {
        let internal = |e: crate::error::Error| format!("internal: {e}");
        if let Some(copies) = &s.copies {
            let mut out = Vec::with_capacity(copies.len());
            for c in copies {
                let Some((member, session)) =
                    self.recipient_of(&p.mesh_id, &c.to).map_err(internal)?
                else {
                    return Err(format!(
                        "not_member: {} is not a member or session of this mesh",
                        short(&c.to)
                    ));
                };
                out.push(NewDelivery {
                    recipient_member_id: member,
                    recipient_session_pubkey: session,
                    nonce: Some(c.nonce.clone()),
                    ciphertext: Some(c.ciphertext.clone()),
                });
            }
            return Ok(out);
        }
        let target = s.target_spec.as_str();
        if target.starts_with('#') {
            return Err("unknown target: topics are not available yet".into());
        }
        let group = match target {
            "*" | "@all" => None,
            t if t.len() > 1 && t.starts_with('@') => Some(&t[1..]),
            t if crate::crypto::parse_pubkey_hex(t).is_ok() => {
                return match self.recipient_of(&p.mesh_id, t).map_err(internal)? {
                    Some((member, session)) => Ok(vec![NewDelivery {
                        recipient_member_id: member,
                        recipient_session_pubkey: session,
                        nonce: None,
                        ciphertext: None,
                    }]),
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
        // A broadcast without sealed copies (an original client): every other member, stored for the offline
        // ones. Members reached only through hidden presences are skipped, as the original skips hidden peers.
        let members = self.store.members(&p.mesh_id).map_err(internal)?;
        let mut out = Vec::new();
        for m in members
            .into_iter()
            .filter(|m| m.revoked_at.is_none() && m.id != p.member_id)
        {
            let live: Vec<&Presence> = self
                .mesh_keys(&p.mesh_id)
                .iter()
                .filter_map(|pk| self.presences.get(pk))
                .filter(|q| q.member_id == m.id && !q.pull)
                .collect();
            if !live.is_empty() && live.iter().all(|q| !q.visible) {
                continue;
            }
            let matches = match group {
                None => true,
                Some(g) => {
                    in_group(&groups_of(&m.groups), g)
                        || live.iter().any(|q| in_group(&q.groups, g))
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

    fn on_send(&mut self, conn: ConnId, pk: PKey, s: wire::SendMessage, now: Instant) {
        self.metrics.messages_in += 1;
        let Some(sender) = self.presences.get(&pk).cloned() else {
            return;
        };
        if !self.take_token(&sender.member_id, now) {
            let rl = self.cfg.rate_limit.unwrap_or(RateLimit {
                per_second: 0.0,
                burst: 0.0,
            });
            let msg = format!(
                "rate_limit: max {} msg/min (burst {}) — slow down",
                rl.per_second * 60.0,
                rl.burst
            );
            return self.refuse_send(conn, &s.id, msg);
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
        let deliveries = match self.recipients(&sender, &s) {
            Ok(d) => d,
            Err(msg) => return self.refuse_send(conn, &s.id, msg),
        };
        let message = super::store::Message {
            id: new_id(),
            mesh_id: sender.mesh_id.clone(),
            sender_member_id: sender.member_id.clone(),
            sender_session_pubkey: sender.session_pubkey.clone(),
            target_spec: s.target_spec.clone(),
            priority: s.priority.as_str().to_string(),
            nonce: s.nonce.clone(),
            ciphertext: s.ciphertext.clone(),
            client_message_id: client_id,
            subtype: s.subtype.clone(),
            reply_to_id: s.reply_to_id.clone(),
            body_version: s.body_version.map(i64::from),
            created_at: now_ms(),
        };
        let ids = match self.store.insert_message(&message, &deliveries) {
            Ok(ids) => ids,
            Err(e) => {
                log::error("storing a message failed", &[("error", &e)]);
                return self.refuse_send(conn, &s.id, format!("internal: message not stored: {e}"));
            }
        };

        let (mut pushed, mut online) = (false, false);
        for (d, delivery_id) in deliveries.into_iter().zip(ids) {
            let pending = Pending {
                delivery_id,
                message_id: message.id.clone(),
                mesh_id: message.mesh_id.clone(),
                recipient_member_id: d.recipient_member_id,
                recipient_session_pubkey: d.recipient_session_pubkey,
                sender_member_id: sender.member_id.clone(),
                sender_member_pubkey: sender.member_pubkey.clone(),
                sender_session_pubkey: sender.session_pubkey.clone(),
                sender_name: sender.display_name.clone(),
                target_spec: message.target_spec.clone(),
                priority: message.priority.clone(),
                nonce: d.nonce.unwrap_or_else(|| message.nonce.clone()),
                ciphertext: d.ciphertext.unwrap_or_else(|| message.ciphertext.clone()),
                client_message_id: message.client_message_id.clone(),
                subtype: message.subtype.clone(),
                reply_to_id: message.reply_to_id.clone(),
                body_version: message.body_version,
                created_at: message.created_at,
            };
            for target in self.reached_by(&message.mesh_id, &pending, Some(conn)) {
                let Some(p) = self.presences.get(&target) else {
                    continue;
                };
                let (status, target_conn) = (p.status, p.conn);
                if p.pull {
                    // A pull connection waiting in inbox_fetch gets it as the answer.
                    if let Some(c) =
                        target_conn.filter(|c| self.waiters.get(c).is_some_and(|w| w.pk == target))
                    {
                        self.answer_waiter(c, IfLost::Drop);
                        pushed = true;
                    }
                    continue;
                }
                online = true;
                if let Some(c) = target_conn.filter(|c| self.waiters.contains_key(c)) {
                    self.answer_waiter(c, IfLost::Drop);
                    pushed = true;
                } else if deliverable(status, &pending.priority) {
                    self.push_to(target, &pending, now, IfLost::Drop);
                    pushed = true;
                }
            }
        }
        let ack = wire::Ack {
            id: s.id.clone(),
            message_id: message.id,
            queued: !pushed,
            recipient_online: Some(online),
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

    fn on_client_ack(&mut self, pk: PKey, a: wire::ClientAck) {
        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let (mesh, member) = (p.mesh_id.clone(), p.member_id.clone());
        let done = match self.store.mark_delivered(
            &mesh,
            &member,
            a.broker_message_id.as_deref().filter(|s| !s.is_empty()),
            a.client_message_id.as_deref().filter(|s| !s.is_empty()),
            now_ms(),
        ) {
            Ok(ids) => ids,
            Err(e) => return log::error("recording a client_ack failed", &[("error", &e)]),
        };
        for pk in self.mesh_keys(&mesh) {
            if let Some(q) = self
                .presences
                .get_mut(&pk)
                .filter(|q| q.member_id == member)
            {
                for id in &done {
                    q.inflight.remove(id);
                }
            }
        }
    }

    fn on_inbox_fetch(&mut self, conn: ConnId, pk: PKey, f: wire::InboxFetch, now: Instant) {
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
        let messages = pending.iter().map(push_of).collect();
        self.reply(
            conn,
            wire::Inbox {
                messages,
                req_id: f.req_id,
            },
        );
    }

    fn on_message_status(&mut self, conn: ConnId, pk: PKey, m: wire::MessageStatus) {
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

    fn on_list_peers(&mut self, conn: ConnId, pk: PKey, req_id: Option<&str>) {
        let Some(me) = self.presences.get(&pk) else {
            return;
        };
        let peers = self
            .mesh_keys(&me.mesh_id)
            .iter()
            .filter_map(|k| self.presences.get(k))
            .filter(|p| !(p.pull && p.session_pubkey.is_some()))
            .filter(|p| p.visible || p.member_id == me.member_id)
            .map(|p| wire::Peer {
                pubkey: p.pubkey().to_string(),
                member_pubkey: p.member_pubkey.clone(),
                member_id: Some(p.member_id.clone()),
                display_name: p.display_name.clone(),
                status: p.status,
                summary: p.summary.clone(),
                groups: p.groups.clone(),
                session_id: p.session_id.clone(),
                connected_at: fmt_rfc3339(p.connected_at),
                cwd: p.cwd.clone(),
                peer_role: p.role().to_string(),
                hostname: p.hostname.clone(),
                peer_type: p.peer_type.clone(),
                channel: p.channel.clone(),
                model: p.model.clone(),
                visible: Some(p.visible),
                profile: Some(p.profile.clone()),
                online: Some(p.conn.is_some()),
            })
            .collect();
        self.reply(
            conn,
            wire::PeersList {
                peers,
                req_id: req_id.map(str::to_string),
            },
        );
    }

    fn on_members(&mut self, conn: ConnId, pk: PKey, req_id: Option<&str>) {
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        let members = match self.store.members(&mesh) {
            Ok(x) => x,
            Err(e) => return self.store_error(conn, &e, req_id),
        };
        let online: HashSet<String> = self
            .mesh_keys(&mesh)
            .iter()
            .filter_map(|k| self.presences.get(k))
            .filter(|p| p.conn.is_some())
            .map(|p| p.member_id.clone())
            .collect();
        let members = members
            .into_iter()
            .filter(|m| m.revoked_at.is_none())
            .map(|m| wire::Member {
                online: online.contains(&m.id),
                groups: groups_of(&m.groups),
                member_id: m.id,
                pubkey: m.pubkey,
                display_name: m.display_name,
                role: m.role,
                joined_at: fmt_rfc3339(m.joined_at),
            })
            .collect();
        self.reply(
            conn,
            wire::MembersList {
                members,
                req_id: req_id.map(str::to_string),
            },
        );
    }

    /// `join_group` (`role` is `Some`) or `leave_group` (`None`). On a control-plane connection the change is
    /// the member's: stored, and applied to every live presence of it.
    fn on_group(
        &mut self,
        conn: ConnId,
        pk: PKey,
        name: &str,
        role: Option<Option<&str>>,
        req_id: Option<&str>,
    ) {
        let apply = |groups: &mut Vec<Group>| match role {
            Some(r) => upsert_group(groups, name, r),
            None => groups.retain(|g| g.name != name),
        };
        let Some(p) = self.presences.get_mut(&pk) else {
            return;
        };
        if p.session_pubkey.is_some() {
            apply(&mut p.groups);
            return self.ack_done(conn, req_id);
        }
        let (mesh, member_id) = (p.mesh_id.clone(), p.member_id.clone());
        let mut groups = match self.store.member(&member_id) {
            Ok(Some(m)) => groups_of(&m.groups),
            Ok(None) => Vec::new(),
            Err(e) => return self.store_error(conn, &e, req_id),
        };
        apply(&mut groups);
        let json = serde_json::to_string(&groups).unwrap_or_else(|_| "[]".into());
        if let Err(e) = self.store.set_member_groups(&member_id, &json) {
            return self.store_error(conn, &e, req_id);
        }
        for k in self.mesh_keys(&mesh) {
            if let Some(q) = self
                .presences
                .get_mut(&k)
                .filter(|q| q.member_id == member_id)
            {
                apply(&mut q.groups);
            }
        }
        if req_id.is_some() {
            self.reply_durable(conn, wire::Ack::done(req_id), Hub::durable_failure(req_id));
        }
    }

    fn admin_of(
        &mut self,
        conn: ConnId,
        pk: PKey,
        req_id: Option<&str>,
    ) -> Option<(String, String)> {
        let p = self.presences.get(&pk)?;
        let (mesh, member_id) = (p.mesh_id.clone(), p.member_id.clone());
        match self.store.member(&member_id) {
            Ok(Some(m)) if m.role == "admin" => Some((mesh, member_id)),
            Ok(_) => {
                self.error(
                    conn,
                    codes::FORBIDDEN,
                    "only an admin of the mesh may do that",
                    req_id,
                );
                None
            }
            Err(e) => {
                self.store_error(conn, &e, req_id);
                None
            }
        }
    }

    fn on_ban(&mut self, conn: ConnId, pk: PKey, target: &str, req_id: Option<&str>) {
        let Some((mesh, me)) = self.admin_of(conn, pk, req_id) else {
            return;
        };
        if target.is_empty() {
            return self.error(conn, "invalid", "target required", req_id);
        }
        let members = match self.store.members(&mesh) {
            Ok(x) => x,
            Err(e) => return self.store_error(conn, &e, req_id),
        };
        let found: Vec<_> = members
            .into_iter()
            .filter(|m| m.revoked_at.is_none())
            .filter(|m| {
                m.display_name == target
                    || m.pubkey == target
                    || (target.len() >= 8 && m.pubkey.starts_with(target))
            })
            .collect();
        let victim = match found.as_slice() {
            [] => {
                return self.error(
                    conn,
                    codes::NOT_FOUND,
                    format!("no member {target:?} in this mesh"),
                    req_id,
                );
            }
            [one] => one.clone(),
            _ => {
                return self.error(
                    conn,
                    "invalid",
                    format!("{target:?} matches {} members", found.len()),
                    req_id,
                );
            }
        };
        if victim.id == me {
            return self.error(conn, "invalid", "cannot ban yourself", req_id);
        }
        if let Err(e) = self.store.set_member_revoked(&victim.id, Some(now_ms())) {
            return self.store_error(conn, &e, req_id);
        }
        for k in self.mesh_keys(&mesh) {
            let Some(p) = self.presences.get(&k).filter(|p| p.member_id == victim.id) else {
                continue;
            };
            if let Some(c) = p.conn {
                self.close(c, 4002, "banned");
                self.conns.remove(&c);
                self.waiters.remove(&c);
            }
            self.remove_presence(k);
        }
        log::info("member banned", &[("mesh", &mesh), ("member", &victim.id)]);
        let ack = wire::BanAck {
            banned: victim.display_name,
            req_id: req_id.map(str::to_string),
        };
        self.reply_durable(conn, ack, Hub::durable_failure(req_id));
    }

    fn on_unban(&mut self, conn: ConnId, pk: PKey, target: &str, req_id: Option<&str>) {
        let Some((mesh, _)) = self.admin_of(conn, pk, req_id) else {
            return;
        };
        let members = match self.store.members(&mesh) {
            Ok(x) => x,
            Err(e) => return self.store_error(conn, &e, req_id),
        };
        let Some(m) = members
            .into_iter()
            .find(|m| m.revoked_at.is_some() && (m.display_name == target || m.pubkey == target))
        else {
            return self.error(
                conn,
                codes::NOT_FOUND,
                format!("no banned member {target:?} in this mesh"),
                req_id,
            );
        };
        if let Err(e) = self.store.set_member_revoked(&m.id, None) {
            return self.store_error(conn, &e, req_id);
        }
        let ack = wire::UnbanAck {
            unbanned: m.display_name,
            req_id: req_id.map(str::to_string),
        };
        self.reply_durable(conn, ack, Hub::durable_failure(req_id));
    }

    // ---- timers ----

    fn expire(&mut self, now: Instant) {
        let gone: Vec<PKey> = self
            .presences
            .iter()
            .filter(|(_, p)| p.grace_until.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for pk in gone {
            self.remove_presence(pk);
        }

        let waited: Vec<ConnId> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(c, _)| *c)
            .collect();
        for conn in waited {
            self.answer_waiter(conn, IfLost::Send);
        }

        // Redeliver pushes whose lease ran out, backing off per retry.
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
            let Some(p) = self.presences.get_mut(&pk) else {
                continue;
            };
            match d {
                Some(d) if deliverable(p.status, &d.priority) => {
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
                        },
                    );
                    if let Some(conn) = p.conn {
                        self.metrics.messages_out += 1;
                        self.emit(conn, Frame::Push(push_of(&d)), IfLost::Send);
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

impl Handler for Hub {
    fn on_open(&mut self, _io: &mut Io, conn: ConnId, _peer: SocketAddr) {
        self.conns.insert(conn, None);
    }

    fn on_text(&mut self, io: &mut Io, conn: ConnId, text: &str) {
        let Some(&state) = self.conns.get(&conn) else {
            return;
        };
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => return self.error(conn, codes::MALFORMED, "not a JSON object", None),
        };
        let req_id = str_of(&v, "_reqId").map(str::to_string);
        let ty = str_of(&v, "type");
        let Some(pk) = state else {
            return match ty {
                Some("hello") => self.authenticate(conn, &v, false, io.now()),
                Some("session_hello") => self.authenticate(conn, &v, true, io.now()),
                _ => self.error(
                    conn,
                    codes::NO_HELLO,
                    "must send hello first",
                    req_id.as_deref(),
                ),
            };
        };
        if matches!(ty, Some("hello" | "session_hello")) {
            return self.error(
                conn,
                codes::ALREADY_AUTHENTICATED,
                "this socket is already authenticated",
                req_id.as_deref(),
            );
        }
        match serde_json::from_value::<Frame>(v.clone()) {
            Ok(frame) => self.on_frame(
                conn,
                pk,
                frame,
                ty.unwrap_or_default(),
                req_id.as_deref(),
                io.now(),
            ),
            Err(e) => {
                // A send is matched to its ack by `id`; an error for it must carry that.
                let id =
                    req_id.or_else(|| (ty == Some("send")).then(|| opt_string(&v, "id")).flatten());
                self.error(
                    conn,
                    codes::MALFORMED,
                    format!("malformed {}: {e}", ty.unwrap_or("frame")),
                    id.as_deref(),
                );
            }
        }
    }

    fn on_close(&mut self, io: &mut Io, conn: ConnId, clean: bool) {
        self.waiters.remove(&conn);
        let Some(Some(pk)) = self.conns.remove(&conn) else {
            return;
        };
        let Some(p) = self.presences.get_mut(&pk).filter(|p| p.conn == Some(conn)) else {
            return;
        };
        if p.is_peer() && !clean {
            p.conn = None;
            p.grace_until = Some(io.now() + GRACE);
            p.inflight.clear();
            return;
        }
        self.remove_presence(pk);
    }

    fn on_http(&mut self, io: &mut Io, _conn: ConnId, req: &Request) -> HttpAction {
        HttpAction::Respond(self.http(io, req))
    }

    fn on_tick(&mut self, _io: &mut Io, now: Instant) {
        self.expire(now);
    }

    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    fn end_of_batch(&mut self, io: &mut Io) {
        self.settle(io);
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
