//! `cm-topic`: topics of a mesh — create, list, join, leave, members, post, tail, history, read.

use serde::Serialize;

use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::{Error, Result};
use crate::out::Out;
use crate::out::short_id;
use crate::topics::{self, Line, Thread, tail};

const TOPIC: crate::cli::Pos = pos("NAME").complete(Complete::Topic);

const DESCRIPTION: Flag = flag("description", "what the topic is for").value("TEXT");
const VISIBILITY: Flag = flag("visibility", "who may join: public (default) or private")
    .value("VISIBILITY")
    .complete(Complete::Values(&["public", "private"]));
const CREATE_PLAINTEXT: Flag = flag(
    "plaintext",
    "no topic key: messages are stored as base64 text",
);
const REPLY_TO: Flag = flag(
    "reply-to",
    "answer this message (its id, or 6+ of its first characters)",
)
.value("ID");
const POST_PLAINTEXT: Flag = flag(
    "plaintext",
    "post base64 text (only to a topic without a key)",
);
const TAIL_LIMIT: Flag = flag(
    "limit",
    "how many past messages to print first (default 20)",
)
.short('n')
.value("N");
const HISTORY_LIMIT: Flag = flag("limit", "how many messages (1-200, default 20)")
    .short('n')
    .value("N");
const BEFORE: Flag = flag("before", "only messages older than this one").value("ID");

/// `cm-topic`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-topic",
    about: "topics: create, list, join, leave, members, post, tail, history, read",
    description: "cm-topic works with a mesh's topics: named conversations with their own members and history. \
A topic is end-to-end encrypted: cm-topic create makes a 32-byte topic key and seals a copy of it to every member \
of the mesh, and the broker stores only the sealed copies, never the key. Messages are sealed under the topic key, \
so the broker cannot read them. A member who joined the mesh later gets a copy from any member who holds the key: \
cm-topic post, history and read seal it for waiting members after they run, and cm-topic tail every 30 seconds \
and whenever someone joins. With --plaintext, create makes a topic without a key, whose messages are stored as \
base64 text (for clients that only speak HTTP).

cm-topic post NAME MESSAGE posts; mentions (@name) notify those members (see cm-notify). --reply-to ID answers a \
message, by its id or the first 6 or more characters of it. cm-topic tail NAME prints the last --limit messages \
(default 20) and then each new one as it is posted, as HH:MM:SS  name  #id  text, with a line \
'↳ in reply to NAME: \"...\"' above a reply; it joins the topic, and runs until Ctrl-C (exit status 130) or until \
the broker ends the session (0). A broker that cannot be reached when tail starts is an error at once (exit \
status 4), as for every other tool; one that goes away later is waited for, and the tail goes on when it is \
back. cm-topic history prints a page of history, oldest first; --before ID pages back.

Public topics may be joined by any member of the mesh; posting to one joins it. Private topics are joined by \
members it was sealed for. cm-topic read marks a topic read; list shows the unread count.

