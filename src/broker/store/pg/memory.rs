//! Memory: a mesh's remembered texts, searched with a weighted tsvector, forgotten but kept.
//!
//! The broker hands every store the FTS5 query it builds (`broker::memory::fts_query`: each word quoted, ORed).
//! Here those words are read back and each becomes `plainto_tsquery('english', word)`, ORed: the same words
//! match (stemmed, so "deploys" finds "deploy"), and no text a person typed is query syntax. Ranking is
//! `ts_rank` with tags at weight A and content at B, so tags weigh double as with SQLite's bm25 weights.
//! Unlike FTS5, English stop words ("the", "is") match nothing. A snippet is the whole text up to 16 words (as
//! FTS5's `snippet` of 16 tokens gives it), else a fragment around the matches.

use postgres::Row;
use postgres::types::ToSql;

use super::{At, MemoryHit, MemoryRow, PgStore, lim};
use crate::error::Result;

const MEMORY_COLS: &str =
    "id, mesh_id, content, tags, remembered_by, remembered_by_name, remembered_at";

fn memory_row(r: &Row) -> Result<MemoryRow> {
    Ok(MemoryRow {
        id: r.at(0)?,
        mesh_id: r.at(1)?,
        content: r.at(2)?,
        tags: r.at(3)?,
        remembered_by: r.at(4)?,
        remembered_by_name: r.at(5)?,
        remembered_at: r.at(6)?,
    })
}

/// The words of an FTS5 query made of quoted strings (`"a" OR "b""c"`), unquoted. Anything outside quotes (the
/// `OR`s) is not a word.
fn fts_words(q: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut w = String::new();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    w.push('"');
                } else {
                    break;
                }
            } else {
                w.push(c);
            }
        }
        words.push(w);
    }
    words
}

impl PgStore {
    pub(crate) fn memory_insert(&mut self, m: &MemoryRow) -> Result<()> {
        self.exec(
            &format!("INSERT INTO memories ({MEMORY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
            &[
                &m.id,
                &m.mesh_id,
                &m.content,
                &m.tags,
                &m.remembered_by,
                &m.remembered_by_name,
                &m.remembered_at,
            ],
        )
        .map(drop)
    }

    pub(crate) fn memory_search(
        &self,
        mesh_id: &str,
        fts_query: &str,
        limit: usize,
    ) -> Result<Vec<MemoryHit>> {
        let words = fts_words(fts_query);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        // The words as an array: one statement for any number of them. `tsquery_any` (migration 1) ORs them; a
        // word of stop words only gives an empty tsquery, which `||` leaves out.
        let limit = lim(limit);
        let params: [&(dyn ToSql + Sync); 3] = [&words, &mesh_id, &limit];
        self.all(
            "WITH q AS (SELECT tsquery_any(plainto_tsquery('english', w)) AS q FROM unnest($1::text[]) AS w) \
             SELECT m.id, m.mesh_id, m.content, m.tags, m.remembered_by, m.remembered_by_name, m.remembered_at, \
             ts_rank('{0.1, 0.2, 0.5, 1.0}', m.search, q.q)::float8 AS score, \
             CASE WHEN array_length(regexp_split_to_array(m.content, '\\s+'), 1) <= 16 \
                 THEN ts_headline('english', m.content, q.q, 'HighlightAll=true, StartSel=[, StopSel=]') \
                 ELSE ts_headline('english', m.content, q.q, 'StartSel=[, StopSel=], MaxWords=16, MinWords=4') END \
             FROM memories m, q WHERE m.search @@ q.q AND m.mesh_id = $2 AND m.forgotten_at IS NULL \
             ORDER BY score DESC, m.remembered_at DESC LIMIT $3",
            &params,
            |r| {
                Ok(MemoryHit {
                    memory: memory_row(r)?,
                    score: r.at(7)?,
                    snippet: r.at(8)?,
                })
            },
        )
    }

    pub(crate) fn memory_ids(
        &self,
        mesh_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.all(
            "SELECT id FROM memories WHERE mesh_id = $1 AND starts_with(id, $2) AND forgotten_at IS NULL \
             ORDER BY id LIMIT $3",
            &[&mesh_id, &prefix, &lim(limit)],
            |r| r.at(0),
        )
    }

    pub(crate) fn memory_forget(&mut self, mesh_id: &str, id: &str, at: i64) -> Result<bool> {
        let n = self.exec(
            "UPDATE memories SET forgotten_at = $3 WHERE mesh_id = $1 AND id = $2 AND forgotten_at IS NULL",
            &[&mesh_id, &id, &at],
        )?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts5_strings_read_back_as_words() {
        assert_eq!(fts_words(r#""deploy" OR "key""#), ["deploy", "key"]);
        assert_eq!(
            fts_words(r#""say" OR """hi""" OR "x*""#),
            ["say", "\"hi\"", "x*"]
        );
        assert!(fts_words("").is_empty());
    }
}
