//! The library's error type: a message a user can act on, and the exit code it maps to.
//!
//! Every tool prints an error as one line, `cm-send: <message>`, and exits with the code. The codes are the
//! original CLI's, so scripts written against either keep working.

use std::fmt;

/// Exit codes (DESIGN §4). `0` is success and has no variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Something failed that has no more specific code.
    Generic = 1,
    /// Authentication or signature failure, or no identity where one is needed.
    Auth = 2,
    /// Bad arguments or flags.
    Usage = 3,
    /// The broker could not be reached, or the connection failed.
    Network = 4,
    /// A named thing (mesh, peer, topic, key) does not exist.
    NotFound = 5,
    /// The thing to create exists already.
    Exists = 6,
    /// Refused by permissions or policy.
    Permission = 7,
    /// A bug or an impossible state: report it.
    Internal = 8,
    /// The request went out and no answer came: it may have taken effect (a message may have been delivered).
    Unknown = 9,
    /// A local file or directory could not be read or written.
    Io = 10,
    /// A compare-and-set found the thing changed since it was read (`cm-state set --if-version`): read it again.
    Conflict = 11,
    /// The broker does not have what was asked (an original claudemesh broker lacks cm-broker's additions):
    /// nothing was sent; the request cannot work there.
    Unsupported = 12,
    /// A path is reserved by another member (`cm-reserve`, its pre-commit hook): the holder and the reason are
    /// in the message. Reported, never waited on.
    Reserved = 13,
    /// Stopped by Ctrl-C (SIGINT): 128 + 2, as a shell reports a process the signal ended, so a loop around the
    /// tool stops too.
    Interrupted = 130,
}

impl Code {
    /// The process exit status for this code.
    pub fn exit_status(self) -> i32 {
        self as i32
    }
}

/// An error with a one-line message and an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub msg: String,
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Code, msg: impl Into<String>) -> Error {
        Error {
            code,
            msg: msg.into(),
        }
    }
    pub fn generic(msg: impl Into<String>) -> Error {
        Error::new(Code::Generic, msg)
    }
    pub fn auth(msg: impl Into<String>) -> Error {
        Error::new(Code::Auth, msg)
    }
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::new(Code::Usage, msg)
    }
    pub fn network(msg: impl Into<String>) -> Error {
        Error::new(Code::Network, msg)
    }
    pub fn not_found(msg: impl Into<String>) -> Error {
        Error::new(Code::NotFound, msg)
    }
    pub fn exists(msg: impl Into<String>) -> Error {
        Error::new(Code::Exists, msg)
    }
    pub fn permission(msg: impl Into<String>) -> Error {
        Error::new(Code::Permission, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Error {
        Error::new(Code::Internal, msg)
    }
    pub fn unknown(msg: impl Into<String>) -> Error {
        Error::new(Code::Unknown, msg)
    }
    pub fn io(msg: impl Into<String>) -> Error {
        Error::new(Code::Io, msg)
    }
    pub fn unsupported(msg: impl Into<String>) -> Error {
        Error::new(Code::Unsupported, msg)
    }
    /// Ctrl-C: exits 130 without a message.
    pub fn interrupted() -> Error {
        Error::new(Code::Interrupted, "")
    }

    /// Prefixes the message with what was being done: `reading config.json: permission denied`.
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::io(io_message(&e))
    }
}

/// A short, lower-case description of an I/O error without the `(os error N)` suffix.
pub fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// Adds `.context()` to results.
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
}
