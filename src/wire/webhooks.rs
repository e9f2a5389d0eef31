//! Inbound webhooks (reference §6.12): a URL on the broker's port that turns a signed HTTP POST into a message.
//! The frames keep the original's shapes; `to` (where the body goes) and `id` are additions.

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `create_webhook`: answered with `webhook_ack`, the only time the secret is sent.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CreateWebhook {
        pub name: String,
        /// Where a post's body goes: a member's key, `*`, `@group` or `#topic` (addition; the original sends
        /// to every connection of the mesh, and cm-broker takes absent as `*`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub to: Option<String>,
    }
}

with_req_id! {
    /// `webhook_ack`: the answer to `create_webhook` and (with `url` and `secret` empty) `delete_webhook`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct WebhookAck {
        pub name: String,
        /// Where to POST. cm-broker sends `/hooks/<id>` without a host unless it was given `--public-url`; the
        /// client puts its broker's HTTP base in front.
        pub url: String,
        pub secret: String,
        /// The webhook's id, the last part of its URL (addition).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        /// Where its posts go (addition).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub to: Option<String>,
    }
}

with_req_id! {
    /// `list_webhooks`: the mesh's webhooks, answered with `webhook_list`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default)]
    pub struct ListWebhooks {}
}

with_req_id! {
    /// `webhook_list`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default)]
    pub struct WebhookList {
        pub webhooks: Vec<WebhookInfo>,
    }
}

/// A webhook as `webhook_list` gives it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WebhookInfo {
    pub name: String,
    pub url: String,
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
    /// Where its posts go (addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The display name of the member `to` is the key of (addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_name: Option<String>,
    /// The display name of the member who made it (addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

with_req_id! {
    /// `delete_webhook`: answered with `webhook_ack`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default)]
    pub struct DeleteWebhook {
        pub name: String,
    }
}
