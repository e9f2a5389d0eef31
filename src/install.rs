//! `cm-install` and `cm-uninstall`: `cm-mcp`, the prompt hooks and the skill registered in Claude Code's own
//! files, and taken out again exactly.
//!
//! Claude Code keeps its user configuration in `.claude.json` (MCP servers, but also projects, account data and
//! much else) and `settings.json` (hooks, permissions), in `$CLAUDE_CONFIG_DIR` when it is set, else in `~` and
//! `~/.claude`. Install edits their text in place (`install::text`): only the member or element it adds is spliced in,
//! so every other byte (number spellings, escapes, indentation, the missing final newline) and the file's mode
//! stay as they were.
//!
//! Install records in the config directory what it found: each file's bytes and mode before its first change, the
//! entry it replaced, the folders it made. Uninstall gives back exactly that. When nobody else has written a file
//! since install, it gets its original bytes and mode back; when Claude Code (or the user) has changed it since,
//! only our entries come out, and an entry of the user's that we replaced goes back in, as its original text. An
//! entry that was already there before install (the user's own hook running the same command) is never ours.

mod text;

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config;
use crate::crypto::{self, b64};
use crate::error::{Context, Error, Result, io_message};
pub use text::Doc;

/// The skill that teaches Claude the toolkit, installed as `skills/claudemesh/SKILL.md` in Claude's folder.
pub const SKILL: &str = include_str!("../skills/claudemesh/SKILL.md");

/// The name of our MCP server in `mcpServers`, and so the `source` of channel tags.
pub const SERVER: &str = "claudemesh";

/// Where Claude Code's files and our install record are.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The user's home directory.
    pub home: PathBuf,
    /// Claude Code's folder: `$CLAUDE_CONFIG_DIR`, else `~/.claude`.
    pub claude_dir: PathBuf,
    /// `.claude.json`: in `$CLAUDE_CONFIG_DIR`, else `~/.claude.json`.
    pub claude_json: PathBuf,
    /// `settings.json` in Claude Code's folder.
    pub settings: PathBuf,
    /// `skills/claudemesh` in Claude Code's folder.
    pub skill_dir: PathBuf,
    /// `<config dir>/installed.json` (`installed-<hash>.json` for a `CLAUDE_CONFIG_DIR`).
    pub record: PathBuf,
}

impl Layout {
    /// The default layout under `home`, with the install record in `config_dir`.
    pub fn new(home: &Path, config_dir: &Path) -> Layout {
        Layout::at(home, None, config_dir)
    }

    /// The layout under `home`, or in `claude_dir` (a `CLAUDE_CONFIG_DIR`) when given.
    pub fn at(home: &Path, claude_dir: Option<&Path>, config_dir: &Path) -> Layout {
        let (dot, claude_json, record) = match claude_dir {
            Some(d) => {
                let hash = crypto::sha256_hex(d.as_os_str().as_encoded_bytes());
                (
                    d.to_path_buf(),
                    d.join(".claude.json"),
                    config_dir.join(format!("installed-{}.json", &hash[..12])),
                )
            }
            None => (
                home.join(".claude"),
                home.join(".claude.json"),
                config_dir.join("installed.json"),
            ),
        };
        Layout {
            home: home.to_path_buf(),
            settings: dot.join("settings.json"),
            skill_dir: dot.join("skills").join(SERVER),
            claude_dir: dot,
            claude_json,
            record,
        }
    }

    /// The layout Claude Code itself uses now: `$CLAUDE_CONFIG_DIR` when set, else the home directory.
    pub fn resolve(config_dir: &Path) -> Result<Layout> {
        let home = home()?;
        let claude_dir = claude_config_dir()?;
        Ok(Layout::at(&home, claude_dir.as_deref(), config_dir))
    }

    /// `SKILL.md` in the skill's folder.
    pub fn skill_file(&self) -> PathBuf {
        self.skill_dir.join("SKILL.md")
    }

    /// `path` with the home directory written as `~`, for messages.
    pub fn tilde(&self, path: &Path) -> String {
        match path.strip_prefix(&self.home) {
            Ok(rest) => format!("~/{}", rest.display()),
            Err(_) => path.display().to_string(),
        }
    }
}

/// The home directory from `$HOME`.
pub fn home() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => Err(Error::generic("HOME is not set")),
    }
}

/// `$CLAUDE_CONFIG_DIR` as an absolute path, when it is set: Claude Code then reads everything from there.
pub fn claude_config_dir() -> Result<Option<PathBuf>> {
    match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(d) if !d.is_empty() => std::path::absolute(PathBuf::from(d))
            .map(Some)
            .map_err(Error::from),
        _ => Ok(None),
    }
}

