//! cgroup v2: `<root>/microbox/<id>` with cpu.max, memory.max, memory.swap.max and
//! pids.max; removal by `cgroup.kill`.
//!
//! The start path is optimistic: on a host that has run microbox before, `create`
//! is one `mkdir`, one `open` of the directory and one open+write+close per limit.
//! Only when the parent or its controllers are missing (`ENOENT`) does it set them up.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::{
    common_hint, kill_members, make_dir, remove_dir_retrying, with_hint, write_at, write_error,
    write_path, Limits, Setting, CPU_PERIOD_US, PARENT,
};
use crate::error::{Error, Result};

const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

pub(super) struct V2Cgroup {
    dir: PathBuf,
    /// Kept open to write the limit files.
    fd: OwnedFd,
    /// Where the sandbox is born (`CLONE_INTO_CGROUP`): `dir` itself, or for a
    /// user's sandbox its leaf `dir/payload` (see [`PAYLOAD`]).
    born_in: Option<OwnedFd>,
}

/// A user's sandbox lives one level below its limits. In a delegated subtree
/// the limit files belong to the user, who is the sandbox's root: were the
/// sandbox's cgroup namespace rooted at the cgroup that holds them, a sandbox
/// given CAP_SYS_ADMIN could mount cgroup2 and raise its own memory.max
/// (unless the host mounts cgroup2 with nsdelegate). The limits stay in the
/// parent, outside the namespace, and still bound the whole subtree.
const PAYLOAD: &str = "payload";

/// What `create` writes, in order.
fn plan(limits: &Limits) -> [Setting; 4] {
    [
        Setting::required(
            "cpu.max",
            format!("{} {CPU_PERIOD_US}", limits.cpu_quota_us()),
        ),
        Setting::required("memory.max", limits.memory),
        // Absent when the kernel does not account swap (no swap controller): then
        // there is no swap to forbid.
        Setting::optional("memory.swap.max", 0),
        Setting::required("pids.max", limits.pids_value()),
    ]
}

impl V2Cgroup {
    /// `leaf`: the sandbox goes into a child cgroup of the one with the limits.
    pub(super) fn create(root: &Path, id: &str, limits: &Limits, leaf: bool) -> Result<V2Cgroup> {
        let dir = root.join(PARENT).join(id);
        let mut parent_ready = false;
        match rustix::fs::mkdir(&dir, Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            Err(rustix::io::Errno::NOENT) => {
                prepare_parent(root)?;
                parent_ready = true;
                if !make_dir(&dir)? {
                    return Err(exists(&dir));
                }
            }
            Err(rustix::io::Errno::EXIST) => return Err(exists(&dir)),
            Err(err) => {
                let err = io::Error::from(err);
                let hint = common_hint(&err);
                return Err(with_hint(
                    Error::os("create cgroup", err).on(dir.display()),
                    hint,
                ));
            }
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(&dir, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(err) => {
                let _ = remove_dir_retrying(&dir, || Ok(()));
                return Err(Error::os("open cgroup", err).on(dir.display()));
            }
        };
        let mut cgroup = V2Cgroup {
            dir,
            fd,
            born_in: None,
        };
        let made = cgroup
            .write_limits(root, limits, parent_ready)
            .and_then(|()| if leaf { cgroup.make_leaf() } else { Ok(()) });
        if let Err(err) = made {
            let _ = remove(&cgroup.dir);
            return Err(err);
        }
        Ok(cgroup)
    }

    fn make_leaf(&mut self) -> Result<()> {
        let leaf = self.dir.join(PAYLOAD);
        make_dir(&leaf)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&leaf, flags, Mode::empty())
            .map_err(|err| Error::os("open cgroup", err).on(leaf.display()))?;
        self.born_in = Some(fd);
        Ok(())
    }

