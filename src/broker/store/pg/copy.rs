//! `cm-broker copy-store`: everything a SQLite store holds, copied into a PostgreSQL database, so that a broker
//! started on the database serves the same meshes.
//!
//! Why one generic loop and no code per table: the two schemas share their table and column names (PostgreSQL's
//! migrations are SQLite's schema in PostgreSQL's types). For each table the copy reads PostgreSQL's columns and
//! types from `information_schema`, selects the columns SQLite has of them, and converts each value by
//! PostgreSQL's type (SQLite keeps a boolean as 0 or 1). A column PostgreSQL computes (the memories' `tsvector`)
//! is left to it; one SQLite lacks keeps its default; SQLite's own tables (the FTS5 index) are not copied.
//!
//! Why one transaction on each side: on PostgreSQL, a copy that fails halfway leaves the database as it was, and
//! the check that it holds no mesh yet (under a lock a second copy waits on) cannot be raced, so nothing is ever
//! doubled. On SQLite, one read transaction sees one snapshot throughout (WAL), even while a broker still writes
//! to the store.
//!
//! Uploaded files' ciphertext, which a SQLite broker keeps in `<data>/files`, goes into `file_chunks` in the same
//! transaction, a row per chunk, where every broker on the database reads it.

use std::fs;
use std::path::Path;

use postgres::types::ToSql;
use rusqlite::types::ValueRef;

use super::{PgStore, db};
use crate::broker::store::SqliteStore;
use crate::error::{Error, Result};

/// PostgreSQL's tables of a mesh's data, each after every table its foreign keys name.
const TABLES: &[&str] = &[
    "meshes",
    "members",
    "invites",
    "sessions",
    "messages",
    "deliveries",
    "files",
    "file_keys",
    "state",
    "memories",
    "schedules",
    "topics",
    "topic_members",
    "topic_keys",
    "topic_messages",
    "notifications",
    "api_keys",
    "tasks",
    "reservations",
    "vault_entries",
    "vault_readers",
    "grants",
    "blocks",
    "contexts",
    "webhooks",
    "webhook_deliveries",
];

/// Parameters per INSERT at most (PostgreSQL takes up to 65535), and rows per INSERT at most.
const MAX_PARAMS: usize = 16_000;
const MAX_ROWS: usize = 1_000;

/// One table copied: its name and how many rows it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: u64,
}

/// A column of a PostgreSQL table, as the copy writes it.
struct Column {
    name: String,
    /// `information_schema`'s `data_type`: `bigint`, `text`, `boolean`, ...
    ty: String,
    /// `GENERATED ... AS IDENTITY`: inserted with `OVERRIDING SYSTEM VALUE`, its sequence moved past the copy.
    identity: bool,
}

/// What [`copy_store`] copied.
#[derive(Debug)]
pub struct Report {
    /// The rows each table got.
    pub tables: Vec<Copied>,
    /// Uploaded files whose ciphertext went into `file_chunks`.
    pub files: u64,
    /// Files with a row whose ciphertext is missing from `<data>/files` or is not the size its row says: their
    /// rows are copied, and a download of them fails as it would have on SQLite.
    pub damaged: Vec<String>,
}

