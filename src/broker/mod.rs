//! cm-broker: the self-hosted broker.

pub mod log;
pub mod net;
pub mod store;
