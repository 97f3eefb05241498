//! Small helpers every step may use: they import nothing of the crate.

pub mod digest;
pub mod lease;
pub mod time;
