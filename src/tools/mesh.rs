//! `cm-mesh`: make, join, list, rename and leave meshes, invite to them, and list their members.

use std::io::IsTerminal;

use serde::Serialize;

use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::config::{Config, Identity, MeshEntry, OwnerKeys, Paths};
use crate::error::{Error, Result};
use crate::mesh;
use crate::out::{self, Out};
use crate::time::{fmt_rfc3339, parse_duration};

const BROKER: Flag = flag("broker", "the broker to create it on").value("URL");
const NAME: Flag = flag("name", "your display name in the mesh").value("DISPLAY");
const TEMPLATE: Flag = flag(
    "template",
    "set the new mesh up from a template (see cm templates)",
)
.value("NAME")
.complete(Complete::Values(crate::templates::NAMES));
const FORGET_OWNER_KEY: Flag = flag(
    "forget-owner-key",
    "also delete the mesh's owner key (nobody can invite to it after that)",
);
const EXPIRES: Flag = flag("expires", "how long the link works, default 7d").value("DURATION");
const ROLE: Flag = flag("role", "the role joiners get, default member")
    .value("ROLE")
    .complete(Complete::Values(&["member", "admin"]));
const USES: Flag = flag("uses", "how many joins it allows, default 1").value("N");
const YES: Flag = flag("yes", "leave without asking").short('y');

/// `cm-mesh`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-mesh",
    about: "create, join, list, rename and leave meshes; invite people; list members",
    description: "cm-mesh manages the meshes this machine is in. cm-mesh new NAME creates a mesh on a broker \
(--broker URL, else the default from cm login, else ws://127.0.0.1:7900/ws, where cm up runs one) and joins it \
with your identity, making the identity first if there is none. It also makes the mesh's owner key, which signs \
invites; it stays in owners.json on this machine and the broker never sees its secret half.

cm-mesh new NAME --template T sets the new mesh up from one of cm templates (dev-team, research, ops-incident, \
simulation, personal): it writes the template's state keys with their initial values (read as cm-state set reads \
a value), records the template's name, description, groups, suggested roles and system prompt hint in the state \
key mesh.template for every member and cm-mcp to read, and joins you to each of its groups with the group's first \
role (groups belong to members, so your joining is what makes them). It then prints the suggested roles and the \
hint; with --json the mesh's line carries the template. An unknown template is a usage error (exit status 3) that \
lists the five, before any mesh or identity is made.

