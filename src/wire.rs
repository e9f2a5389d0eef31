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

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;

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

// ---- signed strings (reference §3.1, §3.2; docs/protocol.md §5) ----

/// What a `hello` signs with the member key: `{meshId}|{memberId}|{pubkey}|{timestamp}`.
pub fn hello_signed(mesh_id: &str, member_id: &str, pubkey: &str, timestamp: i64) -> String {
    format!("{mesh_id}|{member_id}|{pubkey}|{timestamp}")
}

/// What the parent member key signs to vouch for a session key until `expires_at` (ms).
pub fn attestation_signed(
    parent_member_pubkey: &str,
    session_pubkey: &str,
    expires_at: i64,
) -> String {
    format!("claudemesh-session-attest|{parent_member_pubkey}|{session_pubkey}|{expires_at}")
}

/// What a `session_hello` signs with the session key.
pub fn session_hello_signed(
    mesh_id: &str,
    parent_member_pubkey: &str,
    session_pubkey: &str,
    timestamp: i64,
) -> String {
    format!(
        "claudemesh-session-hello|{mesh_id}|{parent_member_pubkey}|{session_pubkey}|{timestamp}"
    )
}

/// What the creator's key signs for `POST /cli/mesh/create`.
pub fn mesh_create_signed(name: &str, pubkey: &str, owner_pubkey: &str, timestamp: i64) -> String {
    format!("claudemesh-mesh-create|{name}|{pubkey}|{owner_pubkey}|{timestamp}")
}

/// What the owner key signs for `POST /cli/mesh/invite`. The token enters as the lowercase hex SHA-256 of its
/// text, computed here so both sides hash the same bytes.
pub fn invite_register_signed(mesh_id: &str, token: &str, max_uses: u32, timestamp: i64) -> String {
    let hash = crate::crypto::sha256_hex(token.as_bytes());
    format!("claudemesh-invite-register|{mesh_id}|{hash}|{max_uses}|{timestamp}")
}

// ---- the frame enum ----

