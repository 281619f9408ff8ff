//! cgroup v1: `<mount>/microbox/<id>` in the cpu, cpuacct, memory and pids
//! hierarchies.
//!
//! v1 has no `cgroup.kill` and no `CLONE_INTO_CGROUP`: the child moves itself in
//! through `tasks` files the parent opened (see `join_current_thread`), and
//! removal kills by pid.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::{
    common_hint, kill_members, make_dir, remove_dir_retrying, with_hint, write_error, write_path,
    Limits, Setting, PARENT,
};
use crate::error::{Error, Result};

/// Index of a controller in the `[cpu, cpuacct, memory, pids]` arrays below.
const CPU: usize = 0;
const CPUACCT: usize = 1;
const MEMORY: usize = 2;
const PIDS: usize = 3;
const NAMES: [&str; 4] = ["cpu", "cpuacct", "memory", "pids"];

pub(super) struct V1Cgroup {
    /// The sandbox's directory in the cpu, cpuacct, memory and pids hierarchies;
    /// some are equal when those controllers are co-mounted.
    dirs: [PathBuf; 4],
}

/// What `create` writes, in order, with the controller each file belongs to.
///
/// `cpu.cfs_period_us` is not written: the kernel starts every new cgroup at the
/// 100 ms period microbox uses (`default_cfs_period()`), so the quota alone is the
/// share. The memsw limit follows the memory limit because the kernel requires
/// memsw >= memory at every moment; set equal, no swap can be charged. It is absent
/// without swap accounting (`swapaccount=0`), and then swappiness 0 is what keeps
/// the sandbox's pages in memory.
fn plan(limits: &Limits) -> [(usize, Setting); 6] {
    [
        (
            CPU,
            Setting::required("cpu.cfs_quota_us", limits.cpu_quota_us()),
        ),
        (
            MEMORY,
            Setting::required("memory.limit_in_bytes", limits.memory),
        ),
        (
            MEMORY,
            Setting::optional("memory.memsw.limit_in_bytes", limits.memory),
        ),
        (MEMORY, Setting::optional("memory.swappiness", 0)),
        // v1 charges TCP buffers to a cgroup only once this limit is set (it
        // switches memcg's socket accounting on); without it a sandbox could hold
        // the host's whole tcp_mem in loopback buffers under any --memory. Absent
        // on kernels without v1 kmem accounting.
        (
            MEMORY,
            Setting::optional("memory.kmem.tcp.limit_in_bytes", limits.memory),
        ),
        (PIDS, Setting::required("pids.max", limits.pids_value())),
    ]
}

impl V1Cgroup {
    /// `mounts` are the cpu, cpuacct, memory and pids mount points.
    pub(super) fn create(mounts: [&PathBuf; 4], id: &str, limits: &Limits) -> Result<V1Cgroup> {
        let cgroup = V1Cgroup {
            dirs: mounts.map(|mount| mount.join(PARENT).join(id)),
        };
        let mut created: Vec<&Path> = Vec::with_capacity(4);
        let result = cgroup
            .make_dirs(&mut created)
            .and_then(|()| cgroup.write_limits(limits));
        if let Err(err) = result {
            let _ = remove_dirs(&created);
            return Err(err);
        }
        Ok(cgroup)
    }

    /// The distinct directories, in the order cpu, cpuacct, memory, pids.
    fn distinct(&self) -> Vec<&Path> {
        let mut dirs: Vec<&Path> = Vec::with_capacity(4);
        for dir in &self.dirs {
            if !dirs.contains(&dir.as_path()) {
                dirs.push(dir);
            }
        }
        dirs
    }

