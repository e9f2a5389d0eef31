//! `cm` as a multicall binary, as busybox and uutils coreutils are: every tool but `cm-broker` is one executable,
//! run by the name it is called by (`cm-send` is a link to `cm`), or as `cm send`.
//!
//! One executable links tungstenite, rustls and ring once rather than once per tool: an install a tenth the size
//! and a link step a tool's length instead of twenty-three. `cm-broker` stays apart: it is deployed alone and keeps
//! SQLite out of the clients.
//!
//! `cargo install` puts `cm` and `cm-broker` in its bin directory and nothing else, so [`make_links`] (`cm links`,
//! and `cm up` on the way) makes the `cm-*` links beside `cm`. Without them everything still works as `cm VERB`,
//! and what is registered elsewhere (Claude Code's MCP server and hooks) is written in that form ([`command`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::cli::{Run, Tool};
use crate::error::{Error, Result};
use crate::tools;

/// The tools this executable is, with their entry points: every client tool (`cm` itself apart).
pub static TOOLS: &[(&Tool, Run)] = &[
    (&tools::apikey::TOOL, tools::apikey::run),
    (&tools::bench::TOOL, tools::bench::run),
    (&tools::bridge::TOOL, tools::bridge::run),
    (&tools::context::TOOL, tools::context::run),
    (&tools::doctor::TOOL, tools::doctor::run),
    (&tools::file::TOOL, tools::file::run),
    (&tools::grant::TOOL, tools::grant::run),
    (&tools::id::TOOL, tools::id::run),
    (&tools::inbox::TOOL, tools::inbox::run),
    (&tools::install::TOOL, tools::install::run),
    (&tools::launch::TOOL, tools::launch::run),
    (&tools::mcp::TOOL, tools::mcp::run),
    (&tools::memory::TOOL, tools::memory::run),
    (&tools::mesh::TOOL, tools::mesh::run),
    (&tools::notify::TOOL, tools::notify::run),
    (&tools::peers::TOOL, tools::peers::run),
    (&tools::pipe::TOOL, tools::pipe::run),
    (&tools::profile::TOOL, tools::profile::run),
    (&tools::remind::TOOL, tools::remind::run),
    (&tools::reserve::TOOL, tools::reserve::run),
    (&tools::send::TOOL, tools::send::run),
    (&tools::state::TOOL, tools::state::run),
    (&tools::task::TOOL, tools::task::run),
    (&tools::topic::TOOL, tools::topic::run),
    (&tools::uninstall::TOOL, tools::uninstall::run),
    (&tools::up::TOOL, tools::up::run),
    (&tools::vault::TOOL, tools::vault::run),
    (&tools::webhook::TOOL, tools::webhook::run),
];

/// The built-in tool called `name` (`cm-send`).
pub fn tool(name: &str) -> Option<(&'static Tool, Run)> {
    TOOLS.iter().find(|(t, _)| t.name == name).copied()
}

/// The entry point: the tool named by how this executable was called, else `cm`.
pub fn main() -> ! {
    let mut args = std::env::args_os();
    let called = args
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    match tool(&called) {
        Some((t, run)) => crate::cli::main_with(t, run, args),
        None => crate::cli::main_with(&tools::cm::TOOL, tools::cm::run, args),
    }
}

/// This executable, its links resolved.
pub fn cm_path() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::from(e).context("finding this program's own path"))?;
    Ok(exe.canonicalize().unwrap_or(exe))
}

/// How another program runs a built-in tool: its link beside `cm` when there is one, else `cm VERB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
}

/// How to run the tool `name` from outside (Claude Code's config, a benchmark's child): the link beside `cm`,
/// else `cm` itself with the verb, so it works with links or without.
pub fn command(name: &str) -> Command {
    let Ok(cm) = cm_path() else {
        return Command {
            program: name.to_string(),
            args: Vec::new(),
        };
    };
    let link = cm.with_file_name(name);
    if link.is_file() {
        return Command {
            program: link.display().to_string(),
            args: Vec::new(),
        };
    }
    Command {
        program: cm.display().to_string(),
        args: vec![name.trim_start_matches("cm-").to_string()],
    }
}

/// Where the executable `name` (`cm-broker`, someone's `cm-VERB`) is: beside the running `cm` first, so a
/// toolkit unpacked anywhere uses its own, then on `PATH`.
pub fn find(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name));
    beside.into_iter().chain(on_path).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// What [`make_links`] did with one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// There was nothing; a link was made.
    Made,
    /// A link to this `cm` was there already.
    Kept,
    /// Something else of ours was there (an older install's binary, a link to another `cm`): replaced.
    Replaced,
    /// A file that is not ours: left alone.
    Foreign,
}

