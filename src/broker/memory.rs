//! Memory: notes a mesh keeps, searched with SQLite FTS5 and ranked by bm25.
//!
//! A recall query is what a person typed, not FTS5 syntax: each word becomes a quoted FTS5 string, so quotes,
//! `*`, `:`, `-`, parentheses and the words AND/OR/NOT/NEAR are only text and never a syntax error. The words are
//! ORed, so a memory that matches more of them (or matches them in its tags) ranks first. Memories belong to the
//! mesh; `forget` hides one from search and keeps the row.

use super::hub::{Hub, PKey};
use super::net::ConnId;
use super::store::{MemoryRow, new_id};
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, codes};

/// The longest memory, in bytes.
const MAX_CONTENT: usize = 32 * 1024;
const MAX_TAGS: usize = 32;
/// Results of a recall without `limit`, and the most with one.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
/// The shortest id prefix `forget` takes.
const MIN_PREFIX: usize = 4;

/// The longest tag, in characters.
const MAX_TAG_CHARS: usize = 64;

/// Tags as stored: trimmed, without a leading `#`, each once, in the order given; at most `max` of them, each 1 to
/// [`MAX_TAG_CHARS`] characters on one line. The error is the refusal's message.
pub(super) fn clean_tags(raw: &[String], max: usize) -> Result<Vec<String>, String> {
    let mut tags: Vec<String> = Vec::new();
    for t in raw {
        let t = t.trim().trim_start_matches('#');
        if t.is_empty() || t.chars().count() > MAX_TAG_CHARS || t.chars().any(char::is_control) {
            return Err(format!(
                "a tag is 1 to {MAX_TAG_CHARS} characters on one line"
            ));
        }
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    if tags.len() > max {
        return Err(format!("at most {max} tags"));
    }
    Ok(tags)
}

/// `text` as an FTS5 query: every word that has a letter or digit, quoted, ORed. `None` when no word is left.
pub(super) fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

pub(super) fn tags_of(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

impl Hub {
    pub(super) fn on_remember(&mut self, conn: ConnId, pk: PKey, r: wire::Remember) {
        let req = r.req_id.as_deref();
        let content = r.content.trim();
        if content.is_empty() || content.len() > MAX_CONTENT {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!("a memory is 1 to {MAX_CONTENT} bytes of text"),
                req,
            );
        }
        let tags = match clean_tags(&r.tags, MAX_TAGS) {
            Ok(t) => t,
            Err(e) => return self.error(conn, codes::INVALID_ARGS, e, req),
        };
        let Some(p) = self.presences.get(&pk) else {
            return;
        };
        let row = MemoryRow {
            id: new_id(),
            mesh_id: p.mesh_id.clone(),
            content: content.to_string(),
            tags: serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
            remembered_by: p.member_id.clone(),
            remembered_by_name: p.display_name.clone(),
            remembered_at: now_ms(),
        };
        if let Err(e) = self.store.memory_insert(&row) {
            return self.store_error(conn, &e, req);
        }
        let stored = wire::MemoryStored {
            id: row.id,
            req_id: r.req_id.clone(),
        };
        self.reply_durable(conn, stored, Hub::durable_failure(req));
    }

    pub(super) fn on_recall(&mut self, conn: ConnId, pk: PKey, r: wire::Recall) {
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        let limit = r.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
        let hits = match fts_query(&r.query) {
            None => Vec::new(),
            Some(q) => match self.store.memory_search(&mesh, &q, limit) {
                Ok(h) => h,
                Err(e) => return self.store_error(conn, &e, r.req_id.as_deref()),
            },
        };
        let memories = hits
            .into_iter()
            .map(|h| wire::Memory {
                tags: tags_of(&h.memory.tags),
                id: h.memory.id,
                content: h.memory.content,
                remembered_by: h.memory.remembered_by_name,
                remembered_at: fmt_rfc3339(h.memory.remembered_at),
                score: Some(h.score),
                snippet: Some(h.snippet),
            })
            .collect();
        self.reply(
            conn,
            wire::MemoryResults {
                memories,
                req_id: r.req_id,
            },
        );
    }

    pub(super) fn on_forget(&mut self, conn: ConnId, pk: PKey, f: wire::Forget) {
        let req = f.req_id.as_deref();
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        let id = f.memory_id.trim();
        if id.len() < MIN_PREFIX || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return self.error(
                conn,
                codes::INVALID_ARGUMENT,
                format!("a memory id is at least {MIN_PREFIX} characters of [A-Za-z0-9]"),
                req,
            );
        }
        let found = match self.store.memory_ids(&mesh, id, 2) {
            Ok(x) => x,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let full = match found.as_slice() {
            [one] => one.clone(),
            [] => {
                return self.error(
                    conn,
                    codes::NOT_FOUND,
                    format!("no memory {id:?} in this mesh"),
                    req,
                );
            }
            _ if found.iter().any(|x| x == id) => id.to_string(),
            _ => {
                return self.error(
                    conn,
                    codes::AMBIGUOUS_PREFIX,
                    format!("{id:?} starts more than one memory's id"),
                    req,
                );
            }
        };
        match self.store.memory_forget(&mesh, &full, now_ms()) {
            Ok(true) => {}
            Ok(false) => {
                return self.error(
                    conn,
                    codes::NOT_FOUND,
                    format!("no memory {id:?} in this mesh"),
                    req,
                );
            }
            Err(e) => return self.store_error(conn, &e, req),
        }
        let ack = wire::Ack {
            id: full.clone(),
            message_id: full,
            req_id: f.req_id.clone(),
            ..wire::Ack::default()
        };
        self.reply_durable(conn, ack, Hub::durable_failure(req));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::store::fixtures::both_stores;

    #[test]
    fn queries_are_quoted_words() {
        assert_eq!(
            fts_query("deploy key").as_deref(),
            Some(r#""deploy" OR "key""#)
        );
        assert_eq!(
            fts_query(r#"say "hi" NOT x*"#).as_deref(),
            Some(r#""say" OR """hi""" OR "NOT" OR "x*""#)
        );
        assert_eq!(fts_query(" -- * : ( ) \" "), None);
        assert_eq!(fts_query(""), None);
    }

    both_stores! {
    /// Every query a person might type runs without a query syntax error, and ranks the better match first, on
    /// either store.
    fn hostile_queries_run_and_rank(db) {
        let mut s = db.open();
        let mesh = crate::broker::store::Mesh {
            id: "m1".into(),
            name: "Dev".into(),
            slug: "dev".into(),
            owner_pubkey: "aa".repeat(32),
            created_at: 1,
            archived_at: None,
        };
        let member = crate::broker::store::Member {
            id: "a".into(),
            mesh_id: "m1".into(),
            pubkey: "pa".into(),
            display_name: "alice".into(),
            role: "admin".into(),
            role_tag: None,
            groups: "[]".into(),
            message_mode: "push".into(),
            joined_at: 1,
            last_seen_at: None,
            revoked_at: None,
        };
        s.create_mesh(&mesh, &member).unwrap();
        for (id, content, tags) in [
            ("k1", "the deploy key rotates monthly", "[\"ops\"]"),
            ("k2", "lunch is at noon", "[]"),
            ("k3", "deploys go out on Tuesdays", "[]"),
        ] {
            s.memory_insert(&MemoryRow {
                id: id.into(),
                mesh_id: "m1".into(),
                content: content.into(),
                tags: tags.into(),
                remembered_by: "a".into(),
                remembered_by_name: "alice".into(),
                remembered_at: 1,
            })
            .unwrap();
        }
        s.commit().unwrap();
        for q in [
            "\"",
            "*",
            "a:b",
            "-x",
            "(",
            ")",
            "NEAR(a b)",
            "x AND",
            "OR",
            "^start",
            "col:val*",
            "\"unclosed",
            "'",
            "{a b}",
            "+",
            "a - b",
            "NOT",
            "😀",
            "%_",
            "\\",
        ] {
            if let Some(f) = fts_query(q) {
                s.memory_search("m1", &f, 10)
                    .unwrap_or_else(|e| panic!("{q:?} → {f}: {e}"));
            }
        }
        let hits = s
            .memory_search("m1", &fts_query("deploy key").unwrap(), 10)
            .unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.memory.id.as_str()).collect();
        // Both words beat one (stemmed: "deploys" matches "deploy"); the lunch note does not match.
        assert_eq!(ids, ["k1", "k3"]);
        assert!(hits[0].score > hits[1].score);
        assert!(hits[0].snippet.contains("[deploy]"), "{}", hits[0].snippet);
        // Tags are searched, and a forgotten memory is not found again.
        let by_tag = s
            .memory_search("m1", &fts_query("ops").unwrap(), 10)
            .unwrap();
        assert_eq!(by_tag.len(), 1);
        assert!(s.memory_forget("m1", "k1", 5).unwrap());
        assert!(!s.memory_forget("m1", "k1", 6).unwrap());
        s.commit().unwrap();
        assert!(
            s.memory_search("m1", &fts_query("ops").unwrap(), 10)
                .unwrap()
                .is_empty()
        );
        assert!(
            s.memory_search("m2", &fts_query("lunch").unwrap(), 10)
                .unwrap()
                .is_empty()
        );
    }
    }
}
