//! `cm-install`: registers claudemesh with Claude Code: the `cm-mcp` server, the prompt hooks and the skill.

use crate::cli::{Args, Example, Flag, Tool, flag};
use crate::config::Paths;
use crate::error::Result;
use crate::install::{self, InstallOpts, Layout, Wanted};
use crate::out::Out;

const DRY_RUN: Flag = flag("dry-run", "print what would change, and change nothing").short('n');
const NO_HOOKS: Flag = flag("no-hooks", "leave Claude Code's settings.json alone");
const NO_SKILL: Flag = flag("no-skill", "do not install the skill");

/// The flag table.
pub static TOOL: Tool = Tool {
    name: "cm-install",
    about: "register claudemesh with Claude Code: MCP server, hooks and skill",
    description: "Adds to Claude Code's user configuration what it needs to be a mesh session: the MCP server \
        mcpServers.claudemesh in .claude.json ({\"type\":\"stdio\"} running cm-mcp), hooks in settings.json \
        (cm-inbox --hook on UserPromptSubmit hands unread messages to Claude; cm-profile --hook sets the status to \
        working on UserPromptSubmit and idle on Stop), and the skill skills/claudemesh/SKILL.md, which teaches \
        Claude the toolkit. The files are the ones Claude Code reads: in $CLAUDE_CONFIG_DIR when it is set, else \
        ~/.claude.json and ~/.claude/.\n\n\
        Only the entries it adds are written into the files' text: every other byte (indentation, number spellings, \
        escapes, the lack of a final newline) and each file's mode stay as they were. A hook whose command is \
        already there is left to the user, and not counted as ours. An mcpServers.claudemesh entry that is not ours \
        (from another claudemesh) is replaced, and kept for cm-uninstall to put back.\n\n\
        What each file was before, and which folders were made, is recorded in installed.json in the config \
        directory (installed-HASH.json for a CLAUDE_CONFIG_DIR), so that cm-uninstall gives back exactly that.\n\n\
        Running it again changes nothing and says unchanged for each item. A file that is not valid JSON is an error, \
        and nothing is written. Restart Claude Code afterwards, and start sessions with cm-launch.",
    section: 1,
    args: &[],
    flags: &[DRY_RUN, NO_HOOKS, NO_SKILL],
    subs: &[],
    mesh_flag: false,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-install --dry-run",
            what: "show what would be added",
        },
        Example {
            cmd: "cm-install && cm-launch",
            what: "register claudemesh, then start a Claude Code session on the mesh",
        },
    ],
    env: &[
        (
            "HOME",
            "where Claude Code's files are (~/.claude.json, ~/.claude/)",
        ),
        (
            "CLAUDE_CONFIG_DIR",
            "Claude Code's folder instead of ~/.claude, with .claude.json in it, as Claude Code reads it",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    let layout = Layout::resolve(&paths.dir)?;
    let opts = InstallOpts {
        dry_run: args.has(&DRY_RUN),
        hooks: !args.has(&NO_HOOKS),
        skill: !args.has(&NO_SKILL),
    };
    let items = install::install(&layout, &Wanted::for_this_install(), opts)?;
    for item in &items {
        if out.json {
            out.json(&item.to_json("install_item"))?;
        } else {
            out.line(item.human(&layout))?;
        }
    }
    let changed = items
        .iter()
        .any(|i| i.action == install::Action::Added || i.action == install::Action::Updated);
    if changed && !out.json {
        out.line(
            "Restart Claude Code to load the claudemesh MCP server; start sessions with cm-launch.",
        )?;
    }
    Ok(())
}