/// Copies the SQLite store under `data` into the PostgreSQL database at `url` (migrated first), the uploaded
/// files' ciphertext included, in one transaction; refused when the database holds a mesh already.
pub fn copy_store(data: &Path, url: &str) -> Result<Report> {
    let file = data.join("broker.db");
    if !file.is_file() {
        return Err(Error::not_found(format!(
            "{}: no SQLite store there (is --data the SQLite broker's data directory?)",
            file.display()
        )));
    }
    // Brought up to date as the broker would at start, without its checkpoint thread.
    let sqlite = SqliteStore::open_with(data, None, crate::broker::store::wal::WAL_LIMIT)?;
    let src = &sqlite.conn;
    src.execute_batch("BEGIN").map_err(sqlite_err)?;
    // The first read fixes the snapshot every later one sees.
    src.query_row("SELECT count(*) FROM meshes", [], |r| r.get::<_, i64>(0))
        .map_err(sqlite_err)?;

    let mut pg = PgStore::open(url)?;
    let label = pg.label.clone();
    let client = &mut pg.conn.get_mut().client;
    let mut tx = client.transaction().map_err(db)?;
    // A second copy started at once waits here, then finds the meshes this one wrote.
    tx.batch_execute("LOCK TABLE meshes IN SHARE ROW EXCLUSIVE MODE")
        .map_err(db)?;
    let meshes: i64 = tx
        .query_one("SELECT count(*) FROM meshes", &[])
        .and_then(|r| r.try_get(0))
        .map_err(db)?;
    if meshes > 0 {
        return Err(Error::exists(format!(
            "database {label} already holds {meshes} mesh{}: copy-store copies into a database without any",
            if meshes == 1 { "" } else { "es" }
        )));
    }
    let mut copied = Vec::with_capacity(TABLES.len());
    for &table in TABLES {
        let rows = copy_table(src, &mut tx, table).map_err(|e| e.context(table))?;
        copied.push(Copied { table, rows });
    }
    let (files, damaged) = copy_chunks(src, &mut tx, &data.join("files"))?;
    tx.commit().map_err(db)?;
    // The read transaction only ever read.
    let _ = src.execute_batch("COMMIT");
    Ok(Report {
        tables: copied,
        files,
        damaged,
    })
}

/// Puts the ciphertext of every file in the snapshot into `file_chunks`, cut where the broker cuts it (the row's
/// chunk size plus the tag); how many files, and those whose ciphertext is missing or of the wrong size.
fn copy_chunks(
    src: &rusqlite::Connection,
    tx: &mut postgres::Transaction,
    files: &Path,
) -> Result<(u64, Vec<String>)> {
    use crate::broker::files::{TAG, ciphertext_len};
    let rows: Vec<(String, i64, i64, i64)> = src
        .prepare("SELECT id, size, chunk_size, created_at FROM files ORDER BY id")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .map_err(sqlite_err)?;
    let insert = tx
        .prepare("INSERT INTO file_chunks (file_id, seq, data, created_at) VALUES ($1, $2, $3, $4)")
        .map_err(db)?;
    let (mut copied, mut damaged) = (0, Vec::new());
    for (id, size, chunk_size, created_at) in rows {
        let (size, chunk_size) = (size.max(0) as u64, chunk_size.max(1) as u64);
        let bytes = match fs::read(files.join(&id)) {
            Ok(b) if b.len() as u64 == ciphertext_len(size, chunk_size) => b,
            Ok(_) => {
                damaged.push(id);
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                damaged.push(id);
                continue;
            }
            Err(e) => return Err(Error::from(e).context(files.join(&id).display())),
        };
        let step = usize::try_from(chunk_size + TAG).unwrap_or(usize::MAX);
        // An empty file is one chunk of its tag alone, which `chunks` yields as one piece.
        for (seq, chunk) in bytes.chunks(step).enumerate() {
            let seq = i64::try_from(seq).unwrap_or(i64::MAX);
            tx.execute(&insert, &[&id, &seq, &chunk, &created_at])
                .map_err(db)?;
        }
        copied += 1;
    }
    Ok((copied, damaged))
}

fn sqlite_err(e: rusqlite::Error) -> Error {
    Error::io(format!("SQLite store: {e}"))
}

/// `"name"`, for a table or column name in SQL.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// PostgreSQL's columns of `table` that take a value (not the generated ones), in their order.
fn pg_columns(tx: &mut postgres::Transaction, table: &str) -> Result<Vec<Column>> {
    let rows = tx
        .query(
            "SELECT column_name::text, data_type::text, is_identity::text, is_generated::text \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .map_err(db)?;
    let mut cols = Vec::with_capacity(rows.len());
    for r in rows {
        let text = |i: usize| r.try_get::<_, String>(i).map_err(db);
        if text(3)? == "ALWAYS" {
            continue;
        }
        cols.push(Column {
            name: text(0)?,
            ty: text(1)?,
            identity: text(2)? == "YES",
        });
    }
    if cols.is_empty() {
        return Err(Error::internal(
            "the PostgreSQL schema has no such table; report it",
        ));
    }
    Ok(cols)
}

/// SQLite's column names of `table` (none when SQLite has no such table).
fn sqlite_columns(src: &rusqlite::Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = src
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .map_err(sqlite_err)?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))
        .map_err(sqlite_err)?;
    names.collect::<rusqlite::Result<_>>().map_err(sqlite_err)
}

