//! The container's process from its namespaces to execve, shared by
//! `create` (the container's PID 1) and `exec` (a process joining it):
//! everything is prepared before the clone or fork ([`prepare`]), the
//! executable is looked up inside the container's root before create
//! returns ([`resolve_executable`], so the engine hears "executable file
//! not found in $PATH" as runc says it), and [`exec`] applies the process's
//! own settings in the order the kernel needs, then execs.

use std::ffi::{CStr, CString};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::config::Process;
use crate::error::{Error, Result};
use crate::rlimit::Rlimit;
use crate::security::caps::ProcessCaps;
use crate::security::seccomp::OciSeccomp;

pub(crate) struct Prepared {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// PATH of the process's environment, for a name without '/'.
    pub path: Option<String>,
    pub cwd: CString,
    pub caps: ProcessCaps,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: Option<u32>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    pub seccomp: Option<Vec<seccompiler::BpfProgram>>,
    /// process.consoleSize, for the pty.
    pub console_size: Option<(u16, u16)>,
    /// fds 3 .. 3+N pass to the process (`--preserve-fds`, LISTEN_FDS).
    pub preserve_fds: u32,
}

fn cstring(text: &str, what: &str) -> Result<CString> {
    CString::new(text)
        .map_err(|_| Error::usage(format!("config.json: {what} {text:?} contains a NUL byte")))
}

pub(crate) fn prepare(
    process: &Process,
    seccomp: Option<&OciSeccomp>,
    preserve_fds: u32,
) -> Result<Prepared> {
    let argv = process
        .args
        .iter()
        .map(|a| cstring(a, "process.args"))
        .collect::<Result<Vec<_>>>()?;
    let envp = process
        .env
        .iter()
        .map(|e| cstring(e, "process.env"))
        .collect::<Result<Vec<_>>>()?;
    let path = process
        .env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .map(str::to_string);
    // No check against microbox's own hard limits (as for --rlimit): the
    // engine's caller may hold CAP_SYS_RESOURCE; setrlimit decides, and
    // its refusal reaches the engine from create.
    let seccomp = match seccomp {
        Some(profile) => {
            let (programs, skipped) = crate::security::seccomp::compile_oci(profile)?;
            if !skipped.is_empty() {
                crate::log::info(
                    "seccomp: syscall names this kernel's table does not have are skipped",
                    &[("names", &skipped.join(","))],
                );
            }
            Some(programs)
        }
        None => None,
    };
    let c = process.caps;
    Ok(Prepared {
        argv,
        envp,
        path,
        cwd: cstring(&process.cwd, "process.cwd")?,
        caps: ProcessCaps {
            bounding: c.bounding,
            effective: c.effective,
            inheritable: c.inheritable,
            permitted: c.permitted,
            ambient: c.ambient,
        },
        uid: process.uid,
        gid: process.gid,
        groups: process.additional_gids.clone(),
        umask: process.umask,
        rlimits: process.rlimits.clone(),
        no_new_privileges: process.no_new_privileges,
        seccomp,
        console_size: process.console_size,
        preserve_fds,
    })
}

/// The executable's path inside the container (this process is in its
/// root by now), with the errors in the words the engines match on.
pub(crate) fn resolve_executable(p: &Prepared) -> Result<CString> {
    use rustix::fs::{access, stat, Access, FileType};
    let name = p.argv[0].to_string_lossy().into_owned();
    let usable = |path: &str| -> std::result::Result<(), rustix::io::Errno> {
        let st = stat(path)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(rustix::io::Errno::ACCESS);
        }
        access(path, Access::EXEC_OK)
    };
    if name.contains('/') {
        return match usable(&name) {
            Ok(()) => Ok(p.argv[0].clone()),
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Err(Error::usage(
                format!("exec: {name:?}: no such file or directory"),
            )),
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
                Err(Error::usage(format!("exec: {name:?}: permission denied")))
            }
            Err(e) => Err(Error::os("look up the executable", e).on(&name)),
        };
    }
    let mut denied = false;
    for dir in p.path.as_deref().unwrap_or("").split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let full = format!("{dir}/{name}");
        match usable(&full) {
            Ok(()) => return cstring(&full, "process.args"),
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => denied = true,
            Err(_) => {}
        }
    }
    if denied {
        return Err(Error::usage(format!("exec: {name:?}: permission denied")));
    }
    Err(Error::usage(format!(
        "exec: {name:?}: executable file not found in $PATH"
    )))
}

/// The engine's console socket, connected from the host side (the
/// container's process cannot reach the path after its pivot).
pub(crate) fn connect_console(path: &std::path::Path) -> Result<std::os::fd::OwnedFd> {
    let stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| Error::os("connect to the console socket", e).on(path.display()))?;
    Ok(std::os::fd::OwnedFd::from(stream))
}

