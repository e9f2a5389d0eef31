//! `cm-inbox`: read the messages waiting for you, and the prompt hook that hands them to Claude Code.

use crate::cli::{Args, Example, Flag, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::{Error, Result};
use crate::messaging::inbox::{self, Mode};
use crate::out::Out;

const PEEK: Flag = flag("peek", "show the messages without marking them read");
const WAIT: Flag = flag(
    "wait",
    "block until a message arrives (at most SECS seconds, if given)",
)
.value("SECS")
.optional();
const HOOK: Flag = flag("hook", "run as Claude Code's UserPromptSubmit hook");

/// `cm-inbox`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-inbox",
    about: "read the messages waiting for you",
    description: "cm-inbox fetches the messages the broker holds for you, decrypts them, prints them and marks \
each one read only after its line is written, so nothing is lost to a crash or a closed pipe. Without --mesh it \
reads every joined mesh. Inside a session started by cm launch it reads that session's messages too.

A message that cannot be decrypted is shown as [cannot decrypt: REASON] and marked read, since it never will \
decrypt. --peek shows the messages and leaves them unread. --wait blocks until a message arrives, then prints \
what is waiting; --wait SECS gives up after SECS seconds with no output and status 0.

No message is shown twice. The ids shown are kept per mesh and identity in inbox/ under the config directory \
(the last 10,000); a message whose mark did not reach the broker (a crash, a reset) is marked again at the next \
run, not shown again. When the broker cannot save the marks (its disk is full), cm-inbox stops after the lines \
it printed with one error line and status 1; those messages stay on the broker and are not shown again.

With --json, one line per message: {\"type\":\"message\", \"id\", \"from\":{\"name\", \"pubkey\", \
\"member_pubkey\"}, \"to\", \"text\", \"priority\", \"sent_at\", \"reply_to\", ...}; \"text\" is null and \
\"decrypt_error\" says why when it could not be decrypted. Reply to from.pubkey.

--hook is for Claude Code's UserPromptSubmit hook. It ignores the hook's input, and when messages are waiting \
prints exactly one line, {\"hookSpecificOutput\":{\"hookEventName\":\"UserPromptSubmit\", \
\"additionalContext\":\"...\"}}, with the messages, their senders, keys and ids, and how to reply. It keeps \
under Claude Code's 10,000 character limit: messages that do not fit stay unread for the next prompt. With \
nothing waiting it prints nothing. A hook must never block the prompt, so any failure is one line on stderr and \
status 0.",
    section: 1,
    args: &[pos("SECS").optional()],
    flags: &[PEEK, WAIT, HOOK],
    subs: &[],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-inbox",
            what: "Print and mark read everything waiting, in every mesh.",
        },
        Example {
            cmd: "cm-inbox --wait 30 --json",
            what: "Wait up to 30 seconds for a message and print it as JSON.",
        },
        Example {
            cmd: "cm-inbox --hook",
            what: "The command for a UserPromptSubmit hook in Claude Code's settings.",
        },
    ],
    env: &[
        ("CLAUDEMESH_MESH", "The mesh to use when --mesh is not given."),
        (
            "CLAUDEMESH_SESSION_ID",
            "Inside a session started by cm launch: also read what was sent to that session.",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    if args.has(&HOOK) {
        inbox::read_hook_input();
        let r = Ctx::load_all(args.mesh.as_deref()).and_then(|c| inbox::run(c, Mode::Hook, out));
        if let Err(e) = r {
            crate::out::warn(TOOL.name, e);
        }
        return Ok(());
    }
    let secs = match (args.has(&WAIT), args.value(&WAIT), args.pos(0)) {
        (false, _, Some(_)) => return Err(Error::usage("SECS goes with --wait")),
        (true, Some(_), Some(_)) => return Err(Error::usage("--wait takes one SECS")),
        (_, v, p) => v.or(p),
    };
    let mode = match (args.has(&WAIT), args.has(&PEEK)) {
        (true, true) => return Err(Error::usage("--peek and --wait do not go together")),
        (true, false) => Mode::Wait(secs.map(crate::time::parse_duration).transpose()?),
        (false, true) => Mode::Peek,
        (false, false) => Mode::Drain,
    };
    inbox::run(Ctx::load_all(args.mesh.as_deref())?, mode, out)
}
