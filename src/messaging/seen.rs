//! The ids `cm-inbox` has shown, per mesh and identity, so that no message is shown twice: not when its
//! acknowledgement was lost to a broker crash, not when the broker could not store it.
//!
//! One id per line in `inbox/<slug>.<who>.seen` (0600, directory 0700), appended as each line is written and
//! before it is acknowledged. It keeps the last [`KEEP`] ids: a message still pending after that many others
//! were shown would be shown again, which is better than never.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How many ids are kept.
pub const KEEP: usize = 10_000;

/// The shown ids of one mesh and identity.
pub struct Seen {
    path: PathBuf,
    ids: HashSet<String>,
    order: VecDeque<String>,
    file: File,
}

impl Seen {
    /// Reads `path` (missing: nothing shown yet) and opens it for appending; rewrites it when it holds twice
    /// [`KEEP`] ids.
    pub fn open(path: &Path) -> Result<Seen> {
        let fail = |e: std::io::Error| Error::from(e).context(path.display());
        if let Some(dir) = path.parent() {
            crate::config::ensure_private_dir(dir)?;
        }
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(fail(e)),
        };
        let all: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let kept = &all[all.len().saturating_sub(KEEP)..];
        let order: VecDeque<String> = kept.iter().map(|s| s.to_string()).collect();
        if all.len() >= 2 * KEEP {
            let tmp = path.with_extension("seen.tmp");
            let mut f = private(&tmp, true).map_err(fail)?;
            let body: String = order.iter().map(|id| format!("{id}\n")).collect();
            f.write_all(body.as_bytes()).map_err(fail)?;
            fs::rename(&tmp, path).map_err(fail)?;
        }
        let file = private(path, false).map_err(fail)?;
        Ok(Seen {
            path: path.to_path_buf(),
            ids: order.iter().cloned().collect(),
            order,
            file,
        })
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Remembers that `id` was shown.
    pub fn record(&mut self, id: &str) -> Result<()> {
        if !self.ids.insert(id.to_string()) {
            return Ok(());
        }
        self.order.push_back(id.to_string());
        if self.order.len() > KEEP
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.file
            .write_all(format!("{id}\n").as_bytes())
            .map_err(|e| Error::from(e).context(self.path.display()))
    }
}

fn private(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).mode(0o600);
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ids_outlive_the_process_and_stay_bounded() {
        let dir = std::env::temp_dir().join(format!("cm-seen-{}", std::process::id()));
        let path = dir.join("inbox").join("m.u.seen");
        let mut s = Seen::open(&path).unwrap();
        assert!(!s.contains("a"));
        s.record("a").unwrap();
        s.record("a").unwrap();
        drop(s);
        let mut s = Seen::open(&path).unwrap();
        assert!(s.contains("a"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "a\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for i in 0..2 * KEEP {
            s.record(&format!("id{i}")).unwrap();
        }
        assert!(!s.contains("a"));
        drop(s);
        let s = Seen::open(&path).unwrap();
        assert!(s.contains(&format!("id{}", 2 * KEEP - 1)));
        assert!(!s.contains("id0"));
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), KEEP);
        let _ = fs::remove_dir_all(&dir);
    }
}
