//! The only place with `unsafe`: thin wrappers of the syscalls that rustix lacks
//! (clone3, mount_setattr, close_range, signal masks, fork/execve, one ioctl).
//! Each wrapper does one syscall and returns `io::Result`; policy lives elsewhere.
//! A wrapper whose soundness needs a process state checks it: clone3 and fork
//! refuse unless the process is single-threaded.

pub mod bpf;
pub mod clone;
pub mod exec;
pub mod fd;
pub mod mount;
pub mod netdev;
pub mod netlink;
pub mod ns;
pub mod seccomp;
pub mod signal;
