//! Grants and blocks: who may DM you, copy you on a broadcast, push to you with `now`, or fetch the files you
//! uploaded. The broker keeps and enforces them (`docs/protocol.md` §6.12); this module names the members and
//! capabilities a person types.
//!
//! Capabilities are the broker's four; `all` is all of them, and the original CLI's `file-read` is `files`. The
//! original's `read`, `state-read` and `state-write` are refused with a word on why: nothing here would enforce
//! them, and a grant that does nothing is worse than none.

use serde::Serialize;

use crate::client::{Conn, Ctx, Feature, unexpected};
use crate::error::{Error, Result};
use crate::messaging::roster::Roster;
use crate::target::{self, Resolved, Target};
use crate::wire::{self, Frame};

/// The capabilities, in the broker's order.
pub const CAPS: &[&str] = &["dm", "broadcast", "now", "files"];

/// What one member may do to you, as a tool prints it (JSON Lines: `{"type":"grant",...}`). The first line is
/// everyone's (`name` `*`, no `pubkey`): what a member without a line of its own may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub r#type: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,
    pub blocked: bool,
    /// What it may do now.
    pub caps: Vec<String>,
    /// Granted to it whatever everyone may do.
    pub granted: Vec<String>,
    /// Refused to it whatever everyone may do.
    pub revoked: Vec<String>,
}

