//! Topics: their members, sealed keys, messages (history by `seq`) and the mentions they notify.

use postgres::Row;

use super::{
    At, NotificationRow, PgStore, SealedKey, Topic, TopicListing, TopicMembership, TopicMessage,
    TopicMessageRow, TopicPage, lim,
};
use crate::error::{Error, Result};

const TOPIC_COLS: &str = "id, mesh_id, name, description, visibility, created_by_member_id, encrypted, created_at, archived_at";

fn topic_row(r: &Row) -> Result<Topic> {
    Ok(Topic {
        id: r.at(0)?,
        mesh_id: r.at(1)?,
        name: r.at(2)?,
        description: r.at(3)?,
        visibility: r.at(4)?,
        created_by_member_id: r.at(5)?,
        encrypted: r.at(6)?,
        created_at: r.at(7)?,
        archived_at: r.at(8)?,
    })
}

/// Columns of a topic message joined with its sender (`tm`, `sm`, `s`), as [`topic_message_row`] reads them
/// from column `at` on.
const TOPIC_MESSAGE_SELECT: &str = "tm.seq, tm.id, tm.topic_id, tm.sender_member_id, tm.sender_session_pubkey, \
    tm.nonce, tm.ciphertext, tm.body_version, tm.reply_to_id, tm.client_message_id, tm.created_at, sm.pubkey, \
    COALESCE(s.display_name, sm.display_name)";

const TOPIC_MESSAGE_JOIN: &str = "JOIN members sm ON sm.id = tm.sender_member_id \
    LEFT JOIN sessions s ON s.mesh_id = sm.mesh_id AND s.session_pubkey = tm.sender_session_pubkey";

fn topic_message_row(r: &Row, at: usize) -> Result<TopicMessageRow> {
    Ok(TopicMessageRow {
        seq: r.at(at)?,
        message: TopicMessage {
            id: r.at(at + 1)?,
            topic_id: r.at(at + 2)?,
            sender_member_id: r.at(at + 3)?,
            sender_session_pubkey: r.at(at + 4)?,
            nonce: r.at(at + 5)?,
            ciphertext: r.at(at + 6)?,
            body_version: r.at(at + 7)?,
            reply_to_id: r.at(at + 8)?,
            client_message_id: r.at(at + 9)?,
            created_at: r.at(at + 10)?,
        },
        sender_member_pubkey: r.at(at + 11)?,
        sender_name: r.at(at + 12)?,
    })
}

impl PgStore {
    pub(crate) fn insert_topic(&mut self, t: &Topic) -> Result<()> {
        self.exec(
            &format!(
                "INSERT INTO topics ({TOPIC_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                &t.id,
                &t.mesh_id,
                &t.name,
                &t.description,
                &t.visibility,
                &t.created_by_member_id,
                &t.encrypted,
                &t.created_at,
                &t.archived_at,
            ],
        )
        .map(drop)
    }

    pub(crate) fn topic(&self, mesh_id: &str, id_or_name: &str) -> Result<Option<Topic>> {
        self.opt(
            &format!(
                "SELECT {TOPIC_COLS} FROM topics WHERE mesh_id = $1 AND archived_at IS NULL \
                 AND (id = $2 OR name = $2) ORDER BY id = $2 DESC LIMIT 1"
            ),
            &[&mesh_id, &id_or_name],
            topic_row,
        )
    }

    pub(crate) fn topics(&self, mesh_id: &str, member_id: &str) -> Result<Vec<TopicListing>> {
        let cols = TOPIC_COLS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.all(
            &format!(
                "SELECT {cols}, (SELECT count(*) FROM topic_members x WHERE x.topic_id = t.id), \
                 tm.member_id IS NOT NULL, \
                 CASE WHEN tm.member_id IS NULL THEN 0 ELSE (SELECT count(*) FROM topic_messages m \
                     WHERE m.topic_id = t.id AND m.sender_member_id != $2 \
                     AND m.created_at > COALESCE(tm.last_read_at, 0)) END \
                 FROM topics t LEFT JOIN topic_members tm ON tm.topic_id = t.id AND tm.member_id = $2 \
                 WHERE t.mesh_id = $1 AND t.archived_at IS NULL ORDER BY t.name"
            ),
            &[&mesh_id, &member_id],
            |r| {
                Ok(TopicListing {
                    topic: topic_row(r)?,
                    member_count: r.at(9)?,
                    joined: r.at(10)?,
                    unread: r.at(11)?,
                })
            },
        )
    }