cm-mesh invite prints a link (ic://join/...) that lets others join. Only the machine that created the mesh holds \
its owner key, so only it can invite (exit status 7 elsewhere). The link expires after --expires (default 7d) and \
allows --uses joins (default 1). cm-mesh join LINK joins with your identity; joining a mesh you are in already \
says so and succeeds.

Your display name in a mesh you make or join is --name, else displayName in config.json, else the name your \
identity was registered with, else git config user.name, else $USER, else the host name; new and join say which \
on stderr. When another member of the mesh has that name already, join takes the first free NAME-2, NAME-3, ... \
and says so. The name is kept in the mesh's entry in config.json (displayName), where cm launch finds it. If another mesh here already uses the invite's slug, join exits with status 6: rename that \
one first.

One mesh is the default: every tool uses it when neither --mesh SLUG nor CLAUDEMESH_MESH names another. It is \
the first mesh made or joined here until cm-mesh use SLUG (cm use SLUG) makes another one the default; cm-mesh use \
with no SLUG prints the default. It is kept in config.json as defaultMesh, a key the original client ignores.

cm-mesh list shows the meshes joined here, marks the default with *, and says whether this machine owns each. \
cm-mesh rename OLD NEW changes a local slug (what --mesh takes), and rename NEW alone renames the default mesh; \
nothing changes on the broker. cm-mesh leave SLUG forgets a mesh on this machine; with no SLUG it leaves the default \
mesh, after asking when stdin is a terminal. The owner key stays in owners.json (the only key that can sign invites \
to it) unless --forget-owner-key is given. Leaving the default makes the first mesh left the default. cm-mesh \
members (members list) asks the broker for the mesh's members and shows who is online (your own entry is online \
while the command runs).

A mesh served by several brokers on one database lists them all: cm-mesh brokers URL... sets them, the first \
being the mesh's brokerUrl (the one every client tries first, and the only one the original client uses) and the \
rest its brokerUrls, tried in order when the ones before cannot be reached; each is asked to take this member's \
hello first, and one that answers and refuses it (another mesh's broker, another database) changes nothing \
(exit status 2). A broker that cannot be reached at the time is kept, with a warning. cm-mesh brokers with no URL \
lists them. A session that moved to another broker stays on it until that one goes away.

cm-mesh invite [FOR] takes an optional label, such as the email address of the person the link is for, and says \
who it is for; nothing is mailed. On a terminal the link is printed with when it expires; when stdout is not a \
terminal it holds the link alone (the rest goes to stderr), so cm join \"$(cm invite)\" works.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "new",
            aliases: &["create"],
            about: "create a mesh and join it",
            args: &[pos("NAME")],
            flags: &[BROKER, NAME, TEMPLATE],
        },
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "list the meshes joined here",
            args: &[],
            flags: &[],
        },
        Sub {
            name: "use",
            aliases: &[],
            about: "make a mesh the default, or print the default",
            args: &[pos("SLUG").optional().complete(Complete::Mesh)],
            flags: &[],
        },
        Sub {
            name: "rename",
            aliases: &[],
            about: "change a mesh's local slug (the default mesh's with one name)",
            args: &[pos("OLD").complete(Complete::Mesh), pos("NEW").optional()],
            flags: &[],
        },
        Sub {
            name: "leave",
            aliases: &[],
            about: "forget a mesh on this machine (the default mesh with no SLUG)",
            args: &[pos("SLUG").optional().complete(Complete::Mesh)],
            flags: &[FORGET_OWNER_KEY, YES],
        },
        Sub {
            name: "invite",
            aliases: &["share"],
            about: "make an invite link (owner only)",
            args: &[pos("FOR").optional()],
            flags: &[EXPIRES, ROLE, USES],
        },
        Sub {
            name: "join",
            aliases: &["add"],
            about: "join the mesh an invite is for",
            args: &[pos("URL-OR-TOKEN")],
            flags: &[NAME],
        },
        Sub {
            name: "brokers",
            aliases: &[],
            about: "list the mesh's brokers, or set them (the first is tried first)",
            args: &[pos("URL").optional().many()],
            flags: &[],
        },
        Sub {
            name: "members",
            aliases: &["member"],
            about: "list the mesh's members and who is online",
            args: &[pos("list").optional().complete(Complete::Values(&["list"]))],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-mesh new dev",
            what: "Create the mesh dev on the default broker and join it.",
        },
        Example {
            cmd: "cm-mesh invite --mesh dev --uses 3 --expires 1d",
            what: "A link three people can use within a day.",
        },
        Example {
            cmd: "cm-mesh join ic://join/eyJ2IjoxLC4uLn0 --name bob",
            what: "Join as bob.",
        },
        Example {
            cmd: "cm-mesh use ops",
            what: "Make ops the mesh every tool uses by default.",
        },
        Example {
            cmd: "CLAUDEMESH_CONFIG_DIR=~/.cm-bob cm join \"$(cm invite)\"",
            what: "Invite a second person on this machine and join as them.",
        },
        Example {
            cmd: "cm-mesh brokers --mesh dev wss://b1.example/ws wss://b2.example/ws",
            what: "Two brokers on one database serve dev; tools move to b2 while b1 is down.",
        },
        Example {
            cmd: "cm-mesh members --json | jq -r 'select(.online) | .name'",
            what: "The names of the members online now.",
        },
    ],
    env: &[
        (
            "CLAUDEMESH_MESH",
            "The mesh to use when --mesh is not given.",
        ),
        (
            "USER",
            "Your display name when neither --name, the config nor git config user.name gives one (then the host \
             name).",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    match args.sub {
        Some("new") => new(args, out),
        Some("use") => use_mesh(args, out),
        Some("rename") => rename(args, out),
        Some("leave") => leave(args, out),
        Some("invite") => invite(args, out),
        Some("join") => join(args, out),
        Some("members") => members(args, out),
        Some("brokers") => brokers(args, out),
        _ => list(out),
    }
}

/// A mesh in `new` and `list` output.
#[derive(Serialize)]
struct MeshLine<'a> {
    r#type: &'static str,
    slug: &'a str,
    name: &'a str,
    mesh_id: &'a str,
    member_id: &'a str,
    broker_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<bool>,
    /// Whether it is the mesh tools use without --mesh.
    default: bool,
}

