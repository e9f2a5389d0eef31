//! The integration suite: one test binary, one module per area.

mod attacks;
mod bench;
mod bridge;
mod broker;
mod brokers;
mod claude;
mod client;
#[cfg(feature = "postgres")]
mod cluster;
mod cm;
mod context;
#[cfg(feature = "postgres")]
mod copy_store;
mod docs;
mod everyday;
mod files;
mod fuzz;
mod grants;
mod harness;
mod id;
mod imitation;
mod layers;
mod mcp;
mod mesh;
mod messaging;
mod original;
mod peer;
#[cfg(feature = "postgres")]
mod postgres;
mod reliability;
mod reserve;
mod state;
mod tasks;
#[cfg(feature = "postgres")]
#[path = "../../src/broker/store/pg/testdb.rs"]
mod testdb;
mod tls;
mod topics;
mod up;
mod vault;
mod webhooks;
