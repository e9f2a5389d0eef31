//! API keys for the REST surface: stored as hashes, found by their prefix, revoked once.

use postgres::Row;

use super::{ApiKey, At, PgStore};
use crate::error::Result;

const API_KEY_COLS: &str = "id, mesh_id, label, secret_hash, secret_prefix, capabilities, topic_scopes, \
                            issued_by_member_id, created_at, last_used_at, revoked_at, expires_at";

fn api_key_row(r: &Row) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.at(0)?,
        mesh_id: r.at(1)?,
        label: r.at(2)?,
        secret_hash: r.at(3)?,
        secret_prefix: r.at(4)?,
        capabilities: r.at(5)?,
        topic_scopes: r.at(6)?,
        issued_by_member_id: r.at(7)?,
        created_at: r.at(8)?,
        last_used_at: r.at(9)?,
        revoked_at: r.at(10)?,
        expires_at: r.at(11)?,
    })
}

impl PgStore {
    pub(crate) fn insert_api_key(&mut self, k: &ApiKey) -> Result<()> {
        self.exec(
            &format!(
                "INSERT INTO api_keys ({API_KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                &k.id,
                &k.mesh_id,
                &k.label,
                &k.secret_hash,
                &k.secret_prefix,
                &k.capabilities,
                &k.topic_scopes,
                &k.issued_by_member_id,
                &k.created_at,
                &k.last_used_at,
                &k.revoked_at,
                &k.expires_at,
            ],
        )
        .map(drop)
    }

    pub(crate) fn api_keys(&self, mesh_id: &str) -> Result<Vec<ApiKey>> {
        self.all(
            &format!("SELECT {API_KEY_COLS} FROM api_keys WHERE mesh_id = $1 ORDER BY created_at DESC, id"),
            &[&mesh_id],
            api_key_row,
        )
    }

    pub(crate) fn api_keys_by_prefix(&self, secret_prefix: &str) -> Result<Vec<ApiKey>> {
        self.all(
            &format!("SELECT {API_KEY_COLS} FROM api_keys WHERE secret_prefix = $1"),
            &[&secret_prefix],
            api_key_row,
        )
    }

    pub(crate) fn revoke_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        self.exec(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
            &[&id, &at],
        )
        .map(drop)
    }

    pub(crate) fn touch_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        self.exec(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
            &[&id, &at],
        )
        .map(drop)
    }
}
