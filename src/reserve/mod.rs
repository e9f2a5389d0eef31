//! `cm-reserve`: advisory file reservations. A member says which paths of a repository it is working on, shared
//! or exclusive, for a while; another member asking for overlapping paths is told who holds them and why, and
//! is never made to wait. A git pre-commit hook ([`hook`]) refuses a commit that touches what another member
//! holds exclusively; `git commit --no-verify` goes round it.
//!
//! | file | owns |
//! |---|---|
//! | [`git`] | the repository's scope, where we stand in it, the staged paths, the hook's path |
//! | [`hook`] | the pre-commit hook installed and given back exactly |
//!
//! Reservations are kept per repository, the scope: the repository's `origin` URL in one spelling, so every
//! clone of it on every machine shares them, or the root's path when it has no `origin` (then only the clones at
//! that path do). `--repo SCOPE` names one outright. Patterns are relative to the root, as git's are relative to
//! where it runs: `cm-reserve '*.rs'` in `src/` reserves `src/*.rs`. They match as git's `:(glob)` pathspecs
//! ([`crate::glob`]). Reservations belong to members, so the sessions of one member share them.

pub mod git;
pub mod hook;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::client::{Ctx, ask_once as ask, unexpected};
use crate::error::{Code, Error, Result};
use crate::glob::Glob;
use crate::time::{fmt_ago, now_ms, parse_rfc3339};
use crate::wire::{self, Frame};

pub use git::Repo;

/// Where reservations are made: a repository's scope, and the directory patterns are relative to.
#[derive(Debug, Clone)]
pub struct Place {
    pub scope: String,
    /// The repository, when the place is one (not only `--repo`).
    pub repo: Option<Repo>,
}

impl Place {
    /// `--repo SCOPE` when given (patterns are then relative to the root, or to where we stand in a work tree),
    /// else the repository `dir` is in.
    pub fn find(dir: &Path, scope: Option<&str>) -> Result<Place> {
        match scope.map(str::trim) {
            Some("") => Err(Error::usage("--repo: a scope names a repository")),
            Some(s) => Ok(Place {
                scope: s.to_string(),
                repo: Repo::at(dir).ok(),
            }),
            None => {
                let repo = Repo::at(dir)?;
                Ok(Place {
                    scope: repo.scope(),
                    repo: Some(repo),
                })
            }
        }
    }

    /// A pattern as typed here, as the repository's root sees it: an absolute path inside the work tree loses
    /// the root, a relative one gains where we stand, `..` is walked up; then normalized.
    pub fn pattern(&self, typed: &str) -> Result<Glob> {
        let root = self.repo.as_ref().map(|r| r.root.as_path());
        let prefix = self.repo.as_ref().map_or("", |r| r.prefix.as_str());
        let joined = match root.and_then(|r| Path::new(typed).strip_prefix(r).ok()) {
            Some(inside) => inside.display().to_string(),
            None if typed.starts_with('/') => {
                return Err(Error::usage(format!("{typed}: not inside the repository")));
            }
            None => format!("{prefix}{typed}"),
        };
        let mut parts: Vec<&str> = Vec::new();
        for c in joined.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(Error::usage(format!(
                            "{typed}: outside the repository's root"
                        )));
                    }
                }
                c => parts.push(c),
            }
        }
        Glob::parse(&parts.join("/")).map_err(|e| Error::usage(format!("{typed}: {e}")))
    }
}

/// A reservation as a tool prints it (JSON Lines: `{"type":"reservation",...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub r#type: &'static str,
    pub id: String,
    pub scope: String,
    pub path: String,
    pub exclusive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The holder's display name.
    pub holder: String,
    #[serde(skip)]
    pub member_id: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
}

/// A path (or pattern) of ours that another member's reservation covers (`{"type":"conflict",...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub r#type: &'static str,
    /// What we asked for, or the staged path.
    pub path: String,
    /// The pattern held.
    pub held: String,
    pub holder: String,
    pub exclusive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub expires_at: String,
}

fn reservation(r: wire::Reservation) -> Reservation {
    Reservation {
        r#type: "reservation",
        id: r.id,
        scope: r.scope,
        path: r.path,
        exclusive: r.exclusive,
        reason: r.reason,
        holder: r.member_name,
        member_id: r.member_id,
        created_at: r.created_at,
        expires_at: r.expires_at,
    }
}

fn conflict(path: String, h: Reservation) -> Conflict {
    Conflict {
        r#type: "conflict",
        path,
        held: h.path,
        holder: h.holder,
        exclusive: h.exclusive,
        reason: h.reason,
        expires_at: h.expires_at,
    }
}

