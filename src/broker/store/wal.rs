//! The WAL and its checkpoints: copied into the database file beside the event loop, and kept near a limit.

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::{SqliteStore, db};
use crate::error::{Error, Result};

/// How large the WAL may grow under steady writes before a commit checkpoints it inline, and the size SQLite cuts
/// it back to once it starts over.
pub(super) const WAL_LIMIT: u64 = 64 << 20;

/// The least time between two checkpoints: the commits of that time are copied in one round.
///
/// Why this short: each round copies what the loop committed since the last, and the loop's reads go through the
/// WAL's index for every page not yet copied; at 100 ms the event loop spent half again as much CPU per message.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);

/// Copies committed pages from the WAL into the database file, on a thread and a connection of its own, after
/// commits (an idle broker does not wake it).
///
/// Why not SQLite's automatic checkpoint: it runs inside the COMMIT that takes the WAL past 1000 pages, on the
/// event loop, and ends with an fsync, so every few hundred messages one batch of replies waited for the disk
/// (a sixth of the broker's time under load). A passive checkpoint takes no lock a writer needs, so it runs
/// beside the loop; commits are as durable as before, since they are in the WAL when COMMIT returns.
pub(super) struct Checkpointer {
    /// One message per commit; dropping it ends the thread.
    kick: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path, every: Duration) -> Result<Checkpointer> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        let (kick, kicks) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let mut warned = false;
                let mut pending = false;
                loop {
                    if !pending && kicks.recv().is_err() {
                        return;
                    }
                    pending = false;
                    let next = std::time::Instant::now() + every;
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        && !std::mem::replace(&mut warned, true)
                    {
                        crate::broker::log::warn("checkpoint failed", &[("error", &e)]);
                    }
                    loop {
                        let left = next.saturating_duration_since(std::time::Instant::now());
                        match kicks.recv_timeout(left) {
                            Ok(()) => pending = true,
                            Err(mpsc::RecvTimeoutError::Timeout) => break,
                            Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                }
            })
            .map_err(|e| Error::internal(format!("starting the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            kick: Some(kick),
            thread: Some(thread),
        })
    }

    /// Tells the thread that a commit added to the WAL.
    pub(super) fn kick(&self) {
        if let Some(k) = &self.kick {
            let _ = k.send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.kick.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl SqliteStore {
    /// Checkpoints inline once the WAL is past its limit.
    ///
    /// Why: SQLite starts the WAL over only when a writer finds every frame of it copied, and under steady writes
    /// the checkpoint thread is always a commit or two behind, so the file grew by every commit (a quarter of a
    /// gigabyte in 30,000 messages) until the load stopped. Here, between two commits, a passive checkpoint copies
    /// what the thread has not yet (little), and the next commit starts the WAL over.
    pub(super) fn bound_wal(&mut self) {
        let Some((wal, limit)) = &self.wal else {
            return;
        };
        let Some(size) = fs::metadata(wal)
            .ok()
            .map(|m| m.len())
            .filter(|s| s > limit)
        else {
            return;
        };
        let start = std::time::Instant::now();
        // (busy, frames in the WAL, frames copied): busy when the thread is at it; the next commit tries again.
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            }) {
            Ok((0, frames, copied)) => crate::broker::log::info(
                "checkpointed the WAL inline",
                &[
                    ("wal_bytes", &size),
                    ("frames", &frames),
                    ("copied", &copied),
                    ("ms", &start.elapsed().as_millis()),
                ],
            ),
            Ok(_) => {}
            Err(e) => crate::broker::log::warn("checkpoint failed", &[("error", &e)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{TempDir, copy, member, mesh, message, seeded};
    use super::*;
    use crate::broker::store::Store;

    #[test]
    fn committed_pages_reach_the_database_file_without_a_close() {
        let dir = TempDir::new("checkpoint");
        let mut s = seeded(&dir);
        let auto: i64 = s
            .conn()
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 0, "the checkpoint thread does it");
        let file = dir.0.join("broker.db");
        let before = std::fs::metadata(&file).unwrap().len();
        let big = "x".repeat(4096);
        for i in 0..100 {
            s.insert_message(
                &message(&format!("c{i}"), None, i),
                &[copy("b", None, &big)],
            )
            .unwrap();
        }
        s.commit().unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).unwrap().len() < before + 400 * 1024 {
            assert!(std::time::Instant::now() < until, "no checkpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_wal_stays_near_its_limit_under_steady_writes() {
        let dir = TempDir::new("walbound");
        // No checkpoint thread: only the bound keeps the WAL in check.
        let limit = 256 * 1024;
        let mut s = SqliteStore::open_with(&dir.0, None, limit).unwrap();
        s.create_mesh(&mesh("m1", "dev"), &member("a", "m1", "pa"))
            .unwrap();
        s.insert_member(&member("b", "m1", "pb")).unwrap();
        s.commit().unwrap();
        let wal = dir.0.join("broker.db-wal");
        let big = "x".repeat(4096);
        let mut largest = 0;
        for i in 0..300 {
            s.insert_message(
                &message(&format!("w{i}"), None, i),
                &[copy("b", None, &big)],
            )
            .unwrap();
            s.commit().unwrap();
            largest = largest.max(fs::metadata(&wal).unwrap().len());
        }
        assert!(
            largest < limit + 64 * 1024,
            "the WAL grew to {largest} bytes"
        );
        assert_eq!(s.pending("b", None, 1000).unwrap().len(), 300);
    }
}
