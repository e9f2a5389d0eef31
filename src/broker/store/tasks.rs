//! Tasks: a mesh's work items, each claimed by at most one member.
//!
//! Every change of status is one conditional `UPDATE` (`... WHERE status = 'open'` for a claim), so however many
//! members claim a task at once, exactly one update matches and the others see zero rows changed.

use rusqlite::{Row, params};

use super::{SqliteStore, db};
use crate::error::Result;

/// A task of a mesh.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskRow {
    pub id: String,
    pub mesh_id: String,
    pub title: String,
    pub assignee: Option<String>,
    pub priority: String,
    /// `open`, `claimed` or `done`.
    pub status: String,
    /// JSON array of strings.
    pub tags: String,
    pub result: Option<String>,
    /// Member id.
    pub created_by: String,
    pub created_by_name: String,
    /// Member id.
    pub claimed_by: Option<String>,
    pub claimed_by_name: Option<String>,
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub claimed_at: Option<i64>,
    pub completed_at: Option<i64>,
}

const TASK_COLS: &str = "id, mesh_id, title, assignee, priority, status, tags, result, created_by, \
     created_by_name, claimed_by, claimed_by_name, lease_until, created_at, claimed_at, completed_at";

fn task_row(r: &Row) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        title: r.get(2)?,
        assignee: r.get(3)?,
        priority: r.get(4)?,
        status: r.get(5)?,
        tags: r.get(6)?,
        result: r.get(7)?,
        created_by: r.get(8)?,
        created_by_name: r.get(9)?,
        claimed_by: r.get(10)?,
        claimed_by_name: r.get(11)?,
        lease_until: r.get(12)?,
        created_at: r.get(13)?,
        claimed_at: r.get(14)?,
        completed_at: r.get(15)?,
    })
}

impl SqliteStore {
    pub(crate) fn task_insert(&mut self, t: &TaskRow) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO tasks ({TASK_COLS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    t.id,
                    t.mesh_id,
                    t.title,
                    t.assignee,
                    t.priority,
                    t.status,
                    t.tags,
                    t.result,
                    t.created_by,
                    t.created_by_name,
                    t.claimed_by,
                    t.claimed_by_name,
                    t.lease_until,
                    t.created_at,
                    t.claimed_at,
                    t.completed_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    /// The mesh's tasks whose id starts with `prefix`, at most `limit`.
    pub(crate) fn tasks_by_prefix(
        &self,
        mesh_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<TaskRow>> {
        // Ids are base62, so a prefix has no LIKE wildcards; a range scan finds it.
        let mut upper = prefix.to_string();
        upper.push('\u{7f}');
        self.conn
            .prepare_cached(&format!(
                "SELECT {TASK_COLS} FROM tasks WHERE mesh_id = ?1 AND id >= ?2 AND id < ?3 ORDER BY id LIMIT ?4"
            ))
            .and_then(|mut s| {
                s.query_map(params![mesh_id, prefix, upper, limit as i64], task_row)?
                    .collect()
            })
            .map_err(db)
    }

    pub(crate) fn tasks_list(
        &self,
        mesh_id: &str,
        status: Option<&str>,
        assignee: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TaskRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {TASK_COLS} FROM tasks WHERE mesh_id = ?1 AND (?2 IS NULL OR status = ?2) \
                 AND (?3 IS NULL OR assignee = ?3 OR claimed_by_name = ?3) \
                 ORDER BY created_at DESC, id DESC LIMIT ?4"
            ))
            .and_then(|mut s| {
                s.query_map(params![mesh_id, status, assignee, limit as i64], task_row)?
                    .collect()
            })
            .map_err(db)
    }

    pub(crate) fn task_claim(
        &mut self,
        id: &str,
        member_id: &str,
        name: &str,
        at: i64,
        lease_until: i64,
    ) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "UPDATE tasks SET status = 'claimed', claimed_by = ?2, claimed_by_name = ?3, claimed_at = ?4, \
                 lease_until = ?5 WHERE id = ?1 AND status = 'open'",
            )
            .and_then(|mut s| s.execute(params![id, member_id, name, at, lease_until]))
            .map_err(db)?;
        Ok(n == 1)
    }

    pub(crate) fn task_complete(
        &mut self,
        id: &str,
        result: Option<&str>,
        at: i64,
    ) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "UPDATE tasks SET status = 'done', result = ?2, completed_at = ?3, lease_until = NULL \
                 WHERE id = ?1 AND status != 'done'",
            )
            .and_then(|mut s| s.execute(params![id, result, at]))
            .map_err(db)?;
        Ok(n == 1)
    }

    pub(crate) fn task_release(&mut self, id: &str) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "UPDATE tasks SET status = 'open', claimed_by = NULL, claimed_by_name = NULL, claimed_at = NULL, \
                 lease_until = NULL WHERE id = ?1 AND status = 'claimed'",
            )
            .and_then(|mut s| s.execute([id]))
            .map_err(db)?;
        Ok(n == 1)
    }

    pub(crate) fn task_renew(&mut self, id: &str, lease_until: i64) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "UPDATE tasks SET lease_until = ?2 WHERE id = ?1 AND status = 'claimed'",
            )
            .and_then(|mut s| s.execute(params![id, lease_until]))
            .map_err(db)?;
        Ok(())
    }

    /// Claimed tasks of every mesh whose lease ends at or before `now`.
    pub(crate) fn task_leases_due(&self, now: i64, limit: usize) -> Result<Vec<TaskRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {TASK_COLS} FROM tasks WHERE status = 'claimed' AND lease_until <= ?1 \
                 ORDER BY lease_until LIMIT ?2"
            ))
            .and_then(|mut s| s.query_map(params![now, limit as i64], task_row)?.collect())
            .map_err(db)
    }
}