With --json: tail and history write one line per message, {\"type\":\"message\", \"id\", \"topic\", \
\"topic_id\", \"from\":{\"name\",\"pubkey\",\"member_pubkey\"}, \"text\", \"reply_to\", \"body_version\", \
\"sent_at\"} (\"decrypt_error\" instead of \"text\" when it cannot be read); list writes {\"type\":\"topic\", ...} \
lines, members {\"type\":\"topic_member\", ...}, post {\"type\":\"topic_post\", \"status\", \"message_id\", ...}.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "create",
            aliases: &["new"],
            about: "create a topic (encrypted unless --plaintext)",
            args: &[pos("NAME")],
            flags: &[DESCRIPTION, VISIBILITY, CREATE_PLAINTEXT],
        },
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "list the topics you can see, with unread counts",
            args: &[],
            flags: &[],
        },
        Sub {
            name: "join",
            aliases: &[],
            about: "join a topic",
            args: &[TOPIC],
            flags: &[],
        },
        Sub {
            name: "leave",
            aliases: &[],
            about: "leave a topic",
            args: &[TOPIC],
            flags: &[],
        },
        Sub {
            name: "members",
            aliases: &[],
            about: "list a topic's members and who is online",
            args: &[TOPIC],
            flags: &[],
        },
        Sub {
            name: "post",
            aliases: &["send"],
            about: "post a message",
            args: &[TOPIC, pos("MESSAGE").many()],
            flags: &[REPLY_TO, POST_PLAINTEXT],
        },
        Sub {
            name: "tail",
            aliases: &["follow"],
            about: "print the last messages, then follow new ones until Ctrl-C",
            args: &[TOPIC],
            flags: &[TAIL_LIMIT],
        },
        Sub {
            name: "history",
            aliases: &["log"],
            about: "print a page of history, oldest first",
            args: &[TOPIC],
            flags: &[HISTORY_LIMIT, BEFORE],
        },
        Sub {
            name: "read",
            aliases: &["mark-read"],
            about: "mark a topic read",
            args: &[TOPIC],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-topic create deploys --description 'release chatter'",
            what: "An encrypted topic, with the key sealed for every member.",
        },
        Example {
            cmd: "cm-topic post deploys '@bob v1.4 is out'",
            what: "Post, and notify bob.",
        },
        Example {
            cmd: "cm-topic post deploys 'rolled back' --reply-to 1a2b3c",
            what: "Answer a message by the start of its id.",
        },
        Example {
            cmd: "cm-topic tail deploys --json | jq -r .text",
            what: "Follow a topic as a stream of texts.",
        },
    ],
    env: &[
        ("CLAUDEMESH_MESH", "The mesh to use when --mesh is not given."),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let topic = args.pos(0).unwrap_or_default();
    match args.sub {
        Some("create") => create(&ctx, args, out),
        Some("join") => join(&ctx, topic, out),
        Some("leave") => leave(&ctx, topic, out),
        Some("members") => members(&ctx, topic, out),
        Some("post") => post(&ctx, args, out),
        Some("tail") => {
            let limit = number(args, &TAIL_LIMIT, 20)?;
            match tail::run(&ctx, topic, limit, TOOL.name, out)? {
                tail::Ended::Closed => Ok(()),
                tail::Ended::Interrupted => Err(Error::interrupted()),
            }
        }
        Some("history") => history(&ctx, args, out),
        Some("read") => read(&ctx, topic, out),
        _ => list(&ctx, out),
    }
}

/// `--limit` of `tail` or `history` (`limit`), or `default`.
fn number(args: &Args, limit: &Flag, default: u32) -> Result<u32> {
    match args.value(limit) {
        None => Ok(default),
        Some(n) => n.parse::<u32>().ok().filter(|n| *n <= 200).ok_or_else(|| {
            Error::usage(format!("--limit takes a number from 0 to 200 (got {n:?})"))
        }),
    }
}

fn create(ctx: &Ctx, args: &Args, out: &mut Out) -> Result<()> {
    let name = args.pos(0).unwrap_or_default();
    let mut conn = ctx.connect()?;
    let member = topics::member_key(ctx)?;
    let topics::Created {
        created: c,
        unsealed,
    } = topics::create(
        &mut conn,
        &member,
        name,
        args.value(&DESCRIPTION),
        args.value(&VISIBILITY),
        args.has(&CREATE_PLAINTEXT),
    )?;
    conn.close();
    if unsealed > 0 {
        crate::out::warn(
            TOOL.name,
            format!(
                "#{}'s key is sealed for the members that fit in one request; {unsealed} others get it from a \
                 member who holds it once they join",
                c.topic.name
            ),
        );
    }
    let encrypted = c.topic.encrypted.unwrap_or(false);
    if out.json {
        return out.json(
            &serde_json::json!({"type": "topic", "id": c.topic.id, "name": c.topic.name,
            "visibility": c.topic.visibility, "encrypted": encrypted, "created": c.created}),
        );
    }
    let what = if encrypted { "encrypted" } else { "plaintext" };
    if c.created {
        out.line(format!(
            "created #{} ({}, {what})",
            c.topic.name,
            short_id(&c.topic.id)
        ))
    } else {
        out.line(format!(
            "#{} exists already ({}, {what})",
            c.topic.name,
            short_id(&c.topic.id)
        ))
    }
}

