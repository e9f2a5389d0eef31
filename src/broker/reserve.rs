//! File reservations: advisory leases of members on path patterns of a repository, reported as conflicts and
//! never waited on.
//!
//! A member asks for patterns in a scope (the repository); the broker grants all of them or none. A pattern
//! conflicts with another member's reservation in the same scope when some path could match both
//! ([`crate::glob`]) and either of the two is exclusive; shared reservations of the same paths are fine. The hub
//! handles one request at a time, so two members reserving overlapping paths at once cannot both get them.
//!
//! A reservation ends at its time to live, on the scheduler's clock (so the test clock moves it), and a member's
//! own reservation of the same pattern is renewed in place, never a conflict.

use super::hub::{Hub, PKey};
use super::log;
use super::net::ConnId;
use super::store::{ReservationRow, new_id};
use crate::glob::Glob;
use crate::time::fmt_rfc3339;
use crate::wire::{self, codes};

const MAX_SCOPE: usize = 512;
const MAX_REASON: usize = 512;
/// Patterns one request may name.
const MAX_PATHS: usize = 64;
const DEFAULT_TTL_SECS: u64 = 3600;
/// A week: a reservation is for a piece of work, not a standing claim.
const MAX_TTL_SECS: u64 = 7 * 24 * 3600;
/// Live reservations a scope may hold, which bounds the work of a conflict check.
const SCOPE_LIMIT: usize = 1000;

