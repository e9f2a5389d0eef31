//! Errors (reference §7): the `error` frame and its codes.

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `error`: a refused request. `code` is one of [`codes`].
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ErrorFrame {
        pub code: String,
        /// For people; clients branch on `code`.
        pub message: String,
        /// The original put some requests' `_reqId` here; cm-broker sets both.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        /// With `version_conflict`: the key's current version (addition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version: Option<i64>,
    }
}

impl ErrorFrame {
    /// An error without a request id.
    pub fn new(code: &str, message: impl Into<String>) -> ErrorFrame {
        ErrorFrame {
            code: code.to_string(),
            message: message.into(),
            id: None,
            version: None,
            req_id: None,
        }
    }

    /// Answers the request `req_id` (in both `id` and `_reqId`, for old and new clients).
    pub fn with_req_id(mut self, req_id: Option<&str>) -> ErrorFrame {
        self.id = req_id.map(str::to_string);
        self.req_id = req_id.map(str::to_string);
        self
    }
}

/// The `code`s of `error` frames.
pub mod codes {
    /// `sessionPubkey` is not 64 lowercase hex.
    pub const BAD_SESSION_PUBKEY: &str = "bad_session_pubkey";
    /// `parentMemberPubkey` is not 64 lowercase hex.
    pub const BAD_PARENT_PUBKEY: &str = "bad_parent_pubkey";
    /// The attestation's keys differ from the `session_hello`'s.
    pub const ATTESTATION_MISMATCH: &str = "attestation_mismatch";
    /// The mesh has as many connections as it may.
    pub const CAPACITY: &str = "capacity";
    /// The hello's timestamp is more than 60 s off, or not a number.
    pub const TIMESTAMP_SKEW: &str = "timestamp_skew";
    /// A hello field has the wrong shape.
    pub const MALFORMED: &str = "malformed";
    /// A signature does not verify.
    pub const BAD_SIGNATURE: &str = "bad_signature";
    /// The attestation has expired.
    pub const EXPIRED: &str = "expired";
    /// The attestation expires more than 24 h from now.
    pub const TTL_TOO_LONG: &str = "ttl_too_long";
    /// The member was removed from the mesh (close 4002).
    pub const REVOKED: &str = "revoked";
    /// A `client_ack` the broker could not save; the message stays pending (`id` names it).
    pub const ACK_NOT_STORED: &str = "ack_not_stored";
    /// This signed hello was accepted once already; a new connection signs a new one.
    pub const REPLAYED: &str = "replayed";
    /// The key is not a member of the mesh, or `memberId` is not its owner's.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// `parentMemberId` is not the id of the parent key's member.
    pub const PARENT_MEMBER_ID_MISMATCH: &str = "parent_member_id_mismatch";
    /// Too many connections or requests.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// A frame before authentication; the socket stays open.
    pub const NO_HELLO: &str = "no_hello";
    /// A second hello on an authenticated socket; nothing changes.
    pub const ALREADY_AUTHENTICATED: &str = "already_authenticated";
    /// A WebSocket frame over 64 KiB (then close 1009).
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// No topic by that id or name.
    pub const TOPIC_NOT_FOUND: &str = "topic_not_found";
    /// A request's arguments are missing or wrong (`apikey_*`).
    pub const INVALID_ARGS: &str = "invalid_args";
    /// An id of the wrong shape (`message_status`).
    pub const INVALID_ARGUMENT: &str = "invalid_argument";
    /// Nothing by that id.
    pub const NOT_FOUND: &str = "not_found";
    /// An id prefix matches more than one thing.
    pub const AMBIGUOUS_PREFIX: &str = "ambiguous_prefix";
    /// No sealed copy of the topic key for this member yet (addition).
    pub const KEY_NOT_SEALED: &str = "key_not_sealed";
    /// The topic has no key: its bodies are base64 plaintext (addition).
    pub const TOPIC_UNENCRYPTED: &str = "topic_unencrypted";
    /// Not allowed for this member.
    pub const FORBIDDEN: &str = "forbidden";
    /// A cron expression that does not parse or never fires.
    pub const INVALID_CRON: &str = "invalid_cron";
    /// A file over the broker's `max_file_bytes` (addition).
    pub const FILE_TOO_LARGE: &str = "file_too_large";
    /// A compare-and-set found another version (`set_state`/`del_state` with `expectedVersion`).
    pub const VERSION_CONFLICT: &str = "version_conflict";
    /// `claim_task` on a task that is not open.
    pub const TASK_NOT_CLAIMABLE: &str = "task_not_claimable";
    /// No task by that id.
    pub const TASK_NOT_FOUND: &str = "task_not_found";
    /// `release_paths` named patterns the member holds no reservation of.
    pub const RESERVATION_NOT_FOUND: &str = "reservation_not_found";
}
