//! Shared state (reference §6.1).

use serde::{Deserialize, Serialize};
use serde_json::Value;

with_req_id! {
    /// `set_state`: any JSON value under a key. Other connections get `state_change`.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SetState {
        pub key: String,
        pub value: Value,
        /// Compare-and-set (addition): applies only if the key's current `version` is this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub expected_version: Option<i64>,
    }
}

with_req_id! {
    /// `del_state` (addition): deletes a key.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct DelState {
        pub key: String,
        /// Compare-and-set: deletes only if the key's current `version` is this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub expected_version: Option<i64>,
    }
}

with_req_id! {
    /// `get_state`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GetState {
        pub key: String,
    }
}

with_req_id! {
    /// `state_result`. A missing key is `value: null` with empty `updatedBy` and `updatedAt`.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct StateResult {
        pub key: String,
        /// Always sent, `null` included: here `null` is a value, not an absent field.
        pub value: Value,
        /// The display name of the member who set it.
        pub updated_by: String,
        /// RFC 3339.
        pub updated_at: String,
        /// Bumped by every write (addition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version: Option<i64>,
    }
}

with_req_id! {
    /// `list_state`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ListState {
    }
}

with_req_id! {
    /// `state_list`: every key, in key order.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct StateList {
        pub entries: Vec<StateEntry>,
    }
}

/// One key in `state_list`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StateEntry {
    pub key: String,
    pub value: Value,
    pub updated_by: String,
    /// RFC 3339.
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// `state_change`: another connection set a key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StateChange {
    pub key: String,
    pub value: Value,
    pub updated_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The key was deleted (addition); `value` is then `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}
