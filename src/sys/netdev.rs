//! Bringing an interface up with SIOCSIFFLAGS: three syscalls instead of an
//! rtnetlink exchange, enough for `lo` in a new network namespace.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// From `<linux/sockios.h>`, typed as each libc's ioctl request (glibc takes
/// `c_ulong`, musl `c_int`), which libc's own constants are not.
const SIOCGIFFLAGS: libc::Ioctl = 0x8913;
const SIOCSIFFLAGS: libc::Ioctl = 0x8914;

/// Sets IFF_UP on interface `name` through the socket `sock` (any AF_INET socket).
pub fn set_up(sock: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    let up = libc::c_short::try_from(libc::IFF_UP)
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `req` is a valid ifreq that lives across both calls; the kernel
    // reads the name and reads/writes ifr_flags only.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), SIOCGIFFLAGS, &mut req) == -1 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= up;
        if libc::ioctl(sock.as_raw_fd(), SIOCSIFFLAGS, &req) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
