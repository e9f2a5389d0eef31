//! [`Session`]: a long-lived connection for `cm-pipe`, `cm-mcp`, `cm-topic tail` and `cm-bridge`.
//!
//! One I/O thread owns the socket. It connects blocking, with the connect and `hello_ack` timeouts, then
//! switches the socket to non-blocking and drives it from a mio `Poll`, woken by a `Waker` when another thread
//! hands it a command. Everything the application learns arrives as an [`Event`] on one channel.
//!
//! What it promises:
//! - **Keepalive**: a WebSocket ping every 30 s; if nothing at all was heard for 75 s, the connection is dropped
//!   and made again (a half-dead NAT'd socket is noticed, original-cli §15 item 39).
//! - **Reconnect** after 1, 2, 4, 8, 16, then every 30 s, each plus a random 0..half of it, never past 30 s (at
//!   30 s the random part goes below it: 22.5 to 30 s; no reconnect storms, item 44); the count restarts at every `hello_ack`. Every connect signs a new hello and mints a new
//!   attestation (item 38). Close codes 4001/4002 and the refusals `revoked`/`unauthorized` end the session.
//! - **Sends are not lost**: each keeps its `client_message_id` and is sent again after every reconnect until its
//!   ack arrives; the broker stores a repeat once.
//! - **Inbound once**: pushes are deduplicated by message id (the last 10 000), our own echoes are dropped, and
//!   a message is acknowledged to the broker only when the application calls [`Session::ack`] (item 42).
//!   A redelivery of a message the application already acked is acked again, silently.

use super::conn::{ConnectError, Connected, connect, prepare_send, terminal_close, with_req_id};
use super::inbound::decode_push;
use super::transport::{would_block, ws_error};
use super::{ConnOpts, Inbound, Who, broker_error, random_id};
use crate::config::MeshEntry;
use crate::crypto::Keypair;
use crate::error::{Error, Result};
use crate::wire::{self, Ack, ClientAck, Frame, HelloAck, Push, SendMessage};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::Message;

const WAKER: Token = Token(0);
const SOCKET: Token = Token(1);
const PING_EVERY: Duration = Duration::from_secs(30);
const IDLE_LIMIT: Duration = Duration::from_secs(75);
const BACKOFF_SECS: [u64; 6] = [1, 2, 4, 8, 16, 30];
/// How many inbound message ids a session remembers for dedupe.
const SEEN_CAPACITY: usize = 10_000;

/// How to run a session.
#[derive(Debug, Clone)]
pub struct SessionOpts {
    /// Identity and hello fields; `pull` is false by default here, so the broker pushes.
    pub conn: ConnOpts,
    /// The lifetime of the attestation minted at each connect (12 h; the broker allows at most 24 h).
    pub attestation_ttl: Duration,
    /// Whether a broker that cannot be reached at the first connect is an error of [`Session::start`], as it is
    /// for a one-shot tool, instead of a session that keeps trying: for a tool a person waits on (`cm-topic
    /// tail`), which is of no use until it is connected.
    pub first_connect_required: bool,
}

impl Default for SessionOpts {
    fn default() -> SessionOpts {
        SessionOpts {
            conn: ConnOpts {
                pull: false,
                ..ConnOpts::default()
            },
            attestation_ttl: super::ATTESTATION_TTL,
            first_connect_required: false,
        }
    }
}

/// Something that happened to a session.
#[derive(Debug)]
pub enum Event {
    /// Authenticated (again); sends owed are being sent.
    Connected { hello_ack: HelloAck },
    /// The connection is gone; it is tried again in `retry_in`, or never (`None`, followed by `Closed`).
    Disconnected {
        reason: String,
        retry_in: Option<Duration>,
    },
    /// A message for this session, seen for the first time. Call [`Session::ack`] once it is handed on.
    Message(Box<Inbound>),
    /// A broker event (`peer_joined`, `peer_left`, a webhook, ...).
    System { event: String, data: Value },
    /// A frame that answers no request of ours (`state_change`, an unsolicited `error`, ...).
    Reply(Frame),
    /// The broker stored a message sent with [`Session::send`].
    Acked { client_message_id: String, ack: Ack },
    /// The broker refused a message for good.
    Failed {
        client_message_id: String,
        error: Error,
    },
    /// The session ended: closed by the application, or refused for good. No events follow.
    Closed,
}

enum Cmd {
    Send(SendMessage),
    Request {
        req_id: String,
        text: String,
        what: &'static str,
        reply: mpsc::Sender<Result<Frame>>,
        deadline: Instant,
    },
    Fire(String),
    Ack(String),
    Reconnect,
    Close,
}

/// Where a session's events go when it was started with [`Session::start_with`].
pub type Sink = Box<dyn Fn(Event) + Send>;

