//! The socket under [`Conn`](super::Conn) and [`Session`](super::Session): broker URLs, TCP with a connect
//! timeout, TLS with rustls, and the WebSocket upgrade. Nothing above this file touches tungstenite or rustls.

use crate::error::{Error, Result, io_message};
use rustls::pki_types::ServerName;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tungstenite::protocol::WebSocketConfig;

/// How long a TCP connect may take (DESIGN §3).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the TLS and WebSocket handshakes, and then the broker's `hello_ack`, may each take.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A broker address, split into what the socket needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerUrl {
    pub tls: bool,
    /// The host name or address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// The WebSocket URL as used for the upgrade request and in messages.
    pub ws: String,
    /// The HTTP base (`http[s]://host[:port]`, no trailing slash) for REST calls.
    pub http: String,
}

/// Parses `ws://`, `wss://`, `http://` or `https://` URLs. A WebSocket URL without a path gets `/ws`, the only
/// path the broker upgrades at; the HTTP base drops the path, as the original client did (`wss://h/ws` →
/// `https://h`).
pub(crate) fn parse_url(url: &str) -> Result<BrokerUrl> {
    let bad = |why: &str| Error::usage(format!("bad broker URL \"{url}\": {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected ws://, wss://, http:// or https://"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        _ => return Err(bad("expected ws://, wss://, http:// or https://")),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
        None if tls => 443,
        None => 80,
    };
    let ws_path = if path.is_empty() || path == "/" {
        "/ws"
    } else {
        path
    };
    let ws_scheme = if tls { "wss" } else { "ws" };
    let http_scheme = if tls { "https" } else { "http" };
    Ok(BrokerUrl {
        tls,
        host: host.to_string(),
        port,
        ws: format!("{ws_scheme}://{authority}{ws_path}"),
        http: format!("{http_scheme}://{authority}"),
    })
}

/// The client's TLS settings for `url`: the webpki roots, plus the PEM certificates of a private CA named by
/// `$CLAUDEMESH_CA_FILE` or `$SSL_CERT_FILE`, plus the CA file recorded for this broker by
/// `cm login URL --ca-file FILE` (for a self-hosted broker behind its own CA or a self-signed certificate).
/// Built once per CA file.
pub(crate) fn tls_config(url: &BrokerUrl) -> Result<Arc<rustls::ClientConfig>> {
    type Built = Vec<(Option<PathBuf>, Arc<rustls::ClientConfig>)>;
    static CONFIGS: Mutex<Built> = Mutex::new(Vec::new());
    let login_ca = login_ca_file(url)?;
    let mut built = CONFIGS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = built.iter().find(|(ca, _)| *ca == login_ca) {
        return Ok(c.clone());
    }
    let config = build_tls_config(login_ca.as_deref())?;
    built.push((login_ca, config.clone()));
    Ok(config)
}

/// The CA file `cm login` recorded for the broker at `url`'s host and port, if any.
fn login_ca_file(url: &BrokerUrl) -> Result<Option<PathBuf>> {
    let paths = crate::config::Paths {
        dir: crate::config::Paths::locate()?,
    };
    let brokers = crate::config::Brokers::load(&paths)?;
    Ok(brokers.brokers.into_iter().find_map(|b| {
        let login = parse_url(&b.url).ok()?;
        (login.host.eq_ignore_ascii_case(&url.host) && login.port == url.port)
            .then_some(b.ca_file)
            .flatten()
    }))
}

fn build_tls_config(login_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut files = Vec::new();
    for var in ["CLAUDEMESH_CA_FILE", "SSL_CERT_FILE"] {
        if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            files.push((PathBuf::from(path), format!("${var}")));
        }
    }
    if let Some(path) = login_ca {
        files.push((path.to_path_buf(), "the CA file of cm login".to_string()));
    }
    for (path, what) in &files {
        for cert in crate::crypto::read_ca_file(path, what)? {
            roots
                .add(cert)
                .map_err(|e| Error::usage(format!("{what} {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TCP stream, plain or under TLS.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath, for timeouts, non-blocking mode and polling.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// An open WebSocket to a broker.
pub(crate) type Ws = tungstenite::WebSocket<Stream>;

/// `cannot reach broker at URL: why`, the one message every connect failure uses.
pub(crate) fn unreachable(url: &str, why: impl std::fmt::Display) -> Error {
    Error::network(format!("cannot reach broker at {url}: {why}"))
}

/// Connects TCP (5 s), TLS and the WebSocket upgrade (5 s each), leaving the socket blocking with a 5 s read
/// timeout.
pub(crate) fn open(url: &BrokerUrl) -> Result<Ws> {
    let addrs = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(&url.ws, io_message(&e)))?;
    let mut last = None;
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = match (tcp, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(unreachable(&url.ws, connect_error(&e))),
        (None, None) => return Err(unreachable(&url.ws, "host has no address")),
    };
    let io = |e: io::Error| unreachable(&url.ws, io_message(&e));
    tcp.set_nodelay(true).map_err(io)?;
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
    tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
    let stream = if url.tls {
        let name = ServerName::try_from(url.host.clone())
            .map_err(|_| Error::usage(format!("bad broker host \"{}\"", url.host)))?;
        let conn = rustls::ClientConnection::new(tls_config(url)?, name)
            .map_err(|e| unreachable(&url.ws, format!("TLS: {e}")))?;
        Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
    } else {
        Stream::Plain(tcp)
    };
    // Pushes and inbox pages can be larger than the broker's 64 KiB limit on what it accepts.
    let config = WebSocketConfig::default().max_message_size(Some(16 << 20));
    match tungstenite::client::client_with_config(url.ws.as_str(), stream, Some(config)) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Interrupted(_)) => {
            Err(unreachable(&url.ws, "no WebSocket handshake within 5 s"))
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Io(e)))
            if let Some(refused) = certificate_refused(&url.ws, &e) =>
        {
            Err(refused)
        }
        Err(tungstenite::HandshakeError::Failure(e)) => Err(unreachable(&url.ws, ws_error(&e))),
    }
}

/// The error for a broker whose certificate this machine does not accept, if `e` is that: [`Error::auth`],
/// not a network error, because trying again reaches the same broker with the same certificate, and the fix is
/// the CA file or the URL.
pub(crate) fn certificate_refused(url: &str, e: &io::Error) -> Option<Error> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e.get_ref()?.downcast_ref::<rustls::Error>()? else {
        return None;
    };
    let why = match c {
        C::UnknownIssuer => "is not signed by a CA this machine trusts".to_string(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "is for another host name".to_string()
        }
        C::Expired | C::ExpiredContext { .. } => "has expired".to_string(),
        C::NotValidYet | C::NotValidYetContext { .. } => "is not valid yet".to_string(),
        C::Revoked => "has been revoked".to_string(),
        // What `openssl req -x509` makes unless told CA:FALSE: webpki will not take a CA's certificate as a
        // server's, even when it is the very one trusted.
        C::Other(o) if o.to_string().contains("CaUsedAsEndEntity") => {
            "is a CA's certificate, not a server's (make it with basicConstraints CA:FALSE, or sign one with that CA)"
                .to_string()
        }
        other => format!("was refused ({other})"),
    };
    Some(Error::auth(format!(
        "refusing broker at {url}: its TLS certificate {why}; for a private CA or a self-signed \
         certificate, name its PEM file with cm login URL --ca-file FILE or CLAUDEMESH_CA_FILE"
    )))
}

/// A short description of a connect error: `connection refused`, `timed out`.
fn connect_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "connect timed out after 5 s".into(),
        _ => io_message(e),
    }
}

