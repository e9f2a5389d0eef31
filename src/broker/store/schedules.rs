//! Scheduled messages and reminders: when each fires next, and how often it has.

use rusqlite::{Row, params};

use super::{SqliteStore, db};
use crate::error::Result;

/// A scheduled message. The body is as the client sealed it (`nonce`/`ciphertext`, or `copies`), or an original
/// client's plaintext `message`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub id: String,
    pub mesh_id: String,
    pub member_id: String,
    /// The session that scheduled it, which the fired message is sent as.
    pub session_pubkey: Option<String>,
    pub target_spec: String,
    pub nonce: String,
    pub ciphertext: String,
    /// JSON array of `{to, nonce, ciphertext}`.
    pub copies: Option<String>,
    pub message: Option<String>,
    pub subtype: Option<String>,
    pub cron: Option<String>,
    /// A fixed offset, `+02:00`.
    pub tz: Option<String>,
    /// `None` once a one-shot entry has fired.
    pub next_fire_at: Option<i64>,
    pub fired_count: i64,
    pub created_at: i64,
}

const SCHEDULE_COLS: &str = "id, mesh_id, member_id, session_pubkey, target_spec, nonce, ciphertext, copies, message, \
                             subtype, cron, tz, next_fire_at, fired_count, created_at";

fn schedule_row(r: &Row) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        member_id: r.get(2)?,
        session_pubkey: r.get(3)?,
        target_spec: r.get(4)?,
        nonce: r.get(5)?,
        ciphertext: r.get(6)?,
        copies: r.get(7)?,
        message: r.get(8)?,
        subtype: r.get(9)?,
        cron: r.get(10)?,
        tz: r.get(11)?,
        next_fire_at: r.get(12)?,
        fired_count: r.get(13)?,
        created_at: r.get(14)?,
    })
}

impl SqliteStore {
    pub(crate) fn schedule_insert(&mut self, r: &ScheduleRow) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO schedules ({SCHEDULE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                 ?13, ?14, ?15)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    r.id,
                    r.mesh_id,
                    r.member_id,
                    r.session_pubkey,
                    r.target_spec,
                    r.nonce,
                    r.ciphertext,
                    r.copies,
                    r.message,
                    r.subtype,
                    r.cron,
                    r.tz,
                    r.next_fire_at,
                    r.fired_count,
                    r.created_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn schedules_of(&self, mesh_id: &str, member_id: &str) -> Result<Vec<ScheduleRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {SCHEDULE_COLS} FROM schedules WHERE member_id = ?1 AND mesh_id = ?2 AND cancelled = 0 \
                 AND next_fire_at IS NOT NULL ORDER BY next_fire_at, id"
            ))
            .and_then(|mut s| s.query_map([member_id, mesh_id], schedule_row)?.collect())
            .map_err(db)
    }

    pub(crate) fn schedule_cancel(&mut self, id: &str) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "UPDATE schedules SET cancelled = 1 WHERE id = ?1 AND cancelled = 0 AND next_fire_at IS NOT NULL",
            )
            .and_then(|mut s| s.execute([id]))
            .map_err(db)?;
        Ok(n == 1)
    }

    pub(crate) fn schedules_due(&self, now: i64, limit: usize) -> Result<Vec<ScheduleRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {SCHEDULE_COLS} FROM schedules WHERE cancelled = 0 AND next_fire_at IS NOT NULL \
                 AND next_fire_at <= ?1 ORDER BY next_fire_at, id LIMIT ?2"
            ))
            .and_then(|mut s| s.query_map(params![now, limit as i64], schedule_row)?.collect())
            .map_err(db)
    }

    pub(crate) fn schedule_next_due(&self) -> Result<Option<i64>> {
        self.conn
            .prepare_cached(
                "SELECT min(next_fire_at) FROM schedules WHERE cancelled = 0 AND next_fire_at IS NOT NULL",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db)
    }

    pub(crate) fn schedule_fired(
        &mut self,
        id: &str,
        next_fire_at: Option<i64>,
        at: i64,
    ) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "UPDATE schedules SET fired_count = fired_count + 1, last_fired_at = ?3, next_fire_at = ?2 \
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, next_fire_at, at]))
            .map_err(db)?;
        Ok(())
    }
}
