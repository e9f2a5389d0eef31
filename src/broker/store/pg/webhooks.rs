//! Webhooks and the delivery ids each has taken (the secret kept as made: an HMAC is checked with the key).

use postgres::Row;

use super::{At, PgStore, WebhookRow};
use crate::error::Result;

const SELECT: &str = "SELECT w.id, w.mesh_id, w.name, w.secret, w.target_spec, w.created_by, m.display_name, \
    m.revoked_at, w.created_at FROM webhooks w JOIN members m ON m.id = w.created_by";

fn row(r: &Row) -> Result<WebhookRow> {
    Ok(WebhookRow {
        id: r.at(0)?,
        mesh_id: r.at(1)?,
        name: r.at(2)?,
        secret: r.at(3)?,
        target_spec: r.at(4)?,
        created_by: r.at(5)?,
        creator_name: r.at(6)?,
        creator_revoked: r.at::<Option<i64>>(7)?.is_some(),
        created_at: r.at(8)?,
    })
}

impl PgStore {
    pub(crate) fn webhook_insert(&mut self, w: &WebhookRow) -> Result<bool> {
        self.exec(
            "INSERT INTO webhooks (id, mesh_id, name, secret, target_spec, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (mesh_id, name) DO NOTHING",
            &[
                &w.id,
                &w.mesh_id,
                &w.name,
                &w.secret,
                &w.target_spec,
                &w.created_by,
                &w.created_at,
            ],
        )
        .map(|n| n == 1)
    }

    pub(crate) fn webhook(&self, id: &str) -> Result<Option<WebhookRow>> {
        self.opt(&format!("{SELECT} WHERE w.id = $1"), &[&id], row)
    }

    pub(crate) fn webhooks(&self, mesh_id: &str) -> Result<Vec<WebhookRow>> {
        self.all(
            &format!("{SELECT} WHERE w.mesh_id = $1 ORDER BY w.name"),
            &[&mesh_id],
            row,
        )
    }

    pub(crate) fn webhook_delete(
        &mut self,
        mesh_id: &str,
        name: &str,
    ) -> Result<Option<WebhookRow>> {
        let Some(w) = self.opt(
            &format!("{SELECT} WHERE w.mesh_id = $1 AND w.name = $2"),
            &[&mesh_id, &name],
            row,
        )?
        else {
            return Ok(None);
        };
        // The delivery ids go with it (ON DELETE CASCADE).
        self.exec("DELETE FROM webhooks WHERE id = $1", &[&w.id])?;
        Ok(Some(w))
    }

    pub(crate) fn webhook_delivery_take(
        &mut self,
        webhook_id: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<bool> {
        self.exec(
            "INSERT INTO webhook_deliveries (webhook_id, delivery_id, received_at) VALUES ($1, $2, $3) \
             ON CONFLICT (webhook_id, delivery_id) DO NOTHING",
            &[&webhook_id, &delivery_id, &now],
        )
        .map(|n| n == 1)
    }
}
