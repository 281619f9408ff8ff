//! Leases: a file per leased thing (an address, a host port), held with
//! `flock(LOCK_EX)` for the sandbox's lifetime and unlinked when it ends. A
//! run killed with SIGKILL leaves the file unlocked, which is a free lease: no
//! collector is needed for correctness, only to remove the stale file.
//!
//! Unlinking a lock file races with a run that opened it just before: that run
//! would lock an inode no path leads to any more, and a third run could then
//! create and lock a second file of the same name. So a lock counts only if,
//! after it is taken, the path still names the locked inode; otherwise the
//! taker retries with a fresh open.

use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::lock::{open_creating, still_named, RETRIES};
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Lease {
    name: String,
    path: PathBuf,
    inherited: bool,
    _fd: OwnedFd,
}

impl Lease {
    /// Takes `<run_dir>/<dir>/<name>.lock` if no live run holds it; None if one does.
    pub fn take(run_dir: &Path, dir: &str, name: &str) -> Result<Option<Lease>> {
        let path = run_dir.join(dir).join(format!("{name}.lock"));
        for _ in 0..RETRIES {
            let (fd, inherited) = open_noting_existence(&path)?;
            match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                Err(err) => return Err(Error::os("lock", err).on(path.display())),
            }
            if still_named(&fd, &path)? {
                return Ok(Some(Lease {
                    name: name.to_string(),
                    path,
                    inherited,
                    _fd: fd,
                }));
            }
        }
        Err(Error::failed("lock", "it keeps being replaced by other runs").on(path.display()))
    }

    /// The first of `names` no live run holds, or None when every one is held.
    pub fn first_free(
        run_dir: &Path,
        dir: &str,
        names: impl IntoIterator<Item = String>,
    ) -> Result<Option<Lease>> {
        for name in names {
            if let Some(lease) = Lease::take(run_dir, dir, &name)? {
                return Ok(Some(lease));
            }
        }
        Ok(None)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the file was there when taken: its last holder ended without
    /// releasing it (a SIGKILL), so what it left elsewhere may still be there.
    /// Rarely, a taker that had just created the file and lost the race to
    /// lock it: a false "inherited", never a missed one.
    pub fn inherited(&self) -> bool {
        self.inherited
    }

    /// Ends the hold but leaves the file, as a killed holder would: the next
    /// taker then finds it [`inherited`](Lease::inherited) and redoes what this
    /// one failed to. The fd stays open (and locked) until the process exits,
    /// which for microbox is moments after.
    pub fn abandon(self) {
        std::mem::forget(self);
    }
}

/// Opens `path` creating it, and says whether it existed already.
fn open_noting_existence(path: &Path) -> Result<(OwnedFd, bool)> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    match rustix::fs::open(path, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => Ok((fd, false)),
        Err(rustix::io::Errno::EXIST) => Ok((open_creating(path)?, true)),
        // No directory yet: open_creating makes it.
        Err(_) => Ok((open_creating(path)?, false)),
    }
}

/// A hold on a whole lease directory: shared by every sandbox leasing in it
/// (for its lifetime), exclusive for `--net-cleanup`, which removes what the
/// directory's leases stand for. A `flock` on the directory itself; a
/// directory removed while a sandbox waited for it is opened again.
#[derive(Debug)]
pub struct DirHold {
    _fd: OwnedFd,
}

impl DirHold {
    /// Waits while an exclusive holder works (a `--net-cleanup`: milliseconds).
    pub fn shared(run_dir: &Path, dir: &str) -> Result<DirHold> {
        let path = run_dir.join(dir);
        for _ in 0..RETRIES {
            let fd = open_dir_creating(&path)?;
            rustix::fs::flock(&fd, FlockOperation::LockShared)
                .map_err(|e| Error::os("lock", e).on(path.display()))?;
            if still_named(&fd, &path)? {
                return Ok(DirHold { _fd: fd });
            }
        }
        Err(Error::failed("lock", "it keeps being removed by --net-cleanup").on(path.display()))
    }

    /// None while any sandbox holds it shared.
    pub fn exclusive(run_dir: &Path, dir: &str) -> Result<Option<DirHold>> {
        let path = run_dir.join(dir);
        let fd = open_dir_creating(&path)?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(DirHold { _fd: fd })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::os("lock", e).on(path.display())),
        }
    }
}

fn open_dir_creating(path: &Path) -> Result<OwnedFd> {
    let open = || {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
    };
    match open() {
        Err(rustix::io::Errno::NOENT) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(|err| Error::os("create", err).on(path.display()))?;
            open().map_err(|e| Error::os("open", e).on(path.display()))
        }
        other => other.map_err(|e| Error::os("open", e).on(path.display())),
    }
}

/// `<dir>/last`: the name last leased in `dir`. A hint, not a lease: the next
/// run starts its search after it, so a name is not handed out again the
/// moment it is freed (the kernel may still be removing its holder's veth).
/// Unreadable or torn, it is None and the search starts at the beginning.
const LAST: &str = "last";

