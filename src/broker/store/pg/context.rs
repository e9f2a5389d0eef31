//! Shared context, one row per member and display name, searched with the same `search` and `tag_keys`
//! columns as on SQLite (see the SQLite store's context.rs), so both answer a query alike.

use postgres::Row;

use super::{At, ContextRow, PgStore, lim};
use crate::broker::store::context::{like_escaped, search_text, tag_keys};
use crate::error::Result;

const CONTEXT_COLS: &str =
    "id, mesh_id, member_id, peer_name, summary, files_read, key_findings, tags, updated_at";

fn context_row(r: &Row) -> Result<ContextRow> {
    Ok(ContextRow {
        id: r.at(0)?,
        mesh_id: r.at(1)?,
        member_id: r.at(2)?,
        peer_name: r.at(3)?,
        summary: r.at(4)?,
        files_read: r.at(5)?,
        key_findings: r.at(6)?,
        tags: r.at(7)?,
        updated_at: r.at(8)?,
    })
}

fn strings(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

impl PgStore {
    pub(crate) fn context_put(&mut self, c: &ContextRow) -> Result<String> {
        let search = search_text(
            &c.summary,
            &strings(&c.files_read),
            &strings(&c.key_findings),
        );
        let keys = tag_keys(&strings(&c.tags));
        self.write(|conn| {
            conn.query_opt(
                "INSERT INTO contexts (id, mesh_id, member_id, peer_name, summary, files_read, key_findings, \
                 tags, search, tag_keys, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (mesh_id, member_id, peer_name) DO UPDATE SET summary = excluded.summary, \
                 files_read = excluded.files_read, key_findings = excluded.key_findings, tags = excluded.tags, \
                 search = excluded.search, tag_keys = excluded.tag_keys, updated_at = excluded.updated_at \
                 RETURNING id",
                &[
                    &c.id,
                    &c.mesh_id,
                    &c.member_id,
                    &c.peer_name,
                    &c.summary,
                    &c.files_read,
                    &c.key_findings,
                    &c.tags,
                    &search,
                    &keys,
                    &c.updated_at,
                ],
            )?
            .map_or_else(|| Ok(c.id.clone()), |r| r.at(0))
        })
    }

    pub(crate) fn contexts_search(
        &self,
        mesh_id: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ContextRow>> {
        let within = format!("%{}%", like_escaped(&query.to_lowercase()));
        let tag = format!(
            "%\n{}\n%",
            like_escaped(&query.trim_start_matches('#').to_lowercase())
        );
        self.all(
            &format!(
                "SELECT {CONTEXT_COLS} FROM contexts WHERE mesh_id = $1 \
                 AND (search LIKE $2 ESCAPE '\\' OR tag_keys LIKE $3 ESCAPE '\\') \
                 ORDER BY updated_at DESC, id DESC LIMIT $4"
            ),
            &[&mesh_id, &within, &tag, &lim(limit)],
            context_row,
        )
    }

    pub(crate) fn contexts_list(&self, mesh_id: &str, limit: usize) -> Result<Vec<ContextRow>> {
        self.all(
            &format!(
                "SELECT {CONTEXT_COLS} FROM contexts WHERE mesh_id = $1 \
                 ORDER BY updated_at DESC, id DESC LIMIT $2"
            ),
            &[&mesh_id, &lim(limit)],
            context_row,
        )
    }
}
