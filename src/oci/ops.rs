//! `start`, `state`, `kill`, `delete`, `ps` and `features`: each reads the
//! container's record under its lock and acts on the process through a
//! pidfd checked against the recorded start time, so a reused pid is never
//! signalled.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use super::state::{self, annotations_json, ContainerDir, Record, Status};
use crate::error::{Error, Result};
use crate::report::json_string;

/// How long `start` waits for the process to take the byte, and `delete`
/// for a killed process to end.
const WAIT: Duration = Duration::from_secs(10);

fn open(root: &Path, id: &str) -> Result<(ContainerDir, Record)> {
    let dir = ContainerDir::open(root, id)?;
    match dir.read_record()? {
        Some(record) => Ok((dir, record)),
        None => Err(Error::runtime(format!(
            "container {id} is being created, or its create failed half-way (delete --force removes it)"
        ))),
    }
}

/// A pidfd of the container's process if it is still the recorded one.
pub(crate) fn pidfd(record: &Record) -> Option<OwnedFd> {
    let fd = pidfd_open(Pid::from_raw(record.pid)?, PidfdFlags::empty()).ok()?;
    // Checked after the open: a pid reused before it fails here, and one
    // reused after cannot be, since the pidfd pins this process.
    state::alive(record.pid, record.start_time).then_some(fd)
}

fn signal_of(number: i32) -> Result<Signal> {
    Signal::from_named_raw(number).ok_or_else(|| Error::usage(format!("invalid signal {number}")))
}

pub(crate) fn start(root: &Path, id: &str) -> Result<()> {
    let (dir, record) = open(root, id)?;
    match dir.status(&record) {
        Status::Created => {}
        other => {
            return Err(Error::usage(format!(
                "cannot start container {id}: it is {} (only a created container starts)",
                other.name()
            )))
        }
    }
    let process =
        pidfd(&record).ok_or_else(|| Error::usage(format!("container {id} is not running")))?;
    let fifo_path = dir.fifo();
    // The process holds the fifo open for reading (and writing) since
    // create: with no reader left, this open fails with ENXIO.
    let fifo = rustix::fs::open(
        &fifo_path,
        OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::NXIO => {
            Error::runtime(format!("container {id} ended before it started"))
        }
        e => Error::os("open", e).on(fifo_path.display()),
    })?;
    rustix::io::write(&fifo, b"0").map_err(|e| Error::os("write", e).on(fifo_path.display()))?;
    drop(process);
    std::fs::remove_file(&fifo_path).map_err(|e| Error::os("remove", e).on(fifo_path.display()))
}

pub(crate) fn state(root: &Path, id: &str) -> Result<String> {
    let (dir, record) = open(root, id)?;
    let status = dir.status(&record);
    let pid = if status == Status::Stopped {
        0
    } else {
        record.pid
    };
    Ok(format!(
        "{{\"ociVersion\":{},\"id\":{},\"status\":\"{}\",\"pid\":{pid},\"bundle\":{},\"rootfs\":{},\"created\":{},\"annotations\":{}}}\n",
        json_string(&record.oci_version),
        json_string(&record.id),
        status.name(),
        json_string(&record.bundle.to_string_lossy()),
        json_string(&record.root.to_string_lossy()),
        json_string(&record.created),
        annotations_json(&record.annotations),
    ))
}

pub(crate) fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let (dir, record) = open(root, id)?;
    if signal == 0 {
        let running =
            dir.status(&record) != Status::Stopped || (all && !record.cgroup.pids()?.is_empty());
        return if running {
            Ok(())
        } else {
            Err(Error::usage(format!("container {id} is not running")))
        };
    }
    let sig = signal_of(signal)?;
    if all {
        let pids = record.cgroup.pids()?;
        if pids.is_empty() && dir.status(&record) == Status::Stopped {
            return Err(Error::usage(format!("container {id} is not running")));
        }
        // v2 kills a whole cgroup in the kernel, with no pid read first
        // that could be reused before the signal.
        if sig == Signal::KILL && record.cgroup.kill_all()? {
            return Ok(());
        }
        for pid in pids.into_iter().filter_map(Pid::from_raw) {
            match rustix::process::kill_process(pid, sig) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => {
                    return Err(Error::os("signal", e).on(format_args!(
                        "process {} of container {id}",
                        pid.as_raw_nonzero()
                    )))
                }
            }
        }
        return Ok(());
    }
    let process =
        pidfd(&record).ok_or_else(|| Error::usage(format!("container {id} is not running")))?;
    pidfd_send_signal(&process, sig).map_err(|e| match e {
        rustix::io::Errno::SRCH => Error::usage(format!("container {id} is not running")),
        e => Error::os("signal", e).on(format_args!("container {id}")),
    })
}

