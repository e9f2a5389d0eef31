//! [`Stream`]: a connection's bytes, plain TCP or TLS (rustls's `ServerConnection` over the non-blocking socket).
//!
//! The loop reads and writes a `Stream` as it would a socket, and three rules keep TLS invisible above this file:
//! a read returns `WouldBlock` only when the socket has nothing more and rustls holds no plaintext (mio's edges
//! fire once, so nothing may stay buffered behind a `WouldBlock`); a write first empties the ciphertext rustls
//! holds and refuses more while the socket is full, so rustls keeps at most [`TLS_BUFFER`] and the loop's own
//! buffer, which it measures against `max_write_buffer`, takes the rest; and handshake records, which no write of
//! the loop's asked for, leave through [`Stream::flush_tls`] (the loop calls it whenever
//! [`Stream::wants_write`]).

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::ServerConnection;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

/// Ciphertext one connection's rustls may hold for the socket: one full TLS record and its overhead.
const TLS_BUFFER: usize = 17 * 1024;

/// A connection's byte stream.
pub(super) struct Stream {
    tcp: TcpStream,
    /// Boxed: a `ServerConnection` is large, and plain connections should not pay for it.
    tls: Option<Box<ServerConnection>>,
}

impl Stream {
    /// A plain TCP connection.
    pub(super) fn plain(tcp: TcpStream) -> Stream {
        Stream { tcp, tls: None }
    }

    /// A TLS connection whose handshake starts with the client's first bytes.
    pub(super) fn tls(tcp: TcpStream, config: &Arc<rustls::ServerConfig>) -> io::Result<Stream> {
        let mut conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        Ok(Stream {
            tcp,
            tls: Some(Box::new(conn)),
        })
    }

    /// Shuts the socket's write side; under TLS the `close_notify` must have left first (see [`Stream::close_notify`]).
    pub(super) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.tcp.shutdown(how)
    }

    /// Queues TLS's end-of-data alert, so the client can tell our end from a cut connection. Nothing on plain TCP.
    pub(super) fn close_notify(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
        }
    }

    /// Whether rustls holds records for the socket (handshake, alerts, or ciphertext the socket did not take).
    pub(super) fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Writes the records rustls holds; `Ok(true)` while some are left because the socket is full.
    pub(super) fn flush_tls(&mut self) -> io::Result<bool> {
        let Some(tls) = &mut self.tls else {
            return Ok(false);
        };
        while tls.wants_write() {
            match tls.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}

impl Read for Stream {
    /// Plaintext; `Ok(0)` at the end, whether the client sent `close_notify` or just closed.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return self.tcp.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Many clients close without `close_notify`; for the loop an end is an end (HTTP bodies carry
                // their length and WebSocket its close frame, so nothing is taken for whole that is not).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // Plaintext is drained, so rustls has room: read_tls's "buffer full" cannot happen here.
            tls.read_tls(&mut self.tcp)?;
            if let Err(e) = tls.process_new_packets() {
                // Let the client hear why (the alert rustls queued), as far as the socket takes it at once.
                let _ = tls.write_tls(&mut self.tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.tcp.write(buf);
        }
        if self.flush_tls()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let Some(tls) = &mut self.tls else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let n = tls.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            // Still handshaking with the plaintext buffer full: the handshake's progress, a read, resumes it.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.flush_tls()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().map(drop)
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.tcp.deregister(r)
    }
}
