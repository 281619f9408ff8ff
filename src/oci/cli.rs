//! The OCI runtime command line (runc's): global flags, then a subcommand,
//! its flags, and the container id. What the engines really send is in
//! OCI-NOTES.md: `--flag value` and `--flag=value`, signal numbers and
//! names, `-a` and `--all`.

use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::{Arg, Parser, ValueExt};

use crate::error::{Error, Result};
use crate::spec::LogFormat;

/// Where container state lives unless `--root` says otherwise (DESIGN.md
/// section 10); fixed, because Podman passes no `--root`.
pub(crate) const DEFAULT_ROOT: &str = "/run/microbox/oci";

pub(crate) const SUBCOMMANDS: [&str; 8] = [
    "create", "start", "state", "kill", "delete", "exec", "ps", "features",
];

/// Global flags, before the subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Globals {
    pub root: PathBuf,
    pub log: Option<PathBuf>,
    pub log_format: LogFormat,
    pub systemd_cgroup: bool,
    pub debug: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CreateArgs {
    pub id: String,
    pub bundle: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecArgs {
    pub id: String,
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub cwd: Option<String>,
    pub env: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Create(CreateArgs),
    Start { id: String },
    State { id: String },
    Kill { id: String, signal: i32, all: bool },
    Delete { id: String, force: bool },
    Exec(ExecArgs),
    Ps { id: String, json: bool },
    Features,
}

/// Global flags that take a value.
const GLOBAL_VALUES: [&str; 3] = ["root", "log", "log-format"];
const GLOBAL_SWITCHES: [&str; 2] = ["systemd-cgroup", "debug"];

/// Whether argv (without argv[0]) is an OCI runtime call: global flags, if
/// any, then one of [`SUBCOMMANDS`]. A sandbox command of the same name is
/// run with `microbox -- NAME`.
pub fn is_oci_call(args: &[OsString]) -> bool {
    let mut words = args.iter().map(|a| a.to_str().unwrap_or(""));
    while let Some(word) = words.next() {
        if let Some(flag) = word.strip_prefix("--") {
            let name = flag.split('=').next().unwrap_or(flag);
            if GLOBAL_SWITCHES.contains(&name) {
                continue;
            }
            if GLOBAL_VALUES.contains(&name) {
                if !flag.contains('=') {
                    words.next();
                }
                continue;
            }
            return false;
        }
        return SUBCOMMANDS.contains(&word);
    }
    false
}

/// The log format asked for, for an error before the whole line parsed.
pub(crate) fn requested_log(args: &[OsString]) -> (Option<PathBuf>, LogFormat) {
    let mut log = None;
    let mut format = LogFormat::Text;
    let mut words = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(word) = words.next() {
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (word.clone(), None),
        };
        let value = || inline.clone().or_else(|| words.clone().next());
        match name.as_str() {
            "--log" => log = value().map(PathBuf::from),
            "--log-format" if value().as_deref() == Some("json") => format = LogFormat::Json,
            _ => {}
        }
    }
    (log, format)
}

fn usage(msg: impl Into<String>) -> Error {
    Error::usage(msg)
}

fn lex(err: lexopt::Error) -> Error {
    usage(err.to_string())
}

fn text(value: OsString, what: &str) -> Result<String> {
    value
        .into_string()
        .map_err(|v| usage(format!("{what} {v:?} is not UTF-8")))
}

