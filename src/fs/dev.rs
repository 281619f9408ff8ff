//! A minimal /dev on a fresh tmpfs: the six harmless character devices bound
//! from the host (a user namespace cannot mknod), a private devpts, shm, mqueue
//! and the usual links. Nothing from the image's /dev is used.
#![forbid(unsafe_code)]

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{fstat, major, minor, open, symlink, FileType, Mode, OFlags};
use rustix::mount::{mount_bind, MountFlags};

use super::{fd_path, mount_fs, resolve};
use crate::error::{Error, Result};

/// name, major, minor: what every program expects and nothing that reaches hardware.
/// The sandbox's own pty instance. `max=1024`: without a limit one sandbox
/// could take every pty up to kernel.pty.max less the host's reserve and make
/// pty allocation fail in every other sandbox; 1024 is more than any terminal
/// multiplexer or test harness opens.
const DEVPTS_OPTIONS: &str = "newinstance,ptmxmode=0666,mode=0620,gid=5,max=1024";

const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Opens a host device node by path and checks that it is the character device
/// it claims to be, so a replaced node is never bound into a sandbox.
fn open_host_device(name: &str, want_major: u32, want_minor: u32) -> Result<OwnedFd> {
    let path = format!("/dev/{name}");
    let fd = open(
        path.as_str(),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os(format_args!("open host {path}"), e))?;
    let st = fstat(&fd).map_err(|e| Error::os(format_args!("stat host {path}"), e))?;
    let is_char = FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice;
    if !is_char || major(st.st_rdev) != want_major || minor(st.st_rdev) != want_minor {
        return Err(Error::runtime(format!(
            "host {path} is not the character device {want_major}:{want_minor}; refusing to use it"
        )));
    }
    Ok(fd)
}

pub fn open_host_null() -> Result<OwnedFd> {
    open_host_device("null", 1, 3)
}

pub fn build(root: &str, root_fd: BorrowedFd<'_>) -> Result<()> {
    let target = resolve::open_no_symlinks(root_fd, Path::new("/dev"), Some(resolve::Kind::Dir))
        .map_err(|e| {
            Error::os(
                "prepare /dev in the sandbox (is /dev a symlink in the image?)",
                e,
            )
        })?;
    mount_fs(
        "tmpfs",
        fd_path(&target).as_str(),
        // nodev: a node made here with CAP_MKNOD (kept under --userns host) cannot
        // be opened. The six devices below are bind mounts with their own flags.
        MountFlags::NOSUID | MountFlags::NODEV,
        "mode=0755,size=65536k",
    )
    .map_err(|e| Error::os("mount tmpfs on /dev", e))?;
    let dev = format!("{}/dev", root.trim_end_matches('/'));

    for &(name, maj, min) in DEVICES {
        let host = open_host_device(name, maj, min)?;
        let path = format!("{dev}/{name}");
        std::fs::File::create(&path)
            .map_err(|e| Error::os(format_args!("create /dev/{name}"), e))?;
        mount_bind(fd_path(&host).as_str(), path.as_str())
            .map_err(|e| Error::os(format_args!("bind host /dev/{name} into the sandbox"), e))?;
    }
    let private = MountFlags::NOSUID | MountFlags::NOEXEC;
    for (name, fstype, data, flags) in [
        // Not nodev: the ptys are device nodes of this devpts instance.
        ("pts", "devpts", DEVPTS_OPTIONS, private),
        (
            "shm",
            "tmpfs",
            "mode=1777,size=65536k",
            private | MountFlags::NODEV,
        ),
        ("mqueue", "mqueue", "", private | MountFlags::NODEV),
    ] {
        let path = format!("{dev}/{name}");
        std::fs::create_dir(&path).map_err(|e| Error::os(format_args!("create /dev/{name}"), e))?;
        mount_fs(fstype, path.as_str(), flags, data)
            .map_err(|e| Error::os(format_args!("mount {fstype} on /dev/{name}"), e))?;
    }
    for &(name, target) in LINKS {
        let path = format!("{dev}/{name}");
        symlink(target, path.as_str())
            .map_err(|e| Error::os(format_args!("create /dev/{name}"), e))?;
    }
    Ok(())
}
