//! The supervisor's loop, from Go to the sandbox's end: one thread, poll(2)
//! on the pidfd, a signalfd, the channel, the seccomp listener and the output
//! pipes, with a timeout for the nearest deadline (the stop grace period,
//! `--timeout`, the next look at the CPU time of `--cpu-time`).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{pidfd_send_signal, waitid, Signal, WaitId, WaitIdOptions};

use super::channel::{Channel, Message};
use super::denied::Denials;
use super::output::OutputCopy;
use super::TERMINATING_SIGNALS;
use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::log;
use crate::report::Limit;
use crate::sys::signal;
use crate::units::format_duration;

/// The shortest wait between two looks at the CPU time: bounds the overshoot
/// (one look per wait) to this times the CPUs online.
const MIN_CPU_CHECK: Duration = Duration::from_millis(2);

/// microbox's status when it ended the sandbox at a limit: timeout(1)'s 124,
/// and 128 + SIGXCPU or SIGXFSZ, the signals the kernel's own per-process
/// limits send.
fn exit_code(limit: Limit) -> i32 {
    match limit {
        Limit::Timeout => 124,
        Limit::CpuTime => 128 + libc::SIGXCPU,
        Limit::Output => 128 + libc::SIGXFSZ,
        Limit::Oom | Limit::Pids => 137,
    }
}

/// `--cpu-time`: the budget and how fast the sandbox can spend it at most.
pub(super) struct CpuBudget {
    pub limit: Duration,
    pub cpus: u32,
}

pub(super) struct Watch<'a> {
    pub chan: &'a Channel,
    pub pidfd: &'a OwnedFd,
    pub sigfd: &'a OwnedFd,
    pub cgroup: &'a Cgroup,
    pub grace: Duration,
    pub timeout: Option<Duration>,
    pub cpu: Option<CpuBudget>,
    pub output: Option<OutputCopy>,
    pub denials: Denials,
}

/// How the sandbox ended.
pub(super) struct Ended {
    /// microbox's exit status, or why it failed.
    pub status: Result<i32>,
    /// The limit microbox ended the sandbox at.
    pub limit: Option<Limit>,
    /// The signal that ended the command (or init).
    pub signal: Option<i32>,
    /// When init said the command started.
    pub started: Option<Instant>,
}

/// A terminating signal has been passed on; the sandbox has until `deadline`.
struct Stopping {
    signal: i32,
    deadline: Instant,
    killed: bool,
}

/// Which descriptor a poll entry is.
#[derive(Clone, Copy)]
enum Source {
    Child,
    Signals,
    Channel,
    Listener,
    Output(usize),
}

