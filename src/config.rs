//! The config directory and everything in it.
//!
//! `config.json` keeps the original client's schema (original-cli.md §4.2), so an existing `~/.claudemesh` carries
//! over in both directions; keys this version does not know are kept on rewrite, so a newer client's config is never
//! truncated. The other files are ours: `identity.json` (the key `cm register` makes), `owners.json` (mesh owner keys
//! that sign invites and never leave the machine), `brokers.json` (`cm login`) and `sessions/<slug>/<id>.json`
//! (per-session keys).
//!
//! Every file is written whole and atomically with mode 0600: a temp file beside it, fsync, rename, fsync of the
//! directory. A file that does not parse is an error that names it and is never overwritten.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::crypto::Keypair;
use crate::error::{Error, Result, io_message};
use crate::time;

/// The config directory and the paths of the files in it.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The directory itself: `$CLAUDEMESH_CONFIG_DIR` or `~/.claudemesh`.
    pub dir: PathBuf,
}

impl Paths {
    /// `$CLAUDEMESH_CONFIG_DIR` if set, else `~/.claudemesh`; created 0700 if missing, tightened to 0700 if looser.
    ///
    /// An explicit `$CLAUDEMESH_CONFIG_DIR` is always honoured, and created when it does not exist. (The original
    /// fell back to `~/.claudemesh` when the directory was missing, which silently mixed two configs.)
    pub fn resolve() -> Result<Paths> {
        Paths::at(Paths::locate()?)
    }

    /// Where the config directory is (`$CLAUDEMESH_CONFIG_DIR`, else `~/.claudemesh`), without creating or
    /// touching it: for checks that must report what is there.
    pub fn locate() -> Result<PathBuf> {
        match std::env::var_os("CLAUDEMESH_CONFIG_DIR").filter(|d| !d.is_empty()) {
            Some(d) => Ok(PathBuf::from(d)),
            None => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
                Some(h) => Ok(PathBuf::from(h).join(".claudemesh")),
                None => Err(Error::io(
                    "cannot find the config directory: set HOME or CLAUDEMESH_CONFIG_DIR",
                )),
            },
        }
    }

    /// The config directory `dir`, created 0700 if missing and tightened to 0700 if looser.
    pub fn at(dir: impl Into<PathBuf>) -> Result<Paths> {
        let dir = dir.into();
        ensure_private_dir(&dir)?;
        Ok(Paths { dir })
    }

    /// `config.json`: joined meshes, in the original's schema.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// `identity.json`: the local identity.
    pub fn identity(&self) -> PathBuf {
        self.dir.join("identity.json")
    }

    /// `owners.json`: owner keys of the meshes made here.
    pub fn owners(&self) -> PathBuf {
        self.dir.join("owners.json")
    }

    /// `brokers.json`: brokers logged in to.
    pub fn brokers(&self) -> PathBuf {
        self.dir.join("brokers.json")
    }

    /// `sessions/`: per-session keys, one directory per mesh slug.
    pub fn sessions(&self) -> PathBuf {
        self.dir.join("sessions")
    }

    /// `sessions/<slug>/<session id>.json`, refusing names that could leave the directory.
    pub fn session_key(&self, mesh_slug: &str, session_id: &str) -> Result<PathBuf> {
        check_path_name("mesh slug", mesh_slug)?;
        check_path_name("session id", session_id)?;
        Ok(self
            .sessions()
            .join(mesh_slug)
            .join(format!("{session_id}.json")))
    }
}

impl Paths {
    /// `inbox/<mesh slug>.<who>.seen`: the message ids `cm-inbox` showed as `who` (a member id or session key).
    pub fn inbox_seen(&self, mesh_slug: &str, who: &str) -> Result<PathBuf> {
        check_path_name("mesh slug", mesh_slug)?;
        check_path_name("member", who)?;
        Ok(self
            .dir
            .join("inbox")
            .join(format!("{mesh_slug}.{who}.seen")))
    }
}

/// A name used as a path component: `^[A-Za-z0-9._-]{1,128}$`, and not `.` or `..`.
fn check_path_name(what: &str, s: &str) -> Result<()> {
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && s != "."
        && s != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "invalid {what} {s:?}: use 1 to 128 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// Creates `dir` (and its parents) with mode 0700, or tightens an existing one that others can read.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::io(format!(
            "config directory {}: {}",
            dir.display(),
            io_message(&e)
        ))
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    let meta = fs::metadata(dir).map_err(fail)?;
    if !meta.is_dir() {
        return Err(Error::io(format!(
            "config directory {}: not a directory",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

/// Reads a JSON file; `None` if it does not exist. A file that does not parse is an error naming it.
pub fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::io(format!(
                "reading {}: {}",
                path.display(),
                io_message(&e)
            )));
        }
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::generic(format!(
            "{} is not valid: {e} (fix or move it; it was left untouched)",
            path.display()
        ))
    })
}

