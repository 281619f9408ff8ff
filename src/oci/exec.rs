//! `exec`: a new process in a running container. microbox joins the
//! container's cgroup and, through a pidfd of its PID 1, every namespace it
//! has (one setns call: the user namespace first, by the kernel's order),
//! then forks (a pid namespace applies to children). The child applies the
//! process's settings and the container's seccomp profile and execs. A
//! failure anywhere leaves the container as it was.
//!
//! `--detach` writes the pid file and exits (the engine is the subreaper);
//! in the foreground microbox waits and exits with the process's status.

use std::os::fd::AsFd;

use rustix::process::{waitpid, Pid, WaitOptions};
use rustix::thread::ThreadNameSpaceType;

use super::cli::{ExecArgs, Globals};
use super::config::{self, NsKind, Process};
use super::ops::pidfd;
use super::process;
use super::state::{self, ContainerDir, Status};
use crate::error::{Error, Result};
use crate::sandbox::channel::{self, Message};
use crate::sys::clone::fork_single;
use crate::sys::exec::exit_now;

pub(crate) fn exec(g: &Globals, a: &ExecArgs) -> Result<i32> {
    let dir = ContainerDir::open(&g.root, &a.id)?;
    let record = dir
        .read_record()?
        .ok_or_else(|| Error::usage(format!("container {} is not running", a.id)))?;
    // runc's rule: any container whose process lives.
    if dir.status(&record) == Status::Stopped {
        return Err(Error::usage(format!(
            "cannot exec in container {}: it is {}",
            a.id,
            dir.status(&record).name()
        )));
    }
    let config = config::load_kept(&dir.kept_config(), &record.bundle)?;
    let process = exec_process(a, &config.process)?;
    let prepared = process::prepare(&process, config.seccomp.as_ref(), a.preserve_fds)?;
    let console = match (&a.console_socket, process.terminal) {
        (Some(path), true) => Some(process::connect_console(path)?),
        (None, true) => return Err(Error::usage("a terminal needs --console-socket")),
        (_, false) => None,
    };
    let leader =
        pidfd(&record).ok_or_else(|| Error::usage(format!("container {} is not running", a.id)))?;
    // Nothing of the container's is held any more than needed: the lock
    // goes before the wait of a foreground exec.
    drop(dir);
    let pid_file = a
        .pid_file
        .as_deref()
        .map(state::LaterFile::open)
        .transpose()?;
    let flags = differing_namespaces(record.pid)?;
    let (parent, child) = channel::pair().map_err(|e| Error::os("create the exec channel", e))?;
    // Not dumpable from before the fork on: see the child's comment.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| Error::os("make microbox exec non-dumpable", e))?;
    record.cgroup.join_self()?;
    // Counted here: in the container's namespaces /proc shows its processes,
    // not this one.
    let checked =
        crate::sys::clone::single_threaded().map_err(|e| Error::os("start the process", e))?;
    rustix::thread::move_into_thread_name_spaces(leader.as_fd(), flags)
        .map_err(|e| Error::os("join the container's namespaces", e).on(&a.id))?;
    match fork_single(checked).map_err(|e| Error::os("start the process", e))? {
        None => {
            drop(parent);
            // Visible in the container from here to its execve: nothing of
            // the host's stays open (the pid file's directory, the pidfd;
            // `process::enter_fds_only` closes the rest), and it is not dumpable (set
            // before the fork), so no container process can ptrace it or
            // open its /proc/PID/exe, the host's microbox (CVE-2016-9962,
            // CVE-2019-5736).
            drop(pid_file);
            drop(leader);
            if rustix::process::set_dumpable_behavior(
                rustix::process::DumpableBehavior::NotDumpable,
            )
            .is_err()
            {
                exit_now(127);
            }
            let _ = rustix::process::setsid();
            // The engine's and microbox's fds closed first (the channel and
            // the console kept): the lookups below happen in the container.
            let keep: Vec<_> = std::iter::once(child.fd().as_fd())
                .chain(console.as_ref().map(AsFd::as_fd))
                .collect();
            let result: Result<()> = process::enter_fds_only(&prepared, &keep)
                .and_then(|()| process::resolve_executable(&prepared))
                .and_then(|exe| {
                    if let Some(console) = &console {
                        process::setup_terminal(console.as_fd(), prepared.console_size)?;
                    }
                    process::enter(&prepared, &[child.fd().as_fd()])?;
                    Err(process::execve(&prepared, &exe))
                });
            if let Err(err) = result {
                let _ = child.send(&Message::SetupFailed(err));
            }
            exit_now(127)
        }
        Some(pid) => {
            drop(child);
            drop(console);
            // EOF: the channel closed at the child's execve.
            match parent.recv() {
                Ok(None) => {}
                Ok(Some(Message::SetupFailed(err))) => {
                    reap(pid);
                    return Err(err);
                }
                _ => {
                    reap(pid);
                    return Err(Error::runtime("the exec'd process died before its execve"));
                }
            }
            if let Some(file) = &pid_file {
                file.write(pid.to_string().as_bytes())?;
            }
            if a.detach {
                return Ok(0);
            }
            Ok(reap(pid))
        }
    }
}

/// Waits for the child; its exit status, or 128 + the signal.
fn reap(pid: i32) -> i32 {
    let Some(pid) = Pid::from_raw(pid) else {
        return 1;
    };
    loop {
        match waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return code;
                }
                if let Some(sig) = status.terminating_signal() {
                    return 128 + sig;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            _ => return 1,
        }
    }
}

/// The process to run: `--process FILE` as a whole, or the container's own
/// with the command, `--cwd`, `--env` and `--tty` replaced.
fn exec_process(a: &ExecArgs, base: &Process) -> Result<Process> {
    if let Some(path) = &a.process {
        let text = config::read_limited(path)?;
        let value = super::json::parse(&text)
            .map_err(|e| Error::usage(format!("{}: not JSON: {e}", path.display())))?;
        return config::parse_process(&value, "process").map_err(|e| e.on(path.display()));
    }
    let mut p = base.clone();
    p.args = a.args.clone();
    if let Some(cwd) = &a.cwd {
        p.cwd = cwd.clone();
    }
    for pair in &a.env {
        let key = pair.split('=').next().unwrap_or("");
        p.env.retain(|e| e.split('=').next() != Some(key));
        p.env.push(pair.clone());
    }
    p.terminal = a.tty;
    Ok(p)
}

/// The namespaces of `pid` that are not this process's (setns of one's
/// own user namespace is EINVAL).
fn differing_namespaces(pid: i32) -> Result<ThreadNameSpaceType> {
    let mut flags = ThreadNameSpaceType::empty();
    for (kind, flag) in [
        (NsKind::User, ThreadNameSpaceType::USER),
        (NsKind::Mount, ThreadNameSpaceType::MOUNT),
        (NsKind::Pid, ThreadNameSpaceType::PROCESS_ID),
        (NsKind::Network, ThreadNameSpaceType::NETWORK),
        (
            NsKind::Ipc,
            ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION,
        ),
        (
            NsKind::Uts,
            ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME,
        ),
        (NsKind::Cgroup, ThreadNameSpaceType::CONTROL_GROUP),
        (NsKind::Time, ThreadNameSpaceType::TIME),
    ] {
        let name = kind.proc_name();
        let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
        if let (Ok(theirs), Ok(ours)) = (theirs, ours) {
            use std::os::unix::fs::MetadataExt;
            if theirs.ino() != ours.ino() || theirs.dev() != ours.dev() {
                flags |= flag;
            }
        }
    }
    Ok(flags)
}
