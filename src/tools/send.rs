//! `cm-send`: an end-to-end encrypted message to a peer, a group or everyone, with an honest delivery status.

use crate::cli::{Args, Complete, Example, Flag, Tool, flag, pos};
use crate::error::{Error, Result};
use crate::messaging::send::Sender;
use crate::out::Out;
use crate::wire::Priority;

const PRIORITY: Flag = flag("priority", "now, next (the default) or low")
    .short('p')
    .value("LEVEL")
    .complete(Complete::Values(Priority::NAMES));
const REPLY_TO: Flag = flag("reply-to", "mark the message as an answer to message ID").value("ID");
const STDIN: Flag = flag("stdin", "send each line of standard input as a message");
const CLIENT_ID: Flag = flag(
    "client-id",
    "the message's client id: a message sent again with the same id is stored once",
)
.value("ID");

/// `cm-send`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-send",
    about: "send an encrypted message to a peer, a group or everyone",
    description: "cm-send encrypts MESSAGE for TARGET and gives it to the broker, which stores it before it \
answers. It then says honestly what happened: \"sent to bob (online)\" when a live connection of the recipient had \
it pushed, \"queued for bob (offline)\" when it waits for the recipient to come back. A queued message is not \
lost: the recipient gets it when it returns, or reads it with cm-inbox.

TARGET is a display name (case-insensitive), a full 64-hex key, a key prefix of 4 or more hex digits, * for \
every member, or @group for the members of a group (@eng also reaches eng/backend). A name means the member: \
the message reaches all of its sessions, and is stored while it has none. A key or key prefix addresses exactly \
that key, a member or one session. With several meshes joined, names are looked up in all of them; pick one with \
--mesh when two have it. #name posts to that topic, sealed under its key (see cm-topic). *, @group and #topic are \
of one mesh: the default one (cm use), unless --mesh or CLAUDEMESH_MESH names another.

Every message is encrypted on this machine. A message to * or @group is sealed separately for each recipient, so \
the broker never holds its plaintext.

With --stdin, each line of standard input is a message: plain text to TARGET, or a JSON object \
{\"to\", \"text\", \"priority\", \"reply_to\"} (a line that starts with { is read as JSON). A failed line is \
reported and the rest are still sent; the exit status is then that of the first failure.

With --json, each result is one line: {\"type\":\"send_result\", \"status\":\"sent\"|\"queued\", \
\"recipient_online\", \"message_id\", \"to\", \"name\", \"mesh\", ...}; for * and @group also \"recipients\" and \
\"offline\" (how many members had no live connection).

A message that went out without an answer (the connection dropped) is sent again under the same client id \
until the broker answers, for up to 15 seconds; the broker stores it once. If no answer comes, cm-send says \
\"unknown: may have been delivered\" with the client id and exits 9: run it again with --client-id ID to make \
sure it is stored, once. With --stdin a JSON line may carry \"client_id\".

Exit status: 0 sent or queued, 3 bad arguments or an ambiguous target (the candidates are listed), 4 broker \
unreachable (nothing was sent), 5 no such peer (with the nearest name) or nobody in the group, 9 unknown \
outcome, 1 anything else.",
    section: 1,
    args: &[
        pos("TARGET").optional().complete(Complete::Peer),
        pos("MESSAGE").optional().many(),
    ],
    flags: &[PRIORITY, REPLY_TO, STDIN, CLIENT_ID],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-send bob 'the build is green'",
            what: "A direct message to bob, by name.",
        },
        Example {
            cmd: "cm-send @eng -p now 'deploy freeze in 10 minutes'",
            what: "Every member of the eng group, pushed even to busy sessions.",
        },
        Example {
            cmd: "cm-send --json '*' 'standup in 5' | jq -r .status",
            what: "A broadcast, and whether any copy went out live.",
        },
        Example {
            cmd: "make 2>&1 | tail -n 3 | cm-send --stdin bob",
            what: "One message to bob per line of input.",
        },
    ],
    env: &[
        ("CLAUDEMESH_MESH", "The mesh to use when --mesh is not given."),
        (
            "CLAUDEMESH_SESSION_ID",
            "Inside a session started by cm launch: send as that session, so replies reach it.",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let priority = args.get::<Priority>(&PRIORITY)?.unwrap_or_default();
    let reply_to = args.value(&REPLY_TO);
    if reply_to.is_some_and(|r| r.trim().is_empty()) {
        return Err(Error::usage("--reply-to needs a message id"));
    }
    let client_id = args.value(&CLIENT_ID);
    if let Some(id) = client_id
        && (id.is_empty() || id.len() > 128 || id.chars().any(char::is_control))
    {
        return Err(Error::usage(
            "--client-id needs 1 to 128 characters, none of them control characters",
        ));
    }
    if args.has(&STDIN) {
        if client_id.is_some() {
            return Err(Error::usage(
                "--client-id names one message: with --stdin give \"client_id\" in each JSON line",
            ));
        }
        if args.positionals.len() > 1 {
            return Err(Error::usage(
                "with --stdin the messages come from standard input: give at most TARGET",
            ));
        }
        let mut sender = Sender::new(args.mesh.as_deref())?;
        let stdin = std::io::stdin().lock();
        return sender.stream(TOOL.name, args.pos(0), priority, reply_to, stdin, out);
    }
    let (Some(to), [_, words @ ..]) = (args.pos(0), args.positionals.as_slice()) else {
        return Err(Error::usage(
            "missing TARGET and MESSAGE (or --stdin); see 'cm-send --help'",
        ));
    };
    if words.is_empty() {
        return Err(Error::usage("missing MESSAGE; see 'cm-send --help'"));
    }
    let mut sender = Sender::new(args.mesh.as_deref())?;
    let r = sender.send(to, &words.join(" "), priority, reply_to, client_id)?;
    if out.json {
        out.json(&r)
    } else {
        out.line(r.words())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_priority_is_offered_and_parses() {
        for name in Priority::NAMES {
            assert!(PRIORITY.help.contains(name), "--priority's help: {name}");
            assert_eq!(
                name.parse::<Priority>().map(Priority::as_str).ok(),
                Some(*name)
            );
        }
    }
}
