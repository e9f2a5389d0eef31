//! [`Conn`]: one blocking WebSocket for a one-shot tool — connect, hello, a few requests, close.
//!
//! Every wait has a deadline enforced with the socket's read timeout; nothing sleeps.

use super::transport::{self, HANDSHAKE_TIMEOUT, Ws, unreachable, would_block, ws_error};
use super::{ConnOpts, Who, broker_error, hello_frame, random_id};
use crate::config::MeshEntry;
use crate::crypto::Keypair;
use crate::error::{Code, Error, Result};
use crate::wire::{self, Ack, ClientAck, Frame, HelloAck, Push, SendMessage};
use std::time::{Duration, Instant};
use tungstenite::Message;

/// Why a connect failed, with what the session loop needs to decide whether to try again.
#[derive(Debug)]
pub(crate) struct ConnectError {
    pub error: Error,
    /// The broker refused the hello (an `error` frame or a close before `hello_ack`).
    pub refused: bool,
    /// Trying again cannot help: the member is revoked, unknown, kicked or banned.
    pub terminal: bool,
    /// The broker had accepted this very hello before.
    pub replayed: bool,
}

impl From<Error> for ConnectError {
    fn from(error: Error) -> ConnectError {
        ConnectError {
            error,
            refused: false,
            terminal: false,
            replayed: false,
        }
    }
}

/// Close codes after which reconnecting is pointless: 4001 kicked, 4002 revoked/banned.
pub(crate) fn terminal_close(code: u16) -> bool {
    code == 4001 || code == 4002
}

/// Hello refusals after which reconnecting is pointless.
pub(crate) fn terminal_refusal(code: &str) -> bool {
    code == "revoked" || code == "unauthorized"
}

/// A socket that said hello and got `hello_ack`, with any frames that came before the ack.
pub(crate) struct Connected {
    pub ws: Ws,
    pub hello_ack: HelloAck,
    pub early: Vec<Frame>,
    /// Which of [`Who::urls`] answered.
    pub url_index: usize,
}

/// Opens a socket to the first of the mesh's brokers that answers and says hello; the socket stays blocking.
///
/// A broker that cannot be reached (or closes before it answers) passes the turn to the next; one that refuses the
/// hello does not, since the others share its members and would refuse it too. When none can be reached the error
/// names each of them.
///
/// Another process of the same key may have signed the very same hello (same key, same millisecond), which the
/// broker refuses as `replayed`; a new hello a millisecond later is a different one.
pub(crate) fn connect(
    who: &Who,
    opts: &ConnOpts,
    session_id: &str,
    attestation_ttl: Duration,
) -> std::result::Result<Connected, ConnectError> {
    let mut unreachable = Vec::new();
    for (i, url) in who.urls().enumerate() {
        let mut tries = 0;
        let r = loop {
            match connect_once(who, url, opts, session_id, attestation_ttl) {
                Err(e) if e.replayed && tries < 3 => tries += 1,
                r => break r,
            }
        };
        match r {
            Ok(mut c) => {
                c.url_index = i;
                return Ok(c);
            }
            Err(e) if !e.refused && e.error.code == Code::Network && !who.also.is_empty() => {
                unreachable.push(e.error.msg);
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::network(format!(
        "no broker of mesh {} answers: {}",
        who.slug,
        unreachable.join("; ")
    ))
    .into())
}

fn connect_once(
    who: &Who,
    broker: &transport::BrokerUrl,
    opts: &ConnOpts,
    session_id: &str,
    attestation_ttl: Duration,
) -> std::result::Result<Connected, ConnectError> {
    let url = broker.ws.clone();
    let mut ws = transport::open(broker)?;
    let hello = hello_frame(who, opts, session_id, attestation_ttl);
    ws.send(Message::text(hello.to_json()))
        .map_err(|e| unreachable(&url, ws_error(&e)))?;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut early = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::network(format!(
                "broker at {url} did not answer hello within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            ))
            .into());
        }
        let _ = ws.get_ref().tcp().set_read_timeout(Some(left));
        match ws.read() {
            Ok(Message::Text(t)) => match wire::parse(t.as_str()) {
                Ok(Frame::HelloAck(hello_ack)) => {
                    return Ok(Connected {
                        ws,
                        hello_ack,
                        early,
                        url_index: 0,
                    });
                }
                Ok(Frame::Error(e)) => {
                    let text = if e.code == wire::codes::TIMESTAMP_SKEW {
                        super::clock_off(&e.message)
                    } else if e.message.is_empty() {
                        format!("broker refused hello: {}", e.code)
                    } else {
                        format!("broker refused hello: {}: {}", e.code, e.message)
                    };
                    return Err(ConnectError {
                        error: Error::auth(text),
                        refused: true,
                        terminal: terminal_refusal(&e.code),
                        replayed: e.code == wire::codes::REPLAYED,
                    });
                }
                Ok(f) => early.push(f),
                Err(_) => {}
            },
            Ok(Message::Close(frame)) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                let refused = code == 1008 || terminal_close(code);
                let error = if refused {
                    Error::auth(format!("broker refused hello: {reason} (close {code})"))
                } else {
                    unreachable(&url, format!("closed during hello (close {code} {reason})"))
                };
                return Err(ConnectError {
                    error,
                    refused,
                    terminal: terminal_close(code) || terminal_refusal(&reason),
                    replayed: false,
                });
            }
            Ok(_) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(unreachable(&url, ws_error(&e)).into()),
        }
    }
}

