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

/// Where the kernel lists the process's threads, one directory entry each.
const TASK_DIR: &str = "/proc/self/task";

/// Refuses unless this process has exactly one thread. clone3 and fork copy the
/// calling thread only, so a lock another thread held at that moment (the
/// allocator's, stdout's) would stay held forever in the child, which allocates
/// (DESIGN.md section 2). One thread cannot become two before the clone: it is
/// the only one, and it is on its way there.
///
/// The count is the number of entries in /proc/self/task: open, getdents64,
/// close, 8 us a call (10,000 calls, static musl release build, Linux 6.18).
/// `Threads:` of /proc/self/status costs 23 us, since the kernel renders some
/// fifty other lines with it; `num_threads` of /proc/self/stat 16 us.
///
/// Without /proc the answer is a refusal, not a guess: microbox needs /proc
/// anyway (id maps are written and bind sources resolved through it), and init's
/// fork sees the sandbox's own /proc, which the mount plan always creates. Init
/// counts under the sandbox's seccomp filter, so `--deny-syscall` of open,
/// openat or getdents64 stops it here, as one of clone or wait4 would.
pub fn ensure_single_threaded() -> io::Result<()> {
    let unreadable = |err: io::Error| {
        let hint = if err.kind() == io::ErrorKind::NotFound {
            " (is /proc mounted?)"
        } else {
            ""
        };
        // The cause last: its " (os error N)" is where error::describe cuts.
        io::Error::new(
            err.kind(),
            format!("cannot count microbox's threads in {TASK_DIR}{hint}: {err}"),
        )
    };
    let mut threads = 0usize;
    for entry in std::fs::read_dir(TASK_DIR).map_err(unreadable)? {
        entry.map_err(unreadable)?;
        threads += 1;
    }
    if threads == 1 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "microbox has {threads} threads; it must be single-threaded"
        )))
    }
}

/// clone3 with `CLONE_PIDFD`, `flags` (namespace flags) and `SIGCHLD` as the
/// exit signal; `cgroup` places the child with `CLONE_INTO_CGROUP`.
///
/// Refuses unless the process is single-threaded ([`ensure_single_threaded`]):
/// the child is a copy of this thread only. It must end in `execve` or `_exit`.
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    ensure_single_threaded()?;
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
    // fork(2); ensure_single_threaded found this thread alone, so no lock is held by
    // a thread that does not exist in the child.
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

/// fork(2) for the sandbox init, which starts the command. Refuses unless the
/// process is single-threaded ([`ensure_single_threaded`]).
pub fn fork() -> io::Result<Option<i32>> {
    ensure_single_threaded()?;
    // SAFETY: fork has no memory-safety preconditions beyond a single-threaded
    // caller, which ensure_single_threaded has just checked.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Proof that [`ensure_single_threaded`] held a moment ago, for a fork
/// after the caller's /proc stopped showing it (`exec` joins the
/// container's mount namespace, whose procfs has no entry for it). Not
/// `Send`: it cannot travel to a thread made in between.
pub struct SingleThreaded(std::marker::PhantomData<*const ()>);

pub fn single_threaded() -> io::Result<SingleThreaded> {
    ensure_single_threaded().map(|()| SingleThreaded(std::marker::PhantomData))
}

/// fork(2) on the strength of an earlier check.
pub fn fork_single(_checked: SingleThreaded) -> io::Result<Option<i32>> {
    // SAFETY: as in `fork`; the proof says the process was single-threaded
    // when it was made, and the caller made no thread since (the proof is
    // consumed here and cannot have been sent to one).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

#[cfg(test)]
mod tests {
    use super::ensure_single_threaded;

    /// A second thread is refused, with the count in words and no errno (so no
    /// errno's hint is attached to it). The test harness runs tests on threads of
    /// its own already; the thread made here keeps the test from relying on that.
    #[test]
    fn a_second_thread_is_refused() {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let second = std::thread::spawn(move || {
            let _ = stopped.recv();
        });
        let result = ensure_single_threaded();
        drop(stop);
        second.join().expect("second thread");

        let err = result.expect_err("two threads at least");
        assert_eq!(err.raw_os_error(), None, "{err}");
        let text = err.to_string();
        let count = text
            .strip_prefix("microbox has ")
            .and_then(|rest| rest.strip_suffix(" threads; it must be single-threaded"))
            .and_then(|n| n.parse::<usize>().ok());
        assert!(count.is_some_and(|n| n >= 2), "{text}");
    }
}
