//! The executor of a mount plan: each [`Step`] becomes its syscalls, all of
//! them the new mount API (fsopen/fsconfig/fsmount, open_tree, mount_setattr,
//! move_mount). No decisions are made here: what to mount, where and with
//! which flags is the plan's; this file only finds targets by fd and keeps
//! the fds of the bases and host devices the steps name.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{open, openat, symlinkat, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};

use super::bind;
use super::plan::{At, Base, Lookup, Source, Step, Value};
use super::resolve;
use crate::error::{Error, Result};
use crate::sys::mount::{set_attr, PROPAGATION_PRIVATE};

/// What the steps refer to that the plan cannot hold: the image's tree and
/// the user's bind trees, prepared by the parent before the clone.
pub struct Inputs<'a, 'b> {
    pub image: Option<BorrowedFd<'a>>,
    pub binds: &'a [bind::Prepared<'b>],
}

struct Executor<'a, 'b> {
    inputs: Inputs<'a, 'b>,
    bases: BTreeMap<Base, OwnedFd>,
    /// Host device nodes, opened and checked once each.
    devices: Vec<(&'static str, OwnedFd)>,
}

/// Runs `steps` in order; the first failure ends it, named by its step.
pub fn apply(steps: &[Step], inputs: Inputs<'_, '_>) -> Result<()> {
    let host = open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os("open / of the sandbox's mount namespace", e))?;
    let mut ex = Executor {
        inputs,
        bases: BTreeMap::from([(Base::Host, host)]),
        devices: Vec::new(),
    };
    for step in steps {
        ex.run(step)?;
    }
    Ok(())
}