    fn make_dirs<'a>(&'a self, created: &mut Vec<&'a Path>) -> Result<()> {
        for dir in self.distinct() {
            let made = match rustix::fs::mkdir(dir, rustix::fs::Mode::from_raw_mode(0o755)) {
                Ok(()) => true,
                // First run since boot: the hierarchy has no microbox parent yet.
                Err(rustix::io::Errno::NOENT) => {
                    if let Some(parent) = dir.parent() {
                        make_dir(parent)?;
                    }
                    make_dir(dir)?
                }
                Err(rustix::io::Errno::EXIST) => false,
                Err(err) => {
                    let err = io::Error::from(err);
                    let hint = common_hint(&err);
                    return Err(with_hint(
                        Error::os("create cgroup", err).on(dir.display()),
                        hint,
                    ));
                }
            };
            if !made {
                return Err(Error::failed("create cgroup", "it already exists")
                    .on(dir.display())
                    .hint("sandbox id in use?"));
            }
            created.push(dir);
        }
        Ok(())
    }

    fn write_limits(&self, limits: &Limits) -> Result<()> {
        for (controller, setting) in plan(limits) {
            let path = self.dirs[controller].join(setting.file);
            match write_path(&path, &setting.value) {
                Ok(()) => {}
                Err(err) if setting.optional && err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    let hint = match (err.raw_os_error(), controller) {
                        (Some(libc::ENOENT), _) => Some(format!(
                            "is {} a {} hierarchy?",
                            self.dirs[controller].display(),
                            NAMES[controller]
                        )),
                        (Some(libc::EINVAL), CPU) => Some(
                            "the quota must be at least 1000 and within the parent's quota"
                                .to_string(),
                        ),
                        _ => None,
                    };
                    return Err(write_error(&setting.value, &path, err, hint.as_deref()));
                }
            }
        }
        Ok(())
    }

    /// The `tasks` file of every distinct hierarchy, opened for writing by the
    /// parent (the kernel checks the opener's credentials), for the child to move
    /// itself with [`super::Placement::join_current_thread`].
    pub(super) fn tasks_files(&self) -> Result<Vec<OwnedFd>> {
        self.distinct()
            .into_iter()
            .map(|dir| {
                let path = dir.join("tasks");
                rustix::fs::open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| Error::os("open", e).on(path.display()))
            })
            .collect()
    }

    /// Since Linux 4.13 memory.oom_control counts `oom_kill`. Before that the only
    /// trace is a failure count, which also counts limit hits that reclaim resolved;
    /// so it means "OOM" only for a command that died of SIGKILL, which is when the
    /// caller asks. Both counters are read: with memsw equal to the limit, the memsw
    /// counter is charged first and is the one that fails (memory.failcnt stays 0).
    pub(super) fn oom_killed(&self) -> bool {
        let memory = &self.dirs[MEMORY];
        if let Ok(text) = std::fs::read_to_string(memory.join("memory.oom_control")) {
            if let Some(count) = oom_kill_field(&text) {
                return count > 0;
            }
        }
        ["memory.failcnt", "memory.memsw.failcnt"]
            .iter()
            .any(|file| {
                std::fs::read_to_string(memory.join(file))
                    .ok()
                    .and_then(|text| text.trim().parse::<u64>().ok())
                    .is_some_and(|count| count > 0)
            })
    }

    pub(super) fn memory_file(&self, file: &str) -> PathBuf {
        self.dirs[MEMORY].join(file)
    }

    pub(super) fn cpuacct_file(&self, file: &str) -> PathBuf {
        self.dirs[CPUACCT].join(file)
    }

    pub(super) fn pids_file(&self, file: &str) -> PathBuf {
        self.dirs[PIDS].join(file)
    }

    pub(super) fn remove(&self) -> Result<()> {
        remove_dirs(&self.distinct())
    }
}

