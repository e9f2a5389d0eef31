//! The broker's transport: one mio event loop serving HTTP/1.1 and WebSocket on one port.
//!
//! Why one thread and not one per connection: the broker must hold ten thousand idle sessions in a few hundred
//! megabytes, and every thread costs a stack and two memory maps (the default `vm.max_map_count` caps a process
//! near 32 000 threads). One loop also gives group commit for free: everything a poll iteration produced is
//! committed to the store once, in [`Handler::end_of_batch`], before any reply of that iteration leaves the
//! process, so an `ack` always follows a durable write.
//!
//! The transport knows nothing of meshes: it turns bytes into [`Handler`] calls and the handler's [`Io`] calls
//! back into bytes.
//!
//! Memory: an idle WebSocket holds tungstenite's 4 KiB read buffer and little else (about 5 KiB in all). Output
//! goes to one buffer per connection that the loop owns (tungstenite only decodes, see `ReadOnly`), freed when it
//! drains after a burst; a connection whose unsent output passes [`NetConfig::max_write_buffer`] is dropped.
//! Under TLS rustls adds its record buffers and session state: about 13 KiB per idle WebSocket in all (measured
//! with a thousand), and at most one record of ciphertext waiting for the socket (see `tls.rs`).
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | the [`Handler`] seam and its [`Io`], the configuration, the connection table, [`serve`] |
//! | `event_loop.rs` | the loop: accept, read, the batch's end, write, ticks and shutdown |
//! | `http.rs` | request heads and bodies, routing to the handler, the upgrade, responses and events |
//! | `limits.rs` | the per-address count of connections still sending their request |
//! | `ws.rs` | WebSocket framing and reads |
//! | `tls.rs` | a connection's byte stream, plain or TLS |
//! | `signal.rs` | SIGINT and SIGTERM as a wake-up of the loop |

use super::log;
use limits::Heads;
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tungstenite::protocol::WebSocketContext;

mod event_loop;
mod http;
mod limits;
mod signal;
#[cfg(test)]
mod tests;
mod tls;
mod ws;

pub use http::parse_request_head;
pub use signal::{Shutdown, Wake};

/// A connection's id, unique for the life of the process.
pub type ConnId = u64;

/// A parsed HTTP request (head and a body of at most 64 KiB).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query string, percent-decoding not applied.
    pub path: String,
    /// The raw query string after `?`, if any.
    pub query: Option<String>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl Request {
    /// The first header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: value.to_string().into_bytes(),
        }
    }
    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }
}

/// What the handler does with an HTTP request.
pub enum HttpAction {
    /// Answer and close (or keep alive, as the client asked).
    Respond(Response),
    /// Answer `200 text/event-stream` and keep the connection open; the handler writes events with
    /// [`Io::sse_event`] until either side closes ([`Handler::on_close`] is called then).
    EventStream,
}

/// The application on top of the transport: the broker's hub.
pub trait Handler {
    /// A WebSocket handshake at `/ws` completed.
    fn on_open(&mut self, io: &mut Io, conn: ConnId, peer: SocketAddr);
    /// A text message arrived on a WebSocket (at most 64 KiB; larger ones are refused by the transport).
    fn on_text(&mut self, io: &mut Io, conn: ConnId, text: &str);
    /// A WebSocket or event stream ended; called once per connection the handler was told of. `clean` is true
    /// when it ended with a close frame (the client's, the handler's [`Io::close`], 1009, or 1001 at shutdown) or
    /// an event stream's client left; false when it dropped (EOF or reset without a close frame, idle timeout,
    /// too slow to take its output, protocol error). No output reaches the connection after this.
    fn on_close(&mut self, io: &mut Io, conn: ConnId, clean: bool);
    /// A complete HTTP request that is not a WebSocket upgrade at `/ws`.
    fn on_http(&mut self, io: &mut Io, conn: ConnId, req: &Request) -> HttpAction;
    /// Called about once a second, and at the deadline [`Handler::next_deadline`] asked for.
    fn on_tick(&mut self, io: &mut Io, now: Instant);
    /// The earliest moment the handler needs [`Handler::on_tick`] (scheduled reminders), if sooner than a second.
    fn next_deadline(&self) -> Option<Instant>;
    /// Called after every poll iteration's events, before any queued output is written: commit here.
    fn end_of_batch(&mut self, io: &mut Io);
    /// A pipe another thread of the handler triggers to have [`Handler::on_wake`] called, asked once at start.
    fn wake(&self) -> Option<std::sync::Arc<Wake>> {
        None
    }
    /// The handler's [`Handler::wake`] was triggered (and is drained already).
    fn on_wake(&mut self, _io: &mut Io) {}
}

