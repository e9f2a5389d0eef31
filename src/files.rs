//! Encrypted file sharing for `cm-file` (docs/protocol.md §6): a file is encrypted here in chunks under a fresh
//! key, the key is sealed to each recipient, and only ciphertext reaches the broker.
//!
//! Both directions stream: a chunk is read, encrypted and sent (or received, decrypted and written) before the next
//! one, with at most [`WINDOW`] chunks unacknowledged, so memory stays at a few chunks whatever the file's size.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::client::{Conn, Ctx};
use crate::crypto::{self, Keypair, b64, hex};
use crate::error::{Error, Result};
use crate::messaging::roster::Roster;
use crate::messaging::send::{Dest, destination, seal};
use crate::target::Target;
use crate::wire::{self, Frame, Priority};

/// Plaintext bytes per chunk: 47 KiB, so that a ciphertext chunk (16 bytes more) stays under the broker's 48 KiB
/// and its base64 `file_chunk` frame under 64 KiB.
pub const CHUNK: usize = 47 * 1024;
/// Chunks in flight beyond the last acknowledgement, either way.
pub const WINDOW: u64 = 8;
/// The top bit of the last chunk's nonce index: a stream cut after a whole chunk has no chunk that opens as last.
const LAST: u64 = 1 << 63;

/// A file's secret: the secretbox key and the nonce prefix of its chunks.
pub struct FileKey {
    key: [u8; 32],
    prefix: [u8; 16],
}

impl FileKey {
    /// A fresh random key and prefix.
    pub fn generate() -> FileKey {
        FileKey {
            key: crypto::random_bytes(),
            prefix: crypto::random_bytes(),
        }
    }

    fn nonce(&self, index: u64, last: bool) -> [u8; 24] {
        let mut n = [0u8; 24];
        n[..16].copy_from_slice(&self.prefix);
        let i = if last { index | LAST } else { index };
        n[16..].copy_from_slice(&i.to_be_bytes());
        n
    }

    /// Encrypts chunk `index` (`last` for the file's final chunk).
    pub fn seal_chunk(&self, index: u64, last: bool, plain: &[u8]) -> Vec<u8> {
        crypto::secretbox_easy(plain, &self.nonce(index, last), &self.key)
    }

    /// Decrypts chunk `index`; fails for a chunk of another file, another place, or a tampered one.
    pub fn open_chunk(&self, index: u64, last: bool, ct: &[u8]) -> Result<Vec<u8>> {
        crypto::secretbox_open_easy(ct, &self.nonce(index, last), &self.key).map_err(|_| {
            Error::auth(format!(
                "chunk {index} does not decrypt: the file was tampered with or cut short"
            ))
        })
    }

    /// The key and prefix sealed to the ed25519 key `recipient` (a member or session key), in base64.
    pub fn seal_to(&self, recipient: &str) -> Result<String> {
        let pk = crypto::parse_pubkey_hex(recipient)
            .and_then(|pk| crypto::ed25519_pk_to_x25519(&pk))
            .map_err(|e| {
                Error::usage(format!(
                    "cannot encrypt to {}: {e}",
                    crate::out::short_key(recipient)
                ))
            })?;
        let mut secret = self.key.to_vec();
        secret.extend_from_slice(&self.prefix);
        Ok(b64::encode(&crypto::seal(&secret, &pk)))
    }

    /// Opens a sealed key with the first of `keys` it was sealed to.
    pub fn open_sealed(sealed: &str, keys: &[&Keypair]) -> Result<FileKey> {
        let blob = b64::decode(sealed)
            .map_err(|e| Error::generic(format!("the broker sent a bad sealed key: {e}")))?;
        for k in keys {
            if let Ok(secret) = crypto::seal_open(&blob, &k.x25519_public(), &k.x25519_secret())
                && secret.len() == 48
            {
                let mut fk = FileKey {
                    key: [0; 32],
                    prefix: [0; 16],
                };
                fk.key.copy_from_slice(&secret[..32]);
                fk.prefix.copy_from_slice(&secret[32..]);
                return Ok(fk);
            }
        }
        Err(Error::permission(
            "the file's key does not open with your keys",
        ))
    }
}

/// How many chunks `size` plaintext bytes make: an empty file is one empty chunk.
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK as u64).max(1)
}

