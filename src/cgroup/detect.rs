//! Which cgroup hierarchy the host runs, and where its controllers are mounted.
//!
//! The decision is a pure function of three facts read from the host (is the root
//! a cgroup2 filesystem, the text of `/proc/self/mountinfo`, the root path), so the
//! unit tests feed it fake hosts.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Where the host mounts cgroups.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `CGROUP2_SUPER_MAGIC` from `<linux/magic.h>`.
const CGROUP2_SUPER_MAGIC: i128 = 0x6367_7270;

/// The cgroup layout microbox writes limits into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// The unified hierarchy, mounted at `root`.
    V2 { root: PathBuf },
    /// Legacy hierarchies: the mount point of each controller microbox uses. Two of
    /// them are the same path when the controllers are co-mounted.
    V1 {
        cpu: PathBuf,
        /// CPU time used (the report, `--cpu-time`): v1's cpu controller only
        /// throttles; the counters are cpuacct's.
        cpuacct: PathBuf,
        memory: PathBuf,
        pids: PathBuf,
    },
}

impl Hierarchy {
    /// The directories that hold one `microbox/<id>` cgroup per sandbox: one on v2,
    /// one per distinct controller mount on v1.
    pub fn parents(&self) -> Vec<PathBuf> {
        self.mounts()
            .into_iter()
            .map(|mount| mount.join(super::PARENT))
            .collect()
    }

    /// Distinct mount points, in the order cpu, cpuacct, memory, pids.
    pub(super) fn mounts(&self) -> Vec<&Path> {
        match self {
            Hierarchy::V2 { root } => vec![root.as_path()],
            Hierarchy::V1 {
                cpu,
                cpuacct,
                memory,
                pids,
            } => {
                let mut mounts: Vec<&Path> = Vec::with_capacity(4);
                for mount in [cpu, cpuacct, memory, pids] {
                    if !mounts.contains(&mount.as_path()) {
                        mounts.push(mount);
                    }
                }
                mounts
            }
        }
    }
}

/// The host's hierarchy, detected once per process: it cannot change during a run,
/// and both `collect_stale` and `Cgroup::create` need it on the start path.
pub fn detect() -> Result<Hierarchy> {
    static HOST: OnceLock<Hierarchy> = OnceLock::new();
    if let Some(found) = HOST.get() {
        return Ok(found.clone());
    }
    let found = detect_with(Path::new(CGROUP_ROOT), is_cgroup2, || {
        std::fs::read_to_string("/proc/self/mountinfo")
    })?;
    Ok(HOST.get_or_init(|| found).clone())
}

fn is_cgroup2(path: &Path) -> io::Result<bool> {
    let stat = rustix::fs::statfs(path)?;
    Ok(i128::from(stat.f_type) == CGROUP2_SUPER_MAGIC)
}

/// The decision itself. `is_cgroup2` answers for `root`; `mountinfo` is only read
/// when the root is not cgroup2 (one `statfs` is all a v2 host costs).
pub(super) fn detect_with(
    root: &Path,
    is_cgroup2: impl FnOnce(&Path) -> io::Result<bool>,
    mountinfo: impl FnOnce() -> io::Result<String>,
) -> Result<Hierarchy> {
    match is_cgroup2(root) {
        Ok(true) => {
            return Ok(Hierarchy::V2 {
                root: root.to_path_buf(),
            })
        }
        Ok(false) => {}
        // No /sys/fs/cgroup at all: maybe v1 controllers are mounted elsewhere.
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(Error::os("statfs", err).on(root.display())),
    }
    let text = mountinfo().map_err(|err| Error::os("read /proc/self/mountinfo", err))?;
    v1_from_mountinfo(&text)
}

/// The v1 mount point of each of cpu, cpuacct, memory and pids, or an error
/// naming the missing ones.
pub(super) fn v1_from_mountinfo(text: &str) -> Result<Hierarchy> {
    let mut found: [Option<PathBuf>; 4] = [None, None, None, None];
    const WANTED: [&str; 4] = ["cpu", "cpuacct", "memory", "pids"];
    for mount in text.lines().filter_map(parse_line) {
        if mount.fstype != "cgroup" {
            continue;
        }
        for (slot, name) in found.iter_mut().zip(WANTED) {
            // Exact tokens: "cpu" must not match "cpuacct" or "cpuset".
            if slot.is_none() && mount.super_options.split(',').any(|opt| opt == name) {
                *slot = Some(mount.mount_point.clone());
            }
        }
    }
    match found {
        [Some(cpu), Some(cpuacct), Some(memory), Some(pids)] => Ok(Hierarchy::V1 {
            cpu,
            cpuacct,
            memory,
            pids,
        }),
        _ => {
            let missing: Vec<&str> = WANTED
                .iter()
                .zip(&found)
                .filter(|(_, slot)| slot.is_none())
                .map(|(name, _)| *name)
                .collect();
            Err(Error::runtime(format!(
                "no usable cgroup hierarchy: {CGROUP_ROOT} is not cgroup2 and /proc/self/mountinfo \
                 has no cgroup v1 mount of the {} controller{} (is it disabled with \
                 cgroup_disable= on the kernel command line, or not mounted?)",
                missing.join(", "),
                if missing.len() > 1 { "s" } else { "" }
            )))
        }
    }
}

