//! Checks against the host that still change nothing: run before any cgroup,
//! mount or process is created, so a bad input leaves no trace.

use crate::error::{Error, Result};
use crate::spec::{FsMode, NetMode, Spec, UsernsMode};

pub fn check(spec: &Spec) -> Result<()> {
    let rootless = crate::ns::rootless();
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
        // Root reads any directory; a user must be able to, to stack the
        // overlay on it.
        let access = rustix::fs::Access::READ_OK | rustix::fs::Access::EXEC_OK;
        if rootless && rustix::fs::access(dir, access).is_err() {
            return Err(Error::usage(format!(
                "--fs '{}': you (uid {}) cannot read this directory; the sandbox's root \
                 filesystem must be readable by the user who runs microbox",
                dir.display(),
                rustix::process::getuid().as_raw()
            )));
        }
    }
    if rootless {
        check_rootless(spec)?;
        crate::state::ensure_run_dir()?;
    }
    Ok(())
}

/// What a user without root cannot have: each refused with its reason,
/// never run with less isolation than asked for.
fn check_rootless(spec: &Spec) -> Result<()> {
    if spec.net == NetMode::Bridge {
        return Err(Error::runtime(
            "--net bridge needs root: it makes a bridge, veth pairs and nftables rules \
             in the host's network namespace, which a user cannot; use --net none or \
             --net host (rootless mode has no userspace networking yet)",
        ));
    }
    if spec.userns == UsernsMode::Host {
        return Err(Error::runtime(
            "--userns host needs root: without a user namespace of its own, a user \
             cannot mount the sandbox's filesystems",
        ));
    }
    Ok(())
}

pub fn require_root() -> Result<()> {
    if crate::ns::rootless() {
        return Err(Error::runtime(
            "--net-cleanup needs root: it removes a bridge and its nftables tables from the host's network namespace",
        ));
    }
    Ok(())
}
