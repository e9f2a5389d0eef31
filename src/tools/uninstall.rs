//! `cm-uninstall`: gives Claude Code's files back as `cm-install` found them.

use crate::cli::{Args, Example, Flag, Tool, flag};
use crate::config::Paths;
use crate::error::Result;
use crate::install::{self, Layout};
use crate::out::Out;

const DRY_RUN: Flag = flag("dry-run", "print what would be removed, and remove nothing").short('n');

/// The flag table.
pub static TOOL: Tool = Tool {
    name: "cm-uninstall",
    about: "give Claude Code's files back as cm-install found them",
    description: "Undoes what cm-install recorded in installed.json, and nothing else. A file nobody else has written \
        since cm-install gets back its bytes and mode from before, or goes if cm-install made it. A file changed \
        since (Claude Code rewrites .claude.json often) keeps those changes: only the entries cm-install added come \
        out of its text, and an mcpServers.claudemesh entry that was there before is put back as it was. Hook \
        events and objects left empty go only if cm-install created them; folders it made go when empty. An entry \
        you changed after cm-install, or your own hook that was there before, is left alone, and so is a skill file \
        you edited.\n\n\
        The files are the ones Claude Code reads: in $CLAUDE_CONFIG_DIR when it is set, else ~/.claude.json and \
        ~/.claude/. When nothing is installed it says so and exits 0.",
    section: 1,
    args: &[],
    flags: &[DRY_RUN],
    subs: &[],
    mesh_flag: false,
    config_dir: true,
    trailing: false,
    examples: &[Example {
        cmd: "cm-uninstall --dry-run",
        what: "show what would be removed",
    }],
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
    let items = install::uninstall(&layout, args.has(&DRY_RUN))?;
    if items.is_empty() && !out.json {
        return out.line("Nothing to remove: claudemesh is not installed.");
    }
    for item in &items {
        if out.json {
            out.json(&item.to_json("uninstall_item"))?;
        } else {
            out.line(item.human(&layout))?;
        }
    }
    Ok(())
}
