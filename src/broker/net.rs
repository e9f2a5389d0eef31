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

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown as NetShutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tungstenite::error::{Error as WsError, ProtocolError};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tungstenite::protocol::{CloseFrame, Message, Role, WebSocketConfig, WebSocketContext};

use super::log;

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
    /// had [`HEAD_GRACE`] is answered `408`.
    pub max_conns_per_addr: usize,
    /// Output a connection may have waiting for its socket before it is dropped as too slow.
    pub max_write_buffer: usize,
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
        }
    }
}

const MAX_HEAD: usize = 16 * 1024;
/// How long a request head is waited for before it may make room for a newer one from its address.
const HEAD_GRACE: Duration = Duration::from_secs(1);
const MAX_BODY: usize = 64 * 1024;
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

/// Stops [`serve`]: on SIGINT/SIGTERM once installed, or when triggered.
///
/// A signal handler may only do async-signal-safe things, so it writes one byte to a pipe the event loop watches.
pub struct Shutdown {
    read: OwnedFd,
    write: OwnedFd,
    installed: bool,
}

/// The write end of the installed [`Shutdown`]'s pipe, for the signal handler.
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    let fd = SIGNAL_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let errno = errno_location();
        // SAFETY: errno_location points at this thread's errno; write(2) is async-signal-safe.
        unsafe {
            let saved = errno.map(|e| *e);
            libc::write(fd, b"x".as_ptr().cast(), 1);
            if let (Some(e), Some(v)) = (errno, saved) {
                *e = v;
            }
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno_location() -> Option<*mut libc::c_int> {
    // SAFETY: always returns this thread's errno.
    Some(unsafe { libc::__errno_location() })
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
fn errno_location() -> Option<*mut libc::c_int> {
    // SAFETY: always returns this thread's errno.
    Some(unsafe { libc::__error() })
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)))]
fn errno_location() -> Option<*mut libc::c_int> {
    None
}

impl Shutdown {
    /// A switch that only [`Shutdown::trigger`] flips.
    pub fn new() -> io::Result<Shutdown> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds has room for the two descriptors pipe(2) writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe(2) just returned these two descriptors and nothing else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [read.as_raw_fd(), write.as_raw_fd()] {
            // SAFETY: fcntl on a descriptor we own.
            unsafe {
                libc::fcntl(
                    fd,
                    libc::F_SETFL,
                    libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
                );
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(Shutdown {
            read,
            write,
            installed: false,
        })
    }

    /// A switch that SIGINT and SIGTERM flip, and [`Shutdown::trigger`].
    pub fn install() -> io::Result<Shutdown> {
        let mut s = Shutdown::new()?;
        SIGNAL_FD.store(s.write.as_raw_fd(), Ordering::Relaxed);
        s.installed = true;
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is valid; the handler only calls async-signal-safe functions.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(s)
    }

    /// Asks the loop to shut down.
    pub fn trigger(&self) {
        // SAFETY: writing one byte from a live buffer to a descriptor we own. A full pipe already holds a request.
        unsafe { libc::write(self.write.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    }

    fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a live buffer of the given length from a descriptor we own.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        if self.installed {
            let _ = SIGNAL_FD.compare_exchange(
                self.write.as_raw_fd(),
                -1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}

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
    server.run(handler, shutdown)
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
    tcp: TcpStream,
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

/// The connections of one address still sending their request: how many, and in the order they came (with
/// entries of ones that since finished, dropped as they reach the front).
#[derive(Default)]
struct Heads {
    live: usize,
    order: VecDeque<(ConnId, Instant)>,
}

/// What one WebSocket read produced, detached from the borrow of the connection.
enum WsEvent {
    Text(String),
    Binary,
    Ping(tungstenite::Bytes),
    Nothing,
    Close(Option<CloseFrame>),
    WouldBlock,
    TooBig,
    Invalid(u16),
    Gone,
}

/// Lets tungstenite read frames but never write: the loop writes every byte itself, after the batch, so nothing
/// leaves before [`Handler::end_of_batch`] and output memory stays in one buffer it can shrink.
struct ReadOnly<'a> {
    tcp: &'a mut TcpStream,
    n: usize,
}

impl Read for ReadOnly<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.n += n;
        Ok(n)
    }
}

impl Write for ReadOnly<'_> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .write_buffer_size(0)
        // tungstenite never writes (see ReadOnly), so it may queue nothing: its pong and close replies are
        // dropped and the loop sends its own.
        .max_write_buffer_size(1)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME))
}

fn push_frame(buf: &mut Vec<u8>, frame: Frame) {
    // Formatting into a Vec cannot fail.
    let _ = frame.format(buf);
}

fn text_frame(text: String) -> Frame {
    Frame::message(text.into_bytes(), OpCode::Data(OpData::Text), true)
}

fn close_frame(code: u16, reason: &str) -> Frame {
    // A close frame's payload is at most 125 bytes: two for the code, the rest for the reason.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].to_string().into(),
    }))
}

