//! [`Roster`]: who is in a mesh. `list_peers` gives the live presences, `members` every member, online or not; a
//! DM target is resolved against both, so an offline member can be written to and the message waits for it.

use serde::Serialize;

use crate::client::{Feature, Requester, unexpected};
use crate::error::Result;
use crate::target::Candidate;
use crate::wire::{Frame, Group, ListPeers, Member, Members, Peer};

/// The `peerRole` of a one-shot tool's connection (a `hello` as the member).
pub const CONTROL_PLANE: &str = "control-plane";

/// A mesh's live presences and members, as one connection sees them.
#[derive(Debug, Clone)]
pub struct Roster {
    /// The mesh's slug.
    pub mesh: String,
    /// Our member key in this mesh.
    pub own_member: String,
    /// The key our connection speaks as (a session key inside a launched session, else the member key).
    pub own_key: String,
    /// Live presences, in the broker's order.
    pub peers: Vec<Peer>,
    /// Every member that is not revoked.
    pub members: Vec<Member>,
    /// The broker has no member list (an original broker): `members` holds the online ones only.
    pub online_only: bool,
}

/// One line of `cm-peers --json` (and of a `cm-pipe` `peers` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerRow {
    r#type: &'static str,
    pub mesh: String,
    pub name: String,
    /// The key to address: the session's key, or the member key for a member without a session.
    pub pubkey: String,
    pub member_pubkey: String,
    /// The member's role in the mesh: `admin` or `member`.
    pub role: Option<String>,
    /// `session` (a Claude Code session, `cm-pipe`...), `control-plane` (a one-shot tool's connection) or
    /// `member` (a member with no session connected).
    pub peer_role: String,
    /// `idle`, `working` or `dnd` for a presence; `online` or `offline` for a member row.
    pub status: String,
    /// Connected now (a member row is online when any tool of the member is connected).
    pub online: bool,
    pub summary: Option<String>,
    pub groups: Vec<Group>,
    pub hostname: Option<String>,
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// This member is you.
    pub is_self: bool,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// `@eng` reaches `eng` and `eng/backend`, not `engineering`.