/// The `.claude.json` Claude Code reads: in `$CLAUDE_CONFIG_DIR` when it is set, else in the home directory.
pub fn claude_json() -> Result<PathBuf> {
    match claude_config_dir()? {
        Some(d) => Ok(d.join(".claude.json")),
        None => Ok(home()?.join(".claude.json")),
    }
}

/// Whether `claude_json` registers our MCP server (a hint only: a file that does not parse says yes).
pub fn registered(claude_json: &Path) -> bool {
    let Ok(bytes) = fs::read(claude_json) else {
        return false;
    };
    serde_json::from_slice::<Value>(&bytes).map_or(true, |v| {
        v.pointer(&format!("/mcpServers/{SERVER}")).is_some()
    })
}

/// A hook we add: an id that stays the same when the command's path changes, the event, the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub id: String,
    pub event: String,
    pub command: String,
}

/// What install puts into Claude Code's files.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The value of `mcpServers.claudemesh`.
    pub server: Value,
    pub hooks: Vec<Hook>,
    /// The bytes of SKILL.md.
    pub skill: &'static str,
}

impl Wanted {
    /// The entries for this install: the `cm-*` links beside `cm`, else `cm VERB` ([`crate::multicall::command`]).
    pub fn for_this_install() -> Wanted {
        let shell = |c: crate::multicall::Command| {
            std::iter::once(c.program)
                .chain(c.args)
                .map(|a| sh_quote(&a))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mcp = crate::multicall::command("cm-mcp");
        let inbox = shell(crate::multicall::command("cm-inbox"));
        let profile = shell(crate::multicall::command("cm-profile"));
        let hook = |id: &str, event: &str, command: String| Hook {
            id: id.into(),
            event: event.into(),
            command,
        };
        Wanted {
            server: server_entry(&mcp.program, &mcp.args),
            hooks: vec![
                hook("inbox", "UserPromptSubmit", format!("{inbox} --hook")),
                hook(
                    "working",
                    "UserPromptSubmit",
                    format!("{profile} --hook status working"),
                ),
                hook("idle", "Stop", format!("{profile} --hook status idle")),
            ],
            skill: SKILL,
        }
    }
}

/// The `mcpServers` entry for `command args…`, as `claude mcp add` writes it: `claude mcp get` shows the command
/// only when `type` is `stdio`.
pub fn server_entry(command: &str, args: &[String]) -> Value {
    json!({"type": "stdio", "command": command, "args": args})
}

/// `s` quoted for `sh -c` when it needs it (hook commands are run by a shell).
pub fn sh_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A file install changed, as it was before its first change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// `claude_json`, `settings` or `skill`.
    pub role: String,
    pub path: PathBuf,
    /// The bytes before install (base64); `None` when the file did not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// Its mode before install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// SHA-256 of the bytes install last wrote: while the file still has them, nobody else wrote it.
    pub written_sha256: String,
    /// Someone else wrote the file between two installs: the original bytes no longer fit, and uninstall takes out
    /// only our entries.
    #[serde(default)]
    pub stale: bool,
}

/// What install added and what it found, kept in `installed.json` so uninstall gives back exactly that.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The `mcpServers.claudemesh` value we wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_server: Option<Value>,
    /// The text of the `mcpServers.claudemesh` entry that was there before and that we replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_server_before: Option<String>,
    /// The hook entries we added (not those that were there already).
    #[serde(default)]
    pub hooks: Vec<Hook>,
    /// Containers that did not exist before we added to them (`mcpServers`, `hooks`, `hooks.Stop`): uninstall
    /// removes them again when they are left empty.
    #[serde(default)]
    pub created: Vec<String>,
    /// The files we changed, as they were.
    #[serde(default)]
    pub files: Vec<FileRecord>,
    /// Folders we made, outermost first: uninstall removes those left empty.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
}

impl Record {
    fn load(path: &Path) -> Result<Option<Record>> {
        let Some(bytes) = read_opt(path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::generic(format!(
                "{} is not a valid install record ({e})",
                path.display()
            ))
        })
    }

    fn created(&mut self, what: &str) {
        if !self.created.iter().any(|c| c == what) {
            self.created.push(what.to_string());
        }
    }

    fn was_created(&self, what: &str) -> bool {
        self.created.iter().any(|c| c == what)
    }

    fn file(&self, role: &str) -> Option<&FileRecord> {
        self.files.iter().find(|f| f.role == role)
    }

    /// Notes that install writes `new` over `file` (as read now).
    fn wrote(&mut self, role: &str, file: &Read, new: &[u8]) {
        let sha = crypto::sha256_hex(new);
        match self.files.iter_mut().find(|f| f.role == role) {
            Some(f) => {
                if file.bytes.as_deref().map(crypto::sha256_hex) != Some(f.written_sha256.clone()) {
                    f.stale = true;
                }
                f.written_sha256 = sha;
            }
            None => self.files.push(FileRecord {
                role: role.into(),
                path: file.path.clone(),
                original: file.bytes.as_deref().map(b64::encode),
                mode: file.mode,
                written_sha256: sha,
                stale: false,
            }),
        }
    }
}

