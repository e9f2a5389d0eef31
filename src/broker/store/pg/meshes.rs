//! Meshes, their members and invites, and the session keys members have shown.

use postgres::Row;

use super::{At, Invite, Member, MemberPresence, Mesh, PgStore, Session};
use crate::error::Result;

const MEMBER_COLS: &str = "id, mesh_id, pubkey, display_name, role, role_tag, groups, message_mode, joined_at, \
                           last_seen_at, revoked_at";

fn member_row(r: &Row) -> Result<Member> {
    Ok(Member {
        id: r.at(0)?,
        mesh_id: r.at(1)?,
        pubkey: r.at(2)?,
        display_name: r.at(3)?,
        role: r.at(4)?,
        role_tag: r.at(5)?,
        groups: r.at(6)?,
        message_mode: r.at(7)?,
        joined_at: r.at(8)?,
        last_seen_at: r.at(9)?,
        revoked_at: r.at(10)?,
    })
}

impl PgStore {
    pub(crate) fn create_mesh(&mut self, mesh: &Mesh, owner: &Member) -> Result<()> {
        self.write(|c| {
            c.execute(
                "INSERT INTO meshes (id, name, slug, owner_pubkey, created_at, archived_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &mesh.id,
                    &mesh.name,
                    &mesh.slug,
                    &mesh.owner_pubkey,
                    &mesh.created_at,
                    &mesh.archived_at,
                ],
            )?;
            insert_member(c, owner).map(drop)
        })
    }

    pub(crate) fn mesh(&self, id: &str) -> Result<Option<Mesh>> {
        self.opt(
            "SELECT id, name, slug, owner_pubkey, created_at, archived_at FROM meshes WHERE id = $1",
            &[&id],
            |r| {
                Ok(Mesh {
                    id: r.at(0)?,
                    name: r.at(1)?,
                    slug: r.at(2)?,
                    owner_pubkey: r.at(3)?,
                    created_at: r.at(4)?,
                    archived_at: r.at(5)?,
                })
            },
        )
    }

    pub(crate) fn slug_taken(&self, slug: &str) -> Result<bool> {
        Ok(self
            .opt("SELECT 1 FROM meshes WHERE slug = $1", &[&slug], |_| Ok(()))?
            .is_some())
    }

    pub(crate) fn member(&self, id: &str) -> Result<Option<Member>> {
        self.opt(
            &format!("SELECT {MEMBER_COLS} FROM members WHERE id = $1"),
            &[&id],
            member_row,
        )
    }

    pub(crate) fn member_by_pubkey(&self, mesh_id: &str, pubkey: &str) -> Result<Option<Member>> {
        self.opt(
            &format!("SELECT {MEMBER_COLS} FROM members WHERE mesh_id = $1 AND pubkey = $2"),
            &[&mesh_id, &pubkey],
            member_row,
        )
    }

    pub(crate) fn members(&self, mesh_id: &str) -> Result<Vec<Member>> {
        self.all(
            &format!("SELECT {MEMBER_COLS} FROM members WHERE mesh_id = $1 ORDER BY joined_at, id"),
            &[&mesh_id],
            member_row,
        )
    }

    pub(crate) fn insert_member(&mut self, m: &Member) -> Result<()> {
        self.write(|c| insert_member(c, m).map(drop))
    }

    pub(crate) fn set_member_groups(&mut self, member_id: &str, groups: &str) -> Result<()> {
        self.exec(
            "UPDATE members SET groups = $2 WHERE id = $1",
            &[&member_id, &groups],
        )
        .map(drop)
    }

    pub(crate) fn set_member_revoked(&mut self, member_id: &str, at: Option<i64>) -> Result<()> {
        self.exec(
            "UPDATE members SET revoked_at = $2 WHERE id = $1",
            &[&member_id, &at],
        )
        .map(drop)
    }

    pub(crate) fn insert_invite(&mut self, i: &Invite) -> Result<()> {
        self.exec(
            "INSERT INTO invites (id, mesh_id, token, token_hash, payload, max_uses, used_count, role, expires_at, \
             created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &i.id,
                &i.mesh_id,
                &i.token,
                &i.token_hash,
                &i.payload,
                &i.max_uses,
                &i.used_count,
                &i.role,
                &i.expires_at,
                &i.created_at,
                &i.revoked_at,
            ],
        )
        .map(drop)
    }

    pub(crate) fn invite_by_token(&self, token: &str) -> Result<Option<Invite>> {
        self.opt(
            "SELECT id, mesh_id, token, token_hash, payload, max_uses, used_count, role, expires_at, created_at, \
             revoked_at FROM invites WHERE token = $1",
            &[&token],
            |r| {
                Ok(Invite {
                    id: r.at(0)?,
                    mesh_id: r.at(1)?,
                    token: r.at(2)?,
                    token_hash: r.at(3)?,
                    payload: r.at(4)?,
                    max_uses: r.at(5)?,
                    used_count: r.at(6)?,
                    role: r.at(7)?,
                    expires_at: r.at(8)?,
                    created_at: r.at(9)?,
                    revoked_at: r.at(10)?,
                })
            },
        )
    }

    pub(crate) fn use_invite(&mut self, id: &str) -> Result<bool> {
        // One conditional UPDATE: concurrent joins take the row's lock in turn, and the last use is taken once.
        let n = self.exec(
            "UPDATE invites SET used_count = used_count + 1 WHERE id = $1 AND used_count < max_uses",
            &[&id],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn upsert_session(&mut self, s: &Session) -> Result<()> {
        self.exec(
            "INSERT INTO sessions (mesh_id, session_pubkey, member_id, display_name, session_id, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (mesh_id, session_pubkey) DO UPDATE SET \
             member_id = excluded.member_id, display_name = excluded.display_name, \
             session_id = excluded.session_id, last_seen_at = excluded.last_seen_at",
            &[&s.mesh_id, &s.session_pubkey, &s.member_id, &s.display_name, &s.session_id, &s.last_seen_at],
        )
        .map(drop)
    }

    pub(crate) fn session(&self, mesh_id: &str, session_pubkey: &str) -> Result<Option<Session>> {
        self.opt(
            "SELECT mesh_id, session_pubkey, member_id, display_name, session_id, last_seen_at FROM sessions \
             WHERE mesh_id = $1 AND session_pubkey = $2",
            &[&mesh_id, &session_pubkey],
            |r| {
                Ok(Session {
                    mesh_id: r.at(0)?,
                    session_pubkey: r.at(1)?,
                    member_id: r.at(2)?,
                    display_name: r.at(3)?,
                    session_id: r.at(4)?,
                    last_seen_at: r.at(5)?,
                })
            },
        )
    }

    pub(crate) fn member_presence(&self, member_id: &str) -> Result<MemberPresence> {
        let p = self.opt(
            "SELECT summary, status, visible FROM members WHERE id = $1",
            &[&member_id],
            |r| {
                Ok(MemberPresence {
                    summary: r.at(0)?,
                    status: r.at(1)?,
                    visible: r.at(2)?,
                })
            },
        )?;
        Ok(p.unwrap_or(MemberPresence {
            summary: None,
            status: None,
            visible: true,
        }))
    }

    pub(crate) fn set_member_presence(
        &mut self,
        member_id: &str,
        p: &MemberPresence,
    ) -> Result<()> {
        self.exec(
            "UPDATE members SET summary = $2, status = $3, visible = $4 WHERE id = $1",
            &[&member_id, &p.summary, &p.status, &p.visible],
        )
        .map(drop)
    }

    pub(crate) fn set_member_name(&mut self, member_id: &str, display_name: &str) -> Result<()> {
        self.exec(
            "UPDATE members SET display_name = $2 WHERE id = $1",
            &[&member_id, &display_name],
        )
        .map(drop)
    }

    pub(crate) fn set_member_role_tag(
        &mut self,
        member_id: &str,
        role_tag: Option<&str>,
    ) -> Result<()> {
        self.exec(
            "UPDATE members SET role_tag = $2 WHERE id = $1",
            &[&member_id, &role_tag],
        )
        .map(drop)
    }
}

fn insert_member(c: &mut super::Conn, m: &Member) -> Result<u64> {
    c.execute(
        &format!(
            "INSERT INTO members ({MEMBER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        &[
            &m.id,
            &m.mesh_id,
            &m.pubkey,
            &m.display_name,
            &m.role,
            &m.role_tag,
            &m.groups,
            &m.message_mode,
            &m.joined_at,
            &m.last_seen_at,
            &m.revoked_at,
        ],
    )
}
