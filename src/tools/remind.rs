//! `cm-remind`: reminders and cron jobs the broker delivers, or a reminder sent now from a crontab.

use crate::cli::{Args, Complete, Example, Flag, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::{Error, Result};
use crate::out::Out;
use crate::out::short_id;
use crate::remind::{self, When};
use crate::time::now_ms;

const TO: Flag = flag(
    "to",
    "who gets it: a peer name or key, * or @group (default: you)",
)
.value("TARGET")
.complete(Complete::Peer);
const IN: Flag = flag("in", "deliver after this long: 90s, 30m, 2h, 1d, 1h30m").value("DURATION");
const AT: Flag = flag(
    "at",
    "deliver at HH:MM, YYYY-MM-DD HH:MM (local) or an RFC 3339 time",
)
.value("TIME");
const CRON: Flag = flag(
    "cron",
    "deliver at every match of a 5-field cron expression",
)
.value("EXPR");
const TZ: Flag = flag(
    "tz",
    "the --cron offset from UTC, like +02:00 (no zone names)",
)
.value("OFFSET");

/// `cm-remind`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-remind",
    about: "set reminders and cron jobs, list and cancel them",
    description: "cm-remind MESSAGE sets a reminder: the broker delivers MESSAGE as a message with subtype \
reminder --in a while (90s, 30m, 2h, 1d, 1h30m), --at a time, or at every match of --cron. It keeps reminders in \
its database and delivers each due time exactly once, also across its own restarts: one that fell due while it \
was down is delivered when it starts, and a cron job then goes on from its next match.

--at takes HH:MM (the next time your clock shows it), YYYY-MM-DD HH:MM in local time, or an RFC 3339 time such \
as 2026-05-04T09:00:00Z. --cron takes the five fields of crontab(5), minute hour day-of-month month day-of-week, \
with *, lists, ranges, steps and names (jan, mon), or @daily, @hourly, @weekly, @monthly, @yearly. It runs in \
UTC, or at the fixed offset --tz gives (+02:00, -0530). There is no time zone database: --tz takes no zone \
names, and a zone with daylight saving time needs its offset changed when the clocks change.

The reminder is for you unless --to says otherwise: inside a session started by cm launch, that session; \
elsewhere every session of yours (held for you while none is connected). --to takes a peer's name or key, * for \
everyone, or @group; a name reaches every session of that member. The text is encrypted here for its \
recipients, as cm-send does; the broker never sees it.

Without --in, --at or --cron the reminder is sent now, so a crontab line can use the mesh without the broker's \
scheduler: 0 9 * * 1-5 cm-remind --to @eng stand-up.

cm-remind list shows your pending reminders, soonest first (with their text when a key here can read it); \
cm-remind cancel ID cancels one by id or the start of its id. With --json each reminder is one JSON object.",
    section: 1,
    args: &[pos("MESSAGE").optional().many()],
    flags: &[TO, IN, AT, CRON, TZ],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-remind --in 20m 'check the build'",
            what: "Remind yourself in 20 minutes.",
        },
        Example {
            cmd: "cm-remind --to @eng --cron '0 9 * * mon-fri' --tz +02:00 'stand-up'",
            what: "Every weekday at 09:00 UTC+2, to the eng group.",
        },
        Example {
            cmd: "cm-remind list",
            what: "Your pending reminders.",
        },
        Example {
            cmd: "cm-remind cancel 3f2a9c1e",
            what: "Cancel one by the start of its id.",
        },
        Example {
            cmd: "0 18 * * 5 cm-remind --to @eng 'write the weekly notes'",
            what: "A crontab line: sent now, each time cron runs it.",
        },
    ],
    env: &[
        (
            "CLAUDEMESH_MESH",
            "The mesh to use when --mesh is not given.",
        ),
        (
            "CLAUDEMESH_SESSION_ID",
            "Set by cm launch: the reminder is for that session, and sent as it.",
        ),
        ("TZ", "The local time zone of --at."),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let timed = [&TO, &IN, &AT, &CRON, &TZ].iter().any(|f| args.has(f));
    let words: Vec<&str> = args.positionals.iter().map(String::as_str).collect();
    match (words.as_slice(), timed) {
        (["list"], false) => return list(args, out),
        (["cancel", id], false) => return cancel(args, id, out),
        ([], _) => {
            return Err(Error::usage(
                "give the reminder's MESSAGE; see 'cm-remind --help'",
            ));
        }
        _ => {}
    }
    let when = remind::when(
        args.value(&IN),
        args.value(&AT),
        args.value(&CRON),
        args.value(&TZ),
        now_ms(),
    )?;
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let r = remind::remind(&ctx, args.value(&TO), &when, &words.join(" "))?;
    if out.json {
        return out.json(&r);
    }
    let id = short_id(&r.id);
    let next = r.deliver_at.as_deref().unwrap_or_default();
    match &when {
        When::Now if r.queued == Some(true) => {
            out.line(format!("reminder queued for {} (offline)", r.to_name))
        }
        When::Now => out.line(format!("reminder sent to {}", r.to_name)),
        When::At(_) => out.line(format!("reminder {id} set for {} at {next}", r.to_name)),
        When::Cron { expr, tz } => out.line(format!(
            "cron job {id} set for {}: \"{expr}\" {}, next at {next}",
            r.to_name,
            tz.as_deref()
                .map_or("UTC".to_string(), |t| format!("UTC{t}"))
        )),
    }
}

fn list(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let pending = remind::list(&ctx)?;
    if out.json {
        for p in &pending {
            out.json(p)?;
        }
        return Ok(());
    }
    if pending.is_empty() {
        return out.line(format!("no pending reminders in mesh {}", ctx.mesh.slug));
    }
    for p in &pending {
        let cron = match &p.cron {
            Some(c) => {
                let tz =
                    p.tz.as_deref()
                        .map_or(String::new(), |t| format!(" UTC{t}"));
                format!("  cron \"{c}\"{tz}, fired {}", p.fired_count.unwrap_or(0))
            }
            None => String::new(),
        };
        out.line(format!(
            "{}  {}  to {}{cron}",
            short_id(&p.id),
            p.deliver_at,
            p.to_name
        ))?;
        out.line(format!(
            "  {}",
            p.text
                .as_deref()
                .unwrap_or("(sealed for a key not on this machine)")
        ))?;
    }
    Ok(())
}

fn cancel(args: &Args, id: &str, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let full = remind::cancel(&ctx, id)?;
    if out.json {
        return out.json(&serde_json::json!({"type": "cancelled", "id": full}));
    }
    out.line(format!("cancelled {}", short_id(&full)))
}
