//! Per-sandbox lock files, and the collection of cgroups whose owner died.
//!
//! A live sandbox holds `flock(LOCK_EX)` on `<run>/sandboxes/<id>.lock` from before
//! its cgroups exist until after they are gone; the kernel drops the lock when the
//! owner dies, even by SIGKILL. So a `microbox/<id>` cgroup whose lock file can be
//! locked, or has none, belongs to a dead run. The orders that make this sound:
//!
//! - `create`: lock file created and locked, then cgroups made.
//! - `destroy`: cgroups removed, then lock file unlinked, then unlocked (closed).
//! - collector: a cgroup seen, then its lock file probed.
//!
//! A collector that wins the lock of a file the owner just unlinked finds the
//! cgroups already gone; one that finds no lock file at all finds a cgroup that no
//! live owner can have. A lock file left without a cgroup (a crash between the two
//! steps) is an empty file on tmpfs, never looked at again.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::{is_valid_id, v1, v2, Hierarchy};
use crate::error::{Error, Result};

pub(super) struct SandboxLock {
    path: PathBuf,
    /// Held, never read: closing it (or dying) releases the lock. CLOEXEC, so an exec
    /// never carries it into a sandbox.
    _fd: OwnedFd,
}

impl SandboxLock {
    pub(super) fn acquire(run_dir: &Path, id: &str) -> Result<SandboxLock> {
        let path = lock_path(run_dir, id);
        let fd = open_creating(&path)?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(SandboxLock { path, _fd: fd }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::runtime(format!(
                "cannot lock {}: sandbox id {id} is in use by another run",
                path.display()
            ))),
            Err(err) => Err(Error::os(format!("lock {}", path.display()), err)),
        }
    }

    /// Unlinks the file when `remove` (the cgroups are gone), then unlocks.
    pub(super) fn release(self, remove: bool) {
        if remove {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn lock_path(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join("sandboxes").join(format!("{id}.lock"))
}

/// Opens (creating if needed) a lock file, creating its directories on first use.
fn open_creating(path: &Path) -> Result<OwnedFd> {
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
                    .map_err(|err| Error::os(format!("create {}", dir.display()), err))?;
            }
            open()
        }
        other => other,
    }
    .map_err(|err| Error::os(format!("open {}", path.display()), err))
}

