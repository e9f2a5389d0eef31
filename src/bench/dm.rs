//! `dm`: N peers each send M crypto_box DMs to random other peers; each push is acknowledged (`client_ack`) as a
//! real client does. Latency is from the send (or, with `--rate`, from when the send was due) to the push.
//!
//! Closed loop by default: a peer sends its next message when the broker's `ack` of one in its window comes
//! back, so the load follows the broker's pace. With `--rate` the sends go out on a schedule whatever the broker
//! does, which measures latency at a fixed load without hiding a stall (a late send counts from when it was due).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crypto_box::aead::{Aead, generic_array::GenericArray};
use crypto_box::{PublicKey, SalsaBox, SecretKey};

use super::fleet::{Fleet, Io};
use super::members::{self, Incoming, Member};
use super::{Ctx, Load, Plan, Report, Scenario, Tally, drive, ms};
use crate::crypto::{self, b64};
use crate::error::{Error, Result};
use crate::wire::{Frame, Priority, SendMessage};

/// A run stops when nothing happened for this long.
pub(super) const STALL: Duration = Duration::from_secs(10);

/// Precomputed crypto_box keys, one per (sender, recipient) pair that occurs.
pub(super) struct Boxes<'a> {
    members: &'a [Member],
    cache: HashMap<(usize, usize), SalsaBox>,
}

impl<'a> Boxes<'a> {
    pub fn new(members: &'a [Member]) -> Boxes<'a> {
        Boxes {
            members,
            cache: HashMap::new(),
        }
    }

    /// `(nonce, ciphertext)` in base64: `text` from member `from` to member `to`, as `crypto_box_easy`.
    pub fn seal(&mut self, from: usize, to: usize, text: &[u8]) -> (String, String) {
        let m = self.members;
        let b = self.cache.entry((from, to)).or_insert_with(|| {
            SalsaBox::new(
                &PublicKey::from(m[to].key.x25519_public()),
                &SecretKey::from_bytes(m[from].key.x25519_secret()),
            )
        });
        let nonce = crypto::random_bytes::<24>();
        // Unreachable failure: XSalsa20Poly1305 fails only with associated data, and a slice carries none.
        let ct = b
            .encrypt(GenericArray::from_slice(&nonce), text)
            .unwrap_or_default();
        (b64::encode(&nonce), b64::encode(&ct))
    }
}

/// `size` bytes of text naming the message.
pub(super) fn body(label: &str, size: usize) -> Vec<u8> {
    let mut t = format!("cm-bench {label} ").into_bytes();
    t.resize(size.max(t.len()), b'.');
    t
}

/// A small fast generator for picking pairs; the crypto takes its randomness from the OS.
pub(super) struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        Rng(u64::from_le_bytes(crypto::random_bytes::<8>()) | 1)
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A fresh prefix for this run's `client_message_id`s, so a second run on the same members is not deduplicated.
pub(super) fn run_id() -> String {
    crypto::hex::encode(&crypto::random_bytes::<4>())
}

struct State {
    peers: usize,
    each: usize,
    run: String,
    /// Per peer, its sealed `send` frames, in order.
    frames: Vec<Vec<String>>,
    next: Vec<usize>,
    inflight: Vec<usize>,
    /// When each message (`peer * each + k`) went out, or was due.
    sent_at: Vec<Option<Instant>>,
    got: Vec<bool>,
    /// Messages are counted by index (`peer * each + k`).
    t: Tally,
}

impl State {
    fn index(&self, cmid: &str) -> Option<usize> {
        let n: usize = cmid
            .strip_prefix(&self.run)?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        let (i, k) = (n % self.peers, n / self.peers);
        (k < self.each).then_some(i * self.each + k)
    }

    fn send_next(&mut self, io: &mut Io, i: usize, at: Instant) {
        let k = self.next[i];
        if k >= self.each {
            return;
        }
        self.next[i] += 1;
        self.inflight[i] += 1;
        self.t.sent += 1;
        self.sent_at[i * self.each + k] = Some(at);
        io.send(i, self.frames[i][k].as_bytes());
    }

