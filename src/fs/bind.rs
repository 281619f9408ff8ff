//! The user's bind mounts (`--mount-ro`, `--mount-rw`): each source is opened
//! once, by the supervisor before the clone (following symlinks once); the tree
//! at that fd is cloned with open_tree and given nosuid/nodev (and rdonly) with
//! mount_setattr while still detached, and the child attaches it with
//! move_mount onto a destination resolved inside the root. A swap of the source
//! path after that one open changes nothing, the flags hold before the mount is
//! visible, and the destination cannot lead out. With shifted ids the tree is
//! idmapped too (`idmap.rs`): a read-only one onto the sandbox's ids, a
//! writable one so that sandbox root writes as the source's owner.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{open, Mode, OFlags};
use rustix::mount::{move_mount, open_tree, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use super::resolve::{self, Kind};
use crate::error::{Error, Result};
use crate::spec::BindMount;
use crate::sys::mount::{set_attr, PROPAGATION_PRIVATE};

pub struct Prepared<'a> {
    tree: OwnedFd,
    kind: Kind,
    /// The on-disk uid and gid of the source itself.
    owner: (u32, u32),
    spec: &'a BindMount,
}

impl Prepared<'_> {
    pub fn writable(&self) -> bool {
        self.spec.writable
    }

    pub fn owner(&self) -> (u32, u32) {
        self.owner
    }

    /// Idmaps the whole tree through `userns` (still detached: the child has
    /// not attached its copy of the fd yet, and sees the change).
    pub fn idmap(&self, userns: BorrowedFd<'_>) -> Result<()> {
        super::idmap::idmap(self.tree.as_fd(), userns, true, &self.spec.source)
    }
}

/// Who owns on the host what the sandbox root writes through a writable bind
/// whose source is owned by `(uid, gid)` on disk: that owner, as if no sandbox
/// were between, if neither id is root's. Else None: the tree is not idmapped
/// and the sandbox writes as its own range. Mapping root's id onto any sandbox
/// id would let that id write as host root; leaving it unmapped would make
/// the source itself read-only, since the kernel refuses writes through an
/// idmapped mount to an inode whose owner it does not map.
pub fn host_owner(uid: u32, gid: u32) -> Option<(u32, u32)> {
    (uid != 0 && gid != 0).then_some((uid, gid))
}

/// Opens the source of `bind` (O_PATH, symlinks followed this once) and says
/// where it led: the path every later step uses, by fd, whatever the path
/// names by then. Sources inside microbox's own state directory are refused.
pub fn open_source(bind: &BindMount) -> Result<(OwnedFd, PathBuf)> {
    let option = if bind.writable {
        "--mount-rw"
    } else {
        "--mount-ro"
    };
    let shown = format!(
        "{option} '{}:{}'",
        bind.source.display(),
        bind.dest.display()
    );
    let fd = open(&bind.source, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
        Error::usage(format!(
            "{shown}: source {}: {}",
            bind.source.display(),
            crate::error::describe(&std::io::Error::from(e))
        ))
    })?;
    let resolved = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| Error::os("read the path of a mount source", e))?;
    if resolved.starts_with(crate::state::run_dir()) {
        return Err(Error::usage(format!(
            "{shown}: the source resolves to {}, inside microbox's own state directory {}",
            resolved.display(),
            crate::state::run_dir()
        )));
    }
    Ok((fd, resolved))
}

/// Clones the tree at `source` (recursively) and sets its flags, detached.
pub fn prepare<'a>(bind: &'a BindMount, source: &OwnedFd) -> Result<Prepared<'a>> {
    let src = bind.source.display();
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE
        | OpenTreeFlags::AT_EMPTY_PATH;
    let tree = open_tree(source.as_fd(), "", flags)
        .map_err(|e| Error::os("clone mount source", e).on(&src))?;
    let mut attrs = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV;
    if !bind.writable {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    // Private: the clone is made in the host's mount namespace, where it joins
    // the source's peer group if that mount is shared (systemd makes / shared);
    // no mount event may pass between the sandbox's bind and the host's mount.
    set_attr(tree.as_fd(), attrs, PROPAGATION_PRIVATE, true)
        .map_err(|e| Error::os("set mount flags on", e).on(&src))?;
    let kind = resolve::kind_of(tree.as_fd()).map_err(|e| Error::os("stat", e).on(&src))?;
    let stat = rustix::fs::fstat(&tree).map_err(|e| Error::os("stat", e).on(&src))?;
    Ok(Prepared {
        tree,
        kind,
        owner: (stat.st_uid, stat.st_gid),
        spec: bind,
    })
}

