//! The floor under `cm-bench`'s figures on a machine: what the broker's parts cost without the rest.
//!
//! `floor relay --listen ADDR --members FILE [-n N]` writes N members to FILE for `cm-bench --members` and relays
//! over the broker's own transport (the same event loop, WebSocket framing and frame parsing) with nothing behind
//! it: a `hello` is answered without a signature check, a `send` is pushed to the connection that said hello with
//! the target key and acknowledged at once, a `client_ack` is dropped. No store, no hub.
//!
//! `floor store --data DIR [-m MESSAGES] [--batch B]` writes what `cm-bench dm` makes the broker write, with the
//! broker's own SQLite store and its checkpoint thread, and nothing else: per message its row, its delivery and,
//! one batch later, its acknowledgement; one commit per batch. It prints one JSON line. With `--hold` it keeps the
//! store open until stdin closes, so that the WAL's frames can be read.
//!
//! `floor keys --keys text|int --data DIR [-m MESSAGES] [--batch B]` is the same load on two schemas of the two
//! tables alone, outside the broker: `text`, the broker's (32-character ids in every key), and `int`, the same
//! columns keyed by integer row ids (the message's public id in one index of its own). SQLite's own checkpoints,
//! the same pragmas otherwise. It says what integer keys would buy before the store is rewritten for them.
//!
//! Build with `cargo build --release --example floor`; BENCHMARKS.md says how the figures were taken.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use claudemesh::broker::net::{
    self, ConnId, Handler, HttpAction, Io, NetConfig, Request, Response, Shutdown,
};
use claudemesh::broker::store::{Member, Mesh, Message, NewDelivery, SqliteStore, Store, new_id};
use claudemesh::crypto::Keypair;
use claudemesh::wire::{self, Ack, Frame, HelloAck, Priority, Push};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor: {e}");
            ExitCode::from(2)
        }
    }
}

/// The value of `flag`, parsed.
fn value<T: std::str::FromStr>(args: &mut lexopt::Parser, flag: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let v = args.value().map_err(|e| e.to_string())?;
    let v = v.to_str().ok_or(format!("{flag}: not UTF-8"))?;
    v.parse().map_err(|e| format!("{flag}: {e}"))
}