    fn on_text(&mut self, io: &mut Io, i: usize, text: &str, paced: bool) {
        let Some(f) = Incoming::parse(text) else {
            return;
        };
        let now = Instant::now();
        match f.ty.as_ref() {
            "ack" => {
                let Some(g) = f.id.as_deref().and_then(|id| self.index(id)) else {
                    return;
                };
                self.t.progress = now;
                if let Some(e) = f.error.as_deref().filter(|e| !e.is_empty()) {
                    if self.t.held.hold(e, f.retry_after_ms, now, g) {
                        return;
                    }
                    self.t.refused += 1;
                    self.t.first_refusal.get_or_insert_with(|| e.to_string());
                }
                self.t.acked += 1;
                self.inflight[i] = self.inflight[i].saturating_sub(1);
                if let Some(t) = self.sent_at[g] {
                    self.t.ack_latencies.push(ms(now - t));
                }
                if !paced {
                    self.send_next(io, i, now);
                }
            }
            "push" => {
                if let Some(id) = f.message_id.as_deref() {
                    io.send(i, members::client_ack(id).as_bytes());
                }
                let Some(g) = f.client_message_id.as_deref().and_then(|c| self.index(c)) else {
                    return;
                };
                if !std::mem::replace(&mut self.got[g], true) {
                    self.t.delivered += 1;
                    self.t.progress = now;
                    self.t.last_push = Some(now);
                    if let Some(t) = self.sent_at[g] {
                        self.t.latencies.push(ms(now - t));
                    }
                }
            }
            _ => {}
        }
    }

    /// Sends again what the rate limit held and is now due.
    fn resend_due(&mut self, io: &mut Io, now: Instant) {
        for g in self.t.held.take_due(now) {
            io.send(
                g / self.each,
                self.frames[g / self.each][g % self.each].as_bytes(),
            );
        }
    }

    fn done(&self) -> bool {
        let total = self.peers * self.each;
        self.t.sent == total && self.t.acked == total && self.t.delivered + self.t.refused >= total
    }
}

pub(super) fn run(ctx: &Ctx) -> Result<Report> {
    let opts = ctx.opts;
    let peers = opts.peers.unwrap_or(100);
    let each = opts.messages.unwrap_or(1000);
    if peers < 2 {
        return Err(Error::usage("dm needs at least 2 peers"));
    }
    let members = ctx.members("dm", peers)?;
    let mut fleet = Fleet::new()?;
    members::connect(&mut fleet, &ctx.urls, &members, peers)?;

    let run = run_id();
    let mut rng = Rng::new();
    let mut boxes = Boxes::new(&members);
    let keys: Vec<String> = members.iter().map(Member::pubkey).collect();
    let frames: Vec<Vec<String>> = (0..peers)
        .map(|i| {
            (0..each)
                .map(|k| {
                    let mut j = rng.below(peers - 1);
                    if j >= i {
                        j += 1;
                    }
                    // Numbered in about the order they go out, fixed width: as a real client's ids, which
                    // begin with the time (`client::new_client_message_id`).
                    let cmid = format!("{run}-{:010}", k * peers + i);
                    let (nonce, ciphertext) =
                        boxes.seal(i, j, &body(&format!("dm {i}->{j} {k}"), opts.size));
                    Frame::Send(SendMessage {
                        id: cmid.clone(),
                        target_spec: keys[j].clone(),
                        priority: Priority::Next,
                        nonce,
                        ciphertext,
                        client_message_id: Some(cmid),
                        ..SendMessage::default()
                    })
                    .to_json()
                })
                .collect()
        })
        .collect();
    drop(boxes);

    let total = peers * each;
    let meter = ctx.meter();
    let start = Instant::now();
    let mut st = State {
        peers,
        each,
        run,
        frames,
        next: vec![0; peers],
        inflight: vec![0; peers],
        sent_at: vec![None; total],
        got: vec![false; total],
        t: Tally::new(opts.window, start, total, total),
    };
    let paced = opts.rate.filter(|r| *r > 0.0);
    if paced.is_none() {
        for i in 0..peers {
            for _ in 0..st.t.window {
                st.send_next(&mut fleet.io, i, start);
            }
        }
        fleet.flush();
    }
    let plan = Plan {
        scenario: Scenario::Dm,
        peers,
        total,
        paced,
        size: opts.size,
        start,
    };
    let r = drive(&mut fleet, &mut st, &plan, &meter)?;
    if !st.done() {
        crate::out::warn(
            "cm-bench",
            format!(
                "dm: stopped after {} s without progress: {} of {} delivered",
                STALL.as_secs(),
                st.t.delivered,
                total
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
    fn send_paced(&mut self, io: &mut Io, n: usize, due: Instant) {
        self.send_next(io, n % self.peers, due);
    }
    fn resend_due(&mut self, io: &mut Io, now: Instant) {
        State::resend_due(self, io, now);
    }
    fn on_text(&mut self, io: &mut Io, i: usize, text: &str, paced: bool) {
        State::on_text(self, io, i, text, paced);
    }
}
