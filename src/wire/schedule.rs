//! Scheduled messages and reminders (reference §6.3).

use serde::{Deserialize, Serialize};

use super::messaging::SealedCopy;

with_req_id! {
    /// `schedule`: deliver a message to `to` at `deliverAt`, or at every `cron` match. cm-broker takes the body
    /// sealed like a `send` (`nonce`/`ciphertext` for a key, `copies` for `*`/`@group`) and never sees its text; the
    /// original's plaintext `message` is still accepted, and stored as given.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Schedule {
        /// A broker target: a key, `*`, `@group` or `#topicId`.
        pub to: String,
        /// The original's plaintext body.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub message: String,
        /// Ms since the epoch; ignored with `cron`.
        #[serde(default)]
        pub deliver_at: i64,
        /// `reminder`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub subtype: Option<String>,
        /// Five fields: minute hour day-of-month month day-of-week.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub cron: Option<String>,
        /// The cron's time zone as a fixed offset, `+02:00` or `-0530`; UTC when absent (addition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tz: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub recurring: Option<bool>,
        /// The body sealed to `to`, as in `send` (addition).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub nonce: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub ciphertext: String,
        /// Per-recipient boxes for `*`/`@group`, as in `send` (addition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub copies: Option<Vec<SealedCopy>>,
    }
}

with_req_id! {
    /// `scheduled_ack`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ScheduledAck {
        pub scheduled_id: String,
        /// The first fire time, ms since the epoch.
        pub deliver_at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub cron: Option<String>,
    }
}

with_req_id! {
    /// `list_scheduled`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ListScheduled {
    }
}

with_req_id! {
    /// `scheduled_list`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ScheduledList {
        pub messages: Vec<ScheduledEntry>,
    }
}

/// One pending scheduled message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ScheduledEntry {
    pub id: String,
    pub to: String,
    /// The original's plaintext body; empty for a sealed one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The next fire time, ms since the epoch.
    pub deliver_at: i64,
    /// Ms since the epoch.
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// How often a cron entry has fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_count: Option<u32>,
    /// The cron's fixed offset (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// The key the body is sealed with: the scheduling session's, else the member's (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_pubkey: Option<String>,
    /// The sealed body, so its sender can read it back (addition).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ciphertext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<Vec<SealedCopy>>,
}

with_req_id! {
    /// `cancel_scheduled`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CancelScheduled {
        pub scheduled_id: String,
    }
}

with_req_id! {
    /// `cancel_scheduled_ack`: `ok` is false when there was nothing of the caller's to cancel.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct CancelScheduledAck {
        pub scheduled_id: String,
        pub ok: bool,
    }
}
