//! Memory: notes the mesh keeps, found again by full-text search ranked by relevance.

use serde::Serialize;

use crate::client::Ctx;
use crate::client::{ask_once as ask, unexpected};
use crate::error::{Error, Result};
use crate::wire::{self, Frame};

/// A memory found by `recall` (`{"type":"memory",...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    pub r#type: &'static str,
    pub id: String,
    pub content: String,
    pub tags: Vec<String>,
    /// Who stored it.
    pub remembered_by: String,
    /// RFC 3339 UTC.
    pub remembered_at: String,
    /// Relevance: higher is better.
    pub score: f64,
    /// The matching part of the content, matches in `[` `]`.
    pub snippet: String,
}

/// Stores `text` with `tags`; returns its id.
pub fn remember(ctx: &Ctx, text: &str, tags: &[&str]) -> Result<String> {
    if text.trim().is_empty() {
        return Err(Error::usage("nothing to remember: the text is empty"));
    }
    let r = wire::Remember {
        content: text.to_string(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..wire::Remember::default()
    };
    match ask(ctx, r)? {
        Frame::MemoryStored(m) => Ok(m.id),
        f => Err(unexpected("remember", &f)),
    }
}

/// The memories that match `query`, best first, at most `limit` (the broker's default, 20, without one).
pub fn recall(ctx: &Ctx, query: &str, limit: Option<u32>) -> Result<Vec<Found>> {
    if query.trim().is_empty() {
        return Err(Error::usage("nothing to search for: the query is empty"));
    }
    let r = wire::Recall {
        query: query.to_string(),
        limit,
        ..wire::Recall::default()
    };
    match ask(ctx, r)? {
        Frame::MemoryResults(m) => Ok(m
            .memories
            .into_iter()
            .map(|m| Found {
                r#type: "memory",
                snippet: m.snippet.unwrap_or_else(|| m.content.clone()),
                id: m.id,
                content: m.content,
                tags: m.tags,
                remembered_by: m.remembered_by,
                remembered_at: m.remembered_at,
                score: m.score.unwrap_or_default(),
            })
            .collect()),
        f => Err(unexpected("recall", &f)),
    }
}

/// Forgets the memory with this id (or unique id prefix); returns the full id.
pub fn forget(ctx: &Ctx, id: &str) -> Result<String> {
    let f = wire::Forget {
        memory_id: id.trim().to_string(),
        ..wire::Forget::default()
    };
    match ask(ctx, f)? {
        Frame::Ack(a) if !a.message_id.is_empty() => Ok(a.message_id),
        Frame::Ack(_) => Ok(id.to_string()),
        f => Err(unexpected("forget", &f)),
    }
}