/// A short description of a tungstenite error.
pub(crate) fn ws_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(e) => io_message(e),
        tungstenite::Error::Http(r) => {
            format!("HTTP {} instead of a WebSocket upgrade", r.status())
        }
        tungstenite::Error::Tls(e) => format!("TLS: {e}"),
        // The WebSocket library's name for a handshake answer that comes a few bytes at a time.
        tungstenite::Error::AttackAttempt => {
            "the answer to the WebSocket upgrade came a few bytes at a time (a network that trickles, or \
             something that is not a broker)"
                .into()
        }
        e => e.to_string(),
    }
}

/// Whether `e` is a read or write that would block (a timeout on a blocking socket, or a non-blocking socket
/// with nothing to do).
pub(crate) fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Sends a close frame and waits up to half a second for the broker's echo, blocking, so the broker sees a clean
/// close and announces the departure at once instead of after its grace period.
pub(crate) fn close(ws: &mut Ws) {
    let tcp = ws.get_ref().tcp();
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_write_timeout(Some(CLOSE_WAIT));
    let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }));
    let deadline = std::time::Instant::now() + CLOSE_WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let _ = ws.get_ref().tcp().set_read_timeout(Some(left));
        match ws.read() {
            Ok(_) => {}
            Err(e) if would_block(&e) => {}
            Err(_) => return,
        }
    }
}

/// How long [`close`] waits for the echo.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("wss://ic.claudemesh.com/ws").unwrap();
        assert!(u.tls);
        assert_eq!((u.host.as_str(), u.port), ("ic.claudemesh.com", 443));
        assert_eq!(u.ws, "wss://ic.claudemesh.com/ws");
        assert_eq!(u.http, "https://ic.claudemesh.com");

        let u = parse_url("ws://127.0.0.1:7900").unwrap();
        assert_eq!(u.ws, "ws://127.0.0.1:7900/ws");
        assert_eq!(u.http, "http://127.0.0.1:7900");
        assert_eq!(u.port, 7900);

        let u = parse_url("http://[::1]:80/ws?x=1").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.ws, "ws://[::1]:80/ws?x=1");

        assert_eq!(
            parse_url("ftp://x").unwrap_err().code,
            crate::error::Code::Usage
        );
        assert!(parse_url("ws://:80").is_err());
        assert!(parse_url("ws://h:99999").is_err());
    }

    #[test]
    fn refused_names_the_url() {
        // Bind then drop to get a port that nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = parse_url(&format!("ws://127.0.0.1:{port}/ws")).unwrap();
        let e = open(&url).err().unwrap();
        assert_eq!(e.code, crate::error::Code::Network);
        assert_eq!(
            e.msg,
            format!("cannot reach broker at ws://127.0.0.1:{port}/ws: connection refused")
        );
    }
}
