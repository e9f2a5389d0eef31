//! The vault: members' secrets, sealed before they arrive, and the readers each entry's key is sealed to.

use super::{At, PgStore, VaultRow};
use crate::error::Result;

impl PgStore {
    pub(crate) fn vault_put(&mut self, e: &VaultRow, readers: &[(String, String)]) -> Result<()> {
        self.write(|c| {
            // The member's entry of this key keeps its id: readers' rows and file links name it.
            let id: String = c
                .query(
                    "INSERT INTO vault_entries (id, mesh_id, member_id, key, ciphertext, nonce, sealed_key, \
                     entry_type, mount_path, description, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (mesh_id, member_id, key) DO UPDATE SET ciphertext = excluded.ciphertext, \
                     nonce = excluded.nonce, sealed_key = excluded.sealed_key, entry_type = excluded.entry_type, \
                     mount_path = excluded.mount_path, description = excluded.description, \
                     updated_at = excluded.updated_at RETURNING id",
                    &[
                        &e.id,
                        &e.mesh_id,
                        &e.member_id,
                        &e.key,
                        &e.ciphertext,
                        &e.nonce,
                        &e.sealed_key,
                        &e.entry_type,
                        &e.mount_path,
                        &e.description,
                        &e.updated_at,
                    ],
                )?
                .first()
                .ok_or_else(|| crate::error::Error::io("database: INSERT ... RETURNING gave no row"))?
                .at(0)?;
            c.execute("DELETE FROM vault_readers WHERE entry_id = $1", &[&id])?;
            for (pk, sealed) in readers {
                c.execute(
                    "INSERT INTO vault_readers (entry_id, mesh_id, pubkey, sealed_key) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (entry_id, pubkey) DO UPDATE SET sealed_key = excluded.sealed_key",
                    &[&id, &e.mesh_id, pk, sealed],
                )?;
            }
            Ok(())
        })
    }

    pub(crate) fn vault_readable(
        &self,
        mesh_id: &str,
        member_id: &str,
        pubkey: &str,
    ) -> Result<Vec<VaultRow>> {
        self.all(
            "SELECT e.id, e.mesh_id, e.member_id, m.display_name, e.key, e.ciphertext, e.nonce, \
             COALESCE(r.sealed_key, e.sealed_key), e.entry_type, e.mount_path, e.description, e.updated_at \
             FROM vault_entries e JOIN members m ON m.id = e.member_id \
             LEFT JOIN vault_readers r ON r.entry_id = e.id AND r.pubkey = $3 AND e.member_id != $2 \
             WHERE e.mesh_id = $1 AND (e.member_id = $2 OR r.pubkey IS NOT NULL) \
             ORDER BY e.member_id != $2, e.key, m.display_name",
            &[&mesh_id, &member_id, &pubkey],
            |r| {
                Ok(VaultRow {
                    id: r.at(0)?,
                    mesh_id: r.at(1)?,
                    member_id: r.at(2)?,
                    owner_name: r.at(3)?,
                    key: r.at(4)?,
                    ciphertext: r.at(5)?,
                    nonce: r.at(6)?,
                    sealed_key: r.at(7)?,
                    entry_type: r.at(8)?,
                    mount_path: r.at(9)?,
                    description: r.at(10)?,
                    updated_at: r.at(11)?,
                })
            },
        )
    }

    pub(crate) fn vault_reader_names(&self, entry_id: &str) -> Result<Vec<String>> {
        self.all(
            "SELECT COALESCE(m.display_name, r.pubkey) AS name FROM vault_readers r \
             JOIN vault_entries e ON e.id = r.entry_id \
             LEFT JOIN members m ON m.mesh_id = e.mesh_id AND m.pubkey = r.pubkey \
             WHERE r.entry_id = $1 ORDER BY 1",
            &[&entry_id],
            |r| r.at(0),
        )
    }

    pub(crate) fn vault_delete(
        &mut self,
        mesh_id: &str,
        member_id: &str,
        key: &str,
    ) -> Result<bool> {
        // Its readers go with it (ON DELETE CASCADE).
        let n = self.exec(
            "DELETE FROM vault_entries WHERE mesh_id = $1 AND member_id = $2 AND key = $3",
            &[&mesh_id, &member_id, &key],
        )?;
        Ok(n == 1)
    }
}
