//! Temporary directories, image copies, tree states and other host files the
//! tests make.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh directory, removed on drop unless something is still mounted in it
/// (removing through a leaked bind mount would delete host files).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), tag)
    }

    /// A temporary directory below `base` (for tests that hide /tmp).
    pub fn new_in(base: &Path, tag: &str) -> TempDir {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = base.join(format!("mbx-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// A user's directory: owned by `USER_ID` (1000:1000), as a project
    /// directory bound with `--mount-rw` is; sandbox root writes there as them.
    pub fn of_user(tag: &str) -> TempDir {
        let dir = TempDir::new(tag);
        std::os::unix::fs::chown(&dir.path, Some(USER_ID), Some(USER_ID))
            .unwrap_or_else(|e| panic!("cannot chown {}: {e}", dir.path.display()));
        dir
    }

    /// A root-owned directory anyone may write (mode 1777, like /tmp): what a
    /// sandbox writes there belongs to its own host id range.
    pub fn shared(tag: &str) -> TempDir {
        let dir = TempDir::new(tag);
        std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o1777))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.path.display()));
        dir
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

/// The host user of the tests' user directories.
pub const USER_ID: u32 = 1000;

impl Drop for TempDir {
    fn drop(&mut self) {
        let mounted = mounts_under(&self.path);
        if mounted.is_empty() {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            eprintln!(
                "not removing {}: still mounted: {mounted:?}",
                self.path.display()
            );
        }
    }
}

/// A copy of `src` (symlinks as symlinks, modes kept) at `dst`, for tests that
/// build a hostile image or must not risk writing into the shared one.
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let meta = std::fs::symlink_metadata(&from).unwrap();
        let t = meta.file_type();
        if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
        } else if t.is_dir() {
            copy_tree(&from, &to);
            std::fs::set_permissions(&to, meta.permissions()).unwrap();
        } else if t.is_file() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

/// A fresh copy of the test image in its own temp dir.
pub fn image_copy(env: &Env, tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let image = dir.join("image");
    copy_tree(env.rootfs(), &image);
    (dir, image)
}

/// Every entry of a tree with what a write would change: type, mode, size, mtime,
/// symlink target, and a checksum of small files.
pub fn tree_state(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let mut desc = format!(
                "mode={:o} size={} mtime={}.{} uid={}",
                m.mode(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.uid()
            );
            if m.file_type().is_symlink() {
                desc.push_str(&format!(
                    " -> {}",
                    std::fs::read_link(&p).unwrap_or_default().display()
                ));
            } else if m.is_file() && m.size() <= 1 << 16 {
                let sum = std::fs::read(&p)
                    .map(|b| {
                        b.iter()
                            .fold(0u64, |h, &x| h.wrapping_mul(31).wrapping_add(u64::from(x)))
                    })
                    .unwrap_or(0);
                desc.push_str(&format!(" sum={sum:x}"));
            }
            out.insert(rel, desc);
            if m.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

pub fn make_executable(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An fd without CLOEXEC semantics concerns: `inherit_fd` dups it into place.
pub fn open_fd(path: &Path) -> OwnedFd {
    std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        .into()
}

pub fn unique_token() -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{t}", std::process::id())
}

/// A pty pair: (master, slave).
pub fn open_pty() -> Option<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: the two out-pointers are live locals; name, termios and winsize may
    // be null.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return None;
    }
    // Other tests spawn children concurrently: neither end may leak into them.
    for fd in [master, slave] {
        // SAFETY: fd is one of the two fds openpty just returned.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: openpty returned two fresh fds that nothing else owns.
    Some(unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) })
}

/// A host directory a hostile image or path points at; it must never change.
pub struct Victim {
    dir: TempDir,
    before: BTreeMap<String, String>,
}

impl Victim {
    pub fn new() -> Victim {
        let dir = TempDir::new("victim");
        std::fs::write(dir.join("hosts"), "host file\n").expect("write victim file");
        std::fs::create_dir(dir.join("sub")).expect("create victim dir");
        std::fs::write(dir.join("sub/inner"), "host inner\n").expect("write victim file");
        let before = tree_state(&dir.path);
        Victim { dir, before }
    }

    pub fn path(&self) -> &Path {
        &self.dir.path
    }

    /// The victim as a relative link that climbs out of an image root with `..`
    /// from `depth` directories down.
    pub fn relative_from(&self, depth: usize) -> PathBuf {
        let up = "../".repeat(depth + 12);
        PathBuf::from(format!(
            "{up}{}",
            self.path().display().to_string().trim_start_matches('/')
        ))
    }

    #[track_caller]
    pub fn assert_untouched(&self, out: &Outcome) {
        assert_eq!(
            tree_state(self.path()),
            self.before,
            "the host directory changed\n{out}"
        );
        assert!(
            mounts_under(self.path()).is_empty(),
            "something is mounted on the host path\n{out}"
        );
    }
}