pub(crate) fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match ContainerDir::open_if_exists(root, id)? {
        Some(dir) => dir,
        // runc's rule, which the engines' cleanup relies on.
        None if force => return Ok(()),
        None => return Err(super::state::not_found(id)),
    };
    let Some(record) = dir.read_record()? else {
        if force {
            return dir.remove();
        }
        return Err(Error::usage(format!(
            "container {id} is being created or its create failed half-way (use delete --force)"
        )));
    };
    let status = dir.status(&record);
    if status == Status::Running && !force {
        return Err(Error::usage(format!(
            "cannot delete container {id} that is not stopped: running (use delete --force)"
        )));
    }
    if let Some(process) = pidfd(&record) {
        let _ = pidfd_send_signal(&process, Signal::KILL);
        wait_for_exit(&process)?;
    }
    // Without a pid namespace of its own, the container's other processes
    // outlive its first: the cgroup's removal kills them.
    record.cgroup.remove()?;
    dir.remove()
}

/// Waits until the (non-child) process behind `pidfd` has exited.
fn wait_for_exit(process: &OwnedFd) -> Result<()> {
    let mut fds = [PollFd::new(process, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: i64::try_from(WAIT.as_secs()).unwrap_or(10),
        tv_nsec: 0,
    };
    loop {
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => {
                return Err(Error::runtime(
                    "the container's process did not end within 10 s of SIGKILL",
                ))
            }
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::os("wait for the container's process", e)),
        }
    }
}

pub(crate) fn ps(root: &Path, id: &str, json: bool) -> Result<String> {
    let (_dir, record) = open(root, id)?;
    let pids = record.cgroup.pids()?;
    let list: Vec<String> = pids.iter().map(ToString::to_string).collect();
    if json {
        Ok(format!("[{}]\n", list.join(",")))
    } else {
        Ok(format!(
            "PID\n{}",
            list.iter().map(|p| format!("{p}\n")).collect::<String>()
        ))
    }
}

/// What `features` reports (runtime-spec features.md), fixed at build time.
pub(crate) fn features() -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|s| json_string(s))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{{\"ociVersionMin\":\"1.0.0\",\"ociVersionMax\":\"1.1.0\",\"hooks\":[],\
         \"mountOptions\":[{}],\
         \"linux\":{{\"namespaces\":[{}],\"capabilities\":[{}],\
         \"cgroup\":{{\"v1\":true,\"v2\":true,\"systemd\":false,\"systemdUser\":false}},\
         \"seccomp\":{{\"enabled\":true,\"actions\":[{}],\"operators\":[{}],\"archs\":[{}]}},\
         \"apparmor\":{{\"enabled\":false}},\"selinux\":{{\"enabled\":false}}}},\
         \"annotations\":{{\"org.opencontainers.runtime-spec.features.runtime\":\"microbox\"}}}}\n",
        list(&[
            "ro",
            "rw",
            "nosuid",
            "suid",
            "nodev",
            "dev",
            "noexec",
            "exec",
            "noatime",
            "strictatime",
            "nodiratime",
            "relatime",
            "bind",
            "rbind",
            "private",
            "rprivate"
        ]),
        list(&["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]),
        (0..=crate::security::caps::LAST)
            .map(crate::security::caps::name)
            .map(json_string)
            .collect::<Vec<_>>()
            .join(","),
        list(&[
            "SCMP_ACT_ALLOW",
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_KILL",
            "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_TRAP",
            "SCMP_ACT_LOG",
            "SCMP_ACT_TRACE"
        ]),
        list(&[
            "SCMP_CMP_NE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_MASKED_EQ"
        ]),
        list(&[native_arch()]),
    )
}

fn native_arch() -> &'static str {
    match crate::security::syscalls::Arch::NATIVE {
        crate::security::syscalls::Arch::X86_64 => "SCMP_ARCH_X86_64",
        crate::security::syscalls::Arch::Aarch64 => "SCMP_ARCH_AARCH64",
    }
}
