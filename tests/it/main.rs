//! The integration suite: one test binary, one module per area.

mod broker;
mod cm;
mod docs;
mod harness;
mod id;
mod messaging;
mod peer;
