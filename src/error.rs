//! microbox's one error type: what failed, on which object, and why, kept as
//! fields (so they can cross the parent/child channel and pick their hint);
//! `Display` composes the one line users see.

use std::fmt;
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bad command line: exit 125 and `try 'microbox --help'`.
    Usage,
    /// Anything else microbox itself could not do: exit 125.
    Runtime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    /// What microbox was doing, a verb phrase: `mount overlay on`, `write`,
    /// `create the sandbox namespaces (clone3)`. With `errno`, the key of the
    /// hint table. None for failures that are not an operation (bad input).
    pub op: Option<String>,
    /// What it was done to: `/proc`, `100000 to /sys/fs/cgroup/.../cpu.max`.
    pub object: Option<String>,
    /// The errno the kernel returned, when there is one.
    pub errno: Option<i32>,
    /// Why, in words, when there is no errno (or after its text, when there is).
    pub detail: Option<String>,
    /// What the user can do about it.
    pub hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    fn new(kind: Kind) -> Self {
        Error {
            kind,
            op: None,
            object: None,
            errno: None,
            detail: None,
            hint: None,
        }
    }

    /// A bad command line, said in `msg`.
    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        Error {
            detail: Some(msg.into()),
            ..Error::new(Kind::Usage)
        }
    }

    /// A failure that is not an operation on something: `msg` is the whole line.
    pub(crate) fn runtime(msg: impl Into<String>) -> Self {
        Error {
            detail: Some(msg.into()),
            ..Error::new(Kind::Runtime)
        }
    }

    /// `cannot <op>: <strerror>`. An `io::Error` without an errno keeps its text
    /// as the detail. The hint, if any, comes from [`hint_for`].
    pub(crate) fn os(op: impl fmt::Display, err: impl Into<io::Error>) -> Self {
        let err: io::Error = err.into();
        let op = op.to_string();
        let errno = err.raw_os_error();
        Error {
            hint: errno
                .and_then(|errno| hint_for(&op, errno))
                .map(str::to_string),
            detail: errno.is_none().then(|| describe(&err)),
            op: Some(op),
            errno,
            ..Error::new(Kind::Runtime)
        }
    }

    /// `cannot <op>: <why>`: an operation that failed for a reason in words.
    pub(crate) fn failed(op: impl fmt::Display, why: impl Into<String>) -> Self {
        Error {
            op: Some(op.to_string()),
            detail: Some(why.into()),
            ..Error::new(Kind::Runtime)
        }
    }

    /// The same error, naming the object it was about.
    pub(crate) fn on(mut self, object: impl fmt::Display) -> Self {
        self.object = Some(object.to_string());
        self
    }

    /// The same error with advice only the caller has the context for; replaces
    /// the table's.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The same error with a second cause in words.
    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Advice that follows from the operation and the errno alone; advice that
/// needs more context (which file, which image) is given where the error is
/// made, with [`Error::hint`]. Modelled on bubblewrap's per-errno advice: each
/// cause of the same operation's failure gets its own fix.
const HINTS: &[(&str, i32, &str)] = &[
    (
        CLONE_OP,
        libc::EPERM,
        "new namespaces are forbidden here: inside a container without CAP_SYS_ADMIN, \
         under a seccomp policy that blocks them, or in a chroot; run microbox on the host",
    ),
    (
        CLONE_OP,
        libc::ENOSPC,
        "a namespace limit is reached: see /proc/sys/user/max_user_namespaces and the other \
         max_*_namespaces there (0 disables that namespace)",
    ),
    (
        CLONE_OP,
        libc::EUSERS,
        "user namespaces are nested too deeply (the kernel allows 32 levels)",
    ),
    (
        CLONE_OP,
        libc::EINVAL,
        "the kernel lacks something microbox needs: Linux 5.12 or later \
         with user, pid, time (CONFIG_TIME_NS) and network namespaces",
    ),
    (
        CLONE_OP,
        libc::ENOSYS,
        "the kernel has no clone3 (Linux 5.3 or later), or a seccomp policy hides it",
    ),
    (
        "create the cgroup namespace",
        libc::EINVAL,
        "the kernel has no cgroup namespaces (CONFIG_CGROUPS, Linux 4.6 or later)",
    ),
    (
        "mount overlay on",
        libc::ENODEV,
        "is the overlay module loaded? try 'modprobe overlay'",
    ),
];

/// The operation whose hints depend most on the host: the clone into new namespaces.
pub(crate) const CLONE_OP: &str = "create the sandbox namespaces (clone3)";

