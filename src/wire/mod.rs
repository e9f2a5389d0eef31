//! The broker protocol's frames as serde types, shared by the broker and every client.
//!
//! Every WebSocket message is one JSON object tagged by `type`; [`Frame`] has one variant per type, each holding a
//! struct named after it. Field names are the wire's: camelCase, except `client_message_id`,
//! `request_fingerprint` and `_reqId`. Optional fields are omitted, never `null` (a `null` from an original
//! broker reads as absent). Unknown fields are ignored and an unknown `type` parses as [`Frame::Unknown`], so
//! either side can grow the protocol without breaking the other (docs/protocol.md lists our additions).
//!
//! Requests are strict about what the broker must have: a `hello` whose `timestamp` is not a JSON integer does
//! not parse at all, and the broker answers that with `timestamp_skew`/`malformed`. Replies are lenient (a
//! missing field takes its default), so a client also reads an original broker, which leaves out fields ours
//! always sends.
//!
//! The signed strings live here too, because both sides must build them byte for byte.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | parsing a message, the `_reqId` field every request and reply declares through one macro |
//! | `signed.rs` | the signed strings |
//! | `frame.rs` | the frame enum |
//! | `shared.rs` | pieces several frames share |
//! | `auth.rs` | authentication (reference §3) |
//! | `errors.rs` | errors (reference §7) |
//! | `messaging.rs` | messaging (reference §4) |
//! | `presence.rs` | presence (reference §5) |
//! | `state.rs` | shared state (reference §6.1) |
//! | `memory.rs` | memory (reference §6.2) |
//! | `schedule.rs` | scheduled messages and reminders (reference §6.3) |
//! | `profile.rs` | the profile (an addition) |
//! | `topics.rs` | topics (reference §6.4) |
//! | `notifications.rs` | notifications of mentions (reference §6.5) |
//! | `apikeys.rs` | API keys (reference §6.6) |
//! | `moderation.rs` | moderation (reference §6.11) |
//! | `files.rs` | files (docs/protocol.md §6) |
//! | `tasks.rs` | tasks (reference §6.9) |
//! | `context.rs` | shared context (reference §6.9) |
//! | `reserve.rs` | file reservations (docs/protocol.md §6.10) |
//! | `vault.rs` | the vault (reference §6.10) |
//! | `grants.rs` | grants and blocks (docs/protocol.md §6.12) |
//! | `webhooks.rs` | inbound webhooks (reference §6.12) |

use serde_json::Value;

/// Declares a frame struct whose last field is the request id: `_reqId` on the wire, omitted when absent, echoed in
/// a reply so a client matches it to its request. Written once here rather than on every frame that carries it.
macro_rules! with_req_id {
    ($(#[$meta:meta])* pub struct $name:ident { $($field:tt)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($field)*
            /// The request this frame asks or answers, echoed from `_reqId`.
            #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
            pub req_id: Option<String>,
        }
    };
}

mod apikeys;
mod auth;
mod context;
mod errors;
mod files;
mod frame;
mod grants;
mod memory;
mod messaging;
mod moderation;
mod notifications;
mod presence;
mod profile;
mod reserve;
mod schedule;
mod shared;
mod signed;
mod state;
mod tasks;
#[cfg(test)]
mod tests;
mod topics;
mod vault;
mod webhooks;

pub use apikeys::*;
pub use auth::*;
pub use context::*;
pub use errors::*;
pub use files::*;
pub use frame::Frame;
pub use grants::*;
pub use memory::*;
pub use messaging::*;
pub use moderation::*;
pub use notifications::*;
pub use presence::*;
pub use profile::*;
pub use reserve::*;
pub use schedule::*;
pub use shared::*;
pub use signed::*;
pub use state::*;
pub use tasks::*;
pub use topics::*;
pub use vault::*;
pub use webhooks::*;

/// Parses one WebSocket text message. An unknown `type` is `Ok(Frame::Unknown)`; a missing `type`, or a known
/// one whose fields do not fit, is an error.
pub fn parse(text: &str) -> Result<Frame, serde_json::Error> {
    serde_json::from_str(text)
}

/// The `_reqId` of a message that may not parse as a [`Frame`], so a refusal can still be matched to its
/// request.
pub fn peek_req_id(text: &str) -> Option<String> {
    match serde_json::from_str::<Value>(text).ok()?.get("_reqId")? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}
