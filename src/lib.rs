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
//! | [`out`] | human or JSON Lines output, one error line on stderr |
//! | [`cli`] | flag tables: parsing with lexopt, `--help`, man pages and completions from one table |
//! | [`invite`] | v1 invites: make, parse, verify |
//! | [`target`] | send targets: names, key prefixes, `*`, `@group`, `#topic`, with did-you-mean |
//! | [`files`] | `cm-file`: files encrypted here in chunks, the key sealed per recipient, streamed to and from the broker |
//! | [`client`] | `Conn` (one request, then close), `Session` (long-lived, reconnecting), REST calls |
//! | [`mesh`] | mesh management: create, invite, join, rename, leave, members |
//! | [`messaging`] | rosters, send targets sealed per recipient with honest status, the inbox and its hook, `cm-pipe` |
//! | [`services`] | shared state, memory, reminders and the profile, for `cm-state`, `cm-memory`, `cm-remind`, `cm-profile` |
//! | [`doctor`] | health checks of the config, keys, brokers and Claude Code registration |
//! | [`local`] | the broker `cm up` runs on this machine: start, find, stop |
//! | [`topics`] | topics: topic keys sealed per member and re-sealed, posts, `cm-topic tail`, `cm-notify`, `cm-apikey` |
//! | [`bridge`] | `cm-bridge`: a topic's messages forwarded into a topic of another mesh, without loops |
//! | [`broker`] | `cm-broker`: HTTP and WebSocket on one port, the SQLite store, auth, routing; it uses only the shared modules ([`error`], [`crypto`], [`wire`], [`time`], [`cron`], [`mention`]), never the client's (a test checks) |
//! | [`mcp`] | `cm-mcp`: MCP over stdio lines, mesh messages as Claude Code channel notifications, never marked read |
//! | [`bench`] | `cm-bench`: load for a broker over its protocol, from many sockets on one loop; latency, throughput, memory |
//! | [`claude`] | Claude Code integration: `mcpServers`, hooks and the skill in Claude Code's files; the `claude` launch command |
//! | [`tools`] | each tool's flag table and what it does |
//! | [`multicall`] | `cm` as one executable for every client tool, by the name it is called by; the `cm-*` links |

pub mod bench;
pub mod bridge;
pub mod broker;
pub mod claude;
pub mod cli;
pub mod client;
pub mod config;
pub mod cron;
pub mod crypto;
pub mod doctor;
pub mod error;
pub mod files;
pub mod invite;
pub mod local;
pub mod mcp;
pub mod mention;
pub mod mesh;
pub mod messaging;
pub mod multicall;
pub mod out;
pub mod services;
pub mod target;
pub mod time;
pub mod tools;
pub mod topics;
pub mod wire;
