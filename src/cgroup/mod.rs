//! Resource limits: one interface, two backends (cgroup v1 and v2).
//!
//! Lifecycle, as the sandbox drives it:
//!
//! 1. [`collect_stale`] removes what dead runs left behind (cheap when nothing is).
//! 2. [`Cgroup::create`] takes the sandbox's lock (`state::SandboxLock`), creates
//!    its cgroup(s) and writes every limit, all before any process exists.
//! 3. The child is placed as [`Cgroup::placement`] says: on v2 born inside by
//!    `clone3(CLONE_INTO_CGROUP)`; on v1 it moves itself in through `tasks` files.
//! 4. After the command ends, [`Cgroup::oom_killed`] tells an OOM kill apart from
//!    any other SIGKILL, and [`Cgroup::destroy`] kills what is left and removes the
//!    cgroup(s). Dropping a `Cgroup` does the same as a safety net, errors ignored.
//!
//! Paths: `/sys/fs/cgroup/microbox/<id>` on v2, `<controller mount>/microbox/<id>`
//! for cpu, memory and pids on v1; the lock is `/run/microbox/sandboxes/<id>.lock`.

pub(crate) mod container;
mod delegated;
mod detect;
pub(crate) mod devices;
mod stale;
mod v1;
mod v2;

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, Signal};

use crate::error::{Error, Result};
use crate::spec::{PidsLimit, Spec};
use crate::state::SandboxLock;

pub use detect::{detect, Hierarchy};

/// The cgroup under each hierarchy root that holds one child per sandbox.
pub const PARENT: &str = "microbox";

/// The scheduler period microbox uses; a quota is a share of it.
const CPU_PERIOD_US: u64 = 100_000;
/// The kernel refuses a CFS quota below 1 ms (`min_cfs_quota_period`).
pub const MIN_MILLICPUS: u32 = 10;
/// `PID_MAX_LIMIT` on 64-bit kernels: `pids.max` refuses anything above it.
pub const MAX_PIDS: u32 = 4 * 1024 * 1024;
/// How long removal waits for killed processes to leave a cgroup.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The limits of one sandbox, in the units the kernel takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Thousandths of a core: 500 = half a core, 2000 = two cores.
    pub millicpus: u32,
    /// Bytes of memory; swap is always off.
    pub memory: u64,
    /// Processes and threads together (the kernel counts tasks).
    pub pids: PidsLimit,
}

impl From<&Spec> for Limits {
    fn from(spec: &Spec) -> Self {
        Limits {
            millicpus: spec.millicpus,
            memory: spec.memory,
            pids: spec.pids,
        }
    }
}

impl Limits {
    /// The values the kernel would refuse, rejected before anything is created. The
    /// command-line parser should apply the same bounds (`MIN_MILLICPUS`, `MAX_PIDS`).
    pub fn validate(&self) -> Result<()> {
        if self.millicpus < MIN_MILLICPUS {
            return Err(Error::usage(format!(
                "cpu limit of {} millicpus is below the kernel's minimum of {MIN_MILLICPUS} (--cpus 0.01)",
                self.millicpus
            )));
        }
        if self.memory == 0 {
            return Err(Error::usage("memory limit must be above 0"));
        }
        if let PidsLimit::Limit(n) = self.pids {
            if n == 0 || n > MAX_PIDS {
                return Err(Error::usage(format!(
                    "process limit {n} is outside 1..={MAX_PIDS} (or use --pids max)"
                )));
            }
        }
        Ok(())
    }

    /// The CFS quota in microseconds per `CPU_PERIOD_US`.
    fn cpu_quota_us(&self) -> u64 {
        u64::from(self.millicpus) * CPU_PERIOD_US / 1000
    }

    /// `pids.max` on both backends.
    fn pids_value(&self) -> String {
        match self.pids {
            PidsLimit::Max => "max".to_string(),
            PidsLimit::Limit(n) => n.to_string(),
        }
    }
}

