//! Context (reference §6.9): what a session learned (a summary, the files it read, its findings), kept one per
//! member and name so the others can find it.

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `share_context`: replaces the sharer's earlier context of the same name.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ShareContext {
        pub summary: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub files_read: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub key_findings: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tags: Vec<String>,
    }
}

with_req_id! {
    /// `context_shared`. The original echoes no `_reqId`; ours does.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ContextShared {
        pub id: String,
        /// It replaced an earlier context of the same member and name (addition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub replaced: Option<bool>,
    }
}

with_req_id! {
    /// `get_context`: contexts whose summary, findings or files hold `query`, or that carry it as a tag.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GetContext {
        pub query: String,
    }
}

with_req_id! {
    /// `context_results`: newest first, at most 20.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ContextResults {
        pub contexts: Vec<Context>,
    }
}

with_req_id! {
    /// `list_contexts`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ListContexts {}
}

with_req_id! {
    /// `context_list`: newest first, at most 100. The original sends `peerName`, `summary`, `tags` and
    /// `updatedAt`; ours every field of [`Context`].
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ContextList {
        pub contexts: Vec<Context>,
    }
}

/// One context in `context_results` and `context_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Context {
    /// The display name it was shared under.
    pub peer_name: String,
    pub summary: String,
    pub files_read: Vec<String>,
    pub key_findings: Vec<String>,
    pub tags: Vec<String>,
    /// RFC 3339.
    pub updated_at: String,
}
