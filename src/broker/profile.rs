//! What peers see of a presence, and who may change it: status, summary, visibility, profile, display name,
//! role tag and groups.
//!
//! An edit applies to what the connection it comes on speaks for (docs/protocol.md §7):
//! - a session's own connection: that session's presence;
//! - a pull connection of a session (a one-shot tool run inside a launched session): the session's live
//!   presence, so `cm-profile status working` from a hook changes what peers see of that session;
//! - a member connection (`hello`, a one-shot tool outside any session): every live presence of the member, and
//!   the member's stored profile, which its new presences start with.
//!
//! The role tag belongs to the member whichever connection sets it.

use std::time::Instant;

use serde_json::json;

use super::hub::{Hub, PKey, groups_of};
use super::log;
use super::net::ConnId;
use super::store::MemberPresence;
use crate::wire::{self, Group, Status, codes};

/// The longest summary, in characters.
const MAX_SUMMARY: usize = 1000;

/// Who an edit reaches.
enum Scope {
    /// The member (its id): its stored profile changes too.
    Member(String),
    /// One session's presences only.
    Session,
}

pub(super) fn upsert_group(groups: &mut Vec<Group>, name: &str, role: Option<&str>) {
    match groups.iter_mut().find(|g| g.name == name) {
        Some(g) => g.role = role.map(str::to_string),
        None => groups.push(Group {
            name: name.to_string(),
            role: role.map(str::to_string),
        }),
    }
}

/// A display name: 1 to 64 characters on one line.
fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().any(char::is_control) || name.chars().count() > 64 {
        return Err("a display name is 1 to 64 characters on one line".into());
    }
    Ok(())
}

impl Hub {
    /// What the member's new presences start with; the defaults if the store cannot say.
    pub(super) fn member_defaults(&self, member_id: &str) -> MemberPresence {
        self.store.member_presence(member_id).unwrap_or_else(|e| {
            log::warn("reading a member's profile failed", &[("error", &e)]);
            MemberPresence {
                summary: None,
                status: None,
                visible: true,
            }
        })
    }

    /// The presences an edit on `pk`'s connection changes, and whether it is the member's.
    fn targets(&self, pk: PKey) -> Option<(Scope, Vec<PKey>)> {
        let p = self.presences.get(&pk)?;
        let Some(sp) = &p.session_pubkey else {
            let mine = self
                .mesh_keys(&p.mesh_id)
                .into_iter()
                .filter(|k| {
                    self.presences
                        .get(k)
                        .is_some_and(|q| q.member_id == p.member_id)
                })
                .collect();
            return Some((Scope::Member(p.member_id.clone()), mine));
        };
        let mut keys = vec![pk];
        if p.pull
            && let Some(&peer) = self.by_session.get(&(p.mesh_id.clone(), sp.clone()))
        {
            keys.push(peer);
        }
        Some((Scope::Session, keys))
    }

    /// Stores a change to the member's profile; answers with an error if it cannot.
    fn store_member_presence(
        &mut self,
        conn: ConnId,
        member_id: &str,
        req_id: Option<&str>,
        change: impl FnOnce(&mut MemberPresence),
    ) -> bool {
        let mut mp = match self.store.member_presence(member_id) {
            Ok(x) => x,
            Err(e) => {
                self.store_error(conn, &e, req_id);
                return false;
            }
        };
        change(&mut mp);
        if let Err(e) = self.store.set_member_presence(member_id, &mp) {
            self.store_error(conn, &e, req_id);
            return false;
        }
        true
    }

    /// The `ack` of an edit: durable when it stored something.
    fn edited(&mut self, conn: ConnId, stored: bool, req_id: Option<&str>) {
        if stored && req_id.is_some() {
            self.reply_durable(conn, wire::Ack::done(req_id), Hub::durable_failure(req_id));
        } else {
            self.ack_done(conn, req_id);
        }
    }

    pub(super) fn on_set_status(
        &mut self,
        conn: ConnId,
        pk: PKey,
        s: wire::SetStatus,
        now: Instant,
    ) {
        let Some((scope, keys)) = self.targets(pk) else {
            return;
        };
        for &k in &keys {
            self.touch(k);
        }
        // A hook reports what Claude is doing; it never ends a `dnd` someone chose.
        let hook = s.source.as_deref() == Some("hook");
        let mut idle = Vec::new();
        for k in keys {
            if let Some(q) = self.presences.get_mut(&k) {
                if hook && q.status == Status::Dnd {
                    continue;
                }
                let was = std::mem::replace(&mut q.status, s.status);
                if was != Status::Idle && s.status == Status::Idle {
                    idle.push(k);
                }
            }
        }
        for k in idle {
            self.drain(k, now);
        }
        let req = s.req_id.as_deref();
        let stored = match scope {
            Scope::Member(member) if !hook => {
                let status = s.status.as_str().to_string();
                if !self.store_member_presence(conn, &member, req, |m| m.status = Some(status)) {
                    return;
                }
                true
            }
            _ => false,
        };
        self.edited(conn, stored, req);
    }

