//! The process model (DESIGN.md section 2): the parent supervises, the clone3
//! child sets the sandbox up and becomes its PID 1 (`init`), which starts the
//! command. Everything the child needs is prepared here, before the clone.

mod channel;
mod child;
mod init;
mod names;
mod parent;
mod preflight;

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::error::{Error, Result};
use crate::security::seccomp;
use crate::spec::Spec;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Signals the supervisor passes on to init, and init to the sandbox.
pub(crate) const FORWARDED_SIGNALS: [i32; 9] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGTSTP,
    libc::SIGCONT,
];

/// The forwarded signals that ask the sandbox to end: after one, the whole
/// sandbox is continued (a stopped process would keep it pending forever), and
/// the supervisor kills the sandbox if it has not ended after the grace period.
pub(crate) const TERMINATING_SIGNALS: [i32; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// What the command is started with, built before the clone so the child only
/// performs syscalls.
pub(crate) struct Launch<'a> {
    pub hostname: String,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// The sandbox's PATH, for looking up a command name without a `/`.
    pub path: OsString,
    /// The command's capability mask (bounding = permitted = effective).
    pub caps: u64,
    /// Compiled before the clone; loaded last, by init and by the command.
    pub seccomp: Vec<seccompiler::BpfProgram>,
    /// The user's bind mounts, cloned from sources opened once, here.
    pub binds: Vec<crate::fs::PreparedBind<'a>>,
}

/// `microbox --net-cleanup`: removes bridge mode's host state for `bridge`.
pub fn clean_network(bridge: &str) -> Result<()> {
    preflight::require_root()?;
    crate::net::cleanup(bridge)
}

/// Runs the sandbox and returns microbox's exit status.
pub fn run(spec: &Spec) -> Result<i32> {
    preflight::check(spec)?;
    let launch = prepare(spec)?;
    parent::supervise(spec, &launch)
}

/// Each bind source opened once and its tree cloned, before the clone: the
/// child never looks the source path up again (issue 8: a symlink swapped in
/// between the two lookups bound another host path).
fn prepare_binds(spec: &Spec) -> Result<Vec<crate::fs::PreparedBind<'_>>> {
    let mut binds = Vec::with_capacity(spec.mounts.len());
    for bind in &spec.mounts {
        let (source, resolved) = crate::fs::open_source(bind)?;
        crate::log::info(
            "bind source",
            &[
                ("source", &bind.source.display().to_string()),
                ("resolved", &resolved.display().to_string()),
                ("dest", &bind.dest.display().to_string()),
            ],
        );
        binds.push(crate::fs::prepare_bind(bind, &source)?);
    }
    Ok(binds)
}

fn prepare(spec: &Spec) -> Result<Launch<'_>> {
    let argv = spec
        .command
        .iter()
        .map(|arg| cstring(arg, "command argument"))
        .collect::<Result<Vec<_>>>()?;
    if argv.is_empty() {
        return Err(Error::usage("no command given"));
    }
    let env = environment(spec);
    let path = env
        .iter()
        .find(|(key, _)| key == "PATH")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let envp = env
        .iter()
        .map(|(key, value)| {
            let mut pair = key.clone();
            pair.push("=");
            pair.push(value);
            cstring(&pair, "--env")
        })
        .collect::<Result<Vec<_>>>()?;
    let hostname = spec.hostname.clone().unwrap_or_else(names::random_hostname);
    let guard = spec.writes_host_storage();
    let caps = sandbox_caps(spec, guard);
    let profile = seccomp::profile(&spec.allow_syscalls, &spec.deny_syscalls, guard)?;
    let seccomp = seccomp::compile(&profile)?;
    let binds = prepare_binds(spec)?;
    Ok(Launch {
        binds,
        hostname,
        argv,
        envp,
        path,
        caps,
        seccomp,
    })
}

/// The default set, adjusted by `--cap-add`/`--cap-drop`. Where the sandbox can
/// write host storage, MKNOD (device nodes), SETFCAP (file capabilities) and
/// FSETID (writing into a setuid file without clearing the bit, which under
/// `--userns host` is real) are left out unless asked for: the host would honour
/// what they make there, like a setuid bit (which the seccomp profile refuses then).
fn sandbox_caps(spec: &Spec, writes_host_storage: bool) -> u64 {
    use crate::security::caps;
    let mut drop = spec.cap_drop.clone();
    if writes_host_storage {
        drop.extend(
            [caps::MKNOD, caps::SETFCAP, caps::FSETID]
                .iter()
                .filter(|cap| !spec.cap_add.contains(cap)),
        );
    }
    caps::sandbox_set(&spec.cap_add, &drop)
}

/// The clean default environment, then `--env` in order (a later key wins).
fn environment(spec: &Spec) -> Vec<(OsString, OsString)> {
    let term = std::env::var_os("TERM").unwrap_or_else(|| "xterm".into());
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), "/root".into()),
        ("TERM".into(), term),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    for (key, value) in &spec.env {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((key.clone(), value.clone())),
        }
    }
    env
}

fn cstring(value: &OsStr, what: &str) -> Result<CString> {
    CString::new(value.as_bytes()).map_err(|_| {
        Error::usage(format!(
            "{what} '{}': contains a NUL byte",
            value.to_string_lossy()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_host_storage_loses_mknod_setfcap_and_fsetid_unless_added() {
        use crate::security::caps::{self, FSETID, MKNOD, SETFCAP};
        let bit = |cap: u8| 1u64 << cap;
        let plain = Spec::default();
        assert_eq!(sandbox_caps(&plain, false), caps::sandbox_set(&[], &[]));
        let full = sandbox_caps(&plain, true);
        assert_eq!(full & (bit(MKNOD) | bit(SETFCAP) | bit(FSETID)), 0);
        let asked = Spec {
            cap_add: vec![SETFCAP],
            ..Spec::default()
        };
        assert_ne!(sandbox_caps(&asked, true) & bit(SETFCAP), 0);
        assert_eq!(sandbox_caps(&asked, true) & bit(MKNOD), 0);
    }

    #[test]
    fn env_defaults_then_overrides_in_order() {
        let spec = Spec {
            env: vec![
                ("HOME".into(), "/home/x".into()),
                ("A".into(), "1".into()),
                ("A".into(), "2".into()),
            ],
            command: vec!["/bin/true".into()],
            ..Spec::default()
        };
        let env = environment(&spec);
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("HOME").as_deref(), Some("/home/x"));
        assert_eq!(get("A").as_deref(), Some("2"));
        assert_eq!(get("PATH").as_deref(), Some(DEFAULT_PATH));
        assert_eq!(get("LANG").as_deref(), Some("C.UTF-8"));
        assert_eq!(env.iter().filter(|(k, _)| k == "A").count(), 1);
    }
}
