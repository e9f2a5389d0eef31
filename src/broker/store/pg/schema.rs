//! The PostgreSQL schema: its own migrations, applied at open in one transaction under an advisory lock.
//!
//! Why its own list rather than SQLite's: the SQLite list records that store's history (indexes tuned to its
//! planner, columns added later); here migration 1 is that schema's present shape in PostgreSQL's types, and a
//! concern added later is one more entry at the end. Why the lock: two brokers started at once against an empty
//! database would both see version 0 and both create the tables; `pg_advisory_xact_lock` makes the second wait
//! for the first's commit and then find the schema current.

use super::{PgStore, db};
use crate::error::{Error, Result};

/// The advisory lock the migrations hold: any constant of our own ("cmesh" and 1).
const MIGRATION_LOCK: i64 = 0x636d_6573_6801;

/// Migrations, applied in order; `schema_version.version` is the number applied.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite store's migrations 1 to 10 hold: meshes, members, invites, sessions, messages and
    // deliveries, files, state, memories (with a weighted tsvector in place of FTS5: tags weigh double), schedules,
    // topics, notifications, API keys, tasks, reservations and the vault. Every text column compares byte by byte
    // (`COLLATE "C"`), as SQLite's do.
    r#"
CREATE TABLE meshes (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    slug TEXT COLLATE "C" NOT NULL UNIQUE,
    owner_pubkey TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    archived_at BIGINT
);
CREATE TABLE members (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    pubkey TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    role TEXT COLLATE "C" NOT NULL CHECK (role IN ('admin', 'member')),
    role_tag TEXT COLLATE "C",
    groups TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    message_mode TEXT COLLATE "C" NOT NULL DEFAULT 'push',
    joined_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    revoked_at BIGINT,
    summary TEXT COLLATE "C",
    status TEXT COLLATE "C",
    visible BOOLEAN NOT NULL DEFAULT true,
    UNIQUE (mesh_id, pubkey)
);
CREATE TABLE invites (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    token TEXT COLLATE "C" NOT NULL UNIQUE,
    token_hash TEXT COLLATE "C" NOT NULL,
    payload TEXT COLLATE "C" NOT NULL,
    max_uses BIGINT NOT NULL,
    used_count BIGINT NOT NULL DEFAULT 0,
    role TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE sessions (
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    session_pubkey TEXT COLLATE "C" NOT NULL,
    member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    display_name TEXT COLLATE "C",
    session_id TEXT COLLATE "C",
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (mesh_id, session_pubkey)
);
CREATE TABLE messages (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    sender_member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    sender_session_pubkey TEXT COLLATE "C",
    target_spec TEXT COLLATE "C" NOT NULL,
    priority TEXT COLLATE "C" NOT NULL CHECK (priority IN ('now', 'next', 'low')),
    nonce TEXT COLLATE "C" NOT NULL,
    ciphertext TEXT COLLATE "C" NOT NULL,
    client_message_id TEXT COLLATE "C",
    subtype TEXT COLLATE "C",
    reply_to_id TEXT COLLATE "C",
    body_version BIGINT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_client_id ON messages (mesh_id, sender_member_id, client_message_id)
    WHERE client_message_id IS NOT NULL;
CREATE TABLE deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id TEXT COLLATE "C" NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    recipient_member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    recipient_session_pubkey TEXT COLLATE "C",
    nonce TEXT COLLATE "C",
    ciphertext TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX deliveries_pending ON deliveries (recipient_member_id, created_at) WHERE delivered_at IS NULL;
CREATE INDEX deliveries_message ON deliveries (message_id, recipient_member_id);
CREATE TABLE files (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    name TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    chunk_size BIGINT NOT NULL,
    sha256 TEXT COLLATE "C" NOT NULL,
    uploader_member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    uploader_pubkey TEXT COLLATE "C" NOT NULL,
    target_spec TEXT COLLATE "C",
    created_at BIGINT NOT NULL
);
CREATE INDEX files_mesh ON files (mesh_id, created_at);
CREATE TABLE file_keys (
    file_id TEXT COLLATE "C" NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    recipient_pubkey TEXT COLLATE "C" NOT NULL,
    sealed_key TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (file_id, recipient_pubkey)
);
CREATE INDEX file_keys_recipient ON file_keys (recipient_pubkey);
CREATE TABLE state (
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C",
    version BIGINT NOT NULL,
    updated_by_member TEXT COLLATE "C" NOT NULL,
    updated_by_name TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (mesh_id, key)
);
CREATE TABLE memories (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    content TEXT COLLATE "C" NOT NULL,
    tags TEXT COLLATE "C" NOT NULL,
    remembered_by TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    remembered_by_name TEXT COLLATE "C" NOT NULL,
    remembered_at BIGINT NOT NULL,
    forgotten_at BIGINT,
    search tsvector GENERATED ALWAYS AS
        (setweight(to_tsvector('english', content), 'B') || setweight(to_tsvector('english', tags), 'A')) STORED
);
CREATE INDEX memories_mesh ON memories (mesh_id, id);
CREATE INDEX memories_search ON memories USING gin (search) WHERE forgotten_at IS NULL;
CREATE AGGREGATE tsquery_any(tsquery) (SFUNC = tsquery_or, STYPE = tsquery);
CREATE TABLE schedules (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    session_pubkey TEXT COLLATE "C",
    target_spec TEXT COLLATE "C" NOT NULL,
    nonce TEXT COLLATE "C" NOT NULL,
    ciphertext TEXT COLLATE "C" NOT NULL,
    copies TEXT COLLATE "C",
    message TEXT COLLATE "C",
    subtype TEXT COLLATE "C",
    cron TEXT COLLATE "C",
    tz TEXT COLLATE "C",
    next_fire_at BIGINT,
    fired_count BIGINT NOT NULL DEFAULT 0,
    last_fired_at BIGINT,
    created_at BIGINT NOT NULL,
    cancelled BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT cancelled AND next_fire_at IS NOT NULL;
CREATE INDEX schedules_member ON schedules (member_id, mesh_id);
CREATE TABLE topics (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    name TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C",
    visibility TEXT COLLATE "C" NOT NULL CHECK (visibility IN ('public', 'private', 'dm')),
    created_by_member_id TEXT COLLATE "C" REFERENCES members(id),
    encrypted BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    archived_at BIGINT,
    UNIQUE (mesh_id, name)
);
CREATE TABLE topic_members (
    topic_id TEXT COLLATE "C" NOT NULL REFERENCES topics(id),
    member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    role TEXT COLLATE "C" NOT NULL CHECK (role IN ('lead', 'member', 'observer')),
    joined_at BIGINT NOT NULL,
    last_read_at BIGINT,
    PRIMARY KEY (topic_id, member_id)
);
CREATE TABLE topic_keys (
    topic_id TEXT COLLATE "C" NOT NULL REFERENCES topics(id),
    member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    encrypted_key TEXT COLLATE "C" NOT NULL,
    nonce TEXT COLLATE "C" NOT NULL,
    sealed_by_member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (topic_id, member_id)
);
CREATE TABLE topic_messages (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    topic_id TEXT COLLATE "C" NOT NULL REFERENCES topics(id),
    sender_member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    sender_session_pubkey TEXT COLLATE "C",
    nonce TEXT COLLATE "C" NOT NULL,
    ciphertext TEXT COLLATE "C" NOT NULL,
    body_version BIGINT NOT NULL,
    reply_to_id TEXT COLLATE "C",
    client_message_id TEXT COLLATE "C",
    created_at BIGINT NOT NULL
);
CREATE INDEX topic_messages_topic ON topic_messages (topic_id, seq);
CREATE UNIQUE INDEX topic_messages_client_id ON topic_messages (topic_id, sender_member_id, client_message_id)
    WHERE client_message_id IS NOT NULL;
CREATE TABLE notifications (
    id TEXT COLLATE "C" PRIMARY KEY,
    message_id TEXT COLLATE "C" NOT NULL REFERENCES topic_messages(id),
    member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    kind TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    read_at BIGINT,
    UNIQUE (message_id, member_id)
);
CREATE INDEX notifications_member ON notifications (member_id, created_at);
CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    label TEXT COLLATE "C" NOT NULL,
    secret_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    secret_prefix TEXT COLLATE "C" NOT NULL,
    capabilities TEXT COLLATE "C" NOT NULL,
    topic_scopes TEXT COLLATE "C",
    issued_by_member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT,
    expires_at BIGINT
);
CREATE INDEX api_keys_prefix ON api_keys (secret_prefix);
CREATE INDEX api_keys_mesh ON api_keys (mesh_id, created_at);
CREATE TABLE tasks (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    title TEXT COLLATE "C" NOT NULL,
    assignee TEXT COLLATE "C",
    priority TEXT COLLATE "C" NOT NULL DEFAULT 'normal',
    status TEXT COLLATE "C" NOT NULL CHECK (status IN ('open', 'claimed', 'done')),
    tags TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    result TEXT COLLATE "C",
    created_by TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    created_by_name TEXT COLLATE "C" NOT NULL,
    claimed_by TEXT COLLATE "C" REFERENCES members(id),
    claimed_by_name TEXT COLLATE "C",
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    claimed_at BIGINT,
    completed_at BIGINT
);
CREATE INDEX tasks_mesh ON tasks (mesh_id, created_at);
CREATE INDEX tasks_lease ON tasks (lease_until) WHERE status = 'claimed';
CREATE TABLE reservations (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    scope TEXT COLLATE "C" NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    exclusive BOOLEAN NOT NULL,
    reason TEXT COLLATE "C",
    member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    member_name TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    UNIQUE (mesh_id, scope, member_id, path)
);
CREATE INDEX reservations_expiry ON reservations (expires_at);
CREATE TABLE vault_entries (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    key TEXT COLLATE "C" NOT NULL,
    ciphertext TEXT COLLATE "C" NOT NULL,
    nonce TEXT COLLATE "C" NOT NULL,
    sealed_key TEXT COLLATE "C" NOT NULL,
    entry_type TEXT COLLATE "C" NOT NULL,
    mount_path TEXT COLLATE "C",
    description TEXT COLLATE "C",
    updated_at BIGINT NOT NULL,
    UNIQUE (mesh_id, member_id, key)
);
CREATE TABLE vault_readers (
    entry_id TEXT COLLATE "C" NOT NULL REFERENCES vault_entries(id) ON DELETE CASCADE,
    mesh_id TEXT COLLATE "C" NOT NULL,
    pubkey TEXT COLLATE "C" NOT NULL,
    sealed_key TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (entry_id, pubkey)
);
CREATE INDEX vault_readers_pubkey ON vault_readers (mesh_id, pubkey);
"#,
    // 2: the SQLite store's 11 to 13: grants and blocks, shared context (with the same `search` and `tag_keys`
    // columns, so a plain LIKE finds what SQLite's finds), webhooks and the delivery ids they took.
    r#"
CREATE TABLE grants (
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    peer TEXT COLLATE "C" NOT NULL,
    cap TEXT COLLATE "C" NOT NULL,
    allow BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, peer, cap)
);
CREATE TABLE blocks (
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    peer TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, peer)
);
CREATE TABLE contexts (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    member_id TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    peer_name TEXT COLLATE "C" NOT NULL,
    summary TEXT COLLATE "C" NOT NULL,
    files_read TEXT COLLATE "C" NOT NULL,
    key_findings TEXT COLLATE "C" NOT NULL,
    tags TEXT COLLATE "C" NOT NULL,
    search TEXT COLLATE "C" NOT NULL,
    tag_keys TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (mesh_id, member_id, peer_name)
);
CREATE INDEX contexts_recent ON contexts (mesh_id, updated_at);
CREATE TABLE webhooks (
    id TEXT COLLATE "C" PRIMARY KEY,
    mesh_id TEXT COLLATE "C" NOT NULL REFERENCES meshes(id),
    name TEXT COLLATE "C" NOT NULL,
    secret TEXT COLLATE "C" NOT NULL,
    target_spec TEXT COLLATE "C" NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    created_at BIGINT NOT NULL,
    UNIQUE (mesh_id, name)
);
CREATE TABLE webhook_deliveries (
    webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    delivery_id TEXT COLLATE "C" NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, delivery_id)
);
"#,
    // 3: several brokers on one database: the brokers alive (each refreshes its row), the presences each serves,
    // and the events too large for a NOTIFY payload.
    r#"
