//! Files: each file's row and its key sealed per recipient (the ciphertext itself is in `<data>/files/`).

use postgres::Row;

use super::{At, FileRow, PgStore};
use crate::error::Result;

const FILE_SELECT: &str = "SELECT f.id, f.mesh_id, f.name, f.size, f.chunk_size, f.sha256, f.uploader_member_id, \
    f.uploader_pubkey, f.target_spec, f.created_at, COALESCE(m.display_name, ''), \
    (SELECT count(*) FROM file_keys k WHERE k.file_id = f.id) \
    FROM files f LEFT JOIN members m ON m.id = f.uploader_member_id";

fn file_row(r: &Row) -> Result<FileRow> {
    Ok(FileRow {
        id: r.at(0)?,
        mesh_id: r.at(1)?,
        name: r.at(2)?,
        size: r.at(3)?,
        chunk_size: r.at(4)?,
        sha256: r.at(5)?,
        uploader_member_id: r.at(6)?,
        uploader_pubkey: r.at(7)?,
        target_spec: r.at(8)?,
        created_at: r.at(9)?,
        uploader_name: r.at(10)?,
        recipients: r.at(11)?,
    })
}

impl PgStore {
    pub(crate) fn insert_file(&mut self, f: &FileRow, keys: &[(String, String)]) -> Result<()> {
        self.write(|c| {
            c.execute(
                "INSERT INTO files (id, mesh_id, name, size, chunk_size, sha256, uploader_member_id, uploader_pubkey, \
                 target_spec, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &f.id,
                    &f.mesh_id,
                    &f.name,
                    &f.size,
                    &f.chunk_size,
                    &f.sha256,
                    &f.uploader_member_id,
                    &f.uploader_pubkey,
                    &f.target_spec,
                    &f.created_at,
                ],
            )?;
            for (pubkey, sealed) in keys {
                c.execute(
                    "INSERT INTO file_keys (file_id, recipient_pubkey, sealed_key) VALUES ($1, $2, $3) \
                     ON CONFLICT (file_id, recipient_pubkey) DO UPDATE SET sealed_key = excluded.sealed_key",
                    &[&f.id, pubkey, sealed],
                )?;
            }
            Ok(())
        })
    }

    pub(crate) fn file(&self, id: &str) -> Result<Option<FileRow>> {
        self.opt(&format!("{FILE_SELECT} WHERE f.id = $1"), &[&id], file_row)
    }

    pub(crate) fn file_key(&self, file_id: &str, pubkey: &str) -> Result<Option<String>> {
        self.opt(
            "SELECT sealed_key FROM file_keys WHERE file_id = $1 AND recipient_pubkey = $2",
            &[&file_id, &pubkey],
            |r| r.at(0),
        )
    }

    pub(crate) fn files_for(
        &self,
        mesh_id: &str,
        member_id: &str,
        keys: &[&str],
    ) -> Result<Vec<FileRow>> {
        self.all(
            &format!(
                "{FILE_SELECT} WHERE f.mesh_id = $1 AND (f.uploader_member_id = $2 OR EXISTS (SELECT 1 FROM \
                 file_keys k WHERE k.file_id = f.id AND k.recipient_pubkey = ANY($3))) \
                 ORDER BY f.created_at DESC, f.id"
            ),
            &[&mesh_id, &member_id, &keys],
            file_row,
        )
    }

    pub(crate) fn delete_file(&mut self, id: &str) -> Result<()> {
        self.exec("DELETE FROM file_chunks WHERE file_id = $1", &[&id])?;
        self.exec("DELETE FROM files WHERE id = $1", &[&id])
            .map(drop)
    }

    pub(crate) fn put_file_chunk(
        &mut self,
        file_id: &str,
        seq: i64,
        data: &[u8],
        now: i64,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO file_chunks (file_id, seq, data, created_at) VALUES ($1, $2, $3, $4)",
            &[&file_id, &seq, &data, &now],
        )
        .map(drop)
    }

    pub(crate) fn file_chunk(&self, file_id: &str, seq: i64) -> Result<Option<Vec<u8>>> {
        self.opt(
            "SELECT data FROM file_chunks WHERE file_id = $1 AND seq = $2",
            &[&file_id, &seq],
            |r| r.at(0),
        )
    }

    pub(crate) fn drop_file_chunks(&mut self, file_id: &str) -> Result<()> {
        self.exec("DELETE FROM file_chunks WHERE file_id = $1", &[&file_id])
            .map(drop)
    }

    pub(crate) fn sweep_file_chunks(&mut self, before: i64) -> Result<()> {
        self.exec(
            "DELETE FROM file_chunks c WHERE c.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM files f WHERE f.id = c.file_id)",
            &[&before],
        )
        .map(drop)
    }
}