    pub(crate) fn topic_members(&self, topic_id: &str) -> Result<Vec<TopicMembership>> {
        self.all(
            "SELECT tm.member_id, m.pubkey, m.display_name, tm.role, tm.joined_at, tm.last_read_at, \
             m.revoked_at IS NOT NULL, k.member_id IS NOT NULL \
             FROM topic_members tm JOIN members m ON m.id = tm.member_id \
             LEFT JOIN topic_keys k ON k.topic_id = tm.topic_id AND k.member_id = tm.member_id \
             WHERE tm.topic_id = $1 ORDER BY m.display_name, m.id",
            &[&topic_id],
            |r| {
                Ok(TopicMembership {
                    member_id: r.at(0)?,
                    pubkey: r.at(1)?,
                    display_name: r.at(2)?,
                    role: r.at(3)?,
                    joined_at: r.at(4)?,
                    last_read_at: r.at(5)?,
                    revoked: r.at(6)?,
                    has_key: r.at(7)?,
                })
            },
        )
    }

    pub(crate) fn join_topic(
        &mut self,
        topic_id: &str,
        member_id: &str,
        role: &str,
        at: i64,
    ) -> Result<bool> {
        let n = self.exec(
            "INSERT INTO topic_members (topic_id, member_id, role, joined_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (topic_id, member_id) DO NOTHING",
            &[&topic_id, &member_id, &role, &at],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn leave_topic(&mut self, topic_id: &str, member_id: &str) -> Result<bool> {
        let n = self.exec(
            "DELETE FROM topic_members WHERE topic_id = $1 AND member_id = $2",
            &[&topic_id, &member_id],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn mark_topic_read(
        &mut self,
        topic_id: &str,
        member_id: &str,
        at: i64,
    ) -> Result<bool> {
        let n = self.exec(
            "UPDATE topic_members SET last_read_at = $3 WHERE topic_id = $1 AND member_id = $2",
            &[&topic_id, &member_id, &at],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn put_topic_key(&mut self, k: &SealedKey) -> Result<bool> {
        let n = self.exec(
            "INSERT INTO topic_keys (topic_id, member_id, encrypted_key, nonce, sealed_by_member_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (topic_id, member_id) DO NOTHING",
            &[&k.topic_id, &k.member_id, &k.encrypted_key, &k.nonce, &k.sealed_by_member_id, &k.created_at],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn topic_key(&self, topic_id: &str, member_id: &str) -> Result<Option<SealedKey>> {
        self.opt(
            "SELECT topic_id, member_id, encrypted_key, nonce, sealed_by_member_id, created_at \
             FROM topic_keys WHERE topic_id = $1 AND member_id = $2",
            &[&topic_id, &member_id],
            |r| {
                Ok(SealedKey {
                    topic_id: r.at(0)?,
                    member_id: r.at(1)?,
                    encrypted_key: r.at(2)?,
                    nonce: r.at(3)?,
                    sealed_by_member_id: r.at(4)?,
                    created_at: r.at(5)?,
                })
            },
        )
    }

    pub(crate) fn insert_topic_message(&mut self, m: &TopicMessage) -> Result<i64> {
        self.write(|c| {
            c.query(
                "INSERT INTO topic_messages (id, topic_id, sender_member_id, sender_session_pubkey, nonce, \
                 ciphertext, body_version, reply_to_id, client_message_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq",
                &[
                    &m.id,
                    &m.topic_id,
                    &m.sender_member_id,
                    &m.sender_session_pubkey,
                    &m.nonce,
                    &m.ciphertext,
                    &m.body_version,
                    &m.reply_to_id,
                    &m.client_message_id,
                    &m.created_at,
                ],
            )?
            .first()
            .ok_or_else(|| Error::io("database: INSERT ... RETURNING gave no row"))?
            .at(0)
        })
    }

    pub(crate) fn topic_messages(
        &self,
        topic_id: &str,
        page: TopicPage,
    ) -> Result<Vec<TopicMessageRow>> {
        let (cond, order, seq, limit) = match page {
            TopicPage::Before(seq, limit) => {
                ("tm.seq < $2", "DESC", seq.unwrap_or(i64::MAX), limit)
            }
            TopicPage::After(seq, limit) => ("tm.seq > $2", "ASC", seq, limit),
        };
        self.all(
            &format!(
                "SELECT {TOPIC_MESSAGE_SELECT} FROM topic_messages tm {TOPIC_MESSAGE_JOIN} \
                 WHERE tm.topic_id = $1 AND {cond} ORDER BY tm.seq {order} LIMIT $3"
            ),
            &[&topic_id, &seq, &lim(limit)],
            |r| topic_message_row(r, 0),
        )
    }

    pub(crate) fn topic_messages_by_prefix(
        &self,
        topic_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<TopicMessageRow>> {
        self.all(
            &format!(
                "SELECT {TOPIC_MESSAGE_SELECT} FROM topic_messages tm {TOPIC_MESSAGE_JOIN} \
                 WHERE starts_with(tm.id, $1) AND tm.topic_id = $2 ORDER BY tm.id LIMIT $3"
            ),
            &[&prefix, &topic_id, &lim(limit)],
            |r| topic_message_row(r, 0),
        )
    }

    pub(crate) fn topic_message_by_client_id(
        &self,
        topic_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>> {
        self.opt(
            "SELECT id FROM topic_messages WHERE topic_id = $1 AND sender_member_id = $2 \
             AND client_message_id = $3",
            &[&topic_id, &sender_member_id, &client_message_id],
            |r| r.at(0),
        )
    }

    pub(crate) fn insert_notification(
        &mut self,
        id: &str,
        message_id: &str,
        member_id: &str,
        kind: &str,
        at: i64,
    ) -> Result<bool> {
        let n = self.exec(
            "INSERT INTO notifications (id, message_id, member_id, kind, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id, member_id) DO NOTHING",
            &[&id, &message_id, &member_id, &kind, &at],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn notifications(
        &self,
        member_id: &str,
        unread_only: bool,
        limit: usize,
    ) -> Result<Vec<NotificationRow>> {
        self.all(
            &format!(
                "SELECT n.id, t.name, n.kind, n.created_at, n.read_at, {TOPIC_MESSAGE_SELECT} \
                 FROM notifications n JOIN topic_messages tm ON tm.id = n.message_id \
                 JOIN topics t ON t.id = tm.topic_id {TOPIC_MESSAGE_JOIN} \
                 WHERE n.member_id = $1 AND (NOT $2 OR n.read_at IS NULL) \
                 ORDER BY n.created_at DESC, tm.seq DESC LIMIT $3"
            ),
            &[&member_id, &unread_only, &lim(limit)],
            |r| {
                Ok(NotificationRow {
                    id: r.at(0)?,
                    topic_name: r.at(1)?,
                    kind: r.at(2)?,
                    created_at: r.at(3)?,
                    read_at: r.at(4)?,
                    message: topic_message_row(r, 5)?,
                })
            },
        )
    }

    pub(crate) fn mark_notifications_read(
        &mut self,
        member_id: &str,
        ids: Option<&[String]>,
        at: i64,
    ) -> Result<usize> {
        let n = match ids {
            None => self.exec(
                "UPDATE notifications SET read_at = $2 WHERE member_id = $1 AND read_at IS NULL",
                &[&member_id, &at],
            )?,
            Some(ids) => self.exec(
                "UPDATE notifications SET read_at = $3 WHERE member_id = $1 AND id = ANY($2) AND read_at IS NULL",
                &[&member_id, &ids, &at],
            )?,
        };
        Ok(n as usize)
    }
}
