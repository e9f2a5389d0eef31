//! `topic`: one peer posts to an encrypted topic that N peers follow live. Latency is from a post's send (or, with
//! `--rate`, from when it was due) to each peer's push of it; every (post, peer) pair is one figure.
//!
//! The setup is the real client's, through the library: the poster creates the topic as `cm-topic create` does (a
//! fresh topic key sealed for every member of the mesh), each peer joins it and opens its copy of the key as
//! `cm-topic tail` does, and the poster opens its own copy as `cm-topic post` does. Posts are sealed under the key
//! before the clock starts, and a peer counts a push as delivered only when its own copy of the key opens it.
//! Like a tail, a peer does not `client_ack` topic pushes: the broker does not redeliver them.
//!
//! One `topic_create` frame carries the copies for some 270 members (frames hold 64 KiB); with more peers, the
//! poster seals the rest after they join (`topic_pending_seals`, `topic_seal`), as `cm-topic` does.
//!
//! Paced as dm is: the poster keeps `--window` posts waiting for their `ack` (default 1), or with `--rate` posts on
//! a schedule whatever the broker does.

use std::time::Instant;

use super::dm::{STALL, body, run_id};
use super::fleet::{Fleet, Io};
use super::members::{self, Ask, Incoming};
use super::{Ctx, Load, Plan, Report, Scenario, Tally, drive, ms, round};
use crate::client::Requester;
use crate::error::{Error, Result};
use crate::topics;
use crate::wire::{self, Frame, SendMessage};

/// The poster's socket; the peers are sockets `1..=peers`.
const POSTER: usize = 0;

struct State {
    peers: usize,
    run: String,
    topic_id: String,
    /// Each peer's copy of the topic key, by socket (the poster's first).
    keys: Vec<[u8; 32]>,
    /// The sealed `send` frames, in order.
    frames: Vec<String>,
    inflight: usize,
    /// When each post went out, or was due.
    sent_at: Vec<Option<Instant>>,
    /// Per post and peer (`post * peers + peer - 1`): its push arrived.
    got: Vec<bool>,
    /// Per post: how many peers have it, and when the last one got it.
    reached: Vec<usize>,
    last_at: Vec<Option<Instant>>,
    unreadable: usize,
    /// Posts are counted by index; deliveries per peer.
    t: Tally,
}

impl State {
    fn index(&self, cmid: &str) -> Option<usize> {
        let k: usize = cmid
            .strip_prefix(&self.run)?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        (k < self.sent_at.len()).then_some(k)
    }

    fn send_next(&mut self, io: &mut Io, at: Instant) {
        let k = self.t.sent;
        if k >= self.frames.len() {
            return;
        }
        self.t.sent += 1;
        self.inflight += 1;
        self.sent_at[k] = Some(at);
        io.send(POSTER, self.frames[k].as_bytes());
    }

    fn on_text(&mut self, io: &mut Io, i: usize, text: &str, paced: bool) {
        let Some(f) = Incoming::parse(text) else {
            return;
        };
        let now = Instant::now();
        match f.ty.as_ref() {
            "ack" if i == POSTER => {
                let Some(k) = f.id.as_deref().and_then(|id| self.index(id)) else {
                    return;
                };
                self.t.progress = now;
                if let Some(e) = f.error.as_deref().filter(|e| !e.is_empty()) {
                    if self.t.held.hold(e, f.retry_after_ms, now, k) {
                        return;
                    }
                    self.t.refused += 1;
                    self.t.first_refusal.get_or_insert_with(|| e.to_string());
                }
                self.t.acked += 1;
                self.inflight = self.inflight.saturating_sub(1);
                if let Some(t) = self.sent_at[k] {
                    self.t.ack_latencies.push(ms(now - t));
                }
                if !paced {
                    while self.inflight < self.t.window && self.t.sent < self.frames.len() {
                        self.send_next(io, now);
                    }
                }
            }
            "push" if i != POSTER => {
                if f.topic_id.as_deref() != Some(self.topic_id.as_str()) {
                    // Something else queued for this member (a DM left by another run on the same --members):
                    // acknowledged so it is not redelivered into the measurement.
                    if let Some(id) = f.message_id.as_deref() {
                        io.send(i, members::client_ack(id).as_bytes());
                    }
                    return;
                }
                let Some(k) = f.client_message_id.as_deref().and_then(|c| self.index(c)) else {
                    return;
                };
                let slot = k * self.peers + i - 1;
                if self.got[slot] {
                    return;
                }
                self.got[slot] = true;
                self.t.progress = now;
                let opened = topics::open_body(
                    f.nonce.as_deref().unwrap_or_default(),
                    f.ciphertext.as_deref().unwrap_or_default(),
                    2,
                    Some(&self.keys[i]),
                );
                if opened.is_err() {
                    self.unreadable += 1;
                    return;
                }
                self.t.delivered += 1;
                self.t.last_push = Some(now);
                self.reached[k] += 1;
                self.last_at[k] = Some(now);
                if let Some(t) = self.sent_at[k] {
                    self.t.latencies.push(ms(now - t));
                }
            }
            _ => {}
        }
    }

    /// Sends again what the rate limit held and is now due.
    fn resend_due(&mut self, io: &mut Io, now: Instant) {
        for k in self.t.held.take_due(now) {
            io.send(POSTER, self.frames[k].as_bytes());
        }
    }

