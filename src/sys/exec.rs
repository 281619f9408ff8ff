//! execve, _exit and fd hygiene for the last steps before the command runs.

use std::ffi::{CStr, CString};
use std::io;

/// Replaces the process image. Returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: every pointer comes from a CString borrowed for the duration of the call,
    // and both arrays end with a null pointer as execve requires.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Ends the process at once, without running atexit handlers or unwinding: the
/// only way out of a clone3/fork child, whose Rust state is a copy of the parent's.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// pause(2) forever: a helper child whose only job is to exist until its
/// parent kills it (the holder of a user namespace while its maps are written).
pub fn wait_to_be_killed() -> ! {
    loop {
        // SAFETY: pause takes nothing and only returns after a signal handler,
        // of which a clone3 child with the parent's dispositions has none it runs.
        unsafe { libc::pause() };
    }
}

/// close_range(first, ~0, 0): closes every fd from `first` up.
pub fn close_from(first: u32) -> io::Result<()> {
    close_range(first, u32::MAX)
}

/// close_range(first, last, 0).
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range takes integers only; closing fds this process does not use
    // any more is the point (owners of those fds are never used again after this).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC): every fd from `first` up is
/// closed at the next execve, and stays usable until then.
pub fn mark_cloexec_from(first: u32) -> io::Result<()> {
    // CLOSE_RANGE_CLOEXEC from <linux/close_range.h>.
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range takes integers only; marking fds close-on-exec
    // changes no memory and no fd this process uses before its execve.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Closes every fd from `first` up except those in `keep`: a process about
/// to run the container's code keeps nothing of microbox's but what it
/// still needs (its channel, the start fifo).
pub fn close_from_except(first: u32, keep: &[u32]) -> io::Result<()> {
    let mut keep: Vec<u32> = keep.iter().copied().filter(|&fd| fd >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = first;
    for fd in keep {
        if fd > from {
            close_range(from, fd - 1)?;
        }
        match fd.checked_add(1) {
            Some(next) => from = next,
            None => return Ok(()),
        }
    }
    close_range(from, u32::MAX)
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): runs the program an fd
/// holds (a sealed memfd copy of microbox). Returns only on failure.
pub fn execve_fd(fd: std::os::fd::BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    use std::os::fd::AsRawFd;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and point into CStrings that
    // outlive the call; the empty path is a valid C string; on success the
    // call does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}