/// What happened, or would happen, to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Added,
    Updated,
    Unchanged,
    Removed,
    /// Given back as it was before install.
    Restored,
    WouldAdd,
    WouldUpdate,
    WouldRemove,
    WouldRestore,
}

impl Action {
    /// The snake_case name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Removed => "removed",
            Action::Restored => "restored",
            Action::WouldAdd => "would_add",
            Action::WouldUpdate => "would_update",
            Action::WouldRemove => "would_remove",
            Action::WouldRestore => "would_restore",
        }
    }

    fn dry(self) -> Action {
        match self {
            Action::Added => Action::WouldAdd,
            Action::Updated => Action::WouldUpdate,
            Action::Removed => Action::WouldRemove,
            Action::Restored => Action::WouldRestore,
            a => a,
        }
    }

    fn changes(self) -> bool {
        self != Action::Unchanged
    }
}

/// One line of install's or uninstall's report.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// `mcpServers.claudemesh`, `hooks.Stop`, `skill` or `installed.json`.
    pub item: String,
    pub action: Action,
    /// The file the item lives in.
    pub path: PathBuf,
    /// The hook command, for hooks.
    pub command: Option<String>,
}

impl Item {
    fn new(item: impl Into<String>, action: Action, path: &Path) -> Item {
        Item {
            item: item.into(),
            action,
            path: path.to_path_buf(),
            command: None,
        }
    }

    fn hook(hook: &Hook, action: Action, path: &Path) -> Item {
        let mut item = Item::new(format!("hooks.{}", hook.event), action, path);
        item.command = Some(hook.command.clone());
        item
    }

    /// The item as a JSON Lines record of `kind` (`install_item`, `uninstall_item`).
    pub fn to_json(&self, kind: &str) -> Value {
        let mut v = json!({"type": kind, "item": self.item, "action": self.action.as_str(), "path": self.path});
        if let Some(c) = &self.command {
            v["command"] = json!(c);
        }
        v
    }

    /// The item as one human line: `would add hook Stop: cm-profile --hook status idle`.
    pub fn human(&self, layout: &Layout) -> String {
        let what = match (&self.command, self.item.as_str()) {
            (Some(c), i) => format!("hook {}: {c}", i.trim_start_matches("hooks.")),
            (None, "mcpServers.claudemesh") => {
                format!("mcpServers.claudemesh in {}", layout.tilde(&self.path))
            }
            (None, _) => layout.tilde(&self.path),
        };
        let file = self.command.is_none() && self.item != "mcpServers.claudemesh";
        let verb = match self.action {
            Action::Added | Action::Updated if file => "wrote",
            Action::WouldAdd | Action::WouldUpdate if file => "would write",
            Action::Added => "added",
            Action::Updated => "replaced",
            Action::Unchanged => "unchanged",
            Action::Removed => "removed",
            Action::Restored => "restored",
            Action::WouldAdd => "would add",
            Action::WouldUpdate => "would replace",
            Action::WouldRemove => "would remove",
            Action::WouldRestore => "would restore",
        };
        format!("{verb} {what}")
    }
}

/// Which parts install touches.
#[derive(Debug, Clone, Copy)]
pub struct InstallOpts {
    pub dry_run: bool,
    pub hooks: bool,
    pub skill: bool,
}

/// A file as read: where it really is (through a symlink), its bytes and mode (`None` when missing).
struct Read {
    path: PathBuf,
    shown: String,
    bytes: Option<Vec<u8>>,
    mode: Option<u32>,
}

impl Read {
    fn new(path: &Path, layout: &Layout) -> Result<Read> {
        // Write through a symlink (dotfile managers link these files) instead of replacing it.
        let shown = layout.tilde(path);
        let path = match fs::symlink_metadata(path) {
            Ok(m) if m.is_symlink() => {
                fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
            }
            _ => path.to_path_buf(),
        };
        let bytes = read_opt(&path)?;
        let mode = match &bytes {
            Some(_) => fs::metadata(&path)
                .ok()
                .map(|m| m.permissions().mode() & 0o7777),
            None => None,
        };
        Ok(Read {
            path,
            shown,
            bytes,
            mode,
        })
    }

