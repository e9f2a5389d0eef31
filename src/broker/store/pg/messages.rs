//! Messages and their deliveries: one row per recipient, pending until its `client_ack`.

use postgres::Row;

use super::{At, DeliveryState, Message, NewDelivery, Pending, PgStore, lim};
use crate::error::{Error, Result};

const MESSAGE_COLS: &str = "id, mesh_id, sender_member_id, sender_session_pubkey, target_spec, priority, nonce, \
                            ciphertext, client_message_id, subtype, reply_to_id, body_version, created_at";

/// A message from `MESSAGE_COLS` starting at column `at`. A priority outside the schema's CHECK is a damaged
/// row, and reading it fails rather than guessing one.
fn message_row(r: &Row, at: usize) -> Result<Message> {
    let priority: String = r.at(at + 5)?;
    let body_version: Option<i64> = r.at(at + 11)?;
    Ok(Message {
        id: r.at(at)?,
        mesh_id: r.at(at + 1)?,
        sender_member_id: r.at(at + 2)?,
        sender_session_pubkey: r.at(at + 3)?,
        target_spec: r.at(at + 4)?,
        priority: priority.parse()?,
        nonce: r.at(at + 6)?,
        ciphertext: r.at(at + 7)?,
        client_message_id: r.at(at + 8)?,
        subtype: r.at(at + 9)?,
        reply_to_id: r.at(at + 10)?,
        body_version: body_version
            .map(|v| u32::try_from(v).map_err(|_| Error::io(format!("database: body_version {v}"))))
            .transpose()?,
        created_at: r.at(at + 12)?,
    })
}

/// The delivery's columns, then the message's in `MESSAGE_COLS` order with the recipient's own copy of the body.
const PENDING_SELECT: &str = "SELECT d.id, d.recipient_member_id, d.recipient_session_pubkey, sm.pubkey, \
    COALESCE(s.display_name, sm.display_name), \
    m.id, m.mesh_id, m.sender_member_id, m.sender_session_pubkey, m.target_spec, m.priority, \
    COALESCE(d.nonce, m.nonce), COALESCE(d.ciphertext, m.ciphertext), m.client_message_id, m.subtype, \
    m.reply_to_id, m.body_version, m.created_at \
    FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN members sm ON sm.id = m.sender_member_id \
    LEFT JOIN sessions s ON s.mesh_id = m.mesh_id AND s.session_pubkey = m.sender_session_pubkey";

fn pending_row(r: &Row) -> Result<Pending> {
    Ok(Pending {
        delivery_id: r.at(0)?,
        recipient_member_id: r.at(1)?,
        recipient_session_pubkey: r.at(2)?,
        sender_member_pubkey: r.at(3)?,
        sender_name: r.at(4)?,
        message: message_row(r, 5)?,
    })
}

