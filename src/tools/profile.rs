//! `cm-profile`: what peers see of you (name, summary, status, visibility, role tag, groups), shown and edited.

use crate::cli::{Args, Complete, Example, Flag, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::Result;
use crate::out::{self, Out};
use crate::services::profile::{self, Edit, Profile};

const ROLE: Flag = flag("role", "your role in the group you join").value("ROLE");
const HOOK: Flag = flag(
    "hook",
    "run as a Claude Code hook: silent, bounded, always exits 0",
);

/// `cm-profile`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-profile",
    about: "show and edit your name, summary, status, visibility, role tag and groups",
    description: "cm-profile shows what peers see of you in cm-peers: display name, summary, status, visibility, \
role tag and groups. cm-profile FIELD VALUE changes one of them, and peers see the change at once:

name NAME; summary TEXT (empty clears it); status idle|working|dnd (a working or dnd session gets only messages \
sent with priority now pushed; the rest wait until it is idle); visible true|false (a hidden session is left out \
of other members' peer lists and of broadcasts); role-tag TAG (empty clears it); join @GROUP [--role ROLE]; \
leave @GROUP.

Inside a session started by cm launch an edit changes that session. Anywhere else it changes you as a member: \
every session of yours that is connected, and what your next sessions start with. The role tag is always the \
member's. A session started with a name of its own (cm launch --name) shows that name again after it reconnects.

cm-profile --hook status working|idle is what the Claude Code hooks that cm-install adds run: it reads and \
ignores the hook's input, changes the launched session's status (never ending a dnd), does nothing outside a \
launched session, gives up after 3 seconds, and always exits 0, with any error on stderr.",
    section: 1,
    args: &[
        pos("FIELD").optional().complete(Complete::Values(&[
            "name", "summary", "status", "visible", "role-tag", "join", "leave",
        ])),
        pos("VALUE").optional().many(),
    ],
    flags: &[ROLE, HOOK],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-profile",
            what: "What peers see of you.",
        },
        Example {
            cmd: "cm-profile summary 'fixing the flaky CI job'",
            what: "Say what you are doing.",
        },
        Example {
            cmd: "cm-profile status dnd",
            what: "Only messages sent with priority now are pushed.",
        },
        Example {
            cmd: "cm-profile join @eng/backend --role lead",
            what: "Join a group, with a role in it.",
        },
    ],
    env: &[
        (
            "CLAUDEMESH_MESH",
            "The mesh to use when --mesh is not given.",
        ),
        (
            "CLAUDEMESH_SESSION_ID",
            "Set by cm launch: edits change that session.",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let field = args.pos(0);
    let value = args.positionals.get(1..).unwrap_or_default();
    if args.has(&HOOK) {
        if let Some(e) = profile::hook(field.unwrap_or_default(), value) {
            out::warn(TOOL.name, e);
        }
        return Ok(());
    }
    let edit = field
        .map(|f| profile::parse_edit(f, value, args.value(&ROLE)))
        .transpose()?;
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let p = match &edit {
        Some(e) => match profile::edit(&ctx, e)? {
            Some(p) => p,
            None => {
                let field = args.pos(0).unwrap_or_default();
                if out.json {
                    return out.json(
                        &serde_json::json!({"type": "profile_edit", "field": field, "confirmed": false}),
                    );
                }
                return out.line(format!(
                    "{field} sent (this broker does not confirm it, and has no profile to read back)"
                ));
            }
        },
        None => profile::show(&ctx)?,
    };
    if out.json {
        return out.json(&p);
    }
    let rows = rows(&p);
    let Some(e) = &edit else {
        for (k, v) in rows {
            out.line(format!("{k:10}  {v}"))?;
        }
        return out.line(format!("{:10}  {}", "applies to", scope(&p)));
    };
    // An edit says what it changed, and for whom.
    let field = match e {
        Edit::Name(_) => "name",
        Edit::Summary(_) => "summary",
        Edit::Status(_) => "status",
        Edit::Visible(_) => "visible",
        Edit::RoleTag(_) => "role tag",
        Edit::Join(..) | Edit::Leave(_) => "groups",
    };
    let value = rows
        .iter()
        .find(|(k, _)| *k == field)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .unwrap_or("(none)");
    out.line(format!("{field}: {value}, for {}", scope(&p)))
}

/// Who edits made here change.
fn scope(p: &Profile) -> String {
    match (&p.session_pubkey, p.online) {
        (Some(k), Some(false)) => {
            format!("this session ({}…, not connected)", &k[..8.min(k.len())])
        }
        (Some(k), _) => format!("this session ({}…)", &k[..8.min(k.len())]),
        _ => "you as a member (every session of yours)".to_string(),
    }
}

fn rows(p: &Profile) -> [(&'static str, String); 6] {
    let groups = p
        .groups
        .iter()
        .map(|g| match &g.role {
            Some(r) => format!("@{} ({r})", g.name),
            None => format!("@{}", g.name),
        })
        .collect::<Vec<_>>()
        .join(", ");
    [
        ("name", p.name.clone()),
        ("summary", p.summary.clone().unwrap_or_default()),
        ("status", p.status.as_str().to_string()),
        ("visible", if p.visible { "yes" } else { "no" }.to_string()),
        ("role tag", p.role_tag.clone().unwrap_or_default()),
        ("groups", groups),
    ]
}
