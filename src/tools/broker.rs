//! `cm-broker`: runs a broker.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::broker::log::LogFormat;
use crate::broker::{self, Options};
use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag};
use crate::error::{Error, Result};
use crate::out::Out;

const LISTEN: Flag = flag(
    "listen",
    "address to listen on, default 127.0.0.1:7900 (port 0 picks a free port)",
)
.value("ADDR");
const DATA: Flag = flag(
    "data",
    "data directory, default $XDG_DATA_HOME/claudemesh-broker",
)
.value("DIR")
.complete(Complete::Dir);
const DATABASE_URL: Flag = flag(
    "database-url",
    "keep everything in this PostgreSQL database (postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME) instead of \
     SQLite under --data; default $DATABASE_URL",
)
.value("URL");
const ADMIN_TOKEN: Flag = flag(
    "admin-token",
    "token that lets non-loopback clients create meshes",
)
.value("TOKEN");
const PUBLIC_URL: Flag = flag(
    "public-url",
    "the address senders reach this broker at, for webhook URLs (https://mesh.example.com)",
)
.value("URL");
const LOG_FORMAT: Flag = flag(
    "log-format",
    "log lines as text or json (default text; json with --json)",
)
.value("FORMAT")
.complete(Complete::Values(&["text", "json"]));
const MAX_CONNS_PER_ADDR: Flag = flag(
            "max-conns-per-addr",
            "connections one IP address may hold once their request is in, default 4096 (as many more may be \
             sending theirs; each gets 5 s)",
        )
        .value("N");
const MAX_CONNS_PER_MESH: Flag = flag(
    "max-conns-per-mesh",
    "live presences one mesh may hold, default 1000",
)
.value("N");
const RATE_LIMIT: Flag = flag(
    "rate-limit",
    "sends per second per member (and posts per webhook) and burst, default 50:100 (0 turns it off)",
)
.value("PER_SEC[:BURST]");
const LEASE: Flag = flag(
    "lease",
    "seconds a pushed message waits for its ack before it is pushed again, default 30",
)
.value("SECS");
const TASK_LEASE: Flag = flag(
    "task-lease",
    "seconds a task's claim outlives the claimer's last live session, default 600",
)
.value("SECS");
const MAX_FILE_SIZE: Flag = flag(
    "max-file-size",
    "largest file upload in bytes, default 50000000",
)
.value("BYTES");

const TLS_CERT: Flag = flag(
    "tls-cert",
    "serve wss:// and https:// with this PEM certificate chain (leaf first); needs --tls-key",
)
.value("FILE")
.complete(Complete::File);
const TLS_KEY: Flag = flag(
    "tls-key",
    "the PEM private key of --tls-cert; both files are read again on SIGHUP",
)
.value("FILE")
.complete(Complete::File);

