//! The PostgreSQL store: the same [`Store`] as SQLite's, in a database server (`cm-broker --database-url`).
//!
//! Why the `postgres` crate: the broker is one synchronous event loop, and `postgres` is the blocking face of
//! tokio-postgres, the well-kept client most Rust programs use; it runs its own small runtime on the calling
//! thread, so nothing async leaks into the broker. TLS to the database follows the URL's `sslmode` and
//! `sslrootcert` as libpq does (`tls.rs`).
//!
//! Why a savepoint is always open inside the batch's transaction: SQLite undoes only the statement that failed and
//! keeps the rest of the batch, and the hub relies on that (one request's refused write must not lose the others'
//! writes). PostgreSQL aborts the whole transaction at the first error, so every write runs after `SAVEPOINT w`,
//! and a failure rolls back to it: the batch goes on as on SQLite. A success moves the savepoint on in one round
//! trip (`RELEASE w; SAVEPOINT w`).
//!
//! Why `COLLATE "C"` on every text column: SQLite compares text byte by byte, and the broker's orders (topics by
//! name, state by key) and id prefix scans rely on that; a database's default collation (`en_US.UTF-8`) would
//! sort differently.
//!
//! Several brokers may open one database at once: what they share beyond the meshes' data (heartbeats,
//! presences, `NOTIFY`) is in `cluster.rs`. Nothing here holds state that another broker could not read from the
//! database.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`PgStore`], connecting, the batch's transaction, the statement cache |
//! | `schema.rs` | the migrations, applied under an advisory lock |
//! | `cluster.rs` | brokers, their presences, `NOTIFY` and `LISTEN` |
//! | `tls.rs` | what `sslmode` and `sslrootcert` ask of the server's certificate |
//! | `copy.rs` | `cm-broker copy-store`: a SQLite store copied in |
//! | one file per concern | the same concerns as the SQLite store's files, by the same names |

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;

use postgres::types::{FromSql, ToSql};
use postgres::{Client, Config, Row, Statement};

use super::{
    ApiKey, BlockRow, ContextRow, DeliveryState, FileRow, GrantRow, Invite, Listener, Member,
    MemberPresence, MemoryHit, MemoryRow, Mesh, Message, NewDelivery, NotificationRow, Pending,
    PresenceRow, ReservationRow, ScheduleRow, SealedKey, Session, StatePut, StateRow, Store,
    TaskRow, Topic, TopicListing, TopicMembership, TopicMessage, TopicMessageRow, TopicPage,
    VaultRow, WebhookRow,
};
use crate::error::{Error, Result};

pub use copy::{Copied, copy_store};

mod apikeys;
mod cluster;
mod context;
mod copy;
mod files;
mod grants;
mod memory;
mod meshes;
mod messages;
mod reservations;
mod schedules;
mod schema;
mod state;
mod tasks;
#[cfg(test)]
pub(crate) mod testdb;
pub mod tls;
mod topics;
mod vault;
mod webhooks;

/// Parameters of a statement.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A database error as the store reports it.
fn db(e: postgres::Error) -> Error {
    Error::io(format!("database: {}", describe(&e)))
}

/// The server's message, else the client's with its cause ("error connecting to server: Connection refused").
fn describe(e: &postgres::Error) -> String {
    if let Some(d) = e.as_db_error() {
        return d.message().to_string();
    }
    let mut msg = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let c_msg = c.to_string();
        if !msg.contains(&c_msg) {
            msg = format!("{msg}: {c_msg}");
        }
        cause = c.source();
    }
    msg
}

/// The connection and the statements prepared on it.
struct Conn {
    client: Client,
    /// Prepared once per connection: a statement by text costs a round trip to prepare on every call.
    stmts: HashMap<String, Statement>,
}

impl Conn {
    fn stmt(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(db)?;
        self.stmts.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &str, params: Params) -> Result<Vec<Row>> {
        let s = self.stmt(sql)?;
        self.client.query(&s, params).map_err(db)
    }

    fn query_opt(&mut self, sql: &str, params: Params) -> Result<Option<Row>> {
        let s = self.stmt(sql)?;
        self.client.query_opt(&s, params).map_err(db)
    }

