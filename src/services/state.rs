//! Shared state: JSON values under keys, one set per mesh, with versions for compare-and-set.
//!
//! `set` with `if_version` writes only if the key is still at that version (0: only if it does not exist), so
//! two sessions can take turns on a key without a lock: read, compute, set with the version read, and on a
//! conflict read again.

use serde::Serialize;
use serde_json::Value;

use crate::client::{Ctx, Event, Feature, Session, SessionOpts};
use crate::client::{ask_once as ask, unexpected};
use crate::error::{Error, Result};
use crate::wire::{self, Frame};

/// A key's value as a tool prints it (JSON Lines: `{"type":"state",...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub r#type: &'static str,
    pub key: String,
    pub value: Value,
    pub version: i64,
    pub updated_by: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// A change as `watch` reports it (`{"type":"state_change",...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub r#type: &'static str,
    pub key: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    pub updated_by: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// A value given on the command line: JSON if it parses as JSON, else the text as a string.
pub fn parse_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// A value as a shell wants it: a string as it is, anything else as compact JSON.
pub fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn entry(r: wire::StateResult) -> Entry {
    Entry {
        r#type: "state",
        key: r.key,
        value: r.value,
        version: r.version.unwrap_or_default(),
        updated_by: r.updated_by,
        updated_at: r.updated_at,
    }
}

/// A key's value; NotFound when the key is not set.
pub fn get(ctx: &Ctx, key: &str) -> Result<Entry> {
    let get = wire::GetState {
        key: key.to_string(),
        ..wire::GetState::default()
    };
    match ask(ctx, get)? {
        Frame::StateResult(r) if r.updated_at.is_empty() => Err(Error::not_found(format!(
            "no state key {key:?} in mesh {}",
            ctx.mesh.slug
        ))),
        Frame::StateResult(r) => Ok(entry(r)),
        f => Err(unexpected("get_state", &f)),
    }
}

/// Sets a key, only if it is at `if_version` when one is given (0: only if it is not set).
pub fn set(ctx: &Ctx, key: &str, value: Value, if_version: Option<i64>) -> Result<Entry> {
    let set = wire::SetState {
        key: key.to_string(),
        value,
        expected_version: if_version,
        ..wire::SetState::default()
    };
    let mut conn = ctx.connect()?;
    if conn.features().has(Feature::Replies) {
        return match conn.request(set)? {
            Frame::StateResult(r) => Ok(entry(r)),
            f => Err(unexpected("set_state", &f)),
        };
    }
    // The original answers nothing to set_state and knows no expectedVersion: it would write anyway.
    if if_version.is_some() {
        return Err(conn.features().lacks(
            Feature::Replies,
            "cm-state set --if-version (a compare-and-set)",
        ));
    }
    let want = set.value.clone();
    conn.fire(set)?;
    // It handles a socket's frames in order, so a read after the write sees it, or a later write by another.
    let get = wire::GetState {
        key: key.to_string(),
        ..wire::GetState::default()
    };
    match conn.request(get)? {
        Frame::StateResult(r) if r.value == want => Ok(entry(r)),
        Frame::StateResult(r) => Err(Error::unknown(format!(
            "state {key:?} reads {} after the write, not the value set: another write came between, or \
             the broker did not take it",
            show_value(&r.value)
        ))),
        f => Err(unexpected("get_state", &f)),
    }
}

/// Deletes a key, only if it is at `if_version` when one is given.
pub fn del(ctx: &Ctx, key: &str, if_version: Option<i64>) -> Result<()> {
    let del = wire::DelState {
        key: key.to_string(),
        expected_version: if_version,
        ..wire::DelState::default()
    };
    match ask(ctx, del)? {
        Frame::Ack(_) => Ok(()),
        f => Err(unexpected("del_state", &f)),
    }
}

/// Every key of the mesh, in key order.
pub fn list(ctx: &Ctx) -> Result<Vec<Entry>> {
    match ask(ctx, wire::ListState::default())? {
        Frame::StateList(l) => Ok(l
            .entries
            .into_iter()
            .map(|e| Entry {
                r#type: "state",
                key: e.key,
                value: e.value,
                version: e.version.unwrap_or_default(),
                updated_by: e.updated_by,
                updated_at: e.updated_at,
            })
            .collect()),
        f => Err(unexpected("list_state", &f)),
    }
}

/// Calls `each` with every change to `keys` (every key when empty) made by other connections, until `each`
/// fails or the session ends for good. A lost connection is made again; changes made meanwhile are not replayed.
pub fn watch(
    ctx: &Ctx,
    keys: &[String],
    mut each: impl FnMut(&Change) -> Result<()>,
    mut note: impl FnMut(&str),
) -> Result<()> {
    // A pull connection: inside a launched session it is an auxiliary socket and does not replace the session's.
    let opts = SessionOpts {
        conn: ctx.conn_opts(),
        ..SessionOpts::default()
    };
    let session = Session::start(&ctx.mesh, opts)?;
    for ev in session.events().iter() {
        match ev {
            Event::Reply(Frame::StateChange(c)) if keys.is_empty() || keys.contains(&c.key) => {
                each(&Change {
                    r#type: "state_change",
                    key: c.key,
                    value: c.value,
                    version: c.version,
                    updated_by: c.updated_by,
                    deleted: c.deleted.unwrap_or(false),
                })?;
            }
            Event::Disconnected { reason, retry_in } => match retry_in {
                Some(d) => note(&format!(
                    "connection lost ({reason}); trying again in {} s",
                    d.as_secs()
                )),
                None => note(&format!("connection lost ({reason})")),
            },
            Event::Closed => break,
            _ => {}
        }
    }
    Err(Error::network("the connection to the broker ended"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_json_or_text() {
        assert_eq!(parse_value("42"), Value::from(42));
        assert_eq!(parse_value("{\"a\":[1]}"), serde_json::json!({"a":[1]}));
        assert_eq!(parse_value("\"quoted\""), Value::from("quoted"));
        assert_eq!(parse_value("hello world"), Value::from("hello world"));
        assert_eq!(parse_value("true"), Value::from(true));
        assert_eq!(show_value(&Value::from("x y")), "x y");
        assert_eq!(show_value(&serde_json::json!({"a":1})), r#"{"a":1}"#);
    }
}
