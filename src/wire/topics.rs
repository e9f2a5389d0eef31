//! Topics (reference §6.4).

use serde::{Deserialize, Serialize};

// A `topic` in a request is the topic's id or its name.

with_req_id! {
    /// `topic_create`: the creator joins as `lead`. With `keys` (addition) the topic is encrypted: the client made
    /// the topic key and sealed a copy per member; without, its bodies are base64 plaintext.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TopicCreate {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// `public`, `private` or `dm`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub visibility: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keys: Option<Vec<SealedTopicKey>>,
    }
}

with_req_id! {
    /// `topic_created`: `created` is false when the name existed already.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct TopicCreated {
        pub topic: TopicRef,
        pub created: bool,
    }
}

/// A topic's identity, in `topic_created`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicRef {
    pub id: String,
    pub name: String,
    pub visibility: String,
    /// Its bodies are sealed under a topic key (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
}

/// A topic key sealed for one member: base64 of the sealer's x25519 key ‖ crypto_box(key), and its nonce.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SealedTopicKey {
    pub member_id: String,
    pub encrypted_key: String,
    pub nonce: String,
}

with_req_id! {
    /// `topic_list`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TopicList {
    }
}

with_req_id! {
    /// `topic_list_response`: the mesh's live topics by name.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct TopicListResponse {
        pub topics: Vec<TopicInfo>,
    }
}

/// One topic in `topic_list_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicInfo {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub visibility: String,
    pub member_count: u32,
    /// RFC 3339.
    pub created_at: String,
    /// Its bodies are sealed under a topic key (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// The caller is a member (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<bool>,
    /// Messages from others since the caller last marked it read (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u32>,
}

with_req_id! {
    /// `topic_join`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TopicJoin {
        pub topic: String,
        /// `lead`, `member` or `observer`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub role: Option<String>,
    }
}

with_req_id! {
    /// `topic_leave`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TopicLeave {
        pub topic: String,
    }
}

with_req_id! {
    /// `topic_members`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TopicMembers {
        pub topic: String,
    }
}

with_req_id! {
    /// `topic_members_response`: `topic` as the request gave it.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct TopicMembersResponse {
        pub topic: String,
        pub members: Vec<TopicMember>,
    }
}

/// One member of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicMember {
    pub member_id: String,
    /// The member key (topic membership is per member, not per session).
    pub pubkey: String,
    pub display_name: String,
    /// `lead`, `member` or `observer`.
    pub role: String,
    /// RFC 3339.
    pub joined_at: String,
    /// RFC 3339; absent when never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_at: Option<String>,
    /// At least one live connection (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// A sealed copy of the topic key is stored for it (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_key: Option<bool>,
}

with_req_id! {
    /// `topic_history`: up to `limit` (1-200, default 50) messages older than `beforeId`, newest first.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TopicHistory {
        pub topic: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub limit: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub before_id: Option<String>,
    }
}

with_req_id! {
    /// `topic_history_response`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct TopicHistoryResponse {
        pub topic: String,
        /// Additions: the topic's id and whether its bodies are sealed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub topic_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub encrypted: Option<bool>,
        pub messages: Vec<TopicMessage>,
    }
}

/// One message of a topic's history.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicMessage {
    pub id: String,
    /// The sender's session key, else its member key.
    pub sender_pubkey: String,
    pub sender_member_id: String,
    /// The sender's member key (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_member_pubkey: Option<String>,
    pub sender_name: String,
    pub nonce: String,
    pub ciphertext: String,
    /// 1 base64 plaintext, 2 secretbox under the topic key; absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

with_req_id! {
    /// `topic_mark_read`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TopicMarkRead {
        pub topic: String,
    }
}

with_req_id! {
    /// `topic_key`: the caller's sealed copy of the topic key.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TopicKey {
        pub topic: String,
    }
}

with_req_id! {
    /// `topic_key_response`: open `encryptedKey` with the member key (its first 32 bytes are the sealer's x25519 key).
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct TopicKeyResponse {
        pub topic: String,
        pub topic_id: String,
        pub encrypted_key: String,
        pub nonce: String,
    }
}

with_req_id! {
    /// `topic_pending_seals`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TopicPendingSeals {
        pub topic: String,
    }
}

with_req_id! {
    /// `topic_pending_seals_response`: members waiting for a key holder to seal the key for them (at most 50).
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct TopicPendingSealsResponse {
        pub topic: String,
        pub topic_id: String,
        pub pending: Vec<PendingSeal>,
    }
}

/// A member without a sealed topic key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PendingSeal {
    pub member_id: String,
    /// The member key to seal to.
    pub pubkey: String,
    pub display_name: String,
}

with_req_id! {
    /// `topic_seal`: the topic key sealed for `memberId` by a member that holds it.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TopicSeal {
        pub topic: String,
        pub member_id: String,
        pub encrypted_key: String,
        pub nonce: String,
    }
}