/// The mount point of one v1 controller (`devices`, which only OCI
/// containers use), from /proc/self/mountinfo.
pub(super) fn v1_mount_of(controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines()
        .filter_map(parse_line)
        .find(|m| m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == controller))
        .map(|m| m.mount_point)
}

#[derive(Debug, PartialEq, Eq)]
struct MountLine<'a> {
    mount_point: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

/// One line of mountinfo (proc(5)): `id parent maj:min root mount-point options
/// [optional fields...] - fstype source super-options`. None for a malformed line.
fn parse_line(line: &str) -> Option<MountLine<'_>> {
    let mut fields = line.split(' ');
    let mount_point = fields.nth(4)?;
    // Skip the per-mount options and the optional fields up to the separator.
    fields.by_ref().find(|field| *field == "-")?;
    let fstype = fields.next()?;
    let _source = fields.next()?;
    let super_options = fields.next()?;
    Some(MountLine {
        mount_point: PathBuf::from(unescape(mount_point)),
        fstype,
        super_options,
    })
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            if bytes[i] == b'\\' && text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                u8::from_str_radix(text, 8).ok()
            } else {
                None
            }
        });
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    /// This host: tmpfs at /sys/fs/cgroup, v1 controllers, an empty cgroup2 at unified.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd-style v1 host: cpu co-mounted with cpuacct, optional fields present.
    const V1_COMOUNTED: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid shared:13 master:4 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid shared:14 - cgroup cgroup rw,pids
";

    const V2: &str = "\
25 18 0:22 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate
";

    fn no_mountinfo() -> io::Result<String> {
        panic!("a v2 host must not need mountinfo")
    }

    #[test]
    fn v2_root_is_v2_without_reading_mountinfo() {
        let root = std::env::temp_dir();
        let found = detect_with(&root, |_| Ok(true), no_mountinfo).unwrap();
        assert_eq!(found, Hierarchy::V2 { root: root.clone() });
        assert_eq!(found.parents(), vec![root.join("microbox")]);
    }

    #[test]
    fn hybrid_uses_the_v1_controllers() {
        let found = detect_with(
            Path::new(CGROUP_ROOT),
            |_| Ok(false),
            || Ok(HYBRID.to_string()),
        )
        .unwrap();
        assert_eq!(
            found,
            Hierarchy::V1 {
                cpu: "/sys/fs/cgroup/cpu".into(),
                cpuacct: "/sys/fs/cgroup/cpuacct".into(),
                memory: "/sys/fs/cgroup/memory".into(),
                pids: "/sys/fs/cgroup/pids".into(),
            }
        );
    }

    #[test]
    fn comounted_cpu_is_found_under_its_joint_name() {
        let found = v1_from_mountinfo(V1_COMOUNTED).unwrap();
        let Hierarchy::V1 { cpu, .. } = &found else {
            panic!("expected v1")
        };
        assert_eq!(cpu, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(found.parents().len(), 3);
    }

    #[test]
    fn missing_root_falls_back_to_mountinfo() {
        let err = || Err(io::Error::from(io::ErrorKind::NotFound));
        let found = detect_with(
            Path::new("/nonexistent"),
            |_| err(),
            || Ok(V1_COMOUNTED.to_string()),
        );
        assert!(matches!(found, Ok(Hierarchy::V1 { .. })));
    }

    #[test]
    fn a_v2_mount_elsewhere_is_not_enough() {
        // cgroup2 at /sys/fs/cgroup/unified only: no v1 controllers, no v2 root.
        let err = detect_with(
            Path::new(CGROUP_ROOT),
            |_| Ok(false),
            || Ok(V2.replace("/sys/fs/cgroup ", "/sys/fs/cgroup/unified ")),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cpu, cpuacct, memory, pids controllers"),
            "{}",
            err.to_string(),
        );
    }

    #[test]
    fn missing_controller_is_named() {
        let no_pids: String = HYBRID
            .lines()
            .filter(|line| !line.ends_with(",pids"))
            .map(|line| format!("{line}\n"))
            .collect();
        let err = v1_from_mountinfo(&no_pids).unwrap_err();
        assert!(
            err.to_string().contains("of the pids controller ("),
            "{}",
            err
        );
    }

    #[test]
    fn comounted_controllers_share_one_parent() {
        let text = "30 25 0:27 / /cg/all rw - cgroup cgroup rw,cpu,cpuacct,memory,pids\n";
        let found = v1_from_mountinfo(text).unwrap();
        assert_eq!(found.parents(), vec![PathBuf::from("/cg/all/microbox")]);
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let line = r"30 25 0:27 / /cg/my\040cpu\134x rw - cgroup cgroup rw,cpu";
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.mount_point, Path::new("/cg/my cpu\\x"));
        assert_eq!(parsed.super_options, "rw,cpu");
        assert_eq!(unescape(r"a\04"), r"a\04");
        assert_eq!(unescape(r"\999"), r"\999");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("1 2 3 / /x rw no-separator"), None);
        assert_eq!(parse_line("1 2 3 / /x rw - cgroup"), None);
    }

    #[test]
    fn the_real_host_is_detected() {
        // Whatever this machine runs, detection must find it and agree with itself.
        let first = detect().unwrap();
        assert_eq!(first, detect().unwrap());
    }
}
