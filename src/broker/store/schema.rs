//! The schema: migrations applied in order at open, `PRAGMA user_version` counting them.

use super::{SqliteStore, db};
use crate::error::{Error, Result};

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
    // 8: tasks. A claim names its member and carries a lease, renewed while one of the member's sessions is
    // live; the broker's sweep finds lapsed leases by the partial index.
    r#"
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    title TEXT NOT NULL,
    assignee TEXT,
    priority TEXT NOT NULL DEFAULT 'normal',
    status TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'done')),
    tags TEXT NOT NULL DEFAULT '[]',
    result TEXT,
    created_by TEXT NOT NULL REFERENCES members(id),
    created_by_name TEXT NOT NULL,
    claimed_by TEXT REFERENCES members(id),
    claimed_by_name TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    claimed_at INTEGER,
    completed_at INTEGER
);
CREATE INDEX tasks_mesh ON tasks (mesh_id, created_at);
CREATE INDEX tasks_lease ON tasks (lease_until) WHERE status = 'claimed';
"#,
    // 9: file reservations. One row per member, repository and pattern; a row past `expires_at` is dead to every
    // read and deleted by the broker's sweep.
    r#"
CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    scope TEXT NOT NULL,
    path TEXT NOT NULL,
    exclusive INTEGER NOT NULL,
    reason TEXT,
    member_id TEXT NOT NULL REFERENCES members(id),
    member_name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (mesh_id, scope, member_id, path)
);
CREATE INDEX reservations_expiry ON reservations (expires_at);
"#,
    // 10: the vault. Values arrive sealed: ciphertext under a key only the client had, that key sealed to the
    // setter's member key and to each reader's. Nothing here opens without a member's secret key.
    r#"
CREATE TABLE vault_entries (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    key TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    nonce TEXT NOT NULL,
    sealed_key TEXT NOT NULL,
    entry_type TEXT NOT NULL,
    mount_path TEXT,
    description TEXT,
    updated_at INTEGER NOT NULL,
    UNIQUE (mesh_id, member_id, key)
);
CREATE TABLE vault_readers (
    entry_id TEXT NOT NULL REFERENCES vault_entries(id) ON DELETE CASCADE,
    mesh_id TEXT NOT NULL,
    pubkey TEXT NOT NULL,
    sealed_key TEXT NOT NULL,
    PRIMARY KEY (entry_id, pubkey)
);
CREATE INDEX vault_readers_pubkey ON vault_readers (mesh_id, pubkey);
"#,
    // 11: grants and blocks, each decided by a member (`member_id`) about another (`peer`, a member id) or, for
    // a grant, about everyone without one of their own (`peer` '*'). No row: allowed, as before grants existed.
    // The hub holds them all in memory; these rows are what a restart reads back.
    r#"
CREATE TABLE grants (
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    peer TEXT NOT NULL,
    cap TEXT NOT NULL,
    allow INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (member_id, peer, cap)
);
CREATE TABLE blocks (
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    peer TEXT NOT NULL REFERENCES members(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (member_id, peer)
);
"#,
    // 12: shared context, one per member and display name, replaced on each share. `search` and `tag_keys` are
    // what a search matches, lowercased and joined by newlines (see store/context.rs), so a plain LIKE finds a
    // word in the summary, a finding or a file, or a whole tag, in any SQL database.
    r#"
CREATE TABLE contexts (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    peer_name TEXT NOT NULL,
    summary TEXT NOT NULL,
    files_read TEXT NOT NULL,
    key_findings TEXT NOT NULL,
    tags TEXT NOT NULL,
    search TEXT NOT NULL,
    tag_keys TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (mesh_id, member_id, peer_name)
);
CREATE INDEX contexts_recent ON contexts (mesh_id, updated_at);
"#,
    // 13: inbound webhooks. The secret is kept as made, because an HMAC is checked with the key itself; a
    // delivery id a webhook took is kept as long as the webhook, so a replay of it is refused at any age.
    r#"
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id),
    name TEXT NOT NULL,
    secret TEXT NOT NULL,
    target_spec TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES members(id),
    created_at INTEGER NOT NULL,
    UNIQUE (mesh_id, name)
);
CREATE TABLE webhook_deliveries (
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, delivery_id)
);
"#,
];

impl SqliteStore {
    pub(super) fn migrate(&mut self) -> Result<()> {
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
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::TempDir;
    use super::*;
    use crate::broker::store::Store;

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
    fn a_newer_schema_is_refused() {
        let dir = TempDir::new("newer");
        let s = SqliteStore::open(&dir.0).unwrap();
        s.conn().pragma_update(None, "user_version", 999).unwrap();
        drop(s);
        let err = SqliteStore::open(&dir.0).err().unwrap();
        assert!(err.msg.contains("newer"), "{}", err.msg);
    }
}
