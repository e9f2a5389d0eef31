//! The broker's storage: a [`Store`] trait and its SQLite implementation.
//!
//! Why a trait: one broker needs nothing but a file, but several brokers behind one address need a shared
//! database; a PostgreSQL store can implement the same trait later.
//!
//! Why writes open a transaction lazily and [`Store::commit`] closes it: the hub handles every event of one poll
//! iteration and commits once at its end (group commit), before any reply of that iteration is written. One fsync
//! per iteration instead of one per message, and an `ack` never leaves before its message is durable.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Error, Result};

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
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub mesh_id: String,
    pub sender_member_id: String,
    pub sender_session_pubkey: Option<String>,
    pub target_spec: String,
    /// `now`, `next` or `low`.
    pub priority: String,
    pub nonce: String,
    pub ciphertext: String,
    pub client_message_id: Option<String>,
    pub subtype: Option<String>,
    pub reply_to_id: Option<String>,
    pub body_version: Option<i64>,
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
    pub message_id: String,
    pub mesh_id: String,
    pub recipient_member_id: String,
    pub recipient_session_pubkey: Option<String>,
    pub sender_member_id: String,
    pub sender_member_pubkey: String,
    pub sender_session_pubkey: Option<String>,
    /// The sender session's display name if it had one, else the member's.
    pub sender_name: String,
    pub target_spec: String,
    pub priority: String,
    pub nonce: String,
    pub ciphertext: String,
    pub client_message_id: Option<String>,
    pub subtype: Option<String>,
    pub reply_to_id: Option<String>,
    pub body_version: Option<i64>,
    pub created_at: i64,
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

/// The broker's storage. Reads see the writes of the open transaction; writes open one if none is open.
pub trait Store {
    /// A cheap query, for `/health`.
    fn ping(&self) -> Result<()>;
    /// Commits the open transaction, if any. On failure the transaction is rolled back and nothing of it stays.
    fn commit(&mut self) -> Result<()>;
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
    // 2: the recipient index holds pending deliveries only. A delivered row leaves it instead of moving to its
    // other end, so it stays as small as the backlog and its pages stay hot: each acknowledgement dirtied two
    // more index pages, each written to the WAL at commit. The message index also keys the recipient, so an
    // acknowledgement of one copy of a broadcast does not read every copy.
    r#"
DROP INDEX deliveries_recipient;
CREATE INDEX deliveries_pending ON deliveries (recipient_member_id, created_at) WHERE delivered_at IS NULL;
DROP INDEX deliveries_message;
CREATE INDEX deliveries_message ON deliveries (message_id, recipient_member_id);
"#,
];

/// The store in `<data>/broker.db`.
pub struct SqliteStore {
    conn: Connection,
    /// A transaction is open (BEGIN issued, no COMMIT yet).
    in_tx: bool,
    /// Checkpoints beside the event loop; `None` leaves them to SQLite's automatic ones.
    checkpointer: Option<Checkpointer>,
}

/// How often the WAL is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Copies committed pages from the WAL into the database file, on a thread and a connection of its own.
///
/// Why not SQLite's automatic checkpoint: it runs inside the COMMIT that takes the WAL past 1000 pages, on the
/// event loop, and ends with an fsync, so every few hundred messages one batch of replies waited for the disk
/// (a sixth of the broker's time under load). A passive checkpoint takes no lock a writer needs, so it runs
/// beside the loop; commits are as durable as before, since they are in the WAL when COMMIT returns.
struct Checkpointer {
    /// Dropping it ends the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let mut warned = false;
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        && !std::mem::replace(&mut warned, true)
                    {
                        super::log::warn("checkpoint failed", &[("error", &e)]);
                    }
                }
            })
            .map_err(|e| Error::internal(format!("starting the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn db(e: rusqlite::Error) -> Error {
    Error::io(format!("database: {e}"))
}

/// A fresh id: 32 characters of `[0-9A-Za-z]` from the OS's random source.
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
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::from(e).context(data_dir.display()))?;
        let path = data_dir.join("broker.db");
        let conn = Connection::open(&path).map_err(|e| db(e).context(path.display()))?;
        let mut store = SqliteStore::with_connection(conn)?;
        match Checkpointer::start(&path) {
            Ok(c) => {
                store
                    .conn
                    .pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(db)?;
                store.checkpointer = Some(c);
            }
            Err(e) => super::log::warn("checkpointing inline", &[("error", &e)]),
        }
        Ok(store)
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

fn message_row(r: &Row) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        mesh_id: r.get(1)?,
        sender_member_id: r.get(2)?,
        sender_session_pubkey: r.get(3)?,
        target_spec: r.get(4)?,
        priority: r.get(5)?,
        nonce: r.get(6)?,
        ciphertext: r.get(7)?,
        client_message_id: r.get(8)?,
        subtype: r.get(9)?,
        reply_to_id: r.get(10)?,
        body_version: r.get(11)?,
        created_at: r.get(12)?,
    })
}