/// The table's advice for `op` failing with `errno`.
pub(crate) fn hint_for(op: &str, errno: i32) -> Option<&'static str> {
    HINTS
        .iter()
        .find(|(key, code, _)| *key == op && *code == errno)
        .map(|(_, _, hint)| *hint)
}

/// Makes every panic, in the supervisor, the clone3 child or init, end as one
/// `microbox: internal error: ...` line and exit 125 (microbox's own failure),
/// instead of Rust's panic text and the release profile's abort (exit 134).
/// Nothing is unwound: a child must never return into the parent's code, and
/// the next run collects what an aborted supervisor leaves.
pub fn exit_125_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        crate::log::error(
            &format!("internal error: {what}{at} (a bug: please report it)"),
            &[],
        );
        crate::sys::exec::exit_now(125)
    }));
}

/// `strerror` text without Rust's " (os error N)" suffix.
pub(crate) fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = self
            .errno
            .map(|errno| describe(&io::Error::from_raw_os_error(errno)));
        match &self.op {
            Some(op) => {
                write!(f, "cannot {op}")?;
                if let Some(object) = &self.object {
                    write!(f, " {object}")?;
                }
                let mut sep = ": ";
                for part in [&why, &self.detail].into_iter().flatten() {
                    write!(f, "{sep}{part}")?;
                    sep = ": ";
                }
            }
            None => match (&self.detail, &why) {
                (Some(detail), _) => f.write_str(detail)?,
                (None, Some(why)) => f.write_str(why)?,
                (None, None) => f.write_str("unknown error")?,
            },
        }
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        if self.kind == Kind::Usage {
            f.write_str("; try 'microbox --help'")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_reads_as_one_line_with_its_errno_text() {
        let err = Error::os("mount proc on", io::Error::from_raw_os_error(libc::EPERM)).on("/proc");
        assert_eq!(
            err.to_string(),
            "cannot mount proc on /proc: Operation not permitted"
        );
        assert_eq!(err.errno, Some(libc::EPERM));
        assert_eq!(err.op.as_deref(), Some("mount proc on"));
        assert_eq!(err.object.as_deref(), Some("/proc"));
    }

    #[test]
    fn each_clone_errno_gets_its_own_hint() {
        let hints: Vec<String> = [libc::EPERM, libc::ENOSPC, libc::EINVAL, libc::ENOSYS]
            .into_iter()
            .map(|errno| {
                let err = Error::os(CLONE_OP, io::Error::from_raw_os_error(errno));
                let hint = err.hint.clone().expect("a hint");
                assert!(err.to_string().ends_with(&format!(" ({hint})")), "{err}");
                hint
            })
            .collect();
        let mut distinct = hints.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), hints.len());
        assert!(hints[1].contains("max_user_namespaces"));
        let none = Error::os(CLONE_OP, io::Error::from_raw_os_error(libc::ENOMEM));
        assert_eq!(none.hint, None);
    }

    #[test]
    fn a_callers_hint_replaces_the_tables() {
        let err = Error::os(CLONE_OP, io::Error::from_raw_os_error(libc::EPERM)).hint("mine");
        assert!(err.to_string().ends_with(" (mine)"));
    }

    #[test]
    fn an_io_error_without_errno_keeps_its_text() {
        let short = io::Error::new(io::ErrorKind::WriteZero, "short write (1 of 2 bytes)");
        let err = Error::os("write", short).on("1 to /x");
        assert_eq!(err.errno, None);
        assert_eq!(
            err.to_string(),
            "cannot write 1 to /x: short write (1 of 2 bytes)"
        );
    }

    /// Runs itself again as a child test process that installs the hook and
    /// panics; a unit test cannot otherwise see a process end.
    #[test]
    fn a_panic_ends_as_one_microbox_line_and_exit_125() {
        const NAME: &str = "error::tests::a_panic_ends_as_one_microbox_line_and_exit_125";
        if std::env::var_os("MICROBOX_TEST_PANIC").is_some() {
            exit_125_on_panic();
            panic!("on purpose");
        }
        let exe = std::env::current_exe().expect("test executable");
        let out = std::process::Command::new(exe)
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("MICROBOX_TEST_PANIC", "1")
            .output()
            .expect("run the test executable");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with("microbox: internal error: on purpose at src/error.rs:"),
            "{stderr}"
        );
    }

    #[test]
    fn usage_and_plain_errors_read_as_before() {
        assert_eq!(
            Error::usage("no command given").to_string(),
            "no command given; try 'microbox --help'"
        );
        assert_eq!(Error::runtime("gone").to_string(), "gone");
        assert_eq!(
            Error::failed("lock", "in use").on("/run/x").to_string(),
            "cannot lock /run/x: in use"
        );
    }
}