/// Sets `_reqId` on any frame (every request type has the field; going through JSON spares a match over them).
pub(crate) fn with_req_id(frame: &Frame, req_id: &str) -> Result<String> {
    let mut v = serde_json::to_value(frame)
        .map_err(|e| Error::internal(format!("encoding {}: {e}", frame.type_name())))?;
    match v.as_object_mut() {
        Some(o) => {
            o.insert("_reqId".into(), req_id.into());
        }
        None => return Err(Error::internal("a frame is not a JSON object")),
    }
    Ok(v.to_string())
}

/// Fills in a `send`'s `client_message_id` (when absent) and sets `id` to it, so the ack is matched by `id` and a
/// repeat of the same send is stored once by the broker. Returns the id.
pub(crate) fn prepare_send(send: &mut SendMessage) -> String {
    let cmid = match &send.client_message_id {
        Some(c) if !c.is_empty() => c.clone(),
        _ => {
            let c = super::new_client_message_id();
            send.client_message_id = Some(c.clone());
            c
        }
    };
    if send.id.is_empty() {
        send.id = cmid;
    }
    send.id.clone()
}

/// One blocking WebSocket to a broker, authenticated, for a one-shot tool.
///
/// ```no_run
/// # fn f(mesh: &claudemesh::config::MeshEntry) -> claudemesh::error::Result<()> {
/// use claudemesh::client::{Conn, ConnOpts};
/// use claudemesh::wire::{Frame, ListPeers};
/// let mut conn = Conn::open(mesh, &ConnOpts::default())?;
/// let Frame::PeersList(peers) = conn.request(ListPeers::default())? else { unreachable!() };
/// conn.close();
/// # Ok(()) }
/// ```
pub struct Conn {
    ws: Ws,
    url: String,
    hello_ack: HelloAck,
    features: super::Features,
    pushes: Vec<Push>,
    /// `ack_not_stored` answers to this socket's `client_ack`s: the messages they name stay pending.
    refused_acks: Vec<wire::ErrorFrame>,
    timeout: Duration,
    sender: Keypair,
    closed: bool,
    pacer: super::Pacer,
}

impl Conn {
    /// Connects to the mesh's broker and says hello (as the member, or as `opts.session`), waiting at most 5 s for
    /// the TCP connect and 5 s for `hello_ack`. A broker that cannot be reached is [`Code::Network`]
    /// (`cannot reach broker at ws://…: connection refused`); a refused hello is [`Code::Auth`] with the
    /// broker's code and message (`broker refused hello: revoked: You've been removed…`).
    pub fn open(mesh: &MeshEntry, opts: &ConnOpts) -> Result<Conn> {
        Conn::open_as(&Who::from_mesh(mesh)?, opts)
    }

