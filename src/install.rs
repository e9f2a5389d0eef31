//! `cm-install` and `cm-uninstall`: `cm-mcp`, the prompt hooks and the skill registered in Claude Code's own
//! files, and taken out again exactly.
//!
//! Claude Code keeps its user configuration in `~/.claude.json` (MCP servers, but also projects, account data and
//! much else) and `~/.claude/settings.json` (hooks, permissions). We edit both in place and keep every other key and
//! its order. Install records exactly what it added in `installed.json` in the config directory, and uninstall
//! removes only entries that match a record (or what install would add now) exactly, so a user's edits survive.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{Context, Error, Result, io_message};
use crate::{config, crypto};

/// The skill that teaches Claude the toolkit, installed as `~/.claude/skills/claudemesh/SKILL.md`.
pub const SKILL: &str = include_str!("../skills/claudemesh/SKILL.md");

/// The name of our MCP server in `mcpServers`, and so the `source` of channel tags.
pub const SERVER: &str = "claudemesh";

/// Where Claude Code's files and our install record are.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The user's home directory.
    pub home: PathBuf,
    /// `~/.claude.json`.
    pub claude_json: PathBuf,
    /// `~/.claude/settings.json`.
    pub settings: PathBuf,
    /// `~/.claude/skills/claudemesh`.
    pub skill_dir: PathBuf,
    /// `~/.claude/backups`.
    pub backups: PathBuf,
    /// `<config dir>/installed.json`.
    pub record: PathBuf,
}

impl Layout {
    /// The layout under `home`, with the install record in `config_dir`.
    pub fn new(home: &Path, config_dir: &Path) -> Layout {
        let dot = home.join(".claude");
        Layout {
            home: home.to_path_buf(),
            claude_json: home.join(".claude.json"),
            settings: dot.join("settings.json"),
            skill_dir: dot.join("skills").join(SERVER),
            backups: dot.join("backups"),
            record: config_dir.join("installed.json"),
        }
    }

    /// `~/.claude/skills/claudemesh/SKILL.md`.
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
            server: json!({"command": mcp.program, "args": mcp.args}),
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

/// `s` quoted for `sh -c` when it needs it (hook commands are run by a shell).
pub fn sh_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What install added, kept in `installed.json` so uninstall removes exactly that.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The `mcpServers.claudemesh` value we wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_server: Option<Value>,
    /// The hook entries we added.
    #[serde(default)]
    pub hooks: Vec<Hook>,
    /// SHA-256 of the SKILL.md we wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill_sha256: Option<String>,
    /// Files and containers that did not exist before we added to them (`.claude.json`, `mcpServers`,
    /// `settings.json`, `hooks`, `hooks.Stop`): uninstall removes them again when they are left empty.
    #[serde(default)]
    pub created: Vec<String>,
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
}

/// What happened, or would happen, to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Added,
    Updated,
    Unchanged,
    Removed,
    WouldAdd,
    WouldUpdate,
    WouldRemove,
}

