//! The mesh services one-shot tools use: shared state, memory, reminders and the profile peers see.
//!
//! | file | owns |
//! |---|---|
//! | [`state`] | `cm-state`: get, set with compare-and-set, list, delete and watch shared keys |
//! | [`memory`] | `cm-memory`: remember, recall (ranked full-text search) and forget |
//! | [`remind`] | `cm-remind`: reminders and cron jobs sealed like a send, or sent now from a crontab |
//! | [`profile`] | `cm-profile`: the name, summary, status, visibility, role tag and groups peers see |
//!
//! Each call opens one connection with [`Ctx::connect`], so inside a launched session it speaks as that session
//! (a pull connection of it) and everywhere else as the member.

pub mod memory;
pub mod profile;
pub mod remind;
pub mod state;

use crate::client::Ctx;
use crate::error::{Error, Result};
use crate::wire::Frame;

/// The error for a reply of the wrong type.
pub(crate) fn unexpected(what: &str, got: &Frame) -> Error {
    Error::internal(format!(
        "the broker answered {what} with {}",
        got.type_name()
    ))
}

/// One request on a fresh connection, closed after its answer.
pub(crate) fn ask(ctx: &Ctx, frame: impl Into<Frame>) -> Result<Frame> {
    let mut conn = ctx.connect()?;
    let reply = conn.request(frame);
    conn.close();
    reply
}

/// `2026-05-04T09:00:00Z`: RFC 3339 UTC, without milliseconds when there are none.
pub fn short_time(ms: i64) -> String {
    let s = crate::time::fmt_rfc3339(ms);
    match s.strip_suffix(".000Z") {
        Some(t) => format!("{t}Z"),
        None => s,
    }
}

/// `ab12cd34`: enough of an id to type it back.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
