//! Idmapped mounts (DESIGN.md section 9): the image and the user's binds as
//! detached trees whose on-disk ids are read and written through a user
//! namespace's maps, so a sandbox whose ids are shifted onto a leased host
//! range sees the image's owners as they are on disk (root's files are its
//! root's) and writes a bind's files as the bind's owner. Made by the parent,
//! which holds CAP_SYS_ADMIN over the host's filesystems: the child could not.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{open_tree, MountAttrFlags, OpenTreeFlags};

use crate::error::{Error, Result};
use crate::sys::mount::{set_attr, set_idmap, PROPAGATION_PRIVATE};

/// A detached, read-only, private clone of the image directory's mount (the
/// directory alone, as the overlay's lower layer sees it): the one lookup of
/// the image path, before the clone.
pub fn clone_image(dir: &Path) -> Result<OwnedFd> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    let tree =
        open_tree(CWD, dir, flags).map_err(|e| Error::os("open rootfs", e).on(dir.display()))?;
    // Private: the clone would otherwise join the peer group of a shared mount.
    set_attr(
        tree.as_fd(),
        MountAttrFlags::MOUNT_ATTR_RDONLY,
        PROPAGATION_PRIVATE,
        false,
    )
    .map_err(|e| Error::os("set mount flags on", e).on(dir.display()))?;
    Ok(tree)
}

/// Makes `tree` (a detached clone of `shown`, with every mount below it when
/// `recursive`) an idmapped mount through `userns`. A filesystem that cannot
/// be idmapped is an error, never a tree left with the host's ids.
pub fn idmap(
    tree: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
    shown: &Path,
) -> Result<()> {
    set_idmap(tree, userns, recursive).map_err(|errno| {
        let err = Error::os("make an idmapped mount of", errno).on(shown.display());
        match errno {
            // The kernel's answer for a filesystem without FS_ALLOW_IDMAP.
            Errno::INVAL => err.hint(format!(
                "its filesystem ({}) cannot be idmapped by this kernel: use --userns host, \
                 or keep it on one that can (ext4, xfs, btrfs; tmpfs from Linux 6.3)",
                fs_name(tree)
            )),
            _ => err,
        }
    })
}

/// The name of the filesystem `fd` is on, for an error message.
fn fs_name(fd: BorrowedFd<'_>) -> String {
    const NAMES: &[(u64, &str)] = &[
        (0x0102_1994, "tmpfs"),
        (0x794c_7630, "overlay"),
        (0x9fa0, "proc"),
        (0x6265_6572, "sysfs"),
        (0x6969, "nfs"),
        (0xff53_4d42, "cifs"),
        (0x6573_5546, "fuse"),
        (0x7371_7368, "squashfs"),
        (0xe0f5_e1e2, "erofs"),
        (0x858_458f6, "ramfs"),
        (0x1cd1, "devpts"),
        (0x2fc1_2fc1, "zfs"),
        (0xef53, "ext2/3/4"),
        (0x5846_5342, "xfs"),
        (0x9123_683e, "btrfs"),
    ];
    match rustix::fs::fstatfs(fd) {
        Ok(stat) => {
            #[allow(clippy::cast_sign_loss)] // a magic number, not a quantity
            let magic = stat.f_type as u64;
            NAMES.iter().find(|(m, _)| *m == magic).map_or_else(
                || format!("type {magic:#x}"),
                |(_, name)| (*name).to_string(),
            )
        }
        Err(_) => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filesystem_of_an_fd_is_named() {
        let fd = rustix::fs::open(
            "/proc/self",
            rustix::fs::OFlags::PATH,
            rustix::fs::Mode::empty(),
        )
        .expect("open /proc/self");
        assert_eq!(fs_name(fd.as_fd()), "proc");
    }
}
