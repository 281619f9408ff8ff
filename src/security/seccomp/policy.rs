//! The default policy: what the profile denies and allows, each entry with the
//! reason it is there. Plain lists; [`super::profile_for`] applies them.

use crate::security::syscalls::Arch;

/// Answered with EPERM: DESIGN.md section 4, which follows the syscalls Docker's
/// default profile blocks (THREATS.md section 8). Grouped by why they are denied.
pub const DEFAULT_EPERM: &[&str] = &[
    // Kernel modules and replacing the kernel.
    "create_module",
    "delete_module",
    "finit_module",
    "init_module",
    "get_kernel_syms",
    "query_module",
    "kexec_file_load",
    "kexec_load",
    // The keyring is not namespaced: other tenants' and the host's keys.
    "add_key",
    "keyctl",
    "request_key",
    // Kernel attack surface with a history of escapes.
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "fanotify_init",
    "lookup_dcookie",
    // Reading or writing other processes (ptrace-class access).
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    // Host-wide clocks (adjtimex with modes 0 only reads, but the
    // specification's profile denies it, and reading is clock_gettime's job).
    "adjtimex",
    "clock_adjtime",
    "clock_settime",
    "settimeofday",
    "stime",
    // Host-wide state and devices.
    "acct",
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "vhangup",
    "quotactl",
    "quotactl_fd",
    "nfsservctl",
    "iopl",
    "ioperm",
    "_sysctl",
    "sysfs",
    "ustat",
    "uselib",
    "personality",
    "vm86",
    "vm86old",
    // Mounts, including the new mount API, and leaving the root.
    "mount",
    "umount",
    "umount2",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "move_mount",
    "mount_setattr",
    "pivot_root",
    // The same family, Linux 6.8-6.15: open_tree_attr is open_tree with mount
    // attributes (a detached, unmasked copy of /proc with CAP_SYS_ADMIN);
    // statmount and listmount describe the host's mounts by id.
    "open_tree_attr",
    "statmount",
    "listmount",
    // New namespaces are the first step of most kernel-bug escapes (CVE-2022-0185).
    "setns",
    "unshare",
    // Enumerates namespaces by id, the host's among them (Linux 6.19): only
    // useful with setns or nsfs file handles, both denied.
    "listns",
    // File handles bypass the mount namespace's view (the "shocker" escape).
    "name_to_handle_at",
    "open_by_handle_at",
    // NUMA policy of the host's memory.
    "get_mempolicy",
    "set_mempolicy",
    "set_mempolicy_home_node",
    "mbind",
    "move_pages",
];

/// Calls added after Linux 6.1 (the tables' previous kernel) that the default
/// profile allows, each with the reason. The rest of that kernel range is denied
/// above. A unit test checks every name in the tables is decided.
#[cfg(test)]
pub const ALLOWED_SINCE_6_1: &[(&str, &str)] = &[
    (
        "cachestat",
        "page-cache state of a file the caller has open, as mincore shows",
    ),
    (
        "fchmodat2",
        "fchmodat with flags; the host-storage setid guard covers it",
    ),
    (
        "map_shadow_stack",
        "the caller's own shadow stack (CET, arm64 GCS)",
    ),
    ("futex_wake", "futex2: the caller's own futexes"),
    ("futex_wait", "futex2: the caller's own futexes"),
    ("futex_requeue", "futex2: the caller's own futexes"),
    (
        "lsm_get_self_attr",
        "the caller's own LSM labels, as /proc/self/attr shows",
    ),
    (
        "lsm_set_self_attr",
        "as writing /proc/self/attr, which the LSM itself polices",
    ),
    (
        "lsm_list_modules",
        "which LSMs are active, as /sys/kernel/security/lsm shows",
    ),
    (
        "mseal",
        "seals the caller's own mappings: hardening, nothing more",
    ),
    (
        "setxattrat",
        "setxattr by dirfd; same permission checks (SETFCAP guards caps)",
    ),
    ("getxattrat", "getxattr by dirfd"),
    ("listxattrat", "listxattr by dirfd"),
    ("removexattrat", "removexattr by dirfd"),
    ("file_getattr", "FS_IOC_FSGETXATTR as a syscall"),
    (
        "file_setattr",
        "FS_IOC_FSSETXATTR as a syscall; immutable needs LINUX_IMMUTABLE",
    ),
    (
        "rseq_slice_yield",
        "ends the caller's own rseq time-slice extension",
    ),
    (
        "uretprobe",
        "x86_64: only the kernel's uretprobe trampoline may call it",
    ),
    (
        "uprobe",
        "x86_64: only the kernel's uprobe trampoline may call it",
    ),
];

