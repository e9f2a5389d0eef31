//! The integration suite: one test binary, one module per area.

mod bench;
mod broker;
mod claude;
mod client;
mod cm;
mod docs;
mod harness;
mod id;
mod mesh;
mod messaging;
mod peer;
mod up;
