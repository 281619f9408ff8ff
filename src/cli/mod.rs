//! Command-line parsing with lexopt into a validated `Spec`. Pure: no syscalls.
//!
//! Everything that can be judged from the text alone is judged here; whether a
//! path exists or is a directory is left to preflight, so parsing never touches
//! the host and can be fuzzed. The options themselves are the table in `options`.

mod help;
mod options;
#[cfg(test)]
mod tests;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use lexopt::Arg;

use crate::error::{Error, Result};
use crate::spec::{LogFormat, NetMode, Spec};

pub use help::{help_frame, help_text, option_docs, version_line, OptionDoc};
pub(crate) use options::Action;
#[cfg(test)]
use options::DefaultText;
pub use options::{CliOption, OPTIONS};

// One Command per process, returned once: boxing the Spec would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Version,
    Run(Spec),
    /// `--net-cleanup`: remove bridge mode's host state for `bridge`.
    NetCleanup {
        bridge: String,
    },
}

/// Values are echoed in error messages; a fuzzer or a pasted file could make them huge.
const MAX_SHOWN_CHARS: usize = 100;

/// Parses argv without argv[0].
///
/// Options come first; the command starts after `--` or at the first word that
/// is not an option, and none of its words is read as ours.
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command> {
    let args: Vec<OsString> = args.into_iter().collect();
    // The kernel cannot pass a NUL inside an argument; only a caller of this
    // library can, and such a word could never reach execve intact.
    if let Some(bad) = args.iter().find(|a| a.as_bytes().contains(&0)) {
        return Err(Error::usage(format!(
            "argument {} contains a NUL byte",
            shown(bad)
        )));
    }
    let mut parser = lexopt::Parser::from_args(args);
    let mut spec = Spec::default();
    loop {
        let option = match parser.next().map_err(lexopt_error)? {
            None => break,
            Some(Arg::Long(name)) => {
                options::by_long(name).ok_or_else(|| unknown_option(&format!("--{name}")))?
            }
            Some(Arg::Short(c)) => {
                options::by_short(c).ok_or_else(|| unknown_option(&format!("-{c}")))?
            }
            Some(Arg::Value(first)) => {
                spec.command.push(first);
                spec.command
                    .extend(parser.raw_args().map_err(lexopt_error)?);
                break;
            }
        };
        // A value given to an option without one (`--readonly=yes`) is an
        // error from lexopt's next call; `--help=x` returns before that.
        let apply = match option.action {
            Action::ShowHelp => return Ok(Command::Help),
            Action::ShowVersion => return Ok(Command::Version),
            Action::Switch(set) => {
                set(&mut spec);
                continue;
            }
            Action::Value { apply, .. } => apply,
        };
        let value = parser.value().map_err(|_| missing_value(option.long))?;
        // `--memory -- cmd` forgot the value; reading `--` as one would give a
        // confusing "not a size" and swallow the separator.
        if value == "--" {
            return Err(missing_value(option.long));
        }
        apply(&mut spec, &value).map_err(|reason| {
            Error::usage(format!("--{} {}: {reason}", option.long, shown(&value)))
        })?;
    }
    if spec.net_cleanup {
        if !spec.command.is_empty() {
            return Err(Error::usage("--net-cleanup takes no command"));
        }
        return Ok(Command::NetCleanup {
            bridge: spec.bridge,
        });
    }
    if let Some(option) = spec.bridge_option_used() {
        if spec.net != NetMode::Bridge {
            return Err(Error::usage(format!("{option} needs --net bridge")));
        }
    }
    match spec.command.first() {
        None => Err(Error::usage(
            "no command given (e.g. microbox -- /bin/sh -c 'echo hi')",
        )),
        Some(program) if program.is_empty() => Err(Error::usage("the command name is empty")),
        Some(_) => Ok(Command::Run(spec)),
    }
}

/// The name is echoed through `shown`: it is user text like any value.
fn unknown_option(option: &str) -> Error {
    Error::usage(format!("unknown option {}", shown(OsStr::new(option))))
}

fn missing_value(name: &str) -> Error {
    Error::usage(format!("--{name} needs a value"))
}

fn lexopt_error(err: lexopt::Error) -> Error {
    match err {
        lexopt::Error::UnexpectedValue { option, value } => {
            Error::usage(format!("{option} takes no value, got {}", shown(&value)))
        }
        lexopt::Error::MissingValue {
            option: Some(option),
        } => Error::usage(format!("{option} needs a value")),
        lexopt::Error::UnexpectedOption(option) => unknown_option(&option),
        // Not produced by the calls above; keep lexopt's own words, on one line.
        other => Error::usage(one_line(&other.to_string())),
    }
}

/// A value as it appears in an error message: quoted, on one line, bounded.
fn shown(value: &OsStr) -> String {
    let text = String::from_utf8_lossy(value.as_bytes());
    let mut out = String::from("'");
    for (i, c) in text.chars().enumerate() {
        if i == MAX_SHOWN_CHARS {
            out.push_str("...");
            break;
        }
        push_visible(&mut out, c);
    }
    out.push('\'');
    out
}

fn one_line(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        push_visible(&mut out, c);
    }
    out
}

/// Control characters would break the one-line promise or drive the terminal.
fn push_visible(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        c => out.push(c),
    }
}

/// The `--log-format` a command line asks for, found without a full parse, so
/// that a usage error is reported in the format the caller reads. Stops at `--`.
pub fn requested_log_format(args: &[OsString]) -> LogFormat {
    let mut words = args.iter().take_while(|a| a.as_os_str() != "--");
    while let Some(word) = words.next() {
        let Some(option) = word.to_str().and_then(|w| w.strip_prefix("--")) else {
            continue;
        };
        let value = match option.split_once('=') {
            Some((name, value)) if name == options::LOG_FORMAT => Some(OsStr::new(value)),
            None if option == options::LOG_FORMAT => words.next().map(OsString::as_os_str),
            _ => None,
        };
        if value.is_some_and(|v| v == "json") {
            return LogFormat::Json;
        }
    }
    LogFormat::Text
}
