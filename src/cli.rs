//! Command-line parsing with lexopt into a validated `Spec`. Pure: no syscalls.
#![forbid(unsafe_code)]

use std::ffi::OsString;

use crate::error::{Error, Result};
use crate::spec::Spec;

pub enum Command {
    Help,
    Version,
    Run(Spec),
}

/// Parses argv without argv[0].
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command> {
    let _ = args;
    Err(Error::usage("not implemented"))
}

pub fn help_text() -> String {
    String::new()
}