/// See `super::collect_stale`.
pub(super) fn collect(hierarchy: &Hierarchy, run_dir: &Path) -> Result<usize> {
    let parents = hierarchy.parents();
    let ids = candidates(&parents)?;
    if ids.is_empty() {
        return Ok(0);
    }
    let gc_path = run_dir.join("gc.lock");
    let gc = open_creating(&gc_path)?;
    match rustix::fs::flock(&gc, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        // Another run is collecting right now; it will do what we would.
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(0),
        Err(err) => return Err(Error::os(format!("lock {}", gc_path.display()), err)),
    }
    let mut collected = 0;
    let mut first_error = None;
    for id in ids {
        let path = lock_path(run_dir, &id);
        let held = match probe(&path) {
            Ok(Owner::Alive) => continue,
            Ok(Owner::Dead(held)) => held,
            Err(err) => {
                first_error.get_or_insert(err);
                continue;
            }
        };
        let removed = match hierarchy {
            Hierarchy::V2 { .. } => v2::remove(&parents[0].join(&id)),
            Hierarchy::V1 { .. } => {
                let dirs: Vec<PathBuf> = parents.iter().map(|parent| parent.join(&id)).collect();
                v1::remove_dirs(&dirs)
            }
        };
        match removed {
            Ok(()) => {
                collected += 1;
                if held.is_some() {
                    let _ = std::fs::remove_file(&path);
                }
            }
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
        drop(held);
    }
    first_error.map_or(Ok(collected), Err)
}

/// The sandbox ids that have a cgroup under any parent, sorted and deduplicated (a
/// crash during creation on v1 can leave a cgroup in only some hierarchies).
fn candidates(parents: &[PathBuf]) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for parent in parents {
        let entries = match std::fs::read_dir(parent) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(Error::os(format!("read {}", parent.display()), err)),
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            // Anything not named like a sandbox is not ours to remove.
            if let Some(name) = entry.file_name().to_str().filter(|name| is_valid_id(name)) {
                ids.push(name.to_string());
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

enum Owner {
    Alive,
    /// Dead; the lock file's fd, locked by us, if there is a file.
    Dead(Option<OwnedFd>),
}

fn probe(path: &Path) -> Result<Owner> {
    let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Owner::Dead(None)),
        Err(err) => return Err(Error::os(format!("open {}", path.display()), err)),
    };
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Owner::Dead(Some(fd))),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(Owner::Alive),
        Err(err) => Err(Error::os(format!("lock {}", path.display()), err)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::super::test_dir;
    use super::*;

    fn mkdirs(dirs: &[PathBuf]) {
        for dir in dirs {
            std::fs::create_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn an_id_is_locked_once() {
        let run = test_dir("stale-once");
        let first = SandboxLock::acquire(&run, "box").unwrap();
        let err = SandboxLock::acquire(&run, "box").err().unwrap();
        assert!(err.msg.contains("in use by another run"), "{}", err.msg);
        first.release(true);
        assert!(!lock_path(&run, "box").exists());
        SandboxLock::acquire(&run, "box").unwrap().release(false);
        assert!(lock_path(&run, "box").exists());
        std::fs::remove_dir_all(&run).unwrap();
    }

    #[test]
    fn v2_dead_runs_are_collected_and_live_ones_kept() {
        let base = test_dir("stale-v2");
        let run = base.join("run");
        let hierarchy = Hierarchy::V2 {
            root: base.join("cg"),
        };
        let parent = base.join("cg/microbox");
        mkdirs(&["live", "dead", "orphan", "not.ours"].map(|id| parent.join(id)));
        std::fs::write(parent.join("cgroup.procs"), "").unwrap();
        let live = SandboxLock::acquire(&run, "live").unwrap();
        SandboxLock::acquire(&run, "dead").unwrap().release(false);

        assert_eq!(collect(&hierarchy, &run).map_err(|e| e.msg), Ok(2));
        assert!(parent.join("live").exists());
        assert!(lock_path(&run, "live").exists());
        assert!(!parent.join("dead").exists());
        assert!(!lock_path(&run, "dead").exists());
        assert!(!parent.join("orphan").exists());
        assert!(parent.join("not.ours").exists());

        // Once the owner is gone, the next collection takes it too.
        drop(live);
        assert_eq!(collect(&hierarchy, &run).map_err(|e| e.msg), Ok(1));
        assert!(!parent.join("live").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn v1_collects_every_hierarchy() {
        let base = test_dir("stale-v1");
        let run = base.join("run");
        let hierarchy = Hierarchy::V1 {
            cpu: base.join("cpu,cpuacct"),
            memory: base.join("memory"),
            pids: base.join("pids"),
        };
        let parents = hierarchy.parents();
        // A crash during creation left "half" in the cpu hierarchy only.
        mkdirs(&parents.iter().map(|p| p.join("dead")).collect::<Vec<_>>());
        mkdirs(&[parents[0].join("half")]);
        SandboxLock::acquire(&run, "half").unwrap().release(false);

        assert_eq!(collect(&hierarchy, &run).map_err(|e| e.msg), Ok(2));
        for parent in &parents {
            assert_eq!(std::fs::read_dir(parent).unwrap().count(), 0);
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_busy_collector_lock_means_someone_else_collects() {
        let base = test_dir("stale-busy");
        let run = base.join("run");
        let hierarchy = Hierarchy::V2 {
            root: base.join("cg"),
        };
        mkdirs(&[base.join("cg/microbox/dead")]);
        let other = open_creating(&run.join("gc.lock")).unwrap();
        rustix::fs::flock(&other, FlockOperation::NonBlockingLockExclusive).unwrap();
        assert_eq!(collect(&hierarchy, &run).map_err(|e| e.msg), Ok(0));
        assert!(base.join("cg/microbox/dead").exists());
        drop(other);
        assert_eq!(collect(&hierarchy, &run).map_err(|e| e.msg), Ok(1));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn nothing_to_collect_touches_nothing() {
        let base = test_dir("stale-none");
        let run = base.join("run");
        let hierarchy = Hierarchy::V2 {
            root: base.join("cg"),
        };
        assert_eq!(collect(&hierarchy, &run).map_err(|e| e.msg), Ok(0));
        // No parent, no run dir: the common case costs one failed readdir.
        assert!(!run.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
