//! seccomp(2) and the user-notification ioctls: filters loaded without
//! seccompiler's loader (which always sets no_new_privs and cannot ask for a
//! listener), and the supervisor's side of the listener.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Installs `filter` on the calling thread; with `listener`, the filter's
/// SECCOMP_RET_USER_NOTIF answers go to the returned descriptor
/// (SECCOMP_FILTER_FLAG_NEW_LISTENER, close-on-exec). Needs CAP_SYS_ADMIN in
/// the caller's user namespace, or no_new_privs.
pub fn set_filter(
    filter: &[seccompiler::sock_filter],
    listener: bool,
) -> io::Result<Option<OwnedFd>> {
    let len = u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let prog = libc::sock_fprog {
        len,
        // seccompiler's sock_filter is #[repr(C)] with the kernel's layout
        // (u16, u8, u8, u32), the same as libc's.
        filter: filter.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    let flags = if listener {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    // SAFETY: `prog` and the instructions it points to outlive the call; the
    // kernel only copies them in.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if !listener {
        return Ok(None);
    }
    let fd = i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: with NEW_LISTENER the kernel returned a new descriptor that
    // nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Whether the kernel knows the filter action `action`
/// (SECCOMP_GET_ACTION_AVAIL).
pub fn action_available(action: u32) -> bool {
    // SAFETY: the kernel reads one u32 from the pointer, which outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0u32,
            &action as *const u32,
        )
    };
    ret == 0
}

/// One syscall a filter sent to the listener; its caller waits for the answer.
#[derive(Debug, Clone, Copy)]
pub struct Notification {
    pub id: u64,
    pub nr: i32,
}

/// Takes the next pending notification (SECCOMP_IOCTL_NOTIF_RECV). Blocks
/// if none is pending: call it when poll says the listener is readable.
/// ENOENT means its caller died in between.
pub fn receive(listener: BorrowedFd<'_>) -> io::Result<Notification> {
    // The kernel requires the buffer zeroed.
    // SAFETY: seccomp_notif is plain old data; all zeroes is a valid value.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one seccomp_notif into `notif`, which is
    // exactly that type and outlives the call.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut notif as *mut libc::seccomp_notif,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Notification {
        id: notif.id,
        nr: notif.data.nr,
    })
}

/// Answers notification `id`: its syscall fails with `errno` and is not run
/// (SECCOMP_IOCTL_NOTIF_SEND). ENOENT means its caller died in between.
pub fn fail(listener: BorrowedFd<'_>, id: u64, errno: i32) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp, which outlives the call.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &resp as *const libc::seccomp_notif_resp,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
