//! Test support shared by the seccomp modules' unit tests: a classic-BPF
//! interpreter that runs the compiled programs as the kernel would, and
//! shorthands for asking them about one call. Tests check verdicts this way,
//! without loading a filter, for both architectures on any host.

use seccompiler::{sock_filter, BpfProgram};

use super::bpf_patch::{
    errno_action, opcode, DATA_ARCH, DATA_NR, JMP_JA, JMP_JEQ_K, JMP_JGE_K, JMP_JGT_K, JMP_JSET_K,
    LD_W_ABS, RET_K,
};
use super::{compile, profile_for};
use crate::security::syscalls::{self, Arch};

// include/uapi/linux/audit.h: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
pub(super) const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
pub(super) const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
pub(super) const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
pub(super) const AUDIT_ARCH_ARM: u32 = 40 | 0x4000_0000;

// Opcodes only seccompiler's argument checks use.
pub(super) const ALU_AND_K: u16 = opcode(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K);

pub(super) const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub(super) const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

pub(super) fn eperm() -> u32 {
    errno_action(libc::EPERM)
}

pub(super) fn enosys() -> u32 {
    errno_action(libc::ENOSYS)
}

pub(super) fn audit_arch(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => AUDIT_ARCH_X86_64,
        Arch::Aarch64 => AUDIT_ARCH_AARCH64,
    }
}

/// `struct seccomp_data` as the kernel fills it (instruction pointer left 0).
pub(super) struct Call {
    pub(super) nr: u32,
    pub(super) arch: u32,
    pub(super) args: [u64; 6],
}

/// The classic-BPF subset seccompiler and the x32 guard use, run the way the
/// kernel runs a seccomp filter. Panics on anything else, on an out-of-range
/// jump and on falling off the end, which the kernel's checker would reject.
pub(super) fn run(program: &[sock_filter], call: &Call) -> u32 {
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
pub(super) fn verdict(programs: &[BpfProgram], call: &Call) -> u32 {
    programs
        .iter()
        .map(|program| run(program, call))
        .min_by_key(|&ret| i32::from_ne_bytes((ret & libc::SECCOMP_RET_ACTION_FULL).to_ne_bytes()))
        .expect("at least one program")
}

pub(super) fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

pub(super) fn compiled(arch: Arch, allow: &[&str], deny: &[&str]) -> Vec<BpfProgram> {
    let profile = profile_for(arch, &strings(allow), &strings(deny), false).expect("profile");
    compile(&profile).expect("compile")
}

pub(super) fn nr(arch: Arch, name: &str) -> u32 {
    syscalls::number_for(arch, name).unwrap_or_else(|| panic!("{name} on {arch}"))
}

pub(super) fn call(arch: Arch, name: &str, args: [u64; 6]) -> Call {
    Call {
        nr: nr(arch, name),
        arch: audit_arch(arch),
        args,
    }
}

pub(super) fn ask(programs: &[BpfProgram], arch: Arch, name: &str, args: [u64; 6]) -> u32 {
    verdict(programs, &call(arch, name, args))
}

pub(super) const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];
pub(super) const NO_ARGS: [u64; 6] = [0; 6];

/// An ioctl request as a syscall argument (libc's type differs between gnu and musl).
pub(super) fn request(value: libc::Ioctl) -> u64 {
    u64::from(u32::try_from(value).expect("32-bit ioctl request"))
}

pub(super) fn flag(value: libc::c_int) -> u64 {
    u64::from(value.unsigned_abs())
}
