//! What one-shot calls share: [`Requester`] (anything that answers a frame), one request on a fresh connection,
//! and the error for a reply of the wrong type.

use super::{Conn, Ctx, Feature, Features, Session};
use crate::error::{Error, Result};
use crate::wire::Frame;

/// Something that answers requests: a [`Conn`] or a [`Session`].
pub trait Requester {
    /// Sends `frame` and waits for its reply; refused at once when the broker cannot answer it.
    fn ask(&mut self, frame: Frame) -> Result<Frame>;
    /// What the broker offers beyond the original's protocol.
    fn features(&self) -> Features;
    /// Sends `frame` without waiting for anything.
    fn tell(&mut self, frame: Frame) -> Result<()>;
    /// Sends a frame the original broker answers nothing to: asked (`Some(reply)`) where the broker replies,
    /// else told (`None`), so the caller confirms it by a read or says it cannot.
    fn post(&mut self, frame: Frame) -> Result<Option<Frame>> {
        if self.features().has(Feature::Replies) {
            self.ask(frame).map(Some)
        } else {
            self.tell(frame).map(|()| None)
        }
    }
}

impl Requester for Conn {
    fn ask(&mut self, frame: Frame) -> Result<Frame> {
        self.request(frame)
    }
    fn features(&self) -> Features {
        Conn::features(self).clone()
    }
    fn tell(&mut self, frame: Frame) -> Result<()> {
        self.fire(frame)
    }
}

impl Requester for &Session {
    fn ask(&mut self, frame: Frame) -> Result<Frame> {
        self.request(frame)
    }
    fn features(&self) -> Features {
        Session::features(self)
    }
    fn tell(&mut self, frame: Frame) -> Result<()> {
        self.fire(frame);
        Ok(())
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
