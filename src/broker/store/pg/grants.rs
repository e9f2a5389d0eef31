//! Grants and blocks, each decided by a member about another (or, for a grant, about everyone: `*`).

use super::{At, BlockRow, GrantRow, PgStore};
use crate::error::Result;

impl PgStore {
    pub(crate) fn grants_all(&self) -> Result<Vec<GrantRow>> {
        self.all(
            "SELECT mesh_id, member_id, peer, cap, allow, updated_at FROM grants \
             ORDER BY member_id, peer, cap",
            &[],
            |r| {
                Ok(GrantRow {
                    mesh_id: r.at(0)?,
                    member_id: r.at(1)?,
                    peer: r.at(2)?,
                    cap: r.at(3)?,
                    allow: r.at(4)?,
                    updated_at: r.at(5)?,
                })
            },
        )
    }

    pub(crate) fn blocks_all(&self) -> Result<Vec<BlockRow>> {
        self.all(
            "SELECT mesh_id, member_id, peer, created_at FROM blocks ORDER BY member_id, peer",
            &[],
            |r| {
                Ok(BlockRow {
                    mesh_id: r.at(0)?,
                    member_id: r.at(1)?,
                    peer: r.at(2)?,
                    created_at: r.at(3)?,
                })
            },
        )
    }

    pub(crate) fn grant_put(&mut self, g: &GrantRow) -> Result<()> {
        self.exec(
            "INSERT INTO grants (mesh_id, member_id, peer, cap, allow, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (member_id, peer, cap) \
             DO UPDATE SET allow = excluded.allow, updated_at = excluded.updated_at",
            &[
                &g.mesh_id,
                &g.member_id,
                &g.peer,
                &g.cap,
                &g.allow,
                &g.updated_at,
            ],
        )?;
        Ok(())
    }

    pub(crate) fn block_put(&mut self, b: &BlockRow) -> Result<()> {
        self.exec(
            "INSERT INTO blocks (mesh_id, member_id, peer, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (member_id, peer) DO NOTHING",
            &[&b.mesh_id, &b.member_id, &b.peer, &b.created_at],
        )?;
        Ok(())
    }

    pub(crate) fn block_delete(&mut self, member_id: &str, peer: &str) -> Result<bool> {
        self.exec(
            "DELETE FROM blocks WHERE member_id = $1 AND peer = $2",
            &[&member_id, &peer],
        )
        .map(|n| n > 0)
    }
}
