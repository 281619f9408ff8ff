//! The profile builder: the default policy plus `--allow-syscall` and
//! `--deny-syscall`, resolved against the syscall table into a plain-data
//! [`Profile`] for compile.

use std::collections::BTreeMap;

use super::policy::{absent_on, When, DEFAULT_ENOSYS, DEFAULT_EPERM, SETID_GUARD, VSOCK_RULE};
use crate::error::{Error, Result};
use crate::security::syscalls::{self, Arch};

/// One denied syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    pub name: &'static str,
    pub nr: u32,
    pub errno: i32,
    pub when: When,
}

/// The sandbox's seccomp policy for one architecture: default allow, plus these denials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    // pub(super): compile reads both directly, as it did when they shared a file.
    pub(super) arch: Arch,
    /// By syscall number: each syscall is denied in one way only.
    pub(super) denied: BTreeMap<u32, Deny>,
}

impl Profile {
    /// How `name` is denied, if it is.
    #[cfg(test)]
    pub fn lookup(&self, name: &str) -> Option<&Deny> {
        self.denied.values().find(|deny| deny.name == name)
    }
}

/// The profile for the native architecture: the defaults, then `allow` removed,
/// then `deny` added (EPERM, unconditional).
///
/// `--allow-syscall X` lifts every rule on X, including the conditional ones of
/// `clone` and `ioctl` and the ENOSYS answer of `clone3` and io_uring.
/// `--deny-syscall X` denies X outright with EPERM, replacing any other rule on it.
/// A name given to both is denied: deny is applied last, so the safer one wins.
///
/// `guard_host_storage` adds the setid rules of [`SETID_GUARD`].
pub fn profile(allow: &[String], deny: &[String], guard_host_storage: bool) -> Result<Profile> {
    profile_for(Arch::NATIVE, allow, deny, guard_host_storage)
}

