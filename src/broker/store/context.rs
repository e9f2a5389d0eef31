//! Shared context: one row per member and display name, replaced on each share.
//!
//! Search is plain SQL so every database runs it alike: each row keeps `search`, its summary, findings and files
//! lowercased and joined by newlines, and `tag_keys`, its tags lowercased, each between newlines. A query (one
//! line, lowercased) is then a `LIKE '%query%'` on `search`, which cannot match across two entries, or a
//! `LIKE '%\ntag\n%'` on `tag_keys`, which matches a whole tag only.

use rusqlite::{Row, params};

use super::{SqliteStore, db};
use crate::error::Result;

/// A context as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContextRow {
    pub id: String,
    pub mesh_id: String,
    /// Member id.
    pub member_id: String,
    /// The display name it was shared under: one context per member and name.
    pub peer_name: String,
    pub summary: String,
    /// JSON arrays of strings.
    pub files_read: String,
    pub key_findings: String,
    pub tags: String,
    pub updated_at: i64,
}

/// What a search looks through: a context's summary, findings and files, lowercased, one per line.
pub fn search_text(summary: &str, files: &[String], findings: &[String]) -> String {
    let mut s = summary.to_lowercase();
    for x in findings.iter().chain(files) {
        s.push('\n');
        s.push_str(&x.to_lowercase());
    }
    s
}

/// The tags as a search matches them: lowercased, each between newlines.
pub fn tag_keys(tags: &[String]) -> String {
    let mut s = String::from("\n");
    for t in tags {
        s.push_str(&t.to_lowercase());
        s.push('\n');
    }
    s
}

