//! Each tool: its flag table and what it does. [`crate::multicall`] runs them as one executable, `cm`;
//! `src/bin/cm-broker.rs` runs the broker's.

use crate::cli::Tool;

pub mod apikey;
pub mod bench;
pub mod bridge;
pub mod broker;
pub mod cm;
pub mod context;
pub mod doctor;
pub mod file;
pub mod grant;
pub mod id;
pub mod inbox;
pub mod install;
pub mod launch;
pub mod mcp;
pub mod memory;
pub mod mesh;
pub mod notify;
pub mod peers;
pub mod pipe;
pub mod profile;
pub mod remind;
pub mod reserve;
pub mod send;
pub mod state;
pub mod task;
pub mod topic;
pub mod uninstall;
pub mod up;
pub mod vault;
pub mod webhook;

/// Every tool, for `cm help`, the man pages' SEE ALSO and the test that keeps `man/` and `completions/` current.
pub static ALL: &[&Tool] = &[
    &apikey::TOOL,
    &bench::TOOL,
    &bridge::TOOL,
    &broker::TOOL,
    &cm::TOOL,
    &context::TOOL,
    &doctor::TOOL,
    &file::TOOL,
    &grant::TOOL,
    &id::TOOL,
    &inbox::TOOL,
    &install::TOOL,
    &launch::TOOL,
    &mcp::TOOL,
    &memory::TOOL,
    &mesh::TOOL,
    &notify::TOOL,
    &peers::TOOL,
    &pipe::TOOL,
    &profile::TOOL,
    &remind::TOOL,
    &reserve::TOOL,
    &send::TOOL,
    &state::TOOL,
    &task::TOOL,
    &topic::TOOL,
    &uninstall::TOOL,
    &up::TOOL,
    &vault::TOOL,
    &webhook::TOOL,
];
