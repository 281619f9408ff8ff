//! The supervisor: clones the child into its namespaces, writes its id maps,
//! says "go", relays its setup errors, forwards signals and reports its status.
//! One thread, no async: poll(2) on the pidfd, a signalfd and the channel.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{pidfd_send_signal, waitid, Signal, WaitId, WaitIdOptions};

use super::channel::{self, Message};
use super::{child, names, Launch, FORWARDED_SIGNALS, TERMINATING_SIGNALS};
use crate::cgroup::{collect_stale, Cgroup, Limits};
use crate::error::{Error, Result};
use crate::log;
use crate::ns;
use crate::spec::{NetMode, Spec};
use crate::state::{SandboxLock, RUN_DIR};
use crate::sys::clone::Forked;
use crate::sys::signal::{self, SigSet};

pub fn supervise(spec: &Spec, launch: &Launch) -> Result<i32> {
    // Blocked before the clone, so no signal is lost between clone and poll; init
    // inherits the mask and waits for the same signals synchronously.
    let forwarded = SigSet::new(&FORWARDED_SIGNALS);
    signal::block(&forwarded).map_err(|e| Error::os("block signals", e))?;
    let sigfd = signal::signalfd(&forwarded).map_err(|e| Error::os("create a signalfd", e))?;
    let (ours, theirs) =
        channel::pair().map_err(|e| Error::os("create the parent/child channel", e))?;
    let forget = |id: &str| {
        // Whatever of theirs the kernel did not remove with their processes.
        crate::state::collect_free_id_ranges(Path::new(RUN_DIR));
        crate::net::forget(id)
    };
    if let Err(err) = collect_stale(forget) {
        log::warn(
            &format!("cannot collect the cgroups of dead sandboxes: {err}"),
            &[],
        );
    }
    // The lock comes before anything it guards; limits are written before any
    // process exists.
    let id = names::random_id();
    let lock = SandboxLock::acquire(Path::new(RUN_DIR), &id)?;
    let cgroup = Cgroup::create(lock, &Limits::from(spec))?;
    let placement = cgroup.placement()?;
    // Leases only; the links and rules need the child's pid.
    let bridge = match spec.net {
        NetMode::Bridge => Some(crate::net::prepare(spec, &id)?),
        NetMode::None | NetMode::Host => None,
    };
    let inside = bridge.as_ref().map(|prepared| prepared.inside);

    let first_id = launch.first_host_id();
    let (pid, pidfd) =
        match ns::clone_sandbox(ns::clone_flags(spec), placement.clone_into(), first_id) {
            Ok(Forked::Child) => {
                drop(ours);
                drop(sigfd);
                child::main(spec, launch, theirs, placement, inside)
            }
            Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
            Err(e) => return Err(Error::os(crate::error::CLONE_OP, e)),
        };
    drop(theirs);
    log::info(
        "sandbox started",
        &[("pid", &pid.to_string()), ("hostname", &launch.hostname)],
    );

    drop(placement);
    let attached = ns::id_maps(spec, first_id)
        .map_or(Ok(()), |maps| ns::write_id_maps(pid, &maps))
        .and_then(|()| idmap_onto_sandbox(spec, launch, pid))
        .and_then(|()| bridge.map(|prepared| prepared.attach(pid)).transpose());
    let attached = match attached {
        Ok(attached) => attached,
        Err(err) => {
            // The child waits for Go: killing it is all the cleanup there is. If
            // its own setup failed first, that is the cause.
            let _ = pidfd_send_signal(&pidfd, Signal::KILL);
            return Err(wait_for_exit(&ours, &pidfd, &sigfd, spec.stop_timeout)
                .err()
                .unwrap_or(err));
        }
    };
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
    if let Some(attached) = attached {
        if let Err(err) = attached.detach() {
            log::error(&format!("{err} (the next microbox run removes it)"), &[]);
        }
    }
    if let Err(err) = cgroup.destroy() {
        log::error(&format!("{err} (the next microbox run removes it)"), &[]);
    }
    status
}

/// With shifted ids: the image and the read-only binds become idmapped mounts
/// through the sandbox's user namespace (its maps written), so their files
/// show inside with their on-disk owners. The child attaches its copies of
/// the same detached trees after Go.
fn idmap_onto_sandbox(spec: &Spec, launch: &Launch, pid: i32) -> Result<()> {
    if launch.ids.is_none() {
        return Ok(());
    }
    let userns = ns::open_user_namespace(pid)?;
    if let (Some(image), crate::spec::FsMode::Dir(dir)) = (&launch.image, &spec.fs) {
        crate::fs::idmap(image.as_fd(), userns.as_fd(), false, dir)?;
    }
    for bind in launch.binds.iter().filter(|bind| !bind.writable()) {
        bind.idmap(userns.as_fd())?;
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
    let mut setup_error: Option<Error> = None;
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
                    Ok(Some(Message::SetupFailed(err))) => setup_error = Some(err),
                    Ok(Some(Message::ExecFailed { error, .. })) => {
                        log::error(&error.to_string(), &[]);
                    }
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
            if let Some(err) = setup_error {
                return Err(err);
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
