//! The mesh services one-shot tools use: shared state, memory, tasks, context, the vault, grants, webhooks and
//! the profile peers see.
//!
//! | file | owns |
//! |---|---|
//! | [`state`] | `cm-state`: get, set with compare-and-set, list, delete and watch shared keys |
//! | [`memory`] | `cm-memory`: remember, recall (ranked full-text search) and forget |
//! | [`tasks`] | `cm-task`: create, claim, complete, release and list the mesh's tasks |
//! | [`context`] | `cm-context`: share what a session learned, search and list what the others did |
//! | [`vault`] | `cm-vault`: secrets sealed here for you and the members you name |
//! | [`grants`] | `cm-grant`: who may DM you, copy you on broadcasts, push with `now`, fetch your files; blocks |
//! | [`webhooks`] | `cm-webhook`: URLs on the broker that turn a signed HTTP POST into a message |
//! | [`profile`] | `cm-profile`: the name, summary, status, visibility, role tag and groups peers see |
//!
//! Each call opens one connection with [`Ctx::connect`](crate::client::Ctx::connect), so inside a launched session it speaks as that session
//! (a pull connection of it) and everywhere else as the member.

pub mod context;
pub mod grants;
pub mod memory;
pub mod profile;
pub mod state;
pub mod tasks;
pub mod vault;
pub mod webhooks;
