//! Writing /etc/hosts, /etc/hostname and /etc/resolv.conf of an image root
//! (their contents are in the plan). They go into the overlay's upper layer,
//! so the image itself never changes.

use std::io::Write;
use std::os::fd::BorrowedFd;

use rustix::fs::{openat, unlinkat, AtFlags, Mode, OFlags};
use rustix::io::Errno;

/// Unlinks whatever the image has at `name` (a file, or a symlink such as
/// Ubuntu's resolv.conf -> ../run/...), then creates a fresh file without
/// following any link.
pub fn replace_file(dir: BorrowedFd<'_>, name: &str, content: &[u8]) -> std::io::Result<()> {
    match unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(err) => return Err(err.into()),
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = openat(dir, name, flags, Mode::from_raw_mode(0o644))?;
    std::fs::File::from(fd).write_all(content)
}
