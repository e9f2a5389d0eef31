//! Topics: their members, sealed keys, messages (history by `seq`) and the mentions they notify.

use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, db, prefix_range};
use crate::error::Result;

/// A topic: a named conversation of a mesh with its own members and, when encrypted, its own key.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub id: String,
    pub mesh_id: String,
    pub name: String,
    pub description: Option<String>,
    /// `public`, `private` or `dm`.
    pub visibility: String,
    pub created_by_member_id: Option<String>,
    /// Bodies are sealed under a topic key that only members hold; the broker keeps sealed copies only.
    pub encrypted: bool,
    pub created_at: i64,
    pub archived_at: Option<i64>,
}

/// A topic of a mesh as one member sees it in a list.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicListing {
    pub topic: Topic,
    pub member_count: i64,
    /// The member asking is in it.
    pub joined: bool,
    /// Messages from others newer than the member's last read.
    pub unread: i64,
}

/// A member of a topic, with what a members list and the re-seal flow need.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMembership {
    pub member_id: String,
    pub pubkey: String,
    pub display_name: String,
    /// `lead`, `member` or `observer`.
    pub role: String,
    pub joined_at: i64,
    pub last_read_at: Option<i64>,
    /// The member was revoked from the mesh.
    pub revoked: bool,
    /// A sealed copy of the topic key is stored for it.
    pub has_key: bool,
}

/// A topic key sealed for one member by another (or by the creator at creation).
#[derive(Debug, Clone, PartialEq)]
pub struct SealedKey {
    pub topic_id: String,
    pub member_id: String,
    /// base64 of the sealer's x25519 key ‖ crypto_box(topic key).
    pub encrypted_key: String,
    pub nonce: String,
    pub sealed_by_member_id: String,
    pub created_at: i64,
}

/// A message of a topic: one row, however many members read it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMessage {
    pub id: String,
    pub topic_id: String,
    pub sender_member_id: String,
    pub sender_session_pubkey: Option<String>,
    pub nonce: String,
    pub ciphertext: String,
    /// 1 base64 plaintext, 2 secretbox under the topic key.
    pub body_version: i64,
    pub reply_to_id: Option<String>,
    pub client_message_id: Option<String>,
    pub created_at: i64,
}

/// A stored topic message with its order in the topic and its sender.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMessageRow {
    /// Increases with every message stored: the order of history and of a stream's replay.
    pub seq: i64,
    pub message: TopicMessage,
    pub sender_member_pubkey: String,
    /// The sender session's name if it had one, else the member's.
    pub sender_name: String,
}

/// A page of a topic's messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TopicPage {
    /// The newest `limit` messages older than `seq` (all when `None`), newest first.
    Before(Option<i64>, usize),
    /// The oldest `limit` messages newer than `seq`, oldest first.
    After(i64, usize),
}

/// A mention of a member in a topic message, with what a list of them shows.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRow {
    pub id: String,
    pub message: TopicMessageRow,
    pub topic_name: String,
    pub kind: String,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

const TOPIC_COLS: &str = "id, mesh_id, name, description, visibility, created_by_member_id, encrypted, created_at, archived_at";

fn topic_row(r: &Row) -> rusqlite::Result<Topic> {
    Ok(Topic {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        visibility: r.get(4)?,
        created_by_member_id: r.get(5)?,
        encrypted: r.get(6)?,
        created_at: r.get(7)?,
        archived_at: r.get(8)?,
    })
}

/// Columns of a topic message joined with its sender (`tm`, `sm`, `s`), as [`topic_message_row`] reads them
/// from column `at` on.
const TOPIC_MESSAGE_SELECT: &str = "tm.seq, tm.id, tm.topic_id, tm.sender_member_id, tm.sender_session_pubkey,     tm.nonce, tm.ciphertext, tm.body_version, tm.reply_to_id, tm.client_message_id, tm.created_at, sm.pubkey,     COALESCE(s.display_name, sm.display_name)";

const TOPIC_MESSAGE_JOIN: &str = "JOIN members sm ON sm.id = tm.sender_member_id     LEFT JOIN sessions s ON s.mesh_id = sm.mesh_id AND s.session_pubkey = tm.sender_session_pubkey";

