//! Compilation: a [`Profile`] into seccompiler's BPF programs, one per errno,
//! each patched with the guards of `bpf_patch`; and [`load`], which installs them.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::bpf_patch::{
    check_arch_prologue, insert_after_nr_load, listener_guard, route_eperm, unnamed_guard,
    x32_guard,
};
use super::policy::{When, CLONE_NAMESPACE_FLAGS};
use super::profile::Profile;
use crate::error::{Error, Result};
use crate::security::syscalls::Arch;

/// The kernel's limit on a filter's length (include/uapi/linux/bpf_common.h):
/// a longer program would fail at load, in the child; compile refuses it first.
const BPF_MAXINSNS: usize = 4096;

/// BPF programs for `profile`, in the order [`load`] must install them.
///
/// Every program starts with seccompiler's arch check (any other ABI, i386
/// `int 0x80` included, kills the process) and, on x86_64, the x32 guard right
/// after the syscall-number load (EPERM for every number with bit 0x40000000, the
/// same answer as the deny list: the sandbox has no business with x32, and an error
/// rather than a kill lets a program that merely probes for x32 carry on).
/// There is always at least one program, so an everything-allowed profile still
/// has both checks.
pub fn compile(profile: &Profile) -> Result<Vec<BpfProgram>> {
    let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    by_errno.insert(libc::EPERM, BTreeMap::new());
    for deny in profile.denied.values() {
        by_errno
            .entry(deny.errno)
            .or_default()
            .insert(i64::from(deny.nr), rules(deny.when)?);
    }
    // EPERM last: see the comment of the seccomp module.
    let mut groups: Vec<(i32, BTreeMap<i64, Vec<SeccompRule>>)> = by_errno.into_iter().collect();
    groups.sort_by_key(|&(errno, _)| errno == libc::EPERM);

    let mut programs = Vec::with_capacity(groups.len());
    for (errno, rules) in groups {
        if errno != libc::EPERM && rules.is_empty() {
            continue;
        }
        let is_eperm = errno == libc::EPERM;
        let errno = u32::try_from(errno)
            .map_err(|_| Error::runtime(format!("bad errno {errno} in seccomp profile")))?;
        let mut guards = Vec::new();
        if is_eperm {
            guards.extend(unnamed_guard(profile.arch));
            guards.extend(listener_guard(profile.arch)?);
        }
        programs.push(build_program(
            profile.arch,
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
            &guards,
        )?);
    }
    Ok(programs)
}

/// One seccompiler filter as a BPF program: `rules` answer `on_match`,
/// everything else `mismatch`. Its arch check is verified, then the x32 guard
/// (x86_64) and `guards` go right after the syscall-number load; a program
/// longer than the kernel takes is refused here rather than at load.
pub(super) fn build_program(
    arch: Arch,
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    on_match: SeccompAction,
    guards: &[sock_filter],
) -> Result<BpfProgram> {
    let target = match arch {
        Arch::X86_64 => TargetArch::x86_64,
        Arch::Aarch64 => TargetArch::aarch64,
    };
    let filter = SeccompFilter::new(rules, mismatch, on_match, target)
        .map_err(|e| Error::failed("build the seccomp filter", e.to_string()))?;
    let mut program: BpfProgram = filter.try_into().map_err(|e: seccompiler::BackendError| {
        Error::failed("compile the seccomp filter", e.to_string())
    })?;
    check_arch_prologue(&program, target)?;
    let mut all_guards = Vec::new();
    if arch == Arch::X86_64 {
        all_guards.extend(x32_guard());
    }
    all_guards.extend_from_slice(guards);
    insert_after_nr_load(&mut program, &all_guards)?;
    if program.len() > BPF_MAXINSNS {
        return Err(Error::runtime(format!(
            "the seccomp filter has {} instructions, more than the kernel's {BPF_MAXINSNS}",
            program.len()
        )));
    }
    Ok(program)
}