/// Copies every row of `table`, in INSERTs of many rows each; how many there were.
fn copy_table(
    src: &rusqlite::Connection,
    tx: &mut postgres::Transaction,
    table: &'static str,
) -> Result<u64> {
    let have = sqlite_columns(src, table)?;
    if have.is_empty() {
        return Ok(0);
    }
    let cols: Vec<Column> = pg_columns(tx, table)?
        .into_iter()
        .filter(|c| have.contains(&c.name))
        .collect();
    let names: Vec<String> = cols.iter().map(|c| quote(&c.name)).collect();
    let per_batch = (MAX_PARAMS / cols.len()).clamp(1, MAX_ROWS);
    let overriding = if cols.iter().any(|c| c.identity) {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let insert = |n: usize| {
        let rows: Vec<String> = (0..n)
            .map(|r| {
                let ps: Vec<String> = (0..cols.len())
                    .map(|c| format!("${}", r * cols.len() + c + 1))
                    .collect();
                format!("({})", ps.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}){overriding} VALUES {}",
            quote(table),
            names.join(", "),
            rows.join(", ")
        )
    };
    let full = tx.prepare(&insert(per_batch)).map_err(db)?;

    let mut stmt = src
        .prepare(&format!(
            "SELECT {} FROM {}",
            names.join(", "),
            quote(table)
        ))
        .map_err(sqlite_err)?;
    let mut rows = stmt.query([]).map_err(sqlite_err)?;
    let mut batch: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(per_batch * cols.len());
    let mut total = 0u64;
    let flush = |tx: &mut postgres::Transaction, batch: &mut Vec<Box<dyn ToSql + Sync>>| {
        let n = batch.len() / cols.len();
        let params: Vec<&(dyn ToSql + Sync)> = batch.iter().map(|b| b.as_ref()).collect();
        let r = if n == per_batch {
            tx.execute(&full, &params)
        } else {
            tx.execute(insert(n).as_str(), &params)
        };
        batch.clear();
        r.map_err(db)
    };
    while let Some(row) = rows.next().map_err(sqlite_err)? {
        for (i, c) in cols.iter().enumerate() {
            let v = row.get_ref(i).map_err(sqlite_err)?;
            batch.push(convert(v, &c.ty).map_err(|e| e.context(&c.name))?);
        }
        total += 1;
        if batch.len() == per_batch * cols.len() {
            flush(tx, &mut batch)?;
        }
    }
    if !batch.is_empty() {
        flush(tx, &mut batch)?;
    }
    // Rows inserted after the copy take ids past the copied ones.
    for c in cols.iter().filter(|c| c.identity) {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), \
                 COALESCE((SELECT max({col}) FROM {t}), 0) + 1, false)",
                col = quote(&c.name),
                t = quote(table)
            ),
            &[&table, &c.name],
        )
        .map_err(db)?;
    }
    Ok(total)
}

