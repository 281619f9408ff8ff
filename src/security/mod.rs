//! Syscall filtering and capabilities.

pub mod caps;
pub mod seccomp;
pub mod syscalls;