/// A pty from the container's devpts: the master goes to the engine over
/// the console socket (one sendmsg, one SCM_RIGHTS fd, as runc does), the
/// other end becomes fds 0-2 and the controlling terminal. The caller has
/// made a new session.
pub(crate) fn setup_terminal(console: BorrowedFd<'_>, size: Option<(u16, u16)>) -> Result<()> {
    use rustix::fs::{open, Mode, OFlags};
    use rustix::pty::{ioctl_tiocgptpeer, unlockpt, OpenptFlags};
    let master = open(
        "/dev/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os("open", e).on("/dev/ptmx in the container"))?;
    unlockpt(&master).map_err(|e| Error::os("unlock the container's pty", e))?;
    let peer = ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY)
        .map_err(|e| Error::os("open the container's pty", e))?;
    if let Some((rows, cols)) = size {
        let winsize = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&peer, winsize)
            .map_err(|e| Error::os("set the container's terminal size", e))?;
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [master.as_fd()];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Error::runtime("internal error: no room for the pty's fd"));
    }
    sendmsg(
        console,
        &[IoSlice::new(b"/dev/ptmx")],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(|e| Error::os("send the pty over the console socket", e))?;
    drop(master);
    rustix::stdio::dup2_stdin(&peer)
        .and_then(|()| rustix::stdio::dup2_stdout(&peer))
        .and_then(|()| rustix::stdio::dup2_stderr(&peer))
        .map_err(|e| Error::os("make the pty the container's stdio", e))?;
    rustix::process::ioctl_tiocsctty(&peer)
        .map_err(|e| Error::os("make the pty the controlling terminal", e))?;
    Ok(())
}

/// The process's own settings, all before the container's code runs (and,
/// for create, before the process waits for `start`, as runc does: a
/// created container's PID 1 holds nothing the container is not given):
/// every fd above the preserved ones closed but `keep` (the channel, the
/// start fifo), so that the working directory and the files the process
/// opens can reach nothing of the host's through /proc/self/fd
/// (CVE-2024-21626); resource limits and umask; no_new_privileges; the
/// seccomp filter (loaded while this process still holds CAP_SYS_ADMIN
/// when no_new_privileges is off, as the kernel requires, else last); the
/// ids and capability sets; the working directory. What stays open is
/// close-on-exec.
pub(crate) fn enter(p: &Prepared, keep: &[BorrowedFd<'_>]) -> Result<()> {
    enter_fds_only(p, keep)?;
    apply(p)
}

/// The first step of [`enter`] alone: every fd but the preserved ones and
/// `keep` closed (exec does it before it looks anything up inside the
/// container).
pub(crate) fn enter_fds_only(p: &Prepared, keep: &[BorrowedFd<'_>]) -> Result<()> {
    let keep: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(std::os::fd::AsRawFd::as_raw_fd(fd)).ok())
        .collect();
    crate::sys::exec::close_from_except(3 + p.preserve_fds, &keep)
        .map_err(|e| Error::os("close microbox's file descriptors", e))
}

/// execve, once [`enter`] is done. Returns only on failure.
pub(crate) fn execve(p: &Prepared, exe: &CStr) -> Error {
    let err = crate::sys::exec::execve(exe, &p.argv, &p.envp);
    Error::os("execute", err).on(exe.to_string_lossy())
}

fn apply(p: &Prepared) -> Result<()> {
    crate::rlimit::apply(&p.rlimits)?;
    if let Some(mask) = p.umask {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask & 0o777));
    }
    if p.no_new_privileges {
        rustix::thread::set_no_new_privs(true).map_err(|e| Error::os("set no_new_privs", e))?;
    }
    let load = |programs: &Vec<seccompiler::BpfProgram>| {
        crate::security::seccomp::load(programs, false, false).map(drop)
    };
    if let (Some(programs), false) = (&p.seccomp, p.no_new_privileges) {
        load(programs)?;
    }
    // Before the ids change: the directory may be closed to the process's
    // user. Tried again after, where it may be open only to that user.
    let early = rustix::process::chdir(p.cwd.as_c_str());
    crate::security::caps::apply_with_user(&p.caps, p.uid, p.gid, &p.groups)?;
    // The id change reset the dumpable flag (to fs.suid_dumpable): set it
    // again, so that until its execve no container process can reach this
    // one's /proc entries.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| Error::os("make the container's process non-dumpable", e))?;
    if early.is_err() {
        rustix::process::chdir(p.cwd.as_c_str()).map_err(|e| {
            Error::os("change to the working directory", e).on(p.cwd.to_string_lossy())
        })?;
    }
    // A directory outside the container's root (an fd's, a moved mount's)
    // has no name in it: refused, as runc does.
    let cwd = rustix::process::getcwd(Vec::new())
        .map_err(|e| Error::os("read the working directory", e).on(p.cwd.to_string_lossy()))?;
    if !cwd.to_bytes().starts_with(b"/") {
        return Err(
            Error::failed("use the working directory", "it is outside the container")
                .on(p.cwd.to_string_lossy()),
        );
    }
    if let (Some(programs), true) = (&p.seccomp, p.no_new_privileges) {
        load(programs)?;
    }
    crate::sys::exec::mark_cloexec_from(3 + p.preserve_fds)
        .map_err(|e| Error::os("close inherited file descriptors on exec", e))?;
    Ok(())
}
