//! The vault: members' secrets, sealed before they arrive. An entry is its setter's (one per member and key) and
//! readable by the setter and by the members it names, each through the entry's key sealed to them.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, db};
use crate::error::Result;

/// An entry of the vault.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VaultRow {
    pub id: String,
    pub mesh_id: String,
    pub member_id: String,
    /// The setter's display name (read from the members table).
    pub owner_name: String,
    pub key: String,
    pub ciphertext: String,
    pub nonce: String,
    /// Sealed to the reader this row was read for (the setter's own on insert).
    pub sealed_key: String,
    pub entry_type: String,
    pub mount_path: Option<String>,
    pub description: Option<String>,
    pub updated_at: i64,
}

impl SqliteStore {
    /// Stores an entry with its readers (pubkey, sealed key), replacing the member's entry of the same key.
    pub(crate) fn vault_put(&mut self, e: &VaultRow, readers: &[(String, String)]) -> Result<()> {
        self.begin()?;
        let old: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT id FROM vault_entries WHERE mesh_id = ?1 AND member_id = ?2 AND key = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![e.mesh_id, e.member_id, e.key], |r| r.get(0))
                    .optional()
            })
            .map_err(db)?;
        let id = old.unwrap_or_else(|| e.id.clone());
        self.conn
            .prepare_cached(
                "INSERT INTO vault_entries (id, mesh_id, member_id, key, ciphertext, nonce, sealed_key, entry_type, \
                 mount_path, description, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (id) DO UPDATE SET ciphertext = excluded.ciphertext, nonce = excluded.nonce, \
                 sealed_key = excluded.sealed_key, entry_type = excluded.entry_type, \
                 mount_path = excluded.mount_path, description = excluded.description, \
                 updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    e.mesh_id,
                    e.member_id,
                    e.key,
                    e.ciphertext,
                    e.nonce,
                    e.sealed_key,
                    e.entry_type,
                    e.mount_path,
                    e.description,
                    e.updated_at
                ])
            })
            .map_err(db)?;
        self.conn
            .prepare_cached("DELETE FROM vault_readers WHERE entry_id = ?1")
            .and_then(|mut s| s.execute([&id]))
            .map_err(db)?;
        for (pk, sealed) in readers {
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO vault_readers (entry_id, mesh_id, pubkey, sealed_key) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute(params![id, e.mesh_id, pk, sealed]))
                .map_err(db)?;
        }
        Ok(())
    }

    /// The entries a member (by id and key) may read, its own first, each with the key sealed to it.
    pub(crate) fn vault_readable(
        &self,
        mesh_id: &str,
        member_id: &str,
        pubkey: &str,
    ) -> Result<Vec<VaultRow>> {
        self.conn
            .prepare_cached(
                "SELECT e.id, e.mesh_id, e.member_id, m.display_name, e.key, e.ciphertext, e.nonce, \
                 COALESCE(r.sealed_key, e.sealed_key), e.entry_type, e.mount_path, e.description, e.updated_at \
                 FROM vault_entries e JOIN members m ON m.id = e.member_id \
                 LEFT JOIN vault_readers r ON r.entry_id = e.id AND r.pubkey = ?3 AND e.member_id != ?2 \
                 WHERE e.mesh_id = ?1 AND (e.member_id = ?2 OR r.pubkey IS NOT NULL) \
                 ORDER BY e.member_id != ?2, e.key, m.display_name",
            )
            .and_then(|mut s| {
                s.query_map(params![mesh_id, member_id, pubkey], |r| {
                    Ok(VaultRow {
                        id: r.get(0)?,
                        mesh_id: r.get(1)?,
                        member_id: r.get(2)?,
                        owner_name: r.get(3)?,
                        key: r.get(4)?,
                        ciphertext: r.get(5)?,
                        nonce: r.get(6)?,
                        sealed_key: r.get(7)?,
                        entry_type: r.get(8)?,
                        mount_path: r.get(9)?,
                        description: r.get(10)?,
                        updated_at: r.get(11)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    /// The display names of an entry's readers.
    pub(crate) fn vault_reader_names(&self, entry_id: &str) -> Result<Vec<String>> {
        self.conn
            .prepare_cached(
                "SELECT COALESCE(m.display_name, r.pubkey) FROM vault_readers r JOIN vault_entries e ON e.id = r.entry_id \
                 LEFT JOIN members m ON m.mesh_id = e.mesh_id AND m.pubkey = r.pubkey \
                 WHERE r.entry_id = ?1 ORDER BY 1",
            )
            .and_then(|mut s| s.query_map([entry_id], |r| r.get(0))?.collect())
            .map_err(db)
    }

    /// Deletes a member's entry and its readers; false when there was none.
    pub(crate) fn vault_delete(
        &mut self,
        mesh_id: &str,
        member_id: &str,
        key: &str,
    ) -> Result<bool> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "DELETE FROM vault_readers WHERE entry_id IN \
                 (SELECT id FROM vault_entries WHERE mesh_id = ?1 AND member_id = ?2 AND key = ?3)",
            )
            .and_then(|mut s| s.execute(params![mesh_id, member_id, key]))
            .map_err(db)?;
        let n = self
            .conn
            .prepare_cached(
                "DELETE FROM vault_entries WHERE mesh_id = ?1 AND member_id = ?2 AND key = ?3",
            )
            .and_then(|mut s| s.execute(params![mesh_id, member_id, key]))
            .map_err(db)?;
        Ok(n == 1)
    }
}