fn topic_message_row(r: &Row, at: usize) -> rusqlite::Result<TopicMessageRow> {
    Ok(TopicMessageRow {
        seq: r.get(at)?,
        message: TopicMessage {
            id: r.get(at + 1)?,
            topic_id: r.get(at + 2)?,
            sender_member_id: r.get(at + 3)?,
            sender_session_pubkey: r.get(at + 4)?,
            nonce: r.get(at + 5)?,
            ciphertext: r.get(at + 6)?,
            body_version: r.get(at + 7)?,
            reply_to_id: r.get(at + 8)?,
            client_message_id: r.get(at + 9)?,
            created_at: r.get(at + 10)?,
        },
        sender_member_pubkey: r.get(at + 11)?,
        sender_name: r.get(at + 12)?,
    })
}

fn sealed_key_row(r: &Row) -> rusqlite::Result<SealedKey> {
    Ok(SealedKey {
        topic_id: r.get(0)?,
        member_id: r.get(1)?,
        encrypted_key: r.get(2)?,
        nonce: r.get(3)?,
        sealed_by_member_id: r.get(4)?,
        created_at: r.get(5)?,
    })
}

impl SqliteStore {
    pub(crate) fn insert_topic(&mut self, t: &Topic) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO topics ({TOPIC_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    t.id,
                    t.mesh_id,
                    t.name,
                    t.description,
                    t.visibility,
                    t.created_by_member_id,
                    t.encrypted,
                    t.created_at,
                    t.archived_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    pub(crate) fn topic(&self, mesh_id: &str, id_or_name: &str) -> Result<Option<Topic>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {TOPIC_COLS} FROM topics WHERE mesh_id = ?1 AND archived_at IS NULL \
                 AND (id = ?2 OR name = ?2) ORDER BY id = ?2 DESC LIMIT 1"
            ))
            .and_then(|mut s| s.query_row([mesh_id, id_or_name], topic_row).optional())
            .map_err(db)
    }

    pub(crate) fn topics(&self, mesh_id: &str, member_id: &str) -> Result<Vec<TopicListing>> {
        let cols = TOPIC_COLS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.conn
            .prepare_cached(&format!(
                "SELECT {cols}, (SELECT count(*) FROM topic_members x WHERE x.topic_id = t.id), \
                 tm.member_id IS NOT NULL, \
                 CASE WHEN tm.member_id IS NULL THEN 0 ELSE (SELECT count(*) FROM topic_messages m \
                     WHERE m.topic_id = t.id AND m.sender_member_id != ?2 \
                     AND m.created_at > COALESCE(tm.last_read_at, 0)) END \
                 FROM topics t LEFT JOIN topic_members tm ON tm.topic_id = t.id AND tm.member_id = ?2 \
                 WHERE t.mesh_id = ?1 AND t.archived_at IS NULL ORDER BY t.name"
            ))
            .and_then(|mut s| {
                s.query_map([mesh_id, member_id], |r| {
                    Ok(TopicListing {
                        topic: topic_row(r)?,
                        member_count: r.get(9)?,
                        joined: r.get(10)?,
                        unread: r.get(11)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    pub(crate) fn topic_members(&self, topic_id: &str) -> Result<Vec<TopicMembership>> {
        self.conn
            .prepare_cached(
                "SELECT tm.member_id, m.pubkey, m.display_name, tm.role, tm.joined_at, tm.last_read_at, \
                 m.revoked_at IS NOT NULL, k.member_id IS NOT NULL \
                 FROM topic_members tm JOIN members m ON m.id = tm.member_id \
                 LEFT JOIN topic_keys k ON k.topic_id = tm.topic_id AND k.member_id = tm.member_id \
                 WHERE tm.topic_id = ?1 ORDER BY m.display_name, m.id",
            )
            .and_then(|mut s| {
                s.query_map([topic_id], |r| {
                    Ok(TopicMembership {
                        member_id: r.get(0)?,
                        pubkey: r.get(1)?,
                        display_name: r.get(2)?,
                        role: r.get(3)?,
                        joined_at: r.get(4)?,
                        last_read_at: r.get(5)?,
                        revoked: r.get(6)?,
                        has_key: r.get(7)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    pub(crate) fn join_topic(
        &mut self,
        topic_id: &str,
        member_id: &str,
        role: &str,
        at: i64,
    ) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO topic_members (topic_id, member_id, role, joined_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (topic_id, member_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![topic_id, member_id, role, at]))
            .map_err(db)?;
        Ok(n == 1)
    }

    pub(crate) fn leave_topic(&mut self, topic_id: &str, member_id: &str) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached("DELETE FROM topic_members WHERE topic_id = ?1 AND member_id = ?2")
            .and_then(|mut s| s.execute([topic_id, member_id]))
            .map_err(db)?;
        Ok(n == 1)
    }

    pub(crate) fn mark_topic_read(
        &mut self,
        topic_id: &str,
        member_id: &str,
        at: i64,
    ) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "UPDATE topic_members SET last_read_at = ?3 WHERE topic_id = ?1 AND member_id = ?2",
            )
            .and_then(|mut s| s.execute(params![topic_id, member_id, at]))
            .map_err(db)?;
        Ok(n == 1)
    }

    pub(crate) fn put_topic_key(&mut self, k: &SealedKey) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO topic_keys (topic_id, member_id, encrypted_key, nonce, sealed_by_member_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (topic_id, member_id) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    k.topic_id,
                    k.member_id,
                    k.encrypted_key,
                    k.nonce,
                    k.sealed_by_member_id,
                    k.created_at
                ])
            })
            .map_err(db)?;
        Ok(n == 1)
    }

    pub(crate) fn topic_key(&self, topic_id: &str, member_id: &str) -> Result<Option<SealedKey>> {
        self.conn
            .prepare_cached(
                "SELECT topic_id, member_id, encrypted_key, nonce, sealed_by_member_id, created_at \
                 FROM topic_keys WHERE topic_id = ?1 AND member_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row([topic_id, member_id], sealed_key_row)
                    .optional()
            })
            .map_err(db)
    }

    pub(crate) fn insert_topic_message(&mut self, m: &TopicMessage) -> Result<i64> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO topic_messages (id, topic_id, sender_member_id, sender_session_pubkey, nonce, \
                 ciphertext, body_version, reply_to_id, client_message_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    m.id,
                    m.topic_id,
                    m.sender_member_id,
                    m.sender_session_pubkey,
                    m.nonce,
                    m.ciphertext,
                    m.body_version,
                    m.reply_to_id,
                    m.client_message_id,
                    m.created_at
                ])
            })
            .map_err(db)?;
        Ok(self.conn.last_insert_rowid())
    }

    pub(crate) fn topic_messages(
        &self,
        topic_id: &str,
        page: TopicPage,
    ) -> Result<Vec<TopicMessageRow>> {
        let (cond, order, seq, limit) = match page {
            TopicPage::Before(seq, limit) => {
                ("tm.seq < ?2", "DESC", seq.unwrap_or(i64::MAX), limit)
            }
            TopicPage::After(seq, limit) => ("tm.seq > ?2", "ASC", seq, limit),
        };
        self.conn
            .prepare_cached(&format!(
                "SELECT {TOPIC_MESSAGE_SELECT} FROM topic_messages tm {TOPIC_MESSAGE_JOIN} \
                 WHERE tm.topic_id = ?1 AND {cond} ORDER BY tm.seq {order} LIMIT ?3"
            ))
            .and_then(|mut s| {
                s.query_map(
                    params![topic_id, seq, limit.min(i64::MAX as usize) as i64],
                    |r| topic_message_row(r, 0),
                )?
                .collect()
            })
            .map_err(db)
    }

    pub(crate) fn topic_messages_by_prefix(
        &self,
        topic_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<TopicMessageRow>> {
        let (lo, hi) = prefix_range(prefix);
        self.conn
            .prepare_cached(&format!(
                "SELECT {TOPIC_MESSAGE_SELECT} FROM topic_messages tm {TOPIC_MESSAGE_JOIN} \
                 WHERE tm.id >= ?1 AND tm.id < ?2 AND tm.topic_id = ?3 ORDER BY tm.id LIMIT ?4"
            ))
            .and_then(|mut s| {
                s.query_map(params![lo, hi, topic_id, limit as i64], |r| {
                    topic_message_row(r, 0)
                })?
                .collect()
            })
            .map_err(db)
    }

    pub(crate) fn topic_message_by_client_id(
        &self,
        topic_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT id FROM topic_messages WHERE topic_id = ?1 AND sender_member_id = ?2 \
                 AND client_message_id = ?3",
            )
            .and_then(|mut s| {
                s.query_row([topic_id, sender_member_id, client_message_id], |r| {
                    r.get(0)
                })
                .optional()
            })
            .map_err(db)
    }

    pub(crate) fn insert_notification(
        &mut self,
        id: &str,
        message_id: &str,
        member_id: &str,
        kind: &str,
        at: i64,
    ) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO notifications (id, message_id, member_id, kind, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (message_id, member_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![id, message_id, member_id, kind, at]))
            .map_err(db)?;
        Ok(n == 1)
    }

    pub(crate) fn notifications(
        &self,
        member_id: &str,
        unread_only: bool,
        limit: usize,
    ) -> Result<Vec<NotificationRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT n.id, t.name, n.kind, n.created_at, n.read_at, {TOPIC_MESSAGE_SELECT} \
                 FROM notifications n JOIN topic_messages tm ON tm.id = n.message_id \
                 JOIN topics t ON t.id = tm.topic_id {TOPIC_MESSAGE_JOIN} \
                 WHERE n.member_id = ?1 AND (?2 = 0 OR n.read_at IS NULL) \
                 ORDER BY n.created_at DESC, tm.seq DESC LIMIT ?3"
            ))
            .and_then(|mut s| {
                s.query_map(params![member_id, unread_only, limit as i64], |r| {
                    Ok(NotificationRow {
                        id: r.get(0)?,
                        topic_name: r.get(1)?,
                        kind: r.get(2)?,
                        created_at: r.get(3)?,
                        read_at: r.get(4)?,
                        message: topic_message_row(r, 5)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    pub(crate) fn mark_notifications_read(
        &mut self,
        member_id: &str,
        ids: Option<&[String]>,
        at: i64,
    ) -> Result<usize> {
        self.begin()?;
        let Some(ids) = ids else {
            return self
                .conn
                .prepare_cached(
                    "UPDATE notifications SET read_at = ?2 WHERE member_id = ?1 AND read_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![member_id, at]))
                .map_err(db);
        };
        let mut s = self
            .conn
            .prepare_cached(
                "UPDATE notifications SET read_at = ?3 WHERE member_id = ?1 AND id = ?2 AND read_at IS NULL",
            )
            .map_err(db)?;
        let mut n = 0;
        for id in ids {
            n += s.execute(params![member_id, id, at]).map_err(db)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{both_stores, seeded_in};
    use super::*;

    both_stores! {
        fn topics_members_keys_messages_and_notifications(db) {
            let mut s = seeded_in(db);
            let topic = Topic {
                id: "t1".into(),
                mesh_id: "m1".into(),
                name: "dev".into(),
                description: None,
                visibility: "public".into(),
                created_by_member_id: Some("a".into()),
                encrypted: true,
                created_at: 1,
                archived_at: None,
            };
            s.insert_topic(&topic).unwrap();
            assert!(s.insert_topic(&topic).is_err(), "names are unique per mesh");
            s.rollback();
            s.insert_topic(&topic).unwrap();
            assert_eq!(s.topic("m1", "dev").unwrap().unwrap().id, "t1");
            assert_eq!(s.topic("m1", "t1").unwrap().unwrap().name, "dev");
            assert!(s.topic("m2", "dev").unwrap().is_none());
            assert!(s.join_topic("t1", "a", "lead", 1).unwrap());
            assert!(
                !s.join_topic("t1", "a", "member", 2).unwrap(),
                "joining twice keeps the role"
            );
            assert!(s.join_topic("t1", "b", "member", 2).unwrap());
            let key = |m: &str, by: &str| SealedKey {
                topic_id: "t1".into(),
                member_id: m.into(),
                encrypted_key: format!("k-{m}"),
                nonce: "n".into(),
                sealed_by_member_id: by.into(),
                created_at: 3,
            };
            assert!(s.put_topic_key(&key("a", "a")).unwrap());
            assert!(
                !s.put_topic_key(&key("a", "b")).unwrap(),
                "a stored copy stays"
            );
            assert_eq!(
                s.topic_key("t1", "a").unwrap().unwrap().sealed_by_member_id,
                "a"
            );
            let m = s.topic_members("t1").unwrap();
            assert_eq!(
                m.iter()
                    .map(|m| (m.member_id.as_str(), m.role.as_str(), m.has_key))
                    .collect::<Vec<_>>(),
                [("a", "lead", true), ("b", "member", false)]
            );

            let msg = |id: &str, from: &str, at: i64| TopicMessage {
                id: id.into(),
                topic_id: "t1".into(),
                sender_member_id: from.into(),
                sender_session_pubkey: None,
                nonce: "n".into(),
                ciphertext: format!("ct-{id}"),
                body_version: 2,
                reply_to_id: None,
                client_message_id: Some(format!("c-{id}")),
                created_at: at,
            };
            // The same millisecond: storage order decides.
            let s1 = s.insert_topic_message(&msg("zz1", "a", 10)).unwrap();
            let s2 = s.insert_topic_message(&msg("aa2", "b", 10)).unwrap();
            let s3 = s.insert_topic_message(&msg("mm3", "a", 11)).unwrap();
            assert!(s1 < s2 && s2 < s3);
            let ids =
                |rows: Vec<TopicMessageRow>| rows.into_iter().map(|r| r.message.id).collect::<Vec<_>>();
            assert_eq!(
                ids(s.topic_messages("t1", TopicPage::Before(None, 10)).unwrap()),
                ["mm3", "aa2", "zz1"]
            );
            assert_eq!(
                ids(s
                    .topic_messages("t1", TopicPage::Before(Some(s3), 1))
                    .unwrap()),
                ["aa2"]
            );
            assert_eq!(
                ids(s.topic_messages("t1", TopicPage::After(s1, 10)).unwrap()),
                ["aa2", "mm3"]
            );
            let row = &s.topic_messages_by_prefix("t1", "aa", 5).unwrap()[0];
            assert_eq!(
                (row.sender_name.as_str(), row.sender_member_pubkey.as_str()),
                ("name-b", "pb")
            );
            assert_eq!(
                s.topic_message_by_client_id("t1", "b", "c-aa2")
                    .unwrap()
                    .as_deref(),
                Some("aa2")
            );
            assert!(
                s.topic_message_by_client_id("t1", "a", "c-aa2")
                    .unwrap()
                    .is_none()
            );

            // a has read up to 10: only b's message at 10 was before that, so nothing of b's is unread for a.
            s.mark_topic_read("t1", "a", 10).unwrap();
            let listing = &s.topics("m1", "a").unwrap()[0];
            assert_eq!(
                (listing.member_count, listing.joined, listing.unread),
                (2, true, 0)
            );
            assert_eq!(s.topics("m1", "b").unwrap()[0].unread, 2);

            assert!(
                s.insert_notification("n1", "zz1", "b", "mention", 10)
                    .unwrap()
            );
            assert!(
                !s.insert_notification("n2", "zz1", "b", "mention", 10)
                    .unwrap()
            );
            assert!(
                s.insert_notification("n3", "mm3", "b", "mention", 11)
                    .unwrap()
            );
            let n = s.notifications("b", true, 10).unwrap();
            assert_eq!(
                n.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
                ["n3", "n1"]
            );
            assert_eq!(n[0].topic_name, "dev");
            assert_eq!(
                s.mark_notifications_read("b", Some(&["n1".to_string()]), 12)
                    .unwrap(),
                1
            );
            assert_eq!(s.notifications("b", true, 10).unwrap().len(), 1);
            assert_eq!(s.mark_notifications_read("b", None, 13).unwrap(), 1);
            assert_eq!(s.notifications("b", false, 10).unwrap().len(), 2);
            assert!(s.leave_topic("t1", "b").unwrap());
            assert!(!s.mark_topic_read("t1", "b", 14).unwrap());
            s.commit().unwrap();
        }
    }
}