impl Action {
    /// The snake_case name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Removed => "removed",
            Action::WouldAdd => "would_add",
            Action::WouldUpdate => "would_update",
            Action::WouldRemove => "would_remove",
        }
    }

    fn dry(self) -> Action {
        match self {
            Action::Added => Action::WouldAdd,
            Action::Updated => Action::WouldUpdate,
            Action::Removed => Action::WouldRemove,
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
    /// `mcpServers.claudemesh`, `hooks.Stop`, `skill`, `installed.json` or `backup`.
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
            (None, "mcpServers.claudemesh") => self.item.clone(),
            (None, _) => layout.tilde(&self.path),
        };
        let file = self.command.is_none() && self.item != "mcpServers.claudemesh";
        let verb = match self.action {
            Action::Added | Action::Updated if self.item == "backup" => {
                "backed up ~/.claude.json to"
            }
            Action::Added | Action::Updated if file => "wrote",
            Action::WouldAdd | Action::WouldUpdate if file => "would write",
            Action::Added => "added",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Removed => "removed",
            Action::WouldAdd => "would add",
            Action::WouldUpdate => "would update",
            Action::WouldRemove => "would remove",
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

/// Adds the MCP server, the hooks and the skill. Changes nothing that is already in place; backs up
/// `~/.claude.json` before changing it; with `dry_run`, only reports.
pub fn install(layout: &Layout, wanted: &Wanted, opts: InstallOpts) -> Result<Vec<Item>> {
    let old_record = Record::load(&layout.record)?;
    let mut record = old_record.clone().unwrap_or_default();
    let mut items = Vec::new();

    let mut claude = JsonFile::read(&layout.claude_json, layout)?;
    if claude.doc.is_none() {
        record.created(".claude.json");
    }
    let action = put_server(claude.obj(), &wanted.server, &mut record)?;
    items.push(Item::new(
        "mcpServers.claudemesh",
        action,
        &layout.claude_json,
    ));

    let mut settings = None;
    if opts.hooks {
        let file = settings.insert(JsonFile::read(&layout.settings, layout)?);
        if file.doc.is_none() {
            record.created("settings.json");
        }
        for hook in &wanted.hooks {
            let action = put_hook(file.obj(), hook, &mut record)?;
            let mut item = Item::new(format!("hooks.{}", hook.event), action, &layout.settings);
            item.command = Some(hook.command.clone());
            items.push(item);
        }
    }

    let skill_file = layout.skill_file();
    if opts.skill {
        let action = match read_opt(&skill_file)? {
            Some(b) if b == wanted.skill.as_bytes() => Action::Unchanged,
            Some(_) => Action::Updated,
            None => Action::Added,
        };
        record.skill_sha256 = Some(crypto::sha256_hex(wanted.skill.as_bytes()));
        items.push(Item::new("skill", action, &skill_file));
    }

    if opts.dry_run {
        for i in &mut items {
            i.action = i.action.dry();
        }
        return Ok(items);
    }

    let changed = |name: &str| {
        items
            .iter()
            .any(|i| i.action.changes() && i.item.starts_with(name))
    };
    let (server, hooks, skill) = (changed("mcpServers"), changed("hooks."), changed("skill"));
    if server {
        if let Some(original) = &claude.original {
            let backup = backup(layout, original, "pre-claudemesh")?;
            items.push(Item::new("backup", Action::Added, &backup));
        }
        claude.write()?;
    }
    if let Some(settings) = settings.as_mut().filter(|_| hooks) {
        settings.write()?;
    }
    if skill {
        fs::create_dir_all(&layout.skill_dir).context(layout.tilde(&layout.skill_dir))?;
        write_atomic(&skill_file, wanted.skill.as_bytes(), 0o644)?;
    }
    if old_record.as_ref() != Some(&record) {
        config::write_json_atomic(&layout.record, &record)?;
    }
    Ok(items)
}

/// Removes what install added: entries that match the install record, or what install would add now, exactly.
/// Containers left empty go only if install created them. Backs up `~/.claude.json` before changing it.
pub fn uninstall(layout: &Layout, wanted: &Wanted, dry_run: bool) -> Result<Vec<Item>> {
    let record = Record::load(&layout.record)?;
    let rec = record.clone().unwrap_or_default();
    let mut items = Vec::new();

    let mut claude = JsonFile::read(&layout.claude_json, layout)?;
    if claude.doc.is_some() {
        let ours: Vec<&Value> = rec.mcp_server.iter().chain([&wanted.server]).collect();
        if remove_server(claude.obj(), &ours, &rec) {
            items.push(Item::new(
                "mcpServers.claudemesh",
                Action::Removed,
                &layout.claude_json,
            ));
        }
    }

    let mut settings = JsonFile::read(&layout.settings, layout)?;
    if settings.doc.is_some() {
        let mut hooks: Vec<&Hook> = rec.hooks.iter().collect();
        hooks.extend(wanted.hooks.iter().filter(|h| !rec.hooks.contains(h)));
        for hook in hooks {
            if remove_hook(settings.obj(), hook, &rec) {
                let mut item = Item::new(
                    format!("hooks.{}", hook.event),
                    Action::Removed,
                    &layout.settings,
                );
                item.command = Some(hook.command.clone());
                items.push(item);
            }
        }
    }

    let skill_file = layout.skill_file();
    if let Some(bytes) = read_opt(&skill_file)? {
        let sha = crypto::sha256_hex(&bytes);
        if bytes == wanted.skill.as_bytes() || rec.skill_sha256.as_deref() == Some(sha.as_str()) {
            items.push(Item::new("skill", Action::Removed, &skill_file));
        }
    }
    if record.is_some() {
        items.push(Item::new("installed.json", Action::Removed, &layout.record));
    }

    if dry_run {
        for i in &mut items {
            i.action = i.action.dry();
        }
        return Ok(items);
    }

    let changed = |name: &str| items.iter().any(|i| i.item.starts_with(name));
    let (server, hooks, skill) = (changed("mcpServers"), changed("hooks."), changed("skill"));
    if server {
        if let Some(original) = &claude.original {
            let backup = backup(layout, original, "pre-claudemesh-uninstall")?;
            items.push(Item::new("backup", Action::Added, &backup));
        }
        claude.write_or_remove(rec.was_created(".claude.json"))?;
    }
    if hooks {
        settings.write_or_remove(rec.was_created("settings.json"))?;
    }
    if skill {
        remove_file(&skill_file)?;
        // Only an empty directory goes: anything else in it is the user's.
        let _ = fs::remove_dir(&layout.skill_dir);
    }
    if record.is_some() {
        remove_file(&layout.record)?;
    }
    Ok(items)
}

/// Sets `mcpServers.claudemesh` in `doc`.
pub fn put_server(
    doc: &mut Map<String, Value>,
    server: &Value,
    record: &mut Record,
) -> Result<Action> {
    if !doc.contains_key("mcpServers") {
        doc.insert("mcpServers".into(), json!({}));
        record.created("mcpServers");
    }
    let Some(servers) = doc.get_mut("mcpServers").and_then(Value::as_object_mut) else {
        return Err(Error::generic(
            "mcpServers in ~/.claude.json is not an object; nothing was changed",
        ));
    };
    record.mcp_server = Some(server.clone());
    Ok(match servers.get_mut(SERVER) {
        Some(v) if v == server => Action::Unchanged,
        Some(v) => {
            *v = server.clone();
            Action::Updated
        }
        None => {
            servers.insert(SERVER.into(), server.clone());
            Action::Added
        }
    })
}

/// Removes `mcpServers.claudemesh` from `doc` when it equals one of `ours`; whether it did.
pub fn remove_server(doc: &mut Map<String, Value>, ours: &[&Value], record: &Record) -> bool {
    let Some(servers) = doc.get_mut("mcpServers").and_then(Value::as_object_mut) else {
        return false;
    };
    if !servers.get(SERVER).is_some_and(|v| ours.contains(&v)) {
        return false;
    }
    servers.shift_remove(SERVER);
    if servers.is_empty() && record.was_created("mcpServers") {
        doc.shift_remove("mcpServers");
    }
    true
}

/// The matcher group we add for a hook command: `{"hooks":[{"type":"command","command":…}]}`.
pub fn hook_group(command: &str) -> Value {
    json!({"hooks": [{"type": "command", "command": command}]})
}

/// Adds `hook` to `doc.hooks[event]` unless a group there already runs its command. When an earlier install
/// added the same hook with another command (the binaries moved), that entry is replaced.
pub fn put_hook(doc: &mut Map<String, Value>, hook: &Hook, record: &mut Record) -> Result<Action> {
    let bad = |what: &str| {
        Error::generic(format!(
            "{what} in ~/.claude/settings.json is not as Claude Code writes it; nothing was changed"
        ))
    };
    if !doc.contains_key("hooks") {
        doc.insert("hooks".into(), json!({}));
        record.created("hooks");
    }
    let events = doc
        .get_mut("hooks")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| bad("hooks"))?;
    if !events.contains_key(&hook.event) {
        events.insert(hook.event.clone(), json!([]));
        record.created(&format!("hooks.{}", hook.event));
    }
    let groups = events
        .get_mut(&hook.event)
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad(&format!("hooks.{}", hook.event)))?;
    let previous = record
        .hooks
        .iter()
        .position(|h| h.id == hook.id && h.event == hook.event);
    let runs = |g: &Value, cmd: &str| {
        g.get("hooks").and_then(Value::as_array).is_some_and(|hs| {
            hs.iter()
                .any(|h| h.get("command").and_then(Value::as_str) == Some(cmd))
        })
    };
    let action = if groups.iter().any(|g| runs(g, &hook.command)) {
        Action::Unchanged
    } else {
        let old = previous.map(|i| hook_group(&record.hooks[i].command));
        match old.and_then(|old| groups.iter().position(|g| *g == old)) {
            Some(i) => {
                groups[i] = hook_group(&hook.command);
                Action::Updated
            }
            None => {
                groups.push(hook_group(&hook.command));
                Action::Added
            }
        }
    };
    match previous {
        Some(i) => record.hooks[i] = hook.clone(),
        None => record.hooks.push(hook.clone()),
    }
    Ok(action)
}

