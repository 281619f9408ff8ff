//! Descriptors microbox did not open itself: one named on the command line
//! (`--report-fd N`), and the number of online CPUs for `--cpu-time`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Takes ownership of descriptor `fd`, which microbox inherited, after
/// checking it is open (EBADF otherwise). The caller must not take the same
/// number twice, nor take one microbox opened itself.
pub fn take_inherited(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags; a closed number
    // fails with EBADF and nothing else happens.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the number is open (checked above), came from the command line,
    // and is taken once, before microbox opens anything that could reuse it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// CPUs online now: the most CPU time per second the sandbox could use.
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf reads a system value; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}
