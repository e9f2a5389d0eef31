//! `cm-vault`: secrets kept in the mesh, sealed here for you and the members you name.

use std::io::Read;

use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::{Error, Result};
use crate::out::Out;
use crate::services::vault::{self, NewSecret};

const FOR: Flag = flag(
    "for",
    "a member (NAME) or group (@group) who may read it besides you (repeat for more)",
)
.value("NAME|@GROUP")
.repeat()
.complete(Complete::Peer);
const TYPE: Flag = flag("type", "env (the default) or file")
    .value("TYPE")
    .complete(Complete::Values(&["env", "file"]));
const MOUNT: Flag = flag("mount", "where a file secret belongs, for whoever uses it")
    .value("PATH")
    .complete(Complete::File);
const DESCRIPTION: Flag = flag("description", "what the secret is for")
    .short('d')
    .value("TEXT");
const REVEAL: Flag = flag("reveal", "print the value on a terminal too");
const ENV: Flag = flag("env", "print export KEY='value' lines, for eval").short('e');
const FROM: Flag = flag(
    "from",
    "the member whose secret of that key to open, when more than one shared it with you",
)
.value("NAME")
.complete(Complete::Peer);

/// `cm-vault`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-vault",
    about: "keep secrets in the mesh, sealed for yourself and the members you name",
    description: "cm-vault keeps secrets (API tokens, database URLs, small files) in the mesh's broker without the \
broker being able to read them. cm-vault set KEY VALUE encrypts the value here with a fresh key \
(crypto_secretbox) and seals that key (crypto_box_seal) to your member key, and to the key of every member named \
by --for NAME or --for @group; the broker stores only the ciphertext and the sealed keys. Without VALUE, or with \
VALUE -, the value is read from stdin, so it stays out of the shell's history and ps. Setting a KEY again \
replaces your secret of that key, and who may read it.

cm-vault get KEY... opens the secrets. The value is printed only when stdout is not a terminal (a pipe, a file, \
$(...)) or with --reveal; on a terminal it says the secret is there and how long it is. --env prints one \
export KEY='value' line per key, for eval \"$(cm-vault get --env DB_URL API_TOKEN)\". --json prints \
{\"type\":\"secret\", \"key\", \"value\", \"owner\", \"entry_type\", \"mount_path\"} lines (the value as text). \
Your own secret of a key comes first; another member's that was shared with you is opened when it is the only \
one, or with --from NAME. A key nobody let you read exits with status 5.

cm-vault list shows the secrets you may read, yours and those shared with you, without their values: key, \
type, owner, readers, description. cm-vault delete KEY deletes your own.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "set",
            aliases: &["put"],
            about: "seal a value and store it",
            args: &[pos("KEY"), pos("VALUE").optional()],
            flags: &[FOR, TYPE, MOUNT, DESCRIPTION],
        },
        Sub {
            name: "get",
            aliases: &[],
            about: "open secrets: to a pipe, with --reveal, or as export lines",
            args: &[pos("KEY").many()],
            flags: &[REVEAL, ENV, FROM],
        },
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "the secrets you may read, without their values",
            args: &[],
            flags: &[],
        },
        Sub {
            name: "delete",
            aliases: &["rm"],
            about: "delete a secret of your own",
            args: &[pos("KEY")],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "printf %s \"$TOKEN\" | cm-vault set API_TOKEN --for @ops",
            what: "A token for you and the ops group, read from stdin.",
        },
        Example {
            cmd: "eval \"$(cm-vault get --env API_TOKEN DB_URL)\"",
            what: "Both as environment variables of this shell.",
        },
        Example {
            cmd: "curl -H \"Authorization: Bearer $(cm-vault get API_TOKEN)\" https://example.org/",
            what: "The value to a command, never on the screen.",
        },
        Example {
            cmd: "cm-vault list",
            what: "What you may read, and who else may.",
        },
    ],
    env: &[
        (
            "CLAUDEMESH_MESH",
            "The mesh to use when --mesh is not given.",
        ),
        (
            "CLAUDEMESH_SESSION_ID",
            "Set by cm launch: speak as that session.",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let key = args.pos(0).unwrap_or_default();
    match args.sub {
        Some("set") => {
            let value = match args.pos(1) {
                Some("-") | None => {
                    let mut v = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut v)
                        .map_err(|e| Error::from(e).context("reading the value from stdin"))?;
                    v
                }
                Some(v) => v.as_bytes().to_vec(),
            };
            let new = NewSecret {
                entry_type: args.value(&TYPE),
                mount_path: args.value(&MOUNT),
                description: args.value(&DESCRIPTION),
                readers: args.values(&FOR),
            };
            let others = vault::set(&ctx, key, &value, &new)?;
            if out.json {
                return out.json(&serde_json::json!({
                    "type": "stored", "key": key, "readers": others,
                }));
            }
            out.line(match others {
                0 => format!("stored {key}, sealed for you"),
                n => format!("stored {key}, sealed for you and {n} other member(s)"),
            })
        }
        Some("get") => {
            let keys: Vec<&str> = args.positionals.iter().map(String::as_str).collect();
            let found = vault::get(&ctx, &keys, args.value(&FROM))?;
            if out.is_terminal() && !args.has(&REVEAL) {
                for s in &found {
                    out.line(format!(
                        "{} is set ({} bytes, from {}); it is printed to a pipe, or here with --reveal",
                        s.key,
                        s.value.len(),
                        s.owner
                    ))?;
                }
                return Ok(());
            }
            for s in &found {
                if args.has(&ENV) {
                    out.line(vault::export_line(s)?)?;
                } else if out.json {
                    out.json(&serde_json::json!({
                        "type": "secret", "key": s.key, "value": String::from_utf8_lossy(&s.value),
                        "owner": s.owner, "entry_type": s.entry_type, "mount_path": s.mount_path,
                    }))?;
                } else {
                    out.bytes(&s.value)?;
                    if found.len() > 1 {
                        out.bytes(b"\n")?;
                    }
                }
            }
            Ok(())
        }
        Some("delete") => {
            vault::delete(&ctx, key)?;
            if out.json {
                return out.json(&serde_json::json!({"type": "deleted", "key": key}));
            }
            out.line(format!("deleted {key}"))
        }
        _ => {
            let entries = vault::list(&ctx)?;
            if out.json {
                return entries.iter().try_for_each(|e| out.json(e));
            }
            if entries.is_empty() {
                return out.line(format!("no secrets for you in mesh {}", ctx.mesh.slug));
            }
            let readers = |e: &vault::Entry| {
                if e.readers.is_empty() {
                    "-".to_string()
                } else {
                    e.readers.join(",")
                }
            };
            let kw = entries
                .iter()
                .map(|e| e.key.len())
                .max()
                .unwrap_or(0)
                .max(3);
            let ow = entries
                .iter()
                .map(|e| e.owner.len())
                .max()
                .unwrap_or(0)
                .max(5);
            let rw = entries
                .iter()
                .map(|e| readers(e).len())
                .max()
                .unwrap_or(0)
                .max(7);
            out.line(format!(
                "{:kw$}  {:4}  {:ow$}  {:rw$}  DESCRIPTION",
                "KEY", "TYPE", "OWNER", "READERS"
            ))?;
            for e in &entries {
                out.line(format!(
                    "{:kw$}  {:4}  {:ow$}  {:rw$}  {}",
                    e.key,
                    e.entry_type,
                    e.owner,
                    readers(e),
                    e.description.as_deref().unwrap_or("-")
                ))?;
            }
            Ok(())
        }
    }
}
