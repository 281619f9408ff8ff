//! The supervisor: clones the child into its namespaces, writes its id maps,
//! says "go", relays its setup errors, forwards signals and reports its status.
//! One thread, no async: poll(2) on the pidfd, a signalfd and the channel.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{pidfd_send_signal, waitid, Signal, WaitId, WaitIdOptions};

use super::channel::{self, Message};
use super::{child, names, Launch, FORWARDED_SIGNALS, TERMINATING_SIGNALS};
use crate::cgroup::{collect_stale, Cgroup, Limits};
use crate::error::{Error, Result};
use crate::log;
use crate::spec::{NetMode, Spec, UsernsMode};
use crate::sys::clone::{clone3, Forked};
use crate::sys::signal::{self, SigSet};

/// Ids 0-65535 of the sandbox map to the same host ids (DESIGN.md section 4).
const ID_MAP: &str = "0 0 65536\n";

fn clone_flags(spec: &Spec) -> u64 {
    // Each CLONE_NEW* is one positive bit below 2^31: the conversion is exact
    // and can never come out as zero flags (no namespaces at all).
    let flag = |f: libc::c_int| u64::from(f.unsigned_abs());
    let mut flags = flag(libc::CLONE_NEWPID)
        | flag(libc::CLONE_NEWUTS)
        | flag(libc::CLONE_NEWIPC)
        | flag(libc::CLONE_NEWNS)
        | flag(libc::CLONE_NEWTIME);
    if spec.net != NetMode::Host {
        flags |= flag(libc::CLONE_NEWNET);
    }
    if spec.userns == UsernsMode::Isolated {
        flags |= flag(libc::CLONE_NEWUSER);
    }
    // The cgroup namespace is made by the child after it was placed in its cgroup.
    flags
}

pub fn supervise(spec: &Spec, launch: &Launch) -> Result<i32> {
    std::fs::create_dir_all(crate::RUN_DIR)
        .map_err(|e| Error::os(format_args!("create {}", crate::RUN_DIR), e))?;
    // Blocked before the clone, so no signal is lost between clone and poll; init
    // inherits the mask and waits for the same signals synchronously.
    let forwarded = SigSet::new(&FORWARDED_SIGNALS);
    signal::block(&forwarded).map_err(|e| Error::os("block signals", e))?;
    let sigfd = signal::signalfd(&forwarded).map_err(|e| Error::os("create a signalfd", e))?;
    let (ours, theirs) =
        channel::pair().map_err(|e| Error::os("create the parent/child channel", e))?;
    if let Err(err) = collect_stale() {
        log::warn(
            &format!("cannot collect the cgroups of dead sandboxes: {err}"),
            &[],
        );
    }
    // Limits are written before any process exists; on v2 the child is born inside.
    let cgroup = Cgroup::create(&names::random_id(), &Limits::from(spec))?;
    // On v1 the child moves itself in through these (see join_current_thread).
    let tasks_files = cgroup.v1_tasks_files()?;

    let (pid, pidfd) = match clone3(clone_flags(spec), cgroup.v2_dir_fd()) {
        Ok(Forked::Child) => {
            drop(ours);
            drop(sigfd);
            child::main(spec, launch, theirs, tasks_files)
        }
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
        Err(e) => return Err(clone_error(e)),
    };
    drop(theirs);
    log::info(
        "sandbox started",
        &[("pid", &pid.to_string()), ("hostname", &launch.hostname)],
    );

    drop(tasks_files);
    if let Err(err) = write_id_maps(spec, pid) {
        // The child waits for Go: killing it is all the cleanup there is. If its
        // own setup failed first, that is the cause.
        let _ = pidfd_send_signal(&pidfd, Signal::KILL);
        return Err(wait_for_exit(&ours, &pidfd, &sigfd, spec.stop_timeout)
            .err()
            .unwrap_or(err));
    }
    // A failed send means the child is gone already; its status tells why.
    let _ = ours.send(&Message::Go);
    let status = wait_for_exit(&ours, &pidfd, &sigfd, spec.stop_timeout);
    if matches!(status, Ok(137)) && cgroup.oom_killed() {
        let peak = cgroup
            .memory_peak()
            .map(|bytes| format!(" (peak {:.1} MiB)", bytes as f64 / f64::from(1 << 20)))
            .unwrap_or_default();
        let limit = crate::units::format_size(spec.memory);
        log::error(
            &format!("the sandbox ran out of memory: killed at its memory limit of {limit}{peak}"),
            &[],
        );
    }
    // The command's status stands even if cleanup fails: the lock file stays,
    // so the next run collects what is left.
    if let Err(err) = cgroup.destroy() {
        log::error(&format!("{err} (the next microbox run removes it)"), &[]);
    }
    status
}

fn clone_error(err: std::io::Error) -> Error {
    let hint = matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::EPERM | libc::ENOSPC)
    );
    let mut error = Error::os("create the sandbox namespaces (clone3)", err);
    if hint {
        error
            .msg
            .push_str(" (are user, pid and time namespaces enabled, and under their limits?)");
    }
    error
}

/// The child's user namespace maps, written while it waits for Go.
fn write_id_maps(spec: &Spec, pid: i32) -> Result<()> {
    if spec.userns == UsernsMode::Isolated {
        for file in ["uid_map", "gid_map"] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, ID_MAP)
                .map_err(|e| Error::os(format_args!("write {path}"), e))?;
        }
    }
    Ok(())
}