impl<'a> MeshLine<'a> {
    fn of(m: &'a MeshEntry, owner: Option<bool>, config: &Config) -> MeshLine<'a> {
        MeshLine {
            r#type: "mesh",
            slug: &m.slug,
            name: &m.name,
            mesh_id: &m.mesh_id,
            member_id: &m.member_id,
            broker_url: &m.broker_url,
            owner,
            default: config.default_entry().is_some_and(|d| d.slug == m.slug),
        }
    }
}

/// Runs `f`, and says on stderr if it made the identity (whether or not it then succeeded).
fn noting_identity<T>(paths: &Paths, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let had = matches!(Identity::load(paths), Ok(Some(_)));
    let r = f();
    if !had && let Ok(Some(id)) = Identity::load(paths) {
        out::warn(
            TOOL.name,
            format!(
                "made your identity ({}…) in {}",
                id.pubkey.get(..16).unwrap_or(&id.pubkey),
                paths.identity().display()
            ),
        );
    }
    r
}

fn new(args: &Args, out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    let name = args
        .pos(0)
        .ok_or_else(|| Error::usage("new needs the mesh's NAME"))?;
    // Checked before anything is made, so a mistyped name leaves no mesh behind.
    let template = args
        .value(&TEMPLATE)
        .map(crate::templates::get)
        .transpose()?;
    let (url, token) = mesh::broker_for_new(&paths, args.value(&BROKER))?;
    let (m, named) = noting_identity(&paths, || {
        mesh::create(&paths, name, &url, token.as_deref(), args.value(&NAME))
    })?;
    let config = Config::load(&paths)?;
    if named.source != mesh::NameSource::Flag {
        out::notice(named.words(&m.slug));
    }
    if let Some(t) = template {
        let ctx = crate::client::Ctx::load(Some(&m.slug))?;
        crate::templates::set_up(&ctx, t).map_err(|e| {
            e.context(format!(
                "setting mesh {} up from template {}",
                m.slug, t.name
            ))
        })?;
    }
    if out.json {
        let mut line = serde_json::to_value(MeshLine::of(&m, None, &config))
            .map_err(|e| Error::internal(e.to_string()))?;
        if let (Some(t), Some(o)) = (template, line.as_object_mut()) {
            o.insert("template".into(), t.record());
        }
        return out.json(&line);
    }
    out.line(format!("created mesh {} on {}", m.slug, m.broker_url))?;
    if let Some(t) = template {
        out.line(format!(
            "set up from template {}: {}",
            t.name, t.description
        ))?;
        if !t.suggested_roles.is_empty() {
            out.line(format!("suggested roles: {}", t.suggested_roles.join(", ")))?;
        }
        out.line(format!("hint: {}", t.system_prompt_hint))?;
    }
    note_default(&config, &m.slug);
    Ok(())
}

/// Says on stderr which mesh is the default when `slug` (just made or joined) is not it.
fn note_default(config: &Config, slug: &str) {
    if let Some(d) = config.default_entry()
        && d.slug != slug
    {
        out::notice(format!(
            "the default mesh is still {}; 'cm use {slug}' makes {slug} the default",
            d.slug
        ));
    }
}

/// `use --json`.
#[derive(Serialize)]
struct DefaultLine<'a> {
    r#type: &'static str,
    slug: &'a str,
    name: &'a str,
    mesh_id: &'a str,
    /// Whether `cm use` chose it (else it is the first mesh joined).
    chosen: bool,
}

