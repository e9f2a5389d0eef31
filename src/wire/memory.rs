//! Memory (reference §6.2).

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `remember`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Remember {
        pub content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tags: Vec<String>,
    }
}

with_req_id! {
    /// `memory_stored`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct MemoryStored {
        pub id: String,
    }
}

with_req_id! {
    /// `recall`: full-text search.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Recall {
        pub query: String,
        /// At most this many results (addition; the original returns 20).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub limit: Option<u32>,
    }
}

with_req_id! {
    /// `memory_results`: best match first.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct MemoryResults {
        pub memories: Vec<Memory>,
    }
}

/// One memory in `memory_results`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Memory {
    pub id: String,
    pub content: String,
    pub tags: Vec<String>,
    /// The display name of the member who stored it.
    pub remembered_by: String,
    /// RFC 3339.
    pub remembered_at: String,
    /// Relevance, higher is better (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The matching part of `content` (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

with_req_id! {
    /// `forget`, answered with an `ack` whose `id` and `messageId` are the memory's id.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Forget {
        pub memory_id: String,
    }
}
