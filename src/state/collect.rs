//! The collector of dead sandboxes: for each sandbox id that still has
//! something on the host, take its lock; if that works (or there is no lock
//! file), its run is dead and the owner of that something removes it. The
//! orders that make this sound:
//!
//! - create: lock file created and locked, then host resources made.
//! - destroy: resources removed, then lock file unlinked, then unlocked (closed).
//! - collector: a resource seen, then its lock file probed.
//!
//! A collector that wins the lock of a file the owner just unlinked finds the
//! resources already gone; one that finds no lock file at all finds a resource
//! that no live owner can have. A lock file left without resources (a crash
//! between the two steps) is an empty file on tmpfs, never looked at again.

use std::path::Path;

use rustix::fs::FlockOperation;

use super::lock::{lock_path, open_creating, probe, Owner};
use crate::error::{Error, Result};

/// Calls `remove(id)` for each of `ids` whose run is dead, then deletes its lock
/// file. `ids` are the sandboxes that have resources on the host (cgroups today;
/// leases later), found by their owners. Returns how many were collected; when
/// another run is collecting (it holds `gc.lock`), returns 0 and leaves it to
/// that run. The first error is returned after every id was tried.
pub fn collect_dead(
    run_dir: &Path,
    ids: &[String],
    mut remove: impl FnMut(&str) -> Result<()>,
) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let gc_path = run_dir.join("gc.lock");
    let gc = open_creating(&gc_path)?;
    match rustix::fs::flock(&gc, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(0),
        Err(err) => return Err(Error::os("lock", err).on(gc_path.display())),
    }
    let mut collected = 0;
    let mut first_error = None;
    for id in ids {
        let path = lock_path(run_dir, id);
        let held = match probe(&path) {
            Ok(Owner::Alive) => continue,
            Ok(Owner::Dead(held)) => held,
            Err(err) => {
                first_error.get_or_insert(err);
                continue;
            }
        };
        match remove(id) {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::super::SandboxLock;
    use super::*;
    use crate::test_dir;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dead_runs_are_removed_and_live_ones_kept() {
        let run = test_dir("state-collect");
        let live = SandboxLock::acquire(&run, "live").unwrap();
        SandboxLock::acquire(&run, "dead").unwrap().release(false);
        let mut removed = Vec::new();
        let all = ids(&["dead", "live", "orphan"]);
        let n = collect_dead(&run, &all, |id| {
            removed.push(id.to_string());
            Ok(())
        });
        assert_eq!(n.map_err(|e| e.to_string()), Ok(2));
        assert_eq!(removed, ["dead", "orphan"]);
        assert!(!lock_path(&run, "dead").exists());
        assert!(lock_path(&run, "live").exists());
        drop(live);
        assert_eq!(
            collect_dead(&run, &ids(&["live"]), |_| Ok(())).ok(),
            Some(1)
        );
        std::fs::remove_dir_all(&run).unwrap();
    }

    #[test]
    fn a_failed_removal_keeps_the_lock_file_and_reports() {
        let run = test_dir("state-collect-fail");
        SandboxLock::acquire(&run, "dead").unwrap().release(false);
        let n = collect_dead(&run, &ids(&["dead"]), |_| Err(Error::runtime("busy")));
        assert_eq!(n.map_err(|e| e.to_string()), Err("busy".to_string()));
        assert!(lock_path(&run, "dead").exists());
        std::fs::remove_dir_all(&run).unwrap();
    }

    #[test]
    fn a_busy_collector_lock_means_someone_else_collects() {
        let run = test_dir("state-collect-busy");
        let other = open_creating(&run.join("gc.lock")).unwrap();
        rustix::fs::flock(&other, FlockOperation::NonBlockingLockExclusive).unwrap();
        let mut called = false;
        let n = collect_dead(&run, &ids(&["dead"]), |_| {
            called = true;
            Ok(())
        });
        assert_eq!(n.ok(), Some(0));
        assert!(!called);
        std::fs::remove_dir_all(&run).unwrap();
    }

    #[test]
    fn nothing_to_collect_touches_nothing() {
        let base = test_dir("state-collect-none");
        let run = base.join("run");
        assert_eq!(collect_dead(&run, &[], |_| Ok(())).ok(), Some(0));
        // No run dir: the common case costs nothing here.
        assert!(!run.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
