//! The seccomp profile: the default deny list plus `--allow-syscall`/`--deny-syscall`.
//!
//! Plan, then execute: [`profile`] turns the command line into a [`Profile`]
//! (plain data), [`compile`] turns that into BPF programs with seccompiler (in the
//! parent, before clone, so the child only has to load them), and [`load`] installs
//! them right before exec.
//!
//! Shape of each program, as seccompiler emits it plus our x32 guard:
//!
//! ```text
//! 0  ld  [arch]
//! 1  jeq AUDIT_ARCH_<native>, +1, +0
//! 2  ret KILL_PROCESS           i386 `int 0x80` (AUDIT_ARCH_I386) and any other ABI
//! 3  ld  [nr]
//! 4  jge 0x40000000, +0, +1     x86_64 only: x32 calls carry __X32_SYSCALL_BIT
//! 5  ret ERRNO(EPERM)
//!    jgt <highest>, +0, +1      EPERM program only: a number the table does not
//!    ret ERRNO(ENOSYS)          name, above it or in one of its holes, is
//!    jge <lo>, +0, +2           answered as by a kernel without the call
//!    jgt <hi>, +1, +0
//!    ret ERRNO(ENOSYS)
//!    jeq <nr>, ...              one chain per denied syscall, seccompiler's layout
//!    ...
//!    ret ALLOW                  default action
//! ```
//!
//! Default allow, but only for what the tables name: a syscall a future kernel
//! adds is unreachable until the tables are regenerated and the call is reviewed
//! (denied below, or listed in [`ALLOWED_SINCE_6_1`] with the reason).
//!
//! Why several programs: a seccompiler filter has one match action, and we need
//! two answers (EPERM for the deny list, ENOSYS for io_uring and clone3 so that
//! programs fall back to epoll and clone). So there is one program per errno. The
//! kernel runs every loaded filter and keeps the most severe verdict; the profile
//! keeps each syscall in exactly one program, so the verdicts never compete.
//! The EPERM program is loaded last: it is the one `--deny-syscall` extends, so
//! even `--deny-syscall seccomp` cannot stop the programs after it from loading.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::syscalls::{self, Arch};
use crate::error::{Error, Result};

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
    // Host-wide clocks.
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

/// x86_64's marker of x32 syscall numbers (`__X32_SYSCALL_BIT`,
/// arch/x86/include/uapi/asm/unistd.h). x32 calls arrive with the native
/// AUDIT_ARCH_X86_64, so seccompiler's arch check lets them through with numbers
/// no deny rule matches.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Every namespace flag of `clone` (include/uapi/linux/sched.h). CLONE_NEWTIME
/// shares its bit with clone's exit-signal byte, where no valid signal sets it,
/// so denying it costs nothing; clone3 and unshare, its real users, are denied.
const CLONE_NAMESPACE_FLAGS: [libc::c_int; 8] = [
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
const VSOCK_RULE: (&str, i32, When) = ("socket", libc::EPERM, When::SocketFamily(40));

/// When the sandbox can write host storage (`--mount-rw`, `--fs host` without
/// `--readonly`), sandbox root is host root for those files: a setuid-root binary
/// or a device node made there would be one on the host, for any host user to
/// run. These calls may not set S_ISUID or S_ISGID then (the argument is the
/// mode's index). `openat2` keeps its mode in memory the filter cannot read, so
/// it answers ENOSYS (callers fall back to openat); io_uring is ENOSYS already.
const SETID_GUARD: [(&str, u8); 9] = [
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
    arch: Arch,
    /// By syscall number: each syscall is denied in one way only.
    denied: BTreeMap<u32, Deny>,
}

impl Profile {
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Every denied syscall, by number.
    pub fn denied(&self) -> impl Iterator<Item = &Deny> {
        self.denied.values()
    }

    /// How `name` is denied, if it is.
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
    let target = match profile.arch {
        Arch::X86_64 => TargetArch::x86_64,
        Arch::Aarch64 => TargetArch::aarch64,
    };
    let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    by_errno.insert(libc::EPERM, BTreeMap::new());
    for deny in profile.denied.values() {
        by_errno
            .entry(deny.errno)
            .or_default()
            .insert(i64::from(deny.nr), rules(deny.when)?);
    }
    // EPERM last: see the module comment.
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
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
            target,
        )
        .map_err(|e| Error::runtime(format!("cannot build the seccomp filter: {e}")))?;
        let mut program: BpfProgram = filter
            .try_into()
            .map_err(|e| Error::runtime(format!("cannot compile the seccomp filter: {e}")))?;
        check_arch_prologue(&program, target)?;
        let mut guards = Vec::new();
        if profile.arch == Arch::X86_64 {
            guards.extend(x32_guard());
        }
        if is_eperm {
            guards.extend(unnamed_guard(profile.arch));
        }
        insert_after_nr_load(&mut program, &guards)?;
        if program.len() > BPF_MAXINSNS {
            return Err(Error::runtime(format!(
                "the seccomp filter has {} instructions, more than the kernel's {BPF_MAXINSNS}",
                program.len()
            )));
        }
        programs.push(program);
    }
    Ok(programs)
}

