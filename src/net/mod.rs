//! Networking: loopback in a new namespace; bridge mode comes later.
#![forbid(unsafe_code)]