/// The root, /proc (anything in it) and /dev itself are microbox's own: a mount
/// over them would replace the masked procfs or the minimal /dev (CVE-2019-16884).
/// Single nodes below /dev (`/dev/kvm`) stay allowed.
pub fn reserved_destination(dest: &Path) -> Option<&'static str> {
    let mut parts = dest
        .components()
        .filter(|c| matches!(c, Component::Normal(_)));
    match (parts.next(), parts.next()) {
        (None, _) => Some("/"),
        (Some(first), _) if first.as_os_str() == "proc" => Some("/proc"),
        (Some(first), None) if first.as_os_str() == "dev" => Some("/dev"),
        _ => None,
    }
}

/// Where `target` is, as a path inside the sandbox: the kernel's name for the
/// fd, relative to the root's name.
fn landed_at(root: BorrowedFd<'_>, target: &OwnedFd) -> Result<PathBuf> {
    let name = |fd: &dyn AsRawFd| {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|e| Error::os("read the path of a mount destination", e))
    };
    let root_path = name(&root)?;
    let target_path = name(target)?;
    match target_path.strip_prefix(&root_path) {
        Ok(rel) => Ok(Path::new("/").join(rel)),
        Err(_) => Err(Error::runtime(format!(
            "mount destination resolved to {} outside the sandbox root",
            target_path.display()
        ))),
    }
}

/// Attaches a prepared tree at its destination below `root`. With `create`,
/// a missing destination is made inside the sandbox (never on the host: with
/// `--fs host` the destination must exist).
pub fn attach(root: BorrowedFd<'_>, prepared: &Prepared<'_>, create: bool) -> Result<()> {
    let dest = prepared.spec.dest.display();
    let target = resolve::open_in_root(root, &prepared.spec.dest, create.then_some(prepared.kind))
        .map_err(|e| {
            Error::os("resolve mount destination", e).on(format_args!("{dest} in the sandbox"))
        })?;
    let target_kind =
        resolve::kind_of(target.as_fd()).map_err(|e| Error::os("stat", e).on(&dest))?;
    // The CLI refused reserved destinations by name; an image symlink
    // (`/data -> /proc`) can still lead there, so check where the path ended up.
    let landed = landed_at(root, &target)?;
    if let Some(reserved) = reserved_destination(&landed) {
        let landed = if reserved == "/proc" {
            landed.display().to_string()
        } else {
            reserved.to_string()
        };
        return Err(Error::failed(
            "mount",
            format!("it resolves to {landed}, which microbox sets up itself"),
        )
        .on(format_args!("{} on {dest}", prepared.spec.source.display())));
    }
    if target_kind != prepared.kind {
        let what = if prepared.kind == Kind::Dir {
            "a directory"
        } else {
            "a file"
        };
        return Err(Error::failed(
            "mount",
            format!("the source is {what} and the destination is not"),
        )
        .on(format_args!("{} on {dest}", prepared.spec.source.display())));
    }
    move_mount(
        prepared.tree.as_fd(),
        "",
        target.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| {
        Error::os("mount", e).on(format_args!("{} on {dest}", prepared.spec.source.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_written_through_a_bind_never_belong_to_host_root() {
        assert_eq!(host_owner(1000, 100), Some((1000, 100)));
        assert_eq!(host_owner(1000, 0), None);
        assert_eq!(host_owner(0, 1000), None);
        assert_eq!(host_owner(0, 0), None);
    }
}
