//! A descriptor microbox did not open itself, named on the command line
//! (`--report-fd N`), whether stdio is a directory; and the number of online CPUs, for `--cpu-time`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A close-on-exec copy of descriptor `fd`, which microbox inherited (EBADF
/// if it is not open). The number itself stays open, for the caller's sake
/// when it is 0, 1 or 2; above those it is made close-on-exec, so that no
/// program microbox starts inherits it.
pub fn duplicate_inherited(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC only duplicates a descriptor; a closed number
    // fails with EBADF and nothing else happens.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just made `copy`, and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(copy) };
    if fd > 2 {
        // SAFETY: sets a flag of this process's own descriptor table entry.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(owned)
}

/// Whether inherited descriptor `fd` is open on a directory (a closed or
/// unreadable one is not).
pub fn is_directory(fd: i32) -> bool {
    // SAFETY: fstat writes only into the zeroed struct it is given; a closed
    // number fails with EBADF and nothing else happens.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// CPUs online now: the most CPU time per second the sandbox could use.
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf reads a system value; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}