    /// The file as a JSON document to edit; a missing file is an empty one.
    fn doc(&self) -> Result<Doc> {
        let Some(b) = &self.bytes else {
            return Ok(Doc::empty());
        };
        let shown = &self.shown;
        let text = std::str::from_utf8(b).map_err(|_| {
            Error::generic(format!("{shown} is not UTF-8 text; nothing was changed"))
        })?;
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(_)) => Doc::parse(text)
                .ok_or_else(|| Error::internal(format!("{shown}: the JSON scanner failed"))),
            Ok(_) => Err(Error::generic(format!(
                "{shown} is not a JSON object; nothing was changed"
            ))),
            Err(e) => Err(Error::generic(format!(
                "{shown} is not valid JSON ({e}); nothing was changed"
            ))),
        }
    }
}

/// A write install or uninstall will make once everything is checked.
enum Change {
    Write {
        path: PathBuf,
        bytes: Vec<u8>,
        mode: u32,
    },
    Remove(PathBuf),
}

/// Adds the MCP server, the hooks and the skill. Changes nothing that is already in place; with `dry_run`, only
/// reports.
pub fn install(layout: &Layout, wanted: &Wanted, opts: InstallOpts) -> Result<Vec<Item>> {
    let old_record = Record::load(&layout.record)?;
    let mut record = old_record.clone().unwrap_or_default();
    let mut items = Vec::new();
    let mut changes = Vec::new();

    let claude = Read::new(&layout.claude_json, layout)?;
    let mut doc = claude.doc()?;
    let action = put_server(&mut doc, &wanted.server, &mut record, &claude.shown)?;
    items.push(Item::new(
        "mcpServers.claudemesh",
        action,
        &layout.claude_json,
    ));
    if action.changes() {
        let bytes = doc.text.into_bytes();
        record.wrote("claude_json", &claude, &bytes);
        changes.push(Change::Write {
            mode: claude.mode.unwrap_or(0o600),
            path: claude.path,
            bytes,
        });
    }

    if opts.hooks {
        let settings = Read::new(&layout.settings, layout)?;
        let mut doc = settings.doc()?;
        let mut changed = false;
        for hook in &wanted.hooks {
            let action = put_hook(&mut doc, hook, &mut record, &settings.shown)?;
            changed |= action.changes();
            items.push(Item::hook(hook, action, &layout.settings));
        }
        if changed {
            let bytes = doc.text.into_bytes();
            record.wrote("settings", &settings, &bytes);
            changes.push(Change::Write {
                mode: settings.mode.unwrap_or(0o644),
                path: settings.path,
                bytes,
            });
        }
    }

    if opts.skill {
        let skill = Read::new(&layout.skill_file(), layout)?;
        let action = match &skill.bytes {
            Some(b) if b == wanted.skill.as_bytes() => Action::Unchanged,
            Some(_) => Action::Updated,
            None => Action::Added,
        };
        if action.changes() {
            record.wrote("skill", &skill, wanted.skill.as_bytes());
            changes.push(Change::Write {
                mode: skill.mode.unwrap_or(0o644),
                path: skill.path,
                bytes: wanted.skill.as_bytes().to_vec(),
            });
        }
        items.push(Item::new("skill", action, &layout.skill_file()));
    }

    if opts.dry_run {
        for i in &mut items {
            i.action = i.action.dry();
        }
        return Ok(items);
    }
    for change in &changes {
        if let Change::Write { path, .. } = change
            && let Some(dir) = path.parent()
        {
            make_dirs(dir, &mut record)?;
        }
    }
    if old_record.as_ref() != Some(&record) {
        if let Some(dir) = layout.record.parent() {
            fs::create_dir_all(dir).context(dir.display())?;
        }
        config::write_json_atomic(&layout.record, &record)?;
    }
    apply(&changes)?;
    Ok(items)
}

