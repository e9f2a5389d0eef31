//! `cm-bridge`: forward a topic's messages between meshes.

use std::path::Path;

use crate::bridge;
use crate::cli::{Args, Complete, Example, Sub, Tool, pos};
use crate::error::{Error, Result};
use crate::out::Out;

/// `cm-bridge`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-bridge",
    about: "forward a topic's messages into a topic of another mesh",
    description: "cm-bridge run CONFIG forwards every message posted to one topic into another, usually of another \
mesh, and runs until SIGTERM (exit status 0) or Ctrl-C (130). CONFIG is a JSON file, {\"bridges\":[{\"a\":{\"mesh\":SLUG, \
\"topic\":NAME}, \"b\":{\"mesh\":SLUG, \"topic\":NAME}, \"direction\":\"both\"|\"a_to_b\"|\"b_to_a\"}]}; every \
mesh must be joined in this config directory. cm-bridge init [PATH] writes an example (cm-bridge.json unless \
PATH is given) and never replaces a file.

The bridge speaks as a session of its own on each mesh, joins each topic and reads it with the topic key sealed \
for you; it seals the message again under the other topic's key, so the brokers see only ciphertext. A forwarded \
message keeps its author and time in front of its text: [from NAME on MESH#TOPIC at TIME] TEXT. A message that \
starts with [from  was forwarded already and is never forwarded again, nor is one the bridge sent, so two bridges \
in opposite directions do not loop. When a broker restarts the bridge connects again and forwards what was \
posted meanwhile.

It writes one JSON line per event: {\"type\":\"forwarded\", \"from\":{\"mesh\",\"topic\",\"message_id\"}, \
\"to\":{\"mesh\",\"topic\",\"message_id\"}, \"sender\":{\"name\",\"pubkey\",\"sent_at\"}}, {\"type\":\"dropped\", \
\"reason\": \"own\" | \"forwarded_already\" | \"unreadable\" | \"no_key\" | \"refused\", \"message_id\"}, \
{\"type\":\"connection\", \"mesh\", \"state\":\"connected\"|\"disconnected\"|\"closed\"}, and \
{\"type\":\"note\", \"mesh\", \"topic\", \"note\"} while no copy of a topic's key is sealed for you yet.

Exit status: 0 stopped by a signal, 3 a bad config, 4 a broker unreachable at the start or ending the session, \
5 no such mesh or topic, 6 init's file exists, 10 a file that cannot be read or written, 1 anything else.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "run",
            aliases: &[],
            about: "forward messages as CONFIG says, until SIGINT or SIGTERM",
            args: &[pos("CONFIG").complete(Complete::File)],
            flags: &[],
        },
        Sub {
            name: "init",
            aliases: &[],
            about: "write an example config (cm-bridge.json unless PATH is given)",
            args: &[pos("PATH").optional().complete(Complete::File)],
            flags: &[],
        },
    ],
    mesh_flag: false,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-bridge init bridge.json",
            what: "Write an example config to edit.",
        },
        Example {
            cmd: "cm-bridge run bridge.json | jq -c 'select(.type == \"forwarded\")'",
            what: "Run the bridges and watch what they forward.",
        },
    ],
    env: &[],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    match args.sub {
        Some("init") => {
            let path = args.pos(0).unwrap_or("cm-bridge.json");
            bridge::init(Path::new(path))?;
            if out.json {
                return out.json(&serde_json::json!({"type": "init", "path": path}));
            }
            out.line(format!(
                "wrote {path}; edit its meshes and topics, then cm-bridge run {path}"
            ))
        }
        Some("run") => bridge::run(Path::new(args.pos(0).unwrap_or_default()), out),
        _ => Err(Error::usage(
            "give a subcommand: cm-bridge run CONFIG, or cm-bridge init [PATH]",
        )),
    }
}