    fn write_limits(&self, root: &Path, limits: &Limits, mut parent_ready: bool) -> Result<()> {
        for setting in plan(limits) {
            loop {
                let err = match write_at(self.fd.as_fd(), setting.file, &setting.value) {
                    Ok(()) => break,
                    Err(err) => err,
                };
                if err.kind() == io::ErrorKind::NotFound {
                    if setting.optional {
                        break;
                    }
                    // The controller is not enabled for microbox's children (a fresh
                    // boot re-created the parent, or someone disabled it): fix the
                    // parent once and retry; the new files appear in our cgroup.
                    if !parent_ready {
                        prepare_parent(root)?;
                        parent_ready = true;
                        continue;
                    }
                }
                let controller = setting.file.split('.').next().unwrap_or(setting.file);
                let hint = match err.raw_os_error() {
                    Some(libc::ENOENT) => Some(format!(
                        "is the {controller} controller enabled in {}?",
                        root.join(PARENT).join("cgroup.subtree_control").display()
                    )),
                    Some(libc::EINVAL) if controller == "cpu" => {
                        Some("the quota must be at least 1000 (--cpus 0.01 or more)".to_string())
                    }
                    _ => None,
                };
                return Err(write_error(
                    &setting.value,
                    &self.dir.join(setting.file),
                    err,
                    hint.as_deref(),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn dir_fd(&self) -> BorrowedFd<'_> {
        self.born_in.as_ref().unwrap_or(&self.fd).as_fd()
    }

    /// `oom_kill` in memory.events counts OOM kills in this cgroup and below.
    pub(super) fn oom_killed(&self) -> bool {
        std::fs::read_to_string(self.file("memory.events"))
            .map(|text| oom_kills(&text) > 0)
            .unwrap_or(false)
    }

    pub(super) fn file(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub(super) fn remove(&self) -> Result<()> {
        remove(&self.dir)
    }
}

/// Kills everything in the cgroup at `dir` and below and removes them all; also
/// used for the cgroups of dead runs.
pub(super) fn remove(dir: &Path) -> Result<()> {
    match write_path(&dir.join("cgroup.kill"), "1") {
        // The kernel kills every member, including any forked during the kill, but
        // asynchronously: the rmdir retries until they are gone.
        Ok(()) => remove_tree(dir, 0, false),
        // Before Linux 5.14 there is no cgroup.kill; kill by pid, again on each retry.
        Err(err) if err.kind() == io::ErrorKind::NotFound => remove_tree(dir, 0, true),
        Err(err) => Err(write_error("1", &dir.join("cgroup.kill"), err, None)),
    }
}

/// Removes `dir` after its child cgroups, depth first: a user's sandbox has
/// its payload leaf, and a sandbox that may mount cgroup2 in its own
/// namespace may make more below it (a cgroup with children is EBUSY). The
/// kernel bounds the depth only by cgroup.max.depth; so does this, at 64.
/// `by_pid`: no cgroup.kill, so each level's members are killed by pid, again
/// on each retry.
fn remove_tree(dir: &Path, depth: u32, by_pid: bool) -> Result<()> {
    let evict = || {
        if by_pid {
            kill_members(dir).map(drop)
        } else {
            Ok(())
        }
    };
    evict().map_err(|err| Error::os("kill the processes in", err).on(dir.display()))?;
    if depth < 64 {
        let children = std::fs::read_dir(dir).into_iter().flatten().flatten();
        for child in children.filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            remove_tree(&child.path(), depth + 1, by_pid)?;
        }
    }
    remove_dir_retrying(dir, evict)
}

/// Creates `<root>/microbox` and makes cpu, memory and pids available to its children.
fn prepare_parent(root: &Path) -> Result<()> {
    let parent = root.join(PARENT);
    make_dir(&parent)?;
    // The root may already delegate them (the VM's /init does); writing only what is
    // missing avoids a needless failure where the root is not ours to change.
    let root_control = root.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&root_control)
        .map_err(|err| Error::os("read", err).on(root_control.display()))?;
    let missing: Vec<&str> = CONTROLLERS
        .into_iter()
        .filter(|name| !enabled.split_whitespace().any(|on| on == *name))
        .collect();
    if !missing.is_empty() {
        enable(root, &root_control, &missing)?;
    }
    enable(root, &parent.join("cgroup.subtree_control"), &CONTROLLERS)
}

fn enable(root: &Path, control: &Path, controllers: &[&str]) -> Result<()> {
    let value = enable_value(controllers);
    let Err(err) = write_path(control, &value) else {
        return Ok(());
    };
    let cgroup = control.parent().unwrap_or(control);
    let hint = match err.raw_os_error() {
        Some(libc::EBUSY) => Some(format!(
            "{} has processes of its own, and cgroup v2 lets only a cgroup without \
             processes hand controllers to its children; move them into a child cgroup",
            cgroup.display()
        )),
        Some(libc::ENOENT | libc::EINVAL) => Some(unavailable_hint(root, controllers)),
        _ => None,
    };
    Err(write_error(&value, control, err, hint.as_deref()))
}

fn enable_value(controllers: &[&str]) -> String {
    controllers
        .iter()
        .map(|name| format!("+{name}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why the kernel refused to enable a controller, as far as we can tell.
fn unavailable_hint(root: &Path, controllers: &[&str]) -> String {
    let offered = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let absent: Vec<&str> = controllers
        .iter()
        .copied()
        .filter(|name| !offered.split_whitespace().any(|on| on == *name))
        .collect();
    if absent.is_empty() {
        // All offered, yet refused: the cpu controller's known condition.
        "the cpu controller cannot be enabled while realtime processes run outside the \
         root cgroup"
            .to_string()
    } else {
        format!(
            "cgroup v2 does not offer {}: bound to a v1 hierarchy, or disabled with \
             cgroup_disable= on the kernel command line?",
            absent.join(", ")
        )
    }
}

fn exists(dir: &Path) -> Error {
    Error::failed("create cgroup", "it already exists")
        .on(dir.display())
        .hint("sandbox id in use?")
}

/// The `oom_kill` count of a memory.events file.
fn oom_kills(events: &str) -> u64 {
    events
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;
    use crate::spec::PidsLimit;

    #[test]
    fn plan_writes_every_limit() {
        let limits = Limits {
            millicpus: 500,
            memory: 256 << 20,
            pids: PidsLimit::Limit(64),
        };
        let plan = plan(&limits);
        let files: Vec<(&str, &str, bool)> = plan
            .iter()
            .map(|s| (s.file, s.value.as_str(), s.optional))
            .collect();
        assert_eq!(
            files,
            [
                ("cpu.max", "50000 100000", false),
                ("memory.max", "268435456", false),
                ("memory.swap.max", "0", true),
                ("pids.max", "64", false),
            ]
        );
    }

    #[test]
    fn oom_kill_count_is_read() {
        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kills(events), 1);
        assert_eq!(oom_kills("low 0\nmax 3\noom 0\noom_kill 0\n"), 0);
        assert_eq!(oom_kills(""), 0);
    }

    #[test]
    fn controllers_are_enabled_in_one_write() {
        assert_eq!(enable_value(&CONTROLLERS), "+cpu +memory +pids");
        assert_eq!(enable_value(&["memory"]), "+memory");
    }

    #[test]
    fn unavailable_controllers_are_named() {
        let root = super::super::test_dir("v2-hint");
        std::fs::write(root.join("cgroup.controllers"), "cpuset cpu io pids\n").unwrap();
        let hint = unavailable_hint(&root, &CONTROLLERS);
        assert!(
            hint.starts_with("cgroup v2 does not offer memory:"),
            "{hint}"
        );
        let hint = unavailable_hint(&root, &["cpu"]);
        assert!(hint.contains("realtime"), "{hint}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn fake_parent_is_prepared() {
        // Regular files stand in for the control files; cgroupfs would parse each
        // write, here we see what was written.
        let root = super::super::test_dir("v2-parent");
        let control = |dir: &Path| dir.join("cgroup.subtree_control");
        std::fs::write(control(&root), "").unwrap();
        std::fs::create_dir(root.join(PARENT)).unwrap();
        std::fs::write(control(&root.join(PARENT)), "").unwrap();
        prepare_parent(&root).unwrap();
        let read = |path: PathBuf| std::fs::read_to_string(path).unwrap();
        assert_eq!(read(control(&root)), "+cpu +memory +pids");
        assert_eq!(read(control(&root.join(PARENT))), "+cpu +memory +pids");

        // A root that already delegates all three is not written to.
        std::fs::write(control(&root), "cpuset cpu memory pids\n").unwrap();
        std::fs::remove_dir_all(root.join(PARENT)).unwrap();
        std::fs::create_dir(root.join(PARENT)).unwrap();
        std::fs::write(control(&root.join(PARENT)), "").unwrap();
        prepare_parent(&root).unwrap();
        assert_eq!(read(control(&root)), "cpuset cpu memory pids\n");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