/// A long-lived, self-healing connection to a mesh. See the module documentation for what it promises.
pub struct Session {
    cmds: mpsc::Sender<Cmd>,
    waker: Arc<Waker>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
    timeout: Duration,
    sender: Keypair,
    member: Keypair,
    /// The features of the broker last connected to, set by the I/O thread at every connect.
    features: Arc<std::sync::Mutex<super::Features>>,
}

impl Session {
    /// Starts the I/O thread and waits for the first connect. A hello the broker refuses is an `Err`
    /// ([`crate::error::Code::Auth`]); a broker that cannot be reached is not (unless
    /// [`SessionOpts::first_connect_required`]): the session keeps trying, and says so with [`Event::Disconnected`].
    pub fn start(mesh: &MeshEntry, opts: SessionOpts) -> Result<Session> {
        Session::start_as(Who::from_mesh(mesh)?, opts)
    }

    /// Like [`Session::start`], but every event is handed to `sink` on the I/O thread instead of the
    /// [`Session::events`] channel (which then stays empty). A tool that also waits on something else, such as
    /// stdin, merges both into one channel this way and blocks on it, instead of polling two.
    pub fn start_with(mesh: &MeshEntry, opts: SessionOpts, sink: Sink) -> Result<Session> {
        Session::start_into(Who::from_mesh(mesh)?, opts, Some(sink))
    }

    pub(crate) fn start_as(who: Who, opts: SessionOpts) -> Result<Session> {
        Session::start_into(who, opts, None)
    }

