//! The broker's storage: a [`Store`] trait and its SQLite implementation.
//!
//! Why a trait: one broker needs nothing but a file, but several brokers behind one address need a shared
//! database; a PostgreSQL store can implement the same trait later.
//!
//! Why writes open a transaction lazily and [`Store::commit`] closes it: the hub handles every event of one poll
//! iteration and commits once at its end (group commit), before any reply of that iteration is written. One fsync
//! per iteration instead of one per message, and an `ack` never leaves before its message is durable.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Error, Result};
use crate::wire::Priority;

/// A mesh: a named set of members with one owner key.
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// The owner's ed25519 key (hex); invites must verify against it.
    pub owner_pubkey: String,
    pub created_at: i64,
    pub archived_at: Option<i64>,
}

/// A member of a mesh: one ed25519 identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub mesh_id: String,
    pub pubkey: String,
    pub display_name: String,
    /// `admin` or `member`.
    pub role: String,
    pub role_tag: Option<String>,
    /// JSON array of `{name, role?}`.
    pub groups: String,
    pub message_mode: String,
    pub joined_at: i64,
    pub last_seen_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A registered v1 invite.
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    pub id: String,
    pub mesh_id: String,
    /// The base64url token exactly as it appears in the link.
    pub token: String,
    /// sha256 hex of `token`, the value the owner signed when registering it.
    pub token_hash: String,
    /// The decoded payload (JSON text).
    pub payload: String,
    pub max_uses: i64,
    pub used_count: i64,
    pub role: String,
    /// ms since the epoch.
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A session key seen with a valid `session_hello`, remembered so that a DM to it while it is offline is queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub mesh_id: String,
    pub session_pubkey: String,
    pub member_id: String,
    pub display_name: Option<String>,
    pub session_id: Option<String>,
    pub last_seen_at: i64,
}

/// A stored message. For sealed broadcasts `nonce`/`ciphertext` are empty and each delivery has its own copy.
/// The one record of a message on the broker: a `send` and a fired schedule become one, a delivery carries one,
/// and a `push` is made of one (in `routing`), so no field is copied between look-alike structs on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub mesh_id: String,
    pub sender_member_id: String,
    pub sender_session_pubkey: Option<String>,
    pub target_spec: String,
    pub priority: Priority,
    pub nonce: String,
    pub ciphertext: String,
    pub client_message_id: Option<String>,
    pub subtype: Option<String>,
    pub reply_to_id: Option<String>,
    pub body_version: Option<u32>,
    pub created_at: i64,
}

/// One recipient of a message: a member (every connection of it) or one of its sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub recipient_member_id: String,
    pub recipient_session_pubkey: Option<String>,
    /// The recipient's own sealed copy; `None` means the message's `nonce`/`ciphertext`.
    pub nonce: Option<String>,
    pub ciphertext: Option<String>,
}

/// A delivery that is not acknowledged yet, with everything a `push` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub delivery_id: i64,
    pub recipient_member_id: String,
    pub recipient_session_pubkey: Option<String>,
    pub sender_member_pubkey: String,
    /// The sender session's display name if it had one, else the member's.
    pub sender_name: String,
    /// The message, with this recipient's own copy of the body in `nonce`/`ciphertext`.
    pub message: Message,
}

/// Where one delivery of a message stands, for `message_status`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryState {
    pub recipient_member_id: String,
    pub recipient_session_pubkey: Option<String>,
    /// The session's display name when the delivery is to a session, else the member's.
    pub recipient_name: String,
    pub recipient_member_pubkey: String,
    pub delivered_at: Option<i64>,
}

/// A stored file: its metadata and where its ciphertext came from (the bytes are in `<data>/files/<id>`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub id: String,
    pub mesh_id: String,
    pub name: String,
    /// Plaintext bytes.
    pub size: i64,
    /// Plaintext bytes per chunk.
    pub chunk_size: i64,
    /// Hex SHA-256 of the ciphertext.
    pub sha256: String,
    pub uploader_member_id: String,
    /// The key the uploading socket spoke as.
    pub uploader_pubkey: String,
    pub target_spec: Option<String>,
    pub created_at: i64,
    /// The uploader's display name (read only; ignored on insert).
    pub uploader_name: String,
    /// How many keys the file is sealed to (read only; ignored on insert).
    pub recipients: i64,
}

/// A shared state key. A deleted key keeps its row with `value: None`, so versions never repeat and a
/// compare-and-set cannot mistake a new key for an old one of the same version.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub mesh_id: String,
    pub key: String,
    /// JSON text; `None` once deleted.
    pub value: Option<String>,
    pub version: i64,
    pub updated_by_member: String,
    pub updated_by_name: String,
    pub updated_at: i64,
}

/// What a compare-and-set write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatePut {
    /// Written; the key's new version.
    Written(i64),
    /// Not written: the key is at this version (0: absent or deleted).
    Conflict(i64),
}

/// A memory of a mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRow {
    pub id: String,
    pub mesh_id: String,
    pub content: String,
    /// JSON array of strings.
    pub tags: String,
    /// Member id.
    pub remembered_by: String,
    pub remembered_by_name: String,
    pub remembered_at: i64,
}

/// A memory found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHit {
    pub memory: MemoryRow,
    /// Higher is better (bm25, negated).
    pub score: f64,
    /// The best-matching part of the content, matches in `[` `]`.
    pub snippet: String,
}

/// A scheduled message. The body is as the client sealed it (`nonce`/`ciphertext`, or `copies`), or an original
/// client's plaintext `message`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub id: String,
    pub mesh_id: String,
    pub member_id: String,
    /// The session that scheduled it, which the fired message is sent as.
    pub session_pubkey: Option<String>,
    pub target_spec: String,
    pub nonce: String,
    pub ciphertext: String,
    /// JSON array of `{to, nonce, ciphertext}`.
    pub copies: Option<String>,
    pub message: Option<String>,
    pub subtype: Option<String>,
    pub cron: Option<String>,
    /// A fixed offset, `+02:00`.
    pub tz: Option<String>,
    /// `None` once a one-shot entry has fired.
    pub next_fire_at: Option<i64>,
    pub fired_count: i64,
    pub created_at: i64,
}

/// What a member's new presences start with (set by `cm-profile` on a member connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPresence {
    pub summary: Option<String>,
    /// `idle`, `working` or `dnd`; `None` means idle.
    pub status: Option<String>,
    pub visible: bool,
}

/// A topic: a named conversation of a mesh with its own members and, when encrypted, its own key.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub id: String,
    pub mesh_id: String,
    pub name: String,
    pub description: Option<String>,
    /// `public`, `private` or `dm`.
    pub visibility: String,
    pub created_by_member_id: Option<String>,
    /// Bodies are sealed under a topic key that only members hold; the broker keeps sealed copies only.
    pub encrypted: bool,
    pub created_at: i64,
    pub archived_at: Option<i64>,
}

/// A topic of a mesh as one member sees it in a list.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicListing {
    pub topic: Topic,
    pub member_count: i64,
    /// The member asking is in it.
    pub joined: bool,
    /// Messages from others newer than the member's last read.
    pub unread: i64,
}

/// A member of a topic, with what a members list and the re-seal flow need.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMembership {
    pub member_id: String,
    pub pubkey: String,
    pub display_name: String,
    /// `lead`, `member` or `observer`.
    pub role: String,
    pub joined_at: i64,
    pub last_read_at: Option<i64>,
    /// The member was revoked from the mesh.
    pub revoked: bool,
    /// A sealed copy of the topic key is stored for it.
    pub has_key: bool,
}

/// A topic key sealed for one member by another (or by the creator at creation).
#[derive(Debug, Clone, PartialEq)]
pub struct SealedKey {
    pub topic_id: String,
    pub member_id: String,
    /// base64 of the sealer's x25519 key ‖ crypto_box(topic key).
    pub encrypted_key: String,
    pub nonce: String,
    pub sealed_by_member_id: String,
    pub created_at: i64,
}

/// A message of a topic: one row, however many members read it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMessage {
    pub id: String,
    pub topic_id: String,
    pub sender_member_id: String,
    pub sender_session_pubkey: Option<String>,
    pub nonce: String,
    pub ciphertext: String,
    /// 1 base64 plaintext, 2 secretbox under the topic key.
    pub body_version: i64,
    pub reply_to_id: Option<String>,
    pub client_message_id: Option<String>,
    pub created_at: i64,
}

/// A stored topic message with its order in the topic and its sender.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMessageRow {
    /// Increases with every message stored: the order of history and of a stream's replay.
    pub seq: i64,
    pub message: TopicMessage,
    pub sender_member_pubkey: String,
    /// The sender session's name if it had one, else the member's.
    pub sender_name: String,
}

/// A page of a topic's messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TopicPage {
    /// The newest `limit` messages older than `seq` (all when `None`), newest first.
    Before(Option<i64>, usize),
    /// The oldest `limit` messages newer than `seq`, oldest first.
    After(i64, usize),
}

/// A mention of a member in a topic message, with what a list of them shows.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRow {
    pub id: String,
    pub message: TopicMessageRow,
    pub topic_name: String,
    pub kind: String,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

/// An API key for the REST surface: only the SHA-256 of its secret is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub mesh_id: String,
    pub label: String,
    /// Lowercase hex SHA-256 of the whole secret.
    pub secret_hash: String,
    /// The secret's first 11 characters (`cm_` and 8 more), to find the row by.
    pub secret_prefix: String,
    /// JSON array of `send`, `read`, `state_write`, `admin`.
    pub capabilities: String,
    /// JSON array of topic names; `None` is every topic.
    pub topic_scopes: Option<String>,
    pub issued_by_member_id: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// The broker's storage. Reads see the writes of the open transaction; writes open one if none is open.
pub trait Store {
    /// A cheap query, for `/health`.
    fn ping(&self) -> Result<()>;
    /// Commits the open transaction, if any: true when there was one. On failure the transaction is rolled back
    /// and nothing of it stays.
    fn commit(&mut self) -> Result<bool>;
    /// Drops the open transaction, if any.
    fn rollback(&mut self);

    /// Inserts a mesh and its first member.
    fn create_mesh(&mut self, mesh: &Mesh, owner: &Member) -> Result<()>;
    /// The mesh with this id, archived or not.
    fn mesh(&self, id: &str) -> Result<Option<Mesh>>;
    /// Whether a mesh uses this slug.
    fn slug_taken(&self, slug: &str) -> Result<bool>;

    /// The member with this id.
    fn member(&self, id: &str) -> Result<Option<Member>>;
    /// The member of `mesh_id` with this key, revoked or not.
    fn member_by_pubkey(&self, mesh_id: &str, pubkey: &str) -> Result<Option<Member>>;
    /// Every member of the mesh, revoked ones included, oldest first.
    fn members(&self, mesh_id: &str) -> Result<Vec<Member>>;
    /// Inserts a member.
    fn insert_member(&mut self, member: &Member) -> Result<()>;
    /// Replaces a member's groups (a JSON array).
    fn set_member_groups(&mut self, member_id: &str, groups: &str) -> Result<()>;
    /// Revokes (`Some(time)`) or reinstates (`None`) a member.
    fn set_member_revoked(&mut self, member_id: &str, at: Option<i64>) -> Result<()>;

    /// Inserts an invite.
    fn insert_invite(&mut self, invite: &Invite) -> Result<()>;
    /// The invite with this token.
    fn invite_by_token(&self, token: &str) -> Result<Option<Invite>>;
    /// Takes one use of an invite; false when it is used up.
    fn use_invite(&mut self, id: &str) -> Result<bool>;

    /// Remembers a session key (or refreshes it).
    fn upsert_session(&mut self, session: &Session) -> Result<()>;
    /// A remembered session of the mesh.
    fn session(&self, mesh_id: &str, session_pubkey: &str) -> Result<Option<Session>>;

