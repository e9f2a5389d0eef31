//! What the store's tests share: a data directory removed on drop, a seeded store, and [`both_stores!`], which
//! runs one test body against SQLite and against PostgreSQL (a fresh schema per test; see `pg::testdb`).
//!
//! Compiled only for `cargo test` (declared `#[cfg(test)]` by its parent), so its `unwrap`s fail a test, never a user.
#![cfg(test)]

use std::path::PathBuf;

use super::meshes::{Member, Mesh};
use super::messages::{Message, NewDelivery};
use super::{SqliteStore, Store, new_id};

/// Where one test's store lives: a data directory, or a fresh PostgreSQL schema.
pub(crate) enum Db {
    Sqlite(TempDir),
    #[cfg(feature = "postgres")]
    Postgres(Box<postgres::Config>),
}

impl Db {
    pub(crate) fn sqlite(tag: &str) -> Db {
        Db::Sqlite(TempDir::new(tag))
    }

    /// `None` (the test skips) without a PostgreSQL server, outside CI.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres() -> Option<Db> {
        super::pg::testdb::fresh_schema("t").map(|c| Db::Postgres(Box::new(c)))
    }

    /// Opens the store, again if it was opened before: what a restarted broker finds.
    pub(crate) fn open(&self) -> Box<dyn Store> {
        match self {
            Db::Sqlite(d) => Box::new(SqliteStore::open(&d.0).unwrap()),
            #[cfg(feature = "postgres")]
            Db::Postgres(c) => Box::new(super::PgStore::open_config((**c).clone()).unwrap()),
        }
    }
}

/// `mod NAME { #[test] fn sqlite(); #[test] fn postgres() }`, both running `BODY` with `DB` a fresh [`Db`].
macro_rules! both_stores {
    ($(#[$m:meta])* fn $name:ident($db:ident) $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::broker::store::Store;

            fn run($db: &$crate::broker::store::fixtures::Db) $body

            #[test]
            fn sqlite() {
                run(&$crate::broker::store::fixtures::Db::sqlite(stringify!($name)))
            }

            #[cfg(feature = "postgres")]
            #[test]
            fn postgres() {
                if let Some(db) = $crate::broker::store::fixtures::Db::postgres() {
                    run(&db)
                }
            }
        }
    };
}
use crate::wire::Priority;
pub(crate) use both_stores;

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

pub(crate) fn mesh(id: &str, slug: &str) -> Mesh {
    Mesh {
        id: id.into(),
        name: "Dev".into(),
        slug: slug.into(),
        owner_pubkey: "aa".repeat(32),
        created_at: 1,
        archived_at: None,
    }
}

pub(crate) fn member(id: &str, mesh_id: &str, pubkey: &str) -> Member {
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

pub(super) fn message(id: &str, cmid: Option<&str>, at: i64) -> Message {
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

pub(super) fn copy(member: &str, session: Option<&str>, ct: &str) -> NewDelivery {
    NewDelivery {
        recipient_member_id: member.into(),
        recipient_session_pubkey: session.map(Into::into),
        nonce: Some("n".into()),
        ciphertext: Some(ct.into()),
    }
}

/// A store of either kind with mesh m1 and members a (owner), b.
pub(crate) fn seeded_in(db: &Db) -> Box<dyn Store> {
    let mut s = db.open();
    s.create_mesh(&mesh("m1", "dev"), &member("a", "m1", "pa"))
        .unwrap();
    s.insert_member(&member("b", "m1", "pb")).unwrap();
    s.commit().unwrap();
    s
}

/// A store with mesh m1 and members a (owner), b.
pub(super) fn seeded(dir: &TempDir) -> SqliteStore {
    let mut s = SqliteStore::open(&dir.0).unwrap();
    s.create_mesh(&mesh("m1", "dev"), &member("a", "m1", "pa"))
        .unwrap();
    s.insert_member(&member("b", "m1", "pb")).unwrap();
    s.commit().unwrap();
    s
}