pub fn last_leased(run_dir: &Path, dir: &str) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join(dir).join(LAST)).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// Best effort, like the hint itself: a failed write costs only the rotation.
/// Written in place as one fixed-width record, padded with spaces (which the
/// reader trims), so it always covers the one before: no O_TRUNC, whose truncation cost 0.3 ms of journal work
/// on an ext4 /run, on every start.
pub fn remember_leased(run_dir: &Path, dir: &str, name: &str) {
    use std::os::unix::fs::FileExt;
    let record = format!("{name:<LAST_WIDTH$}\n");
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(run_dir.join(dir).join(LAST))
        .and_then(|file| file.write_all_at(record.as_bytes(), 0));
}

/// Wider than any name: an IPv4 address, a port, a host id.
const LAST_WIDTH: usize = 39;

/// Removes the hint with the directory it is in (`--net-cleanup`).
pub fn forget_last_leased(run_dir: &Path, dir: &str) {
    let _ = std::fs::remove_file(run_dir.join(dir).join(LAST));
}

/// Unlink, then unlock (the fd closes after this runs): see the module comment.
impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_once_and_freed_with_its_file() {
        let run = crate::test_dir("state-lease");
        let a = Lease::take(&run, "ipam/br0", "10.44.0.2").unwrap().unwrap();
        assert_eq!(a.name(), "10.44.0.2");
        assert!(!a.inherited());
        assert!(Lease::take(&run, "ipam/br0", "10.44.0.2")
            .unwrap()
            .is_none());
        let names = || (2..5).map(|i| format!("10.44.0.{i}"));
        let b = Lease::first_free(&run, "ipam/br0", names())
            .unwrap()
            .unwrap();
        assert_eq!(b.name(), "10.44.0.3");
        drop(a);
        assert!(!run.join("ipam/br0/10.44.0.2.lock").exists());
        let c = Lease::first_free(&run, "ipam/br0", names())
            .unwrap()
            .unwrap();
        assert_eq!(c.name(), "10.44.0.2");
        let d = Lease::first_free(&run, "ipam/br0", names())
            .unwrap()
            .unwrap();
        assert_eq!(d.name(), "10.44.0.4");
        assert!(Lease::first_free(&run, "ipam/br0", names())
            .unwrap()
            .is_none());
        drop((b, c, d));
        std::fs::remove_dir_all(&run).unwrap();
    }

    /// The file of a holder that never released it (killed: the file stays,
    /// the lock went with the process) is free and says so; a released one
    /// leaves nothing to inherit.
    #[test]
    fn a_lease_left_by_a_dead_holder_is_inherited() {
        let run = crate::test_dir("state-lease-dead");
        std::fs::create_dir_all(run.join("ipam/br0")).unwrap();
        std::fs::write(run.join("ipam/br0/10.44.0.2.lock"), "").unwrap();
        let next = Lease::take(&run, "ipam/br0", "10.44.0.2").unwrap().unwrap();
        assert!(next.inherited());
        drop(next);
        let again = Lease::take(&run, "ipam/br0", "10.44.0.2").unwrap().unwrap();
        assert!(!again.inherited());
        // Abandoned, the file stays for the next taker (whose lock this
        // process's leaked fd would block here: flock is per open file).
        again.abandon();
        assert!(run.join("ipam/br0/10.44.0.2.lock").exists());
        std::fs::remove_dir_all(&run).unwrap();
    }

    #[test]
    fn a_directory_held_shared_cannot_be_held_exclusive() {
        let run = crate::test_dir("state-lease-dir");
        let a = DirHold::shared(&run, "ipam/br0").unwrap();
        let b = DirHold::shared(&run, "ipam/br0").unwrap();
        assert!(DirHold::exclusive(&run, "ipam/br0").unwrap().is_none());
        drop((a, b));
        let only = DirHold::exclusive(&run, "ipam/br0").unwrap();
        assert!(only.is_some());
        // Removed under a waiting sandbox: it makes the directory again.
        std::fs::remove_dir(run.join("ipam/br0")).unwrap();
        drop(only);
        let again = DirHold::shared(&run, "ipam/br0").unwrap();
        assert!(run.join("ipam/br0").is_dir());
        drop(again);
        std::fs::remove_dir_all(&run).unwrap();
    }

    /// A lock on a file that was unlinked and recreated since it was opened
    /// is not a lease.
    #[test]
    fn a_replaced_file_is_not_named_any_more() {
        let run = crate::test_dir("state-lease-race");
        let path = run.join("x.lock");
        let old = open_creating(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(!still_named(&old, &path).unwrap());
        let _new = open_creating(&path).unwrap();
        assert!(!still_named(&old, &path).unwrap());
        std::fs::remove_dir_all(&run).unwrap();
    }
}
