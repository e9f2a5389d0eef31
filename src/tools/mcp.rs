//! `cm-mcp`: the MCP server Claude Code starts; the server itself is [`crate::mcp`].

use std::io::BufReader;

use crate::cli::{Args, Complete, Example, Flag, Tool, flag};
use crate::error::Result;
use crate::mcp::{self, Log, Opts};
use crate::out::Out;

const LOG: Flag = flag(
    "log",
    "append routine log lines to FILE (else they go nowhere)",
)
.value("FILE")
.complete(Complete::File);
const PEER_EVENTS: Flag = flag(
    "peer-events",
    "push peers joining and leaving as [system] notifications",
);
const TASK_EVENTS: Flag = flag(
    "task-events",
    "push every change to the mesh's tasks as [system] notifications",
);

/// `cm-mcp`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-mcp",
    about: "the MCP server that pushes mesh messages into Claude Code",
    description: "cm-mcp is the MCP server that Claude Code starts (cm install registers it as mcpServers.claudemesh \
in Claude Code's .claude.json). It speaks MCP over stdio: JSON-RPC 2.0, one message per line, nothing but MCP on \
stdout. Claude Code records every stderr line as an error, so stderr carries only what is wrong (no mesh, a session \
that cannot start or has ended); routine lines go to FILE with --log, else nowhere. A second initialize is answered \
with an error.

It declares the claude/channel capability and holds a session on the mesh (shown as a peer), and turns each \
message that arrives into a notifications/claude/channel notification, which Claude Code shows to Claude as a \
<channel source=\"claudemesh\"> tag. The notification's meta carries kind, from_name, from_pubkey (the key to \
reply to), from_member_pubkey, from_session_pubkey, mesh_slug, message_id, priority, and topic, reply_to_id and \
subtype when set, all strings. Peers joining and leaving are not pushed, as each push starts a turn in a live \
session; with --peer-events they come as [system] notifications with kind system. Of the mesh's tasks it tells \
Claude, as [system] notifications, when a task this member created is completed and when one is created for it \
(its assignee is this session's name); with --task-events, of every other change too (claimed, completed, \
released, a claim lapsed), except those this session's name made. Its initialize answer gives Claude instructions on reading and answering mesh messages with the cm-* commands; it has \
no MCP tools. When the mesh was made from a template (cm new --template, which records it in the mesh.template \
state key), the instructions end with that template's working hint, as cm templates NAME shows it: the text \
comes from cm-mcp itself, never from the mesh, so no member can write into Claude's instructions. The key is \
read as the member when cm-mcp starts; initialize waits for it 2 seconds at most.

A push never marks a message read: Claude Code does not acknowledge channel notifications and drops them when \
channels are off, so each message stays unread until cm-inbox or the prompt hook (cm-inbox --hook) reads it. The \
hook marks read without showing again each message whose id is already in Claude's context (in the prompt of the \
turn the push started, or in the session's transcript), and hands over the others: each message enters Claude's \
context once, and a dropped push loses nothing.

Health checks leave no trace: claude mcp list, claude mcp get, claude doctor and every claude start run each MCP \
server only to initialize it and list its tools. So cm-mcp joins the mesh only once the client has stayed connected \
for 2 seconds after initializing, and never when its parent is claude mcp or claude doctor; until then it makes no \
connection and writes no file, and messages wait on the broker.

The session is the one cm launch set up: CLAUDEMESH_SESSION_ID names it, else CLAUDE_CODE_SESSION_ID (which Claude \
Code gives its MCP servers: its own session id, the same after --resume), else each cm-mcp is a session of its own. \
Its key is kept in the config directory, and the mesh is --mesh, else CLAUDEMESH_MESH, else the default joined mesh. \
With no mesh joined or no broker reachable it still answers Claude Code, says why on stderr, and keeps trying.

It exits with status 0 when stdin ends, when stdout is closed, when its parent goes away, and on SIGTERM or \
SIGHUP, closing its session first; on Ctrl-C (SIGINT) it closes it too and exits 130.",
    section: 1,
    args: &[],
    flags: &[LOG, PEER_EVENTS, TASK_EVENTS],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "claude mcp add --scope user claudemesh -- cm-mcp",
            what: "Register it by hand (cm install does this).",
        },
        Example {
            cmd: "cm-mcp --log /tmp/cm-mcp.log",
            what: "Run it with its log in a file.",
        },
    ],
    env: &[
        ("CLAUDEMESH_MESH", "The mesh to use when --mesh is not given."),
        (
            "CLAUDEMESH_SESSION_ID",
            "The session to be (set by cm launch).",
        ),
        (
            "CLAUDE_CODE_SESSION_ID",
            "Claude Code's session id, set for its MCP servers: the session to be without CLAUDEMESH_SESSION_ID.",
        ),
        (
            "CLAUDEMESH_DISPLAY_NAME",
            "The name peers see, instead of the config's displayName.",
        ),
    ],
};

pub fn run(args: &Args, _out: &mut Out) -> Result<()> {
    let log = match args.value(&LOG) {
        Some(path) => Log::file(std::path::Path::new(path))?,
        None => Log::none(),
    };
    let opts = Opts {
        mesh: args.mesh.clone(),
        log,
        signals: true,
        peer_events: args.has(&PEER_EVENTS),
        task_events: args.has(&TASK_EVENTS),
    };
    mcp::run(opts, BufReader::new(std::io::stdin()), std::io::stdout())
}