/// Removes the group install added for `hook` from `doc`, if it is there unchanged; whether it did. An event, and
/// `hooks` itself, left empty go too when install created them.
pub fn remove_hook(doc: &mut Map<String, Value>, hook: &Hook, record: &Record) -> bool {
    let Some(events) = doc.get_mut("hooks").and_then(Value::as_object_mut) else {
        return false;
    };
    let Some(groups) = events.get_mut(&hook.event).and_then(Value::as_array_mut) else {
        return false;
    };
    let ours = hook_group(&hook.command);
    let Some(i) = groups.iter().position(|g| *g == ours) else {
        return false;
    };
    groups.remove(i);
    if groups.is_empty() && record.was_created(&format!("hooks.{}", hook.event)) {
        events.shift_remove(&hook.event);
    }
    if events.is_empty() && record.was_created("hooks") {
        doc.shift_remove("hooks");
    }
    true
}

/// A JSON file of Claude Code's: its bytes as read, and its parsed object (`None` if it did not exist).
struct JsonFile {
    path: PathBuf,
    shown: String,
    original: Option<Vec<u8>>,
    doc: Option<Map<String, Value>>,
}

impl JsonFile {
    fn read(path: &Path, layout: &Layout) -> Result<JsonFile> {
        // Write through a symlink (dotfile managers link these files) instead of replacing it.
        let shown = layout.tilde(path);
        let path = match fs::symlink_metadata(path) {
            Ok(m) if m.is_symlink() => {
                fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
            }
            _ => path.to_path_buf(),
        };
        let original = read_opt(&path)?;
        let doc = match &original {
            None => None,
            Some(b) => match serde_json::from_slice::<Value>(b) {
                Ok(Value::Object(m)) => Some(m),
                Ok(_) => {
                    return Err(Error::generic(format!(
                        "{shown} is not a JSON object; nothing was changed"
                    )));
                }
                Err(e) => {
                    return Err(Error::generic(format!(
                        "{shown} is not valid JSON ({e}); nothing was changed"
                    )));
                }
            },
        };
        Ok(JsonFile {
            path,
            shown,
            original,
            doc,
        })
    }

