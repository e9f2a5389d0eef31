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
use super::cluster::Event;
use super::log;
use super::net::{ConnId, Handler, HttpAction, Io, Request};
use super::routing::{Bucket, Lease, Waiter};
use super::store::{SqliteStore, Store, new_id};
use crate::error::Result;
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, Frame, Group, Status, codes};

/// How long a session that dropped without a close frame keeps its presence for a silent reattach.
pub const GRACE: Duration = Duration::from_secs(90);

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
    /// Holds `broker.db` (without `database_url`), files' ciphertext and the like.
    pub data_dir: PathBuf,
    /// A `postgres://` URL: the store is that database instead of `<data_dir>/broker.db`.
    pub database_url: Option<String>,
    /// Needed for `POST /cli/mesh/create` from an address that is not loopback.
    pub admin_token: Option<String>,
    /// Live presences a mesh may have.
    pub max_conns_per_mesh: usize,
    /// `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// How long a push waits for `client_ack` before it is pushed again (doubling per retry).
    pub lease: Duration,
    /// The largest file upload, in plaintext bytes.
    pub max_file_bytes: u64,
    /// How long a task's claim outlives the last live session of the member holding it.
    pub task_lease: Duration,
    /// Serve `POST /debug/clock`, which moves the scheduler's clock (tests only).
    pub test_clock: bool,
    /// Put in front of the webhook URLs handed out (`https://mesh.example.com`, no trailing slash).
    pub public_url: Option<String>,
}

/// A presence's key in the hub: the id of the connection that created it (a reattach keeps it).
pub(super) type PKey = ConnId;

/// One authenticated presence: a live connection, or a session in its reconnect grace.
#[derive(Debug, Clone)]
pub(super) struct Presence {
    pub(super) id: String,
    /// `None` while in grace.
    pub(super) conn: Option<ConnId>,
    pub(super) grace_until: Option<Instant>,
    pub(super) mesh_id: String,
    pub(super) member_id: String,
    pub(super) member_pubkey: String,
    /// Set for a `session_hello` presence.
    pub(super) session_pubkey: Option<String>,
    /// Asked not to be pushed messages (`capabilities:["pull"]`).
    pub(super) pull: bool,
    pub(super) display_name: String,
    pub(super) status: Status,
    pub(super) summary: Option<String>,
    pub(super) groups: Vec<Group>,
    /// The member's role tag.
    pub(super) role_tag: Option<String>,
    pub(super) profile: wire::Profile,
    pub(super) visible: bool,
    pub(super) session_id: String,
    pub(super) pid: u32,
    pub(super) cwd: String,
    pub(super) hostname: Option<String>,
    pub(super) peer_type: Option<String>,
    pub(super) channel: Option<String>,
    pub(super) model: Option<String>,
    pub(super) connected_at: i64,
    /// Pushed deliveries waiting for `client_ack`, by delivery id.
    pub(super) inflight: HashMap<i64, Lease>,
    /// The last drain stopped at its window: more of the backlog follows as the pushed ones are acknowledged.
    pub(super) backlog: bool,
}

impl Presence {
    /// The routing key: the session key, else the member key.
    pub(super) fn pubkey(&self) -> &str {
        self.session_pubkey
            .as_deref()
            .unwrap_or(&self.member_pubkey)
    }
    /// Session presences are peers: announced, listed, reattachable. A pull session socket is an auxiliary
    /// socket of its session and is none of these.
    pub(super) fn is_peer(&self) -> bool {
        self.session_pubkey.is_some() && !self.pull
    }
    pub(super) fn pushable(&self) -> bool {
        self.conn.is_some() && !self.pull
    }
    pub(super) fn role(&self) -> &'static str {
        if self.session_pubkey.is_some() {
            "session"
        } else {
            "control-plane"
        }
    }
}

/// What to send instead when the batch's commit fails.
#[derive(Debug, Clone)]
pub(super) enum IfLost {
    /// Not about this batch's writes: send it anyway.
    Send,
    /// A push of a message that is not stored: drop it.
    Drop,
    /// A reply that promised a durable write: send this error instead. Kept unserialized: it goes out only when
    /// a commit fails, and serializing one per message for nothing was a share of every DM's cost.
    Instead(Box<Frame>),
}