/// Kills the members of every directory first (a process may sit in more than one),
/// then removes each, killing again before each retry: without a freezer a process
/// may fork between the read of cgroup.procs and the kill (pids.max bounds that).
/// Every directory is attempted; the first error is returned.
pub(super) fn remove_dirs<P: AsRef<Path>>(dirs: &[P]) -> Result<()> {
    let mut first_error = None;
    for dir in dirs {
        let dir = dir.as_ref();
        if let Err(err) = kill_members(dir) {
            first_error.get_or_insert(Error::os("kill the processes in", err).on(dir.display()));
        }
    }
    for dir in dirs {
        let dir = dir.as_ref();
        if let Err(err) = remove_dir_retrying(dir, || kill_members(dir).map(drop)) {
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The `oom_kill` line of memory.oom_control, absent before Linux 4.13.
fn oom_kill_field(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|count| count.trim().parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;
    use crate::spec::PidsLimit;

    #[test]
    fn plan_writes_every_limit_in_kernel_order() {
        let limits = Limits {
            millicpus: 1500,
            memory: 1 << 30,
            pids: PidsLimit::Max,
        };
        let plan = plan(&limits);
        let files: Vec<(&str, &str, &str, bool)> = plan
            .iter()
            .map(|(c, s)| (NAMES[*c], s.file, s.value.as_str(), s.optional))
            .collect();
        assert_eq!(
            files,
            [
                ("cpu", "cpu.cfs_quota_us", "150000", false),
                ("memory", "memory.limit_in_bytes", "1073741824", false),
                ("memory", "memory.memsw.limit_in_bytes", "1073741824", true),
                ("memory", "memory.swappiness", "0", true),
                (
                    "memory",
                    "memory.kmem.tcp.limit_in_bytes",
                    "1073741824",
                    true
                ),
                ("pids", "pids.max", "max", false),
            ]
        );
    }

    #[test]
    fn oom_kill_field_is_optional() {
        let new = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(oom_kill_field(new), Some(2));
        assert_eq!(oom_kill_field("oom_kill_disable 0\nunder_oom 0\n"), None);
    }

    /// A fake tree: mkdir in a temp dir stands in for cgroupfs, regular files for the
    /// control files the kernel would create.
    fn fake_mounts(name: &str) -> (PathBuf, [PathBuf; 4]) {
        let base = super::super::test_dir(name);
        let mounts = NAMES.map(|n| base.join(n));
        for mount in &mounts {
            std::fs::create_dir(mount).unwrap();
        }
        (base, mounts)
    }

    #[test]
    fn existing_cgroup_is_refused_and_left_alone() {
        let (base, mounts) = fake_mounts("v1-exists");
        std::fs::create_dir_all(mounts[MEMORY].join(PARENT).join("box")).unwrap();
        let limits = Limits {
            millicpus: 1000,
            memory: 1 << 20,
            pids: PidsLimit::Max,
        };
        let err = V1Cgroup::create(
            [&mounts[0], &mounts[1], &mounts[2], &mounts[3]],
            "box",
            &limits,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("already exists"), "{}", err);
        // The cpu cgroup made before the clash is gone; the clashing one stays.
        assert!(!mounts[CPU].join(PARENT).join("box").exists());
        assert!(mounts[MEMORY].join(PARENT).join("box").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn failed_limit_removes_every_created_dir() {
        // Real cgroupfs creates the control files on mkdir; here none exist, so the
        // first required write fails with ENOENT and creation must undo its mkdirs.
        let (base, mounts) = fake_mounts("v1-undo");
        let limits = Limits {
            millicpus: 1000,
            memory: 1 << 20,
            pids: PidsLimit::Max,
        };
        let err = V1Cgroup::create(
            [&mounts[0], &mounts[1], &mounts[2], &mounts[3]],
            "box",
            &limits,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("cpu.cfs_quota_us"), "{}", err);
        assert!(err.to_string().contains("a cpu hierarchy?"), "{}", err);
        for mount in &mounts {
            assert!(mount.join(PARENT).exists());
            assert!(!mount.join(PARENT).join("box").exists());
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn oom_falls_back_to_either_failure_count() {
        let (base, mounts) = fake_mounts("v1-oom");
        let cgroup = V1Cgroup {
            dirs: mounts.clone(),
        };
        let memory = &mounts[MEMORY];
        let old_kernel = "oom_kill_disable 0\nunder_oom 0\n";
        std::fs::write(memory.join("memory.oom_control"), old_kernel).unwrap();
        std::fs::write(memory.join("memory.failcnt"), "0\n").unwrap();
        assert!(!cgroup.oom_killed());
        std::fs::write(memory.join("memory.memsw.failcnt"), "3\n").unwrap();
        assert!(cgroup.oom_killed());
        // Where the kernel counts OOM kills, the count decides.
        let new_kernel = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";
        std::fs::write(memory.join("memory.oom_control"), new_kernel).unwrap();
        assert!(!cgroup.oom_killed());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn comounted_hierarchies_get_one_dir() {
        let mount = PathBuf::from("/cg/all");
        let cgroup = V1Cgroup {
            dirs: [&mount, &mount, &mount, &mount].map(|m| m.join(PARENT).join("x")),
        };
        assert_eq!(cgroup.distinct(), [Path::new("/cg/all/microbox/x")]);
    }
}
