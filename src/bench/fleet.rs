//! Many WebSockets driven from one thread: a mio loop over raw client sockets.
//!
//! Why frames by hand and not tungstenite's `WebSocket`: the bench holds ten thousand sockets, so each keeps only
//! what is in flight (two buffers, freed when drained), and everything queued in one turn of the loop is written
//! after the turn, in one `write` per socket. Client frames are masked and server frames are not (RFC 6455 §5).
//! The handshake is the library's ([`transport::open`]); from then on the socket is non-blocking.

use std::io::{self, Read, Write};
use std::time::Duration;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::client::transport::{self, BrokerUrl, Stream};
use crate::error::{Error, Result, io_message};

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
/// The largest message accepted from a broker (inbox pages can be large).
const MAX_MESSAGE: usize = 16 << 20;
/// Buffers larger than this are freed once drained, so idle sockets stay small.
const KEEP: usize = 16 * 1024;

/// One client WebSocket.
pub(super) struct Sock {
    tcp: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// A fragmented message being put together.
    frag: Option<Vec<u8>>,
    want_write: bool,
    dirty: bool,
    /// Why the connection ended: the broker's close (`close 1000 reason`), or the error.
    pub closed: Option<String>,
}

/// The sockets and what is queued for them; what a handler gets to write with.
pub(super) struct Io {
    pub socks: Vec<Sock>,
    dirty: Vec<usize>,
    mask: u64,
}

impl Io {
    /// Queues a text message on socket `i`; it is written at the end of the turn.
    pub fn send(&mut self, i: usize, text: &[u8]) {
        self.frame(i, OP_TEXT, text);
    }

    /// Queues a close frame (1000) on socket `i`.
    pub fn close(&mut self, i: usize) {
        self.frame(i, OP_CLOSE, &1000u16.to_be_bytes());
    }

    /// Whether socket `i` has ended.
    pub fn is_closed(&self, i: usize) -> bool {
        self.socks[i].closed.is_some()
    }

    fn frame(&mut self, i: usize, op: u8, payload: &[u8]) {
        // xorshift: masks only need to vary, not to be secret from a broker we run ourselves.
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 7;
        self.mask ^= self.mask << 17;
        let mask = (self.mask as u32).to_be_bytes();
        let s = &mut self.socks[i];
        if s.closed.is_some() {
            return;
        }
        put_frame(&mut s.wbuf, op, payload, mask);
        if !s.dirty {
            s.dirty = true;
            self.dirty.push(i);
        }
    }
}

/// Appends one masked client frame.
fn put_frame(out: &mut Vec<u8>, op: u8, payload: &[u8], mask: [u8; 4]) {
    let n = payload.len();
    out.push(0x80 | op);
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (j, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[j & 3];
    }
}

/// A server frame at the start of `b`: (fin, opcode, payload range, frame length), or `None` if incomplete.
fn parse_frame(b: &[u8]) -> Option<(bool, u8, std::ops::Range<usize>, usize)> {
    if b.len() < 2 {
        return None;
    }
    let (fin, op, masked) = (b[0] & 0x80 != 0, b[0] & 0x0f, b[1] & 0x80 != 0);
    let (len, mut head): (usize, usize) = match b[1] & 0x7f {
        126 => (
            u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            usize::try_from(u64::from_be_bytes(b.get(2..10)?.try_into().ok()?)).ok()?,
            10,
        ),
        n => (n as usize, 2),
    };
    if masked {
        head += 4;
    }
    let end = head.checked_add(len)?;
    (b.len() >= end).then_some((fin, op, head..end, end))
}

/// The token of the timer: poll(2) sleeps in whole milliseconds, and a paced sender needs microseconds.
const TIMER: Token = Token(usize::MAX);

/// A timerfd: wakes the loop at a precise moment without spinning a core the broker needs.
struct Timer(OwnedFd);