/// Answered with ENOSYS, which callers read as "old kernel" and fall back:
/// io_uring to epoll, clone3 to clone (whose flags the filter can inspect; BPF
/// cannot read clone3's flags, which live in memory).
pub const DEFAULT_ENOSYS: &[&str] = &[
    "clone3",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
];

/// Names of [`DEFAULT_EPERM`] the architecture has no syscall for: nothing to deny.
/// Listed so that a misspelt default name is an error, not a silent gap.
pub fn absent_on(arch: Arch) -> &'static [&'static str] {
    // i386-only calls that no 64-bit ABI has.
    const I386_ONLY: [&str; 4] = ["stime", "umount", "vm86", "vm86old"];
    match arch {
        Arch::X86_64 => &I386_ONLY,
        // The asm-generic table leaves out legacy and x86-specific calls.
        Arch::Aarch64 => &[
            "stime",
            "umount",
            "vm86",
            "vm86old",
            "create_module",
            "get_kernel_syms",
            "query_module",
            "_sysctl",
            "sysfs",
            "ustat",
            "uselib",
            "iopl",
            "ioperm",
        ],
    }
}

/// Every namespace flag of `clone` (include/uapi/linux/sched.h). CLONE_NEWTIME
/// shares its bit with clone's exit-signal byte, where no valid signal sets it,
/// so denying it costs nothing; clone3 and unshare, its real users, are denied.
pub(super) const CLONE_NAMESPACE_FLAGS: [libc::c_int; 8] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWTIME,
];

/// When a denied syscall is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// `clone` whose flags (arg 0) carry any `CLONE_NEW*` flag. The kernel reads only
    /// the low 32 bits of clone's flags, so comparing those is complete.
    CloneNamespaceFlags,
    /// `ioctl` whose request (arg 1) is TIOCSTI or TIOCLINUX in its low 32 bits: the
    /// kernel's `cmd` is an `unsigned int`, so high bits cannot hide the request
    /// (CVE-2019-10063) and the low 32 bits are all that must match.
    TerminalInjection,
    /// `socket` whose domain (arg 0) is this address family.
    SocketFamily(u32),
    /// A mode argument (the given arg) with S_ISUID or S_ISGID set: chmod, open
    /// with O_CREAT, mknod. Used only when the sandbox can write host storage.
    SetidMode(u8),
}

/// AF_VSOCK sockets are not separated by network namespaces: with them a
/// sandbox under `--net none` could reach the hypervisor's or the host's vsock
/// services, or take ports from them.
//
// AF_VSOCK is 40 in <linux/socket.h>, the family <linux/vm_sockets.h> defines;
// libc's name keeps that number in one place. The filter compares the domain
// as u32, and unsigned_abs converts the positive constant without a cast.
pub(super) const VSOCK_RULE: (&str, i32, When) = (
    "socket",
    libc::EPERM,
    When::SocketFamily(libc::AF_VSOCK.unsigned_abs()),
);

