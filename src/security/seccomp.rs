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
//! (denied in `policy.rs`, or listed in `ALLOWED_SINCE_6_1` with the reason).
//!
//! Why several programs: a seccompiler filter has one match action, and we need
//! two answers (EPERM for the deny list, ENOSYS for io_uring and clone3 so that
//! programs fall back to epoll and clone). So there is one program per errno. The
//! kernel runs every loaded filter and keeps the most severe verdict; the profile
//! keeps each syscall in exactly one program, so the verdicts never compete.
//! The EPERM program is loaded last: it is the one `--deny-syscall` extends, so
//! even `--deny-syscall seccomp` cannot stop the programs after it from loading.
//!
//! One job per file: `policy.rs` holds the lists and their reasons,
//! `profile.rs` builds the [`Profile`], `compile.rs` turns it into BPF and loads
//! it, and `bpf_patch.rs` adds the guards seccompiler cannot express.

mod bpf_patch;
mod compile;
#[cfg(test)]
mod interpreter;
mod oci;
mod policy;
mod profile;

pub(crate) use compile::{compile, load, notify_denials};
pub(crate) use oci::{action_from_name, compile_oci, op_from_name, OciArg, OciRule, OciSeccomp};
pub use policy::{DEFAULT_ENOSYS, DEFAULT_EPERM};
pub(crate) use profile::profile;
#[cfg(test)]
use {policy::absent_on, profile::profile_for};
