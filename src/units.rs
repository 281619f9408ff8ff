//! Sizes (`512M`, `2GB`, `1.5G`), CPU counts (`0.5`). Pure.
#![forbid(unsafe_code)]
