//! Shared state: one JSON value per key and mesh, with a version per key for compare-and-set.
//!
//! Every write bumps the key's version, deletes included (a deleted key keeps its row), so a version is never
//! reused and `expectedVersion` cannot be fooled by a key deleted and made again. `expectedVersion: 0` means "must
//! not exist". Each change is pushed as `state_change` to every other connection of the mesh, after the commit
//! like every other reply. Values are never logged.

use serde_json::Value;

use super::cluster::Event;
use super::hub::{Hub, IfLost, PKey};
use super::net::ConnId;
use super::store::{StatePut, StateRow};
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, Frame, codes};

/// The largest value, as JSON text.
pub const MAX_VALUE_BYTES: usize = 65_536;
/// The longest key, in bytes.
const MAX_KEY_BYTES: usize = 256;

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(format!(
            "a state key is 1 to {MAX_KEY_BYTES} bytes with no control characters"
        ));
    }
    Ok(())
}

fn value_of(row: &StateRow) -> Value {
    // Stored by `on_set_state` from a parsed value, so it parses back.
    row.value
        .as_deref()
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or(Value::Null)
}

impl Hub {
    fn conflict(&mut self, conn: ConnId, key: &str, expected: i64, at: i64, req_id: Option<&str>) {
        self.count_error(codes::VERSION_CONFLICT);
        let mut e = wire::ErrorFrame::new(
            codes::VERSION_CONFLICT,
            format!("state {key:?} is at version {at}, not {expected}"),
        )
        .with_req_id(req_id);
        e.version = Some(at);
        self.reply(conn, e);
    }

    /// Pushes a change to every other live connection of the mesh; dropped if the write is not committed.
    fn state_changed(&mut self, mesh_id: &str, from: ConnId, change: wire::StateChange) {
        let text = Frame::StateChange(change);
        self.tell(Event::Mesh {
            mesh: mesh_id.to_string(),
            frame: text.to_json(),
            all: true,
        });
        for k in self.mesh_keys(mesh_id) {
            if let Some(c) = self
                .presences
                .get(&k)
                .and_then(|p| p.conn)
                .filter(|c| *c != from)
            {
                self.emit(c, text.clone(), IfLost::Drop);
            }
        }
    }

    /// Validates and writes a key; `value: None` deletes. `None` back means an answer was sent.
    fn put_state(
        &mut self,
        conn: ConnId,
        pk: PKey,
        key: &str,
        value: Option<String>,
        expected: Option<i64>,
        req_id: Option<&str>,
    ) -> Option<(String, StateRow)> {
        let p = self.presences.get(&pk)?;
        let row = StateRow {
            mesh_id: p.mesh_id.clone(),
            key: key.to_string(),
            value,
            version: 0,
            updated_by_member: p.member_id.clone(),
            updated_by_name: p.display_name.clone(),
            updated_at: now_ms(),
        };
        if expected.is_some_and(|e| e < 0) {
            self.error(
                conn,
                codes::INVALID_ARGS,
                "expectedVersion is 0 (must not exist) or a version",
                req_id,
            );
            return None;
        }
        match self.store.state_put(&row, expected) {
            Err(e) => {
                self.store_error(conn, &e, req_id);
                None
            }
            Ok(StatePut::Conflict(at)) => {
                self.conflict(conn, key, expected.unwrap_or_default(), at, req_id);
                None
            }
            Ok(StatePut::Written(version)) => {
                Some((row.mesh_id.clone(), StateRow { version, ..row }))
            }
        }
    }