/// The bytes every file is written as: pretty-printed with 2 spaces and a trailing newline, as the original.
fn to_file_bytes<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::internal(format!("serializing {}: {e}", path.display())))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `bytes` to a fresh 0600 temp file beside `path` and fsyncs it; returns the temp file's path.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.tmp.{}", std::process::id()));
    // A temp file left by a crashed process with our pid is ours to replace.
    let _ = fs::remove_file(&tmp);
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(Error::io(format!(
                "writing {}: {}",
                path.display(),
                io_message(&e)
            )))
        }
    }
}

/// Makes a rename or link in `path`'s directory durable. Some filesystems refuse fsync on a directory; the data
/// is already safe in the file then, so that is not an error.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Writes `value` as JSON to `path` atomically, mode 0600: temp file, fsync, rename over, fsync the directory.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let bytes = to_file_bytes(path, value)?;
    let tmp = write_temp(path, &bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(format!(
            "writing {}: {}",
            path.display(),
            io_message(&e)
        )));
    }
    sync_parent(path);
    Ok(())
}

/// Writes `value` to `path` only if no file is there: `false` when one was. Atomic against a concurrent writer, so
/// two processes creating the same key agree on one.
fn write_json_new<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<bool> {
    let bytes = to_file_bytes(path, value)?;
    let tmp = write_temp(path, &bytes)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_parent(path);
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(format!(
            "writing {}: {}",
            path.display(),
            io_message(&e)
        ))),
    }
}

/// Shows a secret as `<redacted>` in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads a 128-hex secret key and checks it belongs to `pubkey`.
fn keypair_of(what: &str, pubkey: &str, secret_hex: &str) -> Result<Keypair> {
    let kp = Keypair::from_secret_hex(secret_hex)
        .map_err(|e| Error::generic(format!("{what}: bad secret key: {e}")))?;
    if kp.public_hex() != pubkey.to_ascii_lowercase() {
        return Err(Error::generic(format!(
            "{what}: secret key does not match public key {pubkey}"
        )));
    }
    Ok(kp)
}

fn one() -> u32 {
    1
}

/// How a user picks a mesh, for the errors that need one named.
pub const CHOOSING: &str =
    "pick one with --mesh SLUG, CLAUDEMESH_MESH=SLUG, or make it the default with 'cm use SLUG'";

/// `config.json`: the meshes joined and the profile defaults, in the original's schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Always 1.
    #[serde(default = "one")]
    pub version: u32,
    /// Joined meshes, unique by slug.
    #[serde(default)]
    pub meshes: Vec<MeshEntry>,
    /// The display name sent in `hello`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The role tag sent in `hello`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Groups joined at `hello`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupEntry>>,
    /// `push`, `inbox` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_mode: Option<String>,
    /// The web account the original linked; kept, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The slug of the mesh a tool uses when neither `--mesh` nor `$CLAUDEMESH_MESH` names one (`cm use`). Not in
    /// the original's schema: it ignores the key, and drops it when it rewrites the file, which leaves the first
    /// mesh the default again, the one the original itself falls back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_mesh: Option<String>,
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            version: 1,
            meshes: Vec::new(),
            display_name: None,
            role: None,
            groups: None,
            message_mode: None,
            account_id: None,
            default_mesh: None,
            extra: Map::new(),
        }
    }
}

/// A group in `config.json`: `{name, role?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupEntry {
    /// The group's name, without `@`.
    pub name: String,
    /// The role within the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A joined mesh: its ids, the member key used in it, and the broker that serves it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshEntry {
    /// The broker's id for the mesh.
    pub mesh_id: String,
    /// Our member id in the mesh.
    pub member_id: String,
    /// Short unique name, what `--mesh` takes.
    pub slug: String,
    /// The mesh's display name.
    pub name: String,
    /// The member's ed25519 public key, 64 hex.
    pub pubkey: String,
    /// The member's ed25519 secret key, 128 hex (seed ‖ public).
    pub secret_key: String,
    /// The broker's WebSocket URL, `wss://host/ws`.
    pub broker_url: String,
    /// More brokers serving the same mesh (on one database), tried in order when `broker_url` cannot be reached.
    /// A key of ours: the original client ignores it and keeps using `broker_url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broker_urls: Vec<String>,
    /// When we joined, RFC 3339.
    pub joined_at: String,
    /// The mesh root key from the invite, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_key: Option<String>,
    /// Which invite format the mesh was joined with: 1 or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_version: Option<u8>,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl fmt::Debug for MeshEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshEntry")
            .field("mesh_id", &self.mesh_id)
            .field("member_id", &self.member_id)
            .field("slug", &self.slug)
            .field("name", &self.name)
            .field("pubkey", &self.pubkey)
            .field("secret_key", &Redacted)
            .field("broker_url", &self.broker_url)
            .field("broker_urls", &self.broker_urls)
            .field("joined_at", &self.joined_at)
            .field("root_key", &self.root_key.as_ref().map(|_| Redacted))
            .field("invite_version", &self.invite_version)
            .field("extra", &self.extra)
            .finish()
    }
}