/// `cm-broker`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-broker",
    about: "run a claudemesh broker",
    description: "Serves the claudemesh protocol over HTTP and WebSocket on one port and keeps everything in \
SQLite under its data directory, or in a PostgreSQL database with --database-url (or $DATABASE_URL; the flag \
wins, and an empty variable counts as unset). Clients connect to ws://HOST:PORT/ws.\n\n\
With PostgreSQL the broker applies its own migrations at start (in one transaction under an advisory lock, so \
brokers started at once do not race) and the data directory still holds uploaded files. TLS to the \
database follows the URL's sslmode as libpq does: prefer (the default) and require encrypt without checking \
the server's certificate, verify-ca checks its chain against sslrootcert (a PEM file of CAs, or system for the \
roots the broker carries), verify-full checks the chain and that it names the host; disable turns TLS off. A \
certificate refused exits 2 with one line saying why. A URL that does not parse exits 3, a server that cannot be reached 4, a refused \
password 2, and a database that refuses otherwise 10, each with one line on stderr. /health and /metrics name \
the backend (store_backend, claudemesh_store_info).\n\n\
Once it accepts connections it prints one line on stdout, listening on ws://HOST:PORT/ws, so a script that \
asked for port 0 can read the port it got. It logs one line per event on stderr. SIGTERM closes \
every connection with code 1001 and exits 0; Ctrl-C (SIGINT) does the same and exits 130.\n\n\
Without --admin-token, meshes can be created from loopback only; with it, every request to create a mesh \
must carry it as a bearer token, loopback too, since behind a reverse proxy on the same host every request \
comes from loopback. \
With --tls-cert and --tls-key it serves TLS on its port: clients connect to wss://HOST:PORT/ws and REST, \
server-sent events, /health and /metrics are https://. SIGHUP reads both files again: new connections get the \
new certificate, open ones keep theirs, and a pair that does not load leaves the old one in place (the log says \
why). Clients verify the certificate against the web's roots (webpki) and the CA in $CLAUDEMESH_CA_FILE, for a \
private CA or a self-signed certificate. Behind a reverse proxy that terminates TLS (nginx, Caddy, HAProxy) run \
it without them on 127.0.0.1 and have the proxy pass /ws with the Upgrade and Connection headers, buffering \
off for the event streams under /api/v1, and read timeouts above a minute (the broker pings every 30 s); \
docs/deploy.md has a configuration. A plain broker reachable from other machines sends API keys and \
signed hellos in the clear.\n\n\
The same port serves a REST surface under /api/v1 for programs that speak only HTTP, with an API key from \
cm-apikey in Authorization: Bearer cm_...: POST /api/v1/messages {topic, text} (a topic made with --plaintext) or \
{topic, ciphertext, nonce, bodyVersion, replyToId, mentions}; GET /api/v1/topics; \
GET /api/v1/topics/NAME/messages?limit=N&before=ID; GET /api/v1/topics/NAME/stream (server-sent events: ready, \
then a message event per new message with its id as the event id; Last-Event-ID replays what was missed); \
PATCH /api/v1/topics/NAME/read; GET /api/v1/peers; GET /api/v1/members; GET /api/v1/notifications?all=1; \
POST /api/v1/notifications/read {ids} or {all:true}. Errors are JSON {error, message} with status 400, 401, \
403, 404, 409 or 429 (each key has the --rate-limit token bucket).\n\n\
Webhooks made with cm-webhook are POST /hooks/ID on the same port, signed with the webhook's secret \
(X-Hub-Signature-256 as GitHub sends it, or Authorization: Bearer); see cm-webhook(1). The broker hands out \
their URLs under --public-url when it is given (behind a reverse proxy, the proxy's address), else as paths \
that the clients complete with the address they reach the broker at.\n\n\
cm-broker copy-store moves a mesh from SQLite to PostgreSQL: it copies everything in the SQLite store under \
--data (meshes, members, invites, API keys, messages with their pending deliveries, topics and their keys, state, \
memories, reminders, tasks, reservations, the vault, grants, contexts, webhooks) into the database at \
--database-url (or $DATABASE_URL), migrated first, in one transaction, and exits. A database that holds a mesh \
already is refused with exit 6 and left as it was, so a second run doubles nothing; no SQLite store under --data \
exits 5. It reads one snapshot of the store, so a broker still running there does no harm, but what that broker \
takes after the snapshot is not copied: stop it first. Uploaded files' ciphertext, which a SQLite broker keeps in \
<data>/files, goes into the database too (a broker on PostgreSQL keeps it there, so every broker serves every \
file). It prints the rows each table got (with --json a line \
{\"type\":\"table\", \"table\", \"rows\"} per table, then {\"type\":\"total\", \"tables\", \"rows\", \"files\", \"damaged\"}, where files counts the uploads \
whose ciphertext was copied and damaged lists those whose ciphertext was missing or of the wrong size); \
docs/deploy.md walks through the move.",
    section: 8,
    args: &[],
    flags: &[
        LISTEN,
        DATA,
        DATABASE_URL,
        ADMIN_TOKEN,
        PUBLIC_URL,
        LOG_FORMAT,
        MAX_CONNS_PER_ADDR,
        MAX_CONNS_PER_MESH,
        RATE_LIMIT,
        LEASE,
        TASK_LEASE,
        MAX_FILE_SIZE,
        TLS_CERT,
        TLS_KEY,
    ],
    subs: &[Sub {
        name: "copy-store",
        aliases: &[],
        about: "copy the SQLite store under --data into the PostgreSQL database at --database-url, then exit",
        args: &[],
        flags: &[],
    }],
    mesh_flag: false,
    config_dir: false,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-broker",
            what: "serve on 127.0.0.1:7900",
        },
        Example {
            cmd: "cm-broker --listen 0.0.0.0:7900 --admin-token \"$(cat /etc/claudemesh/token)\"",
            what: "serve every interface; remote mesh creation needs the token",
        },
        Example {
            cmd: "cm-broker --listen 0.0.0.0:443 --tls-cert /etc/claudemesh/fullchain.pem --tls-key /etc/claudemesh/key.pem",
            what: "serve wss:// itself; kill -HUP after renewing the certificate",
        },
        Example {
            cmd: "DATABASE_URL=postgres://claudemesh@db.internal/claudemesh cm-broker --listen 0.0.0.0:7900",
            what: "keep the broker's data in PostgreSQL",
        },
        Example {
            cmd: "cm-broker copy-store --data /var/lib/claudemesh --database-url postgres://claudemesh@db.internal/claudemesh",
            what: "move a stopped SQLite broker's meshes into PostgreSQL",
        },
        Example {
            cmd: "cm-broker --listen 127.0.0.1:0 --data /tmp/cmb --log-format json",
            what: "a throwaway broker on a free port, logging JSON",
        },
    ],
    env: &[
        (
            "CM_BROKER_ADMIN_TOKEN",
            "the admin token, when --admin-token is not given",
        ),
        (
            "CM_BROKER_PUBLIC_URL",
            "the public address, when --public-url is not given",
        ),
        (
            "DATABASE_URL",
            "the PostgreSQL database, when --database-url is not given",
        ),
        (
            "XDG_DATA_HOME",
            "where the default data directory goes (else ~/.local/share)",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    match args.sub {
        Some("copy-store") => copy_store(args, env, out),
        _ => broker::run(&options(args, env)?),
    }
}

/// `cm-broker copy-store`: the SQLite store under --data copied into the database at --database-url.
fn copy_store(args: &Args, env: impl Fn(&str) -> Option<String>, out: &mut Out) -> Result<()> {
    // Of the broker's own flags, copy-store reads only where the two stores are; the rest are a running broker's.
    let serving = TOOL
        .flags
        .iter()
        .filter(|f| f.long != DATA.long && f.long != DATABASE_URL.long);
    if let Some(f) = serving.into_iter().find(|f| args.has(f)) {
        return Err(Error::usage(format!(
            "--{} does not apply to 'cm-broker copy-store'; see 'cm-broker --help'",
            f.long
        )));
    }
    let data = args
        .value(&DATA)
        .map_or_else(|| Options::default().data, PathBuf::from);
    let Some(url) = database_url(args, env)? else {
        return Err(Error::usage(
            "copy-store needs the database: --database-url URL or $DATABASE_URL",
        ));
    };
    copy_into(&data, &url, out)
}

#[cfg(feature = "postgres")]
fn copy_into(data: &std::path::Path, url: &str, out: &mut Out) -> Result<()> {
    use broker::store::pg;
    let r = pg::copy_store(data, url)?;
    let total: u64 = r.tables.iter().map(|c| c.rows).sum();
    if out.json {
        for c in &r.tables {
            out.json(&serde_json::json!({"type": "table", "table": c.table, "rows": c.rows}))?;
        }
        return out.json(&serde_json::json!({
            "type": "total", "tables": r.tables.len(), "rows": total, "files": r.files,
            "damaged": r.damaged,
        }));
    }
    let width = r.tables.iter().map(|c| c.table.len()).max().unwrap_or(5);
    out.line(format!("{:width$}  {:>8}", "TABLE", "ROWS"))?;
    for c in &r.tables {
        out.line(format!("{:width$}  {:>8}", c.table, c.rows))?;
    }
    out.line(format!("{:width$}  {total:>8}", "total"))?;
    let label = pg::label(&pg::parse_url(url)?.0);
    out.line(format!(
        "copied into {label} in one transaction, with the ciphertext of {} uploaded file{}",
        r.files,
        if r.files == 1 { "" } else { "s" }
    ))?;
    if !r.damaged.is_empty() {
        crate::out::notice(format!(
            "{} file{} had no ciphertext of the right size in {}: {}",
            r.damaged.len(),
            if r.damaged.len() == 1 { "" } else { "s" },
            data.join("files").display(),
            r.damaged.join(", ")
        ));
    }
    Ok(())
}

#[cfg(not(feature = "postgres"))]
fn copy_into(_: &std::path::Path, url: &str, _: &mut Out) -> Result<()> {
    check_database_url(url)
}

/// --database-url, else a non-empty $DATABASE_URL, checked.
fn database_url(args: &Args, env: impl Fn(&str) -> Option<String>) -> Result<Option<String>> {
    let url = match args.value(&DATABASE_URL) {
        Some(v) => Some(("--database-url", v.to_string())),
        None => env("DATABASE_URL")
            .filter(|v| !v.is_empty())
            .map(|v| ("DATABASE_URL", v)),
    };
    let Some((from, url)) = url else {
        return Ok(None);
    };
    check_database_url(&url).map_err(|e| Error::usage(format!("{from}: {}", e.msg)))?;
    Ok(Some(url))
}

/// Builds [`Options`] from the flags, falling back to `env` and the defaults.
fn options(args: &Args, env: impl Fn(&str) -> Option<String>) -> Result<Options> {
    let mut o = Options::default();
    if let Some(v) = args.value(&LISTEN) {
        o.listen = listen_addr(v)?;
    }
    if let Some(v) = args.value(&DATA) {
        o.data = PathBuf::from(v);
    }
    o.database_url = database_url(args, &env)?;
    o.admin_token = args
        .value(&ADMIN_TOKEN)
        .map(str::to_string)
        .or_else(|| env("CM_BROKER_ADMIN_TOKEN"));
    if o.admin_token.as_deref() == Some("") {
        return Err(Error::usage("--admin-token: empty token"));
    }
    o.public_url = match args
        .value(&PUBLIC_URL)
        .map(str::to_string)
        .or_else(|| env("CM_BROKER_PUBLIC_URL"))
    {
        None => None,
        Some(u)
            if (u.starts_with("https://") || u.starts_with("http://"))
                && !u.contains(['?', '#']) =>
        {
            Some(u.trim_end_matches('/').to_string())
        }
        Some(u) => {
            return Err(Error::usage(format!(
                "--public-url: expected an http:// or https:// address, got {u:?}"
            )));
        }
    };
    if args.json {
        o.log_format = LogFormat::Json;
    }
    if let Some(v) = args.value(&LOG_FORMAT) {
        o.log_format = match v {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                return Err(Error::usage(format!(
                    "--log-format: expected text or json, got {v:?}"
                )));
            }
        };
    }
    if let Some(v) = args.value(&MAX_CONNS_PER_ADDR) {
        o.max_conns_per_addr = positive(&MAX_CONNS_PER_ADDR, v)?;
    }
    if let Some(v) = args.value(&MAX_CONNS_PER_MESH) {
        o.max_conns_per_mesh = positive(&MAX_CONNS_PER_MESH, v)?;
    }
    if let Some(v) = args.value(&RATE_LIMIT) {
        o.rate_limit = rate_limit(v)?;
    }
    if let Some(v) = args.value(&LEASE) {
        o.lease = Duration::from_secs(positive(&LEASE, v)? as u64);
    }
    if let Some(v) = args.value(&TASK_LEASE) {
        o.task_lease = Duration::from_secs(positive(&TASK_LEASE, v)? as u64);
    }
    if let Some(v) = args.value(&MAX_FILE_SIZE) {
        o.max_file_bytes = positive(&MAX_FILE_SIZE, v)? as u64;
    }
    match (args.value(&TLS_CERT), args.value(&TLS_KEY)) {
        (Some(c), Some(k)) => o.tls = Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => {}
        (Some(_), None) => return Err(Error::usage("--tls-cert needs --tls-key")),
        (None, Some(_)) => return Err(Error::usage("--tls-key needs --tls-cert")),
    }
    // Left out of the man page on purpose: it lets any local client move the scheduler's clock.
    o.test_clock = env("CM_BROKER_TEST_CLOCK").as_deref() == Some("1");
    Ok(o)
}

