//! The supervisor: clones the child into its namespaces, writes its id maps,
//! says "go", then watches the sandbox (`watch`) until it ends, and fills in
//! the run report. One thread, no async.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Instant;

use rustix::process::{pidfd_send_signal, Signal};

use super::channel::{self, Message};
use super::denied::Denials;
use super::output::OutputCopy;
use super::watch::{CpuBudget, Ended, Watch};
use super::{child, names, Launch, FORWARDED_SIGNALS};
use crate::cgroup::{collect_stale, Cgroup, Limits};
use crate::error::{Error, Result};
use crate::log;
use crate::ns;
use crate::report::{Limit, Report};
use crate::spec::{NetMode, Spec};
use crate::state::{run_dir, SandboxLock};
use crate::sys::clone::Forked;
use crate::sys::signal::{self, SigSet};

pub fn supervise(spec: &Spec, launch: &Launch, report: &mut Report) -> Result<i32> {
    // Blocked before the clone, so no signal is lost between clone and poll; init
    // inherits the mask and waits for the same signals synchronously.
    let forwarded = SigSet::new(&FORWARDED_SIGNALS);
    signal::block(&forwarded).map_err(|e| Error::os("block signals", e))?;
    let sigfd = signal::signalfd(&forwarded).map_err(|e| Error::os("create a signalfd", e))?;
    let (ours, theirs) =
        channel::pair().map_err(|e| Error::os("create the parent/child channel", e))?;
    let rootless = launch.user_maps.is_some();
    let forget = |id: &str| {
        // A user's sandboxes hold no bridge state and no id range.
        if rootless {
            return Ok(());
        }
        // Whatever of theirs the kernel did not remove with their processes.
        crate::state::collect_free_id_ranges(Path::new(run_dir()));
        crate::net::forget(id)
    };
    if let Err(err) = collect_stale(forget) {
        log::warn(
            &format!("cannot collect the cgroups of dead sandboxes: {err}"),
            &[],
        );
    }
    crate::profile::mark("supervisor", "stale-scan");
    // The lock comes before anything it guards; limits are written before any
    // process exists.
    let id = names::random_id();
    let lock = SandboxLock::acquire(Path::new(run_dir()), &id)?;
    let cgroup = Cgroup::create(lock, &Limits::from(spec), &spec.limits_asked)?;
    let placement = cgroup.placement()?;
    crate::profile::mark("supervisor", "lock+cgroup");
    // Leases only; the links and rules need the child's pid.
    let bridge = match spec.net {
        NetMode::Bridge => Some(crate::net::prepare(spec, &id)?),
        NetMode::None | NetMode::Host => None,
    };
    let inside = bridge.as_ref().map(|prepared| prepared.inside);
    report.hostname = Some(launch.hostname.clone());
    report.ip = inside.as_ref().map(|inside| inside.addr);
    report.host_ids = launch.first_host_id();
    // Read once before the start: a limit that cannot be enforced is an
    // error now, not a sandbox running without it.
    let cpu = match spec.cpu_time {
        Some(limit) => {
            cgroup.cpu_used().map_err(|e| {
                Error::os("read the sandbox's CPU time", e).hint("--cpu-time cannot be enforced")
            })?;
            Some(CpuBudget {
                limit,
                cpus: crate::sys::fd::online_cpus(),
            })
        }
        None => None,
    };
    let (output, sandbox_stdio) = match spec.output_limit {
        Some(limit) => {
            let (copy, ends) =
                OutputCopy::new(limit).map_err(|e| Error::os("create the output pipes", e))?;
            (Some(copy), Some(ends))
        }
        None => (None, None),
    };

    let first_id = launch.first_host_id();
    let (pid, pidfd) =
        match ns::clone_sandbox(ns::clone_flags(spec), placement.clone_into(), first_id) {
            Ok(Forked::Child) => {
                drop(ours);
                drop(sigfd);
                child::main(spec, launch, theirs, placement, inside, sandbox_stdio)
            }
            Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
            Err(e) => {
                let err = Error::os(crate::error::CLONE_OP, e);
                return Err(
                    match ns::userns_forbidden_hint(launch.user_maps.is_some()) {
                        Some(hint) => err.hint(hint),
                        None => err,
                    },
                );
            }
        };
    crate::profile::mark("supervisor", "clone");
    drop(theirs);
    drop(sandbox_stdio);
    log::info(
        "sandbox started",
        &[("pid", &pid.to_string()), ("hostname", &launch.hostname)],
    );

    drop(placement);
    // One watch for both ends below: its clocks start only with init's
    // Started record, which a child killed before Go never sends.
    let mut watch = Watch {
        chan: &ours,
        pidfd: &pidfd,
        sigfd: &sigfd,
        cgroup: &cgroup,
        grace: spec.stop_timeout,
        timeout: spec.timeout,
        cpu,
        output,
        denials: Denials::default(),
    };
    let maps = match &launch.user_maps {
        Some(user) => ns::write_user_maps(pid, user),
        None => ns::id_maps(spec, first_id).map_or(Ok(()), |maps| ns::write_id_maps(pid, &maps)),
    };
    let attached = maps
        .and_then(|()| idmap_onto_sandbox(spec, launch, pid))
        .and_then(|()| bridge.map(|prepared| prepared.attach(pid)).transpose());
    let attached = match attached {
        Ok(attached) => attached,
        Err(err) => {
            // The child waits for Go: killing it is all the cleanup there is. If
            // its own setup failed first, that is the cause.
            let _ = pidfd_send_signal(&pidfd, Signal::KILL);
            return Err(watch.run().status.err().unwrap_or(err));
        }
    };
    crate::profile::mark("supervisor", "idmap");
    // A failed send means the child is gone already; its status tells why.
    let _ = ours.send(&Message::Go);
    let ended = watch.run();
    crate::profile::mark("supervisor", "wait");
    let finished = Instant::now();
    let oom = matches!(ended.status, Ok(137)) && ended.limit.is_none() && cgroup.oom_killed();
    // Only when asked: the counters are half a dozen cgroup file reads.
    if spec.report.is_some() {
        fill_report(report, &ended, finished, &cgroup, oom, &watch);
    }
    let status = ended.status;
    if oom {
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
    crate::profile::mark("supervisor", "teardown");
    status
}

/// What the sandbox's end and its cgroup say, before the cgroup goes.
fn fill_report(
    report: &mut Report,
    ended: &Ended,
    finished: Instant,
    cgroup: &Cgroup,
    oom: bool,
    watch: &Watch<'_>,
) {
    report.signal = ended.signal;
    report.limit = ended.limit.or_else(|| {
        if oom {
            Some(Limit::Oom)
        } else if cgroup.pids_limit_hit() {
            Some(Limit::Pids)
        } else {
            None
        }
    });
    report.wall = ended
        .started
        .map(|started| finished.duration_since(started));
    report.cpu = cgroup.cpu_split();
    report.memory_peak = cgroup.memory_peak();
    report.tasks_peak = cgroup.tasks_peak();
    report.denials_reported = watch.denials.reported();
    report.denied = watch.denials.by_name();
    report.output = watch.output.as_ref().map(OutputCopy::passed);
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