/// The capabilities `words` name: `all` for every one, the original's `file-read` as `files`. None is an error
/// unless `none_is_all` (a revoke of everything).
pub fn caps(words: &[&str], none_is_all: bool) -> Result<Vec<String>> {
    if words.is_empty() && none_is_all {
        return Ok(CAPS.iter().map(|c| c.to_string()).collect());
    }
    if words.is_empty() {
        return Err(Error::usage(format!(
            "name the capabilities: {} or all",
            CAPS.join(", ")
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for w in words {
        let w = w.trim().to_ascii_lowercase();
        let names: Vec<&str> = match w.as_str() {
            "all" => CAPS.to_vec(),
            "file-read" | "file" => vec!["files"],
            c if CAPS.contains(&c) => vec![c],
            "read" | "state-read" | "state-write" => {
                return Err(Error::usage(format!(
                    "{w:?} is a capability of the original CLI that nothing enforces; these are: {}",
                    CAPS.join(", ")
                )));
            }
            _ => {
                let hint = crate::cli::did_you_mean(&w, CAPS.iter().copied())
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                return Err(Error::usage(format!(
                    "{w:?} is not a capability{hint}; they are {} and all",
                    CAPS.join(", ")
                )));
            }
        };
        for n in names {
            if !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
    }
    Ok(out)
}

/// A connection to a broker that keeps grants, refused at once where it does not.
fn connect(ctx: &Ctx) -> Result<Conn> {
    let conn = ctx.connect()?;
    if !conn.features().has(Feature::Grants) {
        return Err(conn.features().lacks(Feature::Grants, "cm-grant"));
    }
    Ok(conn)
}

/// The member key `who` names (a name, a key or the start of one), or `*`.
fn peer_key(conn: &mut Conn, ctx: &Ctx, who: &str, everyone: bool) -> Result<String> {
    let t = Target::parse(who)?;
    if matches!(t, Target::Everyone) && everyone {
        return Ok("*".into());
    }
    if matches!(t, Target::Everyone | Target::Group(_) | Target::Topic(_)) {
        let what = if everyone {
            "a member's name or key, or * for everyone"
        } else {
            "a member's name or key"
        };
        return Err(Error::usage(format!("{who:?}: expected {what}")));
    }
    let own_key = conn.sender().public_hex();
    let roster = Roster::fetch(conn, &ctx.mesh.slug, &ctx.mesh.pubkey, &own_key)?;
    let candidates = roster.candidates();
    match target::resolve(&t, &candidates)? {
        Resolved::Peer { peer: Some(p), .. } => Ok(p.member_pubkey.clone()),
        Resolved::Peer { key, peer: None } => Ok(key),
        _ => Err(Error::internal("a member resolved to a group")),
    }
}

fn state(f: Frame, what: &str) -> Result<Vec<Grant>> {
    let Frame::GrantState(s) = f else {
        return Err(unexpected(what, &f));
    };
    let mut out = vec![Grant {
        r#type: "grant",
        name: "*".into(),
        pubkey: None,
        blocked: false,
        caps: s.everyone,
        granted: Vec::new(),
        revoked: Vec::new(),
    }];
    out.extend(s.peers.into_iter().map(|p| Grant {
        r#type: "grant",
        name: p.name,
        pubkey: Some(p.pubkey),
        blocked: p.blocked,
        caps: p.caps,
        granted: p.granted,
        revoked: p.revoked,
    }));
    Ok(out)
}

fn ask(conn: Conn, frame: impl Into<Frame>, what: &str) -> Result<Vec<Grant>> {
    let mut conn = conn;
    let reply = conn.request(frame);
    conn.close();
    state(reply?, what)
}

/// The line of `grants` about `key` (`*`: everyone's), after a change of it. A member with no decision of its own
/// left has everyone's line, under the name it was given as.
pub fn about(grants: Vec<Grant>, key: &str, name: &str) -> Option<Grant> {
    let everyone = grants.first().cloned();
    let own = grants.into_iter().find(|g| match &g.pubkey {
        None => key == "*",
        Some(k) => k == key,
    });
    own.or_else(|| {
        everyone.map(|e| Grant {
            name: name.to_string(),
            pubkey: Some(key.to_string()),
            ..e
        })
    })
}

/// Allows (`allow`) or refuses `caps` to `who` (or to everyone, `*`): the key it named, and everyone's and each
/// member's grants after.
pub fn set(ctx: &Ctx, who: &str, caps: Vec<String>, allow: bool) -> Result<(String, Vec<Grant>)> {
    let mut conn = connect(ctx)?;
    let peer = peer_key(&mut conn, ctx, who, true)?;
    let g = wire::GrantSet {
        peer: peer.clone(),
        caps,
        allow,
        ..wire::GrantSet::default()
    };
    Ok((peer, ask(conn, g, "grant_set")?))
}

/// Blocks or unblocks `who`: the key it named, and the grants after.
pub fn block(ctx: &Ctx, who: &str, blocked: bool) -> Result<(String, Vec<Grant>)> {
    let mut conn = connect(ctx)?;
    let peer = peer_key(&mut conn, ctx, who, false)?;
    let b = wire::GrantBlock {
        peer: peer.clone(),
        blocked,
        ..wire::GrantBlock::default()
    };
    Ok((peer, ask(conn, b, "grant_block")?))
}

/// Everyone's grants, then each member's with a grant or block of its own.
pub fn list(ctx: &Ctx) -> Result<Vec<Grant>> {
    let conn = connect(ctx)?;
    ask(conn, wire::GrantList::default(), "grant_list")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn capabilities_are_the_broker_s_with_all_and_the_original_s_file_read() {
        assert_eq!(caps(&["now", "dm", "now"], false).unwrap(), ["now", "dm"]);
        assert_eq!(caps(&["all"], false).unwrap(), CAPS);
        assert_eq!(caps(&[], true).unwrap(), CAPS);
        assert_eq!(caps(&["file-read"], false).unwrap(), ["files"]);
        let e = caps(&["state-write"], false).unwrap_err();
        assert_eq!(e.code, Code::Usage);
        assert!(e.msg.contains("nothing enforces"), "{}", e.msg);
        let e = caps(&["nwo"], false).unwrap_err();
        assert!(e.msg.contains("did you mean \"now\""), "{}", e.msg);
        assert_eq!(caps(&[], false).unwrap_err().code, Code::Usage);
    }
}
