//! Messaging for `cm-send`, `cm-peers`, `cm-inbox` and `cm-pipe`: who is in a mesh, what a target reaches, how a
//! message is sealed and how its delivery is reported, and how inbound messages are shown.
//!
//! | file | owns |
//! |---|---|
//! | [`roster`] | [`Roster`]: a mesh's live presences and every member; name resolution's candidates; `cm-peers` rows |
//! | [`send`] | [`Dest`]: a target resolved to one key or to sealed copies; [`SendResult`] and its honest wording |
//! | [`inbox`] | pending messages fetched, printed, and acknowledged only after they are written; the prompt hook |
//! | [`seen`] | the ids `cm-inbox` showed, per mesh and identity, kept across runs |
//! | [`pipe`] | `cm-pipe`: a [`crate::client::Session`] driven by JSON Lines commands |

pub mod inbox;
pub mod pipe;
pub mod roster;
pub mod seen;
pub mod send;

pub use roster::{PeerRow, Roster};
pub use send::{Dest, Outgoing, SendResult};
