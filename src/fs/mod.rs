//! The sandbox's filesystem, built inside the child's own mount namespace:
//! a new root (tmpfs, or an overlay of the image over a tmpfs), /proc, /dev,
//! /etc files and the user's bind mounts, then pivot_root into it.
//!
//! Paths that come from the image or the user are resolved with `resolve`
//! (never leaving the root); string paths are only built below mount points
//! microbox made itself and checked to be free of symlinks.
#![forbid(unsafe_code)]

mod bind;
pub use bind::{
    open_source, prepare as prepare_bind, reserved_destination, Prepared as PreparedBind,
};
mod dev;
mod etc;
mod proc;
pub mod resolve;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{open, Mode, OFlags};
use rustix::mount::{mount_change, mount_remount, MountFlags, MountPropagationFlags};

use crate::error::{Error, Result};
use crate::spec::{FsMode, Spec};

/// Where the child mounts its staging tmpfs, in its own mount namespace only.
/// The parent makes sure the directory exists; nothing is created on the host.
const STAGING: &str = crate::RUN_DIR;

/// The `/proc/self/fd/N` path of an fd, for syscalls that take paths: the
/// kernel follows the magic link to exactly the object the fd holds.
pub(crate) fn fd_path(fd: &OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

pub(crate) fn open_path(path: &str) -> Result<OwnedFd> {
    open(
        path,
        OFlags::PATH | OFlags::CLOEXEC | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| Error::os(format_args!("open {path}"), e))
}

/// mount(2) of a pseudo or memory filesystem (`source` = `fstype`).
pub(crate) fn mount_fs(
    fstype: &str,
    target: &str,
    flags: MountFlags,
    data: &str,
) -> rustix::io::Result<()> {
    let data = std::ffi::CString::new(data).map_err(|_| rustix::io::Errno::INVAL)?;
    rustix::mount::mount(fstype, target, fstype, flags, Some(data.as_c_str()))
}

/// Builds the whole filesystem and enters it (cwd `/`).
/// `binds` are the user's bind mounts, cloned by the supervisor before the
/// clone, in the order of `spec.mounts`.
pub fn setup(spec: &Spec, hostname: &str, binds: &[bind::Prepared]) -> Result<()> {
    // Nothing done from here on may propagate back to the host's mounts.
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| Error::os("make / private in the sandbox's mount namespace", e))?;
    let null = dev::open_host_null()?;

    match &spec.fs {
        FsMode::Host => {
            let root = open_path("/")?;
            if spec.readonly {
                read_only_host_tree(root.as_fd(), spec.storage)?;
            }
            hide_host_control_files()?;
            proc::mount_proc("/", root.as_fd(), &null)?;
            for prepared in binds {
                bind::attach(root.as_fd(), prepared, false)?;
            }
            rustix::process::chdir("/").map_err(|e| Error::os("change directory to /", e))
        }
        FsMode::Tmpfs => {
            mount_tmpfs(STAGING, spec.storage, "0755")?;
            build_root(spec, STAGING, binds, &null, hostname)?;
            enter(STAGING)
        }
        FsMode::Dir(image) => {
            mount_tmpfs(STAGING, spec.storage, "0755")?;
            let root = format!("{STAGING}/root");
            mount_overlay(image, &root)?;
            build_root(spec, &root, binds, &null, hostname)?;
            enter(&root)
        }
    }
}

/// `--readonly` with `--fs host`: every mount of the host tree becomes read-only
/// in this mount namespace (the host's own mounts are untouched), and /tmp and
/// /dev/shm get fresh private tmpfs so that programs still have scratch space.
fn read_only_host_tree(root: BorrowedFd<'_>, storage: u64) -> Result<()> {
    crate::sys::mount::set_attr(root, crate::sys::mount::MOUNT_ATTR_RDONLY, 0, true)
        .map_err(|e| Error::os("make the host tree read-only in the sandbox", e))?;
    let tmp = format!("mode=1777,size={storage}");
    for (dir, data) in [
        ("/tmp", tmp.as_str()),
        ("/dev/shm", "mode=1777,size=65536k"),
    ] {
        match mount_fs("tmpfs", dir, MountFlags::NOSUID | MountFlags::NODEV, data) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(Error::os(format_args!("mount tmpfs on {dir}"), e)),
        }
    }
    Ok(())
}

