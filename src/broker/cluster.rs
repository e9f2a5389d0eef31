//! Several brokers on one database: what one broker tells the others, and what it does with what they tell it.
//!
//! The store is the truth; the events only say where to look. A message stored by broker A has its delivery ids
//! sent to the others with A's commit (`NOTIFY` in the batch's transaction), and a broker with a recipient's
//! connection reads each delivery back and pushes it under a lease of its own, as if it had stored it. System
//! pushes (peers coming and going, state, tasks, topics) go as the frame itself, since they are not stored; an
//! event larger than a `NOTIFY` payload is kept in the store and sent by reference.
//!
//! Presences: each broker writes a row per live presence it serves (with the batch, so a row never outlives the
//! commit that ended it) and refreshes its own row in `brokers` every [`BEAT`]. A broker silent for [`ALIVE`] is
//! dead: its presences stop counting at once and the first broker to notice deletes them and announces them gone.
//! Its unacknowledged pushes are still pending in the store, so its clients get them again wherever they reconnect.
//!
//! When the listening connection is lost and comes back, what was sent meanwhile is gone: the broker drains every
//! presence's backlog from the store again, reads the grants back and rearms its timer, so a gap delays pushes but
//! loses none.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::hub::{Hub, IfLost, PKey, Presence};
use super::log;
use super::net::ConnId;
use super::store::{Listener, Notice, PresenceRow, new_id};
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire;

/// How often a broker says it is alive.
pub(super) const BEAT: Duration = Duration::from_secs(5);
/// How long a broker may stay silent before the others take it for dead.
pub(super) const ALIVE: Duration = Duration::from_secs(20);
/// What a `NOTIFY` payload may hold (PostgreSQL's limit is 8000 bytes), with room for the envelope.
const PAYLOAD: usize = 7800;
/// How long an event kept in the store for its reference stays readable.
const KEEP_STORED: Duration = Duration::from_secs(300);

/// One broker's news for the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(super) enum Event {
    /// Stored deliveries, for the recipients' connections.
    Deliver { ids: Vec<i64> },
    /// A frame for the mesh's connections: every one (`all`), or those that take pushes.
    Mesh {
        mesh: String,
        frame: String,
        all: bool,
    },
    /// A frame for these members' connections that take pushes.
    Members {
        mesh: String,
        members: Vec<String>,
        frame: String,
    },
    /// An event for the topic's event streams.
    Stream {
        topic: String,
        id: String,
        data: String,
    },
    /// Grants or blocks changed: read them back.
    Grants,
    /// A member was banned: its connections end.
    Banned { member: String },
    /// Schedules were added, fired or cancelled: the timer looks again.
    Schedules,
    /// An event too large for a payload, kept in the store.
    Stored { id: i64 },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The sending broker.
    b: String,
    e: Vec<Event>,
}

/// A broker's part in a database several brokers share.
pub(super) struct Cluster {
    pub(super) id: String,
    started_at: i64,
    listener: Listener,
    /// This batch's events, sent with its commit.
    out: Vec<Event>,
    /// This batch's delivery ids.
    deliveries: Vec<i64>,
    /// Presences whose row this batch writes or removes, with their ids.
    dirty: HashMap<PKey, String>,
    next_beat: Instant,
    /// Other brokers alive at the last beat.
    pub(super) others: usize,
}

impl Cluster {
    pub(super) fn new(listener: Listener) -> Cluster {
        Cluster {
            id: new_id(),
            started_at: now_ms(),
            listener,
            out: Vec::new(),
            deliveries: Vec::new(),
            dirty: HashMap::new(),
            next_beat: Instant::now(),
            others: 0,
        }
    }

    /// A presence's row changes with this batch (for a caller that holds the presence borrowed).
    pub(super) fn touch_id(&mut self, pk: PKey, id: &str) {
        self.dirty.insert(pk, id.to_string());
    }

