//! Presence (reference §5): peers, statuses, groups, visibility.

use serde::{Deserialize, Serialize};

use super::messaging::Push;
use super::shared::{Group, Status};

with_req_id! {
    /// `list_peers`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ListPeers {
    }
}

with_req_id! {
    /// `peers_list`: connected presences, oldest first, the caller's own included.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct PeersList {
        pub peers: Vec<Peer>,
    }
}

/// One presence in `peers_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Peer {
    /// The routing key: the session key, else the member key.
    pub pubkey: String,
    pub member_pubkey: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    pub display_name: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub groups: Vec<Group>,
    pub session_id: String,
    /// RFC 3339.
    pub connected_at: String,
    pub cwd: String,
    /// `control-plane` (a `hello`), `session` (a `session_hello`) or `service`.
    pub peer_role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// False while the presence is in its reconnect grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// The member's role tag (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_tag: Option<String>,
}

/// A presence's public profile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Profile {
    /// An emoji or a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bio: Option<String>,
    /// What this peer can help with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

with_req_id! {
    /// `set_status`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SetStatus {
        pub status: Status,
        /// `hook` when a Claude Code hook sets it (addition): a hook never ends `dnd`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub source: Option<String>,
    }
}

with_req_id! {
    /// `set_summary`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SetSummary {
        pub summary: String,
    }
}

with_req_id! {
    /// `set_visible`: hidden presences get no broadcasts and are left out of others' `peers_list`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SetVisible {
        pub visible: bool,
    }
}

with_req_id! {
    /// `set_profile`: the fields present are merged into the profile.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SetProfile {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub avatar: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bio: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub capabilities: Option<Vec<String>>,
        /// The display name peers see (addition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub display_name: Option<String>,
        /// The member's role tag; empty clears it (addition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub role_tag: Option<String>,
    }
}

with_req_id! {
    /// `join_group`: joins, or changes the role in, a group.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct JoinGroup {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub role: Option<String>,
    }
}

with_req_id! {
    /// `leave_group`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct LeaveGroup {
        pub name: String,
    }
}

with_req_id! {
    /// `members` (addition).
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Members {
    }
}

with_req_id! {
    /// `members_list` (addition).
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct MembersList {
        pub members: Vec<Member>,
    }
}

/// One member of the mesh, in `members_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Member {
    pub member_id: String,
    pub pubkey: String,
    pub display_name: String,
    /// `admin` or `member`.
    pub role: String,
    pub groups: Vec<Group>,
    /// RFC 3339.
    pub joined_at: String,
    /// At least one live connection.
    pub online: bool,
}

with_req_id! {
    /// `inbox_fetch` (addition): pending deliveries, oldest first. Nothing is delivered until `client_ack`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct InboxFetch {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub limit: Option<u32>,
        /// Also this session's deliveries (it must belong to the caller's member).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub session_pubkey: Option<String>,
        /// With nothing pending, answer when something arrives or after this many ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub wait_ms: Option<u64>,
    }
}

with_req_id! {
    /// `inbox` (addition): the pending deliveries, each a push (without its `type`).
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Inbox {
        pub messages: Vec<Push>,
    }
}
