//! The process model: parent (supervisor), child (setup), init (PID 1).
#![forbid(unsafe_code)]

use crate::error::{Error, Result};
use crate::spec::Spec;

/// Runs the sandbox and returns microbox's exit status.
pub fn run(spec: &Spec) -> Result<i32> {
    let _ = spec;
    Err(Error::runtime("not implemented"))
}