    fn execute(&mut self, sql: &str, params: Params) -> Result<u64> {
        let s = self.stmt(sql)?;
        self.client.execute(&s, params).map_err(db)
    }
}

/// A column of a row, read without a panic on a type that does not match.
trait At {
    fn at<'a, T: FromSql<'a>>(&'a self, i: usize) -> Result<T>;
}

impl At for Row {
    fn at<'a, T: FromSql<'a>>(&'a self, i: usize) -> Result<T> {
        self.try_get(i).map_err(db)
    }
}

/// The store in a PostgreSQL database.
pub struct PgStore {
    conn: RefCell<Conn>,
    config: Config,
    tls: tls::Tls,
    /// A transaction is open, with the savepoint `w` set after its last good write.
    in_tx: bool,
    /// A failure could not be rolled back to the savepoint: the open transaction must not commit.
    broken: bool,
    /// The server as logs show it: `host:port/dbname`, never the password.
    label: String,
    /// As [`super::SqliteStore`]'s: while it holds true, every commit fails after rolling the batch back.
    #[cfg(test)]
    pub(crate) fail_commits: Option<std::rc::Rc<std::cell::Cell<bool>>>,
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` parsed, or a usage error that says what is wrong with it (never echoing a password).
/// Its TLS is built too, so a missing `sslrootcert` file fails here, before anything starts.
pub fn parse_url(url: &str) -> Result<(Config, tls::Tls)> {
    if !is_postgres_url(url) {
        return Err(Error::usage(
            "expected a postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME URL",
        ));
    }
    let (rest, check, roots) = tls::split(url)?;
    let config = rest
        .parse::<Config>()
        .map_err(|e| Error::usage(format!("not a usable PostgreSQL URL: {}", describe(&e))))?;
    Ok((config, tls::Tls::new(check, roots)?))
}

/// The host a config connects to (its first), as the URL names it.
fn host(c: &Config) -> String {
    c.get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into())
}

/// `host:port/dbname` of a config, for logs and errors.
pub fn label(c: &Config) -> String {
    let host = host(c);
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", c.get_dbname().unwrap_or(""))
}

/// Connects, mapping the failures an operator meets at start to their exit codes.
fn connect(c: &Config, tls: &tls::Tls, label: &str) -> Result<Client> {
    c.connect(tls.connector()).map_err(|e| {
        if let Some(why) = tls.refusal(&e, c) {
            return Error::auth(format!("database {label}: refusing the server: {why}"));
        }
        let msg = format!("database {label}: {}", describe(&e));
        match e.as_db_error().map(|d| d.code().code()) {
            // invalid_authorization_specification, invalid_password
            Some("28000" | "28P01") => Error::auth(msg),
            // Reached, but refused for another reason (no such database, too many connections, ...).
            Some(_) => Error::io(msg),
            None => Error::network(msg),
        }
    })
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub fn open(url: &str) -> Result<PgStore> {
        let (config, tls) = parse_url(url)?;
        PgStore::open_with(config, tls)
    }

    /// Connects with a parsed config (TLS when the server offers it, its certificate unchecked, as `prefer`)
    /// and brings the schema up to date.
    pub fn open_config(config: Config) -> Result<PgStore> {
        PgStore::open_with(config, tls::Tls::unverified()?)
    }

    fn open_with(config: Config, tls: tls::Tls) -> Result<PgStore> {
        let label = label(&config);
        let client = connect(&config, &tls, &label)?;
        let mut store = PgStore {
            conn: RefCell::new(Conn {
                client,
                stmts: HashMap::new(),
            }),
            config,
            tls,
            in_tx: false,
            broken: false,
            label,
            #[cfg(test)]
            fail_commits: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// The connection, connected again first if it was lost between batches (a restarted server). Inside a
    /// transaction a lost connection is not replaced: the batch's writes went with it, and the commit says so.
    fn conn(&self) -> Result<RefMut<'_, Conn>> {
        let mut c = self.conn.borrow_mut();
        if c.client.is_closed() && !self.in_tx {
            c.client = connect(&self.config, &self.tls, &self.label)?;
            c.stmts.clear();
        }
        Ok(c)
    }

    /// A read: in the open transaction when there is one, where a failure rolls back to the savepoint (a
    /// failed statement would otherwise abort the batch).
    fn read<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut c = self.conn()?;
        let r = f(&mut c);
        if r.is_err() && self.in_tx {
            // Reads take `&self`: when this fails too, the connection is gone, and the commit says so.
            let _ = c.client.batch_execute("ROLLBACK TO SAVEPOINT w");
        }
        r
    }

    /// A write in the batch's transaction (opened if none is): undone alone if it fails, as on SQLite.
    fn write<T>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        if self.broken {
            return Err(Error::io(
                "database: the transaction was lost after a write error",
            ));
        }
        if !self.in_tx {
            self.conn()?
                .client
                .batch_execute("BEGIN; SAVEPOINT w")
                .map_err(db)?;
            self.in_tx = true;
        }
        let c = self.conn.get_mut();
        match f(c) {
            Ok(v) => {
                if let Err(e) = c.client.batch_execute("RELEASE SAVEPOINT w; SAVEPOINT w") {
                    self.broken = true;
                    return Err(db(e));
                }
                Ok(v)
            }
            Err(e) => {
                if c.client.batch_execute("ROLLBACK TO SAVEPOINT w").is_err() {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    /// One row of a read, mapped.
    fn opt<T>(
        &self,
        sql: &str,
        params: Params,
        map: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        self.read(|c| c.query_opt(sql, params)?.as_ref().map(map).transpose())
    }

    /// Every row of a read, mapped.
    fn all<T>(&self, sql: &str, params: Params, map: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
        self.read(|c| c.query(sql, params)?.iter().map(map).collect())
    }

    /// One statement as a write; how many rows it changed.
    fn exec(&mut self, sql: &str, params: Params) -> Result<u64> {
        self.write(|c| c.execute(sql, params))
    }
}

/// `LIMIT` as PostgreSQL takes it.
fn lim(n: usize) -> i64 {
    n.min(i64::MAX as usize) as i64
}

/// Each method is answered by the method of the same name in the file of its concern.
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn shared(&self) -> bool {
        true
    }

    fn listen(&self) -> Result<Option<Listener>> {
        PgStore::listen(self)
    }

    fn broker_seen(&mut self, id: &str, started_at: i64, alive_ms: i64) -> Result<usize> {
        PgStore::broker_seen(self, id, started_at, alive_ms)
    }

    fn brokers_gone(&mut self, alive_ms: i64) -> Result<Vec<PresenceRow>> {
        PgStore::brokers_gone(self, alive_ms)
    }

    fn presence_put(&mut self, row: &PresenceRow) -> Result<()> {
        PgStore::presence_put(self, row)
    }

    fn presence_drop(&mut self, id: &str) -> Result<()> {
        PgStore::presence_drop(self, id)
    }

    fn presences_elsewhere(
        &self,
        mesh_id: &str,
        broker_id: &str,
        alive_ms: i64,
    ) -> Result<Vec<PresenceRow>> {
        PgStore::presences_elsewhere(self, mesh_id, broker_id, alive_ms)
    }

    fn relay(&mut self, payload: &str) -> Result<()> {
        PgStore::relay(self, payload)
    }

    fn relay_store(&mut self, body: &str, now: i64) -> Result<i64> {
        PgStore::relay_store(self, body, now)
    }

    fn relay_stored(&self, id: i64) -> Result<Option<String>> {
        PgStore::relay_stored(self, id)
    }

    fn relay_sweep(&mut self, before: i64) -> Result<()> {
        PgStore::relay_sweep(self, before)
    }

    fn take_tokens(
        &mut self,
        key: &str,
        want: u32,
        per_second: f64,
        burst: f64,
        now: i64,
    ) -> Result<(u32, u64)> {
        PgStore::take_tokens(self, key, want, per_second, burst, now)
    }

    fn rate_sweep(&mut self, before: i64) -> Result<()> {
        PgStore::rate_sweep(self, before)
    }

    fn ping(&self) -> Result<()> {
        self.read(|c| c.query("SELECT 1", &[]).map(|_| ()))
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
        if std::mem::replace(&mut self.broken, false) {
            let _ = self.conn.get_mut().client.batch_execute("ROLLBACK");
            return Err(Error::io(
                "database: the transaction was lost after a write error",
            ));
        }
        // A failed COMMIT ends the transaction on the server; nothing of the batch stays.
        self.conn
            .get_mut()
            .client
            .batch_execute("COMMIT")
            .map_err(db)?;
        Ok(true)
    }

    fn rollback(&mut self) {
        if self.in_tx {
            let _ = self.conn.get_mut().client.batch_execute("ROLLBACK");
        }
        self.in_tx = false;
        self.broken = false;
    }

    fn create_mesh(&mut self, mesh: &Mesh, owner: &Member) -> Result<()> {
        PgStore::create_mesh(self, mesh, owner)
    }

    fn mesh(&self, id: &str) -> Result<Option<Mesh>> {
        PgStore::mesh(self, id)
    }

    fn slug_taken(&self, slug: &str) -> Result<bool> {
        PgStore::slug_taken(self, slug)
    }

    fn member(&self, id: &str) -> Result<Option<Member>> {
        PgStore::member(self, id)
    }

    fn member_by_pubkey(&self, mesh_id: &str, pubkey: &str) -> Result<Option<Member>> {
        PgStore::member_by_pubkey(self, mesh_id, pubkey)
    }

    fn members(&self, mesh_id: &str) -> Result<Vec<Member>> {
        PgStore::members(self, mesh_id)
    }

    fn insert_member(&mut self, m: &Member) -> Result<()> {
        PgStore::insert_member(self, m)
    }

    fn set_member_groups(&mut self, member_id: &str, groups: &str) -> Result<()> {
        PgStore::set_member_groups(self, member_id, groups)
    }

    fn set_member_revoked(&mut self, member_id: &str, at: Option<i64>) -> Result<()> {
        PgStore::set_member_revoked(self, member_id, at)
    }

    fn insert_invite(&mut self, i: &Invite) -> Result<()> {
        PgStore::insert_invite(self, i)
    }

    fn invite_by_token(&self, token: &str) -> Result<Option<Invite>> {
        PgStore::invite_by_token(self, token)
    }

    fn use_invite(&mut self, id: &str) -> Result<bool> {
        PgStore::use_invite(self, id)
    }

    fn upsert_session(&mut self, s: &Session) -> Result<()> {
        PgStore::upsert_session(self, s)
    }

    fn session(&self, mesh_id: &str, session_pubkey: &str) -> Result<Option<Session>> {
        PgStore::session(self, mesh_id, session_pubkey)
    }

    fn insert_message(&mut self, m: &Message, deliveries: &[NewDelivery]) -> Result<Vec<i64>> {
        PgStore::insert_message(self, m, deliveries)
    }

    fn message_by_client_id(
        &self,
        mesh_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>> {
        PgStore::message_by_client_id(self, mesh_id, sender_member_id, client_message_id)
    }

    fn messages_by_prefix(
        &self,
        mesh_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        PgStore::messages_by_prefix(self, mesh_id, prefix, limit)
    }

    fn deliveries_of(&self, message_id: &str) -> Result<Vec<DeliveryState>> {
        PgStore::deliveries_of(self, message_id)
    }

    fn pending(
        &self,
        member_id: &str,
        session_pubkey: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Pending>> {
        PgStore::pending(self, member_id, session_pubkey, limit)
    }

    fn pending_delivery(&self, delivery_id: i64) -> Result<Option<Pending>> {
        PgStore::pending_delivery(self, delivery_id)
    }

    fn pending_deliveries(&self, ids: &[i64]) -> Result<Vec<Pending>> {
        PgStore::pending_deliveries(self, ids)
    }

    fn keeps_file_data(&self) -> bool {
        true
    }

    fn put_file_chunk(&mut self, file_id: &str, seq: i64, data: &[u8], now: i64) -> Result<()> {
        PgStore::put_file_chunk(self, file_id, seq, data, now)
    }

    fn file_chunk(&self, file_id: &str, seq: i64) -> Result<Option<Vec<u8>>> {
        PgStore::file_chunk(self, file_id, seq)
    }

    fn drop_file_chunks(&mut self, file_id: &str) -> Result<()> {
        PgStore::drop_file_chunks(self, file_id)
    }

    fn sweep_file_chunks(&mut self, before: i64) -> Result<()> {
        PgStore::sweep_file_chunks(self, before)
    }

    fn mark_delivered(
        &mut self,
        mesh_id: &str,
        member_id: &str,
        message_id: Option<&str>,
        client_message_id: Option<&str>,
        at: i64,
    ) -> Result<Vec<i64>> {
        PgStore::mark_delivered(self, mesh_id, member_id, message_id, client_message_id, at)
    }

    fn pending_count(&self) -> Result<i64> {
        PgStore::pending_count(self)
    }

    fn insert_file(&mut self, f: &FileRow, keys: &[(String, String)]) -> Result<()> {
        PgStore::insert_file(self, f, keys)
    }

    fn file(&self, id: &str) -> Result<Option<FileRow>> {
        PgStore::file(self, id)
    }

    fn file_key(&self, file_id: &str, pubkey: &str) -> Result<Option<String>> {
        PgStore::file_key(self, file_id, pubkey)
    }

    fn files_for(&self, mesh_id: &str, member_id: &str, keys: &[&str]) -> Result<Vec<FileRow>> {
        PgStore::files_for(self, mesh_id, member_id, keys)
    }

    fn delete_file(&mut self, id: &str) -> Result<()> {
        PgStore::delete_file(self, id)
    }

    fn state_get(&self, mesh_id: &str, key: &str) -> Result<Option<StateRow>> {
        PgStore::state_get(self, mesh_id, key)
    }

    fn state_list(&self, mesh_id: &str) -> Result<Vec<StateRow>> {
        PgStore::state_list(self, mesh_id)
    }

    fn state_put(&mut self, row: &StateRow, expected: Option<i64>) -> Result<StatePut> {
        PgStore::state_put(self, row, expected)
    }

    fn memory_insert(&mut self, m: &MemoryRow) -> Result<()> {
        PgStore::memory_insert(self, m)
    }

    fn memory_search(
        &self,
        mesh_id: &str,
        fts_query: &str,
        limit: usize,
    ) -> Result<Vec<MemoryHit>> {
        PgStore::memory_search(self, mesh_id, fts_query, limit)
    }

    fn memory_ids(&self, mesh_id: &str, prefix: &str, limit: usize) -> Result<Vec<String>> {
        PgStore::memory_ids(self, mesh_id, prefix, limit)
    }

    fn memory_forget(&mut self, mesh_id: &str, id: &str, at: i64) -> Result<bool> {
        PgStore::memory_forget(self, mesh_id, id, at)
    }

    fn task_insert(&mut self, t: &TaskRow) -> Result<()> {
        PgStore::task_insert(self, t)
    }

    fn tasks_by_prefix(&self, mesh_id: &str, prefix: &str, limit: usize) -> Result<Vec<TaskRow>> {
        PgStore::tasks_by_prefix(self, mesh_id, prefix, limit)
    }

    fn tasks_list(
        &self,
        mesh_id: &str,
        status: Option<&str>,
        assignee: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TaskRow>> {
        PgStore::tasks_list(self, mesh_id, status, assignee, limit)
    }

    fn task_claim(
        &mut self,
        id: &str,
        member_id: &str,
        name: &str,
        at: i64,
        lease_until: i64,
    ) -> Result<bool> {
        PgStore::task_claim(self, id, member_id, name, at, lease_until)
    }

    fn task_complete(&mut self, id: &str, result: Option<&str>, at: i64) -> Result<bool> {
        PgStore::task_complete(self, id, result, at)
    }

    fn task_release(&mut self, id: &str) -> Result<bool> {
        PgStore::task_release(self, id)
    }

    fn task_renew(&mut self, id: &str, lease_until: i64) -> Result<()> {
        PgStore::task_renew(self, id, lease_until)
    }

    fn task_leases_due(&self, now: i64, limit: usize) -> Result<Vec<TaskRow>> {
        PgStore::task_leases_due(self, now, limit)
    }

    fn reservation_put(&mut self, r: &ReservationRow) -> Result<()> {
        PgStore::reservation_put(self, r)
    }

    fn reservations_live(
        &self,
        mesh_id: &str,
        scope: Option<&str>,
        now: i64,
        limit: usize,
    ) -> Result<Vec<ReservationRow>> {
        PgStore::reservations_live(self, mesh_id, scope, now, limit)
    }

    fn reservation_delete(&mut self, id: &str) -> Result<()> {
        PgStore::reservation_delete(self, id)
    }

    fn reservations_expire(&mut self, now: i64) -> Result<usize> {
        PgStore::reservations_expire(self, now)
    }

    fn vault_put(&mut self, e: &VaultRow, readers: &[(String, String)]) -> Result<()> {
        PgStore::vault_put(self, e, readers)
    }

    fn vault_readable(
        &self,
        mesh_id: &str,
        member_id: &str,
        pubkey: &str,
    ) -> Result<Vec<VaultRow>> {
        PgStore::vault_readable(self, mesh_id, member_id, pubkey)
    }

    fn vault_reader_names(&self, entry_id: &str) -> Result<Vec<String>> {
        PgStore::vault_reader_names(self, entry_id)
    }

    fn vault_delete(&mut self, mesh_id: &str, member_id: &str, key: &str) -> Result<bool> {
        PgStore::vault_delete(self, mesh_id, member_id, key)
    }

    fn schedule_insert(&mut self, r: &ScheduleRow) -> Result<()> {
        PgStore::schedule_insert(self, r)
    }

    fn schedules_of(&self, mesh_id: &str, member_id: &str) -> Result<Vec<ScheduleRow>> {
        PgStore::schedules_of(self, mesh_id, member_id)
    }

    fn schedule_cancel(&mut self, id: &str) -> Result<bool> {
        PgStore::schedule_cancel(self, id)
    }

    fn schedules_due(&mut self, now: i64, limit: usize) -> Result<Vec<ScheduleRow>> {
        PgStore::schedules_due(self, now, limit)
    }

    fn schedule_next_due(&self) -> Result<Option<i64>> {
        PgStore::schedule_next_due(self)
    }

    fn schedule_fired(&mut self, id: &str, next_fire_at: Option<i64>, at: i64) -> Result<()> {
        PgStore::schedule_fired(self, id, next_fire_at, at)
    }

    fn member_presence(&self, member_id: &str) -> Result<MemberPresence> {
        PgStore::member_presence(self, member_id)
    }

    fn set_member_presence(&mut self, member_id: &str, p: &MemberPresence) -> Result<()> {
        PgStore::set_member_presence(self, member_id, p)
    }

    fn set_member_name(&mut self, member_id: &str, display_name: &str) -> Result<()> {
        PgStore::set_member_name(self, member_id, display_name)
    }

    fn set_member_role_tag(&mut self, member_id: &str, role_tag: Option<&str>) -> Result<()> {
        PgStore::set_member_role_tag(self, member_id, role_tag)
    }

    fn insert_topic(&mut self, t: &Topic) -> Result<()> {
        PgStore::insert_topic(self, t)
    }

    fn topic(&self, mesh_id: &str, id_or_name: &str) -> Result<Option<Topic>> {
        PgStore::topic(self, mesh_id, id_or_name)
    }

    fn topics(&self, mesh_id: &str, member_id: &str) -> Result<Vec<TopicListing>> {
        PgStore::topics(self, mesh_id, member_id)
    }

    fn topic_members(&self, topic_id: &str) -> Result<Vec<TopicMembership>> {
        PgStore::topic_members(self, topic_id)
    }

    fn join_topic(&mut self, topic_id: &str, member_id: &str, role: &str, at: i64) -> Result<bool> {
        PgStore::join_topic(self, topic_id, member_id, role, at)
    }

    fn leave_topic(&mut self, topic_id: &str, member_id: &str) -> Result<bool> {
        PgStore::leave_topic(self, topic_id, member_id)
    }

    fn mark_topic_read(&mut self, topic_id: &str, member_id: &str, at: i64) -> Result<bool> {
        PgStore::mark_topic_read(self, topic_id, member_id, at)
    }

    fn put_topic_key(&mut self, k: &SealedKey) -> Result<bool> {
        PgStore::put_topic_key(self, k)
    }

    fn topic_key(&self, topic_id: &str, member_id: &str) -> Result<Option<SealedKey>> {
        PgStore::topic_key(self, topic_id, member_id)
    }

    fn insert_topic_message(&mut self, m: &TopicMessage) -> Result<i64> {
        PgStore::insert_topic_message(self, m)
    }

    fn topic_messages(&self, topic_id: &str, page: TopicPage) -> Result<Vec<TopicMessageRow>> {
        PgStore::topic_messages(self, topic_id, page)
    }

    fn topic_messages_by_prefix(
        &self,
        topic_id: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<TopicMessageRow>> {
        PgStore::topic_messages_by_prefix(self, topic_id, prefix, limit)
    }

    fn topic_message_by_client_id(
        &self,
        topic_id: &str,
        sender_member_id: &str,
        client_message_id: &str,
    ) -> Result<Option<String>> {
        PgStore::topic_message_by_client_id(self, topic_id, sender_member_id, client_message_id)
    }

    fn insert_notification(
        &mut self,
        id: &str,
        message_id: &str,
        member_id: &str,
        kind: &str,
        at: i64,
    ) -> Result<bool> {
        PgStore::insert_notification(self, id, message_id, member_id, kind, at)
    }

    fn notifications(
        &self,
        member_id: &str,
        unread_only: bool,
        limit: usize,
    ) -> Result<Vec<NotificationRow>> {
        PgStore::notifications(self, member_id, unread_only, limit)
    }

    fn mark_notifications_read(
        &mut self,
        member_id: &str,
        ids: Option<&[String]>,
        at: i64,
    ) -> Result<usize> {
        PgStore::mark_notifications_read(self, member_id, ids, at)
    }

    fn insert_api_key(&mut self, k: &ApiKey) -> Result<()> {
        PgStore::insert_api_key(self, k)
    }

    fn api_keys(&self, mesh_id: &str) -> Result<Vec<ApiKey>> {
        PgStore::api_keys(self, mesh_id)
    }

    fn api_keys_by_prefix(&self, secret_prefix: &str) -> Result<Vec<ApiKey>> {
        PgStore::api_keys_by_prefix(self, secret_prefix)
    }

    fn revoke_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        PgStore::revoke_api_key(self, id, at)
    }

    fn touch_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        PgStore::touch_api_key(self, id, at)
    }

    fn context_put(&mut self, c: &ContextRow) -> Result<String> {
        PgStore::context_put(self, c)
    }

    fn contexts_search(&self, mesh_id: &str, query: &str, limit: usize) -> Result<Vec<ContextRow>> {
        PgStore::contexts_search(self, mesh_id, query, limit)
    }

    fn contexts_list(&self, mesh_id: &str, limit: usize) -> Result<Vec<ContextRow>> {
        PgStore::contexts_list(self, mesh_id, limit)
    }

    fn grants_all(&self) -> Result<Vec<GrantRow>> {
        PgStore::grants_all(self)
    }

    fn blocks_all(&self) -> Result<Vec<BlockRow>> {
        PgStore::blocks_all(self)
    }

    fn grant_put(&mut self, g: &GrantRow) -> Result<()> {
        PgStore::grant_put(self, g)
    }

    fn block_put(&mut self, b: &BlockRow) -> Result<()> {
        PgStore::block_put(self, b)
    }

    fn block_delete(&mut self, member_id: &str, peer: &str) -> Result<bool> {
        PgStore::block_delete(self, member_id, peer)
    }

    fn webhook_insert(&mut self, w: &WebhookRow) -> Result<bool> {
        PgStore::webhook_insert(self, w)
    }

    fn webhook(&self, id: &str) -> Result<Option<WebhookRow>> {
        PgStore::webhook(self, id)
    }

    fn webhooks(&self, mesh_id: &str) -> Result<Vec<WebhookRow>> {
        PgStore::webhooks(self, mesh_id)
    }

    fn webhook_delete(&mut self, mesh_id: &str, name: &str) -> Result<Option<WebhookRow>> {
        PgStore::webhook_delete(self, mesh_id, name)
    }

    fn webhook_delivery_take(
        &mut self,
        webhook_id: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<bool> {
        PgStore::webhook_delivery_take(self, webhook_id, delivery_id, now)
    }
}