    fn done(&self) -> bool {
        let total = self.frames.len();
        self.t.sent == total
            && self.t.acked == total
            && self.t.delivered + self.unreadable + self.t.refused * self.peers
                >= total * self.peers
    }

    /// From each post's send to its last peer's push, for the posts every peer got.
    fn last_deliveries(&self) -> Vec<f64> {
        let mut v: Vec<f64> = (0..self.frames.len())
            .filter(|&k| self.reached[k] == self.peers)
            .filter_map(|k| Some(ms(self.last_at[k]? - self.sent_at[k]?)))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// Makes the topic and has every peer follow it; returns its id and each socket's copy of the key.
fn setup(
    fleet: &mut Fleet,
    members: &[members::Member],
    name: &str,
) -> Result<(String, Vec<[u8; 32]>)> {
    let poster = &members[POSTER].key;
    let created = topics::create(
        &mut Ask {
            fleet: &mut *fleet,
            sock: POSTER,
        },
        poster,
        name,
        Some("cm-bench"),
        None,
        false,
    )
    .map_err(|e| e.context(format_args!("topic: creating #{name}")))?;
    let id = created.created.topic.id;
    for i in (0..members.len()).filter(|&i| i != POSTER) {
        Ask {
            fleet: &mut *fleet,
            sock: i,
        }
        .ask(Frame::TopicJoin(wire::TopicJoin {
            topic: id.clone(),
            role: None,
            req_id: None,
        }))?;
    }
    if created.unsealed > 0 {
        // More members than one topic_create can carry keys for: the poster seals the rest, as cm-topic does.
        let mut r = Ask {
            fleet: &mut *fleet,
            sock: POSTER,
        };
        let t = topics::open(&mut r, &id, poster, 1, None)?;
        if let Some(k) = &t.key {
            topics::reseal(&mut r, &id, k, poster)?;
        }
    }
    let mut keys = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let mut r = Ask {
            fleet: &mut *fleet,
            sock: i,
        };
        let t = topics::open(&mut r, &id, &m.key, 1, None)?;
        let key = t.key.ok_or_else(|| {
            Error::generic(format!(
                "topic: no copy of #{name}'s key is sealed for bench member {i}, though the topic was just made"
            ))
        })?;
        keys.push(key);
    }
    Ok((id, keys))
}

pub(super) fn run(ctx: &Ctx) -> Result<Report> {
    let opts = ctx.opts;
    let peers = opts.peers.unwrap_or(100);
    let posts = opts.messages.unwrap_or(1000);
    if peers < 1 {
        return Err(Error::usage("topic needs at least 1 peer"));
    }
    let members = ctx.members("topic", peers + 1)?;
    let mut fleet = Fleet::new()?;
    members::connect(&mut fleet, &ctx.urls, &members, peers + 1)?;

    let run = run_id();
    let name = format!("bench-{run}");
    let (topic_id, keys) = setup(&mut fleet, &members, &name)?;
    let target = format!("#{topic_id}");
    let frames: Vec<String> = (0..posts)
        .map(|k| {
            let cmid = format!("{run}-{k}");
            let text = body(&format!("topic {k}"), opts.size);
            let (nonce, ciphertext) = topics::seal_body(&text, &keys[POSTER]);
            Frame::Send(SendMessage {
                id: cmid.clone(),
                target_spec: target.clone(),
                nonce,
                ciphertext,
                body_version: Some(2),
                mentions: Some(topics::mentions(&String::from_utf8_lossy(&text))),
                client_message_id: Some(cmid),
                ..SendMessage::default()
            })
            .to_json()
        })
        .collect();

    let meter = ctx.meter();
    let start = Instant::now();
    let mut st = State {
        peers,
        run,
        topic_id,
        keys,
        frames,
        inflight: 0,
        sent_at: vec![None; posts],
        got: vec![false; posts * peers],
        reached: vec![0; posts],
        last_at: vec![None; posts],
        unreadable: 0,
        t: Tally::new(opts.window, start, posts * peers, posts),
    };
    let paced = opts.rate.filter(|r| *r > 0.0);
    if paced.is_none() {
        while st.inflight < st.t.window && st.t.sent < posts {
            st.send_next(&mut fleet.io, start);
        }
        fleet.flush();
    }
    let plan = Plan {
        scenario: Scenario::Topic,
        peers,
        total: posts,
        paced,
        size: opts.size,
        start,
    };
    let mut r = drive(&mut fleet, &mut st, &plan, &meter)?;
    let lasts = st.last_deliveries();
    if let Some(l) = lasts.get(lasts.len() / 2) {
        r.set("last_delivery_p50_ms", round(*l));
    }
    if st.unreadable > 0 {
        r.set("unreadable", st.unreadable);
    }
    if !st.done() {
        crate::out::warn(
            "cm-bench",
            format!(
                "topic: stopped after {} s without progress: {} of {} pushes delivered",
                STALL.as_secs(),
                st.t.delivered,
                posts * peers
            ),
        );
    }
    Ok(r)
}

impl Load for State {
    fn tally(&mut self) -> &mut Tally {
        &mut self.t
    }
    fn done(&self) -> bool {
        State::done(self)
    }
    fn send_paced(&mut self, io: &mut Io, _: usize, due: Instant) {
        self.send_next(io, due);
    }
    fn resend_due(&mut self, io: &mut Io, now: Instant) {
        State::resend_due(self, io, now);
    }
    fn on_text(&mut self, io: &mut Io, i: usize, text: &str, paced: bool) {
        State::on_text(self, io, i, text, paced);
    }
}
