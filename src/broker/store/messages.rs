//! Messages and their deliveries: one row per recipient, pending until its `client_ack`.

use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, db};
use crate::error::{Error, Result};
use crate::wire::Priority;

/// A stored message. For sealed broadcasts `nonce`/`ciphertext` are empty and each delivery has its own copy.
/// The one record of a message on the broker: a `send` and a fired schedule become one, a delivery carries one,
/// and a `push` is made of one (in `routing`), so no field is copied between look-alike structs on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub mesh_id: String,
    pub sender_member_id: String,
    pub sender_session_pubkey: Option<String>,
    pub target_spec: String,
    pub priority: Priority,
    pub nonce: String,
    pub ciphertext: String,
    pub client_message_id: Option<String>,
    pub subtype: Option<String>,
    pub reply_to_id: Option<String>,
    pub body_version: Option<u32>,
    pub created_at: i64,
}

/// One recipient of a message: a member (every connection of it) or one of its sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub recipient_member_id: String,
    pub recipient_session_pubkey: Option<String>,
    /// The recipient's own sealed copy; `None` means the message's `nonce`/`ciphertext`.
    pub nonce: Option<String>,
    pub ciphertext: Option<String>,
}

/// A delivery that is not acknowledged yet, with everything a `push` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub delivery_id: i64,
    pub recipient_member_id: String,
    pub recipient_session_pubkey: Option<String>,
    pub sender_member_pubkey: String,
    /// The sender session's display name if it had one, else the member's.
    pub sender_name: String,
    /// The message, with this recipient's own copy of the body in `nonce`/`ciphertext`.
    pub message: Message,
}

/// Where one delivery of a message stands, for `message_status`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryState {
    pub recipient_member_id: String,
    pub recipient_session_pubkey: Option<String>,
    /// The session's display name when the delivery is to a session, else the member's.
    pub recipient_name: String,
    pub recipient_member_pubkey: String,
    pub delivered_at: Option<i64>,
}

/// `mark_delivered`'s rows by broker message id, through the deliveries' message index (named, since the planner
/// would rather walk the member's pending rows, however many).
const UNDELIVERED_BY_ID: &str = "SELECT id FROM deliveries INDEXED BY deliveries_message \
    WHERE created_at = (SELECT created_at FROM messages m WHERE m.id = ?3 AND m.mesh_id = ?1) \
    AND message_id = ?3 AND recipient_member_id = ?2 AND delivered_at IS NULL";

/// `mark_delivered`'s rows by client message id, through the member's pending rows.
const UNDELIVERED_BY_CLIENT_ID: &str = "SELECT id FROM deliveries d WHERE recipient_member_id = ?2 \
    AND delivered_at IS NULL AND EXISTS (SELECT 1 FROM messages m WHERE m.id = d.message_id \
    AND m.mesh_id = ?1 AND m.client_message_id = ?3)";

const MESSAGE_COLS: &str = "id, mesh_id, sender_member_id, sender_session_pubkey, target_spec, priority, nonce, \
                            ciphertext, client_message_id, subtype, reply_to_id, body_version, created_at";

/// A message from `MESSAGE_COLS` starting at column `at`.
fn message_row(r: &Row, at: usize) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(at)?,
        mesh_id: r.get(at + 1)?,
        sender_member_id: r.get(at + 2)?,
        sender_session_pubkey: r.get(at + 3)?,
        target_spec: r.get(at + 4)?,
        priority: priority_at(r, at + 5)?,
        nonce: r.get(at + 6)?,
        ciphertext: r.get(at + 7)?,
        client_message_id: r.get(at + 8)?,
        subtype: r.get(at + 9)?,
        reply_to_id: r.get(at + 10)?,
        body_version: r.get(at + 11)?,
        created_at: r.get(at + 12)?,
    })
}

