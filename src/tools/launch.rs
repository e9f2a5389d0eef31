//! `cm-launch`: starts Claude Code as a session on the mesh.
//!
//! The session id is Claude Code's own (`--session-id`, or the one `--resume` names), and `cm-mcp` (started by
//! Claude Code) and the `cm-*` commands Claude runs find it in `CLAUDEMESH_SESSION_ID`, so they all act as one mesh
//! session with one session key.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Command;

use serde_json::json;

use crate::cli::{Args, Example, Flag, Tool, flag, pos};
use crate::config::{Config, Paths, SessionKey};
use crate::error::{Error, Result};
use crate::install;
use crate::launch::{self, SessionStart};
use crate::out::{self, Out};

const NAME: Flag = flag(
    "name",
    "the display name on the mesh (default: your name in the mesh, then the config's displayName, $USER, the host \
     name)",
)
.value("NAME");
const RESUME: Flag = flag(
    "resume",
    "resume the conversation with this session id (a UUID)",
)
.value("ID");
const CONTINUE: Flag = flag("continue", "continue the newest conversation").short('c');
const PRINT_COMMAND: Flag = flag(
    "print-command",
    "print the command and environment as JSON instead of running claude",
);

/// The flag table.
pub static TOOL: Tool = Tool {
    name: "cm-launch",
    about: "start Claude Code as a session on the mesh",
    description: "Runs claude with the claudemesh channel enabled (--dangerously-load-development-channels \
        server:claudemesh) and a session id, in place of this process, so signals and the exit status are Claude's. \
        Arguments after -- are passed to claude unchanged.\n\n\
        A new conversation gets a fresh random session id (--session-id). --resume ID resumes that conversation and \
        uses ID as the mesh session's id too, so the session keeps its key and its queued messages; --continue \
        continues the newest conversation with a fresh mesh session id.\n\n\
        claude gets CLAUDEMESH_CONFIG_DIR, CLAUDEMESH_MESH, CLAUDEMESH_SESSION_ID and CLAUDEMESH_DISPLAY_NAME in its \
        environment, so cm-mcp and the cm-* commands Claude runs act as this session. The session key is created \
        before claude starts. Run cm-install once first so Claude Code knows the claudemesh MCP server.\n\n\
        What to expect: Claude Code asks on every launch whether to load the development channel claudemesh; \
        accept it, or messages arrive only through the prompt hook. Channels need a claude.ai login or a Console API \
        key and Claude Code 2.1.80 or later, and an organization may turn them off. claude -p (print mode) does not \
        read the channel flag at all: such a session gets no pushes, and cm-launch says so; the prompt hook still \
        hands it unread messages with each prompt.",
    section: 1,
    args: &[pos("CLAUDE_ARGS").optional().many()],
    flags: &[NAME, RESUME, CONTINUE, PRINT_COMMAND],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-launch --name alice",
            what: "start a new session as alice",
        },
        Example {
            cmd: "cm-launch --resume 0b7e5a4c-7d1e-4c4e-9a51-3f0c2d9e8b17",
            what: "resume a conversation as the same mesh session",
        },
        Example {
            cmd: "cm-launch --mesh dev -- --model opus",
            what: "start on the mesh dev and pass --model opus to claude",
        },
    ],
    env: &[
        (
            "CLAUDE_BIN",
            "the claude binary to run (default: claude on PATH)",
        ),
        (
            "USER",
            "the display name when neither --name nor the config gives one",
        ),
    ],
};

/// Starts `claude` in place of this process (returns only on error), or prints the command with `--print-command`.
/// `cm` with no arguments calls this with default [`Args`] when a mesh is joined.
pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let start = match (args.value(&RESUME), args.has(&CONTINUE)) {
        (Some(_), true) => {
            return Err(Error::usage(
                "--resume and --continue cannot be used together",
            ));
        }
        (Some(id), false) if launch::is_uuid(id) => SessionStart::Resume(id.to_ascii_lowercase()),
        (Some(id), false) => {
            return Err(Error::usage(format!(
                "--resume takes a session id (a UUID), not {id:?}"
            )));
        }
        (None, true) => SessionStart::Continue(launch::new_uuid()),
        (None, false) => SessionStart::New(launch::new_uuid()),
    };
    let paths = Paths::resolve()?;
    let config = Config::load(&paths)?;
    let mesh = config.mesh(args.mesh.as_deref())?;
    let name = args
        .value(&NAME)
        .map(str::to_string)
        .or_else(|| crate::mesh::entry_name(mesh).map(str::to_string))
        .or_else(|| config.display_name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(hostname)
        .unwrap_or_else(|| "claude".into());
    let dir = std::path::absolute(&paths.dir).map_err(Error::from)?;
    let env = BTreeMap::from([
        ("CLAUDEMESH_CONFIG_DIR", dir.display().to_string()),
        ("CLAUDEMESH_DISPLAY_NAME", name),
        ("CLAUDEMESH_MESH", mesh.slug.clone()),
        ("CLAUDEMESH_SESSION_ID", start.id().to_string()),
    ]);
    let claude_bin = launch::find_claude();

    if args.has(&PRINT_COMMAND) {
        let bin = claude_bin.map_or_else(|_| "claude".into(), |p| p.display().to_string());
        let argv = launch::launch_argv(&bin, &start, &args.positionals);
        return out.json(&json!({"type": "launch", "argv": argv, "env": env}));
    }

    let bin = claude_bin?.display().to_string();
    let argv = launch::launch_argv(&bin, &start, &args.positionals);
    SessionKey::load_or_create(&paths, &mesh.slug, start.id())?;
    if launch::prints(&args.positionals) {
        out::warn(
            TOOL.name,
            "claude -p does not read --dangerously-load-development-channels: this session gets no channel \
             pushes; the prompt hook still hands it unread messages with each prompt",
        );
    }
    // A hint only: without a HOME there is nothing to look at, and claude will say more.
    if let Ok(file) = install::claude_json()
        && !install::registered(&file)
    {
        out::warn(
            TOOL.name,
            format!(
                "Claude Code does not know the claudemesh MCP server yet ({} has no mcpServers.claudemesh): \
                 run cm-install first",
                file.display()
            ),
        );
    }
    let err = Command::new(&argv[0]).args(&argv[1..]).envs(&env).exec();
    Err(Error::generic(format!(
        "running {bin}: {}",
        crate::error::io_message(&err)
    )))
}

/// The host name, if it has one.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec())
        .ok()
        .filter(|h| !h.is_empty())
}
