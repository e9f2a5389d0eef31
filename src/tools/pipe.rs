//! `cm-pipe`: a long-lived session with JSON Lines commands on stdin and events on stdout.

use crate::cli::{Args, Example, Tool};
use crate::client::Ctx;
use crate::error::Result;
use crate::out::Out;

/// `cm-pipe`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-pipe",
    about: "a mesh session driven by JSON Lines on stdin and stdout",
    description: "cm-pipe holds one connection to the mesh for as long as its input lasts, so a script or another \
program can take part in the mesh. Each line of standard input is a command, a JSON object with \"cmd\" and an \
optional \"id\" that comes back on its answer. Each line of standard output is an event. Output is always JSON \
Lines.

Commands: {\"cmd\":\"send\", \"to\", \"text\", \"priority\", \"reply_to\", \"client_id\"} (to is a name, key, key \
prefix, * or @group, as for cm-send; answered with a send_result once the broker has stored it; client_id sends \
again, stored once, a message whose outcome was unknown); {\"cmd\":\"peers\", \"all\"}; \
{\"cmd\":\"members\"}; {\"cmd\":\"status\", \"status\":\"idle|working|dnd\"}; {\"cmd\":\"summary\", \
\"summary\"}; {\"cmd\":\"join_group\", \"group\", \"role\"}; {\"cmd\":\"leave_group\", \"group\"}; \
{\"cmd\":\"ping\"}.

Events: {\"type\":\"message\", ...} as cm-inbox --json prints them (marked read once the line is written); \
{\"type\":\"send_result\", \"status\":\"sent|queued|failed|unknown\", \"recipient_online\", \"message_id\", \"to\", \
\"id\"}; {\"type\":\"peers\", \"peers\":[...]}; {\"type\":\"members\", \"members\":[...]}; \
{\"type\":\"peer_joined\"|\"peer_left\", \"name\", \"pubkey\"}; {\"type\":\"connection\", \
\"state\":\"connected|disconnected\", \"retry_in_ms\"}; {\"type\":\"ok\", \"cmd\"}; {\"type\":\"pong\"}; \
{\"type\":\"system\", \"event\", \"data\"} for other broker events: every change to the mesh's tasks \
(task_created, task_claimed, task_completed, task_released, with the task in data; see cm-task(1)) and each \
context shared (context_shared; see cm-context(1)); {\"type\":\"error\", \"message\", \"code\", \"id\"}. A bad \
line gets an error event and the pipe carries on.

When the broker goes away, cm-pipe reconnects (after about 1, 2, 4, 8, 16, then every 30 seconds at most, \
each step spread at random so sessions do not all come back at once); sends made meanwhile \
are delivered after the reconnect, and the status, summary and groups set through the pipe are set again. At the \
end of its input it waits up to 5 seconds for the broker to confirm outstanding sends, closes the connection and \
exits 0. A send still unconfirmed then gets a send_result of its own: unknown (it went out; the broker may have \
stored it; exit 9) or failed (no connection came up; exit 4). SIGTERM and SIGHUP end it the same way, so \
peers see it leave at once; Ctrl-C does too and exits 130.

cm-pipe joins as a session of its own for as long as it runs (messages to your member key reach it too); inside a session started by cm launch it does not take that session's key, which cm-mcp holds.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "echo '{\"cmd\":\"send\",\"to\":\"bob\",\"text\":\"hi\",\"id\":1}' | cm-pipe",
            what: "Send one message and print its result.",
        },
        Example {
            cmd: "tail -f commands.jsonl | cm-pipe | jq -c 'select(.type == \"message\")'",
            what: "Keep a session open and pick out the messages it receives.",
        },
    ],
    env: &[
        ("CLAUDEMESH_MESH", "The mesh to use when --mesh is not given."),
        (
            "CLAUDEMESH_SESSION_ID",
            "Inside a session started by cm launch: speak as that session.",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let input = std::io::BufReader::new(std::io::stdin());
    crate::messaging::pipe::run(&ctx, input, out)
}
