//! The sandbox's filesystem, built inside the child's own mount namespace:
//! a new root (tmpfs, or an overlay of the image over a tmpfs), /proc, /dev,
//! /etc files and the user's bind mounts, then pivot_root into it.
//!
//! Plan, then execute: `plan` turns the Spec into a list of steps (plain data,
//! unit-tested without root), `apply` runs them with the new mount API. Paths
//! that come from the image or the user are resolved with `resolve` (never
//! leaving the root); every step finds its target below an fd.

mod apply;
mod bind;
pub mod container;
pub use bind::{
    host_owner, open_source, prepare as prepare_bind, reserved_destination,
    Prepared as PreparedBind,
};
mod dev;
mod etc;
mod idmap;
pub use idmap::{clone_image, idmap};
pub mod plan;
mod proc;
pub mod resolve;

use std::os::fd::BorrowedFd;

use crate::error::Result;
use crate::spec::Spec;

/// Runs an OCI container's mount plan (`container::plan`) with its root
/// tree and bind trees.
pub fn setup_container(
    steps: &[plan::Step],
    root: BorrowedFd<'_>,
    binds: &[bind::Prepared],
) -> Result<()> {
    apply::apply(
        steps,
        apply::Inputs {
            image: Some(root),
            binds,
        },
    )
}

/// Whether the host's root is the initramfs (`rootfs`), where pivot_root
/// is EINVAL. One statfs on other hosts: only a ramfs or tmpfs root can be
/// the rootfs, and only then is mountinfo read.
pub fn root_is_initramfs() -> bool {
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    let Ok(fs) = rustix::fs::statfs("/") else {
        return false;
    };
    #[allow(clippy::cast_sign_loss)] // f_type is a magic number, not a count
    let kind = fs.f_type as u64;
    if kind != RAMFS_MAGIC && kind != TMPFS_MAGIC {
        return false;
    }
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| root_fstype(&text) == Some("rootfs"))
        .unwrap_or(false)
}

/// The filesystem type of the mount on `/` that the process sees: the last
/// mountinfo line whose mount point is `/` (mounts stack in order).
pub fn root_fstype(mountinfo: &str) -> Option<&str> {
    mountinfo
        .lines()
        .rfind(|line| line.split(' ').nth(4) == Some("/"))
        .and_then(|line| line.split(" - ").nth(1))
        .and_then(|rest| rest.split(' ').next())
}

/// Builds the whole filesystem and enters it (cwd `/`). `image` is the image
/// directory's tree and `binds` the user's bind mounts (in the order of
/// `spec.mounts`), cloned by the supervisor before the clone.
pub fn setup(
    spec: &Spec,
    hostname: &str,
    image: Option<BorrowedFd<'_>>,
    binds: &[bind::Prepared],
    tty_group: bool,
    on_initramfs: bool,
) -> Result<()> {
    let mut steps = plan::plan(spec, hostname);
    if on_initramfs {
        for step in &mut steps {
            if *step == plan::Step::PivotIntoRoot {
                *step = plan::Step::MoveIntoRoot;
            }
        }
    }
    if !tty_group {
        // A rootless sandbox with the user's own ids alone has no group 5
        // (tty), and devpts refuses an unmapped gid: its ptys get the
        // opener's group instead.
        for step in &mut steps {
            if let plan::Step::Mount {
                fs: plan::Fs::Devpts,
                options,
                ..
            } = step
            {
                options.retain(|(key, _)| *key != "gid");
            }
        }
    }
    apply::apply(&steps, apply::Inputs { image, binds })
}

#[cfg(test)]
mod tests {
    use super::root_fstype;

    #[test]
    fn the_root_seen_is_the_last_mount_on_slash() {
        let initramfs = "1 1 0:2 / / rw - rootfs rootfs rw,size=1000k\n\
                         20 1 0:5 / /proc rw,nosuid - proc proc rw\n";
        assert_eq!(root_fstype(initramfs), Some("rootfs"));
        // switch_root: the new root is stacked on the rootfs.
        let switched = format!("{initramfs}30 1 7:0 / / rw,relatime - ext4 /dev/ram0 rw\n");
        assert_eq!(root_fstype(&switched), Some("ext4"));
        assert_eq!(root_fstype("garbage\n"), None);
        assert_eq!(root_fstype(""), None);
    }
}
