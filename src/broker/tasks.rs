//! Tasks: work items of a mesh, each claimed by at most one member at a time.
//!
//! The hub handles one request at a time and a claim is one conditional update (`status = 'open'`), so of any
//! number of members claiming a task at once exactly one gets it and the others are told who has it.
//!
//! A claim carries a lease. While any session of the claiming member is connected, the sweep moves the lease on;
//! once none has been for `task_lease` (a `cm-broker --task-lease`), the task goes back to `open`, so work held
//! by a session that went away is not held forever.
//!
//! Every change (created, claimed, completed, released, a claim lapsed) is pushed as a system event, `task_created`,
//! `task_claimed`, `task_completed` or `task_released`, to the mesh's live sessions but the connection that made
//! it: the task as `task_list` shows it, who did it (`by`), and the creator's member id, so a session tells its
//! own tasks from the others'. `cm-task watch`, `cm-pipe` and `cm-mcp` read them.

use serde_json::{Value, json};

use super::hub::{Hub, PKey};
use super::log;
use super::memory::tags_of;
use super::net::ConnId;
use super::store::{TaskRow, new_id};
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, codes};

const MAX_TITLE: usize = 512;
const MAX_RESULT: usize = 8 * 1024;
const MAX_NAME: usize = 64;
const MAX_TAGS: usize = 16;
const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
/// The shortest id prefix a request may name a task by.
const MIN_PREFIX: usize = 4;
/// Tasks a `list_tasks` returns, as the original.
const LIST_LIMIT: usize = 100;
/// Lapsed leases one sweep handles; the next tick takes the rest.
const SWEEP_BATCH: usize = 100;