impl Executor<'_, '_> {
    fn run(&mut self, step: &Step) -> Result<()> {
        let failed = |e: Errno| step_error(step, e);
        match step {
            Step::MakePrivate => {
                let host = self.base(Base::Host)?;
                set_attr(host, MountAttrFlags::empty(), PROPAGATION_PRIVATE, true)
                    .map_err(|e| Error::os("make / private in the sandbox's mount namespace", e))?;
            }
            Step::Mount {
                fs,
                target,
                attrs,
                options,
                becomes,
                missing_ok,
            } => {
                let Some(target) = self.target(target, *missing_ok).map_err(failed)? else {
                    return Ok(());
                };
                let fs_fd = fsopen(fs.name(), FsOpenFlags::FSOPEN_CLOEXEC).map_err(failed)?;
                // The source mount(2) was given: mountinfo reads as before.
                fsconfig_set_string(fs_fd.as_fd(), "source", fs.name()).map_err(failed)?;
                for (key, value) in options {
                    match value {
                        Value::Flag => fsconfig_set_flag(fs_fd.as_fd(), *key),
                        Value::Text(text) => {
                            fsconfig_set_string(fs_fd.as_fd(), *key, text.as_str())
                        }
                    }
                    .map_err(failed)?;
                }
                fsconfig_create(fs_fd.as_fd()).map_err(failed)?;
                let mnt = fsmount(fs_fd.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, *attrs)
                    .map_err(failed)?;
                match attach(&mnt, &target) {
                    Err(Errno::NOENT) if *missing_ok => return Ok(()),
                    other => other.map_err(failed)?,
                }
                drop(target);
                if let Some(base) = becomes {
                    self.bases.insert(*base, mnt);
                }
            }
            Step::Bind {
                source,
                target,
                attrs,
                missing_ok,
            } => {
                if let Source::HostDevice { name, major, minor } = source {
                    self.open_host_device(name, *major, *minor)?;
                }
                let Some(target) = self.target(target, *missing_ok).map_err(failed)? else {
                    return Ok(());
                };
                let from = match source {
                    Source::HostDevice { name, .. } => Target::Fd(self.host_device(name)?),
                    Source::Itself => target.borrow(),
                };
                // Not recursive: a single file, or one procfs directory.
                let tree = match clone_tree(&from) {
                    Err(Errno::NOENT) if *missing_ok => return Ok(()),
                    other => other.map_err(failed)?,
                };
                if !attrs.is_empty() {
                    set_attr(tree.as_fd(), *attrs, 0, false).map_err(failed)?;
                }
                match attach(&tree, &target) {
                    Err(Errno::NOENT) if *missing_ok => return Ok(()),
                    other => other.map_err(failed)?,
                }
            }
            Step::AttachImage { target, becomes } => {
                let image = self
                    .inputs
                    .image
                    .ok_or_else(|| Error::runtime("internal error: an overlay without an image"))?;
                let target = self.target(target, false).map_err(failed)?;
                let target = target.ok_or_else(|| failed(Errno::NOENT))?;
                move_mount(
                    image,
                    "",
                    target.fd().map_err(failed)?,
                    "",
                    MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
                        | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
                )
                .map_err(failed)?;
                drop(target);
                if let Some(base) = becomes {
                    // The tree's fd is its root, attached now.
                    let root = image
                        .try_clone_to_owned()
                        .map_err(|e| Error::os("duplicate the root's fd", e))?;
                    self.bases.insert(*base, root);
                }
            }
            Step::MakeDevice { node } => {
                let dev = self.base(Base::Dev)?;
                let path = Path::new(&node.path);
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    resolve::make_by_name(dev, parent, resolve::Kind::Dir).map_err(failed)?;
                }
                let kind = if node.block {
                    rustix::fs::FileType::BlockDevice
                } else {
                    rustix::fs::FileType::CharacterDevice
                };
                rustix::fs::mknodat(
                    dev,
                    path,
                    kind,
                    Mode::from_raw_mode(node.mode),
                    rustix::fs::makedev(node.major, node.minor),
                )
                .map_err(failed)?;
                rustix::fs::chownat(
                    dev,
                    path,
                    Some(rustix::process::Uid::from_raw(node.uid)),
                    Some(rustix::process::Gid::from_raw(node.gid)),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(failed)?;
            }
            Step::Sysctl { key, value } => {
                let path = format!("sys/{}", key.replace('.', "/"));
                let fd = openat(
                    self.base(Base::Proc)?,
                    path.as_str(),
                    OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(failed)?;
                rustix::io::write(&fd, value.as_bytes()).map_err(failed)?;
            }
            Step::Mask { target } => {
                // Opened first: the target's lookup borrows the executor.
                self.open_host_device("null", 1, 3)?;
                let Some(found) = self.target(target, true).map_err(failed)? else {
                    return Ok(());
                };
                let fd = found.fd().map_err(failed)?;
                let tree = if resolve::kind_of(fd).map_err(|e| failed(io_errno(&e)))?
                    == resolve::Kind::Dir
                {
                    let fs_fd = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).map_err(failed)?;
                    fsconfig_set_string(fs_fd.as_fd(), "size", "0").map_err(failed)?;
                    fsconfig_create(fs_fd.as_fd()).map_err(failed)?;
                    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
                        | MountAttrFlags::MOUNT_ATTR_NOSUID
                        | MountAttrFlags::MOUNT_ATTR_NODEV
                        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
                    fsmount(fs_fd.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(failed)?
                } else {
                    clone_tree(&Target::Fd(self.host_device("null")?)).map_err(failed)?
                };
                attach(&tree, &found).map_err(failed)?;
            }
            Step::AttachBind {
                index,
                target,
                create_missing,
                ..
            } => {
                let prepared = self.inputs.binds.get(*index).ok_or_else(|| {
                    Error::runtime(format!("internal error: no prepared bind #{index}"))
                })?;
                bind::attach(self.base(target.base)?, prepared, *create_missing)?;
            }
            Step::SetAttr {
                target,
                attrs,
                recursive,
                missing_ok,
            } => {
                let Some(target) = self.target(target, *missing_ok).map_err(failed)? else {
                    return Ok(());
                };
                set_attr(target.fd().map_err(failed)?, *attrs, 0, *recursive).map_err(failed)?;
            }
            Step::Make { target } => {
                self.target(target, false).map_err(failed)?;
            }
            Step::Symlink { target, points_to } => {
                symlinkat(*points_to, self.base(target.base)?, target.path.as_str())
                    .map_err(failed)?;
            }
            Step::WriteFile { dir, name, content } => {
                let dir_fd = self.target(dir, false).map_err(failed)?;
                // An O_PATH fd cannot be a dirfd for creating files; reopen it.
                let dir_fd = dir_fd
                    .map(|fd| {
                        openat(
                            fd.fd()?,
                            ".",
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                    })
                    .transpose()
                    .map_err(failed)?
                    .ok_or_else(|| failed(Errno::NOENT))?;
                super::etc::replace_file(dir_fd.as_fd(), name, content.as_bytes()).map_err(
                    |e| Error::os("write", e).on(format_args!("/etc/{name} in the sandbox")),
                )?;
            }
            Step::PivotIntoRoot => {
                rustix::process::fchdir(self.base(Base::Root)?)
                    .map_err(|e| Error::os("change directory to the new root", e))?;
                // pivot_root(".", ".") stacks the old root on top of the new one;
                // detaching it leaves only the new root, with no `old_root`
                // directory needed in the image.
                rustix::process::pivot_root(".", ".")
                    .map_err(|e| Error::os("pivot_root into the new root", e))?;
                rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
                    .map_err(|e| Error::os("detach the old root", e))?;
                rustix::process::chdir("/").map_err(|e| Error::os("change directory to /", e))?;
            }
            Step::MoveIntoRoot => {
                rustix::process::fchdir(self.base(Base::Root)?)
                    .map_err(|e| Error::os("change directory to the new root", e))?;
                // The new root's whole tree goes onto the initramfs's root;
                // chroot then makes it the process's root (path lookup never
                // crosses the mount on the root it started from).
                rustix::mount::mount_move(".", "/")
                    .map_err(|e| Error::os("move the new root onto /", e))?;
                rustix::process::chroot(".")
                    .map_err(|e| Error::os("chroot into the new root", e))?;
                rustix::process::chdir("/").map_err(|e| Error::os("change directory to /", e))?;
            }
            Step::ChdirToHostRoot => {
                rustix::process::chdir("/").map_err(|e| Error::os("change directory to /", e))?;
            }
        }
        Ok(())
    }

    fn base(&self, base: Base) -> Result<BorrowedFd<'_>> {
        self.bases.get(&base).map(AsFd::as_fd).ok_or_else(|| {
            Error::runtime(format!(
                "internal error: the mount plan uses {base:?} before it exists"
            ))
        })
    }

    /// Where the target is: its O_PATH fd, or (for [`Lookup::Fresh`]) its path
    /// below the base, left for the mount call to resolve. `None` when it is
    /// missing and `missing_ok` (a by-path target is found missing only then).
    fn target<'s>(
        &'s self,
        at: &'s At,
        missing_ok: bool,
    ) -> std::result::Result<Option<Target<'s>>, Errno> {
        let base = self.base(at.base).map_err(|_| Errno::BADF)?;
        if at.lookup == Lookup::Fresh && !at.path.is_empty() {
            let path = at.path.as_str();
            match at.create {
                Some(kind) => resolve::make_by_name(base, Path::new(path), kind)?,
                // A mount is costly to make for nothing: look first (procfs
                // directories a kernel may lack). A bind fails at once instead.
                None if missing_ok && !present(base, path)? => return Ok(None),
                None => {}
            }
            return Ok(Some(Target::Path(base, path)));
        }
        let found = if at.path.is_empty() {
            openat(base, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(Into::into)
        } else {
            let path = Path::new(&at.path);
            match at.lookup {
                Lookup::Host | Lookup::Fresh => {
                    openat(base, path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                        .map_err(Into::into)
                }
                Lookup::NoSymlinks => resolve::open_no_symlinks(base, path, at.create),
                Lookup::InRoot => resolve::open_in_root(base, path, at.create),
            }
        };
        match found {
            Ok(fd) => Ok(Some(Target::Owned(fd))),
            Err(e) => match Errno::from_io_error(&e) {
                Some(Errno::NOENT) if missing_ok => Ok(None),
                Some(errno) => Err(errno),
                None => Err(Errno::INVAL),
            },
        }
    }

    /// Opens host `/dev/<name>` once, checked to be the device it must be.
    fn open_host_device(&mut self, name: &'static str, major: u32, minor: u32) -> Result<()> {
        if !self.devices.iter().any(|(n, _)| *n == name) {
            let fd = super::dev::open_host_device(name, major, minor)?;
            self.devices.push((name, fd));
        }
        Ok(())
    }

    fn host_device(&self, name: &str) -> Result<BorrowedFd<'_>> {
        self.devices
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, fd)| fd.as_fd())
            .ok_or_else(|| Error::runtime(format!("internal error: /dev/{name} not opened")))
    }
}