impl Timer {
    fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create returns a new descriptor or -1.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just created and nothing else owns it.
        Ok(Timer(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Fires once after `after` (a zero duration disarms it, so it is raised to a nanosecond).
    fn arm(&self, after: Duration) {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a valid descriptor and a valid itimerspec.
        unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }

    fn clear(&self) {
        let mut n = [0u8; 8];
        // SAFETY: reading 8 bytes into a live 8-byte buffer from a descriptor we own.
        unsafe { libc::read(self.0.as_raw_fd(), n.as_mut_ptr().cast(), n.len()) };
    }
}

/// The sockets and the loop that drives them.
pub(super) struct Fleet {
    poll: Poll,
    events: Events,
    timer: Timer,
    pub io: Io,
    buf: Vec<u8>,
    text: Vec<u8>,
    /// What the broker offers beyond the original's protocol, from the first `hello_ack`.
    pub features: crate::client::Features,
}

impl Fleet {
    pub fn new() -> Result<Fleet> {
        let fail = |e: io::Error| Error::internal(format!("poll: {}", io_message(&e)));
        let poll = Poll::new().map_err(fail)?;
        let timer = Timer::new().map_err(fail)?;
        poll.registry()
            .register(
                &mut SourceFd(&timer.0.as_raw_fd()),
                TIMER,
                Interest::READABLE,
            )
            .map_err(fail)?;
        Ok(Fleet {
            poll,
            timer,
            events: Events::with_capacity(4096),
            io: Io {
                socks: Vec::new(),
                dirty: Vec::new(),
                mask: u64::from_le_bytes(crate::crypto::random_bytes::<8>()) | 1,
            },
            features: crate::client::Features::all(),
            buf: vec![0; 64 * 1024],
            text: Vec::new(),
        })
    }

    /// How many sockets were opened.
    pub fn len(&self) -> usize {
        self.io.socks.len()
    }

    /// Connects and upgrades a socket (blocking, with the library's timeouts), then hands it to the loop.
    pub fn open(&mut self, url: &BrokerUrl) -> Result<usize> {
        // Nothing arrives before our hello, so the handshake leaves no bytes behind in tungstenite's buffer.
        let tcp = match transport::open(url)?.into_inner() {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(_) => return Err(Error::usage("cm-bench speaks ws:// only, not wss://")),
        };
        let fail = |e: io::Error| transport::unreachable(&url.ws, io_message(&e));
        tcp.set_nonblocking(true).map_err(fail)?;
        let mut tcp = TcpStream::from_std(tcp);
        let i = self.io.socks.len();
        self.poll
            .registry()
            .register(&mut tcp, Token(i), Interest::READABLE)
            .map_err(fail)?;
        self.io.socks.push(Sock {
            tcp,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            frag: None,
            want_write: false,
            dirty: false,
            closed: None,
        });
        Ok(i)
    }

    /// Waits up to `timeout` (to the microsecond) for input, hands every text message to `on_text` (socket index
    /// and text), then writes everything queued.
    pub fn turn(
        &mut self,
        timeout: Option<Duration>,
        on_text: &mut impl FnMut(&mut Io, usize, &str),
    ) -> Result<()> {
        // The timer ends the wait on time; poll's own timeout, a little later, is only a fallback.
        let fallback = match timeout {
            Some(t) if !t.is_zero() => {
                self.timer.arm(t);
                Some(t + Duration::from_millis(5))
            }
            other => other,
        };
        if let Err(e) = self.poll.poll(&mut self.events, fallback)
            && e.kind() != io::ErrorKind::Interrupted
        {
            return Err(Error::internal(format!("poll: {}", io_message(&e))));
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|ev| {
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                (ev.token().0, readable, ev.is_writable())
            })
            .collect();
        for (i, readable, writable) in ready {
            if i == TIMER.0 {
                self.timer.clear();
                continue;
            }
            if i >= self.io.socks.len() {
                continue;
            }
            if writable && !self.io.socks[i].dirty {
                self.io.socks[i].dirty = true;
                self.io.dirty.push(i);
            }
            if readable {
                self.read(i, on_text);
            }
        }
        self.flush();
        Ok(())
    }

    fn read(&mut self, i: usize, on_text: &mut impl FnMut(&mut Io, usize, &str)) {
        // The socket is ended only after what came before its end is read: a broker that refuses says why (an
        // error, a close frame) just before it closes, often in the same read.
        let mut ended = None;
        loop {
            let s = &mut self.io.socks[i];
            if s.closed.is_some() {
                return;
            }
            match s.tcp.read(&mut self.buf) {
                Ok(0) => {
                    ended = Some("the broker closed the connection without a close frame".into());
                    break;
                }
                Ok(n) => s.rbuf.extend_from_slice(&self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ended = Some(io_message(&e));
                    break;
                }
            }
        }
        let mut pos = 0;
        loop {
            let s = &mut self.io.socks[i];
            let Some((fin, op, range, len)) = parse_frame(&s.rbuf[pos..]) else {
                if s.rbuf.len() - pos > MAX_MESSAGE {
                    self.end(i, "a frame over 16 MiB".into());
                }
                break;
            };
            let payload = pos + range.start..pos + range.end;
            pos += len;
            let whole = match (op, fin, s.frag.as_mut()) {
                (OP_TEXT | OP_BINARY, true, _) => Some(op),
                (OP_TEXT | OP_BINARY, false, _) => {
                    s.frag = Some(s.rbuf[payload.clone()].to_vec());
                    None
                }
                (OP_CONT, _, Some(f)) => {
                    f.extend_from_slice(&s.rbuf[payload.clone()]);
                    fin.then_some(OP_TEXT)
                }
                (OP_CLOSE, ..) => {
                    let p = &s.rbuf[payload.clone()];
                    let why = match p {
                        [a, b, reason @ ..] => format!(
                            "close {} {}",
                            u16::from_be_bytes([*a, *b]),
                            String::from_utf8_lossy(reason)
                        ),
                        _ => "close".to_string(),
                    };
                    self.end(i, why);
                    break;
                }
                (OP_PING, ..) => {
                    let p = s.rbuf[payload.clone()].to_vec();
                    self.io.frame(i, 0xA, &p);
                    None
                }
                _ => None,
            };
            if whole.is_some() {
                let s = &mut self.io.socks[i];
                self.text.clear();
                match s.frag.take() {
                    Some(f) if op == OP_CONT => self.text = f,
                    _ => self.text.extend_from_slice(&s.rbuf[payload]),
                }
                if let Ok(t) = std::str::from_utf8(&self.text) {
                    on_text(&mut self.io, i, t);
                }
            }
        }
        let s = &mut self.io.socks[i];
        s.rbuf.drain(..pos.min(s.rbuf.len()));
        if s.rbuf.is_empty() && s.rbuf.capacity() > KEEP {
            s.rbuf = Vec::new();
        }
        if let Some(why) = ended {
            self.end(i, why);
        }
    }

    /// Writes what the sockets take; watches for room where they take less.
    pub fn flush(&mut self) {
        for i in std::mem::take(&mut self.io.dirty) {
            let s = &mut self.io.socks[i];
            s.dirty = false;
            if s.closed.is_some() {
                continue;
            }
            let mut written = 0;
            let mut failed = None;
            while written < s.wbuf.len() {
                match s.tcp.write(&s.wbuf[written..]) {
                    Ok(0) => {
                        failed = Some("the socket took no bytes".to_string());
                        break;
                    }
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(io_message(&e));
                        break;
                    }
                }
            }
            if let Some(why) = failed {
                self.end(i, why);
                continue;
            }
            s.wbuf.drain(..written);
            if s.wbuf.is_empty() && s.wbuf.capacity() > KEEP {
                s.wbuf = Vec::new();
            }
            let pending = !s.wbuf.is_empty();
            if pending != s.want_write {
                let interest = if pending {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                s.want_write = pending;
                if let Err(e) = self
                    .poll
                    .registry()
                    .reregister(&mut s.tcp, Token(i), interest)
                {
                    self.end(i, io_message(&e));
                }
            }
        }
    }

    fn end(&mut self, i: usize, why: String) {
        let s = &mut self.io.socks[i];
        if s.closed.is_none() {
            s.closed = Some(why);
            let _ = self.poll.registry().deregister(&mut s.tcp);
            s.rbuf = Vec::new();
            s.wbuf = Vec::new();
        }
    }

    /// Closes every socket with a close frame and waits up to `wait` for the broker's answers, so it sees clean
    /// departures.
    pub fn close_all(&mut self, wait: Duration) {
        for i in 0..self.io.socks.len() {
            self.io.close(i);
        }
        self.flush();
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until && self.io.socks.iter().any(|s| s.closed.is_none())
        {
            if self
                .turn(Some(Duration::from_millis(10)), &mut |_, _, _| {})
                .is_err()
            {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut out = Vec::new();
        let text = "x".repeat(300);
        put_frame(&mut out, OP_TEXT, text.as_bytes(), [1, 2, 3, 4]);
        assert_eq!(&out[..4], &[0x81, 0x80 | 126, 1, 44]);
        let (fin, op, range, len) = parse_frame(&out).unwrap();
        assert!(fin && op == OP_TEXT && len == out.len());
        let unmasked: Vec<u8> = out[range]
            .iter()
            .enumerate()
            .map(|(j, b)| b ^ [1, 2, 3, 4][j & 3])
            .collect();
        assert_eq!(unmasked, text.as_bytes());
        assert!(parse_frame(&out[..out.len() - 1]).is_none());
        // An unmasked server frame with a 64-bit length.
        let mut big = vec![0x81, 127];
        big.extend_from_slice(&70_000u64.to_be_bytes());
        big.extend(vec![b'y'; 70_000]);
        let (_, _, range, _) = parse_frame(&big).unwrap();
        assert_eq!(range, 10..70_010);
    }
}