/// The handler's view of the transport. Output is queued and written after [`Handler::end_of_batch`].
///
/// The same type works without a network ([`Io::detached`]): the hub's unit tests drive a handler with it and read
/// back what it queued with [`Io::take_output`].
pub struct Io {
    out: Vec<Output>,
    peers: HashMap<ConnId, SocketAddr>,
    now: Instant,
    metrics: NetMetrics,
}

/// One piece of queued output, in the order the handler queued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A WebSocket text message.
    Text(ConnId, String),
    /// A WebSocket close frame (code, reason).
    Close(ConnId, u16, String),
    /// A server-sent event (event, id, data).
    Sse(ConnId, String, Option<String>, String),
}

/// The transport's counters, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct NetMetrics {
    /// Open WebSocket connections.
    pub open_ws: u64,
    /// Open event streams.
    pub open_sse: u64,
    /// Connections still sending or awaiting an HTTP request.
    pub open_http: u64,
    /// WebSocket text messages received.
    pub ws_messages_in: u64,
    /// WebSocket text messages sent.
    pub ws_messages_out: u64,
    /// HTTP requests answered (upgrades not counted).
    pub http_requests: u64,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Connections refused for capacity (per-address limit).
    pub refused: u64,
}

impl Io {
    /// An `Io` with no network behind it: output is only recorded, for [`Io::take_output`].
    pub fn detached() -> Io {
        Io {
            out: Vec::new(),
            peers: HashMap::new(),
            now: Instant::now(),
            metrics: NetMetrics::default(),
        }
    }
    /// Queues a text message to a WebSocket connection. A connection that is gone is ignored.
    pub fn send(&mut self, conn: ConnId, text: String) {
        self.out.push(Output::Text(conn, text));
    }
    /// Queues a close frame with `code` and `reason`; the connection closes once it is written.
    pub fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        self.out.push(Output::Close(conn, code, reason.to_string()));
    }
    /// Queues one server-sent event on an event stream connection.
    pub fn sse_event(&mut self, conn: ConnId, event: &str, id: Option<&str>, data: &str) {
        self.out.push(Output::Sse(
            conn,
            event.to_string(),
            id.map(str::to_string),
            data.to_string(),
        ));
    }
    /// The address the connection came from.
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.peers.get(&conn).copied()
    }
    /// The time the current iteration started.
    pub fn now(&self) -> Instant {
        self.now
    }
    /// The transport's counters.
    pub fn metrics(&self) -> &NetMetrics {
        &self.metrics
    }
    /// Everything queued since the last call, in order.
    pub fn take_output(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }
    /// Records the address [`Io::peer_addr`] reports for `conn` (tests of a detached `Io`).
    pub fn set_test_peer(&mut self, conn: ConnId, addr: SocketAddr) {
        self.peers.insert(conn, addr);
    }
    /// Sets what [`Io::now`] returns (tests of a detached `Io`).
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }
}

/// Limits and timers of the transport.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// A request head and body must arrive within this (else `408`).
    pub head_timeout: Duration,
    /// How often each WebSocket is pinged.
    pub ping_interval: Duration,
    /// A WebSocket silent this long (no frame, no pong) is dropped.
    pub idle_timeout: Duration,
    /// How often an idle event stream gets a `: keepalive` comment.
    pub sse_keepalive: Duration,
    /// The granularity of every timer above, and how often [`Handler::on_tick`] runs.
    pub tick: Duration,
    /// Connections one IP address may hold once their request is in; later ones are refused (`429`, or close
    /// 1013 on `/ws`). As many may be still sending their request; past that, the address's oldest that has
    /// had `HEAD_GRACE` (1 s) is answered `408`.
    pub max_conns_per_addr: usize,
    /// Output a connection may have waiting for its socket before it is dropped as too slow.
    pub max_write_buffer: usize,
    /// Serve TLS (`wss://`, `https://`) with this configuration instead of plain TCP. Its certificate resolver
    /// is asked at every handshake, so swapping the certificate behind it reaches new connections only.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            head_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            sse_keepalive: Duration::from_secs(15),
            tick: Duration::from_secs(1),
            max_conns_per_addr: 4096,
            max_write_buffer: 4 << 20,
            tls: None,
        }
    }
}

const MAX_HEAD: usize = 16 * 1024;

/// How long a request head is waited for before it may make room for a newer one from its address.
const HEAD_GRACE: Duration = Duration::from_secs(1);

/// The largest request body; a larger one is refused with 413 before it is read.
pub(crate) const MAX_BODY: usize = 64 * 1024;

const MAX_FRAME: usize = 64 * 1024;

/// Bytes read per `read` call; also the WebSocket read buffer each connection keeps.
const READ_CHUNK: usize = 4096;

/// Messages read from one connection before others get a turn.
const READ_BUDGET: usize = 64;

/// A closing connection gets this long to take its last output.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// After the last byte is written, input is read and discarded this long, so the peer sees our last bytes and not
/// a reset (a socket closed with unread input sends RST, which can destroy data the peer has not read yet).
const LINGER: Duration = Duration::from_secs(2);

