//! A PostgreSQL server for the tests: `$CM_TEST_POSTGRES` (a URL of a server the tests may create schemas and
//! databases on), else a private cluster this process starts in a temporary directory when `initdb` and `pg_ctl`
//! are installed (on PATH or under /usr/lib/postgresql/*/bin), and stops at exit.
//!
//! Without either a test prints that it skipped, except under CI (`CI` set), where it fails: a CI that silently
//! skipped the PostgreSQL tests would prove nothing.
//!
//! Shared by the library's tests and the integration tests (`tests/it` includes this file by path), so it uses
//! only std, libc and postgres. Compiled only for tests, so its panics fail a test, never a user.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server the tests use.
pub struct Server {
    /// `postgres://USER@HOST:PORT/DB`: a database on it the tests may create schemas in.
    pub url: String,
    /// The private cluster's directory and its binaries, stopped and removed at exit.
    private: Option<(PathBuf, PathBuf)>,
}

static SERVER: OnceLock<Option<Server>> = OnceLock::new();

/// What this process made on a server it did not start (`CM_TEST_POSTGRES`): dropped at exit.
static MADE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The `application_name` of this process's connections, so that exit can end those a test left open.
fn app_name() -> String {
    format!("cm_test_{}", std::process::id())
}

/// The server, or `None` (after saying so on stderr) when there is none and CI is not set.
pub fn server() -> Option<&'static Server> {
    let s = SERVER.get_or_init(|| {
        if let Some(url) = std::env::var("CM_TEST_POSTGRES").ok().filter(|u| !u.is_empty()) {
            // SAFETY: registers a plain function with no arguments, run once at exit.
            unsafe { libc::atexit(drop_made) };
            return Some(Server { url, private: None });
        }
        match start_private() {
            Ok(s) => {
                // SAFETY: registers a plain function with no arguments, run once at exit.
                unsafe { libc::atexit(stop_private) };
                Some(s)
            }
            Err(why) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "no PostgreSQL for the tests: {why} (set CM_TEST_POSTGRES or install postgresql)"
                );
                None
            }
        }
    });
    if s.is_none() {
        eprintln!("skipped: no PostgreSQL (set CM_TEST_POSTGRES or install postgresql)");
    }
    s.as_ref()
}

/// A name no other test of any run uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!(
        "cm_{tag}_{}_{}_{}",
        std::process::id(),
        t % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `sql` on the test server. Tests only: a server that cannot be reached or refuses fails the test that
/// asked, which is what a test should do.
fn on_server(s: &Server, sql: &str) {
    let mut c =
        postgres::Client::connect(&s.url, postgres::NoTls).expect("connecting to the test server");
    c.batch_execute(sql)
        .expect("the test server refused a statement");
}

/// A fresh, empty schema on the server, and a config whose connections use it (`search_path`).
pub fn fresh_schema(tag: &str) -> Option<postgres::Config> {
    let s = server()?;
    let name = unique(tag);
    on_server(s, &format!("CREATE SCHEMA {name}"));
    made(format!("SCHEMA {name} CASCADE"));
    // Tests only: a URL of our own making, or `$CM_TEST_POSTGRES`, whose mistake should fail the run at once.
    let mut config: postgres::Config = s.url.parse().expect("the test server's URL");
    config.options(&format!("-c search_path={name}"));
    config.application_name(&app_name());
    Some(config)
}

/// A fresh, empty database on the server, as a URL.
pub fn fresh_database(tag: &str) -> Option<String> {
    let s = server()?;
    let name = unique(tag);
    on_server(s, &format!("CREATE DATABASE {name}"));
    made(format!("DATABASE {name} WITH (FORCE)"));
    Some(with_dbname(&s.url, &name))
}

fn made(what: String) {
    if let Some(Some(Server { private: None, .. })) = SERVER.get()
        && let Ok(mut m) = MADE.lock()
    {
        m.push(what);
    }
}

/// Drops what this process made on `CM_TEST_POSTGRES`'s server, after ending the connections a test left open
/// (one test leaks a store on purpose, as a crash would).
extern "C" fn drop_made() {
    let (Some(Some(s)), Ok(made)) = (SERVER.get(), MADE.lock()) else {
        return;
    };
    let Ok(mut c) = postgres::Client::connect(&s.url, postgres::NoTls) else {
        return;
    };
    let _ = c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        &[&app_name()],
    );
    let _ = c.batch_execute("SET lock_timeout = '5s'");
    for what in made.iter() {
        let _ = c.batch_execute(&format!("DROP {what}"));
    }
}

