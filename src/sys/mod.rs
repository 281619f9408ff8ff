//! The only place with `unsafe`: thin wrappers of syscalls that rustix lacks.