/// How long until an RFC 3339 time, as people read it: `59m`, `2h`.
pub fn left(until: &str) -> String {
    parse_rfc3339(until).map_or_else(|_| "?".into(), |t| fmt_ago(t - now_ms()))
}

/// The one line an error gives for `conflicts` (at least one): the first holder, why, and how many more.
pub fn conflict_error(what: &str, conflicts: &[Conflict], hint: &str) -> Error {
    let Some(c) = conflicts.first() else {
        return Error::internal("a conflict without a conflict");
    };
    let how = if c.exclusive { "exclusively " } else { "" };
    let why = c
        .reason
        .as_deref()
        .map(|r| format!(": {r:?}"))
        .unwrap_or_default();
    let more = match conflicts.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Error::new(
        Code::Reserved,
        format!(
            "{what}{} is reserved {how}by {} as {} for {}{why}{more}{hint}",
            c.path,
            c.holder,
            c.held,
            left(&c.expires_at)
        ),
    )
}

/// What `reserve` came to: every pattern granted, or none and why.
#[derive(Debug)]
pub enum Outcome {
    Granted(Vec<Reservation>),
    Refused(Vec<Conflict>),
}

/// Reserves `patterns` in `place`, all or none.
pub fn reserve(
    ctx: &Ctx,
    place: &Place,
    patterns: &[Glob],
    exclusive: bool,
    ttl: Option<Duration>,
    reason: Option<&str>,
) -> Result<Outcome> {
    if patterns.is_empty() {
        return Err(Error::usage("name at least one PATH-GLOB to reserve"));
    }
    let r = wire::ReservePaths {
        scope: place.scope.clone(),
        paths: patterns.iter().map(Glob::to_string).collect(),
        exclusive,
        ttl_secs: ttl.map(|d| d.as_secs()),
        reason: reason.map(str::to_string),
        ..wire::ReservePaths::default()
    };
    match ask(ctx, r)? {
        Frame::ReservationList(l) if l.conflicts.is_empty() => Ok(Outcome::Granted(
            l.reservations.into_iter().map(reservation).collect(),
        )),
        Frame::ReservationList(l) => Ok(Outcome::Refused(
            l.conflicts
                .into_iter()
                .map(|c| conflict(c.path, reservation(c.held)))
                .collect(),
        )),
        f => Err(unexpected("reserve_paths", &f)),
    }
}

/// Releases this member's reservations of `patterns` in `place`, or all of them there when none is named.
pub fn release(ctx: &Ctx, place: &Place, patterns: &[Glob]) -> Result<Vec<Reservation>> {
    let r = wire::ReleasePaths {
        scope: place.scope.clone(),
        paths: patterns.iter().map(Glob::to_string).collect(),
        ..wire::ReleasePaths::default()
    };
    match ask(ctx, r)? {
        Frame::ReservationList(l) => Ok(l.reservations.into_iter().map(reservation).collect()),
        f => Err(unexpected("release_paths", &f)),
    }
}

/// The live reservations of one scope, or of every scope of the mesh.
pub fn list(ctx: &Ctx, scope: Option<&str>) -> Result<Vec<Reservation>> {
    let l = wire::ListReservations {
        scope: scope.map(str::to_string),
        ..wire::ListReservations::default()
    };
    match ask(ctx, l)? {
        Frame::ReservationList(l) => Ok(l.reservations.into_iter().map(reservation).collect()),
        f => Err(unexpected("list_reservations", &f)),
    }
}

/// The paths among `paths` (relative to the root) that another member holds exclusively in `place`.
pub fn check(ctx: &Ctx, place: &Place, paths: &[String]) -> Result<Vec<Conflict>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let held: Vec<(Glob, Reservation)> = list(ctx, Some(&place.scope))?
        .into_iter()
        .filter(|r| r.exclusive && r.member_id != ctx.mesh.member_id)
        .filter_map(|r| Glob::parse(&r.path).ok().map(|g| (g, r)))
        .collect();
    let mut out = Vec::new();
    for p in paths {
        if let Some((_, r)) = held.iter().find(|(g, _)| g.matches(p)) {
            out.push(conflict(p.clone(), r.clone()));
        }
    }
    Ok(out)
}

/// The working directory, for [`Place::find`].
pub fn cwd() -> Result<PathBuf> {
    std::env::current_dir().map_err(|e| Error::from(e).context("reading the current directory"))
}
