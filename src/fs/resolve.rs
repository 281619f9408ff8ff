//! Path resolution inside the sandbox root that never leaves it: every lookup
//! is `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from the root fd, so a
//! symlink in the image (`/etc -> /host/etc`, `x -> ../../..`) resolves inside
//! the root, and missing components are created relative to an fd that was
//! itself resolved that way (CVE-2021-30465 and kin).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{mkdirat, openat, openat2, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

const PATH_FLAGS: OFlags = OFlags::PATH.union(OFlags::CLOEXEC);

/// Opens `path` (absolute inside the sandbox) below `root` as an O_PATH fd.
/// With `create`, missing components are made: directories on the way, and the
/// last one as `create` says. `..` components are refused.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    create: Option<Kind>,
) -> io::Result<OwnedFd> {
    let parts = components(path)?;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let mut current = openat(root, ".", PATH_FLAGS | OFlags::DIRECTORY, Mode::empty())?;
    let mut prefix = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        prefix.push(part);
        let last = i + 1 == parts.len();
        match openat2(root, &prefix, PATH_FLAGS, Mode::empty(), resolve) {
            Ok(fd) => current = fd,
            Err(Errno::NOENT) if create.is_some() => {
                let kind = if last {
                    create.unwrap_or(Kind::Dir)
                } else {
                    Kind::Dir
                };
                current = create_in(current.as_fd(), part, kind)?;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(current)
}

/// Like `open_in_root` but refuses a symlink anywhere on the path: used for the
/// mount points microbox itself owns (/proc, /dev), where an image's symlink
/// would send the mount somewhere else.
pub fn open_no_symlinks(
    root: BorrowedFd<'_>,
    path: &Path,
    create: Option<Kind>,
) -> io::Result<OwnedFd> {
    let rel: PathBuf = components(path)?.iter().collect();
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match openat2(root, &rel, PATH_FLAGS, Mode::empty(), resolve) {
        Err(Errno::NOENT) if create.is_some() => {
            let parent = rel.parent().unwrap_or(Path::new(""));
            let name = rel
                .file_name()
                .ok_or_else(|| io::Error::from(Errno::INVAL))?;
            let dir = if parent.as_os_str().is_empty() {
                openat(root, ".", PATH_FLAGS | OFlags::DIRECTORY, Mode::empty())?
            } else {
                openat2(
                    root,
                    parent,
                    PATH_FLAGS | OFlags::DIRECTORY,
                    Mode::empty(),
                    resolve,
                )?
            };
            create_in(dir.as_fd(), Path::new(name), create.unwrap_or(Kind::Dir))
        }
        other => Ok(other?),
    }
}

/// The file type behind an O_PATH fd.
pub fn kind_of(fd: BorrowedFd<'_>) -> io::Result<Kind> {
    let st = rustix::fs::fstat(fd)?;
    Ok(
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            Kind::Dir
        } else {
            Kind::File
        },
    )
}

fn create_in(dir: BorrowedFd<'_>, name: &Path, kind: Kind) -> io::Result<OwnedFd> {
    make_by_name(dir, name, kind)?;
    Ok(openat(
        dir,
        name,
        PATH_FLAGS | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

/// Makes `name` in `dir` as a directory (an existing one is fine) or an empty
/// file (an existing file is kept), without following a symlink at `name`.
pub fn make_by_name(dir: BorrowedFd<'_>, name: &Path, kind: Kind) -> Result<(), Errno> {
    match kind {
        Kind::Dir => match mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(err) => Err(err),
        },
        Kind::File => {
            // O_NOFOLLOW | O_CREAT: a symlink planted at the last component is not followed.
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            openat(dir, name, flags, Mode::from_raw_mode(0o644)).map(drop)
        }
    }
}

/// The normal components of an absolute or relative path; `..` is an error.
fn components(path: &Path) -> io::Result<Vec<&Path>> {
    let mut parts = Vec::new();
    for comp in path.components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => parts.push(Path::new(part)),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::from(Errno::INVAL))
            }
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tempdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("microbox-resolve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    fn open_dir(path: &Path) -> OwnedFd {
        rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open dir")
    }

    #[test]
    fn absolute_symlink_stays_inside_root() {
        let base = tempdir("abs");
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        symlink(&outside, root.join("escape")).expect("symlink");
        let fd = open_dir(&root);
        // Dangling inside the root: an error, and nothing made on the host.
        assert!(open_in_root(fd.as_fd(), Path::new("/escape/x"), Some(Kind::Dir)).is_err());
        assert!(!outside.join("x").exists(), "created outside the root");
        // Once the target exists inside the root, the path leads there.
        let inside = root.join(outside.strip_prefix("/").expect("abs"));
        std::fs::create_dir_all(&inside).expect("mkdir");
        open_in_root(fd.as_fd(), Path::new("/escape/x"), Some(Kind::Dir)).expect("resolve");
        assert!(!outside.join("x").exists(), "created outside the root");
        // The absolute target is taken relative to the root instead.
        assert!(root
            .join(outside.strip_prefix("/").expect("abs"))
            .join("x")
            .is_dir());
        std::fs::remove_dir_all(&base).expect("cleanup");
    }

    #[test]
    fn relative_dotdot_symlink_stays_inside_root() {
        let base = tempdir("rel");
        let root = base.join("root");
        std::fs::create_dir_all(&root).expect("mkdir");
        symlink("../../../..", root.join("up")).expect("symlink");
        let fd = open_dir(&root);
        open_in_root(fd.as_fd(), Path::new("/up/made"), Some(Kind::File)).expect("resolve");
        assert!(!base.join("made").exists());
        assert!(root.join("made").is_file());
        std::fs::remove_dir_all(&base).expect("cleanup");
    }

    #[test]
    fn dotdot_in_path_is_refused() {
        let base = tempdir("dotdot");
        let fd = open_dir(&base);
        assert!(open_in_root(fd.as_fd(), Path::new("/a/../../b"), Some(Kind::Dir)).is_err());
        std::fs::remove_dir_all(&base).expect("cleanup");
    }

    #[test]
    fn no_symlinks_refuses_a_symlinked_mount_point() {
        let base = tempdir("nosym");
        std::fs::create_dir_all(base.join("real")).expect("mkdir");
        symlink("real", base.join("proc")).expect("symlink");
        let fd = open_dir(&base);
        let err =
            open_no_symlinks(fd.as_fd(), Path::new("/proc"), Some(Kind::Dir)).expect_err("symlink");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        let made =
            open_no_symlinks(fd.as_fd(), Path::new("/dev"), Some(Kind::Dir)).expect("create");
        assert_eq!(kind_of(made.as_fd()).expect("stat"), Kind::Dir);
        std::fs::remove_dir_all(&base).expect("cleanup");
    }
}
