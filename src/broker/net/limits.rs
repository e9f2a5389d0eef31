//! Per-address limits on connections still sending their request: counted, and the oldest stale one dropped at the cap.

use super::http::error_response;
use super::{ConnId, HEAD_GRACE, Server};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Instant;

/// The connections of one address still sending their request: how many, and in the order they came (with
/// entries of ones that since finished, dropped as they reach the front).
#[derive(Default)]
pub(super) struct Heads {
    live: usize,
    order: VecDeque<(ConnId, Instant)>,
}

impl Server<'_> {
    /// Counts a new connection as a head of its address. At the cap, the address's oldest head that has had
    /// [`HEAD_GRACE`] is answered `408`, so connections that never finish their request cannot keep it full;
    /// heads younger than that (a burst of real clients) are all kept, and time out as any head does.
    pub(super) fn add_head(&mut self, ip: IpAddr, id: ConnId, now: Instant) {
        let Server {
            heads, ids, conns, ..
        } = self;
        let h = heads.entry(ip).or_default();
        let is_head = |id: &ConnId| {
            ids.get(id)
                .and_then(|&i| conns.get(i))
                .is_some_and(|c| c.head)
        };
        while h.order.front().is_some_and(|(id, _)| !is_head(id)) {
            h.order.pop_front();
        }
        let stale = h
            .order
            .front()
            .filter(|(_, at)| {
                h.live >= self.cfg.max_conns_per_addr && now.duration_since(*at) >= HEAD_GRACE
            })
            .map(|(id, _)| *id);
        h.live += 1;
        h.order.push_back((id, now));
        if let Some(idx) = stale.and_then(|old| self.ids.get(&old).copied()) {
            self.io.metrics.refused += 1;
            self.io.metrics.http_requests += 1;
            self.respond(idx, &error_response(408), now);
        }
    }

    /// The connection's request is in, or it ended before: it is no longer a head.
    pub(super) fn end_head(&mut self, idx: usize) {
        let Some(c) = self.conns.get_mut(idx).filter(|c| c.head) else {
            return;
        };
        c.head = false;
        let ip = c.peer.ip();
        if let Some(h) = self.heads.get_mut(&ip) {
            h.live -= 1;
            if h.live == 0 {
                self.heads.remove(&ip);
            }
        }
    }
}
