//! `cm-task`: the mesh's tasks: create one, claim it (one member wins), complete or release it, list them, and
//! watch them change.

use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::Result;
use crate::out::{self, Out, short_id};
use crate::services::tasks::{self, NewTask, Task, TaskEvent};
use crate::time::{fmt_ago, now_ms, parse_rfc3339};

const ASSIGNEE: Flag = flag(
    "assignee",
    "for this member (create), or tasks of this member (list)",
)
.short('a')
.value("NAME")
.complete(Complete::Peer);
const PRIORITY: Flag = flag("priority", "low, normal (the default), high or urgent")
    .short('p')
    .value("PRIORITY")
    .complete(Complete::Values(&["low", "normal", "high", "urgent"]));
const TAG: Flag = flag("tag", "a tag for the task (repeat for more)")
    .short('t')
    .value("TAG")
    .repeat();
const STATUS: Flag = flag("status", "only tasks that are open, claimed or completed")
    .short('s')
    .value("STATUS")
    .complete(Complete::Values(&["open", "claimed", "completed"]));

/// `cm-task`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-task",
    about: "create, claim, complete, release, list and watch the mesh's tasks",
    description: "cm-task hands out work in a mesh. cm-task create TITLE makes an open task (with --assignee for \
whom it is meant, --priority and --tag) and prints its id. cm-task claim ID takes it: of any number of members \
claiming one task at once, exactly one gets it; the others exit with status 11 (a conflict) and are told who \
holds it. ID may be the start of the id (8 characters are enough); no task by that id exits with status 5.

cm-task complete ID [RESULT...] marks the task completed, with what came of it; the task's creator gets a \
task_completed event in every session it has running (cm-pipe prints it as {\"type\":\"system\", \"event\": \
\"task_completed\", ...}). Only the member holding a claim may complete it; an open task may be completed by \
anyone. cm-task release ID gives a claimed task back to open, for its holder or its creator (anyone else exits with \
status 7).

A claim lasts while a session of the member holding it is connected (cm-mcp or cm-pipe). Once none has been \
for the broker's task lease (10 minutes unless cm-broker --task-lease says otherwise), the task is open again, so \
work held by a session that went away is picked up by another.