    pub(crate) fn open_as(who: &Who, opts: &ConnOpts) -> Result<Conn> {
        let c = connect(who, opts, &super::session_id(), super::ATTESTATION_TTL)
            .map_err(|e| e.error)?;
        let url = who.urls().nth(c.url_index).unwrap_or(&who.url).ws.clone();
        let sender = match &opts.session {
            Some(s) => s.session.clone(),
            None => who.member.clone(),
        };
        let pushes = c
            .early
            .into_iter()
            .filter_map(|f| match f {
                Frame::Push(p) => Some(p),
                _ => None,
            })
            .collect();
        Ok(Conn {
            ws: c.ws,
            url,
            features: super::Features::of(&c.hello_ack),
            hello_ack: c.hello_ack,
            pushes,
            refused_acks: Vec::new(),
            timeout: opts.timeout,
            sender,
            closed: false,
            pacer: super::Pacer::default(),
        })
    }

    /// The broker's `hello_ack`.
    pub fn hello_ack(&self) -> &HelloAck {
        &self.hello_ack
    }

    /// What the broker offers beyond the original's protocol, as its `hello_ack` said.
    pub fn features(&self) -> &super::Features {
        &self.features
    }

    /// The key this socket authenticated as (the session key, else the member key): DMs sent on this socket
    /// must be encrypted with it, since the broker reports it as the sender (reference §4.11).
    pub fn sender(&self) -> &Keypair {
        &self.sender
    }

    /// Sends `frame` with a fresh `_reqId` and waits for the frame that echoes it (in `_reqId`, or in an error's
    /// `id`). An `error` reply is an `Err` whose code [`super::code_for`] maps; pushes that arrive meanwhile are
    /// kept for [`Conn::pending_pushes`], other unrelated frames are dropped. Waits at most `opts.timeout`.
    /// A frame the broker cannot answer ([`super::Features::check`]) is refused at once and not sent.
    pub fn request(&mut self, frame: impl Into<Frame>) -> Result<Frame> {
        let frame = frame.into();
        self.features.check(&frame)?;
        let req_id = random_id();
        self.write(with_req_id(&frame, &req_id)?)?;
        let reply = self.wait(frame.type_name(), |f| f.req_id() == Some(&req_id))?;
        match reply {
            Frame::Error(e) => Err(broker_error(&e.code, &e.message)),
            f => Ok(f),
        }
    }

    /// Sends `frame` with a fresh `_reqId` and returns the id without waiting, for exchanges with more than one
    /// reply (a file transfer); read the replies with [`Conn::wait_for`].
    pub fn start(&mut self, frame: impl Into<Frame>) -> Result<String> {
        let frame = frame.into();
        self.features.check(&frame)?;
        let req_id = random_id();
        self.write(with_req_id(&frame, &req_id)?)?;
        Ok(req_id)
    }

    /// Waits for the next frame `want` accepts, within the request timeout; an `error` it accepts is an `Err`.
    /// Pushes are kept as in [`Conn::request`].
    pub fn wait_for(&mut self, what: &str, want: impl Fn(&Frame) -> bool) -> Result<Frame> {
        match self.wait(what, want)? {
            Frame::Error(e) => Err(broker_error(&e.code, &e.message)),
            f => Ok(f),
        }
    }

    /// Sends a message and waits for its `ack`, matched by `id` (`prepare_send` fills in `id` and
    /// `client_message_id` when empty). An ack that carries an `error` is an `Err`: `unknown target` →
    /// NotFound, `not_member` → Permission, `payload too large` → Usage, else Generic.
    ///
    /// A broadcast whose sealed copies do not fit in one frame goes out in parts (`split_send`), each
    /// waited for; the ack is theirs merged, and the first refusal is the error.
    pub fn send(&mut self, mut send: SendMessage) -> Result<Ack> {
        prepare_send(&mut send);
        let parts = super::split_send(send);
        let mut acks = Vec::with_capacity(parts.len());
        for part in parts {
            acks.push(self.send_one(part)?);
        }
        Ok(super::merge_acks(acks))
    }