    /// Stores a message with one delivery row per recipient; returns the deliveries' ids, in order.
    fn insert_message(&mut self, message: &Message, deliveries: &[NewDelivery])
    -> Result<Vec<i64>>;
    /// The id of the message this member already sent with this `client_message_id`.
    fn message_by_client_id(
        &self,
        mesh_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>>;
    /// Messages of the mesh whose id starts with `prefix` (at most `limit`).
    fn messages_by_prefix(&self, mesh_id: &str, prefix: &str, limit: usize)
    -> Result<Vec<Message>>;
    /// The deliveries of a message.
    fn deliveries_of(&self, message_id: &str) -> Result<Vec<DeliveryState>>;
    /// Unacknowledged deliveries for a member (and, if given, for one of its sessions), oldest first.
    fn pending(
        &self,
        member_id: &str,
        session_pubkey: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Pending>>;
    /// One delivery, if it is still unacknowledged.
    fn pending_delivery(&self, delivery_id: i64) -> Result<Option<Pending>>;
    /// Marks a member's deliveries of a message (by broker id or by the sender's `client_message_id`) delivered;
    /// returns the ids of the rows that changed.
    fn mark_delivered(
        &mut self,
        mesh_id: &str,
        member_id: &str,
        message_id: Option<&str>,
        client_message_id: Option<&str>,
        at: i64,
    ) -> Result<Vec<i64>>;
    /// How many deliveries wait for an acknowledgement.
    fn pending_count(&self) -> Result<i64>;

    /// Inserts a topic.
    fn insert_topic(&mut self, topic: &Topic) -> Result<()>;
    /// A live topic of the mesh by id, else by name.
    fn topic(&self, mesh_id: &str, id_or_name: &str) -> Result<Option<Topic>>;
    /// The mesh's live topics by name, as `member_id` sees them.
    fn topics(&self, mesh_id: &str, member_id: &str) -> Result<Vec<TopicListing>>;
    /// A topic's members (revoked mesh members included, marked), by display name.
    fn topic_members(&self, topic_id: &str) -> Result<Vec<TopicMembership>>;
    /// Adds a member to a topic; false when it was in it already (its role is kept).
    fn join_topic(&mut self, topic_id: &str, member_id: &str, role: &str, at: i64) -> Result<bool>;
    /// Removes a member from a topic; false when it was not in it.
    fn leave_topic(&mut self, topic_id: &str, member_id: &str) -> Result<bool>;
    /// Sets a member's last read time; false when it is not in the topic.
    fn mark_topic_read(&mut self, topic_id: &str, member_id: &str, at: i64) -> Result<bool>;
    /// Stores a sealed topic key for a member unless one is stored; false when one was.
    fn put_topic_key(&mut self, key: &SealedKey) -> Result<bool>;
    /// The topic key sealed for a member.
    fn topic_key(&self, topic_id: &str, member_id: &str) -> Result<Option<SealedKey>>;
    /// Stores a topic message; returns its `seq`.
    fn insert_topic_message(&mut self, message: &TopicMessage) -> Result<i64>;
    /// A page of a topic's messages.
    fn topic_messages(&self, topic_id: &str, page: TopicPage) -> Result<Vec<TopicMessageRow>>;
    /// Messages of the topic whose id starts with `prefix` (at most `limit`).
    fn topic_messages_by_prefix(
        &self,
        topic_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<TopicMessageRow>>;
    /// The id of the topic message this member already sent with this `client_message_id`.
    fn topic_message_by_client_id(
        &self,
        topic_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>>;
    /// Records a mention (once per message and member); false when it was recorded already.
    fn insert_notification(
        &mut self,
        id: &str,
        message_id: &str,
        member_id: &str,
        kind: &str,
        at: i64,
    ) -> Result<bool>;
    /// A member's mentions, newest first.
    fn notifications(
        &self,
        member_id: &str,
        unread_only: bool,
        limit: usize,
    ) -> Result<Vec<NotificationRow>>;
    /// Marks a member's notifications read (these ids, or all of them); returns how many were unread.
    fn mark_notifications_read(
        &mut self,
        member_id: &str,
        ids: Option<&[String]>,
        at: i64,
    ) -> Result<usize>;
    /// Inserts an API key.
    fn insert_api_key(&mut self, key: &ApiKey) -> Result<()>;
    /// The mesh's API keys, newest first, revoked ones included.
    fn api_keys(&self, mesh_id: &str) -> Result<Vec<ApiKey>>;
    /// The API keys whose secret starts with this 11-character prefix.
    fn api_keys_by_prefix(&self, secret_prefix: &str) -> Result<Vec<ApiKey>>;
    /// Revokes an API key (a revoked one keeps its first revocation time).
    fn revoke_api_key(&mut self, id: &str, at: i64) -> Result<()>;
    /// Records that an API key was used.
    fn touch_api_key(&mut self, id: &str, at: i64) -> Result<()>;

    /// Stores a file's row and one sealed key per recipient key: `(pubkey, sealed_key)`.
    fn insert_file(&mut self, file: &FileRow, keys: &[(String, String)]) -> Result<()>;
    /// The file with this id, in any mesh.
    fn file(&self, id: &str) -> Result<Option<FileRow>>;
    /// The file key sealed to `pubkey`, if the file has one for it.
    fn file_key(&self, file_id: &str, pubkey: &str) -> Result<Option<String>>;
    /// The files of the mesh that `member_id` uploaded or that are sealed to one of `keys`, newest first.
    fn files_for(&self, mesh_id: &str, member_id: &str, keys: &[&str]) -> Result<Vec<FileRow>>;
    /// Deletes a file's row and its keys.
    fn delete_file(&mut self, id: &str) -> Result<()>;

    /// A state key of the mesh, deleted ones included (`value: None`).
    fn state_get(&self, mesh_id: &str, key: &str) -> Result<Option<StateRow>>;
    /// The mesh's keys that are not deleted, in key order.
    fn state_list(&self, mesh_id: &str) -> Result<Vec<StateRow>>;
    /// Writes `row` (`value: None` deletes) with the next version, if the key is at version `expected` (0: absent
    /// or deleted), or whatever its version without `expected`. `row.version` is ignored.
    fn state_put(&mut self, row: &StateRow, expected: Option<i64>) -> Result<StatePut>;

    /// Stores a memory and indexes it for search.
    fn memory_insert(&mut self, memory: &MemoryRow) -> Result<()>;
    /// The mesh's memories that match an FTS5 query, best first.
    fn memory_search(&self, mesh_id: &str, fts_query: &str, limit: usize)
    -> Result<Vec<MemoryHit>>;
    /// Ids of the mesh's memories (not forgotten) that start with `prefix`.
    fn memory_ids(&self, mesh_id: &str, prefix: &str, limit: usize) -> Result<Vec<String>>;
    /// Forgets a memory of the mesh (kept, unsearchable); false when there was none to forget.
    fn memory_forget(&mut self, mesh_id: &str, id: &str, at: i64) -> Result<bool>;

    /// Stores a scheduled message.
    fn schedule_insert(&mut self, schedule: &ScheduleRow) -> Result<()>;
    /// A member's scheduled messages that will still fire, soonest first.
    fn schedules_of(&self, mesh_id: &str, member_id: &str) -> Result<Vec<ScheduleRow>>;
    /// Cancels a scheduled message; false when it was not pending.
    fn schedule_cancel(&mut self, id: &str) -> Result<bool>;
    /// Scheduled messages due at `now`, soonest first.
    fn schedules_due(&self, now: i64, limit: usize) -> Result<Vec<ScheduleRow>>;
    /// When the next scheduled message is due.
    fn schedule_next_due(&self) -> Result<Option<i64>>;
    /// Records a fire: one more `fired_count`, and the next fire time (`None`: done).
    fn schedule_fired(&mut self, id: &str, next_fire_at: Option<i64>, at: i64) -> Result<()>;

    /// What a member's new presences start with.
    fn member_presence(&self, member_id: &str) -> Result<MemberPresence>;
    /// Sets what a member's new presences start with.
    fn set_member_presence(&mut self, member_id: &str, presence: &MemberPresence) -> Result<()>;
    /// Renames a member.
    fn set_member_name(&mut self, member_id: &str, display_name: &str) -> Result<()>;
    /// Sets or clears a member's role tag.
    fn set_member_role_tag(&mut self, member_id: &str, role_tag: Option<&str>) -> Result<()>;
}

/// Migrations, applied in order at open; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: meshes, members, invites, sessions, messages and their deliveries.
    r#"
CREATE TABLE meshes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    owner_pubkey TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    archived_at INTEGER
);
CREATE TABLE members (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    pubkey TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    role_tag TEXT,
    groups TEXT NOT NULL DEFAULT '[]',
    message_mode TEXT NOT NULL DEFAULT 'push',
    joined_at INTEGER NOT NULL,
    last_seen_at INTEGER,
    revoked_at INTEGER,
    UNIQUE (mesh_id, pubkey)
);
CREATE TABLE invites (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    token TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    payload TEXT NOT NULL,
    max_uses INTEGER NOT NULL,
    used_count INTEGER NOT NULL DEFAULT 0,
    role TEXT NOT NULL,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE sessions (
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    session_pubkey TEXT NOT NULL,
    member_id TEXT NOT NULL REFERENCES members(id),
    display_name TEXT,
    session_id TEXT,
    last_seen_at INTEGER NOT NULL,
    PRIMARY KEY (mesh_id, session_pubkey)
);
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    sender_member_id TEXT NOT NULL REFERENCES members(id),
    sender_session_pubkey TEXT,
    target_spec TEXT NOT NULL,
    priority TEXT NOT NULL CHECK (priority IN ('now', 'next', 'low')),
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    client_message_id TEXT,
    subtype TEXT,
    reply_to_id TEXT,
    body_version INTEGER,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_client_id ON messages (mesh_id, sender_member_id, client_message_id)
    WHERE client_message_id IS NOT NULL;
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    recipient_member_id TEXT NOT NULL REFERENCES members(id),
    recipient_session_pubkey TEXT,
    nonce TEXT,
    ciphertext TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX deliveries_recipient ON deliveries (recipient_member_id, delivered_at);
CREATE INDEX deliveries_message ON deliveries (message_id);
"#,
    // 2: files (their ciphertext lives in <data>/files) and the file key sealed to each recipient.
    r#"
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    uploader_member_id TEXT NOT NULL REFERENCES members(id),
    uploader_pubkey TEXT NOT NULL,
    target_spec TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX files_mesh ON files (mesh_id, created_at);
CREATE TABLE file_keys (
    file_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    recipient_pubkey TEXT NOT NULL,
    sealed_key TEXT NOT NULL,
    PRIMARY KEY (file_id, recipient_pubkey)
);
CREATE INDEX file_keys_recipient ON file_keys (recipient_pubkey);
"#,
    // 3: shared state, memories with their full-text index, scheduled messages, member presence defaults.
    r#"
ALTER TABLE members ADD COLUMN summary TEXT;
ALTER TABLE members ADD COLUMN status TEXT;
ALTER TABLE members ADD COLUMN visible INTEGER NOT NULL DEFAULT 1;
CREATE TABLE state (
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    key TEXT NOT NULL,
    value TEXT,
    version INTEGER NOT NULL,
    updated_by_member TEXT NOT NULL,
    updated_by_name TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (mesh_id, key)
);
CREATE TABLE memories (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    content TEXT NOT NULL,
    tags TEXT NOT NULL,
    remembered_by TEXT NOT NULL REFERENCES members(id),
    remembered_by_name TEXT NOT NULL,
    remembered_at INTEGER NOT NULL,
    forgotten_at INTEGER
);
CREATE INDEX memories_mesh ON memories (mesh_id, id);
CREATE VIRTUAL TABLE memories_fts USING fts5(content, tags, content = 'memories', content_rowid = 'seq',
    tokenize = 'porter unicode61 remove_diacritics 2');
CREATE TRIGGER memories_indexed AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, content, tags) VALUES (new.seq, new.content, new.tags);
END;
CREATE TRIGGER memories_forgotten AFTER UPDATE OF forgotten_at ON memories
    WHEN old.forgotten_at IS NULL AND new.forgotten_at IS NOT NULL BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content, tags) VALUES ('delete', old.seq, old.content, old.tags);
END;
CREATE TRIGGER memories_deleted AFTER DELETE ON memories WHEN old.forgotten_at IS NULL BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content, tags) VALUES ('delete', old.seq, old.content, old.tags);
END;
CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    session_pubkey TEXT,
    target_spec TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    copies TEXT,
    message TEXT,
    subtype TEXT,
    cron TEXT,
    tz TEXT,
    next_fire_at INTEGER,
    fired_count INTEGER NOT NULL DEFAULT 0,
    last_fired_at INTEGER,
    created_at INTEGER NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE cancelled = 0 AND next_fire_at IS NOT NULL;
CREATE INDEX schedules_member ON schedules (member_id, mesh_id);
"#,
    // 4: topics, their members, sealed keys and messages; mention notifications; API keys.
    r#"
CREATE TABLE topics (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    name TEXT NOT NULL,
    description TEXT,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private', 'dm')),
    created_by_member_id TEXT REFERENCES members(id),
    encrypted INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    archived_at INTEGER,
    UNIQUE (mesh_id, name)
);
CREATE TABLE topic_members (
    topic_id TEXT NOT NULL REFERENCES topics(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    role TEXT NOT NULL CHECK (role IN ('lead', 'member', 'observer')),
    joined_at INTEGER NOT NULL,
    last_read_at INTEGER,
    PRIMARY KEY (topic_id, member_id)
);
CREATE TABLE topic_keys (
    topic_id TEXT NOT NULL REFERENCES topics(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    encrypted_key TEXT NOT NULL,
    nonce TEXT NOT NULL,
    sealed_by_member_id TEXT NOT NULL REFERENCES members(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (topic_id, member_id)
);
CREATE TABLE topic_messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    topic_id TEXT NOT NULL REFERENCES topics(id),
    sender_member_id TEXT NOT NULL REFERENCES members(id),
    sender_session_pubkey TEXT,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    body_version INTEGER NOT NULL,
    reply_to_id TEXT,
    client_message_id TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX topic_messages_topic ON topic_messages (topic_id, seq);
CREATE UNIQUE INDEX topic_messages_client_id ON topic_messages (topic_id, sender_member_id, client_message_id)
    WHERE client_message_id IS NOT NULL;
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES topic_messages(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    kind TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    read_at INTEGER,
    UNIQUE (message_id, member_id)
);
CREATE INDEX notifications_member ON notifications (member_id, created_at);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    label TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    secret_prefix TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    topic_scopes TEXT,
    issued_by_member_id TEXT NOT NULL REFERENCES members(id),
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER,
    expires_at INTEGER
);
CREATE INDEX api_keys_prefix ON api_keys (secret_prefix);
CREATE INDEX api_keys_mesh ON api_keys (mesh_id, created_at);
"#,
    // 5: the recipient index holds pending deliveries only. A delivered row leaves it instead of moving to its
    // other end, so it stays as small as the backlog and its pages stay hot: each acknowledgement dirtied two
    // more index pages, each written to the WAL at commit. The message index also keys the recipient, so an
    // acknowledgement of one copy of a broadcast does not read every copy.
    r#"
DROP INDEX deliveries_recipient;
CREATE INDEX deliveries_pending ON deliveries (recipient_member_id, created_at) WHERE delivered_at IS NULL;
DROP INDEX deliveries_message;
CREATE INDEX deliveries_message ON deliveries (message_id, recipient_member_id);
"#,
    // 6: client message ids lead their indexes. Our clients make them in time order, so new rows append to one
    // page instead of one page per sender (the sender led before, and a batch of a hundred senders' messages
    // rewrote a hundred pages of this index at its commit); random ids are no worse off than before.
    r#"
DROP INDEX messages_client_id;
CREATE UNIQUE INDEX messages_client_id ON messages (client_message_id, sender_member_id, mesh_id)
    WHERE client_message_id IS NOT NULL;
DROP INDEX topic_messages_client_id;
CREATE UNIQUE INDEX topic_messages_client_id ON topic_messages (client_message_id, sender_member_id, topic_id)
    WHERE client_message_id IS NOT NULL;
"#,
    // 7: a message's deliveries are found by its time first. Message ids are random (people name messages by
    // their first few characters), so an index led by them took each new delivery to a random page: 69 of 171
    // WAL frames per commit in cm-bench dm. A delivery's `created_at` is its message's, so the time leads and
    // new entries append; a lookup reads the message's time through its primary key first.
    r#"
DROP INDEX deliveries_message;
CREATE INDEX deliveries_message ON deliveries (created_at, message_id, recipient_member_id);
"#,
];

/// The store in `<data>/broker.db`.
pub struct SqliteStore {
    conn: Connection,
    /// A transaction is open (BEGIN issued, no COMMIT yet).
    in_tx: bool,
    /// Checkpoints beside the event loop; `None` leaves them to SQLite's automatic ones.
    checkpointer: Option<Checkpointer>,
    /// With a checkpointer: the WAL file, and its size past which a commit checkpoints inline ([`WAL_LIMIT`]).
    wal: Option<(PathBuf, u64)>,
}

/// How large the WAL may grow under steady writes before a commit checkpoints it inline, and the size SQLite cuts
/// it back to once it starts over.
const WAL_LIMIT: u64 = 64 << 20;

/// The least time between two checkpoints: the commits of that time are copied in one round.
///
/// Why this short: each round copies what the loop committed since the last, and the loop's reads go through the
/// WAL's index for every page not yet copied; at 100 ms the event loop spent half again as much CPU per message.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);

/// Copies committed pages from the WAL into the database file, on a thread and a connection of its own, after
/// commits (an idle broker does not wake it).
///
/// Why not SQLite's automatic checkpoint: it runs inside the COMMIT that takes the WAL past 1000 pages, on the
/// event loop, and ends with an fsync, so every few hundred messages one batch of replies waited for the disk
/// (a sixth of the broker's time under load). A passive checkpoint takes no lock a writer needs, so it runs
/// beside the loop; commits are as durable as before, since they are in the WAL when COMMIT returns.
struct Checkpointer {
    /// One message per commit; dropping it ends the thread.
    kick: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path, every: Duration) -> Result<Checkpointer> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        let (kick, kicks) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let mut warned = false;
                let mut pending = false;
                loop {
                    if !pending && kicks.recv().is_err() {
                        return;
                    }
                    pending = false;
                    let next = std::time::Instant::now() + every;
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        && !std::mem::replace(&mut warned, true)
                    {
                        super::log::warn("checkpoint failed", &[("error", &e)]);
                    }
                    loop {
                        let left = next.saturating_duration_since(std::time::Instant::now());
                        match kicks.recv_timeout(left) {
                            Ok(()) => pending = true,
                            Err(mpsc::RecvTimeoutError::Timeout) => break,
                            Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                }
            })
            .map_err(|e| Error::internal(format!("starting the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            kick: Some(kick),
            thread: Some(thread),
        })
    }

    /// Tells the thread that a commit added to the WAL.
    fn kick(&self) {
        if let Some(k) = &self.kick {
            let _ = k.send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.kick.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn db(e: rusqlite::Error) -> Error {
    Error::io(format!("database: {e}"))
}

/// Creates the database file 0600 if it is missing, and tightens it and its WAL files if others may read them.
/// SQLite creates a database 0644 (less the umask) and gives its `-wal` and `-shm` files the database's mode, so
/// a database that exists 0600 before SQLite opens it keeps all three private.
fn make_private(db: &Path) -> Result<()> {
    let fail = |p: &Path, e: std::io::Error| Error::from(e).context(p.display());
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(db)
        .map_err(|e| fail(db, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let p = PathBuf::from(name);
        if let Ok(m) = fs::metadata(&p)
            && m.permissions().mode() & 0o077 != 0
        {
            fs::set_permissions(&p, Permissions::from_mode(0o600)).map_err(|e| fail(&p, e))?;
        }
    }
    Ok(())
}

/// `mark_delivered`'s rows by broker message id, through the deliveries' message index (named, since the planner
/// would rather walk the member's pending rows, however many).
const UNDELIVERED_BY_ID: &str = "SELECT id FROM deliveries INDEXED BY deliveries_message \
    WHERE created_at = (SELECT created_at FROM messages m WHERE m.id = ?3 AND m.mesh_id = ?1) \
    AND message_id = ?3 AND recipient_member_id = ?2 AND delivered_at IS NULL";

/// `mark_delivered`'s rows by client message id, through the member's pending rows.
const UNDELIVERED_BY_CLIENT_ID: &str = "SELECT id FROM deliveries d WHERE recipient_member_id = ?2 \
    AND delivered_at IS NULL AND EXISTS (SELECT 1 FROM messages m WHERE m.id = d.message_id \
    AND m.mesh_id = ?1 AND m.client_message_id = ?3)";

/// A fresh id: 32 characters of `[0-9A-Za-z]` from the OS's random source.
///
/// Why not in time order, which would keep each new row of an id index on the same page: people name messages by
/// the first few characters of their ids, and a time prefix would make those the same for every message of the
/// same few seconds.
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(32);
    let mut buf = [0u8; 64];
    while id.len() < 32 {
        // The OS random source failing is not something the broker can work around; an id from a weaker source
        // would be guessable, so the loop simply tries again.
        if getrandom::getrandom(&mut buf).is_err() {
            continue;
        }
        // 248 = 4 * 62: dropping bytes above it keeps every character equally likely.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if id.len() == 32 {
                break;
            }
            id.push(ALPHABET[(b % 62) as usize] as char);
        }
    }
    id
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/broker.db` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        SqliteStore::open_with(data_dir, CHECKPOINT_EVERY, WAL_LIMIT)
    }

    fn open_with(data_dir: &Path, every: Duration, wal_limit: u64) -> Result<SqliteStore> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|e| Error::from(e).context(data_dir.display()))?;
        let path = data_dir.join("broker.db");
        make_private(&path)?;
        let conn = Connection::open(&path).map_err(|e| db(e).context(path.display()))?;
        let mut store = SqliteStore::with_connection(conn)?;
        match Checkpointer::start(&path, every) {
            Ok(c) => {
                store
                    .conn
                    .pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(db)?;
                store
                    .conn
                    .pragma_update(None, "journal_size_limit", wal_limit as i64)
                    .map_err(db)?;
                store.checkpointer = Some(c);
                let mut wal = path.into_os_string();
                wal.push("-wal");
                store.wal = Some((PathBuf::from(wal), wal_limit));
            }
            Err(e) => super::log::warn("checkpointing inline", &[("error", &e)]),
        }
        Ok(store)
    }

    /// Checkpoints inline once the WAL is past its limit.
    ///
    /// Why: SQLite starts the WAL over only when a writer finds every frame of it copied, and under steady writes
    /// the checkpoint thread is always a commit or two behind, so the file grew by every commit (a quarter of a
    /// gigabyte in 30,000 messages) until the load stopped. Here, between two commits, a passive checkpoint copies
    /// what the thread has not yet (little), and the next commit starts the WAL over.
    fn bound_wal(&mut self) {
        let Some((wal, limit)) = &self.wal else {
            return;
        };
        let Some(size) = fs::metadata(wal)
            .ok()
            .map(|m| m.len())
            .filter(|s| s > limit)
        else {
            return;
        };
        let start = std::time::Instant::now();
        // (busy, frames in the WAL, frames copied): busy when the thread is at it; the next commit tries again.
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            }) {
            Ok((0, frames, copied)) => super::log::info(
                "checkpointed the WAL inline",
                &[
                    ("wal_bytes", &size),
                    ("frames", &frames),
                    ("copied", &copied),
                    ("ms", &start.elapsed().as_millis()),
                ],
            ),
            Ok(_) => {}
            Err(e) => super::log::warn("checkpoint failed", &[("error", &e)]),
        }
    }

    /// Sets up an open connection: pragmas, then migrations.
    fn with_connection(conn: Connection) -> Result<SqliteStore> {
        // WAL + NORMAL: a commit is durable against a process crash (kill -9) once it returns, and costs no fsync
        // of the main file; only a power loss can drop the last commits. The page cache holds up to 64 MiB: the
        // indexes of a busy broker are read on every message, and a miss is a pread.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = 5000; PRAGMA cache_size = -65536;",
        )
        .map_err(db)?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = SqliteStore {
            conn,
            in_tx: false,
            checkpointer: None,
            wal: None,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        if version as usize > MIGRATIONS.len() {
            return Err(Error::io(format!(
                "database: schema version {version} is newer than this broker knows ({})",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(db)?;
            tx.execute_batch(sql)
                .map_err(|e| db(e).context(format!("migration {}", i + 1)))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(db)?;
            tx.commit().map_err(db)?;
        }
        Ok(())
    }

    /// Opens a transaction for a write, unless one is open.
    fn begin(&mut self) -> Result<()> {
        // After SQLite rolled the batch back by itself, a write must not run in autocommit mode: it would be
        // durable while the batch it belongs to reports failure.
        if self.in_tx && self.conn.is_autocommit() {
            return Err(Error::io(
                "database: the transaction was rolled back after a write error",
            ));
        }
        if !self.in_tx {
            self.conn.execute_batch("BEGIN").map_err(db)?;
            self.in_tx = true;
        }
        Ok(())
    }

    #[cfg(test)]
    fn conn(&self) -> &Connection {
        &self.conn
    }
}

const MEMBER_COLS: &str = "id, mesh_id, pubkey, display_name, role, role_tag, groups, message_mode, joined_at, \
                           last_seen_at, revoked_at";

fn member_row(r: &Row) -> rusqlite::Result<Member> {
    Ok(Member {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        pubkey: r.get(2)?,
        display_name: r.get(3)?,
        role: r.get(4)?,
        role_tag: r.get(5)?,
        groups: r.get(6)?,
        message_mode: r.get(7)?,
        joined_at: r.get(8)?,
        last_seen_at: r.get(9)?,
        revoked_at: r.get(10)?,
    })
}

const MESSAGE_COLS: &str = "id, mesh_id, sender_member_id, sender_session_pubkey, target_spec, priority, nonce, \
                            ciphertext, client_message_id, subtype, reply_to_id, body_version, created_at";

/// A message from `MESSAGE_COLS` starting at column `at`.
fn message_row(r: &Row, at: usize) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(at)?,
        mesh_id: r.get(at + 1)?,
        sender_member_id: r.get(at + 2)?,
        sender_session_pubkey: r.get(at + 3)?,
        target_spec: r.get(at + 4)?,
        priority: priority_at(r, at + 5)?,
        nonce: r.get(at + 6)?,
        ciphertext: r.get(at + 7)?,
        client_message_id: r.get(at + 8)?,
        subtype: r.get(at + 9)?,
        reply_to_id: r.get(at + 10)?,
        body_version: r.get(at + 11)?,
        created_at: r.get(at + 12)?,
    })
}

/// A stored priority. The schema's CHECK admits only the three, so another value is a damaged row, and reading
/// it fails rather than guessing one.
fn priority_at(r: &Row, at: usize) -> rusqlite::Result<Priority> {
    let text: String = r.get(at)?;
    text.parse().map_err(|e: Error| {
        rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The delivery's columns, then the message's in `MESSAGE_COLS` order with the recipient's own copy of the body.
const PENDING_SELECT: &str = "SELECT d.id, d.recipient_member_id, d.recipient_session_pubkey, sm.pubkey, \
    COALESCE(s.display_name, sm.display_name), \
    m.id, m.mesh_id, m.sender_member_id, m.sender_session_pubkey, m.target_spec, m.priority, \
    COALESCE(d.nonce, m.nonce), COALESCE(d.ciphertext, m.ciphertext), m.client_message_id, m.subtype, \
    m.reply_to_id, m.body_version, m.created_at \
    FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN members sm ON sm.id = m.sender_member_id \
    LEFT JOIN sessions s ON s.mesh_id = m.mesh_id AND s.session_pubkey = m.sender_session_pubkey";

fn pending_row(r: &Row) -> rusqlite::Result<Pending> {
    Ok(Pending {
        delivery_id: r.get(0)?,
        recipient_member_id: r.get(1)?,
        recipient_session_pubkey: r.get(2)?,
        sender_member_pubkey: r.get(3)?,
        sender_name: r.get(4)?,
        message: message_row(r, 5)?,
    })
}

const FILE_SELECT: &str = "SELECT f.id, f.mesh_id, f.name, f.size, f.chunk_size, f.sha256, f.uploader_member_id, \
    f.uploader_pubkey, f.target_spec, f.created_at, COALESCE(m.display_name, ''), \
    (SELECT count(*) FROM file_keys k WHERE k.file_id = f.id) \
    FROM files f LEFT JOIN members m ON m.id = f.uploader_member_id";

fn file_row(r: &Row) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        name: r.get(2)?,
        size: r.get(3)?,
        chunk_size: r.get(4)?,
        sha256: r.get(5)?,
        uploader_member_id: r.get(6)?,
        uploader_pubkey: r.get(7)?,
        target_spec: r.get(8)?,
        created_at: r.get(9)?,
        uploader_name: r.get(10)?,
        recipients: r.get(11)?,
    })
}

const STATE_COLS: &str =
    "mesh_id, key, value, version, updated_by_member, updated_by_name, updated_at";

fn state_row(r: &Row) -> rusqlite::Result<StateRow> {
    Ok(StateRow {
        mesh_id: r.get(0)?,
        key: r.get(1)?,
        value: r.get(2)?,
        version: r.get(3)?,
        updated_by_member: r.get(4)?,
        updated_by_name: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

const MEMORY_COLS: &str =
    "id, mesh_id, content, tags, remembered_by, remembered_by_name, remembered_at";

fn memory_row(r: &Row) -> rusqlite::Result<MemoryRow> {
    Ok(MemoryRow {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        content: r.get(2)?,
        tags: r.get(3)?,
        remembered_by: r.get(4)?,
        remembered_by_name: r.get(5)?,
        remembered_at: r.get(6)?,
    })
}

const SCHEDULE_COLS: &str = "id, mesh_id, member_id, session_pubkey, target_spec, nonce, ciphertext, copies, message, \
                             subtype, cron, tz, next_fire_at, fired_count, created_at";

fn schedule_row(r: &Row) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        member_id: r.get(2)?,
        session_pubkey: r.get(3)?,
        target_spec: r.get(4)?,
        nonce: r.get(5)?,
        ciphertext: r.get(6)?,
        copies: r.get(7)?,
        message: r.get(8)?,
        subtype: r.get(9)?,
        cron: r.get(10)?,
        tz: r.get(11)?,
        next_fire_at: r.get(12)?,
        fired_count: r.get(13)?,
        created_at: r.get(14)?,
    })
}

const TOPIC_COLS: &str = "id, mesh_id, name, description, visibility, created_by_member_id, encrypted, created_at, archived_at";

fn topic_row(r: &Row) -> rusqlite::Result<Topic> {
    Ok(Topic {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        visibility: r.get(4)?,
        created_by_member_id: r.get(5)?,
        encrypted: r.get(6)?,
        created_at: r.get(7)?,
        archived_at: r.get(8)?,
    })
}

/// Columns of a topic message joined with its sender (`tm`, `sm`, `s`), as [`topic_message_row`] reads them
/// from column `at` on.
const TOPIC_MESSAGE_SELECT: &str = "tm.seq, tm.id, tm.topic_id, tm.sender_member_id, tm.sender_session_pubkey,     tm.nonce, tm.ciphertext, tm.body_version, tm.reply_to_id, tm.client_message_id, tm.created_at, sm.pubkey,     COALESCE(s.display_name, sm.display_name)";
const TOPIC_MESSAGE_JOIN: &str = "JOIN members sm ON sm.id = tm.sender_member_id     LEFT JOIN sessions s ON s.mesh_id = sm.mesh_id AND s.session_pubkey = tm.sender_session_pubkey";

fn topic_message_row(r: &Row, at: usize) -> rusqlite::Result<TopicMessageRow> {
    Ok(TopicMessageRow {
        seq: r.get(at)?,
        message: TopicMessage {
            id: r.get(at + 1)?,
            topic_id: r.get(at + 2)?,
            sender_member_id: r.get(at + 3)?,
            sender_session_pubkey: r.get(at + 4)?,
            nonce: r.get(at + 5)?,
            ciphertext: r.get(at + 6)?,
            body_version: r.get(at + 7)?,
            reply_to_id: r.get(at + 8)?,
            client_message_id: r.get(at + 9)?,
            created_at: r.get(at + 10)?,
        },
        sender_member_pubkey: r.get(at + 11)?,
        sender_name: r.get(at + 12)?,
    })
}

const API_KEY_COLS: &str = "id, mesh_id, label, secret_hash, secret_prefix, capabilities, topic_scopes,     issued_by_member_id, created_at, last_used_at, revoked_at, expires_at";

fn api_key_row(r: &Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        label: r.get(2)?,
        secret_hash: r.get(3)?,
        secret_prefix: r.get(4)?,
        capabilities: r.get(5)?,
        topic_scopes: r.get(6)?,
        issued_by_member_id: r.get(7)?,
        created_at: r.get(8)?,
        last_used_at: r.get(9)?,
        revoked_at: r.get(10)?,
        expires_at: r.get(11)?,
    })
}

fn sealed_key_row(r: &Row) -> rusqlite::Result<SealedKey> {
    Ok(SealedKey {
        topic_id: r.get(0)?,
        member_id: r.get(1)?,
        encrypted_key: r.get(2)?,
        nonce: r.get(3)?,
        sealed_by_member_id: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// `[prefix, prefix + DEL)`: the range of ids (base62) that start with `prefix`, for a primary-key range scan.
fn prefix_range(prefix: &str) -> (String, String) {
    let mut upper = prefix.to_string();
    upper.push('\u{7f}');
    (prefix.to_string(), upper)
}

impl Store for SqliteStore {
    fn ping(&self) -> Result<()> {
        self.conn
            .query_row("SELECT count(*) FROM meshes", [], |r| r.get::<_, i64>(0))
            .map_err(db)?;
        Ok(())
    }

    fn commit(&mut self) -> Result<bool> {
        if !self.in_tx {
            return Ok(false);
        }
        self.in_tx = false;
        // SQLite rolls a transaction back by itself after some errors (SQLITE_FULL, SQLITE_IOERR); committing then
        // would fail with "no transaction is active", and the batch's writes are gone either way.
        if self.conn.is_autocommit() {
            return Err(Error::io(
                "database: the transaction was rolled back after a write error",
            ));
        }
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            return Err(db(e));
        }
        if let Some(c) = &self.checkpointer {
            c.kick();
        }
        self.bound_wal();
        Ok(true)
    }

    fn rollback(&mut self) {
        if self.in_tx && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.in_tx = false;
    }

    fn create_mesh(&mut self, mesh: &Mesh, owner: &Member) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO meshes (id, name, slug, owner_pubkey, created_at, archived_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![mesh.id, mesh.name, mesh.slug, mesh.owner_pubkey, mesh.created_at, mesh.archived_at])
            })
            .map_err(db)?;
        self.insert_member(owner)
    }

    fn mesh(&self, id: &str) -> Result<Option<Mesh>> {
        self.conn
            .prepare_cached("SELECT id, name, slug, owner_pubkey, created_at, archived_at FROM meshes WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    Ok(Mesh {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        slug: r.get(2)?,
                        owner_pubkey: r.get(3)?,
                        created_at: r.get(4)?,
                        archived_at: r.get(5)?,
                    })
                })
                .optional()
            })
            .map_err(db)
    }

    fn slug_taken(&self, slug: &str) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM meshes WHERE slug = ?1")
            .and_then(|mut s| s.exists([slug]))
            .map_err(db)
    }

    fn member(&self, id: &str) -> Result<Option<Member>> {
        self.conn
            .prepare_cached(&format!("SELECT {MEMBER_COLS} FROM members WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id], member_row).optional())
            .map_err(db)
    }

    fn member_by_pubkey(&self, mesh_id: &str, pubkey: &str) -> Result<Option<Member>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {MEMBER_COLS} FROM members WHERE mesh_id = ?1 AND pubkey = ?2"
            ))
            .and_then(|mut s| s.query_row([mesh_id, pubkey], member_row).optional())
            .map_err(db)
    }

    fn members(&self, mesh_id: &str) -> Result<Vec<Member>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {MEMBER_COLS} FROM members WHERE mesh_id = ?1 ORDER BY joined_at, id"
            ))
            .and_then(|mut s| s.query_map([mesh_id], member_row)?.collect())
            .map_err(db)
    }

    fn insert_member(&mut self, m: &Member) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO members ({MEMBER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    m.id,
                    m.mesh_id,
                    m.pubkey,
                    m.display_name,
                    m.role,
                    m.role_tag,
                    m.groups,
                    m.message_mode,
                    m.joined_at,
                    m.last_seen_at,
                    m.revoked_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    fn set_member_groups(&mut self, member_id: &str, groups: &str) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE members SET groups = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute([member_id, groups]))
            .map_err(db)?;
        Ok(())
    }

    fn set_member_revoked(&mut self, member_id: &str, at: Option<i64>) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE members SET revoked_at = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![member_id, at]))
            .map_err(db)?;
        Ok(())
    }

    fn insert_invite(&mut self, i: &Invite) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO invites (id, mesh_id, token, token_hash, payload, max_uses, used_count, role, expires_at, \
                 created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    i.id,
                    i.mesh_id,
                    i.token,
                    i.token_hash,
                    i.payload,
                    i.max_uses,
                    i.used_count,
                    i.role,
                    i.expires_at,
                    i.created_at,
                    i.revoked_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    fn invite_by_token(&self, token: &str) -> Result<Option<Invite>> {
        self.conn
            .prepare_cached(
                "SELECT id, mesh_id, token, token_hash, payload, max_uses, used_count, role, expires_at, created_at, \
                 revoked_at FROM invites WHERE token = ?1",
            )
            .and_then(|mut s| {
                s.query_row([token], |r| {
                    Ok(Invite {
                        id: r.get(0)?,
                        mesh_id: r.get(1)?,
                        token: r.get(2)?,
                        token_hash: r.get(3)?,
                        payload: r.get(4)?,
                        max_uses: r.get(5)?,
                        used_count: r.get(6)?,
                        role: r.get(7)?,
                        expires_at: r.get(8)?,
                        created_at: r.get(9)?,
                        revoked_at: r.get(10)?,
                    })
                })
                .optional()
            })
            .map_err(db)
    }

    fn use_invite(&mut self, id: &str) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached("UPDATE invites SET used_count = used_count + 1 WHERE id = ?1 AND used_count < max_uses")
            .and_then(|mut s| s.execute([id]))
            .map_err(db)?;
        Ok(n == 1)
    }

    fn upsert_session(&mut self, s: &Session) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (mesh_id, session_pubkey, member_id, display_name, session_id, last_seen_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (mesh_id, session_pubkey) DO UPDATE SET \
                 member_id = excluded.member_id, display_name = excluded.display_name, \
                 session_id = excluded.session_id, last_seen_at = excluded.last_seen_at",
            )
            .and_then(|mut st| {
                st.execute(params![s.mesh_id, s.session_pubkey, s.member_id, s.display_name, s.session_id, s.last_seen_at])
            })
            .map_err(db)?;
        Ok(())
    }

    fn session(&self, mesh_id: &str, session_pubkey: &str) -> Result<Option<Session>> {
        self.conn
            .prepare_cached(
                "SELECT mesh_id, session_pubkey, member_id, display_name, session_id, last_seen_at FROM sessions \
                 WHERE mesh_id = ?1 AND session_pubkey = ?2",
            )
            .and_then(|mut s| {
                s.query_row([mesh_id, session_pubkey], |r| {
                    Ok(Session {
                        mesh_id: r.get(0)?,
                        session_pubkey: r.get(1)?,
                        member_id: r.get(2)?,
                        display_name: r.get(3)?,
                        session_id: r.get(4)?,
                        last_seen_at: r.get(5)?,
                    })
                })
                .optional()
            })
            .map_err(db)
    }

    fn insert_message(&mut self, m: &Message, deliveries: &[NewDelivery]) -> Result<Vec<i64>> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO messages ({MESSAGE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    m.id,
                    m.mesh_id,
                    m.sender_member_id,
                    m.sender_session_pubkey,
                    m.target_spec,
                    m.priority.as_str(),
                    m.nonce,
                    m.ciphertext,
                    m.client_message_id,
                    m.subtype,
                    m.reply_to_id,
                    m.body_version,
                    m.created_at
                ])
            })
            .map_err(db)?;
        let mut s = self
            .conn
            .prepare_cached(
                "INSERT INTO deliveries (message_id, recipient_member_id, recipient_session_pubkey, nonce, ciphertext, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(db)?;
        let mut ids = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            s.execute(params![
                m.id,
                d.recipient_member_id,
                d.recipient_session_pubkey,
                d.nonce,
                d.ciphertext,
                m.created_at
            ])
            .map_err(db)?;
            ids.push(self.conn.last_insert_rowid());
        }
        Ok(ids)
    }

    fn message_by_client_id(
        &self,
        mesh_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT id FROM messages WHERE mesh_id = ?1 AND sender_member_id = ?2 AND client_message_id = ?3",
            )
            .and_then(|mut s| s.query_row([mesh_id, sender_member_id, client_message_id], |r| r.get(0)).optional())
            .map_err(db)
    }

    fn messages_by_prefix(
        &self,
        mesh_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        // Ids are base62, so a prefix has no LIKE wildcards; a range scan on the primary key finds it.
        let mut upper = prefix.to_string();
        upper.push('\u{7f}');
        self.conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLS} FROM messages WHERE id >= ?1 AND id < ?2 AND mesh_id = ?3 ORDER BY id LIMIT ?4"
            ))
            .and_then(|mut s| s.query_map(params![prefix, upper, mesh_id, limit as i64], |r| message_row(r, 0))?.collect())
            .map_err(db)
    }

    fn deliveries_of(&self, message_id: &str) -> Result<Vec<DeliveryState>> {
        self.conn
            .prepare_cached(
                "SELECT d.recipient_member_id, d.recipient_session_pubkey, \
                 COALESCE(s.display_name, mb.display_name), mb.pubkey, d.delivered_at \
                 FROM deliveries d JOIN members mb ON mb.id = d.recipient_member_id \
                 LEFT JOIN sessions s ON s.mesh_id = mb.mesh_id AND s.session_pubkey = d.recipient_session_pubkey \
                 WHERE d.created_at = (SELECT created_at FROM messages WHERE id = ?1) AND d.message_id = ?1 \
                 ORDER BY d.id",
            )
            .and_then(|mut s| {
                s.query_map([message_id], |r| {
                    Ok(DeliveryState {
                        recipient_member_id: r.get(0)?,
                        recipient_session_pubkey: r.get(1)?,
                        recipient_name: r.get(2)?,
                        recipient_member_pubkey: r.get(3)?,
                        delivered_at: r.get(4)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    fn pending(
        &self,
        member_id: &str,
        session_pubkey: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Pending>> {
        self.conn
            .prepare_cached(&format!(
                "{PENDING_SELECT} WHERE d.recipient_member_id = ?1 AND d.delivered_at IS NULL \
                 AND (d.recipient_session_pubkey IS NULL OR d.recipient_session_pubkey = ?2) \
                 ORDER BY d.created_at, d.id LIMIT ?3"
            ))
            .and_then(|mut s| {
                s.query_map(
                    params![
                        member_id,
                        session_pubkey,
                        limit.min(i64::MAX as usize) as i64
                    ],
                    pending_row,
                )?
                .collect()
            })
            .map_err(db)
    }

    fn pending_delivery(&self, delivery_id: i64) -> Result<Option<Pending>> {
        self.conn
            .prepare_cached(&format!(
                "{PENDING_SELECT} WHERE d.id = ?1 AND d.delivered_at IS NULL"
            ))
            .and_then(|mut s| s.query_row([delivery_id], pending_row).optional())
            .map_err(db)
    }

    fn mark_delivered(
        &mut self,
        mesh_id: &str,
        member_id: &str,
        message_id: Option<&str>,
        client_message_id: Option<&str>,
        at: i64,
    ) -> Result<Vec<i64>> {
        // Found first, then marked by row id: an UPDATE ... RETURNING builds a temporary table for its rows on
        // every call, which cost as much as storing the message. Each id kind is led by an index: a broker id by
        // `deliveries_message`, a client id by the member's own pending rows. (Matching `id = ? OR
        // client_message_id = ?` in one statement read every message of the mesh per ack: the client id is a
        // prefix of no index.)
        let mut found: Vec<i64> = Vec::new();
        let mut find = |sql: &str, id: &str| -> Result<()> {
            let ids: Vec<i64> = self
                .conn
                .prepare_cached(sql)
                .and_then(|mut s| {
                    s.query_map(params![mesh_id, member_id, id], |r| r.get(0))?
                        .collect()
                })
                .map_err(db)?;
            for i in ids {
                if !found.contains(&i) {
                    found.push(i);
                }
            }
            Ok(())
        };
        if let Some(id) = message_id {
            find(UNDELIVERED_BY_ID, id)?;
        }
        if let Some(cid) = client_message_id {
            find(UNDELIVERED_BY_CLIENT_ID, cid)?;
        }
        if found.is_empty() {
            return Ok(found);
        }
        self.begin()?;
        let mut mark = self
            .conn
            .prepare_cached("UPDATE deliveries SET delivered_at = ?2 WHERE id = ?1")
            .map_err(db)?;
        for id in &found {
            mark.execute(params![id, at]).map_err(db)?;
        }
        Ok(found)
    }

    fn pending_count(&self) -> Result<i64> {
        self.conn
            .prepare_cached("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db)
    }

    fn insert_file(&mut self, f: &FileRow, keys: &[(String, String)]) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO files (id, mesh_id, name, size, chunk_size, sha256, uploader_member_id, uploader_pubkey, \
                 target_spec, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    f.id,
                    f.mesh_id,
                    f.name,
                    f.size,
                    f.chunk_size,
                    f.sha256,
                    f.uploader_member_id,
                    f.uploader_pubkey,
                    f.target_spec,
                    f.created_at
                ])
            })
            .map_err(db)?;
        let mut s = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO file_keys (file_id, recipient_pubkey, sealed_key) VALUES (?1, ?2, ?3)",
            )
            .map_err(db)?;
        for (pubkey, sealed) in keys {
            s.execute(params![f.id, pubkey, sealed]).map_err(db)?;
        }
        Ok(())
    }

    fn file(&self, id: &str) -> Result<Option<FileRow>> {
        self.conn
            .prepare_cached(&format!("{FILE_SELECT} WHERE f.id = ?1"))
            .and_then(|mut s| s.query_row([id], file_row).optional())
            .map_err(db)
    }

    fn file_key(&self, file_id: &str, pubkey: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT sealed_key FROM file_keys WHERE file_id = ?1 AND recipient_pubkey = ?2",
            )
            .and_then(|mut s| s.query_row([file_id, pubkey], |r| r.get(0)).optional())
            .map_err(db)
    }

    fn files_for(&self, mesh_id: &str, member_id: &str, keys: &[&str]) -> Result<Vec<FileRow>> {
        // The keys go in as one JSON array, so the statement stays the same (and cached) for any number of them.
        let keys = serde_json::to_string(keys)
            .map_err(|e| Error::internal(format!("encoding keys: {e}")))?;
        self.conn
            .prepare_cached(&format!(
                "{FILE_SELECT} WHERE f.mesh_id = ?1 AND (f.uploader_member_id = ?2 OR EXISTS (SELECT 1 FROM \
                 file_keys k WHERE k.file_id = f.id AND k.recipient_pubkey IN (SELECT value FROM json_each(?3)))) \
                 ORDER BY f.created_at DESC, f.id"
            ))
            .and_then(|mut s| s.query_map(params![mesh_id, member_id, keys], file_row)?.collect())
            .map_err(db)
    }

    fn delete_file(&mut self, id: &str) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("DELETE FROM files WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map_err(db)?;
        Ok(())
    }

    fn state_get(&self, mesh_id: &str, key: &str) -> Result<Option<StateRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {STATE_COLS} FROM state WHERE mesh_id = ?1 AND key = ?2"
            ))
            .and_then(|mut s| s.query_row([mesh_id, key], state_row).optional())
            .map_err(db)
    }

    fn state_list(&self, mesh_id: &str) -> Result<Vec<StateRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {STATE_COLS} FROM state WHERE mesh_id = ?1 AND value IS NOT NULL ORDER BY key"
            ))
            .and_then(|mut s| s.query_map([mesh_id], state_row)?.collect())
            .map_err(db)
    }

    fn state_put(&mut self, row: &StateRow, expected: Option<i64>) -> Result<StatePut> {
        self.begin()?;
        let current = self.state_get(&row.mesh_id, &row.key)?;
        let live = current
            .as_ref()
            .filter(|c| c.value.is_some())
            .map_or(0, |c| c.version);
        if let Some(e) = expected
            && e != live
        {
            return Ok(StatePut::Conflict(live));
        }
        let version = current.map_or(0, |c| c.version) + 1;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO state ({STATE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (mesh_id, key) DO UPDATE SET value = excluded.value, version = excluded.version, \
                 updated_by_member = excluded.updated_by_member, updated_by_name = excluded.updated_by_name, \
                 updated_at = excluded.updated_at"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    row.mesh_id,
                    row.key,
                    row.value,
                    version,
                    row.updated_by_member,
                    row.updated_by_name,
                    row.updated_at
                ])
            })
            .map_err(db)?;
        Ok(StatePut::Written(version))
    }

    fn memory_insert(&mut self, m: &MemoryRow) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO memories ({MEMORY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    m.id,
                    m.mesh_id,
                    m.content,
                    m.tags,
                    m.remembered_by,
                    m.remembered_by_name,
                    m.remembered_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    fn memory_search(
        &self,
        mesh_id: &str,
        fts_query: &str,
        limit: usize,
    ) -> Result<Vec<MemoryHit>> {
        // Tags weigh double: a memory tagged with a word is about it.
        self.conn
            .prepare_cached(
                "SELECT m.id, m.mesh_id, m.content, m.tags, m.remembered_by, m.remembered_by_name, m.remembered_at, \
                 bm25(memories_fts, 1.0, 2.0) AS rank, snippet(memories_fts, 0, '[', ']', '…', 16) \
                 FROM memories_fts JOIN memories m ON m.seq = memories_fts.rowid \
                 WHERE memories_fts MATCH ?1 AND m.mesh_id = ?2 AND m.forgotten_at IS NULL \
                 ORDER BY rank, m.remembered_at DESC LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![fts_query, mesh_id, limit as i64], |r| {
                    Ok(MemoryHit {
                        memory: memory_row(r)?,
                        score: -r.get::<_, f64>(7)?,
                        snippet: r.get(8)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    fn memory_ids(&self, mesh_id: &str, prefix: &str, limit: usize) -> Result<Vec<String>> {
        // Ids are base62, so a prefix has no LIKE wildcards; a range scan finds it.
        let mut upper = prefix.to_string();
        upper.push('\u{7f}');
        self.conn
            .prepare_cached(
                "SELECT id FROM memories WHERE mesh_id = ?1 AND id >= ?2 AND id < ?3 AND forgotten_at IS NULL \
                 ORDER BY id LIMIT ?4",
            )
            .and_then(|mut s| {
                s.query_map(params![mesh_id, prefix, upper, limit as i64], |r| r.get(0))?
                    .collect()
            })
            .map_err(db)
    }

    fn memory_forget(&mut self, mesh_id: &str, id: &str, at: i64) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "UPDATE memories SET forgotten_at = ?3 WHERE mesh_id = ?1 AND id = ?2 AND forgotten_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![mesh_id, id, at]))
            .map_err(db)?;
        Ok(n == 1)
    }

    fn schedule_insert(&mut self, r: &ScheduleRow) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO schedules ({SCHEDULE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                 ?13, ?14, ?15)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    r.id,
                    r.mesh_id,
                    r.member_id,
                    r.session_pubkey,
                    r.target_spec,
                    r.nonce,
                    r.ciphertext,
                    r.copies,
                    r.message,
                    r.subtype,
                    r.cron,
                    r.tz,
                    r.next_fire_at,
                    r.fired_count,
                    r.created_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    fn schedules_of(&self, mesh_id: &str, member_id: &str) -> Result<Vec<ScheduleRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {SCHEDULE_COLS} FROM schedules WHERE member_id = ?1 AND mesh_id = ?2 AND cancelled = 0 \
                 AND next_fire_at IS NOT NULL ORDER BY next_fire_at, id"
            ))
            .and_then(|mut s| s.query_map([member_id, mesh_id], schedule_row)?.collect())
            .map_err(db)
    }

    fn schedule_cancel(&mut self, id: &str) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "UPDATE schedules SET cancelled = 1 WHERE id = ?1 AND cancelled = 0 AND next_fire_at IS NOT NULL",
            )
            .and_then(|mut s| s.execute([id]))
            .map_err(db)?;
        Ok(n == 1)
    }

    fn schedules_due(&self, now: i64, limit: usize) -> Result<Vec<ScheduleRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {SCHEDULE_COLS} FROM schedules WHERE cancelled = 0 AND next_fire_at IS NOT NULL \
                 AND next_fire_at <= ?1 ORDER BY next_fire_at, id LIMIT ?2"
            ))
            .and_then(|mut s| s.query_map(params![now, limit as i64], schedule_row)?.collect())
            .map_err(db)
    }

    fn schedule_next_due(&self) -> Result<Option<i64>> {
        self.conn
            .prepare_cached(
                "SELECT min(next_fire_at) FROM schedules WHERE cancelled = 0 AND next_fire_at IS NOT NULL",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db)
    }

    fn schedule_fired(&mut self, id: &str, next_fire_at: Option<i64>, at: i64) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "UPDATE schedules SET fired_count = fired_count + 1, last_fired_at = ?3, next_fire_at = ?2 \
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, next_fire_at, at]))
            .map_err(db)?;
        Ok(())
    }

    fn member_presence(&self, member_id: &str) -> Result<MemberPresence> {
        self.conn
            .prepare_cached("SELECT summary, status, visible FROM members WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([member_id], |r| {
                    Ok(MemberPresence {
                        summary: r.get(0)?,
                        status: r.get(1)?,
                        visible: r.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(db)
            .map(|p| {
                p.unwrap_or(MemberPresence {
                    summary: None,
                    status: None,
                    visible: true,
                })
            })
    }

    fn set_member_presence(&mut self, member_id: &str, p: &MemberPresence) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "UPDATE members SET summary = ?2, status = ?3, visible = ?4 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![member_id, p.summary, p.status, p.visible]))
            .map_err(db)?;
        Ok(())
    }

    fn set_member_name(&mut self, member_id: &str, display_name: &str) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE members SET display_name = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute([member_id, display_name]))
            .map_err(db)?;
        Ok(())
    }

    fn set_member_role_tag(&mut self, member_id: &str, role_tag: Option<&str>) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE members SET role_tag = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![member_id, role_tag]))
            .map_err(db)?;
        Ok(())
    }

    fn insert_topic(&mut self, t: &Topic) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO topics ({TOPIC_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    t.id,
                    t.mesh_id,
                    t.name,
                    t.description,
                    t.visibility,
                    t.created_by_member_id,
                    t.encrypted,
                    t.created_at,
                    t.archived_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    fn topic(&self, mesh_id: &str, id_or_name: &str) -> Result<Option<Topic>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {TOPIC_COLS} FROM topics WHERE mesh_id = ?1 AND archived_at IS NULL \
                 AND (id = ?2 OR name = ?2) ORDER BY id = ?2 DESC LIMIT 1"
            ))
            .and_then(|mut s| s.query_row([mesh_id, id_or_name], topic_row).optional())
            .map_err(db)
    }

    fn topics(&self, mesh_id: &str, member_id: &str) -> Result<Vec<TopicListing>> {
        let cols = TOPIC_COLS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.conn
            .prepare_cached(&format!(
                "SELECT {cols}, (SELECT count(*) FROM topic_members x WHERE x.topic_id = t.id), \
                 tm.member_id IS NOT NULL, \
                 CASE WHEN tm.member_id IS NULL THEN 0 ELSE (SELECT count(*) FROM topic_messages m \
                     WHERE m.topic_id = t.id AND m.sender_member_id != ?2 \
                     AND m.created_at > COALESCE(tm.last_read_at, 0)) END \
                 FROM topics t LEFT JOIN topic_members tm ON tm.topic_id = t.id AND tm.member_id = ?2 \
                 WHERE t.mesh_id = ?1 AND t.archived_at IS NULL ORDER BY t.name"
            ))
            .and_then(|mut s| {
                s.query_map([mesh_id, member_id], |r| {
                    Ok(TopicListing {
                        topic: topic_row(r)?,
                        member_count: r.get(9)?,
                        joined: r.get(10)?,
                        unread: r.get(11)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    fn topic_members(&self, topic_id: &str) -> Result<Vec<TopicMembership>> {
        self.conn
            .prepare_cached(
                "SELECT tm.member_id, m.pubkey, m.display_name, tm.role, tm.joined_at, tm.last_read_at, \
                 m.revoked_at IS NOT NULL, k.member_id IS NOT NULL \
                 FROM topic_members tm JOIN members m ON m.id = tm.member_id \
                 LEFT JOIN topic_keys k ON k.topic_id = tm.topic_id AND k.member_id = tm.member_id \
                 WHERE tm.topic_id = ?1 ORDER BY m.display_name, m.id",
            )
            .and_then(|mut s| {
                s.query_map([topic_id], |r| {
                    Ok(TopicMembership {
                        member_id: r.get(0)?,
                        pubkey: r.get(1)?,
                        display_name: r.get(2)?,
                        role: r.get(3)?,
                        joined_at: r.get(4)?,
                        last_read_at: r.get(5)?,
                        revoked: r.get(6)?,
                        has_key: r.get(7)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    fn join_topic(&mut self, topic_id: &str, member_id: &str, role: &str, at: i64) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO topic_members (topic_id, member_id, role, joined_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (topic_id, member_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![topic_id, member_id, role, at]))
            .map_err(db)?;
        Ok(n == 1)
    }

    fn leave_topic(&mut self, topic_id: &str, member_id: &str) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached("DELETE FROM topic_members WHERE topic_id = ?1 AND member_id = ?2")
            .and_then(|mut s| s.execute([topic_id, member_id]))
            .map_err(db)?;
        Ok(n == 1)
    }

    fn mark_topic_read(&mut self, topic_id: &str, member_id: &str, at: i64) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "UPDATE topic_members SET last_read_at = ?3 WHERE topic_id = ?1 AND member_id = ?2",
            )
            .and_then(|mut s| s.execute(params![topic_id, member_id, at]))
            .map_err(db)?;
        Ok(n == 1)
    }

    fn put_topic_key(&mut self, k: &SealedKey) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO topic_keys (topic_id, member_id, encrypted_key, nonce, sealed_by_member_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (topic_id, member_id) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    k.topic_id,
                    k.member_id,
                    k.encrypted_key,
                    k.nonce,
                    k.sealed_by_member_id,
                    k.created_at
                ])
            })
            .map_err(db)?;
        Ok(n == 1)
    }

    fn topic_key(&self, topic_id: &str, member_id: &str) -> Result<Option<SealedKey>> {
        self.conn
            .prepare_cached(
                "SELECT topic_id, member_id, encrypted_key, nonce, sealed_by_member_id, created_at \
                 FROM topic_keys WHERE topic_id = ?1 AND member_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row([topic_id, member_id], sealed_key_row)
                    .optional()
            })
            .map_err(db)
    }

    fn insert_topic_message(&mut self, m: &TopicMessage) -> Result<i64> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO topic_messages (id, topic_id, sender_member_id, sender_session_pubkey, nonce, \
                 ciphertext, body_version, reply_to_id, client_message_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    m.id,
                    m.topic_id,
                    m.sender_member_id,
                    m.sender_session_pubkey,
                    m.nonce,
                    m.ciphertext,
                    m.body_version,
                    m.reply_to_id,
                    m.client_message_id,
                    m.created_at
                ])
            })
            .map_err(db)?;
        Ok(self.conn.last_insert_rowid())
    }

    fn topic_messages(&self, topic_id: &str, page: TopicPage) -> Result<Vec<TopicMessageRow>> {
        let (cond, order, seq, limit) = match page {
            TopicPage::Before(seq, limit) => {
                ("tm.seq < ?2", "DESC", seq.unwrap_or(i64::MAX), limit)
            }
            TopicPage::After(seq, limit) => ("tm.seq > ?2", "ASC", seq, limit),
        };
        self.conn
            .prepare_cached(&format!(
                "SELECT {TOPIC_MESSAGE_SELECT} FROM topic_messages tm {TOPIC_MESSAGE_JOIN} \
                 WHERE tm.topic_id = ?1 AND {cond} ORDER BY tm.seq {order} LIMIT ?3"
            ))
            .and_then(|mut s| {
                s.query_map(
                    params![topic_id, seq, limit.min(i64::MAX as usize) as i64],
                    |r| topic_message_row(r, 0),
                )?
                .collect()
            })
            .map_err(db)
    }

    fn topic_messages_by_prefix(
        &self,
        topic_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<TopicMessageRow>> {
        let (lo, hi) = prefix_range(prefix);
        self.conn
            .prepare_cached(&format!(
                "SELECT {TOPIC_MESSAGE_SELECT} FROM topic_messages tm {TOPIC_MESSAGE_JOIN} \
                 WHERE tm.id >= ?1 AND tm.id < ?2 AND tm.topic_id = ?3 ORDER BY tm.id LIMIT ?4"
            ))
            .and_then(|mut s| {
                s.query_map(params![lo, hi, topic_id, limit as i64], |r| {
                    topic_message_row(r, 0)
                })?
                .collect()
            })
            .map_err(db)
    }

    fn topic_message_by_client_id(
        &self,
        topic_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT id FROM topic_messages WHERE topic_id = ?1 AND sender_member_id = ?2 \
                 AND client_message_id = ?3",
            )
            .and_then(|mut s| {
                s.query_row([topic_id, sender_member_id, client_message_id], |r| {
                    r.get(0)
                })
                .optional()
            })
            .map_err(db)
    }

    fn insert_notification(
        &mut self,
        id: &str,
        message_id: &str,
        member_id: &str,
        kind: &str,
        at: i64,
    ) -> Result<bool> {
        self.begin()?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO notifications (id, message_id, member_id, kind, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (message_id, member_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![id, message_id, member_id, kind, at]))
            .map_err(db)?;
        Ok(n == 1)
    }

    fn notifications(
        &self,
        member_id: &str,
        unread_only: bool,
        limit: usize,
    ) -> Result<Vec<NotificationRow>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT n.id, t.name, n.kind, n.created_at, n.read_at, {TOPIC_MESSAGE_SELECT} \
                 FROM notifications n JOIN topic_messages tm ON tm.id = n.message_id \
                 JOIN topics t ON t.id = tm.topic_id {TOPIC_MESSAGE_JOIN} \
                 WHERE n.member_id = ?1 AND (?2 = 0 OR n.read_at IS NULL) \
                 ORDER BY n.created_at DESC, tm.seq DESC LIMIT ?3"
            ))
            .and_then(|mut s| {
                s.query_map(params![member_id, unread_only, limit as i64], |r| {
                    Ok(NotificationRow {
                        id: r.get(0)?,
                        topic_name: r.get(1)?,
                        kind: r.get(2)?,
                        created_at: r.get(3)?,
                        read_at: r.get(4)?,
                        message: topic_message_row(r, 5)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
    }

    fn mark_notifications_read(
        &mut self,
        member_id: &str,
        ids: Option<&[String]>,
        at: i64,
    ) -> Result<usize> {
        self.begin()?;
        let Some(ids) = ids else {
            return self
                .conn
                .prepare_cached(
                    "UPDATE notifications SET read_at = ?2 WHERE member_id = ?1 AND read_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![member_id, at]))
                .map_err(db);
        };
        let mut s = self
            .conn
            .prepare_cached(
                "UPDATE notifications SET read_at = ?3 WHERE member_id = ?1 AND id = ?2 AND read_at IS NULL",
            )
            .map_err(db)?;
        let mut n = 0;
        for id in ids {
            n += s.execute(params![member_id, id, at]).map_err(db)?;
        }
        Ok(n)
    }

    fn insert_api_key(&mut self, k: &ApiKey) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO api_keys ({API_KEY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    k.id,
                    k.mesh_id,
                    k.label,
                    k.secret_hash,
                    k.secret_prefix,
                    k.capabilities,
                    k.topic_scopes,
                    k.issued_by_member_id,
                    k.created_at,
                    k.last_used_at,
                    k.revoked_at,
                    k.expires_at
                ])
            })
            .map_err(db)?;
        Ok(())
    }

    fn api_keys(&self, mesh_id: &str) -> Result<Vec<ApiKey>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {API_KEY_COLS} FROM api_keys WHERE mesh_id = ?1 ORDER BY created_at DESC, id"
            ))
            .and_then(|mut s| s.query_map([mesh_id], api_key_row)?.collect())
            .map_err(db)
    }

    fn api_keys_by_prefix(&self, secret_prefix: &str) -> Result<Vec<ApiKey>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {API_KEY_COLS} FROM api_keys WHERE secret_prefix = ?1"
            ))
            .and_then(|mut s| s.query_map([secret_prefix], api_key_row)?.collect())
            .map_err(db)
    }

    fn revoke_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, at]))
            .map_err(db)?;
        Ok(())
    }

    fn touch_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        self.begin()?;
        self.conn
            .prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, at]))
            .map_err(db)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh data directory, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "cm-store-{tag}-{}-{}",
                std::process::id(),
                new_id()
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mesh(id: &str, slug: &str) -> Mesh {
        Mesh {
            id: id.into(),
            name: "Dev".into(),
            slug: slug.into(),
            owner_pubkey: "aa".repeat(32),
            created_at: 1,
            archived_at: None,
        }
    }

    fn member(id: &str, mesh_id: &str, pubkey: &str) -> Member {
        Member {
            id: id.into(),
            mesh_id: mesh_id.into(),
            pubkey: pubkey.into(),
            display_name: format!("name-{id}"),
            role: "member".into(),
            role_tag: None,
            groups: "[]".into(),
            message_mode: "push".into(),
            joined_at: 1,
            last_seen_at: None,
            revoked_at: None,
        }
    }

    fn message(id: &str, cmid: Option<&str>, at: i64) -> Message {
        Message {
            id: id.into(),
            mesh_id: "m1".into(),
            sender_member_id: "a".into(),
            sender_session_pubkey: None,
            target_spec: "*".into(),
            priority: Priority::Next,
            nonce: String::new(),
            ciphertext: String::new(),
            client_message_id: cmid.map(Into::into),
            subtype: None,
            reply_to_id: None,
            body_version: None,
            created_at: at,
        }
    }

    fn copy(member: &str, session: Option<&str>, ct: &str) -> NewDelivery {
        NewDelivery {
            recipient_member_id: member.into(),
            recipient_session_pubkey: session.map(Into::into),
            nonce: Some("n".into()),
            ciphertext: Some(ct.into()),
        }
    }

    /// A store with mesh m1 and members a (owner), b.
    fn seeded(dir: &TempDir) -> SqliteStore {
        let mut s = SqliteStore::open(&dir.0).unwrap();
        s.create_mesh(&mesh("m1", "dev"), &member("a", "m1", "pa"))
            .unwrap();
        s.insert_member(&member("b", "m1", "pb")).unwrap();
        s.commit().unwrap();
        s
    }

    #[test]
    fn new_ids_are_32_base62_chars_and_differ() {
        let a = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, new_id());
    }

    #[test]
    fn open_sets_pragmas_and_migrates_once() {
        let dir = TempDir::new("open");
        let s = SqliteStore::open(&dir.0).unwrap();
        let mode: String = s
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = s
            .conn()
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let v: i64 = s
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        drop(s);
        // A second open finds the schema current and does not re-run migration 1 (it would fail on CREATE TABLE).
        let s = SqliteStore::open(&dir.0).unwrap();
        s.ping().unwrap();
    }

    #[test]
    fn committed_pages_reach_the_database_file_without_a_close() {
        let dir = TempDir::new("checkpoint");
        let mut s = seeded(&dir);
        let auto: i64 = s
            .conn()
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 0, "the checkpoint thread does it");
        let file = dir.0.join("broker.db");
        let before = std::fs::metadata(&file).unwrap().len();
        let big = "x".repeat(4096);
        for i in 0..100 {
            s.insert_message(
                &message(&format!("c{i}"), None, i),
                &[copy("b", None, &big)],
            )
            .unwrap();
        }
        s.commit().unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).unwrap().len() < before + 400 * 1024 {
            assert!(std::time::Instant::now() < until, "no checkpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_wal_stays_near_its_limit_under_steady_writes() {
        let dir = TempDir::new("walbound");
        // A checkpoint thread that never comes round: only the bound keeps the WAL in check.
        let limit = 256 * 1024;
        let mut s = SqliteStore::open_with(&dir.0, Duration::from_secs(3600), limit).unwrap();
        s.create_mesh(&mesh("m1", "dev"), &member("a", "m1", "pa"))
            .unwrap();
        s.insert_member(&member("b", "m1", "pb")).unwrap();
        s.commit().unwrap();
        let wal = dir.0.join("broker.db-wal");
        let big = "x".repeat(4096);
        let mut largest = 0;
        for i in 0..300 {
            s.insert_message(
                &message(&format!("w{i}"), None, i),
                &[copy("b", None, &big)],
            )
            .unwrap();
            s.commit().unwrap();
            largest = largest.max(fs::metadata(&wal).unwrap().len());
        }
        assert!(
            largest < limit + 64 * 1024,
            "the WAL grew to {largest} bytes"
        );
        assert_eq!(s.pending("b", None, 1000).unwrap().len(), 300);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = TempDir::new("newer");
        let s = SqliteStore::open(&dir.0).unwrap();
        s.conn().pragma_update(None, "user_version", 999).unwrap();
        drop(s);
        let err = SqliteStore::open(&dir.0).err().unwrap();
        assert!(err.msg.contains("newer"), "{}", err.msg);
    }

    #[test]
    fn meshes_members_and_lookups() {
        let dir = TempDir::new("members");
        let mut s = seeded(&dir);
        assert!(s.slug_taken("dev").unwrap());
        assert!(!s.slug_taken("dev-2").unwrap());
        assert_eq!(s.mesh("m1").unwrap().unwrap().slug, "dev");
        assert!(s.mesh("nope").unwrap().is_none());
        assert_eq!(s.member_by_pubkey("m1", "pb").unwrap().unwrap().id, "b");
        assert!(s.member_by_pubkey("m1", "PB").unwrap().is_none());
        // (mesh, pubkey) is unique.
        assert!(s.insert_member(&member("c", "m1", "pb")).is_err());
        s.rollback();
        s.set_member_groups("b", r#"[{"name":"eng"}]"#).unwrap();
        s.set_member_revoked("b", Some(5)).unwrap();
        s.commit().unwrap();
        let b = s.member("b").unwrap().unwrap();
        assert_eq!(b.groups, r#"[{"name":"eng"}]"#);
        assert_eq!(b.revoked_at, Some(5));
        assert_eq!(s.members("m1").unwrap().len(), 2);
    }

    #[test]
    fn invites_are_used_at_most_max_uses_times() {
        let dir = TempDir::new("invites");
        let mut s = seeded(&dir);
        let inv = Invite {
            id: "i1".into(),
            mesh_id: "m1".into(),
            token: "tok".into(),
            token_hash: "h".into(),
            payload: "{}".into(),
            max_uses: 2,
            used_count: 0,
            role: "member".into(),
            expires_at: Some(10),
            created_at: 1,
            revoked_at: None,
        };
        s.insert_invite(&inv).unwrap();
        assert_eq!(s.invite_by_token("tok").unwrap().unwrap(), inv);
        assert!(s.use_invite("i1").unwrap());
        assert!(s.use_invite("i1").unwrap());
        assert!(!s.use_invite("i1").unwrap());
        s.commit().unwrap();
        assert_eq!(s.invite_by_token("tok").unwrap().unwrap().used_count, 2);
    }

    #[test]
    fn deliveries_are_pending_until_marked_and_scoped_to_session() {
        let dir = TempDir::new("deliveries");
        let mut s = seeded(&dir);
        s.upsert_session(&Session {
            mesh_id: "m1".into(),
            session_pubkey: "sb".into(),
            member_id: "b".into(),
            display_name: Some("b-session".into()),
            session_id: None,
            last_seen_at: 1,
        })
        .unwrap();
        s.insert_message(&message("x1", Some("c1"), 10), &[copy("b", None, "to-b")])
            .unwrap();
        s.insert_message(&message("x2", None, 20), &[copy("b", Some("sb"), "to-sb")])
            .unwrap();
        s.insert_message(
            &message("x3", None, 30),
            &[copy("b", Some("other"), "to-other")],
        )
        .unwrap();
        s.commit().unwrap();

        // The member's control plane sees member-addressed copies only; the session sees its own too.
        let member_only: Vec<_> = s
            .pending("b", None, 100)
            .unwrap()
            .into_iter()
            .map(|p| p.message.ciphertext)
            .collect();
        assert_eq!(member_only, ["to-b"]);
        let with_session = s.pending("b", Some("sb"), 100).unwrap();
        assert_eq!(
            with_session
                .iter()
                .map(|p| p.message.ciphertext.as_str())
                .collect::<Vec<_>>(),
            ["to-b", "to-sb"]
        );
        assert_eq!(with_session[0].sender_member_pubkey, "pa");
        assert_eq!(with_session[0].sender_name, "name-a");
        assert_eq!(
            with_session[0].message.client_message_id.as_deref(),
            Some("c1")
        );
        assert_eq!(s.pending("b", Some("sb"), 1).unwrap().len(), 1);
        assert_eq!(s.pending_count().unwrap(), 3);

        // Acks by broker id or by client id; a second ack changes nothing; another member's ack changes nothing.
        assert!(
            s.mark_delivered("m1", "a", Some("x1"), None, 40)
                .unwrap()
                .is_empty()
        );
        let changed = s.mark_delivered("m1", "b", None, Some("c1"), 40).unwrap();
        assert_eq!(changed.len(), 1);
        assert!(
            s.mark_delivered("m1", "b", Some("x1"), None, 41)
                .unwrap()
                .is_empty()
        );
        let id2 = with_session[1].delivery_id;
        assert!(s.pending_delivery(id2).unwrap().is_some());
        assert_eq!(
            s.mark_delivered("m1", "b", Some("x2"), None, 42).unwrap(),
            [id2]
        );
        assert!(s.pending_delivery(id2).unwrap().is_none());
        s.commit().unwrap();
        assert_eq!(s.pending_count().unwrap(), 1);

        let states = s.deliveries_of("x2").unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].recipient_name, "b-session");
        assert_eq!(states[0].delivered_at, Some(42));
    }

    #[test]
    fn client_message_ids_are_unique_per_sender_and_found_again() {
        let dir = TempDir::new("dedupe");
        let mut s = seeded(&dir);
        s.insert_message(&message("x1", Some("c1"), 10), &[])
            .unwrap();
        assert!(
            s.insert_message(&message("x2", Some("c1"), 11), &[])
                .is_err()
        );
        s.rollback();
        s.insert_message(&message("x1", Some("c1"), 10), &[])
            .unwrap();
        s.insert_message(&message("x3", None, 12), &[]).unwrap();
        s.insert_message(&message("x4", None, 13), &[]).unwrap();
        s.commit().unwrap();
        assert_eq!(
            s.message_by_client_id("m1", "a", "c1").unwrap().as_deref(),
            Some("x1")
        );
        assert!(s.message_by_client_id("m1", "b", "c1").unwrap().is_none());
        assert_eq!(s.messages_by_prefix("m1", "x", 10).unwrap().len(), 3);
        assert_eq!(s.messages_by_prefix("m1", "x3", 10).unwrap()[0].id, "x3");
        assert!(s.messages_by_prefix("m2", "x", 10).unwrap().is_empty());
    }

    #[test]
    fn topics_members_keys_messages_and_notifications() {
        let dir = TempDir::new("topics");
        let mut s = seeded(&dir);
        let topic = Topic {
            id: "t1".into(),
            mesh_id: "m1".into(),
            name: "dev".into(),
            description: None,
            visibility: "public".into(),
            created_by_member_id: Some("a".into()),
            encrypted: true,
            created_at: 1,
            archived_at: None,
        };
        s.insert_topic(&topic).unwrap();
        assert!(s.insert_topic(&topic).is_err(), "names are unique per mesh");
        s.rollback();
        s.insert_topic(&topic).unwrap();
        assert_eq!(s.topic("m1", "dev").unwrap().unwrap().id, "t1");
        assert_eq!(s.topic("m1", "t1").unwrap().unwrap().name, "dev");
        assert!(s.topic("m2", "dev").unwrap().is_none());
        assert!(s.join_topic("t1", "a", "lead", 1).unwrap());
        assert!(
            !s.join_topic("t1", "a", "member", 2).unwrap(),
            "joining twice keeps the role"
        );
        assert!(s.join_topic("t1", "b", "member", 2).unwrap());
        let key = |m: &str, by: &str| SealedKey {
            topic_id: "t1".into(),
            member_id: m.into(),
            encrypted_key: format!("k-{m}"),
            nonce: "n".into(),
            sealed_by_member_id: by.into(),
            created_at: 3,
        };
        assert!(s.put_topic_key(&key("a", "a")).unwrap());
        assert!(
            !s.put_topic_key(&key("a", "b")).unwrap(),
            "a stored copy stays"
        );
        assert_eq!(
            s.topic_key("t1", "a").unwrap().unwrap().sealed_by_member_id,
            "a"
        );
        let m = s.topic_members("t1").unwrap();
        assert_eq!(
            m.iter()
                .map(|m| (m.member_id.as_str(), m.role.as_str(), m.has_key))
                .collect::<Vec<_>>(),
            [("a", "lead", true), ("b", "member", false)]
        );

        let msg = |id: &str, from: &str, at: i64| TopicMessage {
            id: id.into(),
            topic_id: "t1".into(),
            sender_member_id: from.into(),
            sender_session_pubkey: None,
            nonce: "n".into(),
            ciphertext: format!("ct-{id}"),
            body_version: 2,
            reply_to_id: None,
            client_message_id: Some(format!("c-{id}")),
            created_at: at,
        };
        // The same millisecond: storage order decides.
        let s1 = s.insert_topic_message(&msg("zz1", "a", 10)).unwrap();
        let s2 = s.insert_topic_message(&msg("aa2", "b", 10)).unwrap();
        let s3 = s.insert_topic_message(&msg("mm3", "a", 11)).unwrap();
        assert!(s1 < s2 && s2 < s3);
        let ids =
            |rows: Vec<TopicMessageRow>| rows.into_iter().map(|r| r.message.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.topic_messages("t1", TopicPage::Before(None, 10)).unwrap()),
            ["mm3", "aa2", "zz1"]
        );
        assert_eq!(
            ids(s
                .topic_messages("t1", TopicPage::Before(Some(s3), 1))
                .unwrap()),
            ["aa2"]
        );
        assert_eq!(
            ids(s.topic_messages("t1", TopicPage::After(s1, 10)).unwrap()),
            ["aa2", "mm3"]
        );
        let row = &s.topic_messages_by_prefix("t1", "aa", 5).unwrap()[0];
        assert_eq!(
            (row.sender_name.as_str(), row.sender_member_pubkey.as_str()),
            ("name-b", "pb")
        );
        assert_eq!(
            s.topic_message_by_client_id("t1", "b", "c-aa2")
                .unwrap()
                .as_deref(),
            Some("aa2")
        );
        assert!(
            s.topic_message_by_client_id("t1", "a", "c-aa2")
                .unwrap()
                .is_none()
        );

        // a has read up to 10: only b's message at 10 was before that, so nothing of b's is unread for a.
        s.mark_topic_read("t1", "a", 10).unwrap();
        let listing = &s.topics("m1", "a").unwrap()[0];
        assert_eq!(
            (listing.member_count, listing.joined, listing.unread),
            (2, true, 0)
        );
        assert_eq!(s.topics("m1", "b").unwrap()[0].unread, 2);

        assert!(
            s.insert_notification("n1", "zz1", "b", "mention", 10)
                .unwrap()
        );
        assert!(
            !s.insert_notification("n2", "zz1", "b", "mention", 10)
                .unwrap()
        );
        assert!(
            s.insert_notification("n3", "mm3", "b", "mention", 11)
                .unwrap()
        );
        let n = s.notifications("b", true, 10).unwrap();
        assert_eq!(
            n.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ["n3", "n1"]
        );
        assert_eq!(n[0].topic_name, "dev");
        assert_eq!(
            s.mark_notifications_read("b", Some(&["n1".to_string()]), 12)
                .unwrap(),
            1
        );
        assert_eq!(s.notifications("b", true, 10).unwrap().len(), 1);
        assert_eq!(s.mark_notifications_read("b", None, 13).unwrap(), 1);
        assert_eq!(s.notifications("b", false, 10).unwrap().len(), 2);
        assert!(s.leave_topic("t1", "b").unwrap());
        assert!(!s.mark_topic_read("t1", "b", 14).unwrap());
        s.commit().unwrap();
    }

    #[test]
    fn api_keys_are_found_by_prefix_and_revoked_once() {
        let dir = TempDir::new("apikeys");
        let mut s = seeded(&dir);
        let k = ApiKey {
            id: "k1".into(),
            mesh_id: "m1".into(),
            label: "ci".into(),
            secret_hash: "h1".into(),
            secret_prefix: "cm_abcdefgh".into(),
            capabilities: r#"["read"]"#.into(),
            topic_scopes: None,
            issued_by_member_id: "a".into(),
            created_at: 1,
            last_used_at: None,
            revoked_at: None,
            expires_at: None,
        };
        s.insert_api_key(&k).unwrap();
        assert_eq!(
            s.api_keys_by_prefix("cm_abcdefgh").unwrap(),
            std::slice::from_ref(&k)
        );
        assert!(s.api_keys_by_prefix("cm_abcdefgx").unwrap().is_empty());
        s.touch_api_key("k1", 5).unwrap();
        s.revoke_api_key("k1", 6).unwrap();
        s.revoke_api_key("k1", 7).unwrap();
        let got = &s.api_keys("m1").unwrap()[0];
        assert_eq!((got.last_used_at, got.revoked_at), (Some(5), Some(6)));
        s.commit().unwrap();
    }

    #[test]
    fn rolled_back_writes_are_gone_and_committed_ones_survive_reopen() {
        let dir = TempDir::new("durable");
        let mut s = seeded(&dir);
        s.insert_message(&message("x1", None, 10), &[copy("b", None, "kept")])
            .unwrap();
        s.commit().unwrap();
        s.insert_message(&message("x2", None, 11), &[copy("b", None, "dropped")])
            .unwrap();
        s.rollback();
        // Left open on purpose: a crash before commit must lose it, not corrupt anything.
        s.insert_message(&message("x3", None, 12), &[copy("b", None, "uncommitted")])
            .unwrap();
        std::mem::forget(s);
        let s = SqliteStore::open(&dir.0).unwrap();
        let left: Vec<_> = s
            .pending("b", None, 10)
            .unwrap()
            .into_iter()
            .map(|p| p.message.ciphertext)
            .collect();
        assert_eq!(left, ["kept"]);
    }

    #[test]
    fn client_acks_read_every_message() {
        let dir = TempDir::new("ackplan");
        let s = seeded(&dir);
        let plan: Vec<String> = s
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {UNDELIVERED_BY_ID}"))
            .unwrap()
            .query_map(params!["m", "b", "x"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().all(|l| !l.starts_with("SCAN")), "{plan:?}");
        assert!(
            plan.iter().any(|l| l.contains("deliveries_message")),
            "{plan:?}"
        );
    }

    #[test]
    fn data_files_were_world_readable() {
        let dir = TempDir::new("modes");
        let data = dir.0.join("data");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let mut s = SqliteStore::open(&data).unwrap();
        s.create_mesh(&mesh("m", "m"), &member("a", "m", "pk-a"))
            .unwrap();
        s.commit().unwrap();
        assert_eq!(mode(&data), 0o700);
        for f in ["broker.db", "broker.db-wal", "broker.db-shm"] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
        // A database an earlier version left 0644 is tightened at open.
        drop(s);
        for f in ["broker.db", "broker.db-wal", "broker.db-shm"] {
            let _ = fs::set_permissions(data.join(f), Permissions::from_mode(0o644));
        }
        let _s = SqliteStore::open(&data).unwrap();
        for f in ["broker.db", "broker.db-wal", "broker.db-shm"] {
            if data.join(f).exists() {
                assert_eq!(mode(&data.join(f)), 0o600, "{f}");
            }
        }
    }

    #[test]
    fn a_full_disk_fails_the_commit_and_the_store_recovers() {
        let dir = TempDir::new("full");
        let mut s = seeded(&dir);
        let pages: i64 = s
            .conn()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        s.conn()
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let big = "x".repeat(64 * 1024);
        let mut failed = false;
        for i in 0..4 {
            let r = s.insert_message(
                &message(&format!("f{i}"), None, i),
                &[copy("b", None, &big)],
            );
            if r.is_err() {
                failed = true;
                break;
            }
        }
        let commit = s.commit();
        assert!(failed || commit.is_err(), "the write should not fit");
        assert!(
            commit.is_err(),
            "a batch with a failed write must not commit"
        );
        assert_eq!(s.pending_count().unwrap(), 0);
        // Space returns: the next batch works without reopening.
        s.conn()
            .pragma_update(None, "max_page_count", 1_000_000)
            .unwrap();
        s.insert_message(&message("ok", None, 9), &[copy("b", None, &big)])
            .unwrap();
        s.commit().unwrap();
        assert_eq!(s.pending_count().unwrap(), 1);
    }
}
