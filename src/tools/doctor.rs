//! `cm-doctor`: checks this machine's claudemesh setup and says what to fix.

use serde::Serialize;

use crate::cli::{Args, Example, Tool};
use crate::doctor::{self, Check};
use crate::error::{Error, Result};
use crate::out::Out;

/// `cm-doctor`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-doctor",
    about: "check the config, keys, brokers and Claude Code registration",
    description: "cm-doctor checks that the config directory exists and only you can read it (mode 0700), that \
config.json, identity.json, owners.json and brokers.json are mode 0600, that config.json parses, that your identity \
and owner keys are valid, and for each joined mesh: that its member key is valid, that its broker answers (and how \
fast), that the broker accepts the member's hello, and that this machine's clock is within 30 s of the broker's \
(the broker refuses signatures more than 60 s off). Last it checks whether Claude Code has the claudemesh MCP \
server registered in ~/.claude.json; a missing registration is only a warning.

Each check prints one line, ✓ when it passed, ✗ when it failed, ! for a warning, followed by what to do about it. \
With --json each check is one object {type:\"check\", name, ok, detail, fix} and a last {type:\"summary\"} \
object follows. The exit status is 0 when every check passed and 1 when any failed. --mesh SLUG checks only that \
mesh. cm status and cm doctor both run cm-doctor.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-doctor",
            what: "Check everything.",
        },
        Example {
            cmd: "cm-doctor --json | jq -r 'select(.ok == false) | .fix'",
            what: "Only what to fix.",
        },
    ],
    env: &[
        ("HOME", "Where ~/.claude.json is looked for."),
    ],
};

/// A check in `--json` output.
#[derive(Serialize)]
struct CheckLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    check: &'a Check,
}

/// The last line of `--json` output.
#[derive(Serialize)]
struct Summary {
    r#type: &'static str,
    ok: bool,
    checks: usize,
    failed: usize,
}

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let mut total = 0;
    let failed = doctor::run(args.mesh.as_deref(), &mut |c: &Check| {
        total += 1;
        if out.json {
            return out.json(&CheckLine {
                r#type: "check",
                check: c,
            });
        }
        let mark = match (c.ok, &c.fix) {
            (false, _) => "✗",
            (true, Some(_)) => "!",
            (true, None) => "✓",
        };
        out.line(format!("{mark} {} ({})", c.name, c.detail))?;
        match &c.fix {
            Some(f) => out.line(format!("    → {f}")),
            None => Ok(()),
        }
    })?;
    if out.json {
        out.json(&Summary {
            r#type: "summary",
            ok: failed == 0,
            checks: total,
            failed,
        })?;
    } else if failed == 0 {
        out.line("all checks passed")?;
    }
    if failed > 0 {
        let s = if failed == 1 { "" } else { "s" };
        return Err(Error::generic(format!("{failed} check{s} failed")));
    }
    Ok(())
}
