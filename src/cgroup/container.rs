//! The cgroup of an OCI container (DESIGN.md section 10): at the path
//! config.json names (`linux.cgroupsPath`, cgroupfs style), with the limits
//! of `linux.resources` and its device rules, on v1 and v2. The engine, not
//! microbox, decides the path; microbox creates the leaf (and missing
//! parents), and `delete` removes the leaf.
//!
//! The device rules are not optional: root Podman grants CAP_MKNOD and
//! mounts /dev without nodev, so without them a container could make and
//! open a node of a host disk. No devices controller (v1) or no BPF device
//! program (v2) is an error, never a container without rules.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::devices::{self, DeviceRule};
use super::{
    detect, kill_members, make_dir, remove_dir_retrying, write_error, write_path, Hierarchy,
    Placement,
};
use crate::error::{Error, Result};

/// Where a container goes when config.json names no cgroup: beside, never
/// inside, the one-shot sandboxes' `microbox` parent (its collector would
/// take a container's cgroup for a dead sandbox's).
pub(crate) const DEFAULT_PARENT: &str = "microbox-oci";

/// linux.resources, in the config's units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resources {
    pub memory_limit: Option<i64>,
    pub memory_reservation: Option<i64>,
    /// Memory plus swap, as the spec (and v1's memsw) counts it.
    pub memory_swap: Option<i64>,
    pub swappiness: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub pids_limit: Option<i64>,
    pub devices: Vec<DeviceRule>,
}

/// A container's cgroup directories: one on v2, one per distinct v1
/// controller mount (cpu, cpuacct, memory, pids, devices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerCgroup {
    pub v2: bool,
    pub dirs: Vec<PathBuf>,
}

/// `cgroupsPath` as a path below each hierarchy root: absolute, plain
/// components. The systemd form (`slice:prefix:name`) needs a systemd
/// driver microbox does not have.
pub(crate) fn relative_path(path: Option<&str>, id: &str, systemd: bool) -> Result<PathBuf> {
    const REMEDY: &str =
        "microbox has no systemd cgroup driver: set cgroup_manager = \"cgroupfs\" \
                          in containers.conf (Podman), or SystemdCgroup = false (containerd)";
    if systemd {
        return Err(Error::usage(format!(
            "--systemd-cgroup: not supported ({REMEDY})"
        )));
    }
    let Some(path) = path else {
        return Ok(Path::new(DEFAULT_PARENT).join(id));
    };
    if path.contains(':') && !path.starts_with('/') {
        return Err(Error::usage(format!(
            "config.json: linux.cgroupsPath {path:?} is in systemd form ({REMEDY})"
        )));
    }
    let rel = path.trim_start_matches('/');
    let plain = |c: &str| !c.is_empty() && c != "." && c != "..";
    if rel.is_empty() || !rel.split('/').all(plain) {
        return Err(Error::usage(format!(
            "config.json: linux.cgroupsPath {path:?}: expected an absolute path of plain names"
        )));
    }
    Ok(PathBuf::from(rel))
}

/// One control file and its value.
#[derive(Debug, PartialEq, Eq)]
struct Write {
    file: &'static str,
    value: String,
    /// Absent without the kernel feature (swap accounting): skipped, with a
    /// warning when the config asked for it.
    optional: bool,
}

fn write(file: &'static str, value: impl ToString) -> Write {
    Write {
        file,
        value: value.to_string(),
        optional: false,
    }
}

/// What v1 gets written, in order (memsw after memory: the kernel keeps
/// memsw >= memory at every moment).
fn plan_v1(res: &Resources) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(limit) = res.memory_limit {
        out.push(write("memory.limit_in_bytes", limit));
    }
    if let Some(reservation) = res.memory_reservation {
        out.push(write("memory.soft_limit_in_bytes", reservation));
    }
    if let Some(swap) = res.memory_swap {
        out.push(Write {
            optional: true,
            ..write("memory.memsw.limit_in_bytes", swap)
        });
    }
    if let Some(swappiness) = res.swappiness {
        out.push(write("memory.swappiness", swappiness));
    }
    if let Some(shares) = res.cpu_shares {
        out.push(write("cpu.shares", shares));
    }
    if let Some(period) = res.cpu_period {
        out.push(write("cpu.cfs_period_us", period));
    }
    if let Some(quota) = res.cpu_quota {
        out.push(write("cpu.cfs_quota_us", quota));
    }
    if let Some(pids) = res.pids_limit {
        out.push(write("pids.max", pids_value(pids)));
    }
    out
}