fn run() -> Result<(), String> {
    let mut args = lexopt::Parser::from_env();
    let mode = match args.next().map_err(|e| e.to_string())? {
        Some(lexopt::Arg::Value(v)) => v.into_string().map_err(|_| "mode is not UTF-8".to_string())?,
        _ => return Err("usage: floor relay --listen ADDR --members FILE [-n N] | floor store --data DIR [-m M] [--batch B] [--hold] | floor keys --keys text|int --data DIR [-m M] [--batch B]".into()),
    };
    let (mut listen, mut members, mut data) =
        (None::<SocketAddr>, None::<PathBuf>, None::<PathBuf>);
    let (mut n, mut m, mut batch, mut hold) = (100usize, 100_000usize, 100usize, false);
    let mut keys = String::from("text");
    while let Some(arg) = args.next().map_err(|e| e.to_string())? {
        use lexopt::prelude::*;
        match arg {
            Long("listen") => listen = Some(value(&mut args, "--listen")?),
            Long("members") => members = Some(value(&mut args, "--members")?),
            Long("data") => data = Some(value(&mut args, "--data")?),
            Short('n') => n = value(&mut args, "-n")?,
            Short('m') => m = value(&mut args, "-m")?,
            Long("batch") => batch = value(&mut args, "--batch")?,
            Long("keys") => keys = value(&mut args, "--keys")?,
            Long("hold") => hold = true,
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    match mode.as_str() {
        "relay" => relay(
            listen.ok_or("relay needs --listen")?,
            &members.ok_or("relay needs --members")?,
            n,
        ),
        "keys" => keys_floor(&data.ok_or("keys needs --data")?, &keys, m, batch.max(1)),
        "store" => store(&data.ok_or("store needs --data")?, m, batch.max(1), hold),
        other => Err(format!("unknown mode {other:?}: relay or store")),
    }
}

/// Members of a mesh that exists nowhere, for `cm-bench --members`.
fn relay(listen: SocketAddr, file: &Path, n: usize) -> Result<(), String> {
    let mut out = String::new();
    for i in 0..n {
        let k = Keypair::generate();
        out += &serde_json::json!({
            "meshId": "floor", "memberId": format!("m{i}"),
            "pubkey": k.public_hex(), "secretKey": k.secret_hex(),
        })
        .to_string();
        out.push('\n');
    }
    std::fs::write(file, out).map_err(|e| format!("{}: {e}", file.display()))?;
    let listener = TcpListener::bind(listen).map_err(|e| format!("{listen}: {e}"))?;
    eprintln!(
        "relaying on ws://{}/ws",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let shutdown = Shutdown::new().map_err(|e| e.to_string())?;
    let mut relay = Relay {
        by_key: HashMap::new(),
        key_of: HashMap::new(),
        seq: 0,
    };
    net::serve(listener, &NetConfig::default(), &mut relay, &shutdown).map_err(|e| e.to_string())
}

struct Relay {
    by_key: HashMap<String, ConnId>,
    key_of: HashMap<ConnId, String>,
    seq: u64,
}

impl Handler for Relay {
    fn on_open(&mut self, _: &mut Io, _: ConnId, _: SocketAddr) {}

    fn on_text(&mut self, io: &mut Io, conn: ConnId, text: &str) {
        match wire::parse(text) {
            Ok(Frame::Hello(h)) => {
                self.by_key.insert(h.pubkey.clone(), conn);
                self.key_of.insert(conn, h.pubkey);
                let ack = HelloAck {
                    presence_id: format!("p{conn}"),
                    member_display_name: "floor".into(),
                    ..HelloAck::default()
                };
                io.send(conn, Frame::HelloAck(ack).to_json());
            }
            Ok(Frame::Send(s)) => {
                self.seq += 1;
                let message_id = format!("floor{:027}", self.seq);
                if let Some(&to) = self.by_key.get(&s.target_spec) {
                    let push = Push {
                        message_id: message_id.clone(),
                        mesh_id: "floor".into(),
                        sender_pubkey: self.key_of.get(&conn).cloned().unwrap_or_default(),
                        priority: Priority::Next,
                        nonce: s.nonce,
                        ciphertext: s.ciphertext,
                        created_at: "2026-01-01T00:00:00.000Z".into(),
                        client_message_id: s.client_message_id,
                        ..Push::default()
                    };
                    io.send(to, Frame::Push(push).to_json());
                }
                let ack = Ack {
                    id: s.id,
                    message_id,
                    queued: false,
                    recipient_online: Some(true),
                    ..Ack::default()
                };
                io.send(conn, Frame::Ack(ack).to_json());
            }
            _ => {}
        }
    }

    fn on_close(&mut self, _: &mut Io, conn: ConnId, _: bool) {
        if let Some(k) = self.key_of.remove(&conn) {
            self.by_key.remove(&k);
        }
    }

    fn on_http(&mut self, _: &mut Io, _: ConnId, _: &Request) -> HttpAction {
        HttpAction::Respond(Response::text(404, "a relay: WebSocket at /ws only\n"))
    }

    fn on_tick(&mut self, _: &mut Io, _: Instant) {}

    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    fn end_of_batch(&mut self, _: &mut Io) {}
}

/// `m` messages between 100 members in batches of `batch`, as the broker stores a closed-loop `cm-bench dm`.
fn store(data: &Path, m: usize, batch: usize, hold: bool) -> Result<(), String> {
    let mut s = SqliteStore::open(data).map_err(|e| e.to_string())?;
    let now = claudemesh::time::now_ms();
    let mesh = Mesh {
        id: new_id(),
        name: "floor".into(),
        slug: "floor".into(),
        owner_pubkey: Keypair::generate().public_hex(),
        created_at: now,
        archived_at: None,
    };
    let members: Vec<Member> = (0..100)
        .map(|_| Member {
            id: new_id(),
            mesh_id: mesh.id.clone(),
            pubkey: Keypair::generate().public_hex(),
            display_name: "floor".into(),
            role: "member".into(),
            role_tag: None,
            groups: "[]".into(),
            message_mode: "push".into(),
            joined_at: now,
            last_seen_at: None,
            revoked_at: None,
        })
        .collect();
    s.create_mesh(&mesh, &members[0])
        .map_err(|e| e.to_string())?;
    for mb in &members[1..] {
        s.insert_member(mb).map_err(|e| e.to_string())?;
    }
    s.commit().map_err(|e| e.to_string())?;
    // A 256-byte body sealed and in base64, as cm-bench sends.
    let ciphertext = "A".repeat(364);
    let nonce = "B".repeat(32);
    let (mut rng, run) = (0x9E37_79B9_7F4A_7C15u64, new_id());
    let mut last: Vec<(String, String)> = Vec::new();
    let mut commit_time = Duration::ZERO;
    let start = Instant::now();
    let mut k = 0;
    while k < m {
        for (message, recipient) in std::mem::take(&mut last) {
            s.mark_delivered(
                &mesh.id,
                &recipient,
                Some(&message),
                None,
                claudemesh::time::now_ms(),
            )
            .map_err(|e| e.to_string())?;
        }
        for _ in 0..batch.min(m - k) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let (from, to) = ((rng % 100) as usize, ((rng >> 32) % 99) as usize);
            let to = if to >= from { to + 1 } else { to };
            let cmid = format!("{run}-{k:09}");
            if s.message_by_client_id(&mesh.id, &members[from].id, &cmid)
                .map_err(|e| e.to_string())?
                .is_some()
            {
                return Err("a fresh client id was found stored".into());
            }
            let msg = Message {
                id: new_id(),
                mesh_id: mesh.id.clone(),
                sender_member_id: members[from].id.clone(),
                sender_session_pubkey: None,
                target_spec: members[to].pubkey.clone(),
                priority: Priority::Next,
                nonce: nonce.clone(),
                ciphertext: ciphertext.clone(),
                client_message_id: Some(cmid),
                subtype: None,
                reply_to_id: None,
                body_version: None,
                created_at: claudemesh::time::now_ms(),
            };
            let d = NewDelivery {
                recipient_member_id: members[to].id.clone(),
                recipient_session_pubkey: None,
                nonce: None,
                ciphertext: None,
            };
            s.insert_message(&msg, &[d]).map_err(|e| e.to_string())?;
            last.push((msg.id, members[to].id.clone()));
            k += 1;
        }
        let t = Instant::now();
        s.commit().map_err(|e| e.to_string())?;
        commit_time += t.elapsed();
    }
    let took = start.elapsed();
    let line = serde_json::json!({
        "floor": "store", "messages": m, "batch": batch,
        "msgs_per_s": (m as f64 / took.as_secs_f64()).round(),
        "us_per_msg": (took.as_secs_f64() * 1e6 / m as f64 * 10.0).round() / 10.0,
        "commit_us_per_msg": (commit_time.as_secs_f64() * 1e6 / m as f64 * 10.0).round() / 10.0,
    });
    let _ = writeln!(std::io::stdout(), "{line}");
    if hold {
        // The store stays open, its WAL unmerged, until stdin closes: the frames of the last commits can be read.
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    }
    Ok(())
}

/// The tables of the two schemas `floor keys` compares, and its statements: (cid lookup, insert message, insert
/// delivery, find the delivery to acknowledge, acknowledge).
fn keys_schema(keys: &str) -> Option<(&'static str, [&'static str; 5])> {
    const TEXT: &str = "CREATE TABLE messages (id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL, sender_member_id TEXT NOT NULL, \
        target_spec TEXT NOT NULL, priority TEXT NOT NULL, nonce TEXT NOT NULL, ciphertext TEXT NOT NULL, \
        client_message_id TEXT, created_at INTEGER NOT NULL);
        CREATE UNIQUE INDEX messages_client_id ON messages (client_message_id, sender_member_id, mesh_id) \
        WHERE client_message_id IS NOT NULL;
        CREATE TABLE deliveries (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL, recipient_member_id TEXT NOT NULL, \
        created_at INTEGER NOT NULL, delivered_at INTEGER);
        CREATE INDEX deliveries_pending ON deliveries (recipient_member_id, created_at) WHERE delivered_at IS NULL;
        CREATE INDEX deliveries_message ON deliveries (created_at, message_id, recipient_member_id);";
    const INT: &str = "CREATE TABLE messages (id INTEGER PRIMARY KEY, public_id TEXT NOT NULL, mesh INTEGER NOT NULL, \
        sender INTEGER NOT NULL, target_spec TEXT NOT NULL, priority TEXT NOT NULL, nonce TEXT NOT NULL, \
        ciphertext TEXT NOT NULL, client_message_id TEXT, created_at INTEGER NOT NULL);
        CREATE UNIQUE INDEX messages_public_id ON messages (public_id);
        CREATE UNIQUE INDEX messages_client_id ON messages (client_message_id, sender) WHERE client_message_id IS NOT NULL;
        CREATE TABLE deliveries (id INTEGER PRIMARY KEY, message INTEGER NOT NULL, recipient INTEGER NOT NULL, \
        created_at INTEGER NOT NULL, delivered_at INTEGER);
        CREATE INDEX deliveries_pending ON deliveries (recipient, created_at) WHERE delivered_at IS NULL;
        CREATE INDEX deliveries_message ON deliveries (message, recipient);";
    match keys {
        "text" => Some((
            TEXT,
            [
                "SELECT id FROM messages WHERE mesh_id = ?1 AND sender_member_id = ?2 AND client_message_id = ?3",
                "INSERT INTO messages (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext, \
             client_message_id, created_at) VALUES (?1, ?2, ?3, ?4, 'next', ?5, ?6, ?7, ?8)",
                "INSERT INTO deliveries (message_id, recipient_member_id, created_at) VALUES (?1, ?2, ?3)",
                "SELECT id FROM deliveries INDEXED BY deliveries_message WHERE created_at = \
             (SELECT created_at FROM messages m WHERE m.id = ?2 AND m.mesh_id = ?1) \
             AND message_id = ?2 AND recipient_member_id = ?3 AND delivered_at IS NULL",
                "UPDATE deliveries SET delivered_at = ?2 WHERE id = ?1",
            ],
        )),
        "int" => Some((
            INT,
            [
                "SELECT public_id FROM messages WHERE mesh = ?1 AND sender = ?2 AND client_message_id = ?3",
                "INSERT INTO messages (public_id, mesh, sender, target_spec, priority, nonce, ciphertext, \
             client_message_id, created_at) VALUES (?1, ?2, ?3, ?4, 'next', ?5, ?6, ?7, ?8)",
                "INSERT INTO deliveries (message, recipient, created_at) VALUES (last_insert_rowid(), ?2, ?3)",
                "SELECT d.id FROM deliveries d WHERE d.message = \
             (SELECT id FROM messages m WHERE m.public_id = ?2 AND m.mesh = ?1) \
             AND d.recipient = ?3 AND d.delivered_at IS NULL",
                "UPDATE deliveries SET delivered_at = ?2 WHERE id = ?1",
            ],
        )),
        _ => None,
    }
}

/// `floor keys`: the closed-loop dm's writes on the schema `keys` names, one commit per batch.
fn keys_floor(data: &Path, keys: &str, m: usize, batch: usize) -> Result<(), String> {
    use rusqlite::{Connection, params};
    let (schema, sql) = keys_schema(keys).ok_or(format!("--keys {keys:?}: text or int"))?;
    std::fs::create_dir_all(data).map_err(|e| format!("{}: {e}", data.display()))?;
    let conn = Connection::open(data.join("floor.db")).map_err(|e| e.to_string())?;
    let fail = |e: rusqlite::Error| e.to_string();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16384;",
    )
    .map_err(fail)?;
    conn.execute_batch(schema).map_err(fail)?;
    // Members and the mesh as the schema names them: 32 characters, or a row id.
    let ids: Vec<String> = (0..101).map(|_| new_id()).collect();
    let key = |i: usize| -> rusqlite::types::Value {
        if keys == "int" {
            rusqlite::types::Value::Integer(i as i64 + 1)
        } else {
            rusqlite::types::Value::Text(ids[i].clone())
        }
    };
    let (mesh, ciphertext, nonce, run) = (key(100), "A".repeat(364), "B".repeat(32), new_id());
    let (mut rng, mut k, mut last) = (0x9E37_79B9_7F4A_7C15u64, 0usize, Vec::new());
    let start = Instant::now();
    while k < m {
        conn.execute_batch("BEGIN").map_err(fail)?;
        for (public_id, to) in std::mem::take(&mut last) {
            let found: Vec<i64> = conn
                .prepare_cached(sql[3])
                .and_then(|mut s| {
                    s.query_map(params![mesh, public_id, key(to)], |r| r.get(0))?
                        .collect()
                })
                .map_err(fail)?;
            for id in found {
                conn.prepare_cached(sql[4])
                    .and_then(|mut s| s.execute(params![id, claudemesh::time::now_ms()]))
                    .map_err(fail)?;
            }
        }
        for _ in 0..batch.min(m - k) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let (from, to) = ((rng % 100) as usize, ((rng >> 32) % 99) as usize);
            let to = if to >= from { to + 1 } else { to };
            let (cmid, public_id, now) = (
                format!("{run}-{k:09}"),
                new_id(),
                claudemesh::time::now_ms(),
            );
            let dup: Option<String> = conn
                .prepare_cached(sql[0])
                .and_then(|mut s| {
                    rusqlite::OptionalExtension::optional(
                        s.query_row(params![mesh, key(from), cmid], |r| r.get(0)),
                    )
                })
                .map_err(fail)?;
            if dup.is_some() {
                return Err("a fresh client id was found stored".into());
            }
            conn.prepare_cached(sql[1])
                .and_then(|mut s| {
                    s.execute(params![
                        public_id,
                        mesh,
                        key(from),
                        ids[to],
                        nonce,
                        ciphertext,
                        cmid,
                        now
                    ])
                })
                .map_err(fail)?;
            conn.prepare_cached(sql[2])
                .and_then(|mut s| s.execute(params![public_id, key(to), now]))
                .map_err(fail)?;
            last.push((public_id, to));
            k += 1;
        }
        conn.execute_batch("COMMIT").map_err(fail)?;
    }
    let took = start.elapsed();
    let line = serde_json::json!({
        "floor": "keys", "keys": keys, "messages": m, "batch": batch,
        "msgs_per_s": (m as f64 / took.as_secs_f64()).round(),
        "us_per_msg": (took.as_secs_f64() * 1e6 / m as f64 * 10.0).round() / 10.0,
    });
    let _ = writeln!(std::io::stdout(), "{line}");
    Ok(())
}