fn error_json(code: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "code": code, "message": message}).to_string()
}

impl Server<'_> {
    fn run(&mut self, h: &mut impl Handler, shutdown: &Shutdown) -> io::Result<()> {
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
            let (mut tcp, peer) = match listener.accept() {
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

    /// Counts a new connection as a head of its address. At the cap, the address's oldest head that has had
    /// [`HEAD_GRACE`] is answered `408`, so connections that never finish their request cannot keep it full;
    /// heads younger than that (a burst of real clients) are all kept, and time out as any head does.
    fn add_head(&mut self, ip: IpAddr, id: ConnId, now: Instant) {
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
    fn end_head(&mut self, idx: usize) {
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

    fn read(&mut self, h: &mut impl Handler, idx: usize, now: Instant) {
        let Some(c) = self.conns.get(idx) else { return };
        match c.state {
            State::Head { .. } => self.read_head(h, idx, now),
            State::Ws(_) => self.read_ws(h, idx, now),
            State::Sse => self.discard(idx, true),
            State::Closing { shut: true, .. } => self.discard(idx, false),
            // Input waits until the last output is written; then it is read and discarded.
            State::Closing { shut: false, .. } => {}
        }
    }

    /// Reads and drops input. EOF ends the connection: on an event stream that is the client leaving (`clean`).
    fn discard(&mut self, idx: usize, clean: bool) {
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

    fn read_head(&mut self, h: &mut impl Handler, idx: usize, now: Instant) {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            let Some(c) = self.conns.get_mut(idx) else {
                return;
            };
            let State::Head { buf, scanned } = &mut c.state else {
                return;
            };
            match c.tcp.read(&mut chunk) {
                Ok(0) => {
                    self.drop_conn(idx);
                    return;
                }
                Ok(n) => {
                    self.io.metrics.bytes_in += n as u64;
                    buf.extend_from_slice(&chunk[..n]);
                    match parse_request(buf, scanned) {
                        Parse::More => {}
                        Parse::Fail(status) => {
                            self.io.metrics.http_requests += 1;
                            self.respond(idx, &error_response(status), now);
                            return;
                        }
                        Parse::Done(head, body) => {
                            let rest = buf.split_off(body.end);
                            let body = buf[body].to_vec();
                            self.dispatch(h, idx, head, body, rest, now);
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_conn(idx);
                    return;
                }
            }
        }
    }

    /// Routes a complete request: refusal, CORS preflight, WebSocket upgrade, or the handler.
    fn dispatch(
        &mut self,
        h: &mut impl Handler,
        idx: usize,
        head: Head,
        body: Vec<u8>,
        rest: Vec<u8>,
        now: Instant,
    ) {
        self.end_head(idx);
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        let (id, peer) = (c.id, c.peer);
        c.counted = true;
        let n = self.per_addr.entry(peer.ip()).or_default();
        *n += 1;
        let crowded = *n > self.cfg.max_conns_per_addr;
        let upgrade = head.path == "/ws" && head.header("upgrade").is_some();
        if !upgrade {
            self.io.metrics.http_requests += 1;
        }
        if crowded {
            self.io.metrics.refused += 1;
            match upgrade.then(|| websocket_accept(&head)).flatten() {
                Some(accept) => {
                    let Some(c) = self.conns.get_mut(idx) else {
                        return;
                    };
                    c.wbuf
                        .extend_from_slice(switching_protocols(&accept).as_bytes());
                    let msg = format!("too many connections from {}", peer.ip());
                    push_frame(&mut c.wbuf, text_frame(error_json("capacity", &msg)));
                    self.close_conn(idx, Some(close_frame(1013, "capacity")), false, now);
                }
                None => self.respond(idx, &error_response(429), now),
            }
            return;
        }
        if head.method == "OPTIONS" {
            self.respond(idx, &preflight(), now);
            return;
        }
        if upgrade {
            match websocket_accept(&head) {
                Some(accept) => self.upgrade(h, idx, &accept, rest, now),
                None => {
                    self.io.metrics.http_requests += 1;
                    self.respond(idx, &error_response(400), now);
                }
            }
            return;
        }
        let req = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers,
            body,
            peer,
        };
        match h.on_http(&mut self.io, id, &req) {
            HttpAction::Respond(resp) => self.respond(idx, &resp, now),
            HttpAction::EventStream => {
                let Some(c) = self.conns.get_mut(idx) else {
                    return;
                };
                c.wbuf.extend_from_slice(SSE_HEAD.as_bytes());
                c.state = State::Sse;
                c.kind = Kind::Sse;
                c.pinged = now;
                c.live = true;
                c.told = true;
                self.io.metrics.open_http -= 1;
                self.io.metrics.open_sse += 1;
                self.mark(idx);
                // The client may already have closed; reading notices.
                self.discard(idx, true);
            }
        }
    }

    fn upgrade(
        &mut self,
        h: &mut impl Handler,
        idx: usize,
        accept: &str,
        rest: Vec<u8>,
        now: Instant,
    ) {
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        c.wbuf
            .extend_from_slice(switching_protocols(accept).as_bytes());
        c.state = State::Ws(Box::new(WebSocketContext::from_partially_read(
            rest,
            Role::Server,
            Some(ws_config()),
        )));
        c.kind = Kind::Ws;
        c.heard = now;
        c.pinged = now;
        c.live = true;
        c.told = true;
        let (id, peer) = (c.id, c.peer);
        self.io.metrics.open_http -= 1;
        self.io.metrics.open_ws += 1;
        self.mark(idx);
        h.on_open(&mut self.io, id, peer);
        // Frames sent right behind the handshake are already buffered, and no new edge will announce them.
        self.read_ws(h, idx, now);
    }

    fn read_ws(&mut self, h: &mut impl Handler, idx: usize, now: Instant) {
        for _ in 0..READ_BUDGET {
            let Some(c) = self.conns.get_mut(idx) else {
                return;
            };
            let id = c.id;
            let State::Ws(ctx) = &mut c.state else { return };
            let mut r = ReadOnly {
                tcp: &mut c.tcp,
                n: 0,
            };
            let ev = match ctx.read(&mut r) {
                Ok(Message::Text(t)) => WsEvent::Text(t.as_str().to_string()),
                Ok(Message::Binary(_)) => WsEvent::Binary,
                Ok(Message::Ping(p)) => WsEvent::Ping(p),
                Ok(Message::Pong(_) | Message::Frame(_)) => WsEvent::Nothing,
                Ok(Message::Close(f)) => WsEvent::Close(f),
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => WsEvent::WouldBlock,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => WsEvent::Nothing,
                Err(WsError::Capacity(_)) => WsEvent::TooBig,
                Err(WsError::Utf8(_)) => WsEvent::Invalid(1007),
                Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    WsEvent::Gone
                }
                Err(WsError::Protocol(_)) => WsEvent::Invalid(1002),
                Err(_) => WsEvent::Gone,
            };
            if r.n > 0 {
                c.heard = now;
                self.io.metrics.bytes_in += r.n as u64;
            }
            match ev {
                WsEvent::Text(t) => {
                    self.io.metrics.ws_messages_in += 1;
                    h.on_text(&mut self.io, id, &t);
                }
                WsEvent::Binary => {
                    let msg = error_json("malformed", "binary frames are not accepted");
                    push_frame(&mut c.wbuf, text_frame(msg));
                    self.mark(idx);
                }
                WsEvent::Ping(p) => {
                    push_frame(&mut c.wbuf, Frame::pong(p));
                    self.mark(idx);
                }
                WsEvent::Nothing => {}
                WsEvent::Close(f) => {
                    // Echo the client's code, as RFC 6455 §5.5.1 asks.
                    let reply = Frame::close(f.map(|f| CloseFrame {
                        code: f.code,
                        reason: "".into(),
                    }));
                    self.close_conn(idx, Some(reply), true, now);
                    return;
                }
                WsEvent::WouldBlock => return,
                WsEvent::TooBig => {
                    let msg = error_json(
                        "payload_too_large",
                        &format!("frame over {MAX_FRAME} bytes"),
                    );
                    push_frame(&mut c.wbuf, text_frame(msg));
                    self.close_conn(idx, Some(close_frame(1009, "frame too large")), true, now);
                    return;
                }
                WsEvent::Invalid(code) => {
                    self.close_conn(idx, Some(close_frame(code, "protocol error")), false, now);
                    return;
                }
                WsEvent::Gone => {
                    self.drop_conn(idx);
                    return;
                }
            }
        }
        let id = self.conns.get(idx).map_or(0, |c| c.id);
        self.again.push((idx, id));
    }

    /// Queues an HTTP response; the connection closes once it is written.
    fn respond(&mut self, idx: usize, resp: &Response, now: Instant) {
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        write_response(&mut c.wbuf, resp);
        self.close_conn(idx, None, false, now);
    }

    /// Queues `last` (a close frame) and ends the connection once the output is written. The handler hears of it
    /// now (`clean`), so it queues nothing more for it.
    fn close_conn(&mut self, idx: usize, last: Option<Frame>, clean: bool, now: Instant) {
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
    fn drop_conn(&mut self, idx: usize) {
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

    fn mark(&mut self, idx: usize) {
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
        if failed {
            self.drop_conn(idx);
            return;
        }
        c.wbuf.drain(..written);
        let pending = !c.wbuf.is_empty();
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

/// A request head, parsed.
struct Head {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// Whether a comma-separated header lists `token` (case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

enum Parse {
    More,
    /// The head, and where the body lies in the buffer.
    Done(Head, std::ops::Range<usize>),
    Fail(u16),
}

/// Looks for a complete request in `buf`; `scanned` remembers how far the search for the head's end got.
fn parse_request(buf: &[u8], scanned: &mut usize) -> Parse {
    let from = scanned.saturating_sub(3);
    let Some(end) = buf[from..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| from + p + 4)
    else {
        *scanned = buf.len();
        return if buf.len() > MAX_HEAD {
            Parse::Fail(431)
        } else {
            Parse::More
        };
    };
    if end > MAX_HEAD {
        return Parse::Fail(431);
    }
    let head = match parse_head(&buf[..end - 4]) {
        Ok(h) => h,
        Err(status) => return Parse::Fail(status),
    };
    if head.header("transfer-encoding").is_some() {
        return Parse::Fail(411);
    }
    let mut lengths = head
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str());
    let len = match lengths.next() {
        // A PATCH that only names what to change (`curl -X PATCH .../read`) comes without a body or a length,
        // which RFC 9112 §6.3 reads as an empty body.
        None if matches!(head.method.as_str(), "POST" | "PUT") => {
            return Parse::Fail(411);
        }
        None => 0,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) && lengths.all(|w| w == v) => n,
            _ => return Parse::Fail(400),
        },
    };
    if len > MAX_BODY {
        return Parse::Fail(413);
    }
    if buf.len() < end + len {
        return Parse::More;
    }
    Parse::Done(head, end..end + len)
}

/// Reads one request from the start of `buf` as the event loop does: `Ok(None)` while it is incomplete,
/// `Ok(Some((method, path, body length)))` once it is whole, `Err(status)` for the refusal the loop would answer
/// with. Pure, so fuzzers and property tests can drive the parser without a socket.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<(String, String, usize)>, u16> {
    match parse_request(buf, &mut 0) {
        Parse::More => Ok(None),
        Parse::Done(h, body) => Ok(Some((h.method, h.path, body.len()))),
        Parse::Fail(status) => Err(status),
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_head(raw: &[u8]) -> Result<Head, u16> {
    let text = std::str::from_utf8(raw).map_err(|_| 400u16)?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !is_token(method) || !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(400);
    }
    if !(target.starts_with('/') || method == "OPTIONS" && target == "*") {
        return Err(400);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        // A name must be a bare token; a line starting with whitespace is an obsolete folded continuation.
        if !is_token(name) || value.contains(['\r', '\n']) {
            return Err(400);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Head {
        method: method.to_string(),
        path,
        query,
        headers,
    })
}

/// The `Sec-WebSocket-Accept` value for a valid upgrade request, or `None` if the request is not one.
fn websocket_accept(head: &Head) -> Option<String> {
    let key = head.header("sec-websocket-key")?;
    let ok = head.method == "GET"
        && head.has_token("upgrade", "websocket")
        && head.has_token("connection", "upgrade")
        && head.header("sec-websocket-version") == Some("13")
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16);
    ok.then(|| tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

fn switching_protocols(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                        Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n";

fn preflight() -> Response {
    Response {
        status: 204,
        content_type: "",
        headers: vec![
            (
                "Access-Control-Allow-Methods".into(),
                "GET, POST, PATCH, DELETE, OPTIONS".into(),
            ),
            (
                "Access-Control-Allow-Headers".into(),
                "Content-Type, Authorization".into(),
            ),
            ("Access-Control-Max-Age".into(), "86400".into()),
        ],
        body: Vec::new(),
    }
}

/// The transport's own refusals, in the handler's JSON shape.
fn error_response(status: u16) -> Response {
    let code = match status {
        400 => "bad_request",
        408 => "request_timeout",
        411 => "length_required",
        413 => "payload_too_large",
        429 => "capacity",
        431 => "headers_too_large",
        _ => "error",
    };
    Response::json(status, &serde_json::json!({ "error": code }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_response(buf: &mut Vec<u8>, resp: &Response) {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    // 204 and 304 carry no body, and so no content headers.
    let bodyless = matches!(resp.status, 204 | 304);
    if !bodyless {
        head.push_str(&format!(
            "Content-Type: {}\r\nContent-Length: {}\r\n",
            resp.content_type,
            resp.body.len()
        ));
    }
    head.push_str("Access-Control-Allow-Origin: *\r\nConnection: close\r\n");
    for (k, v) in &resp.headers {
        // A stray line break would let a value inject headers.
        if !k.contains(['\r', '\n']) && !v.contains(['\r', '\n']) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    buf.extend_from_slice(head.as_bytes());
    if !bodyless {
        buf.extend_from_slice(&resp.body);
    }
}

/// `event: X\nid: Y\ndata: line\n...\n\n`; line breaks in `event` and `id` would forge fields and are removed.
fn write_event(buf: &mut Vec<u8>, event: &str, id: Option<&str>, data: &str) {
    let clean = |s: &str| s.replace(['\r', '\n'], "");
    if !event.is_empty() {
        buf.extend_from_slice(format!("event: {}\n", clean(event)).as_bytes());
    }
    if let Some(id) = id {
        buf.extend_from_slice(format!("id: {}\n", clean(id)).as_bytes());
    }
    for line in data.split('\n') {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        buf.push(b'\n');
    }
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpStream as StdStream;
    use std::sync::Arc;
    use std::sync::mpsc::{self, Receiver, Sender};
    use std::thread::JoinHandle;
    use tungstenite::protocol::frame::coding::CloseCode;

    #[derive(Debug, Clone, PartialEq)]
    enum Ev {
        Open(ConnId),
        Text(ConnId, String),
        Close(ConnId, bool),
        Holding,
    }

    /// Echoes text; a few words are commands. Reports every call on a channel.
    struct Echo {
        tx: Sender<Ev>,
        gate: Receiver<()>,
        hold: bool,
    }

    impl Handler for Echo {
        fn on_open(&mut self, _: &mut Io, conn: ConnId, _: SocketAddr) {
            let _ = self.tx.send(Ev::Open(conn));
        }
        fn on_text(&mut self, io: &mut Io, conn: ConnId, text: &str) {
            let _ = self.tx.send(Ev::Text(conn, text.to_string()));
            match text {
                "close-me" => io.close(conn, 4000, "bye"),
                "hold" => {
                    self.hold = true;
                    io.send(conn, "held".into());
                }
                "metrics" => io.send(conn, io.metrics().open_ws.to_string()),
                "id" => io.send(conn, conn.to_string()),
                _ if text.starts_with("flood ") => {
                    for _ in 0..text[6..].parse().unwrap() {
                        io.send(conn, "f".repeat(60 * 1024));
                    }
                }
                _ => io.send(conn, text.to_string()),
            }
        }
        fn on_close(&mut self, _: &mut Io, conn: ConnId, clean: bool) {
            let _ = self.tx.send(Ev::Close(conn, clean));
        }
        fn on_http(&mut self, io: &mut Io, conn: ConnId, req: &Request) -> HttpAction {
            match (req.method.as_str(), req.path.as_str()) {
                ("GET", "/health") => {
                    HttpAction::Respond(Response::json(200, &serde_json::json!({"status": "ok"})))
                }
                ("POST", "/echo") => {
                    HttpAction::Respond(Response::text(200, String::from_utf8_lossy(&req.body)))
                }
                ("GET", "/sse") => {
                    io.sse_event(conn, "hello", Some("1"), "a\nb");
                    HttpAction::EventStream
                }
                _ => HttpAction::Respond(Response::json(
                    404,
                    &serde_json::json!({"error": "not_found"}),
                )),
            }
        }
        fn on_tick(&mut self, _: &mut Io, _: Instant) {}
        fn next_deadline(&self) -> Option<Instant> {
            None
        }
        fn end_of_batch(&mut self, _: &mut Io) {
            if std::mem::take(&mut self.hold) {
                let _ = self.tx.send(Ev::Holding);
                let _ = self.gate.recv();
            }
        }
    }

    struct TestServer {
        addr: SocketAddr,
        events: Receiver<Ev>,
        gate: Sender<()>,
        shutdown: Arc<Shutdown>,
        thread: Option<JoinHandle<io::Result<()>>>,
    }

    const WAIT: Duration = Duration::from_secs(5);

    fn start(cfg: NetConfig) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = mpsc::channel();
        let (gate, gate_rx) = mpsc::channel();
        let shutdown = Arc::new(Shutdown::new().unwrap());
        let sd = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let mut h = Echo {
                tx,
                gate: gate_rx,
                hold: false,
            };
            serve(listener, &cfg, &mut h, &sd)
        });
        TestServer {
            addr,
            events,
            gate,
            shutdown,
            thread: Some(thread),
        }
    }

    impl TestServer {
        /// The next event `want` accepts, skipping others.
        fn expect(&self, want: impl Fn(&Ev) -> bool) -> Ev {
            let deadline = Instant::now() + WAIT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.events.recv_timeout(left) {
                    Ok(ev) if want(&ev) => return ev,
                    Ok(_) => {}
                    Err(e) => panic!("no expected event: {e}"),
                }
            }
        }
        fn stop(&mut self) -> io::Result<()> {
            self.shutdown.trigger();
            self.thread.take().map_or(Ok(()), |t| t.join().unwrap())
        }
        fn ws(&self, path: &str) -> tungstenite::WebSocket<StdStream> {
            let tcp = StdStream::connect(self.addr).unwrap();
            tcp.set_read_timeout(Some(WAIT)).unwrap();
            tungstenite::client(format!("ws://{}{path}", self.addr), tcp)
                .unwrap()
                .0
        }
        /// Sends raw bytes and reads until the server closes.
        fn http(&self, raw: &[u8]) -> String {
            let mut tcp = StdStream::connect(self.addr).unwrap();
            tcp.set_read_timeout(Some(WAIT)).unwrap();
            tcp.write_all(raw).unwrap();
            let mut out = Vec::new();
            let _ = tcp.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            let _ = self.stop();
        }
    }

    fn text(ws: &mut tungstenite::WebSocket<StdStream>) -> String {
        loop {
            match ws.read().unwrap() {
                Message::Text(t) => return t.to_string(),
                Message::Ping(_) | Message::Pong(_) => {}
                m => panic!("expected text, got {m:?}"),
            }
        }
    }

    fn close_code(ws: &mut tungstenite::WebSocket<StdStream>) -> u16 {
        loop {
            match ws.read() {
                Ok(Message::Close(Some(f))) => return f.code.into(),
                Ok(Message::Close(None)) => return 1005,
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("expected close, got {other:?}"),
            }
        }
    }

    #[test]
    fn echoes_websocket_text() {
        let s = start(NetConfig::default());
        let mut ws = s.ws("/ws?v=1");
        let Ev::Open(id) = s.expect(|e| matches!(e, Ev::Open(_))) else {
            unreachable!()
        };
        ws.send(Message::text("hello")).unwrap();
        assert_eq!(text(&mut ws), "hello");
        assert_eq!(
            s.expect(|e| matches!(e, Ev::Text(..))),
            Ev::Text(id, "hello".into())
        );
        ws.send(Message::binary(vec![1, 2])).unwrap();
        assert!(text(&mut ws).contains(r#""code":"malformed""#));
        ws.send(Message::Ping("p".into())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::Pong("p".into()));
        ws.send(Message::text("still here")).unwrap();
        assert_eq!(text(&mut ws), "still here");
        ws.close(None).unwrap();
        assert_eq!(
            s.expect(|e| matches!(e, Ev::Close(..))),
            Ev::Close(id, true)
        );
    }

    #[test]
    fn dropped_socket_closes_uncleanly() {
        let s = start(NetConfig::default());
        let ws = s.ws("/ws");
        let Ev::Open(id) = s.expect(|e| matches!(e, Ev::Open(_))) else {
            unreachable!()
        };
        drop(ws);
        assert_eq!(
            s.expect(|e| matches!(e, Ev::Close(..))),
            Ev::Close(id, false)
        );
    }

    #[test]
    fn handler_close_is_reported_once() {
        let mut s = start(NetConfig::default());
        let mut ws = s.ws("/ws");
        ws.send(Message::text("id")).unwrap();
        let id: ConnId = text(&mut ws).parse().unwrap();
        ws.send(Message::text("close-me")).unwrap();
        assert_eq!(close_code(&mut ws), 4000);
        assert_eq!(
            s.expect(|e| matches!(e, Ev::Close(..))),
            Ev::Close(id, true)
        );
        s.stop().unwrap();
        assert!(!s.events.try_iter().any(|e| matches!(e, Ev::Close(..))));
    }

    #[test]
    fn http_routes_and_errors() {
        let s = start(NetConfig::default());
        let r = s.http(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
        assert!(r.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\n{\"error\":\"not_found\"}"), "{r}");
        let r = s.http(b"GET /health HTTP/1.1\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("Content-Type: application/json")
        );
        let r = s.http(b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert!(r.ends_with("\r\n\r\nhello"), "{r}");
        let r = s.http(b"OPTIONS /cli/mesh/create HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 204 No Content\r\n"), "{r}");
        assert!(r.contains("Access-Control-Allow-Methods: GET, POST, PATCH, DELETE, OPTIONS\r\n"));
        assert!(r.contains("Access-Control-Allow-Headers: Content-Type, Authorization\r\n"));
        assert!(
            s.http(b"\x16\x03\x01garbage\r\n\r\n")
                .starts_with("HTTP/1.1 400 ")
        );
        assert!(
            s.http(b"GET /x HTTP/1.1\r\n folded\r\n\r\n")
                .starts_with("HTTP/1.1 400 ")
        );
        assert!(
            s.http(b"POST /echo HTTP/1.1\r\n\r\n")
                .starts_with("HTTP/1.1 411 ")
        );
        let r = s.http(
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 411 "));
        let mut big = b"POST /echo HTTP/1.1\r\nContent-Length: 70000\r\n\r\n".to_vec();
        big.extend(vec![b'x'; 70000]);
        assert!(s.http(&big).starts_with("HTTP/1.1 413 "));
        let long = format!(
            "GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n",
            "a".repeat(20 * 1024)
        );
        assert!(s.http(long.as_bytes()).starts_with("HTTP/1.1 431 "));
        let bad = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert!(s.http(bad).starts_with("HTTP/1.1 400 "));
    }

    #[test]
    fn slow_head_times_out() {
        let s = start(NetConfig {
            head_timeout: Duration::from_millis(200),
            tick: Duration::from_millis(50),
            ..NetConfig::default()
        });
        let r = s.http(b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert!(r.starts_with("HTTP/1.1 408 "), "{r}");
    }

    #[test]
    fn oversized_frame_gets_error_then_1009() {
        let s = start(NetConfig::default());
        let mut ws = s.ws("/ws");
        let Ev::Open(id) = s.expect(|e| matches!(e, Ev::Open(_))) else {
            unreachable!()
        };
        ws.send(Message::text("x".repeat(70 * 1024))).unwrap();
        let t = text(&mut ws);
        assert!(
            t.contains(r#""code":"payload_too_large""#) && t.contains("65536"),
            "{t}"
        );
        assert_eq!(close_code(&mut ws), 1009);
        assert_eq!(
            s.expect(|e| matches!(e, Ev::Close(..))),
            Ev::Close(id, true)
        );
        // Exactly 64 KiB is fine.
        let mut ws = s.ws("/ws");
        ws.send(Message::text("y".repeat(MAX_FRAME))).unwrap();
        assert_eq!(text(&mut ws).len(), MAX_FRAME);
    }

    fn quick() -> NetConfig {
        NetConfig {
            ping_interval: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(400),
            sse_keepalive: Duration::from_millis(100),
            tick: Duration::from_millis(25),
            ..NetConfig::default()
        }
    }

    #[test]
    fn pings_keep_a_quiet_client() {
        let s = start(quick());
        let mut ws = s.ws("/ws");
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let until = Instant::now() + Duration::from_secs(1);
        let mut pings = 0;
        while Instant::now() < until {
            // Reading answers pings with pongs; the client sends nothing else.
            match ws.read() {
                Ok(Message::Ping(_)) => pings += 1,
                Ok(m) => panic!("unexpected {m:?}"),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("dropped: {e}"),
            }
        }
        assert!(pings >= 3, "{pings} pings");
        ws.get_ref().set_read_timeout(Some(WAIT)).unwrap();
        ws.send(Message::text("alive")).unwrap();
        assert_eq!(text(&mut ws), "alive");
    }

    /// A WebSocket handshake by hand, for clients that must not answer pings.
    fn raw_ws(addr: SocketAddr) -> StdStream {
        let mut tcp = StdStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        tcp.write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
        let mut r = BufReader::new(tcp.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 101 "), "{line}");
        while line != "\r\n" {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.starts_with("Sec-WebSocket-Accept:") {
                assert_eq!(
                    line,
                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                );
            }
        }
        assert!(r.buffer().is_empty());
        tcp
    }

    #[test]
    fn idle_client_is_dropped() {
        let s = start(quick());
        let mut tcp = raw_ws(s.addr);
        let Ev::Open(id) = s.expect(|e| matches!(e, Ev::Open(_))) else {
            unreachable!()
        };
        let mut buf = [0u8; 256];
        let t0 = Instant::now();
        // Pings arrive (and go unanswered) until the server gives up and closes without a close frame.
        loop {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => assert!(
                    buf[..n].chunks(2).all(|f| f == [0x89, 0]),
                    "{:?}",
                    &buf[..n]
                ),
            }
        }
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            s.expect(|e| matches!(e, Ev::Close(..))),
            Ev::Close(id, false)
        );
    }

    #[test]
    fn event_stream() {
        let s = start(quick());
        let mut tcp = StdStream::connect(s.addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        tcp.write_all(b"GET /sse HTTP/1.1\r\n\r\n").unwrap();
        let mut got = String::new();
        let mut buf = [0u8; 1024];
        while !got.contains(": keepalive\n\n") {
            let n = tcp.read(&mut buf).unwrap();
            assert!(n > 0);
            got.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
        assert!(
            got.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"),
            "{got}"
        );
        assert!(!got.contains("Content-Length"));
        assert!(
            got.contains("\r\n\r\nevent: hello\nid: 1\ndata: a\ndata: b\n\n"),
            "{got}"
        );
        drop(tcp);
        assert!(matches!(
            s.expect(|e| matches!(e, Ev::Close(..))),
            Ev::Close(_, true)
        ));
    }

    #[test]
    fn nothing_leaves_before_end_of_batch() {
        let s = start(NetConfig::default());
        let mut ws = s.ws("/ws");
        ws.send(Message::text("hold")).unwrap();
        assert_eq!(s.expect(|e| *e == Ev::Holding), Ev::Holding);
        // The handler sits in end_of_batch: its reply must not be on the wire yet.
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        match ws.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => panic!("output before end_of_batch returned: {other:?}"),
        }
        s.gate.send(()).unwrap();
        ws.get_ref().set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(text(&mut ws), "held");
    }

    #[test]
    fn shutdown_closes_with_1001() {
        let mut s = start(NetConfig::default());
        let mut ws = s.ws("/ws");
        let Ev::Open(id) = s.expect(|e| matches!(e, Ev::Open(_))) else {
            unreachable!()
        };
        s.shutdown.trigger();
        assert_eq!(close_code(&mut ws), 1001);
        s.stop().unwrap();
        assert!(s.events.try_iter().any(|e| e == Ev::Close(id, true)));
        assert!(StdStream::connect(s.addr).is_err());
    }

    #[test]
    fn refuses_beyond_the_per_address_limit() {
        let s = start(NetConfig {
            max_conns_per_addr: 2,
            ..NetConfig::default()
        });
        let mut a = s.ws("/ws");
        let _b = s.ws("/ws");
        let mut c = s.ws("/ws");
        let t = text(&mut c);
        assert!(
            t.contains(r#""code":"capacity""#) && t.contains("127.0.0.1"),
            "{t}"
        );
        assert_eq!(close_code(&mut c), 1013);
        assert!(
            s.http(b"GET /health HTTP/1.1\r\n\r\n")
                .starts_with("HTTP/1.1 429 ")
        );
        a.send(Message::text("metrics")).unwrap();
        assert_eq!(text(&mut a), "2");
    }

    #[test]
    fn half_open_heads_do_not_fill_the_per_address_cap() {
        let s = start(NetConfig {
            max_conns_per_addr: 2,
            ..NetConfig::default()
        });
        let held: Vec<StdStream> = (0..20)
            .map(|_| {
                let mut t = StdStream::connect(s.addr).unwrap();
                t.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").unwrap();
                t
            })
            .collect();
        // The cap counts what finished its request: a client that completes its upgrade gets in.
        let mut a = s.ws("/ws");
        a.send(Message::text("metrics")).unwrap();
        assert_eq!(text(&mut a), "1");
        let _b = s.ws("/ws");
        let mut c = s.ws("/ws");
        assert!(text(&mut c).contains(r#""code":"capacity""#));
        drop(held);
    }

    #[test]
    fn an_address_at_its_cap_of_heads_loses_its_oldest_stale_one() {
        let s = start(NetConfig {
            max_conns_per_addr: 2,
            tick: Duration::from_millis(50),
            ..NetConfig::default()
        });
        let open = || {
            let mut t = StdStream::connect(s.addr).unwrap();
            t.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            t
        };
        let (mut first, mut second) = (open(), open());
        std::thread::sleep(HEAD_GRACE + Duration::from_millis(100));
        let _third = open();
        let mut r = String::new();
        let _ = first.read_to_string(&mut r);
        assert!(r.starts_with("HTTP/1.1 408 "), "{r:?}");
        // Only the oldest: the second is still waited for.
        let mut one = [0u8; 1];
        second
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(
            second.read(&mut one).is_err(),
            "the second head was closed too"
        );
    }

    #[test]
    fn two_thousand_connections() {
        let s = start(NetConfig::default());
        let mut socks: Vec<_> = (0..2000).map(|_| s.ws("/ws")).collect();
        for (i, ws) in socks.iter_mut().enumerate() {
            ws.send(Message::text(format!("m{i}"))).unwrap();
        }
        for (i, ws) in socks.iter_mut().enumerate() {
            assert_eq!(text(ws), format!("m{i}"));
        }
        socks[0].send(Message::text("metrics")).unwrap();
        assert_eq!(text(&mut socks[0]), "2000");
        for ws in &mut socks {
            ws.close(Some(tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .unwrap();
        }
    }

    #[test]
    fn big_batches_reach_a_reader_and_drop_a_non_reader() {
        let s = start(NetConfig {
            max_write_buffer: 256 * 1024,
            ..NetConfig::default()
        });
        let mut ws = s.ws("/ws");
        // 1.8 MB in one batch, far over the limit, to a client that reads.
        ws.send(Message::text("flood 30")).unwrap();
        for _ in 0..30 {
            assert_eq!(text(&mut ws).len(), 60 * 1024);
        }
        ws.send(Message::text("still")).unwrap();
        assert_eq!(text(&mut ws), "still");
        // A client that never reads cannot take 12 MB: it is dropped, not waited for.
        let mut ws = s.ws("/ws");
        ws.send(Message::text("id")).unwrap();
        let id: ConnId = text(&mut ws).parse().unwrap();
        ws.send(Message::text("flood 200")).unwrap();
        assert_eq!(
            s.expect(|e| matches!(e, Ev::Close(..))),
            Ev::Close(id, false)
        );
    }

    #[test]
    fn parses_heads() {
        let mut scanned = 0;
        let buf = b"GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\nX-Thing:  v \r\n\r\nrest";
        let Parse::Done(h, body) = parse_request(buf, &mut scanned) else {
            panic!()
        };
        assert_eq!(
            (h.method.as_str(), h.path.as_str(), h.query.as_deref()),
            ("GET", "/a/b", Some("x=1&y"))
        );
        assert_eq!(h.header("x-thing"), Some("v"));
        assert!(body.is_empty());
        let mut scanned = 0;
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost", &mut scanned),
            Parse::More
        ));
        assert!(matches!(
            parse_request(b"GET / HTTP/2\r\n\r\n", &mut 0),
            Parse::Fail(400)
        ));
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nA : b\r\n\r\n", &mut 0),
            Parse::Fail(400)
        ));
        let two = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        assert!(matches!(parse_request(two, &mut 0), Parse::Fail(400)));
    }

    #[test]
    fn formats_events() {
        let mut b = Vec::new();
        write_event(&mut b, "ev\n", None, "x\r\ny");
        assert_eq!(b, b"event: ev\ndata: x\ndata: y\n\n");
    }
}
