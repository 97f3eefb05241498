//! What a request leaves behind: its record (SPEC §6), written by one
//! recorder the flow's steps report to; the hash chain that seals records;
//! the Envoy stats a finished record adds to.

pub mod chain;
pub mod metrics;
pub mod record;
pub mod recorder;
