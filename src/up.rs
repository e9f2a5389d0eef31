//! A broker on this machine for `cm up` / `cm down`: started in the background when none answers, remembered in
//! `up.json` in its data directory (with its log, `broker.log`, beside it), and stopped only if we started it.
//!
//! [`up`] also makes what a fresh machine lacks: an identity, and a first mesh on that broker. Running it again
//! finds everything in place and makes nothing.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::rest;
use crate::config::{
    Brokers, Config, Identity, MeshEntry, Paths, read_json_opt, write_json_atomic,
};
use crate::error::{Error, Result, io_message};
use crate::mesh;
use crate::time::{fmt_rfc3339, now_ms};

/// Where `cm up` listens unless told otherwise: the broker URL every tool defaults to.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7900";

/// How long a starting broker has to say where it listens, and a stopping one to exit.
const DEADLINE: Duration = Duration::from_secs(10);

/// `up.json`: the broker `cm up` started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpState {
    /// The broker's process id.
    pub pid: u32,
    /// Its WebSocket URL, with the port it really got.
    pub url: String,
    /// The `--listen` it was started with.
    pub listen: String,
    /// When, RFC 3339.
    pub started_at: String,
}

/// The broker's data directory: `dir`, else `$XDG_DATA_HOME/claudemesh-broker`, else
/// `~/.local/share/claudemesh-broker` (the broker's own default).
pub fn data_dir(dir: Option<&str>) -> PathBuf {
    match dir {
        Some(d) => PathBuf::from(d),
        None => {
            let env = |k: &str| {
                std::env::var_os(k)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            };
            crate::broker::default_data_dir(env("XDG_DATA_HOME"), env("HOME"))
        }
    }
}

fn up_json(data: &Path) -> PathBuf {
    data.join("up.json")
}

/// The broker's log file in `data`.
pub fn log_file(data: &Path) -> PathBuf {
    data.join("broker.log")
}

/// How the broker came to be running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Started now.
    Started,
    /// Started by an earlier `cm up`, and still answering.
    Running,
    /// Something not started by `cm up` answers at the address; it is used, and `cm down` leaves it alone.
    External,
}

impl Source {
    /// `started`, `running` or `external`, as JSON output names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Started => "started",
            Source::Running => "running",
            Source::External => "external",
        }
    }
}

/// The broker `up` found or started.
#[derive(Debug, Clone)]
pub struct BrokerUp {
    pub url: String,
    /// Its pid, when `cm up` started it.
    pub pid: Option<u32>,
    pub source: Source,
}

/// Whether a broker answers `GET /health` at `url`.
fn answers(url: &str) -> bool {
    rest::health(url).is_ok()
}

/// A URL clients can connect to for a listen address: a wildcard host becomes loopback.
fn client_url(addr: &str) -> String {
    let addr = if let Some(port) = addr.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = addr.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        addr.to_string()
    };
    format!("ws://{addr}/ws")
}

/// Finds or starts the broker: `up.json`'s if it answers, else whatever answers at `listen` (unless its port is
/// 0), else a new `cm-broker --listen LISTEN --data DATA` in the background.
pub fn broker_up(data: &Path, listen: &str) -> Result<BrokerUp> {
    if let Some(st) = read_json_opt::<UpState>(&up_json(data))? {
        if answers(&st.url) {
            return Ok(BrokerUp {
                url: st.url,
                pid: Some(st.pid),
                source: Source::Running,
            });
        }
        // It died without `cm down`: forget it.
        remove(&up_json(data))?;
    }
    if !listen.ends_with(":0") {
        let url = client_url(listen);
        if answers(&url) {
            return Ok(BrokerUp {
                url,
                pid: None,
                source: Source::External,
            });
        }
    }
    let (pid, url) = spawn(data, listen)?;
    let st = UpState {
        pid,
        url: url.clone(),
        listen: listen.to_string(),
        started_at: fmt_rfc3339(now_ms()),
    };
    write_json_atomic(&up_json(data), &st)?;
    Ok(BrokerUp {
        url,
        pid: Some(pid),
        source: Source::Started,
    })
}

/// `cm-broker` beside the running `cm`, else on PATH.
fn broker_binary() -> Result<PathBuf> {
    crate::multicall::find("cm-broker")
        .ok_or_else(|| Error::not_found("cannot find cm-broker beside this program or on PATH"))
}

/// Starts the broker in its own session (so it outlives this process and the terminal), its stderr appended to
/// `broker.log`; waits for its `listening on ws://…` line. Returns its pid and URL.
fn spawn(data: &Path, listen: &str) -> Result<(u32, String)> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data)
        .map_err(|e| Error::from(e).context(format_args!("creating {}", data.display())))?;
    let bin = broker_binary()?;
    let log_path = log_file(data);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| Error::from(e).context(format_args!("opening {}", log_path.display())))?;
    let mut cmd = Command::new(&bin);
    cmd.arg("--listen")
        .arg(listen)
        .arg("--data")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it is all the child does before
    // exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::from(e).context(format_args!("starting {}", bin.display())))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(Error::internal("the broker's stdout was not piped"));
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(DEADLINE).unwrap_or_default();
    let addr = line
        .trim()
        .strip_prefix("listening on ws://")
        .and_then(|s| s.strip_suffix("/ws"));
    match addr {
        Some(addr) => Ok((child.id(), client_url(addr))),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let last = std::fs::read_to_string(&log_path)
                .ok()
                .and_then(|s| {
                    s.lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "no output".into());
            Err(Error::generic(format!(
                "cm-broker did not start on {listen}: {last} (log: {})",
                log_path.display()
            )))
        }
    }
}

