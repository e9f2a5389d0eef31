//! HTTP/1.1: request heads and bodies parsed, routed to the handler or upgraded to a WebSocket, responses and event-stream events written.

use super::ws::{close_frame, error_json, push_frame, text_frame, ws_config};
use super::{
    Handler, HttpAction, Kind, MAX_BODY, MAX_HEAD, READ_CHUNK, Request, Response, Server, State,
};
use crate::broker::log;
use base64::Engine as _;
use std::io::{self, Read};
use std::time::Instant;
use tungstenite::protocol::{Role, WebSocketContext};

/// A request head, parsed.
pub(super) struct Head {
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
    /// A body over [`MAX_BODY`] announced for this path: refused with 413 before it is read.
    TooLarge(String),
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
        return Parse::TooLarge(head.path);
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
        Parse::TooLarge(_) => Err(413),
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
pub(super) fn error_response(status: u16) -> Response {
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

pub(super) fn reason(status: u16) -> &'static str {
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

pub(super) fn write_response(buf: &mut Vec<u8>, resp: &Response) {
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
pub(super) fn write_event(buf: &mut Vec<u8>, event: &str, id: Option<&str>, data: &str) {
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

impl Server<'_> {
    pub(super) fn read_head(&mut self, h: &mut impl Handler, idx: usize, now: Instant) {
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
                        Parse::TooLarge(path) => {
                            // The one refusal of a whole request the handler never sees: logged as it logs
                            // its own, since a sender (a webhook's, say) learns of it only from the status.
                            let peer = c.peer;
                            self.io.metrics.http_requests += 1;
                            log::warn(
                                "http request refused",
                                &[
                                    ("peer", &peer),
                                    ("path", &path),
                                    ("status", &413),
                                    ("error", &"payload_too_large"),
                                ],
                            );
                            self.respond(idx, &error_response(413), now);
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
