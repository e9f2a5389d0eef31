//! Tasks (reference §6.9): work a mesh hands out, claimed by one member at a time.

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `create_task`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CreateTask {
        pub title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub assignee: Option<String>,
        /// `low`, `normal` (the default) or `high`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub priority: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tags: Vec<String>,
    }
}

with_req_id! {
    /// `task_created`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct TaskCreated {
        pub id: String,
        /// The stored title (addition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub title: Option<String>,
    }
}

with_req_id! {
    /// `claim_task`: only an `open` task can be claimed; answered with `task_list` holding the task.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ClaimTask {
        pub task_id: String,
    }
}

with_req_id! {
    /// `complete_task`: answered with `task_list` holding the task.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CompleteTask {
        pub task_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub result: Option<String>,
    }
}

with_req_id! {
    /// `release_task` (addition): gives a claimed task back to `open`; answered with `task_list`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ReleaseTask {
        pub task_id: String,
    }
}

with_req_id! {
    /// `list_tasks`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ListTasks {
        /// `open`, `claimed` or `done`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status: Option<String>,
        /// A display name: tasks assigned to or claimed by it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub assignee: Option<String>,
    }
}

with_req_id! {
    /// `task_list`: newest first, at most 100.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct TaskList {
        pub tasks: Vec<Task>,
    }
}

/// One task in `task_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// The display name of the member holding the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// `open`, `claimed` or `done`.
    pub status: String,
    pub priority: String,
    pub created_by: String,
    pub tags: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
    /// RFC 3339 (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// What `complete_task` said (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}