/// seccompiler rules (OR of ANDs) that make a syscall's chain match when `when` holds.
/// No rule means the syscall always matches.
fn rules(when: When) -> Result<Vec<SeccompRule>> {
    let backend =
        |e: seccompiler::BackendError| Error::runtime(format!("cannot build a seccomp rule: {e}"));
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

/// Install `programs` in the calling thread, in order, with no_new_privs set
/// (seccompiler sets it before each load; without it an unprivileged process may
/// not load a filter, and exec of a setuid binary could shed the filter's intent).
/// The sandbox process is single-threaded, so the calling thread is the process.
pub fn load(programs: &[BpfProgram]) -> Result<()> {
    if programs.is_empty() {
        return Err(Error::runtime(
            "cannot load seccomp filter: the profile compiled to nothing",
        ));
    }
    for (index, program) in programs.iter().enumerate() {
        let which = format!("seccomp filter {} of {}", index + 1, programs.len());
        seccompiler::apply_filter(program).map_err(|e| match e {
            seccompiler::Error::Prctl(err) => Error::os("set no_new_privs", err),
            seccompiler::Error::Seccomp(err) => Error::os(format!("load {which}"), err),
            other => Error::runtime(format!("cannot load {which}: {other}")),
        })?;
    }
    Ok(())
}

// Classic BPF encoding (include/uapi/linux/bpf_common.h, filter.h). libc has the
// constants as u32; sock_filter's code field is u16.
const LD_W_ABS: u16 = opcode(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS);
const JMP_JA: u16 = opcode(libc::BPF_JMP | libc::BPF_JA);
const JMP_JEQ_K: u16 = opcode(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K);
const JMP_JGE_K: u16 = opcode(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K);
const JMP_JGT_K: u16 = opcode(libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K);
const RET_K: u16 = opcode(libc::BPF_RET | libc::BPF_K);
/// `BPF_CLASS(code)`.
const CLASS_MASK: u16 = 0x07;
const CLASS_JMP: u16 = opcode(libc::BPF_JMP);
const BPF_MAXINSNS: usize = 4096;

/// Offsets in `struct seccomp_data` (include/uapi/linux/seccomp.h).
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

#[allow(clippy::cast_possible_truncation)] // asserted to fit just above
const fn opcode(code: u32) -> u16 {
    assert!(code <= 0xffff);
    code as u16
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn errno_action(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno.unsigned_abs() & libc::SECCOMP_RET_DATA)
}

/// The x32 guard is inserted relative to seccompiler's arch check; refuse a
/// program whose start is not the check we reasoned about (a seccompiler upgrade
/// that changed its layout must fail here, not produce a filter with a hole).
fn check_arch_prologue(program: &[sock_filter], target: TargetArch) -> Result<()> {
    let layout_ok = program.len() >= 4
        && program[0] == stmt(LD_W_ABS, DATA_ARCH)
        && program[1].code == JMP_JEQ_K
        && (program[1].jt, program[1].jf) == (1, 0)
        && program[2] == stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS);
    if layout_ok {
        Ok(())
    } else {
        Err(Error::runtime(format!(
            "seccompiler emitted an unexpected {target:?} program prologue: {:?}",
            &program[..program.len().min(4)]
        )))
    }
}

