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

/// `MOUNT_ATTR_IDMAP` from `<linux/mount.h>`.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Sets `attr_set` on the mount `fd` refers to (an `open_tree` fd), and on every
/// mount below it when `recursive`; `propagation` 0 keeps the propagation type.
pub fn set_attr(
    fd: BorrowedFd<'_>,
    attr_set: MountAttrFlags,
    propagation: u64,
    recursive: bool,
) -> rustix::io::Result<()> {
    mount_setattr(fd, attr_set.bits().into(), propagation, None, recursive)
}

/// Makes the detached mount `fd` (and every mount below it when `recursive`)
/// an idmapped mount: its files' on-disk ids are read and written through the
/// id maps of the user namespace `userns`.
pub fn set_idmap(
    fd: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> rustix::io::Result<()> {
    mount_setattr(fd, MOUNT_ATTR_IDMAP, 0, Some(userns), recursive)
}

fn mount_setattr(
    fd: BorrowedFd<'_>,
    attr_set: u64,
    propagation: u64,
    userns: Option<BorrowedFd<'_>>,
    recursive: bool,
) -> rustix::io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation,
        userns_fd: userns.map_or(0, |fd| u64::from(fd.as_raw_fd().unsigned_abs())),
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
