//! The integration suite: one test binary, one module per area.

mod attacks;
mod broker;
mod claude;
mod client;
mod cm;
mod docs;
mod fuzz;
mod harness;
mod id;
mod mesh;
mod messaging;
mod peer;
mod reliability;
mod up;
