//! Files: each file's row and its key sealed per recipient (the ciphertext itself is in `<data>/files/`).

use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, db};
use crate::error::{Error, Result};

/// A stored file: its metadata and where its ciphertext came from (the bytes are in `<data>/files/<id>`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub id: String,
    pub mesh_id: String,
    pub name: String,
    /// Plaintext bytes.
    pub size: i64,
    /// Plaintext bytes per chunk.
    pub chunk_size: i64,
    /// Hex SHA-256 of the ciphertext.
    pub sha256: String,
    pub uploader_member_id: String,
    /// The key the uploading socket spoke as.
    pub uploader_pubkey: String,
    pub target_spec: Option<String>,
    pub created_at: i64,
    /// The uploader's display name (read only; ignored on insert).
    pub uploader_name: String,
    /// How many keys the file is sealed to (read only; ignored on insert).
    pub recipients: i64,
}

const FILE_SELECT: &str = "SELECT f.id, f.mesh_id, f.name, f.size, f.chunk_size, f.sha256, f.uploader_member_id, \
    f.uploader_pubkey, f.target_spec, f.created_at, COALESCE(m.display_name, ''), \
    (SELECT count(*) FROM file_keys k WHERE k.file_id = f.id) \
    FROM files f LEFT JOIN members m ON m.id = f.uploader_member_id";

fn file_row(r: &Row) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        name: r.get(2)?,
        size: r.get(3)?,
        chunk_size: r.get(4)?,
        sha256: r.get(5)?,
        uploader_member_id: r.get(6)?,
        uploader_pubkey: r.get(7)?,
        target_spec: r.get(8)?,
        created_at: r.get(9)?,
        uploader_name: r.get(10)?,
        recipients: r.get(11)?,
    })
}

impl SqliteStore {
    pub(crate) fn insert_file(&mut self, f: &FileRow, keys: &[(String, String)]) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO files (id, mesh_id, name, size, chunk_size, sha256, uploader_member_id, uploader_pubkey, \
                 target_spec, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    f.id,
                    f.mesh_id,
                    f.name,
                    f.size,
                    f.chunk_size,
                    f.sha256,
                    f.uploader_member_id,
                    f.uploader_pubkey,
                    f.target_spec,
                    f.created_at
                ])
            })
            .map_err(db)?;
        let mut s = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO file_keys (file_id, recipient_pubkey, sealed_key) VALUES (?1, ?2, ?3)",
            )
            .map_err(db)?;
        for (pubkey, sealed) in keys {
            s.execute(params![f.id, pubkey, sealed]).map_err(db)?;
        }
        Ok(())
    }

    pub(crate) fn file(&self, id: &str) -> Result<Option<FileRow>> {
        self.conn
            .prepare_cached(&format!("{FILE_SELECT} WHERE f.id = ?1"))
            .and_then(|mut s| s.query_row([id], file_row).optional())
            .map_err(db)
    }

    pub(crate) fn file_key(&self, file_id: &str, pubkey: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT sealed_key FROM file_keys WHERE file_id = ?1 AND recipient_pubkey = ?2",
            )
            .and_then(|mut s| s.query_row([file_id, pubkey], |r| r.get(0)).optional())
            .map_err(db)
    }

    pub(crate) fn files_for(
        &self,
        mesh_id: &str,
        member_id: &str,
        keys: &[&str],
    ) -> Result<Vec<FileRow>> {
        // The keys go in as one JSON array, so the statement stays the same (and cached) for any number of them.
        let keys = serde_json::to_string(keys)
            .map_err(|e| Error::internal(format!("encoding keys: {e}")))?;
        self.conn
            .prepare_cached(&format!(
                "{FILE_SELECT} WHERE f.mesh_id = ?1 AND (f.uploader_member_id = ?2 OR EXISTS (SELECT 1 FROM \
                 file_keys k WHERE k.file_id = f.id AND k.recipient_pubkey IN (SELECT value FROM json_each(?3)))) \
                 ORDER BY f.created_at DESC, f.id"
            ))
            .and_then(|mut s| s.query_map(params![mesh_id, member_id, keys], file_row)?.collect())
            .map_err(db)
    }

    pub(crate) fn delete_file(&mut self, id: &str) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("DELETE FROM files WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map_err(db)?;
        Ok(())
    }
}
