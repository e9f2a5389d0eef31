//! Health checks for this machine's claudemesh setup: the config directory and its file modes, the keys, each
//! mesh's broker (reachable, how fast, accepts our hello, how far its clock is from ours) and the registration with
//! Claude Code. Nothing here changes anything; every check says what it found and, when something is wrong, what
//! to run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::client::{Conn, ConnOpts, rest};
use crate::config::{Config, Identity, MeshEntry, OwnerKeys, Paths, read_json_opt};
use crate::error::{Code, Result};
use crate::time::now_ms;

/// The clock skew beyond which the clock check fails; the broker refuses signatures beyond 60 s.
pub const MAX_SKEW_MS: i64 = 30_000;

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: `config directory`, `mesh dev broker`.
    pub name: String,
    /// Passed. A warning passes and carries a `fix`.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to run or change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: true,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok: false,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        ok: true,
        ..fail(name, detail, fix)
    }
}

/// Runs every check, handing each to `report` as soon as it is done; returns how many failed. `mesh` limits the
/// mesh checks to that one mesh.
pub fn run(mesh: Option<&str>, report: &mut dyn FnMut(&Check) -> Result<()>) -> Result<usize> {
    let mut failed = 0;
    let mut emit = |c: Check| {
        failed += usize::from(!c.ok);
        report(&c)
    };
    let dir = Paths::locate()?;
    let dir_ok = check_dir(&dir);
    let have_dir = dir.is_dir();
    emit(dir_ok)?;
    if have_dir {
        let paths = Paths { dir };
        for file in [
            paths.config(),
            paths.identity(),
            paths.owners(),
            paths.brokers(),
        ] {
            if let Some(c) = check_mode(&file) {
                emit(c)?;
            }
        }
        let config = match Config::load(&paths) {
            Ok(c) => {
                let n = c.meshes.len();
                emit(pass(
                    "config.json",
                    format!("{n} mesh{} joined", if n == 1 { "" } else { "es" }),
                ))?;
                Some(c)
            }
            Err(e) => {
                emit(fail(
                    "config.json",
                    e.msg,
                    "fix or move the file; the tools leave it untouched",
                ))?;
                None
            }
        };
        emit(check_identity(&paths))?;
        if paths.owners().exists() {
            emit(check_owners(&paths))?;
        }
        if let Some(config) = config {
            let meshes: Vec<&MeshEntry> = match mesh {
                Some(sel) => match config.mesh(Some(sel)) {
                    Ok(m) => vec![m],
                    Err(e) => {
                        emit(fail(
                            format!("mesh {sel}"),
                            e.msg,
                            "see the meshes joined here: cm list",
                        ))?;
                        Vec::new()
                    }
                },
                None => config.meshes.iter().collect(),
            };
            for m in meshes {
                for c in check_mesh(m) {
                    emit(c)?;
                }
            }
        }
    }
    emit(check_mcp(crate::install::claude_json()))?;
    Ok(failed)
}

fn mode_of(p: &Path) -> Option<u32> {
    std::fs::metadata(p)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

fn check_dir(dir: &Path) -> Check {
    let name = "config directory";
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Err(_) => fail(
            name,
            format!("{shown} does not exist"),
            "cm up (or cm register) makes it",
        ),
        Ok(m) if !m.is_dir() => fail(
            name,
            format!("{shown} is not a directory"),
            format!("move {shown} away"),
        ),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => fail(
            name,
            format!(
                "{shown} is mode {:04o}: others can read it",
                m.permissions().mode() & 0o777
            ),
            format!("chmod 700 {shown}"),
        ),
        Ok(m) => pass(
            name,
            format!("{shown}, mode {:04o}", m.permissions().mode() & 0o777),
        ),
    }
}

/// `None` when the file is not there.
fn check_mode(file: &Path) -> Option<Check> {
    let mode = mode_of(file)?;
    let base = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = format!("{base} mode");
    Some(if mode & 0o077 != 0 {
        fail(
            name,
            format!("{mode:04o}: others can read the keys in it"),
            format!("chmod 600 {}", file.display()),
        )
    } else {
        pass(name, format!("{mode:04o}"))
    })
}

fn check_identity(paths: &Paths) -> Check {
    let name = "identity";
    match Identity::load(paths) {
        Ok(None) => warn(name, "none yet", "cm register"),
        Ok(Some(id)) => match id.keypair() {
            Ok(_) => pass(
                name,
                match &id.display_name {
                    Some(n) => format!("{}… ({n})", short(&id.pubkey)),
                    None => format!("{}…", short(&id.pubkey)),
                },
            ),
            Err(e) => fail(
                name,
                e.msg,
                "cm register --force makes a new one (meshes joined with the old key must be joined again)",
            ),
        },
        Err(e) => fail(name, e.msg, "fix or move identity.json"),
    }
}

fn check_owners(paths: &Paths) -> Check {
    let name = "owner keys";
    let owners = match OwnerKeys::load(paths) {
        Ok(o) => o,
        Err(e) => return fail(name, e.msg, "fix owners.json; without it nobody can invite"),
    };
    let bad: Vec<String> = owners
        .meshes
        .keys()
        .filter_map(|id| owners.get(id).err().map(|e| e.msg))
        .collect();
    match bad.first() {
        Some(e) => fail(name, e.clone(), "restore owners.json from a backup"),
        None => pass(name, format!("{} valid", owners.meshes.len())),
    }
}