#[derive(Serialize)]
struct TopicLine<'a> {
    r#type: &'static str,
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    visibility: &'a str,
    encrypted: bool,
    joined: bool,
    member_count: u32,
    unread: u32,
    created_at: &'a str,
}

fn list(ctx: &Ctx, out: &mut Out) -> Result<()> {
    let mut conn = ctx.connect()?;
    let topics = topics::list(&mut conn)?;
    conn.close();
    if topics.is_empty() && !out.json {
        return out.line(format!(
            "no topics in {} yet: cm-topic create NAME",
            ctx.mesh.slug
        ));
    }
    let wn = topics
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0);
    for t in &topics {
        let (encrypted, joined, unread) = (
            t.encrypted.unwrap_or(false),
            t.joined.unwrap_or(false),
            t.unread.unwrap_or(0),
        );
        if out.json {
            out.json(&TopicLine {
                r#type: "topic",
                id: &t.id,
                name: &t.name,
                description: t.description.as_deref(),
                visibility: &t.visibility,
                encrypted,
                joined,
                member_count: t.member_count,
                unread,
                created_at: &t.created_at,
            })?;
            continue;
        }
        let mut row = format!(
            "#{:wn$}  {}  {}  {} member{}",
            t.name,
            t.visibility,
            if encrypted { "encrypted" } else { "plaintext" },
            t.member_count,
            if t.member_count == 1 { "" } else { "s" }
        );
        if joined {
            row += "  joined";
            if unread > 0 {
                row += &format!("  {unread} unread");
            }
        }
        if let Some(d) = &t.description {
            row += &format!("  — {d}");
        }
        out.line(row)?;
    }
    Ok(())
}

fn join(ctx: &Ctx, topic: &str, out: &mut Out) -> Result<()> {
    let name = topics::topic_arg(topic)?;
    let mut conn = ctx.connect()?;
    let member = topics::member_key(ctx)?;
    topics::join(&mut conn, name, &member.public_hex())?;
    let t = topics::open(&mut conn, name, &member, 1, None)?;
    conn.close();
    if out.json {
        return out.json(
            &serde_json::json!({"type": "topic_joined", "topic": t.name, "topic_id": t.id,
            "encrypted": t.encrypted, "key": t.key.is_some()}),
        );
    }
    out.line(format!("joined #{}", t.name))?;
    if t.waiting_for_key() {
        crate::out::warn(
            TOOL.name,
            format!(
                "no copy of #{}'s key is sealed for you yet: it is sealed when a member who holds it next posts, \
                 reads or tails it",
                t.name
            ),
        );
    }
    Ok(())
}

fn leave(ctx: &Ctx, topic: &str, out: &mut Out) -> Result<()> {
    let name = topics::topic_arg(topic)?;
    let mut conn = ctx.connect()?;
    topics::leave(&mut conn, name, &topics::member_key(ctx)?.public_hex())?;
    conn.close();
    if out.json {
        return out.json(&serde_json::json!({"type": "topic_left", "topic": name}));
    }
    out.line(format!("left #{name}"))
}

#[derive(Serialize)]
struct MemberLine<'a> {
    r#type: &'static str,
    name: &'a str,
    pubkey: &'a str,
    member_id: &'a str,
    role: &'a str,
    online: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    has_key: Option<bool>,
    joined_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_read_at: Option<&'a str>,
}

