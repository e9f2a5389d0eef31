//! `fanout`: one peer broadcasts to N others, sealed per recipient as `cm-send '*'` does; the figure is the time
//! from the broadcast to the last peer's push. M broadcasts, one after another.
//!
//! A broadcast's copies may not fit one 64 KiB frame (the broker's limit): they go in as many `send`s to `*` as
//! needed, all written at once, and the report says how many (`frames`).

use std::time::{Duration, Instant};

use super::dm::{Boxes, STALL, body, run_id};
use super::fleet::Fleet;
use super::members::{self, Incoming, Member};
use super::{Ctx, Held, Report, Scenario, ms};
use crate::error::{Error, Result};
use crate::wire::{Frame, Priority, SealedCopy, SendMessage};

/// What the copies of one `send` may add up to: under the broker's 64 KiB frame limit with room for the rest.
const FRAME_BUDGET: usize = 60_000;

pub(super) fn run(ctx: &Ctx) -> Result<Report> {
    let opts = ctx.opts;
    let peers = opts.peers.unwrap_or(1000);
    let rounds = opts.messages.unwrap_or(20);
    if peers < 1 {
        return Err(Error::usage("fanout needs at least 1 peer"));
    }
    // Member 0 broadcasts; members 1..=peers receive.
    let members = ctx.members("fanout", peers + 1)?;
    let mut fleet = Fleet::new()?;
    members::connect(&mut fleet, &ctx.urls, &members, peers + 1)?;

    let run = run_id();
    let mut boxes = Boxes::new(&members);
    let keys: Vec<String> = members.iter().map(Member::pubkey).collect();
    let broadcasts: Vec<Vec<String>> = (0..rounds)
        .map(|r| {
            let mut frames: Vec<Vec<SealedCopy>> = vec![Vec::new()];
            let mut used = 0;
            for (j, key) in keys.iter().enumerate().skip(1) {
                let (nonce, ciphertext) =
                    boxes.seal(0, j, &body(&format!("fanout {r}"), opts.size));
                let cost = key.len() + nonce.len() + ciphertext.len() + 40;
                if used + cost > FRAME_BUDGET && used > 0 {
                    frames.push(Vec::new());
                    used = 0;
                }
                used += cost;
                if let Some(f) = frames.last_mut() {
                    f.push(SealedCopy {
                        to: key.clone(),
                        nonce,
                        ciphertext,
                    });
                }
            }
            frames
                .into_iter()
                .enumerate()
                .map(|(c, copies)| {
                    let cmid = format!("{run}-{r}-{c}");
                    Frame::Send(SendMessage {
                        id: cmid.clone(),
                        target_spec: "*".into(),
                        priority: Priority::Next,
                        copies: Some(copies),
                        client_message_id: Some(cmid),
                        ..SendMessage::default()
                    })
                    .to_json()
                })
                .collect()
        })
        .collect();
    drop(boxes);

    let mut times = Vec::with_capacity(rounds);
    let mut firsts = Vec::with_capacity(rounds);
    let (mut delivered, mut refused, mut first_refusal) = (0u64, 0u64, None::<String>);
    let mut busy = Duration::ZERO;
    let mut held: Held<usize> = Held::new();
    let meter = ctx.meter();
    let prefix = format!("{run}-");
    for (r, frames) in broadcasts.iter().enumerate() {
        let round = format!("{r}-");
        let mut got = vec![false; peers + 1];
        let (mut count, mut acks) = (0, 0);
        let (mut first, mut last) = (None, None);
        let start = Instant::now();
        for f in frames {
            fleet.io.send(0, f.as_bytes());
        }
        fleet.flush();
        let mut progress = start;
        while (count < peers || acks < frames.len()) && progress.elapsed() < STALL {
            let now = Instant::now();
            for c in held.take_due(now) {
                fleet.io.send(0, frames[c].as_bytes());
            }
            fleet.flush();
            let timeout = held.timeout(now, Some(Duration::from_millis(100)));
            fleet.turn(timeout, &mut |io, i, text| {
                let Some(f) = Incoming::parse(text) else {
                    return;
                };
                let now = Instant::now();
                let ours = |id: Option<&str>| {
                    id.and_then(|c| c.strip_prefix(&prefix))
                        .is_some_and(|c| c.starts_with(&round))
                };
                match f.ty.as_ref() {
                    "ack" if i == 0 && ours(f.id.as_deref()) => {
                        progress = now;
                        if let Some(e) = f.error.as_deref().filter(|e| !e.is_empty()) {
                            let c =
                                f.id.as_deref()
                                    .and_then(|id| id.strip_prefix(&prefix)?.strip_prefix(&round))
                                    .and_then(|c| c.parse::<usize>().ok())
                                    .filter(|c| *c < frames.len());
                            if let Some(c) = c
                                && held.hold(e, f.retry_after_ms, now, c)
                            {
                                return;
                            }
                            refused += 1;
                            first_refusal.get_or_insert_with(|| e.to_string());
                        }
                        acks += 1;
                    }
                    "push" => {
                        if let Some(id) = f.message_id.as_deref() {
                            io.send(i, members::client_ack(id).as_bytes());
                        }
                        if ours(f.client_message_id.as_deref())
                            && !std::mem::replace(&mut got[i], true)
                        {
                            count += 1;
                            progress = now;
                            first.get_or_insert(now);
                            last = Some(now);
                        }
                    }
                    _ => {}
                }
            })?;
            if refused > 0 {
                break;
            }
        }
        delivered += count as u64;
        if let (Some(f), Some(l)) = (first, last) {
            firsts.push(ms(f - start));
            times.push(ms(l - start));
            busy += l - start;
        }
        if count < peers {
            crate::out::warn(
                "cm-bench",
                format!("fanout: broadcast {r} reached {count} of {peers} peers"),
            );
            break;
        }
        // Let the client_acks land before the next broadcast, so rounds do not overlap.
        let settle = Instant::now() + Duration::from_millis(50);
        while Instant::now() < settle {
            fleet.turn(Some(Duration::from_millis(10)), &mut |io, i, text| {
                if let Some(f) = Incoming::parse(text)
                    && f.ty == "push"
                    && let Some(id) = f.message_id.as_deref()
                {
                    io.send(i, members::client_ack(id).as_bytes());
                }
            })?;
        }
    }
    let mut r = Report::new(Scenario::Fanout, peers);
    r.sent = times.len() as u64;
    r.delivered = delivered;
    meter.finish(&mut r);
    fleet.close_all(Duration::from_secs(2));

    r.elapsed(busy);
    firsts.sort_by(f64::total_cmp);
    r.latencies(times);
    r.set("frames", broadcasts.first().map_or(0, Vec::len));
    r.set("size", opts.size);
    if let Some(f) = firsts.get(firsts.len() / 2) {
        r.set("first_p50_ms", super::round(*f));
    }
    r.set("refused", refused);
    if let Some(e) = first_refusal {
        r.set("first_refusal", e);
    }
    held.report(&mut r);
    Ok(r)
}