    fn start_into(who: Who, opts: SessionOpts, sink: Option<Sink>) -> Result<Session> {
        let poll = Poll::new().map_err(|e| Error::internal(format!("poll: {e}")))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER)
                .map_err(|e| Error::internal(format!("waker: {e}")))?,
        );
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (ev_tx, ev_rx) = mpsc::channel::<Event>();
        let sink = sink.unwrap_or_else(|| {
            Box::new(move |e| {
                let _ = ev_tx.send(e);
            })
        });
        let (first_tx, first_rx) = mpsc::sync_channel(1);
        let session = opts.conn.session.as_ref().map(|s| s.session.clone());
        let sender = session.clone().unwrap_or_else(|| who.member.clone());
        let timeout = opts.conn.timeout;
        let member = who.member.clone();
        // Until a broker says otherwise, it is taken to be ours: a request made before the first connect waits for it.
        let features = Arc::new(std::sync::Mutex::new(super::Features::all()));
        let io = Io {
            features: features.clone(),
            own_key: sender.public_hex(),
            member: who.member.clone(),
            session,
            who,
            opts,
            session_id: super::session_id(),
            events: sink,
            cmds: cmd_rx,
            poll,
            outbox: Vec::new(),
            splits: HashMap::new(),
            requests: Vec::new(),
            acks: Vec::new(),
            seen: Seen::new(SEEN_CAPACITY),
            attempt: 0,
            pacer: super::Pacer::default(),
        };
        let thread = std::thread::Builder::new()
            .name("claudemesh-session".into())
            .spawn(move || io.run(first_tx))
            .map_err(|e| Error::internal(format!("starting the session thread: {e}")))?;
        match first_rx.recv() {
            Ok(Ok(())) => Ok(Session {
                cmds: cmd_tx,
                waker,
                events: ev_rx,
                thread: Some(thread),
                timeout,
                sender,
                member,
                features,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::internal(
                    "the session thread ended before connecting",
                ))
            }
        }
    }

    /// Where everything the session learns arrives, in order.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// The key this session's socket speaks as (the session key, else the member key): encrypt DMs with it.
    pub fn sender(&self) -> &Keypair {
        &self.sender
    }

    /// The member's key: what topic keys are sealed to.
    pub fn member(&self) -> &Keypair {
        &self.member
    }

    /// Queues a message and returns its `client_message_id` (the one it carries, or a fresh one). It is sent now
    /// if connected, else at the next connect, and again after every reconnect until the broker acks it:
    /// [`Event::Acked`], or [`Event::Failed`] for a refusal that retrying cannot fix.
    pub fn send(&self, mut send: SendMessage) -> String {
        let id = prepare_send(&mut send);
        self.command(Cmd::Send(send));
        id
    }

    /// Sends a request and waits for its reply, at most the configured timeout. Fails with
    /// [`crate::error::Code::Network`] if the connection drops while it is outstanding; a request made while
    /// disconnected waits for the next connect within the same timeout.
    pub fn request(&self, frame: impl Into<Frame>) -> Result<Frame> {
        let frame = frame.into();
        self.features().check(&frame)?;
        let req_id = random_id();
        let text = with_req_id(&frame, &req_id)?;
        let (tx, rx) = mpsc::channel();
        self.command(Cmd::Request {
            req_id,
            text,
            what: frame.type_name(),
            reply: tx,
            deadline: Instant::now() + self.timeout,
        });
        // The I/O thread answers at the deadline; the margin only covers a thread that died.
        match rx.recv_timeout(self.timeout + Duration::from_secs(1)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(Error::network(format!(
                "no answer to {} within {} s",
                frame.type_name(),
                self.timeout.as_secs_f32()
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(Error::network("the session has ended")),
        }
    }

    /// What the broker last connected to offers beyond the original's protocol.
    pub fn features(&self) -> super::Features {
        self.features
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Sends a frame that has no reply (`set_status`, `set_summary`, ...); dropped if disconnected.
    pub fn fire(&self, frame: impl Into<Frame>) {
        self.command(Cmd::Fire(frame.into().to_json()));
    }

    /// Acknowledges a message to the broker (`client_ack`), which then stops redelivering it. Call it only after
    /// the message was handed on; while disconnected the ack waits for the next connect.
    pub fn ack(&self, message_id: &str) {
        self.command(Cmd::Ack(message_id.to_string()));
    }

    /// Drops the connection and connects again at once (after a network change, say).
    pub fn reconnect(&self) {
        self.command(Cmd::Reconnect);
    }

    /// Closes the connection cleanly (a close frame, so the broker announces the departure at once) and waits
    /// for the I/O thread to end. Dropping a `Session` does the same.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            self.command(Cmd::Close);
            let _ = t.join();
        }
    }

    fn command(&self, cmd: Cmd) {
        // If the thread has ended the session is over; requests notice through their reply channel.
        if self.cmds.send(cmd).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The reconnect delay before attempt `attempt` (0-based): 1, 2, 4, 8, 16, 30, 30... s plus `jitter` of half of
/// that, `jitter` in `0.0..1.0`, at most 30 s.
pub(crate) fn backoff(attempt: usize, jitter: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 1.0);
    let base = Duration::from_secs(BACKOFF_SECS[attempt.min(BACKOFF_SECS.len() - 1)]);
    let most = Duration::from_secs(BACKOFF_SECS[BACKOFF_SECS.len() - 1]);
    let delay = base + base.mul_f64(jitter / 2.0);
    // The wait never passes the longest step; at that step the jitter goes below it instead, so sessions that lost
    // the broker together still spread out.
    if delay > most {
        most.mul_f64(0.75 + jitter / 4.0)
    } else {
        delay
    }
}

fn random_jitter() -> f64 {
    f64::from(u32::from_le_bytes(crate::crypto::random_bytes::<4>())) / (f64::from(u32::MAX) + 1.0)
}

/// The message ids seen lately, each with whether the application acked it; the oldest are forgotten first.
pub(crate) struct Seen {
    acked: HashMap<String, bool>,
    order: VecDeque<String>,
    cap: usize,
}

impl Seen {
    pub(crate) fn new(cap: usize) -> Seen {
        Seen {
            acked: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Records `id`; `None` if new, else whether it was acked.
    pub(crate) fn insert(&mut self, id: &str) -> Option<bool> {
        if let Some(&a) = self.acked.get(id) {
            return Some(a);
        }
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.acked.remove(&old);
        }
        self.acked.insert(id.to_string(), false);
        self.order.push_back(id.to_string());
        None
    }

    pub(crate) fn mark_acked(&mut self, id: &str) {
        if let Some(a) = self.acked.get_mut(id) {
            *a = true;
        }
    }
}

/// A request waiting for its reply.
struct Pending {
    req_id: String,
    text: String,
    what: &'static str,
    reply: mpsc::Sender<Result<Frame>>,
    deadline: Instant,
    sent: bool,
}

/// A message waiting for its ack.
struct Outgoing {
    send: SendMessage,
    /// Not before this instant (after a rate-limit refusal).
    hold_until: Option<Instant>,
    /// For a part of a send too large for one frame ([`super::split_send`]): the whole's `id`.
    whole: Option<String>,
}

/// A send that went out in parts: what is known of them so far. Its event goes out when the last part is answered.
struct Split {
    client_message_id: String,
    left: usize,
    acks: Vec<Ack>,
    error: Option<Error>,
}

/// How a connected stretch ended.
enum End {
    Closed,
    /// The application asked for a new connection: made at once, without a backoff.
    Reconnect,
    Dropped(String),
    Terminal(String),
}

/// The I/O thread's state.
struct Io {
    features: Arc<std::sync::Mutex<super::Features>>,
    who: Who,
    opts: SessionOpts,
    session_id: String,
    member: Keypair,
    session: Option<Keypair>,
    /// The key our socket speaks as; a push from it is our own echo.
    own_key: String,
    events: Sink,
    cmds: Receiver<Cmd>,
    poll: Poll,
    outbox: Vec<Outgoing>,
    /// Sends in parts, by the whole's `id`.
    splits: HashMap<String, Split>,
    requests: Vec<Pending>,
    acks: Vec<String>,
    seen: Seen,
    attempt: usize,
    /// How long rate-limited sends are held.
    pacer: super::Pacer,
}

/// The live socket and its clocks.
struct Link {
    ws: super::transport::Ws,
    last_heard: Instant,
    next_ping: Instant,
}

impl Io {
    fn emit(&self, e: Event) {
        (self.events)(e);
    }

    /// Puts a send in the outbox, in parts when it does not fit in one frame; returns the frames to write.
    fn enqueue(&mut self, send: SendMessage) -> Vec<String> {
        let parts = super::split_send(send);
        let whole = (parts.len() > 1).then(|| parts[0].id.clone());
        if let Some(w) = &whole {
            self.splits.insert(
                w.clone(),
                Split {
                    client_message_id: parts[0].client_message_id.clone().unwrap_or_default(),
                    left: parts.len(),
                    acks: Vec::new(),
                    error: None,
                },
            );
        }
        parts
            .into_iter()
            .map(|send| {
                let text = Frame::Send(send.clone()).to_json();
                self.outbox.push(Outgoing {
                    send,
                    hold_until: None,
                    whole: whole.clone(),
                });
                text
            })
            .collect()
    }

    /// A send (or a part of one) is answered: its event, or, for a part, the whole's once every part is.
    fn answered(&mut self, o: Outgoing, result: std::result::Result<Ack, Error>) {
        let Some(w) = o.whole else {
            let client_message_id = o.send.client_message_id.unwrap_or_default();
            return self.emit(match result {
                Ok(ack) => Event::Acked {
                    client_message_id,
                    ack,
                },
                Err(error) => Event::Failed {
                    client_message_id,
                    error,
                },
            });
        };
        let Some(split) = self.splits.get_mut(&w) else {
            return;
        };
        split.left -= 1;
        match result {
            Ok(ack) => split.acks.push(ack),
            Err(e) => {
                split.error.get_or_insert(e);
            }
        }
        if split.left > 0 {
            return;
        }
        let Some(split) = self.splits.remove(&w) else {
            return;
        };
        let client_message_id = split.client_message_id;
        self.emit(match split.error {
            Some(error) => Event::Failed {
                client_message_id,
                error,
            },
            None => Event::Acked {
                client_message_id,
                ack: super::merge_acks(split.acks),
            },
        });
    }

    fn run(mut self, first: mpsc::SyncSender<Result<()>>) {
        let mut first = Some(first);
        loop {
            let result = connect(
                &self.who,
                &self.opts.conn,
                &self.session_id,
                self.opts.attestation_ttl,
            );
            let reason = match result {
                Ok(Connected {
                    ws,
                    hello_ack,
                    early,
                    url_index,
                }) => {
                    self.who.prefer(url_index);
                    if let Some(f) = first.take() {
                        let _ = f.send(Ok(()));
                    }
                    self.attempt = 0;
                    let features = super::Features::of(&hello_ack);
                    match self.features.lock() {
                        Ok(mut f) => *f = features,
                        Err(p) => *p.into_inner() = features,
                    }
                    self.emit(Event::Connected { hello_ack });
                    match self.connected(ws, early) {
                        End::Closed => break,
                        End::Terminal(reason) => {
                            self.emit(Event::Disconnected {
                                reason,
                                retry_in: None,
                            });
                            break;
                        }
                        End::Reconnect => {
                            self.emit(Event::Disconnected {
                                reason: "reconnect requested".into(),
                                retry_in: Some(Duration::ZERO),
                            });
                            continue;
                        }
                        End::Dropped(reason) => reason,
                    }
                }
                Err(ConnectError {
                    error,
                    refused,
                    terminal,
                    ..
                }) => {
                    if let Some(f) = first.take() {
                        if refused || self.opts.first_connect_required {
                            let _ = f.send(Err(error));
                            return;
                        }
                        let _ = f.send(Ok(()));
                    }
                    if terminal {
                        self.emit(Event::Disconnected {
                            reason: error.msg,
                            retry_in: None,
                        });
                        break;
                    }
                    error.msg
                }
            };
            let delay = backoff(self.attempt, random_jitter());
            self.attempt += 1;
            self.emit(Event::Disconnected {
                reason,
                retry_in: Some(delay),
            });
            if !self.wait(Instant::now() + delay) {
                break;
            }
        }
        for p in self.requests.drain(..) {
            let _ = p.reply.send(Err(Error::network("the session has ended")));
        }
        (self.events)(Event::Closed);
    }

    /// Handles commands until `until` while disconnected; false if told to close.
    fn wait(&mut self, until: Instant) -> bool {
        let mut events = Events::with_capacity(4);
        loop {
            let now = Instant::now();
            self.expire_requests(now);
            if now >= until {
                return true;
            }
            let next = self
                .requests
                .iter()
                .map(|p| p.deadline)
                .fold(until, Instant::min);
            let _ = self
                .poll
                .poll(&mut events, Some(next.saturating_duration_since(now)));
            while let Ok(cmd) = self.cmds.try_recv() {
                match cmd {
                    Cmd::Send(s) => {
                        self.enqueue(s);
                    }
                    Cmd::Request {
                        req_id,
                        text,
                        what,
                        reply,
                        deadline,
                    } => self.requests.push(Pending {
                        req_id,
                        text,
                        what,
                        reply,
                        deadline,
                        sent: false,
                    }),
                    Cmd::Fire(_) => {}
                    Cmd::Ack(id) => {
                        self.seen.mark_acked(&id);
                        self.acks.push(id);
                    }
                    Cmd::Reconnect => return true,
                    Cmd::Close => return false,
                }
            }
        }
    }

    /// Runs one connected stretch until the socket drops or the application closes.
    fn connected(&mut self, ws: super::transport::Ws, early: Vec<Frame>) -> End {
        let fd = ws.get_ref().tcp().as_raw_fd();
        if let Err(e) = ws.get_ref().tcp().set_nonblocking(true) {
            return End::Dropped(format!("socket: {e}"));
        }
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&fd),
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return End::Dropped(format!("poll: {e}"));
        }
        let now = Instant::now();
        let mut link = Link {
            ws,
            last_heard: now,
            next_ping: now + PING_EVERY,
        };
        let end = self.drive(&mut link, early);
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        if !matches!(end, End::Closed) {
            // Whatever was sent on this socket is lost with it; unsent requests wait for the next one.
            let url = self.who.url.ws.clone();
            self.requests.retain(|p| {
                if p.sent {
                    let _ = p.reply.send(Err(Error::network(format!(
                        "connection to {url} lost while waiting for {}",
                        p.what
                    ))));
                }
                !p.sent
            });
        }
        end
    }

    fn drive(&mut self, link: &mut Link, early: Vec<Frame>) -> End {
        for f in early {
            self.on_frame(link, f);
        }
        // Everything owed goes out on the new socket: unacked sends keep their ids, so the broker stores each once.
        let now = Instant::now();
        let owed: Vec<String> = self
            .outbox
            .iter()
            .filter(|o| o.hold_until.is_none_or(|t| t <= now))
            .map(|o| Frame::Send(o.send.clone()).to_json())
            .collect();
        for text in owed {
            if let Err(e) = write(link, text) {
                return End::Dropped(e);
            }
        }
        for p in self.requests.iter_mut() {
            p.sent = true;
        }
        let texts: Vec<String> = self.requests.iter().map(|p| p.text.clone()).collect();
        for text in texts {
            if let Err(e) = write(link, text) {
                return End::Dropped(e);
            }
        }
        for id in std::mem::take(&mut self.acks) {
            if let Err(e) = write(link, client_ack(&id)) {
                return End::Dropped(e);
            }
        }
        let mut events = Events::with_capacity(16);
        loop {
            if let Err(e) = flush(link) {
                return End::Dropped(e);
            }
            let now = Instant::now();
            let mut next = link.next_ping.min(link.last_heard + IDLE_LIMIT);
            for p in &self.requests {
                next = next.min(p.deadline);
            }
            for o in &self.outbox {
                if let Some(t) = o.hold_until {
                    next = next.min(t);
                }
            }
            let timeout = next.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                return End::Dropped(format!("poll: {e}"));
            }
            while let Ok(cmd) = self.cmds.try_recv() {
                let r = match cmd {
                    Cmd::Send(s) => self
                        .enqueue(s)
                        .into_iter()
                        .try_for_each(|text| write(link, text)),
                    Cmd::Request {
                        req_id,
                        text,
                        what,
                        reply,
                        deadline,
                    } => {
                        let r = write(link, text.clone());
                        self.requests.push(Pending {
                            req_id,
                            text,
                            what,
                            reply,
                            deadline,
                            sent: true,
                        });
                        r
                    }
                    Cmd::Fire(text) => write(link, text),
                    Cmd::Ack(id) => {
                        self.seen.mark_acked(&id);
                        write(link, client_ack(&id))
                    }
                    Cmd::Reconnect => return End::Reconnect,
                    Cmd::Close => {
                        super::transport::close(&mut link.ws);
                        return End::Closed;
                    }
                };
                if let Err(e) = r {
                    return End::Dropped(e);
                }
            }
            loop {
                match link.ws.read() {
                    Ok(msg) => {
                        link.last_heard = Instant::now();
                        match msg {
                            Message::Text(t) => {
                                if let Ok(f) = wire::parse(t.as_str()) {
                                    self.on_frame(link, f);
                                }
                            }
                            Message::Close(frame) => {
                                let _ = flush(link);
                                let (code, reason) = frame
                                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                                    .unwrap_or((1005, String::new()));
                                let why = format!("broker closed the connection ({code} {reason})");
                                return if terminal_close(code) {
                                    End::Terminal(why)
                                } else {
                                    End::Dropped(why)
                                };
                            }
                            _ => {}
                        }
                    }
                    Err(e) if would_block(&e) => break,
                    Err(e) => return End::Dropped(format!("connection lost: {}", ws_error(&e))),
                }
            }
            let now = Instant::now();
            if now.duration_since(link.last_heard) >= IDLE_LIMIT {
                return End::Dropped(format!(
                    "nothing heard from the broker for {} s",
                    IDLE_LIMIT.as_secs()
                ));
            }
            if now >= link.next_ping {
                link.next_ping = now + PING_EVERY;
                if let Err(e) = write_msg(link, Message::Ping(Vec::new().into())) {
                    return End::Dropped(e);
                }
            }
            self.expire_requests(now);
            let due: Vec<String> = self
                .outbox
                .iter_mut()
                .filter(|o| o.hold_until.is_some_and(|t| t <= now))
                .map(|o| {
                    o.hold_until = None;
                    Frame::Send(o.send.clone()).to_json()
                })
                .collect();
            for text in due {
                if let Err(e) = write(link, text) {
                    return End::Dropped(e);
                }
            }
        }
    }

    fn expire_requests(&mut self, now: Instant) {
        self.requests.retain(|p| {
            if p.deadline <= now {
                let _ = p.reply.send(Err(Error::network(format!(
                    "no answer to {} from the broker in time",
                    p.what
                ))));
                false
            } else {
                true
            }
        });
    }

    fn on_frame(&mut self, link: &mut Link, frame: Frame) {
        // A reply to one of our requests, by `_reqId` (or an error's `id`).
        if let Some(r) = frame.req_id()
            && let Some(i) = self.requests.iter().position(|p| p.req_id == r)
        {
            let p = self.requests.remove(i);
            let reply = match frame {
                Frame::Error(e) => Err(broker_error(&e.code, &e.message)),
                f => Ok(f),
            };
            let _ = p.reply.send(reply);
            return;
        }
        match frame {
            Frame::Push(p) => self.on_push(link, p),
            Frame::Ack(a) => {
                let Some(i) = self.outbox.iter().position(|o| o.send.id == a.id) else {
                    // The ack of a repeat that was already acked.
                    return;
                };
                let wait = self.pacer.wait(&a);
                match a.error.as_deref().filter(|e| !e.is_empty()) {
                    Some(_) if wait.is_some() => {
                        self.outbox[i].hold_until = wait.map(|d| Instant::now() + d);
                    }
                    Some(e) => {
                        let error = super::ack_error(e);
                        let o = self.outbox.remove(i);
                        self.answered(o, Err(error));
                    }
                    None => {
                        let o = self.outbox.remove(i);
                        self.answered(o, Ok(a));
                    }
                }
            }
            Frame::Error(e)
                if e.id
                    .as_deref()
                    .is_some_and(|id| self.outbox.iter().any(|o| o.send.id == id)) =>
            {
                // A send refused outright (too large to parse, say): retrying the same bytes cannot help.
                let id = e.id.clone().unwrap_or_default();
                if let Some(i) = self.outbox.iter().position(|o| o.send.id == id) {
                    let o = self.outbox.remove(i);
                    self.answered(o, Err(broker_error(&e.code, &e.message)));
                }
            }
            Frame::HelloAck(_) => {}
            f => self.emit(Event::Reply(f)),
        }
    }

    fn on_push(&mut self, link: &mut Link, p: Push) {
        if !p.message_id.is_empty() {
            match self.seen.insert(&p.message_id) {
                None => {}
                Some(true) => {
                    // Our earlier ack was lost with a socket: say it again, or this repeats every lease.
                    let _ = write(link, client_ack(&p.message_id));
                    return;
                }
                Some(false) => return,
            }
        }
        // An original broker's webhook push is an event with its body in the clear; cm-broker's is a message
        // sealed to this member, which decode_push opens.
        if p.is_system() || (p.subtype.as_deref() == Some("webhook") && p.ciphertext.is_empty()) {
            self.emit(Event::System {
                event: p.event.clone().unwrap_or_default(),
                data: p.event_data.clone().unwrap_or(Value::Null),
            });
            return;
        }
        if p.sender_pubkey == self.own_key {
            self.seen.mark_acked(&p.message_id);
            let _ = write(link, client_ack(&p.message_id));
            return;
        }
        let m = decode_push(&p, &self.who.slug, &self.member, self.session.as_ref());
        self.emit(Event::Message(Box::new(m)));
    }
}

