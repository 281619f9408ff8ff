//! Shared harness of the privileged integration tests: finds the microbox binary and
//! the test image, decides run, ignore or fail, runs microbox with a timeout, parses
//! the probe's `key=value` output, and compares host snapshots taken before and after
//! every run so that a leaked mount, cgroup, link, state file or process fails the
//! test that caused it.
//!
//! Environment: MICROBOX_BIN (default: the binary cargo built), MICROBOX_TEST_ROOTFS
//! (busybox image with the static probe at /bin/probe), MICROBOX_TEST_LEG (host|vm),
//! CI ("true": a test that cannot run fails instead of being ignored),
//! MICROBOX_TEST_TIMEOUT (seconds per microbox run).

mod env;
mod files;
mod modes;
mod netns;
mod run;
pub mod selftest;
mod snapshot;
mod trial;

pub use env::{is_root, on_initramfs_root, Env, Leg, Needs};
pub use files::*;
pub use modes::*;
pub use netns::holder;
pub use run::*;
pub use snapshot::*;
pub use trial::{quiet_skips, skip, trial};
