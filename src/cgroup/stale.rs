//! The cgroups of dead sandboxes: which sandbox ids have a cgroup, and how to
//! remove one; `state::collect_dead` decides which of them are dead.

use std::io;
use std::path::{Path, PathBuf};

use super::{is_valid_id, v1, v2, Hierarchy};
use crate::error::{Error, Result};

/// See `super::collect_stale`.
pub(super) fn collect(
    hierarchy: &Hierarchy,
    run_dir: &Path,
    mut also: impl FnMut(&str) -> Result<()>,
) -> Result<usize> {
    let parents = hierarchy.parents();
    let ids = candidates(&parents)?;
    crate::state::collect_dead(run_dir, &ids, |id| {
        // What else the dead sandbox held goes first: its cgroup is what
        // makes it a candidate, so it must be the last thing removed.
        also(id)?;
        match hierarchy {
            Hierarchy::V2 { .. } => v2::remove(&parents[0].join(id)),
            Hierarchy::V1 { .. } => {
                let dirs: Vec<PathBuf> = parents.iter().map(|parent| parent.join(id)).collect();
                v1::remove_dirs(&dirs)
            }
        }
    })
}

/// Rootless without a cgroup: the dead runs are the lock files nobody holds
/// (a run killed with SIGKILL leaves its own behind). One `readdir`.
pub(super) fn collect_locks_only(
    run_dir: &Path,
    also: impl FnMut(&str) -> Result<()>,
) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("sandboxes")) else {
        return Ok(0);
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry
                .file_name()
                .to_str()?
                .strip_suffix(".lock")?
                .to_string();
            is_valid_id(&name).then_some(name)
        })
        .collect();
    ids.sort_unstable();
    crate::state::collect_dead(run_dir, &ids, also)
}

/// The sandbox ids that have a cgroup under any parent, sorted and deduplicated (a
/// crash during creation on v1 can leave a cgroup in only some hierarchies).
fn candidates(parents: &[PathBuf]) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for parent in parents {
        let entries = match std::fs::read_dir(parent) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(Error::os("read", err).on(parent.display())),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::super::test_dir;
    use super::*;
    use crate::state::SandboxLock;

    fn mkdirs(dirs: &[PathBuf]) {
        for dir in dirs {
            std::fs::create_dir_all(dir).unwrap();
        }
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

        assert_eq!(
            collect(&hierarchy, &run, |_| Ok(())).map_err(|e| e.to_string()),
            Ok(2)
        );
        assert!(parent.join("live").exists());
        assert!(run.join("sandboxes/live.lock").exists());
        assert!(!parent.join("dead").exists());
        assert!(!run.join("sandboxes/dead.lock").exists());
        assert!(!parent.join("orphan").exists());
        assert!(parent.join("not.ours").exists());

        // Once the owner is gone, the next collection takes it too.
        drop(live);
        assert_eq!(
            collect(&hierarchy, &run, |_| Ok(())).map_err(|e| e.to_string()),
            Ok(1)
        );
        assert!(!parent.join("live").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn v1_collects_every_hierarchy() {
        let base = test_dir("stale-v1");
        let run = base.join("run");
        let hierarchy = Hierarchy::V1 {
            cpu: base.join("cpu,cpuacct"),
            cpuacct: base.join("cpu,cpuacct"),
            memory: base.join("memory"),
            pids: base.join("pids"),
        };
        let parents = hierarchy.parents();
        // A crash during creation left "half" in the cpu hierarchy only.
        mkdirs(&parents.iter().map(|p| p.join("dead")).collect::<Vec<_>>());
        mkdirs(&[parents[0].join("half")]);
        SandboxLock::acquire(&run, "half").unwrap().release(false);

        assert_eq!(
            collect(&hierarchy, &run, |_| Ok(())).map_err(|e| e.to_string()),
            Ok(2)
        );
        for parent in &parents {
            assert_eq!(std::fs::read_dir(parent).unwrap().count(), 0);
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