/// How long a shutdown waits for closing connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// A write buffer that grew past this during a burst is freed once drained, so idle connections stay small.
const KEEP_WBUF: usize = 4 * 1024;

const LISTENER: Token = Token(usize::MAX);

const WAKE: Token = Token(usize::MAX - 1);

const HANDLER_WAKE: Token = Token(usize::MAX - 2);

/// Serves HTTP and WebSocket on `listener` until `shutdown` is triggered, calling `handler` for what arrives.
pub fn serve(
    listener: std::net::TcpListener,
    cfg: &NetConfig,
    handler: &mut impl Handler,
    shutdown: &Shutdown,
) -> io::Result<()> {
    raise_fd_limit();
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    poll.registry().register(
        &mut SourceFd(&shutdown.read.as_raw_fd()),
        WAKE,
        Interest::READABLE,
    )?;
    let wake = handler.wake();
    if let Some(w) = &wake {
        poll.registry().register(
            &mut SourceFd(&w.as_raw_fd()),
            HANDLER_WAKE,
            Interest::READABLE,
        )?;
    }
    let mut server = Server {
        poll,
        cfg,
        listener: Some(listener),
        conns: Slab::default(),
        ids: HashMap::new(),
        per_addr: HashMap::new(),
        heads: HashMap::new(),
        next_id: 1,
        io: Io::detached(),
        closed: Vec::new(),
        again: Vec::new(),
        dirty: Vec::new(),
        accept_paused: None,
    };
    server.run(handler, shutdown, wake.as_deref())
}

/// Lets the process hold as many sockets as its hard limit allows (the soft limit is often 1024).
fn raise_fd_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 || rl.rlim_cur >= rl.rlim_max {
            return;
        }
        let soft = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
            // Some systems refuse an unlimited soft limit; settle for a large finite one.
            rl.rlim_cur = rl.rlim_max.min(1 << 20);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                log::warn("could not raise the open file limit", &[("limit", &soft)]);
            }
        }
    }
}

/// A vector of optional slots with a free list: connection tables indexed by mio token.
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Slab<T> {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// The index the next [`Slab::insert`] will use.
    fn next_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.items.len())
    }
    fn insert(&mut self, v: T) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.items[i] = Some(v);
                i
            }
            None => {
                self.items.push(Some(v));
                self.items.len() - 1
            }
        }
    }
    fn remove(&mut self, i: usize) -> Option<T> {
        let v = self.items.get_mut(i)?.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(v)
    }
    fn get(&self, i: usize) -> Option<&T> {
        self.items.get(i)?.as_ref()
    }
    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items.get_mut(i)?.as_mut()
    }
    /// Every index that may hold a value (some slots are empty).
    fn slots(&self) -> std::ops::Range<usize> {
        0..self.items.len()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Ws,
    Sse,
}

enum State {
    /// Reading a request head and body.
    Head {
        buf: Vec<u8>,
        scanned: usize,
    },
    Ws(Box<WebSocketContext>),
    Sse,
    /// The last output is queued. Once it is written the write side is shut and input discarded until EOF or
    /// `until` (see [`LINGER`]).
    Closing {
        until: Instant,
        shut: bool,
    },
}

struct Conn {
    id: ConnId,
    tcp: tls::Stream,
    peer: SocketAddr,
    kind: Kind,
    state: State,
    /// Bytes waiting for the socket. Only written after [`Handler::end_of_batch`].
    wbuf: Vec<u8>,
    /// When the request began (head timeout) or the peer was last heard from (idle timeout).
    heard: Instant,
    /// The last ping (WebSocket) or keepalive (event stream).
    pinged: Instant,
    /// Still sending its request: counted in [`Server::heads`].
    head: bool,
    /// Its request is in: counted in [`Server::per_addr`].
    counted: bool,
    /// The handler knows this connection and has not yet been told it ended.
    live: bool,
    /// The handler was ever told of it (its peer address is kept until `on_close` is delivered).
    told: bool,
    /// Registered for WRITABLE: output is waiting for socket space.
    want_write: bool,
    /// On the dirty list: has output to write after this batch.
    dirty: bool,
}

struct Server<'a> {
    poll: Poll,
    cfg: &'a NetConfig,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    ids: HashMap<ConnId, usize>,
    /// Connections per address whose request is in.
    per_addr: HashMap<IpAddr, usize>,
    /// Connections per address still sending their request.
    heads: HashMap<IpAddr, Heads>,
    next_id: ConnId,
    io: Io,
    /// `on_close` calls owed to the handler: (conn, clean).
    closed: Vec<(ConnId, bool)>,
    /// Connections that stopped reading at [`READ_BUDGET`] with input left.
    again: Vec<(usize, ConnId)>,
    /// Connections with output to write after the batch.
    dirty: Vec<(usize, ConnId)>,
    accept_paused: Option<Instant>,
}
