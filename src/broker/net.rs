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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

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
    /// A WebSocket or event stream ended. `clean` is true when the client sent a close frame.
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