CREATE TABLE brokers (
    id TEXT COLLATE "C" PRIMARY KEY,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);
CREATE TABLE presences (
    id TEXT COLLATE "C" PRIMARY KEY,
    broker_id TEXT COLLATE "C" NOT NULL,
    mesh_id TEXT COLLATE "C" NOT NULL,
    member_id TEXT COLLATE "C" NOT NULL,
    pull BOOLEAN NOT NULL,
    visible BOOLEAN NOT NULL,
    groups TEXT COLLATE "C" NOT NULL,
    listing TEXT COLLATE "C" NOT NULL
);
CREATE INDEX presences_mesh ON presences (mesh_id);
CREATE INDEX presences_broker ON presences (broker_id);
CREATE TABLE relays (
    id BIGSERIAL PRIMARY KEY,
    body TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);
"#,
    // 4: rate limits the brokers share: a token bucket per member, webhook or API key, refilled when taken from.
    r#"
CREATE TABLE rate_buckets (
    key TEXT COLLATE "C" PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at BIGINT NOT NULL
);
"#,
    // 5: uploaded files' ciphertext, a row per chunk, so that every broker serves what any of them took. Written
    // as the chunks arrive, before the file's row exists: no foreign key, and chunks whose file never got a row
    // are swept.
    r#"