impl Watch<'_> {
    pub fn run(&mut self) -> Ended {
        let mut chan_open = true;
        let mut setup_error: Option<Error> = None;
        let mut stopping: Option<Stopping> = None;
        let mut started: Option<Instant> = None;
        let mut next_cpu_look: Option<Instant> = None;
        let mut limit: Option<Limit> = None;
        let mut command_signal: Option<i32> = None;
        // Init's word that the command ended, with its status.
        let mut command_end: Option<i32> = None;
        loop {
            let deadline = [
                stopping.as_ref().filter(|s| !s.killed).map(|s| s.deadline),
                self.denials.resumes_at(Instant::now()),
                limit
                    .is_none()
                    .then(|| started.zip(self.timeout).map(|(s, t)| s + t))
                    .flatten(),
                limit.is_none().then_some(next_cpu_look).flatten(),
            ]
            .into_iter()
            .flatten()
            .min();
            let ready = match self.wait(chan_open, deadline) {
                Ok(ready) => ready,
                Err(err) => {
                    self.kill();
                    return self.failed(err, started);
                }
            };
            let mut child_done = false;
            let mut chan_ready = false;
            for (source, revents) in ready {
                match source {
                    Source::Child => child_done = true,
                    Source::Channel => chan_ready = true,
                    Source::Signals => {
                        if let Ok(sig) = signal::read_signalfd(self.sigfd) {
                            self.on_signal(sig, &mut stopping);
                        }
                    }
                    Source::Listener => self.denials.on_ready(revents),
                    Source::Output(index) => {
                        let over = self
                            .output
                            .as_mut()
                            .is_some_and(|output| output.on_ready(index, revents));
                        if over && limit.is_none() {
                            limit = Some(Limit::Output);
                            let shown = self.output.as_ref().map_or(0, |o| o.passed().0);
                            self.kill_at(&format!(
                                "the sandbox wrote more than its --output-limit of {}: killed, its output cut after {shown} bytes",
                                crate::units::format_size(shown)
                            ));
                        }
                    }
                }
            }
            let now = Instant::now();
            if let Some(stopping) = stopping.as_mut() {
                if !stopping.killed && now >= stopping.deadline {
                    let why = format!(
                        "the sandbox did not end within {} of {}",
                        format_duration(self.grace),
                        signal_name(stopping.signal)
                    );
                    kill_after_signal(stopping, self.pidfd, &why);
                }
            }
            if limit.is_none() {
                if let (Some(start), Some(timeout)) = (started, self.timeout) {
                    if now >= start + timeout {
                        limit = Some(Limit::Timeout);
                        self.kill_at(&format!(
                            "the sandbox ran past its --timeout of {}: killed",
                            format_duration(timeout)
                        ));
                    }
                }
            }
            if limit.is_none() && next_cpu_look.is_some_and(|at| now >= at) {
                match self.look_at_cpu_time(now) {
                    Ok(Some(next)) => next_cpu_look = Some(next),
                    Ok(None) => {
                        next_cpu_look = None;
                        limit = Some(Limit::CpuTime);
                    }
                    Err(err) => {
                        self.kill();
                        return self.failed(err, started);
                    }
                }
            }
            // After the child exits, every record it sent is still queued:
            // drain them then, up to EOF; before, take one per wake-up.
            while chan_open && (chan_ready || child_done) {
                let record = self.chan.recv_with_fd();
                match record {
                    Ok(Some((Message::SetupFailed(err), _))) => setup_error = Some(err),
                    Ok(Some((Message::ExecFailed { error, .. }, _))) => {
                        log::error(&error.to_string(), &[]);
                    }
                    Ok(Some((Message::Started, listener))) => {
                        let now = Instant::now();
                        started = Some(now);
                        if let Some(listener) = listener {
                            self.denials.attach(listener);
                        }
                        if let Some(cpu) = &self.cpu {
                            next_cpu_look = Some(now + spend_time(cpu.limit, cpu.cpus));
                        }
                    }
                    Ok(Some((Message::Ended { code, signal }, _))) => {
                        command_end = Some(code);
                        command_signal = signal;
                    }
                    Ok(Some((Message::Go, _))) => {}
                    Ok(None) | Err(_) => chan_open = false,
                }
                if !child_done {
                    break;
                }
            }
            if !child_done {
                continue;
            }
            if let Some(output) = self.output.as_mut() {
                output.drain(Instant::now() + self.grace);
            }
            let status = match waitid(WaitId::PidFd(self.pidfd.as_fd()), WaitIdOptions::EXITED) {
                Ok(Some(status)) => status,
                Ok(None) => continue,
                Err(err) => return self.failed(Error::os("wait for the sandbox", err), started),
            };
            if let Some(err) = setup_error {
                return self.failed(err, started);
            }
            let end = |status: Result<i32>, limit: Option<Limit>, signal: Option<i32>| Ended {
                status,
                limit,
                signal,
                started,
            };
            if let Some(code) = status.exit_status() {
                // Ended on its own, even if a limit was reached just then.
                return end(Ok(code), None, command_signal);
            }
            let Some(sig) = status.terminating_signal() else {
                return end(
                    Err(Error::runtime("the sandbox ended in an unknown state")),
                    None,
                    None,
                );
            };
            if sig == libc::SIGKILL {
                // The command had ended by itself; microbox's kill reached
                // init only on its way out.
                if let Some(code) = command_end {
                    return end(Ok(code), None, command_signal);
                }
                if let Some(limit) = limit {
                    return end(Ok(exit_code(limit)), Some(limit), Some(sig));
                }
                if let Some(stopping) = stopping.filter(|s| s.killed) {
                    return end(Ok(128 + stopping.signal), None, Some(sig));
                }
            }
            return end(Ok(128 + sig), None, Some(sig));
        }
    }

    fn failed(&self, err: Error, started: Option<Instant>) -> Ended {
        Ended {
            status: Err(err),
            limit: None,
            signal: None,
            started,
        }
    }

    /// Polls until something is ready or `deadline`; returns what is ready.
    fn wait(&self, chan_open: bool, deadline: Option<Instant>) -> Result<Vec<(Source, PollFlags)>> {
        let mut sources = vec![Source::Child, Source::Signals];
        let mut fds = vec![
            PollFd::new(self.pidfd, PollFlags::IN),
            PollFd::new(self.sigfd, PollFlags::IN),
        ];
        if chan_open {
            sources.push(Source::Channel);
            fds.push(PollFd::new(self.chan.fd(), PollFlags::IN));
        }
        if let Some(listener) = self.denials.fd(Instant::now()) {
            sources.push(Source::Listener);
            fds.push(PollFd::from_borrowed_fd(listener, PollFlags::IN));
        }
        if let Some(output) = &self.output {
            for (index, fd, events) in output.interest() {
                sources.push(Source::Output(index));
                fds.push(PollFd::from_borrowed_fd(fd, events));
            }
        }
        let timeout = deadline.map(|at| timespec(at.saturating_duration_since(Instant::now())));
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::os("wait for the sandbox", e)),
        }
        Ok(sources
            .into_iter()
            .zip(fds.iter().map(PollFd::revents))
            .filter(|(_, revents)| !revents.is_empty())
            .collect())
    }

    /// `--cpu-time`: the next time to look, or None when the budget is spent
    /// (the sandbox is being killed). At most `cpus` seconds of CPU pass per
    /// second, so the budget cannot run out before the remaining share.
    fn look_at_cpu_time(&self, now: Instant) -> Result<Option<Instant>> {
        let Some(cpu) = &self.cpu else {
            return Ok(None);
        };
        let used = self.cgroup.cpu_used().map_err(|e| {
            Error::os("read the sandbox's CPU time", e).hint("--cpu-time cannot be enforced")
        })?;
        if used >= cpu.limit {
            self.kill_at(&format!(
                "the sandbox used up its --cpu-time of {}: killed",
                format_duration(cpu.limit)
            ));
            return Ok(None);
        }
        Ok(Some(now + spend_time(cpu.limit - used, cpu.cpus)))
    }

    /// Kills the whole sandbox at a limit, with the one line that says why.
    fn kill_at(&self, why: &str) {
        log::error(why, &[]);
        self.kill();
    }

    /// SIGKILL to init ends every process of its pid namespace, which are
    /// all the processes of its cgroup.
    fn kill(&self) {
        let _ = pidfd_send_signal(self.pidfd, Signal::KILL);
    }

    /// What the supervisor does with one signal it received.
    fn on_signal(&self, sig: i32, stopping: &mut Option<Stopping>) {
        let name = signal_name(sig);
        if TERMINATING_SIGNALS.contains(&sig) {
            if let Some(stopping) = stopping {
                kill_after_signal(
                    stopping,
                    self.pidfd,
                    &format!("a second terminating signal ({name})"),
                );
                return;
            }
            let mut first = Stopping {
                signal: sig,
                deadline: Instant::now() + self.grace,
                killed: false,
            };
            if self.grace.is_zero() {
                kill_after_signal(
                    &mut first,
                    self.pidfd,
                    &format!("{name} with --stop-timeout 0"),
                );
            }
            *stopping = Some(first);
        }
        if let Some(signal) = Signal::from_named_raw(sig) {
            let _ = pidfd_send_signal(self.pidfd, signal);
        }
        if sig == libc::SIGTSTP {
            // Job control: the sandbox is stopping; so does microbox, so that the
            // caller's shell sees its job stop. SIGCONT resumes both.
            let _ = signal::stop_self();
        }
    }
}

