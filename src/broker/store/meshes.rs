//! Meshes, their members and invites, and the session keys members have shown.

use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, db};
use crate::error::Result;

/// A mesh: a named set of members with one owner key.
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// The owner's ed25519 key (hex); invites must verify against it.
    pub owner_pubkey: String,
    pub created_at: i64,
    pub archived_at: Option<i64>,
}

/// A member of a mesh: one ed25519 identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub mesh_id: String,
    pub pubkey: String,
    pub display_name: String,
    /// `admin` or `member`.
    pub role: String,
    pub role_tag: Option<String>,
    /// JSON array of `{name, role?}`.
    pub groups: String,
    pub message_mode: String,
    pub joined_at: i64,
    pub last_seen_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A registered v1 invite.
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    pub id: String,
    pub mesh_id: String,
    /// The base64url token exactly as it appears in the link.
    pub token: String,
    /// sha256 hex of `token`, the value the owner signed when registering it.
    pub token_hash: String,
    /// The decoded payload (JSON text).
    pub payload: String,
    pub max_uses: i64,
    pub used_count: i64,
    pub role: String,
    /// ms since the epoch.
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A session key seen with a valid `session_hello`, remembered so that a DM to it while it is offline is queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub mesh_id: String,
    pub session_pubkey: String,
    pub member_id: String,
    pub display_name: Option<String>,
    pub session_id: Option<String>,
    pub last_seen_at: i64,
}

/// What a member's new presences start with (set by `cm-profile` on a member connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPresence {
    pub summary: Option<String>,
    /// `idle`, `working` or `dnd`; `None` means idle.
    pub status: Option<String>,
    pub visible: bool,
}

const MEMBER_COLS: &str = "id, mesh_id, pubkey, display_name, role, role_tag, groups, message_mode, joined_at, \
                           last_seen_at, revoked_at";

fn member_row(r: &Row) -> rusqlite::Result<Member> {
    Ok(Member {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        pubkey: r.get(2)?,
        display_name: r.get(3)?,
        role: r.get(4)?,
        role_tag: r.get(5)?,
        groups: r.get(6)?,
        message_mode: r.get(7)?,
        joined_at: r.get(8)?,
        last_seen_at: r.get(9)?,
        revoked_at: r.get(10)?,
    })
}