    pub(super) fn on_set_summary(&mut self, conn: ConnId, pk: PKey, s: wire::SetSummary) {
        let req = s.req_id.as_deref();
        if s.summary.chars().count() > MAX_SUMMARY {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                format!("a summary is at most {MAX_SUMMARY} characters"),
                req,
            );
        }
        let Some((scope, keys)) = self.targets(pk) else {
            return;
        };
        for &k in &keys {
            self.touch(k);
        }
        let summary = Some(s.summary.trim().to_string()).filter(|s| !s.is_empty());
        for k in keys {
            if let Some(q) = self.presences.get_mut(&k) {
                q.summary = summary.clone();
            }
        }
        let stored = match scope {
            Scope::Member(member) => {
                if !self.store_member_presence(conn, &member, req, |m| m.summary = summary) {
                    return;
                }
                true
            }
            Scope::Session => false,
        };
        self.edited(conn, stored, req);
    }

    pub(super) fn on_set_visible(&mut self, conn: ConnId, pk: PKey, s: wire::SetVisible) {
        let Some((scope, keys)) = self.targets(pk) else {
            return;
        };
        for &k in &keys {
            self.touch(k);
        }
        let mut changed = Vec::new();
        for k in keys {
            if let Some(q) = self.presences.get_mut(&k) {
                let was = std::mem::replace(&mut q.visible, s.visible);
                if was != s.visible && q.is_peer() {
                    let data = json!({"name": q.display_name, "pubkey": q.pubkey()});
                    changed.push((k, q.mesh_id.clone(), data));
                }
            }
        }
        let event = if s.visible {
            "peer_visible"
        } else {
            "peer_hidden"
        };
        for (k, mesh, data) in changed {
            self.announce(&mesh, k, event, data);
        }
        let req = s.req_id.as_deref();
        let stored = match scope {
            Scope::Member(member) => {
                if !self.store_member_presence(conn, &member, req, |m| m.visible = s.visible) {
                    return;
                }
                true
            }
            Scope::Session => false,
        };
        self.edited(conn, stored, req);
    }

    pub(super) fn on_set_profile(&mut self, conn: ConnId, pk: PKey, s: wire::SetProfile) {
        let req = s.req_id.as_deref();
        if let Some(name) = &s.display_name
            && let Err(m) = check_name(name)
        {
            return self.error(conn, codes::INVALID_ARGS, m, req);
        }
        let role_tag = s.role_tag.as_deref().map(str::trim);
        if role_tag.is_some_and(|t| t.chars().any(char::is_control) || t.chars().count() > 64) {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                "a role tag is at most 64 characters on one line",
                req,
            );
        }
        let role_tag = role_tag.map(|t| Some(t.to_string()).filter(|t| !t.is_empty()));
        let Some((scope, keys)) = self.targets(pk) else {
            return;
        };
        for &k in &keys {
            self.touch(k);
        }
        let Some(me) = self.presences.get(&pk) else {
            return;
        };
        let (mesh, member) = (me.mesh_id.clone(), me.member_id.clone());
        let name = s.display_name.as_deref().map(str::trim);
        for k in &keys {
            if let Some(q) = self.presences.get_mut(k) {
                let pr = &mut q.profile;
                pr.avatar = s.avatar.clone().or(pr.avatar.take());
                pr.title = s.title.clone().or(pr.title.take());
                pr.bio = s.bio.clone().or(pr.bio.take());
                pr.capabilities = s.capabilities.clone().or(pr.capabilities.take());
                if let Some(n) = name {
                    q.display_name = n.to_string();
                }
            }
        }
        let mut stored = false;
        if let Some(tag) = &role_tag {
            for k in self.mesh_keys(&mesh) {
                if let Some(q) = self.presences.get_mut(&k).filter(|q| q.member_id == member) {
                    q.role_tag = tag.clone();
                    self.touch(k);
                }
            }
            if let Err(e) = self.store.set_member_role_tag(&member, tag.as_deref()) {
                return self.store_error(conn, &e, req);
            }
            stored = true;
        }
        if let Some(n) = name {
            let written = match scope {
                Scope::Member(ref m) => self.store.set_member_name(m, n),
                // The session's name is what pushes from it show while it is offline.
                Scope::Session => self.rename_session(&keys, n),
            };
            if let Err(e) = written {
                return self.store_error(conn, &e, req);
            }
            stored = true;
        }
        self.edited(conn, stored, req);
    }

    fn rename_session(&mut self, keys: &[PKey], name: &str) -> crate::error::Result<()> {
        let Some(p) = keys.iter().filter_map(|k| self.presences.get(k)).next() else {
            return Ok(());
        };
        let Some(sp) = p.session_pubkey.clone() else {
            return Ok(());
        };
        let session = super::store::Session {
            mesh_id: p.mesh_id.clone(),
            session_pubkey: sp,
            member_id: p.member_id.clone(),
            display_name: Some(name.to_string()),
            session_id: Some(p.session_id.clone()).filter(|s| !s.is_empty()),
            last_seen_at: crate::time::now_ms(),
        };
        self.store.upsert_session(&session)
    }

    /// `join_group` (`role` is `Some`) or `leave_group` (`None`).
    pub(super) fn on_group(
        &mut self,
        conn: ConnId,
        pk: PKey,
        name: &str,
        role: Option<Option<&str>>,
        req_id: Option<&str>,
    ) {
        let name = name.trim().trim_start_matches('@');
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return self.error(
                conn,
                codes::INVALID_ARGS,
                "a group name is one word, like eng or eng/backend",
                req_id,
            );
        }
        let apply = |groups: &mut Vec<Group>| match role {
            Some(r) => upsert_group(groups, name, r),
            None => groups.retain(|g| g.name != name),
        };
        let Some((scope, keys)) = self.targets(pk) else {
            return;
        };
        for &k in &keys {
            self.touch(k);
        }
        for k in keys {
            if let Some(q) = self.presences.get_mut(&k) {
                apply(&mut q.groups);
            }
        }
        let Scope::Member(member_id) = scope else {
            return self.edited(conn, false, req_id);
        };
        let mut groups = match self.store.member(&member_id) {
            Ok(Some(m)) => groups_of(&m.groups),
            Ok(None) => Vec::new(),
            Err(e) => return self.store_error(conn, &e, req_id),
        };
        apply(&mut groups);
        let json = serde_json::to_string(&groups).unwrap_or_else(|_| "[]".into());
        if let Err(e) = self.store.set_member_groups(&member_id, &json) {
            return self.store_error(conn, &e, req_id);
        }
        self.edited(conn, true, req_id);
    }

    /// `get_profile`: what this connection's edits change, as peers see it.
    pub(super) fn on_get_profile(&mut self, conn: ConnId, pk: PKey, req_id: Option<&str>) {
        let Some((scope, keys)) = self.targets(pk) else {
            return;
        };
        let reply = match scope {
            Scope::Member(member_id) => {
                let m = match self.store.member(&member_id) {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        return self.error(conn, codes::NOT_FOUND, "no such member", req_id);
                    }
                    Err(e) => return self.store_error(conn, &e, req_id),
                };
                let d = self.member_defaults(&member_id);
                wire::ProfileResult {
                    scope: "member".into(),
                    session_pubkey: None,
                    display_name: m.display_name,
                    summary: d.summary,
                    status: d
                        .status
                        .as_deref()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_default(),
                    visible: d.visible,
                    role_tag: m.role_tag,
                    groups: groups_of(&m.groups),
                    online: None,
                    req_id: req_id.map(str::to_string),
                }
            }
            Scope::Session => {
                // The session's own presence when it has one, else this pull connection's.
                let Some(p) = keys.iter().rev().find_map(|k| self.presences.get(k)) else {
                    return;
                };
                wire::ProfileResult {
                    scope: "session".into(),
                    session_pubkey: p.session_pubkey.clone(),
                    display_name: p.display_name.clone(),
                    summary: p.summary.clone(),
                    status: p.status,
                    visible: p.visible,
                    role_tag: p.role_tag.clone(),
                    groups: p.groups.clone(),
                    online: Some(p.conn.is_some() && !p.pull),
                    req_id: req_id.map(str::to_string),
                }
            }
        };
        self.reply(conn, reply);
    }
}