/// A stored priority. The schema's CHECK admits only the three, so another value is a damaged row, and reading
/// it fails rather than guessing one.
fn priority_at(r: &Row, at: usize) -> rusqlite::Result<Priority> {
    let text: String = r.get(at)?;
    text.parse().map_err(|e: Error| {
        rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, Box::new(e))
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

fn pending_row(r: &Row) -> rusqlite::Result<Pending> {
    Ok(Pending {
        delivery_id: r.get(0)?,
        recipient_member_id: r.get(1)?,
        recipient_session_pubkey: r.get(2)?,
        sender_member_pubkey: r.get(3)?,
        sender_name: r.get(4)?,
        message: message_row(r, 5)?,
    })
}

impl SqliteStore {
    pub(crate) fn insert_message(
        &mut self,
        m: &Message,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<i64>> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO messages ({MESSAGE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    m.id,
                    m.mesh_id,
                    m.sender_member_id,
                    m.sender_session_pubkey,
                    m.target_spec,
                    m.priority.as_str(),
                    m.nonce,
                    m.ciphertext,
                    m.client_message_id,
                    m.subtype,
                    m.reply_to_id,
                    m.body_version,
                    m.created_at
                ])
            })
            .map_err(db)?;
        let mut s = self
            .conn
            .prepare_cached(
                "INSERT INTO deliveries (message_id, recipient_member_id, recipient_session_pubkey, nonce, ciphertext, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(db)?;
        let mut ids = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            s.execute(params![
                m.id,
                d.recipient_member_id,
                d.recipient_session_pubkey,
                d.nonce,
                d.ciphertext,
                m.created_at
            ])
            .map_err(db)?;
            ids.push(self.conn.last_insert_rowid());
        }
        Ok(ids)
    }

    pub(crate) fn message_by_client_id(
        &self,
        mesh_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT id FROM messages WHERE mesh_id = ?1 AND sender_member_id = ?2 AND client_message_id = ?3",
            )
            .and_then(|mut s| s.query_row([mesh_id, sender_member_id, client_message_id], |r| r.get(0)).optional())
            .map_err(db)
    }

    pub(crate) fn messages_by_prefix(
        &self,
        mesh_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        // Ids are base62, so a prefix has no LIKE wildcards; a range scan on the primary key finds it.
        let mut upper = prefix.to_string();
        upper.push('\u{7f}');
        self.conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLS} FROM messages WHERE id >= ?1 AND id < ?2 AND mesh_id = ?3 ORDER BY id LIMIT ?4"
            ))
            .and_then(|mut s| s.query_map(params![prefix, upper, mesh_id, limit as i64], |r| message_row(r, 0))?.collect())
            .map_err(db)
    }

    pub(crate) fn deliveries_of(&self, message_id: &str) -> Result<Vec<DeliveryState>> {
        self.conn
            .prepare_cached(
                "SELECT d.recipient_member_id, d.recipient_session_pubkey, \
                 COALESCE(s.display_name, mb.display_name), mb.pubkey, d.delivered_at \
                 FROM deliveries d JOIN members mb ON mb.id = d.recipient_member_id \
                 LEFT JOIN sessions s ON s.mesh_id = mb.mesh_id AND s.session_pubkey = d.recipient_session_pubkey \
                 WHERE d.created_at = (SELECT created_at FROM messages WHERE id = ?1) AND d.message_id = ?1 \
                 ORDER BY d.id",
            )
            .and_then(|mut s| {
                s.query_map([message_id], |r| {
                    Ok(DeliveryState {
                        recipient_member_id: r.get(0)?,
                        recipient_session_pubkey: r.get(1)?,
                        recipient_name: r.get(2)?,
                        recipient_member_pubkey: r.get(3)?,
                        delivered_at: r.get(4)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    pub(crate) fn pending(
        &self,
        member_id: &str,
        session_pubkey: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Pending>> {
        self.conn
            .prepare_cached(&format!(
                "{PENDING_SELECT} WHERE d.recipient_member_id = ?1 AND d.delivered_at IS NULL \
                 AND (d.recipient_session_pubkey IS NULL OR d.recipient_session_pubkey = ?2) \
                 ORDER BY d.created_at, d.id LIMIT ?3"
            ))
            .and_then(|mut s| {
                s.query_map(
                    params![
                        member_id,
                        session_pubkey,
                        limit.min(i64::MAX as usize) as i64
                    ],
                    pending_row,
                )?
                .collect()
            })
            .map_err(db)
    }

    pub(crate) fn pending_delivery(&self, delivery_id: i64) -> Result<Option<Pending>> {
        self.conn
            .prepare_cached(&format!(
                "{PENDING_SELECT} WHERE d.id = ?1 AND d.delivered_at IS NULL"
            ))
            .and_then(|mut s| s.query_row([delivery_id], pending_row).optional())
            .map_err(db)
    }

    pub(crate) fn mark_delivered(
        &mut self,
        mesh_id: &str,
        member_id: &str,
        message_id: Option<&str>,
        client_message_id: Option<&str>,
        at: i64,
    ) -> Result<Vec<i64>> {
        // Found first, then marked by row id: an UPDATE ... RETURNING builds a temporary table for its rows on
        // every call, which cost as much as storing the message. Each id kind is led by an index: a broker id by
        // `deliveries_message`, a client id by the member's own pending rows. (Matching `id = ? OR
        // client_message_id = ?` in one statement read every message of the mesh per ack: the client id is a
        // prefix of no index.)
        let mut found: Vec<i64> = Vec::new();
        let mut find = |sql: &str, id: &str| -> Result<()> {
            let ids: Vec<i64> = self
                .conn
                .prepare_cached(sql)
                .and_then(|mut s| {
                    s.query_map(params![mesh_id, member_id, id], |r| r.get(0))?
                        .collect()
                })
                .map_err(db)?;
            for i in ids {
                if !found.contains(&i) {
                    found.push(i);
                }
            }
            Ok(())
        };
        if let Some(id) = message_id {
            find(UNDELIVERED_BY_ID, id)?;
        }
        if let Some(cid) = client_message_id {
            find(UNDELIVERED_BY_CLIENT_ID, cid)?;
        }
        if found.is_empty() {
            return Ok(found);
        }
        self.begin()?;
        let mut mark = self
            .conn
            .prepare_cached("UPDATE deliveries SET delivered_at = ?2 WHERE id = ?1")
            .map_err(db)?;
        for id in &found {
            mark.execute(params![id, at]).map_err(db)?;
        }
        Ok(found)
    }

    pub(crate) fn pending_count(&self) -> Result<i64> {
        self.conn
            .prepare_cached("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{TempDir, both_stores, copy, message, seeded, seeded_in};
    use super::*;
    use crate::broker::store::Session;
    use rusqlite::params;

    both_stores! {
        fn deliveries_are_pending_until_marked_and_scoped_to_session(db) {
            let mut s = seeded_in(db);
            s.upsert_session(&Session {
                mesh_id: "m1".into(),
                session_pubkey: "sb".into(),
                member_id: "b".into(),
                display_name: Some("b-session".into()),
                session_id: None,
                last_seen_at: 1,
            })
            .unwrap();
            s.insert_message(&message("x1", Some("c1"), 10), &[copy("b", None, "to-b")])
                .unwrap();
            s.insert_message(&message("x2", None, 20), &[copy("b", Some("sb"), "to-sb")])
                .unwrap();
            s.insert_message(
                &message("x3", None, 30),
                &[copy("b", Some("other"), "to-other")],
            )
            .unwrap();
            s.commit().unwrap();

            // The member's control plane sees member-addressed copies only; the session sees its own too.
            let member_only: Vec<_> = s
                .pending("b", None, 100)
                .unwrap()
                .into_iter()
                .map(|p| p.message.ciphertext)
                .collect();
            assert_eq!(member_only, ["to-b"]);
            let with_session = s.pending("b", Some("sb"), 100).unwrap();
            assert_eq!(
                with_session
                    .iter()
                    .map(|p| p.message.ciphertext.as_str())
                    .collect::<Vec<_>>(),
                ["to-b", "to-sb"]
            );
            assert_eq!(with_session[0].sender_member_pubkey, "pa");
            assert_eq!(with_session[0].sender_name, "name-a");
            assert_eq!(
                with_session[0].message.client_message_id.as_deref(),
                Some("c1")
            );
            assert_eq!(s.pending("b", Some("sb"), 1).unwrap().len(), 1);
            assert_eq!(s.pending_count().unwrap(), 3);

            // Acks by broker id or by client id; a second ack changes nothing; another member's ack changes nothing.
            assert!(
                s.mark_delivered("m1", "a", Some("x1"), None, 40)
                    .unwrap()
                    .is_empty()
            );
            let changed = s.mark_delivered("m1", "b", None, Some("c1"), 40).unwrap();
            assert_eq!(changed.len(), 1);
            assert!(
                s.mark_delivered("m1", "b", Some("x1"), None, 41)
                    .unwrap()
                    .is_empty()
            );
            let id2 = with_session[1].delivery_id;
            assert!(s.pending_delivery(id2).unwrap().is_some());
            let first = with_session[0].delivery_id;
            let both = s.pending_deliveries(&[id2, first, 999_999]).unwrap();
            assert_eq!(
                both.iter().map(|p| p.delivery_id).collect::<Vec<_>>(),
                [id2],
                "the acknowledged one and the missing one are left out"
            );
            assert_eq!(
                s.mark_delivered("m1", "b", Some("x2"), None, 42).unwrap(),
                [id2]
            );
            assert!(s.pending_delivery(id2).unwrap().is_none());
            s.commit().unwrap();
            assert_eq!(s.pending_count().unwrap(), 1);

            let states = s.deliveries_of("x2").unwrap();
            assert_eq!(states.len(), 1);
            assert_eq!(states[0].recipient_name, "b-session");
            assert_eq!(states[0].delivered_at, Some(42));
        }
    }

    both_stores! {
        fn client_message_ids_are_unique_per_sender_and_found_again(db) {
            let mut s = seeded_in(db);
            s.insert_message(&message("x1", Some("c1"), 10), &[])
                .unwrap();
            assert!(
                s.insert_message(&message("x2", Some("c1"), 11), &[])
                    .is_err()
            );
            s.rollback();
            s.insert_message(&message("x1", Some("c1"), 10), &[])
                .unwrap();
            s.insert_message(&message("x3", None, 12), &[]).unwrap();
            s.insert_message(&message("x4", None, 13), &[]).unwrap();
            s.commit().unwrap();
            assert_eq!(
                s.message_by_client_id("m1", "a", "c1").unwrap().as_deref(),
                Some("x1")
            );
            assert!(s.message_by_client_id("m1", "b", "c1").unwrap().is_none());
            assert_eq!(s.messages_by_prefix("m1", "x", 10).unwrap().len(), 3);
            assert_eq!(s.messages_by_prefix("m1", "x3", 10).unwrap()[0].id, "x3");
            assert!(s.messages_by_prefix("m2", "x", 10).unwrap().is_empty());
        }
    }

    #[test]
    fn client_acks_read_every_message() {
        let dir = TempDir::new("ackplan");
        let s = seeded(&dir);
        let plan: Vec<String> = s
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {UNDELIVERED_BY_ID}"))
            .unwrap()
            .query_map(params!["m", "b", "x"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().all(|l| !l.starts_with("SCAN")), "{plan:?}");
        assert!(
            plan.iter().any(|l| l.contains("deliveries_message")),
            "{plan:?}"
        );
    }
}