impl MeshEntry {
    /// Every broker of the mesh in the order they are tried: `broker_url`, then `broker_urls` (repeats dropped).
    pub fn brokers(&self) -> Vec<&str> {
        let mut all = vec![self.broker_url.as_str()];
        for u in &self.broker_urls {
            if !all.contains(&u.as_str()) {
                all.push(u);
            }
        }
        all
    }

    /// The member key pair, checked against `pubkey`.
    pub fn keypair(&self) -> Result<Keypair> {
        keypair_of(
            &format!("mesh {}", self.slug),
            &self.pubkey,
            &self.secret_key,
        )
    }
}

impl Config {
    /// Reads `config.json`; a missing file is an empty config.
    pub fn load(paths: &Paths) -> Result<Config> {
        Ok(read_json_opt(&paths.config())?.unwrap_or_default())
    }

    /// Writes `config.json` atomically, mode 0600.
    pub fn save(&self, paths: &Paths) -> Result<()> {
        write_json_atomic(&paths.config(), self)
    }

    /// The default mesh: the one `cm use` chose, else the first one made or joined. `None` with no mesh joined.
    pub fn default_entry(&self) -> Option<&MeshEntry> {
        self.default_mesh
            .as_deref()
            .and_then(|d| self.meshes.iter().find(|m| m.slug == d))
            .or_else(|| self.meshes.first())
    }

    /// Makes the mesh `slug_or_name` names the default; returns its entry.
    pub fn set_default(&mut self, slug_or_name: &str) -> Result<MeshEntry> {
        let m = self.mesh(Some(slug_or_name))?.clone();
        self.default_mesh = Some(m.slug.clone());
        Ok(m)
    }

    /// The mesh `--mesh` names (by slug, else by name), or the default mesh when there is no selector.
    pub fn mesh(&self, slug_or_name: Option<&str>) -> Result<&MeshEntry> {
        let slugs = || {
            self.meshes
                .iter()
                .map(|m| m.slug.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(sel) = slug_or_name else {
            return self.default_entry().ok_or_else(|| {
                Error::not_found("no meshes joined: run 'cm new NAME' or 'cm join URL'")
            });
        };
        let found = self
            .meshes
            .iter()
            .find(|m| m.slug == sel)
            .or_else(|| self.meshes.iter().find(|m| m.name == sel))
            .or_else(|| {
                let mut it = self.meshes.iter().filter(|m| {
                    m.slug.eq_ignore_ascii_case(sel) || m.name.eq_ignore_ascii_case(sel)
                });
                // A case-insensitive match counts only when it is the only one.
                match (it.next(), it.next()) {
                    (Some(m), None) => Some(m),
                    _ => None,
                }
            });
        if let Some(m) = found {
            return Ok(m);
        }
        if self.meshes.is_empty() {
            return Err(Error::not_found(format!(
                "no mesh {sel:?} joined: no meshes joined yet; run 'cm new NAME' or 'cm join URL'"
            )));
        }
        let hint = match crate::cli::did_you_mean(sel, self.meshes.iter().map(|m| m.slug.as_str()))
        {
            Some(s) => format!("did you mean {s:?}?"),
            None => format!("joined: {}", slugs()),
        };
        Err(Error::not_found(format!(
            "no mesh {sel:?} joined ({hint}); {CHOOSING}"
        )))
    }

    /// Adds `mesh`, or replaces the entry with the same slug in place.
    pub fn upsert_mesh(&mut self, mesh: MeshEntry) {
        match self.meshes.iter_mut().find(|m| m.slug == mesh.slug) {
            Some(m) => *m = mesh,
            None => self.meshes.push(mesh),
        }
    }

    /// Removes the mesh with this slug, returning it. When it was the default, the first mesh left is.
    pub fn remove_mesh(&mut self, slug: &str) -> Option<MeshEntry> {
        let i = self.meshes.iter().position(|m| m.slug == slug)?;
        if self.default_mesh.as_deref() == Some(slug) {
            self.default_mesh = None;
        }
        Some(self.meshes.remove(i))
    }
}

/// `identity.json`: the local ed25519 identity that `cm register` makes and every mesh made or joined here uses.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Always 1.
    #[serde(default = "one")]
    pub version: u32,
    /// The public key, 64 hex.
    pub pubkey: String,
    /// The secret key, 128 hex (seed ‖ public).
    pub secret_key: String,
    /// The name to show to peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// When it was made, RFC 3339.
    pub created_at: String,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("pubkey", &self.pubkey)
            .field("secret_key", &Redacted)
            .field("display_name", &self.display_name)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The identity, if one has been made.
    pub fn load(paths: &Paths) -> Result<Option<Identity>> {
        read_json_opt(&paths.identity())
    }

    /// The identity, or an auth error telling how to make one.
    pub fn require(paths: &Paths) -> Result<Identity> {
        Identity::load(paths)?.ok_or_else(|| Error::auth("no identity: run 'cm register'"))
    }

    /// Makes a fresh identity. An existing one is an error unless `force`, which replaces it.
    pub fn create(paths: &Paths, display_name: Option<&str>, force: bool) -> Result<Identity> {
        let kp = Keypair::generate();
        let id = Identity {
            version: 1,
            pubkey: kp.public_hex(),
            secret_key: kp.secret_hex(),
            display_name: display_name.map(str::to_string),
            created_at: time::fmt_rfc3339(time::now_ms()),
            extra: Map::new(),
        };
        let path = paths.identity();
        if force {
            write_json_atomic(&path, &id)?;
        } else if !write_json_new(&path, &id)? {
            let have = match Identity::load(paths)? {
                Some(old) => format!(" ({})", old.pubkey),
                None => String::new(),
            };
            return Err(Error::exists(format!(
                "an identity exists already{have}; use --force to replace it"
            )));
        }
        Ok(id)
    }

    /// The key pair, checked against `pubkey`.
    pub fn keypair(&self) -> Result<Keypair> {
        keypair_of("identity.json", &self.pubkey, &self.secret_key)
    }
}

/// `owners.json`: the owner key of each mesh made here, by mesh id. They sign invites and never leave the machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OwnerKeys {
    /// Owner keys by mesh id.
    #[serde(default)]
    pub meshes: BTreeMap<String, OwnerKey>,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A mesh owner's key pair, hex.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerKey {
    /// The owner public key, 64 hex.
    pub pubkey: String,
    /// The owner secret key, 128 hex.
    pub secret_key: String,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerKey")
            .field("pubkey", &self.pubkey)
            .field("secret_key", &Redacted)
            .finish_non_exhaustive()
    }
}

