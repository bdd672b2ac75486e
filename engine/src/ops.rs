//! The solver-node implementation of each LLB op, one op per file; [`crate::vertex`] holds the
//! single `match` that dispatches to them.

pub mod collect;
pub mod exec;
pub mod file;
pub mod merge;
mod network;
pub mod registry_layer;
pub mod source;