pub fn in_group(groups: &[Group], target: &str) -> bool {
    groups.iter().any(|g| {
        g.name == target
            || g.name
                .strip_prefix(target)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The members a broker without a member list (the original) shows: those with a live presence, once each.
/// Offline members cannot be found by name there, and a broadcast reaches the online ones, as that broker's own
/// fan-out does.
fn members_online(peers: &[Peer]) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::new();
    for p in peers {
        let key = if p.member_pubkey.is_empty() {
            &p.pubkey
        } else {
            &p.member_pubkey
        };
        if out.iter().any(|m| &m.pubkey == key) {
            continue;
        }
        out.push(Member {
            member_id: p.member_id.clone().unwrap_or_default(),
            pubkey: key.clone(),
            display_name: p.display_name.clone(),
            groups: p.groups.clone(),
            online: true,
            ..Member::default()
        });
    }
    out
}

/// The mesh's members: all of them where the broker has a member list, else the online ones (the original's
/// `list_peers`).
pub fn members(conn: &mut impl Requester) -> Result<Vec<Member>> {
    if conn.features().has(Feature::Members) {
        return match conn.ask(Members::default().into())? {
            Frame::MembersList(m) => Ok(m.members),
            f => Err(unexpected("members", &f)),
        };
    }
    match conn.ask(ListPeers::default().into())? {
        Frame::PeersList(p) => Ok(members_online(&p.peers)),
        f => Err(unexpected("list_peers", &f)),
    }
}

impl Roster {
    /// Asks for the live presences and the members (the live ones only, where the broker has no member list).
    pub fn fetch(
        conn: &mut impl Requester,
        mesh: &str,
        own_member: &str,
        own_key: &str,
    ) -> Result<Roster> {
        let peers = match conn.ask(ListPeers::default().into())? {
            Frame::PeersList(p) => p.peers,
            f => return Err(unexpected("list_peers", &f)),
        };
        let online_only = !conn.features().has(Feature::Members);
        let members = if online_only {
            members_online(&peers)
        } else {
            match conn.ask(Members::default().into())? {
                Frame::MembersList(m) => m.members,
                f => return Err(unexpected("members", &f)),
            }
        };
        Ok(Roster {
            mesh: mesh.to_string(),
            own_member: own_member.to_string(),
            own_key: own_key.to_string(),
            peers,
            members,
            online_only,
        })
    }

    /// What a name or key prefix is matched against: every presence, then every member under its own key.
    pub fn candidates(&self) -> Vec<Candidate> {
        let presences = self.peers.iter().map(|p| Candidate {
            name: p.display_name.clone(),
            pubkey: p.pubkey.clone(),
            member_pubkey: p.member_pubkey.clone(),
            mesh: self.mesh.clone(),
            online: p.online.unwrap_or(true),
            control_plane: p.peer_role == CONTROL_PLANE,
        });
        let members = self.members.iter().map(|m| Candidate {
            name: m.display_name.clone(),
            pubkey: m.pubkey.clone(),
            member_pubkey: m.pubkey.clone(),
            mesh: self.mesh.clone(),
            online: m.online,
            control_plane: false,
        });
        presences.chain(members).collect()
    }

    /// The members a broadcast (`group` `None`) or a group message reaches: every member but us whose groups,
    /// or whose live presences' groups, include the group.
    pub fn fan_out(&self, group: Option<&str>) -> Vec<&Member> {
        self.members
            .iter()
            .filter(|m| m.pubkey != self.own_member)
            .filter(|m| match group {
                None => true,
                Some(g) => {
                    in_group(&m.groups, g)
                        || self
                            .peers
                            .iter()
                            .any(|p| p.member_pubkey == m.pubkey && in_group(&p.groups, g))
                }
            })
            .collect()
    }

    /// The display name of a key (a presence's or a member's), if it is in the roster.
    pub fn name_of(&self, key: &str) -> Option<&str> {
        self.peers
            .iter()
            .find(|p| p.pubkey == key)
            .map(|p| p.display_name.as_str())
            .or_else(|| {
                self.members
                    .iter()
                    .find(|m| m.pubkey == key)
                    .map(|m| m.display_name.as_str())
            })
    }

    /// The rows `cm-peers` shows, and how many control-plane presences it left out. Presences come first in the
    /// broker's order (control-plane ones only with `all`), then one row per member that has none of them.
    pub fn rows(&self, all: bool) -> (Vec<PeerRow>, usize) {
        let role_of = |member_pubkey: &str| {
            self.members
                .iter()
                .find(|m| m.pubkey == member_pubkey)
                .map(|m| m.role.clone())
        };
        let mut rows = Vec::new();
        let mut hidden = 0;
        for p in &self.peers {
            if p.peer_role == CONTROL_PLANE && !all {
                // Our own one-shot connections (this very query among them) are not worth a mention.
                if p.member_pubkey != self.own_member {
                    hidden += 1;
                }
                continue;
            }
            rows.push(PeerRow {
                r#type: "peer",
                mesh: self.mesh.clone(),
                name: p.display_name.clone(),
                pubkey: p.pubkey.clone(),
                member_pubkey: p.member_pubkey.clone(),
                role: role_of(&p.member_pubkey),
                peer_role: if p.peer_role.is_empty() {
                    "session".into()
                } else {
                    p.peer_role.clone()
                },
                status: p.status.as_str().to_string(),
                online: p.online.unwrap_or(true),
                summary: p.summary.clone().filter(|s| !s.is_empty()),
                groups: p.groups.clone(),
                hostname: p.hostname.clone().filter(|s| !s.is_empty()),
                cwd: non_empty(&p.cwd),
                session_id: non_empty(&p.session_id),
                connected_at: non_empty(&p.connected_at),
                peer_type: p.peer_type.clone(),
                channel: p.channel.clone(),
                model: p.model.clone(),
                is_self: p.member_pubkey == self.own_member,
            });
        }
        for m in &self.members {
            if rows.iter().any(|r| r.member_pubkey == m.pubkey) {
                continue;
            }
            rows.push(PeerRow {
                r#type: "peer",
                mesh: self.mesh.clone(),
                name: m.display_name.clone(),
                pubkey: m.pubkey.clone(),
                member_pubkey: m.pubkey.clone(),
                role: non_empty(&m.role),
                peer_role: "member".into(),
                status: if m.online { "online" } else { "offline" }.into(),
                online: m.online,
                summary: None,
                groups: m.groups.clone(),
                hostname: None,
                cwd: None,
                session_id: None,
                connected_at: None,
                peer_type: None,
                channel: None,
                model: None,
                is_self: m.pubkey == self.own_member,
            });
        }
        (rows, hidden)
    }
}

/// `cm-peers`' human table for one mesh: a heading, then a row per peer (name, status, key, and what else is
/// known: you, groups, summary).
pub fn table(mesh: &str, rows: &[PeerRow], hidden: usize) -> Vec<String> {
    let mut head = format!("mesh {mesh}");
    if hidden > 0 {
        head += &format!(
            " ({hidden} control-plane connection{} hidden; --all shows {})",
            if hidden == 1 { "" } else { "s" },
            if hidden == 1 { "it" } else { "them" }
        );
    }
    let mut lines = vec![head];
    let names: Vec<String> = rows
        .iter()
        .map(|r| super::inbox::printable(&r.name))
        .collect();
    let wn = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let ws = rows.iter().map(|r| r.status.len()).max().unwrap_or(0);
    for (r, name) in rows.iter().zip(&names) {
        let pad = wn - name.chars().count();
        let mut line = format!(
            "  {name}{:pad$}  {:ws$}  {}",
            "",
            r.status,
            crate::out::short_key(&r.pubkey)
        );
        if r.peer_role == CONTROL_PLANE {
            line += "  (tool)";
        }
        if r.is_self {
            line += "  (you)";
        }
        if !r.groups.is_empty() {
            let g: Vec<String> = r.groups.iter().map(|g| format!("@{}", g.name)).collect();
            line += &format!("  {}", g.join(","));
        }
        if let Some(s) = &r.summary {
            line += &format!("  — {}", super::inbox::printable(s));
        }
        lines.push(line.trim_end().to_string());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Status;

    fn key(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn group(n: &str) -> Group {
        Group {
            name: n.into(),
            role: None,
        }
    }

    fn member(name: &str, k: char, groups: &[&str], online: bool) -> Member {
        Member {
            member_id: format!("m-{name}"),
            pubkey: key(k),
            display_name: name.into(),
            role: "member".into(),
            groups: groups.iter().map(|g| group(g)).collect(),
            joined_at: "2026-01-01T00:00:00.000Z".into(),
            online,
        }
    }

    fn peer(name: &str, k: char, member: char, role: &str, groups: &[&str]) -> Peer {
        Peer {
            pubkey: key(k),
            member_pubkey: key(member),
            display_name: name.into(),
            status: Status::Working,
            groups: groups.iter().map(|g| group(g)).collect(),
            peer_role: role.into(),
            cwd: "/src".into(),
            online: Some(true),
            ..Peer::default()
        }
    }

    fn roster() -> Roster {
        Roster {
            mesh: "dev".into(),
            own_member: key('a'),
            own_key: key('a'),
            peers: vec![
                peer("alice", 'a', 'a', CONTROL_PLANE, &[]),
                peer("bob", 'b', '1', "session", &["eng/backend"]),
                peer("bob", 'c', '1', CONTROL_PLANE, &[]),
            ],
            online_only: false,
            members: vec![
                member("alice", 'a', &["eng"], true),
                member("bob", '1', &[], true),
                member("carol", '3', &["engineering"], false),
                member("dave", '4', &["eng"], false),
            ],
        }
    }

    #[test]
    fn groups_match_by_level() {
        let g = [group("eng/backend")];
        assert!(in_group(&g, "eng"));
        assert!(in_group(&g, "eng/backend"));
        assert!(!in_group(&g, "eng/back"));
        assert!(!in_group(&[group("engineering")], "eng"));
    }

    #[test]
    fn fan_out_skips_us_and_reads_presence_groups() {
        let r = roster();
        let names = |ms: Vec<&Member>| {
            ms.iter()
                .map(|m| m.display_name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(r.fan_out(None)), ["bob", "carol", "dave"]);
        assert_eq!(names(r.fan_out(Some("eng"))), ["bob", "dave"]);
        assert_eq!(names(r.fan_out(Some("ops"))), Vec::<String>::new());
    }

    #[test]
    fn rows_hide_control_plane_and_add_members_without_a_session() {
        let r = roster();
        let (rows, hidden) = r.rows(false);
        // Bob's control-plane connection; ours (this query) is not counted.
        assert_eq!(hidden, 1);
        let got: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.peer_role.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("bob", "session", "working"),
                ("alice", "member", "online"),
                ("carol", "member", "offline"),
                ("dave", "member", "offline"),
            ]
        );
        assert!(rows[1].is_self);
        assert_eq!(rows[0].role.as_deref(), Some("member"));
        let (rows, hidden) = r.rows(true);
        assert_eq!((rows.len(), hidden), (5, 0));
        let j = serde_json::to_value(&rows[0]).unwrap();
        for k in [
            "name",
            "pubkey",
            "member_pubkey",
            "role",
            "status",
            "summary",
            "groups",
            "hostname",
            "cwd",
        ] {
            assert!(j.get(k).is_some(), "{k} missing from {j}");
        }
    }

    #[test]
    fn human_table() {
        let r = roster();
        let (rows, hidden) = r.rows(false);
        assert_eq!(
            table("dev", &rows, hidden),
            [
                "mesh dev (1 control-plane connection hidden; --all shows it)",
                "  bob    working  bbbbbbbb…  @eng/backend",
                "  alice  online   aaaaaaaa…  (you)  @eng",
                "  carol  offline  33333333…  @engineering",
                "  dave   offline  44444444…  @eng",
            ]
        );
    }

    #[test]
    fn candidates_cover_presences_and_members() {
        let c = roster().candidates();
        assert_eq!(c.len(), 7);
        assert!(c[0].control_plane && !c[1].control_plane);
        assert_eq!((c[5].name.as_str(), c[5].online), ("carol", false));
    }
}