/// Parses an OCI runtime call.
pub(crate) fn parse(args: Vec<OsString>) -> Result<(Globals, Op)> {
    let mut p = Parser::from_args(args);
    let mut g = Globals {
        root: PathBuf::from(DEFAULT_ROOT),
        log: None,
        log_format: LogFormat::Text,
        systemd_cgroup: false,
        debug: false,
    };
    let sub = loop {
        match p.next().map_err(lex)? {
            Some(Arg::Long("root")) => g.root = p.value().map_err(lex)?.into(),
            Some(Arg::Long("log")) => g.log = Some(p.value().map_err(lex)?.into()),
            Some(Arg::Long("log-format")) => {
                g.log_format = match p.value().map_err(lex)?.to_str() {
                    Some("json") => LogFormat::Json,
                    Some("text") => LogFormat::Text,
                    other => {
                        return Err(usage(format!(
                            "--log-format {other:?}: expected text or json"
                        )))
                    }
                }
            }
            Some(Arg::Long("systemd-cgroup")) => g.systemd_cgroup = true,
            Some(Arg::Long("debug")) => g.debug = true,
            Some(Arg::Value(word)) => break text(word, "subcommand")?,
            Some(other) => return Err(usage(format!("unknown global option {}", shown(&other)))),
            None => return Err(usage("no subcommand given")),
        }
    };
    if !g.root.is_absolute() {
        return Err(usage(format!(
            "--root {}: must be an absolute path",
            g.root.display()
        )));
    }
    let op = match sub.as_str() {
        "create" => parse_create(&mut p)?,
        "start" | "state" | "features" => {
            let words = positionals(&mut p, &[])?;
            match (sub.as_str(), words.as_slice()) {
                ("features", []) => Op::Features,
                ("start", [id]) => Op::Start { id: id.clone() },
                ("state", [id]) => Op::State { id: id.clone() },
                _ => {
                    return Err(usage(format!(
                        "{sub}: expected {}",
                        if sub == "features" {
                            "no arguments"
                        } else {
                            "one container id"
                        }
                    )))
                }
            }
        }
        "kill" => {
            let mut all = false;
            let mut words = Vec::new();
            while let Some(arg) = p.next().map_err(lex)? {
                match arg {
                    Arg::Short('a') | Arg::Long("all") => all = true,
                    Arg::Value(v) => words.push(text(v, "argument")?),
                    other => return Err(usage(format!("kill: unknown option {}", shown(&other)))),
                }
            }
            let (id, signal) = match words.as_slice() {
                [id] => (id.clone(), libc::SIGTERM),
                [id, sig] => (id.clone(), parse_signal(sig)?),
                _ => return Err(usage("kill: expected ID [SIGNAL]")),
            };
            Op::Kill { id, signal, all }
        }
        "delete" => {
            let mut force = false;
            let mut words = Vec::new();
            while let Some(arg) = p.next().map_err(lex)? {
                match arg {
                    Arg::Short('f') | Arg::Long("force") => force = true,
                    Arg::Value(v) => words.push(text(v, "argument")?),
                    other => {
                        return Err(usage(format!("delete: unknown option {}", shown(&other))))
                    }
                }
            }
            match words.as_slice() {
                [id] => Op::Delete {
                    id: id.clone(),
                    force,
                },
                _ => return Err(usage("delete: expected one container id")),
            }
        }
        "ps" => {
            let mut json = false;
            let mut words = Vec::new();
            while let Some(arg) = p.next().map_err(lex)? {
                match arg {
                    Arg::Short('f') | Arg::Long("format") => {
                        json = match p.value().map_err(lex)?.to_str() {
                            Some("json") => true,
                            Some("table") => false,
                            other => {
                                return Err(usage(format!(
                                    "ps --format {other:?}: expected json or table"
                                )))
                            }
                        }
                    }
                    Arg::Value(v) => words.push(text(v, "argument")?),
                    other => return Err(usage(format!("ps: unknown option {}", shown(&other)))),
                }
            }
            match words.as_slice() {
                [id] => Op::Ps {
                    id: id.clone(),
                    json,
                },
                _ => return Err(usage("ps: expected one container id")),
            }
        }
        "exec" => parse_exec(&mut p)?,
        other => return Err(usage(format!("unknown subcommand {other:?}"))),
    };
    let id = match &op {
        Op::Create(a) => Some(&a.id),
        Op::Exec(a) => Some(&a.id),
        Op::Start { id }
        | Op::State { id }
        | Op::Kill { id, .. }
        | Op::Delete { id, .. }
        | Op::Ps { id, .. } => Some(id),
        Op::Features => None,
    };
    if let Some(id) = id {
        check_id(id)?;
    }
    Ok((g, op))
}

/// A container id becomes a directory name under `--root`.
fn check_id(id: &str) -> Result<()> {
    let plain = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
    if id.is_empty() || id.len() > 255 || !plain || id == "." || id == ".." {
        return Err(usage(format!(
            "invalid container id {id:?}: expected 1-255 of [A-Za-z0-9_.+-]"
        )));
    }
    Ok(())
}

/// An argument as the error shows it: escaped, so a message stays one line.
fn shown(arg: &Arg<'_>) -> String {
    match arg {
        Arg::Short(c) => format!("-{}", c.escape_debug()),
        Arg::Long(name) => format!("--{}", name.escape_debug()),
        Arg::Value(v) => format!("{v:?}"),
    }
}

