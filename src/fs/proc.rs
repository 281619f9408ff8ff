//! A fresh /proc for the new pid namespace, with runc's masked and read-only
//! paths: host information (kcore, keys, timers) hidden behind /dev/null or an
//! empty read-only tmpfs, and the kernel's knobs (sys, sysrq-trigger) read-only.
#![forbid(unsafe_code)]

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::io::Errno;
use rustix::mount::{mount_bind, mount_remount, MountFlags};

use super::{fd_path, mount_fs, resolve};
use crate::error::{Error, Result};

/// Files hidden by binding /dev/null over them.
const MASKED_FILES: &[&str] = &[
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "interrupts",
    // Beyond runc's list: sandbox root is host uid 0 for these root-only files,
    // which give kernel addresses (KASLR) and the host's key usage per user.
    "vmallocinfo",
    "key-users",
    // Host physical memory, page by page (0400): which frames hold what, the
    // layout a Rowhammer or page-cache side channel needs.
    "kpagecount",
    "kpageflags",
    "kpagecgroup",
    // Allocator state of the host kernel: slab caches (0400), free pages by
    // migrate type (0400), by order and by zone (0444, but of no use to a
    // sandbox, whose memory is its cgroup's): what heap grooming for a kernel
    // exploit watches, and other tenants' memory pressure.
    "slabinfo",
    "pagetypeinfo",
    "buddyinfo",
    "zoneinfo",
    // The host kernel's log (0400). The kernel wants CAP_SYSLOG in the initial
    // namespace, which only `--userns host --cap-add SYSLOG` gives; masked
    // anyway so that no option combination reads it.
    "kmsg",
    // Not a mainline file: an accounting module on this project's CI machines
    // (0400) that lists every host program's name and CPU time.
    "program_cpu",
    // Not mainline either, and seen on the same machines: host-wide pipe and
    // scheduler counters (0600). Any root-only sysctl is readable while sandbox
    // root is host root; an id-shifted sandbox root (issue 11) closes the class.
    "sys/fs/pipe-keep",
    "sys/kernel/sched_vcpu_pack",
];
/// Directories hidden by an empty read-only tmpfs.
/// `dynamic_debug` (Debian's kernels): its `control` file checks no capability,
/// so a sandbox could switch on every debug message of the host kernel.
const MASKED_DIRS: &[&str] = &["acpi", "asound", "scsi", "dynamic_debug"];
/// Made read-only by a bind of themselves.
const READ_ONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];

const PROC_FLAGS: MountFlags = MountFlags::NOSUID
    .union(MountFlags::NODEV)
    .union(MountFlags::NOEXEC);

/// Mounts proc on `<root>/proc` and masks it. `null` is the host's /dev/null,
/// opened and verified by microbox (never the sandbox's own /dev/null, which
/// an image could replace: CVE-2025-31133).
pub fn mount_proc(root: &str, root_fd: BorrowedFd<'_>, null: &OwnedFd) -> Result<()> {
    let target = resolve::open_no_symlinks(root_fd, Path::new("/proc"), Some(resolve::Kind::Dir))
        .map_err(|e| {
        Error::os(
            "prepare /proc in the sandbox (is /proc a symlink in the image?)",
            e,
        )
    })?;
    mount_fs("proc", fd_path(&target).as_str(), PROC_FLAGS, "")
        .map_err(|e| Error::os("mount proc on /proc", e))?;
    let proc = format!("{}/proc", root.trim_end_matches('/'));

    // Read-only binds first: they are not recursive, so a mask below one
    // (sys/fs/...) made before it would be covered by it.
    for name in READ_ONLY {
        let path = format!("{proc}/{name}");
        match mount_bind(path.as_str(), path.as_str()) {
            Ok(()) => {}
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(Error::os(format_args!("make /proc/{name} read-only"), e)),
        }
        // The first bind ignores MS_RDONLY; only a remount of the bind sets it.
        mount_remount(
            path.as_str(),
            MountFlags::BIND | MountFlags::RDONLY | PROC_FLAGS,
            "",
        )
        .map_err(|e| Error::os(format_args!("make /proc/{name} read-only"), e))?;
    }
    for name in MASKED_FILES {
        let path = format!("{proc}/{name}");
        match mount_bind(fd_path(null).as_str(), path.as_str()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::os(format_args!("mask /proc/{name}"), e)),
        }
    }
    for name in MASKED_DIRS {
        let path = format!("{proc}/{name}");
        match mount_fs(
            "tmpfs",
            path.as_str(),
            PROC_FLAGS | MountFlags::RDONLY,
            "size=0",
        ) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::os(format_args!("mask /proc/{name}"), e)),
        }
    }
    Ok(())
}