/// When the sandbox can write host storage (`--mount-rw`, `--fs host` without
/// `--readonly`), sandbox root is host root for those files: a setuid-root binary
/// or a device node made there would be one on the host, for any host user to
/// run. These calls may not set S_ISUID or S_ISGID then (the argument is the
/// mode's index). `openat2` keeps its mode in memory the filter cannot read, so
/// it answers ENOSYS (callers fall back to openat); io_uring is ENOSYS already.
pub(super) const SETID_GUARD: [(&str, u8); 9] = [
    ("chmod", 1),
    ("fchmod", 1),
    ("fchmodat", 2),
    ("fchmodat2", 2),
    ("creat", 1),
    ("open", 2),
    ("openat", 3),
    ("mknod", 1),
    ("mknodat", 2),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::seccomp::interpreter::*;
    use crate::security::seccomp::{compile, profile_for};
    use crate::security::syscalls;
    use seccompiler::BpfProgram;

    /// The default deny list of the Go original (the specification's
    /// "Default Seccomp Profile"), name by name.
    const GO_DEFAULT_DENY: &[&str] = &[
        "create_module",
        "delete_module",
        "finit_module",
        "init_module",
        "get_kernel_syms",
        "query_module",
        "kexec_load",
        "kexec_file_load",
        "add_key",
        "request_key",
        "keyctl",
        "bpf",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "adjtimex",
        "clock_adjtime",
        "settimeofday",
        "stime",
        "reboot",
        "quotactl",
        "nfsservctl",
        "sysfs",
        "_sysctl",
        "personality",
        "mount",
        "umount",
        "umount2",
        "pivot_root",
        "setns",
        "unshare",
        "open_by_handle_at",
        "perf_event_open",
        "fanotify_init",
        "name_to_handle_at",
        "lookup_dcookie",
        "userfaultfd",
        "vm86",
        "vm86old",
        "iopl",
        "ioperm",
        "set_mempolicy",
        "move_pages",
        "kcmp",
        "acct",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ];

    #[test]
    fn the_specifications_deny_list_is_all_denied() {
        let missing: Vec<&str> = GO_DEFAULT_DENY
            .iter()
            .copied()
            .filter(|name| !DEFAULT_EPERM.contains(name) && !DEFAULT_ENOSYS.contains(name))
            .collect();
        assert!(missing.is_empty(), "allowed by default: {missing:?}");
        // And denied in the compiled program of every architecture that has the call.
        for arch in ARCHES {
            let programs = compiled(arch, &[], &[]);
            for &name in GO_DEFAULT_DENY {
                if absent_on(arch).contains(&name) {
                    continue;
                }
                assert_ne!(ask(&programs, arch, name, NO_ARGS), ALLOW, "{arch} {name}");
            }
        }
    }

    #[test]
    fn every_default_name_resolves_or_is_listed_absent() {
        for arch in ARCHES {
            for &name in DEFAULT_EPERM
                .iter()
                .chain(DEFAULT_ENOSYS)
                .chain(&["clone", "ioctl"])
            {
                let absent = absent_on(arch).contains(&name);
                assert_eq!(
                    syscalls::number_for(arch, name).is_none(),
                    absent,
                    "{name} on {arch}: resolves iff not listed absent"
                );
            }
            for name in absent_on(arch) {
                assert!(
                    DEFAULT_EPERM.contains(name),
                    "{name} listed absent but not denied"
                );
            }
            assert!(DEFAULT_ENOSYS
                .iter()
                .all(|name| !absent_on(arch).contains(name)));
        }
        // The brief's must-haves on x86_64.
        for name in [
            "ptrace", "keyctl", "bpf", "mount", "fsopen", "unshare", "setns", "iopl",
        ] {
            assert!(syscalls::number_for(Arch::X86_64, name).is_some(), "{name}");
        }
    }

    #[test]
    fn default_verdicts() {
        for arch in ARCHES {
            let p = compiled(arch, &[], &[]);
            assert_eq!(ask(&p, arch, "ptrace", NO_ARGS), eperm(), "{arch}");
            assert_eq!(ask(&p, arch, "getpid", NO_ARGS), ALLOW, "{arch}");
            assert_eq!(ask(&p, arch, "io_uring_setup", NO_ARGS), enosys(), "{arch}");
            assert_eq!(ask(&p, arch, "clone3", NO_ARGS), enosys(), "{arch}");

            let sigchld = flag(libc::SIGCHLD);
            let clone = |flags: u64| ask(&p, arch, "clone", [flags, 0, 0, 0, 0, 0]);
            assert_eq!(clone(sigchld), ALLOW, "{arch} fork-like clone");
            let thread = [
                libc::CLONE_VM,
                libc::CLONE_FS,
                libc::CLONE_FILES,
                libc::CLONE_SIGHAND,
                libc::CLONE_THREAD,
                libc::CLONE_SYSVSEM,
                libc::CLONE_SETTLS,
                libc::CLONE_PARENT_SETTID,
                libc::CLONE_CHILD_CLEARTID,
            ]
            .into_iter()
            .fold(0, |flags, f| flags | flag(f));
            assert_eq!(clone(thread), ALLOW, "{arch} pthread_create's clone");
            assert_eq!(
                clone(0xffff_ffff_0000_0000 | sigchld),
                ALLOW,
                "{arch} high bits only"
            );
            assert_eq!(
                clone(flag(libc::CLONE_NEWUSER) | sigchld),
                eperm(),
                "{arch}"
            );
            for namespace in CLONE_NAMESPACE_FLAGS {
                assert_eq!(clone(flag(namespace)), eperm(), "{arch} {namespace:#x}");
                assert_eq!(
                    clone(thread | flag(namespace)),
                    eperm(),
                    "{arch} {namespace:#x}"
                );
            }

            let tiocsti = request(libc::TIOCSTI);
            let tioclinux = request(libc::TIOCLINUX);
            let tcgets = request(libc::TCGETS);
            let ioctl = |request: u64, arg: u64| ask(&p, arch, "ioctl", [0, request, arg, 0, 0, 0]);
            assert_eq!(ioctl(tiocsti, 0), eperm(), "{arch}");
            assert_eq!(
                ioctl(tiocsti | 0xdead_0000_0000_0000, 0),
                eperm(),
                "{arch} high bits"
            );
            assert_eq!(ioctl(tioclinux, 0), eperm(), "{arch}");
            assert_eq!(ioctl(tcgets, 0), ALLOW, "{arch}");
            assert_eq!(
                ioctl(tcgets, tiocsti),
                ALLOW,
                "{arch} TIOCSTI as the argument"
            );
        }
    }

    /// Every call newer than the tables' previous kernel (Linux 6.1: up to 450,
    /// and x86_64's uprobe pair in the old hole) was decided: denied by default or
    /// allowed with a reason.
    #[test]
    fn every_call_since_linux_6_1_is_decided() {
        for arch in ARCHES {
            let programs = compiled(arch, &[], &[]);
            for &(name, number) in arch.table() {
                let new = number > 450 || (arch == Arch::X86_64 && (335..=336).contains(&number));
                if !new {
                    continue;
                }
                let allowed = ALLOWED_SINCE_6_1
                    .iter()
                    .any(|&(allowed, _)| allowed == name);
                let denied = DEFAULT_EPERM.contains(&name);
                assert!(allowed != denied, "{arch} {name}: decide it exactly once");
                let want = if allowed { ALLOW } else { eperm() };
                assert_eq!(ask(&programs, arch, name, NO_ARGS), want, "{arch} {name}");
            }
        }
        for &(name, reason) in ALLOWED_SINCE_6_1 {
            assert!(
                ARCHES
                    .iter()
                    .any(|&arch| syscalls::number_for(arch, name).is_some()),
                "{name}"
            );
            assert!(!reason.is_empty());
        }
        // The review's escape: a detached, unmasked /proc through open_tree_attr.
        for name in ["open_tree_attr", "statmount", "listmount", "listns"] {
            assert!(DEFAULT_EPERM.contains(&name), "{name}");
        }
    }

    #[test]
    fn vsock_sockets_are_refused_and_other_families_allowed() {
        for arch in ARCHES {
            let programs = compiled(arch, &[], &[]);
            let socket = |family: u64| ask(&programs, arch, "socket", [family, 1, 0, 0, 0, 0]);
            assert_eq!(socket(flag(libc::AF_VSOCK)), eperm(), "AF_VSOCK on {arch}");
            assert_eq!(socket(flag(libc::AF_INET)), ALLOW, "AF_INET on {arch}");
            assert_eq!(socket(flag(libc::AF_UNIX)), ALLOW, "AF_UNIX on {arch}");
        }
    }

    #[test]
    fn setid_modes_are_refused_only_when_host_storage_is_writable() {
        let suid = u64::from(libc::S_ISUID | 0o755);
        let sgid = u64::from(libc::S_ISGID | 0o755);
        let plain = 0o755u64;
        for arch in ARCHES {
            let guarded =
                compile(&profile_for(arch, &[], &[], true).expect("profile")).expect("compile");
            let open = compiled(arch, &[], &[]);
            let fchmodat = |programs: &[BpfProgram], mode: u64| {
                ask(programs, arch, "fchmodat", [0, 0, mode, 0, 0, 0])
            };
            assert_eq!(fchmodat(&guarded, suid), eperm(), "{arch}");
            assert_eq!(fchmodat(&guarded, sgid), eperm(), "{arch}");
            assert_eq!(fchmodat(&guarded, plain), ALLOW, "{arch}");
            assert_eq!(fchmodat(&open, suid), ALLOW, "unguarded on {arch}");
            let openat = |mode: u64| ask(&guarded, arch, "openat", [0, 0, 0o101, mode, 0, 0]);
            assert_eq!(openat(suid), eperm(), "{arch}");
            assert_eq!(openat(0o644), ALLOW, "{arch}");
            let mknodat = ask(&guarded, arch, "mknodat", [0, 0, sgid, 0, 0, 0]);
            assert_eq!(mknodat, eperm(), "{arch}");
            let fchmodat2 = ask(&guarded, arch, "fchmodat2", [0, 0, suid, 0, 0, 0]);
            assert_eq!(fchmodat2, eperm(), "fchmodat2 on {arch}");
            assert_eq!(ask(&guarded, arch, "openat2", NO_ARGS), enosys(), "{arch}");
        }
        let guarded =
            compile(&profile_for(Arch::X86_64, &[], &[], true).expect("profile")).expect("compile");
        let chmod = ask(&guarded, Arch::X86_64, "chmod", [0, suid, 0, 0, 0, 0]);
        assert_eq!(chmod, eperm());
        // --allow-syscall lifts the guard like any other rule.
        let lifted =
            compile(&profile_for(Arch::X86_64, &strings(&["chmod"]), &[], true).expect("profile"))
                .expect("compile");
        assert_eq!(
            ask(&lifted, Arch::X86_64, "chmod", [0, suid, 0, 0, 0, 0]),
            ALLOW
        );
    }
}
