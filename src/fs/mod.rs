//! The sandbox's filesystem: root, /proc, /dev, bind mounts.
#![forbid(unsafe_code)]