fn positionals(p: &mut Parser, _flags: &[&str]) -> Result<Vec<String>> {
    let mut words = Vec::new();
    while let Some(arg) = p.next().map_err(lex)? {
        match arg {
            Arg::Value(v) => words.push(text(v, "argument")?),
            other => return Err(usage(format!("unknown option {}", shown(&other)))),
        }
    }
    Ok(words)
}

fn parse_fd_count(value: OsString) -> Result<u32> {
    value
        .parse::<u32>()
        .map_err(|e| usage(format!("--preserve-fds: {e}")))
        .and_then(|n| {
            if n > 1 << 20 {
                Err(usage("--preserve-fds: too many"))
            } else {
                Ok(n)
            }
        })
}

fn parse_create(p: &mut Parser) -> Result<Op> {
    let mut a = CreateArgs {
        id: String::new(),
        bundle: None,
        pid_file: None,
        console_socket: None,
        preserve_fds: 0,
    };
    let mut words = Vec::new();
    while let Some(arg) = p.next().map_err(lex)? {
        match arg {
            Arg::Short('b') | Arg::Long("bundle") => {
                a.bundle = Some(p.value().map_err(lex)?.into())
            }
            Arg::Long("pid-file") => a.pid_file = Some(p.value().map_err(lex)?.into()),
            Arg::Long("console-socket") => a.console_socket = Some(p.value().map_err(lex)?.into()),
            Arg::Long("preserve-fds") => a.preserve_fds = parse_fd_count(p.value().map_err(lex)?)?,
            // Accepted: microbox always pivots, and never joins or makes a
            // session keyring for the container (the seccomp profile decides
            // whether it may).
            Arg::Long("no-pivot") | Arg::Long("no-new-keyring") => {}
            Arg::Value(v) => words.push(text(v, "argument")?),
            other => return Err(usage(format!("create: unknown option {}", shown(&other)))),
        }
    }
    match words.as_slice() {
        [id] => a.id = id.clone(),
        _ => return Err(usage("create: expected one container id")),
    }
    Ok(Op::Create(a))
}

fn parse_exec(p: &mut Parser) -> Result<Op> {
    let mut a = ExecArgs {
        id: String::new(),
        process: None,
        args: Vec::new(),
        detach: false,
        pid_file: None,
        tty: false,
        console_socket: None,
        preserve_fds: 0,
        cwd: None,
        env: Vec::new(),
    };
    let mut id = None;
    while let Some(arg) = p.next().map_err(lex)? {
        match arg {
            Arg::Short('p') | Arg::Long("process") => {
                a.process = Some(p.value().map_err(lex)?.into())
            }
            Arg::Short('d') | Arg::Long("detach") => a.detach = true,
            Arg::Long("pid-file") => a.pid_file = Some(p.value().map_err(lex)?.into()),
            Arg::Short('t') | Arg::Long("tty") => a.tty = true,
            Arg::Long("console-socket") => a.console_socket = Some(p.value().map_err(lex)?.into()),
            Arg::Long("preserve-fds") => a.preserve_fds = parse_fd_count(p.value().map_err(lex)?)?,
            Arg::Long("cwd") => a.cwd = Some(text(p.value().map_err(lex)?, "--cwd")?),
            Arg::Short('e') | Arg::Long("env") => {
                a.env.push(text(p.value().map_err(lex)?, "--env")?)
            }
            Arg::Value(v) => {
                id = Some(text(v, "container id")?);
                for word in p.raw_args().map_err(lex)? {
                    a.args.push(text(word, "argument")?);
                }
                if a.args.first().map(String::as_str) == Some("--") {
                    a.args.remove(0);
                }
                break;
            }
            other => return Err(usage(format!("exec: unknown option {}", shown(&other)))),
        }
    }
    a.id = id.ok_or_else(|| usage("exec: expected a container id"))?;
    if a.process.is_none() && a.args.is_empty() {
        return Err(usage(
            "exec: expected --process FILE or a command after the id",
        ));
    }
    if a.process.is_some() && !a.args.is_empty() {
        return Err(usage("exec: --process and a command exclude each other"));
    }
    if let Some(bad) = a.env.iter().find(|e| !e.contains('=')) {
        return Err(usage(format!("exec --env {bad:?}: expected NAME=VALUE")));
    }
    Ok(Op::Exec(a))
}

/// A signal as a number, a name, or a SIG-name, any case (runc's rules).
pub(crate) fn parse_signal(text: &str) -> Result<i32> {
    if let Ok(n) = text.parse::<i32>() {
        // 0: no signal, only the check that the container runs (runc's).
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        return Err(usage(format!("invalid signal {text:?}")));
    }
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(name, _)| *name == bare)
        .map(|(_, n)| *n)
        .ok_or_else(|| usage(format!("invalid signal {text:?}")))
}