/// A terminating signal has been passed on; the sandbox has until `deadline`.
struct Stopping {
    signal: i32,
    deadline: Instant,
    killed: bool,
}

impl Stopping {
    /// Kills the whole sandbox: SIGKILL to its init ends every process of its
    /// pid namespace, which are all the processes of its cgroup.
    fn kill(&mut self, pidfd: &OwnedFd, why: &str) {
        if self.killed {
            return;
        }
        self.killed = true;
        log::warn(&format!("{why}: killing the sandbox"), &[]);
        let _ = pidfd_send_signal(pidfd, Signal::KILL);
    }
}

/// What the supervisor does with one signal it received.
fn on_signal(sig: i32, pidfd: &OwnedFd, stopping: &mut Option<Stopping>, grace: Duration) {
    let name = signal_name(sig);
    if TERMINATING_SIGNALS.contains(&sig) {
        if let Some(stopping) = stopping {
            stopping.kill(pidfd, &format!("a second terminating signal ({name})"));
            return;
        }
        let mut first = Stopping {
            signal: sig,
            deadline: Instant::now() + grace,
            killed: false,
        };
        if grace.is_zero() {
            first.kill(pidfd, &format!("{name} with --stop-timeout 0"));
        }
        *stopping = Some(first);
    }
    if let Some(signal) = Signal::from_named_raw(sig) {
        let _ = pidfd_send_signal(pidfd, signal);
    }
    if sig == libc::SIGTSTP {
        // Job control: the sandbox is stopping; so does microbox, so that the
        // caller's shell sees its job stop. SIGCONT resumes both.
        let _ = signal::stop_self();
    }
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

/// Relays channel records until EOF, forwards signals, and returns the child's
/// status once it exits: its exit code, or 128+N if signal N killed it. If
/// microbox had to kill the sandbox after a terminating signal N (a second one,
/// or none within `grace`), the status is 128+N, as if N had ended it.
fn wait_for_exit(
    chan: &channel::Channel,
    pidfd: &OwnedFd,
    sigfd: &OwnedFd,
    grace: Duration,
) -> Result<i32> {
    let mut chan_open = true;
    let mut setup_error: Option<String> = None;
    let mut stopping: Option<Stopping> = None;
    loop {
        let mut fds = vec![
            PollFd::new(pidfd, PollFlags::IN),
            PollFd::new(sigfd, PollFlags::IN),
        ];
        if chan_open {
            fds.push(PollFd::new(chan.fd(), PollFlags::IN));
        }
        let timeout = stopping
            .as_ref()
            .filter(|stopping| !stopping.killed)
            .map(|stopping| timespec(stopping.deadline.saturating_duration_since(Instant::now())));
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::os("wait for the sandbox", e)),
        }
        let child_done = !fds[0].revents().is_empty();
        let signalled = !fds[1].revents().is_empty();
        let chan_ready = chan_open && !fds[2].revents().is_empty();

        if signalled {
            if let Ok(sig) = signal::read_signalfd(sigfd) {
                on_signal(sig, pidfd, &mut stopping, grace);
            }
        }
        if let Some(stopping) = stopping.as_mut() {
            if !stopping.killed && Instant::now() >= stopping.deadline {
                let why = format!(
                    "the sandbox did not end within {} of {}",
                    crate::units::format_duration(grace),
                    signal_name(stopping.signal)
                );
                stopping.kill(pidfd, &why);
            }
        }
        if chan_ready || child_done {
            // After the child exits, every record it sent is still queued: drain them.
            while chan_open {
                match chan.recv() {
                    Ok(Some(Message::SetupFailed(msg))) => setup_error = Some(msg),
                    Ok(Some(Message::ExecFailed { detail, .. })) => log::error(&detail, &[]),
                    Ok(Some(Message::Go)) => {}
                    Ok(None) | Err(_) => chan_open = false,
                }
                if !child_done {
                    break;
                }
            }
        }
        if child_done {
            let status = waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED)
                .map_err(|e| Error::os("wait for the sandbox", e))?;
            if let Some(msg) = setup_error {
                return Err(Error::runtime(msg));
            }
            let Some(status) = status else { continue };
            if let Some(code) = status.exit_status() {
                return Ok(code);
            }
            if let Some(sig) = status.terminating_signal() {
                return match stopping {
                    Some(stopping) if stopping.killed && sig == libc::SIGKILL => {
                        Ok(128 + stopping.signal)
                    }
                    _ => Ok(128 + sig),
                };
            }
            return Err(Error::runtime("the sandbox ended in an unknown state"));
        }
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
    fn clone_flags_name_every_namespace_the_spec_asks_for() {
        let all = [
            libc::CLONE_NEWPID,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWTIME,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWUSER,
        ];
        let want: u64 = all.iter().map(|f| u64::from(f.unsigned_abs())).sum();
        assert_eq!(clone_flags(&Spec::default()), want);
        let shared = Spec {
            net: NetMode::Host,
            userns: UsernsMode::Host,
            ..Spec::default()
        };
        let without = u64::from((libc::CLONE_NEWNET | libc::CLONE_NEWUSER).unsigned_abs());
        assert_eq!(clone_flags(&shared), want & !without);
    }
}
