//! Memory: a mesh's remembered texts, searched with FTS5, forgotten but kept.

use rusqlite::{Row, params};

use super::{SqliteStore, db};
use crate::error::Result;

/// A memory of a mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRow {
    pub id: String,
    pub mesh_id: String,
    pub content: String,
    /// JSON array of strings.
    pub tags: String,
    /// Member id.
    pub remembered_by: String,
    pub remembered_by_name: String,
    pub remembered_at: i64,
}

/// A memory found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHit {
    pub memory: MemoryRow,
    /// Higher is better (bm25, negated).
    pub score: f64,
    /// The best-matching part of the content, matches in `[` `]`.
    pub snippet: String,
}

const MEMORY_COLS: &str =
    "id, mesh_id, content, tags, remembered_by, remembered_by_name, remembered_at";

fn memory_row(r: &Row) -> rusqlite::Result<MemoryRow> {
    Ok(MemoryRow {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        content: r.get(2)?,
        tags: r.get(3)?,
        remembered_by: r.get(4)?,
        remembered_by_name: r.get(5)?,
        remembered_at: r.get(6)?,
    })
}

impl SqliteStore {
    pub(crate) fn memory_insert(&mut self, m: &MemoryRow) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO memories ({MEMORY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    m.id,
                    m.mesh_id,
                    m.content,
                    m.tags,
                    m.remembered_by,
                    m.remembered_by_name,
                    m.remembered_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn memory_search(
        &self,
        mesh_id: &str,
        fts_query: &str,
        limit: usize,
    ) -> Result<Vec<MemoryHit>> {
        // Tags weigh double: a memory tagged with a word is about it.
        self.conn
            .prepare_cached(
                "SELECT m.id, m.mesh_id, m.content, m.tags, m.remembered_by, m.remembered_by_name, m.remembered_at, \
                 bm25(memories_fts, 1.0, 2.0) AS rank, snippet(memories_fts, 0, '[', ']', '…', 16) \
                 FROM memories_fts JOIN memories m ON m.seq = memories_fts.rowid \
                 WHERE memories_fts MATCH ?1 AND m.mesh_id = ?2 AND m.forgotten_at IS NULL \
                 ORDER BY rank, m.remembered_at DESC LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![fts_query, mesh_id, limit as i64], |r| {
                    Ok(MemoryHit {
                        memory: memory_row(r)?,
                        score: -r.get::<_, f64>(7)?,
                        snippet: r.get(8)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    pub(crate) fn memory_ids(
        &self,
        mesh_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        // Ids are base62, so a prefix has no LIKE wildcards; a range scan finds it.
        let mut upper = prefix.to_string();
        upper.push('\u{7f}');
        self.conn
            .prepare_cached(
                "SELECT id FROM memories WHERE mesh_id = ?1 AND id >= ?2 AND id < ?3 AND forgotten_at IS NULL \
                 ORDER BY id LIMIT ?4",
            )
            .and_then(|mut s| {
                s.query_map(params![mesh_id, prefix, upper, limit as i64], |r| r.get(0))?
                    .collect()
            })
            .map_err(db)
    }

    pub(crate) fn memory_forget(&mut self, mesh_id: &str, id: &str, at: i64) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "UPDATE memories SET forgotten_at = ?3 WHERE mesh_id = ?1 AND id = ?2 AND forgotten_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![mesh_id, id, at]))
            .map_err(db)?;
        Ok(n == 1)
    }
}