/// One limit file and the value it gets. Optional files are skipped when absent
/// (e.g. no swap accounting).
#[derive(Debug, PartialEq, Eq)]
struct Setting {
    file: &'static str,
    value: String,
    optional: bool,
}

impl Setting {
    fn required(file: &'static str, value: impl ToString) -> Self {
        Setting {
            file,
            value: value.to_string(),
            optional: false,
        }
    }

    fn optional(file: &'static str, value: impl ToString) -> Self {
        Setting {
            file,
            value: value.to_string(),
            optional: true,
        }
    }
}

enum Backend {
    V1(v1::V1Cgroup),
    V2(v2::V2Cgroup),
    /// Rootless without a writable cgroup: no limits, no counters.
    Unlimited,
}

/// The hierarchy microbox makes sandbox cgroups in: the host's for root; for
/// a user, the cgroup v2 subtree delegated to them (`delegated.rs`), or None.
pub fn hierarchy() -> Result<Option<Hierarchy>> {
    let host = detect();
    if !crate::ns::rootless() {
        return host.map(Some);
    }
    Ok(match host {
        Ok(Hierarchy::V2 { root }) => {
            delegated::for_caller(&root).map(|root| Hierarchy::V2 { root })
        }
        Ok(Hierarchy::V1 { .. }) | Err(_) => None,
    })
}

/// One sandbox's cgroup(s) and its lock; see the module documentation.
pub struct Cgroup {
    backend: Backend,
    /// Held (flock) for the sandbox's lifetime: it tells `collect_stale` we are alive.
    lock: Option<SandboxLock>,
    /// The process that created it. A fork-like clone3 child holds a byte copy of
    /// this value; `Drop` checks the pid so that copy can never tear anything down.
    owner: Pid,
    finished: bool,
}

impl Cgroup {
    /// Creates the sandbox's cgroup(s) with every limit written, named by the id of
    /// `lock`, which the cgroup keeps until it is gone: a cgroup that exists always
    /// has a lock file, so the collector never mistakes a sandbox being created
    /// for a dead one.
    /// Rootless without a writable cgroup (`hierarchy` is None): the limits
    /// of `asked` (command-line options) fail with one line; the defaults are
    /// not applied, and a warning says so.
    pub fn create(lock: SandboxLock, limits: &Limits, asked: &[&str]) -> Result<Cgroup> {
        if let Some(hierarchy) = hierarchy()? {
            return Self::create_in(&hierarchy, lock, limits);
        }
        let why = match detect() {
            Ok(Hierarchy::V1 { .. }) => {
                "this host has cgroup v1, whose hierarchies only root can write"
            }
            _ => {
                "no cgroup v2 subtree is delegated to you (run microbox inside one: \
                 systemd-run --user --scope microbox ...)"
            }
        };
        if let Some(option) = asked.first() {
            lock.release(true);
            return Err(Error::runtime(format!(
                "{option} needs a cgroup you can write, and there is none: {why}"
            )));
        }
        crate::log::warn(
            &format!("the default limits (--cpus, --memory, --pids) are not applied: {why}"),
            &[],
        );
        Ok(Cgroup {
            backend: Backend::Unlimited,
            lock: Some(lock),
            owner: rustix::process::getpid(),
            finished: false,
        })
    }

    fn create_in(hierarchy: &Hierarchy, lock: SandboxLock, limits: &Limits) -> Result<Cgroup> {
        let created = check_id(lock.id())
            .and_then(|()| limits.validate())
            .and_then(|()| match hierarchy {
                Hierarchy::V2 { root } => {
                    v2::V2Cgroup::create(root, lock.id(), limits, crate::ns::rootless())
                        .map(Backend::V2)
                }
                Hierarchy::V1 {
                    cpu,
                    cpuacct,
                    memory,
                    pids,
                } => v1::V1Cgroup::create([cpu, cpuacct, memory, pids], lock.id(), limits)
                    .map(Backend::V1),
            });
        match created {
            Ok(backend) => Ok(Cgroup {
                backend,
                lock: Some(lock),
                owner: rustix::process::getpid(),
                finished: false,
            }),
            Err(err) => {
                // The backend removed what it had created.
                lock.release(true);
                Err(err)
            }
        }
    }