fn plan_v2(res: &Resources) -> Vec<Write> {
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    let mut out = Vec::new();
    if let Some(limit) = res.memory_limit {
        out.push(write("memory.max", max(limit)));
    }
    if let Some(reservation) = res.memory_reservation {
        out.push(write("memory.low", max(reservation)));
    }
    if let Some(swap) = res.memory_swap {
        // v2 counts swap alone; the spec counts memory plus swap.
        let value = match (swap, res.memory_limit) {
            (s, _) if s < 0 => "max".to_string(),
            (s, Some(limit)) if limit >= 0 => s.saturating_sub(limit).max(0).to_string(),
            (s, _) => s.to_string(),
        };
        out.push(Write {
            optional: true,
            ..write("memory.swap.max", value)
        });
    }
    if let Some(shares) = res.cpu_shares {
        // The conversion runc and crun use: shares 2..262144 onto weight 1..10000.
        let shares = shares.clamp(2, 262_144);
        out.push(write("cpu.weight", 1 + ((shares - 2) * 9999) / 262_142));
    }
    if res.cpu_quota.is_some() || res.cpu_period.is_some() {
        let quota = res
            .cpu_quota
            .filter(|q| *q > 0)
            .map_or("max".to_string(), |q| q.to_string());
        out.push(write(
            "cpu.max",
            format!("{quota} {}", res.cpu_period.unwrap_or(100_000)),
        ));
    }
    if let Some(pids) = res.pids_limit {
        out.push(write("pids.max", pids_value(pids)));
    }
    out
}

/// The spec's "0 or below: no limit".
fn pids_value(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

const V2_CONTROLLERS: &str = "+cpu +memory +pids";

impl ContainerCgroup {
    /// Creates the cgroup at `rel` with every limit and the device rules
    /// written; the engine's name collision (the leaf exists) is an error.
    pub(crate) fn create(rel: &Path, res: &Resources) -> Result<ContainerCgroup> {
        let rules = devices::effective_rules(&res.devices);
        match detect()? {
            Hierarchy::V2 { root } => {
                let dir = root.join(rel);
                make_parents(&root, rel, true)?;
                if !make_dir(&dir)? {
                    return Err(exists(&dir));
                }
                let cgroup = ContainerCgroup {
                    v2: true,
                    dirs: vec![dir.clone()],
                };
                let written =
                    write_all(&dir, &plan_v2(res).iter().collect::<Vec<_>>()).and_then(|()| {
                        let fd = open_dir(&dir)?;
                        devices::attach_v2(fd.as_fd(), &rules)
                    });
                cgroup.fail_cleanly(written)
            }
            Hierarchy::V1 {
                cpu,
                cpuacct,
                memory,
                pids,
            } => {
                let devices = detect::v1_mount_of("devices").ok_or_else(|| {
                    Error::runtime(
                        "no cgroup v1 devices controller is mounted: microbox will not run a \
                         container without device rules",
                    )
                })?;
                // Each distinct mount with the controllers it holds, as
                // detection found them (co-mounted ones share a mount).
                let mut mounts: Vec<(PathBuf, Vec<&str>)> = Vec::new();
                for (name, mount) in [
                    ("cpu", cpu),
                    ("cpuacct", cpuacct),
                    ("memory", memory),
                    ("pids", pids),
                    ("devices", devices),
                ] {
                    match mounts.iter_mut().find(|(m, _)| *m == mount) {
                        Some((_, names)) => names.push(name),
                        None => mounts.push((mount, vec![name])),
                    }
                }
                let mut cgroup = ContainerCgroup {
                    v2: false,
                    dirs: Vec::new(),
                };
                for (mount, _) in &mounts {
                    let dir = mount.join(rel);
                    let made = make_parents(mount, rel, false).and_then(|()| make_dir(&dir));
                    match made {
                        Ok(true) => cgroup.dirs.push(dir),
                        Ok(false) => return cgroup.fail_cleanly(Err(exists(&dir))),
                        Err(err) => return cgroup.fail_cleanly(Err(err)),
                    }
                }
                let plan = plan_v1(res);
                let mut written = Ok(());
                for ((_, here), dir) in mounts.iter().zip(&cgroup.dirs) {
                    let writes: Vec<&Write> = plan
                        .iter()
                        .filter(|w| here.iter().any(|c| w.file.starts_with(&format!("{c}."))))
                        .collect();
                    written = written.and_then(|()| write_all(dir, &writes));
                    if here.contains(&"devices") {
                        written = written.and_then(|()| devices::write_v1(dir, &rules));
                    }
                }
                cgroup.fail_cleanly(written)
            }
        }
    }

    fn fail_cleanly(self, result: Result<()>) -> Result<ContainerCgroup> {
        match result {
            Ok(()) => Ok(self),
            Err(err) => {
                let _ = self.remove();
                Err(err)
            }
        }
    }

    /// How the container's process enters: born inside on v2; on v1 it
    /// writes itself into each `tasks` file opened here.
    pub(crate) fn placement(&self) -> Result<(Option<OwnedFd>, Placement<'static>)> {
        if self.v2 {
            let fd = open_dir(&self.dirs[0])?;
            return Ok((Some(fd), Placement::JoinsItself(Vec::new())));
        }
        let mut files = Vec::with_capacity(self.dirs.len());
        for dir in &self.dirs {
            let path = dir.join("tasks");
            let fd = rustix::fs::open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| Error::os("open", e).on(path.display()))?;
            files.push(fd);
        }
        Ok((None, Placement::JoinsItself(files)))
    }

    /// Moves the calling process in (`exec` joins the container this way).
    pub(crate) fn join_self(&self) -> Result<()> {
        for dir in &self.dirs {
            write_path(&dir.join("cgroup.procs"), "0")
                .map_err(|e| Error::os("join the container's cgroup", e).on(dir.display()))?;
        }
        Ok(())
    }

    /// SIGKILL to every process inside through `cgroup.kill` (v2, Linux
    /// 5.14): false where there is none (v1, older kernels), for the caller
    /// to signal the pids itself.
    pub(crate) fn kill_all(&self) -> Result<bool> {
        if !self.v2 {
            return Ok(false);
        }
        let path = self.dirs[0].join("cgroup.kill");
        match write_path(&path, "1") {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(write_error("1", &path, err, None)),
        }
    }

    /// The host pids of every process inside.
    pub(crate) fn pids(&self) -> Result<Vec<i32>> {
        let path = self.dirs[self.dirs.len() - 1].join("cgroup.procs");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(Error::os("read", err).on(path.display())),
        }
    }

    /// Kills what is left and removes the leaf directories (never the
    /// engine's parents).
    pub(crate) fn remove(&self) -> Result<()> {
        let mut first = Ok(());
        for dir in &self.dirs {
            let removed = remove_dir_retrying(dir, || kill_members(dir).map(|_| ()));
            if first.is_ok() {
                first = removed;
            }
        }
        first
    }
}

