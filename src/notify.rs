//! `cm-notify`: the mentions of me in topic messages, opened with each topic's key.

use std::collections::HashMap;

use serde::Serialize;

use crate::client::{Requester, unexpected};
use crate::crypto::Keypair;
use crate::error::Result;
use crate::out::short_id;
use crate::topics::{fetch_key, open_body};
use crate::wire::{self, Frame};

/// A mention as the tools show it; one JSON line with `"type": "notification"`.
#[derive(Debug, Clone, Serialize)]
pub struct Mention {
    r#type: &'static str,
    pub id: String,
    pub message_id: String,
    pub topic: String,
    pub topic_id: String,
    pub from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrypt_error: Option<String>,
    pub read: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl Mention {
    /// `#dev  alice  #a1b2c3d4  @bob can you look?`
    pub fn words(&self) -> String {
        let text = match (&self.text, &self.decrypt_error) {
            (Some(t), _) => crate::topics::snippet(t),
            (None, Some(e)) => format!("[{e}]"),
            (None, None) => String::new(),
        };
        format!(
            "#{}  {}  #{}  {}{}",
            self.topic,
            self.from,
            short_id(&self.message_id),
            text,
            if self.read { "" } else { "  (new)" }
        )
    }
}

/// The mentions of this member, newest first: the unread ones, or all with `all`. Each body is opened with its
/// topic's key, fetched once per topic.
pub fn list(r: &mut impl Requester, member: &Keypair, all: bool) -> Result<Vec<Mention>> {
    let reply = r.ask(Frame::NotificationsList(wire::NotificationsList {
        all: Some(all),
        limit: Some(200),
        req_id: None,
    }))?;
    let Frame::NotificationsListResponse(list) = reply else {
        return Err(unexpected("notifications_list", &reply));
    };
    let mut keys: HashMap<String, Option<[u8; 32]>> = HashMap::new();
    let mut out = Vec::with_capacity(list.notifications.len());
    for n in list.notifications {
        let v = n.body_version.unwrap_or(1);
        let key = if v == 2 {
            if !keys.contains_key(&n.topic_id) {
                let k = fetch_key(r, &n.topic_id, member).ok().flatten();
                keys.insert(n.topic_id.clone(), k);
            }
            keys.get(&n.topic_id).copied().flatten()
        } else {
            None
        };
        let (text, decrypt_error) = match open_body(&n.nonce, &n.ciphertext, v, key.as_ref()) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e)),
        };
        out.push(Mention {
            r#type: "notification",
            id: n.id,
            message_id: n.message_id,
            topic: n.topic_name,
            topic_id: n.topic_id,
            from: n.sender_name,
            text,
            decrypt_error,
            read: n.read_at.is_some(),
            created_at: n.created_at,
        });
    }
    Ok(out)
}

/// Marks mentions read: these ids, or every one when `ids` is empty. Returns how many were unread.
pub fn read(r: &mut impl Requester, ids: &[String]) -> Result<u32> {
    let frame = if ids.is_empty() {
        wire::NotificationsRead {
            all: Some(true),
            ..Default::default()
        }
    } else {
        wire::NotificationsRead {
            ids: Some(ids.to_vec()),
            ..Default::default()
        }
    };
    match r.ask(Frame::NotificationsRead(frame))? {
        Frame::NotificationsReadResponse(n) => Ok(n.marked),
        f => Err(unexpected("notifications_read", &f)),
    }
}