fn use_mesh(args: &Args, out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    let mut config = Config::load(&paths)?;
    let m = match args.pos(0).or(args.mesh.as_deref()) {
        Some(sel) => {
            let m = config.set_default(sel)?;
            config.save(&paths)?;
            m
        }
        None => config.mesh(None)?.clone(),
    };
    let chosen = config.default_mesh.as_deref() == Some(m.slug.as_str());
    if out.json {
        return out.json(&DefaultLine {
            r#type: "default",
            slug: &m.slug,
            name: &m.name,
            mesh_id: &m.mesh_id,
            chosen,
        });
    }
    match args.pos(0).or(args.mesh.as_deref()) {
        Some(_) => out.line(format!("the default mesh is now {}", m.slug)),
        None if chosen => out.line(&m.slug),
        None => out.line(format!("{} (the first mesh joined)", m.slug)),
    }
}

fn list(out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    let config = Config::load(&paths)?;
    let owners = OwnerKeys::load(&paths)?;
    let owns = |m: &MeshEntry| owners.meshes.contains_key(&m.mesh_id);
    if out.json {
        for m in &config.meshes {
            out.json(&MeshLine::of(m, Some(owns(m)), &config))?;
        }
        return Ok(());
    }
    let default = config.default_entry().map(|d| d.slug.clone());
    if config.meshes.is_empty() {
        return out.line("no meshes joined: run 'cm new NAME' or 'cm join URL'");
    }
    let w = |f: fn(&MeshEntry) -> &str| {
        config
            .meshes
            .iter()
            .map(|m| f(m).chars().count())
            .max()
            .unwrap_or(0)
    };
    let (ws, wn) = (w(|m| &m.slug), w(|m| &m.name));
    for m in &config.meshes {
        let tag = if owns(m) { "  owner" } else { "" };
        let mark = if default.as_deref() == Some(m.slug.as_str()) {
            '*'
        } else {
            ' '
        };
        out.line(format!(
            "{mark} {:ws$}  {:wn$}  {}{tag}",
            m.slug, m.name, m.broker_url
        ))?;
    }
    Ok(())
}

/// A `brokers --json` line.
#[derive(Serialize)]
struct BrokerLine<'a> {
    r#type: &'static str,
    url: &'a str,
    /// Tried first (the mesh's `brokerUrl`).
    primary: bool,
    /// After a set: whether it took the member's hello then (`None` when only listing).
    #[serde(skip_serializing_if = "Option::is_none")]
    reachable: Option<bool>,
}

fn brokers(args: &Args, out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    let mesh = args
        .mesh
        .as_deref()
        .or(env_mesh().as_deref())
        .map(str::to_owned);
    if args.positionals.is_empty() {
        let config = Config::load(&paths)?;
        let m = config.mesh(mesh.as_deref())?;
        for (i, url) in m.brokers().into_iter().enumerate() {
            if out.json {
                out.json(&BrokerLine {
                    r#type: "broker",
                    url,
                    primary: i == 0,
                    reachable: None,
                })?;
            } else {
                out.line(url)?;
            }
        }
        return Ok(());
    }
    let urls: Vec<&str> = args.positionals.iter().map(String::as_str).collect();
    let (m, checks) = mesh::set_brokers(&paths, mesh.as_deref(), &urls)?;
    for (i, (url, check)) in checks.iter().enumerate() {
        let reachable = *check == mesh::BrokerCheck::Serves;
        if let mesh::BrokerCheck::Unreachable(why) = check {
            out::notice(format!("kept {url}, which cannot be reached now: {why}"));
        }
        if out.json {
            out.json(&BrokerLine {
                r#type: "broker",
                url,
                primary: i == 0,
                reachable: Some(reachable),
            })?;
        }
    }
    if out.json {
        return Ok(());
    }
    out.line(format!(
        "mesh {} uses {} broker{}: {}",
        m.slug,
        checks.len(),
        if checks.len() == 1 { "" } else { "s" },
        m.brokers().join(", ")
    ))
}

