//! The integration suite: one test binary, one module per area.

mod claude;
mod cm;
mod docs;
mod id;