/// `text` with LIKE's wildcards escaped by `\`.
pub fn like_escaped(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

const CONTEXT_COLS: &str =
    "id, mesh_id, member_id, peer_name, summary, files_read, key_findings, tags, updated_at";

fn context_row(r: &Row) -> rusqlite::Result<ContextRow> {
    Ok(ContextRow {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        member_id: r.get(2)?,
        peer_name: r.get(3)?,
        summary: r.get(4)?,
        files_read: r.get(5)?,
        key_findings: r.get(6)?,
        tags: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

fn strings(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

impl SqliteStore {
    pub(crate) fn context_put(&mut self, c: &ContextRow) -> Result<String> {
        self.begin()?;
        let search = search_text(
            &c.summary,
            &strings(&c.files_read),
            &strings(&c.key_findings),
        );
        let keys = tag_keys(&strings(&c.tags));
        // One statement, so two brokers sharing a database cannot both insert; the row keeps its first id.
        self.conn
            .prepare_cached(
                "INSERT INTO contexts (id, mesh_id, member_id, peer_name, summary, files_read, key_findings, \
                 tags, search, tag_keys, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (mesh_id, member_id, peer_name) DO UPDATE SET summary = excluded.summary, \
                 files_read = excluded.files_read, key_findings = excluded.key_findings, tags = excluded.tags, \
                 search = excluded.search, tag_keys = excluded.tag_keys, updated_at = excluded.updated_at \
                 RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        c.id,
                        c.mesh_id,
                        c.member_id,
                        c.peer_name,
                        c.summary,
                        c.files_read,
                        c.key_findings,
                        c.tags,
                        search,
                        keys,
                        c.updated_at
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(db)
    }

    pub(crate) fn contexts_search(
        &self,
        mesh_id: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ContextRow>> {
        let q = like_escaped(&query.to_lowercase());
        let within = format!("%{q}%");
        let tag = format!(
            "%\n{}\n%",
            like_escaped(&query.trim_start_matches('#').to_lowercase())
        );
        self.conn
            .prepare_cached(&format!(
                "SELECT {CONTEXT_COLS} FROM contexts WHERE mesh_id = ?1 \
                 AND (search LIKE ?2 ESCAPE '\\' OR tag_keys LIKE ?3 ESCAPE '\\') \
                 ORDER BY updated_at DESC, id DESC LIMIT ?4"
            ))
            .and_then(|mut s| {
                s.query_map(params![mesh_id, within, tag, limit as i64], context_row)?
                    .collect()
            })
            .map_err(db)
    }

    pub(crate) fn contexts_list(&self, mesh_id: &str, limit: usize) -> Result<Vec<ContextRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {CONTEXT_COLS} FROM contexts WHERE mesh_id = ?1 \
                 ORDER BY updated_at DESC, id DESC LIMIT ?2"
            ))
            .and_then(|mut s| {
                s.query_map(params![mesh_id, limit as i64], context_row)?
                    .collect()
            })
            .map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{both_stores, seeded_in};
    use super::*;

    fn ctx(id: &str, member: &str, name: &str, summary: &str, tags: &str, at: i64) -> ContextRow {
        ContextRow {
            id: id.into(),
            mesh_id: "m1".into(),
            member_id: member.into(),
            peer_name: name.into(),
            summary: summary.into(),
            files_read: r#"["src/Auth.rs"]"#.into(),
            key_findings: r#"["50% of logins retry"]"#.into(),
            tags: tags.into(),
            updated_at: at,
        }
    }

    both_stores! {
        fn a_share_replaces_the_same_name_s_and_a_search_finds_words_and_tags(db) {
            let mut s = seeded_in(db);
            assert_eq!(
                s.context_put(&ctx("c1", "a", "alice", "Parser notes", r#"["ci"]"#, 1))
                    .unwrap(),
                "c1"
            );
            assert_eq!(
                s.context_put(&ctx("c2", "b", "bob", "Lexer notes", "[]", 2))
                    .unwrap(),
                "c2"
            );
            // The same member under another name keeps a context of its own; under the same name, it replaces.
            assert_eq!(
                s.context_put(&ctx("c3", "a", "alice-2", "Other", "[]", 3))
                    .unwrap(),
                "c3"
            );
            assert_eq!(
                s.context_put(&ctx("c4", "a", "alice", "Parser, again", r#"["db"]"#, 4))
                    .unwrap(),
                "c1"
            );
            s.commit().unwrap();
            let all: Vec<(String, String)> = s
                .contexts_list("m1", 10)
                .unwrap()
                .into_iter()
                .map(|c| (c.id, c.summary))
                .collect();
            assert_eq!(
                all,
                [
                    ("c1".into(), "Parser, again".into()),
                    ("c3".into(), "Other".into()),
                    ("c2".into(), "Lexer notes".into())
                ]
            );
            let ids = |q: &str| -> Vec<String> {
                s.contexts_search("m1", q, 10)
                    .unwrap()
                    .into_iter()
                    .map(|c| c.id)
                    .collect()
            };
            assert_eq!(ids("PARSER"), ["c1"]);
            assert_eq!(ids("notes"), ["c2"]);
            assert_eq!(ids("auth.rs"), ["c1", "c3", "c2"]);
            assert_eq!(ids("50%"), ["c1", "c3", "c2"]);
            // A wildcard is a character, and a tag matches whole.
            assert!(ids("5_%").is_empty());
            assert_eq!(ids("#db"), ["c1"]);
            assert!(ids("ci").is_empty());
            assert!(ids("d").is_empty());
            assert!(s.contexts_search("m2", "parser", 10).unwrap().is_empty());
        }
    }

    #[test]
    fn a_search_matches_within_one_entry_and_whole_tags_only() {
        let s = search_text(
            "Auth lives in src/auth",
            &["src/a.rs".into()],
            &["Tokens expire".into()],
        );
        assert_eq!(s, "auth lives in src/auth\ntokens expire\nsrc/a.rs");
        assert_eq!(tag_keys(&["CI".into(), "db".into()]), "\nci\ndb\n");
        assert_eq!(like_escaped(r"50%_a\b"), r"50\%\_a\\b");
    }
}