/// Gives back what install found: each file's original bytes and mode when nobody else wrote it since, else the
/// file with our entries taken out and the user's replaced entry put back. Folders install made go when empty.
pub fn uninstall(layout: &Layout, dry_run: bool) -> Result<Vec<Item>> {
    let Some(rec) = Record::load(&layout.record)? else {
        return Ok(Vec::new());
    };
    let mut items = Vec::new();
    let mut changes = Vec::new();

    // .claude.json
    let claude = Read::new(&layout.claude_json, layout)?;
    if let Some(f) = rec.file("claude_json") {
        let exact = restore(f, &claude)?;
        let mut doc = claude.doc()?;
        let action = remove_server(&mut doc, &rec);
        if let Some(action) = action {
            items.push(Item::new(
                "mcpServers.claudemesh",
                action,
                &layout.claude_json,
            ));
        }
        match exact {
            Some(c) => changes.push(c),
            None if action.is_some() => {
                changes.push(edited(&claude, doc, f.original.is_none()));
            }
            None => {}
        }
    }

    // settings.json
    let settings = Read::new(&layout.settings, layout)?;
    if let Some(f) = rec.file("settings") {
        let exact = restore(f, &settings)?;
        let mut doc = settings.doc()?;
        let mut any = false;
        for hook in &rec.hooks {
            if remove_hook(&mut doc, hook, &rec) {
                any = true;
                items.push(Item::hook(hook, Action::Removed, &layout.settings));
            }
        }
        match exact {
            Some(c) => changes.push(c),
            None if any => changes.push(edited(&settings, doc, f.original.is_none())),
            None => {}
        }
    }

    // The skill: given back only while it is still the one we wrote.
    let skill = Read::new(&layout.skill_file(), layout)?;
    if let Some(f) = rec.file("skill")
        && skill.bytes.as_deref().map(crypto::sha256_hex).as_deref() == Some(&f.written_sha256)
        && let Some(c) = restore(f, &skill)?
    {
        let action = match c {
            Change::Write { .. } => Action::Restored,
            Change::Remove(_) => Action::Removed,
        };
        items.push(Item::new("skill", action, &layout.skill_file()));
        changes.push(c);
    }
    items.push(Item::new("installed.json", Action::Removed, &layout.record));

    if dry_run {
        for i in &mut items {
            i.action = i.action.dry();
        }
        return Ok(items);
    }
    apply(&changes)?;
    remove_file(&layout.record)?;
    // Only empty folders go, innermost first: anything left in one is the user's.
    for dir in rec.dirs.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
    Ok(items)
}

/// The change that gives `now` back its bytes and mode from before install, if nobody else wrote it since.
fn restore(f: &FileRecord, now: &Read) -> Result<Option<Change>> {
    let untouched =
        now.bytes.as_deref().map(crypto::sha256_hex).as_deref() == Some(&f.written_sha256);
    if !untouched || f.stale {
        return Ok(None);
    }
    Ok(Some(match &f.original {
        None => Change::Remove(now.path.clone()),
        Some(b) => Change::Write {
            path: now.path.clone(),
            bytes: b64::decode(b).map_err(|_| {
                Error::generic(format!(
                    "the install record's copy of {} is damaged",
                    now.shown
                ))
            })?,
            mode: f.mode.unwrap_or(0o600),
        },
    }))
}

/// The change that writes `doc` over `file` in its mode; or removes it if install made it and it is left empty.
fn edited(file: &Read, doc: Doc, created: bool) -> Change {
    if created && doc.len(&[]) == Some(0) {
        return Change::Remove(file.path.clone());
    }
    Change::Write {
        path: file.path.clone(),
        bytes: doc.text.into_bytes(),
        mode: file.mode.unwrap_or(0o600),
    }
}

fn apply(changes: &[Change]) -> Result<()> {
    for c in changes {
        match c {
            Change::Write { path, bytes, mode } => write_atomic(path, bytes, *mode)?,
            Change::Remove(path) => remove_file(path)?,
        }
    }
    Ok(())
}

/// Makes `dir` and its missing parents, noting in `record` each one made.
fn make_dirs(dir: &Path, record: &mut Record) -> Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    for d in missing.into_iter().rev() {
        fs::create_dir(d).context(d.display())?;
        if !record.dirs.iter().any(|x| x == d) {
            record.dirs.push(d.to_path_buf());
        }
    }
    Ok(())
}

/// Sets `mcpServers.claudemesh` in `doc`. An entry that was there and is not one of ours is kept, as its text,
/// in `record`, for uninstall to put back.
pub fn put_server(
    doc: &mut Doc,
    server: &Value,
    record: &mut Record,
    shown: &str,
) -> Result<Action> {
    let bad = || {
        Error::generic(format!(
            "mcpServers in {shown} is not an object; nothing was changed"
        ))
    };
    let previous = record.mcp_server.replace(server.clone());
    let Some(servers) = doc.get(&["mcpServers"]) else {
        doc.set(&[], "mcpServers", &json!({SERVER: server}))
            .ok_or_else(bad)?;
        record.created("mcpServers");
        return Ok(Action::Added);
    };
    let Value::Object(servers) = servers else {
        return Err(bad());
    };
    let action = match servers.get(SERVER) {
        Some(v) if v == server => return Ok(Action::Unchanged),
        Some(v) => {
            if previous.as_ref() != Some(v) {
                record.mcp_server_before = doc.raw(&["mcpServers", SERVER]);
            }
            Action::Updated
        }
        None => Action::Added,
    };
    doc.set(&["mcpServers"], SERVER, server).ok_or_else(bad)?;
    Ok(action)
}