/// A URL the PostgreSQL store can open, checked before anything starts.
#[cfg(feature = "postgres")]
fn check_database_url(url: &str) -> Result<()> {
    broker::store::pg::parse_url(url).map(drop)
}

#[cfg(not(feature = "postgres"))]
fn check_database_url(_: &str) -> Result<()> {
    Err(Error::usage(
        "this cm-broker was built without PostgreSQL (cargo feature postgres)",
    ))
}

/// `HOST:PORT`, where HOST may be a name (`localhost:7900`) or a bracketed IPv6 address.
fn listen_addr(v: &str) -> Result<SocketAddr> {
    if let Ok(a) = v.parse() {
        return Ok(a);
    }
    let bad = || Error::usage(format!("--listen: expected HOST:PORT, got {v:?}"));
    v.to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

fn positive(flag: &Flag, v: &str) -> Result<usize> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::usage(format!(
            "--{}: expected a positive whole number, got {v:?}",
            flag.long
        ))),
    }
}

/// `PER_SEC[:BURST]`; the burst defaults to two seconds' worth, and `0` turns limiting off.
fn rate_limit(v: &str) -> Result<Option<(f64, f64)>> {
    let bad = || Error::usage(format!("--rate-limit: expected PER_SEC[:BURST], got {v:?}"));
    let num = |s: &str| {
        s.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(bad)
    };
    let (rate, burst) = match v.split_once(':') {
        Some((r, b)) => (num(r)?, Some(num(b)?)),
        None => (num(v)?, None),
    };
    if rate == 0.0 {
        return Ok(None);
    }
    let burst = burst.unwrap_or((rate * 2.0).max(1.0));
    if burst < 1.0 {
        return Err(bad());
    }
    Ok(Some((rate, burst)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cm-broker --K=V ...`, read by the real parser.
    fn args(flags: &[(&str, &str)]) -> Args {
        let argv = flags
            .iter()
            .map(|(k, v)| std::ffi::OsString::from(format!("--{k}={v}")));
        match crate::cli::parse(&TOOL, argv) {
            Ok(crate::cli::Parsed::Run(a)) => a,
            other => panic!("{flags:?}: {other:?}"),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults() {
        let o = options(&args(&[]), no_env).unwrap();
        assert_eq!(o.listen, "127.0.0.1:7900".parse().unwrap());
        assert_eq!(o.rate_limit, Some((50.0, 100.0)));
        assert_eq!(o.lease, Duration::from_secs(30));
        assert_eq!(
            (o.max_conns_per_addr, o.max_conns_per_mesh, o.max_file_bytes),
            (4096, 1000, 50_000_000)
        );
        assert_eq!(o.admin_token, None);
    }

    #[test]
    fn flags_and_env() {
        let a = args(&[
            ("listen", "[::1]:0"),
            ("data", "/tmp/d"),
            ("log-format", "json"),
            ("rate-limit", "10"),
            ("lease", "5"),
        ]);
        let o = options(&a, |k| {
            (k == "CM_BROKER_ADMIN_TOKEN").then(|| "t0k".to_string())
        })
        .unwrap();
        assert_eq!(o.listen, "[::1]:0".parse().unwrap());
        assert_eq!(o.data, PathBuf::from("/tmp/d"));
        assert_eq!(o.log_format, LogFormat::Json);
        assert_eq!(o.rate_limit, Some((10.0, 20.0)));
        assert_eq!(o.lease, Duration::from_secs(5));
        assert_eq!(o.admin_token.as_deref(), Some("t0k"));
        let o = options(&args(&[("admin-token", "flag")]), |k| {
            (k == "CM_BROKER_ADMIN_TOKEN").then(|| "env".into())
        })
        .unwrap();
        assert_eq!(o.admin_token.as_deref(), Some("flag"));
        let o = options(
            &args(&[("public-url", "https://mesh.example.com/")]),
            no_env,
        )
        .unwrap();
        assert_eq!(o.public_url.as_deref(), Some("https://mesh.example.com"));
        assert!(options(&args(&[("public-url", "mesh.example.com")]), no_env).is_err());
        assert_eq!(
            options(&args(&[("listen", "localhost:7")]), no_env)
                .unwrap()
                .listen
                .port(),
            7
        );
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn the_database_url_flag_wins_over_database_url_and_empty_is_unset() {
        let env = |v: &'static str| move |k: &str| (k == "DATABASE_URL").then(|| v.to_string());
        assert_eq!(options(&args(&[]), no_env).unwrap().database_url, None);
        assert_eq!(options(&args(&[]), env("")).unwrap().database_url, None);
        assert_eq!(
            options(&args(&[]), env("postgres://e@h/d"))
                .unwrap()
                .database_url
                .as_deref(),
            Some("postgres://e@h/d")
        );
        let flag = args(&[("database-url", "postgresql://f@h/d")]);
        assert_eq!(
            options(&flag, env("postgres://e@h/d"))
                .unwrap()
                .database_url
                .as_deref(),
            Some("postgresql://f@h/d")
        );
        let e = options(&args(&[]), env("sqlite:///x.db")).unwrap_err();
        assert!(
            e.msg.starts_with("DATABASE_URL: expected a postgres://"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn rate_limits() {
        assert_eq!(rate_limit("0").unwrap(), None);
        assert_eq!(rate_limit("0:5").unwrap(), None);
        assert_eq!(rate_limit("2.5:4").unwrap(), Some((2.5, 4.0)));
        for bad in ["", "x", "-1", "1:", "1:0.5", "inf", "1:2:3"] {
            assert!(rate_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for (k, v) in [
            ("listen", "nope"),
            ("log-format", "xml"),
            ("lease", "0"),
            ("max-conns-per-addr", "-3"),
            ("admin-token", ""),
            ("database-url", "https://db"),
            ("tls-cert", "c.pem"),
            ("tls-key", "k.pem"),
        ] {
            let e = options(&args(&[(k, v)]), no_env).unwrap_err();
            assert_eq!(e.code, crate::error::Code::Usage, "{k}");
            assert!(e.msg.starts_with(&format!("--{k}")), "{}", e.msg);
        }
    }
}