#[derive(Debug, Clone)]
enum Outbound {
    Text(ConnId, String, IfLost),
    Close(ConnId, u16, String),
    /// An event on an event stream: name, id, data.
    Sse(ConnId, String, Option<String>, String, IfLost),
    /// Sent only if the batch's commit fails: the answer to a write that has no reply when it succeeds.
    OnlyIfLost(ConnId, Box<Frame>),
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
    pub(super) conns: HashMap<ConnId, Option<PKey>>,
    pub(super) presences: HashMap<PKey, Presence>,
    /// Presences per mesh, in connection order.
    pub(super) by_mesh: HashMap<String, BTreeSet<PKey>>,
    /// Presences per member id, in connection order: who a delivery reaches and whose leases an acknowledgement
    /// ends, without a walk through the whole mesh per message.
    pub(super) by_member: HashMap<String, Vec<PKey>>,
    /// The member id of each member key with a presence here, by (mesh, member key): a DM to a connected member
    /// is routed without a query. A revocation ends the member's presences, so every key here is in good standing.
    pub(super) by_member_key: HashMap<(String, String), String>,
    /// Peer (non-pull session) presences by (mesh, session key).
    pub(super) by_session: HashMap<(String, String), PKey>,
    pub(super) waiters: HashMap<ConnId, Waiter>,
    pub(super) buckets: HashMap<String, Bucket>,
    outbox: Vec<Outbound>,
    /// Leases started by pushes of this batch's messages: forgotten if the batch is lost.
    pub(super) batch_leases: Vec<(PKey, i64)>,
    pub(super) topic_state: super::topics::TopicState,
    /// File uploads and downloads under way, per connection.
    pub(super) transfers: super::files::Transfers,
    pub(super) sched: super::schedule::Scheduler,
    /// Every member's grants and blocks, so a message's path asks no query of them.
    pub(super) grants: super::grants::Grants,
    seen_hellos: auth::SeenHellos,
    /// When the last commit that had writes failed, and why; `None` once one succeeds again.
    pub(super) write_failure: Option<(i64, String)>,
    /// This broker's part in a database other brokers share (PostgreSQL); `None` on SQLite.
    pub(super) cluster: Option<super::cluster::Cluster>,
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
        // Counting the live ones walks the whole mesh; below the limit in all, there is no need (ten thousand
        // hellos in one mesh walked fifty million presences).
        let all = self.by_mesh.get(mesh_id).map_or(0, BTreeSet::len);
        let elsewhere = if all < self.cfg.max_conns_per_mesh && self.cluster.is_some() {
            self.elsewhere(mesh_id).iter().filter(|r| !r.pull).count()
        } else {
            0
        };
        all + elsewhere >= self.cfg.max_conns_per_mesh
            && self.live_in_mesh(mesh_id) >= self.cfg.max_conns_per_mesh
    }
}

pub(super) fn groups_of(json: &str) -> Vec<Group> {
    serde_json::from_str(json).unwrap_or_default()
}

/// `@eng` reaches `eng` and `eng/backend`.
pub(super) fn in_group(groups: &[Group], target: &str) -> bool {
    groups.iter().any(|g| {
        g.name == target
            || (g.name.len() > target.len()
                && g.name.starts_with(target)
                && g.name.as_bytes()[target.len()] == b'/')
    })
}

pub(super) fn str_of<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