/// Takes our `mcpServers.claudemesh` out of `doc` when it is still what install wrote: the entry it replaced goes
/// back in, as its original text. `None` when there is nothing of ours.
pub fn remove_server(doc: &mut Doc, record: &Record) -> Option<Action> {
    let ours = record.mcp_server.as_ref()?;
    if doc.get(&["mcpServers", SERVER]).as_ref() != Some(ours) {
        return None;
    }
    if let Some(before) = &record.mcp_server_before {
        doc.set_raw(&["mcpServers"], SERVER, before)?;
        return Some(Action::Restored);
    }
    doc.remove(&["mcpServers"], SERVER);
    if doc.len(&["mcpServers"]) == Some(0) && record.was_created("mcpServers") {
        doc.remove(&[], "mcpServers");
    }
    Some(Action::Removed)
}

/// The matcher group we add for a hook command: `{"hooks":[{"type":"command","command":…}]}`.
pub fn hook_group(command: &str) -> Value {
    json!({"hooks": [{"type": "command", "command": command}]})
}

/// Adds `hook` to `doc.hooks[event]` unless a group there already runs its command (then it is the user's, and
/// not recorded as ours). When an earlier install added the same hook with another command (the binaries moved),
/// that entry is replaced.
pub fn put_hook(doc: &mut Doc, hook: &Hook, record: &mut Record, shown: &str) -> Result<Action> {
    let bad = |what: &str| {
        Error::generic(format!(
            "{what} in {shown} is not as Claude Code writes it; nothing was changed"
        ))
    };
    let event = hook.event.as_str();
    let previous = record
        .hooks
        .iter()
        .position(|h| h.id == hook.id && h.event == hook.event);
    let ours = hook_group(&hook.command);
    match doc.get(&["hooks"]) {
        None => {
            doc.set(&[], "hooks", &json!({event: [ours]}))
                .ok_or_else(|| bad("hooks"))?;
            record.created("hooks");
            record.created(&format!("hooks.{event}"));
        }
        Some(Value::Object(events)) => match events.get(event) {
            None => {
                doc.set(&["hooks"], event, &json!([ours]))
                    .ok_or_else(|| bad("hooks"))?;
                record.created(&format!("hooks.{event}"));
            }
            Some(Value::Array(groups)) => {
                let runs = |g: &Value, cmd: &str| {
                    g.get("hooks").and_then(Value::as_array).is_some_and(|hs| {
                        hs.iter()
                            .any(|h| h.get("command").and_then(Value::as_str) == Some(cmd))
                    })
                };
                if groups.iter().any(|g| runs(g, &hook.command)) {
                    return Ok(Action::Unchanged);
                }
                let old = previous.map(|i| hook_group(&record.hooks[i].command));
                let path = ["hooks", event];
                let action = match old.and_then(|old| groups.iter().rposition(|g| *g == old)) {
                    Some(i) => {
                        doc.replace(&path, i, &ours)
                            .ok_or_else(|| bad(&format!("hooks.{event}")))?;
                        Action::Updated
                    }
                    None => {
                        doc.push(&path, &ours)
                            .ok_or_else(|| bad(&format!("hooks.{event}")))?;
                        Action::Added
                    }
                };
                record_hook(record, previous, hook);
                return Ok(action);
            }
            Some(_) => return Err(bad(&format!("hooks.{event}"))),
        },
        Some(_) => return Err(bad("hooks")),
    }
    record_hook(record, previous, hook);
    Ok(Action::Added)
}

fn record_hook(record: &mut Record, previous: Option<usize>, hook: &Hook) {
    match previous {
        Some(i) => record.hooks[i] = hook.clone(),
        None => record.hooks.push(hook.clone()),
    }
}

/// Removes the group install added for `hook` from `doc`, if it is there unchanged; whether it did. An event, and
/// `hooks` itself, left empty go too when install created them.
pub fn remove_hook(doc: &mut Doc, hook: &Hook, record: &Record) -> bool {
    let path = ["hooks", hook.event.as_str()];
    let Some(groups) = doc.elements(&path) else {
        return false;
    };
    let ours = hook_group(&hook.command);
    let Some(i) = groups.iter().rposition(|g| *g == ours) else {
        return false;
    };
    doc.remove_at(&path, i);
    if groups.len() == 1 && record.was_created(&format!("hooks.{}", hook.event)) {
        doc.remove(&["hooks"], &hook.event);
    }
    if doc.len(&["hooks"]) == Some(0) && record.was_created("hooks") {
        doc.remove(&[], "hooks");
    }
    true
}

