//! The frame enum: one list declares each frame once, and the enum, its names, request ids and conversions come from it.

use serde::{Deserialize, Serialize};

use super::apikeys::{
    ApikeyCreate, ApikeyCreated, ApikeyList, ApikeyListResponse, ApikeyRevoke, ApikeyRevokeResponse,
};
use super::auth::{Hello, HelloAck, SessionHello};
use super::context::{
    ContextList, ContextResults, ContextShared, GetContext, ListContexts, ShareContext,
};
use super::errors::ErrorFrame;
use super::files::{
    FileChunk, FileChunkAck, FileGet, FileList, FileListResponse, FileMeta, FilePut, FilePutDone,
    FilePutReady, FileRm, FileStored,
};
use super::grants::{GrantBlock, GrantList, GrantSet, GrantState};
use super::memory::{Forget, MemoryResults, MemoryStored, Recall, Remember};
use super::messaging::{Ack, ClientAck, MessageStatus, MessageStatusResult, Push, SendMessage};
use super::moderation::{Ban, BanAck, Unban, UnbanAck};
use super::notifications::{
    NotificationsList, NotificationsListResponse, NotificationsRead, NotificationsReadResponse,
};
use super::presence::{
    Inbox, InboxFetch, JoinGroup, LeaveGroup, ListPeers, Members, MembersList, PeersList,
    SetProfile, SetStatus, SetSummary, SetVisible,
};
use super::profile::{GetProfile, ProfileResult};
use super::reserve::{ListReservations, ReleasePaths, ReservationList, ReservePaths};
use super::schedule::{
    CancelScheduled, CancelScheduledAck, ListScheduled, Schedule, ScheduledAck, ScheduledList,
};
use super::state::{DelState, GetState, ListState, SetState, StateChange, StateList, StateResult};
use super::tasks::{
    ClaimTask, CompleteTask, CreateTask, ListTasks, ReleaseTask, TaskCreated, TaskList,
};
use super::topics::{
    TopicCreate, TopicCreated, TopicHistory, TopicHistoryResponse, TopicJoin, TopicKey,
    TopicKeyResponse, TopicLeave, TopicList, TopicListResponse, TopicMarkRead, TopicMembers,
    TopicMembersResponse, TopicPendingSeals, TopicPendingSealsResponse, TopicSeal,
};
use super::vault::{
    VaultAck, VaultDelete, VaultGet, VaultGetResult, VaultList, VaultListResult, VaultSet,
};
use super::webhooks::{CreateWebhook, DeleteWebhook, ListWebhooks, WebhookAck, WebhookList};

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
        pub(super) const TYPE_NAMES: &[&str] = &[$($tag),*];

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
    /// Client → broker: create a task.
    "create_task" => CreateTask(CreateTask) req,
    /// Broker → client: the answer to `create_task`.
    "task_created" => TaskCreated(TaskCreated) req,
    /// Client → broker: claim an open task.
    "claim_task" => ClaimTask(ClaimTask) req,
    /// Client → broker: complete a task.
    "complete_task" => CompleteTask(CompleteTask) req,
    /// Client → broker: give a claimed task back (addition).
    "release_task" => ReleaseTask(ReleaseTask) req,
    /// Client → broker: the mesh's tasks.
    "list_tasks" => ListTasks(ListTasks) req,
    /// Broker → client: the answer to `list_tasks`, `claim_task`, `complete_task` and `release_task`.
    "task_list" => TaskList(TaskList) req,
    /// Client → broker: share what this session learned, replacing its earlier context.
    "share_context" => ShareContext(ShareContext) req,
    /// Broker → client: the answer to `share_context` (the original's carries no `_reqId`).
    "context_shared" => ContextShared(ContextShared) req,
    /// Client → broker: search the mesh's contexts.
    "get_context" => GetContext(GetContext) req,
    /// Broker → client: the answer to `get_context`.
    "context_results" => ContextResults(ContextResults) req,
    /// Client → broker: every context of the mesh.
    "list_contexts" => ListContexts(ListContexts) req,
    /// Broker → client: the answer to `list_contexts`.
    "context_list" => ContextList(ContextList) req,
    /// Client → broker: reserve path patterns of a repository (addition).
    "reserve_paths" => ReservePaths(ReservePaths) req,
    /// Client → broker: release one's own reservations (addition).
    "release_paths" => ReleasePaths(ReleasePaths) req,
    /// Client → broker: the live reservations (addition).
    "list_reservations" => ListReservations(ListReservations) req,
    /// Broker → client: the answer to `reserve_paths`, `release_paths` and `list_reservations`.
    "reservation_list" => ReservationList(ReservationList) req,
    /// Client → broker: store a sealed secret.
    "vault_set" => VaultSet(VaultSet) req,
    /// Broker → client: the answer to `vault_set` and `vault_delete`.
    "vault_ack" => VaultAck(VaultAck) req,
    /// Client → broker: sealed secrets by key.
    "vault_get" => VaultGet(VaultGet) req,
    /// Broker → client: the answer to `vault_get`.
    "vault_get_result" => VaultGetResult(VaultGetResult) req,
    /// Client → broker: the secrets one may read, without their values.
    "vault_list" => VaultList(VaultList) req,
    /// Broker → client: the answer to `vault_list`.
    "vault_list_result" => VaultListResult(VaultListResult) req,
    /// Client → broker: delete one's own secret.
    "vault_delete" => VaultDelete(VaultDelete) req,
    /// Client → broker: allow or refuse capabilities to a member, or to everyone.
    "grant_set" => GrantSet(GrantSet) req,
    /// Client → broker: block or unblock a member.
    "grant_block" => GrantBlock(GrantBlock) req,
    /// Client → broker: one's own grants and blocks.
    "grant_list" => GrantList(GrantList) req,
    /// Broker → client: the answer to `grant_set`, `grant_block` and `grant_list`.
    "grant_state" => GrantState(GrantState) req,
    /// Client → broker: a URL that turns a signed HTTP POST into a message.
    "create_webhook" => CreateWebhook(CreateWebhook) req,
    /// Broker → client: the answer to `create_webhook` and `delete_webhook`.
    "webhook_ack" => WebhookAck(WebhookAck) req,
    /// Client → broker: the mesh's webhooks.
    "list_webhooks" => ListWebhooks(ListWebhooks) req,
    /// Broker → client: the answer to `list_webhooks`.
    "webhook_list" => WebhookList(WebhookList) req,
    /// Client → broker: delete a webhook.
    "delete_webhook" => DeleteWebhook(DeleteWebhook) req,
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