impl OwnerKeys {
    /// Reads `owners.json`; missing is empty.
    pub fn load(paths: &Paths) -> Result<OwnerKeys> {
        Ok(read_json_opt(&paths.owners())?.unwrap_or_default())
    }

    /// Writes `owners.json` atomically, mode 0600.
    pub fn save(&self, paths: &Paths) -> Result<()> {
        write_json_atomic(&paths.owners(), self)
    }

    /// The owner key pair of `mesh_id`, if this machine made that mesh.
    pub fn get(&self, mesh_id: &str) -> Result<Option<Keypair>> {
        match self.meshes.get(mesh_id) {
            Some(k) => keypair_of(
                &format!("owner key of mesh {mesh_id}"),
                &k.pubkey,
                &k.secret_key,
            )
            .map(Some),
            None => Ok(None),
        }
    }

    /// Records the owner key pair of `mesh_id`.
    pub fn insert(&mut self, mesh_id: &str, kp: &Keypair) {
        let key = OwnerKey {
            pubkey: kp.public_hex(),
            secret_key: kp.secret_hex(),
            extra: Map::new(),
        };
        self.meshes.insert(mesh_id.to_string(), key);
    }
}

/// `brokers.json`: the brokers `cm login` recorded, and the default one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Brokers {
    /// Logins, unique by URL.
    #[serde(default)]
    pub brokers: Vec<BrokerLogin>,
    /// The URL used when nothing else names a broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One broker login: its WebSocket URL and the token it asks for to create meshes, if any.
