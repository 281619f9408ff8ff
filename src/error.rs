//! microbox's one error type: what failed, on which object, and why.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bad command line: exit 125 and `try 'microbox --help'`.
    Usage,
    /// Anything else microbox itself could not do: exit 125.
    Runtime,
}

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Usage,
            msg: msg.into(),
        }
    }

    pub fn runtime(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Runtime,
            msg: msg.into(),
        }
    }

    /// `cannot <what>: <strerror>`, e.g. `cannot mount proc on /proc: Permission denied`.
    pub fn os(what: impl fmt::Display, err: impl Into<std::io::Error>) -> Self {
        let err: std::io::Error = err.into();
        Error::runtime(format!("cannot {what}: {}", describe(&err)))
    }
}

/// `strerror` text without Rust's " (os error N)" suffix.
pub fn describe(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        if self.kind == Kind::Usage {
            f.write_str("; try 'microbox --help'")?;
        }
        Ok(())
    }
}
