//! The integration suite: one test binary, one module per area.

mod bridge;
mod broker;
mod claude;
mod client;
mod cm;
mod docs;
mod files;
mod harness;
mod id;
mod mcp;
mod mesh;
mod messaging;
mod peer;
mod state;
mod topics;
mod up;
