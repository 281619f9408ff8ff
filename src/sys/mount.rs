//! mount_setattr(2), which rustix lacks.

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;
use rustix::mount::MountAttrFlags;

/// `struct mount_attr` from `<linux/mount.h>`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `propagation` value that makes a mount private (`MS_PRIVATE`).
pub const PROPAGATION_PRIVATE: u64 = libc::MS_PRIVATE;

/// Sets `attr_set` on the mount `fd` refers to (an `open_tree` fd), and on every
/// mount below it when `recursive`; `propagation` 0 keeps the propagation type.
pub fn set_attr(
    fd: BorrowedFd<'_>,
    attr_set: MountAttrFlags,
    propagation: u64,
    recursive: bool,
) -> rustix::io::Result<()> {
    let attr = MountAttr {
        attr_set: attr_set.bits().into(),
        attr_clr: 0,
        propagation,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the empty path is a valid NUL-terminated string, `attr` lives across
    // the call and its size is passed; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::INVAL))
    } else {
        Ok(())
    }
}
