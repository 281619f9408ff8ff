//! The netlink socket options rustix does not wrap.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// From `<linux/netlink.h>`.
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;

/// Asks for extended acks (the kernel's error text with each NLMSG_ERROR) and
/// capped acks (the echoed request cut to its header, so a reply always fits).
pub fn enable_ext_ack(sock: BorrowedFd<'_>) -> io::Result<()> {
    for option in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
        let on: libc::c_int = 1;
        // SAFETY: `on` is a live c_int for the duration of the call, and the
        // length passed is its size; the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                SOL_NETLINK,
                option,
                std::ptr::from_ref(&on).cast(),
                libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
            )
        };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