/// `rename --json`.
#[derive(Serialize)]
struct Renamed<'a> {
    r#type: &'static str,
    old: &'a str,
    slug: &'a str,
    mesh_id: &'a str,
}

fn rename(args: &Args, out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    // The original's `rename NEW` renames the mesh in use.
    let default;
    let (old, new) = match (args.pos(0), args.pos(1)) {
        (Some(old), Some(new)) => (old, new),
        (Some(new), None) => {
            default = Config::load(&paths)?
                .mesh(args.mesh.as_deref().or(env_mesh().as_deref()))?
                .slug
                .clone();
            (default.as_str(), new)
        }
        _ => return Err(Error::usage("rename needs NEW, or OLD and NEW")),
    };
    let (before, m) = mesh::rename(&paths, old, new)?;
    if out.json {
        return out.json(&Renamed {
            r#type: "renamed",
            old: &before,
            slug: &m.slug,
            mesh_id: &m.mesh_id,
        });
    }
    out.line(format!("renamed {before} to {}", m.slug))
}

/// `leave --json`.
#[derive(Serialize)]
struct Left<'a> {
    r#type: &'static str,
    slug: &'a str,
    mesh_id: &'a str,
    owner_key_kept: bool,
}

fn leave(args: &Args, out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    let slug = match args.pos(0) {
        Some(s) => s.to_string(),
        None => {
            let slug = Config::load(&paths)?
                .mesh(args.mesh.as_deref().or(env_mesh().as_deref()))?
                .slug
                .clone();
            if !args.has(&YES) && std::io::stdin().is_terminal() && !confirm_leave(&slug)? {
                return Err(Error::generic(format!(
                    "left nothing; {slug} is still joined"
                )));
            }
            slug
        }
    };
    let left = mesh::leave(&paths, &slug, args.has(&FORGET_OWNER_KEY))?;
    let m = &left.entry;
    if left.owner_key && !left.owner_key_forgotten {
        out::warn(
            TOOL.name,
            format!(
                "kept the owner key of {} in {} (--forget-owner-key deletes it)",
                m.slug,
                paths.owners().display()
            ),
        );
    }
    if out.json {
        return out.json(&Left {
            r#type: "left",
            slug: &m.slug,
            mesh_id: &m.mesh_id,
            owner_key_kept: left.owner_key && !left.owner_key_forgotten,
        });
    }
    out.line(format!("left {} on this machine", m.slug))?;
    if let Some(d) = Config::load(&paths)?.default_entry() {
        out::notice(format!("the default mesh is {}", d.slug));
    }
    Ok(())
}

