//! claudemesh: a peer mesh for Claude Code sessions, as a toolkit of small blocking binaries over this library.
//!
//! The map of the library (DESIGN.md §2):
//!
//! | module | owns |
//! |---|---|
//! | [`error`] | the error type and exit codes every tool shares |
//! | [`crypto`] | ed25519, ed25519 → x25519, crypto_box, secretbox, sealed boxes, base64 and hex, proven against libsodium's vectors |
//! | [`wire`] | the broker protocol's frames as serde types |
//! | [`config`] | the config directory, `config.json` in the original's schema, identity and session keys, atomic 0600 writes |
//! | [`time`] | RFC 3339 times and durations without a calendar crate |
//! | [`cron`] | cron expressions (Vixie cron's dialect) in UTC or at a fixed offset |
//! | [`mention`] | the `@name`s of a topic message, one rule for the tools and the broker |
//! | [`glob`] | path patterns of file reservations with git's `:(glob)` semantics, one rule for the tools and the broker |
//! | [`signal`] | SIGINT, SIGTERM and SIGHUP waited for by one thread, for the tools that run until stopped; Ctrl-C exits 130 |
//! | [`out`] | human or JSON Lines output, one error line on stderr; short ids, keys and times as people read them |
//! | [`cli`] | flag tables: parsing with lexopt, `--help`, man pages and completions from one table |
//! | [`id`] | `cm-id`: the identity on this machine and its broker logins |
//! | [`invite`] | v1 invites: make, parse, verify |
//! | [`target`] | send targets: names, key prefixes, `*`, `@group`, `#topic`, with did-you-mean |
//! | [`files`] | `cm-file`: files encrypted here in chunks, the key sealed per recipient, streamed to and from the broker |
//! | [`client`] | `Conn` (one request, then close), `Session` (long-lived, reconnecting), `Requester`, REST calls |
//! | [`mesh`] | mesh management: create, invite, join, rename, leave, members |
//! | [`messaging`] | rosters, send targets sealed per recipient with honest status, the inbox and its hook, `cm-pipe` |
//! | [`services`] | shared state, memory, tasks, context, the vault, webhooks and the profile, for `cm-state`, `cm-memory`, `cm-task`, `cm-context`, `cm-vault`, `cm-webhook`, `cm-profile` |
//! | [`reserve`] | `cm-reserve`: advisory file reservations of a repository, their conflicts, the pre-commit hook |
//! | [`remind`] | `cm-remind`: reminders and cron jobs sealed like a send, or sent now from a crontab |
//! | [`doctor`] | health checks of the config, keys, brokers and Claude Code registration |
//! | [`up`] | `cm up` / `cm down`: the broker on this machine started, found and stopped; a first identity and mesh |
//! | [`templates`] | the original CLI's five mesh templates as data, shown by `cm templates` |
//! | [`topics`] | `cm-topic`: topic keys sealed per member and re-sealed, posts, history, `cm-topic tail` |
//! | [`notify`] | `cm-notify`: the mentions of me, opened with each topic's key |
//! | [`apikey`] | `cm-apikey`: REST keys, created, listed, revoked |
//! | [`bridge`] | `cm-bridge`: a topic's messages forwarded into a topic of another mesh, without loops |
//! | [`broker`] | `cm-broker`: HTTP and WebSocket on one port, the SQLite and PostgreSQL stores, auth, routing; it uses only the shared modules ([`error`], [`crypto`], [`wire`], [`time`], [`cron`], [`mention`], [`glob`], [`signal`]), never the client's (a test checks) |
//! | [`mcp`] | `cm-mcp`: MCP over stdio lines, mesh messages as Claude Code channel notifications, never marked read |
//! | [`bench`](mod@bench) | `cm-bench`: load for a broker over its protocol, from many sockets on one loop; latency, throughput, memory |
//! | [`install`] | `cm-install` / `cm-uninstall`: `mcpServers`, hooks and the skill in Claude Code's files, given back exactly |
//! | [`launch`] | `cm-launch`: the `claude` command line of a mesh session, and its session id |
//! | [`tools`] | each tool's flag table and what it does |
//! | [`multicall`] | `cm` as one executable for every client tool, by the name it is called by; the `cm-*` links |

pub mod apikey;
pub mod bench;
pub mod bridge;
pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod cron;
pub mod crypto;
pub mod doctor;
pub mod error;
pub mod files;
pub mod glob;
pub mod id;
pub mod install;
pub mod invite;
pub mod launch;
pub mod mcp;
pub mod mention;
pub mod mesh;
pub mod messaging;
pub mod multicall;
pub mod notify;
pub mod out;
pub mod remind;
pub mod reserve;
pub mod services;
pub mod signal;
pub mod target;
pub mod templates;
pub mod time;
pub mod tools;
pub mod topics;
pub mod up;
pub mod wire;