    /// How the child gets into this cgroup: opened here, in the parent, because the
    /// kernel checks the opener's credentials.
    pub fn placement(&self) -> Result<Placement<'_>> {
        match &self.backend {
            Backend::V2(cgroup) => Ok(Placement::BornInside(cgroup.dir_fd())),
            Backend::V1(cgroup) => cgroup.tasks_files().map(Placement::JoinsItself),
            Backend::Unlimited => Ok(Placement::JoinsItself(Vec::new())),
        }
    }

    /// Whether the kernel's OOM killer killed a process of this sandbox. Ask after
    /// the command died of SIGKILL (or its init reported 137); on v1 kernels older
    /// than 4.13 the answer is a heuristic that is only meaningful then (see v1.rs).
    pub fn oom_killed(&self) -> bool {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.oom_killed(),
            Backend::V2(cgroup) => cgroup.oom_killed(),
            Backend::Unlimited => false,
        }
    }

    /// The most memory the sandbox used, in bytes, for the OOM report; None where
    /// the kernel keeps no peak (v2 before Linux 5.19).
    pub fn memory_peak(&self) -> Option<u64> {
        let path = match &self.backend {
            Backend::V1(cgroup) => cgroup.memory_file("memory.max_usage_in_bytes"),
            Backend::V2(cgroup) => cgroup.file("memory.peak"),
            Backend::Unlimited => return None,
        };
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    /// The CPU time all of the sandbox's processes have used so far, dead ones
    /// included: `--cpu-time` watches it. v2 counts microseconds in cpu.stat,
    /// v1's cpuacct nanoseconds.
    pub fn cpu_used(&self) -> io::Result<Duration> {
        match &self.backend {
            Backend::V1(cgroup) => {
                read_number(&cgroup.cpuacct_file("cpuacct.usage")).map(Duration::from_nanos)
            }
            Backend::V2(cgroup) => {
                let text = std::fs::read_to_string(cgroup.file("cpu.stat"))?;
                stat_field(&text, "usage_usec")
                    .map(Duration::from_micros)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
            }
            Backend::Unlimited => Err(io::Error::from(io::ErrorKind::Unsupported)),
        }
    }

    /// User and system CPU time of the whole sandbox, for the report.
    pub fn cpu_split(&self) -> Option<(Duration, Duration)> {
        match &self.backend {
            Backend::V1(cgroup) => {
                let user = read_number(&cgroup.cpuacct_file("cpuacct.usage_user")).ok()?;
                let system = read_number(&cgroup.cpuacct_file("cpuacct.usage_sys")).ok()?;
                Some((Duration::from_nanos(user), Duration::from_nanos(system)))
            }
            Backend::V2(cgroup) => {
                let text = std::fs::read_to_string(cgroup.file("cpu.stat")).ok()?;
                let user = stat_field(&text, "user_usec")?;
                let system = stat_field(&text, "system_usec")?;
                Some((Duration::from_micros(user), Duration::from_micros(system)))
            }
            Backend::Unlimited => None,
        }
    }

    /// The most tasks the sandbox had at once, where the kernel keeps it
    /// (`pids.peak`, Linux 6.13 and later).
    pub fn tasks_peak(&self) -> Option<u64> {
        read_number(&self.pids_file("pids.peak")?).ok()
    }

    /// Whether the kernel refused a fork or clone at the `--pids` limit.
    pub fn pids_limit_hit(&self) -> bool {
        self.pids_file("pids.events")
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| stat_field(&text, "max"))
            .is_some_and(|count| count > 0)
    }

    fn pids_file(&self, file: &str) -> Option<std::path::PathBuf> {
        match &self.backend {
            Backend::V1(cgroup) => Some(cgroup.pids_file(file)),
            Backend::V2(cgroup) => Some(cgroup.file(file)),
            Backend::Unlimited => None,
        }
    }

    /// Kills whatever is still inside, removes the cgroup(s), then deletes and
    /// releases the lock file. If removal fails the lock file stays (released), so the
    /// next run's `collect_stale` tries again.
    pub fn destroy(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let result = match &self.backend {
            Backend::V1(cgroup) => cgroup.remove(),
            Backend::V2(cgroup) => cgroup.remove(),
            Backend::Unlimited => Ok(()),
        };
        // Only after the cgroups are gone: see `stale` for why the order matters.
        if let Some(lock) = self.lock.take() {
            lock.release(result.is_ok());
        }
        result
    }
}

