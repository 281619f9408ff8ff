//! Resource limits: one interface, two backends (cgroup v1 and v2).
#![forbid(unsafe_code)]
