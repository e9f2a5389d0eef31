//! Shared state: a mesh's versioned keys and values.

use postgres::Row;

use super::{At, PgStore, StatePut, StateRow};
use crate::error::Result;

const STATE_COLS: &str =
    "mesh_id, key, value, version, updated_by_member, updated_by_name, updated_at";

fn state_row(r: &Row) -> Result<StateRow> {
    Ok(StateRow {
        mesh_id: r.at(0)?,
        key: r.at(1)?,
        value: r.at(2)?,
        version: r.at(3)?,
        updated_by_member: r.at(4)?,
        updated_by_name: r.at(5)?,
        updated_at: r.at(6)?,
    })
}

impl PgStore {
    pub(crate) fn state_get(&self, mesh_id: &str, key: &str) -> Result<Option<StateRow>> {
        self.opt(
            &format!("SELECT {STATE_COLS} FROM state WHERE mesh_id = $1 AND key = $2"),
            &[&mesh_id, &key],
            state_row,
        )
    }

    pub(crate) fn state_list(&self, mesh_id: &str) -> Result<Vec<StateRow>> {
        self.all(
            &format!("SELECT {STATE_COLS} FROM state WHERE mesh_id = $1 AND value IS NOT NULL ORDER BY key"),
            &[&mesh_id],
            state_row,
        )
    }

    pub(crate) fn state_put(&mut self, row: &StateRow, expected: Option<i64>) -> Result<StatePut> {
        self.write(|c| {
            // FOR UPDATE: a second writer of the key (another broker on this database) waits here for this
            // batch's commit, then compares against what it wrote.
            let current: Option<(Option<String>, i64)> = c
                .query_opt(
                    "SELECT value, version FROM state WHERE mesh_id = $1 AND key = $2 FOR UPDATE",
                    &[&row.mesh_id, &row.key],
                )?
                .map(|r| Ok::<_, crate::error::Error>((r.at(0)?, r.at(1)?)))
                .transpose()?;
            let live = current
                .as_ref()
                .filter(|(v, _)| v.is_some())
                .map_or(0, |(_, version)| *version);
            if let Some(e) = expected
                && e != live
            {
                return Ok(StatePut::Conflict(live));
            }
            let version = current.map_or(0, |(_, v)| v) + 1;
            c.execute(
                &format!(
                    "INSERT INTO state ({STATE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (mesh_id, key) DO UPDATE SET value = excluded.value, version = excluded.version, \
                     updated_by_member = excluded.updated_by_member, updated_by_name = excluded.updated_by_name, \
                     updated_at = excluded.updated_at"
                ),
                &[
                    &row.mesh_id,
                    &row.key,
                    &row.value,
                    &version,
                    &row.updated_by_member,
                    &row.updated_by_name,
                    &row.updated_at,
                ],
            )?;
            Ok(StatePut::Written(version))
        })
    }
}
