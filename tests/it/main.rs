//! The privileged integration tests, one module per facility, in one test
//! executable (it links once, and the VM gets one file). The runner is
//! libtest-mimic: it takes libtest's flags (`--test-threads`, filters, `--exact`,
//! `--nocapture`, `--list`) and prints libtest's result lines, and a test that
//! cannot run on this machine (not root, no test image) shows as ignored with its
//! reason. With `CI=true` such a test fails instead.

#![allow(clippy::unwrap_used)]

mod harness;

mod cli;
mod exit_signals;
mod filesystem;
mod hostile;
mod isolation;
mod limits;
mod network;
mod seccomp_caps;

fn main() {
    harness::quiet_skips();
    let args = libtest_mimic::Arguments::from_args();
    let tests = [
        cli::tests(),
        exit_signals::tests(),
        filesystem::tests(),
        hostile::tests(),
        isolation::tests(),
        limits::tests(),
        network::tests(),
        seccomp_caps::tests(),
        harness::selftest::tests(),
    ]
    .into_iter()
    .flatten()
    .collect();
    libtest_mimic::run(&args, tests).exit();
}