fn one_line(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

fn to_wire(t: TaskRow) -> wire::Task {
    wire::Task {
        tags: tags_of(&t.tags),
        id: t.id,
        title: t.title,
        assignee: t.assignee,
        claimed_by: t.claimed_by_name,
        status: t.status,
        priority: t.priority,
        created_by: t.created_by_name,
        created_at: fmt_rfc3339(t.created_at),
        claimed_at: t.claimed_at.map(fmt_rfc3339),
        completed_at: t.completed_at.map(fmt_rfc3339),
        result: t.result,
    }
}

/// Why a task cannot be taken now, for the error's message.
fn held(t: &TaskRow) -> String {
    match (t.status.as_str(), t.claimed_by_name.as_deref()) {
        ("done", _) => format!("task {} is completed already", t.id),
        (_, Some(who)) => format!("task {} is claimed by {who}", t.id),
        _ => format!("task {} is {}", t.id, t.status),
    }
}

impl Hub {
    /// The mesh's task named by `id` or an unambiguous prefix of it; `None` when an error was sent.
    fn task(&mut self, conn: ConnId, mesh: &str, id: &str, req: Option<&str>) -> Option<TaskRow> {
        let id = id.trim();
        if id.len() < MIN_PREFIX || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            self.error(
                conn,
                codes::INVALID_ARGUMENT,
                format!("a task id is at least {MIN_PREFIX} characters of [A-Za-z0-9]"),
                req,
            );
            return None;
        }
        let mut found = match self.store.tasks_by_prefix(mesh, id, 2) {
            Ok(x) => x,
            Err(e) => {
                self.store_error(conn, &e, req);
                return None;
            }
        };
        if let Some(i) = found.iter().position(|t| t.id == id) {
            return Some(found.swap_remove(i));
        }
        match found.len() {
            1 => found.pop(),
            0 => {
                self.error(
                    conn,
                    codes::TASK_NOT_FOUND,
                    format!("no task {id:?} in this mesh"),
                    req,
                );
                None
            }
            _ => {
                self.error(
                    conn,
                    codes::AMBIGUOUS_PREFIX,
                    format!("{id:?} starts more than one task's id"),
                    req,
                );
                None
            }
        }
    }

    /// Answers a change to one task with `task_list` holding it as it now is.
    fn task_changed(&mut self, conn: ConnId, t: TaskRow, req_id: Option<String>) {
        let req = req_id.clone();
        let list = wire::TaskList {
            tasks: vec![to_wire(t)],
            req_id,
        };
        self.reply_durable(conn, list, Hub::durable_failure(req.as_deref()));
    }

    pub(super) fn on_create_task(&mut self, conn: ConnId, pk: PKey, c: wire::CreateTask) {
        let req = c.req_id.as_deref();
        let title = c.title.trim();
        if !one_line(title, MAX_TITLE) {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!("a task's title is 1 to {MAX_TITLE} bytes on one line"),
                req,
            );
        }
        let priority = c.priority.as_deref().unwrap_or("normal").trim();
        if !PRIORITIES.contains(&priority) {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!(
                    "a task's priority is one of {}, not {priority:?}",
                    PRIORITIES.join(", ")
                ),
                req,
            );
        }
        let assignee = c.assignee.as_deref().map(str::trim);
        if assignee.is_some_and(|a| !one_line(a, MAX_NAME)) {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!("an assignee is a name of 1 to {MAX_NAME} bytes"),
                req,
            );
        }
        let tags = match super::memory::clean_tags(&c.tags, MAX_TAGS) {
            Ok(t) => t,
            Err(e) => return self.error(conn, codes::INVALID_ARGS, e, req),
        };
        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let row = TaskRow {
            id: new_id(),
            mesh_id: p.mesh_id.clone(),
            title: title.to_string(),
            assignee: assignee.map(str::to_string),
            priority: priority.to_string(),
            status: "open".into(),
            tags: serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
            created_by: p.member_id.clone(),
            created_by_name: p.display_name.clone(),
            created_at: now_ms(),
            ..TaskRow::default()
        };
        if let Err(e) = self.store.task_insert(&row) {
            return self.store_error(conn, &e, req);
        }
        let created = wire::TaskCreated {
            id: row.id.clone(),
            title: Some(row.title.clone()),
            req_id: c.req_id.clone(),
        };
        self.reply_durable(conn, created, Hub::durable_failure(req));
        let by = row.created_by_name.clone();
        self.task_event(Some(conn), "task_created", &row, Some(&by), json!({}));
    }

    pub(super) fn on_claim_task(&mut self, conn: ConnId, pk: PKey, c: wire::ClaimTask) {
        let req = c.req_id.as_deref();
        let Some((mesh, member, name)) = self.speaker(pk) else {
            return;
        };
        let Some(t) = self.task(conn, &mesh, &c.task_id, req) else {
            return;
        };
        if t.status != "open" {
            return self.error(conn, codes::TASK_NOT_CLAIMABLE, held(&t), req);
        }
        let at = now_ms();
        let until = self.task_now() + lease_ms(self.cfg.task_lease);
        match self.store.task_claim(&t.id, &member, &name, at, until) {
            Ok(true) => {}
            Ok(false) => return self.error(conn, codes::TASK_NOT_CLAIMABLE, held(&t), req),
            Err(e) => return self.store_error(conn, &e, req),
        }
        let claimed = TaskRow {
            status: "claimed".into(),
            claimed_by: Some(member),
            claimed_by_name: Some(name.clone()),
            claimed_at: Some(at),
            lease_until: Some(until),
            ..t
        };
        self.task_event(Some(conn), "task_claimed", &claimed, Some(&name), json!({}));
        self.task_changed(conn, claimed, c.req_id);
    }

    pub(super) fn on_complete_task(&mut self, conn: ConnId, pk: PKey, c: wire::CompleteTask) {
        let req = c.req_id.as_deref();
        let Some((mesh, member, name)) = self.speaker(pk) else {
            return;
        };
        let result = c.result.as_deref().map(str::trim).filter(|r| !r.is_empty());
        if result.is_some_and(|r| r.len() > MAX_RESULT) {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!("a task's result is at most {MAX_RESULT} bytes"),
                req,
            );
        }
        let Some(t) = self.task(conn, &mesh, &c.task_id, req) else {
            return;
        };
        // Done is final, and a claim is its holder's: anyone else completing it would do the work twice.
        let others = t.status == "claimed" && t.claimed_by.as_deref() != Some(member.as_str());
        if t.status == "done" || others {
            return self.error(conn, codes::TASK_NOT_CLAIMABLE, held(&t), req);
        }
        let at = now_ms();
        match self.store.task_complete(&t.id, result, at) {
            Ok(true) => {}
            Ok(false) => return self.error(conn, codes::TASK_NOT_CLAIMABLE, held(&t), req),
            Err(e) => return self.store_error(conn, &e, req),
        }
        let done = TaskRow {
            status: "done".into(),
            result: result.map(str::to_string),
            completed_at: Some(at),
            lease_until: None,
            claimed_by: t.claimed_by.clone().or(Some(member)),
            claimed_by_name: t.claimed_by_name.clone().or(Some(name.clone())),
            ..t
        };
        // `completedBy`: the name the creator's notification had before every session heard of every change.
        let extra = json!({"completedBy": name});
        self.task_event(Some(conn), "task_completed", &done, Some(&name), extra);
        self.task_changed(conn, done, c.req_id);
    }

    pub(super) fn on_release_task(&mut self, conn: ConnId, pk: PKey, r: wire::ReleaseTask) {
        let req = r.req_id.as_deref();
        let Some((mesh, member, name)) = self.speaker(pk) else {
            return;
        };
        let Some(t) = self.task(conn, &mesh, &r.task_id, req) else {
            return;
        };
        if t.status != "claimed" {
            return self.error(
                conn,
                codes::TASK_NOT_CLAIMABLE,
                format!("task {} is {}, not claimed", t.id, status_word(&t.status)),
                req,
            );
        }
        // The creator may take a task back from a claimer who stalled; nobody else may.
        if t.claimed_by.as_deref() != Some(member.as_str()) && t.created_by != member {
            return self.error(
                conn,
                codes::FORBIDDEN,
                format!(
                    "{}; only they or the task's creator may release it",
                    held(&t)
                ),
                req,
            );
        }
        match self.store.task_release(&t.id) {
            Ok(_) => {}
            Err(e) => return self.store_error(conn, &e, req),
        }
        let extra = json!({"reason": "released", "from": t.claimed_by_name});
        let open = reopened(t);
        self.task_event(Some(conn), "task_released", &open, Some(&name), extra);
        self.task_changed(conn, open, r.req_id);
    }

    pub(super) fn on_list_tasks(&mut self, conn: ConnId, pk: PKey, l: wire::ListTasks) {
        let req = l.req_id.as_deref();
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        // The REST view of the original counts `completed`; both spellings mean done.
        let status = match l.status.as_deref().map(str::trim) {
            None | Some("") | Some("all") => None,
            Some("open") => Some("open"),
            Some("claimed") => Some("claimed"),
            Some("done" | "completed") => Some("done"),
            Some(s) => {
                return self.error(
                    conn,
                    codes::INVALID_ARGS,
                    format!("a task's status is open, claimed or done, not {s:?}"),
                    req,
                );
            }
        };
        let assignee = l
            .assignee
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        let rows = match self.store.tasks_list(&mesh, status, assignee, LIST_LIMIT) {
            Ok(r) => r,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let list = wire::TaskList {
            tasks: rows.into_iter().map(to_wire).collect(),
            req_id: l.req_id,
        };
        self.reply(conn, list);
    }

    /// Tells the mesh's live sessions, but the connection that made it, of a change to task `t`: the task as
    /// `task_list` has it, who made the change (`by`), the creator's member id, and `extra`'s fields.
    fn task_event(
        &mut self,
        except: Option<ConnId>,
        event: &str,
        t: &TaskRow,
        by: Option<&str>,
        extra: Value,
    ) {
        let mut data = serde_json::to_value(to_wire(t.clone())).unwrap_or_else(|_| json!({}));
        if let (Some(d), Value::Object(extra)) = (data.as_object_mut(), extra) {
            d.insert("by".into(), by.into());
            d.insert("creatorMemberId".into(), t.created_by.clone().into());
            d.extend(extra);
        }
        self.announce_change(&t.mesh_id, except, event, data);
    }

    /// Moves on the leases of claims whose member has a live session, and opens the others again.
    pub(super) fn sweep_task_leases(&mut self) {
        let now = self.task_now();
        let due = match self.store.task_leases_due(now, SWEEP_BATCH) {
            Ok(d) => d,
            Err(e) => return log::error("reading task leases failed", &[("error", &e)]),
        };
        let until = now + lease_ms(self.cfg.task_lease);
        for t in due {
            let Some(member) = t.claimed_by.as_deref() else {
                continue;
            };
            let live = self
                .by_member
                .get(member)
                .into_iter()
                .flatten()
                .filter_map(|k| self.presences.get(k))
                .any(|p| p.conn.is_some());
            let done = if live {
                self.store.task_renew(&t.id, until)
            } else {
                log::info(
                    "task claim lapsed",
                    &[
                        ("task", &t.id),
                        ("claimed_by", &t.claimed_by_name.as_deref().unwrap_or("")),
                    ],
                );
                let released = self.store.task_release(&t.id).map(|_| ());
                if released.is_ok() {
                    let extra = json!({"reason": "lease_expired", "from": t.claimed_by_name});
                    self.task_event(None, "task_released", &reopened(t.clone()), None, extra);
                }
                released
            };
            if let Err(e) = done {
                log::error(
                    "moving a task lease failed",
                    &[("task", &t.id), ("error", &e)],
                );
            }
        }
    }

    /// The clock leases are measured on: the scheduler's, so the test clock moves it too.
    fn task_now(&self) -> i64 {
        self.sched_now()
    }
}

/// `t` given back: open, with no claim.
fn reopened(t: TaskRow) -> TaskRow {
    TaskRow {
        status: "open".into(),
        claimed_by: None,
        claimed_by_name: None,
        claimed_at: None,
        lease_until: None,
        ..t
    }
}

fn lease_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

fn status_word(s: &str) -> &str {
    if s == "done" { "completed" } else { s }
}
