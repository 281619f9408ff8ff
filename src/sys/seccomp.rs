//! seccomp(SECCOMP_SET_MODE_FILTER) without no_new_privs, which seccompiler's
//! loader always sets: a process with CAP_SYS_ADMIN in its user namespace may
//! load a filter and still let setuid binaries of its own ids work.

use std::io;

/// Installs `filter` on the calling thread. Needs CAP_SYS_ADMIN in the
/// caller's user namespace (or no_new_privs, set by someone else).
pub fn set_filter(filter: &[seccompiler::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let prog = libc::sock_fprog {
        len,
        // seccompiler's sock_filter is #[repr(C)] with the kernel's layout
        // (u16, u8, u8, u32), the same as libc's.
        filter: filter.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `prog` and the instructions it points to outlive the call; the
    // kernel only copies them in.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