    /// Sends one frame and waits for its ack. A `rate_limit` refusal is waited out, as long as the broker says,
    /// and the frame sent again: the broker stored nothing, so the same id is taken once.
    fn send_one(&mut self, send: SendMessage) -> Result<Ack> {
        let id = send.id.clone();
        let text = Frame::Send(send).to_json();
        loop {
            self.write(text.clone())?;
            let reply = self.wait("send", |f| match f {
                Frame::Ack(a) => a.id == id,
                Frame::Error(e) => e.id.as_deref() == Some(&id) || e.req_id.as_deref() == Some(&id),
                _ => false,
            })?;
            let a = match reply {
                Frame::Error(e) => return Err(broker_error(&e.code, &e.message)),
                Frame::Ack(a) => a,
                f => {
                    return Err(Error::internal(format!(
                        "matched a {} to a send",
                        f.type_name()
                    )));
                }
            };
            match a.error.as_deref().filter(|e| !e.is_empty()) {
                None => return Ok(a),
                Some(e) => match self.pacer.wait(&a) {
                    Some(d) => self.pause(d)?,
                    None => return Err(super::ack_error(e)),
                },
            }
        }
    }

    /// Sends a frame that the original broker takes without a reply (`set_state`, `topic_join`, ...): as a request
    /// when this broker answers it (`Some(reply)`), else as it is (`None`: sent, and nothing will say it was done).
    pub fn post(&mut self, frame: impl Into<Frame>) -> Result<Option<Frame>> {
        let frame = frame.into();
        if self.features.has(super::Feature::Replies) {
            self.request(frame).map(Some)
        } else {
            self.fire(frame).map(|()| None)
        }
    }

    /// Sends a frame that has no reply (`set_status`, `set_summary`, ...).
    pub fn fire(&mut self, frame: impl Into<Frame>) -> Result<()> {
        self.write(frame.into().to_json())
    }

    /// Tells the broker a pushed message was handed on, so it stops redelivering it.
    pub fn client_ack(&mut self, broker_message_id: &str) -> Result<()> {
        let ack = ClientAck {
            broker_message_id: Some(broker_message_id.to_string()),
            ..ClientAck::default()
        };
        self.write(Frame::ClientAck(ack).to_json())
    }

    /// Takes the broker's refusals of `client_ack`s that arrived while waiting for replies. `client_ack` has no
    /// reply when it is saved, so only a round trip after it tells that it was.
    pub fn refused_acks(&mut self) -> Vec<wire::ErrorFrame> {
        std::mem::take(&mut self.refused_acks)
    }

    /// Takes the pushes that arrived while waiting for replies, oldest first.
    pub fn pending_pushes(&mut self) -> Vec<Push> {
        std::mem::take(&mut self.pushes)
    }

    /// Sends a close frame and waits briefly for the broker's echo, so it sees a clean close (and announces the
    /// departure at once instead of after the grace period). Dropping a `Conn` does the same.
    pub fn close(mut self) {
        self.close_now();
    }

    fn close_now(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        transport::close(&mut self.ws);
    }

    fn write(&mut self, text: String) -> Result<()> {
        self.ws
            .send(Message::text(text))
            .map_err(|e| lost(&self.url, &e))
    }

    /// Reads until a frame satisfies `want`, keeping pushes, within the request timeout.
    fn wait(&mut self, what: &str, want: impl Fn(&Frame) -> bool) -> Result<Frame> {
        match self.read_until(Instant::now() + self.timeout, what, want)? {
            Some(f) => Ok(f),
            None => Err(Error::network(format!(
                "broker at {} did not answer {what} within {} s",
                self.url,
                self.timeout.as_secs_f32()
            ))),
        }
    }

    /// Reads frames until `deadline`, keeping pushes and ack refusals as [`Conn::wait`] does, so a socket that
    /// waits still answers the broker's pings.
    fn pause(&mut self, d: Duration) -> Result<()> {
        self.read_until(Instant::now() + d, "nothing", |_| false)
            .map(|_| ())
    }

    /// The first frame `want` accepts, or `None` at `deadline`.
    fn read_until(
        &mut self,
        deadline: Instant,
        what: &str,
        want: impl Fn(&Frame) -> bool,
    ) -> Result<Option<Frame>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let _ = self.ws.get_ref().tcp().set_read_timeout(Some(left));
            match self.ws.read() {
                Ok(Message::Text(t)) => match wire::parse(t.as_str()) {
                    Ok(f) if want(&f) => return Ok(Some(f)),
                    Ok(Frame::Push(p)) => self.pushes.push(p),
                    Ok(Frame::Error(e)) if e.code == wire::codes::ACK_NOT_STORED => {
                        self.refused_acks.push(e);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // A reply we cannot read is still the reply: say so rather than time out.
                        if wire::peek_req_id(t.as_str()).is_some_and(|r| want_id(&want, &r)) {
                            return Err(Error::generic(format!(
                                "unreadable {what} reply from the broker: {e}"
                            )));
                        }
                    }
                },
                Ok(Message::Close(frame)) => {
                    self.closed = true;
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    let kind = if terminal_close(code) {
                        Code::Auth
                    } else {
                        Code::Network
                    };
                    return Err(Error::new(
                        kind,
                        format!(
                            "broker at {} closed the connection ({code} {reason})",
                            self.url
                        ),
                    ));
                }
                Ok(_) => {}
                Err(e) if would_block(&e) => {}
                Err(e) => {
                    self.closed = true;
                    return Err(lost(&self.url, &e));
                }
            }
        }
    }
}

