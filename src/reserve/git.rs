//! What `cm-reserve` asks git: which repository this is (its scope), where in it we stand, what is staged, and
//! where its hooks live.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Runs `git ARGS` in `dir`; its stdout, or `None` when git says no (not a repository, no such key).
fn git(dir: &Path, args: &[&str]) -> Result<Option<Vec<u8>>> {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::from(e).context("running git"))?;
    Ok(o.status.success().then_some(o.stdout))
}

fn line(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b)
        .trim_end_matches('\n')
        .to_string()
}

/// A git repository, as seen from a directory in it.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The root of its work tree.
    pub root: PathBuf,
    /// Where the directory is under the root: `""` or `sub/dir/`.
    pub prefix: String,
    /// `remote.origin.url`, if set.
    pub origin: Option<String>,
    dir: PathBuf,
}

impl Repo {
    /// The repository `dir` is in; a usage error outside one.
    pub fn at(dir: &Path) -> Result<Repo> {
        let Some(root) = git(dir, &["rev-parse", "--show-toplevel"])? else {
            return Err(Error::usage(format!(
                "{} is not in a git work tree (run it in one, or give --repo SCOPE)",
                dir.display()
            )));
        };
        let prefix = git(dir, &["rev-parse", "--show-prefix"])?
            .map(line)
            .unwrap_or_default();
        let origin = git(dir, &["config", "--get", "remote.origin.url"])?
            .map(line)
            .filter(|s| !s.is_empty());
        Ok(Repo {
            root: PathBuf::from(line(root)),
            prefix,
            origin,
            dir: dir.to_path_buf(),
        })
    }

    /// The scope reservations of this repository are kept under: its `origin` remote, so every clone of it shares
    /// them, made one spelling ([`scope_of_url`]); the root's path when it has no `origin`.
    pub fn scope(&self) -> String {
        match &self.origin {
            Some(url) => scope_of_url(url, &self.root),
            None => self.root.display().to_string(),
        }
    }

    /// The paths the index holds changed against `HEAD`, renames as a deletion and an addition.
    pub fn staged(&self) -> Result<Vec<String>> {
        let out = git(
            &self.dir,
            &[
                "diff",
                "--cached",
                "--name-only",
                "-z",
                "--no-renames",
                "--no-ext-diff",
            ],
        )?
        .ok_or_else(|| Error::generic("git diff --cached failed"))?;
        Ok(out
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect())
    }

    /// The `pre-commit` hook's path (`core.hooksPath` honoured).
    pub fn hook_path(&self) -> Result<PathBuf> {
        let p = git(&self.dir, &["rev-parse", "--git-path", "hooks/pre-commit"])?
            .map(line)
            .ok_or_else(|| Error::generic("git rev-parse --git-path failed"))?;
        Ok(self.dir.join(p))
    }
}

/// One spelling of a remote's URL for every way of writing it: `https://github.com/a/b.git`,
/// `git@github.com:a/b` and `ssh://git@github.com/a/b/` are all `github.com/a/b`. A local path is made absolute
/// (relative to `root`) and keeps its own spelling without `.git`.
pub fn scope_of_url(url: &str, root: &Path) -> String {
    let u = url.trim();
    let strip = |s: &str| {
        let s = s.trim_end_matches('/');
        s.strip_suffix(".git").unwrap_or(s).to_string()
    };
    if let Some((scheme, rest)) = u.split_once("://") {
        if scheme == "file" {
            return strip(rest);
        }
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        return strip(&format!("{}/{path}", host.to_ascii_lowercase()));
    }
    // scp-like `user@host:path`: a colon before any slash.
    if let Some((host, path)) = u.split_once(':')
        && !host.contains('/')
    {
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        return strip(&format!(
            "{}/{}",
            host.to_ascii_lowercase(),
            path.trim_start_matches('/')
        ));
    }
    let p = Path::new(u);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    };
    strip(&abs.canonicalize().unwrap_or(abs).display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_scope_for_every_spelling_of_a_remote() {
        let root = Path::new("/nowhere");
        for u in [
            "https://github.com/a/b.git",
            "https://user@GitHub.com/a/b/",
            "git@github.com:a/b.git",
            "ssh://git@github.com/a/b",
            "github.com:a/b",
        ] {
            assert_eq!(scope_of_url(u, root), "github.com/a/b", "{u}");
        }
        assert_eq!(scope_of_url("/srv/git/x.git", root), "/srv/git/x");
        assert_eq!(scope_of_url("file:///srv/git/x.git", root), "/srv/git/x");
    }
}
