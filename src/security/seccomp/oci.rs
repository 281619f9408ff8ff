//! OCI seccomp profiles (`linux.seccomp` of config.json, runtime-spec
//! config-linux.md) as BPF programs, for the OCI runtime mode. The mapper in
//! `oci/config.rs` turns the JSON into an [`OciSeccomp`] (plain data; unknown
//! action and operator names are its errors); [`compile_oci`] turns that into
//! programs for [`super::load`].
//!
//! The meaning is libseccomp's, as runc drives it: a rule matches a call when
//! the syscall is one of its `names` and all of its `args` conditions hold
//! (64-bit compares; `SCMP_CMP_MASKED_EQ` is `(arg & value) == valueTwo`); a
//! call that no rule matches gets the default action. Two of runc's details are
//! kept. A rule with two conditions on the same argument is taken as one rule
//! per condition, which is an OR: libseccomp cannot AND two conditions on one
//! argument, so runc splits them, and profiles written for Docker's old
//! `personality` rule depend on it. A name the syscall table does not know is
//! skipped: the kernel may not have the call, and libseccomp skips names it
//! cannot resolve too.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompRule,
};

use super::bpf_patch::{arg_low, jump, stmt, DATA_NR, JMP_JEQ_K, LD_W_ABS, RET_K};
use super::compile::build_program;
use crate::error::{Error, Result};
use crate::security::syscalls::{self, Arch};

/// What the kernel does with a call (`SCMP_ACT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OciAction {
    Allow,
    /// Fail with this errno (`errnoRet`; EPERM when absent).
    Errno(u32),
    KillThread,
    KillProcess,
    /// SIGSYS.
    Trap,
    /// Allow and log.
    Log,
    /// Stop for the ptrace tracer, with this data (`errnoRet`; 0 when absent).
    Trace(u32),
    /// Ask a seccomp listener; refused by [`compile_oci`].
    Notify,
}

/// How an argument is compared (`SCMP_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OciOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & value) == value_two`.
    MaskedEq,
}

/// One condition on a syscall argument: `arg[index] <op> value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OciArg {
    pub index: u8,
    pub value: u64,
    /// Only `MaskedEq` reads it.
    pub value_two: u64,
    pub op: OciOp,
}

/// An entry of `linux.seccomp.syscalls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OciRule {
    pub names: Vec<String>,
    pub action: OciAction,
    /// All must hold (but see the module comment on repeated indexes).
    pub args: Vec<OciArg>,
}

/// `linux.seccomp`, as far as the filter goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OciSeccomp {
    pub default_action: OciAction,
    /// `SCMP_ARCH_*` names; empty means the native one.
    pub architectures: Vec<String>,
    pub rules: Vec<OciRule>,
}