/// The safety net for early returns between `create` and `destroy`. It runs only in
/// the creating process; the clone3 child ends in `execve` or `_exit`, which run no
/// destructors, and the pid check covers any other copy.
impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.finished && rustix::process::getpid() == self.owner {
            let _ = self.teardown();
        }
    }
}

/// How the sandbox's first process enters its cgroup.
pub enum Placement<'a> {
    /// v2: `clone3(CLONE_INTO_CGROUP)` with this `O_DIRECTORY` fd; the child is born inside.
    BornInside(BorrowedFd<'a>),
    /// v1 (no placement at clone time): the `tasks` file of each hierarchy, for
    /// [`Placement::join_current_thread`] in the child.
    JoinsItself(Vec<OwnedFd>),
}

impl Placement<'_> {
    /// The fd `clone3` takes, if the child is born inside.
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Placement::BornInside(fd) => Some(*fd),
            Placement::JoinsItself(_) => None,
        }
    }

    /// In the child: moves the calling thread in, by writing "0" (the caller
    /// itself) to each `tasks` file; nothing to do when born inside. Migrating the
    /// current thread by itself skips the kernel's global threadgroup lock, whose
    /// first write lock after idle waits for an RCU grace period (10-20 ms on
    /// cgroup v1, where `cgroup.procs` writes by the parent always take it). The
    /// caller must be single-threaded, so that the thread is the whole process.
    /// Consumes the files: nothing of the host's cgroup tree stays open.
    pub fn join_current_thread(self) -> io::Result<()> {
        if let Placement::JoinsItself(files) = self {
            for file in &files {
                write_all_once(file, "0")?;
            }
        }
        Ok(())
    }
}

/// Removes the cgroups of dead runs: those whose lock file is not held. Returns how
/// many sandboxes were collected. Cheap when there is nothing to do: one `readdir`
/// of each `microbox` parent; the collector's lock is taken only when there is
/// something to look at, and when another run holds it that run does the work.
/// `also(id)` removes what else a dead sandbox held, before its cgroups.
pub fn collect_stale(also: impl FnMut(&str) -> Result<()>) -> Result<usize> {
    let run_dir = Path::new(crate::state::run_dir());
    match hierarchy()? {
        Some(hierarchy) => stale::collect(&hierarchy, run_dir, also),
        // Rootless without a cgroup: the lock files are all there is.
        None => stale::collect_locks_only(run_dir, also),
    }
}

/// A sandbox id becomes a path component in two places, so it must be a plain name.
fn check_id(id: &str) -> Result<()> {
    let plain = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if id.is_empty() || id.len() > 64 || !plain {
        return Err(Error::runtime(format!(
            "invalid sandbox id {id:?}: expected 1-64 of [A-Za-z0-9_-]"
        )));
    }
    Ok(())
}

/// Whether `id` could name a sandbox (1-64 of `[A-Za-z0-9_-]`).
pub(crate) fn is_valid_id(id: &str) -> bool {
    check_id(id).is_ok()
}

/// One open + write + close. The kernel parses a cgroup file per write(2), so the
/// value must go in one call; nothing is read back (this is the start path).
/// A control file holding one number.
fn read_number(path: &Path) -> io::Result<u64> {
    std::fs::read_to_string(path)?
        .trim()
        .parse()
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// The value of `key` in a flat-keyed control file (`key value` lines:
/// cpu.stat, pids.events).
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}

