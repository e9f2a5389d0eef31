//! Each tool: its flag table and what it does. `src/bin/<name>.rs` only calls [`crate::cli::main`] with one of these.

use crate::cli::Tool;

pub mod bench;
pub mod broker;
pub mod cm;
pub mod doctor;
pub mod id;
pub mod inbox;
pub mod install;
pub mod launch;
pub mod mesh;
pub mod peers;
pub mod pipe;
pub mod send;
pub mod uninstall;
pub mod up;

/// Every tool, for `cm help`, the man pages' SEE ALSO and the test that keeps `man/` and `completions/` current.
pub static ALL: &[&Tool] = &[
    &bench::TOOL,
    &broker::TOOL,
    &cm::TOOL,
    &doctor::TOOL,
    &id::TOOL,
    &inbox::TOOL,
    &install::TOOL,
    &launch::TOOL,
    &mesh::TOOL,
    &peers::TOOL,
    &pipe::TOOL,
    &send::TOOL,
    &uninstall::TOOL,
    &up::TOOL,
];
