//! microbox: run a command in an ephemeral, isolated Linux sandbox.
//!
//! The binary is `main.rs`; this library is its body. Public is only what a crate
//! outside this one calls, so that nothing else becomes an interface by accident:
//! - `main.rs`: `cli::{parse, help_text, requested_log_format, Command}`,
//!   `log::{configure, error}`, `sandbox::run`, `spec::LogLevel`, and
//!   `security::syscalls::{Arch, highest}` for `--version`;
//! - `fuzz/`: `cli::parse` with the `Spec` fields its target checks, the
//!   `units` parsers and formatters, `net::read_netlink_reply`, the
//!   account-file reader and range search of the id leases (`ids`), and the
//!   `--rlimit` parser and the report's JSON strings (`limits`);
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
pub mod net;
mod ns;
pub mod oci;
pub mod profile;
mod report;
mod rlimit;
pub mod sandbox;
pub mod security;
pub mod spec;
mod state;
// The one place allowed `unsafe`: every block there carries a `// SAFETY:` line.
#[allow(unsafe_code)]
mod sys;
pub mod units;

/// microbox's version (for xtask's archives and man page, whose own
/// CARGO_PKG_VERSION is xtask's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The id-range lease's readers of /etc/passwd, /etc/group, /etc/subuid and
/// /etc/subgid, and its search of the pool, for the fuzz target.
pub mod ids {
    pub use crate::ns::subid::{name_of, range_of};
    pub use crate::state::{candidates, taken_ids, RANGE};
}

/// The reader of a program's interpreter (ELF PT_INTERP, `#!`), for the fuzz
/// target.
pub mod programs {
    pub use crate::sandbox::interp::{interpreter_of, Interpreter};
}

/// `--rlimit`'s parser and the run report's JSON string writer, for the
/// fuzz target.
pub mod limits {
    pub use crate::report::json_string;
    pub use crate::rlimit::{names as rlimit_names, parse as parse_rlimit, Rlimit};
}

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

/// For a unit test that needs a network namespace of its own (so nothing it
/// makes reaches the host's network): the test executable runs test `name`
/// again under `unshare --net`, where `inside` runs. Returns the inner run's
/// stdout to the outer one, after checking it passed; None in the inner run,
/// and when not root (a unit test must pass unprivileged: it says skipped).
#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
fn in_new_netns(name: &str, inside: impl FnOnce()) -> Option<String> {
    const MARK: &str = "MICROBOX_TEST_IN_NETNS";
    if std::env::var_os(MARK).is_some() {
        inside();
        return None;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: {name} needs root for a network namespace");
        return None;
    }
    let out = std::process::Command::new("unshare")
        .args(["--net", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(MARK, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && all.contains("1 passed"), "{all}");
    Some(stdout)
}