/// Of what [`make_links`] did: how many links are new (made or replaced), and the names it left alone.
pub fn summary(done: &[(&'static str, Link)]) -> (usize, Vec<&'static str>) {
    let new = done
        .iter()
        .filter(|(_, w)| matches!(w, Link::Made | Link::Replaced))
        .count();
    let foreign = done
        .iter()
        .filter(|(_, w)| *w == Link::Foreign)
        .map(|(n, _)| *n)
        .collect();
    (new, foreign)
}

/// Makes `dir/cm-TOOL` a symbolic link to `cm` for every built-in tool, and says what it did with each. Run
/// again it changes nothing; a file of that name that is not claudemesh's is never touched. The link is
/// relative when `cm` is in `dir`, so the directory can move.
pub fn make_links(dir: &Path, cm: &Path) -> Result<Vec<(&'static str, Link)>> {
    let target = if cm.parent() == Some(dir) {
        PathBuf::from(cm.file_name().unwrap_or_default())
    } else {
        cm.to_path_buf()
    };
    let cm_real = cm.canonicalize().unwrap_or_else(|_| cm.to_path_buf());
    let mut done = Vec::with_capacity(TOOLS.len());
    for (t, _) in TOOLS {
        let path = dir.join(t.name);
        let what = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Link::Made,
            Err(e) => {
                return Err(Error::from(e).context(format!("looking at {}", path.display())));
            }
            Ok(m) if m.file_type().is_symlink() => {
                if path.canonicalize().ok().as_deref() == Some(cm_real.as_path()) {
                    Link::Kept
                } else if std::fs::read_link(&path).is_ok_and(|to| is_ours(&dir.join(to))) {
                    Link::Replaced
                } else {
                    Link::Foreign
                }
            }
            Ok(_) if is_ours(&path) => Link::Replaced,
            Ok(_) => Link::Foreign,
        };
        if matches!(what, Link::Made | Link::Replaced) {
            link(&target, &path)?;
        }
        done.push((t.name, what));
    }
    Ok(done)
}

/// Puts a symbolic link at `path` in one step: made beside it, then renamed over whatever is there.
fn link(target: &Path, path: &Path) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::from(e).context(format!("making the link {}", path.display()))
        })
}

/// Whether `path` is a claudemesh executable (an older install's tool, or a `cm` elsewhere): every one of them
/// carries the name of the config directory's variable.
fn is_ours(path: &Path) -> bool {
    const MARK: &[u8] = b"CLAUDEMESH_CONFIG_DIR";
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail = Vec::<u8>::new();
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        tail.extend_from_slice(&buf[..n]);
        if tail.windows(MARK.len()).any(|w| w == MARK) {
            return true;
        }
        let keep = tail.len().saturating_sub(MARK.len());
        tail.drain(..keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cm-links-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn links_are_made_once_and_nothing_foreign_is_touched() {
        let d = tmp("once");
        let cm = d.join("cm");
        std::fs::write(&cm, b"#!/bin/sh\n# CLAUDEMESH_CONFIG_DIR\n").unwrap();
        // A user's own script named like a tool, and an older install's binary.
        std::fs::write(d.join("cm-peers"), b"#!/bin/sh\necho mine\n").unwrap();
        std::fs::write(d.join("cm-send"), b"old build: CLAUDEMESH_CONFIG_DIR").unwrap();
        let first = make_links(&d, &cm).unwrap();
        let of = |r: &[(&str, Link)], n: &str| r.iter().find(|(t, _)| *t == n).unwrap().1;
        assert_eq!(of(&first, "cm-peers"), Link::Foreign);
        assert_eq!(of(&first, "cm-send"), Link::Replaced);
        assert_eq!(of(&first, "cm-inbox"), Link::Made);
        assert_eq!(
            std::fs::read(d.join("cm-peers")).unwrap(),
            b"#!/bin/sh\necho mine\n"
        );
        assert_eq!(
            std::fs::read_link(d.join("cm-inbox")).unwrap(),
            PathBuf::from("cm")
        );
        let again = make_links(&d, &cm).unwrap();
        assert!(
            again.iter().all(|(t, l)| *l
                == if *t == "cm-peers" {
                    Link::Foreign
                } else {
                    Link::Kept
                }),
            "{again:?}"
        );
        assert!(!d.join("cm-broker").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
