//! Tasks: a mesh's work items, each claimed by at most one member.
//!
//! As on SQLite, every change of status is one conditional `UPDATE`; here the row's lock makes concurrent
//! claims (from any broker on the database) take turns, and the second finds the task no longer open.

use postgres::Row;

use super::{At, PgStore, TaskRow, lim};
use crate::error::Result;

const TASK_COLS: &str = "id, mesh_id, title, assignee, priority, status, tags, result, created_by, \
     created_by_name, claimed_by, claimed_by_name, lease_until, created_at, claimed_at, completed_at";

fn task_row(r: &Row) -> Result<TaskRow> {
    Ok(TaskRow {
        id: r.at(0)?,
        mesh_id: r.at(1)?,
        title: r.at(2)?,
        assignee: r.at(3)?,
        priority: r.at(4)?,
        status: r.at(5)?,
        tags: r.at(6)?,
        result: r.at(7)?,
        created_by: r.at(8)?,
        created_by_name: r.at(9)?,
        claimed_by: r.at(10)?,
        claimed_by_name: r.at(11)?,
        lease_until: r.at(12)?,
        created_at: r.at(13)?,
        claimed_at: r.at(14)?,
        completed_at: r.at(15)?,
    })
}

impl PgStore {
    pub(crate) fn task_insert(&mut self, t: &TaskRow) -> Result<()> {
        self.exec(
            &format!(
                "INSERT INTO tasks ({TASK_COLS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            ),
            &[
                &t.id,
                &t.mesh_id,
                &t.title,
                &t.assignee,
                &t.priority,
                &t.status,
                &t.tags,
                &t.result,
                &t.created_by,
                &t.created_by_name,
                &t.claimed_by,
                &t.claimed_by_name,
                &t.lease_until,
                &t.created_at,
                &t.claimed_at,
                &t.completed_at,
            ],
        )
        .map(drop)
    }

    pub(crate) fn tasks_by_prefix(
        &self,
        mesh_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<TaskRow>> {
        self.all(
            &format!(
                "SELECT {TASK_COLS} FROM tasks WHERE mesh_id = $1 AND starts_with(id, $2) ORDER BY id LIMIT $3"
            ),
            &[&mesh_id, &prefix, &lim(limit)],
            task_row,
        )
    }

    pub(crate) fn tasks_list(
        &self,
        mesh_id: &str,
        status: Option<&str>,
        assignee: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TaskRow>> {
        self.all(
            &format!(
                "SELECT {TASK_COLS} FROM tasks WHERE mesh_id = $1 AND ($2::text IS NULL OR status = $2) \
                 AND ($3::text IS NULL OR assignee = $3 OR claimed_by_name = $3) \
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            ),
            &[&mesh_id, &status, &assignee, &lim(limit)],
            task_row,
        )
    }

    pub(crate) fn task_claim(
        &mut self,
        id: &str,
        member_id: &str,
        name: &str,
        at: i64,
        lease_until: i64,
    ) -> Result<bool> {
        let n = self.exec(
            "UPDATE tasks SET status = 'claimed', claimed_by = $2, claimed_by_name = $3, claimed_at = $4, \
             lease_until = $5 WHERE id = $1 AND status = 'open'",
            &[&id, &member_id, &name, &at, &lease_until],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn task_complete(
        &mut self,
        id: &str,
        result: Option<&str>,
        at: i64,
    ) -> Result<bool> {
        let n = self.exec(
            "UPDATE tasks SET status = 'done', result = $2, completed_at = $3, lease_until = NULL \
             WHERE id = $1 AND status != 'done'",
            &[&id, &result, &at],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn task_release(&mut self, id: &str) -> Result<bool> {
        let n = self.exec(
            "UPDATE tasks SET status = 'open', claimed_by = NULL, claimed_by_name = NULL, claimed_at = NULL, \
             lease_until = NULL WHERE id = $1 AND status = 'claimed'",
            &[&id],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn task_renew(&mut self, id: &str, lease_until: i64) -> Result<()> {
        self.exec(
            "UPDATE tasks SET lease_until = $2 WHERE id = $1 AND status = 'claimed'",
            &[&id, &lease_until],
        )
        .map(drop)
    }

    pub(crate) fn task_leases_due(&self, now: i64, limit: usize) -> Result<Vec<TaskRow>> {
        self.all(
            &format!(
                "SELECT {TASK_COLS} FROM tasks WHERE status = 'claimed' AND lease_until <= $1 \
                 ORDER BY lease_until LIMIT $2"
            ),
            &[&now, &lim(limit)],
            task_row,
        )
    }
}