fn short(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

/// The checks of one mesh: its keys, then its broker: reachable, hello accepted, clock.
fn check_mesh(m: &MeshEntry) -> Vec<Check> {
    let slug = &m.slug;
    let mut out = Vec::new();
    match m.keypair() {
        Ok(_) => out.push(pass(
            format!("mesh {slug} keys"),
            format!("member key {}…", short(&m.pubkey)),
        )),
        Err(e) => {
            out.push(fail(
                format!("mesh {slug} keys"),
                e.msg,
                format!("leave and join again: cm leave {slug}, then cm join LINK"),
            ));
            return out;
        }
    }
    // Every broker of the mesh is asked: a dead one of several is worth a warning even while the others serve.
    let brokers = m.brokers();
    let mut date = None;
    let mut answered = false;
    let mut down = Vec::new();
    for url in &brokers {
        match rest::health_dated(url) {
            Ok((v, took, d)) => {
                let version = v["version"].as_str().unwrap_or("?");
                out.push(pass(
                    format!("mesh {slug} broker"),
                    format!(
                        "{url} answered in {} ms (version {version})",
                        took.as_millis()
                    ),
                ));
                if !answered {
                    date = d;
                }
                answered = true;
            }
            Err(e) => down.push(e.msg),
        }
    }
    for msg in down {
        if answered {
            out.push(warn(
                format!("mesh {slug} broker"),
                msg,
                "the tools use the mesh's other brokers meanwhile; start this one or drop it with cm-mesh brokers",
            ));
        } else {
            out.push(fail(
                format!("mesh {slug} broker"),
                msg,
                "start the broker (cm up for one on this machine) or check the mesh's broker URL",
            ));
        }
    }
    if !answered {
        return out;
    }
    let t0 = now_ms();
    let server_time = match Conn::open(m, &ConnOpts::default()) {
        Ok(conn) => {
            let t1 = now_ms();
            let ack = conn.hello_ack();
            let who = match (&ack.member_role, ack.member_display_name.as_str()) {
                (Some(r), n) if !n.is_empty() => format!("as {n} ({r})"),
                (_, n) if !n.is_empty() => format!("as {n}"),
                _ => "accepted".to_string(),
            };
            // Which broker it is decides what the tools can do there (docs/protocol.md §10).
            let kind = if conn.features().original() {
                "; an original claudemesh broker: no member list, inbox fetch, profile, files or client-made \
                 topic keys"
            } else {
                ""
            };
            out.push(pass(
                format!("mesh {slug} auth"),
                format!("hello {who}{kind}"),
            ));
            let st = ack.server_time.map(|s| s - (t0 + t1) / 2);
            conn.close();
            st
        }
        Err(e) => {
            let fix = match e.code {
                Code::Auth => format!(
                    "the broker refused this member key: check the clock, or join again (cm leave {slug}, cm join LINK)"
                ),
                _ => "check the broker's log".to_string(),
            };
            out.push(fail(format!("mesh {slug} auth"), e.msg, fix));
            None
        }
    };
    let skew = server_time.or_else(|| date.map(|d| d - now_ms()));
    let name = format!("mesh {slug} clock");
    out.push(match skew {
        None => pass(name, "the broker did not say its time"),
        Some(s) if s.abs() > MAX_SKEW_MS => fail(
            name,
            format!("{} the broker's", fmt_skew(s)),
            "set the clock right (timedatectl set-ntp true); the broker refuses hellos more than 60 s off",
        ),
        Some(s) => pass(name, format!("{} the broker's", fmt_skew(s))),
    });
    out
}

/// `1.2 s behind`, `3.0 s ahead of`, `within 1 s of`: where our clock is, given the broker's minus ours.
fn fmt_skew(broker_minus_ours: i64) -> String {
    if broker_minus_ours.abs() < 1000 {
        return "within 1 s of".into();
    }
    let secs = broker_minus_ours.unsigned_abs() as f64 / 1000.0;
    let way = if broker_minus_ours > 0 {
        "behind"
    } else {
        "ahead of"
    };
    format!("{secs:.1} s {way}")
}

/// Whether Claude Code has the claudemesh MCP server registered in the `.claude.json` it reads (in
/// `$CLAUDE_CONFIG_DIR` when set); a missing registration is a warning: the tools work without it.
fn check_mcp(file: Result<PathBuf>) -> Check {
    let name = "Claude Code MCP";
    let file = match file {
        Ok(f) => f,
        Err(e) => return warn(name, e.msg, "cm install"),
    };
    match read_json_opt::<Value>(&file) {
        Ok(Some(v)) if v["mcpServers"]["claudemesh"].is_object() => {
            pass(name, format!("registered in {}", file.display()))
        }
        Ok(_) => warn(
            name,
            format!(
                "not registered in {}: Claude Code will not receive messages as they arrive",
                file.display()
            ),
            "cm install",
        ),
        Err(e) => fail(
            name,
            e.msg,
            format!("{} does not parse; fix it first", file.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skews() {
        assert_eq!(fmt_skew(1200), "1.2 s behind");
        assert_eq!(fmt_skew(-31_000), "31.0 s ahead of");
        assert_eq!(fmt_skew(-999), "within 1 s of");
    }

    #[test]
    fn mcp_registration() {
        let dir = std::env::temp_dir().join(format!(
            "cm-doctor-{}",
            crate::crypto::hex::encode(&crate::crypto::random_bytes::<6>())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let c = check_mcp(Ok(dir.join(".claude.json")));
        assert!(c.ok && c.fix.as_deref() == Some("cm install"), "{c:?}");
        std::fs::write(
            dir.join(".claude.json"),
            r#"{"mcpServers":{"claudemesh":{"command":"cm-mcp"}}}"#,
        )
        .unwrap();
        let c = check_mcp(Ok(dir.join(".claude.json")));
        assert!(c.ok && c.fix.is_none(), "{c:?}");
        std::fs::write(dir.join(".claude.json"), "{").unwrap();
        assert!(!check_mcp(Ok(dir.join(".claude.json"))).ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
