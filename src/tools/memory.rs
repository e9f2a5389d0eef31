//! `cm-memory`: the mesh's memory: remember notes, recall them by relevance, forget them.

use crate::cli::{Args, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::{Error, Result};
use crate::out::Out;
use crate::out::short_id;
use crate::services::memory;

const TAG: Flag = flag("tag", "a tag for the note (repeat for more)")
    .short('t')
    .value("TAG")
    .repeat();
const LIMIT: Flag = flag("limit", "at most N notes, default 20")
    .short('n')
    .value("N");

/// `cm-memory`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-memory",
    about: "remember, recall and forget notes the mesh keeps",
    description: "cm-memory keeps notes for the whole mesh: what one session learns, another can find. cm-memory \
remember TEXT stores a note, with --tag for each tag, and prints its id. Every member of the mesh sees it, with \
who stored it and when.

cm-memory recall QUERY searches the notes and their tags and prints the best matches first, each with the part \
that matched in [brackets]. The query is plain words, matched with their variants (deploy finds deploys and \
deployed); a note that matches more of the words ranks higher. Quotes, *, :, - and parentheses are only text. \
--limit N keeps the N best (default 20, at most 100).

cm-memory forget ID removes a note from search; ID may be the start of the id (8 characters are enough). The \
same verbs run as cm remember, cm recall and cm forget. With --json each note is one JSON object: \
{\"type\":\"memory\", \"id\", \"content\", \"tags\", \"remembered_by\", \"remembered_at\", \"score\", \"snippet\"}.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "remember",
            aliases: &["add"],
            about: "store a note",
            args: &[pos("TEXT").many()],
            flags: &[TAG],
        },
        Sub {
            name: "recall",
            aliases: &["search"],
            about: "find notes, best match first",
            args: &[pos("QUERY").many()],
            flags: &[LIMIT],
        },
        Sub {
            name: "forget",
            aliases: &["rm"],
            about: "remove a note from search",
            args: &[pos("ID")],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-memory remember 'the staging DB password rotates on Mondays' --tag ops",
            what: "Store a note tagged ops.",
        },
        Example {
            cmd: "cm-memory recall staging password",
            what: "The notes about it, best first.",
        },
        Example {
            cmd: "cm-memory recall deploy --json | jq -r .content",
            what: "Just the text of each match.",
        },
        Example {
            cmd: "cm-memory forget 3f2a9c1e",
            what: "Forget a note by the start of its id.",
        },
    ],
    env: &[
        (
            "CLAUDEMESH_MESH",
            "The mesh to use when --mesh is not given.",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let words = args.positionals.join(" ");
    match args.sub {
        Some("remember") => {
            let id = memory::remember(&ctx, &words, &args.values(&TAG))?;
            if out.json {
                return out.json(&serde_json::json!({"type": "memory_stored", "id": id}));
            }
            out.line(format!("remembered {}", short_id(&id)))
        }
        Some("forget") => {
            let id = memory::forget(&ctx, &words)?;
            if out.json {
                return out.json(&serde_json::json!({"type": "forgotten", "id": id}));
            }
            out.line(format!("forgot {}", short_id(&id)))
        }
        _ => {
            let limit = args
                .value(&LIMIT)
                .map(|v| {
                    v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        Error::usage(format!("--limit: expected a positive number, got {v:?}"))
                    })
                })
                .transpose()?;
            let found = memory::recall(&ctx, &words, limit)?;
            if out.json {
                for m in &found {
                    out.json(m)?;
                }
                return Ok(());
            }
            if found.is_empty() {
                return out.line(format!("no memories match {words:?}"));
            }
            for m in &found {
                let tags: String = m.tags.iter().map(|t| format!(" #{t}")).collect();
                let at = m.remembered_at.get(..16).unwrap_or(&m.remembered_at);
                out.line(format!(
                    "{}  {} {}{tags}",
                    short_id(&m.id),
                    m.remembered_by,
                    at.replace('T', " ")
                ))?;
                out.line(format!("  {}", m.snippet.replace('\n', " ")))?;
            }
            Ok(())
        }
    }
}