/// The action named `name` (`SCMP_ACT_*`), with `errno_ret` (the profile's
/// `errnoRet` or `defaultErrnoRet`) as its data where it has one: the errno
/// of `SCMP_ACT_ERRNO` (EPERM without it) and the tracer's data of
/// `SCMP_ACT_TRACE` (0 without it). `SCMP_ACT_KILL` is libseccomp's old name
/// for `SCMP_ACT_KILL_THREAD`. None for a name that is not an action.
pub(crate) fn action_from_name(name: &str, errno_ret: Option<u32>) -> Option<OciAction> {
    let eperm = libc::EPERM.unsigned_abs();
    Some(match name {
        "SCMP_ACT_ALLOW" => OciAction::Allow,
        "SCMP_ACT_ERRNO" => OciAction::Errno(errno_ret.unwrap_or(eperm)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => OciAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => OciAction::KillProcess,
        "SCMP_ACT_TRAP" => OciAction::Trap,
        "SCMP_ACT_LOG" => OciAction::Log,
        "SCMP_ACT_TRACE" => OciAction::Trace(errno_ret.unwrap_or(0)),
        "SCMP_ACT_NOTIFY" => OciAction::Notify,
        _ => return None,
    })
}

/// The operator named `name` (`SCMP_CMP_*`); None for any other name.
pub(crate) fn op_from_name(name: &str) -> Option<OciOp> {
    Some(match name {
        "SCMP_CMP_NE" => OciOp::Ne,
        "SCMP_CMP_LT" => OciOp::Lt,
        "SCMP_CMP_LE" => OciOp::Le,
        "SCMP_CMP_EQ" => OciOp::Eq,
        "SCMP_CMP_GE" => OciOp::Ge,
        "SCMP_CMP_GT" => OciOp::Gt,
        "SCMP_CMP_MASKED_EQ" => OciOp::MaskedEq,
        _ => return None,
    })
}

/// BPF programs for `profile` on this machine, in the order [`super::load`]
/// must install them (with no listener), and the syscall names the native
/// table does not know, each once, in profile order: they were skipped.
///
/// # One program per answer, and why their sum is the profile
///
/// A seccompiler filter has one match action, so the profile becomes:
/// - for each distinct action A other than ALLOW (ERRNO(1) and ERRNO(38) are
///   two), a program that answers A where a rule of action A matches, and
///   ALLOW everywhere else;
/// - unless the default action is ALLOW, a default program D that answers
///   ALLOW where any rule matches, whatever its action, and the default
///   action everywhere else.
///
/// The kernel runs every loaded filter and keeps the most severe answer:
/// KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > USER_NOTIF > TRACE > LOG >
/// ALLOW; among equally severe answers, that of the filter loaded last. So:
/// - a call no rule matches gets D's default action: the action programs all
///   answer ALLOW, the least severe, which never outvotes anything;
/// - a call some rules match gets D's ALLOW and the action of each matching
///   non-ALLOW rule: the most severe of those, or ALLOW when only ALLOW rules
///   match. A matched ERRNO rule beats an ALLOW rule for the same call
///   (`socket` allowed, `socket(AF_VSOCK)` EPERM). That is why D allows what
///   the non-ALLOW rules match as well: else a matched ERRNO rule would meet
///   D's default, and a default of KILL_PROCESS would outvote it.
///
/// D's default never meets an action program's answer other than ALLOW (D
/// says ALLOW wherever one of them says anything else), so D's place in the
/// load order is free. Two action programs of equal severity (two errnos) can
/// both answer a call; then the later one wins, and they are loaded in the
/// reverse order of their first rules, so that the rule listed first wins,
/// unless the loading order below moves one of them. (libseccomp leaves
/// overlapping rules to the layout of its decision tree: profiles cannot
/// count on either.)
/// In a default-ALLOW profile (a deny list) ALLOW rules change nothing, and
/// no D is built.
///
/// # Loading them one after the other
///
/// Each program is installed with its own `seccomp(SECCOMP_SET_MODE_FILTER,
/// 0, prog)`, which the programs already loaded judge. The programs that can
/// refuse that call (D unless it allows `seccomp` unconditionally or the
/// default is LOG; an action program with a rule on `seccomp`, LOG's aside)
/// are loaded after all others, the most severe last; if there are several,
/// all but the last allow exactly that call (`loader_guard`). The price, in
/// such a profile only: for `seccomp(SECCOMP_SET_MODE_FILTER, 0, ...)` only
/// the last program's answer counts, so the process may be able to add a
/// filter of its own, which can refuse more but never allow anything ours
/// refuse (the most severe answer wins).
///
/// # Architectures
///
/// The native one must be listed, or the list be empty. Others are accepted
/// (Podman lists SCMP_ARCH_X86 and SCMP_ARCH_X32 beside SCMP_ARCH_X86_64) and
/// answered as in microbox's own profile: every program starts with
/// seccompiler's arch check, which kills a process making a call of another
/// ABI (i386 `int 0x80`, AArch32), and on x86_64 the x32 guard answers EPERM
/// to x32 calls. 32-bit programs do not run in microbox containers.
pub(crate) fn compile_oci(profile: &OciSeccomp) -> Result<(Vec<BpfProgram>, Vec<String>)> {
    compile_for(Arch::NATIVE, profile)
}

/// [`compile_oci`] for `arch`: the tests check both architectures on any host.
fn compile_for(arch: Arch, profile: &OciSeccomp) -> Result<(Vec<BpfProgram>, Vec<String>)> {
    check_architectures(arch, &profile.architectures)?;
    let default = checked_action(
        profile.default_action,
        "linux.seccomp.defaultAction",
        "linux.seccomp.defaultErrnoRet",
    )?;
    let mut any_rule = Chains::new();
    // In the order of each action's first rule.
    let mut by_action: Vec<(SeccompAction, Chains)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (index, rule) in profile.rules.iter().enumerate() {
        let at = format!("linux.seccomp.syscalls[{index}]");
        let action = checked_action(
            rule.action,
            &format!("{at}.action"),
            &format!("{at}.errnoRet"),
        )?;
        let matches = rule_matches(rule, &at)?;
        // Where in `by_action` this rule's chains go; ALLOW has no program.
        let slot = if action == SeccompAction::Allow {
            None
        } else {
            let known = by_action.iter().position(|(known, _)| *known == action);
            Some(known.unwrap_or_else(|| {
                by_action.push((action, Chains::new()));
                by_action.len() - 1
            }))
        };
        for name in &rule.names {
            let Some(nr) = syscalls::number_for(arch, name) else {
                if !skipped.contains(name) {
                    skipped.push(name.clone());
                }
                continue;
            };
            merge(&mut any_rule, nr, &matches);
            if let Some(slot) = slot {
                merge(&mut by_action[slot].1, nr, &matches);
            }
        }
    }

    let mut plan: Vec<Planned> = Vec::new();
    if default != SeccompAction::Allow {
        plan.push(Planned {
            chains: any_rule,
            mismatch: default,
            on_match: SeccompAction::Allow,
        });
    }
    plan.extend(
        by_action
            .into_iter()
            .rev()
            .filter(|(_, chains)| chains.values().any(Matches::can_match))
            .map(|(action, chains)| Planned {
                chains,
                mismatch: SeccompAction::Allow,
                on_match: action,
            }),
    );
    if plan.is_empty() {
        // Everything allowed: one program still, for the arch check and the
        // x32 guard. Its match action is never reached (no rules).
        plan.push(Planned {
            chains: Chains::new(),
            mismatch: SeccompAction::Allow,
            on_match: SeccompAction::Errno(libc::EPERM.unsigned_abs()),
        });
    }

    let seccomp = syscalls::number_for(arch, "seccomp")
        .ok_or_else(|| Error::runtime(format!("no seccomp syscall in the {arch} table")))?;
    let (mut refusing, order): (Vec<Planned>, Vec<Planned>) = plan
        .into_iter()
        .partition(|planned| planned.loader_refusal(seccomp).is_some());
    refusing.sort_by_key(|planned| {
        std::cmp::Reverse(planned.loader_refusal(seccomp).map_or(0, severity))
    });
    let guarded = refusing.len().saturating_sub(1);
    let mut programs = Vec::with_capacity(order.len() + refusing.len());
    for planned in order {
        programs.push(planned.build(arch, &[])?);
    }
    for (index, planned) in refusing.into_iter().enumerate() {
        let guards = if index < guarded {
            loader_guard(seccomp).to_vec()
        } else {
            Vec::new()
        };
        programs.push(planned.build(arch, &guards)?);
    }
    Ok((programs, skipped))
}

/// Syscall number to where its chain matches.
type Chains = BTreeMap<u32, Matches>;

/// Where a syscall's chain in a program matches.
#[derive(Debug, Clone, PartialEq)]
enum Matches {
    /// On the number alone.
    Always,
    /// When one of the rules holds (seccompiler's OR of ANDs); never, when
    /// there is none.
    AnyOf(Vec<SeccompRule>),
}

impl Matches {
    fn can_match(&self) -> bool {
        !matches!(self, Matches::AnyOf(rules) if rules.is_empty())
    }
}

/// `chains[nr]` matches where it did and also where `more` does.
fn merge(chains: &mut Chains, nr: u32, more: &Matches) {
    let entry = chains.entry(nr).or_insert(Matches::AnyOf(Vec::new()));
    match (entry, more) {
        (Matches::Always, _) => {}
        (entry, Matches::Always) => *entry = Matches::Always,
        (Matches::AnyOf(rules), Matches::AnyOf(more)) => {
            for rule in more {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
    }
}

/// One program of the plan, before seccompiler compiles it.
struct Planned {
    chains: Chains,
    mismatch: SeccompAction,
    on_match: SeccompAction,
}

impl Planned {
    /// The answer this program may give to `seccomp(SECCOMP_SET_MODE_FILTER,
    /// 0, prog)`, the call that loads the next program, if it may refuse it:
    /// anything but ALLOW and LOG (TRACE with no tracer fails the call).
    fn loader_refusal(&self, seccomp: u32) -> Option<u32> {
        let chain = self.chains.get(&seccomp).filter(|chain| chain.can_match());
        let answer = if self.on_match == SeccompAction::Allow {
            match chain {
                Some(Matches::Always) => return None,
                _ => self.mismatch.clone(),
            }
        } else {
            chain?;
            self.on_match.clone()
        };
        let answer = u32::from(answer);
        let allows = [libc::SECCOMP_RET_ALLOW, libc::SECCOMP_RET_LOG];
        (!allows.contains(&(answer & libc::SECCOMP_RET_ACTION_FULL))).then_some(answer)
    }

    fn build(self, arch: Arch, guards: &[sock_filter]) -> Result<BpfProgram> {
        let rules = self
            .chains
            .into_iter()
            .filter_map(|(nr, matches)| match matches {
                Matches::Always => Some((i64::from(nr), Vec::new())),
                Matches::AnyOf(rules) if rules.is_empty() => None,
                Matches::AnyOf(rules) => Some((i64::from(nr), rules)),
            })
            .collect();
        build_program(arch, rules, self.mismatch, self.on_match, guards)
    }
}

/// The kernel's order of answers (`ACTION_ONLY` in kernel/seccomp.c): the
/// action bits read as a signed number, the most severe lowest (KILL_PROCESS
/// is 0x80000000, ALLOW 0x7fff0000).
fn severity(answer: u32) -> i32 {
    i32::from_ne_bytes((answer & libc::SECCOMP_RET_ACTION_FULL).to_ne_bytes())
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, ...) -> ALLOW`, exactly the call with
/// which `load` installs the next program (no flags: no listener, no TSYNC).
/// Both arguments are `unsigned int` to the kernel: their low halves decide.
/// Ends by loading nr again, for the chains after it.
fn loader_guard(seccomp: u32) -> [sock_filter; 7] {
    [
        jump(JMP_JEQ_K, seccomp, 0, 5),
        stmt(LD_W_ABS, arg_low(0)),
        jump(JMP_JEQ_K, libc::SECCOMP_SET_MODE_FILTER, 0, 3),
        stmt(LD_W_ABS, arg_low(1)),
        jump(JMP_JEQ_K, 0, 0, 1),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
        stmt(LD_W_ABS, DATA_NR),
    ]
}

/// Where `rule`'s syscalls match, from its conditions.
fn rule_matches(rule: &OciRule, at: &str) -> Result<Matches> {
    if rule.args.is_empty() {
        return Ok(Matches::Always);
    }
    let mut conditions = Vec::with_capacity(rule.args.len());
    for (index, arg) in rule.args.iter().enumerate() {
        conditions.push(condition(arg, &format!("{at}.args[{index}]"))?);
    }
    let repeated = rule.args.iter().enumerate().any(|(index, arg)| {
        rule.args[..index]
            .iter()
            .any(|earlier| earlier.index == arg.index)
    });
    let backend =
        |e: seccompiler::BackendError| Error::failed("build a seccomp rule", e.to_string());
    let rules = if repeated {
        // runc's reading: one rule per condition.
        conditions
            .into_iter()
            .flatten()
            .map(|condition| SeccompRule::new(vec![condition]).map_err(backend))
            .collect::<Result<Vec<_>>>()?
    } else {
        match conditions.into_iter().collect::<Option<Vec<_>>>() {
            Some(all) => vec![SeccompRule::new(all).map_err(backend)?],
            None => Vec::new(),
        }
    };
    Ok(Matches::AnyOf(rules))
}

/// `struct seccomp_data` has six arguments.
const SYSCALL_ARGS: u8 = 6;

/// `arg` as a 64-bit seccompiler condition; None for one that can never hold:
/// MASKED_EQ with bits in `value_two` outside the mask `value` (seccompiler
/// would mask `value_two` too, and match).
fn condition(arg: &OciArg, at: &str) -> Result<Option<SeccompCondition>> {
    if arg.index >= SYSCALL_ARGS {
        return Err(invalid(
            &format!("{at}.index"),
            format!("{} is not a syscall argument (0 to 5)", arg.index),
        ));
    }
    let (op, value) = match arg.op {
        OciOp::Eq => (SeccompCmpOp::Eq, arg.value),
        OciOp::Ne => (SeccompCmpOp::Ne, arg.value),
        OciOp::Lt => (SeccompCmpOp::Lt, arg.value),
        OciOp::Le => (SeccompCmpOp::Le, arg.value),
        OciOp::Gt => (SeccompCmpOp::Gt, arg.value),
        OciOp::Ge => (SeccompCmpOp::Ge, arg.value),
        OciOp::MaskedEq if arg.value_two & !arg.value != 0 => return Ok(None),
        OciOp::MaskedEq => (SeccompCmpOp::MaskedEq(arg.value), arg.value_two),
    };
    SeccompCondition::new(arg.index, SeccompCmpArgLen::Qword, op, value)
        .map(Some)
        .map_err(|e| Error::failed("build a seccomp condition", e.to_string()).on(at))
}

/// `action` as seccompiler's; `Notify` and data wider than a seccomp answer
/// carries are errors naming the field.
fn checked_action(action: OciAction, field: &str, data_field: &str) -> Result<SeccompAction> {
    let data = |value: u32| {
        if value <= libc::SECCOMP_RET_DATA {
            Ok(value)
        } else {
            Err(invalid(
                data_field,
                format!("{value} does not fit in the 16 bits of a seccomp answer"),
            ))
        }
    };
    Ok(match action {
        OciAction::Allow => SeccompAction::Allow,
        OciAction::Errno(errno) => SeccompAction::Errno(data(errno)?),
        OciAction::KillThread => SeccompAction::KillThread,
        OciAction::KillProcess => SeccompAction::KillProcess,
        OciAction::Trap => SeccompAction::Trap,
        OciAction::Log => SeccompAction::Log,
        OciAction::Trace(value) => SeccompAction::Trace(data(value)?),
        OciAction::Notify => {
            return Err(Error::usage(format!(
                "config.json: {field}: not supported (SCMP_ACT_NOTIFY needs a seccomp \
                 listener, and microbox's OCI mode has none)"
            )))
        }
    })
}

/// The native architecture is listed, or nothing is.
fn check_architectures(arch: Arch, listed: &[String]) -> Result<()> {
    let native = match arch {
        Arch::X86_64 => "SCMP_ARCH_X86_64",
        Arch::Aarch64 => "SCMP_ARCH_AARCH64",
    };
    if listed.is_empty() || listed.iter().any(|name| name == native) {
        return Ok(());
    }
    Err(invalid(
        "linux.seccomp.architectures",
        format!(
            "the seccomp architectures do not include {arch} ({native}), the one microbox runs on"
        ),
    ))
}

/// A profile error, worded as the config.json mapper words its own.
fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::usage(format!("config.json: {field}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::seccomp::bpf_patch::{
        errno_action, DATA_ARCH, JMP_JGE_K, X32_SYSCALL_BIT,
    };
    use crate::security::seccomp::interpreter::*;

    const ENOSYS_38: u32 = 38;
    const LOG: u32 = libc::SECCOMP_RET_LOG;
    const TRAP: u32 = libc::SECCOMP_RET_TRAP;

    fn arg(index: u8, op: OciOp, value: u64, value_two: u64) -> OciArg {
        OciArg {
            index,
            value,
            value_two,
            op,
        }
    }

    fn rule(names: &[&str], action: OciAction, args: &[OciArg]) -> OciRule {
        OciRule {
            names: strings(names),
            action,
            args: args.to_vec(),
        }
    }

    fn profile(default_action: OciAction, rules: Vec<OciRule>) -> OciSeccomp {
        OciSeccomp {
            default_action,
            architectures: Vec::new(),
            rules,
        }
    }

    fn errno(value: i32) -> OciAction {
        OciAction::Errno(value.unsigned_abs())
    }

    /// All programs' answers combined exactly as the kernel does
    /// (seccomp_run_filters): from the newest filter to the oldest, a strictly
    /// more severe answer replaces the one kept, so among equals the newest
    /// wins. (interpreter's `verdict` keeps the oldest among equals: the
    /// default profile never lets two programs compete.)
    fn kernel_verdict(programs: &[BpfProgram], call: &Call) -> u32 {
        programs
            .iter()
            .rev()
            .map(|program| run(program, call))
            .reduce(|kept, next| {
                if severity(next) < severity(kept) {
                    next
                } else {
                    kept
                }
            })
            .expect("at least one program")
    }

    /// `load`'s own call: seccomp(SECCOMP_SET_MODE_FILTER, 0, &prog).
    fn loader_call(arch: Arch, flags: u64) -> Call {
        let op = u64::from(libc::SECCOMP_SET_MODE_FILTER);
        call(arch, "seccomp", [op, flags, 0x7ffd_1234_5000, 0, 0, 0])
    }

    /// Compiles for `arch`, checking what every profile must give: each
    /// program gets past the ones loaded before it.
    fn compiled_oci(arch: Arch, profile: &OciSeccomp) -> (Vec<BpfProgram>, Vec<String>) {
        let (programs, skipped) = compile_for(arch, profile).expect("compile");
        assert!(!programs.is_empty());
        for loaded in 1..programs.len() {
            let answer = kernel_verdict(&programs[..loaded], &loader_call(arch, 0));
            assert!(
                answer == ALLOW || answer == LOG,
                "{arch}: program {} cannot be loaded after the first {loaded}: {answer:#x}",
                loaded + 1
            );
        }
        (programs, skipped)
    }

    fn answer(programs: &[BpfProgram], arch: Arch, name: &str, args: [u64; 6]) -> u32 {
        kernel_verdict(programs, &call(arch, name, args))
    }

    fn with_arg0(value: u64) -> [u64; 6] {
        [value, 0, 0, 0, 0, 0]
    }

    /// The shape of containers-common's profile (Podman's default): an allow
    /// list answering ENOSYS, personality only for three personas, clone
    /// without namespace flags, socket but not AF_VSOCK.
    fn podman_like(arch_names: &[&str]) -> OciSeccomp {
        let clone_namespaces = 0x7E02_0000;
        OciSeccomp {
            default_action: OciAction::Errno(ENOSYS_38),
            architectures: strings(arch_names),
            rules: vec![
                rule(
                    &["read", "write", "getpid", "exit_group", "seccomp", "socket"],
                    OciAction::Allow,
                    &[],
                ),
                rule(
                    &["personality"],
                    OciAction::Allow,
                    &[arg(0, OciOp::Eq, 0, 0)],
                ),
                rule(
                    &["personality"],
                    OciAction::Allow,
                    &[arg(0, OciOp::Eq, 8, 0)],
                ),
                rule(
                    &["personality"],
                    OciAction::Allow,
                    &[arg(0, OciOp::Eq, 0x20000, 0)],
                ),
                rule(
                    &["clone"],
                    OciAction::Allow,
                    &[arg(0, OciOp::MaskedEq, clone_namespaces, 0)],
                ),
                rule(
                    &["socket"],
                    errno(libc::EPERM),
                    &[arg(0, OciOp::Eq, flag(libc::AF_VSOCK), 0)],
                ),
            ],
        }
    }

    #[test]
    fn a_podman_like_allow_list_answers_each_call_as_the_profile_says() {
        for (arch, native) in [
            (
                Arch::X86_64,
                ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            ),
            (
                Arch::Aarch64,
                ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X86"],
            ),
        ] {
            let (p, skipped) = compiled_oci(arch, &podman_like(&native));
            assert!(skipped.is_empty(), "{arch}: {skipped:?}");
            assert_eq!(p.len(), 2, "{arch}: the default program and EPERM's");
            let enosys_38 = errno_action(libc::ENOSYS);
            for name in ["read", "write", "getpid", "exit_group", "seccomp"] {
                assert_eq!(answer(&p, arch, name, NO_ARGS), ALLOW, "{arch} {name}");
            }
            for name in ["ptrace", "mount", "unshare", "bpf", "getppid"] {
                assert_eq!(answer(&p, arch, name, NO_ARGS), enosys_38, "{arch} {name}");
            }
            let personality = |persona| answer(&p, arch, "personality", with_arg0(persona));
            for persona in [0, 8, 0x20000] {
                assert_eq!(
                    personality(persona),
                    ALLOW,
                    "{arch} personality({persona:#x})"
                );
            }
            for persona in [1, 9, 0x20008, 0xffff_ffff, 1 << 32, (1 << 32) | 8] {
                assert_eq!(
                    personality(persona),
                    enosys_38,
                    "{arch} personality({persona:#x})"
                );
            }
            let clone = |flags| answer(&p, arch, "clone", with_arg0(flags));
            let sigchld = flag(libc::SIGCHLD);
            let thread = flag(libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND);
            assert_eq!(clone(sigchld), ALLOW, "{arch} fork-like clone");
            assert_eq!(clone(thread), ALLOW, "{arch} thread clone");
            // Bits above 32 are outside the mask: still no namespace.
            assert_eq!(clone((1 << 40) | sigchld), ALLOW, "{arch}");
            for namespace in [
                libc::CLONE_NEWUSER,
                libc::CLONE_NEWNS,
                libc::CLONE_NEWNET,
                libc::CLONE_NEWPID,
                libc::CLONE_NEWCGROUP,
            ] {
                let flags = flag(namespace) | sigchld;
                assert_eq!(clone(flags), enosys_38, "{arch} clone({flags:#x})");
            }
            let socket = |family| answer(&p, arch, "socket", with_arg0(family));
            assert_eq!(socket(flag(libc::AF_INET)), ALLOW, "{arch}");
            assert_eq!(socket(flag(libc::AF_UNIX)), ALLOW, "{arch}");
            assert_eq!(socket(flag(libc::AF_VSOCK)), eperm(), "{arch} AF_VSOCK");
            // A 64-bit compare: 40 with high bits set is not AF_VSOCK.
            assert_eq!(socket((1 << 32) | 40), ALLOW, "{arch}");
            // A number the table does not name gets the default action too.
            let unnamed = Call {
                nr: 1000,
                arch: audit_arch(arch),
                args: NO_ARGS,
            };
            assert_eq!(kernel_verdict(&p, &unnamed), enosys_38, "{arch}");
        }
    }

    #[test]
    fn several_conditions_on_one_argument_are_alternatives_as_in_runc() {
        let personas = [0, 8, 0x20000].map(|persona| arg(0, OciOp::Eq, persona, 0));
        let profile = profile(
            OciAction::Errno(ENOSYS_38),
            vec![
                rule(&["personality"], OciAction::Allow, &personas),
                // Different arguments: both must hold.
                rule(
                    &["kill"],
                    OciAction::Allow,
                    &[arg(0, OciOp::Gt, 1, 0), arg(1, OciOp::Eq, 0, 0)],
                ),
            ],
        );
        for arch in ARCHES {
            let (p, _) = compiled_oci(arch, &profile);
            for persona in [0, 8, 0x20000] {
                let got = answer(&p, arch, "personality", with_arg0(persona));
                assert_eq!(got, ALLOW, "{arch} {persona:#x}");
            }
            let got = answer(&p, arch, "personality", with_arg0(4));
            assert_eq!(got, errno_action(libc::ENOSYS), "{arch}");
            let kill = |pid, signal| answer(&p, arch, "kill", [pid, signal, 0, 0, 0, 0]);
            assert_eq!(kill(2, 0), ALLOW, "{arch}");
            assert_eq!(kill(2, 9), errno_action(libc::ENOSYS), "{arch}");
            assert_eq!(kill(1, 0), errno_action(libc::ENOSYS), "{arch}");
        }
    }

    #[test]
    fn every_operator_compares_all_64_bits() {
        const BIG: u64 = 0x1_0000_0010;
        // The operator, value, valueTwo, and arguments for which it holds and fails.
        type Case = (OciOp, u64, u64, &'static [u64], &'static [u64]);
        let cases: [Case; 7] = [
            (OciOp::Eq, BIG, 0, &[BIG], &[0x10, BIG + 1]),
            (OciOp::Ne, BIG, 0, &[0x10, BIG + 1], &[BIG]),
            (
                OciOp::Lt,
                BIG,
                0,
                &[0x10, BIG - 1],
                &[BIG, BIG + 1, u64::MAX],
            ),
            (OciOp::Le, BIG, 0, &[0x10, BIG], &[BIG + 1, 0x2_0000_0000]),
            (OciOp::Gt, BIG, 0, &[BIG + 1, u64::MAX], &[BIG, 0x20]),
            (OciOp::Ge, BIG, 0, &[BIG, 0x2_0000_0000], &[BIG - 1, 0x20]),
            (
                OciOp::MaskedEq,
                0xff00_0000_00ff,
                0x1200_0000_0034,
                &[0x1200_0000_0034, 0x12ab_cdef_ab34],
                &[0x34, 0x1200_0000_0000, 0x1300_0000_0034],
            ),
        ];
        for arch in ARCHES {
            for (op, value, value_two, hold, fail) in cases {
                let profile = profile(
                    OciAction::Errno(ENOSYS_38),
                    vec![rule(
                        &["getpid"],
                        OciAction::Allow,
                        &[arg(2, op, value, value_two)],
                    )],
                );
                let (p, _) = compiled_oci(arch, &profile);
                let getpid = |value| answer(&p, arch, "getpid", [0, 0, value, 0, 0, 0]);
                for &value in hold {
                    assert_eq!(getpid(value), ALLOW, "{arch} {op:?} {value:#x}");
                }
                for &value in fail {
                    assert_eq!(getpid(value), enosys(), "{arch} {op:?} {value:#x}");
                }
            }
        }
    }

    #[test]
    fn masked_eq_with_bits_outside_the_mask_never_matches() {
        let profile = profile(
            OciAction::Errno(ENOSYS_38),
            vec![rule(
                &["clone"],
                OciAction::Allow,
                &[arg(0, OciOp::MaskedEq, 0xff, 0x100)],
            )],
        );
        for arch in ARCHES {
            let (p, _) = compiled_oci(arch, &profile);
            for flags in [0, 0x100, 0x1ff, u64::MAX] {
                let got = answer(&p, arch, "clone", with_arg0(flags));
                assert_eq!(got, enosys(), "{arch} clone({flags:#x})");
            }
        }
    }

    #[test]
    fn a_deny_list_answers_its_rules_and_allows_the_rest() {
        let newuser = flag(libc::CLONE_NEWUSER);
        let profile = profile(
            OciAction::Allow,
            vec![
                rule(&["ptrace", "process_vm_readv"], errno(libc::EPERM), &[]),
                rule(&["kexec_load"], OciAction::KillProcess, &[]),
                rule(&["mount"], OciAction::Trap, &[]),
                rule(&["uname"], OciAction::Log, &[]),
                rule(&["getpid"], OciAction::Allow, &[]),
                rule(
                    &["unshare"],
                    errno(libc::EPERM),
                    &[arg(0, OciOp::MaskedEq, newuser, newuser)],
                ),
            ],
        );
        for arch in ARCHES {
            let (p, _) = compiled_oci(arch, &profile);
            assert_eq!(
                p.len(),
                4,
                "{arch}: EPERM, KILL_PROCESS, TRAP, LOG; no default"
            );
            for name in ["getpid", "read", "clone", "bpf", "seccomp"] {
                assert_eq!(answer(&p, arch, name, NO_ARGS), ALLOW, "{arch} {name}");
            }
            assert_eq!(answer(&p, arch, "ptrace", NO_ARGS), eperm(), "{arch}");
            assert_eq!(answer(&p, arch, "process_vm_readv", NO_ARGS), eperm());
            assert_eq!(answer(&p, arch, "kexec_load", NO_ARGS), KILL, "{arch}");
            assert_eq!(answer(&p, arch, "mount", NO_ARGS), TRAP, "{arch}");
            assert_eq!(answer(&p, arch, "uname", NO_ARGS), LOG, "{arch}");
            let unshare = |flags| answer(&p, arch, "unshare", with_arg0(flags));
            assert_eq!(
                unshare(newuser | flag(libc::CLONE_NEWNS)),
                eperm(),
                "{arch}"
            );
            assert_eq!(unshare(flag(libc::CLONE_NEWNS)), ALLOW, "{arch}");
        }
    }

    #[test]
    fn an_everything_allowed_profile_is_one_program_with_the_guards() {
        for profile in [
            profile(OciAction::Allow, Vec::new()),
            profile(
                OciAction::Allow,
                vec![rule(&["getpid"], OciAction::Allow, &[])],
            ),
        ] {
            for arch in ARCHES {
                let (p, _) = compiled_oci(arch, &profile);
                assert_eq!(p.len(), 1, "{arch}");
                assert_eq!(answer(&p, arch, "ptrace", NO_ARGS), ALLOW, "{arch}");
            }
        }
    }

    #[test]
    fn kill_process_wins_over_errno() {
        let (newuser, newns) = (flag(libc::CLONE_NEWUSER), flag(libc::CLONE_NEWNS));
        let rules = |default| {
            profile(
                default,
                vec![
                    rule(&["unshare"], OciAction::Allow, &[]),
                    rule(
                        &["unshare"],
                        errno(libc::EPERM),
                        &[arg(0, OciOp::MaskedEq, newns, newns)],
                    ),
                    rule(
                        &["unshare"],
                        OciAction::KillProcess,
                        &[arg(0, OciOp::MaskedEq, newuser, newuser)],
                    ),
                ],
            )
        };
        for default in [OciAction::Errno(ENOSYS_38), OciAction::Allow] {
            for arch in ARCHES {
                let (p, _) = compiled_oci(arch, &rules(default));
                let unshare = |flags| answer(&p, arch, "unshare", with_arg0(flags));
                assert_eq!(unshare(newuser | newns), KILL, "{arch} {default:?}");
                assert_eq!(unshare(newuser), KILL, "{arch} {default:?}");
                assert_eq!(unshare(newns), eperm(), "{arch} {default:?}");
                assert_eq!(
                    unshare(flag(libc::CLONE_FILES)),
                    ALLOW,
                    "{arch} {default:?}"
                );
            }
        }
    }

    #[test]
    fn a_matched_rule_is_not_outvoted_by_a_more_severe_default() {
        let profile = profile(
            OciAction::KillProcess,
            vec![
                rule(&["getpid", "exit_group"], OciAction::Allow, &[]),
                rule(&["getppid"], errno(libc::EPERM), &[]),
                rule(&["gettid"], OciAction::Trap, &[arg(0, OciOp::Eq, 7, 0)]),
            ],
        );
        for arch in ARCHES {
            let (p, _) = compiled_oci(arch, &profile);
            assert_eq!(answer(&p, arch, "getpid", NO_ARGS), ALLOW, "{arch}");
            assert_eq!(answer(&p, arch, "getppid", NO_ARGS), eperm(), "{arch}");
            assert_eq!(answer(&p, arch, "gettid", with_arg0(7)), TRAP, "{arch}");
            assert_eq!(answer(&p, arch, "gettid", NO_ARGS), KILL, "{arch}");
            assert_eq!(answer(&p, arch, "ptrace", NO_ARGS), KILL, "{arch}");
        }
    }

    #[test]
    fn between_equally_severe_rules_the_one_listed_first_wins() {
        let enoent = rule(&["getcwd"], errno(libc::ENOENT), &[arg(1, OciOp::Eq, 0, 0)]);
        let eacces = rule(&["getcwd"], errno(libc::EACCES), &[]);
        for arch in ARCHES {
            let getcwd = |p: &[BpfProgram], size| answer(p, arch, "getcwd", [0, size, 0, 0, 0, 0]);
            let (p, _) = compiled_oci(
                arch,
                &profile(OciAction::Allow, vec![enoent.clone(), eacces.clone()]),
            );
            assert_eq!(getcwd(&p, 0), errno_action(libc::ENOENT), "{arch}");
            assert_eq!(getcwd(&p, 64), errno_action(libc::EACCES), "{arch}");
            let (p, _) = compiled_oci(
                arch,
                &profile(OciAction::Allow, vec![eacces.clone(), enoent.clone()]),
            );
            assert_eq!(getcwd(&p, 0), errno_action(libc::EACCES), "{arch}");
            assert_eq!(getcwd(&p, 64), errno_action(libc::EACCES), "{arch}");
        }
    }

    #[test]
    fn unknown_names_are_skipped_and_reported_once() {
        let profile = profile(
            OciAction::Errno(ENOSYS_38),
            vec![
                rule(
                    &["getpid", "microbox_no_such_call", "getppid"],
                    OciAction::Allow,
                    &[],
                ),
                rule(
                    &["microbox_no_such_call", "also_not_a_call"],
                    OciAction::KillProcess,
                    &[],
                ),
                // Named on x86_64 only.
                rule(&["open", "iopl"], OciAction::Allow, &[]),
            ],
        );
        let (p, skipped) = compiled_oci(Arch::X86_64, &profile);
        assert_eq!(skipped, ["microbox_no_such_call", "also_not_a_call"]);
        assert_eq!(p.len(), 1, "no program for a rule that names nothing");
        assert_eq!(answer(&p, Arch::X86_64, "open", NO_ARGS), ALLOW);
        let (p, skipped) = compiled_oci(Arch::Aarch64, &profile);
        assert_eq!(
            skipped,
            ["microbox_no_such_call", "also_not_a_call", "open", "iopl"]
        );
        for arch in ARCHES {
            let (p, _) = compiled_oci(arch, &profile);
            assert_eq!(answer(&p, arch, "getpid", NO_ARGS), ALLOW, "{arch}");
            assert_eq!(answer(&p, arch, "getppid", NO_ARGS), ALLOW, "{arch}");
            assert_eq!(answer(&p, arch, "gettid", NO_ARGS), enosys(), "{arch}");
        }
        assert_eq!(answer(&p, Arch::Aarch64, "openat", NO_ARGS), enosys());
    }

    #[test]
    fn every_program_starts_with_the_arch_check_and_the_x32_guard() {
        let deny_list = profile(
            OciAction::Allow,
            vec![
                rule(&["ptrace"], errno(libc::EPERM), &[]),
                rule(&["kexec_load"], OciAction::KillProcess, &[]),
            ],
        );
        let profiles = [
            podman_like(&[]),
            deny_list,
            profile(OciAction::Allow, Vec::new()),
            profile(OciAction::KillProcess, Vec::new()),
        ];
        for profile in &profiles {
            for arch in ARCHES {
                let (programs, _) = compiled_oci(arch, profile);
                for program in &programs {
                    check_arch_prologue_for(program, arch);
                }
                let other_abi = match arch {
                    // i386 `int 0x80`: getpid is 20 there.
                    Arch::X86_64 => Call {
                        nr: 20,
                        arch: AUDIT_ARCH_I386,
                        args: NO_ARGS,
                    },
                    Arch::Aarch64 => Call {
                        nr: 20,
                        arch: AUDIT_ARCH_ARM,
                        args: NO_ARGS,
                    },
                };
                assert_eq!(kernel_verdict(&programs, &other_abi), KILL, "{arch}");
            }
        }
    }

    fn check_arch_prologue_for(program: &[sock_filter], arch: Arch) {
        assert_eq!(program[0], stmt(LD_W_ABS, DATA_ARCH), "{arch}");
        assert_eq!(
            program[1],
            jump(JMP_JEQ_K, audit_arch(arch), 1, 0),
            "{arch}"
        );
        assert_eq!(program[2], stmt(RET_K, KILL), "{arch}");
        if program.len() == 4 {
            // aarch64, nothing but the default: no rules, no guard, no nr.
            assert_eq!(arch, Arch::Aarch64);
            assert_eq!(program[3].code, RET_K);
            return;
        }
        assert_eq!(program[3], stmt(LD_W_ABS, DATA_NR), "{arch}");
        let guard = [jump(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1), stmt(RET_K, eperm())];
        assert_eq!(program[4..6] == guard, arch == Arch::X86_64, "{arch}");
    }

    #[test]
    fn x32_calls_get_eperm_whatever_the_default() {
        let getpid = nr(Arch::X86_64, "getpid");
        for default in [
            OciAction::Allow,
            OciAction::KillProcess,
            OciAction::Errno(ENOSYS_38),
            OciAction::Log,
        ] {
            let profile = profile(
                default,
                vec![
                    rule(&["getpid"], OciAction::Allow, &[]),
                    rule(&["ptrace"], OciAction::KillProcess, &[]),
                ],
            );
            let (p, _) = compiled_oci(Arch::X86_64, &profile);
            for number in [getpid, nr(Arch::X86_64, "ptrace"), 0x3fff_ffff & 512] {
                let x32 = Call {
                    nr: X32_SYSCALL_BIT | number,
                    arch: AUDIT_ARCH_X86_64,
                    args: NO_ARGS,
                };
                assert_eq!(kernel_verdict(&p, &x32), eperm(), "{default:?} {number}");
            }
        }
    }

    #[test]
    fn the_native_architecture_must_be_listed() {
        let with = |arch: Arch, names: &[&str]| {
            let mut profile = podman_like(names);
            profile.rules.clear();
            compile_for(arch, &profile)
        };
        let err = with(Arch::X86_64, &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]).expect_err("no x86_64");
        let text = err.to_string();
        assert!(text.contains("linux.seccomp.architectures"), "{text}");
        assert!(
            text.contains("seccomp architectures do not include x86_64 (SCMP_ARCH_X86_64)"),
            "{text}"
        );
        let err = with(Arch::Aarch64, &["SCMP_ARCH_X86_64"]).expect_err("no aarch64");
        assert!(
            err.to_string().contains("aarch64 (SCMP_ARCH_AARCH64)"),
            "{err}"
        );
        assert!(with(Arch::X86_64, &[]).is_ok());
        assert!(with(Arch::X86_64, &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]).is_ok());
        assert!(with(Arch::Aarch64, &["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"]).is_ok());
    }

    #[test]
    fn notify_is_refused_wherever_it_is() {
        let err = compile_for(Arch::X86_64, &profile(OciAction::Notify, Vec::new()))
            .expect_err("default notify");
        assert!(
            err.to_string().contains("linux.seccomp.defaultAction"),
            "{err}"
        );
        assert!(err.to_string().contains("SCMP_ACT_NOTIFY"), "{err}");
        let rules = vec![
            rule(&["getpid"], OciAction::Allow, &[]),
            // Refused even where the names are unknown: the profile asks for a listener.
            rule(&["microbox_no_such_call"], OciAction::Notify, &[]),
        ];
        let err =
            compile_for(Arch::X86_64, &profile(OciAction::Allow, rules)).expect_err("rule notify");
        assert!(
            err.to_string().contains("linux.seccomp.syscalls[1].action"),
            "{err}"
        );
    }

    #[test]
    fn bad_numbers_are_errors_naming_their_field() {
        let bad_index = profile(
            OciAction::Allow,
            vec![rule(
                &["getpid"],
                errno(libc::EPERM),
                &[arg(6, OciOp::Eq, 0, 0)],
            )],
        );
        let err = compile_for(Arch::X86_64, &bad_index).expect_err("index 6");
        assert!(
            err.to_string()
                .contains("linux.seccomp.syscalls[0].args[0].index"),
            "{err}"
        );
        let wide = profile(OciAction::Errno(0x1_0000), Vec::new());
        let err = compile_for(Arch::X86_64, &wide).expect_err("errno too wide");
        assert!(
            err.to_string().contains("linux.seccomp.defaultErrnoRet"),
            "{err}"
        );
        let wide = profile(
            OciAction::Allow,
            vec![rule(&["getpid"], OciAction::Trace(0x1_0000), &[])],
        );
        let err = compile_for(Arch::X86_64, &wide).expect_err("trace data too wide");
        assert!(
            err.to_string()
                .contains("linux.seccomp.syscalls[0].errnoRet"),
            "{err}"
        );
    }

    #[test]
    fn a_program_longer_than_the_kernel_takes_is_refused() {
        let rules = (0..1000)
            .map(|value| {
                rule(
                    &["getpid"],
                    errno(libc::EPERM),
                    &[arg(0, OciOp::Eq, value, 0)],
                )
            })
            .collect();
        assert!(compile_for(Arch::X86_64, &profile(OciAction::Allow, rules)).is_err());
        // The whole table allowed by name still fits.
        for arch in ARCHES {
            let names: Vec<&str> = arch.table().iter().map(|&(name, _)| name).collect();
            let everything = profile(
                OciAction::Errno(ENOSYS_38),
                vec![rule(&names, OciAction::Allow, &[])],
            );
            let (p, _) = compiled_oci(arch, &everything);
            assert!(p.iter().all(|program| program.len() <= 4096), "{arch}");
            assert_eq!(answer(&p, arch, "ptrace", NO_ARGS), ALLOW, "{arch}");
        }
    }

    #[test]
    fn the_programs_that_can_refuse_loading_are_loaded_last() {
        let newlistener = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        let filter = u64::from(libc::SECCOMP_SET_MODE_FILTER);
        for arch in ARCHES {
            // An allow list without seccomp: the default program refuses it.
            let allow_list = profile(
                errno(libc::EPERM),
                vec![
                    rule(&["getpid"], OciAction::Allow, &[]),
                    rule(&["ptrace"], OciAction::KillProcess, &[]),
                    rule(&["socket"], errno(libc::EACCES), &[]),
                ],
            );
            let (p, _) = compiled_oci(arch, &allow_list);
            assert_eq!(p.len(), 3, "{arch}");
            assert_eq!(kernel_verdict(&p, &loader_call(arch, 0)), eperm(), "{arch}");
            assert_eq!(
                answer(&p, arch, "socket", NO_ARGS),
                errno_action(libc::EACCES)
            );
            // A deny list that refuses seccomp in its first rule, loaded last
            // by the tie order alone; and in its last rule, moved last.
            for seccomp_first in [true, false] {
                let mut rules = vec![
                    rule(&["ptrace"], OciAction::KillProcess, &[]),
                    rule(&["getcwd"], errno(libc::EACCES), &[]),
                ];
                let seccomp = rule(&["seccomp"], errno(libc::EPERM), &[]);
                if seccomp_first {
                    rules.insert(0, seccomp);
                } else {
                    rules.push(seccomp);
                }
                let (p, _) = compiled_oci(arch, &profile(OciAction::Allow, rules));
                assert_eq!(kernel_verdict(&p, &loader_call(arch, 0)), eperm(), "{arch}");
                assert_eq!(
                    answer(&p, arch, "getcwd", NO_ARGS),
                    errno_action(libc::EACCES)
                );
                assert_eq!(answer(&p, arch, "ptrace", NO_ARGS), KILL, "{arch}");
            }
            // Two programs refuse it: the less severe one lets the loader's
            // call through, the price the doc comment names.
            let both = profile(
                OciAction::Allow,
                vec![
                    rule(&["seccomp"], errno(libc::EPERM), &[]),
                    rule(
                        &["seccomp"],
                        OciAction::KillProcess,
                        &[arg(1, OciOp::MaskedEq, newlistener, newlistener)],
                    ),
                ],
            );
            let (p, _) = compiled_oci(arch, &both);
            let seccomp = |op, flags| answer(&p, arch, "seccomp", [op, flags, 0, 0, 0, 0]);
            assert_eq!(seccomp(filter, newlistener), KILL, "{arch}");
            assert_eq!(seccomp(2, 0), eperm(), "{arch}: GET_ACTION_AVAIL");
            assert_eq!(seccomp(filter, 1), eperm(), "{arch}: TSYNC");
            assert_eq!(seccomp(filter, 0), ALLOW, "{arch}: the loader's call");
        }
    }

    /// A thread of its own loads a deny list (the filters and no_new_privs
    /// bind that thread only) whose seccomp rule is listed last, so that the
    /// tie order alone would load it first and refuse the other programs.
    #[test]
    fn a_deny_list_loads_and_answers_for_real() {
        let profile = profile(
            OciAction::Allow,
            vec![
                rule(&["kexec_load"], OciAction::KillProcess, &[]),
                rule(&["getcwd"], errno(libc::EACCES), &[]),
                rule(&["seccomp"], errno(libc::EPERM), &[]),
            ],
        );
        let (programs, skipped) = compile_oci(&profile).expect("compile");
        assert!(skipped.is_empty());
        let caller = std::thread::spawn(move || {
            crate::security::seccomp::load(&programs, true, false).expect("load");
            let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
            let filters = format!("Seccomp_filters:\t{}", programs.len());
            assert!(status.lines().any(|line| line == filters), "{status}");
            let getcwd = rustix::process::getcwd(Vec::new()).err();
            let another = crate::sys::seccomp::set_filter(&programs[0], false)
                .err()
                .and_then(|err| err.raw_os_error());
            (
                getcwd,
                another,
                rustix::process::getpid().as_raw_nonzero().get() > 0,
            )
        });
        let (getcwd, another, getpid) = caller.join().expect("the caller");
        assert_eq!(getcwd, Some(rustix::io::Errno::ACCESS));
        assert_eq!(another, Some(libc::EPERM));
        assert!(getpid);
    }

    #[test]
    fn names_map_to_actions_and_operators() {
        let eperm = libc::EPERM.unsigned_abs();
        let cases = [
            ("SCMP_ACT_ALLOW", None, Some(OciAction::Allow)),
            ("SCMP_ACT_ERRNO", None, Some(OciAction::Errno(eperm))),
            ("SCMP_ACT_ERRNO", Some(38), Some(OciAction::Errno(38))),
            ("SCMP_ACT_KILL", None, Some(OciAction::KillThread)),
            ("SCMP_ACT_KILL_THREAD", None, Some(OciAction::KillThread)),
            (
                "SCMP_ACT_KILL_PROCESS",
                Some(1),
                Some(OciAction::KillProcess),
            ),
            ("SCMP_ACT_TRAP", None, Some(OciAction::Trap)),
            ("SCMP_ACT_LOG", None, Some(OciAction::Log)),
            ("SCMP_ACT_TRACE", None, Some(OciAction::Trace(0))),
            ("SCMP_ACT_TRACE", Some(7), Some(OciAction::Trace(7))),
            ("SCMP_ACT_NOTIFY", None, Some(OciAction::Notify)),
            ("SCMP_ACT_allow", None, None),
            ("", None, None),
        ];
        for (name, errno_ret, expected) in cases {
            assert_eq!(action_from_name(name, errno_ret), expected, "{name}");
        }
        let ops = [
            ("SCMP_CMP_NE", Some(OciOp::Ne)),
            ("SCMP_CMP_LT", Some(OciOp::Lt)),
            ("SCMP_CMP_LE", Some(OciOp::Le)),
            ("SCMP_CMP_EQ", Some(OciOp::Eq)),
            ("SCMP_CMP_GE", Some(OciOp::Ge)),
            ("SCMP_CMP_GT", Some(OciOp::Gt)),
            ("SCMP_CMP_MASKED_EQ", Some(OciOp::MaskedEq)),
            ("SCMP_CMP_EQUAL", None),
        ];
        for (name, expected) in ops {
            assert_eq!(op_from_name(name), expected, "{name}");
        }
    }
}
