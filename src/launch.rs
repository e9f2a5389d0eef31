//! `cm-launch`: the command line that starts `claude` as a mesh session, and the session ids it uses.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::crypto;
use crate::error::{Error, Result};
use crate::install::SERVER;

/// How a launched session relates to Claude Code's own session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStart {
    /// A new conversation with this id (`--session-id`).
    New(String),
    /// Resume the conversation with this id (`--resume`); the mesh session uses the same id.
    Resume(String),
    /// Continue the newest conversation (`--continue`); the mesh session gets this fresh id.
    Continue(String),
}

impl SessionStart {
    /// The mesh session's id.
    pub fn id(&self) -> &str {
        match self {
            SessionStart::New(id) | SessionStart::Resume(id) | SessionStart::Continue(id) => id,
        }
    }
}

/// The argv that starts `claude` as a mesh session: the channel flag, the session flags, then `passthrough`.
pub fn launch_argv(claude: &str, start: &SessionStart, passthrough: &[String]) -> Vec<String> {
    let mut argv = vec![
        claude.to_string(),
        "--dangerously-load-development-channels".into(),
        format!("server:{SERVER}"),
    ];
    // Claude Code refuses --session-id together with --resume or --continue (unless forking).
    match start {
        SessionStart::New(id) => argv.extend(["--session-id".into(), id.clone()]),
        SessionStart::Resume(id) => argv.extend(["--resume".into(), id.clone()]),
        SessionStart::Continue(_) => argv.push("--continue".into()),
    }
    argv.extend(passthrough.iter().cloned());
    argv
}

/// Whether `claude_args` run Claude Code in print mode (`-p`, `--print`), where it ignores the channel flag.
pub fn prints(claude_args: &[String]) -> bool {
    claude_args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "-p" || a == "--print")
}

/// The `claude` binary: `$CLAUDE_BIN` (a path, or a name looked up on PATH), else `claude` on PATH.
pub fn find_claude() -> Result<PathBuf> {
    let not_found = || Error::generic("claude not found on PATH (set CLAUDE_BIN)");
    let name = std::env::var_os("CLAUDE_BIN").filter(|v| !v.is_empty());
    let name = name.as_deref().map_or(Path::new("claude"), Path::new);
    if name.components().count() > 1 {
        return if is_executable(name) {
            Ok(name.to_path_buf())
        } else {
            Err(Error::generic(format!(
                "CLAUDE_BIN={} is not an executable file",
                name.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").ok_or_else(not_found)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(not_found)
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A fresh random UUID v4, lower-case.
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = crypto::random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Whether `s` is a UUID in the 8-4-4-4-12 hex form.
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        let u = new_uuid();
        assert!(is_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        assert!("89ab".contains(&u[19..20]));
        assert_ne!(u, new_uuid());
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid("0e4f9b2a-1c3d-4e5f-8a9b-0c1d2e3f4a5"));
    }

    #[test]
    fn print_mode() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(prints(&v(&["-p", "hi"])));
        assert!(prints(&v(&["--model", "opus", "--print", "hi"])));
        assert!(!prints(&v(&["--model", "opus", "hi"])));
        assert!(!prints(&v(&["--", "-p"])));
    }

    #[test]
    fn argv() {
        let pass = vec!["--model".to_string(), "opus".to_string()];
        let a = launch_argv("/bin/claude", &SessionStart::New("u".into()), &pass);
        assert_eq!(
            a,
            [
                "/bin/claude",
                "--dangerously-load-development-channels",
                "server:claudemesh",
                "--session-id",
                "u",
                "--model",
                "opus"
            ]
        );
        let a = launch_argv("claude", &SessionStart::Resume("r".into()), &[]);
        assert_eq!(a[3..], ["--resume", "r"]);
        let a = launch_argv("claude", &SessionStart::Continue("c".into()), &[]);
        assert_eq!(a[3..], ["--continue"]);
    }
}