/// `nr >= 0x40000000 -> EPERM`: x32 calls.
fn x32_guard() -> [sock_filter; 2] {
    [
        jump(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, errno_action(libc::EPERM)),
    ]
}

/// ENOSYS for every number `arch`'s table does not name: above its highest,
/// then each hole. Placed after the x32 guard, which keeps x32's EPERM.
fn unnamed_guard(arch: Arch) -> Vec<sock_filter> {
    let enosys = || stmt(RET_K, errno_action(libc::ENOSYS));
    let mut code = vec![jump(JMP_JGT_K, syscalls::highest(arch), 0, 1), enosys()];
    for (lo, hi) in syscalls::unnamed_ranges(arch) {
        code.extend([
            jump(JMP_JGE_K, lo, 0, 2),
            jump(JMP_JGT_K, hi, 1, 0),
            enosys(),
        ]);
    }
    code
}

/// Put `guards` right after the syscall-number load, which follows the arch
/// check (index 3): seccompiler loads nr there, unless the filter has no rules,
/// in which case it returns the default action and we load nr ourselves.
fn insert_after_nr_load(program: &mut BpfProgram, guards: &[sock_filter]) -> Result<()> {
    const AFTER_ARCH_CHECK: usize = 3;
    if guards.is_empty() {
        return Ok(());
    }
    let load_nr = stmt(LD_W_ABS, DATA_NR);
    if program.get(AFTER_ARCH_CHECK) == Some(&load_nr) {
        insert(program, AFTER_ARCH_CHECK + 1, guards)
    } else {
        let mut code = vec![load_nr];
        code.extend_from_slice(guards);
        insert(program, AFTER_ARCH_CHECK, &code)
    }
}

