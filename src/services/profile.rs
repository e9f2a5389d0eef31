//! The profile peers see: display name, summary, status, visibility, role tag and groups.
//!
//! Inside a launched session (`$CLAUDEMESH_SESSION_ID`) an edit changes that session as peers see it; anywhere
//! else it changes the member: every live session of it, and what its next sessions start with. The role tag is
//! always the member's. A session started with a name of its own (`cm launch --name`, `$CLAUDEMESH_DISPLAY_NAME`,
//! `displayName` in config.json) shows that name again when it reconnects.

use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;

use crate::client::unexpected;
use crate::client::{Ctx, Feature};
use crate::error::{Error, Result};
use crate::wire::{self, Frame, Status};

/// How long `--hook` may take in all before it gives up silently.
pub const HOOK_BUDGET: Duration = Duration::from_secs(3);

/// One change to the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Name(String),
    Summary(String),
    Status(Status),
    Visible(bool),
    /// Empty clears it.
    RoleTag(String),
    /// A group and the role in it.
    Join(String, Option<String>),
    Leave(String),
}

/// A group as `cm-profile` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupLine {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The profile (`{"type":"profile",...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub r#type: &'static str,
    /// `member` or `session`: what edits made here change.
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_pubkey: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub status: Status,
    pub visible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_tag: Option<String>,
    pub groups: Vec<GroupLine>,
    /// For a session: whether it is connected now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
}

impl From<wire::ProfileResult> for Profile {
    fn from(p: wire::ProfileResult) -> Profile {
        Profile {
            r#type: "profile",
            scope: p.scope,
            session_pubkey: p.session_pubkey,
            name: p.display_name,
            summary: p.summary,
            status: p.status,
            visible: p.visible,
            role_tag: p.role_tag,
            groups: p
                .groups
                .into_iter()
                .map(|g| GroupLine {
                    name: g.name,
                    role: g.role,
                })
                .collect(),
            online: p.online,
        }
    }
}

/// `true|yes|on|1` or `false|no|off|0`.
pub fn parse_bool(s: &str) -> Result<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(Error::usage(format!("expected true or false, got {s:?}"))),
    }
}

/// A group name without its `@`.
fn group_name(s: &str) -> Result<String> {
    let g = s.trim().trim_start_matches('@');
    if g.is_empty() {
        return Err(Error::usage("a group is @name, like @eng or @eng/backend"));
    }
    Ok(g.to_string())
}

/// The edit `field VALUE...` asks for (`status working`, `join @eng`), with `role` for `join`.
pub fn parse_edit(field: &str, value: &[String], role: Option<&str>) -> Result<Edit> {
    let text = value.join(" ");
    let one = || -> Result<&str> {
        match value {
            [v] => Ok(v.as_str()),
            [] => Err(Error::usage(format!("{field} needs a value"))),
            _ => Err(Error::usage(format!(
                "{field} takes one value, got {}",
                value.len()
            ))),
        }
    };
    if role.is_some() && field != "join" {
        return Err(Error::usage("--role goes with join"));
    }
    Ok(match field {
        "name" if text.trim().is_empty() => return Err(Error::usage("name needs a value")),
        "name" => Edit::Name(text.trim().to_string()),
        "summary" => Edit::Summary(text),
        "status" => Edit::Status(one()?.parse()?),
        "visible" => Edit::Visible(parse_bool(one()?)?),
        "role-tag" => Edit::RoleTag(text.trim().to_string()),
        "join" => Edit::Join(group_name(one()?)?, role.map(str::to_string)),
        "leave" => Edit::Leave(group_name(one()?)?),
        f => {
            let fields = [
                "name", "summary", "status", "visible", "role-tag", "join", "leave",
            ];
            let hint = crate::cli::did_you_mean(f, fields)
                .map(|m| format!(" (did you mean {m:?}?)"))
                .unwrap_or_default();
            return Err(Error::usage(format!(
                "unknown field {f:?}{hint}: expected one of {}",
                fields.join(", ")
            )));
        }
    })
}

fn frame_of(edit: &Edit, hook: bool) -> Frame {
    match edit.clone() {
        Edit::Name(n) => wire::SetProfile {
            display_name: Some(n),
            ..wire::SetProfile::default()
        }
        .into(),
        Edit::RoleTag(t) => wire::SetProfile {
            role_tag: Some(t),
            ..wire::SetProfile::default()
        }
        .into(),
        Edit::Summary(summary) => wire::SetSummary {
            summary,
            ..wire::SetSummary::default()
        }
        .into(),
        Edit::Status(status) => wire::SetStatus {
            status,
            source: hook.then(|| "hook".to_string()),
            ..wire::SetStatus::default()
        }
        .into(),
        Edit::Visible(visible) => wire::SetVisible {
            visible,
            ..wire::SetVisible::default()
        }
        .into(),
        Edit::Join(name, role) => wire::JoinGroup {
            name,
            role,
            ..wire::JoinGroup::default()
        }
        .into(),
        Edit::Leave(name) => wire::LeaveGroup {
            name,
            ..wire::LeaveGroup::default()
        }
        .into(),
    }
}