/// Whether `want` accepts a reply carrying `req_id` (probed with an empty error frame).
fn want_id(want: &impl Fn(&Frame) -> bool, req_id: &str) -> bool {
    want(&Frame::Error(
        wire::ErrorFrame::default().with_req_id(Some(req_id)),
    ))
}

pub(crate) fn lost(url: &str, e: &tungstenite::Error) -> Error {
    Error::network(format!("connection to {url} lost: {}", ws_error(e)))
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ListPeers, TopicHistory};
    use serde_json::{Value, json};
    use std::net::{TcpListener, TcpStream};

    fn accept(l: &TcpListener) -> tungstenite::WebSocket<TcpStream> {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tungstenite::accept(s).unwrap()
    }

    fn read(ws: &mut tungstenite::WebSocket<TcpStream>) -> Value {
        loop {
            if let Message::Text(t) = ws.read().unwrap() {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    fn write(ws: &mut tungstenite::WebSocket<TcpStream>, v: Value) {
        ws.send(Message::text(v.to_string())).unwrap();
    }

    fn who(l: &TcpListener) -> Who {
        let url = format!("ws://{}/ws", l.local_addr().unwrap());
        Who::new(
            "mesh",
            "mem",
            "dev",
            &Keypair::generate().secret_hex(),
            &url,
        )
        .unwrap()
    }

    #[test]
    fn a_trickling_network_is_named_in_our_words() {
        use std::io::{Read, Write};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let w = who(&l);
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_nodelay(true).unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Pad: {}\r\n",
                "p".repeat(200)
            );
            // One byte a millisecond: the trickle itself, not a wait for anything.
            for b in answer.bytes() {
                if s.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let e = Conn::open_as(&w, &ConnOpts::default()).err().unwrap();
        server.join().unwrap();
        assert_eq!(e.code, Code::Network, "{}", e.msg);
        assert!(e.msg.contains("a few bytes at a time"), "{}", e.msg);
        assert!(!e.msg.contains("Attack"), "{}", e.msg);
    }

    #[test]
    fn a_skewed_clock_is_named_as_such() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let w = who(&l);
        let server = std::thread::spawn(move || {
            let mut ws = accept(&l);
            read(&mut ws);
            write(
                &mut ws,
                json!({"type": "error", "code": "timestamp_skew",
                       "message": "hello rejected: timestamp_skew: signed 75 s behind the broker's clock"}),
            );
            let _ = ws.close(None);
            let _ = ws.read();
        });
        let e = Conn::open_as(&w, &ConnOpts::default()).err().unwrap();
        server.join().unwrap();
        assert_eq!(e.code, Code::Auth);
        assert!(
            e.msg.starts_with(
                "this machine's clock looks off: signed 75 s behind the broker's clock (it is "
            ),
            "{}",
            e.msg
        );
    }

    #[test]
    fn a_hello_refused_as_replayed_is_signed_again() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let w = who(&l);
        let server = std::thread::spawn(move || {
            let mut first = accept(&l);
            let a = read(&mut first);
            write(
                &mut first,
                json!({"type": "error", "code": "replayed", "message": "used already"}),
            );
            let _ = first.close(None);
            let mut second = accept(&l);
            let b = read(&mut second);
            write(
                &mut second,
                json!({"type": "hello_ack", "presenceId": "p", "memberDisplayName": "a"}),
            );
            let _ = second.read();
            (a, b)
        });
        let c = Conn::open_as(&w, &ConnOpts::default()).unwrap();
        assert_eq!(c.hello_ack().presence_id, "p");
        c.close();
        let (a, b) = server.join().unwrap();
        assert!(b["timestamp"].as_i64() > a["timestamp"].as_i64());
        assert_ne!(a["signature"], b["signature"]);
    }

    #[test]
    fn replies_are_matched_by_req_id_and_pushes_kept() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let w = who(&l);
        let server = std::thread::spawn(move || {
            let mut ws = accept(&l);
            let hello = read(&mut ws);
            assert_eq!(hello["type"], "hello");
            assert_eq!(hello["capabilities"], json!(["pull"]));
            write(
                &mut ws,
                json!({"type": "hello_ack", "presenceId": "p", "memberDisplayName": "a"}),
            );
            let req = read(&mut ws);
            assert_eq!(req["type"], "list_peers");
            let r = req["_reqId"].clone();
            write(
                &mut ws,
                json!({"type": "peers_list", "peers": [], "_reqId": "someone-else"}),
            );
            write(
                &mut ws,
                json!({"type": "push", "messageId": "p1", "meshId": "mesh", "senderPubkey": "system",
                                  "subtype": "system", "event": "peer_joined", "priority": "low", "nonce": "",
                                  "ciphertext": "", "createdAt": "2026-01-01T00:00:00Z"}),
            );
            write(
                &mut ws,
                json!({"type": "peers_list", "peers": [], "_reqId": r}),
            );
            // The original put some errors' request id in `id` only.
            let req = read(&mut ws);
            write(
                &mut ws,
                json!({"type": "error", "code": "topic_not_found", "message": "no topic x",
                                  "id": req["_reqId"]}),
            );
            let send = read(&mut ws);
            assert!(
                send["client_message_id"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
            );
            assert_eq!(send["id"], send["client_message_id"]);
            write(
                &mut ws,
                json!({"type": "ack", "id": send["id"], "messageId": "", "queued": false,
                                  "error": "unknown target: nobody"}),
            );
            loop {
                match ws.read() {
                    Ok(Message::Close(_)) => {}
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        let mut c = Conn::open_as(&w, &ConnOpts::default()).unwrap();
        assert_eq!(c.hello_ack().presence_id, "p");
        assert!(matches!(
            c.request(ListPeers::default()).unwrap(),
            Frame::PeersList(_)
        ));
        let pushes = c.pending_pushes();
        assert_eq!(pushes.len(), 1);
        assert!(pushes[0].is_system());
        let e = c.request(TopicHistory::default()).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (Code::NotFound, "no topic x"));
        let e = c.send(SendMessage::default()).unwrap_err();
        assert_eq!(e.code, Code::NotFound);
        assert_eq!(e.msg, "broker refused the message: unknown target: nobody");
        c.close();
        server.join().unwrap();
    }

    #[test]
    fn refused_hello_is_an_auth_error_with_the_brokers_words() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let w = who(&l);
        let server = std::thread::spawn(move || {
            let mut ws = accept(&l);
            read(&mut ws);
            write(
                &mut ws,
                json!({"type": "error", "code": "revoked",
                                  "message": "You've been removed from \"dev\"."}),
            );
            let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
                code: tungstenite::protocol::frame::coding::CloseCode::from(4002),
                reason: "banned".into(),
            }));
            let _ = ws.flush();
        });
        let e = connect(&w, &ConnOpts::default(), "s", Duration::from_secs(60))
            .err()
            .unwrap();
        assert!(e.refused && e.terminal);
        assert_eq!(e.error.code, Code::Auth);
        assert_eq!(
            e.error.msg,
            "broker refused hello: revoked: You've been removed from \"dev\"."
        );
        server.join().unwrap();
    }

    #[test]
    fn silent_broker_times_out_naming_the_url() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let w = who(&l);
        let url = w.url.ws.clone();
        let server = std::thread::spawn(move || {
            let mut ws = accept(&l);
            read(&mut ws);
            // Say nothing until the client gives up.
            let _ = ws.read();
        });
        let start = Instant::now();
        let e = Conn::open_as(&w, &ConnOpts::default()).err().unwrap();
        assert!(start.elapsed() >= HANDSHAKE_TIMEOUT);
        assert_eq!(e.code, Code::Network);
        assert_eq!(
            e.msg,
            format!("broker at {url} did not answer hello within 5 s")
        );
        server.join().unwrap();
    }
}