/// The least wall time in which `budget` of CPU time can be used on `cpus`.
fn spend_time(budget: Duration, cpus: u32) -> Duration {
    (budget / cpus.max(1)).max(MIN_CPU_CHECK)
}

/// Kills the whole sandbox after a terminating signal it did not end on.
fn kill_after_signal(stopping: &mut Stopping, pidfd: &OwnedFd, why: &str) {
    if stopping.killed {
        return;
    }
    stopping.killed = true;
    log::warn(&format!("{why}: killing the sandbox"), &[]);
    let _ = pidfd_send_signal(pidfd, Signal::KILL);
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".to_string(),
        libc::SIGTERM => "SIGTERM".to_string(),
        libc::SIGHUP => "SIGHUP".to_string(),
        libc::SIGQUIT => "SIGQUIT".to_string(),
        other => format!("signal {other}"),
    }
}

fn timespec(duration: Duration) -> rustix::event::Timespec {
    // Under a year (parse_duration's bound): always representable.
    rustix::event::Timespec::try_from(duration).unwrap_or(rustix::event::Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_budget_is_looked_at_no_later_than_it_can_run_out() {
        assert_eq!(
            spend_time(Duration::from_secs(1), 2),
            Duration::from_millis(500)
        );
        assert_eq!(
            spend_time(Duration::from_secs(1), 0),
            Duration::from_secs(1)
        );
        assert_eq!(spend_time(Duration::from_micros(10), 4), MIN_CPU_CHECK);
    }

    #[test]
    fn limits_have_their_own_exit_codes() {
        assert_eq!(exit_code(Limit::Timeout), 124);
        assert_eq!(exit_code(Limit::CpuTime), 152);
        assert_eq!(exit_code(Limit::Output), 153);
    }
}
