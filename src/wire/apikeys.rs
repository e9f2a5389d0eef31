//! API keys (reference §6.6).

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `apikey_create`. A missing label or capability is the broker's `invalid_args`, not a parse error.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ApikeyCreate {
        #[serde(default)]
        pub label: String,
        /// `send`, `read`, `state_write`, `admin`.
        #[serde(default)]
        pub capabilities: Vec<String>,
        /// Topic names without `#`; absent means every topic.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub topic_scopes: Option<Vec<String>>,
        /// RFC 3339, as the original has it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub expires_at: Option<String>,
    }
}

with_req_id! {
    /// `apikey_created`: the only time the secret is shown.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ApikeyCreated {
        pub id: String,
        /// `cm_` and 43 base64url characters.
        pub secret: String,
        pub label: String,
        /// The secret's first 11 characters, to recognise it by.
        pub prefix: String,
        pub capabilities: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub topic_scopes: Option<Vec<String>>,
        /// RFC 3339.
        pub created_at: String,
    }
}

with_req_id! {
    /// `apikey_list`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ApikeyList {
    }
}

with_req_id! {
    /// `apikey_list_response`: newest first, revoked keys included.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ApikeyListResponse {
        pub keys: Vec<ApiKey>,
    }
}

/// One API key in `apikey_list_response` (times RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub label: String,
    pub prefix: String,
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_scopes: Option<Vec<String>>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

with_req_id! {
    /// `apikey_revoke`: an id or an id prefix.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ApikeyRevoke {
        pub id: String,
    }
}

with_req_id! {
    /// `apikey_revoke_response`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ApikeyRevokeResponse {
        /// `revoked`, `not_found` or `not_unique`.
        pub status: String,
        /// The full id of the revoked key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        /// How many keys a `not_unique` prefix matched.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub matches: Option<u32>,
    }
}