/// `--fs host` shares the host's files, but not the knobs that hold sandboxes in:
/// /sys (cgroupfs above all: a sandbox could raise its own limits or leave its
/// cgroup) becomes read-only, and /run/microbox (other sandboxes' lock files,
/// whose removal would make the next run collect live sandboxes) is hidden.
fn hide_host_control_files() -> Result<()> {
    match open(
        "/sys",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(sys) => {
            crate::sys::mount::set_attr(sys.as_fd(), crate::sys::mount::MOUNT_ATTR_RDONLY, 0, true)
                .map_err(|e| Error::os("make /sys read-only in the sandbox", e))?
        }
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(Error::os("open /sys", e)),
    }
    mount_fs(
        "tmpfs",
        STAGING,
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::RDONLY,
        "size=0",
    )
    .map_err(|e| Error::os(format_args!("hide {STAGING} in the sandbox"), e))
}

fn build_root(
    spec: &Spec,
    root: &str,
    binds: &[bind::Prepared],
    null: &OwnedFd,
    hostname: &str,
) -> Result<()> {
    let root_fd = open_path(root)?;
    proc::mount_proc(root, root_fd.as_fd(), null)?;
    dev::build(root, root_fd.as_fd())?;
    if let FsMode::Dir(_) = spec.fs {
        etc::write(root_fd.as_fd(), spec, hostname)?;
        let tmp =
            resolve::open_no_symlinks(root_fd.as_fd(), Path::new("/tmp"), Some(resolve::Kind::Dir))
                .map_err(|e| Error::os("create /tmp in the sandbox", e))?;
        if spec.readonly {
            mount_fs(
                "tmpfs",
                fd_path(&tmp).as_str(),
                MountFlags::NOSUID | MountFlags::NODEV,
                &format!("mode=1777,size={}", spec.storage),
            )
            .map_err(|e| Error::os("mount tmpfs on /tmp", e))?;
        }
    }
    for prepared in binds {
        bind::attach(root_fd.as_fd(), prepared, true)?;
    }
    if spec.readonly {
        // A bind remount changes only this mount's flags: /dev, /proc, /tmp and
        // the bind mounts keep theirs.
        let flags = MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV;
        mount_remount(root, flags, "").map_err(|e| Error::os("make the root read-only", e))?;
    }
    Ok(())
}

fn mount_tmpfs(target: &str, size: u64, mode: &str) -> Result<()> {
    let data = format!("size={size},mode={mode}");
    mount_fs(
        "tmpfs",
        target,
        MountFlags::NOSUID | MountFlags::NODEV,
        data.as_str(),
    )
    .map_err(|e| Error::os(format_args!("mount tmpfs on {target}"), e))
}

fn mount_overlay(image: &Path, target: &str) -> Result<()> {
    for dir in ["upper", "work", "root"] {
        let path = format!("{STAGING}/{dir}");
        std::fs::create_dir(&path).map_err(|e| Error::os(format_args!("create {path}"), e))?;
    }
    // The image goes in by fd: no escaping of ',' or ':' in its path, and no
    // second lookup of a path that could have changed.
    let lower = open(
        image,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os(format_args!("open rootfs {}", image.display()), e))?;
    let data = format!(
        "lowerdir={},upperdir={STAGING}/upper,workdir={STAGING}/work",
        fd_path(&lower)
    );
    mount_fs(
        "overlay",
        target,
        MountFlags::NOSUID | MountFlags::NODEV,
        data.as_str(),
    )
    .map_err(|e| {
        let mut err = Error::os(format_args!("mount overlay of {} on /", image.display()), e);
        if e == rustix::io::Errno::NODEV {
            err.msg
                .push_str(" (is the overlay module loaded? try 'modprobe overlay')");
        }
        err
    })
}

/// pivot_root(".", ".") stacks the old root on top of the new one; detaching it
/// leaves only the new root, with no `old_root` directory needed in the image.
/// The old root is private already (setup made `/` private recursively), so the
/// detach cannot propagate to the host.
fn enter(root: &str) -> Result<()> {
    rustix::process::chdir(root)
        .map_err(|e| Error::os(format_args!("change directory to {root}"), e))?;
    rustix::process::pivot_root(".", ".")
        .map_err(|e| Error::os("pivot_root into the new root", e))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| Error::os("detach the old root", e))?;
    rustix::process::chdir("/").map_err(|e| Error::os("change directory to /", e))
}
