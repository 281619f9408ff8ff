//! PID 1 of the sandbox: starts the command, forwards signals to it, reaps every
//! zombie, and exits with the command's status (128+N for signal N). When init
//! exits, the kernel kills whatever is left in the pid namespace.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;

use rustix::process::{kill_process, wait, Pid, Signal, WaitOptions};

use super::channel::{Channel, Message};
use super::{Launch, FORWARDED_SIGNALS, TERMINATING_SIGNALS};
use crate::error::{Error, Result};
use crate::sys::clone::fork;
use crate::sys::exec::{close_from, close_range, execve, exit_now};
use crate::sys::signal::{self, SigSet};

const EXIT_NOT_EXECUTABLE: i32 = 126;
const EXIT_NOT_FOUND: i32 = 127;

/// Becomes init and never returns: a failure before the command starts goes to
/// the parent over `chan` and ends the process with 125.
pub fn start(launch: &Launch, chan: Channel) -> ! {
    match start_command(launch, &chan) {
        Ok(command) => {
            // KILL only: the command may have changed its uid, and init must still
            // be able to pass signals on (and SIGCONT to every process).
            if let Err(err) = crate::security::caps::apply(1 << crate::security::caps::KILL) {
                // The command runs already; init cannot report through the channel any
                // more, and must not supervise with more privilege than it should.
                crate::log::error(&err.to_string(), &[]);
                exit_now(125);
            }
            supervise(command, &init_signals(), &chan)
        }
        Err(err) => {
            let _ = chan.send(&Message::SetupFailed(err));
            exit_now(125)
        }
    }
}

fn init_signals() -> SigSet {
    let mut waited: Vec<i32> = FORWARDED_SIGNALS.to_vec();
    waited.push(libc::SIGCHLD);
    SigSet::new(&waited)
}

fn start_command(launch: &Launch, chan: &Channel) -> Result<i32> {
    // Only 0, 1, 2 and the channel survive: no host fd reaches init or the
    // command, whatever microbox inherited (CVE-2024-21626).
    let keep =
        u32::try_from(chan.fd().as_raw_fd()).map_err(|_| Error::runtime("bad channel fd"))?;
    if keep > 3 {
        close_range(3, keep - 1).map_err(|e| Error::os("close inherited file descriptors", e))?;
    }
    close_from(keep + 1).map_err(|e| Error::os("close inherited file descriptors", e))?;

    signal::block(&init_signals()).map_err(|e| Error::os("block signals in init", e))?;
    crate::profile::mark("init", "close-fds");
    // Loaded once, here, and inherited through fork: init and the command run
    // under the same filter, and the command pays no second load (each load
    // translates and JITs the program: hundreds of microseconds). Nothing
    // either process does from here on needs a denied syscall. With shifted
    // ids init still holds CAP_SYS_ADMIN in its namespace here, so the load
    // needs no no_new_privs, and setuid binaries of the image work.
    let listener = crate::security::seccomp::load(
        &launch.seccomp,
        launch.ids.is_none(),
        launch.notify_denials,
    )?;
    // The listener goes to the parent and is closed here, before the fork:
    // a sandbox process holding it could answer its own denied calls.
    let started = match &listener {
        Some(fd) => chan.send_with_fd(&Message::Started, fd.as_fd()),
        None => chan.send(&Message::Started),
    };
    drop(listener);
    crate::profile::mark("init", "seccomp+started");
    started.map_err(|e| Error::os("send the seccomp listener to microbox", e))?;
    match fork().map_err(|e| Error::os("start the command", e))? {
        None => exec_command(launch, chan),
        Some(pid) => {
            crate::profile::mark("init", "fork");
            Ok(pid)
        }
    }
}

/// Forwards signals and reaps until the command exits, then tells the
/// parent how it ended and exits with its status.
fn supervise(command: i32, waited: &SigSet, chan: &Channel) -> ! {
    let end = |code: i32, signal: Option<i32>| -> ! {
        // Nobody to tell if this fails: the status still says the code.
        let _ = chan.send(&Message::Ended { code, signal });
        exit_now(code)
    };
    let Some(command_pid) = Pid::from_raw(command) else {
        exit_now(125)
    };
    loop {
        let Ok(sig) = signal::wait(waited) else {
            exit_now(125)
        };
        if sig != libc::SIGCHLD {
            pass_on(command_pid, sig);
            continue;
        }
        while let Ok(Some((pid, status))) = wait(WaitOptions::NOHANG) {
            if pid != command_pid {
                continue;
            }
            if let Some(code) = status.exit_status() {
                end(code, None);
            }
            if let Some(sig) = status.terminating_signal() {
                end(128 + sig, Some(sig));
            }
        }
    }
}

