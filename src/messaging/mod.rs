//! Messaging for `cm-send`, `cm-peers`, `cm-inbox` and `cm-pipe`: who is in a mesh, what a target reaches, how a
//! message is sealed and how its delivery is reported, and how inbound messages are shown.
//!
//! | file | owns |
//! |---|---|
//! | [`roster`] | [`Roster`]: a mesh's live presences and every member; name resolution's candidates; `cm-peers` rows |
//! | [`send`] | [`Dest`]: a target resolved to one key or to sealed copies; [`SendResult`] and its honest wording |
//! | [`inbox`] | pending messages fetched, printed, and acknowledged only after they are written; the prompt hook |
//! | [`seen`] | the ids `cm-inbox` showed, per mesh and identity, kept across runs |
//! | [`pipe`] | `cm-pipe`: a [`crate::client::Session`] driven by JSON Lines commands |

pub mod inbox;
pub mod pipe;
pub mod roster;
pub mod seen;
pub mod send;

pub use roster::{PeerRow, Roster};
pub use send::{Dest, Outgoing, SendResult};

use crate::error::{Error, Result};
use crate::wire::Frame;

/// Something that answers requests: a [`crate::client::Conn`] or a [`crate::client::Session`].
pub trait Requester {
    /// Sends `frame` and waits for its reply.
    fn ask(&mut self, frame: Frame) -> Result<Frame>;
}

impl Requester for crate::client::Conn {
    fn ask(&mut self, frame: Frame) -> Result<Frame> {
        self.request(frame)
    }
}

impl Requester for &crate::client::Session {
    fn ask(&mut self, frame: Frame) -> Result<Frame> {
        self.request(frame)
    }
}

/// The error for a reply of the wrong type.
pub(crate) fn unexpected(what: &str, got: &Frame) -> Error {
    Error::internal(format!(
        "the broker answered {what} with {}",
        got.type_name()
    ))
}

/// A JSON event as one line with its `type` first and the other keys in the order they were inserted.
pub fn event_line(v: &serde_json::Value) -> String {
    use serde_json::Value;
    let Value::Object(map) = v else {
        return v.to_string();
    };
    let Some(ty) = map.get("type") else {
        return v.to_string();
    };
    let mut s = format!("{{\"type\":{ty}");
    for (k, x) in map.iter().filter(|(k, _)| *k != "type") {
        s += &format!(",{}:{x}", Value::String(k.clone()));
    }
    s + "}"
}

/// `ab12cd34…`: enough of a key to recognise it.
pub fn short_key(key: &str) -> String {
    format!("{}…", key.get(..8).unwrap_or(key))
}

/// A time in the local time zone: `12:00:01` when it is today, else `2026-05-03 12:00:01`.
pub fn local_time(ms: i64, now_ms: i64) -> String {
    let (Some(t), Some(today)) = (local(ms), local(now_ms)) else {
        // No local time zone: fall back on UTC, marked.
        let s = crate::time::fmt_rfc3339(ms);
        return format!(
            "{} {}Z",
            s.get(..10).unwrap_or(&s),
            s.get(11..19).unwrap_or("")
        );
    };
    let clock = format!("{:02}:{:02}:{:02}", t.tm_hour, t.tm_min, t.tm_sec);
    if (t.tm_year, t.tm_yday) == (today.tm_year, today.tm_yday) {
        clock
    } else {
        format!(
            "{:04}-{:02}-{:02} {clock}",
            t.tm_year + 1900,
            t.tm_mon + 1,
            t.tm_mday
        )
    }
}

fn local(ms: i64) -> Option<libc::tm> {
    let secs = libc::time_t::try_from(ms.div_euclid(1000)).ok()?;
    // SAFETY: localtime_r only writes into the tm we pass, and reads `secs`; a zeroed tm is a valid value.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            None
        } else {
            Some(tm)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_put_their_type_first() {
        let v =
            serde_json::json!({"state": "connected", "type": "connection", "a": {"b": "\"q\""}});
        assert_eq!(
            event_line(&v),
            r#"{"type":"connection","state":"connected","a":{"b":"\"q\""}}"#
        );
        assert_eq!(event_line(&serde_json::json!({"x": 1})), r#"{"x":1}"#);
    }

    #[test]
    fn short_keys() {
        assert_eq!(short_key(&"ab".repeat(32)), "abababab…");
        assert_eq!(short_key("abc"), "abc…");
    }
}
