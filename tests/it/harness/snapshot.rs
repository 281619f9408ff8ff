//! Host snapshots: what a sandbox run could leave behind (mounts, state files,
//! cgroups, links, processes), compared before and after every run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// What a sandbox run could leave on the host. Only additions count: something
/// that disappeared was cleaned up (for example stale state of an older run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSnapshot {
    /// Mount point, type and source of every mount in this (the host's) namespace.
    pub mounts: BTreeMap<String, usize>,
    pub run_dir: BTreeSet<String>,
    pub cgroups: BTreeSet<String>,
    pub links: BTreeSet<String>,
    /// pid -> cmdline, for processes that look like microbox or test markers.
    pub processes: BTreeMap<u32, String>,
}

const RUN_DIR: &str = "/run/microbox";
/// `microbox create`'s default `--root`.
pub const OCI_ROOT: &str = "/run/microbox/oci";
/// Tests put this in the cmdline of processes they expect to die with the sandbox.
pub const MARKER_PREFIX: &str = "mbx-test-marker-";

impl HostSnapshot {
    pub fn take() -> Self {
        HostSnapshot {
            mounts: mounts(),
            // OCI containers' state is their own tests' to check (oci.rs):
            // Podman keeps it in the fixed default root while other tests run.
            run_dir: tree_paths(Path::new(RUN_DIR), 6)
                .into_iter()
                .filter(|p| !p.starts_with(OCI_ROOT))
                .collect(),
            cgroups: microbox_cgroups(),
            links: dir_names(Path::new("/sys/class/net")),
            processes: microbox_processes(),
        }
    }

    /// What `now` has that `self` had not, one line per item.
    pub fn added(&self, now: &HostSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (m, n) in &now.mounts {
            let had = self.mounts.get(m).copied().unwrap_or(0);
            if *n > had {
                out.push(format!("mount: {m}"));
            }
        }
        for p in now.run_dir.difference(&self.run_dir) {
            if !is_persistent_state(Path::new(p)) {
                out.push(format!("state: {p}"));
            }
        }
        for c in now.cgroups.difference(&self.cgroups) {
            // The parent group (`.../microbox`) may persist; a per-sandbox child may not.
            let is_parent = Path::new(c)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("microbox"))
                && !now.cgroups.iter().any(|o| o.starts_with(&format!("{c}/")));
            if !is_parent {
                out.push(format!("cgroup: {c}"));
            }
        }
        for l in now.links.difference(&self.links) {
            out.push(format!("network link: {l}"));
        }
        for (pid, cmd) in &now.processes {
            if !self.processes.contains_key(pid) {
                out.push(format!("process {pid}: {cmd}"));
            }
        }
        out
    }

    /// Leftovers of a run that ended: polls for up to `settle` so that a sandbox
    /// killed by PDEATHSIG a moment after microbox exited is not counted.
    pub fn leftovers_after_settling(&self, settle: Duration) -> Vec<String> {
        let deadline = Instant::now() + settle;
        loop {
            let added = self.added(&HostSnapshot::take());
            if added.is_empty() || Instant::now() > deadline {
                return added;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What microbox keeps across runs and may create once: directories holding
/// nothing else (the lease directories, one per bridge, which live as long as
/// the bridge, with the `last` hint of where the next address search starts,
/// and the id ranges' directory with its `last` hint)
/// or an empty global lock file directly in /run/microbox (`gc.lock`, held
/// with flock, so it needs no cleanup).
fn is_persistent_state(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return true; // gone by now
    };
    if meta.is_dir() {
        return std::fs::read_dir(path)
            .is_ok_and(|mut d| d.all(|e| e.is_ok_and(|e| is_persistent_state(&e.path()))));
    }
    let in_lease_dir = path
        .parent()
        .and_then(Path::parent)
        .is_some_and(|p| p == Path::new(RUN_DIR).join("ipam"));
    let in_id_dir = path.parent() == Some(&Path::new(RUN_DIR).join("ids"));
    if (in_lease_dir || in_id_dir) && path.file_name().is_some_and(|n| n == "last") {
        return true;
    }
    meta.is_file()
        && meta.len() == 0
        && path.parent() == Some(Path::new(RUN_DIR))
        && path.extension().is_some_and(|e| e == "lock")
}

fn mounts() -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let key = format!(
            "{} {} {}",
            f.get(4).unwrap_or(&"?"),
            f.get(sep + 1).unwrap_or(&"?"),
            f.get(sep + 2).unwrap_or(&"?")
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// Mount points at or under `dir` in the host namespace.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().trim_end_matches('/').to_string();
    mounts()
        .keys()
        .filter_map(|k| k.split(' ').next())
        .filter(|p| *p == prefix || p.starts_with(&format!("{prefix}/")))
        .map(str::to_string)
        .collect()
}

fn tree_paths(dir: &Path, depth: u32) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        out.insert(p.display().to_string());
        if depth > 0 && e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(tree_paths(&p, depth - 1));
        }
    }
    out
}

fn dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `microbox*` directories under /sys/fs/cgroup (v2) and /sys/fs/cgroup/<ctrl>
/// (v1), with every cgroup below them.
fn microbox_cgroups() -> BTreeSet<String> {
    let root = Path::new("/sys/fs/cgroup");
    let mut bases = vec![root.to_path_buf()];
    if let Ok(d) = std::fs::read_dir(root) {
        bases.extend(
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    let mut out = BTreeSet::new();
    for base in bases {
        let Ok(d) = std::fs::read_dir(&base) else {
            continue;
        };
        for e in d.flatten() {
            if e.file_name().to_string_lossy().starts_with("microbox")
                && e.file_type().is_ok_and(|t| t.is_dir())
            {
                out.insert(e.path().display().to_string());
                out.extend(cgroup_dirs(&e.path(), 4));
            }
        }
    }
    out
}

fn cgroup_dirs(dir: &Path, depth: u32) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(d) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in d.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.insert(e.path().display().to_string());
            if depth > 0 {
                out.extend(cgroup_dirs(&e.path(), depth - 1));
            }
        }
    }
    out
}

/// Processes that are microbox (by argv[0] or executable name) or carry a test
/// marker. Compilers and cargo that merely mention "microbox" do not count.
fn microbox_processes() -> BTreeMap<u32, String> {
    let own = std::process::id();
    let mut out = BTreeMap::new();
    let Ok(d) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in d.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let argv0 = argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .unwrap_or("");
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let exe_name = exe.rsplit('/').next().unwrap_or("");
        let is_microbox = argv0.starts_with("microbox")
            || exe_name.starts_with("microbox")
            || exe.contains("memfd:microbox");
        let marked = argv.iter().any(|a| a.contains(MARKER_PREFIX));
        if is_microbox || marked {
            out.insert(pid, argv.join(" "));
        }
    }
    out
}