/// `2.1 MB`: decimal units, one decimal from a kilobyte up.
pub fn human_size(n: u64) -> String {
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    for unit in ["kB", "MB", "GB"] {
        if v < 999.95 {
            return format!("{v:.1} {unit}");
        }
        v /= 1000.0;
    }
    format!("{v:.1} TB")
}

/// Who a file is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Share {
    /// Only the uploader.
    Me,
    /// A target as `cm-send` takes it: a name, a key, `@group` or `*`.
    To(String),
    /// The members of a topic.
    Topic(String),
}

/// `{"type":"file_stored",...}`: an upload's result.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    r#type: &'static str,
    pub id: String,
    pub name: String,
    pub size: u64,
    /// Hex SHA-256 of the ciphertext, as the broker checked it.
    pub sha256: String,
    pub mesh: String,
    /// The target as given, when shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The keys the file key is sealed to, the uploader's own included.
    pub recipients: usize,
    /// Whether the recipients were sent a message naming the file.
    pub notified: bool,
}

impl Stored {
    /// `stored report.pdf (2.1 MB) as ID for bob`.
    pub fn words(&self) -> String {
        let who = match &self.to {
            Some(t) if self.notified => format!("for {t} (told so in a message)"),
            Some(t) => format!("for {t}"),
            None => "for you only".to_string(),
        };
        format!(
            "stored {} ({}) as {} {who}",
            crate::messaging::inbox::printable(&self.name),
            human_size(self.size),
            self.id
        )
    }
}

/// `{"type":"file_saved",...}`: a download's result.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    r#type: &'static str,
    pub id: String,
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub path: String,
}

/// One line of `cm-file list --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    r#type: &'static str,
    pub mesh: String,
    pub id: String,
    pub name: String,
    pub size: u64,
    pub uploaded_by: String,
    pub uploader_pubkey: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_spec: Option<String>,
    pub recipients: u32,
    pub created_at: String,
}

/// The keys the file is sealed to, besides our own, and what to tell them.
fn recipients(conn: &mut Conn, ctx: &Ctx, share: &Share) -> Result<(Vec<String>, Option<Dest>)> {
    let to = match share {
        Share::Me => return Ok((Vec::new(), None)),
        Share::Topic(_) => return Err(topics_unavailable()),
        Share::To(t) => t,
    };
    let target = Target::parse(to)?;
    if matches!(target, Target::Topic(_)) {
        return Err(topics_unavailable());
    }
    let own_key = conn.sender().public_hex();
    let roster = Roster::fetch(conn, &ctx.mesh.slug, &ctx.mesh.pubkey, &own_key)?;
    let (_, dest) = destination(&target, &[roster])?;
    let keys = match &dest {
        Dest::Dm { key, .. } => vec![key.clone()],
        Dest::Fanout { members, .. } => members.clone(),
    };
    Ok((keys, Some(dest)))
}

