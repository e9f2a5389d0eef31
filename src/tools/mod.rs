//! Each tool: its flag table and what it does. `src/bin/<name>.rs` only calls [`crate::cli::main`] with one of these.

use crate::cli::Tool;

pub mod broker;
pub mod cm;
pub mod id;
pub mod inbox;
pub mod peers;
pub mod pipe;
pub mod send;

/// Every tool, for `cm help`, the man pages' SEE ALSO and the test that keeps `man/` and `completions/` current.
pub static ALL: &[&Tool] = &[
    &cm::TOOL,
    &broker::TOOL,
    &id::TOOL,
    &inbox::TOOL,
    &peers::TOOL,
    &pipe::TOOL,
    &send::TOOL,
];
