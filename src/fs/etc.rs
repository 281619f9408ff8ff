//! /etc/hosts, /etc/hostname and /etc/resolv.conf for an image root. They are
//! written into the overlay's upper layer, so the image itself never changes.
#![forbid(unsafe_code)]

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{openat, unlinkat, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::resolve;
use crate::error::{Error, Result};
use crate::spec::{Spec, DEFAULT_DNS};

pub fn write(root_fd: BorrowedFd<'_>, spec: &Spec, hostname: &str) -> Result<()> {
    // /etc may be a symlink in the image; resolved in the root it stays inside.
    let etc = resolve::open_in_root(root_fd, Path::new("/etc"), Some(resolve::Kind::Dir))
        .map_err(|e| Error::os("open /etc in the sandbox", e))?;
    // An O_PATH fd cannot be a dirfd for creating files; reopen it as a directory.
    let etc = openat(
        etc.as_fd(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os("open /etc in the sandbox", e))?;

    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    let mut resolv = String::new();
    if spec.dns.is_empty() {
        for server in DEFAULT_DNS {
            resolv.push_str(&format!("nameserver {server}\n"));
        }
    } else {
        for server in &spec.dns {
            resolv.push_str(&format!("nameserver {server}\n"));
        }
    }
    for (name, content) in [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        replace_file(etc.as_fd(), name, content.as_bytes())
            .map_err(|e| Error::os(format_args!("write /etc/{name} in the sandbox"), e))?;
    }
    Ok(())
}

/// Unlinks whatever the image has at `name` (a file, or a symlink such as
/// Ubuntu's resolv.conf -> ../run/...), then creates a fresh file without
/// following any link.
fn replace_file(dir: BorrowedFd<'_>, name: &str, content: &[u8]) -> std::io::Result<()> {
    match unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(err) => return Err(err.into()),
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = openat(dir, name, flags, Mode::from_raw_mode(0o644))?;
    std::fs::File::from(fd).write_all(content)
}