// One list declares each frame once: the enum, `type_name`, `req_id` and the `From` impls are generated from it,
// so they cannot drift apart. A trailing `req` marks frames that carry `_reqId`.
macro_rules! frames {
    (@req $f:ident) => {{
        let _ = $f;
        None
    }};
    (@req $f:ident req) => {
        $f.req_id.as_deref()
    };
    // The original put some errors' `_reqId` in `id`, so an error answers to either.
    (@req $f:ident err) => {
        $f.req_id.as_deref().or($f.id.as_deref())
    };
    ($( $(#[$doc:meta])* $tag:literal => $variant:ident($ty:ident) $($req:ident)?, )*) => {
        /// One WebSocket message, tagged by its `type`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum Frame {
            $( $(#[$doc])* #[serde(rename = $tag)] $variant($ty), )*
            /// A `type` this build does not know; its fields are dropped.
            #[serde(other)]
            Unknown,
        }

        impl Frame {
            /// The wire `type`.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( Frame::$variant(_) => $tag, )*
                    Frame::Unknown => "unknown",
                }
            }

            /// The request id the frame carries (an error's `id` when it has no `_reqId`).
            pub fn req_id(&self) -> Option<&str> {
                match self {
                    $( Frame::$variant(f) => frames!(@req f $($req)?), )*
                    Frame::Unknown => None,
                }
            }
        }

        /// Every known `type`, so a test can check that it covers them all.
        #[cfg(test)]
        const TYPE_NAMES: &[&str] = &[$($tag),*];

        $( impl From<$ty> for Frame {
            fn from(f: $ty) -> Frame {
                Frame::$variant(f)
            }
        } )*
    };
}

frames! {
    /// Client → broker: authenticate with the member key.
    "hello" => Hello(Hello),
    /// Client → broker: authenticate with a session key that the member key attests.
    "session_hello" => SessionHello(SessionHello),
    /// Broker → client: authenticated.
    "hello_ack" => HelloAck(HelloAck),
    /// Broker → client: a refused request, or a refused hello before the close.
    "error" => Error(ErrorFrame) err,
    /// Client → broker: a message to a peer, member, group, everyone or a topic.
    "send" => Send(SendMessage) req,
    /// Broker → client: the answer to `send`, and the generic "done" of several requests.
    "ack" => Ack(Ack) req,
    /// Broker → client: a message or a system event.
    "push" => Push(Push),
    /// Client → broker: a pushed message is safely received; stop redelivering it.
    "client_ack" => ClientAck(ClientAck),
    /// Client → broker: where is a message I sent?
    "message_status" => MessageStatus(MessageStatus) req,
    /// Broker → client: the answer to `message_status`.
    "message_status_result" => MessageStatusResult(MessageStatusResult) req,
    /// Client → broker: who is connected?
    "list_peers" => ListPeers(ListPeers) req,
    /// Broker → client: the answer to `list_peers`.
    "peers_list" => PeersList(PeersList) req,
    /// Client → broker: idle, working or dnd.
    "set_status" => SetStatus(SetStatus) req,
    /// Client → broker: what this session is doing, in a line.
    "set_summary" => SetSummary(SetSummary) req,
    /// Client → broker: show or hide this presence.
    "set_visible" => SetVisible(SetVisible) req,
    /// Client → broker: merge into this presence's profile.
    "set_profile" => SetProfile(SetProfile) req,
    /// Client → broker: join a group.
    "join_group" => JoinGroup(JoinGroup) req,
    /// Client → broker: leave a group.
    "leave_group" => LeaveGroup(LeaveGroup) req,
    /// Client → broker: every member of the mesh, online or not (addition).
    "members" => Members(Members) req,
    /// Broker → client: the answer to `members` (addition).
    "members_list" => MembersList(MembersList) req,
    /// Client → broker: pending deliveries, for tools that pull (addition).
    "inbox_fetch" => InboxFetch(InboxFetch) req,
    /// Broker → client: the answer to `inbox_fetch` (addition).
    "inbox" => Inbox(Inbox) req,
    /// Client → broker: set a shared state key.
    "set_state" => SetState(SetState) req,
    /// Client → broker: delete a shared state key (addition).
    "del_state" => DelState(DelState) req,
    /// Client → broker: read a shared state key.
    "get_state" => GetState(GetState) req,
    /// Broker → client: the answer to `get_state`.
    "state_result" => StateResult(StateResult) req,
    /// Client → broker: every shared state key.
    "list_state" => ListState(ListState) req,
    /// Broker → client: the answer to `list_state`.
    "state_list" => StateList(StateList) req,
    /// Broker → client: another connection changed a state key.
    "state_change" => StateChange(StateChange),
    /// Client → broker: store a memory.
    "remember" => Remember(Remember) req,
    /// Broker → client: the answer to `remember`.
    "memory_stored" => MemoryStored(MemoryStored) req,
    /// Client → broker: search the memories.
    "recall" => Recall(Recall) req,
    /// Broker → client: the answer to `recall`.
    "memory_results" => MemoryResults(MemoryResults) req,
    /// Client → broker: forget a memory (answered with `ack`).
    "forget" => Forget(Forget) req,
    /// Client → broker: deliver a message later, or on a cron schedule.
    "schedule" => Schedule(Schedule) req,
    /// Broker → client: the answer to `schedule`.
    "scheduled_ack" => ScheduledAck(ScheduledAck) req,
    /// Client → broker: my pending scheduled messages.
    "list_scheduled" => ListScheduled(ListScheduled) req,
    /// Broker → client: the answer to `list_scheduled`.
    "scheduled_list" => ScheduledList(ScheduledList) req,
    /// Client → broker: cancel a scheduled message.
    "cancel_scheduled" => CancelScheduled(CancelScheduled) req,
    /// Broker → client: the answer to `cancel_scheduled`.
    "cancel_scheduled_ack" => CancelScheduledAck(CancelScheduledAck) req,
    /// Client → broker: the profile this connection's changes apply to (addition).
    "get_profile" => GetProfile(GetProfile) req,
    /// Broker → client: the answer to `get_profile` (addition).
    "profile_result" => ProfileResult(ProfileResult) req,
    /// Client → broker: create a topic (idempotent by name).
    "topic_create" => TopicCreate(TopicCreate) req,
    /// Broker → client: the answer to `topic_create`.
    "topic_created" => TopicCreated(TopicCreated) req,
    /// Client → broker: the mesh's topics.
    "topic_list" => TopicList(TopicList) req,
    /// Broker → client: the answer to `topic_list`.
    "topic_list_response" => TopicListResponse(TopicListResponse) req,
    /// Client → broker: join a topic.
    "topic_join" => TopicJoin(TopicJoin) req,
    /// Client → broker: leave a topic.
    "topic_leave" => TopicLeave(TopicLeave) req,
    /// Client → broker: a topic's members.
    "topic_members" => TopicMembers(TopicMembers) req,
    /// Broker → client: the answer to `topic_members`.
    "topic_members_response" => TopicMembersResponse(TopicMembersResponse) req,
    /// Client → broker: a page of a topic's messages, newest first.
    "topic_history" => TopicHistory(TopicHistory) req,
    /// Broker → client: the answer to `topic_history`.
    "topic_history_response" => TopicHistoryResponse(TopicHistoryResponse) req,
    /// Client → broker: everything in the topic up to now is read.
    "topic_mark_read" => TopicMarkRead(TopicMarkRead) req,
    /// Client → broker: my sealed copy of a topic's key (addition).
    "topic_key" => TopicKey(TopicKey) req,
    /// Broker → client: the answer to `topic_key` (addition).
    "topic_key_response" => TopicKeyResponse(TopicKeyResponse) req,
    /// Client → broker: the topic's members that have no sealed copy of its key yet (addition).
    "topic_pending_seals" => TopicPendingSeals(TopicPendingSeals) req,
    /// Broker → client: the answer to `topic_pending_seals` (addition).
    "topic_pending_seals_response" => TopicPendingSealsResponse(TopicPendingSealsResponse) req,
    /// Client → broker: a topic key sealed for a member that has none (answered with `ack`; addition).
    "topic_seal" => TopicSeal(TopicSeal) req,
    /// Client → broker: the mentions of me (addition).
    "notifications_list" => NotificationsList(NotificationsList) req,
    /// Broker → client: the answer to `notifications_list` (addition).
    "notifications_list_response" => NotificationsListResponse(NotificationsListResponse) req,
    /// Client → broker: mark mentions read (addition).
    "notifications_read" => NotificationsRead(NotificationsRead) req,
    /// Broker → client: the answer to `notifications_read` (addition).
    "notifications_read_response" => NotificationsReadResponse(NotificationsReadResponse) req,
    /// Client → broker: mint an API key for the REST surface.
    "apikey_create" => ApikeyCreate(ApikeyCreate) req,
    /// Broker → client: the answer to `apikey_create`, with the only copy of the secret.
    "apikey_created" => ApikeyCreated(ApikeyCreated) req,
    /// Client → broker: the mesh's API keys.
    "apikey_list" => ApikeyList(ApikeyList) req,
    /// Broker → client: the answer to `apikey_list`.
    "apikey_list_response" => ApikeyListResponse(ApikeyListResponse) req,
    /// Client → broker: revoke an API key by id or id prefix.
    "apikey_revoke" => ApikeyRevoke(ApikeyRevoke) req,
    /// Broker → client: the answer to `apikey_revoke`.
    "apikey_revoke_response" => ApikeyRevokeResponse(ApikeyRevokeResponse) req,
    /// Client → broker: revoke a member and close its connections (admins only).
    "ban" => Ban(Ban) req,
    /// Broker → client: the answer to `ban`.
    "ban_ack" => BanAck(BanAck) req,
    /// Client → broker: reinstate a revoked member (admins only).
    "unban" => Unban(Unban) req,
    /// Broker → client: the answer to `unban`.
    "unban_ack" => UnbanAck(UnbanAck) req,
    /// Client → broker: start an encrypted file upload (addition).
    "file_put" => FilePut(FilePut) req,
    /// Broker → client: the upload may start; chunks go to `fileId` (addition).
    "file_put_ready" => FilePutReady(FilePutReady) req,
    /// Either way: one encrypted chunk of a file (addition).
    "file_chunk" => FileChunk(FileChunk),
    /// Either way: the receiver has chunk `seq` (addition).
    "file_chunk_ack" => FileChunkAck(FileChunkAck),
    /// Client → broker: every chunk is sent; check and store the file (addition).
    "file_put_done" => FilePutDone(FilePutDone) req,
    /// Broker → client: the file is stored (addition).
    "file_stored" => FileStored(FileStored) req,
    /// Client → broker: download a file (addition).
    "file_get" => FileGet(FileGet) req,
    /// Broker → client: a file's metadata and the caller's sealed key; its chunks follow (addition).
    "file_meta" => FileMeta(FileMeta) req,
    /// Client → broker: the files the caller may read (addition).
    "file_list" => FileList(FileList) req,
    /// Broker → client: the answer to `file_list` (addition).
    "file_list_response" => FileListResponse(FileListResponse) req,
    /// Client → broker: delete a file (uploader or admin), answered with `ack` (addition).
    "file_rm" => FileRm(FileRm) req,
}

impl Frame {
    /// The frame as one line of JSON.
    pub fn to_json(&self) -> String {
        // Unreachable failure: serde_json only fails on non-string map keys or a failing Serialize impl, and
        // every frame is derived structs of strings, numbers, bools and `Value`s.
        serde_json::to_string(self).expect("frames always serialize")
    }
}

// ---- shared pieces ----

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

// ---- §3 authentication ----

/// `hello`: authenticate as a member (a control-plane presence).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// The mesh's id, not its slug.
    pub mesh_id: String,
    /// Must be the id of the member that owns `pubkey`.
    pub member_id: String,
    /// The member's ed25519 key, 64 lowercase hex.
    pub pubkey: String,
    /// Sent by original clients; ignored, since a session key is only accepted with proof (`session_hello`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_pubkey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `ai`, `human` or `connector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Groups to join; absent means the saved or default groups, which an empty list does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
    /// Ms since the epoch. It must be a JSON integer: a string or a fraction fails to parse the whole frame,
    /// which the broker answers with `timestamp_skew` or `malformed`, as the original does.
    pub timestamp: i64,
    /// Ed25519 over [`hello_signed`], 128 hex.
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    /// Feature strings, e.g. [`CAP_PULL`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

impl Hello {
    /// The string `signature` signs.
    pub fn signed(&self) -> String {
        hello_signed(&self.mesh_id, &self.member_id, &self.pubkey, self.timestamp)
    }
}

/// The member key's statement that a session key speaks for it until `expiresAt`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    pub session_pubkey: String,
    pub parent_member_pubkey: String,
    /// Ms since the epoch; in the future and at most 24 h away. A non-integer fails to parse the frame.
    pub expires_at: i64,
    /// Ed25519 by the parent member key over [`attestation_signed`].
    pub signature: String,
}

impl Attestation {
    /// The string `signature` signs.
    pub fn signed(&self) -> String {
        attestation_signed(
            &self.parent_member_pubkey,
            &self.session_pubkey,
            self.expires_at,
        )
    }
}

/// `session_hello`: authenticate with a session key (a `session` presence, listed as a peer).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionHello {
    pub mesh_id: String,
    /// When present and non-empty, must be the id of the member owning `parentMemberPubkey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_member_id: Option<String>,
    pub parent_member_pubkey: String,
    pub session_pubkey: String,
    pub parent_attestation: Attestation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Groups to join; absent means the member's default groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
    /// Accepted and ignored, as by the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Ms since the epoch; a JSON integer or the frame does not parse (see [`Hello::timestamp`]).
    pub timestamp: i64,
    /// Ed25519 by the session key over [`session_hello_signed`].
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

impl SessionHello {
    /// The string `signature` signs.
    pub fn signed(&self) -> String {
        session_hello_signed(
            &self.mesh_id,
            &self.parent_member_pubkey,
            &self.session_pubkey,
            self.timestamp,
        )
    }
}

