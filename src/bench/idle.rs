//! `idle`: N connections that say hello and then nothing; the figure is the broker's resident memory per
//! connection (the growth from before the first connect, over N).
//!
//! The connections are plain `hello`s spread over a few members: pushed to, never announced. Session presences
//! would also measure the `peer_joined` announcements, N² of them in one mesh.

use std::time::{Duration, Instant};

use super::fleet::Fleet;
use super::members::{self, Incoming};
use super::{Ctx, Report, Scenario, ms, proc, round};
use crate::error::{Error, Result};

/// Members the connections are spread over when the bench makes its own mesh.
const MEMBERS: usize = 10;
/// How long the connections sit idle before the broker's memory is read.
const SETTLE: Duration = Duration::from_secs(1);

pub(super) fn run(ctx: &Ctx) -> Result<Report> {
    let n = ctx.opts.peers.unwrap_or(10_000);
    let limit = proc::raise_fd_limit();
    if (n as libc::rlim_t).saturating_add(64) > limit {
        return Err(Error::usage(format!(
            "idle with {n} connections needs {} open files; the limit here is {limit}",
            n + 64
        )));
    }
    let members = match &ctx.members {
        Some(m) => m.clone(),
        None => ctx.members("idle", MEMBERS.min(n.max(1)))?,
    };
    let before = ctx.rss_kib();
    let mut fleet = Fleet::new()?;
    let meter = ctx.meter();
    let start = Instant::now();
    let took = members::connect(&mut fleet, &ctx.urls, &members, n)?;
    let connected = start.elapsed();
    let settle = Instant::now() + SETTLE;
    while Instant::now() < settle {
        fleet.turn(Some(Duration::from_millis(100)), &mut |io, i, text| {
            if let Some(f) = Incoming::parse(text)
                && f.ty == "push"
                && let Some(id) = f.message_id.as_deref()
            {
                io.send(i, members::client_ack(id).as_bytes());
            }
        })?;
    }
    let after = ctx.rss_kib();
    let open = (0..n).filter(|&i| !fleet.io.is_closed(i)).count();

    let mut r = Report::new(Scenario::Idle, n);
    r.sent = n as u64;
    r.delivered = took.len() as u64;
    meter.finish(&mut r);
    r.elapsed(connected);
    r.latencies(took.into_iter().map(ms).collect());
    r.broker_rss_mb = after.map(|k| round(k as f64 / 1024.0));
    r.set("open", open);
    if let (Some(b), Some(a)) = (before, after) {
        r.set("rss_before_mb", round(b as f64 / 1024.0));
        r.set(
            "per_conn_kib",
            round(a.saturating_sub(b) as f64 / n.max(1) as f64),
        );
    }
    fleet.close_all(Duration::from_secs(5));
    Ok(r)
}
