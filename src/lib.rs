//! microbox: run a command in an ephemeral, isolated Linux sandbox.
//!
//! The library exists so that `fuzz/` and unit tests can reach the pure parts
//! (`cli`, `units`, `security` tables); the binary is `main.rs`.

#![deny(unsafe_code)]

pub mod cgroup;
pub mod cli;
pub mod error;
pub mod fs;
pub mod log;
pub mod net;
pub mod ns;
pub mod sandbox;
pub mod security;
pub mod spec;
pub mod state;
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
