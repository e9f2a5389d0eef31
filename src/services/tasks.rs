//! Tasks: work a mesh hands out. Anyone creates one; exactly one member claims it; its holder completes or
//! releases it, and the creator hears when it is done.
//!
//! The broker speaks the original's `done`; people and `--status` say `completed`, so this module shows a done
//! task as `completed` and accepts either word.

use serde::Serialize;

use crate::client::Ctx;
use crate::client::{ask_once as ask, unexpected};
use crate::error::{Error, Result};
use crate::wire::{self, Frame};

/// A task as a tool prints it (JSON Lines: `{"type":"task",...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub r#type: &'static str,
    pub id: String,
    pub title: String,
    /// `open`, `claimed` or `completed`.
    pub status: String,
    pub priority: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    pub created_by: String,
    pub tags: Vec<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// What a new task needs besides its title.
#[derive(Debug, Clone, Default)]
pub struct NewTask<'a> {
    pub assignee: Option<&'a str>,
    pub priority: Option<&'a str>,
    pub tags: Vec<&'a str>,
}

/// The wire's status for a word a person typed: `completed` is `done`.
pub fn wire_status(s: &str) -> Result<&'static str> {
    match s {
        "open" => Ok("open"),
        "claimed" => Ok("claimed"),
        "completed" | "done" => Ok("done"),
        _ => Err(Error::usage(format!(
            "--status: expected open, claimed or completed, got {s:?}"
        ))),
    }
}

fn task(t: wire::Task) -> Task {
    Task {
        r#type: "task",
        status: if t.status == "done" {
            "completed".into()
        } else {
            t.status
        },
        id: t.id,
        title: t.title,
        priority: t.priority,
        assignee: t.assignee,
        claimed_by: t.claimed_by,
        created_by: t.created_by,
        tags: t.tags,
        created_at: t.created_at,
        claimed_at: t.claimed_at,
        completed_at: t.completed_at,
        result: t.result,
    }
}

/// The one task a change answers with.
fn changed(what: &str, f: Frame) -> Result<Task> {
    match f {
        Frame::TaskList(mut l) if l.tasks.len() == 1 => Ok(task(l.tasks.remove(0))),
        f => Err(unexpected(what, &f)),
    }
}

/// Creates a task; its id.
pub fn create(ctx: &Ctx, title: &str, new: &NewTask) -> Result<String> {
    if title.trim().is_empty() {
        return Err(Error::usage("a task needs a title"));
    }
    let c = wire::CreateTask {
        title: title.to_string(),
        assignee: new.assignee.map(str::to_string),
        priority: new.priority.map(str::to_string),
        tags: new.tags.iter().map(|t| t.to_string()).collect(),
        ..wire::CreateTask::default()
    };
    match ask(ctx, c)? {
        Frame::TaskCreated(t) => Ok(t.id),
        f => Err(unexpected("create_task", &f)),
    }
}

/// Claims an open task (by its id or the start of it); a Conflict when someone holds it or it is done.
pub fn claim(ctx: &Ctx, id: &str) -> Result<Task> {
    let c = wire::ClaimTask {
        task_id: id.to_string(),
        ..wire::ClaimTask::default()
    };
    changed("claim_task", ask(ctx, c)?)
}

/// Completes a task, open or claimed by this member, with what came of it.
pub fn complete(ctx: &Ctx, id: &str, result: Option<&str>) -> Result<Task> {
    let c = wire::CompleteTask {
        task_id: id.to_string(),
        result: result.map(str::to_string),
        ..wire::CompleteTask::default()
    };
    changed("complete_task", ask(ctx, c)?)
}

/// Gives a claimed task back to open (its holder or its creator).
pub fn release(ctx: &Ctx, id: &str) -> Result<Task> {
    let r = wire::ReleaseTask {
        task_id: id.to_string(),
        ..wire::ReleaseTask::default()
    };
    changed("release_task", ask(ctx, r)?)
}

/// The mesh's tasks, newest first (at most 100), of one status and one assignee or claimer when given.
pub fn list(ctx: &Ctx, status: Option<&str>, assignee: Option<&str>) -> Result<Vec<Task>> {
    let l = wire::ListTasks {
        status: status.map(wire_status).transpose()?.map(str::to_string),
        assignee: assignee.map(str::to_string),
        ..wire::ListTasks::default()
    };
    match ask(ctx, l)? {
        Frame::TaskList(l) => Ok(l.tasks.into_iter().map(task).collect()),
        f => Err(unexpected("list_tasks", &f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_wire_s_or_completed() {
        assert_eq!(wire_status("open").ok(), Some("open"));
        assert_eq!(wire_status("completed").ok(), Some("done"));
        assert_eq!(wire_status("done").ok(), Some("done"));
        let e = wire_status("closed").err().map(|e| e.code);
        assert_eq!(e, Some(crate::error::Code::Usage));
    }
}
