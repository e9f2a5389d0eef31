//! What one-shot calls share: [`Requester`] (anything that answers a frame), one request on a fresh connection,
//! and the error for a reply of the wrong type.

use super::{Conn, Ctx, Session};
use crate::error::{Error, Result};
use crate::wire::Frame;

/// Something that answers requests: a [`Conn`] or a [`Session`].
pub trait Requester {
    /// Sends `frame` and waits for its reply.
    fn ask(&mut self, frame: Frame) -> Result<Frame>;
}

impl Requester for Conn {
    fn ask(&mut self, frame: Frame) -> Result<Frame> {
        self.request(frame)
    }
}

impl Requester for &Session {
    fn ask(&mut self, frame: Frame) -> Result<Frame> {
        self.request(frame)
    }
}

/// One request on a fresh connection, closed after its answer.
pub fn ask_once(ctx: &Ctx, frame: impl Into<Frame>) -> Result<Frame> {
    let mut conn = ctx.connect()?;
    let reply = conn.request(frame);
    conn.close();
    reply
}

/// The error for a reply of the wrong type.
pub fn unexpected(what: &str, got: &Frame) -> Error {
    Error::internal(format!(
        "the broker answered {what} with {}",
        got.type_name()
    ))
}