const SIGNALS: [(&str, i32); 31] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("SYS", libc::SIGSYS),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn oci_calls_are_told_from_sandbox_commands() {
        assert!(is_oci_call(&args(&["create", "--bundle", "b", "x"])));
        assert!(is_oci_call(&args(&[
            "--root",
            "/r",
            "--log",
            "l",
            "--log-format=json",
            "kill",
            "x",
            "9"
        ])));
        assert!(is_oci_call(&args(&["--systemd-cgroup", "create", "x"])));
        assert!(!is_oci_call(&args(&["--", "ps"])));
        assert!(!is_oci_call(&args(&["--net", "host", "ps"])));
        assert!(!is_oci_call(&args(&["/bin/ps"])));
        assert!(!is_oci_call(&args(&[])));
    }

    #[test]
    fn what_conmon_and_the_shim_send_parses() {
        let (g, op) = parse(args(&[
            "--root=/run/c",
            "--log",
            "/b/log.json",
            "--log-format",
            "json",
            "--systemd-cgroup",
            "create",
            "--bundle",
            "/b",
            "--pid-file=/b/pid",
            "--no-pivot",
            "--no-new-keyring",
            "--preserve-fds",
            "2",
            "--console-socket",
            "/s",
            "c1",
        ]))
        .unwrap();
        assert_eq!(g.root, PathBuf::from("/run/c"));
        assert_eq!(g.log_format, LogFormat::Json);
        assert!(g.systemd_cgroup);
        let Op::Create(a) = op else { panic!() };
        assert_eq!((a.id.as_str(), a.preserve_fds), ("c1", 2));
        assert_eq!(a.console_socket, Some(PathBuf::from("/s")));
        assert_eq!(
            parse(args(&["kill", "--all", "c1", "9"])).unwrap().1,
            Op::Kill {
                id: "c1".into(),
                signal: 9,
                all: true
            }
        );
        assert_eq!(
            parse(args(&["kill", "-a", "c1", "KILL"])).unwrap().1,
            Op::Kill {
                id: "c1".into(),
                signal: 9,
                all: true
            }
        );
        assert_eq!(
            parse(args(&["delete", "-f", "c1"])).unwrap().1,
            Op::Delete {
                id: "c1".into(),
                force: true
            }
        );
        let Op::Exec(e) = parse(args(&[
            "exec",
            "--pid-file",
            "/p",
            "--process",
            "/f.json",
            "--detach",
            "--tty",
            "c1",
        ]))
        .unwrap()
        .1
        else {
            panic!()
        };
        assert!(e.detach && e.tty && e.process.is_some());
        let Op::Exec(e) = parse(args(&[
            "exec", "-e", "A=1", "--cwd", "/tmp", "c1", "sh", "-c", "echo",
        ]))
        .unwrap()
        .1
        else {
            panic!()
        };
        assert_eq!(e.args, ["sh", "-c", "echo"]);
        assert_eq!(
            parse(args(&["ps", "--format", "json", "c1"])).unwrap().1,
            Op::Ps {
                id: "c1".into(),
                json: true
            }
        );
    }

    #[test]
    fn signals_by_number_name_and_sig_name() {
        for (text, want) in [
            ("15", 15),
            ("TERM", 15),
            ("SIGTERM", 15),
            ("term", 15),
            ("sigkill", 9),
            ("WINCH", 28),
        ] {
            assert_eq!(parse_signal(text).unwrap(), want, "{text}");
        }
        assert_eq!(parse_signal("0").unwrap(), 0);
        for bad in ["65", "-1", "NOPE", "SIG", ""] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_calls_get_one_clear_line() {
        for (words, want) in [
            (&["create"][..], "expected one container id"),
            (&["create", "a", "b"][..], "expected one container id"),
            (&["kill", "c", "NOPE"][..], "invalid signal"),
            (&["state", "../x"][..], "invalid container id"),
            (&["--root", "rel", "state", "x"][..], "absolute"),
            (&["--log-format", "xml", "state", "x"][..], "--log-format"),
            (&["exec", "c"][..], "--process FILE or a command"),
            (&["start", "--bogus", "c"][..], "unknown option --bogus"),
        ] {
            let err = parse(args(words)).unwrap_err().to_string();
            assert!(err.contains(want), "{words:?}: {err}");
        }
    }
}