/// Every missing directory above the leaf; on v2 each ancestor also gets
/// the controllers enabled for its children.
fn make_parents(root: &Path, rel: &Path, v2: bool) -> Result<()> {
    let mut dir = root.to_path_buf();
    let parents: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    if v2 {
        enable(&dir)?;
    }
    for part in parents {
        dir.push(part);
        make_dir(&dir)?;
        if v2 {
            enable(&dir)?;
        }
    }
    Ok(())
}

fn enable(dir: &Path) -> Result<()> {
    let file = dir.join("cgroup.subtree_control");
    write_path(&file, V2_CONTROLLERS).map_err(|e| write_error(V2_CONTROLLERS, &file, e, None))
}

fn write_all(dir: &Path, writes: &[&Write]) -> Result<()> {
    for w in writes {
        let path = dir.join(w.file);
        match write_path(&path, &w.value) {
            Ok(()) => {}
            Err(err) if w.optional && err.kind() == io::ErrorKind::NotFound => {
                crate::log::warn(
                    "the kernel has no swap accounting: the container's swap limit is not applied",
                    &[("file", &path.display().to_string())],
                );
            }
            Err(err) => return Err(write_error(&w.value, &path, err, None)),
        }
    }
    Ok(())
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os("open cgroup", e).on(dir.display()))
}

fn exists(dir: &Path) -> Error {
    Error::runtime(format!("cgroup {} exists already", dir.display()))
        .hint("another container uses the same linux.cgroupsPath")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn paths_are_plain_and_systemd_is_refused_with_the_remedy() {
        assert_eq!(
            relative_path(Some("/libpod_parent/libpod-x"), "x", false).unwrap(),
            PathBuf::from("libpod_parent/libpod-x")
        );
        assert_eq!(
            relative_path(None, "x", false).unwrap(),
            PathBuf::from("microbox-oci/x")
        );
        for bad in ["/a/../b", "/", "//", "/a/./b"] {
            assert!(relative_path(Some(bad), "x", false).is_err(), "{bad}");
        }
        let err = relative_path(Some("machine.slice:libpod:x"), "x", false).unwrap_err();
        assert!(
            err.to_string().contains("cgroup_manager = \"cgroupfs\""),
            "{err}"
        );
        let err = relative_path(None, "x", true).unwrap_err();
        assert!(
            err.to_string().contains("cgroup_manager = \"cgroupfs\""),
            "{err}"
        );
    }

    #[test]
    fn limits_map_to_each_version() {
        let res = Resources {
            memory_limit: Some(64 << 20),
            memory_swap: Some(128 << 20),
            cpu_shares: Some(1024),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            pids_limit: Some(0),
            ..Resources::default()
        };
        let v2: Vec<(&str, String)> = plan_v2(&res)
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect();
        assert_eq!(
            v2,
            [
                ("memory.max", (64u64 << 20).to_string()),
                ("memory.swap.max", (64u64 << 20).to_string()),
                ("cpu.weight", "39".to_string()),
                ("cpu.max", "50000 100000".to_string()),
                ("pids.max", "max".to_string()),
            ]
        );
        let v1: Vec<&str> = plan_v1(&res).iter().map(|w| w.file).collect();
        assert_eq!(
            v1,
            [
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "cpu.shares",
                "cpu.cfs_period_us",
                "cpu.cfs_quota_us",
                "pids.max"
            ]
        );
    }
}