    fn obj(&mut self) -> &mut Map<String, Value> {
        self.doc.get_or_insert_with(Map::new)
    }

    fn write(&mut self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).context(&self.shown)?;
        }
        let doc = self.doc.get_or_insert_with(Map::new);
        config::write_json_atomic(&self.path, doc)
    }

    /// Writes the file, or removes it when install created it and nothing is left in it.
    fn write_or_remove(&mut self, created: bool) -> Result<()> {
        if created && self.obj().is_empty() {
            return remove_file(&self.path);
        }
        self.write()
    }
}

/// Copies `original` (the bytes of `~/.claude.json`) to `~/.claude/backups/.claude.json.<tag>.<unix ms>`.
fn backup(layout: &Layout, original: &[u8], tag: &str) -> Result<PathBuf> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    fs::create_dir_all(&layout.backups).context(layout.tilde(&layout.backups))?;
    let path = layout.backups.join(format!(".claude.json.{tag}.{ms}"));
    write_atomic(&path, original, 0o600).context(layout.tilde(&path))?;
    Ok(path)
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
        Error::from(e)
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

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn hook(id: &str, event: &str, command: &str) -> Hook {
        Hook {
            id: id.into(),
            event: event.into(),
            command: command.into(),
        }
    }

    fn keys(m: &Map<String, Value>) -> Vec<&str> {
        m.keys().map(String::as_str).collect()
    }

    #[test]
    fn server_added_in_place_and_removed_exactly() {
        let before =
            obj(json!({"zeta": 1, "mcpServers": {"other": {"command": "x"}}, "alpha": [1, 2]}));
        let mut doc = before.clone();
        let mut rec = Record::default();
        let ours = json!({"command": "/bin/cm-mcp", "args": []});
        assert_eq!(
            put_server(&mut doc, &ours, &mut rec).unwrap(),
            Action::Added
        );
        assert_eq!(keys(&doc), ["zeta", "mcpServers", "alpha"]);
        assert_eq!(doc["mcpServers"]["claudemesh"], ours);
        assert_eq!(
            put_server(&mut doc, &ours, &mut rec).unwrap(),
            Action::Unchanged
        );
        assert!(rec.created.is_empty());
        assert!(remove_server(&mut doc, &[&ours], &rec));
        assert_eq!(doc, before);
        assert!(!remove_server(&mut doc, &[&ours], &rec));
    }

    #[test]
    fn server_not_ours_is_left_alone() {
        let mut doc =
            obj(json!({"mcpServers": {"claudemesh": {"command": "claudemesh", "args": ["mcp"]}}}));
        let ours = json!({"command": "cm-mcp", "args": []});
        assert!(!remove_server(&mut doc, &[&ours], &Record::default()));
        let mut rec = Record::default();
        assert_eq!(
            put_server(&mut doc, &ours, &mut rec).unwrap(),
            Action::Updated
        );
        assert_eq!(doc["mcpServers"]["claudemesh"], ours);
    }

    #[test]
    fn server_container_created_is_removed_when_empty() {
        let mut doc = obj(json!({"a": 1}));
        let mut rec = Record::default();
        let ours = json!({"command": "cm-mcp", "args": []});
        put_server(&mut doc, &ours, &mut rec).unwrap();
        assert_eq!(rec.created, ["mcpServers"]);
        assert!(remove_server(&mut doc, &[&ours], &rec));
        assert_eq!(doc, obj(json!({"a": 1})));
    }

    #[test]
    fn server_bad_container_is_an_error() {
        let mut doc = obj(json!({"mcpServers": []}));
        assert!(put_server(&mut doc, &json!({}), &mut Record::default()).is_err());
    }

    #[test]
    fn hooks_added_beside_others_and_removed_exactly() {
        let before = obj(json!({
            "permissions": {"allow": ["Bash(ls)"]},
            "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]}
        }));
        let mut doc = before.clone();
        let mut rec = Record::default();
        let stop = hook("idle", "Stop", "/b/cm-profile --hook status idle");
        let prompt = hook("inbox", "UserPromptSubmit", "/b/cm-inbox --hook");
        assert_eq!(put_hook(&mut doc, &stop, &mut rec).unwrap(), Action::Added);
        assert_eq!(
            put_hook(&mut doc, &prompt, &mut rec).unwrap(),
            Action::Added
        );
        assert_eq!(
            put_hook(&mut doc, &stop, &mut rec).unwrap(),
            Action::Unchanged
        );
        assert_eq!(doc["hooks"]["Stop"].as_array().unwrap().len(), 2);
        assert_eq!(
            doc["hooks"]["UserPromptSubmit"][0],
            hook_group(&prompt.command)
        );
        assert_eq!(rec.created, ["hooks.UserPromptSubmit"]);
        assert_eq!(rec.hooks.len(), 2);
        assert!(remove_hook(&mut doc, &stop, &rec));
        assert!(remove_hook(&mut doc, &prompt, &rec));
        assert_eq!(doc, before);
        assert_eq!(keys(&doc), ["permissions", "hooks"]);
    }

    #[test]
    fn hook_changed_by_the_user_is_not_ours() {
        let mut doc = obj(json!({"hooks": {"Stop": [
            {"hooks": [{"type": "command", "command": "cm-profile --hook status idle", "timeout": 5}]}
        ]}}));
        let h = hook("idle", "Stop", "cm-profile --hook status idle");
        assert!(!remove_hook(&mut doc, &h, &Record::default()));
        // Install sees its command already there and leaves it.
        assert_eq!(
            put_hook(&mut doc, &h, &mut Record::default()).unwrap(),
            Action::Unchanged
        );
    }

    #[test]
    fn hook_moved_binary_is_updated_in_place() {
        let mut doc = obj(json!({}));
        let mut rec = Record::default();
        put_hook(
            &mut doc,
            &hook("idle", "Stop", "/old/cm-profile --hook status idle"),
            &mut rec,
        )
        .unwrap();
        let new = hook("idle", "Stop", "/new/cm-profile --hook status idle");
        assert_eq!(put_hook(&mut doc, &new, &mut rec).unwrap(), Action::Updated);
        assert_eq!(doc["hooks"]["Stop"], json!([hook_group(&new.command)]));
        assert_eq!(rec.hooks, std::slice::from_ref(&new));
        assert!(remove_hook(&mut doc, &new, &rec));
        assert_eq!(doc, obj(json!({})));
    }

    #[test]
    fn hook_bad_shape_is_an_error() {
        let mut doc = obj(json!({"hooks": {"Stop": {"oops": 1}}}));
        assert!(put_hook(&mut doc, &hook("idle", "Stop", "x"), &mut Record::default()).is_err());
        let mut doc = obj(json!({"hooks": "no"}));
        assert!(put_hook(&mut doc, &hook("idle", "Stop", "x"), &mut Record::default()).is_err());
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
        assert_eq!(i.human(&l), "would add mcpServers.claudemesh");
        let i = Item::new("backup", Action::Added, Path::new("/h/.claude/backups/x"));
        assert_eq!(
            i.human(&l),
            "backed up ~/.claude.json to ~/.claude/backups/x"
        );
    }
}