impl PgStore {
    pub(crate) fn insert_message(
        &mut self,
        m: &Message,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<i64>> {
        let body_version = m.body_version.map(i64::from);
        self.write(|c| {
            c.execute(
                &format!(
                    "INSERT INTO messages ({MESSAGE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                     $12, $13)"
                ),
                &[
                    &m.id,
                    &m.mesh_id,
                    &m.sender_member_id,
                    &m.sender_session_pubkey,
                    &m.target_spec,
                    &m.priority.as_str(),
                    &m.nonce,
                    &m.ciphertext,
                    &m.client_message_id,
                    &m.subtype,
                    &m.reply_to_id,
                    &body_version,
                    &m.created_at,
                ],
            )?;
            let mut ids = Vec::with_capacity(deliveries.len());
            for d in deliveries {
                let row = c
                    .query(
                        "INSERT INTO deliveries (message_id, recipient_member_id, recipient_session_pubkey, nonce, \
                         ciphertext, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                        &[
                            &m.id,
                            &d.recipient_member_id,
                            &d.recipient_session_pubkey,
                            &d.nonce,
                            &d.ciphertext,
                            &m.created_at,
                        ],
                    )?
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::io("database: INSERT ... RETURNING gave no row"))?;
                ids.push(row.at(0)?);
            }
            Ok(ids)
        })
    }

    pub(crate) fn message_by_client_id(
        &self,
        mesh_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>> {
        self.opt(
            "SELECT id FROM messages WHERE mesh_id = $1 AND sender_member_id = $2 AND client_message_id = $3",
            &[&mesh_id, &sender_member_id, &client_message_id],
            |r| r.at(0),
        )
    }

    pub(crate) fn messages_by_prefix(
        &self,
        mesh_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        // Ids are base62: `starts_with` needs no escaping, and the C collation orders them as SQLite does.
        self.all(
            &format!(
                "SELECT {MESSAGE_COLS} FROM messages WHERE starts_with(id, $1) AND mesh_id = $2 ORDER BY id \
                 LIMIT $3"
            ),
            &[&prefix, &mesh_id, &lim(limit)],
            |r| message_row(r, 0),
        )
    }

    pub(crate) fn deliveries_of(&self, message_id: &str) -> Result<Vec<DeliveryState>> {
        self.all(
            "SELECT d.recipient_member_id, d.recipient_session_pubkey, \
             COALESCE(s.display_name, mb.display_name), mb.pubkey, d.delivered_at \
             FROM deliveries d JOIN members mb ON mb.id = d.recipient_member_id \
             LEFT JOIN sessions s ON s.mesh_id = mb.mesh_id AND s.session_pubkey = d.recipient_session_pubkey \
             WHERE d.message_id = $1 ORDER BY d.id",
            &[&message_id],
            |r| {
                Ok(DeliveryState {
                    recipient_member_id: r.at(0)?,
                    recipient_session_pubkey: r.at(1)?,
                    recipient_name: r.at(2)?,
                    recipient_member_pubkey: r.at(3)?,
                    delivered_at: r.at(4)?,
                })
            },
        )
    }

    pub(crate) fn pending(
        &self,
        member_id: &str,
        session_pubkey: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Pending>> {
        self.all(
            &format!(
                "{PENDING_SELECT} WHERE d.recipient_member_id = $1 AND d.delivered_at IS NULL \
                 AND (d.recipient_session_pubkey IS NULL OR d.recipient_session_pubkey = $2) \
                 ORDER BY d.created_at, d.id LIMIT $3"
            ),
            &[&member_id, &session_pubkey, &lim(limit)],
            pending_row,
        )
    }

    pub(crate) fn pending_delivery(&self, delivery_id: i64) -> Result<Option<Pending>> {
        self.opt(
            &format!("{PENDING_SELECT} WHERE d.id = $1 AND d.delivered_at IS NULL"),
            &[&delivery_id],
            pending_row,
        )
    }

    /// One query for a whole event's deliveries: a broadcast's arrive as one `NOTIFY` of hundreds of ids.
    pub(crate) fn pending_deliveries(&self, ids: &[i64]) -> Result<Vec<Pending>> {
        self.all(
            &format!(
                "{PENDING_SELECT} WHERE d.id = ANY($1) AND d.delivered_at IS NULL ORDER BY d.id"
            ),
            &[&ids],
            pending_row,
        )
    }

    pub(crate) fn mark_delivered(
        &mut self,
        mesh_id: &str,
        member_id: &str,
        message_id: Option<&str>,
        client_message_id: Option<&str>,
        at: i64,
    ) -> Result<Vec<i64>> {
        if message_id.is_none() && client_message_id.is_none() {
            return Ok(Vec::new());
        }
        // One UPDATE ... RETURNING: on PostgreSQL it is one round trip and needs no temporary table.
        let mut ids: Vec<i64> = self.write(|c| {
            c.query(
                "UPDATE deliveries d SET delivered_at = $5 FROM messages m \
                 WHERE m.id = d.message_id AND m.mesh_id = $1 AND d.recipient_member_id = $2 \
                 AND d.delivered_at IS NULL AND (m.id = $3 OR m.client_message_id = $4) RETURNING d.id",
                &[&mesh_id, &member_id, &message_id, &client_message_id, &at],
            )?
            .iter()
            .map(|r| r.at(0))
            .collect()
        })?;
        ids.sort_unstable();
        Ok(ids)
    }

    pub(crate) fn pending_count(&self) -> Result<i64> {
        self.opt(
            "SELECT count(*) FROM deliveries WHERE delivered_at IS NULL",
            &[],
            |r| r.at(0),
        )
        .map(|n| n.unwrap_or(0))
    }
}
