//! The broker's storage: a [`Store`] trait, its SQLite implementation (the default), and its PostgreSQL one in
//! [`pg`] (cargo feature `postgres`, `cm-broker --database-url`).
//!
//! Why a trait: one broker needs nothing but a file, but several brokers behind one address need a shared
//! database. The store tests run one body against both (`fixtures::both_stores!`).
//!
//! Why writes open a transaction lazily and [`Store::commit`] closes it: the hub handles every event of one poll
//! iteration and commits once at its end (group commit), before any reply of that iteration is written. One fsync
//! per iteration instead of one per message, and an `ack` never leaves before its message is durable.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | the [`Store`] trait, opening the database, the batch's transaction |
//! | `schema.rs` | the migrations |
//! | `wal.rs` | the WAL's checkpoints and its size limit |
//! | `meshes.rs` | meshes, members, invites, sessions |
//! | `messages.rs` | messages and their deliveries |
//! | `topics.rs` | topics, their keys, messages and notifications |
//! | `state.rs` | shared state |
//! | `memory.rs` | memories and their search |
//! | `schedules.rs` | scheduled messages |
//! | `files.rs` | files and their sealed keys |
//! | `apikeys.rs` | API keys |
//! | `tasks.rs` | tasks and their claims |
//! | `context.rs` | shared context and its search |
//! | `reservations.rs` | file reservations |
//! | `vault.rs` | the vault's sealed entries and their readers |
//! | `grants.rs` | grants and blocks |
//! | `webhooks.rs` | webhooks and the delivery ids they took |
//! | `fixtures.rs` | what the tests share, and the macro that runs a test on both stores |
//! | `pg/` | the PostgreSQL store: the same concerns, one file each, and its own migrations |

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};
use wal::{CHECKPOINT_EVERY, Checkpointer, WAL_LIMIT};

mod apikeys;
mod cluster;
pub(crate) mod context;
mod files;
#[cfg(test)]
pub(crate) mod fixtures;
mod grants;
mod memory;
mod meshes;
mod messages;
#[cfg(feature = "postgres")]
pub mod pg;
mod reservations;
mod schedules;
mod schema;
mod state;
mod tasks;
mod topics;
mod vault;
mod wal;
mod webhooks;

pub use apikeys::ApiKey;
pub use cluster::{Listener, Notice, PresenceRow};
pub use context::ContextRow;
pub use files::FileRow;
pub use grants::{BlockRow, GrantRow};
pub use memory::{MemoryHit, MemoryRow};
pub use meshes::{Invite, Member, MemberPresence, Mesh, Session};
pub use messages::{DeliveryState, Message, NewDelivery, Pending};
#[cfg(feature = "postgres")]
pub use pg::PgStore;
pub use reservations::ReservationRow;
pub use schedules::ScheduleRow;
pub use state::{StatePut, StateRow};
pub use tasks::TaskRow;
pub use topics::{
    NotificationRow, SealedKey, Topic, TopicListing, TopicMembership, TopicMessage,
    TopicMessageRow, TopicPage,
};
pub use vault::VaultRow;
pub use webhooks::WebhookRow;

/// The broker's storage. Reads see the writes of the open transaction; writes open one if none is open.
pub trait Store {
    /// Which database this is, `sqlite` or `postgres`, for `/health` and `/metrics`.
    fn backend(&self) -> &'static str;
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
    /// Those of `ids` still unacknowledged, in id order: what another broker stored for the members here.
    fn pending_deliveries(&self, ids: &[i64]) -> Result<Vec<Pending>> {
        let mut out = Vec::new();
        for &id in ids {
            out.extend(self.pending_delivery(id)?);
        }
        Ok(out)
    }
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
    /// Deletes a file's row and its keys (and its chunks, in a store that keeps them).
    fn delete_file(&mut self, id: &str) -> Result<()>;
    /// Whether files' ciphertext lives in the store (shared by several brokers) rather than in `<data>/files`.
    fn keeps_file_data(&self) -> bool {
        false
    }
    /// Stores chunk `seq` of an upload under way.
    fn put_file_chunk(&mut self, _file_id: &str, _seq: i64, _data: &[u8], _now: i64) -> Result<()> {
        Err(Error::internal(
            "this store keeps files in the data directory",
        ))
    }
    /// Chunk `seq` of a file.
    fn file_chunk(&self, _file_id: &str, _seq: i64) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Forgets an abandoned upload's chunks.
    fn drop_file_chunks(&mut self, _file_id: &str) -> Result<()> {
        Ok(())
    }
    /// Forgets chunks stored before `before` whose file never got a row (an upload its broker did not finish).
    fn sweep_file_chunks(&mut self, _before: i64) -> Result<()> {
        Ok(())
    }

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

