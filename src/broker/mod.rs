//! cm-broker: the self-hosted broker.

mod apikeys;
pub mod auth;
mod cluster;
mod context;
mod files;
mod grants;
mod http;
pub mod hub;
pub mod log;
mod memory;
pub mod net;
mod profile;
mod reserve;
mod rest;
mod routing;
mod schedule;
mod state;
pub mod store;
mod tasks;
pub mod tls;
mod topics;
mod vault;
mod webhooks;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result, io_message};
use crate::signal::{self, Signal};
use log::LogFormat;
use net::{NetConfig, Shutdown};

/// How the broker runs: `cm-broker`'s flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The data directory (created 0700).
    pub data: PathBuf,
    /// A `postgres://` URL (`--database-url`, `$DATABASE_URL`): the store is that database, not SQLite in `data`.
    pub database_url: Option<String>,
    /// Lets non-loopback clients create meshes.
    pub admin_token: Option<String>,
    pub log_format: LogFormat,
    pub max_conns_per_addr: usize,
    pub max_conns_per_mesh: usize,
    /// `send`s per second per member and the burst allowed; `None` turns rate limiting off.
    pub rate_limit: Option<(f64, f64)>,
    /// How long a pushed delivery waits for its `client_ack` before it is pushed again.
    pub lease: Duration,
    /// The largest file upload.
    pub max_file_bytes: u64,
    /// How long a task's claim outlives the last live session of the member holding it.
    pub task_lease: Duration,
    /// Serve TLS with this PEM certificate chain and key (`--tls-cert`, `--tls-key`); read again on SIGHUP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve `POST /debug/clock`, which moves the scheduler's clock (`CM_BROKER_TEST_CLOCK=1`; tests only).
    pub test_clock: bool,
    /// The address clients and webhook senders reach this broker at (`https://mesh.example.com`), for the
    /// webhook URLs it hands out; `None`: it hands out paths, which clients complete.
    pub public_url: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 7900)),
            data: default_data_dir(env("XDG_DATA_HOME"), env("HOME")),
            database_url: None,
            admin_token: None,
            log_format: LogFormat::Text,
            max_conns_per_addr: 4096,
            max_conns_per_mesh: 1000,
            rate_limit: Some((50.0, 100.0)),
            lease: Duration::from_secs(30),
            max_file_bytes: 50_000_000,
            task_lease: Duration::from_secs(600),
            tls: None,
            test_clock: false,
            public_url: None,
        }
    }
}

/// `$XDG_DATA_HOME/claudemesh-broker`, else `~/.local/share/claudemesh-broker` (XDG ignores a relative value).
pub fn default_data_dir(xdg_data_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    let base = match (xdg_data_home, home) {
        (Some(x), _) if x.is_absolute() => x,
        (_, Some(h)) => h.join(".local/share"),
        _ => PathBuf::new(),
    };
    base.join("claudemesh-broker")
}

/// Runs the broker until SIGINT or SIGTERM; SIGHUP reloads the TLS certificate. Prints
/// `listening on ws[s]://HOST:PORT/ws` on stdout once it accepts.
pub fn run(opts: &Options) -> Result<()> {
    log::set_format(opts.log_format);
    // A file-size limit (`ulimit -f`) must fail a write, which the store reports and survives, rather than
    // kill the broker with SIGXFSZ.
    // SAFETY: setting a signal's disposition to SIG_IGN touches no memory of ours.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    // Before any thread starts, so that the signals reach only the thread that waits for them.
    let shutdown = std::sync::Arc::new(
        Shutdown::new()
            .map_err(|e| Error::internal(io_message(&e)).context("making the shutdown pipe"))?,
    );
    let stopped_by = std::sync::Arc::new(std::sync::OnceLock::new());
    // Read before anything else so that a bad certificate fails the start, not the first client.
    let tls = match &opts.tls {
        Some((cert, key)) => Some(std::sync::Arc::new(tls::Tls::load(cert, key)?)),
        None => None,
    };
    {
        let (shutdown, stopped_by, tls) = (shutdown.clone(), stopped_by.clone(), tls.clone());
        signal::watch_each(
            &[Signal::Interrupt, Signal::Terminate, Signal::Hangup],
            move |s| match (s, &tls) {
                (Signal::Hangup, Some(tls)) => {
                    tls.reload();
                    signal::Flow::Continue
                }
                (Signal::Hangup, None) => {
                    log::info("SIGHUP: nothing to reload (no --tls-cert)", &[]);
                    signal::Flow::Continue
                }
                _ => {
                    let _ = stopped_by.set(s);
                    shutdown.trigger();
                    signal::Flow::Stop
                }
            },
        )?;
    }
    create_private_dir(&opts.data)?;
    // The store first: `listening` promises a broker that serves, and one whose store cannot open would not.
    let mut hub = hub::Hub::open(opts)?;
    let listener = TcpListener::bind(opts.listen).map_err(|e| {
        Error::network(io_message(&e)).context(format_args!("listening on {}", opts.listen))
    })?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    writeln!(stdout, "listening on {scheme}://{addr}/ws")
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::from(e).context("writing to stdout"))?;
    drop(stdout);
    match &tls {
        Some(t) => log::info(
            "listening",
            &[
                ("addr", &addr),
                ("data", &opts.data.display()),
                ("store", &hub.store_label()),
                ("tls_sha256", &t.fingerprint()),
            ],
        ),
        None => log::info(
            "listening",
            &[
                ("addr", &addr),
                ("data", &opts.data.display()),
                ("store", &hub.store_label()),
            ],
        ),
    }
    let cfg = NetConfig {
        max_conns_per_addr: opts.max_conns_per_addr,
        tls: tls.as_ref().map(|t| t.config()),
        ..NetConfig::default()
    };
    net::serve(listener, &cfg, &mut hub, &shutdown).map_err(|e| Error::network(io_message(&e)))?;
    let signal = stopped_by.get().copied();
    log::info(
        "stopped",
        &[("signal", &signal.map_or("none", Signal::name))],
    );
    signal.map_or(Ok(()), Signal::outcome)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::from(e).context(format_args!("creating {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_follows_xdg() {
        let p = PathBuf::from;
        assert_eq!(
            default_data_dir(Some(p("/x")), Some(p("/h"))),
            p("/x/claudemesh-broker")
        );
        assert_eq!(
            default_data_dir(Some(p("rel")), Some(p("/h"))),
            p("/h/.local/share/claudemesh-broker")
        );
        assert_eq!(
            default_data_dir(None, Some(p("/h"))),
            p("/h/.local/share/claudemesh-broker")
        );
    }
}