    pub(super) fn wake(&self) -> std::sync::Arc<super::net::Wake> {
        std::sync::Arc::clone(&self.listener.wake)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How a presence shows in `list_peers`.
pub(super) fn listing(p: &Presence) -> wire::Peer {
    wire::Peer {
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
        role_tag: p.role_tag.clone(),
    }
}

/// Whether a presence is listed at all: a live one, but not a pull session socket (its session's auxiliary).
pub(super) fn listed(p: &Presence) -> bool {
    p.conn.is_some() && !(p.pull && p.session_pubkey.is_some())
}

impl Hub {
    /// The presence's row changes with this batch.
    pub(super) fn touch(&mut self, pk: PKey) {
        if let (Some(c), Some(p)) = (self.cluster.as_mut(), self.presences.get(&pk)) {
            c.dirty.insert(pk, p.id.clone());
        }
    }

    /// Tells the other brokers, with this batch's commit.
    pub(super) fn tell(&mut self, event: Event) {
        if let Some(c) = self.cluster.as_mut() {
            c.out.push(event);
        }
    }

    /// Deliveries of this batch, for the other brokers' connections of their recipients.
    pub(super) fn tell_deliveries(&mut self, ids: &[i64]) {
        if let Some(c) = self.cluster.as_mut() {
            c.deliveries.extend_from_slice(ids);
        }
    }

    /// The presences of the mesh on the other brokers that are alive.
    pub(super) fn elsewhere(&self, mesh_id: &str) -> Vec<PresenceRow> {
        let Some(c) = &self.cluster else {
            return Vec::new();
        };
        match self
            .store
            .presences_elsewhere(mesh_id, &c.id, millis(ALIVE))
        {
            Ok(rows) => rows,
            Err(e) => {
                log::error(
                    "reading the other brokers' presences failed",
                    &[("error", &e)],
                );
                Vec::new()
            }
        }
    }

    /// Writes this batch's presence rows and events into its transaction, just before the commit.
    pub(super) fn send_news(&mut self) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let dirty = std::mem::take(&mut c.dirty);
        let mut events = std::mem::take(&mut c.out);
        let deliveries = std::mem::take(&mut c.deliveries);
        let me = c.id.clone();
        for (pk, id) in dirty {
            let r = match self.presences.get(&pk).filter(|p| listed(p) && p.id == id) {
                Some(p) => {
                    let row = PresenceRow {
                        id: p.id.clone(),
                        broker_id: me.clone(),
                        mesh_id: p.mesh_id.clone(),
                        member_id: p.member_id.clone(),
                        pull: p.pull,
                        visible: p.visible,
                        groups: serde_json::to_string(&p.groups).unwrap_or_else(|_| "[]".into()),
                        listing: serde_json::to_string(&listing(p)).unwrap_or_default(),
                    };
                    self.store.presence_put(&row)
                }
                None => self.store.presence_drop(&id),
            };
            if let Err(e) = r {
                log::error(
                    "writing a presence for the other brokers failed",
                    &[("error", &e)],
                );
            }
        }
        // Ids in payload-sized pieces: about 12 bytes each.
        for chunk in deliveries.chunks(PAYLOAD / 12) {
            events.push(Event::Deliver {
                ids: chunk.to_vec(),
            });
        }
        if events.is_empty() {
            return;
        }
        let head = format!("{{\"b\":{},\"e\":[", json!(me));
        let mut payload = head.clone();
        let mut pieces = Vec::new();
        for ev in events {
            let mut text = serde_json::to_string(&ev).unwrap_or_default();
            if text.len() + head.len() + 2 > PAYLOAD {
                match self.store.relay_store(&text, now_ms()) {
                    Ok(id) => {
                        text = serde_json::to_string(&Event::Stored { id }).unwrap_or_default()
                    }
                    Err(e) => {
                        log::error(
                            "keeping an event for the other brokers failed",
                            &[("error", &e)],
                        );
                        continue;
                    }
                }
            }
            if payload.len() + text.len() + 2 > PAYLOAD {
                pieces.push(std::mem::replace(&mut payload, head.clone()));
            }
            if !payload.ends_with('[') {
                payload.push(',');
            }
            payload.push_str(&text);
        }
        pieces.push(payload);
        for mut p in pieces {
            if p.ends_with('[') {
                continue;
            }
            p.push_str("]}");
            if let Err(e) = self.store.relay(&p) {
                log::error("telling the other brokers failed", &[("error", &e)]);
            }
        }
    }

    /// Says this broker is alive, and ends the presences of the brokers that are not. Called from the tick.
    pub(super) fn beat(&mut self, now: Instant) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if now < c.next_beat {
            return;
        }
        c.next_beat = now + BEAT;
        let (id, started_at) = (c.id.clone(), c.started_at);
        match self.store.broker_seen(&id, started_at, millis(ALIVE)) {
            Ok(n) => {
                if let Some(c) = self.cluster.as_mut() {
                    c.others = n;
                }
            }
            Err(e) => log::error("saying this broker is alive failed", &[("error", &e)]),
        }
        let gone = match self.store.brokers_gone(millis(ALIVE)) {
            Ok(g) => g,
            Err(e) => {
                log::error("forgetting silent brokers failed", &[("error", &e)]);
                Vec::new()
            }
        };
        for row in gone {
            let Ok(peer) = serde_json::from_str::<wire::Peer>(&row.listing) else {
                continue;
            };
            if peer.peer_role != "session" || row.pull {
                continue;
            }
            log::info(
                "a presence of a silent broker ended",
                &[("mesh", &row.mesh_id), ("broker", &row.broker_id)],
            );
            let data = json!({"name": peer.display_name, "pubkey": peer.pubkey});
            self.announce(&row.mesh_id, PKey::MAX, "peer_left", data);
        }
        let kept = now_ms() - millis(KEEP_STORED);
        if let Err(e) = self.store.relay_sweep(kept) {
            log::error("forgetting old relayed events failed", &[("error", &e)]);
        }
        // A bucket untouched for as long as it takes to fill is full, as a missing one is.
        if let Some(rl) = self.cfg.rate_limit {
            let full_ms = (rl.burst / rl.per_second * 1000.0).ceil().min(1e12) as i64;
            if let Err(e) = self.store.rate_sweep(now_ms() - full_ms - millis(BEAT)) {
                log::error("forgetting full rate buckets failed", &[("error", &e)]);
            }
        }
    }