/// Writes `bytes` to a temporary file beside `path` with `mode`, then renames it over `path`, so a reader sees
/// the old file or the new one, never half of one.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("{}: {}", path.display(), io_message(&e)))
    })
}

/// The file's bytes, or `None` when it does not exist.
fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("{}: {}", path.display(), io_message(&e)))),
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(Error::io(format!("{}: {}", path.display(), io_message(&e))))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: &str, event: &str, command: &str) -> Hook {
        Hook {
            id: id.into(),
            event: event.into(),
            command: command.into(),
        }
    }

    fn doc(s: &str) -> Doc {
        Doc::parse(s).unwrap()
    }

    #[test]
    fn server_added_in_place_and_removed_exactly() {
        let before = "{\n  \"zeta\": 1,\n  \"mcpServers\": {\n    \"other\": {\"command\": \"x\"}\n  },\n  \"alpha\": [1, 2]\n}";
        let mut d = doc(before);
        let mut rec = Record::default();
        let ours = server_entry("/bin/cm-mcp", &[]);
        assert_eq!(
            put_server(&mut d, &ours, &mut rec, "f").unwrap(),
            Action::Added
        );
        assert_eq!(d.get(&["mcpServers", "claudemesh"]).unwrap(), ours);
        assert_eq!(
            put_server(&mut d, &ours, &mut rec, "f").unwrap(),
            Action::Unchanged
        );
        assert!(rec.created.is_empty());
        assert_eq!(remove_server(&mut d, &rec), Some(Action::Removed));
        assert_eq!(d.text, before);
        assert_eq!(remove_server(&mut d, &rec), None);
    }

    #[test]
    fn a_server_entry_of_the_users_is_put_back() {
        let before =
            r#"{"mcpServers": {"claudemesh": {"command": "claudemesh", "args": ["mcp"]}}}"#;
        let mut d = doc(before);
        let mut rec = Record::default();
        let ours = server_entry("cm-mcp", &[]);
        assert_eq!(
            put_server(&mut d, &ours, &mut rec, "f").unwrap(),
            Action::Updated
        );
        // A second install (the binary moved) keeps the first entry it found.
        let moved = server_entry("/new/cm-mcp", &[]);
        assert_eq!(
            put_server(&mut d, &moved, &mut rec, "f").unwrap(),
            Action::Updated
        );
        assert_eq!(
            rec.mcp_server_before.as_deref(),
            Some(r#"{"command": "claudemesh", "args": ["mcp"]}"#)
        );
        assert_eq!(remove_server(&mut d, &rec), Some(Action::Restored));
        assert_eq!(d.text, before);
    }

    #[test]
    fn server_container_created_is_removed_when_empty() {
        let mut d = doc("{\"a\": 1}");
        let mut rec = Record::default();
        let ours = server_entry("cm-mcp", &[]);
        put_server(&mut d, &ours, &mut rec, "f").unwrap();
        assert_eq!(rec.created, ["mcpServers"]);
        assert_eq!(remove_server(&mut d, &rec), Some(Action::Removed));
        assert_eq!(d.text, "{\"a\": 1}");
    }

    #[test]
    fn server_bad_container_is_an_error() {
        let mut d = doc(r#"{"mcpServers": []}"#);
        assert!(put_server(&mut d, &json!({}), &mut Record::default(), "f").is_err());
    }

    #[test]
    fn hooks_added_beside_others_and_removed_exactly() {
        let before = r#"{
  "permissions": {"allow": ["Bash(ls)"]},
  "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]}
}"#;
        let mut d = doc(before);
        let mut rec = Record::default();
        let stop = hook("idle", "Stop", "/b/cm-profile --hook status idle");
        let prompt = hook("inbox", "UserPromptSubmit", "/b/cm-inbox --hook");
        assert_eq!(
            put_hook(&mut d, &stop, &mut rec, "f").unwrap(),
            Action::Added
        );
        assert_eq!(
            put_hook(&mut d, &prompt, &mut rec, "f").unwrap(),
            Action::Added
        );
        assert_eq!(
            put_hook(&mut d, &stop, &mut rec, "f").unwrap(),
            Action::Unchanged
        );
        assert_eq!(d.elements(&["hooks", "Stop"]).unwrap().len(), 2);
        assert_eq!(
            d.get(&["hooks", "UserPromptSubmit"]).unwrap(),
            json!([hook_group(&prompt.command)])
        );
        assert_eq!(rec.created, ["hooks.UserPromptSubmit"]);
        assert_eq!(rec.hooks.len(), 2);
        assert!(remove_hook(&mut d, &stop, &rec));
        assert!(remove_hook(&mut d, &prompt, &rec));
        assert_eq!(d.text, before);
    }

    #[test]
    fn a_hook_the_user_already_had_is_not_ours() {
        let before = r#"{"hooks": {"UserPromptSubmit": [{"hooks": [{"type": "command", "command": "cm-inbox --hook"}]}]}}"#;
        let mut d = doc(before);
        let mut rec = Record::default();
        let h = hook("inbox", "UserPromptSubmit", "cm-inbox --hook");
        assert_eq!(
            put_hook(&mut d, &h, &mut rec, "f").unwrap(),
            Action::Unchanged
        );
        assert!(rec.hooks.is_empty());
        assert_eq!(d.text, before);
    }

    #[test]
    fn hook_moved_binary_is_updated_in_place() {
        let mut d = doc("{}");
        let mut rec = Record::default();
        put_hook(
            &mut d,
            &hook("idle", "Stop", "/old/cm-profile --hook status idle"),
            &mut rec,
            "f",
        )
        .unwrap();
        let new = hook("idle", "Stop", "/new/cm-profile --hook status idle");
        assert_eq!(
            put_hook(&mut d, &new, &mut rec, "f").unwrap(),
            Action::Updated
        );
        assert_eq!(
            d.get(&["hooks", "Stop"]).unwrap(),
            json!([hook_group(&new.command)])
        );
        assert_eq!(rec.hooks, std::slice::from_ref(&new));
        assert!(remove_hook(&mut d, &new, &rec));
        assert_eq!(d.text, "{}");
    }

    #[test]
    fn hook_bad_shape_is_an_error() {
        let mut d = doc(r#"{"hooks": {"Stop": {"oops": 1}}}"#);
        assert!(
            put_hook(
                &mut d,
                &hook("idle", "Stop", "x"),
                &mut Record::default(),
                "f"
            )
            .is_err()
        );
        let mut d = doc(r#"{"hooks": "no"}"#);
        assert!(
            put_hook(
                &mut d,
                &hook("idle", "Stop", "x"),
                &mut Record::default(),
                "f"
            )
            .is_err()
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(
            sh_quote("/usr/local/bin/cm-inbox"),
            "/usr/local/bin/cm-inbox"
        );
        assert_eq!(sh_quote("/home/a b/cm-inbox"), "'/home/a b/cm-inbox'");
        assert_eq!(sh_quote("/x/it's"), r"'/x/it'\''s'");
    }

    #[test]
    fn layouts() {
        let l = Layout::new(Path::new("/h"), Path::new("/h/.claudemesh"));
        assert_eq!(l.claude_json, Path::new("/h/.claude.json"));
        assert_eq!(l.settings, Path::new("/h/.claude/settings.json"));
        assert_eq!(l.record, Path::new("/h/.claudemesh/installed.json"));
        let c = Layout::at(
            Path::new("/h"),
            Some(Path::new("/c")),
            Path::new("/h/.claudemesh"),
        );
        assert_eq!(c.claude_json, Path::new("/c/.claude.json"));
        assert_eq!(c.settings, Path::new("/c/settings.json"));
        assert_eq!(c.skill_file(), Path::new("/c/skills/claudemesh/SKILL.md"));
        assert_ne!(c.record, l.record);
    }

    #[test]
    fn human_lines() {
        let l = Layout::new(Path::new("/h"), Path::new("/h/.claudemesh"));
        let mut i = Item::new("hooks.Stop", Action::WouldAdd, &l.settings);
        i.command = Some("cm-profile --hook status idle".into());
        assert_eq!(
            i.human(&l),
            "would add hook Stop: cm-profile --hook status idle"
        );
        let i = Item::new("skill", Action::WouldAdd, &l.skill_file());
        assert_eq!(
            i.human(&l),
            "would write ~/.claude/skills/claudemesh/SKILL.md"
        );
        let i = Item::new("mcpServers.claudemesh", Action::WouldAdd, &l.claude_json);
        assert_eq!(
            i.human(&l),
            "would add mcpServers.claudemesh in ~/.claude.json"
        );
        let i = Item::new("mcpServers.claudemesh", Action::Restored, &l.claude_json);
        assert_eq!(
            i.human(&l),
            "restored mcpServers.claudemesh in ~/.claude.json"
        );
    }
}