    /// Stores a task.
    fn task_insert(&mut self, task: &TaskRow) -> Result<()>;
    /// The mesh's tasks whose id starts with `prefix`, at most `limit`.
    fn tasks_by_prefix(&self, mesh_id: &str, prefix: &str, limit: usize) -> Result<Vec<TaskRow>>;
    /// The mesh's tasks, newest first, of one status and assigned to or claimed by one name when given.
    fn tasks_list(
        &self,
        mesh_id: &str,
        status: Option<&str>,
        assignee: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TaskRow>>;
    /// Claims an open task for a member; false when it was not open.
    fn task_claim(
        &mut self,
        id: &str,
        member_id: &str,
        name: &str,
        at: i64,
        lease_until: i64,
    ) -> Result<bool>;
    /// Marks a task done; false when it was done already.
    fn task_complete(&mut self, id: &str, result: Option<&str>, at: i64) -> Result<bool>;
    /// Gives a claimed task back to open; false when it was not claimed.
    fn task_release(&mut self, id: &str) -> Result<bool>;
    /// Moves a claimed task's lease on.
    fn task_renew(&mut self, id: &str, lease_until: i64) -> Result<()>;
    /// Claimed tasks of every mesh whose lease ends at or before `now`, at most `limit`.
    fn task_leases_due(&self, now: i64, limit: usize) -> Result<Vec<TaskRow>>;

    /// Stores a reservation, or renews the member's own of the same pattern in the same scope.
    fn reservation_put(&mut self, r: &ReservationRow) -> Result<()>;
    /// The mesh's reservations alive at `now`, of one scope or every one, at most `limit`.
    fn reservations_live(
        &self,
        mesh_id: &str,
        scope: Option<&str>,
        now: i64,
        limit: usize,
    ) -> Result<Vec<ReservationRow>>;
    /// Deletes a reservation.
    fn reservation_delete(&mut self, id: &str) -> Result<()>;
    /// Deletes every reservation that ended at or before `now`; how many.
    fn reservations_expire(&mut self, now: i64) -> Result<usize>;

    /// Stores a context, replacing the one of the same member and display name; the stored row's id (the earlier
    /// one's when it replaced one).
    fn context_put(&mut self, c: &ContextRow) -> Result<String>;
    /// The mesh's contexts, newest first, whose summary, one of whose findings or one of whose files holds
    /// `query` (one line; any case), or that carry `query` as a whole tag (any case, a leading `#` dropped).
    fn contexts_search(&self, mesh_id: &str, query: &str, limit: usize) -> Result<Vec<ContextRow>>;
    /// The mesh's contexts, newest first.
    fn contexts_list(&self, mesh_id: &str, limit: usize) -> Result<Vec<ContextRow>>;

    /// Stores a vault entry and its readers (pubkey, sealed key), replacing the member's entry of that key.
    fn vault_put(&mut self, e: &VaultRow, readers: &[(String, String)]) -> Result<()>;
    /// The vault entries a member may read, each with the key sealed to it.
    fn vault_readable(&self, mesh_id: &str, member_id: &str, pubkey: &str)
    -> Result<Vec<VaultRow>>;
    /// The display names of a vault entry's readers.
    fn vault_reader_names(&self, entry_id: &str) -> Result<Vec<String>>;
    /// Deletes a member's vault entry; false when there was none.
    fn vault_delete(&mut self, mesh_id: &str, member_id: &str, key: &str) -> Result<bool>;

    /// Every grant of every mesh, for the hub's memory.
    fn grants_all(&self) -> Result<Vec<GrantRow>>;
    /// Every block of every mesh, for the hub's memory.
    fn blocks_all(&self) -> Result<Vec<BlockRow>>;
    /// Stores a grant, replacing the member's earlier one of that peer and capability.
    fn grant_put(&mut self, g: &GrantRow) -> Result<()>;
    /// Stores a block (a second one of the same peer changes nothing).
    fn block_put(&mut self, b: &BlockRow) -> Result<()>;
    /// Deletes a block; false when there was none.
    fn block_delete(&mut self, member_id: &str, peer: &str) -> Result<bool>;
    /// Stores a new webhook; false when the mesh has one of that name.
    fn webhook_insert(&mut self, w: &WebhookRow) -> Result<bool>;
    /// The webhook with this id.
    fn webhook(&self, id: &str) -> Result<Option<WebhookRow>>;
    /// The mesh's webhooks, by name.
    fn webhooks(&self, mesh_id: &str) -> Result<Vec<WebhookRow>>;
    /// Deletes a webhook by name with the delivery ids it took; the deleted row, if there was one.
    fn webhook_delete(&mut self, mesh_id: &str, name: &str) -> Result<Option<WebhookRow>>;
    /// Records a webhook's delivery id; false when the webhook took that id before (a replay).
    fn webhook_delivery_take(
        &mut self,
        webhook_id: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<bool>;

    /// Stores a scheduled message.
    fn schedule_insert(&mut self, schedule: &ScheduleRow) -> Result<()>;
    /// A member's scheduled messages that will still fire, soonest first.
    fn schedules_of(&self, mesh_id: &str, member_id: &str) -> Result<Vec<ScheduleRow>>;
    /// Cancels a scheduled message; false when it was not pending.
    fn schedule_cancel(&mut self, id: &str) -> Result<bool>;
    /// Scheduled messages due at `now`, soonest first, taken for this batch: on a store several brokers share,
    /// locked until the batch's commit, and those another broker is firing are left out.
    fn schedules_due(&mut self, now: i64, limit: usize) -> Result<Vec<ScheduleRow>>;
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

    // Several brokers on one database. The defaults are a store only one broker uses.

    /// Whether other brokers may share this store.
    fn shared(&self) -> bool {
        false
    }
    /// Starts listening for the other brokers' events.
    fn listen(&self) -> Result<Option<Listener>> {
        Ok(None)
    }
    /// Says this broker is alive now; how many others said so in the last `alive_ms` (by the database's clock,
    /// so the brokers' clocks need not agree).
    fn broker_seen(&mut self, _broker_id: &str, _started_at: i64, _alive_ms: i64) -> Result<usize> {
        Ok(0)
    }
    /// Forgets the brokers silent for `alive_ms`, returning the presences they held.
    fn brokers_gone(&mut self, _alive_ms: i64) -> Result<Vec<PresenceRow>> {
        Ok(Vec::new())
    }
    /// Records (or updates) a presence of this broker.
    fn presence_put(&mut self, _row: &PresenceRow) -> Result<()> {
        Ok(())
    }
    /// Forgets a presence of this broker.
    fn presence_drop(&mut self, _id: &str) -> Result<()> {
        Ok(())
    }
    /// The mesh's presences on the other brokers heard from in the last `alive_ms`.
    fn presences_elsewhere(
        &self,
        _mesh_id: &str,
        _broker_id: &str,
        _alive_ms: i64,
    ) -> Result<Vec<PresenceRow>> {
        Ok(Vec::new())
    }
    /// Sends an event to every broker listening, at the batch's commit (never if it is rolled back).
    fn relay(&mut self, _payload: &str) -> Result<()> {
        Ok(())
    }
    /// Keeps an event too large for [`Store::relay`] in the store; its id, for a relayed reference.
    fn relay_store(&mut self, _body: &str, _now: i64) -> Result<i64> {
        Err(Error::internal("this store keeps no relayed events"))
    }
    /// An event [`Store::relay_store`] kept.
    fn relay_stored(&self, _id: i64) -> Result<Option<String>> {
        Ok(None)
    }
    /// Forgets kept events older than `before`.
    fn relay_sweep(&mut self, _before: i64) -> Result<()> {
        Ok(())
    }
    /// Takes up to `want` tokens from the shared bucket `key` (`per_second`, `burst`), refilled up to `now`
    /// (ms): how many it gave, and when none, how many ms until one is back. The bucket's row stays locked
    /// until the batch commits, so brokers taking from it at once take in turn.
    fn take_tokens(
        &mut self,
        _key: &str,
        want: u32,
        _per_second: f64,
        _burst: f64,
        _now: i64,
    ) -> Result<(u32, u64)> {
        Ok((want, 0))
    }
    /// Forgets buckets not taken from since `before`: they are full again, as a missing one is.
    fn rate_sweep(&mut self, _before: i64) -> Result<()> {
        Ok(())
    }
}

/// The store in `<data>/broker.db`.
pub struct SqliteStore {
    conn: Connection,
    /// A transaction is open (BEGIN issued, no COMMIT yet).
    in_tx: bool,
    /// Checkpoints beside the event loop; `None` leaves them to SQLite's automatic ones.
    checkpointer: Option<Checkpointer>,
    /// With a checkpointer: the WAL file, and its size past which a commit checkpoints inline ([`WAL_LIMIT`]).
    wal: Option<(PathBuf, u64)>,
    /// While it holds true, every commit fails as on a full disk, after rolling the batch back: how the hub's tests
    /// reach their commit-failure paths on the real store rather than on a copy of all its methods.
    #[cfg(test)]
    pub(crate) fail_commits: Option<std::rc::Rc<std::cell::Cell<bool>>>,
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
        SqliteStore::open_with(data_dir, Some(CHECKPOINT_EVERY), WAL_LIMIT)
    }

    /// With `every` `None` no checkpoint thread runs, and only the inline bound keeps the WAL near `wal_limit`.
    fn open_with(data_dir: &Path, every: Option<Duration>, wal_limit: u64) -> Result<SqliteStore> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|e| Error::from(e).context(data_dir.display()))?;
        let path = data_dir.join("broker.db");
        make_private(&path)?;
        let conn = Connection::open(&path).map_err(|e| db(e).context(path.display()))?;
        let mut store = SqliteStore::with_connection(conn)?;
        match every.map(|e| Checkpointer::start(&path, e)).transpose() {
            Ok(c) => {
                store
                    .conn
                    .pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(db)?;
                store
                    .conn
                    .pragma_update(None, "journal_size_limit", wal_limit as i64)
                    .map_err(db)?;
                store.checkpointer = c;
                let mut wal = path.into_os_string();
                wal.push("-wal");
                store.wal = Some((PathBuf::from(wal), wal_limit));
            }
            Err(e) => crate::broker::log::warn("checkpointing inline", &[("error", &e)]),
        }
        Ok(store)
    }

    /// Sets up an open connection: pragmas, then migrations.
    fn with_connection(conn: Connection) -> Result<SqliteStore> {
        // WAL + NORMAL: a commit is durable against a process crash (kill -9) once it returns, and costs no fsync
        // of the main file; only a power loss can drop the last commits. The page cache holds up to 16 MiB: the
        // recent pages of a busy broker's indexes are read on every message and a miss is a pread, but a larger
        // cache costs every commit more (SQLite walks the cache's hash when a write transaction ends), and 64 MiB
        // was slower at DMs than 16 (BENCHMARKS.md).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = 5000; PRAGMA cache_size = -16384;",
        )
        .map_err(db)?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = SqliteStore {
            conn,
            in_tx: false,
            checkpointer: None,
            wal: None,
            #[cfg(test)]
            fail_commits: None,
        };
        store.migrate()?;
        Ok(store)
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

