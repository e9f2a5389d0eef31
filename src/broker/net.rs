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
pub struct Io {
    _private: (),
}

impl Io {
    /// Queues a text message to a WebSocket connection. A connection that is gone is ignored.
    pub fn send(&mut self, _conn: ConnId, _text: String) {
        unimplemented!()
    }
    /// Queues a close frame with `code` and `reason`; the connection closes once it is written.
    pub fn close(&mut self, _conn: ConnId, _code: u16, _reason: &str) {
        unimplemented!()
    }
    /// Queues one server-sent event on an event stream connection.
    pub fn sse_event(&mut self, _conn: ConnId, _event: &str, _id: Option<&str>, _data: &str) {
        unimplemented!()
    }
    /// The address the connection came from.
    pub fn peer_addr(&self, _conn: ConnId) -> Option<SocketAddr> {
        unimplemented!()
    }
    /// The time the current iteration started.
    pub fn now(&self) -> Instant {
        unimplemented!()
    }
}
