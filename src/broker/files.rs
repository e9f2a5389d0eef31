//! Files (docs/protocol.md §6): chunked uploads appended to `<data>/files/<id>.part`, checked and renamed when
//! done; downloads streamed from disk a few chunks ahead of the client's acks.
//!
//! The broker only ever holds ciphertext: the key is sealed to the recipients on the uploader's machine. Memory
//! stays bounded on both sides because neither end sends more than [`WINDOW`] chunks beyond the last ack, and the
//! broker reads and writes one chunk at a time.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::grants::Cap;
use super::hub::{Hub, PKey};
use super::log;
use super::net::ConnId;
use super::store::{FileRow, Store, new_id};
use crate::crypto::{b64, hex};
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, codes};

/// Chunks a sender may have in flight beyond the last ack.
pub const WINDOW: u64 = 8;
/// The largest ciphertext chunk: 48 KiB, so that its base64 in a `file_chunk` frame stays under 64 KiB.
pub const MAX_CHUNK_BYTES: u64 = 48 * 1024;
/// What secretbox adds to each chunk.
pub const TAG: u64 = 16;
/// The most keys one file may be sealed to (a `file_put` must fit in one 64 KiB frame anyway).
const MAX_RECIPIENTS: usize = 256;
/// A sealed key is 96 base64 characters; anything much longer is not one.
const MAX_SEALED_KEY: usize = 256;
const MAX_NAME: usize = 255;

/// How many chunks a file of `size` plaintext bytes has: an empty file is one empty chunk.
pub fn chunk_count(size: u64, chunk_size: u64) -> u64 {
    size.div_ceil(chunk_size.max(1)).max(1)
}

/// The ciphertext bytes of a file: each chunk carries a 16-byte tag.
pub fn ciphertext_len(size: u64, chunk_size: u64) -> u64 {
    size + TAG * chunk_count(size, chunk_size)
}

/// An upload in progress on one connection.
#[derive(Debug)]
pub(super) struct Upload {
    file_id: String,
    req_id: Option<String>,
    row: FileRow,
    keys: Vec<(String, String)>,
    /// The part file in `<data>/files` and its path, or `None` when the store keeps the chunks.
    part: Option<(File, PathBuf)>,
    chunk_bytes: u64,
    chunks: u64,
    total: u64,
    written: u64,
    next_seq: u64,
    hash: Sha256,
}

/// A download in progress on one connection.
#[derive(Debug)]
pub(super) struct Download {
    file_id: String,
    req_id: Option<String>,
    /// The stored file, or `None` when the store keeps the chunks.
    file: Option<File>,
    chunk_bytes: u64,
    chunks: u64,
    total: u64,
    /// The next chunk to send.
    next: u64,
    /// Chunks the client has acknowledged (all below this number).
    acked: u64,
}

/// The transfers of every connection.
#[derive(Debug, Default)]
pub(super) struct Transfers {
    uploads: HashMap<ConnId, Upload>,
    downloads: HashMap<ConnId, Download>,
}

/// `<data>/files`.
fn dir(data: &Path) -> PathBuf {
    data.join("files")
}

/// How long an upload's chunks kept in the store may wait for their file's row.
const UPLOAD_DAY: i64 = 24 * 3600 * 1000;

