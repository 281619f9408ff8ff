//! microbox: run a command in an ephemeral, isolated Linux sandbox.
//!
//! The library exists so that `fuzz/` and unit tests can reach the pure parts
//! (`cli`, `units`, `security` tables); the binary is `main.rs`.

/// microbox's only footprint on the host's filesystem: lock files of running
/// sandboxes (`sandboxes/`, `gc.lock`), and the mount point each sandbox puts
/// its staging tmpfs on inside its own mount namespace.
pub const RUN_DIR: &str = "/run/microbox";

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
