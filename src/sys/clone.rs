//! clone3 without a new stack: fork-like, so the child continues on a copy of
//! the caller's stack and memory.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `struct clone_args` from `<linux/sched.h>` (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` from `<linux/sched.h>`; libc does not define it.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

pub enum Forked {
    Child,
    Parent { pid: i32, pidfd: OwnedFd },
}

/// clone3 with `CLONE_PIDFD`, `flags` (namespace flags) and `SIGCHLD` as the
/// exit signal; `cgroup` places the child with `CLONE_INTO_CGROUP`.
///
/// The caller must be single-threaded: the child is a copy of this thread only,
/// and must end in `execve` or `_exit`.
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup =
            u64::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    }
    // SAFETY: `args` and `pidfd` outlive the call; the kernel reads `args` and writes
    // `pidfd`. With `stack == 0` the child runs on a copy of this stack, as after
    // fork(2); the caller guarantees a single thread, so no lock is held by a thread
    // that does not exist in the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => {
            // SAFETY: the kernel stored a new, owned pidfd because CLONE_PIDFD was set
            // and the call succeeded.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            let pid =
                i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
            Ok(Forked::Parent { pid, pidfd })
        }
    }
}

/// fork(2) for the sandbox init, which starts the command: the caller is single-threaded.
pub fn fork() -> io::Result<Option<i32>> {
    // SAFETY: fork has no memory-safety preconditions beyond a single-threaded
    // caller, which the process model guarantees (the clone3 child never spawns threads).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}