impl SqliteStore {
    pub(crate) fn create_mesh(&mut self, mesh: &Mesh, owner: &Member) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO meshes (id, name, slug, owner_pubkey, created_at, archived_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![mesh.id, mesh.name, mesh.slug, mesh.owner_pubkey, mesh.created_at, mesh.archived_at])
            })
            .map_err(db)?;
        self.insert_member(owner)
    }

    pub(crate) fn mesh(&self, id: &str) -> Result<Option<Mesh>> {
        self.conn
            .prepare_cached("SELECT id, name, slug, owner_pubkey, created_at, archived_at FROM meshes WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    Ok(Mesh {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        slug: r.get(2)?,
                        owner_pubkey: r.get(3)?,
                        created_at: r.get(4)?,
                        archived_at: r.get(5)?,
                    })
                })
                .optional()
            })
            .map_err(db)
    }

    pub(crate) fn slug_taken(&self, slug: &str) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM meshes WHERE slug = ?1")
            .and_then(|mut s| s.exists([slug]))
            .map_err(db)
    }

    pub(crate) fn member(&self, id: &str) -> Result<Option<Member>> {
        self.conn
            .prepare_cached(&format!("SELECT {MEMBER_COLS} FROM members WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id], member_row).optional())
            .map_err(db)
    }

    pub(crate) fn member_by_pubkey(&self, mesh_id: &str, pubkey: &str) -> Result<Option<Member>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {MEMBER_COLS} FROM members WHERE mesh_id = ?1 AND pubkey = ?2"
            ))
            .and_then(|mut s| s.query_row([mesh_id, pubkey], member_row).optional())
            .map_err(db)
    }

    pub(crate) fn members(&self, mesh_id: &str) -> Result<Vec<Member>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {MEMBER_COLS} FROM members WHERE mesh_id = ?1 ORDER BY joined_at, id"
            ))
            .and_then(|mut s| s.query_map([mesh_id], member_row)?.collect())
            .map_err(db)
    }

    pub(crate) fn insert_member(&mut self, m: &Member) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO members ({MEMBER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    m.id,
                    m.mesh_id,
                    m.pubkey,
                    m.display_name,
                    m.role,
                    m.role_tag,
                    m.groups,
                    m.message_mode,
                    m.joined_at,
                    m.last_seen_at,
                    m.revoked_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn set_member_groups(&mut self, member_id: &str, groups: &str) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE members SET groups = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute([member_id, groups]))
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn set_member_revoked(&mut self, member_id: &str, at: Option<i64>) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE members SET revoked_at = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![member_id, at]))
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn insert_invite(&mut self, i: &Invite) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO invites (id, mesh_id, token, token_hash, payload, max_uses, used_count, role, expires_at, \
                 created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    i.id,
                    i.mesh_id,
                    i.token,
                    i.token_hash,
                    i.payload,
                    i.max_uses,
                    i.used_count,
                    i.role,
                    i.expires_at,
                    i.created_at,
                    i.revoked_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn invite_by_token(&self, token: &str) -> Result<Option<Invite>> {
        self.conn
            .prepare_cached(
                "SELECT id, mesh_id, token, token_hash, payload, max_uses, used_count, role, expires_at, created_at, \
                 revoked_at FROM invites WHERE token = ?1",
            )
            .and_then(|mut s| {
                s.query_row([token], |r| {
                    Ok(Invite {
                        id: r.get(0)?,
                        mesh_id: r.get(1)?,
                        token: r.get(2)?,
                        token_hash: r.get(3)?,
                        payload: r.get(4)?,
                        max_uses: r.get(5)?,
                        used_count: r.get(6)?,
                        role: r.get(7)?,
                        expires_at: r.get(8)?,
                        created_at: r.get(9)?,
                        revoked_at: r.get(10)?,
                    })
                })
                .optional()
            })
            .map_err(db)
    }

    pub(crate) fn use_invite(&mut self, id: &str) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached("UPDATE invites SET used_count = used_count + 1 WHERE id = ?1 AND used_count < max_uses")
            .and_then(|mut s| s.execute([id]))
            .map_err(db)?;
        Ok(n == 1)
    }

    pub(crate) fn upsert_session(&mut self, s: &Session) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (mesh_id, session_pubkey, member_id, display_name, session_id, last_seen_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (mesh_id, session_pubkey) DO UPDATE SET \
                 member_id = excluded.member_id, display_name = excluded.display_name, \
                 session_id = excluded.session_id, last_seen_at = excluded.last_seen_at",
            )
            .and_then(|mut st| {
                st.execute(params![s.mesh_id, s.session_pubkey, s.member_id, s.display_name, s.session_id, s.last_seen_at])
            })
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn session(&self, mesh_id: &str, session_pubkey: &str) -> Result<Option<Session>> {
        self.conn
            .prepare_cached(
                "SELECT mesh_id, session_pubkey, member_id, display_name, session_id, last_seen_at FROM sessions \
                 WHERE mesh_id = ?1 AND session_pubkey = ?2",
            )
            .and_then(|mut s| {
                s.query_row([mesh_id, session_pubkey], |r| {
                    Ok(Session {
                        mesh_id: r.get(0)?,
                        session_pubkey: r.get(1)?,
                        member_id: r.get(2)?,
                        display_name: r.get(3)?,
                        session_id: r.get(4)?,
                        last_seen_at: r.get(5)?,
                    })
                })
                .optional()
            })
            .map_err(db)
    }

    pub(crate) fn member_presence(&self, member_id: &str) -> Result<MemberPresence> {
        self.conn
            .prepare_cached("SELECT summary, status, visible FROM members WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([member_id], |r| {
                    Ok(MemberPresence {
                        summary: r.get(0)?,
                        status: r.get(1)?,
                        visible: r.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(db)
            .map(|p| {
                p.unwrap_or(MemberPresence {
                    summary: None,
                    status: None,
                    visible: true,
                })
            })
    }

    pub(crate) fn set_member_presence(
        &mut self,
        member_id: &str,
        p: &MemberPresence,
    ) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "UPDATE members SET summary = ?2, status = ?3, visible = ?4 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![member_id, p.summary, p.status, p.visible]))
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn set_member_name(&mut self, member_id: &str, display_name: &str) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE members SET display_name = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute([member_id, display_name]))
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn set_member_role_tag(
        &mut self,
        member_id: &str,
        role_tag: Option<&str>,
    ) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE members SET role_tag = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![member_id, role_tag]))
            .map_err(db)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{both_stores, member, seeded_in};
    use super::*;

    both_stores! {
        fn meshes_members_and_lookups(db) {
            let mut s = seeded_in(db);
            assert!(s.slug_taken("dev").unwrap());
            assert!(!s.slug_taken("dev-2").unwrap());
            assert_eq!(s.mesh("m1").unwrap().unwrap().slug, "dev");
            assert!(s.mesh("nope").unwrap().is_none());
            assert_eq!(s.member_by_pubkey("m1", "pb").unwrap().unwrap().id, "b");
            assert!(s.member_by_pubkey("m1", "PB").unwrap().is_none());
            // (mesh, pubkey) is unique.
            assert!(s.insert_member(&member("c", "m1", "pb")).is_err());
            s.rollback();
            s.set_member_groups("b", r#"[{"name":"eng"}]"#).unwrap();
            s.set_member_revoked("b", Some(5)).unwrap();
            s.commit().unwrap();
            let b = s.member("b").unwrap().unwrap();
            assert_eq!(b.groups, r#"[{"name":"eng"}]"#);
            assert_eq!(b.revoked_at, Some(5));
            assert_eq!(s.members("m1").unwrap().len(), 2);
        }
    }

    both_stores! {
        fn invites_are_used_at_most_max_uses_times(db) {
            let mut s = seeded_in(db);
            let inv = Invite {
                id: "i1".into(),
                mesh_id: "m1".into(),
                token: "tok".into(),
                token_hash: "h".into(),
                payload: "{}".into(),
                max_uses: 2,
                used_count: 0,
                role: "member".into(),
                expires_at: Some(10),
                created_at: 1,
                revoked_at: None,
            };
            s.insert_invite(&inv).unwrap();
            assert_eq!(s.invite_by_token("tok").unwrap().unwrap(), inv);
            assert!(s.use_invite("i1").unwrap());
            assert!(s.use_invite("i1").unwrap());
            assert!(!s.use_invite("i1").unwrap());
            s.commit().unwrap();
            assert_eq!(s.invite_by_token("tok").unwrap().unwrap().used_count, 2);
        }
    }
}