/// Deletes part files left by a broker that stopped mid-upload, and files whose row was never committed; in a
/// store that keeps the chunks, those of uploads a day old whose broker never finished them.
pub(super) fn sweep(store: &mut dyn Store, data: &Path) {
    if store.keeps_file_data() {
        let swept = store
            .sweep_file_chunks(now_ms() - UPLOAD_DAY)
            .and_then(|()| store.commit());
        if let Err(e) = swept {
            log::warn("forgetting unfinished uploads failed", &[("error", &e)]);
        }
    }
    let Ok(entries) = std::fs::read_dir(dir(data)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let orphan = name.ends_with(".part") || matches!(store.file(&name), Ok(None));
        if orphan {
            log::info("removing an unfinished upload", &[("file", &name)]);
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Why a transfer step failed: the error code and message for the client.
type Refusal = (&'static str, String);

fn refuse(code: &'static str, msg: impl Into<String>) -> Refusal {
    (code, msg.into())
}

fn io_refusal(what: &str, e: &std::io::Error) -> Refusal {
    log::error("file storage failed", &[("what", &what), ("error", e)]);
    refuse("internal", format!("broker storage error: {what}"))
}

impl Hub {
    /// Forgets a closed connection's transfers; its unfinished upload is deleted.
    pub(super) fn files_closed(&mut self, conn: ConnId) {
        self.transfers.downloads.remove(&conn);
        if let Some(u) = self.transfers.uploads.remove(&conn) {
            self.discard(&u);
        }
    }

    fn abandon_upload(&mut self, conn: ConnId, code: &str, msg: String, req_id: Option<&str>) {
        if let Some(u) = self.transfers.uploads.remove(&conn) {
            self.discard(&u);
        }
        self.error(conn, code, msg, req_id);
    }

    /// Deletes what an upload that will not finish wrote.
    fn discard(&mut self, u: &Upload) {
        match &u.part {
            Some((_, path)) => {
                let _ = std::fs::remove_file(path);
            }
            None => {
                if let Err(e) = self.store.drop_file_chunks(&u.file_id) {
                    log::warn("forgetting an abandoned upload failed", &[("error", &e)]);
                }
            }
        }
    }

    /// The caller's mesh, member, and the key it speaks as.
    fn caller(&self, pk: PKey) -> Option<(String, String, String, Option<String>)> {
        let p = self.presences.get(&pk)?;
        Some((
            p.mesh_id.clone(),
            p.member_id.clone(),
            p.member_pubkey.clone(),
            p.session_pubkey.clone(),
        ))
    }

    pub(super) fn on_file_put(&mut self, conn: ConnId, pk: PKey, f: wire::FilePut) {
        let req_id = f.req_id.clone();
        if self.transfers.uploads.contains_key(&conn) {
            let msg = "an upload is already in progress on this connection";
            return self.error(conn, "busy", msg, req_id.as_deref());
        }
        match self.start_upload(conn, pk, f) {
            Ok(file_id) => self.reply(conn, wire::FilePutReady { file_id, req_id }),
            Err((code, msg)) => self.error(conn, code, msg, req_id.as_deref()),
        }
    }

    fn start_upload(
        &mut self,
        conn: ConnId,
        pk: PKey,
        f: wire::FilePut,
    ) -> Result<String, Refusal> {
        let Some((mesh_id, member_id, member_pubkey, session)) = self.caller(pk) else {
            return Err(refuse("internal", "no presence for this connection"));
        };
        let limit = self.cfg.max_file_bytes;
        if f.size > limit {
            return Err(refuse(
                codes::FILE_TOO_LARGE,
                format!(
                    "file is {} bytes; this broker takes files of at most {limit} bytes",
                    f.size
                ),
            ));
        }
        let chunk_size = u64::from(f.chunk_size);
        if chunk_size == 0 || chunk_size + TAG > MAX_CHUNK_BYTES {
            return Err(refuse(
                codes::INVALID_ARGS,
                format!("chunkSize must be 1 to {}", MAX_CHUNK_BYTES - TAG),
            ));
        }
        if f.name.is_empty() || f.name.len() > MAX_NAME || f.name.chars().any(char::is_control) {
            return Err(refuse(
                codes::INVALID_ARGS,
                format!("name must be 1 to {MAX_NAME} bytes without control characters"),
            ));
        }
        if f.recipients.is_empty() || f.recipients.len() > MAX_RECIPIENTS {
            return Err(refuse(
                codes::INVALID_ARGS,
                format!("a file needs 1 to {MAX_RECIPIENTS} recipients"),
            ));
        }
        let mut keys = Vec::with_capacity(f.recipients.len());
        for r in &f.recipients {
            if r.sealed_key.is_empty() || r.sealed_key.len() > MAX_SEALED_KEY {
                return Err(refuse(
                    codes::INVALID_ARGS,
                    "a sealed key has the wrong size",
                ));
            }
            match self.recipient_of(&mesh_id, &r.pubkey) {
                Ok(Some(_)) => keys.push((r.pubkey.clone(), r.sealed_key.clone())),
                Ok(None) => {
                    let short = r.pubkey.get(..16).unwrap_or(&r.pubkey);
                    return Err(refuse(
                        "not_member",
                        format!("{short} is not a member or session of this mesh"),
                    ));
                }
                Err(e) => return Err(refuse("internal", format!("broker storage error: {e}"))),
            }
        }
        let file_id = new_id();
        let part = if self.store.keeps_file_data() {
            None
        } else {
            let d = dir(&self.cfg.data_dir);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(|e| io_refusal("creating the files directory", &e))?;
            let path = d.join(format!("{file_id}.part"));
            let part = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io_refusal("creating an upload", &e))?;
            Some((part, path))
        };
        let row = FileRow {
            id: file_id.clone(),
            mesh_id,
            name: f.name,
            size: i64::try_from(f.size).unwrap_or(i64::MAX),
            chunk_size: i64::from(f.chunk_size),
            sha256: String::new(),
            uploader_member_id: member_id,
            uploader_pubkey: session.unwrap_or(member_pubkey),
            target_spec: f.target_spec.filter(|t| !t.is_empty()),
            created_at: 0,
            uploader_name: String::new(),
            recipients: 0,
        };
        let upload = Upload {
            file_id: file_id.clone(),
            req_id: f.req_id,
            row,
            keys,
            part,
            chunk_bytes: chunk_size + TAG,
            chunks: chunk_count(f.size, chunk_size),
            total: ciphertext_len(f.size, chunk_size),
            written: 0,
            next_seq: 0,
            hash: Sha256::new(),
        };
        self.transfers.uploads.insert(conn, upload);
        Ok(file_id)
    }

    pub(super) fn on_file_chunk(&mut self, conn: ConnId, c: wire::FileChunk) {
        let Some(u) = self.transfers.uploads.get_mut(&conn) else {
            let msg = format!("no upload of {} in progress on this connection", c.file_id);
            return self.error(conn, codes::NOT_FOUND, msg, None);
        };
        let req_id = u.req_id.clone();
        let in_store = u.part.is_none();
        let written = match append(u, &c) {
            Ok(data) => match &mut u.part {
                Some((part, _)) => part
                    .write_all(&data)
                    .map_err(|e| io_refusal("writing an upload", &e)),
                None => {
                    let (id, seq) = (u.file_id.clone(), i64::try_from(c.seq).unwrap_or(i64::MAX));
                    self.store
                        .put_file_chunk(&id, seq, &data, now_ms())
                        .map_err(|e| refuse("internal", format!("broker storage error: {e}")))
                }
            },
            Err(r) => Err(r),
        };
        match written {
            Ok(()) => {
                let ack = wire::FileChunkAck {
                    file_id: c.file_id,
                    seq: c.seq,
                };
                // A chunk kept in the store is acknowledged only once its batch committed.
                if in_store {
                    let lost = Hub::durable_failure(req_id.as_deref());
                    self.reply_durable(conn, ack, lost);
                } else {
                    self.reply(conn, ack);
                }
            }
            Err((code, msg)) => self.abandon_upload(conn, code, msg, req_id.as_deref()),
        }
    }

    pub(super) fn on_file_put_done(&mut self, conn: ConnId, d: wire::FilePutDone) {
        let req_id = d.req_id.as_deref();
        let Some(mut u) = self
            .transfers
            .uploads
            .remove(&conn)
            .filter(|u| u.file_id == d.file_id)
        else {
            let msg = format!("no upload of {} in progress on this connection", d.file_id);
            return self.error(conn, codes::NOT_FOUND, msg, req_id);
        };
        let hash = hex::encode(&std::mem::take(&mut u.hash).finalize());
        let problem = if u.written != u.total || u.next_seq != u.chunks {
            Some(format!(
                "upload incomplete: {} of {} bytes in {} of {} chunks",
                u.written, u.total, u.next_seq, u.chunks
            ))
        } else if !hash.eq_ignore_ascii_case(&d.sha256) {
            Some("upload corrupted: the SHA-256 of the chunks does not match".to_string())
        } else {
            None
        };
        if let Some(msg) = problem {
            self.discard(&u);
            return self.error(conn, codes::INVALID_ARGS, msg, req_id);
        }
        let done = dir(&self.cfg.data_dir).join(&u.file_id);
        if let Some((part, path)) = &u.part
            && let Err(e) = part.sync_all().and_then(|()| std::fs::rename(path, &done))
        {
            self.discard(&u);
            let (code, msg) = io_refusal("storing an upload", &e);
            return self.error(conn, code, msg, req_id);
        }
        u.row.sha256 = hash;
        u.row.created_at = now_ms();
        if let Err(e) = self.store.insert_file(&u.row, &u.keys) {
            match &u.part {
                Some(_) => {
                    let _ = std::fs::remove_file(&done);
                }
                None => self.discard(&u),
            }
            return self.store_error(conn, &e, req_id);
        }
        log::info(
            "file stored",
            &[
                ("file", &u.file_id),
                ("bytes", &u.total),
                ("mesh", &u.row.mesh_id),
            ],
        );
        let stored = wire::FileStored {
            file_id: u.file_id,
            req_id: d.req_id.clone(),
        };
        // A lost commit leaves a file without a row; the next start's sweep deletes it.
        self.reply_durable(conn, stored, Hub::durable_failure(req_id));
    }

    /// The file `id` of the caller's mesh if the caller may read it, with the caller's sealed key (empty for an
    /// uploader that sealed none to itself).
    /// Whether `member_id` sees the file of `row`: its uploader lets it list and fetch its files (`cm-grant`'s
    /// `files`), and it has not blocked the uploader (nothing from a blocked member reaches it).
    fn shares_files(&self, row: &FileRow, member_id: &str) -> bool {
        let uploader = &row.uploader_member_id;
        self.grants.allows(uploader, member_id, Cap::Files)
            && !self.grants.blocked(member_id, uploader)
    }

    fn readable(&self, pk: PKey, id: &str) -> Result<(FileRow, String), Refusal> {
        let Some((mesh_id, member_id, member_pubkey, session)) = self.caller(pk) else {
            return Err(refuse("internal", "no presence for this connection"));
        };
        let storage =
            |e: crate::error::Error| refuse("internal", format!("broker storage error: {e}"));
        let row = self
            .store
            .file(id)
            .map_err(storage)?
            .filter(|r| r.mesh_id == mesh_id)
            .ok_or_else(|| refuse(codes::NOT_FOUND, format!("no file {id} in this mesh")))?;
        if !self.shares_files(&row, &member_id) {
            let msg = format!(
                "file {id}: its uploader does not share files with you, or you blocked its uploader"
            );
            return Err(refuse(codes::FORBIDDEN, msg));
        }
        let mut sealed = None;
        for key in session.iter().chain([&member_pubkey]) {
            if let Some(s) = self.store.file_key(id, key).map_err(storage)? {
                sealed = Some(s);
                break;
            }
        }
        match sealed {
            Some(s) => Ok((row, s)),
            None if row.uploader_member_id == member_id => Ok((row, String::new())),
            None => Err(refuse(
                codes::FORBIDDEN,
                format!("file {id} is not shared with you"),
            )),
        }
    }

    pub(super) fn on_file_get(&mut self, conn: ConnId, pk: PKey, g: wire::FileGet) {
        self.transfers.downloads.remove(&conn);
        let req_id = g.req_id.clone();
        let (row, sealed_key) = match self.readable(pk, &g.file_id) {
            Ok(x) => x,
            Err((code, msg)) => return self.error(conn, code, msg, req_id.as_deref()),
        };
        let file = if self.store.keeps_file_data() {
            None
        } else {
            match File::open(dir(&self.cfg.data_dir).join(&row.id)) {
                Ok(f) => Some(f),
                Err(e) => {
                    let (code, msg) = io_refusal("opening a stored file", &e);
                    return self.error(conn, code, msg, req_id.as_deref());
                }
            }
        };
        let size = u64::try_from(row.size).unwrap_or(0);
        let chunk_size = u64::try_from(row.chunk_size).unwrap_or(1);
        let meta = wire::FileMeta {
            file_id: row.id.clone(),
            name: row.name,
            size,
            sha256: row.sha256,
            sealed_key,
            chunk_size: u32::try_from(chunk_size).unwrap_or(0),
            req_id: req_id.clone(),
        };
        self.reply(conn, meta);
        let download = Download {
            file_id: row.id,
            req_id,
            file,
            chunk_bytes: chunk_size + TAG,
            chunks: chunk_count(size, chunk_size),
            total: ciphertext_len(size, chunk_size),
            next: 0,
            acked: 0,
        };
        self.transfers.downloads.insert(conn, download);
        self.pump(conn);
    }

    pub(super) fn on_file_chunk_ack(&mut self, conn: ConnId, a: wire::FileChunkAck) {
        let Some(d) = self
            .transfers
            .downloads
            .get_mut(&conn)
            .filter(|d| d.file_id == a.file_id)
        else {
            return;
        };
        d.acked = d.acked.max(a.seq.saturating_add(1)).min(d.next);
        if d.acked >= d.chunks {
            self.transfers.downloads.remove(&conn);
            return;
        }
        self.pump(conn);
    }

    /// Sends the download's next chunks, up to [`WINDOW`] beyond the last ack.
    fn pump(&mut self, conn: ConnId) {
        loop {
            let Some(d) = self.transfers.downloads.get_mut(&conn) else {
                return;
            };
            if d.next >= d.chunks || d.next >= d.acked + WINDOW {
                return;
            }
            let seq = d.next;
            let read = match &mut d.file {
                Some(f) => read_chunk(f, d.chunk_bytes, d.total, seq),
                None => {
                    let id = d.file_id.clone();
                    match self
                        .store
                        .file_chunk(&id, i64::try_from(seq).unwrap_or(i64::MAX))
                    {
                        Ok(Some(data)) => Ok(data),
                        Ok(None) => Err(std::io::Error::other(format!("chunk {seq} is missing"))),
                        Err(e) => Err(std::io::Error::other(e.to_string())),
                    }
                }
            };
            let Some(d) = self.transfers.downloads.get_mut(&conn) else {
                return;
            };
            match read {
                Ok(data) => {
                    d.next += 1;
                    let chunk = wire::FileChunk {
                        file_id: d.file_id.clone(),
                        seq,
                        data: b64::encode(&data),
                    };
                    self.reply(conn, chunk);
                }
                Err(e) => {
                    let req_id = d.req_id.clone();
                    self.transfers.downloads.remove(&conn);
                    let (code, msg) = io_refusal("reading a stored file", &e);
                    return self.error(conn, code, msg, req_id.as_deref());
                }
            }
        }
    }

    pub(super) fn on_file_list(&mut self, conn: ConnId, pk: PKey, l: wire::FileList) {
        let Some((mesh_id, member_id, member_pubkey, session)) = self.caller(pk) else {
            return;
        };
        let keys: Vec<&str> = session
            .iter()
            .chain([&member_pubkey])
            .map(String::as_str)
            .collect();
        let rows = match self.store.files_for(&mesh_id, &member_id, &keys) {
            Ok(x) => x,
            Err(e) => return self.store_error(conn, &e, l.req_id.as_deref()),
        };
        let files = rows
            .into_iter()
            .filter(|r| self.shares_files(r, &member_id))
            .map(|r| wire::FileInfo {
                id: r.id,
                name: r.name,
                size: u64::try_from(r.size).unwrap_or(0),
                uploaded_by: r.uploader_name,
                uploader_pubkey: r.uploader_pubkey,
                target_spec: r.target_spec,
                recipients: u32::try_from(r.recipients).unwrap_or(0),
                created_at: fmt_rfc3339(r.created_at),
            })
            .collect();
        self.reply(
            conn,
            wire::FileListResponse {
                files,
                req_id: l.req_id,
            },
        );
    }

    pub(super) fn on_file_rm(&mut self, conn: ConnId, pk: PKey, r: wire::FileRm) {
        let req_id = r.req_id.as_deref();
        let Some((mesh_id, member_id, _, _)) = self.caller(pk) else {
            return;
        };
        let row = match self.store.file(&r.file_id) {
            Ok(Some(row)) if row.mesh_id == mesh_id => row,
            Ok(_) => {
                let msg = format!("no file {} in this mesh", r.file_id);
                return self.error(conn, codes::NOT_FOUND, msg, req_id);
            }
            Err(e) => return self.store_error(conn, &e, req_id),
        };
        let admin = match self.store.member(&member_id) {
            Ok(m) => m.is_some_and(|m| m.role == "admin"),
            Err(e) => return self.store_error(conn, &e, req_id),
        };
        if row.uploader_member_id != member_id && !admin {
            let msg = "only the uploader or an admin of the mesh may remove a file";
            return self.error(conn, codes::FORBIDDEN, msg, req_id);
        }
        if let Err(e) = self.store.delete_file(&row.id) {
            return self.store_error(conn, &e, req_id);
        }
        // Gone from disk now even if the commit is lost: the row then points at nothing and a download says so.
        // A download under way keeps its open handle and finishes.
        let _ = std::fs::remove_file(dir(&self.cfg.data_dir).join(&row.id));
        log::info("file removed", &[("file", &row.id), ("mesh", &mesh_id)]);
        let ack = wire::Ack::done(req_id);
        self.reply_durable(conn, ack, Hub::durable_failure(req_id));
    }
}

/// Checks one chunk of an upload and counts it in: its bytes, for the caller to keep.
fn append(u: &mut Upload, c: &wire::FileChunk) -> Result<Vec<u8>, Refusal> {
    if c.file_id != u.file_id {
        return Err(refuse(
            codes::INVALID_ARGS,
            format!("chunk for {} during the upload of {}", c.file_id, u.file_id),
        ));
    }
    if c.seq != u.next_seq {
        return Err(refuse(
            codes::INVALID_ARGS,
            format!("chunk {} arrived where {} was expected", c.seq, u.next_seq),
        ));
    }
    let data = b64::decode(&c.data)
        .map_err(|e| refuse(codes::INVALID_ARGS, format!("chunk {}: {e}", c.seq)))?;
    let len = data.len() as u64;
    let last = c.seq + 1 == u.chunks;
    let want = if last {
        u.total - u.written
    } else {
        u.chunk_bytes
    };
    if c.seq >= u.chunks || len != want {
        return Err(refuse(
            codes::INVALID_ARGS,
            format!(
                "chunk {} is {len} bytes; the declared size and chunk size make it {want} of {} chunks",
                c.seq, u.chunks
            ),
        ));
    }
    u.hash.update(&data);
    u.written += len;
    u.next_seq += 1;
    Ok(data)
}

/// Reads chunk `seq` of a stored file of `total` bytes in chunks of `chunk_bytes`.
fn read_chunk(file: &mut File, chunk_bytes: u64, total: u64, seq: u64) -> std::io::Result<Vec<u8>> {
    let start = seq * chunk_bytes;
    let len = chunk_bytes.min(total.saturating_sub(start));
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_arithmetic() {
        assert_eq!(chunk_count(0, 10), 1);
        assert_eq!(ciphertext_len(0, 10), 16);
        assert_eq!(chunk_count(10, 10), 1);
        assert_eq!(chunk_count(11, 10), 2);
        assert_eq!(ciphertext_len(11, 10), 11 + 32);
    }
}