/// The rows of the database at `url` as `pg_dump --data-only` writes them, to look for what must not be there.
pub fn dump(url: &str) -> Vec<u8> {
    let pg_dump = bin_dir().map_or_else(|| PathBuf::from("pg_dump"), |d| d.join("pg_dump"));
    // Tests only: without pg_dump beside the server, the test that looks at the rows cannot look, and fails.
    let out = Command::new(pg_dump)
        .args(["--data-only", "--dbname", url])
        .output()
        .expect("running pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `url` with its database name replaced.
pub fn with_dbname(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_at = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_at..].find('/') {
        Some(i) => &base[..authority_at + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// The directory holding `initdb` and `pg_ctl`: PATH first, then Debian's versioned directories, newest first.
fn bin_dir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has(&d) {
                // Where a link on PATH points: pg_dump and the server sit beside the real initdb.
                return std::fs::canonicalize(d.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .filter(|p| has(p))
                    .or(Some(d));
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

/// `initdb` refuses to run as root: then every cluster command runs as the `postgres` system user.
fn as_owner(bin: &Path, args: &[&str]) -> Command {
    // SAFETY: geteuid reads the process's effective user id.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

fn run(mut c: Command) -> Result<(), String> {
    let out = c.output().map_err(|e| format!("{c:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{c:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn start_private() -> Result<Server, String> {
    let (url, dir, bin) = start_cluster("", |_| Ok(()))?;
    Ok(Server {
        url,
        private: Some((dir, bin)),
    })
}

/// Makes and starts a cluster in a temporary directory: `setup` may write into its data directory before it
/// starts, and `extra` adds to the server's options. Returns its URL, its directory and its binaries.
fn start_cluster(
    extra: &str,
    setup: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(String, PathBuf, PathBuf), String> {
    let bin = bin_dir().ok_or("initdb and pg_ctl not found")?;
    let dir = std::env::temp_dir().join(unique("pgcluster"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    chown_to_owner(&dir)?;
    let data = dir.join("data");
    let data_s = data.to_string_lossy().into_owned();
    run(as_owner(
        &bin.join("initdb"),
        &[
            "-D",
            &data_s,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ],
    ))?;
    setup(&data)?;
    let log = dir.join("log").to_string_lossy().into_owned();
    let dir_s = dir.to_string_lossy().into_owned();
    // A free port can be taken by someone else between its probe and the server's bind: then try another.
    let mut last = String::new();
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {dir_s} -c fsync=off -c max_connections=300 {extra}"
        );
        match run(as_owner(
            &bin.join("pg_ctl"),
            &["-D", &data_s, "-l", &log, "-w", "-o", &opts, "start"],
        )) {
            Ok(()) => {
                return Ok((
                    format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    dir,
                    bin,
                ));
            }
            Err(e) => last = e,
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Err(last)
}

/// Running as root, the cluster's files belong to the `postgres` user that runs it.
fn chown_to_owner(path: &Path) -> Result<(), String> {
    // SAFETY: geteuid reads the process's effective user id.
    if unsafe { libc::geteuid() } == 0 {
        run({
            let mut c = Command::new("chown");
            c.arg("postgres:").arg(path);
            c
        })?;
    }
    Ok(())
}

/// A cluster of one test's own that speaks TLS only: `cert_pem` (chain, leaf first) and `key_pem` are its
/// certificate, and its pg_hba.conf refuses every connection that is not TLS. Stopped when dropped.
pub struct TlsCluster {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`, with no `sslmode`.
    pub url: String,
    dir: PathBuf,
    bin: PathBuf,
}

/// The cluster, or `None` (after saying so) where no cluster can be made and CI is not set.
pub fn tls_cluster(cert_pem: &str, key_pem: &str) -> Option<TlsCluster> {
    let made = start_cluster("-c ssl=on", |data| {
        let write = |name: &str, body: &str, mode: u32| -> Result<(), String> {
            use std::os::unix::fs::PermissionsExt;
            let p = data.join(name);
            std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{}: {e}", p.display()))?;
            chown_to_owner(&p)
        };
        // The server's defaults: server.crt and server.key in the data directory.
        write("server.crt", cert_pem, 0o644)?;
        write("server.key", key_pem, 0o600)?;
        write(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            0o600,
        )
    });
    match made {
        Ok((url, dir, bin)) => Some(TlsCluster { url, dir, bin }),
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "no PostgreSQL cluster for the TLS tests: {why} (install postgresql)"
            );
            eprintln!("skipped: no PostgreSQL cluster ({why})");
            None
        }
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let _ = as_owner(
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "stop"],
        )
        .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

extern "C" fn stop_private() {
    if let Some(Some(Server {
        private: Some((dir, bin)),
        ..
    })) = SERVER.get()
    {
        let data = dir.join("data").to_string_lossy().into_owned();
        let _ = as_owner(
            &bin.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "stop"],
        )
        .output();
        let _ = std::fs::remove_dir_all(dir);
    }
}