fn members(ctx: &Ctx, topic: &str, out: &mut Out) -> Result<()> {
    let name = topics::topic_arg(topic)?;
    let mut conn = ctx.connect()?;
    let members = topics::members(&mut conn, name)?;
    conn.close();
    let wn = members
        .iter()
        .map(|m| m.display_name.chars().count())
        .max()
        .unwrap_or(0);
    let wr = members.iter().map(|m| m.role.len()).max().unwrap_or(0);
    for x in &members {
        let online = x.online.unwrap_or(false);
        if out.json {
            out.json(&MemberLine {
                r#type: "topic_member",
                name: &x.display_name,
                pubkey: &x.pubkey,
                member_id: &x.member_id,
                role: &x.role,
                online,
                has_key: x.has_key,
                joined_at: &x.joined_at,
                last_read_at: x.last_read_at.as_deref(),
            })?;
            continue;
        }
        let (dot, state) = if online {
            ("●", "online")
        } else {
            ("○", "offline")
        };
        let key = if x.has_key == Some(false) {
            "  (waiting for the key)"
        } else {
            ""
        };
        out.line(format!(
            "{dot} {:wn$}  {:wr$}  {}  {state}{key}",
            x.display_name,
            x.role,
            short_id(&x.pubkey)
        ))?;
    }
    Ok(())
}

fn post(ctx: &Ctx, args: &Args, out: &mut Out) -> Result<()> {
    let topic = args.pos(0).unwrap_or_default();
    let text = args.positionals.get(1..).unwrap_or_default().join(" ");
    if text.trim().is_empty() {
        return Err(Error::usage("missing MESSAGE; see 'cm-topic --help'"));
    }
    let reply_to = args.value(&REPLY_TO);
    if reply_to.is_some_and(|r| r.trim().is_empty()) {
        return Err(Error::usage("--reply-to needs a message id"));
    }
    let mut conn = ctx.connect()?;
    let member = topics::member_key(ctx)?;
    let p = topics::post(
        &mut conn,
        &member,
        topic,
        &text,
        reply_to,
        args.has(&POST_PLAINTEXT),
    )?;
    conn.close();
    if out.json {
        out.json(&p)
    } else {
        out.line(p.words())
    }
}

fn history(ctx: &Ctx, args: &Args, out: &mut Out) -> Result<()> {
    let topic = args.pos(0).unwrap_or_default();
    let limit = number(args, &HISTORY_LIMIT, 20)?.max(1);
    let mut conn = ctx.connect()?;
    let member = topics::member_key(ctx)?;
    let t = topics::open(&mut conn, topic, &member, limit, args.value(&BEFORE))?;
    let mut thread = Thread::default();
    for m in &t.history {
        let line = Line::of(&t, m);
        if out.json {
            out.json(&line)?;
        } else {
            for row in thread.render(&line) {
                out.line(row)?;
            }
        }
    }
    reseal_after(&mut conn, &t, &member);
    conn.close();
    if t.waiting_for_key() {
        crate::out::warn(TOOL.name, topics::no_key(&t.name));
    }
    Ok(())
}

fn read(ctx: &Ctx, topic: &str, out: &mut Out) -> Result<()> {
    let name = topics::topic_arg(topic)?;
    let mut conn = ctx.connect()?;
    let confirmed = topics::mark_read(&mut conn, name)?;
    let member = topics::member_key(ctx)?;
    if let Ok(t) = topics::open(&mut conn, name, &member, 1, None) {
        reseal_after(&mut conn, &t, &member);
    }
    conn.close();
    if out.json {
        return out.json(
            &serde_json::json!({"type": "topic_read", "topic": name, "confirmed": confirmed}),
        );
    }
    if confirmed {
        out.line(format!("marked #{name} read"))
    } else {
        out.line(format!(
            "sent #{name} as read (this broker does not confirm it, and shows no unread counts to check)"
        ))
    }
}

/// A one-shot tool that holds the key seals it for members waiting for it; failures wait for the next one.
fn reseal_after(
    conn: &mut crate::client::Conn,
    t: &topics::Opened,
    member: &crate::crypto::Keypair,
) {
    if let Some(k) = &t.key
        && let Ok(names) = topics::reseal(conn, &t.id, k, member)
    {
        for n in names {
            crate::out::warn(TOOL.name, format!("sealed #{}'s key for {n}", t.name));
        }
    }
}
