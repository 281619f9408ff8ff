//! Shared harness of the privileged integration tests: finds the microbox binary and
//! the test image, decides skip-or-fail, runs microbox with a timeout, parses the
//! probe's `key=value` output, and compares host snapshots taken before and after
//! every run so that a leaked mount, cgroup, link, state file or process fails the
//! test that caused it.
//!
//! Environment: MICROBOX_BIN (default: the binary cargo built), MICROBOX_TEST_ROOTFS
//! (busybox image with the static probe at /bin/probe), MICROBOX_TEST_LEG (host|vm),
//! CI ("true": a test that cannot run fails instead of skipping),
//! MICROBOX_TEST_TIMEOUT (seconds per microbox run).

// Each test file uses its own part of this module.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// environment and skipping

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    Host,
    Vm,
}

#[derive(Debug, Clone)]
pub struct Env {
    pub bin: PathBuf,
    /// The test image; `None` only from `require_bin`/`require_root`.
    pub rootfs: Option<PathBuf>,
    pub leg: Leg,
    pub timeout: Duration,
}

pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// In CI a test that cannot run is a failure; elsewhere it says why and passes.
pub fn skip_or_fail(reason: &str) {
    if in_ci() {
        panic!("cannot run in CI: {reason}");
    }
    eprintln!("skipped: {reason}");
}

pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn leg() -> Leg {
    match std::env::var("MICROBOX_TEST_LEG").as_deref() {
        Ok("vm") => Leg::Vm,
        _ => Leg::Host,
    }
}

fn bin_path() -> PathBuf {
    std::env::var_os("MICROBOX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_microbox")))
}

fn rootfs_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MICROBOX_TEST_ROOTFS") {
        return Some(PathBuf::from(p));
    }
    // What `cargo xtask rootfs test` leaves behind, for a plain `cargo test`.
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/microbox/rootfs/test");
    built.is_dir().then_some(built)
}

fn timeout() -> Duration {
    let default = if leg() == Leg::Vm { 120 } else { 30 };
    let secs = std::env::var("MICROBOX_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

/// The binary only: for usage errors, which need neither root nor an image.
pub fn require_bin() -> Option<Env> {
    let bin = bin_path();
    if !bin.is_file() {
        skip_or_fail(&format!(
            "microbox binary {} not found (MICROBOX_BIN)",
            bin.display()
        ));
        return None;
    }
    Some(Env {
        bin,
        rootfs: None,
        leg: leg(),
        timeout: timeout(),
    })
}

pub fn require_root() -> Option<Env> {
    let env = require_bin()?;
    if !is_root() {
        skip_or_fail("the integration tests need root");
        return None;
    }
    Some(env)
}

pub fn require_root_and_rootfs() -> Option<Env> {
    let mut env = require_root()?;
    let Some(rootfs) = rootfs_path() else {
        skip_or_fail("no test image: set MICROBOX_TEST_ROOTFS or run `cargo xtask rootfs test`");
        return None;
    };
    for needed in ["bin/probe", "bin/busybox", "bin/sh"] {
        if std::fs::symlink_metadata(rootfs.join(needed)).is_err() {
            skip_or_fail(&format!("test image {} has no /{needed}", rootfs.display()));
            return None;
        }
    }
    env.rootfs = Some(rootfs);
    Some(env)
}

impl Env {
    pub fn rootfs(&self) -> &Path {
        self.rootfs
            .as_deref()
            .expect("this test must start with require_root_and_rootfs()")
    }

    /// The test image as a `--fs` argument.
    pub fn fs_args(&self) -> Vec<OsString> {
        vec!["--fs".into(), self.rootfs().into()]
    }

    pub fn microbox(&self) -> Run<'_> {
        Run {
            env: self,
            args: Vec::new(),
            vars: Vec::new(),
            cwd: None,
            extra_fds: Vec::new(),
            ctty: None,
            timeout: self.timeout,
            check_leftovers: true,
            host_setup: None,
            netns: None,
        }
    }

    /// `microbox ARGS`, checked for leftovers.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Outcome {
        self.microbox().args(args).output()
    }

    /// `microbox --fs IMAGE [OPTS] -- /bin/probe PROBE_ARGS`.
    pub fn probe(&self, opts: &[&str], probe_args: &[&str]) -> Outcome {
        self.probe_run(opts, probe_args).output()
    }

    /// The same as `probe`, as a builder for extra settings.
    pub fn probe_run(&self, opts: &[&str], probe_args: &[&str]) -> Run<'_> {
        self.microbox()
            .args(self.fs_args())
            .args(opts)
            .arg("--")
            .arg("/bin/probe")
            .args(probe_args)
    }

    /// The probe run directly on this machine, outside any sandbox: the baseline
    /// that says whether a sandbox result means anything.
    pub fn probe_on_host(&self, probe_args: &[&str]) -> Outcome {
        let mut cmd = Command::new(self.rootfs().join("bin/probe"));
        cmd.args(probe_args);
        run_with_timeout(cmd, self.timeout, "probe on the host")
    }
}

