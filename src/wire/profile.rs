//! The profile (an addition).

use serde::{Deserialize, Serialize};

use super::shared::{Group, Status};

with_req_id! {
    /// `get_profile`: on a member connection the member's stored profile; on a session's connection that session's.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GetProfile {
    }
}

with_req_id! {
    /// `profile_result`: what peers see of the member or session.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ProfileResult {
        /// `member` or `session`: what the profile requests on this connection change.
        pub scope: String,
        /// The session key, for scope `session`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub session_pubkey: Option<String>,
        pub display_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub summary: Option<String>,
        pub status: Status,
        pub visible: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub role_tag: Option<String>,
        pub groups: Vec<Group>,
        /// For scope `session`: whether the session is connected now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub online: Option<bool>,
    }
}