fn write_at(dir: BorrowedFd<'_>, file: &str, value: &str) -> io::Result<()> {
    let fd = rustix::fs::openat(dir, file, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    write_all_once(&fd, value)
}

/// `write_at` by path, for v1 where there is no directory fd to reuse.
fn write_path(path: &Path, value: &str) -> io::Result<()> {
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    write_all_once(&fd, value)
}

fn write_all_once(fd: &rustix::fd::OwnedFd, value: &str) -> io::Result<()> {
    let written = rustix::io::write(fd, value.as_bytes())?;
    if written != value.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write ({written} of {} bytes)", value.len()),
        ));
    }
    Ok(())
}

/// `cannot write V to P: <strerror> (<hint>)`.
fn write_error(value: &str, path: &Path, err: io::Error, hint: Option<&str>) -> Error {
    let hint = hint.or_else(|| common_hint(&err));
    with_hint(
        Error::os("write", err).on(format_args!("{value} to {}", path.display())),
        hint,
    )
}

fn with_hint(err: Error, hint: Option<&str>) -> Error {
    match hint {
        Some(hint) => err.hint(hint),
        None => err,
    }
}

/// Hints that hold for any cgroupfs operation.
fn common_hint(err: &io::Error) -> Option<&'static str> {
    match err.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => {
            Some("microbox needs root to manage cgroups; is it running as root?")
        }
        Some(libc::EROFS) => {
            Some("the cgroup filesystem is mounted read-only, as in many containers")
        }
        _ => None,
    }
}

/// `mkdir` of a cgroup. Ok(false) when it already existed.
fn make_dir(path: &Path) -> Result<bool> {
    match rustix::fs::mkdir(path, Mode::from_raw_mode(0o755)) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(err) => {
            let err = io::Error::from(err);
            let hint = common_hint(&err);
            Err(with_hint(
                Error::os("create cgroup", err).on(path.display()),
                hint,
            ))
        }
    }
}

