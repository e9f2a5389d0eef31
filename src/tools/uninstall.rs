//! `cm-uninstall`: removes exactly what `cm-install` added to Claude Code's files.

use crate::cli::{Args, Example, Flag, Tool, flag};
use crate::config::Paths;
use crate::error::Result;
use crate::install::{self, Layout, Wanted};
use crate::out::Out;

const DRY_RUN: Flag = flag("dry-run", "print what would be removed, and remove nothing").short('n');

/// The flag table.
pub static TOOL: Tool = Tool {
    name: "cm-uninstall",
    about: "remove what cm-install added to Claude Code",
    description: "Removes the mcpServers.claudemesh entry from ~/.claude.json, the hooks cm-install added to \
        ~/.claude/settings.json, the skill ~/.claude/skills/claudemesh and the install record installed.json, and \
        nothing else.\n\n\
        An entry is removed only if it is exactly what cm-install recorded (or what it would add now): an entry you \
        changed is left alone. Hook events and objects left empty are removed only if cm-install created them. \
        ~/.claude.json is copied to ~/.claude/backups/.claude.json.pre-claudemesh-uninstall.<unix ms> before it is \
        changed. When nothing is installed it says so and exits 0.",
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
    env: &[(
        "HOME",
        "where Claude Code's files are (~/.claude.json, ~/.claude/)",
    )],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    let layout = Layout::new(&install::home()?, &paths.dir);
    let items = install::uninstall(&layout, &Wanted::for_this_install(), args.has(&DRY_RUN))?;
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
