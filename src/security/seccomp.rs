//! The seccomp profile: the default deny list plus `--allow-syscall`/`--deny-syscall`.
#![forbid(unsafe_code)]