/// SIGKILLs every process listed in `dir/cgroup.procs`; a missing file (the cgroup
/// is gone) means none. A pid can in principle be reused between the read and the
/// kill, but only if the process died and the pid space wrapped around in between;
/// the kernel offers nothing race-free on v1 short of the freezer.
fn kill_members(dir: &Path) -> io::Result<usize> {
    let text = match std::fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let me = rustix::process::getpid();
    let mut killed = 0;
    for pid in text.lines().filter_map(positive_pid) {
        if pid == me {
            continue;
        }
        match rustix::process::kill_process(pid, Signal::KILL) {
            Ok(()) => killed += 1,
            Err(rustix::io::Errno::SRCH) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(killed)
}

/// A pid as cgroup.procs lists it. 0 (a task outside our pid namespace) and anything
/// negative are refused: `kill(0)` and `kill(-n)` signal whole process groups.
fn positive_pid(line: &str) -> Option<Pid> {
    let raw: i32 = line.trim().parse().ok()?;
    if raw > 0 {
        Pid::from_raw(raw)
    } else {
        None
    }
}

/// `rmdir` of a cgroup, retried while the kernel still counts members (the kill is
/// asynchronous). `evict` runs before each retry. Gone already is success.
fn remove_dir_retrying(dir: &Path, mut evict: impl FnMut() -> io::Result<()>) -> Result<()> {
    let deadline = Instant::now() + REMOVE_TIMEOUT;
    let mut pause = Duration::from_micros(100);
    loop {
        let err = match rustix::fs::unlinkat(rustix::fs::CWD, dir, rustix::fs::AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(err) => err,
        };
        if err == rustix::io::Errno::BUSY && Instant::now() < deadline {
            evict().map_err(|err| Error::os("kill the processes in", err).on(dir.display()))?;
            sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
            continue;
        }
        let hint = if err == rustix::io::Errno::BUSY {
            Some("processes are still inside after 1 s")
        } else {
            None
        };
        let err = io::Error::from(err);
        let hint = hint.or_else(|| common_hint(&err));
        return Err(with_hint(
            Error::os("remove cgroup", err).on(dir.display()),
            hint,
        ));
    }
}

/// A fresh directory for fake cgroup trees.
#[cfg(test)]
fn test_dir(name: &str) -> std::path::PathBuf {
    crate::test_dir(&format!("cgroup-{name}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    fn limits(millicpus: u32, memory: u64, pids: PidsLimit) -> Limits {
        Limits {
            millicpus,
            memory,
            pids,
        }
    }

    #[test]
    fn flat_keyed_fields_are_found_by_their_whole_name() {
        let stat = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n";
        assert_eq!(stat_field(stat, "usage_usec"), Some(1500));
        assert_eq!(stat_field(stat, "system_usec"), Some(500));
        assert_eq!(stat_field(stat, "usec"), None);
        assert_eq!(stat_field("max 0\n", "max"), Some(0));
        assert_eq!(stat_field("max x\n", "max"), None);
    }

    #[test]
    fn quota_is_a_share_of_the_period() {
        assert_eq!(limits(1000, 1, PidsLimit::Max).cpu_quota_us(), 100_000);
        assert_eq!(limits(500, 1, PidsLimit::Max).cpu_quota_us(), 50_000);
        assert_eq!(limits(10, 1, PidsLimit::Max).cpu_quota_us(), 1_000);
        assert_eq!(
            limits(u32::MAX, 1, PidsLimit::Max).cpu_quota_us(),
            429_496_729_500
        );
    }

    #[test]
    fn pids_max_is_the_word_max() {
        assert_eq!(limits(1000, 1, PidsLimit::Max).pids_value(), "max");
        assert_eq!(limits(1000, 1, PidsLimit::Limit(64)).pids_value(), "64");
    }

    #[test]
    fn kernel_bounds_are_enforced() {
        let ok = Limits::from(&Spec::default());
        assert_eq!(ok.validate().map_err(|e| e.to_string()), Ok(()));
        assert!(limits(9, 1 << 20, PidsLimit::Max).validate().is_err());
        assert!(limits(1000, 0, PidsLimit::Max).validate().is_err());
        assert!(limits(1000, 1, PidsLimit::Limit(0)).validate().is_err());
        assert!(limits(1000, 1, PidsLimit::Limit(MAX_PIDS + 1))
            .validate()
            .is_err());
        assert!(limits(1000, 1, PidsLimit::Limit(MAX_PIDS))
            .validate()
            .is_ok());
    }

    #[test]
    fn ids_are_plain_names() {
        for good in ["a", "quiet-otter_1", &"x".repeat(64)] {
            assert!(is_valid_id(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn only_positive_pids_are_killed() {
        assert_eq!(positive_pid("42\n"), Pid::from_raw(42));
        assert_eq!(positive_pid("0"), None);
        assert_eq!(positive_pid("-1"), None);
        assert_eq!(positive_pid("x"), None);
    }

    #[test]
    fn removal_of_a_missing_or_empty_dir_succeeds() {
        let base = test_dir("remove");
        let dir = base.join("child");
        std::fs::create_dir(&dir).unwrap();
        remove_dir_retrying(&dir, || Ok(())).unwrap();
        assert!(!dir.exists());
        remove_dir_retrying(&dir, || Ok(())).unwrap();
        assert_eq!(kill_members(&dir).unwrap(), 0);
        std::fs::remove_dir(&base).unwrap();
    }

    #[test]
    fn write_errors_name_value_and_file() {
        let err = write_error(
            "64",
            Path::new("/x/pids.max"),
            io::Error::from_raw_os_error(libc::EACCES),
            None,
        );
        assert_eq!(
            err.to_string(),
            "cannot write 64 to /x/pids.max: Permission denied \
             (microbox needs root to manage cgroups; is it running as root?)"
        );
    }
}