fn client_ack(id: &str) -> String {
    Frame::ClientAck(ClientAck {
        broker_message_id: Some(id.to_string()),
        ..ClientAck::default()
    })
    .to_json()
}

/// Queues a text frame; a full socket is not an error (the rest goes out when it is writable).
fn write(link: &mut Link, text: String) -> std::result::Result<(), String> {
    write_msg(link, Message::text(text))
}

fn write_msg(link: &mut Link, msg: Message) -> std::result::Result<(), String> {
    match link.ws.write(msg) {
        Ok(()) => Ok(()),
        Err(e) if would_block(&e) => Ok(()),
        Err(e) => Err(format!("connection lost: {}", ws_error(&e))),
    }
}

fn flush(link: &mut Link) -> std::result::Result<(), String> {
    match link.ws.flush() {
        Ok(()) => Ok(()),
        Err(e) if would_block(&e) => Ok(()),
        Err(e) => Err(format!("connection lost: {}", ws_error(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_schedule() {
        let secs: Vec<u64> = (0..8).map(|a| backoff(a, 0.0).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(0, 1.0), Duration::from_millis(1500));
        assert_eq!(backoff(5, 0.5), Duration::from_millis(26_250));
        assert_eq!(backoff(4, 1.0), Duration::from_secs(24));
        for a in 0..10 {
            assert!(backoff(a, 0.999) <= Duration::from_secs(30), "{a}");
        }
        for _ in 0..100 {
            let j = random_jitter();
            assert!((0.0..1.0).contains(&j));
            let d = backoff(3, j);
            assert!(d >= Duration::from_secs(8) && d < Duration::from_secs(12));
        }
    }

    #[test]
    fn seen_dedupes_and_forgets_the_oldest() {
        let mut s = Seen::new(3);
        assert_eq!(s.insert("a"), None);
        assert_eq!(s.insert("a"), Some(false));
        s.mark_acked("a");
        assert_eq!(s.insert("a"), Some(true));
        s.insert("b");
        s.insert("c");
        s.insert("d"); // evicts "a"
        assert_eq!(s.insert("a"), None);
        assert_eq!(s.insert("c"), Some(false));
        assert_eq!(s.acked.len(), 3);
        assert_eq!(s.order.len(), 3);
    }

    /// A broker stand-in: just enough WebSocket to drive a session through a drop and a reconnect.
    mod fake {
        use serde_json::Value;
        use std::net::{TcpListener, TcpStream};
        use std::time::Duration;
        use tungstenite::{Message, WebSocket};

        pub fn accept(l: &TcpListener) -> WebSocket<TcpStream> {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            tungstenite::accept(s).unwrap()
        }

        pub fn read(ws: &mut WebSocket<TcpStream>) -> Value {
            loop {
                if let Message::Text(t) = ws.read().unwrap() {
                    return serde_json::from_str(t.as_str()).unwrap();
                }
            }
        }

        pub fn write(ws: &mut WebSocket<TcpStream>, v: Value) {
            ws.send(Message::text(v.to_string())).unwrap();
        }
    }

    fn next(s: &Session) -> Event {
        s.events()
            .recv_timeout(Duration::from_secs(10))
            .expect("an event within 10 s")
    }

    #[test]
    fn resends_after_a_drop_and_delivers_each_message_once() {
        use serde_json::json;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/ws", l.local_addr().unwrap());
        let member = Keypair::generate();
        let session = Keypair::generate();
        let alice = Keypair::generate();
        let (nonce, ct) =
            crate::crypto::encrypt_dm(b"hi bob", &session.public_hex(), &alice).unwrap();
        let session_pk = session.public_hex();
        let alice_pk = alice.public_hex();
        let server = std::thread::spawn(move || {
            let mut ws = fake::accept(&l);
            let hello = fake::read(&mut ws);
            assert_eq!(hello["type"], "session_hello");
            assert_eq!(hello["sessionPubkey"], session_pk.as_str());
            let ack = json!({"type": "hello_ack", "presenceId": "p1", "memberDisplayName": "bob"});
            fake::write(&mut ws, ack.clone());
            let first = fake::read(&mut ws);
            assert_eq!(first["type"], "send");
            drop(ws); // gone before the ack

            let mut ws = fake::accept(&l);
            let hello2 = fake::read(&mut ws);
            assert_eq!(hello2["type"], "session_hello");
            fake::write(&mut ws, ack);
            let again = fake::read(&mut ws);
            assert_eq!(again["client_message_id"], first["client_message_id"]);
            fake::write(
                &mut ws,
                json!({"type": "ack", "id": again["id"], "messageId": "m1", "queued": false}),
            );
            let push = |id: &str| {
                json!({"type": "push", "messageId": id, "meshId": "mesh", "senderPubkey": alice_pk,
                       "senderName": "alice", "targetSpec": session_pk, "priority": "now", "nonce": nonce,
                       "ciphertext": ct, "createdAt": "2026-05-04T10:00:00.000Z"})
            };
            fake::write(&mut ws, push("x1"));
            fake::write(&mut ws, push("x1"));
            let ack = fake::read(&mut ws);
            assert_eq!(ack["type"], "client_ack");
            assert_eq!(ack["brokerMessageId"], "x1");
            // A redelivery after the ack is acked again without reaching the application.
            fake::write(&mut ws, push("x1"));
            let ack = fake::read(&mut ws);
            assert_eq!(ack["brokerMessageId"], "x1");
            fake::write(&mut ws, push("x2"));
            let close = loop {
                match ws.read() {
                    Ok(tungstenite::Message::Close(f)) => break f,
                    Ok(_) => {}
                    Err(e) => panic!("no close frame: {e}"),
                }
            };
            assert_eq!(close.map(|f| u16::from(f.code)), Some(1000));
        });

        let who = Who::new("mesh", "mem", "dev", &member.secret_hex(), &url).unwrap();
        let opts = SessionOpts {
            conn: ConnOpts {
                session: Some(super::super::SessionAuth {
                    session: session.clone(),
                }),
                pull: false,
                ..ConnOpts::default()
            },
            attestation_ttl: Duration::from_secs(60),
            first_connect_required: false,
        };
        let s = Session::start_as(who, opts).unwrap();
        assert!(matches!(next(&s), Event::Connected { .. }));
        let cmid = s.send(SendMessage {
            target_spec: alice.public_hex(),
            nonce: "n".into(),
            ciphertext: "c".into(),
            ..SendMessage::default()
        });
        match next(&s) {
            Event::Disconnected {
                retry_in: Some(d), ..
            } => assert!(d >= Duration::from_secs(1) && d < Duration::from_secs(2)),
            e => panic!("expected Disconnected, got {e:?}"),
        }
        assert!(matches!(next(&s), Event::Connected { .. }));
        match next(&s) {
            Event::Acked {
                client_message_id,
                ack,
            } => {
                assert_eq!(client_message_id, cmid);
                assert_eq!(ack.message_id, "m1");
            }
            e => panic!("expected Acked, got {e:?}"),
        }
        let m = match next(&s) {
            Event::Message(m) => m,
            e => panic!("expected Message, got {e:?}"),
        };
        assert_eq!((m.id.as_str(), m.text.as_deref()), ("x1", Some("hi bob")));
        s.ack(&m.id);
        match next(&s) {
            Event::Message(m) => assert_eq!(m.id, "x2"),
            e => panic!("expected the second message, got {e:?}"),
        }
        s.close();
        server.join().unwrap();
    }

    fn member_opts() -> SessionOpts {
        SessionOpts::default()
    }

    #[test]
    fn kicked_or_refused_is_the_end() {
        use serde_json::json;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/ws", l.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut ws = fake::accept(&l);
            assert_eq!(fake::read(&mut ws)["type"], "hello");
            fake::write(
                &mut ws,
                json!({"type": "hello_ack", "presenceId": "p", "memberDisplayName": "a"}),
            );
            let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
                code: tungstenite::protocol::frame::coding::CloseCode::from(4001),
                reason: "kicked".into(),
            }));
            let _ = ws.flush();
            let _ = ws.read();
            // The next start is refused outright.
            let mut ws = fake::accept(&l);
            fake::read(&mut ws);
            fake::write(
                &mut ws,
                json!({"type": "error", "code": "unauthorized", "message": "pubkey not found in mesh"}),
            );
        });
        let who = Who::new(
            "mesh",
            "mem",
            "dev",
            &Keypair::generate().secret_hex(),
            &url,
        )
        .unwrap();
        let s = Session::start_as(who.clone(), member_opts()).unwrap();
        assert!(matches!(next(&s), Event::Connected { .. }));
        match next(&s) {
            Event::Disconnected {
                reason,
                retry_in: None,
            } => assert!(reason.contains("4001"), "{reason}"),
            e => panic!("expected a final Disconnected, got {e:?}"),
        }
        assert!(matches!(next(&s), Event::Closed));
        assert!(s.request(crate::wire::ListPeers::default()).is_err());
        drop(s);
        let e = Session::start_as(who, member_opts()).err().unwrap();
        assert_eq!(e.code, crate::error::Code::Auth);
        assert_eq!(
            e.msg,
            "broker refused hello: unauthorized: pubkey not found in mesh"
        );
        server.join().unwrap();
    }
}
