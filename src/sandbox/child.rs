//! The clone3 child: waits for the parent's "go", builds the sandbox inside its
//! new namespaces, then becomes PID 1. It is a copy of a single-threaded
//! process, so it may allocate, but it must never return into the parent's
//! code: every path ends in `execve` or `_exit`.

use std::os::fd::AsFd;

use rustix::process::{set_parent_process_death_signal, Signal};

use super::channel::{Channel, Message};
use super::output::SandboxEnds;
use super::{init, Launch};
use crate::cgroup::Placement;
use crate::error::{Error, Result};
use crate::net::Inside;
use crate::spec::{NetMode, Spec};
use crate::sys::exec::exit_now;

/// microbox's own failure (DESIGN.md section 3).
const EXIT_SETUP_FAILED: i32 = 125;

pub fn main(
    spec: &Spec,
    launch: &Launch,
    chan: Channel,
    placement: Placement<'_>,
    inside: Option<Inside>,
    stdio: Option<SandboxEnds>,
) -> ! {
    // With --output-limit the sandbox's stdout and stderr are microbox's
    // pipes, from its first step (its own errors are output too).
    if let Some([out, err]) = &stdio {
        if rustix::stdio::dup2_stdout(out)
            .and_then(|()| rustix::stdio::dup2_stderr(err))
            .is_err()
        {
            exit_now(EXIT_SETUP_FAILED);
        }
    }
    drop(stdio);
    crate::profile::mark("init", "clone");
    // A panic here ends in the hook `main` installed: one line, exit 125.
    match setup(spec, launch, &chan, placement, inside) {
        Ok(()) => init::start(launch, chan),
        Err(err) => {
            let _ = chan.send(&Message::SetupFailed(err));
            exit_now(EXIT_SETUP_FAILED)
        }
    }
}

fn setup(
    spec: &Spec,
    launch: &Launch,
    chan: &Channel,
    placement: Placement<'_>,
    inside: Option<Inside>,
) -> Result<()> {
    // If microbox dies from here on, so does the sandbox. Set before waiting for
    // Go: a parent that died earlier shows up as EOF on the channel.
    set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| Error::os("set the parent-death signal", e))?;
    // Non-dumpable until exec: sandboxed processes must not ptrace or open
    // /proc/1/mem or /proc/1/exe of a copy of the host's microbox (CVE-2019-5736).
    // Rootless: only after Go, since a non-dumpable process's /proc files are
    // root's, and the user's parent (or newuidmap, which checks the target's
    // owner) could not write its maps; nothing of the sandbox runs before.
    let rootless = launch.user_maps.is_some();
    if !rootless {
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .map_err(|e| Error::os("make the sandbox init non-dumpable", e))?;
    }
    // Into the sandbox's cgroup before anything else, so that all of the set-up
    // is charged there and nothing of the user's can run outside it. On v2 the
    // child was born inside (CLONE_INTO_CGROUP) and there are no files.
    placement
        .join_current_thread()
        .map_err(|e| Error::os("move the sandbox into its cgroup", e))?;
    // Rooted at the cgroup it is in now: the sandbox sees itself at `/`.
    crate::ns::enter_cgroup_namespace()?;
    crate::profile::mark("init", "cgroup-join");
    wait_for(chan, &Message::Go);
    crate::profile::mark("init", "wait-go");
    if launch.ids.is_some() {
        crate::ns::become_namespace_root()?;
        // The id change cleared the parent-death signal and reset the dumpable
        // flag (to the host's fs.suid_dumpable): set both again. A parent that
        // died in between shows as a hang-up of the channel (it sends nothing
        // after Go; getppid says 0 in a new pid namespace either way).
        set_parent_process_death_signal(Some(Signal::KILL))
            .map_err(|e| Error::os("set the parent-death signal", e))?;
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .map_err(|e| Error::os("make the sandbox init non-dumpable", e))?;
        if chan.peer_gone() {
            exit_now(EXIT_SETUP_FAILED);
        }
    }
    if let Some(user) = &launch.user_maps {
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .map_err(|e| Error::os("make the sandbox init non-dumpable", e))?;
        crate::ns::enter_as_user(user)?;
        // The image and the binds, cloned here, in the sandbox's own mount
        // namespace, the one place a user may clone mounts.
        let image = match &spec.fs {
            crate::spec::FsMode::Dir(dir) => Some(crate::fs::clone_image(dir)?),
            crate::spec::FsMode::Tmpfs | crate::spec::FsMode::Host => None,
        };
        let binds = super::prepare_binds(spec, None)?;
        let image = image.as_ref().map(AsFd::as_fd);
        let tty_group = user.writer != crate::ns::Writer::Own;
        crate::fs::setup(
            spec,
            &launch.hostname,
            image,
            &binds,
            tty_group,
            launch.on_initramfs,
        )?;
    } else {
        let image = launch.image.as_ref().map(AsFd::as_fd);
        crate::fs::setup(
            spec,
            &launch.hostname,
            image,
            &launch.binds,
            true,
            launch.on_initramfs,
        )?;
    }
    crate::profile::mark("init", "mounts+pivot");
    rustix::system::sethostname(launch.hostname.as_bytes())
        .map_err(|e| Error::os("set hostname", e).on(&launch.hostname))?;
    if spec.net != NetMode::Host {
        crate::net::loopback_up()?;
    }
    // The parent made eth0 in this namespace before Go.
    if let Some(inside) = &inside {
        crate::net::configure_inside(inside)?;
    }
    crate::profile::mark("init", "hostname+net");
    Ok(())
}

/// Waits for `want` from the parent; anything else means the parent is gone or
/// gave up, and nobody is left to tell.
fn wait_for(chan: &Channel, want: &Message) {
    match chan.recv() {
        Ok(Some(msg)) if &msg == want => {}
        _ => exit_now(EXIT_SETUP_FAILED),
    }
}