pub(super) fn opt_string(v: &Value, name: &str) -> Option<String> {
    str_of(v, name)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl From<&super::Options> for HubConfig {
    fn from(o: &super::Options) -> HubConfig {
        HubConfig {
            data_dir: o.data.clone(),
            database_url: o.database_url.clone(),
            admin_token: o.admin_token.clone(),
            max_conns_per_mesh: o.max_conns_per_mesh,
            rate_limit: o
                .rate_limit
                .map(|(per_second, burst)| RateLimit { per_second, burst }),
            lease: o.lease,
            max_file_bytes: o.max_file_bytes,
            task_lease: o.task_lease,
            test_clock: o.test_clock,
            public_url: o.public_url.clone(),
        }
    }
}

/// The store `cfg` names.
fn open_store(cfg: &HubConfig) -> Result<Box<dyn Store>> {
    match &cfg.database_url {
        None => Ok(Box::new(SqliteStore::open(&cfg.data_dir)?)),
        #[cfg(feature = "postgres")]
        Some(url) => Ok(Box::new(super::store::PgStore::open(url)?)),
        #[cfg(not(feature = "postgres"))]
        Some(_) => Err(crate::error::Error::usage(
            "--database-url: this cm-broker was built without PostgreSQL (cargo feature postgres)",
        )),
    }
}

impl Hub {
    /// Opens the store under `opts.data`, with no connections yet.
    pub fn open(opts: &super::Options) -> Result<Hub> {
        Hub::with_config(HubConfig::from(opts))
    }

    /// Opens the store: the database at `cfg.database_url`, else SQLite under `cfg.data_dir`.
    pub fn with_config(cfg: HubConfig) -> Result<Hub> {
        let mut store = open_store(&cfg)?;
        super::files::sweep(store.as_mut(), &cfg.data_dir);
        Hub::with_store(store, cfg)
    }

    /// The store as the start's log line names it: `sqlite`, or `postgres HOST:PORT/DBNAME` (no password).
    pub fn store_label(&self) -> String {
        match &self.cfg.database_url {
            #[cfg(feature = "postgres")]
            Some(url) => match super::store::pg::parse_url(url) {
                Ok((c, _)) => format!("postgres {}", super::store::pg::label(&c)),
                Err(_) => "postgres".into(),
            },
            _ => self.store.backend().into(),
        }
    }

    /// A hub over any store.
    pub fn with_store(store: Box<dyn Store>, cfg: HubConfig) -> Result<Hub> {
        let grants = super::grants::Grants::load(&*store)?;
        let cluster = store.listen()?.map(super::cluster::Cluster::new);
        let mut hub = Hub {
            grants,
            store,
            cfg,
            started: Instant::now(),
            metrics: Metrics::default(),
            conns: HashMap::new(),
            presences: HashMap::new(),
            by_mesh: HashMap::new(),
            by_member: HashMap::new(),
            by_member_key: HashMap::new(),
            by_session: HashMap::new(),
            waiters: HashMap::new(),
            buckets: HashMap::new(),
            outbox: Vec::new(),
            batch_leases: Vec::new(),
            transfers: Default::default(),
            sched: super::schedule::Scheduler::new(),
            seen_hellos: auth::SeenHellos::default(),
            write_failure: None,
            topic_state: Default::default(),
            cluster,
        };
        if hub.cluster.is_some() {
            // Known to the other brokers before the first connection arrives.
            hub.beat(Instant::now());
            hub.store.commit()?;
        }
        Ok(hub)
    }

    /// Presences with a live connection in the mesh (the capacity count).
    fn live_in_mesh(&self, mesh_id: &str) -> usize {
        self.by_mesh.get(mesh_id).map_or(0, |set| {
            set.iter()
                .filter(|pk| self.presences.get(pk).is_some_and(|p| p.conn.is_some()))
                .count()
        })
    }

    /// Who speaks on a presence: its mesh, member id and display name, owned, for handlers that then borrow
    /// the hub mutably.
    pub(super) fn speaker(&self, pk: PKey) -> Option<(String, String, String)> {
        self.presences.get(&pk).map(|p| {
            (
                p.mesh_id.clone(),
                p.member_id.clone(),
                p.display_name.clone(),
            )
        })
    }

    /// Presences (live or in grace) of the whole broker.
    pub(super) fn presence_count(&self) -> usize {
        self.presences.len()
    }

    pub(super) fn mesh_keys(&self, mesh_id: &str) -> Vec<PKey> {
        self.by_mesh
            .get(mesh_id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    // ---- output ----

    pub(super) fn emit(&mut self, conn: ConnId, frame: Frame, if_lost: IfLost) {
        self.emit_text(conn, frame.to_json(), if_lost);
    }

    /// [`Hub::emit`] for a frame already serialized.
    pub(super) fn emit_text(&mut self, conn: ConnId, text: String, if_lost: IfLost) {
        self.outbox.push(Outbound::Text(conn, text, if_lost));
    }

    pub(super) fn emit_sse(
        &mut self,
        conn: ConnId,
        event: &str,
        id: Option<&str>,
        data: String,
        if_lost: IfLost,
    ) {
        let (event, id) = (event.to_string(), id.map(str::to_string));
        self.outbox
            .push(Outbound::Sse(conn, event, id, data, if_lost));
    }

    pub(super) fn reply(&mut self, conn: ConnId, frame: impl Into<Frame>) {
        self.emit(conn, frame.into(), IfLost::Send);
    }

    /// A reply that reports a write of this batch; `instead` goes out if the write is not committed.
    pub(super) fn reply_durable(
        &mut self,
        conn: ConnId,
        frame: impl Into<Frame>,
        instead: impl Into<Frame>,
    ) {
        self.emit(
            conn,
            frame.into(),
            IfLost::Instead(Box::new(instead.into())),
        );
    }

    /// `frame` goes out only if this batch's commit fails.
    pub(super) fn reply_if_lost(&mut self, conn: ConnId, frame: impl Into<Frame>) {
        self.outbox
            .push(Outbound::OnlyIfLost(conn, Box::new(frame.into())));
    }

    pub(super) fn count_error(&mut self, code: &str) {
        *self.metrics.errors.entry(code.to_string()).or_default() += 1;
    }

    pub(super) fn error(
        &mut self,
        conn: ConnId,
        code: &str,
        message: impl Into<String>,
        req_id: Option<&str>,
    ) {
        self.count_error(code);
        let message = message.into();
        if code == codes::FORBIDDEN {
            log::warn(
                "request refused",
                &[("conn", &conn), ("code", &code), ("reason", &message)],
            );
        }
        self.reply(
            conn,
            wire::ErrorFrame::new(code, message).with_req_id(req_id),
        );
    }

    /// An error for a request whose write failed; the batch may be lost, the answer is not.
    pub(super) fn store_error(
        &mut self,
        conn: ConnId,
        e: &crate::error::Error,
        req_id: Option<&str>,
    ) {
        log::error("store request failed", &[("error", e)]);
        self.error(
            conn,
            "internal",
            format!("broker storage error: {e}"),
            req_id,
        );
    }

    pub(super) fn durable_failure(req_id: Option<&str>) -> wire::ErrorFrame {
        wire::ErrorFrame::new(
            "internal",
            "broker storage error: the change was not saved; retry",
        )
        .with_req_id(req_id)
    }

    pub(super) fn ack_done(&mut self, conn: ConnId, req_id: Option<&str>) {
        if req_id.is_some() {
            self.reply(conn, wire::Ack::done(req_id));
        }
    }

    pub(super) fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        self.outbox
            .push(Outbound::Close(conn, code, reason.to_string()));
    }

    /// Commits the open transaction and hands the outbox to the transport: as written if the commit held, with
    /// the failure replies otherwise.
    pub(super) fn settle(&mut self, io: &mut Io) -> bool {
        let ok = match self.store.commit() {
            Ok(wrote) => {
                if wrote {
                    self.write_failure = None;
                }
                true
            }
            Err(e) => {
                self.write_failure = Some((now_ms(), e.to_string()));
                self.metrics.commit_failures += 1;
                log::error(
                    "commit failed; the batch's requests are answered with errors",
                    &[("error", &e)],
                );
                for (pk, id) in std::mem::take(&mut self.batch_leases) {
                    if let Some(p) = self.presences.get_mut(&pk) {
                        p.inflight.remove(&id);
                    }
                }
                self.reload_grants();
                false
            }
        };
        self.batch_leases.clear();
        for out in std::mem::take(&mut self.outbox) {
            match out {
                Outbound::Text(conn, text, lost) => match (ok, lost) {
                    (true, _) | (false, IfLost::Send) => io.send(conn, text),
                    (false, IfLost::Drop) => {}
                    (false, IfLost::Instead(frame)) => io.send(conn, frame.to_json()),
                },
                Outbound::Close(conn, code, reason) => io.close(conn, code, &reason),
                Outbound::OnlyIfLost(conn, frame) => {
                    if !ok {
                        io.send(conn, frame.to_json());
                    }
                }
                Outbound::Sse(conn, event, id, data, lost) => {
                    if ok || matches!(lost, IfLost::Send) {
                        io.sse_event(conn, &event, id.as_deref(), &data);
                    }
                }
            }
        }
        ok
    }

    /// A system event to every other live, push-capable connection of the mesh.
    pub(super) fn announce(&mut self, mesh_id: &str, except: PKey, event: &str, data: Value) {
        let push = wire::Push::system(mesh_id, &new_id(), &fmt_rfc3339(now_ms()), event, data);
        let text = Frame::Push(push).to_json();
        self.tell(Event::Mesh {
            mesh: mesh_id.to_string(),
            frame: text.clone(),
            all: false,
        });
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
                    .push(Outbound::Text(conn, text.clone(), IfLost::Send));
            }
        }
    }

    /// A system event about a change made in this batch, to every live, push-capable connection of the mesh but
    /// the one that made it (`except`); dropped if the change is not committed.
    pub(super) fn announce_change(
        &mut self,
        mesh_id: &str,
        except: Option<ConnId>,
        event: &str,
        data: Value,
    ) {
        let push = wire::Push::system(mesh_id, &new_id(), &fmt_rfc3339(now_ms()), event, data);
        let frame = Frame::Push(push);
        self.tell(Event::Mesh {
            mesh: mesh_id.to_string(),
            frame: frame.to_json(),
            all: false,
        });
        let conns: Vec<ConnId> = self
            .mesh_keys(mesh_id)
            .iter()
            .filter_map(|pk| self.presences.get(pk))
            .filter(|p| p.pushable())
            .filter_map(|p| p.conn)
            .filter(|c| Some(*c) != except)
            .collect();
        for c in conns {
            self.emit(c, frame.clone(), IfLost::Drop);
        }
    }

    // ---- presences ----

    fn authenticate(&mut self, conn: ConnId, v: &Value, session: bool, io: &Io) {
        let (now, peer) = (io.now(), io.peer_addr(conn));
        let verified = if session {
            auth::session_hello(v, now_ms(), self, self.store.as_ref())
        } else {
            auth::hello(v, now_ms(), self, self.store.as_ref())
        };
        let verified = match verified {
            Ok(x) => x,
            Err(r) => return self.refuse(conn, peer, &r),
        };
        // A captured hello must not open a second socket, nor take a live session's over.
        if !self.seen_hellos.first_use(verified.replay_key, now_ms()) {
            let r = Refusal {
                code: codes::REPLAYED,
                message: "this signed hello was used already; sign a new one".into(),
            };
            return self.refuse(conn, peer, &r);
        }
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

        // A session key speaks for one member: another member's attestation cannot take a live one over.
        if let Some(sp) = &verified.session_pubkey
            && let Some(p) = self
                .by_session
                .get(&(mesh.id.clone(), sp.clone()))
                .and_then(|pk| self.presences.get(pk))
            && p.member_id != member.id
        {
            let r = Refusal {
                code: codes::UNAUTHORIZED,
                message: "session key belongs to another member".into(),
            };
            return self.refuse(conn, peer, &r);
        }
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
            // Back within the grace: peers were told it left, so they are told it is back.
            let back = old.is_none();
            if let Some(p) = self.presences.get_mut(&pk) {
                p.conn = Some(conn);
                p.grace_until = None;
                p.inflight.clear();
                p.display_name = display_name;
                p.session_id = session_id;
                p.cwd = cwd;
                p.pid = pid;
                if back {
                    let data =
                        json!({"name": p.display_name, "pubkey": p.pubkey(), "groups": p.groups});
                    self.announce(&mesh.id, pk, "peer_joined", data);
                }
            }
            self.touch(pk);
            pk
        } else {
            let defaults = self.member_defaults(&member.id);
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
                status: defaults
                    .status
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_default(),
                summary: defaults.summary,
                groups,
                role_tag: member.role_tag.clone(),
                profile: wire::Profile::default(),
                visible: defaults.visible,
                session_id,
                pid,
                cwd,
                hostname: opt_string(v, "hostname"),
                peer_type: opt_string(v, "peerType"),
                channel: opt_string(v, "channel"),
                model: opt_string(v, "model"),
                connected_at: now_ms(),
                inflight: HashMap::new(),
                backlog: false,
            };
            let pk = conn;
            if p.is_peer() {
                self.by_session
                    .insert((mesh.id.clone(), p.pubkey().to_string()), pk);
            }
            let announce = p.is_peer();
            let data = json!({"name": p.display_name, "pubkey": p.pubkey(), "groups": p.groups});
            self.by_mesh.entry(mesh.id.clone()).or_default().insert(pk);
            let of_member = self.by_member.entry(member.id.clone()).or_default();
            if of_member.is_empty() {
                self.by_member_key
                    .insert((mesh.id.clone(), member.pubkey.clone()), member.id.clone());
            }
            of_member.push(pk);
            self.presences.insert(pk, p);
            self.touch(pk);
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
            features: Some(wire::FEATURES.iter().map(|f| f.to_string()).collect()),
            ..wire::HelloAck::default()
        };
        self.reply(conn, ack);
        self.drain(pk, now);
    }

    fn refuse(&mut self, conn: ConnId, peer: Option<SocketAddr>, r: &Refusal) {
        let peer = peer.map_or_else(|| "-".to_string(), |p| p.to_string());
        log::warn(
            "hello refused",
            &[
                ("conn", &conn),
                ("peer", &peer),
                ("code", &r.code),
                ("reason", &r.message),
            ],
        );
        self.error(conn, r.code, r.message.clone(), None);
        self.close(conn, r.close_code(), r.code);
    }

    /// Removes a presence for good, with `peer_left` if it was a peer.
    fn remove_presence(&mut self, pk: PKey) {
        self.touch(pk);
        let Some(p) = self.presences.remove(&pk) else {
            return;
        };
        if let Some(keys) = self.by_member.get_mut(&p.member_id) {
            keys.retain(|k| *k != pk);
            if keys.is_empty() {
                self.by_member.remove(&p.member_id);
                self.by_member_key
                    .remove(&(p.mesh_id.clone(), p.member_pubkey.clone()));
            }
        }
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
        }
        // A presence without a socket (in its grace) was announced gone when the socket dropped.
        if p.is_peer() && p.conn.is_some() {
            self.announce(
                &p.mesh_id,
                pk,
                "peer_left",
                json!({"name": p.display_name, "pubkey": p.pubkey()}),
            );
        }
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
            Frame::ClientAck(a) => self.on_client_ack(conn, pk, a),
            Frame::InboxFetch(f) => self.on_inbox_fetch(conn, pk, f, now),
            Frame::MessageStatus(m) => self.on_message_status(conn, pk, m),
            Frame::ListPeers(l) => self.on_list_peers(conn, pk, l.req_id.as_deref()),
            Frame::Members(m) => self.on_members(conn, pk, m.req_id.as_deref()),
            Frame::SetStatus(s) => self.on_set_status(conn, pk, s, now),
            Frame::SetSummary(s) => self.on_set_summary(conn, pk, s),
            Frame::SetVisible(s) => self.on_set_visible(conn, pk, s),
            Frame::SetProfile(s) => self.on_set_profile(conn, pk, s),
            Frame::GetProfile(g) => self.on_get_profile(conn, pk, g.req_id.as_deref()),
            Frame::JoinGroup(g) => self.on_group(
                conn,
                pk,
                &g.name,
                Some(g.role.as_deref()),
                g.req_id.as_deref(),
            ),
            Frame::LeaveGroup(g) => self.on_group(conn, pk, &g.name, None, g.req_id.as_deref()),
            Frame::SetState(s) => self.on_set_state(conn, pk, s),
            Frame::DelState(s) => self.on_del_state(conn, pk, s),
            Frame::GetState(s) => self.on_get_state(conn, pk, s),
            Frame::ListState(l) => self.on_list_state(conn, pk, l.req_id.as_deref()),
            Frame::Remember(r) => self.on_remember(conn, pk, r),
            Frame::Recall(r) => self.on_recall(conn, pk, r),
            Frame::Forget(f) => self.on_forget(conn, pk, f),
            Frame::CreateTask(c) => self.on_create_task(conn, pk, c),
            Frame::ClaimTask(c) => self.on_claim_task(conn, pk, c),
            Frame::CompleteTask(c) => self.on_complete_task(conn, pk, c),
            Frame::ReleaseTask(r) => self.on_release_task(conn, pk, r),
            Frame::ListTasks(l) => self.on_list_tasks(conn, pk, l),
            Frame::ShareContext(c) => self.on_share_context(conn, pk, c),
            Frame::GetContext(g) => self.on_get_context(conn, pk, g),
            Frame::ListContexts(l) => self.on_list_contexts(conn, pk, l),
            Frame::ReservePaths(r) => self.on_reserve_paths(conn, pk, r),
            Frame::ReleasePaths(r) => self.on_release_paths(conn, pk, r),
            Frame::ListReservations(l) => self.on_list_reservations(conn, pk, l),
            Frame::VaultSet(v) => self.on_vault_set(conn, pk, v),
            Frame::VaultGet(g) => self.on_vault_get(conn, pk, g),
            Frame::VaultList(l) => self.on_vault_list(conn, pk, l),
            Frame::VaultDelete(d) => self.on_vault_delete(conn, pk, d),
            Frame::GrantSet(g) => self.on_grant_set(conn, pk, g),
            Frame::GrantBlock(b) => self.on_grant_block(conn, pk, b),
            Frame::GrantList(l) => self.on_grant_list(conn, pk, l),
            Frame::CreateWebhook(c) => self.on_create_webhook(conn, pk, c),
            Frame::ListWebhooks(l) => self.on_list_webhooks(conn, pk, l),
            Frame::DeleteWebhook(d) => self.on_delete_webhook(conn, pk, d),
            Frame::Schedule(s) => self.on_schedule(conn, pk, s, now),
            Frame::ListScheduled(l) => self.on_list_scheduled(conn, pk, l.req_id.as_deref()),
            Frame::CancelScheduled(c) => self.on_cancel_scheduled(conn, pk, c, now),
            Frame::Ban(b) => self.on_ban(conn, pk, &b.target, b.req_id.as_deref()),
            Frame::Unban(b) => self.on_unban(conn, pk, &b.target, b.req_id.as_deref()),
            Frame::FilePut(f) => self.on_file_put(conn, pk, f),
            Frame::FileChunk(c) => self.on_file_chunk(conn, c),
            Frame::FilePutDone(d) => self.on_file_put_done(conn, d),
            Frame::FileGet(g) => self.on_file_get(conn, pk, g),
            Frame::FileChunkAck(a) => self.on_file_chunk_ack(conn, a),
            Frame::FileList(l) => self.on_file_list(conn, pk, l),
            Frame::FileRm(r) => self.on_file_rm(conn, pk, r),
            f @ (Frame::TopicCreate(_)
            | Frame::TopicList(_)
            | Frame::TopicJoin(_)
            | Frame::TopicLeave(_)
            | Frame::TopicMembers(_)
            | Frame::TopicHistory(_)
            | Frame::TopicMarkRead(_)
            | Frame::TopicKey(_)
            | Frame::TopicPendingSeals(_)
            | Frame::TopicSeal(_)
            | Frame::NotificationsList(_)
            | Frame::NotificationsRead(_)) => self.on_topic_frame(conn, pk, f),
            f @ (Frame::ApikeyCreate(_) | Frame::ApikeyList(_) | Frame::ApikeyRevoke(_)) => {
                self.on_apikey_frame(conn, pk, f)
            }
            _ => self.error(
                conn,
                "unknown_type",
                format!("unknown message type {ty:?}"),
                req_id,
            ),
        }
    }

    fn on_list_peers(&mut self, conn: ConnId, pk: PKey, req_id: Option<&str>) {
        let Some(me) = self.presences.get(&pk) else {
            return;
        };
        let mut peers: Vec<wire::Peer> = self
            .mesh_keys(&me.mesh_id)
            .iter()
            .filter_map(|k| self.presences.get(k))
            // A presence in its reconnect grace has no socket: to peers it is gone (what `send` says too), and
            // the grace only keeps its queue and lease for a reconnect.
            .filter(|p| super::cluster::listed(p))
            .filter(|p| p.visible || p.member_id == me.member_id)
            .map(super::cluster::listing)
            .collect();
        peers.extend(self.peers_elsewhere(&me.mesh_id, &me.member_id));
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
        let mut online: HashSet<String> = self
            .mesh_keys(&mesh)
            .iter()
            .filter_map(|k| self.presences.get(k))
            .filter(|p| p.conn.is_some())
            .map(|p| p.member_id.clone())
            .collect();
        online.extend(self.elsewhere(&mesh).into_iter().map(|r| r.member_id));
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
        self.end_member(&victim.id);
        self.tell(Event::Banned {
            member: victim.id.clone(),
        });
        log::info("member banned", &[("mesh", &mesh), ("member", &victim.id)]);
        let ack = wire::BanAck {
            banned: victim.display_name,
            req_id: req_id.map(str::to_string),
        };
        self.reply_durable(conn, ack, Hub::durable_failure(req_id));
    }

    /// Ends every presence of a banned member here.
    pub(super) fn end_member(&mut self, member_id: &str) {
        let keys: Vec<PKey> = self.by_member.get(member_id).cloned().unwrap_or_default();
        for k in keys {
            if let Some(c) = self.presences.get(&k).and_then(|p| p.conn) {
                self.close(c, 4002, "banned");
                self.conns.remove(&c);
                self.waiters.remove(&c);
            }
            self.remove_presence(k);
        }
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
            self.answer_waiter(conn, false);
        }
        self.redeliver(now);
        self.sweep_task_leases();
        self.sweep_reservations();
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
        // An authenticated socket's frames are read straight into their types, once. The JSON tree below is for
        // a hello, a frame that does not fit, and the few types that do not carry the `_reqId` an error echoes.
        if let Some(pk) = state
            && let Ok(frame) = serde_json::from_str::<Frame>(text)
            && !matches!(
                frame,
                Frame::Hello(_)
                    | Frame::SessionHello(_)
                    | Frame::HelloAck(_)
                    | Frame::Error(_)
                    | Frame::Push(_)
                    | Frame::StateChange(_)
                    | Frame::Unknown
            )
        {
            let ty = frame.type_name();
            let req_id = frame.req_id().map(str::to_string);
            return self.on_frame(conn, pk, frame, ty, req_id.as_deref(), io.now());
        }
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => return self.error(conn, codes::MALFORMED, "not a JSON object", None),
        };
        let req_id = str_of(&v, "_reqId").map(str::to_string);
        let ty = str_of(&v, "type");
        let Some(pk) = state else {
            return match ty {
                Some("hello") => self.authenticate(conn, &v, false, io),
                Some("session_hello") => self.authenticate(conn, &v, true, io),
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
        self.forget_stream(conn);
        self.waiters.remove(&conn);
        self.files_closed(conn);
        let Some(Some(pk)) = self.conns.remove(&conn) else {
            return;
        };
        let Some(p) = self.presences.get_mut(&pk).filter(|p| p.conn == Some(conn)) else {
            return;
        };
        if p.is_peer() && !clean {
            // Gone to everyone at once, as in `list_peers`; the grace only keeps the queue and lease for a
            // silent reattach of the same session key.
            if let Some(c) = self.cluster.as_mut() {
                c.touch_id(pk, &p.id);
            }
            p.conn = None;
            p.grace_until = Some(io.now() + GRACE);
            p.inflight.clear();
            let (mesh, data) = (
                p.mesh_id.clone(),
                json!({"name": p.display_name, "pubkey": p.pubkey()}),
            );
            self.announce(&mesh, pk, "peer_left", data);
            return;
        }
        self.remove_presence(pk);
    }

    fn on_http(&mut self, io: &mut Io, conn: ConnId, req: &Request) -> HttpAction {
        let action = if req.path == "/api/v1" || req.path.starts_with("/api/v1/") {
            self.rest(io, conn, req)
        } else {
            HttpAction::Respond(self.http(io, req))
        };
        if let HttpAction::Respond(resp) = &action {
            Hub::log_refused(req, resp);
        }
        action
    }

    fn on_tick(&mut self, _io: &mut Io, now: Instant) {
        self.expire(now);
        self.beat(now);
        self.fire_due(now);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.sched.deadline
    }

    fn end_of_batch(&mut self, io: &mut Io) {
        self.send_news();
        self.settle(io);
    }

    fn wake(&self) -> Option<std::sync::Arc<super::net::Wake>> {
        self.cluster.as_ref().map(super::cluster::Cluster::wake)
    }

    fn on_wake(&mut self, io: &mut Io) {
        self.hear(io.now());
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
