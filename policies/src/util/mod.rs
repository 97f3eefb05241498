//! Small helpers every step may use: they import nothing of the crate.

pub mod der;
pub mod digest;
pub mod lease;
pub mod text;
pub mod time;