/// `hello_ack`. cm-broker adds the member and mesh fields and `serverTime`; an original broker sends only
/// `presenceId`, `memberDisplayName` and the profile and policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HelloAck {
    pub presence_id: String,
    /// The effective display name of this presence.
    pub member_display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    /// `admin` or `member`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_profile: Option<MemberProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_policy: Option<MeshPolicy>,
    /// The broker's clock, ms since the epoch, so a client can tell its own skew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<i64>,
    /// The presence state of an earlier connection was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_summary: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_groups: Option<Vec<Group>>,
}

/// The member's stored profile, in `hello_ack`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MemberProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_tag: Option<String>,
    pub groups: Vec<Group>,
    /// `push`, `inbox` or `off`.
    pub message_mode: String,
}

/// The mesh's policy, in `hello_ack`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshPolicy {
    pub self_editable: SelfEditable,
}

/// Which profile fields members may edit on themselves.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SelfEditable {
    pub display_name: bool,
    pub role_tag: bool,
    pub groups: bool,
    pub message_mode: bool,
}

// ---- §7 errors ----

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
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
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
}

// ---- §4 messaging ----

/// `send`: a message. For a DM `nonce`/`ciphertext` are the crypto_box; for a broadcast or group they are
/// empty and `copies` holds one box per recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// Echoed in `ack.id`.
    #[serde(default)]
    pub id: String,
    /// A 64-hex member or session key, `*`, `@all`, `@group`, `#topicId` or `#name`.
    pub target_spec: String,
    pub priority: Priority,
    /// Base64, 24 bytes; empty when `copies` carries the boxes.
    #[serde(default)]
    pub nonce: String,
    /// Base64; empty when `copies` carries the boxes.
    #[serde(default)]
    pub ciphertext: String,
    /// Idempotency key: a repeat from the same member is stored once.
    #[serde(
        default,
        rename = "client_message_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_message_id: Option<String>,
    #[serde(
        default,
        rename = "request_fingerprint",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_fingerprint: Option<String>,
    /// Per-recipient boxes (addition). Absent is not the same as empty: without `copies` a broadcast is
    /// delivered as it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<Vec<SealedCopy>>,
    /// `reminder`, or another tag the receiver shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    /// Mentioned display names (topic sends); absent lets the broker look for `@name` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentions: Option<Vec<String>>,
    /// Topic body format: 1 base64 plaintext, 2 secretbox under the topic key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_version: Option<u32>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One recipient's crypto_box of a broadcast or group message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedCopy {
    /// A member key (every connection of that member) or a session key.
    pub to: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// `ack`: the answer to `send` (`queued:false` with `error` is a refusal), and the generic "done" of
/// `set_visible`, `set_profile`, `forget` and others.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Ack {
    /// The `send`'s `id`, or the request's `_reqId` for a generic ack.
    pub id: String,
    /// Empty on refusal.
    pub message_id: String,
    /// True when the message is stored for an offline recipient, false when it was pushed now.
    pub queued: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_online: Option<bool>,
    /// A repeated `client_message_id`: `messageId` is the first send's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// Starts with `rate_limit:`, `payload too large:`, `unknown target:` or `not_member:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// On a `rate_limit:` refusal, how long until the same send would be taken (cm-broker only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

impl Ack {
    /// The generic "done": `{id: _reqId or "", messageId: "", queued: false, _reqId}`.
    pub fn done(req_id: Option<&str>) -> Ack {
        Ack {
            id: req_id.unwrap_or_default().to_string(),
            req_id: req_id.map(str::to_string),
            ..Ack::default()
        }
    }

    /// A refused `send`.
    pub fn refused(id: &str, error: impl Into<String>) -> Ack {
        Ack {
            id: id.to_string(),
            error: Some(error.into()),
            ..Ack::default()
        }
    }
}

/// `push`: a message for this connection, or a system event (`subtype:"system"`, `senderPubkey:"system"`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Push {
    /// Receivers drop duplicates by it.
    pub message_id: String,
    pub mesh_id: String,
    /// The key the sender's socket authenticated with (the box's sender key), or `system`.
    pub sender_pubkey: String,
    /// The sender's member key; cm-broker always sends it on messages, the original only on broadcasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_member_pubkey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_member_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// The `send`'s target, so a receiver tells a DM from a broadcast, group or topic message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_spec: Option<String>,
    pub priority: Priority,
    pub nonce: String,
    pub ciphertext: String,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
    #[serde(
        default,
        rename = "client_message_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_message_id: Option<String>,
    #[serde(
        default,
        rename = "request_fingerprint",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_fingerprint: Option<String>,
    /// `system`, `reminder`, `webhook`, or the sender's own tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// The topic's name, for topic messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_version: Option<u32>,
    /// A system event's name: `peer_joined`, `peer_left`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_data: Option<Value>,
}

impl Push {
    /// A system event as the original sends it: no sender, nothing to decrypt, priority `low`.
    pub fn system(
        mesh_id: &str,
        message_id: &str,
        created_at: &str,
        event: &str,
        event_data: Value,
    ) -> Push {
        Push {
            message_id: message_id.to_string(),
            mesh_id: mesh_id.to_string(),
            sender_pubkey: "system".to_string(),
            priority: Priority::Low,
            created_at: created_at.to_string(),
            subtype: Some("system".to_string()),
            event: Some(event.to_string()),
            event_data: Some(event_data),
            ..Push::default()
        }
    }

    /// A broker event rather than a message: there is nothing to decrypt.
    pub fn is_system(&self) -> bool {
        self.subtype.as_deref() == Some("system") || self.sender_pubkey == "system"
    }
}

/// `client_ack`: stop redelivering a push. Either id will do; both absent is a no-op.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientAck {
    /// The push's `client_message_id` (camelCase here, unlike everywhere else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// The push's `messageId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_message_id: Option<String>,
}

