//! Webhooks and the delivery ids each has taken. A webhook's secret is kept as it was made: checking an HMAC
//! needs the key itself, so a hash would not do (docs/protocol.md §6.12 says what that means for the data
//! directory). Plain SQL that PostgreSQL runs as it is.

use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, db};
use crate::error::Result;

/// A webhook.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookRow {
    /// The last part of its URL; not a secret.
    pub id: String,
    pub mesh_id: String,
    /// Unique in the mesh.
    pub name: String,
    /// 64 hex characters: the HMAC key and the bearer token.
    pub secret: String,
    /// A member's key, `*`, `@group` or `#topic`.
    pub target_spec: String,
    pub created_by: String,
    /// The creator's display name (read from the members table).
    pub creator_name: String,
    /// Whether the creator was removed from the mesh (read from the members table); its webhooks stop.
    pub creator_revoked: bool,
    pub created_at: i64,
}

const SELECT: &str = "SELECT w.id, w.mesh_id, w.name, w.secret, w.target_spec, w.created_by, m.display_name, \
    m.revoked_at, w.created_at FROM webhooks w JOIN members m ON m.id = w.created_by";

fn row(r: &Row) -> rusqlite::Result<WebhookRow> {
    Ok(WebhookRow {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        name: r.get(2)?,
        secret: r.get(3)?,
        target_spec: r.get(4)?,
        created_by: r.get(5)?,
        creator_name: r.get(6)?,
        creator_revoked: r.get::<_, Option<i64>>(7)?.is_some(),
        created_at: r.get(8)?,
    })
}

impl SqliteStore {
    /// Stores a new webhook; false when the mesh has one of that name.
    pub(crate) fn webhook_insert(&mut self, w: &WebhookRow) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO webhooks (id, mesh_id, name, secret, target_spec, created_by, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (mesh_id, name) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    w.id,
                    w.mesh_id,
                    w.name,
                    w.secret,
                    w.target_spec,
                    w.created_by,
                    w.created_at
                ])
            })
            .map_err(db)?;
        Ok(n == 1)
    }

    /// The webhook with this id.
    pub(crate) fn webhook(&self, id: &str) -> Result<Option<WebhookRow>> {
        self.conn
            .prepare_cached(&format!("{SELECT} WHERE w.id = ?1"))
            .and_then(|mut s| s.query_row([id], row).optional())
            .map_err(db)
    }

    /// The mesh's webhooks, by name.
    pub(crate) fn webhooks(&self, mesh_id: &str) -> Result<Vec<WebhookRow>> {
        self.conn
            .prepare_cached(&format!("{SELECT} WHERE w.mesh_id = ?1 ORDER BY w.name"))
            .and_then(|mut s| s.query_map([mesh_id], row)?.collect())
            .map_err(db)
    }

    /// Deletes the mesh's webhook `name` and the delivery ids it took; the deleted row, if there was one.
    pub(crate) fn webhook_delete(
        &mut self,
        mesh_id: &str,
        name: &str,
    ) -> Result<Option<WebhookRow>> {
        let Some(w) = self
            .conn
            .prepare_cached(&format!("{SELECT} WHERE w.mesh_id = ?1 AND w.name = ?2"))
            .and_then(|mut s| s.query_row(params![mesh_id, name], row).optional())
            .map_err(db)?
        else {
            return Ok(None);
        };
        self.begin()?;
        self.conn
            .prepare_cached("DELETE FROM webhook_deliveries WHERE webhook_id = ?1")
            .and_then(|mut s| s.execute([&w.id]))
            .map_err(db)?;
        self.conn
            .prepare_cached("DELETE FROM webhooks WHERE id = ?1")
            .and_then(|mut s| s.execute([&w.id]))
            .map_err(db)?;
        Ok(Some(w))
    }

    /// Records a delivery id for a webhook; false when it had taken that id before (a replay).
    pub(crate) fn webhook_delivery_take(
        &mut self,
        webhook_id: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO webhook_deliveries (webhook_id, delivery_id, received_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (webhook_id, delivery_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![webhook_id, delivery_id, now]))
            .map_err(db)?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{both_stores, seeded_in};
    use super::*;

    both_stores! {
        fn names_are_unique_per_mesh_and_delivery_ids_are_taken_once(db) {
            let mut s = seeded_in(db);
            let (mesh, member) = ("m1".to_string(), "a".to_string());
            let w = WebhookRow {
                id: "H1".into(),
                mesh_id: mesh.clone(),
                name: "ci".into(),
                secret: "ab".repeat(32),
                target_spec: "*".into(),
                created_by: member.clone(),
                created_at: 1,
                ..WebhookRow::default()
            };
            assert!(s.webhook_insert(&w).unwrap());
            let again = WebhookRow {
                id: "H2".into(),
                ..w.clone()
            };
            assert!(!s.webhook_insert(&again).unwrap());
            s.commit().unwrap();
            let got = s.webhook("H1").unwrap().unwrap();
            assert_eq!((got.name.as_str(), got.creator_revoked), ("ci", false));
            assert_eq!(s.webhooks(&mesh).unwrap().len(), 1);
            assert!(s.webhook_delivery_take("H1", "d-1", 5).unwrap());
            assert!(!s.webhook_delivery_take("H1", "d-1", 6).unwrap());
            assert!(s.webhook_delivery_take("H1", "d-2", 6).unwrap());
            assert_eq!(
                s.webhook_delete(&mesh, "ci").unwrap().map(|w| w.id),
                Some("H1".into())
            );
            assert!(s.webhook("H1").unwrap().is_none());
            assert!(s.webhook_delete(&mesh, "ci").unwrap().is_none());
            // The name is free again, and the new webhook has taken no ids.
            assert!(s.webhook_insert(&again).unwrap());
            assert!(s.webhook_delivery_take("H2", "d-1", 7).unwrap());
            s.commit().unwrap();
        }
    }
}