CREATE TABLE file_chunks (
    file_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    data BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (file_id, seq)
);
"#,
];

impl PgStore {
    pub(super) fn migrate(&mut self) -> Result<()> {
        let c = &mut self.conn.get_mut().client;
        let mut tx = c.transaction().map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(db)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .map_err(db)?;
        let version: i64 = match tx
            .query_opt("SELECT version FROM schema_version", &[])
            .map_err(db)?
        {
            Some(r) => r.try_get(0).map_err(db)?,
            None => {
                tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])
                    .map_err(db)?;
                0
            }
        };
        if version as usize > MIGRATIONS.len() {
            return Err(Error::io(format!(
                "database: schema version {version} is newer than this broker knows ({})",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(sql)
                .map_err(|e| db(e).context(format!("migration {}", i + 1)))?;
            tx.execute(
                "UPDATE schema_version SET version = $1",
                &[&((i + 1) as i64)],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdb::fresh_schema;
    use super::*;
    use crate::broker::store::Store;

    fn version(s: &mut PgStore) -> i64 {
        s.conn
            .get_mut()
            .client
            .query_one("SELECT version FROM schema_version", &[])
            .unwrap()
            .get(0)
    }

    #[test]
    fn open_migrates_once_and_a_second_open_finds_it_current() {
        let Some(config) = fresh_schema("m") else {
            return;
        };
        let mut s = PgStore::open_config(config.clone()).unwrap();
        assert_eq!(version(&mut s), MIGRATIONS.len() as i64);
        drop(s);
        // Migration 1 would fail on CREATE TABLE if it ran again.
        let mut s = PgStore::open_config(config).unwrap();
        assert_eq!(version(&mut s), MIGRATIONS.len() as i64);
        s.ping().unwrap();
    }

    #[test]
    fn brokers_opening_an_empty_schema_at_once_migrate_it_once() {
        let Some(config) = fresh_schema("r") else {
            return;
        };
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let c = config.clone();
                std::thread::spawn(move || PgStore::open_config(c).map(drop))
            })
            .collect();
        for o in opens {
            o.join().unwrap().unwrap();
        }
        let mut s = PgStore::open_config(config).unwrap();
        let rows: i64 = s
            .conn
            .get_mut()
            .client
            .query_one("SELECT count(*) FROM schema_version", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let Some(config) = fresh_schema("n") else {
            return;
        };
        let mut s = PgStore::open_config(config.clone()).unwrap();
        s.conn
            .get_mut()
            .client
            .batch_execute("UPDATE schema_version SET version = 999")
            .unwrap();
        drop(s);
        let err = PgStore::open_config(config).err().unwrap();
        assert!(err.msg.contains("newer"), "{}", err.msg);
    }
}
