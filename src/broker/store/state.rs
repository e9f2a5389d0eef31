//! Shared state: a mesh's versioned keys and values.

use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, db};
use crate::error::Result;

/// A shared state key. A deleted key keeps its row with `value: None`, so versions never repeat and a
/// compare-and-set cannot mistake a new key for an old one of the same version.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub mesh_id: String,
    pub key: String,
    /// JSON text; `None` once deleted.
    pub value: Option<String>,
    pub version: i64,
    pub updated_by_member: String,
    pub updated_by_name: String,
    pub updated_at: i64,
}

/// What a compare-and-set write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatePut {
    /// Written; the key's new version.
    Written(i64),
    /// Not written: the key is at this version (0: absent or deleted).
    Conflict(i64),
}

const STATE_COLS: &str =
    "mesh_id, key, value, version, updated_by_member, updated_by_name, updated_at";

fn state_row(r: &Row) -> rusqlite::Result<StateRow> {
    Ok(StateRow {
        mesh_id: r.get(0)?,
        key: r.get(1)?,
        value: r.get(2)?,
        version: r.get(3)?,
        updated_by_member: r.get(4)?,
        updated_by_name: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

impl SqliteStore {
    pub(crate) fn state_get(&self, mesh_id: &str, key: &str) -> Result<Option<StateRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {STATE_COLS} FROM state WHERE mesh_id = ?1 AND key = ?2"
            ))
            .and_then(|mut s| s.query_row([mesh_id, key], state_row).optional())
            .map_err(db)
    }

    pub(crate) fn state_list(&self, mesh_id: &str) -> Result<Vec<StateRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {STATE_COLS} FROM state WHERE mesh_id = ?1 AND value IS NOT NULL ORDER BY key"
            ))
            .and_then(|mut s| s.query_map([mesh_id], state_row)?.collect())
            .map_err(db)
    }

    pub(crate) fn state_put(&mut self, row: &StateRow, expected: Option<i64>) -> Result<StatePut> {
        self.begin()?;
        let current = self.state_get(&row.mesh_id, &row.key)?;
        let live = current
            .as_ref()
            .filter(|c| c.value.is_some())
            .map_or(0, |c| c.version);
        if let Some(e) = expected
            && e != live
        {
            return Ok(StatePut::Conflict(live));
        }
        let version = current.map_or(0, |c| c.version) + 1;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO state ({STATE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (mesh_id, key) DO UPDATE SET value = excluded.value, version = excluded.version, \
                 updated_by_member = excluded.updated_by_member, updated_by_name = excluded.updated_by_name, \
                 updated_at = excluded.updated_at"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    row.mesh_id,
                    row.key,
                    row.value,
                    version,
                    row.updated_by_member,
                    row.updated_by_name,
                    row.updated_at
                ])
            })
            .map_err(db)?;
        Ok(StatePut::Written(version))
    }
}
