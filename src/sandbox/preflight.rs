//! Checks against the host that still change nothing: run before any cgroup,
//! mount or process is created, so a bad input leaves no trace.

use crate::error::{Error, Result};
use crate::spec::{FsMode, Spec};

pub fn check(spec: &Spec) -> Result<()> {
    if let FsMode::Dir(dir) = &spec.fs {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::usage(format!(
                    "--fs '{}': not a directory",
                    dir.display()
                )))
            }
            Err(err) => {
                return Err(Error::usage(format!(
                    "--fs '{}': {}",
                    dir.display(),
                    crate::error::describe(&err)
                )))
            }
        }
    }
    require_root()
}

pub fn require_root() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(Error::runtime(
            "microbox must run as root (rootless mode is not supported yet)",
        ));
    }
    Ok(())
}
