//! Grants and blocks: what a member lets another (or everyone) do to it, and whom it hears nothing from.
//!
//! Plain SQL only (an upsert by `ON CONFLICT`, no SQLite functions), so the PostgreSQL store ports it as it is.
//! The hub reads every row once when it opens and keeps them in memory; these writes are what outlives it.

use rusqlite::params;

use super::{SqliteStore, db};
use crate::error::Result;

/// One decision of a member about a capability of a peer: allowed or refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrantRow {
    pub mesh_id: String,
    /// The member that decides.
    pub member_id: String,
    /// The member id it decides about, or `*`: everyone without a row of their own.
    pub peer: String,
    /// `dm`, `broadcast`, `now` or `files`.
    pub cap: String,
    pub allow: bool,
    pub updated_at: i64,
}

/// A member (`member_id`) that hears nothing from another (`peer`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockRow {
    pub mesh_id: String,
    pub member_id: String,
    pub peer: String,
    pub created_at: i64,
}

impl SqliteStore {
    /// Every grant of every mesh.
    pub(crate) fn grants_all(&self) -> Result<Vec<GrantRow>> {
        self.conn
            .prepare_cached(
                "SELECT mesh_id, member_id, peer, cap, allow, updated_at FROM grants \
                 ORDER BY member_id, peer, cap",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(GrantRow {
                        mesh_id: r.get(0)?,
                        member_id: r.get(1)?,
                        peer: r.get(2)?,
                        cap: r.get(3)?,
                        allow: r.get::<_, i64>(4)? != 0,
                        updated_at: r.get(5)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    /// Every block of every mesh.
    pub(crate) fn blocks_all(&self) -> Result<Vec<BlockRow>> {
        self.conn
            .prepare_cached(
                "SELECT mesh_id, member_id, peer, created_at FROM blocks ORDER BY member_id, peer",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(BlockRow {
                        mesh_id: r.get(0)?,
                        member_id: r.get(1)?,
                        peer: r.get(2)?,
                        created_at: r.get(3)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    /// Stores a grant, replacing the member's earlier decision about that peer and capability.
    pub(crate) fn grant_put(&mut self, g: &GrantRow) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO grants (mesh_id, member_id, peer, cap, allow, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (member_id, peer, cap) \
                 DO UPDATE SET allow = excluded.allow, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    g.mesh_id,
                    g.member_id,
                    g.peer,
                    g.cap,
                    i64::from(g.allow),
                    g.updated_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    /// Stores a block; blocking a member twice keeps the first time.
    pub(crate) fn block_put(&mut self, b: &BlockRow) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO blocks (mesh_id, member_id, peer, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (member_id, peer) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![b.mesh_id, b.member_id, b.peer, b.created_at]))
            .map_err(db)?;
        Ok(())
    }

    /// Deletes a block; false when there was none.
    pub(crate) fn block_delete(&mut self, member_id: &str, peer: &str) -> Result<bool> {
        self.begin()?;
        self.conn
            .prepare_cached("DELETE FROM blocks WHERE member_id = ?1 AND peer = ?2")
            .and_then(|mut s| s.execute([member_id, peer]))
            .map(|n| n > 0)
            .map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{both_stores, seeded_in};
    use super::*;

    both_stores! {
        fn grants_and_blocks_are_replaced_in_place_and_read_back_after_reopening(db) {
            drop(seeded_in(db));
            let mut s = db.open();
            let (mesh, alice, bob) = ("m1".to_string(), "a".to_string(), "b".to_string());
            let g = |peer: &str, cap: &str, allow: bool, at: i64| GrantRow {
                mesh_id: mesh.clone(),
                member_id: alice.clone(),
                peer: peer.to_string(),
                cap: cap.to_string(),
                allow,
                updated_at: at,
            };
            s.grant_put(&g(&bob, "now", true, 1)).unwrap();
            s.grant_put(&g(&bob, "now", false, 2)).unwrap();
            s.grant_put(&g("*", "dm", false, 3)).unwrap();
            let b = BlockRow {
                mesh_id: mesh.clone(),
                member_id: alice.clone(),
                peer: bob.clone(),
                created_at: 4,
            };
            s.block_put(&b).unwrap();
            s.block_put(&BlockRow {
                created_at: 5,
                ..b.clone()
            })
            .unwrap();
            s.commit().unwrap();
            drop(s);
            let mut s = db.open();
            assert_eq!(
                s.grants_all().unwrap(),
                vec![g("*", "dm", false, 3), g(&bob, "now", false, 2)]
            );
            assert_eq!(s.blocks_all().unwrap(), vec![b]);
            assert!(s.block_delete(&alice, &bob).unwrap());
            assert!(!s.block_delete(&alice, &bob).unwrap());
            assert!(s.blocks_all().unwrap().is_empty());
        }
    }
}