/// seccompiler rules (OR of ANDs) that make a syscall's chain match when `when` holds.
/// No rule means the syscall always matches.
fn rules(when: When) -> Result<Vec<SeccompRule>> {
    let backend =
        |e: seccompiler::BackendError| Error::failed("build a seccomp rule", e.to_string());
    let rule = |arg: u8, op: SeccompCmpOp, value: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
            .and_then(|condition| SeccompRule::new(vec![condition]))
            .map_err(backend)
    };
    match when {
        When::Always => Ok(Vec::new()),
        When::CloneNamespaceFlags => CLONE_NAMESPACE_FLAGS
            .iter()
            .map(|&flag| {
                let flag = u64::from(flag.unsigned_abs());
                rule(0, SeccompCmpOp::MaskedEq(flag), flag)
            })
            .collect(),
        When::TerminalInjection => [libc::TIOCSTI, libc::TIOCLINUX]
            .into_iter()
            .map(|request| {
                let request = u32::try_from(request).map_err(|_| {
                    Error::runtime(format!("ioctl request {request:#x} is wider than 32 bits"))
                })?;
                rule(1, SeccompCmpOp::Eq, u64::from(request))
            })
            .collect(),
        When::SocketFamily(family) => Ok(vec![rule(0, SeccompCmpOp::Eq, u64::from(family))?]),
        When::SetidMode(arg) => [libc::S_ISUID, libc::S_ISGID]
            .into_iter()
            .map(|bit| rule(arg, SeccompCmpOp::MaskedEq(u64::from(bit)), u64::from(bit)))
            .collect(),
    }
}

/// Sends the denials of the EPERM program (the last one) to a listener, if
/// the kernel has user notification; false where it has not (the filter
/// then answers EPERM itself, as before). Only one filter of a process may
/// have a listener, and the EPERM program holds every EPERM answer.
pub fn notify_denials(programs: &mut [BpfProgram]) -> bool {
    let Some(last) = programs.last_mut() else {
        return false;
    };
    if !crate::sys::seccomp::action_available(libc::SECCOMP_RET_USER_NOTIF) {
        return false;
    }
    route_eperm(last, true);
    true
}

