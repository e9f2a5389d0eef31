//! Messaging (reference §4): `send`, its `ack`, pushes, the inbox and message status.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::shared::Priority;

with_req_id! {
    /// `send`: a message. For a DM `nonce`/`ciphertext` are the crypto_box; for a broadcast or group they are
    /// empty and `copies` holds one box per recipient.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SendMessage {
        /// Echoed in `ack.id`.
        #[serde(default)]
        pub id: String,
        /// A 64-hex member or session key, `*`, `@all`, `@group`, `#topicId` or `#name`.
        pub target_spec: String,
        pub priority: Priority,
        /// Base64, 24 bytes; empty when `copies` carries the boxes.
        #[serde(default)]
        pub nonce: String,
        /// Base64; empty when `copies` carries the boxes.
        #[serde(default)]
        pub ciphertext: String,
        /// Idempotency key: a repeat from the same member is stored once.
        #[serde(
            default,
            rename = "client_message_id",
            skip_serializing_if = "Option::is_none"
        )]
        pub client_message_id: Option<String>,
        #[serde(
            default,
            rename = "request_fingerprint",
            skip_serializing_if = "Option::is_none"
        )]
        pub request_fingerprint: Option<String>,
        /// Per-recipient boxes (addition). Absent is not the same as empty: without `copies` a broadcast is
        /// delivered as it came.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub copies: Option<Vec<SealedCopy>>,
        /// `reminder`, or another tag the receiver shows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub subtype: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reply_to_id: Option<String>,
        /// Mentioned display names (topic sends); absent lets the broker look for `@name` itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mentions: Option<Vec<String>>,
        /// Topic body format: 1 base64 plaintext, 2 secretbox under the topic key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub body_version: Option<u32>,
    }
}

/// One recipient's crypto_box of a broadcast or group message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedCopy {
    /// A member key (every connection of that member) or a session key.
    pub to: String,
    pub nonce: String,
    pub ciphertext: String,
}

with_req_id! {
    /// `ack`: the answer to `send` (`queued:false` with `error` is a refusal), and the generic "done" of
    /// `set_visible`, `set_profile`, `forget` and others.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Ack {
        /// The `send`'s `id`, or the request's `_reqId` for a generic ack.
        pub id: String,
        /// Empty on refusal.
        pub message_id: String,
        /// True when the message is stored for an offline recipient, false when it was pushed now.
        pub queued: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub recipient_online: Option<bool>,
        /// A repeated `client_message_id`: `messageId` is the first send's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub duplicate: Option<bool>,
        /// Starts with `rate_limit:`, `payload too large:`, `unknown target:` or `not_member:`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error: Option<String>,
        /// On a `rate_limit:` refusal, how long until the same send would be taken (cm-broker only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retry_after_ms: Option<u64>,
    }
}

impl Ack {
    /// The generic "done": `{id: _reqId or "", messageId: "", queued: false, _reqId}`.
    pub fn done(req_id: Option<&str>) -> Ack {
        Ack {
            id: req_id.unwrap_or_default().to_string(),
            req_id: req_id.map(str::to_string),
            ..Ack::default()
        }
    }

    /// A refused `send`.
    pub fn refused(id: &str, error: impl Into<String>) -> Ack {
        Ack {
            id: id.to_string(),
            error: Some(error.into()),
            ..Ack::default()
        }
    }
}

/// `push`: a message for this connection, or a system event (`subtype:"system"`, `senderPubkey:"system"`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Push {
    /// Receivers drop duplicates by it.
    pub message_id: String,
    pub mesh_id: String,
    /// The key the sender's socket authenticated with (the box's sender key), or `system`.
    pub sender_pubkey: String,
    /// The sender's member key; cm-broker always sends it on messages, the original only on broadcasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_member_pubkey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_member_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// The `send`'s target, so a receiver tells a DM from a broadcast, group or topic message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_spec: Option<String>,
    pub priority: Priority,
    pub nonce: String,
    pub ciphertext: String,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
    #[serde(
        default,
        rename = "client_message_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_message_id: Option<String>,
    #[serde(
        default,
        rename = "request_fingerprint",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_fingerprint: Option<String>,
    /// `system`, `reminder`, `webhook`, or the sender's own tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// The topic's name, for topic messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_version: Option<u32>,
    /// A system event's name: `peer_joined`, `peer_left`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_data: Option<Value>,
}

impl Push {
    /// A system event as the original sends it: no sender, nothing to decrypt, priority `low`.
    pub fn system(
        mesh_id: &str,
        message_id: &str,
        created_at: &str,
        event: &str,
        event_data: Value,
    ) -> Push {
        Push {
            message_id: message_id.to_string(),
            mesh_id: mesh_id.to_string(),
            sender_pubkey: "system".to_string(),
            priority: Priority::Low,
            created_at: created_at.to_string(),
            subtype: Some("system".to_string()),
            event: Some(event.to_string()),
            event_data: Some(event_data),
            ..Push::default()
        }
    }

    /// A broker event rather than a message: there is nothing to decrypt.
    pub fn is_system(&self) -> bool {
        self.subtype.as_deref() == Some("system") || self.sender_pubkey == "system"
    }
}

/// `client_ack`: stop redelivering a push. Either id will do; both absent is a no-op.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientAck {
    /// The push's `client_message_id` (camelCase here, unlike everywhere else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// The push's `messageId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_message_id: Option<String>,
}

with_req_id! {
    /// `message_status`: an id, or a prefix of 8 or more characters.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct MessageStatus {
        pub message_id: String,
    }
}

with_req_id! {
    /// `message_status_result`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct MessageStatusResult {
        pub message_id: String,
        pub target_spec: String,
        /// Every recipient has acknowledged it.
        pub delivered: bool,
        /// RFC 3339.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub delivered_at: Option<String>,
        pub recipients: Vec<Recipient>,
    }
}

/// One recipient of a message, in `message_status_result`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Recipient {
    pub name: String,
    pub pubkey: String,
    /// `delivered` or `pending` (an original broker also says `held` or `disconnected`).
    pub status: String,
}