/// `message_status`: an id, or a prefix of 8 or more characters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatus {
    pub message_id: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `message_status_result`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MessageStatusResult {
    pub message_id: String,
    pub target_spec: String,
    /// Every recipient has acknowledged it.
    pub delivered: bool,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    pub recipients: Vec<Recipient>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One recipient of a message, in `message_status_result`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Recipient {
    pub name: String,
    pub pubkey: String,
    /// `delivered` or `pending` (an original broker also says `held` or `disconnected`).
    pub status: String,
}

// ---- §5 presence ----

/// `list_peers`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPeers {
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `peers_list`: connected presences, oldest first, the caller's own included.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PeersList {
    pub peers: Vec<Peer>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One presence in `peers_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Peer {
    /// The routing key: the session key, else the member key.
    pub pubkey: String,
    pub member_pubkey: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    pub display_name: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub groups: Vec<Group>,
    pub session_id: String,
    /// RFC 3339.
    pub connected_at: String,
    pub cwd: String,
    /// `control-plane` (a `hello`), `session` (a `session_hello`) or `service`.
    pub peer_role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// False while the presence is in its reconnect grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// The member's role tag (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_tag: Option<String>,
}

/// A presence's public profile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Profile {
    /// An emoji or a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bio: Option<String>,
    /// What this peer can help with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

/// `set_status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetStatus {
    pub status: Status,
    /// `hook` when a Claude Code hook sets it (addition): a hook never ends `dnd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `set_summary`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetSummary {
    pub summary: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `set_visible`: hidden presences get no broadcasts and are left out of others' `peers_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetVisible {
    pub visible: bool,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `set_profile`: the fields present are merged into the profile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bio: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// The display name peers see (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The member's role tag; empty clears it (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_tag: Option<String>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `join_group`: joins, or changes the role in, a group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `leave_group`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveGroup {
    pub name: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `members` (addition).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Members {
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `members_list` (addition).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MembersList {
    pub members: Vec<Member>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One member of the mesh, in `members_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Member {
    pub member_id: String,
    pub pubkey: String,
    pub display_name: String,
    /// `admin` or `member`.
    pub role: String,
    pub groups: Vec<Group>,
    /// RFC 3339.
    pub joined_at: String,
    /// At least one live connection.
    pub online: bool,
}

/// `inbox_fetch` (addition): pending deliveries, oldest first. Nothing is delivered until `client_ack`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxFetch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Also this session's deliveries (it must belong to the caller's member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_pubkey: Option<String>,
    /// With nothing pending, answer when something arrives or after this many ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `inbox` (addition): the pending deliveries, each a push (without its `type`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Inbox {
    pub messages: Vec<Push>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

// ---- §6.1 shared state ----

/// `set_state`: any JSON value under a key. Other connections get `state_change`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetState {
    pub key: String,
    pub value: Value,
    /// Compare-and-set (addition): applies only if the key's current `version` is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `del_state` (addition): deletes a key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelState {
    pub key: String,
    /// Compare-and-set: deletes only if the key's current `version` is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `get_state`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetState {
    pub key: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

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
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `list_state`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListState {
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `state_list`: every key, in key order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StateList {
    pub entries: Vec<StateEntry>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
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

// ---- §6.2 memory ----

/// `remember`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remember {
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `memory_stored`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MemoryStored {
    pub id: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `recall`: full-text search.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recall {
    pub query: String,
    /// At most this many results (addition; the original returns 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `memory_results`: best match first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MemoryResults {
    pub memories: Vec<Memory>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
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

/// `forget`, answered with an `ack` whose `id` and `messageId` are the memory's id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Forget {
    pub memory_id: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

// ---- §6.3 scheduled messages ----

/// `schedule`: deliver a message to `to` at `deliverAt`, or at every `cron` match. cm-broker takes the body
/// sealed like a `send` (`nonce`/`ciphertext` for a key, `copies` for `*`/`@group`) and never sees its text; the
/// original's plaintext `message` is still accepted, and stored as given.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// A broker target: a key, `*`, `@group` or `#topicId`.
    pub to: String,
    /// The original's plaintext body.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Ms since the epoch; ignored with `cron`.
    #[serde(default)]
    pub deliver_at: i64,
    /// `reminder`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// Five fields: minute hour day-of-month month day-of-week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The cron's time zone as a fixed offset, `+02:00` or `-0530`; UTC when absent (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurring: Option<bool>,
    /// The body sealed to `to`, as in `send` (addition).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ciphertext: String,
    /// Per-recipient boxes for `*`/`@group`, as in `send` (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<Vec<SealedCopy>>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `scheduled_ack`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ScheduledAck {
    pub scheduled_id: String,
    /// The first fire time, ms since the epoch.
    pub deliver_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `list_scheduled`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListScheduled {
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `scheduled_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ScheduledList {
    pub messages: Vec<ScheduledEntry>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One pending scheduled message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ScheduledEntry {
    pub id: String,
    pub to: String,
    /// The original's plaintext body; empty for a sealed one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The next fire time, ms since the epoch.
    pub deliver_at: i64,
    /// Ms since the epoch.
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// How often a cron entry has fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_count: Option<u32>,
    /// The cron's fixed offset (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// The key the body is sealed with: the scheduling session's, else the member's (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_pubkey: Option<String>,
    /// The sealed body, so its sender can read it back (addition).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ciphertext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<Vec<SealedCopy>>,
}

/// `cancel_scheduled`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelScheduled {
    pub scheduled_id: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `cancel_scheduled_ack`: `ok` is false when there was nothing of the caller's to cancel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CancelScheduledAck {
    pub scheduled_id: String,
    pub ok: bool,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

// ---- profile (addition) ----

/// `get_profile`: on a member connection the member's stored profile; on a session's connection that session's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetProfile {
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `profile_result`: what peers see of the member or session.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProfileResult {
    /// `member` or `session`: what the profile requests on this connection change.
    pub scope: String,
    /// The session key, for scope `session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_pubkey: Option<String>,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub status: Status,
    pub visible: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_tag: Option<String>,
    pub groups: Vec<Group>,
    /// For scope `session`: whether the session is connected now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

// ---- §6.4 topics ----
// A `topic` in a request is the topic's id or its name.

/// `topic_create`: the creator joins as `lead`. With `keys` (addition) the topic is encrypted: the client made
/// the topic key and sealed a copy per member; without, its bodies are base64 plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicCreate {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `public`, `private` or `dm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<SealedTopicKey>>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `topic_created`: `created` is false when the name existed already.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicCreated {
    pub topic: TopicRef,
    pub created: bool,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// A topic's identity, in `topic_created`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicRef {
    pub id: String,
    pub name: String,
    pub visibility: String,
    /// Its bodies are sealed under a topic key (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
}

/// A topic key sealed for one member: base64 of the sealer's x25519 key ‖ crypto_box(key), and its nonce.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SealedTopicKey {
    pub member_id: String,
    pub encrypted_key: String,
    pub nonce: String,
}

/// `topic_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicList {
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `topic_list_response`: the mesh's live topics by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicListResponse {
    pub topics: Vec<TopicInfo>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One topic in `topic_list_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicInfo {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub visibility: String,
    pub member_count: u32,
    /// RFC 3339.
    pub created_at: String,
    /// Its bodies are sealed under a topic key (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// The caller is a member (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<bool>,
    /// Messages from others since the caller last marked it read (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u32>,
}

/// `topic_join`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicJoin {
    pub topic: String,
    /// `lead`, `member` or `observer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `topic_leave`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicLeave {
    pub topic: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `topic_members`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicMembers {
    pub topic: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `topic_members_response`: `topic` as the request gave it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicMembersResponse {
    pub topic: String,
    pub members: Vec<TopicMember>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One member of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicMember {
    pub member_id: String,
    /// The member key (topic membership is per member, not per session).
    pub pubkey: String,
    pub display_name: String,
    /// `lead`, `member` or `observer`.
    pub role: String,
    /// RFC 3339.
    pub joined_at: String,
    /// RFC 3339; absent when never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_at: Option<String>,
    /// At least one live connection (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// A sealed copy of the topic key is stored for it (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_key: Option<bool>,
}

/// `topic_history`: up to `limit` (1-200, default 50) messages older than `beforeId`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicHistory {
    pub topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_id: Option<String>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `topic_history_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicHistoryResponse {
    pub topic: String,
    /// Additions: the topic's id and whether its bodies are sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    pub messages: Vec<TopicMessage>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One message of a topic's history.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicMessage {
    pub id: String,
    /// The sender's session key, else its member key.
    pub sender_pubkey: String,
    pub sender_member_id: String,
    /// The sender's member key (addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_member_pubkey: Option<String>,
    pub sender_name: String,
    pub nonce: String,
    pub ciphertext: String,
    /// 1 base64 plaintext, 2 secretbox under the topic key; absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// `topic_mark_read`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicMarkRead {
    pub topic: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `topic_key`: the caller's sealed copy of the topic key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicKey {
    pub topic: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `topic_key_response`: open `encryptedKey` with the member key (its first 32 bytes are the sealer's x25519 key).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicKeyResponse {
    pub topic: String,
    pub topic_id: String,
    pub encrypted_key: String,
    pub nonce: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `topic_pending_seals`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicPendingSeals {
    pub topic: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `topic_pending_seals_response`: members waiting for a key holder to seal the key for them (at most 50).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicPendingSealsResponse {
    pub topic: String,
    pub topic_id: String,
    pub pending: Vec<PendingSeal>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// A member without a sealed topic key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PendingSeal {
    pub member_id: String,
    /// The member key to seal to.
    pub pubkey: String,
    pub display_name: String,
}

/// `topic_seal`: the topic key sealed for `memberId` by a member that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicSeal {
    pub topic: String,
    pub member_id: String,
    pub encrypted_key: String,
    pub nonce: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

// ---- §6.5 notifications ----

/// `notifications_list`: the caller's mentions, newest first; unread ones unless `all`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
    /// 1-200, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `notifications_list_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NotificationsListResponse {
    pub notifications: Vec<Notification>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// A mention: the topic message it is in, still sealed as it was posted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Notification {
    pub id: String,
    pub message_id: String,
    pub topic_id: String,
    pub topic_name: String,
    pub sender_name: String,
    pub sender_pubkey: String,
    pub nonce: String,
    pub ciphertext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_version: Option<u32>,
    /// `mention`.
    pub kind: String,
    /// RFC 3339.
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

/// `notifications_read`: the ids given, or every one with `all`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsRead {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `notifications_read_response`: how many were unread and are read now.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NotificationsReadResponse {
    pub marked: u32,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

// ---- §6.6 API keys ----

/// `apikey_create`. A missing label or capability is the broker's `invalid_args`, not a parse error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApikeyCreate {
    #[serde(default)]
    pub label: String,
    /// `send`, `read`, `state_write`, `admin`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Topic names without `#`; absent means every topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_scopes: Option<Vec<String>>,
    /// RFC 3339, as the original has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `apikey_created`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApikeyCreated {
    pub id: String,
    /// `cm_` and 43 base64url characters.
    pub secret: String,
    pub label: String,
    /// The secret's first 11 characters, to recognise it by.
    pub prefix: String,
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_scopes: Option<Vec<String>>,
    /// RFC 3339.
    pub created_at: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `apikey_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApikeyList {
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `apikey_list_response`: newest first, revoked keys included.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApikeyListResponse {
    pub keys: Vec<ApiKey>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One API key in `apikey_list_response` (times RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub label: String,
    pub prefix: String,
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_scopes: Option<Vec<String>>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `apikey_revoke`: an id or an id prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApikeyRevoke {
    pub id: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `apikey_revoke_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApikeyRevokeResponse {
    /// `revoked`, `not_found` or `not_unique`.
    pub status: String,
    /// The full id of the revoked key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How many keys a `not_unique` prefix matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<u32>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

// ---- §6.11 moderation ----

/// `ban`: revoke a member, found by display name, key or key prefix; its connections close with 4002.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ban {
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `ban_ack`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BanAck {
    /// The banned member's display name.
    pub banned: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `unban`: reinstate a revoked member, found by display name or full key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unban {
    pub target: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `unban_ack`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UnbanAck {
    /// The reinstated member's display name.
    pub unbanned: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

// ---- files (docs/protocol.md §6) ----

/// `file_put`: an upload of `size` plaintext bytes in chunks of `chunkSize`, each a secretbox under a key that
/// only the recipients can open.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilePut {
    /// The file's name, as metadata only (a downloader sanitises it).
    pub name: String,
    /// Plaintext bytes; the broker's `max_file_bytes` applies to it.
    pub size: u64,
    /// Plaintext bytes per chunk; each ciphertext chunk is 16 bytes longer (the last may be shorter).
    pub chunk_size: u32,
    /// Who may download it, each with the file key sealed to them.
    pub recipients: Vec<FileRecipient>,
    /// What the uploader addressed (`bob`'s key, `*`, `@eng`), for listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_spec: Option<String>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One recipient of a file: a member or session key, and the file key sealed to it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRecipient {
    pub pubkey: String,
    /// Base64 `crypto_box_seal` of the 32-byte key and the 16-byte nonce prefix.
    pub sealed_key: String,
}

/// `file_put_ready`: the broker made room for the upload.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FilePutReady {
    pub file_id: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `file_chunk`: ciphertext chunk `seq` (from 0) of a file, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChunk {
    pub file_id: String,
    pub seq: u64,
    /// Base64 (standard, padded), at most 48 KiB decoded.
    pub data: String,
}

/// `file_chunk_ack`: chunk `seq` arrived; the sender may go on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChunkAck {
    pub file_id: String,
    pub seq: u64,
}

/// `file_put_done`: the last chunk is sent; `sha256` is the hex SHA-256 of every ciphertext chunk in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilePutDone {
    pub file_id: String,
    pub sha256: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `file_stored`: the file is durable and listed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FileStored {
    pub file_id: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `file_get`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileGet {
    pub file_id: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `file_meta`: what a download needs before its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FileMeta {
    pub file_id: String,
    pub name: String,
    /// Plaintext bytes.
    pub size: u64,
    /// Hex SHA-256 of the ciphertext chunks in order.
    pub sha256: String,
    /// The file key sealed to the caller (its session key's copy, else its member key's).
    pub sealed_key: String,
    pub chunk_size: u32,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `file_list`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileList {
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// `file_list_response`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FileListResponse {
    pub files: Vec<FileInfo>,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

/// One file in `file_list_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FileInfo {
    pub id: String,
    pub name: String,
    pub size: u64,
    /// The uploader's display name.
    pub uploaded_by: String,
    /// The key the uploader's socket spoke as.
    pub uploader_pubkey: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_spec: Option<String>,
    /// How many keys the file is sealed to (the uploader's own included).
    pub recipients: u32,
    /// RFC 3339.
    pub created_at: String,
}

/// `file_rm`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRm {
    pub file_id: String,
    #[serde(default, rename = "_reqId", skip_serializing_if = "Option::is_none")]
    pub req_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALICE: &str = "774d112253f997813c824bb345c796940a0d878c09430870e907b50c472fbf6d";
    const SESSION: &str = "ae850d3f8f94fc06638828add922c27ea3273c9fb526bc13b2fab08ba4d25c37";

    /// One frame of every type, shaped as the reference's examples and docs/protocol.md's additions. Only known
    /// fields, so a round trip must keep every non-null one.
    fn samples() -> Vec<Value> {
        vec![
            json!({"type":"hello","meshId":"m1","memberId":"u1","pubkey":ALICE,"sessionPubkey":SESSION,
                "displayName":"alice","sessionId":"s1","pid":4242,"cwd":"/src","hostname":"box","peerType":"ai",
                "channel":"claude-code","model":"opus-4","groups":[{"name":"eng","role":"lead"},{"name":"ops"}],
                "timestamp":1764340800123i64,"signature":"ab".repeat(64),"protocolVersion":1,
                "capabilities":["pull"]}),
            json!({"type":"session_hello","meshId":"m1","parentMemberId":"u1","parentMemberPubkey":ALICE,
                "sessionPubkey":SESSION,"parentAttestation":{"sessionPubkey":SESSION,"parentMemberPubkey":ALICE,
                "expiresAt":1764384000123i64,"signature":"cd".repeat(64)},"displayName":"alice/1","sessionId":"s2",
                "pid":7,"cwd":"/src","groups":[],"role":"session","timestamp":1764340800123i64,
                "signature":"ef".repeat(64),"capabilities":["pull"]}),
            json!({"type":"hello_ack","presenceId":"p1","memberId":"u1","memberDisplayName":"alice",
                "memberRole":"admin","meshId":"m1","meshSlug":"dev","meshName":"Dev",
                "memberProfile":{"roleTag":null,"groups":[{"name":"eng"}],"messageMode":"push"},
                "meshPolicy":{"selfEditable":{"displayName":true,"roleTag":true,"groups":false,"messageMode":true}},
                "serverTime":1764340800500i64,"restored":true,"lastSummary":"fixing",
                "lastSeenAt":"2026-05-04T10:00:00.123Z","restoredGroups":[{"name":"eng"}]}),
            json!({"type":"error","code":"topic_not_found","message":"no topic dev","id":"r9","_reqId":"r9"}),
            json!({"type":"send","id":"c1","targetSpec":"*","priority":"next","nonce":"","ciphertext":"",
                "client_message_id":"c1","request_fingerprint":"00".repeat(32),
                "copies":[{"to":ALICE,"nonce":"bm9uY2U=","ciphertext":"Y3Q="}],"subtype":"reminder",
                "replyToId":"q1","mentions":["bob"],"bodyVersion":2,"_reqId":"r1"}),
            json!({"type":"ack","id":"c1","messageId":"q".repeat(32),"queued":false,"recipientOnline":true,
                "duplicate":true,"_reqId":"r1"}),
            json!({"type":"ack","id":"c2","messageId":"","queued":false,"error":"unknown target: bob"}),
            json!({"type":"push","messageId":"q1","meshId":"m1","senderPubkey":SESSION,
                "senderMemberPubkey":ALICE,"senderMemberId":"u1","senderName":"alice","targetSpec":"@eng",
                "priority":"now","nonce":"bm9uY2U=","ciphertext":"Y3Q=","createdAt":"2026-05-04T10:00:00.123Z",
                "client_message_id":"c1","request_fingerprint":"00".repeat(32),"subtype":"reminder",
                "topic":"dev","topicId":"t1","replyToId":"q0","bodyVersion":2}),
            json!({"type":"push","subtype":"system","event":"peer_joined",
                "eventData":{"name":"bob","pubkey":SESSION,"groups":[]},"messageId":"e1","meshId":"m1",
                "senderPubkey":"system","priority":"low","nonce":"","ciphertext":"",
                "createdAt":"2026-05-04T10:00:00.123Z"}),
            json!({"type":"client_ack","clientMessageId":"c1","brokerMessageId":"q1"}),
            json!({"type":"message_status","messageId":"q1abcdef","_reqId":"r2"}),
            json!({"type":"message_status_result","messageId":"q1abcdef","targetSpec":ALICE,"delivered":false,
                "deliveredAt":null,"recipients":[{"name":"alice","pubkey":ALICE,"status":"pending"}],
                "_reqId":"r2"}),
            json!({"type":"list_peers","_reqId":"r3"}),
            json!({"type":"peers_list","_reqId":"r3","peers":[{"pubkey":SESSION,"memberPubkey":ALICE,
                "memberId":"u1","displayName":"alice","status":"working","summary":null,
                "groups":[{"name":"eng","role":"lead"}],"sessionId":"s2","connectedAt":"2026-05-04T10:00:00.123Z",
                "cwd":"/src","peerRole":"session","hostname":"box","peerType":"ai","channel":"claudemesh-session",
                "model":"opus-4","visible":true,"profile":{"avatar":"🦀","title":"dev","bio":"hi",
                "capabilities":["rust"]},"online":true}]}),
            json!({"type":"set_status","status":"dnd","_reqId":"r4"}),
            json!({"type":"set_summary","summary":"reviewing","_reqId":"r4"}),
            json!({"type":"set_visible","visible":false,"_reqId":"r5"}),
            json!({"type":"set_profile","avatar":"🦀","title":"dev","bio":"hi","capabilities":[],"_reqId":"r6"}),
            json!({"type":"join_group","name":"eng/backend","role":"lead","_reqId":"r7"}),
            json!({"type":"leave_group","name":"eng/backend","_reqId":"r7"}),
            json!({"type":"members","_reqId":"r8"}),
            json!({"type":"members_list","members":[{"memberId":"u1","pubkey":ALICE,"displayName":"alice",
                "role":"admin","groups":[{"name":"eng"}],"joinedAt":"2026-05-04T10:00:00.123Z","online":true}],
                "_reqId":"r8"}),
            json!({"type":"inbox_fetch","limit":50,"sessionPubkey":SESSION,"waitMs":30000,"_reqId":"r9"}),
            json!({"type":"inbox","messages":[{"messageId":"q1","meshId":"m1","senderPubkey":ALICE,
                "priority":"next","nonce":"bm9uY2U=","ciphertext":"Y3Q=","createdAt":"2026-05-04T10:00:00.123Z"}],
                "_reqId":"r9"}),
            json!({"type":"set_state","key":"deploy","value":{"frozen":true,"by":["a",1,null]},
                "expectedVersion":3,"_reqId":"s1"}),
            json!({"type":"del_state","key":"deploy","expectedVersion":4,"_reqId":"s2"}),
            json!({"type":"get_state","key":"deploy","_reqId":"s3"}),
            json!({"type":"state_result","key":"deploy","value":{"frozen":true},"updatedBy":"alice",
                "updatedAt":"2026-05-04T10:00:00.123Z","version":4,"_reqId":"s3"}),
            json!({"type":"list_state","_reqId":"s4"}),
            json!({"type":"state_list","entries":[{"key":"a","value":1,"updatedBy":"alice",
                "updatedAt":"2026-05-04T10:00:00.123Z","version":1}],"_reqId":"s4"}),
            json!({"type":"state_change","key":"a","value":"x","updatedBy":"bob","version":2}),
            json!({"type":"remember","content":"the deploy key rotates monthly","tags":["ops"],"_reqId":"m1"}),
            json!({"type":"memory_stored","id":"mem1","_reqId":"m1"}),
            json!({"type":"recall","query":"deploy","limit":5,"_reqId":"m2"}),
            json!({"type":"memory_results","memories":[{"id":"mem1","content":"the deploy key rotates monthly",
                "tags":["ops"],"rememberedBy":"alice","rememberedAt":"2026-05-04T10:00:00.123Z","score":1.5,
                "snippet":"the [deploy] key"}],"_reqId":"m2"}),
            json!({"type":"forget","memoryId":"mem1","_reqId":"m3"}),
            json!({"type":"schedule","to":SESSION,"message":"stand-up","deliverAt":1764340860000i64,
                "subtype":"reminder","cron":"0 9 * * 1-5","recurring":true,"_reqId":"c1"}),
            json!({"type":"scheduled_ack","scheduledId":"sc1","deliverAt":1764340860000i64,"cron":"0 9 * * 1-5",
                "_reqId":"c1"}),
            json!({"type":"list_scheduled","_reqId":"c2"}),
            json!({"type":"scheduled_list","messages":[{"id":"sc1","to":SESSION,"message":"stand-up",
                "deliverAt":1764340860000i64,"createdAt":1764340800000i64,"cron":"0 9 * * 1-5","firedCount":3}],
                "_reqId":"c2"}),
            json!({"type":"cancel_scheduled","scheduledId":"sc1","_reqId":"c3"}),
            json!({"type":"cancel_scheduled_ack","scheduledId":"sc1","ok":true,"_reqId":"c3"}),
            json!({"type":"get_profile","_reqId":"g1"}),
            json!({"type":"profile_result","scope":"session","sessionPubkey":SESSION,"displayName":"alice/1",
                "summary":"fixing CI","status":"working","visible":true,"roleTag":"reviewer",
                "groups":[{"name":"eng","role":"lead"}],"online":true,"_reqId":"g1"}),
            json!({"type":"schedule","to":"*","deliverAt":1764340860000i64,"subtype":"reminder","tz":"+02:00",
                "copies":[{"to":ALICE,"nonce":"bm9uY2U=","ciphertext":"Y3Q="}],"_reqId":"c4"}),
            json!({"type":"topic_create","name":"dev","description":"the dev room","visibility":"public",
                "keys":[{"memberId":"u1","encryptedKey":"a2V5","nonce":"bm9uY2U="}],"_reqId":"t1"}),
            json!({"type":"topic_created","topic":{"id":"t1","name":"dev","visibility":"public","encrypted":true},
                "created":true,"_reqId":"t1"}),
            json!({"type":"topic_list","_reqId":"t2"}),
            json!({"type":"topic_list_response","topics":[{"id":"t1","name":"dev","description":null,
                "visibility":"public","memberCount":2,"createdAt":"2026-05-04T10:00:00.123Z"}],"_reqId":"t2"}),
            json!({"type":"topic_join","topic":"dev","role":"observer","_reqId":"t3"}),
            json!({"type":"topic_leave","topic":"dev","_reqId":"t4"}),
            json!({"type":"topic_members","topic":"dev","_reqId":"t5"}),
            json!({"type":"topic_members_response","topic":"dev","members":[{"memberId":"u1","pubkey":ALICE,
                "displayName":"alice","role":"lead","joinedAt":"2026-05-04T10:00:00.123Z","lastReadAt":null}],
                "_reqId":"t5"}),
            json!({"type":"topic_history","topic":"dev","limit":20,"beforeId":"tm9","_reqId":"t6"}),
            json!({"type":"topic_history_response","topic":"dev","messages":[{"id":"tm1","senderPubkey":SESSION,
                "senderMemberId":"u1","senderName":"alice","nonce":"bm9uY2U=","ciphertext":"Y3Q=","bodyVersion":2,
                "replyToId":"tm0","createdAt":"2026-05-04T10:00:00.123Z"}],"_reqId":"t6"}),
            json!({"type":"topic_mark_read","topic":"dev","_reqId":"t7"}),
            json!({"type":"topic_key","topic":"dev","_reqId":"t8"}),
            json!({"type":"topic_key_response","topic":"dev","topicId":"t1","encryptedKey":"a2V5","nonce":"bm9uY2U=",
                "_reqId":"t8"}),
            json!({"type":"topic_pending_seals","topic":"dev","_reqId":"t9"}),
            json!({"type":"topic_pending_seals_response","topic":"dev","topicId":"t1","pending":[{"memberId":"u2",
                "pubkey":ALICE,"displayName":"carol"}],"_reqId":"t9"}),
            json!({"type":"topic_seal","topic":"dev","memberId":"u2","encryptedKey":"a2V5","nonce":"bm9uY2U=",
                "_reqId":"t10"}),
            json!({"type":"notifications_list","all":true,"limit":10,"_reqId":"n1"}),
            json!({"type":"notifications_list_response","notifications":[{"id":"n1","messageId":"tm1",
                "topicId":"t1","topicName":"dev","senderName":"alice","senderPubkey":ALICE,"nonce":"bm9uY2U=",
                "ciphertext":"Y3Q=","bodyVersion":2,"kind":"mention","createdAt":"2026-05-04T10:00:00.123Z",
                "readAt":null}],"_reqId":"n1"}),
            json!({"type":"notifications_read","ids":["n1"],"all":false,"_reqId":"n2"}),
            json!({"type":"notifications_read_response","marked":1,"_reqId":"n2"}),
            json!({"type":"apikey_create","label":"cli-post-42","capabilities":["send","read"],
                "topicScopes":["dev"],"expiresAt":"2026-05-04T10:05:00.000Z","_reqId":"k1"}),
            json!({"type":"apikey_created","id":"k1","secret":"cm_abc","label":"cli-post-42","prefix":"cm_abcdefgh",
                "capabilities":["send"],"topicScopes":null,"createdAt":"2026-05-04T10:00:00.123Z","_reqId":"k1"}),
            json!({"type":"apikey_list","_reqId":"k2"}),
            json!({"type":"apikey_list_response","keys":[{"id":"k1","label":"cli","prefix":"cm_abcdefgh",
                "capabilities":["admin"],"topicScopes":["dev"],"createdAt":"2026-05-04T10:00:00.123Z",
                "lastUsedAt":null,"revokedAt":"2026-05-04T11:00:00.000Z","expiresAt":null}],"_reqId":"k2"}),
            json!({"type":"apikey_revoke","id":"k1","_reqId":"k3"}),
            json!({"type":"apikey_revoke_response","status":"not_unique","matches":2,"_reqId":"k3"}),
            json!({"type":"ban","target":"mallory","reason":"spam","_reqId":"b1"}),
            json!({"type":"ban_ack","banned":"mallory","_reqId":"b1"}),
            json!({"type":"unban","target":"mallory","_reqId":"b2"}),
            json!({"type":"unban_ack","unbanned":"mallory","_reqId":"b2"}),
            json!({"type":"file_put","name":"report.pdf","size":2100000,"chunkSize":48128,
                "recipients":[{"pubkey":ALICE,"sealedKey":"c2VhbGVk"}],"targetSpec":ALICE,"_reqId":"f1"}),
            json!({"type":"file_put_ready","fileId":"F1","_reqId":"f1"}),
            json!({"type":"file_chunk","fileId":"F1","seq":0,"data":"AAEC"}),
            json!({"type":"file_chunk_ack","fileId":"F1","seq":0}),
            json!({"type":"file_put_done","fileId":"F1","sha256":"ab".repeat(32),"_reqId":"f2"}),
            json!({"type":"file_stored","fileId":"F1","_reqId":"f2"}),
            json!({"type":"file_get","fileId":"F1","_reqId":"f3"}),
            json!({"type":"file_meta","fileId":"F1","name":"report.pdf","size":2100000,"sha256":"ab".repeat(32),
                "sealedKey":"c2VhbGVk","chunkSize":48128,"_reqId":"f3"}),
            json!({"type":"file_list","_reqId":"f4"}),
            json!({"type":"file_list_response","files":[{"id":"F1","name":"report.pdf","size":2100000,
                "uploadedBy":"alice","uploaderPubkey":ALICE,"targetSpec":"*","recipients":2,
                "createdAt":"2026-01-01T00:00:00.000Z"}],"_reqId":"f4"}),
            json!({"type":"file_rm","fileId":"F1","_reqId":"f5"}),
        ]
    }

    /// Every non-null field of `input` is in `output` with the same value (recursively), and `output` has no
    /// `null` except as a state value.
    fn assert_kept(input: &Value, output: &Value, path: &str) {
        match (input, output) {
            (Value::Object(i), Value::Object(o)) => {
                for (k, v) in i {
                    if v.is_null() {
                        assert!(!o.contains_key(k), "{path}.{k}: null must be omitted");
                    } else if k == "value" || k == "eventData" {
                        assert_eq!(Some(v), o.get(k), "{path}.{k}");
                    } else {
                        let Some(ov) = o.get(k) else {
                            panic!("{path}.{k} was dropped")
                        };
                        assert_kept(v, ov, &format!("{path}.{k}"));
                    }
                }
                for (k, v) in o {
                    assert!(!v.is_null() || k == "value", "{path}.{k}: null in output");
                }
            }
            (Value::Array(i), Value::Array(o)) => {
                assert_eq!(i.len(), o.len(), "{path}");
                for (n, (a, b)) in i.iter().zip(o).enumerate() {
                    assert_kept(a, b, &format!("{path}[{n}]"));
                }
            }
            _ => assert_eq!(input, output, "{path}"),
        }
    }

    #[test]
    fn every_frame_round_trips() {
        let samples = samples();
        let mut seen = std::collections::BTreeSet::new();
        for sample in &samples {
            let ty = sample["type"].as_str().unwrap();
            let frame = parse(&sample.to_string()).unwrap_or_else(|e| panic!("{ty}: {e}"));
            assert_eq!(frame.type_name(), ty);
            let text = frame.to_json();
            let out: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(out["type"], ty, "{text}");
            assert_kept(sample, &out, ty);
            assert_eq!(parse(&text).unwrap(), frame, "{ty}");
            assert_eq!(
                frame.req_id(),
                sample.get("_reqId").and_then(Value::as_str),
                "{ty}"
            );
            seen.insert(ty);
        }
        assert_eq!(
            seen,
            TYPE_NAMES.iter().copied().collect(),
            "a sample of every type"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let f =
            parse(r#"{"type":"get_state","key":"a","extra":{"deep":[1]},"_reqId":"r"}"#).unwrap();
        assert_eq!(
            f,
            Frame::GetState(GetState {
                key: "a".into(),
                req_id: Some("r".into())
            })
        );
        assert_eq!(
            f.to_json(),
            r#"{"type":"get_state","key":"a","_reqId":"r"}"#
        );
    }

    #[test]
    fn unknown_type_parses_as_unknown() {
        let f =
            parse(r#"{"type":"vector_search","collection":"c","query":"q","_reqId":"r"}"#).unwrap();
        assert_eq!(f, Frame::Unknown);
        assert_eq!(f.type_name(), "unknown");
        assert_eq!(f.req_id(), None);
        assert_eq!(
            peek_req_id(r#"{"type":"vector_search","_reqId":"r"}"#).as_deref(),
            Some("r")
        );
        assert!(parse(r#"{"key":"a"}"#).is_err(), "no type");
        assert!(parse(r#"{"type":7}"#).is_err());
        assert!(parse("[]").is_err());
    }

    #[test]
    fn known_type_with_bad_fields_is_an_error() {
        assert!(parse(r#"{"type":"get_state"}"#).is_err());
        assert!(
            parse(
                r#"{"type":"send","targetSpec":"*","priority":"urgent","nonce":"","ciphertext":""}"#
            )
            .is_err()
        );
        assert!(
            parse(r#"{"type":"set_state","key":"a"}"#).is_err(),
            "a value is required, null included"
        );
        assert!(parse(r#"{"type":"set_state","key":"a","value":null}"#).is_ok());
        assert_eq!(
            peek_req_id(r#"{"type":"get_state","_reqId":"r1"}"#).as_deref(),
            Some("r1")
        );
        assert_eq!(peek_req_id("not json"), None);
    }

    #[test]
    fn optional_fields_are_omitted() {
        assert_eq!(
            Frame::from(ErrorFrame::new(codes::NO_HELLO, "must send hello first")).to_json(),
            r#"{"type":"error","code":"no_hello","message":"must send hello first"}"#
        );
        assert_eq!(
            Frame::from(Ack::done(None)).to_json(),
            r#"{"type":"ack","id":"","messageId":"","queued":false}"#
        );
        let send = SendMessage {
            target_spec: "*".into(),
            ..Default::default()
        };
        assert_eq!(
            Frame::from(send).to_json(),
            r#"{"type":"send","id":"","targetSpec":"*","priority":"next","nonce":"","ciphertext":""}"#
        );
        let push = Push::system(
            "m1",
            "e1",
            "2026-05-04T10:00:00.123Z",
            "peer_left",
            json!({"name":"bob"}),
        );
        assert!(push.is_system());
        assert_eq!(
            Frame::from(push).to_json(),
            r#"{"type":"push","messageId":"e1","meshId":"m1","senderPubkey":"system","priority":"low","nonce":"","ciphertext":"","createdAt":"2026-05-04T10:00:00.123Z","subtype":"system","event":"peer_left","eventData":{"name":"bob"}}"#
        );
        // A missing state key is `value: null`, which is a value and is sent.
        let missing = StateResult {
            key: "k".into(),
            ..Default::default()
        };
        assert_eq!(
            Frame::from(missing).to_json(),
            r#"{"type":"state_result","key":"k","value":null,"updatedBy":"","updatedAt":""}"#
        );
        let hello = Hello {
            mesh_id: "m".into(),
            member_id: "u".into(),
            pubkey: ALICE.into(),
            ..Default::default()
        };
        let text = Frame::from(hello).to_json();
        for absent in [
            "null",
            "sessionPubkey",
            "groups",
            "capabilities",
            "protocolVersion",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
    }

    #[test]
    fn absent_and_empty_lists_differ_where_they_mean_different_things() {
        let f = parse(r#"{"type":"send","targetSpec":"*","priority":"low","copies":[]}"#).unwrap();
        let Frame::Send(s) = &f else { panic!("{f:?}") };
        assert_eq!(s.copies, Some(vec![]));
        assert!(f.to_json().contains(r#""copies":[]"#));
        let Frame::Hello(h) = parse(&samples()[0].to_string()).unwrap() else {
            panic!()
        };
        assert_eq!(h.groups.map(|g| g.len()), Some(2));
    }

    #[test]
    fn req_id_is_echoed() {
        let req = parse(r#"{"type":"recall","query":"x","_reqId":"abc"}"#).unwrap();
        let reply = Frame::from(MemoryResults {
            req_id: req.req_id().map(str::to_string),
            ..Default::default()
        });
        assert_eq!(
            reply.to_json(),
            r#"{"type":"memory_results","memories":[],"_reqId":"abc"}"#
        );
        assert_eq!(parse(&reply.to_json()).unwrap().req_id(), Some("abc"));

        let err =
            ErrorFrame::new(codes::TOPIC_NOT_FOUND, "no such topic").with_req_id(req.req_id());
        assert_eq!(
            Frame::from(err).to_json(),
            r#"{"type":"error","code":"topic_not_found","message":"no such topic","id":"abc","_reqId":"abc"}"#
        );
        // The original's topic handlers put the request id in `id` only.
        let old =
            parse(r#"{"type":"error","code":"topic_not_found","message":"x","id":"r7"}"#).unwrap();
        assert_eq!(old.req_id(), Some("r7"));

        let done = Frame::from(Ack::done(Some("v1")));
        assert_eq!(
            done.to_json(),
            r#"{"type":"ack","id":"v1","messageId":"","queued":false,"_reqId":"v1"}"#
        );
        let refused = Ack::refused("c9", "rate_limit: slow down");
        assert_eq!((refused.queued, refused.message_id.as_str()), (false, ""));
    }

    #[test]
    fn hello_timestamp_must_be_an_integer() {
        let mut hello = samples()[0].clone();
        assert!(matches!(parse(&hello.to_string()), Ok(Frame::Hello(_))));
        hello["timestamp"] = json!("1764340800123");
        assert!(parse(&hello.to_string()).is_err(), "string timestamp");
        hello["timestamp"] = json!(1764340800123.5);
        assert!(parse(&hello.to_string()).is_err(), "fractional timestamp");
        hello.as_object_mut().unwrap().remove("timestamp");
        assert!(parse(&hello.to_string()).is_err(), "no timestamp");

        let mut session = samples()[1].clone();
        session["timestamp"] = json!("1764340800123");
        assert!(parse(&session.to_string()).is_err(), "string timestamp");
        let mut session = samples()[1].clone();
        session["parentAttestation"]["expiresAt"] = json!("soon");
        assert!(parse(&session.to_string()).is_err(), "string expiresAt");
    }

    #[test]
    fn replies_from_an_original_broker_parse() {
        // Drained-push shape (a) and the bare hello_ack of the original.
        let push = r#"{"type":"push","messageId":"q","meshId":"m","senderPubkey":"k","priority":"next",
            "nonce":"n","ciphertext":"c","createdAt":"2026-05-04T10:00:00.123Z"}"#;
        let Frame::Push(p) = parse(push).unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.sender_name.as_deref(), p.priority, p.is_system()),
            (None, Priority::Next, false)
        );
        let ack =
            parse(r#"{"type":"hello_ack","presenceId":"p","memberDisplayName":"a"}"#).unwrap();
        let Frame::HelloAck(a) = ack else { panic!() };
        assert_eq!((a.presence_id.as_str(), a.member_profile), ("p", None));
        let peers = parse(
            r#"{"type":"peers_list","peers":[{"pubkey":"k","displayName":"a","status":"idle"}]}"#,
        );
        let Frame::PeersList(l) = peers.unwrap() else {
            panic!()
        };
        assert_eq!(l.peers[0].peer_role, "");
    }

    #[test]
    fn priority_and_status_parse() {
        assert_eq!("now".parse::<Priority>().unwrap(), Priority::Now);
        assert_eq!(Priority::Low.as_str(), "low");
        assert_eq!("dnd".parse::<Status>().unwrap().as_str(), "dnd");
        assert_eq!(
            "urgent".parse::<Priority>().unwrap_err().code,
            crate::error::Code::Usage
        );
        assert!("busy".parse::<Status>().is_err());
    }

    #[test]
    fn signed_strings_match_the_vectors() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/crypto.json"
        ));
        let v: Value = serde_json::from_str(text).unwrap();
        let key = |who: &str| {
            v["identities"][who]["pubkey_hex"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (alice, session) = (key("alice"), key("alice-session"));
        let mesh = v["invite_v1"]["payload"]["mesh_id"].as_str().unwrap();
        let member = "mEmBeRiDaBcDeFgHiJkLmNoPqRsTuVwX";
        let (ts, expires) = (1764340800123, 1764384000123);

        let hello = Hello {
            mesh_id: mesh.into(),
            member_id: member.into(),
            pubkey: alice.clone(),
            timestamp: ts,
            ..Default::default()
        };
        let attestation = Attestation {
            session_pubkey: session.clone(),
            parent_member_pubkey: alice.clone(),
            expires_at: expires,
            signature: String::new(),
        };
        let session_hello = SessionHello {
            mesh_id: mesh.into(),
            parent_member_pubkey: alice.clone(),
            session_pubkey: session.clone(),
            timestamp: ts,
            ..Default::default()
        };
        let ours = [
            (
                "hello",
                hello_signed(mesh, member, &alice, ts),
                hello.signed(),
            ),
            (
                "session attestation (12h)",
                attestation_signed(&alice, &session, expires),
                attestation.signed(),
            ),
            (
                "session_hello",
                session_hello_signed(mesh, &alice, &session, ts),
                session_hello.signed(),
            ),
        ];
        let sigs = v["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), ours.len());
        for (what, by_fn, by_method) in ours {
            let vector = sigs
                .iter()
                .find(|s| s["what"] == what)
                .unwrap_or_else(|| panic!("{what}"));
            assert_eq!(by_fn, vector["message"].as_str().unwrap(), "{what}");
            assert_eq!(by_method, by_fn, "{what}");
        }
    }

    #[test]
    fn signed_strings_of_the_http_additions() {
        assert_eq!(
            mesh_create_signed("dev", ALICE, SESSION, 1764340800123),
            format!("claudemesh-mesh-create|dev|{ALICE}|{SESSION}|1764340800123")
        );
        // SHA-256("abc"), the FIPS 180-2 example.
        assert_eq!(
            invite_register_signed("m1", "abc", 5, 1764340800123),
            "claudemesh-invite-register|m1|ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad|5|1764340800123"
        );
    }
}