fn topics_unavailable() -> Error {
    Error::generic("sharing with a topic needs topics, which this build does not have yet")
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn is_error_for(f: &Frame, req_id: &str) -> bool {
    matches!(f, Frame::Error(_)) && f.req_id() == Some(req_id)
}

fn unexpected(what: &str, f: &Frame) -> Error {
    Error::internal(format!("the broker answered {what} with {}", f.type_name()))
}

/// Encrypts `path` and stores it on the mesh's broker for `share` (and the uploader); with [`Share::To`] the
/// recipients are also sent a message that names the file.
pub fn put(ctx: &Ctx, path: &Path, share: &Share) -> Result<Stored> {
    let ctx_io = |e: std::io::Error| Error::from(e).context(path.display());
    let mut file = File::open(path).map_err(ctx_io)?;
    let meta = file.metadata().map_err(ctx_io)?;
    if !meta.is_file() {
        return Err(Error::usage(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let size = meta.len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());

    let mut conn = ctx.connect()?;
    let (mut keys, dest) = recipients(&mut conn, ctx, share)?;
    let sender = conn.sender().public_hex();
    for own in [&ctx.mesh.pubkey, &sender] {
        if !keys.contains(own) {
            keys.push(own.clone());
        }
    }
    let fk = FileKey::generate();
    let recipients = keys
        .iter()
        .map(|k| {
            Ok(wire::FileRecipient {
                pubkey: k.clone(),
                sealed_key: fk.seal_to(k)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let target_spec = match &dest {
        Some(Dest::Dm { key, .. }) => Some(key.clone()),
        Some(Dest::Fanout { spec, .. }) => Some(spec.clone()),
        None => None,
    };
    let put = wire::FilePut {
        name: name.clone(),
        size,
        chunk_size: CHUNK as u32,
        recipients,
        target_spec,
        req_id: None,
    };
    let req = conn.start(put)?;
    let file_id = match conn.wait_for("file_put", |f| f.req_id() == Some(req.as_str()))? {
        Frame::FilePutReady(r) => r.file_id,
        f => return Err(unexpected("file_put", &f)),
    };

    let chunks = chunk_count(size);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let (mut acked, mut left) = (0u64, size);
    let wait_ack = |conn: &mut Conn| -> Result<u64> {
        let f = conn.wait_for("file_chunk", |f| match f {
            Frame::FileChunkAck(a) => a.file_id == file_id,
            f => is_error_for(f, &req),
        })?;
        match f {
            Frame::FileChunkAck(a) => Ok(a.seq + 1),
            f => Err(unexpected("file_chunk", &f)),
        }
    };
    for seq in 0..chunks {
        let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let n = read_full(&mut file, &mut buf[..want]).map_err(ctx_io)?;
        if n < want {
            return Err(Error::io(format!(
                "{} got shorter while it was read",
                path.display()
            )));
        }
        left -= n as u64;
        let ct = fk.seal_chunk(seq, seq + 1 == chunks, &buf[..n]);
        hash.update(&ct);
        while seq >= acked + WINDOW {
            acked = acked.max(wait_ack(&mut conn)?);
        }
        let chunk = wire::FileChunk {
            file_id: file_id.clone(),
            seq,
            data: b64::encode(&ct),
        };
        conn.fire(chunk)?;
    }
    if read_full(&mut file, &mut buf[..1]).map_err(ctx_io)? > 0 {
        return Err(Error::io(format!(
            "{} got longer while it was read",
            path.display()
        )));
    }
    while acked < chunks {
        acked = acked.max(wait_ack(&mut conn)?);
    }
    let sha256 = hex::encode(&hash.finalize());
    let done = wire::FilePutDone {
        file_id: file_id.clone(),
        sha256: sha256.clone(),
        req_id: None,
    };
    let req = conn.start(done)?;
    match conn.wait_for("file_put_done", |f| f.req_id() == Some(req.as_str()))? {
        Frame::FileStored(_) => {}
        f => return Err(unexpected("file_put_done", &f)),
    }

    let mut stored = Stored {
        r#type: "file_stored",
        id: file_id,
        name,
        size,
        sha256,
        mesh: ctx.mesh.slug.clone(),
        to: match share {
            Share::To(t) => Some(t.clone()),
            _ => None,
        },
        recipients: keys.len(),
        notified: false,
    };
    if let Some(dest) = dest {
        let text = format!(
            "📎 {} ({}) — cm-file get {}",
            stored.name,
            human_size(size),
            stored.id
        );
        let sender = conn.sender().clone();
        let sent = seal(&stored.mesh, dest, &text, Priority::Next, None, &sender)
            .and_then(|o| conn.send(o.send));
        match sent {
            Ok(_) => stored.notified = true,
            Err(e) => crate::out::warn(
                "cm-file",
                format!("stored, but the message to the recipients failed: {e}"),
            ),
        }
    }
    conn.close();
    Ok(stored)
}

/// A file name as a safe local name: its last path component, control characters replaced, never empty, `.`
/// or `..`.
pub fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    match clean.as_str() {
        "" | "." | ".." => "file".to_string(),
        _ => clean,
    }
}

/// Where a download goes: `out` (a directory gets the file's safe name inside it), else the safe name here.
pub fn destination_path(out: Option<&Path>, name: &str) -> PathBuf {
    match out {
        Some(p) if p.is_dir() => p.join(safe_name(name)),
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(safe_name(name)),
    }
}

/// A download being written next to its destination, removed unless it is finished.
struct Partial {
    path: PathBuf,
    file: Option<File>,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Downloads file `id` (or the one its unique prefix names), checks it and decrypts it into `out` (see
/// [`destination_path`]); an existing file is replaced only with `force`.
pub fn get(ctx: &Ctx, id: &str, out: Option<&Path>, force: bool) -> Result<Saved> {
    let full = full_id(ctx, id)?;
    let id = full.as_str();
    let mut conn = ctx.connect()?;
    let req = conn.start(wire::FileGet {
        file_id: id.to_string(),
        req_id: None,
    })?;
    let meta = match conn.wait_for("file_get", |f| f.req_id() == Some(req.as_str()))? {
        Frame::FileMeta(m) => m,
        f => return Err(unexpected("file_get", &f)),
    };
    if meta.sealed_key.is_empty() {
        return Err(Error::permission(format!(
            "file {id} is not sealed to your key, so it cannot be decrypted here"
        )));
    }
    let member = ctx.mesh.keypair()?;
    let mut keys = vec![&member];
    if let Some(s) = &ctx.session {
        keys.insert(0, &s.session);
    }
    let fk = FileKey::open_sealed(&meta.sealed_key, &keys)?;
    if meta.chunk_size as usize != CHUNK {
        return Err(Error::generic(format!(
            "file {id} was cut in chunks of {} bytes; this build reads {CHUNK}",
            meta.chunk_size
        )));
    }

    let dest = destination_path(out, &meta.name);
    if !force && dest.symlink_metadata().is_ok() {
        return Err(Error::exists(format!(
            "{} exists; give --force to replace it, or -o PATH",
            dest.display()
        )));
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.part",
        safe_name(&meta.name),
        hex::encode(&crypto::random_bytes::<6>())
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::from(e).context(tmp.display()))?;
    let mut part = Partial {
        path: tmp,
        file: Some(file),
    };
    let write_err = |e: std::io::Error| Error::from(e).context(dest.display());

    let chunks = chunk_count(meta.size);
    let mut hash = Sha256::new();
    let mut written = 0u64;
    for seq in 0..chunks {
        let f = conn.wait_for("file_get", |f| match f {
            Frame::FileChunk(c) => c.file_id == meta.file_id,
            f => is_error_for(f, &req),
        })?;
        let Frame::FileChunk(c) = f else {
            return Err(unexpected("file_get", &f));
        };
        if c.seq != seq {
            return Err(Error::generic(format!(
                "the broker sent chunk {} where {seq} was due",
                c.seq
            )));
        }
        let ct = b64::decode(&c.data)
            .map_err(|e| Error::generic(format!("chunk {seq} from the broker: {e}")))?;
        hash.update(&ct);
        let plain = fk.open_chunk(seq, seq + 1 == chunks, &ct)?;
        written += plain.len() as u64;
        if let Some(f) = part.file.as_mut() {
            f.write_all(&plain).map_err(write_err)?;
        }
        conn.fire(wire::FileChunkAck {
            file_id: meta.file_id.clone(),
            seq,
        })?;
    }
    conn.close();
    let sha256 = hex::encode(&hash.finalize());
    if !sha256.eq_ignore_ascii_case(&meta.sha256) {
        return Err(Error::auth(format!(
            "file {id} does not match its SHA-256: the broker's copy is damaged"
        )));
    }
    if written != meta.size {
        return Err(Error::auth(format!(
            "file {id} is {written} bytes, not the {} it was stored with",
            meta.size
        )));
    }
    let file = part.file.take();
    if let Some(f) = &file {
        f.sync_all().map_err(write_err)?;
    }
    drop(file);
    let placed = if force {
        std::fs::rename(&part.path, &dest)
    } else {
        // A hard link never replaces an existing file, so one made meanwhile is not lost.
        std::fs::hard_link(&part.path, &dest).and_then(|()| std::fs::remove_file(&part.path))
    };
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&part.path);
        return Err(match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::exists(format!(
                "{} exists; give --force to replace it",
                dest.display()
            )),
            _ => write_err(e),
        });
    }
    Ok(Saved {
        r#type: "file_saved",
        id: meta.file_id,
        name: meta.name,
        size: meta.size,
        sha256,
        path: dest.display().to_string(),
    })
}

/// The files of the mesh the caller uploaded or may read, newest first.
pub fn list(ctx: &Ctx) -> Result<Vec<Listed>> {
    let mut conn = ctx.connect()?;
    let files = match conn.request(wire::FileList::default())? {
        Frame::FileListResponse(r) => r.files,
        f => return Err(unexpected("file_list", &f)),
    };
    conn.close();
    Ok(files
        .into_iter()
        .map(|f| Listed {
            r#type: "file",
            mesh: ctx.mesh.slug.clone(),
            id: f.id,
            name: f.name,
            size: f.size,
            uploaded_by: f.uploaded_by,
            uploader_pubkey: f.uploader_pubkey,
            target_spec: f.target_spec,
            recipients: f.recipients,
            created_at: f.created_at,
        })
        .collect())
}

/// The length of a broker id: anything shorter is taken as the start of one.
const ID_LEN: usize = 32;

/// The file id `id` is the start of, among the files the caller may see: ids are long, and people type (as for
/// reminders, API keys and topic messages) the first few characters `cm-file list` shows.
fn full_id(ctx: &Ctx, id: &str) -> Result<String> {
    let id = id.trim();
    if id.len() >= ID_LEN {
        return Ok(id.to_string());
    }
    if id.len() < 4 {
        return Err(Error::usage(format!(
            "file id {id:?} is too short: give at least 4 characters of it"
        )));
    }
    let files = list(ctx)?;
    let hits: Vec<&Listed> = files.iter().filter(|f| f.id.starts_with(id)).collect();
    match hits.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(Error::not_found(format!(
            "no file with an id starting {id:?} in mesh {}",
            ctx.mesh.slug
        ))),
        many => Err(Error::usage(format!(
            "{id:?} starts {} file ids ({}); give more of it",
            many.len(),
            many.iter()
                .map(|f| format!("{} {}", &f.id[..f.id.len().min(12)], f.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Deletes file `id` (or the one its unique prefix names) from the broker (the uploader or an admin).
pub fn rm(ctx: &Ctx, id: &str) -> Result<()> {
    let full = full_id(ctx, id)?;
    let id = full.as_str();
    let mut conn = ctx.connect()?;
    let r = conn.request(wire::FileRm {
        file_id: id.to_string(),
        req_id: None,
    });
    conn.close();
    match r? {
        Frame::Ack(_) => Ok(()),
        f => Err(unexpected("file_rm", &f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn chunks_open_only_in_place() {
        let fk = FileKey::generate();
        let a = fk.seal_chunk(0, false, b"first");
        let b = fk.seal_chunk(1, true, b"last");
        assert_eq!(fk.open_chunk(0, false, &a).unwrap(), b"first");
        assert_eq!(fk.open_chunk(1, true, &b).unwrap(), b"last");
        assert!(fk.open_chunk(1, false, &a).is_err(), "moved");
        assert!(fk.open_chunk(1, false, &b).is_err(), "not the last");
        assert!(fk.open_chunk(0, true, &a).is_err(), "cut short");
        let other = FileKey::generate();
        assert!(other.open_chunk(0, false, &a).is_err());
    }

    #[test]
    fn sealed_key_opens_for_its_recipient_only() {
        let (bob, eve) = (Keypair::generate(), Keypair::generate());
        let fk = FileKey::generate();
        let sealed = fk.seal_to(&bob.public_hex()).unwrap();
        assert_eq!(b64::decode(&sealed).unwrap().len(), 96);
        let opened = FileKey::open_sealed(&sealed, &[&eve, &bob]).unwrap();
        let ct = fk.seal_chunk(0, true, b"hi");
        assert_eq!(opened.open_chunk(0, true, &ct).unwrap(), b"hi");
        let e = FileKey::open_sealed(&sealed, &[&eve]).err().unwrap();
        assert_eq!(e.code, Code::Permission);
        assert!(fk.seal_to("zz").is_err());
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(CHUNK as u64), 1);
        assert_eq!(chunk_count(CHUNK as u64 + 1), 2);
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(2_100_000), "2.1 MB");
        assert_eq!(human_size(20 * 1024 * 1024), "21.0 MB");
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("a\\b\nc"), "b_c");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name("dir/"), "file");
        assert_eq!(destination_path(None, "/tmp/x.pdf"), PathBuf::from("x.pdf"));
    }
}
