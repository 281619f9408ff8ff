//! The hand-written BPF around seccompiler's output: the x32 guard, the ENOSYS
//! guard for numbers the table does not name, and the insertion that keeps
//! seccompiler's jumps intact. seccompiler has no way to express either guard,
//! so they are patched in after its arch check, which is verified first.

use seccompiler::{sock_filter, BpfProgram, TargetArch};

use crate::error::{Error, Result};
use crate::security::syscalls::{self, Arch};

/// x86_64's marker of x32 syscall numbers (`__X32_SYSCALL_BIT`,
/// arch/x86/include/uapi/asm/unistd.h). x32 calls arrive with the native
/// AUDIT_ARCH_X86_64, so seccompiler's arch check lets them through with numbers
/// no deny rule matches.
pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Classic BPF encoding (include/uapi/linux/bpf_common.h, filter.h). libc has the
// constants as u32; sock_filter's code field is u16.
pub(super) const LD_W_ABS: u16 = opcode(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS);
pub(super) const JMP_JA: u16 = opcode(libc::BPF_JMP | libc::BPF_JA);
pub(super) const JMP_JEQ_K: u16 = opcode(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K);
pub(super) const JMP_JGE_K: u16 = opcode(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K);
pub(super) const JMP_JGT_K: u16 = opcode(libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K);
pub(super) const JMP_JSET_K: u16 = opcode(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K);
pub(super) const RET_K: u16 = opcode(libc::BPF_RET | libc::BPF_K);
/// `BPF_CLASS(code)`.
const CLASS_MASK: u16 = 0x07;
const CLASS_JMP: u16 = opcode(libc::BPF_JMP);

/// Offsets in `struct seccomp_data` (include/uapi/linux/seccomp.h).
pub(super) const DATA_NR: u32 = 0;
pub(super) const DATA_ARCH: u32 = 4;

#[allow(clippy::cast_possible_truncation)] // asserted to fit just above
pub(super) const fn opcode(code: u32) -> u16 {
    assert!(code <= 0xffff);
    code as u16
}

pub(super) fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub(super) fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

pub(super) fn errno_action(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno.unsigned_abs() & libc::SECCOMP_RET_DATA)
}

/// Turns every EPERM answer of `program` into SECCOMP_RET_USER_NOTIF, so that
/// the supervisor hears of each denied call and answers it with EPERM itself;
/// or, with `to_listener` false, back. Only `ret` instructions change: the
/// program's paths, and what it allows, stay as they were.
pub(super) fn route_eperm(program: &mut [sock_filter], to_listener: bool) {
    let (from, to) = if to_listener {
        (errno_action(libc::EPERM), libc::SECCOMP_RET_USER_NOTIF)
    } else {
        (libc::SECCOMP_RET_USER_NOTIF, errno_action(libc::EPERM))
    };
    for insn in program.iter_mut() {
        if insn.code == RET_K && insn.k == from {
            insn.k = to;
        }
    }
}

/// The x32 guard is inserted relative to seccompiler's arch check; refuse a
/// program whose start is not the check we reasoned about (a seccompiler upgrade
/// that changed its layout must fail here, not produce a filter with a hole).
pub(super) fn check_arch_prologue(program: &[sock_filter], target: TargetArch) -> Result<()> {
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
pub(super) fn x32_guard() -> [sock_filter; 2] {
    [
        jump(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, errno_action(libc::EPERM)),
    ]
}

/// ENOSYS for every number `arch`'s table does not name: above its highest,
/// then each hole. Placed after the x32 guard, which keeps x32's EPERM.
pub(super) fn unnamed_guard(arch: Arch) -> Vec<sock_filter> {
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

/// The offset of the low 32 bits of argument `n` in seccomp_data (both
/// architectures are little-endian).
pub(super) const fn arg_low(n: u32) -> u32 {
    16 + 8 * n
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags with NEW_LISTENER) -> EBUSY`, in
/// the program whose denials go to microbox's listener. No sandbox process
/// may install a listener of its own: while microbox's is open the kernel
/// refuses one with EBUSY anyway; once it is closed (microbox killed with
/// -9) it would not, and where two filters both answer USER_NOTIF the newest
/// wins, so its owner could let a denied call run
/// (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The program's own load (with its
/// listener) comes before the guard exists. Ends by loading nr again, for the
/// chains after it.
pub(super) fn listener_guard(arch: Arch) -> Result<Vec<sock_filter>> {
    let seccomp = syscalls::number_for(arch, "seccomp")
        .ok_or_else(|| Error::runtime(format!("no seccomp syscall in the {arch} table")))?;
    let flag = u32::try_from(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)
        .map_err(|_| Error::runtime("SECCOMP_FILTER_FLAG_NEW_LISTENER is wider than 32 bits"))?;
    Ok(vec![
        jump(JMP_JEQ_K, seccomp, 0, 5),
        stmt(LD_W_ABS, arg_low(0)),
        jump(JMP_JEQ_K, libc::SECCOMP_SET_MODE_FILTER, 0, 3),
        stmt(LD_W_ABS, arg_low(1)),
        jump(JMP_JSET_K, flag, 0, 1),
        stmt(RET_K, errno_action(libc::EBUSY)),
        stmt(LD_W_ABS, DATA_NR),
    ])
}

/// Put `guards` right after the syscall-number load, which follows the arch
/// check (index 3): seccompiler loads nr there, unless the filter has no rules,
/// in which case it returns the default action and we load nr ourselves.
pub(super) fn insert_after_nr_load(program: &mut BpfProgram, guards: &[sock_filter]) -> Result<()> {
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
    use crate::security::seccomp::interpreter::*;

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
}
