//! cm-broker: the self-hosted broker.

pub mod net;
pub mod store;
