//! The event loop: accept, read, hand to the handler, commit the batch, then write, until shutdown drains it.

use super::http::{error_response, write_event, write_response};
use super::signal::{Shutdown, Wake};
use super::tls::Stream;
use super::ws::{close_frame, push_frame, text_frame};
use super::{
    ACCEPT_PAUSE, Conn, FLUSH_TIMEOUT, HANDLER_WAKE, Handler, KEEP_WBUF, Kind, LINGER, LISTENER,
    Output, READ_BUDGET, READ_CHUNK, Response, SHUTDOWN_GRACE, Server, State, WAKE,
};
use crate::broker::log;
use mio::{Events, Interest, Token};
use std::io::{self, Read, Write};
use std::net::Shutdown as NetShutdown;
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::Frame;

impl Server<'_> {
    pub(super) fn run(
        &mut self,
        h: &mut impl Handler,
        shutdown: &Shutdown,
        wake: Option<&Wake>,
    ) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + self.cfg.tick;
        let mut stop_at: Option<Instant> = None;
        loop {
            let timeout = self.timeout(h, Instant::now(), next_tick, stop_at);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            let now = Instant::now();
            self.io.now = now;
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(now),
                    WAKE => {
                        shutdown.drain();
                        if stop_at.is_none() {
                            stop_at = Some(now + SHUTDOWN_GRACE);
                            self.begin_shutdown(now);
                        }
                    }
                    HANDLER_WAKE => {
                        if let Some(w) = wake {
                            w.drain();
                        }
                        h.on_wake(&mut self.io);
                    }
                    Token(idx) => {
                        if ev.is_writable() {
                            self.mark(idx);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.read(h, idx, now);
                        }
                    }
                }
            }
            for (idx, id) in std::mem::take(&mut self.again) {
                if self.conns.get(idx).is_some_and(|c| c.id == id) {
                    self.read(h, idx, now);
                }
            }
            if self.accept_paused.is_some_and(|t| now >= t) {
                self.accept_paused = None;
                self.accept(now);
            }
            if now >= next_tick {
                next_tick = now + self.cfg.tick;
                self.tick(now);
                if stop_at.is_none() {
                    h.on_tick(&mut self.io, now);
                }
            } else if stop_at.is_none() && h.next_deadline().is_some_and(|d| now >= d) {
                h.on_tick(&mut self.io, now);
            }
            self.end_batch(h);
            if let Some(t) = stop_at
                && (self.conns.len == 0 || now >= t)
            {
                break;
            }
        }
        for idx in self.conns.slots() {
            self.drop_conn(idx);
        }
        self.deliver_closes(h);
        h.end_of_batch(&mut self.io);
        self.io.out.clear();
        Ok(())
    }

    /// Until the next tick, handler deadline, accept retry or shutdown deadline; zero while work is left over.
    fn timeout(
        &self,
        h: &impl Handler,
        now: Instant,
        next_tick: Instant,
        stop_at: Option<Instant>,
    ) -> Duration {
        if !self.again.is_empty() || !self.closed.is_empty() {
            return Duration::ZERO;
        }
        let mut t = next_tick;
        for d in [h.next_deadline(), self.accept_paused, stop_at]
            .into_iter()
            .flatten()
        {
            t = t.min(d);
        }
        t.saturating_duration_since(now)
    }

    /// Commits, then writes: the one place output reaches sockets.
    fn end_batch(&mut self, h: &mut impl Handler) {
        self.deliver_closes(h);
        h.end_of_batch(&mut self.io);
        let mut out = std::mem::take(&mut self.io.out);
        for o in out.drain(..) {
            self.apply(o);
        }
        if out.capacity() <= 1024 {
            self.io.out = out;
        }
        for (idx, id) in std::mem::take(&mut self.dirty) {
            if let Some(c) = self.conns.get_mut(idx)
                && c.id == id
            {
                c.dirty = false;
                self.flush(idx);
            }
        }
    }

    fn deliver_closes(&mut self, h: &mut impl Handler) {
        while !self.closed.is_empty() {
            for (id, clean) in std::mem::take(&mut self.closed) {
                h.on_close(&mut self.io, id, clean);
                self.io.peers.remove(&id);
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        if self.accept_paused.is_some() {
            return;
        }
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (tcp, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    // EMFILE/ENFILE and the like: the pending connection stays in the backlog, and retrying at
                    // once would spin, so wait a little.
                    log::warn(
                        "accept failed; pausing",
                        &[("error", &crate::error::io_message(&e))],
                    );
                    self.accept_paused = Some(now + ACCEPT_PAUSE);
                    return;
                }
            };
            let _ = tcp.set_nodelay(true);
            let mut tcp = match &self.cfg.tls {
                None => Stream::plain(tcp),
                Some(config) => match Stream::tls(tcp, config) {
                    Ok(s) => s,
                    Err(e) => {
                        log::warn(
                            "could not start TLS on a connection",
                            &[("error", &crate::error::io_message(&e))],
                        );
                        continue;
                    }
                },
            };
            let idx = self.conns.next_key();
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut tcp, Token(idx), Interest::READABLE)
            {
                log::warn(
                    "could not register a connection",
                    &[("error", &crate::error::io_message(&e))],
                );
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.conns.insert(Conn {
                id,
                tcp,
                peer,
                kind: Kind::Http,
                state: State::Head {
                    buf: Vec::new(),
                    scanned: 0,
                },
                wbuf: Vec::new(),
                heard: now,
                pinged: now,
                head: true,
                counted: false,
                live: false,
                told: false,
                want_write: false,
                dirty: false,
            });
            self.ids.insert(id, idx);
            self.io.peers.insert(id, peer);
            self.io.metrics.open_http += 1;
            self.add_head(peer.ip(), id, now);
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        let mut n = 0;
        for idx in self.conns.slots() {
            let Some(c) = self.conns.get(idx) else {
                continue;
            };
            match c.state {
                State::Head { .. } => self.drop_conn(idx),
                State::Ws(_) => {
                    n += 1;
                    self.close_conn(idx, Some(close_frame(1001, "shutting down")), true, now);
                }
                State::Sse => {
                    n += 1;
                    self.close_conn(idx, None, true, now);
                }
                State::Closing { .. } => {}
            }
        }
        log::info("shutting down", &[("connections", &n)]);
    }

    pub(super) fn read(&mut self, h: &mut impl Handler, idx: usize, now: Instant) {
        let Some(c) = self.conns.get(idx) else { return };
        match c.state {
            State::Head { .. } => self.read_head(h, idx, now),
            State::Ws(_) => self.read_ws(h, idx, now),
            State::Sse => self.discard(idx, true),
            State::Closing { shut: true, .. } => self.discard(idx, false),
            // Input waits until the last output is written; then it is read and discarded.
            State::Closing { shut: false, .. } => {}
        }
        // A TLS read may have produced handshake records or alerts, which only a flush sends.
        if let Some(c) = self.conns.get(idx)
            && c.tcp.wants_write()
        {
            self.mark(idx);
        }
    }

    /// Reads and drops input. EOF ends the connection: on an event stream that is the client leaving (`clean`).
    pub(super) fn discard(&mut self, idx: usize, clean: bool) {
        let mut chunk = [0u8; READ_CHUNK];
        for _ in 0..READ_BUDGET {
            let Some(c) = self.conns.get_mut(idx) else {
                return;
            };
            match c.tcp.read(&mut chunk) {
                Ok(0) => {
                    self.finish(idx, clean);
                    self.drop_conn(idx);
                    return;
                }
                Ok(n) => self.io.metrics.bytes_in += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_conn(idx);
                    return;
                }
            }
        }
        let id = self.conns.get(idx).map_or(0, |c| c.id);
        self.again.push((idx, id));
    }

    /// Queues an HTTP response; the connection closes once it is written.
    pub(super) fn respond(&mut self, idx: usize, resp: &Response, now: Instant) {
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        write_response(&mut c.wbuf, resp);
        self.close_conn(idx, None, false, now);
    }

    /// Queues `last` (a close frame) and ends the connection once the output is written. The handler hears of it
    /// now (`clean`), so it queues nothing more for it.
    pub(super) fn close_conn(
        &mut self,
        idx: usize,
        last: Option<Frame>,
        clean: bool,
        now: Instant,
    ) {
        self.end_head(idx);
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        if let Some(f) = last {
            push_frame(&mut c.wbuf, f);
        }
        c.state = State::Closing {
            until: now + FLUSH_TIMEOUT,
            shut: false,
        };
        self.finish(idx, clean);
        self.mark(idx);
    }

    /// Owes the handler `on_close` for this connection, once.
    fn finish(&mut self, idx: usize, clean: bool) {
        if let Some(c) = self.conns.get_mut(idx)
            && c.live
        {
            c.live = false;
            self.closed.push((c.id, clean));
        }
    }

    /// Closes the socket at once. A connection the handler still holds ended uncleanly.
    pub(super) fn drop_conn(&mut self, idx: usize) {
        self.finish(idx, false);
        self.end_head(idx);
        let Some(mut c) = self.conns.remove(idx) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.tcp);
        self.ids.remove(&c.id);
        if !c.told {
            self.io.peers.remove(&c.id);
        }
        if let Some(n) = self.per_addr.get_mut(&c.peer.ip()).filter(|_| c.counted) {
            *n -= 1;
            if *n == 0 {
                self.per_addr.remove(&c.peer.ip());
            }
        }
        let m = &mut self.io.metrics;
        match c.kind {
            Kind::Http => m.open_http -= 1,
            Kind::Ws => m.open_ws -= 1,
            Kind::Sse => m.open_sse -= 1,
        }
    }

    pub(super) fn mark(&mut self, idx: usize) {
        if let Some(c) = self.conns.get_mut(idx)
            && !c.dirty
        {
            c.dirty = true;
            self.dirty.push((idx, c.id));
        }
    }

    /// Moves one piece of handler output into its connection's buffer.
    fn apply(&mut self, o: Output) {
        let id = match &o {
            Output::Text(id, ..) | Output::Close(id, ..) | Output::Sse(id, ..) => *id,
        };
        let Some(&idx) = self.ids.get(&id) else {
            return;
        };
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        let now = self.io.now;
        match (o, &c.state) {
            (Output::Text(_, text), State::Ws(_)) => {
                push_frame(&mut c.wbuf, text_frame(text));
                self.io.metrics.ws_messages_out += 1;
            }
            (Output::Sse(_, event, sid, data), State::Sse) => {
                write_event(&mut c.wbuf, &event, sid.as_deref(), &data)
            }
            (Output::Close(_, code, reason), State::Ws(_)) => {
                self.close_conn(idx, Some(close_frame(code, &reason)), true, now);
                return;
            }
            (Output::Close(..), State::Sse) => {
                self.close_conn(idx, None, true, now);
                return;
            }
            _ => return,
        }
        if c.wbuf.len() > self.cfg.max_write_buffer {
            // A big batch is not a slow reader: give the socket what it takes before judging.
            self.flush(idx);
            let Some(c) = self.conns.get(idx) else { return };
            if c.wbuf.len() > self.cfg.max_write_buffer {
                log::warn(
                    "dropping a connection that does not keep up",
                    &[
                        ("conn", &id),
                        ("peer", &c.peer),
                        ("buffered", &c.wbuf.len()),
                    ],
                );
                self.drop_conn(idx);
                return;
            }
        }
        self.mark(idx);
    }

    /// Writes what the socket takes; watches for space when it takes less.
    fn flush(&mut self, idx: usize) {
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        let mut written = 0;
        let mut failed = false;
        while written < c.wbuf.len() {
            match c.tcp.write(&c.wbuf[written..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        self.io.metrics.bytes_out += written as u64;
        c.wbuf.drain(..written);
        if !failed && c.wbuf.is_empty() && matches!(c.state, State::Closing { shut: false, .. }) {
            c.tcp.close_notify();
        }
        let tls_pending = match c.tcp.flush_tls() {
            Ok(p) => p,
            Err(_) => {
                failed = true;
                false
            }
        };
        if failed {
            self.drop_conn(idx);
            return;
        }
        let pending = !c.wbuf.is_empty() || tls_pending;
        if !pending && c.wbuf.capacity() > KEEP_WBUF {
            c.wbuf = Vec::new();
        }
        if pending != c.want_write {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut c.tcp, Token(idx), interest)
                .is_err()
            {
                self.drop_conn(idx);
                return;
            }
            c.want_write = pending;
        }
        if !pending
            && let State::Closing {
                until,
                shut: shut @ false,
            } = &mut c.state
        {
            *shut = true;
            *until = (*until).min(self.io.now + LINGER);
            let _ = c.tcp.shutdown(NetShutdown::Write);
            // Input that arrived earlier raised no new edge: read it now.
            self.discard(idx, false);
        }
    }

    /// The once-a-tick sweep: head and idle timeouts, pings, keepalives, lingering closes.
    fn tick(&mut self, now: Instant) {
        for idx in self.conns.slots() {
            let Some(c) = self.conns.get_mut(idx) else {
                continue;
            };
            match &c.state {
                State::Head { .. } if now.duration_since(c.heard) >= self.cfg.head_timeout => {
                    self.io.metrics.http_requests += 1;
                    self.respond(idx, &error_response(408), now);
                }
                State::Ws(_) if now.duration_since(c.heard) >= self.cfg.idle_timeout => {
                    self.drop_conn(idx)
                }
                State::Ws(_) if now.duration_since(c.pinged) >= self.cfg.ping_interval => {
                    push_frame(&mut c.wbuf, Frame::ping(Vec::new()));
                    c.pinged = now;
                    self.mark(idx);
                }
                State::Sse if now.duration_since(c.pinged) >= self.cfg.sse_keepalive => {
                    c.wbuf.extend_from_slice(b": keepalive\n\n");
                    c.pinged = now;
                    self.mark(idx);
                }
                State::Closing { until, .. } if now >= *until => self.drop_conn(idx),
                _ => {}
            }
        }
    }
}
