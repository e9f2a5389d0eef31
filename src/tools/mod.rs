//! Each tool: its flag table and what it does.

pub mod broker;
