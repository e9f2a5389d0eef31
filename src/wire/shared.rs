//! Pieces several frames share: priorities, statuses, groups, capabilities.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A `hello` capability: do not push queued messages to this connection; it asks with `inbox_fetch`.
pub const CAP_PULL: &str = "pull";

/// A message's delivery priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Pushed at once, even to a `working` or `dnd` presence.
    Now,
    /// Pushed when the recipient is `idle`.
    #[default]
    Next,
    /// Never pushed: the recipient pulls it.
    Low,
}

impl Priority {
    /// Every spelling, most urgent first: what a flag offers, and what [`FromStr`] takes.
    pub const NAMES: &[&str] = &["now", "next", "low"];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Now => "now",
            Priority::Next => "next",
            Priority::Low => "low",
        }
    }
}

impl FromStr for Priority {
    type Err = Error;
    fn from_str(s: &str) -> Result<Priority, Error> {
        match s {
            "now" => Ok(Priority::Now),
            "next" => Ok(Priority::Next),
            "low" => Ok(Priority::Low),
            _ => Err(Error::usage(format!(
                "unknown priority {s:?} (expected now, next or low)"
            ))),
        }
    }
}

/// A presence's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for input: everything but `low` is pushed.
    #[default]
    Idle,
    /// Busy: only `now` is pushed.
    Working,
    /// Do not disturb: only `now` is pushed.
    Dnd,
}

impl Status {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Working => "working",
            Status::Dnd => "dnd",
        }
    }
}

impl FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Status, Error> {
        match s {
            "idle" => Ok(Status::Idle),
            "working" => Ok(Status::Working),
            "dnd" => Ok(Status::Dnd),
            _ => Err(Error::usage(format!(
                "unknown status {s:?} (expected idle, working or dnd)"
            ))),
        }
    }
}

/// A group membership: `eng/backend`, optionally with a role in it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}
