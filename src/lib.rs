//! microbox: run a command in an ephemeral, isolated Linux sandbox.
//!
//! The binary is `main.rs`; this library is its body. Public is only what a crate
//! outside this one calls, so that nothing else becomes an interface by accident:
//! - `main.rs`: `cli::{parse, help_text, requested_log_format, Command}`,
//!   `log::{configure, error}`, `sandbox::run`, `spec::LogLevel`, and
//!   `security::syscalls::{Arch, highest}` for `--version`;
//! - `fuzz/`: `cli::parse` with the `Spec` fields its target checks, and the
//!   `units` parsers and formatters;
//! - the integration tests and xtask, which check against or reuse the tables
//!   themselves rather than copies: `cli::OPTIONS` (`long`, `takes_value`),
//!   `security::syscalls::unnamed_ranges`, `security::caps::{DEFAULT, name}`,
//!   `security::seccomp::{DEFAULT_EPERM, DEFAULT_ENOSYS}`;
//! - `error::Error`, which `cli::parse` and `sandbox::run` return.
//!
//! Everything else is `pub(crate)` or private; unit tests live inside the crate
//! and need nothing public. `unsafe` is denied crate-wide except in `sys`, which
//! is private: its wrappers are safe only within this crate's process model.

#![deny(unsafe_code)]

mod cgroup;
pub mod cli;
pub mod error;
mod fs;
pub mod log;
mod net;
mod ns;
pub mod sandbox;
pub mod security;
pub mod spec;
mod state;
// The one place allowed `unsafe`: every block there carries a `// SAFETY:` line.
#[allow(unsafe_code)]
mod sys;
pub mod units;

/// A fresh, empty directory under the system temp dir for one unit test's fake
/// host tree, named by the test and the process.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
fn test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "microbox-{name}-{}",
        rustix::process::getpid().as_raw_nonzero()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
