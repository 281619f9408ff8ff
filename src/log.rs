//! Text and JSON-lines logging to stderr.
#![forbid(unsafe_code)]

use crate::spec::{LogFormat, LogLevel};

pub fn configure(level: LogLevel, format: LogFormat) {
    let _ = (level, format);
}

/// An error line: `microbox: <msg>` in text format.
pub fn error(msg: &str, fields: &[(&str, &str)]) {
    let _ = fields;
    eprintln!("microbox: {msg}");
}

pub fn warn(msg: &str, fields: &[(&str, &str)]) {
    let _ = (msg, fields);
}

pub fn info(msg: &str, fields: &[(&str, &str)]) {
    let _ = (msg, fields);
}