/// `[prefix, prefix + DEL)`: the range of ids (base62) that start with `prefix`, for a primary-key range scan.
fn prefix_range(prefix: &str) -> (String, String) {
    let mut upper = prefix.to_string();
    upper.push('\u{7f}');
    (prefix.to_string(), upper)
}

/// Each method is answered by the method of the same name in the file of its concern.
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn ping(&self) -> Result<()> {
        self.conn
            .query_row("SELECT count(*) FROM meshes", [], |r| r.get::<_, i64>(0))
            .map_err(db)?;
        Ok(())
    }

    fn commit(&mut self) -> Result<bool> {
        #[cfg(test)]
        if self.fail_commits.as_ref().is_some_and(|f| f.get()) {
            self.rollback();
            return Err(Error::io("database or disk is full"));
        }
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
        SqliteStore::create_mesh(self, mesh, owner)
    }

    fn mesh(&self, id: &str) -> Result<Option<Mesh>> {
        SqliteStore::mesh(self, id)
    }

    fn slug_taken(&self, slug: &str) -> Result<bool> {
        SqliteStore::slug_taken(self, slug)
    }

    fn member(&self, id: &str) -> Result<Option<Member>> {
        SqliteStore::member(self, id)
    }

    fn member_by_pubkey(&self, mesh_id: &str, pubkey: &str) -> Result<Option<Member>> {
        SqliteStore::member_by_pubkey(self, mesh_id, pubkey)
    }

    fn members(&self, mesh_id: &str) -> Result<Vec<Member>> {
        SqliteStore::members(self, mesh_id)
    }

    fn insert_member(&mut self, m: &Member) -> Result<()> {
        SqliteStore::insert_member(self, m)
    }

    fn set_member_groups(&mut self, member_id: &str, groups: &str) -> Result<()> {
        SqliteStore::set_member_groups(self, member_id, groups)
    }

    fn set_member_revoked(&mut self, member_id: &str, at: Option<i64>) -> Result<()> {
        SqliteStore::set_member_revoked(self, member_id, at)
    }

    fn insert_invite(&mut self, i: &Invite) -> Result<()> {
        SqliteStore::insert_invite(self, i)
    }

    fn invite_by_token(&self, token: &str) -> Result<Option<Invite>> {
        SqliteStore::invite_by_token(self, token)
    }

    fn use_invite(&mut self, id: &str) -> Result<bool> {
        SqliteStore::use_invite(self, id)
    }

    fn upsert_session(&mut self, s: &Session) -> Result<()> {
        SqliteStore::upsert_session(self, s)
    }

    fn session(&self, mesh_id: &str, session_pubkey: &str) -> Result<Option<Session>> {
        SqliteStore::session(self, mesh_id, session_pubkey)
    }

    fn insert_message(&mut self, m: &Message, deliveries: &[NewDelivery]) -> Result<Vec<i64>> {
        SqliteStore::insert_message(self, m, deliveries)
    }

    fn message_by_client_id(
        &self,
        mesh_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>> {
        SqliteStore::message_by_client_id(self, mesh_id, sender_member_id, client_message_id)
    }

    fn messages_by_prefix(
        &self,
        mesh_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        SqliteStore::messages_by_prefix(self, mesh_id, prefix, limit)
    }

    fn deliveries_of(&self, message_id: &str) -> Result<Vec<DeliveryState>> {
        SqliteStore::deliveries_of(self, message_id)
    }

    fn pending(
        &self,
        member_id: &str,
        session_pubkey: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Pending>> {
        SqliteStore::pending(self, member_id, session_pubkey, limit)
    }

    fn pending_delivery(&self, delivery_id: i64) -> Result<Option<Pending>> {
        SqliteStore::pending_delivery(self, delivery_id)
    }

    fn mark_delivered(
        &mut self,
        mesh_id: &str,
        member_id: &str,
        message_id: Option<&str>,
        client_message_id: Option<&str>,
        at: i64,
    ) -> Result<Vec<i64>> {
        SqliteStore::mark_delivered(self, mesh_id, member_id, message_id, client_message_id, at)
    }

    fn pending_count(&self) -> Result<i64> {
        SqliteStore::pending_count(self)
    }

    fn insert_file(&mut self, f: &FileRow, keys: &[(String, String)]) -> Result<()> {
        SqliteStore::insert_file(self, f, keys)
    }

    fn file(&self, id: &str) -> Result<Option<FileRow>> {
        SqliteStore::file(self, id)
    }

    fn file_key(&self, file_id: &str, pubkey: &str) -> Result<Option<String>> {
        SqliteStore::file_key(self, file_id, pubkey)
    }

    fn files_for(&self, mesh_id: &str, member_id: &str, keys: &[&str]) -> Result<Vec<FileRow>> {
        SqliteStore::files_for(self, mesh_id, member_id, keys)
    }

    fn delete_file(&mut self, id: &str) -> Result<()> {
        SqliteStore::delete_file(self, id)
    }

    fn state_get(&self, mesh_id: &str, key: &str) -> Result<Option<StateRow>> {
        SqliteStore::state_get(self, mesh_id, key)
    }

    fn state_list(&self, mesh_id: &str) -> Result<Vec<StateRow>> {
        SqliteStore::state_list(self, mesh_id)
    }

    fn state_put(&mut self, row: &StateRow, expected: Option<i64>) -> Result<StatePut> {
        SqliteStore::state_put(self, row, expected)
    }

    fn memory_insert(&mut self, m: &MemoryRow) -> Result<()> {
        SqliteStore::memory_insert(self, m)
    }

    fn memory_search(
        &self,
        mesh_id: &str,
        fts_query: &str,
        limit: usize,
    ) -> Result<Vec<MemoryHit>> {
        SqliteStore::memory_search(self, mesh_id, fts_query, limit)
    }

    fn memory_ids(&self, mesh_id: &str, prefix: &str, limit: usize) -> Result<Vec<String>> {
        SqliteStore::memory_ids(self, mesh_id, prefix, limit)
    }

    fn memory_forget(&mut self, mesh_id: &str, id: &str, at: i64) -> Result<bool> {
        SqliteStore::memory_forget(self, mesh_id, id, at)
    }

    fn task_insert(&mut self, t: &TaskRow) -> Result<()> {
        SqliteStore::task_insert(self, t)
    }

    fn tasks_by_prefix(&self, mesh_id: &str, prefix: &str, limit: usize) -> Result<Vec<TaskRow>> {
        SqliteStore::tasks_by_prefix(self, mesh_id, prefix, limit)
    }

    fn tasks_list(
        &self,
        mesh_id: &str,
        status: Option<&str>,
        assignee: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TaskRow>> {
        SqliteStore::tasks_list(self, mesh_id, status, assignee, limit)
    }

    fn task_claim(
        &mut self,
        id: &str,
        member_id: &str,
        name: &str,
        at: i64,
        lease_until: i64,
    ) -> Result<bool> {
        SqliteStore::task_claim(self, id, member_id, name, at, lease_until)
    }

    fn task_complete(&mut self, id: &str, result: Option<&str>, at: i64) -> Result<bool> {
        SqliteStore::task_complete(self, id, result, at)
    }

    fn task_release(&mut self, id: &str) -> Result<bool> {
        SqliteStore::task_release(self, id)
    }

    fn task_renew(&mut self, id: &str, lease_until: i64) -> Result<()> {
        SqliteStore::task_renew(self, id, lease_until)
    }

    fn task_leases_due(&self, now: i64, limit: usize) -> Result<Vec<TaskRow>> {
        SqliteStore::task_leases_due(self, now, limit)
    }

    fn reservation_put(&mut self, r: &ReservationRow) -> Result<()> {
        SqliteStore::reservation_put(self, r)
    }

    fn reservations_live(
        &self,
        mesh_id: &str,
        scope: Option<&str>,
        now: i64,
        limit: usize,
    ) -> Result<Vec<ReservationRow>> {
        SqliteStore::reservations_live(self, mesh_id, scope, now, limit)
    }

    fn reservation_delete(&mut self, id: &str) -> Result<()> {
        SqliteStore::reservation_delete(self, id)
    }

    fn reservations_expire(&mut self, now: i64) -> Result<usize> {
        SqliteStore::reservations_expire(self, now)
    }

    fn context_put(&mut self, c: &ContextRow) -> Result<String> {
        SqliteStore::context_put(self, c)
    }

    fn contexts_search(&self, mesh_id: &str, query: &str, limit: usize) -> Result<Vec<ContextRow>> {
        SqliteStore::contexts_search(self, mesh_id, query, limit)
    }

    fn contexts_list(&self, mesh_id: &str, limit: usize) -> Result<Vec<ContextRow>> {
        SqliteStore::contexts_list(self, mesh_id, limit)
    }

    fn vault_put(&mut self, e: &VaultRow, readers: &[(String, String)]) -> Result<()> {
        SqliteStore::vault_put(self, e, readers)
    }

    fn vault_readable(
        &self,
        mesh_id: &str,
        member_id: &str,
        pubkey: &str,
    ) -> Result<Vec<VaultRow>> {
        SqliteStore::vault_readable(self, mesh_id, member_id, pubkey)
    }

    fn vault_reader_names(&self, entry_id: &str) -> Result<Vec<String>> {
        SqliteStore::vault_reader_names(self, entry_id)
    }

    fn vault_delete(&mut self, mesh_id: &str, member_id: &str, key: &str) -> Result<bool> {
        SqliteStore::vault_delete(self, mesh_id, member_id, key)
    }

    fn grants_all(&self) -> Result<Vec<GrantRow>> {
        SqliteStore::grants_all(self)
    }

    fn blocks_all(&self) -> Result<Vec<BlockRow>> {
        SqliteStore::blocks_all(self)
    }

    fn grant_put(&mut self, g: &GrantRow) -> Result<()> {
        SqliteStore::grant_put(self, g)
    }

    fn block_put(&mut self, b: &BlockRow) -> Result<()> {
        SqliteStore::block_put(self, b)
    }

    fn block_delete(&mut self, member_id: &str, peer: &str) -> Result<bool> {
        SqliteStore::block_delete(self, member_id, peer)
    }

    fn webhook_insert(&mut self, w: &WebhookRow) -> Result<bool> {
        SqliteStore::webhook_insert(self, w)
    }

    fn webhook(&self, id: &str) -> Result<Option<WebhookRow>> {
        SqliteStore::webhook(self, id)
    }

    fn webhooks(&self, mesh_id: &str) -> Result<Vec<WebhookRow>> {
        SqliteStore::webhooks(self, mesh_id)
    }

    fn webhook_delete(&mut self, mesh_id: &str, name: &str) -> Result<Option<WebhookRow>> {
        SqliteStore::webhook_delete(self, mesh_id, name)
    }

    fn webhook_delivery_take(
        &mut self,
        webhook_id: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<bool> {
        SqliteStore::webhook_delivery_take(self, webhook_id, delivery_id, now)
    }

    fn schedule_insert(&mut self, r: &ScheduleRow) -> Result<()> {
        SqliteStore::schedule_insert(self, r)
    }

    fn schedules_of(&self, mesh_id: &str, member_id: &str) -> Result<Vec<ScheduleRow>> {
        SqliteStore::schedules_of(self, mesh_id, member_id)
    }

    fn schedule_cancel(&mut self, id: &str) -> Result<bool> {
        SqliteStore::schedule_cancel(self, id)
    }

    fn schedules_due(&mut self, now: i64, limit: usize) -> Result<Vec<ScheduleRow>> {
        SqliteStore::schedules_due(self, now, limit)
    }

    fn schedule_next_due(&self) -> Result<Option<i64>> {
        SqliteStore::schedule_next_due(self)
    }

    fn schedule_fired(&mut self, id: &str, next_fire_at: Option<i64>, at: i64) -> Result<()> {
        SqliteStore::schedule_fired(self, id, next_fire_at, at)
    }

    fn member_presence(&self, member_id: &str) -> Result<MemberPresence> {
        SqliteStore::member_presence(self, member_id)
    }

    fn set_member_presence(&mut self, member_id: &str, p: &MemberPresence) -> Result<()> {
        SqliteStore::set_member_presence(self, member_id, p)
    }

    fn set_member_name(&mut self, member_id: &str, display_name: &str) -> Result<()> {
        SqliteStore::set_member_name(self, member_id, display_name)
    }

    fn set_member_role_tag(&mut self, member_id: &str, role_tag: Option<&str>) -> Result<()> {
        SqliteStore::set_member_role_tag(self, member_id, role_tag)
    }

    fn insert_topic(&mut self, t: &Topic) -> Result<()> {
        SqliteStore::insert_topic(self, t)
    }

    fn topic(&self, mesh_id: &str, id_or_name: &str) -> Result<Option<Topic>> {
        SqliteStore::topic(self, mesh_id, id_or_name)
    }

    fn topics(&self, mesh_id: &str, member_id: &str) -> Result<Vec<TopicListing>> {
        SqliteStore::topics(self, mesh_id, member_id)
    }

    fn topic_members(&self, topic_id: &str) -> Result<Vec<TopicMembership>> {
        SqliteStore::topic_members(self, topic_id)
    }

    fn join_topic(&mut self, topic_id: &str, member_id: &str, role: &str, at: i64) -> Result<bool> {
        SqliteStore::join_topic(self, topic_id, member_id, role, at)
    }

    fn leave_topic(&mut self, topic_id: &str, member_id: &str) -> Result<bool> {
        SqliteStore::leave_topic(self, topic_id, member_id)
    }

    fn mark_topic_read(&mut self, topic_id: &str, member_id: &str, at: i64) -> Result<bool> {
        SqliteStore::mark_topic_read(self, topic_id, member_id, at)
    }

    fn put_topic_key(&mut self, k: &SealedKey) -> Result<bool> {
        SqliteStore::put_topic_key(self, k)
    }

    fn topic_key(&self, topic_id: &str, member_id: &str) -> Result<Option<SealedKey>> {
        SqliteStore::topic_key(self, topic_id, member_id)
    }

    fn insert_topic_message(&mut self, m: &TopicMessage) -> Result<i64> {
        SqliteStore::insert_topic_message(self, m)
    }

    fn topic_messages(&self, topic_id: &str, page: TopicPage) -> Result<Vec<TopicMessageRow>> {
        SqliteStore::topic_messages(self, topic_id, page)
    }

    fn topic_messages_by_prefix(
        &self,
        topic_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<TopicMessageRow>> {
        SqliteStore::topic_messages_by_prefix(self, topic_id, prefix, limit)
    }

    fn topic_message_by_client_id(
        &self,
        topic_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>> {
        SqliteStore::topic_message_by_client_id(self, topic_id, sender_member_id, client_message_id)
    }

    fn insert_notification(
        &mut self,
        id: &str,
        message_id: &str,
        member_id: &str,
        kind: &str,
        at: i64,
    ) -> Result<bool> {
        SqliteStore::insert_notification(self, id, message_id, member_id, kind, at)
    }

    fn notifications(
        &self,
        member_id: &str,
        unread_only: bool,
        limit: usize,
    ) -> Result<Vec<NotificationRow>> {
        SqliteStore::notifications(self, member_id, unread_only, limit)
    }

    fn mark_notifications_read(
        &mut self,
        member_id: &str,
        ids: Option<&[String]>,
        at: i64,
    ) -> Result<usize> {
        SqliteStore::mark_notifications_read(self, member_id, ids, at)
    }

    fn insert_api_key(&mut self, k: &ApiKey) -> Result<()> {
        SqliteStore::insert_api_key(self, k)
    }

    fn api_keys(&self, mesh_id: &str) -> Result<Vec<ApiKey>> {
        SqliteStore::api_keys(self, mesh_id)
    }

    fn api_keys_by_prefix(&self, secret_prefix: &str) -> Result<Vec<ApiKey>> {
        SqliteStore::api_keys_by_prefix(self, secret_prefix)
    }

    fn revoke_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        SqliteStore::revoke_api_key(self, id, at)
    }

    fn touch_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        SqliteStore::touch_api_key(self, id, at)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{TempDir, both_stores, copy, member, mesh, message, seeded, seeded_in};
    use super::*;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    #[test]
    fn new_ids_are_32_base62_chars_and_differ() {
        let a = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, new_id());
    }

    both_stores! {
        fn rolled_back_writes_are_gone_and_committed_ones_survive_reopen(db) {
            let mut s = seeded_in(db);
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
            let s = db.open();
            let left: Vec<_> = s
                .pending("b", None, 10)
                .unwrap()
                .into_iter()
                .map(|p| p.message.ciphertext)
                .collect();
            assert_eq!(left, ["kept"]);
        }
    }

    both_stores! {
        /// As SQLite does, a failed write undoes itself only: the batch's other writes commit (PostgreSQL
        /// would abort the whole transaction without the store's savepoint).
        fn a_refused_write_keeps_the_rest_of_the_batch(db) {
            let mut s = seeded_in(db);
            s.insert_message(&message("x1", Some("c1"), 10), &[copy("b", None, "first")])
                .unwrap();
            assert!(s.insert_message(&message("x2", Some("c1"), 11), &[]).is_err());
            s.insert_message(&message("x3", None, 12), &[copy("b", None, "after")])
                .unwrap();
            assert!(s.commit().unwrap());
            drop(s);
            let s = db.open();
            let left: Vec<_> = s
                .pending("b", None, 10)
                .unwrap()
                .into_iter()
                .map(|p| p.message.ciphertext)
                .collect();
            assert_eq!(left, ["first", "after"]);
            assert_eq!(s.messages_by_prefix("m1", "x", 10).unwrap().len(), 2);
        }
    }

    both_stores! {
        fn the_backend_names_itself(db) {
            let s = db.open();
            let want = match db {
                super::super::fixtures::Db::Sqlite(_) => "sqlite",
                #[cfg(feature = "postgres")]
                super::super::fixtures::Db::Postgres(_) => "postgres",
            };
            assert_eq!(s.backend(), want);
            s.ping().unwrap();
        }
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
