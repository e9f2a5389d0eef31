//! Notifications of mentions (reference §6.5).

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `notifications_list`: the caller's mentions, newest first; unread ones unless `all`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct NotificationsList {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub all: Option<bool>,
        /// 1-200, default 50.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub limit: Option<u32>,
    }
}

with_req_id! {
    /// `notifications_list_response`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct NotificationsListResponse {
        pub notifications: Vec<Notification>,
    }
}

/// A mention: the topic message it is in, still sealed as it was posted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Notification {
    pub id: String,
    pub message_id: String,
    pub topic_id: String,
    pub topic_name: String,
    pub sender_name: String,
    pub sender_pubkey: String,
    pub nonce: String,
    pub ciphertext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_version: Option<u32>,
    /// `mention`.
    pub kind: String,
    /// RFC 3339.
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

with_req_id! {
    /// `notifications_read`: the ids given, or every one with `all`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct NotificationsRead {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ids: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub all: Option<bool>,
    }
}

with_req_id! {
    /// `notifications_read_response`: how many were unread and are read now.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct NotificationsReadResponse {
        pub marked: u32,
    }
}
