//! Signal masks, signalfd and sigwaitinfo: the supervisor and init handle
//! signals synchronously, never in handlers.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A set of signal numbers.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    pub fn new(signals: &[i32]) -> SigSet {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it and sigaddset
        // only writes inside it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in signals {
                libc::sigaddset(&mut set, sig);
            }
            SigSet(set)
        }
    }
}

/// Blocks `set` in the calling thread (added to the current mask).
pub fn block(set: &SigSet) -> io::Result<()> {
    // SAFETY: `set` is an initialised sigset_t; the old mask is not requested.
    let ret = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unblocks every signal: the command must not inherit the supervisor's mask.
pub fn unblock_all() -> io::Result<()> {
    let empty = SigSet::new(&[]);
    // SAFETY: `empty` is an initialised sigset_t.
    let ret = unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty.0, std::ptr::null_mut()) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Restores the default action of `sig` (Rust's runtime ignores SIGPIPE, and an
/// ignored signal stays ignored across execve).
pub fn set_default(sig: i32) -> io::Result<()> {
    // SAFETY: SIG_DFL is a valid disposition for every catchable signal.
    if unsafe { libc::signal(sig, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A signalfd for `set`, which must be blocked already.
pub fn signalfd(set: &SigSet) -> io::Result<OwnedFd> {
    // SAFETY: `set` is an initialised sigset_t; -1 asks for a new fd.
    let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one pending signal number from a signalfd.
pub fn read_signalfd(fd: &OwnedFd) -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    // SAFETY: signalfd_siginfo is plain data; all-zero is valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: the buffer is `size` bytes of writable memory owned by `info`.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    if n == -1 {
        return Err(io::Error::last_os_error());
    }
    i32::try_from(info.ssi_signo).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Waits for one signal of `set` (blocked) and returns its number.
pub fn wait(set: &SigSet) -> io::Result<i32> {
    loop {
        // SAFETY: `set` is initialised; no siginfo is requested.
        let sig = unsafe { libc::sigwaitinfo(&set.0, std::ptr::null_mut()) };
        if sig != -1 {
            return Ok(sig);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Sends `sig` to every process the caller may signal except itself: from a
/// pid namespace's init, every other process of the sandbox.
pub fn kill_all(sig: i32) -> io::Result<()> {
    // SAFETY: kill takes no pointers; pid -1 means every permitted process.
    if unsafe { libc::kill(-1, sig) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Stops the calling process (SIGSTOP, which cannot be blocked) until a
/// SIGCONT arrives: job control for a process that keeps SIGTSTP blocked.
pub fn stop_self() -> io::Result<()> {
    // SAFETY: kill takes no pointers; getpid cannot fail.
    if unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
