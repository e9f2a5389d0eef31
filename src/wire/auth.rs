//! Authentication (reference §3): `hello`, `session_hello` and their answers.

use serde::{Deserialize, Serialize};

use super::shared::Group;
use super::signed::{attestation_signed, hello_signed, session_hello_signed};

/// `hello`: authenticate as a member (a control-plane presence).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// The mesh's id, not its slug.
    pub mesh_id: String,
    /// Must be the id of the member that owns `pubkey`.
    pub member_id: String,
    /// The member's ed25519 key, 64 lowercase hex.
    pub pubkey: String,
    /// Sent by original clients; ignored, since a session key is only accepted with proof (`session_hello`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_pubkey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `ai`, `human` or `connector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Groups to join; absent means the saved or default groups, which an empty list does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
    /// Ms since the epoch. It must be a JSON integer: a string or a fraction fails to parse the whole frame,
    /// which the broker answers with `timestamp_skew` or `malformed`, as the original does.
    pub timestamp: i64,
    /// Ed25519 over [`hello_signed`], 128 hex.
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    /// Feature strings, e.g. [`CAP_PULL`](super::CAP_PULL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

impl Hello {
    /// The string `signature` signs.
    pub fn signed(&self) -> String {
        hello_signed(&self.mesh_id, &self.member_id, &self.pubkey, self.timestamp)
    }
}

/// The member key's statement that a session key speaks for it until `expiresAt`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    pub session_pubkey: String,
    pub parent_member_pubkey: String,
    /// Ms since the epoch; in the future and at most 24 h away. A non-integer fails to parse the frame.
    pub expires_at: i64,
    /// Ed25519 by the parent member key over [`attestation_signed`].
    pub signature: String,
}

impl Attestation {
    /// The string `signature` signs.
    pub fn signed(&self) -> String {
        attestation_signed(
            &self.parent_member_pubkey,
            &self.session_pubkey,
            self.expires_at,
        )
    }
}

/// `session_hello`: authenticate with a session key (a `session` presence, listed as a peer).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionHello {
    pub mesh_id: String,
    /// When present and non-empty, must be the id of the member owning `parentMemberPubkey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_member_id: Option<String>,
    pub parent_member_pubkey: String,
    pub session_pubkey: String,
    pub parent_attestation: Attestation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Groups to join; absent means the member's default groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
    /// Accepted and ignored, as by the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Ms since the epoch; a JSON integer or the frame does not parse (see [`Hello::timestamp`]).
    pub timestamp: i64,
    /// Ed25519 by the session key over [`session_hello_signed`].
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

impl SessionHello {
    /// The string `signature` signs.
    pub fn signed(&self) -> String {
        session_hello_signed(
            &self.mesh_id,
            &self.parent_member_pubkey,
            &self.session_pubkey,
            self.timestamp,
        )
    }
}

/// `hello_ack`. cm-broker adds the member and mesh fields and `serverTime`; an original broker sends only
/// `presenceId`, `memberDisplayName` and the profile and policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HelloAck {
    pub presence_id: String,
    /// The effective display name of this presence.
    pub member_display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    /// `admin` or `member`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_profile: Option<MemberProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_policy: Option<MeshPolicy>,
    /// The broker's clock, ms since the epoch, so a client can tell its own skew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<i64>,
    /// The presence state of an earlier connection was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_summary: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_groups: Option<Vec<Group>>,
    /// What this broker offers beyond the original's protocol, by the names in [`FEATURES`] (addition). Absent:
    /// an original claudemesh broker, which has none of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

/// Every feature cm-broker names in `hello_ack.features`: the frames and behaviours the original broker lacks.
/// The client decides by these names alone (`client::features`), so a broker may offer some and not others.
pub const FEATURES: &[&str] = &[
    // `members` → `members_list`: every member of the mesh, online or not.
    "members",
    // `inbox_fetch` → `inbox`: pending deliveries pulled by a one-shot tool.
    "inbox_fetch",
    // `get_profile` → `profile_result`.
    "get_profile",
    // `notifications_list` and `notifications_read` over WebSocket.
    "notifications",
    // `file_put`, `file_get`, `file_list`, `file_rm`: encrypted files in chunks.
    "files",
    // Replies (`ack`, `state_result`) to `set_state`, `set_status`, `set_summary`, `join_group`, `leave_group`,
    // `topic_join`, `topic_leave` and `topic_mark_read` when they carry a `_reqId`; the original answers none.
    "replies",
    // `topicId` in `topic_history_response`.
    "history_topic_id",
    // Topic keys made and sealed by clients: `topic_create` with `keys`, `topic_key`, `topic_pending_seals`,
    // `topic_seal`.
    "topic_keys",
    // `del_state`.
    "del_state",
    // `release_task`.
    "release_task",
    // `reserve_paths`, `release_paths`, `list_reservations`: advisory file reservations.
    "reservations",
    // `grant_set`, `grant_block`, `grant_list`: grants and blocks the broker enforces.
    "grants",
    // System pushes of every change to a task (`task_created`, `task_claimed`, `task_completed`, `task_released`)
    // to the mesh's live sessions.
    "task_events",
    // `create_webhook` with `to`: posts to `POST /hooks/<id>`, signed, sealed for a member, a group or a topic.
    "webhook_targets",
];

/// The member's stored profile, in `hello_ack`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MemberProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_tag: Option<String>,
    pub groups: Vec<Group>,
    /// `push`, `inbox` or `off`.
    pub message_mode: String,
}

/// The mesh's policy, in `hello_ack`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshPolicy {
    pub self_editable: SelfEditable,
}

/// Which profile fields members may edit on themselves.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SelfEditable {
    pub display_name: bool,
    pub role_tag: bool,
    pub groups: bool,
    pub message_mode: bool,
}
