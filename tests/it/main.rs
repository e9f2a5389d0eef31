//! The integration suite: one test binary, one module per area.

mod broker;
mod claude;
mod cm;
mod docs;
mod harness;
mod id;