    /// What the other brokers said since the last call.
    pub(super) fn hear(&mut self, now: Instant) {
        let Some(c) = &self.cluster else {
            return;
        };
        let notices: Vec<Notice> = c.listener.notices.try_iter().collect();
        for n in notices {
            match n {
                Notice::Listening => self.catch_up(now),
                Notice::Event(payload) => match serde_json::from_str::<Envelope>(&payload) {
                    Ok(env) if self.cluster.as_ref().is_some_and(|c| c.id == env.b) => {}
                    Ok(env) => {
                        for ev in env.e {
                            self.apply(ev, now);
                        }
                    }
                    Err(e) => {
                        log::warn("an unreadable event from another broker", &[("error", &e)])
                    }
                },
            }
        }
    }

    /// After a gap in listening: what the events would have said, from the store.
    fn catch_up(&mut self, now: Instant) {
        let keys: Vec<PKey> = self.presences.keys().copied().collect();
        for pk in keys {
            self.drain(pk, now);
        }
        self.reload_grants();
        self.rearm_schedules(now);
    }

    fn apply(&mut self, ev: Event, now: Instant) {
        match ev {
            Event::Deliver { ids } => match self.store.pending_deliveries(&ids) {
                Ok(pending) => {
                    for d in &pending {
                        self.hand_out(d, None, now, IfLost::Send);
                    }
                }
                Err(e) => log::error("reading deliveries failed", &[("error", &e)]),
            },
            Event::Mesh { mesh, frame, all } => {
                let conns: Vec<ConnId> = self
                    .mesh_keys(&mesh)
                    .iter()
                    .filter_map(|k| self.presences.get(k))
                    .filter(|p| all || p.pushable())
                    .filter_map(|p| p.conn)
                    .collect();
                for c in conns {
                    self.emit_text(c, frame.clone(), IfLost::Send);
                }
            }
            Event::Members {
                mesh,
                members,
                frame,
            } => {
                let members: HashSet<String> = members.into_iter().collect();
                let conns: Vec<ConnId> = self
                    .mesh_keys(&mesh)
                    .iter()
                    .filter_map(|k| self.presences.get(k))
                    .filter(|p| p.pushable() && members.contains(&p.member_id))
                    .filter_map(|p| p.conn)
                    .collect();
                for c in conns {
                    self.emit_text(c, frame.clone(), IfLost::Send);
                }
            }
            Event::Stream { topic, id, data } => {
                self.stream_event(&topic, &id, &data, IfLost::Send)
            }
            Event::Grants => self.reload_grants(),
            Event::Banned { member } => self.end_member(&member),
            Event::Schedules => self.rearm_schedules(now),
            Event::Stored { id } => match self.store.relay_stored(id) {
                Ok(Some(body)) => match serde_json::from_str::<Event>(&body) {
                    Ok(Event::Stored { .. }) | Err(_) => log::warn(
                        "an unreadable kept event from another broker",
                        &[("id", &id)],
                    ),
                    Ok(ev) => self.apply(ev, now),
                },
                Ok(None) => log::warn("a kept event is gone", &[("id", &id)]),
                Err(e) => log::error("reading a kept event failed", &[("error", &e)]),
            },
        }
    }

    /// `list_peers`'s entries for the mesh's presences on other brokers, as `me` (a member id) may see them.
    pub(super) fn peers_elsewhere(&self, mesh_id: &str, me: &str) -> Vec<wire::Peer> {
        self.elsewhere(mesh_id)
            .into_iter()
            .filter(|r| r.visible || r.member_id == me)
            .filter_map(|r| serde_json::from_str(&r.listing).ok())
            .collect()
    }
}
