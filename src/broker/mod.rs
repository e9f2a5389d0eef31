//! cm-broker: the self-hosted broker.

pub mod auth;
mod http;
pub mod hub;
pub mod log;
pub mod net;
pub mod store;