fn profile_of(reply: Frame) -> Result<Profile> {
    match reply {
        Frame::ProfileResult(p) => Ok(p.into()),
        f => Err(unexpected("get_profile", &f)),
    }
}

/// The profile edits made here change.
pub fn show(ctx: &Ctx) -> Result<Profile> {
    profile_of(crate::client::ask_once(ctx, wire::GetProfile::default())?)
}

/// Applies `edit` and returns the profile after it; `None` where the broker has no profile to read back (the
/// original): the edit was sent, and nothing says it was done. A name another member of the mesh has is refused
/// ([`crate::error::Code::Exists`]): a message to that name would otherwise be ambiguous.
pub fn edit(ctx: &Ctx, edit: &Edit) -> Result<Option<Profile>> {
    let mut conn = ctx.connect()?;
    let result = (|| {
        if let Edit::Name(name) = edit {
            let me = conn
                .hello_ack()
                .member_id
                .clone()
                .unwrap_or_else(|| ctx.mesh.member_id.clone());
            let members = match conn.request(wire::Members::default())? {
                Frame::MembersList(l) => l.members,
                f => return Err(unexpected("members", &f)),
            };
            if crate::mesh::free_name(name, &members, &me) != *name {
                return Err(Error::exists(format!(
                    "another member of mesh {} is called {name:?}; pick another name",
                    ctx.mesh.slug
                )));
            }
        }
        let frame = frame_of(edit, false);
        // The original answers some edits (set_profile, set_visible) and not others, and has no get_profile to
        // read the result back by: there the edit goes out and is reported as sent, not as done.
        if !conn.features().has(Feature::Profile) {
            if Feature::needed_by(&frame).is_some() {
                conn.fire(frame)?;
            } else {
                conn.request(frame)?;
            }
            return Ok(None);
        }
        conn.post(frame)?;
        conn.request(wire::GetProfile::default()).map(Some)
    })();
    conn.close();
    let Some(reply) = result? else {
        return Ok(None);
    };
    let profile = profile_of(reply)?;
    if let Edit::Name(name) = edit
        && ctx.session.is_none()
    {
        // The member's name, recorded where `cm launch` finds it for the sessions it starts.
        crate::mesh::record_name(&ctx.paths, &ctx.mesh.slug, name)?;
    }
    Ok(Some(profile))
}

/// `cm-profile --hook status working|idle`, run by Claude Code hooks: sets the session's status (the session
/// Claude Code runs, see [`crate::client::ctx::session_id`]), and never fails or blocks the hook for long. With no
/// session it does nothing. Returns what went wrong, for stderr.
pub fn hook(field: &str, value: &[String]) -> Option<Error> {
    crate::messaging::inbox::read_hook_input();
    // No session: nothing to set.
    crate::client::ctx::session_id()?;
    let status = match (field, value) {
        ("status", [s]) => match s.parse::<Status>() {
            Ok(s) => s,
            Err(e) => return Some(e),
        },
        _ => return Some(Error::usage("--hook takes status working|idle|dnd")),
    };
    let (tx, rx) = mpsc::channel();
    // The work runs on a thread so the whole hook is bounded, whatever the network does.
    let spawned = std::thread::Builder::new().spawn(move || {
        let r = Ctx::load(None).and_then(|ctx| {
            if ctx.session.is_none() {
                return Ok(());
            }
            let mut conn = ctx.connect()?;
            let r = conn.post(frame_of(&Edit::Status(status), true));
            conn.close();
            r.map(|_| ())
        });
        let _ = tx.send(r);
    });
    if let Err(e) = spawned {
        return Some(Error::internal(format!("starting a thread: {e}")));
    }
    match rx.recv_timeout(HOOK_BUDGET) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(Error::network(format!(
            "gave up after {} s",
            HOOK_BUDGET.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn edits_parse() {
        assert_eq!(
            parse_edit("status", &v(&["dnd"]), None).unwrap(),
            Edit::Status(Status::Dnd)
        );
        assert_eq!(
            parse_edit("summary", &v(&["fixing", "CI"]), None).unwrap(),
            Edit::Summary("fixing CI".into())
        );
        assert_eq!(
            parse_edit("join", &v(&["@eng/backend"]), Some("lead")).unwrap(),
            Edit::Join("eng/backend".into(), Some("lead".into()))
        );
        assert_eq!(
            parse_edit("visible", &v(&["no"]), None).unwrap(),
            Edit::Visible(false)
        );
        assert_eq!(
            parse_edit("role-tag", &v(&[]), None).unwrap(),
            Edit::RoleTag(String::new())
        );
        for (f, val, role, want) in [
            ("status", vec!["busy"], None, "unknown status"),
            ("visible", vec!["maybe"], None, "true or false"),
            ("name", vec![], None, "needs a value"),
            ("summary", vec!["x"], Some("r"), "--role goes with join"),
            ("join", vec!["@"], None, "a group is @name"),
            ("stauts", vec!["idle"], None, "did you mean \"status\""),
        ] {
            let e = parse_edit(f, &v(&val), role).unwrap_err();
            assert!(e.msg.contains(want), "{f}: {}", e.msg);
            assert_eq!(e.code, crate::error::Code::Usage);
        }
    }
}
