//! The integration suite: one test binary, one module per area.

mod broker;
mod client;
mod cm;
mod docs;
mod harness;
mod id;
