//! Scheduled messages and reminders: when each fires next, and how often it has.

use postgres::Row;

use super::{At, PgStore, ScheduleRow, lim};
use crate::error::Result;

const SCHEDULE_COLS: &str = "id, mesh_id, member_id, session_pubkey, target_spec, nonce, ciphertext, copies, message, \
                             subtype, cron, tz, next_fire_at, fired_count, created_at";

fn schedule_row(r: &Row) -> Result<ScheduleRow> {
    Ok(ScheduleRow {
        id: r.at(0)?,
        mesh_id: r.at(1)?,
        member_id: r.at(2)?,
        session_pubkey: r.at(3)?,
        target_spec: r.at(4)?,
        nonce: r.at(5)?,
        ciphertext: r.at(6)?,
        copies: r.at(7)?,
        message: r.at(8)?,
        subtype: r.at(9)?,
        cron: r.at(10)?,
        tz: r.at(11)?,
        next_fire_at: r.at(12)?,
        fired_count: r.at(13)?,
        created_at: r.at(14)?,
    })
}

impl PgStore {
    pub(crate) fn schedule_insert(&mut self, r: &ScheduleRow) -> Result<()> {
        self.exec(
            &format!(
                "INSERT INTO schedules ({SCHEDULE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                 $13, $14, $15)"
            ),
            &[
                &r.id,
                &r.mesh_id,
                &r.member_id,
                &r.session_pubkey,
                &r.target_spec,
                &r.nonce,
                &r.ciphertext,
                &r.copies,
                &r.message,
                &r.subtype,
                &r.cron,
                &r.tz,
                &r.next_fire_at,
                &r.fired_count,
                &r.created_at,
            ],
        )
        .map(drop)
    }

    pub(crate) fn schedules_of(&self, mesh_id: &str, member_id: &str) -> Result<Vec<ScheduleRow>> {
        self.all(
            &format!(
                "SELECT {SCHEDULE_COLS} FROM schedules WHERE member_id = $1 AND mesh_id = $2 AND NOT cancelled \
                 AND next_fire_at IS NOT NULL ORDER BY next_fire_at, id"
            ),
            &[&member_id, &mesh_id],
            schedule_row,
        )
    }

    pub(crate) fn schedule_cancel(&mut self, id: &str) -> Result<bool> {
        let n = self.exec(
            "UPDATE schedules SET cancelled = true WHERE id = $1 AND NOT cancelled AND next_fire_at IS NOT NULL",
            &[&id],
        )?;
        Ok(n == 1)
    }

    /// In the batch's transaction, so the rows stay locked until it commits their next fire time: another broker's
    /// timer at the same moment skips them and finds them moved on after.
    pub(crate) fn schedules_due(&mut self, now: i64, limit: usize) -> Result<Vec<ScheduleRow>> {
        let sql = format!(
            "SELECT {SCHEDULE_COLS} FROM schedules WHERE NOT cancelled AND next_fire_at IS NOT NULL \
             AND next_fire_at <= $1 ORDER BY next_fire_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
        );
        self.write(|c| {
            c.query(&sql, &[&now, &lim(limit)])?
                .iter()
                .map(schedule_row)
                .collect()
        })
    }

    pub(crate) fn schedule_next_due(&self) -> Result<Option<i64>> {
        self.opt(
            "SELECT min(next_fire_at) FROM schedules WHERE NOT cancelled AND next_fire_at IS NOT NULL",
            &[],
            |r| r.at(0),
        )
        .map(Option::flatten)
    }

    pub(crate) fn schedule_fired(
        &mut self,
        id: &str,
        next_fire_at: Option<i64>,
        at: i64,
    ) -> Result<()> {
        self.exec(
            "UPDATE schedules SET fired_count = fired_count + 1, last_fired_at = $3, next_fire_at = $2 \
             WHERE id = $1",
            &[&id, &next_fire_at, &at],
        )
        .map(drop)
    }
}
