//! Tasks: work a mesh hands out. Anyone creates one; exactly one member claims it; its holder completes or
//! releases it, and the creator hears when it is done.
//!
//! The broker speaks the original's `done`; people and `--status` say `completed`, so this module shows a done
//! task as `completed` and accepts either word.
//!
//! [`watch`] follows the broker's task events (the `task_events` feature): every task created, claimed,
//! completed or released, and every claim that lapsed, as it happens.

use serde::Serialize;
use serde_json::Value;

use crate::client::{ConnOpts, Ctx, Event, Feature, Features, Session, SessionAuth, SessionOpts};
use crate::client::{ask_once as ask, unexpected};
use crate::crypto::Keypair;
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

/// A change to a task as a tool prints it (JSON Lines: `{"type":"task_event",...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskEvent {
    pub r#type: &'static str,
    /// `created`, `claimed`, `completed` or `released`.
    pub event: String,
    /// Who made the change; `None` for a claim that lapsed.
    pub by: Option<String>,
    /// Why a task was released: `released` (by its holder or creator) or `lease_expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who held the claim a release ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The task as it now is.
    pub task: Task,
}

impl TaskEvent {
    /// The task event a broker's system event is, if it is one (`task_claimed` and its kin).
    pub fn of(event: &str, data: &Value) -> Option<TaskEvent> {
        let what = event.strip_prefix("task_")?;
        if !matches!(what, "created" | "claimed" | "completed" | "released") {
            return None;
        }
        let t: wire::Task = serde_json::from_value(data.clone()).ok()?;
        if t.id.is_empty() {
            return None;
        }
        let text = |k: &str| {
            data[k]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Some(TaskEvent {
            r#type: "task_event",
            event: what.to_string(),
            by: text("by"),
            reason: text("reason"),
            from: text("from"),
            task: task(t),
        })
    }
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

/// Calls `each` with every task event of the mesh from the time it is connected, until `each` fails or the
/// session ends for good. A lost connection is made again; events meanwhile are not replayed. A broker without
/// task events (an original one) is refused at once, with exit status 12.
pub fn watch(
    ctx: &Ctx,
    mut each: impl FnMut(&TaskEvent) -> Result<()>,
    mut note: impl FnMut(&str),
) -> Result<()> {
    // A session of its own, pushed to, as cm-topic tail's: the broker sends task events to live sessions. It
    // never acknowledges a message, so whatever reaches it stays for the inbox.
    let opts = SessionOpts {
        conn: ConnOpts {
            session: Some(SessionAuth {
                session: Keypair::generate(),
            }),
            pull: false,
            channel: "cm-task-watch".into(),
            ..ctx.conn_opts()
        },
        first_connect_required: true,
        ..SessionOpts::default()
    };
    let session = Session::start(&ctx.mesh, opts)?;
    let result = follow(&session, &mut each, &mut note);
    session.close();
    result
}

fn follow(
    session: &Session,
    each: &mut impl FnMut(&TaskEvent) -> Result<()>,
    note: &mut impl FnMut(&str),
) -> Result<()> {
    let features = session.features();
    if !features.has(Feature::TaskEvents) {
        return Err(features.lacks(Feature::TaskEvents, "cm-task watch"));
    }
    for ev in session.events().iter() {
        match ev {
            Event::System { event, data } => {
                if let Some(e) = TaskEvent::of(&event, &data) {
                    each(&e)?;
                }
            }
            Event::Connected { hello_ack }
                if !Features::of(&hello_ack).has(Feature::TaskEvents) =>
            {
                return Err(Features::of(&hello_ack).lacks(Feature::TaskEvents, "cm-task watch"));
            }
            Event::Disconnected { reason, retry_in } => match retry_in {
                Some(d) => note(&format!(
                    "connection lost ({reason}); trying again in {} s",
                    d.as_secs()
                )),
                None => note(&format!("connection lost ({reason})")),
            },
            Event::Closed => break,
            _ => {}
        }
    }
    Err(Error::network("the connection to the broker ended"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_event_is_read_from_its_system_event() {
        let data = serde_json::json!({"id": "T1", "title": "fix it", "status": "done", "priority": "high",
            "createdBy": "alice", "tags": [], "createdAt": "2026-01-01T00:00:00.000Z", "by": "bob",
            "completedBy": "bob", "creatorMemberId": "M1"});
        let e = TaskEvent::of("task_completed", &data).unwrap();
        assert_eq!(
            (e.event.as_str(), e.by.as_deref()),
            ("completed", Some("bob"))
        );
        assert_eq!((e.task.status.as_str(), e.reason), ("completed", None));
        assert!(TaskEvent::of("peer_joined", &data).is_none());
        assert!(TaskEvent::of("task_exploded", &data).is_none());
        assert!(TaskEvent::of("task_claimed", &serde_json::json!({})).is_none());
    }

    #[test]
    fn statuses_are_the_wire_s_or_completed() {
        assert_eq!(wire_status("open").ok(), Some("open"));
        assert_eq!(wire_status("completed").ok(), Some("done"));
        assert_eq!(wire_status("done").ok(), Some("done"));
        let e = wire_status("closed").err().map(|e| e.code);
        assert_eq!(e, Some(crate::error::Code::Usage));
    }
}