/// [`profile`] for any architecture microbox has a table for.
pub fn profile_for(
    arch: Arch,
    allow: &[String],
    deny: &[String],
    guard_host_storage: bool,
) -> Result<Profile> {
    let resolve = |name: &str, option: &str| {
        syscalls::entry_for(arch, name).ok_or_else(|| {
            Error::usage(format!(
                "invalid value '{name}' for {option}: no such system call on {arch}"
            ))
        })
    };
    let allowed = allow
        .iter()
        .map(|name| resolve(name, "--allow-syscall"))
        .collect::<Result<Vec<_>>>()?;
    let extra = deny
        .iter()
        .map(|name| resolve(name, "--deny-syscall"))
        .collect::<Result<Vec<_>>>()?;

    let mut denied = BTreeMap::new();
    let mut add = |(name, nr): (&'static str, u32), errno: i32, when: When| {
        denied.insert(
            nr,
            Deny {
                name,
                nr,
                errno,
                when,
            },
        );
    };
    let defaults = DEFAULT_EPERM
        .iter()
        .map(|&name| (name, libc::EPERM, When::Always))
        .chain(
            DEFAULT_ENOSYS
                .iter()
                .map(|&name| (name, libc::ENOSYS, When::Always)),
        )
        .chain([
            ("clone", libc::EPERM, When::CloneNamespaceFlags),
            ("ioctl", libc::EPERM, When::TerminalInjection),
            VSOCK_RULE,
        ]);
    for (name, errno, when) in defaults {
        match syscalls::entry_for(arch, name) {
            Some(entry) => add(entry, errno, when),
            None if absent_on(arch).contains(&name) => {}
            None => {
                return Err(Error::runtime(format!(
                    "the default seccomp profile names '{name}', which the {arch} syscall table \
                     lacks (a bug in microbox: fix the list or regenerate the table)"
                )))
            }
        }
    }
    if guard_host_storage {
        // The legacy calls (chmod, open, creat, mknod) are absent on asm-generic
        // architectures: nothing to guard there.
        let guarded = SETID_GUARD
            .iter()
            .filter_map(|&(name, arg)| {
                syscalls::entry_for(arch, name)
                    .map(|entry| (entry, libc::EPERM, When::SetidMode(arg)))
            })
            .chain(
                syscalls::entry_for(arch, "openat2")
                    .map(|entry| (entry, libc::ENOSYS, When::Always)),
            );
        for (entry, errno, when) in guarded {
            add(entry, errno, when);
        }
    }
    for (_, nr) in allowed {
        denied.remove(&nr);
    }
    for entry in extra {
        denied.insert(
            entry.1,
            Deny {
                name: entry.0,
                nr: entry.1,
                errno: libc::EPERM,
                when: When::Always,
            },
        );
    }
    Ok(Profile { arch, denied })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::seccomp::interpreter::*;

    #[test]
    fn allow_syscall_still_reaches_a_known_new_call() {
        for arch in ARCHES {
            let programs = compiled(arch, &["open_tree_attr"], &[]);
            assert_eq!(ask(&programs, arch, "open_tree_attr", NO_ARGS), ALLOW);
            assert_eq!(ask(&programs, arch, "open_tree", NO_ARGS), eperm());
        }
    }

    #[test]
    fn allow_lifts_every_rule() {
        for arch in ARCHES {
            let p = compiled(
                arch,
                &["ptrace", "clone", "ioctl", "clone3", "io_uring_setup"],
                &[],
            );
            assert_eq!(ask(&p, arch, "ptrace", NO_ARGS), ALLOW, "{arch}");
            let newuser = flag(libc::CLONE_NEWUSER);
            assert_eq!(
                ask(&p, arch, "clone", [newuser, 0, 0, 0, 0, 0]),
                ALLOW,
                "{arch}"
            );
            let tiocsti = request(libc::TIOCSTI);
            assert_eq!(
                ask(&p, arch, "ioctl", [0, tiocsti, 0, 0, 0, 0]),
                ALLOW,
                "{arch}"
            );
            assert_eq!(ask(&p, arch, "clone3", NO_ARGS), ALLOW, "{arch}");
            assert_eq!(ask(&p, arch, "io_uring_setup", NO_ARGS), ALLOW, "{arch}");
            assert_eq!(ask(&p, arch, "io_uring_enter", NO_ARGS), enosys(), "{arch}");
            assert_eq!(ask(&p, arch, "mount", NO_ARGS), eperm(), "{arch}");
        }
    }

    #[test]
    fn deny_adds_eperm_and_wins_over_allow() {
        for arch in ARCHES {
            let p = compiled(
                arch,
                &["getppid"],
                &["getpid", "clone3", "clone", "getppid"],
            );
            assert_eq!(ask(&p, arch, "getpid", NO_ARGS), eperm(), "{arch}");
            assert_eq!(ask(&p, arch, "getppid", NO_ARGS), eperm(), "{arch}");
            assert_eq!(
                ask(&p, arch, "clone3", NO_ARGS),
                eperm(),
                "{arch} deny replaces ENOSYS"
            );
            let sigchld = flag(libc::SIGCHLD);
            assert_eq!(
                ask(&p, arch, "clone", [sigchld, 0, 0, 0, 0, 0]),
                eperm(),
                "{arch}"
            );
            assert_eq!(ask(&p, arch, "gettid", NO_ARGS), ALLOW, "{arch}");
        }
    }

    #[test]
    fn unknown_names_are_usage_errors_naming_the_call() {
        let err =
            profile_for(Arch::X86_64, &strings(&["nosuchcall"]), &[], false).expect_err("unknown");
        assert_eq!(err.kind, crate::error::Kind::Usage);
        assert!(
            err.to_string().contains("'nosuchcall'") && err.to_string().contains("--allow-syscall"),
            "{}",
            err.to_string(),
        );
        let err = profile_for(Arch::Aarch64, &[], &strings(&["iopl"]), false)
            .expect_err("no iopl on arm");
        assert!(
            err.to_string().contains("'iopl'") && err.to_string().contains("aarch64"),
            "{}",
            err.to_string(),
        );
        assert!(profile_for(Arch::X86_64, &[], &strings(&["PTRACE"]), false).is_err());
    }
}
