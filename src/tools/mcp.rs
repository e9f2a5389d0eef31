//! `cm-mcp`: the MCP server Claude Code starts; the server itself is [`crate::mcp`].

use std::io::BufReader;

use crate::cli::{Args, Complete, Example, Flag, Tool, flag};
use crate::error::Result;
use crate::mcp::{self, Log, Opts};
use crate::out::Out;

const LOG: Flag = flag("log", "append log lines to FILE instead of stderr")
    .value("FILE")
    .complete(Complete::File);

/// `cm-mcp`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-mcp",
    about: "the MCP server that pushes mesh messages into Claude Code",
    description: "cm-mcp is the MCP server that Claude Code starts (cm install registers it as mcpServers.claudemesh \
in ~/.claude.json). It speaks MCP over stdio: JSON-RPC 2.0, one message per line, nothing but MCP on stdout; its \
log goes to stderr, or to FILE with --log.

It declares the claude/channel capability and holds a session on the mesh (shown as a peer), and turns each \
message that arrives into a notifications/claude/channel notification, which Claude Code shows to Claude as a \
<channel source=\"claudemesh\"> tag. The notification's meta carries kind, from_name, from_pubkey (the key to \
reply to), from_member_pubkey, from_session_pubkey, mesh_slug, message_id, priority, and topic, reply_to_id and \
subtype when set, all strings. Peers joining and leaving come as [system] notifications with kind system. Its \
initialize answer gives Claude instructions on reading and answering mesh messages with the cm-* commands; it has \
no MCP tools.

A push never marks a message read: Claude Code does not acknowledge channel notifications and drops them when \
channels are off, so each message stays unread until cm-inbox or the prompt hook (cm-inbox --hook) reads it, and \
the hook shows it once. Claude sees a pushed message a second time there, with the same message id.

The session is the one cm launch set up: CLAUDEMESH_SESSION_ID names it (else each cm-mcp is a session of its \
own), its key is kept in the config directory, and the mesh is --mesh, else CLAUDEMESH_MESH, else the default \
joined mesh. With no mesh joined or no broker reachable it still answers Claude Code, logs why, and keeps trying.

It exits with status 0 when stdin ends, when stdout is closed, when its parent goes away, and on SIGTERM, SIGINT \
or SIGHUP, closing its session first.",
    section: 1,
    args: &[],
    flags: &[LOG],
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
            "The session to be (set by cm launch); without it each cm-mcp is a new session.",
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
        None => Log::stderr(),
    };
    let opts = Opts {
        mesh: args.mesh.clone(),
        log,
        signals: true,
    };
    mcp::run(opts, BufReader::new(std::io::stdin()), std::io::stdout())
}
