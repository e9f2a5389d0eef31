//! File reservations: advisory leases of members on path patterns of a repository (a scope).

use postgres::Row;

use super::{At, PgStore, ReservationRow, lim};
use crate::error::Result;

const COLS: &str =
    "id, mesh_id, scope, path, exclusive, reason, member_id, member_name, created_at, expires_at";

fn row(r: &Row) -> Result<ReservationRow> {
    Ok(ReservationRow {
        id: r.at(0)?,
        mesh_id: r.at(1)?,
        scope: r.at(2)?,
        path: r.at(3)?,
        exclusive: r.at(4)?,
        reason: r.at(5)?,
        member_id: r.at(6)?,
        member_name: r.at(7)?,
        created_at: r.at(8)?,
        expires_at: r.at(9)?,
    })
}

impl PgStore {
    pub(crate) fn reservation_put(&mut self, r: &ReservationRow) -> Result<()> {
        self.exec(
            &format!(
                "INSERT INTO reservations ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (mesh_id, scope, member_id, path) DO UPDATE SET exclusive = excluded.exclusive, \
                 reason = excluded.reason, member_name = excluded.member_name, created_at = excluded.created_at, \
                 expires_at = excluded.expires_at"
            ),
            &[
                &r.id,
                &r.mesh_id,
                &r.scope,
                &r.path,
                &r.exclusive,
                &r.reason,
                &r.member_id,
                &r.member_name,
                &r.created_at,
                &r.expires_at,
            ],
        )
        .map(drop)
    }

    pub(crate) fn reservations_live(
        &self,
        mesh_id: &str,
        scope: Option<&str>,
        now: i64,
        limit: usize,
    ) -> Result<Vec<ReservationRow>> {
        self.all(
            &format!(
                "SELECT {COLS} FROM reservations WHERE mesh_id = $1 AND ($2::text IS NULL OR scope = $2) \
                 AND expires_at > $3 ORDER BY scope, path, expires_at LIMIT $4"
            ),
            &[&mesh_id, &scope, &now, &lim(limit)],
            row,
        )
    }

    pub(crate) fn reservation_delete(&mut self, id: &str) -> Result<()> {
        self.exec("DELETE FROM reservations WHERE id = $1", &[&id])
            .map(drop)
    }

    pub(crate) fn reservations_expire(&mut self, now: i64) -> Result<usize> {
        self.exec("DELETE FROM reservations WHERE expires_at <= $1", &[&now])
            .map(|n| n as usize)
    }
}
