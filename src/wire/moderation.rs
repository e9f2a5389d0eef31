//! Moderation (reference §6.11).

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `ban`: revoke a member, found by display name, key or key prefix; its connections close with 4002.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Ban {
        pub target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reason: Option<String>,
    }
}

with_req_id! {
    /// `ban_ack`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct BanAck {
        /// The banned member's display name.
        pub banned: String,
    }
}

with_req_id! {
    /// `unban`: reinstate a revoked member, found by display name or full key.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Unban {
        pub target: String,
    }
}

with_req_id! {
    /// `unban_ack`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct UnbanAck {
        /// The reinstated member's display name.
        pub unbanned: String,
    }
}
