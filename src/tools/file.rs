//! `cm-file`: share a file end-to-end encrypted through the mesh's broker.

use std::path::Path;

use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag, pos};
use crate::client::Ctx;
use crate::error::{Error, Result};
use crate::files::{self, Share, human_size};
use crate::messaging::inbox::printable;
use crate::out::Out;

const TO: Flag = flag("to", "share with a peer, a key, @group or *")
    .value("TARGET")
    .complete(Complete::Peer);
const TOPIC: Flag = flag("topic", "share with a topic's members")
    .value("NAME")
    .complete(Complete::Topic);
const OUTPUT: Flag = flag(
    "output",
    "where to write it (a directory keeps the file's name)",
)
.short('o')
.value("PATH")
.complete(Complete::File);
const FORCE: Flag = flag("force", "replace an existing file");

/// `cm-file`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-file",
    about: "share files end-to-end encrypted through the mesh's broker",
    description: "cm-file put PATH encrypts a file on this machine and stores it on the mesh's broker. The file is \
cut into chunks, each sealed with crypto_secretbox under a fresh random key; the key is sealed separately to \
each recipient and to you, so the broker stores only ciphertext and never holds the key. The file is read, \
encrypted and sent a chunk at a time, so a large file never sits in memory whole. --to TARGET shares it with a \
peer, a key, @group or * (as cm-send takes them) and sends them a message naming it; without --to only you can \
read it. --topic NAME shares it with a topic's members where the broker has topics.

cm-file get ID downloads a file (ID may be its first 4 or more characters, when no other file's id starts so), checks its SHA-256 and every chunk's seal on the way, and writes it to the name \
it was stored under (only its last path component) in the current directory, or to -o PATH (a directory gets \
the name inside it). It refuses to replace an existing file unless --force is given. A file that was not shared \
with you is refused with exit status 7, and could not be decrypted anyway.

cm-file list shows the files you uploaded or that were shared with you, newest first. cm-file rm ID (or a unique \
start of it) deletes a file from the broker; only its uploader or an admin of the mesh may.

The broker refuses files over its --max-file-size (50 MB unless set otherwise) with a message that names the \
limit.

Exit status: 0 done, 3 bad arguments or a file over the size limit, 4 broker unreachable, 5 no such file, 6 the \
output file exists, 7 not shared with you or not yours to remove, 10 a local file could not be read or written, \
1 anything else.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "put",
            aliases: &["share", "upload"],
            about: "encrypt a file and store it on the broker",
            args: &[pos("PATH").complete(Complete::File)],
            flags: &[TO, TOPIC],
        },
        Sub {
            name: "get",
            aliases: &["download"],
            about: "download and decrypt a file",
            args: &[pos("ID")],
            flags: &[OUTPUT, FORCE],
        },
        Sub {
            name: "list",
            aliases: &["ls"],
            about: "list the files you uploaded or that were shared with you",
            args: &[],
            flags: &[],
        },
        Sub {
            name: "rm",
            aliases: &["remove", "delete"],
            about: "delete a file from the broker (uploader or admin)",
            args: &[pos("ID")],
            flags: &[],
        },
    ],
    mesh_flag: true,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-file put report.pdf --to bob",
            what: "Share a file with bob; he gets a message with the command to fetch it.",
        },
        Example {
            cmd: "cm-file put build.tar.gz --to @eng",
            what: "Share with every member of the eng group.",
        },
        Example {
            cmd: "cm-file get 3fZq9TkA0bC7dE1fG2hI4jK5lM6nO8pQ -o ~/Downloads",
            what: "Download and decrypt into a directory.",
        },
        Example {
            cmd: "cm-file list --json | jq -r '.id + \"  \" + .name'",
            what: "Ids and names of the files you can read.",
        },
    ],
    env: &[
        ("CLAUDEMESH_MESH", "The mesh to use when --mesh is not given."),
        (
            "CLAUDEMESH_SESSION_ID",
            "Inside a session started by cm launch: act as that session.",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    match args.sub {
        Some("put") => put(args, out),
        Some("get") => get(args, out),
        Some("list") => list(args, out),
        Some("rm") => rm(args, out),
        _ => Err(Error::usage(
            "missing command: put, get, list or rm; see 'cm-file --help'",
        )),
    }
}

fn put(args: &Args, out: &mut Out) -> Result<()> {
    let path = args
        .pos(0)
        .ok_or_else(|| Error::usage("missing PATH; see 'cm-file put --help'"))?;
    let share = match (args.value(&TO), args.value(&TOPIC)) {
        (Some(_), Some(_)) => return Err(Error::usage("give --to or --topic, not both")),
        (Some(t), None) => Share::To(t.to_string()),
        (None, Some(t)) => Share::Topic(t.to_string()),
        (None, None) => Share::Me,
    };
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let r = files::put(&ctx, Path::new(path), &share)?;
    if out.json {
        out.json(&r)
    } else {
        out.line(r.words())
    }
}

fn get(args: &Args, out: &mut Out) -> Result<()> {
    let id = args
        .pos(0)
        .ok_or_else(|| Error::usage("missing ID; see 'cm-file list'"))?;
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let r = files::get(
        &ctx,
        id,
        args.value(&OUTPUT).map(Path::new),
        args.has(&FORCE),
    )?;
    if out.json {
        out.json(&r)
    } else {
        out.line(format!(
            "saved {} ({}) to {}",
            printable(&r.name),
            human_size(r.size),
            r.path
        ))
    }
}

fn list(args: &Args, out: &mut Out) -> Result<()> {
    let ctx = Ctx::load(args.mesh.as_deref())?;
    let files = files::list(&ctx)?;
    if out.json {
        return files.iter().try_for_each(|f| out.json(f));
    }
    if files.is_empty() {
        return out.line(format!("no files in mesh {}", ctx.mesh.slug));
    }
    for f in &files {
        let when = crate::time::parse_rfc3339(&f.created_at)
            .map(|ms| crate::out::local_time(ms, crate::time::now_ms()))
            .unwrap_or_else(|_| f.created_at.clone());
        out.line(format!(
            "{}  {:>8}  {}  from {}  {when}",
            f.id,
            human_size(f.size),
            printable(&f.name),
            printable(&f.uploaded_by)
        ))?;
    }
    Ok(())
}

fn rm(args: &Args, out: &mut Out) -> Result<()> {
    let id = args
        .pos(0)
        .ok_or_else(|| Error::usage("missing ID; see 'cm-file list'"))?;
    let ctx = Ctx::load(args.mesh.as_deref())?;
    files::rm(&ctx, id)?;
    if out.json {
        out.json(&serde_json::json!({"type": "file_removed", "id": id, "mesh": ctx.mesh.slug}))
    } else {
        out.line(format!("removed {id}"))
    }
}
