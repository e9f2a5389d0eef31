//! Context: a session's summary of what it learned (the files it read, its findings, tags), kept by the broker
//! one per member and name, so another session finds it before it reads the same files again.

use serde::Serialize;

use crate::client::Ctx;
use crate::client::{ask_once as ask, unexpected};
use crate::error::{Error, Result};
use crate::wire::{self, Frame};

/// A context as a tool prints it (JSON Lines: `{"type":"context",...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Context {
    pub r#type: &'static str,
    /// The name it was shared under.
    pub peer_name: String,
    pub summary: String,
    pub files_read: Vec<String>,
    pub key_findings: Vec<String>,
    pub tags: Vec<String>,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// What a share said: the context's id, and whether it replaced an earlier one (`None` from a broker that does
/// not say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    pub id: String,
    pub replaced: Option<bool>,
}

/// What a context holds besides its summary.
#[derive(Debug, Clone, Default)]
pub struct NewContext<'a> {
    pub files: Vec<&'a str>,
    pub findings: Vec<&'a str>,
    pub tags: Vec<&'a str>,
}

fn context(c: wire::Context) -> Context {
    Context {
        r#type: "context",
        peer_name: c.peer_name,
        summary: c.summary,
        files_read: c.files_read,
        key_findings: c.key_findings,
        tags: c.tags,
        updated_at: c.updated_at,
    }
}

/// Shares `summary` as this session's context, replacing the one it shared before under the same name.
pub fn share(ctx: &Ctx, summary: &str, new: &NewContext) -> Result<Shared> {
    if summary.trim().is_empty() {
        return Err(Error::usage("nothing to share: the summary is empty"));
    }
    let owned = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
    let s = wire::ShareContext {
        summary: summary.to_string(),
        files_read: owned(&new.files),
        key_findings: owned(&new.findings),
        tags: owned(&new.tags),
        ..wire::ShareContext::default()
    };
    let mut conn = ctx.connect()?;
    let req_id = conn.start(s)?;
    // The original answers without the `_reqId`; on a connection of one request, its answer is still this one's.
    let reply = conn.wait_for("share_context", |f| match f {
        Frame::ContextShared(c) => c.req_id.as_deref().is_none_or(|r| r == req_id),
        Frame::Error(e) => f.req_id() == Some(&req_id) || e.req_id.is_none() && e.id.is_none(),
        _ => false,
    });
    conn.close();
    match reply? {
        Frame::ContextShared(c) => Ok(Shared {
            id: c.id,
            replaced: c.replaced,
        }),
        f => Err(unexpected("share_context", &f)),
    }
}

/// The contexts whose summary, findings or files hold `query` (any case), or that carry it as a tag; newest
/// first, at most 20.
pub fn get(ctx: &Ctx, query: &str) -> Result<Vec<Context>> {
    if query.trim().is_empty() {
        return Err(Error::usage("nothing to search for: the query is empty"));
    }
    let g = wire::GetContext {
        query: query.to_string(),
        ..wire::GetContext::default()
    };
    match ask(ctx, g)? {
        Frame::ContextResults(r) => Ok(r.contexts.into_iter().map(context).collect()),
        f => Err(unexpected("get_context", &f)),
    }
}

/// The mesh's contexts, newest first.
pub fn list(ctx: &Ctx) -> Result<Vec<Context>> {
    match ask(ctx, wire::ListContexts::default())? {
        Frame::ContextList(l) => Ok(l.contexts.into_iter().map(context).collect()),
        f => Err(unexpected("list_contexts", &f)),
    }
}