/// Whether `path` below `base` exists (the last component not followed).
fn present(base: BorrowedFd<'_>, path: &str) -> std::result::Result<bool, Errno> {
    match rustix::fs::accessat(
        base,
        path,
        rustix::fs::Access::EXISTS,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

fn io_errno(err: &std::io::Error) -> Errno {
    Errno::from_io_error(err).unwrap_or(Errno::INVAL)
}

/// A step's target: the object an fd holds, or a path below a base fd.
enum Target<'a> {
    Owned(OwnedFd),
    Fd(BorrowedFd<'a>),
    Path(BorrowedFd<'a>, &'a str),
}

impl Target<'_> {
    fn borrow(&self) -> Target<'_> {
        match self {
            Target::Owned(fd) => Target::Fd(fd.as_fd()),
            Target::Fd(fd) => Target::Fd(*fd),
            Target::Path(base, path) => Target::Path(*base, path),
        }
    }

    /// The fd, for the calls that take no path (never the case for by-path
    /// targets: the plan's property tests keep them to mounts and binds).
    fn fd(&self) -> std::result::Result<BorrowedFd<'_>, Errno> {
        match self {
            Target::Owned(fd) => Ok(fd.as_fd()),
            Target::Fd(fd) => Ok(*fd),
            Target::Path(..) => Err(Errno::INVAL),
        }
    }
}