/// Asks on the terminal whether to leave `slug`: true for y or yes.
fn confirm_leave(slug: &str) -> Result<bool> {
    eprint!("leave mesh {slug} on this machine? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::from(e).context("reading the answer"))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// `invite --json`.
#[derive(Serialize)]
struct InviteLine<'a> {
    r#type: &'static str,
    url: &'a str,
    token: &'a str,
    expires_at: String,
    role: &'a str,
    uses: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    r#for: Option<&'a str>,
}

fn invite(args: &Args, out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    let config = Config::load(&paths)?;
    let m = config.mesh(args.mesh.as_deref().or(env_mesh().as_deref()))?;
    let expires =
        parse_duration(args.value(&EXPIRES).unwrap_or("7d")).map_err(|e| e.context("--expires"))?;
    let role = args.value(&ROLE).unwrap_or("member");
    let uses = match args.value(&USES) {
        None => 1,
        Some(v) => v.parse::<u32>().map_err(|_| {
            Error::usage(format!(
                "--uses: expected a positive whole number, got {v:?}"
            ))
        })?,
    };
    let label = args.pos(0).map(str::trim).filter(|s| !s.is_empty());
    let made = mesh::invite(&paths, m, expires, role, uses)?;
    let inv = &made.invite;
    let expires_at = fmt_rfc3339(inv.payload.expires_at.saturating_mul(1000));
    if out.json {
        return out.json(&InviteLine {
            r#type: "invite",
            url: &inv.url,
            token: &inv.token,
            expires_at,
            role: &inv.payload.role,
            uses: made.uses,
            r#for: label,
        });
    }
    let about = match label {
        Some(who) => {
            format!("for {who} (nothing is mailed: send them the link); expires {expires_at}")
        }
        None => format!("expires {expires_at}"),
    };
    out.line(&inv.url)?;
    // A pipe or `$(cm invite)` gets the link alone, so it can be handed straight to `cm join`.
    if out::stdout_is_tty() {
        out.line(about)
    } else {
        out::notice(about);
        Ok(())
    }
}

/// `$CLAUDEMESH_MESH`, as [`Ctx::load`] reads it.
fn env_mesh() -> Option<String> {
    std::env::var("CLAUDEMESH_MESH")
        .ok()
        .filter(|s| !s.is_empty())
}

/// `join --json`.
#[derive(Serialize)]
struct JoinedLine<'a> {
    r#type: &'static str,
    slug: &'a str,
    mesh_id: &'a str,
    member_id: &'a str,
    broker_url: &'a str,
    already_member: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

fn join(args: &Args, out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    let input = args
        .pos(0)
        .ok_or_else(|| Error::usage("join needs an invite link or token"))?;
    let j = noting_identity(&paths, || mesh::join(&paths, input, args.value(&NAME)))?;
    let m = &j.entry;
    if let Some(n) = &j.name
        && (n.source != mesh::NameSource::Flag || n.taken.is_some())
    {
        out::notice(n.words(&m.slug));
    }
    if out.json {
        return out.json(&JoinedLine {
            r#type: "joined",
            slug: &m.slug,
            mesh_id: &m.mesh_id,
            member_id: &m.member_id,
            broker_url: &m.broker_url,
            already_member: j.already_member,
            name: j.name.as_ref().map(|n| n.name.as_str()),
        });
    }
    if j.already_member {
        return out.line(format!(
            "already in mesh {} (member {}) on {}",
            m.slug, m.member_id, m.broker_url
        ));
    }
    out.line(format!("joined mesh {} on {}", m.slug, m.broker_url))
}

/// `members --json`.
#[derive(Serialize)]
struct MemberLine<'a> {
    r#type: &'static str,
    name: &'a str,
    pubkey: &'a str,
    member_id: &'a str,
    role: &'a str,
    online: bool,
    groups: Vec<&'a str>,
    joined_at: &'a str,
    you: bool,
}

fn members(args: &Args, out: &mut Out) -> Result<()> {
    // `member list` is the original's spelling of the same.
    if let Some(w) = args.pos(0).filter(|w| *w != "list") {
        return Err(Error::usage(format!(
            "members takes no argument but list, not {w:?}"
        )));
    }
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let (list, me) = mesh::members(&ctx)?;
    let wn = list
        .iter()
        .map(|m| m.display_name.chars().count())
        .max()
        .unwrap_or(0);
    let wr = list.iter().map(|m| m.role.len()).max().unwrap_or(0);
    for m in &list {
        let you = m.member_id == me;
        if out.json {
            out.json(&MemberLine {
                r#type: "member",
                name: &m.display_name,
                pubkey: &m.pubkey,
                member_id: &m.member_id,
                role: &m.role,
                online: m.online,
                groups: m.groups.iter().map(|g| g.name.as_str()).collect(),
                joined_at: &m.joined_at,
                you,
            })?;
            continue;
        }
        let (dot, state) = if m.online {
            ("●", "online")
        } else {
            ("○", "offline")
        };
        let you = if you { " (you)" } else { "" };
        out.line(format!(
            "{dot} {:wn$}  {:wr$}  {}  {state}{you}",
            m.display_name,
            m.role,
            m.pubkey.get(..8).unwrap_or(&m.pubkey),
        ))?;
    }
    Ok(())
}
