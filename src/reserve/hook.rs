//! The pre-commit hook: `cm-reserve check --hook` before every commit, so a commit touching a path another
//! member holds exclusively is refused with the holder's name and reason. `git commit --no-verify` skips it.
//!
//! A hook the user had is never edited: installing renames it to `pre-commit.claudemesh-user`, which ours runs
//! after its own check (with the same arguments, as git would have), and uninstalling renames it back. A rename
//! keeps every byte, the mode and a symbolic link as they were, so what was there before comes back exactly.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::Repo;
use crate::error::{Error, Result};

/// The line that marks a hook as ours.
const MARK: &str = "# claudemesh pre-commit hook:";
/// Where the user's own hook waits while ours is installed, beside it.
const SAVED: &str = "pre-commit.claudemesh-user";

/// What install or uninstall did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Installed; the user's hook, if there was one, is kept aside and run after ours.
    Installed {
        hook: PathBuf,
        kept: Option<PathBuf>,
    },
    /// Ours was there already and is rewritten.
    Updated { hook: PathBuf },
    /// Removed; the user's hook, if there was one, is back.
    Removed {
        hook: PathBuf,
        restored: Option<PathBuf>,
    },
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The hook's text: it runs `command` (the program and its first arguments) with `check --hook`.
pub fn script(command: &[String], mesh: Option<&str>) -> String {
    let program = command.first().map(String::as_str).unwrap_or("cm-reserve");
    let mut run: Vec<String> = command.iter().map(|s| quote(s)).collect();
    run.extend(["check".into(), "--hook".into()]);
    if let Some(m) = mesh {
        run.extend(["--mesh".into(), quote(m)]);
    }
    format!(
        "#!/bin/sh\n\
{MARK} refuses a commit that touches a path another member of the mesh\n\
# holds exclusively (cm-reserve(1)). `git commit --no-verify` skips it; `cm-reserve hook uninstall` removes it\n\
# and gives back the hook that was here before, which runs after this check meanwhile.\n\
if [ -x {program} ]; then\n\
    {run} || exit $?\n\
else\n\
    echo \"claudemesh pre-commit: \"{program}\" is gone; reservations not checked\" >&2\n\
fi\n\
user=\"$(dirname \"$0\")/{SAVED}\"\n\
if [ -x \"$user\" ]; then\n\
    exec \"$user\" \"$@\"\n\
fi\n",
        program = quote(program),
        run = run.join(" "),
    )
}

fn ours(path: &Path) -> Result<Option<bool>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).contains(MARK))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        // A dangling symbolic link is the user's hook too.
        Err(_) if fs::symlink_metadata(path).is_ok() => Ok(Some(false)),
        Err(e) => Err(Error::from(e).context(path.display())),
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

fn write_hook(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::from(e).context(dir.display()))?;
    }
    let tmp = path.with_file_name(".pre-commit.claudemesh-tmp");
    fs::write(&tmp, text).map_err(|e| Error::from(e).context(tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| Error::from(e).context(path.display()))
}

/// Installs the hook in `repo`, running `command` (see [`script`]).
pub fn install(repo: &Repo, command: &[String], mesh: Option<&str>) -> Result<Done> {
    let hook = repo.hook_path()?;
    let saved = hook.with_file_name(SAVED);
    let text = script(command, mesh);
    match ours(&hook)? {
        Some(true) => {
            write_hook(&hook, &text)?;
            Ok(Done::Updated { hook })
        }
        Some(false) => {
            if exists(&saved) {
                return Err(Error::exists(format!(
                    "{} exists already; move it away, then install again",
                    saved.display()
                )));
            }
            fs::rename(&hook, &saved).map_err(|e| Error::from(e).context(hook.display()))?;
            if let Err(e) = write_hook(&hook, &text) {
                // Give the user's hook back rather than leave a repository without one.
                let _ = fs::rename(&saved, &hook);
                return Err(e);
            }
            Ok(Done::Installed {
                hook,
                kept: Some(saved),
            })
        }
        None => {
            write_hook(&hook, &text)?;
            Ok(Done::Installed { hook, kept: None })
        }
    }
}

/// Removes the hook from `repo` and puts back the one it kept aside.
pub fn uninstall(repo: &Repo) -> Result<Done> {
    let hook = repo.hook_path()?;
    let saved = hook.with_file_name(SAVED);
    match ours(&hook)? {
        Some(true) => {}
        Some(false) => {
            return Err(Error::not_found(format!(
                "{} is not claudemesh's; left as it is",
                hook.display()
            )));
        }
        None => {
            return Err(Error::not_found(format!(
                "no claudemesh pre-commit hook in {}",
                repo.root.display()
            )));
        }
    }
    fs::remove_file(&hook).map_err(|e| Error::from(e).context(hook.display()))?;
    if !exists(&saved) {
        return Ok(Done::Removed {
            hook,
            restored: None,
        });
    }
    fs::rename(&saved, &hook).map_err(|e| Error::from(e).context(saved.display()))?;
    Ok(Done::Removed {
        hook: hook.clone(),
        restored: Some(hook),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_what_it_runs() {
        let s = script(&["/opt/it's/cm".into(), "reserve".into()], Some("dev"));
        assert!(s.starts_with("#!/bin/sh\n"), "{s}");
        assert!(s.contains(MARK));
        assert!(
            s.contains(r"'/opt/it'\''s/cm' 'reserve' check --hook --mesh 'dev' || exit $?"),
            "{s}"
        );
    }
}