/// Install `programs` in the calling thread, in order, and return the
/// listener of the last one if `notify_denials` routed it to one. With
/// `no_new_privs` that flag is set first: where sandbox root is host root
/// (the 1:1 map) a setuid binary must not raise anything. Without it the
/// caller needs CAP_SYS_ADMIN in its user namespace, and setuid binaries of
/// the sandbox's shifted ids work after exec (the filter stays on across it
/// either way). The sandbox process is single-threaded, so the calling
/// thread is the process.
///
/// A kernel that refuses the listener (EBUSY: a filter microbox itself runs
/// under has one already) gets the last program with its EPERM answers back,
/// and the denials go unreported; said at level info.
pub fn load(
    programs: &[BpfProgram],
    no_new_privs: bool,
    listener: bool,
) -> Result<Option<std::os::fd::OwnedFd>> {
    let Some((last, first)) = programs.split_last() else {
        return Err(Error::failed(
            "load the seccomp filter",
            "the profile compiled to nothing",
        ));
    };
    if no_new_privs {
        rustix::thread::set_no_new_privs(true).map_err(|e| Error::os("set no_new_privs", e))?;
    }
    let which = |index: usize| format!("seccomp filter {} of {}", index + 1, programs.len());
    for (index, program) in first.iter().enumerate() {
        crate::sys::seccomp::set_filter(program, false)
            .map_err(|e| Error::os("load", e).on(which(index)))?;
    }
    let loaded = crate::sys::seccomp::set_filter(last, listener);
    match loaded {
        Err(err) if listener && err.raw_os_error() == Some(libc::EBUSY) => {
            crate::log::info(
                "seccomp: a filter above microbox has the listener; denied syscalls are not reported",
                &[],
            );
            let mut plain = last.clone();
            route_eperm(&mut plain, false);
            crate::sys::seccomp::set_filter(&plain, false)
        }
        other => other,
    }
    .map_err(|e| Error::os("load", e).on(which(first.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::seccomp::bpf_patch::{errno_action, X32_SYSCALL_BIT};
    use crate::security::seccomp::interpreter::*;
    use crate::security::seccomp::{absent_on, profile_for, DEFAULT_ENOSYS, DEFAULT_EPERM};

    #[test]
    fn with_a_listener_every_eperm_answer_and_nothing_else_is_a_notification() {
        for arch in ARCHES {
            let plain = compiled(arch, &[], &[]);
            let mut routed = plain.clone();
            if let Some(last) = routed.last_mut() {
                route_eperm(last, true);
            }
            let mut changed = 0;
            for &(name, number) in arch.table() {
                let call = Call {
                    nr: number,
                    arch: audit_arch(arch),
                    args: NO_ARGS,
                };
                let (before, after) = (verdict(&plain, &call), verdict(&routed, &call));
                if before == eperm() {
                    assert_eq!(after, libc::SECCOMP_RET_USER_NOTIF, "{arch} {name}");
                    changed += 1;
                } else {
                    assert_eq!(after, before, "{arch} {name}");
                }
            }
            assert!(changed > 50, "{arch}: {changed} denials");
            assert_eq!(
                ask(&routed, arch, "ptrace", NO_ARGS),
                libc::SECCOMP_RET_USER_NOTIF
            );
            assert_eq!(ask(&routed, arch, "io_uring_setup", NO_ARGS), enosys());
            assert_eq!(ask(&routed, arch, "getpid", NO_ARGS), ALLOW);
            // Back again: the very same program.
            if let Some(last) = routed.last_mut() {
                route_eperm(last, false);
            }
            assert_eq!(routed, plain);
        }
    }

    #[test]
    fn no_sandbox_process_may_install_a_listener() {
        let listener = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        let filter = u64::from(libc::SECCOMP_SET_MODE_FILTER);
        for arch in ARCHES {
            for routed in [false, true] {
                let mut programs = compiled(arch, &[], &[]);
                if routed {
                    if let Some(last) = programs.last_mut() {
                        route_eperm(last, true);
                    }
                }
                let seccomp =
                    |op: u64, flags: u64| ask(&programs, arch, "seccomp", [op, flags, 0, 0, 0, 0]);
                assert_eq!(
                    seccomp(filter, listener),
                    errno_action(libc::EBUSY),
                    "{arch}"
                );
                assert_eq!(
                    seccomp(filter, listener | 1),
                    errno_action(libc::EBUSY),
                    "{arch}"
                );
                assert_eq!(seccomp(filter, 0), ALLOW, "{arch}: a plain filter");
                assert_eq!(
                    seccomp(filter, 1 << 32),
                    ALLOW,
                    "{arch}: high bits are not flags"
                );
                assert_eq!(seccomp(2, listener), ALLOW, "{arch}: GET_ACTION_AVAIL");
                // The guard reloads nr: the chains after it still work.
                assert_eq!(ask(&programs, arch, "getpid", NO_ARGS), ALLOW);
                let ptrace = ask(&programs, arch, "ptrace", NO_ARGS);
                assert_eq!(
                    ptrace,
                    if routed {
                        libc::SECCOMP_RET_USER_NOTIF
                    } else {
                        eperm()
                    }
                );
            }
            // Even with seccomp denied outright, the listener case says EBUSY.
            let denied = compiled(arch, &[], &["seccomp"]);
            assert_eq!(
                ask(&denied, arch, "seccomp", [filter, listener, 0, 0, 0, 0]),
                errno_action(libc::EBUSY)
            );
            assert_eq!(
                ask(&denied, arch, "seccomp", [filter, 0, 0, 0, 0, 0]),
                eperm()
            );
        }
    }

    #[test]
    fn eperm_program_is_loaded_last() {
        for arch in ARCHES {
            let programs = compiled(arch, &[], &[]);
            assert_eq!(programs.len(), 2);
            let ptrace = call(arch, "ptrace", NO_ARGS);
            let io_uring = call(arch, "io_uring_setup", NO_ARGS);
            assert_eq!(run(&programs[0], &io_uring), enosys());
            assert_eq!(run(&programs[0], &ptrace), ALLOW);
            assert_eq!(run(&programs[1], &ptrace), eperm());
            assert_eq!(run(&programs[1], &io_uring), ALLOW);
        }
    }

    #[test]
    fn every_denied_number_gets_its_errno_and_nothing_else_is_denied() {
        for arch in ARCHES {
            let profile = profile_for(arch, &[], &[], false).expect("profile");
            let programs = compile(&profile).expect("compile");
            for &(name, number) in arch.table() {
                let expected = match profile.lookup(name) {
                    Some(deny) if deny.when == When::Always => errno_action(deny.errno),
                    // Conditional rules do not fire on zero arguments.
                    _ => ALLOW,
                };
                let got = verdict(
                    &programs,
                    &Call {
                        nr: number,
                        arch: audit_arch(arch),
                        args: NO_ARGS,
                    },
                );
                assert_eq!(got, expected, "{arch} {name} ({number})");
            }
            for name in DEFAULT_EPERM
                .iter()
                .filter(|name| !absent_on(arch).contains(name))
            {
                assert_eq!(
                    ask(&programs, arch, name, NO_ARGS),
                    eperm(),
                    "{arch} {name}"
                );
            }
            for name in DEFAULT_ENOSYS {
                assert_eq!(
                    ask(&programs, arch, name, NO_ARGS),
                    enosys(),
                    "{arch} {name}"
                );
            }
        }
    }

    #[test]
    fn everything_allowed_still_checks_arch_and_x32() {
        let everything: Vec<&str> = DEFAULT_EPERM
            .iter()
            .chain(DEFAULT_ENOSYS)
            .chain(&["clone", "ioctl"])
            .copied()
            .filter(|name| !absent_on(Arch::X86_64).contains(name))
            .collect();
        let p = compiled(Arch::X86_64, &everything, &[]);
        assert_eq!(p.len(), 1);
        assert_eq!(ask(&p, Arch::X86_64, "ptrace", NO_ARGS), ALLOW);
        let getpid = nr(Arch::X86_64, "getpid");
        let x32 = Call {
            nr: X32_SYSCALL_BIT | getpid,
            arch: AUDIT_ARCH_X86_64,
            args: NO_ARGS,
        };
        assert_eq!(verdict(&p, &x32), eperm());
        assert_eq!(
            verdict(
                &p,
                &Call {
                    nr: 20,
                    arch: AUDIT_ARCH_I386,
                    args: NO_ARGS
                }
            ),
            KILL
        );
    }

    /// A thread of its own loads the filter with a listener (the filter and
    /// no_new_privs bind that thread only) and makes a denied call; this one
    /// hears it and answers. Needs no privilege.
    #[test]
    fn a_listener_hears_each_denial_and_its_answer_reaches_the_caller() {
        use std::os::fd::AsFd;
        let mut programs = compiled(Arch::NATIVE, &[], &["getcwd"]);
        if !notify_denials(&mut programs) {
            eprintln!("skipped: this kernel has no seccomp user notification");
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let caller = std::thread::spawn(move || {
            let listener = load(&programs, true, true)
                .expect("load")
                .expect("a listener");
            tx.send(listener).expect("send");
            (
                rustix::process::getcwd(Vec::new()).err(),
                rustix::process::getpid().as_raw_nonzero().get() > 0,
            )
        });
        let listener = rx.recv().expect("the listener");
        let mut fds = [rustix::event::PollFd::new(
            &listener,
            rustix::event::PollFlags::IN,
        )];
        let ten_seconds = rustix::event::Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        let ready = rustix::event::poll(&mut fds, Some(&ten_seconds)).expect("poll");
        assert_eq!(ready, 1, "no notification within 10 s");
        let notif = crate::sys::seccomp::receive(listener.as_fd()).expect("receive");
        let nr = u32::try_from(notif.nr).expect("a native number");
        assert_eq!(crate::security::syscalls::name(nr), Some("getcwd"));
        crate::sys::seccomp::fail(listener.as_fd(), notif.id, libc::EPERM).expect("answer");
        let (getcwd, getpid_allowed) = caller.join().expect("the caller");
        assert_eq!(getcwd, Some(rustix::io::Errno::PERM));
        assert!(getpid_allowed);
    }

    /// Set in the re-executed test binary that loads the filter for real.
    const LOAD_CHILD: &str = "MICROBOX_TEST_SECCOMP_LOAD_CHILD";

    /// Loads the profile in a fresh process (a re-exec of this test binary running
    /// only this test) and makes real denied and allowed calls. Needs no privilege:
    /// no_new_privs makes seccomp available to anyone. The filter binds the test's
    /// thread only, hence /proc/thread-self.
    #[test]
    fn loads_and_denies_for_real() {
        if std::env::var_os(LOAD_CHILD).is_some() {
            let programs = compiled(Arch::NATIVE, &[], &["getcwd"]);
            load(&programs, true, false).expect("load");
            let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
            assert!(status.lines().any(|l| l == "Seccomp:\t2"), "{status}");
            assert!(status
                .lines()
                .any(|l| l == format!("Seccomp_filters:\t{}", programs.len())));
            assert!(rustix::process::getpid().as_raw_nonzero().get() > 0);
            let fsopen =
                rustix::mount::fsopen("microbox-no-such-fs", rustix::mount::FsOpenFlags::empty());
            assert_eq!(fsopen.err(), Some(rustix::io::Errno::PERM), "fsopen");
            let getcwd = rustix::process::getcwd(Vec::new());
            assert_eq!(
                getcwd.err(),
                Some(rustix::io::Errno::PERM),
                "getcwd (--deny-syscall)"
            );
            println!("seccomp load child: ok");
            return;
        }
        let exe = std::env::current_exe().expect("current_exe");
        let output = std::process::Command::new(exe)
            .args([
                "--exact",
                "security::seccomp::compile::tests::loads_and_denies_for_real",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(LOAD_CHILD, "1")
            .output()
            .expect("run the test binary again");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("seccomp load child: ok"),
            "child failed: {}\n{stdout}\n{stderr}",
            output.status
        );
    }
}