    pub(super) fn on_set_state(&mut self, conn: ConnId, pk: PKey, s: wire::SetState) {
        let req = s.req_id.as_deref();
        if let Err(m) = check_key(&s.key) {
            return self.error(conn, codes::INVALID_ARGS, m, req);
        }
        let text = s.value.to_string();
        if text.len() > MAX_VALUE_BYTES {
            return self.error(
                conn,
                codes::PAYLOAD_TOO_LARGE,
                format!(
                    "a state value is at most {MAX_VALUE_BYTES} bytes of JSON, this one is {}",
                    text.len()
                ),
                req,
            );
        }
        let Some((mesh, row)) =
            self.put_state(conn, pk, &s.key, Some(text), s.expected_version, req)
        else {
            return;
        };
        if req.is_some() {
            let result = wire::StateResult {
                key: row.key.clone(),
                value: s.value.clone(),
                updated_by: row.updated_by_name.clone(),
                updated_at: fmt_rfc3339(row.updated_at),
                version: Some(row.version),
                req_id: s.req_id.clone(),
            };
            self.reply_durable(conn, result, Hub::durable_failure(req));
        }
        let change = wire::StateChange {
            key: row.key,
            value: s.value,
            updated_by: row.updated_by_name,
            version: Some(row.version),
            deleted: None,
        };
        self.state_changed(&mesh, conn, change);
    }

    pub(super) fn on_del_state(&mut self, conn: ConnId, pk: PKey, d: wire::DelState) {
        let req = d.req_id.as_deref();
        if let Err(m) = check_key(&d.key) {
            return self.error(conn, codes::INVALID_ARGS, m, req);
        }
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        match self.store.state_get(&mesh, &d.key) {
            Ok(Some(r)) if r.value.is_some() => {}
            Ok(_) if d.expected_version.is_some_and(|e| e != 0) => {
                let e = d.expected_version.unwrap_or_default();
                return self.conflict(conn, &d.key, e, 0, req);
            }
            Ok(_) => {
                return self.error(
                    conn,
                    codes::NOT_FOUND,
                    format!("no state key {:?}", d.key),
                    req,
                );
            }
            Err(e) => return self.store_error(conn, &e, req),
        }
        let Some((mesh, row)) = self.put_state(conn, pk, &d.key, None, d.expected_version, req)
        else {
            return;
        };
        if req.is_some() {
            self.reply_durable(conn, wire::Ack::done(req), Hub::durable_failure(req));
        }
        let change = wire::StateChange {
            key: row.key,
            value: Value::Null,
            updated_by: row.updated_by_name,
            version: Some(row.version),
            deleted: Some(true),
        };
        self.state_changed(&mesh, conn, change);
    }

    pub(super) fn on_get_state(&mut self, conn: ConnId, pk: PKey, g: wire::GetState) {
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        let row = match self.store.state_get(&mesh, &g.key) {
            Ok(r) => r.filter(|r| r.value.is_some()),
            Err(e) => return self.store_error(conn, &e, g.req_id.as_deref()),
        };
        let result = match row {
            Some(r) => wire::StateResult {
                value: value_of(&r),
                key: r.key,
                updated_by: r.updated_by_name,
                updated_at: fmt_rfc3339(r.updated_at),
                version: Some(r.version),
                req_id: g.req_id,
            },
            // A missing key is the original's empty answer, with version 0: what "must not exist" compares to.
            None => wire::StateResult {
                key: g.key,
                version: Some(0),
                req_id: g.req_id,
                ..wire::StateResult::default()
            },
        };
        self.reply(conn, result);
    }

    pub(super) fn on_list_state(&mut self, conn: ConnId, pk: PKey, req_id: Option<&str>) {
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        let rows = match self.store.state_list(&mesh) {
            Ok(r) => r,
            Err(e) => return self.store_error(conn, &e, req_id),
        };
        let entries = rows
            .iter()
            .map(|r| wire::StateEntry {
                key: r.key.clone(),
                value: value_of(r),
                updated_by: r.updated_by_name.clone(),
                updated_at: fmt_rfc3339(r.updated_at),
                version: Some(r.version),
            })
            .collect();
        self.reply(
            conn,
            wire::StateList {
                entries,
                req_id: req_id.map(str::to_string),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(check_key("deploy/lock").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a\nb").is_err());
        assert!(check_key(&"k".repeat(257)).is_err());
    }
}