#[derive(Clone, Serialize, Deserialize)]
pub struct BrokerLogin {
    /// The broker's WebSocket URL, `ws://host:port/ws`.
    pub url: String,
    /// The admin or creation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A PEM file of CA certificates trusted for this broker's TLS certificate, besides the web's roots
    /// (`cm login URL --ca-file FILE`): a broker on a private CA or a self-signed certificate. An absolute path.
    #[serde(default, rename = "caFile", skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl fmt::Debug for BrokerLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerLogin")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| Redacted))
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl Brokers {
    /// Reads `brokers.json`; missing is empty.
    pub fn load(paths: &Paths) -> Result<Brokers> {
        Ok(read_json_opt(&paths.brokers())?.unwrap_or_default())
    }

    /// Writes `brokers.json` atomically, mode 0600.
    pub fn save(&self, paths: &Paths) -> Result<()> {
        write_json_atomic(&paths.brokers(), self)
    }

    /// Records a login to `url` (already normalised) and makes it the default.
    pub fn login(&mut self, url: &str, token: Option<&str>) {
        match self.brokers.iter_mut().find(|b| b.url == url) {
            Some(b) => b.token = token.map(str::to_string),
            None => self.brokers.push(BrokerLogin {
                url: url.to_string(),
                token: token.map(str::to_string),
                ca_file: None,
                extra: Map::new(),
            }),
        }
        self.default = Some(url.to_string());
    }

    /// Removes the login to `url`, or every login when `None`; returns the URLs removed.
    pub fn logout(&mut self, url: Option<&str>) -> Vec<String> {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.brokers)
            .into_iter()
            .partition(|b| url.is_none_or(|u| b.url == u));
        self.brokers = kept;
        if self
            .default
            .as_deref()
            .is_some_and(|d| !self.brokers.iter().any(|b| b.url == d))
        {
            self.default = self.brokers.last().map(|b| b.url.clone());
        }
        gone.into_iter().map(|b| b.url).collect()
    }

    /// The login for `url`, if any.
    pub fn get(&self, url: &str) -> Option<&BrokerLogin> {
        self.brokers.iter().find(|b| b.url == url)
    }
}