fn remove(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!(
            "removing {}: {}",
            p.display(),
            io_message(&e)
        ))),
    }
}

/// Whether `pid` is a live (not zombie) `cm-broker`; `None` where `/proc` cannot tell.
fn is_broker(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self/cmdline").exists() {
        return None;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return Some(false);
    };
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let name = Path::new(std::ffi::OsStr::new(
        std::str::from_utf8(argv0).unwrap_or_default(),
    ))
    .file_name()
    .map(|n| n.to_string_lossy().into_owned())
    .unwrap_or_default();
    Some(name == "cm-broker" && alive(pid))
}

/// Whether `pid` exists and has not exited: a zombie (exited, not yet reaped) counts as gone.
fn alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is delivered.
    if unsafe { libc::kill(p, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces or parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

/// What `down` did.
#[derive(Debug, Clone)]
pub enum Down {
    /// Stopped the broker `cm up` started.
    Stopped { pid: u32, url: String, killed: bool },
    /// `up.json` named a broker that is gone; the file was removed.
    Stale { pid: u32 },
    /// Nothing `cm up` started.
    Nothing,
}

/// Stops the broker `up.json` says `cm up` started, if it is still a `cm-broker`: SIGTERM, then SIGKILL if it
/// has not exited within 10 s.
pub fn down(data: &Path) -> Result<Down> {
    let path = up_json(data);
    let Some(st) = read_json_opt::<UpState>(&path)? else {
        return Ok(Down::Nothing);
    };
    let ours = match is_broker(st.pid) {
        Some(b) => b,
        None => alive(st.pid) && answers(&st.url),
    };
    if !ours {
        remove(&path)?;
        return Ok(Down::Stale { pid: st.pid });
    }
    let pid = libc::pid_t::try_from(st.pid)
        .map_err(|_| Error::generic(format!("{} holds a bad pid", path.display())))?;
    let signal = |sig| {
        // SAFETY: sends a signal to the process named in up.json, checked above to be our cm-broker.
        unsafe { libc::kill(pid, sig) }
    };
    signal(libc::SIGTERM);
    let mut killed = false;
    if !wait_gone(st.pid, DEADLINE) {
        signal(libc::SIGKILL);
        killed = true;
        if !wait_gone(st.pid, Duration::from_secs(2)) {
            return Err(Error::generic(format!(
                "cm-broker (pid {}) did not stop",
                st.pid
            )));
        }
    }
    remove(&path)?;
    Ok(Down::Stopped {
        pid: st.pid,
        url: st.url,
        killed,
    })
}

/// Polls until `pid` has exited, at most `limit`.
fn wait_gone(pid: u32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if !alive(pid) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The broker `cm up` started, and whether it answers now.
pub fn status(data: &Path) -> Result<Option<(UpState, bool)>> {
    Ok(read_json_opt::<UpState>(&up_json(data))?.map(|st| {
        let up = answers(&st.url);
        (st, up)
    }))
}

/// Everything `cm up` found or made.
#[derive(Debug)]
pub struct Up {
    pub broker: BrokerUp,
    /// The identity's public key, and whether it was made now.
    pub identity: (String, bool),
    /// The meshes joined (a fresh one if there were none), and whether that one was made now.
    pub meshes: Vec<MeshEntry>,
    pub mesh_created: bool,
    /// The display name the new mesh was made with, and where it came from.
    pub name: Option<mesh::Named>,
}

/// `cm up`: the broker (see [`broker_up`]), an identity, and a mesh named after you (`name`, else the name
/// [`mesh::choose_name`] finds) on that broker when none is joined.
pub fn up(data: &Path, listen: &str, name: Option<&str>) -> Result<Up> {
    let broker = broker_up(data, listen)?;
    let paths = Paths::resolve()?;
    // `cm new` makes meshes on the default broker: with none chosen yet, that is the one running here, wherever it
    // listens.
    let mut brokers = Brokers::load(&paths)?;
    if brokers.default.is_none() && broker.url != mesh::DEFAULT_BROKER {
        brokers.default = Some(broker.url.clone());
        brokers.save(&paths)?;
    }
    let config = Config::load(&paths)?;
    let chosen = mesh::choose_name(name, &config, Identity::load(&paths)?.as_ref());
    let (identity, made) = mesh::ensure_identity(&paths, Some(&chosen.name))?;
    if !config.meshes.is_empty() {
        return Ok(Up {
            broker,
            identity: (identity.pubkey, made),
            meshes: config.meshes,
            mesh_created: false,
            name: None,
        });
    }
    let token = Brokers::load(&paths)?
        .get(&broker.url)
        .and_then(|b| b.token.clone());
    let (entry, named) = mesh::create(
        &paths,
        &chosen.name,
        &broker.url,
        token.as_deref(),
        Some(&chosen.name),
    )?;
    Ok(Up {
        broker,
        identity: (identity.pubkey, made),
        meshes: vec![entry],
        mesh_created: true,
        name: Some(mesh::Named {
            source: chosen.source,
            ..named
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_urls() {
        assert_eq!(client_url("127.0.0.1:7900"), "ws://127.0.0.1:7900/ws");
        assert_eq!(client_url("0.0.0.0:7"), "ws://127.0.0.1:7/ws");
        assert_eq!(client_url("[::]:7"), "ws://[::1]:7/ws");
    }

    #[test]
    fn this_process_is_alive_and_not_a_broker() {
        assert!(alive(std::process::id()));
        assert_eq!(is_broker(std::process::id()), Some(false));
        assert!(!alive(u32::MAX));
    }
}
