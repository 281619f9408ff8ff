//! Running microbox: the builder, a run in flight, and what it printed; every
//! run holds the run lock and is checked for host leftovers.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;

impl Env {
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

    /// Starts under a run lock the test took itself (`run_lock()`), for tests
    /// whose runs must follow each other with no other test's run in between:
    /// the run after a `kill -9` collects what it left, and another test's
    /// run could collect it first (and only the part it can reach).
    pub fn spawn_in_lock(self, _held: &MutexGuard<'static, ()>) -> Running {
        self.spawn_holding(None)
    }

    /// `spawn_in_lock`, then `finish`.
    pub fn output_in_lock(self, held: &MutexGuard<'static, ()>) -> Outcome {
        self.spawn_in_lock(held).finish()
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
