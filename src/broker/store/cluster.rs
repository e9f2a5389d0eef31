//! What several brokers on one database share beyond the meshes' data: which brokers are alive, the presences
//! each serves, and the events they tell each other (see [`crate::broker::cluster`]).
//!
//! Only a store several brokers can open at once has these (PostgreSQL); SQLite's is one broker's alone and keeps
//! the [`Store`](super::Store) trait's defaults, which do nothing.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use crate::broker::net::Wake;

/// One live presence as the other brokers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRow {
    pub id: String,
    pub broker_id: String,
    pub mesh_id: String,
    pub member_id: String,
    /// Asked not to be pushed messages.
    pub pull: bool,
    pub visible: bool,
    /// Its groups, as a JSON array.
    pub groups: String,
    /// The presence as `list_peers` shows it (a `wire::Peer` in JSON).
    pub listing: String,
}

/// What the listening connection hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A payload another broker (or this one) sent.
    Event(String),
    /// The connection was (re)established: what was sent while it was down is lost, and only the store knows it.
    Listening,
}

/// News from the other brokers: notices, and the pipe that wakes the event loop when one arrives.
pub struct Listener {
    pub notices: Receiver<Notice>,
    pub wake: Arc<Wake>,
}