/// Insert `code` before index `at`, keeping every jump's destination.
///
/// BPF jumps are relative and only go forward, so only jumps located before `at`
/// that land beyond `at` grow by `code.len()`. A jump that lands exactly on `at`
/// now lands on the inserted code: inserted checks are never skipped.
fn insert(program: &mut BpfProgram, at: usize, code: &[sock_filter]) -> Result<()> {
    let grow = code.len();
    let too_far =
        || Error::runtime("seccomp filter jump out of range after inserting the x32 guard");
    for (index, instruction) in program.iter_mut().enumerate().take(at) {
        if instruction.code & CLASS_MASK != CLASS_JMP {
            continue;
        }
        let next = index + 1;
        if instruction.code == JMP_JA {
            let k = usize::try_from(instruction.k).map_err(|_| too_far())?;
            if next + k > at {
                instruction.k = u32::try_from(k + grow).map_err(|_| too_far())?;
            }
            continue;
        }
        for offset in [&mut instruction.jt, &mut instruction.jf] {
            if next + usize::from(*offset) > at {
                *offset = u8::try_from(usize::from(*offset) + grow).map_err(|_| too_far())?;
            }
        }
    }
    program.splice(at..at, code.iter().cloned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // include/uapi/linux/audit.h: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
    const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
    const AUDIT_ARCH_ARM: u32 = 40 | 0x4000_0000;

    // Opcodes only seccompiler's argument checks use.
    const ALU_AND_K: u16 = opcode(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K);
    const JMP_JSET_K: u16 = opcode(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K);

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    fn eperm() -> u32 {
        errno_action(libc::EPERM)
    }

    fn enosys() -> u32 {
        errno_action(libc::ENOSYS)
    }

    fn audit_arch(arch: Arch) -> u32 {
        match arch {
            Arch::X86_64 => AUDIT_ARCH_X86_64,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
        }
    }

    /// `struct seccomp_data` as the kernel fills it (instruction pointer left 0).
    struct Call {
        nr: u32,
        arch: u32,
        args: [u64; 6],
    }

    /// The classic-BPF subset seccompiler and the x32 guard use, run the way the
    /// kernel runs a seccomp filter. Panics on anything else, on an out-of-range
    /// jump and on falling off the end, which the kernel's checker would reject.
    fn run(program: &[sock_filter], call: &Call) -> u32 {
        let word = |offset: u32| -> u32 {
            match offset {
                DATA_NR => call.nr,
                DATA_ARCH => call.arch,
                16..=63 if offset % 4 == 0 => {
                    let index = usize::try_from((offset - 16) / 8).expect("arg index");
                    let arg = call.args[index].to_le_bytes();
                    let half = if (offset - 16) % 8 == 0 {
                        &arg[..4]
                    } else {
                        &arg[4..]
                    };
                    u32::from_le_bytes(half.try_into().expect("4 bytes"))
                }
                _ => panic!("load from seccomp_data offset {offset}"),
            }
        };
        let mut accumulator = 0u32;
        let mut pc = 0usize;
        loop {
            let instruction = program
                .get(pc)
                .unwrap_or_else(|| panic!("fell off at {pc}"));
            pc += 1;
            let skip = |taken: bool| {
                usize::from(if taken {
                    instruction.jt
                } else {
                    instruction.jf
                })
            };
            match instruction.code {
                LD_W_ABS => accumulator = word(instruction.k),
                ALU_AND_K => accumulator &= instruction.k,
                JMP_JA => pc += usize::try_from(instruction.k).expect("ja offset"),
                JMP_JEQ_K => pc += skip(accumulator == instruction.k),
                JMP_JGT_K => pc += skip(accumulator > instruction.k),
                JMP_JGE_K => pc += skip(accumulator >= instruction.k),
                JMP_JSET_K => pc += skip(accumulator & instruction.k != 0),
                RET_K => return instruction.k,
                other => panic!("unsupported BPF opcode {other:#x} at {}", pc - 1),
            }
            assert!(pc < program.len(), "jump past the end from {}", pc - 1);
        }
    }

    /// All programs' verdicts combined as the kernel does: the most severe action
    /// wins (actions compare as signed: KILL_PROCESS is the minimum).
    fn verdict(programs: &[BpfProgram], call: &Call) -> u32 {
        programs
            .iter()
            .map(|program| run(program, call))
            .min_by_key(|&ret| {
                i32::from_ne_bytes((ret & libc::SECCOMP_RET_ACTION_FULL).to_ne_bytes())
            })
            .expect("at least one program")
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn compiled(arch: Arch, allow: &[&str], deny: &[&str]) -> Vec<BpfProgram> {
        let profile = profile_for(arch, &strings(allow), &strings(deny), false).expect("profile");
        compile(&profile).expect("compile")
    }

    fn nr(arch: Arch, name: &str) -> u32 {
        syscalls::number_for(arch, name).unwrap_or_else(|| panic!("{name} on {arch}"))
    }

    fn call(arch: Arch, name: &str, args: [u64; 6]) -> Call {
        Call {
            nr: nr(arch, name),
            arch: audit_arch(arch),
            args,
        }
    }

    fn ask(programs: &[BpfProgram], arch: Arch, name: &str, args: [u64; 6]) -> u32 {
        verdict(programs, &call(arch, name, args))
    }

    const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];
    const NO_ARGS: [u64; 6] = [0; 6];

    /// An ioctl request as a syscall argument (libc's type differs between gnu and musl).
    fn request(value: libc::Ioctl) -> u64 {
        u64::from(u32::try_from(value).expect("32-bit ioctl request"))
    }

    fn flag(value: libc::c_int) -> u64 {
        u64::from(value.unsigned_abs())
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
    fn prologue_is_arch_check_then_nr_then_x32_guard() {
        for arch in ARCHES {
            for (allow, deny) in [
                (&[][..], &[][..]),
                (&["clone3", "io_uring_setup"][..], &["getpid"][..]),
            ] {
                let programs = compiled(arch, allow, deny);
                assert!(!programs.is_empty());
                for program in &programs {
                    assert_eq!(program[0], stmt(LD_W_ABS, DATA_ARCH), "{arch}");
                    assert_eq!(
                        program[1],
                        jump(JMP_JEQ_K, audit_arch(arch), 1, 0),
                        "{arch}"
                    );
                    assert_eq!(program[2], stmt(RET_K, KILL), "{arch}");
                    assert_eq!(program[3], stmt(LD_W_ABS, DATA_NR), "{arch}");
                    let guard = [jump(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1), stmt(RET_K, eperm())];
                    assert_eq!(program[4..6] == guard, arch == Arch::X86_64, "{arch}");
                }
            }
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
    fn other_abis_are_refused() {
        let x86 = compiled(Arch::X86_64, &[], &[]);
        let getpid = nr(Arch::X86_64, "getpid");
        let x32 = |number: u32| {
            verdict(
                &x86,
                &Call {
                    nr: number,
                    arch: AUDIT_ARCH_X86_64,
                    args: NO_ARGS,
                },
            )
        };
        assert_eq!(x32(X32_SYSCALL_BIT | getpid), eperm(), "x32 getpid");
        assert_eq!(
            x32(X32_SYSCALL_BIT | nr(Arch::X86_64, "ptrace")),
            eperm(),
            "x32 ptrace"
        );
        assert_eq!(x32(u32::MAX), eperm(), "nr -1");
        // i386 `int 0x80`: getpid is 20 and ptrace 26 there.
        for number in [20, 26] {
            assert_eq!(
                verdict(
                    &x86,
                    &Call {
                        nr: number,
                        arch: AUDIT_ARCH_I386,
                        args: NO_ARGS
                    }
                ),
                KILL
            );
        }
        let arm = compiled(Arch::Aarch64, &[], &[]);
        let arm_getpid = nr(Arch::Aarch64, "getpid");
        assert_eq!(
            verdict(
                &arm,
                &Call {
                    nr: arm_getpid,
                    arch: AUDIT_ARCH_ARM,
                    args: NO_ARGS
                }
            ),
            KILL
        );
        // aarch64 has no x32-style bit: such a number is just one the table lacks.
        assert_eq!(
            verdict(
                &arm,
                &Call {
                    nr: X32_SYSCALL_BIT | arm_getpid,
                    arch: AUDIT_ARCH_AARCH64,
                    args: NO_ARGS
                }
            ),
            enosys()
        );
    }

    #[test]
    fn numbers_the_table_does_not_name_get_enosys() {
        for arch in ARCHES {
            for (allow, deny) in [(&[][..], &[][..]), (&["ptrace"][..], &["getpid"][..])] {
                let programs = compiled(arch, allow, deny);
                let answer = |nr: u32| {
                    verdict(
                        &programs,
                        &Call {
                            nr,
                            arch: audit_arch(arch),
                            args: NO_ARGS,
                        },
                    )
                };
                let highest = syscalls::highest(arch);
                for nr in (highest + 1..=1023).chain([4095, 0x3fff_ffff]) {
                    assert_eq!(answer(nr), enosys(), "{arch} {nr}");
                }
                for (lo, hi) in syscalls::unnamed_ranges(arch) {
                    for nr in lo..=hi {
                        assert_eq!(answer(nr), enosys(), "{arch} hole {nr}");
                    }
                    assert_ne!(answer(lo - 1), enosys(), "{arch} below hole {lo}");
                    assert_ne!(answer(hi + 1), enosys(), "{arch} above hole {hi}");
                }
                assert_eq!(answer(highest), ALLOW, "{arch} the highest named call");
                let top = if arch == Arch::X86_64 {
                    eperm()
                } else {
                    enosys()
                };
                assert_eq!(answer(u32::MAX), top, "{arch} nr -1");
            }
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

    #[test]
    fn unknown_names_are_usage_errors_naming_the_call() {
        let err =
            profile_for(Arch::X86_64, &strings(&["nosuchcall"]), &[], false).expect_err("unknown");
        assert_eq!(err.kind, crate::error::Kind::Usage);
        assert!(
            err.msg.contains("'nosuchcall'") && err.msg.contains("--allow-syscall"),
            "{}",
            err.msg
        );
        let err = profile_for(Arch::Aarch64, &[], &strings(&["iopl"]), false)
            .expect_err("no iopl on arm");
        assert!(
            err.msg.contains("'iopl'") && err.msg.contains("aarch64"),
            "{}",
            err.msg
        );
        assert!(profile_for(Arch::X86_64, &[], &strings(&["PTRACE"]), false).is_err());
    }

    #[test]
    fn insert_keeps_jump_targets() {
        let answers = |program: &[sock_filter]| -> Vec<u32> {
            [0, 1, 2, 7]
                .into_iter()
                .map(|nr| {
                    run(
                        program,
                        &Call {
                            nr,
                            arch: 0,
                            args: NO_ARGS,
                        },
                    )
                })
                .collect()
        };
        let mut program = vec![
            stmt(LD_W_ABS, DATA_NR),
            jump(JMP_JEQ_K, 1, 3, 0), // -> 5, beyond the insertion point
            jump(JMP_JEQ_K, 2, 1, 0), // -> 4 / falls through to 3, the insertion point
            stmt(JMP_JA, 2),          // -> 6
            stmt(RET_K, 20),
            stmt(RET_K, 10),
            stmt(RET_K, 30),
        ];
        assert_eq!(answers(&program), [30, 10, 20, 30]);
        insert(
            &mut program,
            3,
            &[jump(JMP_JEQ_K, 7, 0, 1), stmt(RET_K, 70)],
        )
        .expect("insert");
        assert_eq!(program[1], jump(JMP_JEQ_K, 1, 5, 0));
        assert_eq!(program[2], jump(JMP_JEQ_K, 2, 3, 0));
        assert_eq!(
            program[5],
            stmt(JMP_JA, 2),
            "jumps after the insertion are untouched"
        );
        // Old paths keep their answers; the inserted check is reached and decides 7.
        assert_eq!(answers(&program), [30, 10, 20, 70]);

        // A jump landing exactly at the insertion point lands on the inserted code.
        let mut program = vec![
            stmt(LD_W_ABS, DATA_NR),
            jump(JMP_JEQ_K, 1, 1, 0),
            stmt(RET_K, 0),
            stmt(RET_K, 1),
        ];
        insert(&mut program, 3, &[stmt(RET_K, 9)]).expect("insert");
        assert_eq!(answers(&program), [0, 9, 0, 0]);

        // The same for an unconditional jump beyond the point.
        let mut program = vec![stmt(JMP_JA, 1), stmt(RET_K, 0), stmt(RET_K, 1)];
        insert(&mut program, 1, &[stmt(RET_K, 5)]).expect("insert");
        assert_eq!(program[0], stmt(JMP_JA, 2));
        assert_eq!(answers(&program), [1, 1, 1, 1]);

        // Offsets that would overflow u8 are an error, not a wrapped jump.
        let mut program = vec![jump(JMP_JEQ_K, 1, 254, 0)];
        program.extend(std::iter::repeat(stmt(RET_K, 0)).take(255));
        assert!(insert(&mut program, 1, &[stmt(RET_K, 1), stmt(RET_K, 1)]).is_err());
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
            load(&programs).expect("load");
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
                "security::seccomp::tests::loads_and_denies_for_real",
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

    #[test]
    fn vsock_sockets_are_refused_and_other_families_allowed() {
        for arch in ARCHES {
            let programs = compiled(arch, &[], &[]);
            let socket = |family: u64| ask(&programs, arch, "socket", [family, 1, 0, 0, 0, 0]);
            assert_eq!(socket(40), eperm(), "AF_VSOCK on {arch}");
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
