//! Shared context: what a session learned, kept one per member and display name so that the others find it.
//!
//! A share replaces the sharer's earlier context of the same name, as the original's upsert per member does; the
//! name is in the key too, so two sessions of one member that run under different names (`CLAUDEMESH_DISPLAY_NAME`)
//! each keep their own. The original also sent the others a `state_change` of `_context:<name>`, a key the state
//! table never holds; ours pushes a system event, `context_shared`, to the mesh's other live sessions instead, so
//! a state watcher is not told of a key it cannot read.

use serde_json::json;

use super::hub::{Hub, PKey};
use super::memory::clean_tags;
use super::net::ConnId;
use super::store::{ContextRow, new_id};
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, codes};

const MAX_SUMMARY: usize = 8 * 1024;
const MAX_FILE: usize = 512;
const MAX_FILES: usize = 100;
const MAX_FINDING: usize = 1024;
const MAX_FINDINGS: usize = 50;
const MAX_TAGS: usize = 16;
const MAX_QUERY: usize = 256;
/// Contexts a `get_context` returns, as the original.
const SEARCH_LIMIT: usize = 20;
/// Contexts a `list_contexts` returns.
const LIST_LIMIT: usize = 100;

fn one_line(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

/// `raw` trimmed, without empty entries and repeats; an error when one is too long or has a line break.
fn clean_list(
    raw: &[String],
    max_len: usize,
    max: usize,
    field: &str,
) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for x in raw.iter().map(|x| x.trim()).filter(|x| !x.is_empty()) {
        if !one_line(x, max_len) {
            return Err(format!(
                "each of {field} is at most {max_len} bytes on one line"
            ));
        }
        if !out.iter().any(|o| o == x) {
            out.push(x.to_string());
        }
    }
    if out.len() > max {
        return Err(format!("{field} has at most {max} entries"));
    }
    Ok(out)
}

fn strings(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

fn to_wire(c: ContextRow) -> wire::Context {
    wire::Context {
        files_read: strings(&c.files_read),
        key_findings: strings(&c.key_findings),
        tags: strings(&c.tags),
        peer_name: c.peer_name,
        summary: c.summary,
        updated_at: fmt_rfc3339(c.updated_at),
    }
}

impl Hub {
    pub(super) fn on_share_context(&mut self, conn: ConnId, pk: PKey, s: wire::ShareContext) {
        let req = s.req_id.as_deref();
        let summary = s.summary.trim();
        let bad_char = summary
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t');
        if summary.is_empty() || summary.len() > MAX_SUMMARY || bad_char {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!("a context's summary is 1 to {MAX_SUMMARY} bytes of text"),
                req,
            );
        }
        let lists = clean_list(&s.files_read, MAX_FILE, MAX_FILES, "filesRead")
            .and_then(|f| {
                clean_list(&s.key_findings, MAX_FINDING, MAX_FINDINGS, "keyFindings")
                    .map(|k| (f, k))
            })
            .and_then(|(f, k)| clean_tags(&s.tags, MAX_TAGS).map(|t| (f, k, t)));
        let (files, findings, tags) = match lists {
            Ok(l) => l,
            Err(e) => return self.error(conn, codes::INVALID_ARGS, e, req),
        };
        let Some((mesh, member, name)) = self.speaker(pk) else {
            return;
        };
        let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let row = ContextRow {
            id: new_id(),
            mesh_id: mesh.clone(),
            member_id: member,
            peer_name: name.clone(),
            summary: summary.to_string(),
            files_read: json(&files),
            key_findings: json(&findings),
            tags: json(&tags),
            updated_at: now_ms(),
        };
        let id = match self.store.context_put(&row) {
            Ok(id) => id,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let shared = wire::ContextShared {
            replaced: Some(id != row.id),
            id: id.clone(),
            req_id: s.req_id.clone(),
        };
        self.reply_durable(conn, shared, Hub::durable_failure(req));
        let data = json!({
            "id": id, "peerName": name, "summary": row.summary, "filesRead": files,
            "keyFindings": findings, "tags": tags, "updatedAt": fmt_rfc3339(row.updated_at),
        });
        self.announce_change(&mesh, Some(conn), "context_shared", data);
    }

    pub(super) fn on_get_context(&mut self, conn: ConnId, pk: PKey, g: wire::GetContext) {
        let req = g.req_id.as_deref();
        let query = g.query.trim();
        if !one_line(query, MAX_QUERY) {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!("a context search is 1 to {MAX_QUERY} bytes on one line"),
                req,
            );
        }
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        let rows = match self.store.contexts_search(&mesh, query, SEARCH_LIMIT) {
            Ok(r) => r,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let results = wire::ContextResults {
            contexts: rows.into_iter().map(to_wire).collect(),
            req_id: g.req_id,
        };
        self.reply(conn, results);
    }

    pub(super) fn on_list_contexts(&mut self, conn: ConnId, pk: PKey, l: wire::ListContexts) {
        let req = l.req_id.as_deref();
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        let rows = match self.store.contexts_list(&mesh, LIST_LIMIT) {
            Ok(r) => r,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let list = wire::ContextList {
            contexts: rows.into_iter().map(to_wire).collect(),
            req_id: l.req_id,
        };
        self.reply(conn, list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_trimmed_kept_once_and_bounded() {
        let raw = vec![" a ".to_string(), String::new(), "a".into(), "b".into()];
        assert_eq!(
            clean_list(&raw, 8, 2, "x"),
            Ok(vec!["a".into(), "b".into()])
        );
        assert!(clean_list(&raw, 8, 1, "x").is_err());
        assert!(clean_list(&["a\nb".to_string()], 8, 2, "x").is_err());
        assert!(clean_list(&["abcdefghi".to_string()], 8, 2, "x").is_err());
    }
}