fn one_line(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

fn to_wire(r: ReservationRow) -> wire::Reservation {
    wire::Reservation {
        id: r.id,
        scope: r.scope,
        path: r.path,
        exclusive: r.exclusive,
        reason: r.reason,
        member_id: r.member_id,
        member_name: r.member_name,
        created_at: fmt_rfc3339(r.created_at),
        expires_at: fmt_rfc3339(r.expires_at),
    }
}

impl Hub {
    /// The scope of a request, trimmed; `None` when an error was sent.
    fn scope_of(&mut self, conn: ConnId, scope: &str, req: Option<&str>) -> Option<String> {
        let scope = scope.trim();
        if one_line(scope, MAX_SCOPE) {
            return Some(scope.to_string());
        }
        self.error(
            conn,
            codes::INVALID_ARGS,
            format!("a reservation's scope is 1 to {MAX_SCOPE} bytes on one line"),
            req,
        );
        None
    }

    /// The request's patterns parsed, each once; `None` when an error was sent.
    fn globs_of(&mut self, conn: ConnId, paths: &[String], req: Option<&str>) -> Option<Vec<Glob>> {
        if paths.len() > MAX_PATHS {
            self.error(
                conn,
                codes::INVALID_ARGS,
                format!("at most {MAX_PATHS} path patterns at once"),
                req,
            );
            return None;
        }
        let mut out: Vec<Glob> = Vec::new();
        for p in paths {
            match Glob::parse(p) {
                Ok(g) if out.contains(&g) => {}
                Ok(g) => out.push(g),
                Err(e) => {
                    self.error(conn, codes::INVALID_ARGS, e, req);
                    return None;
                }
            }
        }
        Some(out)
    }

    pub(super) fn on_reserve_paths(&mut self, conn: ConnId, pk: PKey, r: wire::ReservePaths) {
        let req = r.req_id.as_deref();
        let Some((mesh, member, name)) = self.speaker(pk) else {
            return;
        };
        let Some(scope) = self.scope_of(conn, &r.scope, req) else {
            return;
        };
        let Some(globs) = self.globs_of(conn, &r.paths, req) else {
            return;
        };
        if globs.is_empty() {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                "reserve at least one path pattern",
                req,
            );
        }
        let ttl = r.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
        if !(1..=MAX_TTL_SECS).contains(&ttl) {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!("a reservation lasts 1 s to {} days", MAX_TTL_SECS / 86_400),
                req,
            );
        }
        let reason = r.reason.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if reason.is_some_and(|s| !one_line(s, MAX_REASON)) {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!("a reservation's reason is at most {MAX_REASON} bytes on one line"),
                req,
            );
        }
        let now = self.sched_now();
        let live = match self
            .store
            .reservations_live(&mesh, Some(&scope), now, SCOPE_LIMIT)
        {
            Ok(l) => l,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let mut conflicts = Vec::new();
        for g in &globs {
            for held in live.iter().filter(|h| h.member_id != member) {
                if !(r.exclusive || held.exclusive) {
                    continue;
                }
                // A stored pattern was parsed when it was stored; one that no longer parses holds nothing.
                if Glob::parse(&held.path).is_ok_and(|h| h.overlaps(g)) {
                    conflicts.push(wire::ReservationConflict {
                        path: g.to_string(),
                        held: to_wire(held.clone()),
                    });
                }
            }
        }
        if !conflicts.is_empty() {
            let list = wire::ReservationList {
                reservations: Vec::new(),
                conflicts,
                req_id: r.req_id,
            };
            return self.reply(conn, list);
        }
        let new = globs
            .iter()
            .filter(|g| {
                !live
                    .iter()
                    .any(|h| h.member_id == member && h.path == g.as_str())
            })
            .count();
        if live.len() + new > SCOPE_LIMIT {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!("a repository holds at most {SCOPE_LIMIT} reservations"),
                req,
            );
        }
        let until = now.saturating_add(i64::try_from(ttl).unwrap_or(0) * 1000);
        let mut made = Vec::new();
        for g in globs {
            let id = live
                .iter()
                .find(|h| h.member_id == member && h.path == g.as_str())
                .map_or_else(new_id, |h| h.id.clone());
            let row = ReservationRow {
                id,
                mesh_id: mesh.clone(),
                scope: scope.clone(),
                path: g.to_string(),
                exclusive: r.exclusive,
                reason: reason.map(str::to_string),
                member_id: member.clone(),
                member_name: name.clone(),
                created_at: now,
                expires_at: until,
            };
            if let Err(e) = self.store.reservation_put(&row) {
                return self.store_error(conn, &e, req);
            }
            made.push(to_wire(row));
        }
        let req = r.req_id.clone();
        let list = wire::ReservationList {
            reservations: made,
            conflicts: Vec::new(),
            req_id: r.req_id,
        };
        self.reply_durable(conn, list, Hub::durable_failure(req.as_deref()));
    }

    pub(super) fn on_release_paths(&mut self, conn: ConnId, pk: PKey, r: wire::ReleasePaths) {
        let req = r.req_id.as_deref();
        let Some((mesh, member)) = self
            .presences
            .get(&pk)
            .map(|p| (p.mesh_id.clone(), p.member_id.clone()))
        else {
            return;
        };
        let Some(scope) = self.scope_of(conn, &r.scope, req) else {
            return;
        };
        let Some(globs) = self.globs_of(conn, &r.paths, req) else {
            return;
        };
        let now = self.sched_now();
        let live = match self
            .store
            .reservations_live(&mesh, Some(&scope), now, SCOPE_LIMIT)
        {
            Ok(l) => l,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let gone: Vec<ReservationRow> = live
            .into_iter()
            .filter(|h| h.member_id == member)
            .filter(|h| globs.is_empty() || globs.iter().any(|g| g.as_str() == h.path))
            .collect();
        if !globs.is_empty() && gone.len() < globs.len() {
            let missing: Vec<&str> = globs
                .iter()
                .map(Glob::as_str)
                .filter(|g| !gone.iter().any(|h| h.path == *g))
                .collect();
            return self.error(
                conn,
                codes::RESERVATION_NOT_FOUND,
                format!("you hold no reservation of {}", missing.join(", ")),
                req,
            );
        }
        for h in &gone {
            if let Err(e) = self.store.reservation_delete(&h.id) {
                return self.store_error(conn, &e, req);
            }
        }
        let req = r.req_id.clone();
        let list = wire::ReservationList {
            reservations: gone.into_iter().map(to_wire).collect(),
            conflicts: Vec::new(),
            req_id: r.req_id,
        };
        self.reply_durable(conn, list, Hub::durable_failure(req.as_deref()));
    }

    pub(super) fn on_list_reservations(
        &mut self,
        conn: ConnId,
        pk: PKey,
        l: wire::ListReservations,
    ) {
        let req = l.req_id.as_deref();
        let Some(mesh) = self.presences.get(&pk).map(|p| p.mesh_id.clone()) else {
            return;
        };
        let scope = match l.scope.as_deref() {
            None => None,
            Some(s) => match self.scope_of(conn, s, req) {
                Some(s) => Some(s),
                None => return,
            },
        };
        let now = self.sched_now();
        let rows = match self
            .store
            .reservations_live(&mesh, scope.as_deref(), now, SCOPE_LIMIT)
        {
            Ok(r) => r,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let list = wire::ReservationList {
            reservations: rows.into_iter().map(to_wire).collect(),
            conflicts: Vec::new(),
            req_id: l.req_id,
        };
        self.reply(conn, list);
    }

    /// Deletes the reservations that have ended.
    pub(super) fn sweep_reservations(&mut self) {
        let now = self.sched_now();
        match self.store.reservations_expire(now) {
            Ok(0) => {}
            Ok(n) => log::info("reservations ended", &[("count", &n)]),
            Err(e) => log::error("ending reservations failed", &[("error", &e)]),
        }
    }
}
