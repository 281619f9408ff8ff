//! Syscall filtering and capabilities.

pub mod caps;
pub mod seccomp;
pub mod syscalls;
mod syscalls_aarch64;
mod syscalls_x86_64;
