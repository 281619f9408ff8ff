//! Per-sandbox lock files: `sandboxes/<id>.lock`, held with `flock(LOCK_EX)`
//! by the live run from before any of its host resources exist until after
//! they are all gone. The kernel drops the lock when the owner dies, even by
//! SIGKILL: a lock that can be taken, or a missing file, means a dead run.

use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::error::{Error, Result};

pub struct SandboxLock {
    id: String,
    path: PathBuf,
    /// Held, never read: closing it (or dying) releases the lock. CLOEXEC, so an exec
    /// never carries it into a sandbox.
    _fd: OwnedFd,
}

impl SandboxLock {
    /// Creates and locks `<run_dir>/sandboxes/<id>.lock`; refuses an id a live run holds.
    pub fn acquire(run_dir: &Path, id: &str) -> Result<SandboxLock> {
        let path = lock_path(run_dir, id);
        // A collector may take the fresh file's lock between our open and
        // flock, find it free, and unlink it: the lock we then get is on a
        // file no one else can find, so we open the name again.
        for _ in 0..RETRIES {
            let fd = open_creating(&path)?;
            match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(Error::failed(
                        "lock",
                        format!("sandbox id {id} is in use by another run"),
                    )
                    .on(path.display()))
                }
                Err(err) => return Err(Error::os("lock", err).on(path.display())),
            }
            if still_named(&fd, &path)? {
                return Ok(SandboxLock {
                    id: id.to_string(),
                    path,
                    _fd: fd,
                });
            }
        }
        Err(Error::failed("lock", "it keeps being removed by other runs").on(path.display()))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Unlinks the file when `remove` (everything it guarded is gone), then
    /// unlocks. Unlink before unlock: see `collect` for why the order matters.
    pub fn release(self, remove: bool) {
        if remove {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How often a lock is retried when its file was replaced under us; each
/// retry means another run released or collected the same name at that moment.
pub(super) const RETRIES: usize = 8;

/// Whether `path` still names the file `fd` has open.
pub(super) fn still_named(fd: &OwnedFd, path: &Path) -> Result<bool> {
    let held = rustix::fs::fstat(fd).map_err(|e| Error::os("stat", e).on(path.display()))?;
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(now) => {
            let now =
                rustix::fs::fstat(&now).map_err(|e| Error::os("stat", e).on(path.display()))?;
            Ok(now.st_ino == held.st_ino && now.st_dev == held.st_dev)
        }
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(err) => Err(Error::os("open", err).on(path.display())),
    }
}

pub(super) fn lock_path(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join("sandboxes").join(format!("{id}.lock"))
}

/// Opens (creating if needed) a lock file, creating its directories on first use.
pub(super) fn open_creating(path: &Path) -> Result<OwnedFd> {
    let open = || {
        rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )
    };
    match open() {
        Err(rustix::io::Errno::NOENT) => {
            if let Some(dir) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(dir)
                    .map_err(|err| Error::os("create", err).on(dir.display()))?;
            }
            open()
        }
        other => other,
    }
    .map_err(|err| Error::os("open", err).on(path.display()))
}

pub(super) enum Owner {
    Alive,
    /// Dead; the lock file's fd, locked by us, if there is a file.
    Dead(Option<OwnedFd>),
}

/// Whether the run that owns `path` is alive, without blocking.
pub(super) fn probe(path: &Path) -> Result<Owner> {
    let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Owner::Dead(None)),
        Err(err) => return Err(Error::os("open", err).on(path.display())),
    };
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Owner::Dead(Some(fd))),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(Owner::Alive),
        Err(err) => Err(Error::os("lock", err).on(path.display())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn an_id_is_locked_once() {
        let run = crate::test_dir("state-lock-once");
        let first = SandboxLock::acquire(&run, "box").unwrap();
        assert_eq!(first.id(), "box");
        let err = SandboxLock::acquire(&run, "box").err().unwrap();
        assert!(err.to_string().contains("in use by another run"), "{}", err);
        first.release(true);
        assert!(!lock_path(&run, "box").exists());
        SandboxLock::acquire(&run, "box").unwrap().release(false);
        assert!(lock_path(&run, "box").exists());
        std::fs::remove_dir_all(&run).unwrap();
    }

    #[test]
    fn a_lock_on_a_file_collected_under_it_is_not_kept() {
        let run = crate::test_dir("state-lock-collected");
        let path = lock_path(&run, "box");
        let fd = open_creating(&path).unwrap();
        assert!(still_named(&fd, &path).unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(!still_named(&fd, &path).unwrap());
        let again = open_creating(&path).unwrap();
        assert!(!still_named(&fd, &path).unwrap());
        assert!(still_named(&again, &path).unwrap());
        std::fs::remove_dir_all(&run).unwrap();
    }
}