// ---------------------------------------------------------------------------
// running microbox

/// Serialises the microbox runs of one test executable: cargo runs tests on
/// threads, and a snapshot diff is only meaningful if no other run is in flight.
static RUN_LOCK: Mutex<()> = Mutex::new(());

pub fn run_lock() -> MutexGuard<'static, ()> {
    // A test that panicked while holding it leaves nothing inconsistent behind.
    RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Run<'a> {
    env: &'a Env,
    args: Vec<OsString>,
    vars: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    extra_fds: Vec<(i32, OwnedFd)>,
    ctty: Option<OwnedFd>,
    timeout: Duration,
    check_leftovers: bool,
    host_setup: Option<Box<dyn FnOnce() + 'a>>,
    netns: Option<OwnedFd>,
}

impl<'a> Run<'a> {
    /// Runs microbox in the network namespace `netns` (an fd of
    /// `/proc/PID/ns/net`) instead of the test's: for bridge mode, whose bridge,
    /// rules and traffic must stay in a namespace the test made.
    pub fn in_netns(mut self, netns: OwnedFd) -> Self {
        self.netns = Some(netns);
        self
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// A variable in microbox's own environment (the host side).
    pub fn var(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.vars
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    /// microbox's own working directory on the host.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// microbox starts with `fd` open (without CLOEXEC) as number `target`.
    pub fn inherit_fd(mut self, target: i32, fd: OwnedFd) -> Self {
        self.extra_fds.push((target, fd));
        self
    }

    /// microbox starts in a new session with `tty` (a pty slave) as its stdin and
    /// controlling terminal.
    pub fn controlling_tty(mut self, tty: OwnedFd) -> Self {
        self.ctty = Some(tty);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// For runs that are expected to leave something (none so far) or whose caller
    /// checks the host itself.
    pub fn no_leftover_check(mut self) -> Self {
        self.check_leftovers = false;
        self
    }

    /// Changes the host (mounts, say) under the run lock, before the leftover
    /// snapshot: a test's own host state made outside the lock would show up
    /// as a leftover of whichever run is in flight on another thread.
    pub fn host_setup(mut self, f: impl FnOnce() + 'a) -> Self {
        self.host_setup = Some(Box::new(f));
        self
    }

    pub fn output(self) -> Outcome {
        self.spawn().finish()
    }

    pub fn spawn(self) -> Running {
        let guard = run_lock();
        self.spawn_holding(Some(guard))
    }

    /// Runs beside `_first`, inside the run lock it holds: for tests whose point is
    /// two sandboxes at once. The first run's leftover check covers both.
    pub fn output_beside(mut self, _first: &Running) -> Outcome {
        self.check_leftovers = false;
        self.spawn_holding(None).finish()
    }

    fn spawn_holding(mut self, guard: Option<MutexGuard<'static, ()>>) -> Running {
        if let Some(setup) = self.host_setup.take() {
            setup();
        }
        let before = self.check_leftovers.then(HostSnapshot::take);
        let mut cmd = Command::new(&self.env.bin);
        cmd.args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let fds: Vec<(i32, i32)> = self
            .extra_fds
            .iter()
            .map(|(target, fd)| (*target, fd.as_raw_fd()))
            .collect();
        let ctty = self.ctty.as_ref().map(AsRawFd::as_raw_fd);
        let netns = self.netns.as_ref().map(AsRawFd::as_raw_fd);
        match &self.ctty {
            Some(tty) => {
                cmd.stdin(Stdio::from(tty.try_clone().expect("dup of the pty slave")));
            }
            None => {
                cmd.stdin(Stdio::null());
            }
        }
        if !fds.is_empty() || ctty.is_some() || netns.is_some() {
            // SAFETY: the closure runs in the forked child before exec and calls only
            // async-signal-safe functions (setns, setsid, ioctl, dup2, fcntl) on fds
            // that the parent keeps open until spawn returns.
            unsafe {
                cmd.pre_exec(move || {
                    if let Some(ns) = netns {
                        if libc::setns(ns, libc::CLONE_NEWNET) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    if ctty.is_some()
                        && (libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0)
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    for &(target, src) in &fds {
                        if src == target {
                            if libc::fcntl(src, libc::F_SETFD, 0) < 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                        } else if libc::dup2(src, target) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.env.bin.display()));
        drop(self.extra_fds);
        let (lines_tx, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                let _ = lines_tx.send(line);
            }
            all
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        Running {
            _guard: guard,
            child,
            args: self.args,
            start,
            timeout: self.timeout,
            before,
            lines,
            seen: Vec::new(),
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
            _ctty: self.ctty,
        }
    }
}

/// A microbox run in flight; holds the run lock until `finish`.
pub struct Running {
    _guard: Option<MutexGuard<'static, ()>>,
    child: Child,
    args: Vec<OsString>,
    start: Instant,
    timeout: Duration,
    before: Option<HostSnapshot>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stdout_reader: Option<JoinHandle<String>>,
    stderr_reader: Option<JoinHandle<String>>,
    _ctty: Option<OwnedFd>,
}

impl Running {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits in i32")
    }

    /// Waits until a stdout line equals `want`; false on timeout or EOF.
    pub fn wait_for_line(&mut self, want: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.seen.iter().any(|l| l == want) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => return false,
            }
        }
    }

    /// The stdout lines that arrived so far, without waiting.
    pub fn lines_now(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// The process state letter of microbox itself (`S`, `R`, `T` for stopped).
    pub fn state(&self) -> char {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        stat.rsplit(')')
            .next()
            .and_then(|rest| rest.trim_start().chars().next())
            .unwrap_or('?')
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill takes no pointers; the pid is our own unreaped child.
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(
            r,
            0,
            "kill({}, {sig}): {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// Waits (killing microbox after the timeout, which fails the test), collects
    /// the output and checks the host for leftovers.
    pub fn finish(mut self) -> Outcome {
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if self.start.elapsed() > self.timeout => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let stderr = self
                        .stderr_reader
                        .take()
                        .map(|h| h.join().unwrap_or_default());
                    panic!(
                        "microbox {:?} still running after {:?}; killed. stderr: {}",
                        self.args,
                        self.timeout,
                        stderr.unwrap_or_default()
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("waiting for microbox: {e}"),
            }
        };
        let elapsed = self.start.elapsed();
        // A process that keeps the pipes open would block the readers forever.
        let stdout = join_within(self.stdout_reader.take(), Duration::from_secs(5), "stdout");
        let stderr = join_within(self.stderr_reader.take(), Duration::from_secs(5), "stderr");
        let outcome = Outcome {
            args: self.args.clone(),
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            elapsed,
        };
        if let Some(before) = self.before.take() {
            let leftovers = before.leftovers_after_settling(Duration::from_secs(3));
            assert!(
                leftovers.is_empty(),
                "microbox {:?} left behind on the host:\n  {}\n{outcome}",
                self.args,
                leftovers.join("\n  ")
            );
        }
        outcome
    }
}

fn join_within(h: Option<JoinHandle<String>>, within: Duration, what: &str) -> String {
    let Some(h) = h else { return String::new() };
    let deadline = Instant::now() + within;
    while !h.is_finished() {
        assert!(
            Instant::now() < deadline,
            "microbox exited but its {what} pipe is still held open by a leftover process"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    h.join().unwrap_or_default()
}

fn run_with_timeout(mut cmd: Command, timeout: Duration, what: &str) -> Outcome {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {timeout:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Outcome {
        args: Vec::new(),
        code: status.code(),
        signal: status.signal(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// What a run printed and how it ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub args: Vec<OsString>,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- microbox {:?}\n--- exit code {:?} (signal {:?}) after {:?}\n--- stdout:\n{}--- stderr:\n{}---",
            self.args, self.code, self.signal, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl Outcome {
    /// The last `key=value` line with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        kv_all(&self.stdout, key).last().copied()
    }

    /// The value, or a test failure that shows the whole run.
    pub fn value(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("no '{key}=' line in the output\n{self}"))
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        kv_all(&self.stdout, key)
    }

    /// Every `key=value` pair, last one wins.
    pub fn map(&self) -> BTreeMap<&str, &str> {
        self.stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .collect()
    }

    #[track_caller]
    pub fn assert_code(&self, want: i32) -> &Self {
        assert_eq!(self.code, Some(want), "unexpected exit status\n{self}");
        self
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// A usage or setup error: 125 and exactly one stderr line starting `microbox:`.
    #[track_caller]
    pub fn assert_microbox_error(&self) -> &str {
        self.assert_code(125);
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "want exactly one stderr line\n{self}");
        assert!(
            lines[0].starts_with("microbox:"),
            "stderr must start with 'microbox:'\n{self}"
        );
        lines[0]
    }
}

pub fn kv_all<'t>(text: &'t str, key: &str) -> Vec<&'t str> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect()
}

// ---------------------------------------------------------------------------
// host snapshots

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
/// Tests put this in the cmdline of processes they expect to die with the sandbox.
pub const MARKER_PREFIX: &str = "mbx-test-marker-";

impl HostSnapshot {
    pub fn take() -> Self {
        HostSnapshot {
            mounts: mounts(),
            run_dir: tree_paths(Path::new(RUN_DIR), 6),
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
/// the bridge, with the `last` hint of where the next address search starts)
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
    if in_lease_dir && path.file_name().is_some_and(|n| n == "last") {
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

// ---------------------------------------------------------------------------
// files

static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh directory, removed on drop unless something is still mounted in it
/// (removing through a leaked bind mount would delete host files).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), tag)
    }

    /// A temporary directory below `base` (for tests that hide /tmp).
    pub fn new_in(base: &Path, tag: &str) -> TempDir {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = base.join(format!("mbx-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let mounted = mounts_under(&self.path);
        if mounted.is_empty() {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            eprintln!(
                "not removing {}: still mounted: {mounted:?}",
                self.path.display()
            );
        }
    }
}

/// A copy of `src` (symlinks as symlinks, modes kept) at `dst`, for tests that
/// build a hostile image or must not risk writing into the shared one.
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let meta = std::fs::symlink_metadata(&from).unwrap();
        let t = meta.file_type();
        if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
        } else if t.is_dir() {
            copy_tree(&from, &to);
            std::fs::set_permissions(&to, meta.permissions()).unwrap();
        } else if t.is_file() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

/// A fresh copy of the test image in its own temp dir.
pub fn image_copy(env: &Env, tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let image = dir.join("image");
    copy_tree(env.rootfs(), &image);
    (dir, image)
}

/// Every entry of a tree with what a write would change: type, mode, size, mtime,
/// symlink target, and a checksum of small files.
pub fn tree_state(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let mut desc = format!(
                "mode={:o} size={} mtime={}.{} uid={}",
                m.mode(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.uid()
            );
            if m.file_type().is_symlink() {
                desc.push_str(&format!(
                    " -> {}",
                    std::fs::read_link(&p).unwrap_or_default().display()
                ));
            } else if m.is_file() && m.size() <= 1 << 16 {
                let sum = std::fs::read(&p)
                    .map(|b| {
                        b.iter()
                            .fold(0u64, |h, &x| h.wrapping_mul(31).wrapping_add(u64::from(x)))
                    })
                    .unwrap_or(0);
                desc.push_str(&format!(" sum={sum:x}"));
            }
            out.insert(rel, desc);
            if m.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

pub fn make_executable(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An fd without CLOEXEC semantics concerns: `inherit_fd` dups it into place.
pub fn open_fd(path: &Path) -> OwnedFd {
    std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        .into()
}

pub fn unique_token() -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{t}", std::process::id())
}

/// A pty pair: (master, slave).
pub fn open_pty() -> Option<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: the two out-pointers are live locals; name, termios and winsize may
    // be null.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return None;
    }
    // Other tests spawn children concurrently: neither end may leak into them.
    for fd in [master, slave] {
        // SAFETY: fd is one of the two fds openpty just returned.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: openpty returned two fresh fds that nothing else owns.
    Some(unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) })
}

/// A host directory a hostile image or path points at; it must never change.
pub struct Victim {
    dir: TempDir,
    before: BTreeMap<String, String>,
}

impl Victim {
    pub fn new() -> Victim {
        let dir = TempDir::new("victim");
        std::fs::write(dir.join("hosts"), "host file\n").expect("write victim file");
        std::fs::create_dir(dir.join("sub")).expect("create victim dir");
        std::fs::write(dir.join("sub/inner"), "host inner\n").expect("write victim file");
        let before = tree_state(&dir.path);
        Victim { dir, before }
    }

    pub fn path(&self) -> &Path {
        &self.dir.path
    }

    /// The victim as a relative link that climbs out of an image root with `..`
    /// from `depth` directories down.
    pub fn relative_from(&self, depth: usize) -> PathBuf {
        let up = "../".repeat(depth + 12);
        PathBuf::from(format!(
            "{up}{}",
            self.path().display().to_string().trim_start_matches('/')
        ))
    }

    #[track_caller]
    pub fn assert_untouched(&self, out: &Outcome) {
        assert_eq!(
            tree_state(self.path()),
            self.before,
            "the host directory changed\n{out}"
        );
        assert!(
            mounts_under(self.path()).is_empty(),
            "something is mounted on the host path\n{out}"
        );
    }
}