/// A SQLite value as a parameter of PostgreSQL's type `ty`; NULL stays NULL.
fn convert(v: ValueRef<'_>, ty: &str) -> Result<Box<dyn ToSql + Sync>> {
    let misfit = || {
        Error::io(format!(
            "a SQLite {} does not fit PostgreSQL's {ty}",
            match v {
                ValueRef::Null => "NULL",
                ValueRef::Integer(_) => "integer",
                ValueRef::Real(_) => "real",
                ValueRef::Text(_) => "text",
                ValueRef::Blob(_) => "blob",
            }
        ))
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| misfit());
    Ok(match (ty, v) {
        ("bigint", ValueRef::Null) => Box::new(None::<i64>),
        ("bigint", ValueRef::Integer(n)) => Box::new(n),
        ("integer", ValueRef::Null) => Box::new(None::<i32>),
        ("integer", ValueRef::Integer(n)) => Box::new(i32::try_from(n).map_err(|_| misfit())?),
        ("smallint", ValueRef::Null) => Box::new(None::<i16>),
        ("smallint", ValueRef::Integer(n)) => Box::new(i16::try_from(n).map_err(|_| misfit())?),
        ("boolean", ValueRef::Null) => Box::new(None::<bool>),
        ("boolean", ValueRef::Integer(n)) => Box::new(n != 0),
        ("text" | "character varying", ValueRef::Null) => Box::new(None::<String>),
        ("text" | "character varying", ValueRef::Text(t)) => Box::new(text(t)?),
        ("text" | "character varying", ValueRef::Integer(n)) => Box::new(n.to_string()),
        ("text" | "character varying", ValueRef::Real(f)) => Box::new(f.to_string()),
        ("bytea", ValueRef::Null) => Box::new(None::<Vec<u8>>),
        ("bytea", ValueRef::Blob(b) | ValueRef::Text(b)) => Box::new(b.to_vec()),
        ("double precision", ValueRef::Null) => Box::new(None::<f64>),
        ("double precision", ValueRef::Real(f)) => Box::new(f),
        ("double precision", ValueRef::Integer(n)) => Box::new(n as f64),
        ("real", ValueRef::Null) => Box::new(None::<f32>),
        ("real", ValueRef::Real(f)) => Box::new(f as f32),
        ("real", ValueRef::Integer(n)) => Box::new(n as f32),
        _ => return Err(misfit()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testdb::fresh_schema;
    use super::*;

    /// PostgreSQL's tables that hold no mesh's data: the schema's version and what several brokers share, which a
    /// SQLite store does not have.
    const CLUSTER_ONLY: &[&str] = &[
        "brokers",
        "file_chunks",
        "presences",
        "rate_buckets",
        "relays",
        "schema_version",
    ];

    #[test]
    fn values_convert_by_postgresql_type() {
        assert!(convert(ValueRef::Integer(1), "boolean").is_ok());
        assert!(convert(ValueRef::Null, "bigint").is_ok());
        assert!(convert(ValueRef::Integer(1 << 40), "integer").is_err());
        let e = convert(ValueRef::Blob(b"x"), "bigint").err().unwrap();
        assert_eq!(e.msg, "a SQLite blob does not fit PostgreSQL's bigint");
        assert!(convert(ValueRef::Text(b"x"), "tsvector").is_err());
    }

    #[test]
    fn the_list_names_every_table_of_the_postgresql_schema_but_the_clusters() {
        let Some(config) = fresh_schema("cp") else {
            return;
        };
        let mut s = PgStore::open_config(config).unwrap();
        let c = &mut s.conn.get_mut().client;
        let mut have: Vec<String> = c
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        have.sort();
        let mut listed: Vec<String> = TABLES
            .iter()
            .chain(CLUSTER_ONLY)
            .map(|t| t.to_string())
            .collect();
        listed.sort();
        assert_eq!(have, listed);
        // Each table comes after those its foreign keys name.
        let fks = c
            .query(
                "SELECT tc.table_name::text, ccu.table_name::text \
                 FROM information_schema.table_constraints tc \
                 JOIN information_schema.constraint_column_usage ccu \
                   ON ccu.constraint_name = tc.constraint_name AND ccu.table_schema = tc.table_schema \
                 WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()",
                &[],
            )
            .unwrap();
        assert!(!fks.is_empty());
        let at = |t: &str| TABLES.iter().position(|x| *x == t).unwrap();
        for r in fks {
            let (from, to): (String, String) = (r.get(0), r.get(1));
            assert!(at(&to) <= at(&from), "{from} names {to}, listed later");
        }
    }

    #[test]
    fn every_sqlite_column_has_a_postgresql_column_to_go_to() {
        let Some(config) = fresh_schema("cc") else {
            return;
        };
        let dir = crate::broker::store::fixtures::TempDir::new("copy-cols");
        let sqlite = SqliteStore::open(&dir.0).unwrap();
        let mut s = PgStore::open_config(config).unwrap();
        let mut tx = s.conn.get_mut().client.transaction().unwrap();
        for t in TABLES {
            let pg: Vec<String> = pg_columns(&mut tx, t)
                .unwrap()
                .into_iter()
                .map(|c| c.name)
                .collect();
            for c in sqlite_columns(&sqlite.conn, t).unwrap() {
                assert!(pg.contains(&c), "{t}.{c} has no PostgreSQL column");
            }
        }
    }
}
