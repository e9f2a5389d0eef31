//! The transport driven over real sockets by an echoing handler.
//!
//! Compiled only for `cargo test` (declared `#[cfg(test)]` by its parent), so its `unwrap`s fail a test, never a user.
#![cfg(test)]

use super::signal::Shutdown;
use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream as StdStream;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use tungstenite::protocol::Message;
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

fn text<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>) -> String {
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            m => panic!("expected text, got {m:?}"),
        }
    }
}

fn close_code<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>) -> u16 {
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
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("Content-Type: application/json"));
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
    let r =
        s.http(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
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

/// A self-signed certificate for 127.0.0.1: the server's configuration and a client's that trusts it alone.
fn tls_pair() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = made.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, StdStream>;

fn tls_connect(addr: SocketAddr, client: &Arc<rustls::ClientConfig>) -> TlsStream {
    let tcp = StdStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(client.clone(), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

fn wss(addr: SocketAddr, client: &Arc<rustls::ClientConfig>) -> tungstenite::WebSocket<TlsStream> {
    tungstenite::client(format!("wss://{addr}/ws"), tls_connect(addr, client))
        .unwrap()
        .0
}

#[test]
fn tls_carries_websocket_http_and_event_streams() {
    let (server, client) = tls_pair();
    let s = start(NetConfig {
        max_write_buffer: 256 * 1024,
        tls: Some(server),
        ..quick()
    });
    let mut ws = wss(s.addr, &client);
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(text(&mut ws), "hello");
    // Far more than rustls holds and than the loop's limit, to a client that reads: the socket's pace, no drop.
    ws.send(Message::text("flood 30")).unwrap();
    for _ in 0..30 {
        assert_eq!(text(&mut ws).len(), 60 * 1024);
    }
    ws.send(Message::text("close-me")).unwrap();
    assert_eq!(close_code(&mut ws), 4000);

    // A client that never reads is dropped, as on plain TCP.
    let mut ws = wss(s.addr, &client);
    ws.send(Message::text("id")).unwrap();
    let id: ConnId = text(&mut ws).parse().unwrap();
    ws.send(Message::text("flood 200")).unwrap();
    assert_eq!(
        s.expect(|e| matches!(e, Ev::Close(c, _) if *c == id)),
        Ev::Close(id, false)
    );

    // HTTP ends with close_notify: reading to the end is not an error ("unexpected EOF") for the client.
    let mut t = tls_connect(s.addr, &client);
    t.write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let mut out = String::new();
    t.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200 ") && out.ends_with("\r\n\r\nhello"),
        "{out}"
    );

    let mut t = tls_connect(s.addr, &client);
    t.write_all(b"GET /sse HTTP/1.1\r\n\r\n").unwrap();
    let mut r = BufReader::new(t);
    let mut head = String::new();
    while !head.ends_with("data: b\n") {
        assert!(r.read_line(&mut head).unwrap() > 0, "{head}");
    }
    assert!(head.contains("event: hello\nid: 1\ndata: a\n"), "{head}");

    // Plain HTTP on the TLS port is not answered in plain text, and the server goes on.
    assert!(!s.http(b"GET /health HTTP/1.1\r\n\r\n").starts_with("HTTP/"));
    let mut ws = wss(s.addr, &client);
    ws.send(Message::text("still")).unwrap();
    assert_eq!(text(&mut ws), "still");
}
