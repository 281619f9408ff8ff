//! microbox: run a command in an ephemeral, isolated Linux sandbox.
//!
//! The library exists so that `fuzz/` and unit tests can reach the pure parts
//! (`cli`, `units`, `security` tables); the binary is `main.rs`.

pub mod cgroup;
pub mod cli;
pub mod error;
pub mod fs;
pub mod log;
pub mod net;
pub mod sandbox;
pub mod security;
pub mod spec;
pub mod sys;
pub mod units;
