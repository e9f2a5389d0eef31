//! File reservations: advisory leases of members on path patterns of a repository (a scope).
//!
//! Reads take the time they count as now, so a reservation past its end is gone to every reader at once, whether
//! or not the sweep has deleted its row yet.

use rusqlite::{Row, params};

use super::{SqliteStore, db};
use crate::error::Result;

/// A reservation of a member.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReservationRow {
    pub id: String,
    pub mesh_id: String,
    pub scope: String,
    /// The normalized pattern.
    pub path: String,
    pub exclusive: bool,
    pub reason: Option<String>,
    pub member_id: String,
    pub member_name: String,
    pub created_at: i64,
    pub expires_at: i64,
}

const COLS: &str =
    "id, mesh_id, scope, path, exclusive, reason, member_id, member_name, created_at, expires_at";

fn row(r: &Row) -> rusqlite::Result<ReservationRow> {
    Ok(ReservationRow {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        scope: r.get(2)?,
        path: r.get(3)?,
        exclusive: r.get(4)?,
        reason: r.get(5)?,
        member_id: r.get(6)?,
        member_name: r.get(7)?,
        created_at: r.get(8)?,
        expires_at: r.get(9)?,
    })
}

impl SqliteStore {
    /// Stores a reservation, or replaces the member's own of the same pattern in the same scope (keeping its id).
    pub(crate) fn reservation_put(&mut self, r: &ReservationRow) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO reservations ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (mesh_id, scope, member_id, path) DO UPDATE SET exclusive = excluded.exclusive, \
                 reason = excluded.reason, member_name = excluded.member_name, created_at = excluded.created_at, \
                 expires_at = excluded.expires_at"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    r.id,
                    r.mesh_id,
                    r.scope,
                    r.path,
                    r.exclusive,
                    r.reason,
                    r.member_id,
                    r.member_name,
                    r.created_at,
                    r.expires_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    /// The mesh's reservations alive at `now`, of one scope or all, soonest to end first, at most `limit`.
    pub(crate) fn reservations_live(
        &self,
        mesh_id: &str,
        scope: Option<&str>,
        now: i64,
        limit: usize,
    ) -> Result<Vec<ReservationRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM reservations WHERE mesh_id = ?1 AND (?2 IS NULL OR scope = ?2) \
                 AND expires_at > ?3 ORDER BY scope, path, expires_at LIMIT ?4"
            ))
            .and_then(|mut s| {
                s.query_map(params![mesh_id, scope, now, limit as i64], row)?
                    .collect()
            })
            .map_err(db)
    }

    /// Deletes one reservation by id.
    pub(crate) fn reservation_delete(&mut self, id: &str) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("DELETE FROM reservations WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map_err(db)?;
        Ok(())
    }

    /// Deletes the reservations of every mesh that ended at or before `now`; how many.
    pub(crate) fn reservations_expire(&mut self, now: i64) -> Result<usize> {
        self.begin()?;
        self.conn
            .prepare_cached("DELETE FROM reservations WHERE expires_at <= ?1")
            .and_then(|mut s| s.execute([now]))
            .map_err(db)
    }
}
