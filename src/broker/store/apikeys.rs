//! API keys for the REST surface: stored as hashes, found by their prefix, revoked once.

use rusqlite::{Row, params};

use super::{SqliteStore, db};
use crate::error::Result;

/// An API key for the REST surface: only the SHA-256 of its secret is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub mesh_id: String,
    pub label: String,
    /// Lowercase hex SHA-256 of the whole secret.
    pub secret_hash: String,
    /// The secret's first 11 characters (`cm_` and 8 more), to find the row by.
    pub secret_prefix: String,
    /// JSON array of `send`, `read`, `state_write`, `admin`.
    pub capabilities: String,
    /// JSON array of topic names; `None` is every topic.
    pub topic_scopes: Option<String>,
    pub issued_by_member_id: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub expires_at: Option<i64>,
}

const API_KEY_COLS: &str = "id, mesh_id, label, secret_hash, secret_prefix, capabilities, topic_scopes,     issued_by_member_id, created_at, last_used_at, revoked_at, expires_at";

fn api_key_row(r: &Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        label: r.get(2)?,
        secret_hash: r.get(3)?,
        secret_prefix: r.get(4)?,
        capabilities: r.get(5)?,
        topic_scopes: r.get(6)?,
        issued_by_member_id: r.get(7)?,
        created_at: r.get(8)?,
        last_used_at: r.get(9)?,
        revoked_at: r.get(10)?,
        expires_at: r.get(11)?,
    })
}

impl SqliteStore {
    pub(crate) fn insert_api_key(&mut self, k: &ApiKey) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO api_keys ({API_KEY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    k.id,
                    k.mesh_id,
                    k.label,
                    k.secret_hash,
                    k.secret_prefix,
                    k.capabilities,
                    k.topic_scopes,
                    k.issued_by_member_id,
                    k.created_at,
                    k.last_used_at,
                    k.revoked_at,
                    k.expires_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn api_keys(&self, mesh_id: &str) -> Result<Vec<ApiKey>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {API_KEY_COLS} FROM api_keys WHERE mesh_id = ?1 ORDER BY created_at DESC, id"
            ))
            .and_then(|mut s| s.query_map([mesh_id], api_key_row)?.collect())
            .map_err(db)
    }

    pub(crate) fn api_keys_by_prefix(&self, secret_prefix: &str) -> Result<Vec<ApiKey>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {API_KEY_COLS} FROM api_keys WHERE secret_prefix = ?1"
            ))
            .and_then(|mut s| s.query_map([secret_prefix], api_key_row)?.collect())
            .map_err(db)
    }

    pub(crate) fn revoke_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, at]))
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn touch_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, at]))
            .map_err(db)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{both_stores, seeded_in};
    use super::*;

    both_stores! {
        fn api_keys_are_found_by_prefix_and_revoked_once(db) {
            let mut s = seeded_in(db);
            let k = ApiKey {
                id: "k1".into(),
                mesh_id: "m1".into(),
                label: "ci".into(),
                secret_hash: "h1".into(),
                secret_prefix: "cm_abcdefgh".into(),
                capabilities: r#"["read"]"#.into(),
                topic_scopes: None,
                issued_by_member_id: "a".into(),
                created_at: 1,
                last_used_at: None,
                revoked_at: None,
                expires_at: None,
            };
            s.insert_api_key(&k).unwrap();
            assert_eq!(
                s.api_keys_by_prefix("cm_abcdefgh").unwrap(),
                std::slice::from_ref(&k)
            );
            assert!(s.api_keys_by_prefix("cm_abcdefgx").unwrap().is_empty());
            s.touch_api_key("k1", 5).unwrap();
            s.revoke_api_key("k1", 6).unwrap();
            s.revoke_api_key("k1", 7).unwrap();
            let got = &s.api_keys("m1").unwrap()[0];
            assert_eq!((got.last_used_at, got.revoked_at), (Some(5), Some(6)));
            s.commit().unwrap();
        }
    }
}