const PENDING_SELECT: &str = "SELECT d.id, d.message_id, m.mesh_id, d.recipient_member_id, d.recipient_session_pubkey, \
    m.sender_member_id, sm.pubkey, m.sender_session_pubkey, COALESCE(s.display_name, sm.display_name), m.target_spec, \
    m.priority, COALESCE(d.nonce, m.nonce), COALESCE(d.ciphertext, m.ciphertext), m.client_message_id, m.subtype, \
    m.reply_to_id, m.body_version, m.created_at \
    FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN members sm ON sm.id = m.sender_member_id \
    LEFT JOIN sessions s ON s.mesh_id = m.mesh_id AND s.session_pubkey = m.sender_session_pubkey";

fn pending_row(r: &Row) -> rusqlite::Result<Pending> {
    Ok(Pending {
        delivery_id: r.get(0)?,
        message_id: r.get(1)?,
        mesh_id: r.get(2)?,
        recipient_member_id: r.get(3)?,
        recipient_session_pubkey: r.get(4)?,
        sender_member_id: r.get(5)?,
        sender_member_pubkey: r.get(6)?,
        sender_session_pubkey: r.get(7)?,
        sender_name: r.get(8)?,
        target_spec: r.get(9)?,
        priority: r.get(10)?,
        nonce: r.get(11)?,
        ciphertext: r.get(12)?,
        client_message_id: r.get(13)?,
        subtype: r.get(14)?,
        reply_to_id: r.get(15)?,
        body_version: r.get(16)?,
        created_at: r.get(17)?,
    })
}

impl Store for SqliteStore {
    fn ping(&self) -> Result<()> {
        self.conn
            .query_row("SELECT count(*) FROM meshes", [], |r| r.get::<_, i64>(0))
            .map_err(db)?;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if !self.in_tx {
            return Ok(());
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
        Ok(())
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
                    m.priority,
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
            .and_then(|mut s| s.query_map(params![prefix, upper, mesh_id, limit as i64], message_row)?.collect())
            .map_err(db)
    }

    fn deliveries_of(&self, message_id: &str) -> Result<Vec<DeliveryState>> {
        self.conn
            .prepare_cached(
                "SELECT d.recipient_member_id, d.recipient_session_pubkey, \
                 COALESCE(s.display_name, mb.display_name), mb.pubkey, d.delivered_at \
                 FROM deliveries d JOIN members mb ON mb.id = d.recipient_member_id \
                 LEFT JOIN sessions s ON s.mesh_id = mb.mesh_id AND s.session_pubkey = d.recipient_session_pubkey \
                 WHERE d.message_id = ?1 ORDER BY d.id",
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
        // `deliveries_message` (named, since the planner would rather walk the member's pending rows, however
        // many), a client id by the member's own pending rows. (Matching `id = ? OR client_message_id = ?` in one
        // statement read every message of the mesh per ack: the client id is a prefix of no index.)
        let mut found: Vec<i64> = Vec::new();
        if let Some(id) = message_id {
            let ids: Vec<i64> = self
                .conn
                .prepare_cached(
                    "SELECT id FROM deliveries INDEXED BY deliveries_message WHERE message_id = ?3 \
                     AND recipient_member_id = ?2 AND delivered_at IS NULL \
                     AND EXISTS (SELECT 1 FROM messages m WHERE m.id = ?3 AND m.mesh_id = ?1)",
                )
                .and_then(|mut s| {
                    s.query_map(params![mesh_id, member_id, id], |r| r.get(0))?
                        .collect()
                })
                .map_err(db)?;
            found.extend(ids);
        }
        if let Some(cid) = client_message_id {
            let ids: Vec<i64> = self
                .conn
                .prepare_cached(
                    "SELECT id FROM deliveries d WHERE recipient_member_id = ?2 AND delivered_at IS NULL \
                     AND EXISTS (SELECT 1 FROM messages m WHERE m.id = d.message_id AND m.mesh_id = ?1 \
                     AND m.client_message_id = ?3)",
                )
                .and_then(|mut s| {
                    s.query_map(params![mesh_id, member_id, cid], |r| r.get(0))?
                        .collect()
                })
                .map_err(db)?;
            for i in ids {
                if !found.contains(&i) {
                    found.push(i);
                }
            }
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
            priority: "next".into(),
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
            .map(|p| p.ciphertext)
            .collect();
        assert_eq!(member_only, ["to-b"]);
        let with_session = s.pending("b", Some("sb"), 100).unwrap();
        assert_eq!(
            with_session
                .iter()
                .map(|p| p.ciphertext.as_str())
                .collect::<Vec<_>>(),
            ["to-b", "to-sb"]
        );
        assert_eq!(with_session[0].sender_member_pubkey, "pa");
        assert_eq!(with_session[0].sender_name, "name-a");
        assert_eq!(with_session[0].client_message_id.as_deref(), Some("c1"));
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
            .map(|p| p.ciphertext)
            .collect();
        assert_eq!(left, ["kept"]);
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
