//! Where the tests find what they need (the binary, root, the test image) and
//! which leg they run on.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    Host,
    Vm,
}

#[derive(Debug, Clone)]
pub struct Env {
    pub bin: PathBuf,
    /// The test image; `None` for tests registered as needing the binary only.
    pub rootfs: Option<PathBuf>,
    pub leg: Leg,
    pub timeout: Duration,
}

/// What a test needs before it can run; a test whose needs are not met is
/// reported as ignored (or fails, in CI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// The microbox binary only: usage errors need neither root nor an image.
    Bin,
    /// Root and the test image.
    Image,
}

pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The VM boot that leaves / on the initramfs (MICROBOX_TEST_ROOT=initramfs),
/// where microbox moves and chroots and refuses what would undo that.
pub fn on_initramfs_root() -> bool {
    std::env::var("MICROBOX_TEST_ROOT").as_deref() == Ok("initramfs")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn leg() -> Leg {
    match std::env::var("MICROBOX_TEST_LEG").as_deref() {
        Ok("vm") => Leg::Vm,
        _ => Leg::Host,
    }
}

fn bin_path() -> PathBuf {
    std::env::var_os("MICROBOX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_microbox")))
}

fn rootfs_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MICROBOX_TEST_ROOTFS") {
        return Some(PathBuf::from(p));
    }
    // What `cargo xtask rootfs test` leaves behind, for a plain `cargo test`.
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/microbox/rootfs/test");
    built.is_dir().then_some(built)
}

fn timeout() -> Duration {
    let default = if leg() == Leg::Vm { 120 } else { 30 };
    let secs = std::env::var("MICROBOX_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

impl Needs {
    /// The environment for a test with these needs, or why it cannot run.
    pub fn env(self) -> Result<Env, String> {
        let bin = bin_path();
        if !bin.is_file() {
            return Err(format!(
                "microbox binary {} not found (MICROBOX_BIN)",
                bin.display()
            ));
        }
        let mut env = Env {
            bin,
            rootfs: None,
            leg: leg(),
            timeout: timeout(),
        };
        if self == Needs::Bin {
            return Ok(env);
        }
        if !is_root() {
            return Err("the integration tests need root".into());
        }
        let rootfs = rootfs_path()
            .ok_or("no test image: set MICROBOX_TEST_ROOTFS or run `cargo xtask rootfs test`")?;
        for needed in ["bin/probe", "bin/busybox", "bin/sh"] {
            if std::fs::symlink_metadata(rootfs.join(needed)).is_err() {
                return Err(format!("test image {} has no /{needed}", rootfs.display()));
            }
        }
        env.rootfs = Some(rootfs);
        Ok(env)
    }
}

impl Env {
    pub fn rootfs(&self) -> &Path {
        self.rootfs
            .as_deref()
            .expect("this test must be registered as needing the test image")
    }

    /// The test image as a `--fs` argument.
    pub fn fs_args(&self) -> Vec<OsString> {
        vec!["--fs".into(), self.rootfs().into()]
    }
}