/// One forwarded signal, into the sandbox. Failures are ignored: the target
/// may have exited already, and init has nobody to tell.
fn pass_on(command: Pid, sig: i32) {
    match sig {
        // The command's process group has no parent in its session (init is
        // in another), so the kernel would discard a SIGTSTP with the default
        // action: stop everything with SIGSTOP instead.
        libc::SIGTSTP => {
            let _ = signal::kill_all(libc::SIGSTOP);
        }
        libc::SIGCONT => {
            let _ = signal::kill_all(libc::SIGCONT);
        }
        _ => {
            if let Some(signal) = Signal::from_named_raw(sig) {
                let _ = kill_process(command, signal);
            }
            // A stopped process keeps a terminating signal pending until continued.
            if TERMINATING_SIGNALS.contains(&sig) {
                let _ = signal::kill_all(libc::SIGCONT);
            }
        }
    }
}

/// The command's process: a new session (no controlling terminal, so no
/// TIOCSTI into the caller's shell), clean signal state, then execve.
fn exec_command(launch: &Launch, chan: &Channel) -> ! {
    let _ = rustix::process::setsid();
    let _ = signal::unblock_all();
    let _ = signal::set_default(libc::SIGPIPE);
    // The seccomp filter is already on (inherited from init); prlimit, prctl
    // and capset are allowed by it. Dropping from the bounding set needs
    // CAP_SETPCAP, so the sets are reduced in one step, bounding set first.
    let limited = crate::rlimit::apply(&launch.rlimits)
        .and_then(|()| crate::security::caps::apply(launch.caps));
    if let Err(err) = limited {
        let _ = chan.send(&Message::SetupFailed(err));
        exit_now(125);
    }

    crate::profile::mark("command", "rlimits+caps");
    let (status, err, there) = exec_lookup(launch);
    let name = launch.argv[0].to_string_lossy();
    let error = match err.raw_os_error() {
        // A file that is there but "not found": its interpreter is not.
        Some(libc::ENOENT) => match there.as_deref().and_then(super::interp::explain) {
            Some(line) => Error::runtime(line),
            None => Error::runtime(format!("{name}: command not found")),
        },
        _ => Error::os("execute", err).on(name),
    };
    let _ = chan.send(&Message::ExecFailed { status, error });
    exit_now(status)
}

/// execve the command, searching the sandbox's PATH for a name without `/`.
/// Returns only on failure, with 126 (found, not executable) or 127 (not found),
/// and the first file that was there although execve said ENOENT.
fn exec_lookup(launch: &Launch) -> (i32, io::Error, Option<std::path::PathBuf>) {
    let name = launch.argv[0].as_bytes();
    let there_yet_absent = |path: &std::ffi::CStr, err: &io::Error| {
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
        (err.raw_os_error() == Some(libc::ENOENT) && path.is_file()).then(|| path.to_path_buf())
    };
    if name.contains(&b'/') {
        let err = execve(&launch.argv[0], &launch.argv, &launch.envp);
        let there = there_yet_absent(&launch.argv[0], &err);
        return (exit_code_for(&err), err, there);
    }
    let mut there = None;
    let mut denied: Option<io::Error> = None;
    for dir in launch.path.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        let Ok(full) = CString::new(full) else {
            continue;
        };
        let err = execve(full.as_c_str(), &launch.argv, &launch.envp);
        if there.is_none() {
            there = there_yet_absent(&full, &err);
        }
        if exit_code_for(&err) == EXIT_NOT_EXECUTABLE {
            denied.get_or_insert(err);
        }
    }
    match denied {
        Some(err) => (EXIT_NOT_EXECUTABLE, err, None),
        None => (
            EXIT_NOT_FOUND,
            io::Error::from_raw_os_error(libc::ENOENT),
            there,
        ),
    }
}

fn exit_code_for(err: &io::Error) -> i32 {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => EXIT_NOT_FOUND,
        _ => EXIT_NOT_EXECUTABLE,
    }
}