/// move_mount of a detached mount onto the target.
fn attach(mnt: &OwnedFd, target: &Target<'_>) -> rustix::io::Result<()> {
    let (to, path, flags) = match target {
        Target::Owned(fd) => (fd.as_fd(), "", MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH),
        Target::Fd(fd) => (*fd, "", MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH),
        Target::Path(base, path) => (*base, *path, MoveMountFlags::empty()),
    };
    move_mount(
        mnt.as_fd(),
        "",
        to,
        path,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | flags,
    )
}

/// A detached copy (not recursive) of the mount at `from`.
fn clone_tree(from: &Target<'_>) -> rustix::io::Result<OwnedFd> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    match from {
        Target::Owned(fd) => open_tree(fd.as_fd(), "", flags | OpenTreeFlags::AT_EMPTY_PATH),
        Target::Fd(fd) => open_tree(*fd, "", flags | OpenTreeFlags::AT_EMPTY_PATH),
        Target::Path(base, path) => open_tree(*base, *path, flags),
    }
}

/// The step's one-line description with the errno, and a hint where the
/// errno has a known cause.
fn step_error(step: &Step, errno: Errno) -> Error {
    let (op, object) = step.action();
    let mut err = Error::os(op, errno);
    if let Some(object) = object {
        err = err.on(object);
    }
    match step_hint(step, errno) {
        Some(hint) => err.hint(hint),
        None => err,
    }
}

fn step_hint(step: &Step, errno: Errno) -> Option<String> {
    match (step, errno) {
        (Step::Mount { target, .. } | Step::Make { target }, Errno::LOOP | Errno::NOTDIR)
            if target.lookup == Lookup::NoSymlinks && target.base == Base::Root =>
        {
            Some(format!("is {target} a symlink in the image?"))
        }
        _ => None,
    }
}