cm-task list prints the newest 100 tasks, with --status open, claimed or completed, and --assignee NAME for the \
tasks meant for or claimed by NAME. With --json every line is one JSON object: {\"type\":\"task\", \"id\", \
\"title\", \"status\", \"priority\", \"assignee\", \"claimed_by\", \"created_by\", \"tags\", \"created_at\", \
\"claimed_at\", \"completed_at\", \"result\"}; create prints {\"type\":\"task_created\", \"id\", \"title\"}.

cm-task watch prints every change to the mesh's tasks as it happens, until it is stopped: a task created, \
claimed, completed or released, by whom, and a claim that lapsed. With --json each is one line: \
{\"type\":\"task_event\", \"event\": \"created\"|\"claimed\"|\"completed\"|\"released\", \"by\", \
\"reason\": \"released\"|\"lease_expired\" (for released), \"from\" (the claimer a release ended), \"task\": \
{the task as list prints it}}. The watch is a session of the mesh while it runs; a lost connection is made \
again, and changes made meanwhile are not replayed (cm-task list has them). cm-pipe prints the same events as \
{\"type\":\"system\", \"event\":\"task_claimed\", \"data\":{...}}. An original claudemesh broker sends no task \
events: watch exits with status 12.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "create",
            aliases: &["add", "new"],
            about: "create an open task",
            args: &[pos("TITLE").many()],
            flags: &[ASSIGNEE, PRIORITY, TAG],
        },
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "list the mesh's tasks, newest first",
            args: &[],
            flags: &[STATUS, ASSIGNEE],
        },
        Sub {
            name: "claim",
            aliases: &["take"],
            about: "claim an open task; one claimer wins",
            args: &[pos("ID")],
            flags: &[],
        },
        Sub {
            name: "complete",
            aliases: &["done"],
            about: "mark a task completed and tell its creator",
            args: &[pos("ID"), pos("RESULT").optional().many()],
            flags: &[],
        },
        Sub {
            name: "release",
            aliases: &["unclaim"],
            about: "give a claimed task back to open",
            args: &[pos("ID")],
            flags: &[],
        },
        Sub {
            name: "watch",
            aliases: &["follow"],
            about: "print every change to the mesh's tasks as it happens",
            args: &[],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-task create 'fix the flaky login test' --priority high --tag ci",
            what: "A task anyone may claim.",
        },
        Example {
            cmd: "cm-task list --status open",
            what: "What is waiting for someone.",
        },
        Example {
            cmd: "cm-task claim 3f2a9c1e && echo mine",
            what: "Take it; status 11 if someone was quicker.",
        },
        Example {
            cmd: "cm-task complete 3f2a9c1e 'fixed in a4c1d2e'",
            what: "Done, and the creator is told.",
        },
        Example {
            cmd: "cm-task list --assignee alice --json | jq -r .title",
            what: "Alice's tasks, titles only.",
        },
        Example {
            cmd: "cm-task watch --json | jq -r 'select(.event == \"completed\") | .task.title'",
            what: "The title of each task as it is completed.",
        },
    ],
    env: &[
        (
            "CLAUDEMESH_MESH",
            "The mesh to use when --mesh is not given.",
        ),
        (
            "CLAUDEMESH_SESSION_ID",
            "Set by cm launch: speak as that session.",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let id = || args.pos(0).unwrap_or_default();
    match args.sub {
        Some("create") => {
            let title = args.positionals.join(" ");
            let new = NewTask {
                assignee: args.value(&ASSIGNEE),
                priority: args.value(&PRIORITY),
                tags: args.values(&TAG),
            };
            let id = tasks::create(&ctx, &title, &new)?;
            if out.json {
                return out.json(
                    &serde_json::json!({"type": "task_created", "id": id, "title": title.trim()}),
                );
            }
            out.line(format!("created task {}  {}", short_id(&id), title.trim()))
        }
        Some("claim") => {
            let t = tasks::claim(&ctx, id())?;
            changed(out, &t, "claimed")
        }
        Some("complete") => {
            let result = args.positionals.get(1..).map(|r| r.join(" "));
            let result = result.as_deref().filter(|r| !r.trim().is_empty());
            let t = tasks::complete(&ctx, id(), result)?;
            changed(out, &t, "completed")
        }
        Some("release") => {
            let t = tasks::release(&ctx, id())?;
            changed(out, &t, "released")
        }
        Some("watch") => tasks::watch(&ctx, |e| event(out, e), |note| out::warn(TOOL.name, note)),
        _ => {
            let found = tasks::list(&ctx, args.value(&STATUS), args.value(&ASSIGNEE))?;
            list(&ctx, out, &found)
        }
    }
}

fn changed(out: &mut Out, t: &Task, what: &str) -> Result<()> {
    if out.json {
        return out.json(t);
    }
    out.line(format!("{what} task {}  {}", short_id(&t.id), t.title))
}

/// One event: a JSON line, or `claimed    3f2a9c1e  fix the login test  by bob`.
fn event(out: &mut Out, e: &TaskEvent) -> Result<()> {
    if out.json {
        out.json(e)?;
        return out.flush();
    }
    let who = match (&e.by, e.reason.as_deref()) {
        (_, Some("lease_expired")) => format!(
            "  (the claim of {} lapsed)",
            e.from.as_deref().unwrap_or("a member")
        ),
        (Some(by), _) => format!("  by {by}"),
        (None, _) => String::new(),
    };
    out.line(format!(
        "{:9}  {}  {}{who}",
        e.event,
        short_id(&e.task.id),
        e.task.title
    ))?;
    out.flush()
}

fn list(ctx: &Ctx, out: &mut Out, found: &[Task]) -> Result<()> {
    if out.json {
        for t in found {
            out.json(t)?;
        }
        return Ok(());
    }
    if found.is_empty() {
        return out.line(format!("no tasks in mesh {}", ctx.mesh.slug));
    }
    let who = |t: &Task| {
        t.claimed_by
            .clone()
            .or_else(|| t.assignee.as_ref().map(|a| format!("({a})")))
            .unwrap_or_else(|| "-".into())
    };
    let ww = found
        .iter()
        .map(|t| who(t).chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    let now = now_ms();
    out.line(format!(
        "{:8}  {:9}  {:6}  {:ww$}  {:8}  TITLE",
        "ID", "STATUS", "PRIO", "WHO", "AGE"
    ))?;
    for t in found {
        let age = parse_rfc3339(&t.created_at).map_or_else(|_| "?".into(), |c| fmt_ago(now - c));
        let tags: String = t.tags.iter().map(|g| format!(" #{g}")).collect();
        let result = t
            .result
            .as_deref()
            .map(|r| format!("  → {}", r.replace('\n', " ")))
            .unwrap_or_default();
        out.line(format!(
            "{:8}  {:9}  {:6}  {:ww$}  {:8}  {}{tags}{result}",
            short_id(&t.id),
            t.status,
            t.priority,
            who(t),
            age,
            t.title
        ))?;
    }
    Ok(())
}