/// The broker's WebSocket URL for what a user typed: `http(s)://` becomes `ws(s)://`, an empty path becomes `/ws`,
/// and a bare `host:port` is `ws://` on loopback and `wss://` elsewhere. Query and fragment are dropped.
pub fn broker_ws_url(input: &str) -> Result<String> {
    let bad = |why: &str| Error::usage(format!("not a broker URL: {input:?} ({why})"));
    let s = input.trim();
    let (scheme, rest) = match s.split_once("://") {
        Some((sc, rest)) => {
            let sc = match sc.to_ascii_lowercase().as_str() {
                "ws" | "http" => "ws",
                "wss" | "https" => "wss",
                _ => return Err(bad("use ws://, wss://, http:// or https://")),
            };
            (Some(sc), rest)
        }
        None => (None, s),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains('@') || host.chars().any(char::is_whitespace) {
        return Err(bad("no host"));
    }
    let host = host.to_ascii_lowercase();
    let path = path.trim_end_matches('/');
    let path = if path.is_empty() { "/ws" } else { path };
    let scheme = scheme.unwrap_or_else(|| {
        let name = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if name == "localhost" || name.starts_with("127.") || name == "::1" || name == "[::1" {
            "ws"
        } else {
            "wss"
        }
    });
    Ok(format!("{scheme}://{host}{path}"))
}

/// `sessions/<slug>/<id>.json`: a long-lived session's own ed25519 key, kept so that the session keeps its identity
/// (and can read what was queued for it) across reconnects and restarts. Same fields as the original.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionKey {
    /// Always 1.
    #[serde(default = "one")]
    pub version: u32,
    /// The mesh the session belongs to.
    pub mesh_slug: String,
    /// The session's id.
    pub session_id: String,
    /// The session public key, 64 hex.
    pub public_key: String,
    /// The session secret key, 128 hex.
    pub secret_key: String,
    /// When it was made, RFC 3339.
    pub created_at: String,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field("mesh_slug", &self.mesh_slug)
            .field("session_id", &self.session_id)
            .field("public_key", &self.public_key)
            .field("secret_key", &Redacted)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl SessionKey {
    /// The key of session `session_id` in mesh `mesh_slug`, made and stored on first use. Concurrent callers agree
    /// on one key.
    pub fn load_or_create(paths: &Paths, mesh_slug: &str, session_id: &str) -> Result<SessionKey> {
        let path = paths.session_key(mesh_slug, session_id)?;
        if let Some(k) = read_json_opt::<SessionKey>(&path)? {
            return Ok(k);
        }
        if let Some(dir) = path.parent() {
            ensure_private_dir(dir)?;
        }
        let kp = Keypair::generate();
        let key = SessionKey {
            version: 1,
            mesh_slug: mesh_slug.to_string(),
            session_id: session_id.to_string(),
            public_key: kp.public_hex(),
            secret_key: kp.secret_hex(),
            created_at: time::fmt_rfc3339(time::now_ms()),
            extra: Map::new(),
        };
        if write_json_new(&path, &key)? {
            return Ok(key);
        }
        read_json_opt(&path)?
            .ok_or_else(|| Error::io(format!("{} vanished while being created", path.display())))
    }

    /// The key pair, checked against `public_key`.
    pub fn keypair(&self) -> Result<Keypair> {
        keypair_of(
            &format!("session key {}", self.session_id),
            &self.public_key,
            &self.secret_key,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    /// A fresh config directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let hex = crate::crypto::hex::encode(&crate::crypto::random_bytes::<6>());
            let p = std::env::temp_dir().join(format!("cm-config-{tag}-{hex}"));
            TempDir(p)
        }
        fn paths(&self) -> Paths {
            Paths::at(self.0.join("cfg")).unwrap()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// A config as the original writes it (2-space pretty JSON, trailing newline), with several meshes and keys this
    /// version does not know, top-level ones last in sorted order (how they are written back).
    const SAMPLE: &str = r#"{
  "version": 1,
  "meshes": [
    {
      "meshId": "m3shIdAbCdEfGhIjKlMnOpQrStUvWxYz",
      "memberId": "mem_01HXYZ",
      "slug": "dev",
      "name": "Dev Team",
      "pubkey": "774d112253f997813c824bb345c796940a0d878c09430870e907b50c472fbf6d",
      "secretKey": "92a6798957dbdb47e6e8408e00c486ad28659fbba5ff35a4c67944b85618a265774d112253f997813c824bb345c796940a0d878c09430870e907b50c472fbf6d",
      "brokerUrl": "wss://ic.claudemesh.com/ws",
      "joinedAt": "2026-01-02T03:04:05.678Z",
      "rootKey": "U-4qNFocv48ByEDpjixy6IJriVeNpzfQPdYAxou2f4M",
      "inviteVersion": 1
    },
    {
      "meshId": "otherMeshId0000000000000000000000",
      "memberId": "mem_02ABC",
      "slug": "ops",
      "name": "Ops",
      "pubkey": "780c70978727e4500ab130d93b378c5022ddcbb718321eabfb8da4ac4e0c5f98",
      "secretKey": "d84c12de7e8f1c2a4e11b6ebf01fca6d1323fe805767bd0593d01f65f33c22c4780c70978727e4500ab130d93b378c5022ddcbb718321eabfb8da4ac4e0c5f98",
      "brokerUrl": "ws://127.0.0.1:7900/ws",
      "joinedAt": "2026-02-03T04:05:06.000Z",
      "futureField": {
        "nested": [
          1,
          2
        ]
      }
    }
  ],
  "displayName": "alice",
  "role": "reviewer",
  "groups": [
    {
      "name": "eng/backend",
      "role": "lead"
    },
    {
      "name": "oncall"
    }
  ],
  "messageMode": "push",
  "accountId": "acct_123",
  "aNewerKey": true,
  "zLast": "kept"
}
"#;

    #[test]
    fn sample_config_round_trips_byte_stable() {
        let t = TempDir::new("sample");
        let p = t.paths();
        fs::write(p.config(), SAMPLE).unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.meshes.len(), 2);
        assert_eq!(c.meshes[1].extra["futureField"]["nested"][1], 2);
        assert_eq!(c.extra["zLast"], "kept");
        c.save(&p).unwrap();
        assert_eq!(fs::read_to_string(p.config()).unwrap(), SAMPLE);
        assert_eq!(mode(&p.config()), 0o600);
    }

    #[test]
    fn missing_config_is_empty_and_saves_minimal() {
        let t = TempDir::new("empty");
        let p = t.paths();
        let c = Config::load(&p).unwrap();
        assert!(c.meshes.is_empty());
        c.save(&p).unwrap();
        assert_eq!(
            fs::read_to_string(p.config()).unwrap(),
            "{\n  \"version\": 1,\n  \"meshes\": []\n}\n"
        );
    }

    #[test]
    fn corrupt_config_is_an_error_and_left_alone() {
        let t = TempDir::new("corrupt");
        let p = t.paths();
        for bad in [
            "{\"version\":1,\"meshes\":[",
            "{\"meshes\": 5}",
            "{\"meshes\":[{\"slug\":1}]}",
            "[]",
        ] {
            fs::write(p.config(), bad).unwrap();
            let e = Config::load(&p).unwrap_err();
            assert_eq!(e.code, Code::Generic);
            assert!(e.msg.contains("config.json is not valid: "), "{}", e.msg);
            assert!(e.msg.contains(&p.config().display().to_string()));
            assert!(e.msg.ends_with("(fix or move it; it was left untouched)"));
            assert_eq!(fs::read_to_string(p.config()).unwrap(), bad);
        }
    }

    #[test]
    fn dir_is_private_and_tightened() {
        let t = TempDir::new("modes");
        let p = t.paths();
        assert_eq!(mode(&p.dir), 0o700);
        fs::set_permissions(&p.dir, fs::Permissions::from_mode(0o755)).unwrap();
        let p = Paths::at(&p.dir).unwrap();
        assert_eq!(mode(&p.dir), 0o700);
    }

    #[test]
    fn atomic_write_leaves_only_the_file() {
        let t = TempDir::new("atomic");
        let p = t.paths();
        let target = p.dir.join("x.json");
        fs::write(&target, "old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        write_json_atomic(&target, &serde_json::json!({"a": 1})).unwrap();
        write_json_atomic(&target, &serde_json::json!({"a": 2})).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "{\n  \"a\": 2\n}\n");
        assert_eq!(mode(&target), 0o600);
        let names: Vec<_> = fs::read_dir(&p.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    }

    fn entry(slug: &str, name: &str) -> MeshEntry {
        MeshEntry {
            mesh_id: format!("id-{slug}"),
            member_id: "m".into(),
            slug: slug.into(),
            name: name.into(),
            pubkey: "00".repeat(32),
            secret_key: "11".repeat(64),
            broker_url: "ws://127.0.0.1:1/ws".into(),
            broker_urls: Vec::new(),
            joined_at: time::fmt_rfc3339(0),
            root_key: None,
            invite_version: None,
            extra: Map::new(),
        }
    }

    #[test]
    fn mesh_selection() {
        let mut c = Config::default();
        let e = c.mesh(None).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                Code::NotFound,
                "no meshes joined: run 'cm new NAME' or 'cm join URL'"
            )
        );
        assert_eq!(c.mesh(Some("dev")).unwrap_err().code, Code::NotFound);

        c.upsert_mesh(entry("dev", "Dev Team"));
        assert_eq!(c.mesh(None).unwrap().slug, "dev");
        assert_eq!(c.mesh(Some("dev")).unwrap().slug, "dev");

        // With a second mesh the first stays the default, until another is chosen.
        c.upsert_mesh(entry("ops", "Ops"));
        assert_eq!(c.mesh(None).unwrap().slug, "dev");
        assert_eq!(c.set_default("Ops").unwrap().slug, "ops");
        assert_eq!(c.default_mesh.as_deref(), Some("ops"));
        assert_eq!(c.mesh(None).unwrap().slug, "ops");
        assert_eq!(c.set_default("nope").unwrap_err().code, Code::NotFound);
        assert_eq!(c.mesh(None).unwrap().slug, "ops");
        // A default that names no joined mesh (left, or renamed by another client) falls back to the first.
        c.default_mesh = Some("gone".into());
        assert_eq!(c.mesh(None).unwrap().slug, "dev");
        c.default_mesh = Some("ops".into());
        assert_eq!(c.mesh(Some("Dev Team")).unwrap().slug, "dev");
        assert_eq!(c.mesh(Some("OPS")).unwrap().slug, "ops");

        let e = c.mesh(Some("dve")).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                Code::NotFound,
                format!("no mesh \"dve\" joined (did you mean \"dev\"?); {CHOOSING}").as_str()
            )
        );
        let e = c.mesh(Some("zzzzzz")).unwrap_err();
        assert_eq!(
            e.msg,
            format!("no mesh \"zzzzzz\" joined (joined: dev, ops); {CHOOSING}")
        );

        let mut dev2 = entry("dev", "Renamed");
        dev2.member_id = "m2".into();
        c.upsert_mesh(dev2);
        assert_eq!(c.meshes.len(), 2);
        assert_eq!(c.meshes[0].name, "Renamed");
        assert_eq!(c.remove_mesh("dev").unwrap().member_id, "m2");
        assert!(c.remove_mesh("dev").is_none());
        assert_eq!(c.meshes.len(), 1);
        assert_eq!(c.default_mesh.as_deref(), Some("ops"));
        c.remove_mesh("ops");
        assert_eq!(c.default_mesh, None);
    }

    #[test]
    fn identity_create_load_and_exists() {
        let t = TempDir::new("identity");
        let p = t.paths();
        assert!(Identity::load(&p).unwrap().is_none());
        assert_eq!(Identity::require(&p).unwrap_err().code, Code::Auth);
        let id = Identity::create(&p, Some("alice"), false).unwrap();
        assert_eq!(mode(&p.identity()), 0o600);
        let back = Identity::require(&p).unwrap();
        assert_eq!(back.pubkey, id.pubkey);
        assert_eq!(back.keypair().unwrap().public_hex(), id.pubkey);
        let e = Identity::create(&p, None, false).unwrap_err();
        assert_eq!(e.code, Code::Exists);
        assert!(e.msg.contains(&id.pubkey));
        let id2 = Identity::create(&p, None, true).unwrap();
        assert_ne!(id2.pubkey, id.pubkey);
        let names: Vec<_> = fs::read_dir(&p.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("identity.json")]);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let kp = Keypair::generate();
        let id = Identity {
            version: 1,
            pubkey: kp.public_hex(),
            secret_key: kp.secret_hex(),
            display_name: None,
            created_at: String::new(),
            extra: Map::new(),
        };
        let mut owners = OwnerKeys::default();
        owners.insert("m", &kp);
        let mut m = entry("dev", "Dev");
        m.secret_key = kp.secret_hex();
        let mut brokers = Brokers::default();
        brokers.login("ws://h/ws", Some("sekrit-token"));
        let dump = format!(
            "{id:?} {owners:?} {m:?} {brokers:?} {:?}",
            Config {
                meshes: vec![m.clone()],
                ..Config::default()
            }
        );
        let seed = &kp.secret_hex()[..64];
        assert!(!dump.contains(seed), "{dump}");
        assert!(!dump.contains("sekrit-token"));
        assert!(dump.contains(&kp.public_hex()));
    }

    #[test]
    fn owner_keys_round_trip() {
        let t = TempDir::new("owners");
        let p = t.paths();
        let kp = Keypair::generate();
        let mut o = OwnerKeys::load(&p).unwrap();
        o.insert("mesh1", &kp);
        o.save(&p).unwrap();
        let o = OwnerKeys::load(&p).unwrap();
        assert_eq!(o.get("mesh1").unwrap().unwrap().secret, kp.secret);
        assert!(o.get("nope").unwrap().is_none());
        assert_eq!(mode(&p.owners()), 0o600);
    }

    #[test]
    fn broker_logins() {
        let mut b = Brokers::default();
        b.login("ws://a/ws", None);
        b.login("ws://b/ws", Some("t"));
        b.login("ws://a/ws", Some("t2"));
        assert_eq!(b.brokers.len(), 2);
        assert_eq!(b.default.as_deref(), Some("ws://a/ws"));
        assert_eq!(b.get("ws://a/ws").unwrap().token.as_deref(), Some("t2"));
        assert_eq!(b.logout(Some("ws://a/ws")), vec!["ws://a/ws"]);
        assert_eq!(b.default.as_deref(), Some("ws://b/ws"));
        assert!(b.logout(Some("ws://zz/ws")).is_empty());
        assert_eq!(b.logout(None), vec!["ws://b/ws"]);
        assert!(b.default.is_none());
    }

    #[test]
    fn broker_urls_normalise() {
        let n = |s| broker_ws_url(s).unwrap();
        assert_eq!(n("http://127.0.0.1:7900"), "ws://127.0.0.1:7900/ws");
        assert_eq!(
            n("https://Broker.Example.com/"),
            "wss://broker.example.com/ws"
        );
        assert_eq!(n("wss://h.example/ws"), "wss://h.example/ws");
        assert_eq!(n("ws://h:1/ws?x=1"), "ws://h:1/ws");
        assert_eq!(n("HTTP://h:1/custom/ws/"), "ws://h:1/custom/ws");
        assert_eq!(n("localhost:7900"), "ws://localhost:7900/ws");
        assert_eq!(n("[::1]:7900"), "ws://[::1]:7900/ws");
        assert_eq!(n("broker.example.com"), "wss://broker.example.com/ws");
        for bad in ["", "ftp://h", "http://", "http:///ws", "ws://u@h/ws"] {
            assert_eq!(broker_ws_url(bad).unwrap_err().code, Code::Usage, "{bad}");
        }
    }

    #[test]
    fn session_keys_persist_and_refuse_traversal() {
        let t = TempDir::new("sessions");
        let p = t.paths();
        let k =
            SessionKey::load_or_create(&p, "dev", "0b7e5a4c-1111-2222-3333-444455556666").unwrap();
        let again =
            SessionKey::load_or_create(&p, "dev", "0b7e5a4c-1111-2222-3333-444455556666").unwrap();
        assert_eq!(k.public_key, again.public_key);
        assert_eq!(k.keypair().unwrap().public_hex(), k.public_key);
        let file = p
            .session_key("dev", "0b7e5a4c-1111-2222-3333-444455556666")
            .unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&p.sessions()), 0o700);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        let other = SessionKey::load_or_create(&p, "dev", "other").unwrap();
        assert_ne!(other.public_key, k.public_key);
        for (slug, id) in [
            ("..", "x"),
            ("dev", ".."),
            ("dev", "."),
            ("a/b", "x"),
            ("dev", "x/../../y"),
            ("", "x"),
        ] {
            let e = SessionKey::load_or_create(&p, slug, id).unwrap_err();
            assert_eq!(e.code, Code::Usage, "{slug} {id}");
        }
        assert!(p.session_key("dev", &"a".repeat(129)).is_err());
        assert!(p.session_key("dev", &"a".repeat(128)).is_ok());
    }
}
