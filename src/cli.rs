//! Command-line parsing with lexopt into a validated `Spec`. Pure: no syscalls.
//!
//! Everything that can be judged from the text alone is judged here; whether a
//! path exists or is a directory is left to preflight, so parsing never touches
//! the host and can be fuzzed.
#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use lexopt::Arg;

use crate::error::{Error, Result};
use crate::security::{caps, syscalls};
use crate::spec::{
    BindMount, FsMode, LogFormat, LogLevel, NetMode, PidsLimit, Spec, UsernsMode, DEFAULT_DNS,
    DEFAULT_MEMORY, DEFAULT_MILLICPUS, DEFAULT_PIDS, DEFAULT_STOP_TIMEOUT, DEFAULT_STORAGE,
};
use crate::units;

// One Command per process, returned once: boxing the Spec would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Version,
    Run(Spec),
}

/// Options that take a value, as `--name VALUE` or `--name=VALUE`.
const VALUE_OPTIONS: &[&str] = &[
    "fs",
    "mount-ro",
    "mount-rw",
    "net",
    "dns",
    "hostname",
    "allow-syscall",
    "deny-syscall",
    "cap-add",
    "cap-drop",
    "userns",
    "cpus",
    "memory",
    "storage",
    "pids",
    "stop-timeout",
    "env",
    "log-level",
    "log-format",
];

/// `HOST_NAME_MAX` on Linux.
const MAX_HOSTNAME_LEN: usize = 64;

/// Values are echoed in error messages; a fuzzer or a pasted file could make them huge.
const MAX_SHOWN_CHARS: usize = 100;

const SIZE_HINT: &str = "use e.g. 512M, 2G";

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
        let arg = parser.next().map_err(lexopt_error)?;
        let name = match arg {
            None => break,
            Some(Arg::Short('h') | Arg::Long("help")) => return Ok(Command::Help),
            Some(Arg::Short('V') | Arg::Long("version")) => return Ok(Command::Version),
            Some(Arg::Long("readonly")) => {
                spec.readonly = true;
                continue;
            }
            Some(Arg::Long(name)) if VALUE_OPTIONS.contains(&name) => name.to_string(),
            Some(Arg::Long(name)) => return Err(unknown_option(&format!("--{name}"))),
            Some(Arg::Short(c)) => return Err(unknown_option(&format!("-{c}"))),
            Some(Arg::Value(first)) => {
                spec.command.push(first);
                spec.command
                    .extend(parser.raw_args().map_err(lexopt_error)?);
                break;
            }
        };
        let value = parser.value().map_err(|_| missing_value(&name))?;
        // `--memory -- cmd` forgot the value; reading `--` as one would give a
        // confusing "not a size" and swallow the separator.
        if value == "--" {
            return Err(missing_value(&name));
        }
        apply(&mut spec, &name, &value)?;
    }
    match spec.command.first() {
        None => Err(Error::usage(
            "no command given (e.g. microbox -- /bin/sh -c 'echo hi')",
        )),
        Some(program) if program.is_empty() => Err(Error::usage("the command name is empty")),
        Some(_) => Ok(Command::Run(spec)),
    }
}

/// Applies one `--name value` to the spec, or says what is wrong with the value.
fn apply(spec: &mut Spec, name: &str, value: &OsStr) -> Result<()> {
    let bad = |reason: &str| Error::usage(format!("--{name} {}: {reason}", shown(value)));
    // Every option but the path-like and env ones is plain text.
    let text = || value.to_str().ok_or_else(|| bad("not valid UTF-8"));
    match name {
        "fs" => {
            spec.fs = match value.as_bytes() {
                b"" => return Err(bad("empty (use tmpfs, host or a directory)")),
                b"tmpfs" => FsMode::Tmpfs,
                b"host" => FsMode::Host,
                _ => FsMode::Dir(PathBuf::from(value)),
            }
        }
        "mount-ro" | "mount-rw" => {
            let mount = parse_mount(value, name == "mount-rw").map_err(|reason| bad(&reason))?;
            spec.mounts.push(mount);
        }
        "net" => {
            spec.net = match text()? {
                "none" => NetMode::None,
                "host" => NetMode::Host,
                "bridge" => NetMode::Bridge,
                _ => return Err(bad("unknown mode (use none, host or bridge)")),
            }
        }
        "dns" => {
            let ip = text()?
                .parse::<IpAddr>()
                .map_err(|_| bad("not an IP address (use e.g. 1.1.1.1 or 2606:4700::1111)"))?;
            spec.dns.push(ip);
        }
        "hostname" => {
            let hostname = text()?;
            check_hostname(hostname).map_err(&bad)?;
            spec.hostname = Some(hostname.to_string());
        }
        "allow-syscall" | "deny-syscall" => {
            let syscall = text()?;
            if syscalls::number(syscall).is_none() {
                return Err(bad("unknown syscall"));
            }
            let list = if name == "allow-syscall" {
                &mut spec.allow_syscalls
            } else {
                &mut spec.deny_syscalls
            };
            list.push(syscall.to_string());
        }
        "cap-add" | "cap-drop" => {
            let cap = caps::from_name(text()?)
                .ok_or_else(|| bad("unknown capability (use e.g. NET_ADMIN or CAP_NET_ADMIN)"))?;
            if name == "cap-add" {
                spec.cap_add.push(cap);
            } else {
                spec.cap_drop.push(cap);
            }
        }
        "userns" => {
            spec.userns = match text()? {
                "isolated" => UsernsMode::Isolated,
                "host" => UsernsMode::Host,
                _ => return Err(bad("unknown mode (use isolated or host)")),
            }
        }
        "cpus" => {
            spec.millicpus = units::parse_cpus(text()?)
                .map_err(|reason| bad(&format!("{reason} (use e.g. 0.5, 2)")))?;
        }
        "memory" | "storage" => {
            let bytes = units::parse_size(text()?)
                .map_err(|reason| bad(&format!("{reason} ({SIZE_HINT})")))?;
            if name == "memory" {
                spec.memory = bytes;
            } else {
                spec.storage = bytes;
            }
        }
        "pids" => spec.pids = parse_pids(text()?).map_err(&bad)?,
        "stop-timeout" => {
            spec.stop_timeout = units::parse_duration(text()?)
                .map_err(|reason| bad(&format!("{reason} (use e.g. 500ms, 10s, 2m)")))?;
        }
        "env" => spec.env.push(parse_env(value).map_err(&bad)?),
        "log-level" => {
            spec.log_level = match text()? {
                "error" => LogLevel::Error,
                "warn" => LogLevel::Warn,
                "info" => LogLevel::Info,
                _ => return Err(bad("unknown level (use error, warn or info)")),
            }
        }
        "log-format" => {
            spec.log_format = match text()? {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(bad("unknown format (use text or json)")),
            }
        }
        // `parse` only calls this for names in VALUE_OPTIONS, all handled above.
        _ => return Err(unknown_option(&format!("--{name}"))),
    }
    Ok(())
}

/// `HOST:DEST`, split on the first ':' so that DEST may contain ':' but HOST may not.
/// HOST's existence is preflight's business; DEST must be absolute and free of `..`,
/// so it can never name anything outside the sandbox's root.
fn parse_mount(value: &OsStr, writable: bool) -> std::result::Result<BindMount, String> {
    let bytes = value.as_bytes();
    let Some(colon) = bytes.iter().position(|&b| b == b':') else {
        return Err("no destination (use HOST:DEST, e.g. /srv/data:/data)".to_string());
    };
    let source = &bytes[..colon];
    let dest = &bytes[colon + 1..];
    if source.is_empty() {
        return Err("empty host path (use HOST:DEST, e.g. /srv/data:/data)".to_string());
    }
    if dest.is_empty() {
        return Err("no destination (use HOST:DEST, e.g. /srv/data:/data)".to_string());
    }
    let dest = Path::new(OsStr::from_bytes(dest));
    if !dest.is_absolute() {
        return Err("the destination must be an absolute path".to_string());
    }
    if dest.components().any(|c| c == Component::ParentDir) {
        return Err("the destination must not contain '..'".to_string());
    }
    if let Some(reserved) = crate::fs::reserved_destination(dest) {
        return Err(format!(
            "{reserved} is set up by microbox and cannot be a mount destination"
        ));
    }
    Ok(BindMount {
        source: PathBuf::from(OsStr::from_bytes(source)),
        // Drops `.`, repeated and trailing slashes: later stages compare destinations.
        dest: dest.components().collect(),
        writable,
    })
}

/// `KEY=VALUE`: the key is everything before the first '=', so it can never contain
/// one; the value may be empty or contain more '='.
fn parse_env(value: &OsStr) -> std::result::Result<(OsString, OsString), &'static str> {
    let bytes = value.as_bytes();
    let Some(eq) = bytes.iter().position(|&b| b == b'=') else {
        return Err("not KEY=VALUE (use e.g. MY_VAR=hello)");
    };
    if eq == 0 {
        return Err("empty variable name (use KEY=VALUE)");
    }
    Ok((
        OsStr::from_bytes(&bytes[..eq]).to_os_string(),
        OsStr::from_bytes(&bytes[eq + 1..]).to_os_string(),
    ))
}

/// Stricter than the kernel (which takes any 64 bytes): a name that every resolver,
/// shell prompt and log line can show as it is.
fn check_hostname(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > MAX_HOSTNAME_LEN {
        return Err("longer than 64 bytes");
    }
    if name.contains('/') {
        return Err("contains '/'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err("use only letters, digits, '-' and '.'");
    }
    Ok(())
}

fn parse_pids(text: &str) -> std::result::Result<PidsLimit, &'static str> {
    if text == "max" {
        return Ok(PidsLimit::Max);
    }
    // u32's FromStr takes a leading '+'; a count is digits only.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a number (use a count such as 512, or max)");
    }
    match text.parse::<u32>() {
        Ok(0) => Err("must be at least 1 (use max for no limit)"),
        Ok(n) if n <= crate::cgroup::MAX_PIDS => Ok(PidsLimit::Limit(n)),
        _ => Err("above the kernel's limit of 4194304 (use max for no limit)"),
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

/// The `--help` text: every option with its default, grouped as the README groups them.
/// The `--log-format` a command line asks for, found without a full parse, so
/// that a usage error is reported in the format the caller reads. Stops at `--`.
pub fn requested_log_format(args: &[OsString]) -> LogFormat {
    let mut words = args.iter().take_while(|a| a.as_os_str() != "--");
    while let Some(word) = words.next() {
        let json = if word == "--log-format" {
            words.next().is_some_and(|v| v == "json")
        } else {
            word == "--log-format=json"
        };
        if json {
            return LogFormat::Json;
        }
    }
    LogFormat::Text
}

pub fn help_text() -> String {
    let dns = DEFAULT_DNS.join(" and ");
    let cpus = units::format_cpus(DEFAULT_MILLICPUS);
    let memory = units::format_size(DEFAULT_MEMORY);
    let storage = units::format_size(DEFAULT_STORAGE);
    format!(
        "\
microbox {version}: run a command in an ephemeral, isolated Linux sandbox

Usage: microbox [OPTIONS] [--] COMMAND [ARG]...

The command starts after '--' or at the first word that is not an option;
none of its words is read as a microbox option. An option's value is the
next word or follows '=': --memory 512M, --memory=512M.

Filesystem:
  --fs MODE|DIR         root filesystem: tmpfs (empty, in memory, with only
                        /proc and /dev), host (the host's own tree, writable),
                        or a directory used read-only as the image under an
                        in-memory writable layer (default: tmpfs)
  --mount-ro HOST:DEST  bind HOST read-only at DEST; split at the first ':',
                        DEST absolute, without '..', not /, /proc or /dev
                        (repeatable)
  --mount-rw HOST:DEST  as --mount-ro, but writable: writes reach the host
                        (repeatable)
  --readonly            make the root filesystem read-only; /tmp and /dev/shm
                        stay writable (default: writable)

Network:
  --net MODE            none (a private network with only lo), host (the
                        host's network); bridge (veth and NAT) is not
                        implemented yet and is refused (default: none)
  --dns IP              DNS server for /etc/resolv.conf, IPv4 or IPv6
                        (repeatable; default: {dns})
  --hostname NAME       up to 64 letters, digits, '-' and '.'
                        (default: a random adjective-noun)

Security:
  --allow-syscall NAME  remove NAME from the seccomp deny list (repeatable)
  --deny-syscall NAME   add NAME to the seccomp deny list (repeatable;
                        default: the README's profile, which denies module
                        loading, mount, ptrace, bpf, namespaces and more)
  --cap-add CAP         add a capability, e.g. NET_ADMIN or CAP_NET_ADMIN
                        (repeatable)
  --cap-drop CAP        drop a capability (repeatable; default set: CHOWN,
                        DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID,
                        SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE,
                        SYS_CHROOT, KILL, AUDIT_WRITE; without MKNOD,
                        SETFCAP and FSETID, and with no setuid/setgid modes,
                        when a --mount-rw or --fs host makes host storage
                        writable)
  --userns MODE         isolated (a new user namespace mapping ids 0-65535)
                        or host (the host's) (default: isolated)

Limits:
  --cpus N              CPU cores, fractions allowed, 0.01 to 1024
                        (default: {cpus})
  --memory SIZE         memory limit; swap is disabled (default: {memory})
  --storage SIZE        size of the in-memory writable layer (default: {storage})
  --pids N|max          most processes at once, or max for no limit
                        (default: {pids})
  --stop-timeout DURATION
                        after SIGTERM, SIGINT, SIGHUP or SIGQUIT, how long the
                        sandbox has to end before it is killed; a second such
                        signal kills it at once (default: {stop_timeout})

Other:
  --env KEY=VALUE       set a variable; the environment starts with only PATH,
                        HOME, TERM and LANG (repeatable; a later KEY wins)
  --log-level LEVEL     error, warn or info (default: error)
  --log-format FORMAT   text, or json for one object per line (default: text)
  -h, --help            print this help
  -V, --version         print the version

SIZE is a number with an optional unit K, M, G or T (also KB, MB, GB, TB, any
case), in powers of 1024, e.g. 512M, 1.5G; without a unit it counts bytes.
DURATION is a number with a unit ms, s, m or h, e.g. 500ms, 10s, 2m; without
a unit it counts seconds.

Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH go
to the command; after the first four, every process of the sandbox is also
sent SIGCONT, so a stopped one ends too. SIGTSTP stops the whole sandbox
(SIGSTOP) and then microbox itself; SIGCONT resumes both.

Exit status:
  125     microbox itself failed, a bad command line included
  126     the command was found but could not be executed
  127     the command was not found
  128+N   the command was killed by signal N
  other   the command's own exit status
",
        version = env!("CARGO_PKG_VERSION"),
        pids = DEFAULT_PIDS,
        stop_timeout = units::format_duration(DEFAULT_STOP_TIMEOUT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options that take no value.
    const FLAG_OPTIONS: &[&str] = &["readonly", "help", "version"];

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    /// The spec for `words` followed by a command.
    fn run(words: &[&str]) -> Spec {
        let mut all = args(words);
        all.push("/bin/true".into());
        match parse(all) {
            Ok(Command::Run(spec)) => spec,
            other => panic!("{words:?}: expected a spec, got {other:?}"),
        }
    }

    /// The message of the usage error for `words` followed by a command.
    fn fail(words: &[&str]) -> String {
        let mut all = args(words);
        all.push("/bin/true".into());
        fail_exact(all)
    }

    fn fail_exact(all: Vec<OsString>) -> String {
        let shown = format!("{all:?}");
        match parse(all) {
            Err(err) => {
                assert_eq!(err.kind, crate::error::Kind::Usage, "{shown}");
                let line = err.to_string();
                assert!(!line.contains('\n'), "{shown}: not one line: {line:?}");
                assert!(line.ends_with("; try 'microbox --help'"), "{line}");
                err.msg
            }
            Ok(other) => panic!("{shown}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let spec = run(&[]);
        assert_eq!(
            spec,
            Spec {
                command: args(&["/bin/true"]),
                ..Spec::default()
            }
        );
    }

    #[test]
    fn help_and_version() {
        for words in [
            &["--help"][..],
            &["-h"],
            &["--memory", "1G", "--help"],
            &["-h", "x"],
        ] {
            assert_eq!(parse(args(words)).ok(), Some(Command::Help), "{words:?}");
        }
        for words in [&["--version"][..], &["-V"], &["-V", "/bin/sh"]] {
            assert_eq!(parse(args(words)).ok(), Some(Command::Version), "{words:?}");
        }
        // After the command starts, --help is the command's.
        let Ok(Command::Run(spec)) = parse(args(&["ls", "--help"])) else {
            panic!("ls --help");
        };
        assert_eq!(spec.command, args(&["ls", "--help"]));
    }

    #[test]
    fn command_boundaries() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["/bin/sh", "-c", "x"], &["/bin/sh", "-c", "x"]),
            (&["--", "/bin/sh", "-c", "x"], &["/bin/sh", "-c", "x"]),
            (&["--", "--memory", "1G"], &["--memory", "1G"]),
            (&["--", "--"], &["--"]),
            (&["--readonly", "ls", "--readonly"], &["ls", "--readonly"]),
            (&["ls", "--", "-x"], &["ls", "--", "-x"]),
            (&["-", "x"], &["-", "x"]),
            (&["--net=host", "env", "-i"], &["env", "-i"]),
        ];
        for &(words, command) in cases {
            let spec = match parse(args(words)) {
                Ok(Command::Run(spec)) => spec,
                other => panic!("{words:?}: {other:?}"),
            };
            assert_eq!(spec.command, args(command), "{words:?}");
        }
    }

    #[test]
    fn no_command() {
        for words in [&[][..], &["--"], &["--readonly"], &["--memory", "1G", "--"]] {
            let msg = fail_exact(args(words));
            assert!(msg.starts_with("no command given"), "{words:?}: {msg}");
        }
        assert_eq!(fail_exact(args(&["--", ""])), "the command name is empty");
    }

    #[test]
    fn unknown_and_malformed_options() {
        assert_eq!(fail(&["--frobnicate"]), "unknown option '--frobnicate'");
        assert_eq!(fail(&["--frobnicate=3"]), "unknown option '--frobnicate'");
        assert_eq!(fail(&["-x"]), "unknown option '-x'");
        // Found by fuzz/fuzz_targets/cli.rs: a newline in an option name broke the line.
        assert_eq!(fail(&["--\n"]), "unknown option '--\\n'");
        assert_eq!(fail(&["-\u{1b}"]), "unknown option '-\\u{1b}'");
        assert_eq!(fail(&["--Memory", "1G"]), "unknown option '--Memory'");
        assert_eq!(
            fail(&["--readonly=yes"]),
            "--readonly takes no value, got 'yes'"
        );
        assert_eq!(fail_exact(args(&["--memory"])), "--memory needs a value");
        assert_eq!(fail_exact(args(&["--env"])), "--env needs a value");
        assert_eq!(
            fail_exact(args(&["--hostname", "--", "/bin/true"])),
            "--hostname needs a value"
        );
        assert_eq!(fail(&["--memory=--"]), "--memory needs a value");
        // A value is taken even if it looks like an option, then judged.
        assert_eq!(
            fail(&["--memory", "--cpus"]),
            "--memory '--cpus': must be positive (use e.g. 512M, 2G)"
        );
        let msg = fail_exact(vec![OsString::from("--env"), OsString::from("A=\0")]);
        assert_eq!(msg, "argument 'A=\\u{0}' contains a NUL byte");
    }

    #[test]
    fn both_value_forms() {
        assert_eq!(run(&["--memory", "256M"]).memory, 256 << 20);
        assert_eq!(run(&["--memory=256M"]).memory, 256 << 20);
        assert_eq!(run(&["--env=A=b=c"]).env, vec![("A".into(), "b=c".into())]);
        // The last of a single-valued option wins.
        assert_eq!(run(&["--net", "host", "--net=bridge"]).net, NetMode::Bridge);
    }

    #[test]
    fn fs() {
        assert_eq!(run(&["--fs", "tmpfs"]).fs, FsMode::Tmpfs);
        assert_eq!(run(&["--fs", "host"]).fs, FsMode::Host);
        assert_eq!(
            run(&["--fs", "./ubuntu-24.04"]).fs,
            FsMode::Dir("./ubuntu-24.04".into())
        );
        // Existence and kind are preflight's checks, not the parser's.
        assert_eq!(
            run(&["--fs", "/nonexistent"]).fs,
            FsMode::Dir("/nonexistent".into())
        );
        assert_eq!(
            fail(&["--fs", ""]),
            "--fs '': empty (use tmpfs, host or a directory)"
        );
        assert_eq!(fail_exact(args(&["--fs"])), "--fs needs a value");
    }

    #[test]
    fn mounts() {
        let spec = run(&[
            "--mount-ro",
            "/bin:/bin",
            "--mount-rw=/tmp/x:/data//sub/./",
            "--mount-ro",
            "rel/dir:/a:b",
        ]);
        assert_eq!(
            spec.mounts,
            vec![
                BindMount {
                    source: "/bin".into(),
                    dest: "/bin".into(),
                    writable: false
                },
                BindMount {
                    source: "/tmp/x".into(),
                    dest: "/data/sub".into(),
                    writable: true
                },
                // The first ':' splits: the destination keeps the rest.
                BindMount {
                    source: "rel/dir".into(),
                    dest: "/a:b".into(),
                    writable: false
                },
            ]
        );
        let bad: &[(&str, &str)] = &[
            ("/x", "no destination"),
            ("/x:", "no destination"),
            (":/x", "empty host path"),
            ("/x:rel", "the destination must be an absolute path"),
            ("/x:./rel", "the destination must be an absolute path"),
            ("/x:/a/../b", "the destination must not contain '..'"),
            ("/x:/..", "the destination must not contain '..'"),
            ("/x:/a/..", "the destination must not contain '..'"),
            ("/x:/", "/ is set up by microbox"),
            ("/x://", "/ is set up by microbox"),
            ("/x:/proc", "/proc is set up by microbox"),
            ("/x:/proc/sys", "/proc is set up by microbox"),
            ("/x:/dev/", "/dev is set up by microbox"),
        ];
        for opt in ["--mount-ro", "--mount-rw"] {
            for &(value, reason) in bad {
                let msg = fail(&[opt, value]);
                assert!(
                    msg.starts_with(&format!("{opt} '{value}': {reason}")),
                    "{msg}"
                );
            }
        }
        // A single device below /dev, and names that only start like ours, are fine.
        assert_eq!(
            run(&["--mount-rw", "/dev/kvm:/dev/kvm"]).mounts[0].dest,
            PathBuf::from("/dev/kvm")
        );
        assert_eq!(
            run(&["--mount-ro", "/x:/procs"]).mounts[0].dest,
            PathBuf::from("/procs")
        );
        // `..` as part of a name is fine.
        assert_eq!(
            run(&["--mount-ro", "/x:/a..b"]).mounts[0].dest,
            PathBuf::from("/a..b")
        );
    }

    #[test]
    fn net() {
        assert_eq!(run(&["--net", "none"]).net, NetMode::None);
        assert_eq!(run(&["--net", "host"]).net, NetMode::Host);
        assert_eq!(run(&["--net", "bridge"]).net, NetMode::Bridge);
        assert_eq!(
            fail(&["--net", "wifi"]),
            "--net 'wifi': unknown mode (use none, host or bridge)"
        );
        assert_eq!(
            fail(&["--net", "Host"]),
            "--net 'Host': unknown mode (use none, host or bridge)"
        );
    }

    #[test]
    fn readonly() {
        assert!(!run(&[]).readonly);
        assert!(run(&["--readonly"]).readonly);
    }

    #[test]
    fn env() {
        let spec = run(&[
            "--env",
            "MY_VAR=hello",
            "--env",
            "EMPTY=",
            "--env",
            "MY_VAR=again",
        ]);
        assert_eq!(
            spec.env,
            vec![
                ("MY_VAR".into(), "hello".into()),
                ("EMPTY".into(), "".into()),
                ("MY_VAR".into(), "again".into()),
            ]
        );
        // Values and keys need not be UTF-8.
        let spec = match parse(vec![
            OsString::from("--env"),
            OsString::from(OsStr::from_bytes(b"K\xff=v\xfe")),
            OsString::from("x"),
        ]) {
            Ok(Command::Run(spec)) => spec,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            spec.env,
            vec![(
                OsStr::from_bytes(b"K\xff").to_os_string(),
                OsStr::from_bytes(b"v\xfe").to_os_string()
            )]
        );
        assert_eq!(
            fail(&["--env", "NOEQUALS"]),
            "--env 'NOEQUALS': not KEY=VALUE (use e.g. MY_VAR=hello)"
        );
        assert_eq!(
            fail(&["--env", "=x"]),
            "--env '=x': empty variable name (use KEY=VALUE)"
        );
        assert_eq!(
            fail(&["--env", ""]),
            "--env '': not KEY=VALUE (use e.g. MY_VAR=hello)"
        );
    }

    // These need the syscall table (security::syscalls), written separately.
    #[test]
    fn syscalls() {
        let spec = run(&[
            "--allow-syscall",
            "unshare",
            "--allow-syscall=ptrace",
            "--deny-syscall",
            "getpid",
        ]);
        assert_eq!(spec.allow_syscalls, vec!["unshare", "ptrace"]);
        assert_eq!(spec.deny_syscalls, vec!["getpid"]);
    }

    #[test]
    fn bad_syscalls() {
        for opt in ["--allow-syscall", "--deny-syscall"] {
            for name in ["nosuchcall", "", "ptrace;", "PTRACE x"] {
                assert_eq!(
                    fail(&[opt, name]),
                    format!("{opt} '{name}': unknown syscall")
                );
            }
        }
    }

    #[test]
    fn dns() {
        let spec = run(&["--dns", "1.1.1.1", "--dns=2606:4700::1111"]);
        assert_eq!(
            spec.dns,
            vec![
                IpAddr::from([1, 1, 1, 1]),
                IpAddr::from([0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111])
            ]
        );
        for value in ["one.one.one.one", "1.1.1", "1.1.1.1:53", "", "[::1]"] {
            assert!(
                fail(&["--dns", value]).starts_with(&format!("--dns '{value}': not an IP address")),
                "{value}"
            );
        }
    }

    #[test]
    fn hostname() {
        assert_eq!(run(&[]).hostname, None);
        assert_eq!(
            run(&["--hostname", "my-sandbox"]).hostname.as_deref(),
            Some("my-sandbox")
        );
        let longest = "a".repeat(64);
        assert_eq!(
            run(&["--hostname", &longest]).hostname.as_deref(),
            Some(longest.as_str())
        );
        let too_long = "a".repeat(65);
        assert_eq!(
            fail(&["--hostname", &too_long]),
            format!("--hostname '{too_long}': longer than 64 bytes")
        );
        assert_eq!(
            fail(&["--hostname", "a/b"]),
            "--hostname 'a/b': contains '/'"
        );
        assert_eq!(fail(&["--hostname", ""]), "--hostname '': empty");
        for name in ["a b", "a_b", "héllo", "a\nb"] {
            let msg = fail(&["--hostname", name]);
            assert!(
                msg.ends_with(": use only letters, digits, '-' and '.'"),
                "{msg}"
            );
        }
        // Multi-byte characters count in bytes: 33 two-byte characters are 66 bytes.
        let wide = "é".repeat(33);
        assert!(fail(&["--hostname", &wide]).ends_with("longer than 64 bytes"));
    }

    #[test]
    fn limits() {
        let spec = run(&[
            "--cpus",
            "0.5",
            "--memory",
            "256M",
            "--storage",
            "2GB",
            "--pids",
            "100",
        ]);
        assert_eq!(spec.millicpus, 500);
        assert_eq!(spec.memory, 256 << 20);
        assert_eq!(spec.storage, 2 << 30);
        assert_eq!(spec.pids, PidsLimit::Limit(100));
        assert_eq!(run(&["--pids", "max"]).pids, PidsLimit::Max);
        assert_eq!(run(&[]).pids, PidsLimit::Limit(1024));
        assert_eq!(run(&["--memory", "1.5g"]).memory, 3 << 29);
        assert_eq!(run(&["--storage", "1024"]).storage, 1024);
    }

    #[test]
    fn bad_limits() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--memory", "12QB"],
                "--memory '12QB': not a size (use e.g. 512M, 2G)",
            ),
            (
                &["--memory", "-1G"],
                "--memory '-1G': must be positive (use e.g. 512M, 2G)",
            ),
            (
                &["--memory", "0"],
                "--memory '0': must be positive (use e.g. 512M, 2G)",
            ),
            (
                &["--memory", "99999999T"],
                "--memory '99999999T': too large (use e.g. 512M, 2G)",
            ),
            (
                &["--storage", "lots"],
                "--storage 'lots': not a size (use e.g. 512M, 2G)",
            ),
            (
                &["--storage=-5M"],
                "--storage '-5M': must be positive (use e.g. 512M, 2G)",
            ),
            (
                &["--cpus", "0"],
                "--cpus '0': must be positive (use e.g. 0.5, 2)",
            ),
            (
                &["--cpus", "abc"],
                "--cpus 'abc': not a number (use e.g. 0.5, 2)",
            ),
            (
                &["--cpus", "-1"],
                "--cpus '-1': must be positive (use e.g. 0.5, 2)",
            ),
            (
                &["--cpus", "NaN"],
                "--cpus 'NaN': not a number (use e.g. 0.5, 2)",
            ),
            (
                &["--cpus", "inf"],
                "--cpus 'inf': not a number (use e.g. 0.5, 2)",
            ),
            (
                &["--cpus", "0.001"],
                "--cpus '0.001': must be at least 0.01 (use e.g. 0.5, 2)",
            ),
            (
                &["--cpus", "2000"],
                "--cpus '2000': must be at most 1024 (use e.g. 0.5, 2)",
            ),
            (
                &["--pids", "0"],
                "--pids '0': must be at least 1 (use max for no limit)",
            ),
            (
                &["--pids", "-1"],
                "--pids '-1': not a number (use a count such as 512, or max)",
            ),
            (
                &["--pids", "+5"],
                "--pids '+5': not a number (use a count such as 512, or max)",
            ),
            (
                &["--pids", "MAX"],
                "--pids 'MAX': not a number (use a count such as 512, or max)",
            ),
            (
                &["--pids", "4294967296"],
                "--pids '4294967296': above the kernel's limit of 4194304 (use max for no limit)",
            ),
            (
                &["--pids", "4194305"],
                "--pids '4194305': above the kernel's limit of 4194304 (use max for no limit)",
            ),
        ];
        for &(words, want) in cases {
            assert_eq!(fail(words), want, "{words:?}");
        }
    }

    #[test]
    fn logging() {
        let spec = run(&[]);
        assert_eq!(
            (spec.log_level, spec.log_format),
            (LogLevel::Error, LogFormat::Text)
        );
        assert_eq!(run(&["--log-level", "error"]).log_level, LogLevel::Error);
        assert_eq!(run(&["--log-level", "warn"]).log_level, LogLevel::Warn);
        assert_eq!(run(&["--log-level=info"]).log_level, LogLevel::Info);
        assert_eq!(run(&["--log-format", "text"]).log_format, LogFormat::Text);
        assert_eq!(run(&["--log-format", "json"]).log_format, LogFormat::Json);
        assert_eq!(
            fail(&["--log-level", "debug"]),
            "--log-level 'debug': unknown level (use error, warn or info)"
        );
        assert_eq!(
            fail(&["--log-format", "xml"]),
            "--log-format 'xml': unknown format (use text or json)"
        );
    }

    // These need the capability table (security::caps), written separately.
    #[test]
    fn capabilities() {
        let spec = run(&[
            "--cap-add",
            "CAP_NET_ADMIN",
            "--cap-drop",
            "setpcap",
            "--cap-add=sys_time",
        ]);
        assert_eq!(
            spec.cap_add,
            vec![libc_cap("NET_ADMIN"), libc_cap("SYS_TIME")]
        );
        assert_eq!(spec.cap_drop, vec![libc_cap("SETPCAP")]);
    }

    /// Kernel capability numbers (include/uapi/linux/capability.h), to check
    /// `caps::from_name` against something it did not compute itself.
    fn libc_cap(name: &str) -> u8 {
        match name {
            "SETPCAP" => 8,
            "NET_ADMIN" => 12,
            "SYS_TIME" => 25,
            _ => panic!("add {name} to the test table"),
        }
    }

    #[test]
    fn bad_capabilities() {
        for opt in ["--cap-add", "--cap-drop"] {
            for name in ["CAP_FOO", "", "NET ADMIN"] {
                assert_eq!(
                    fail(&[opt, name]),
                    format!(
                        "{opt} '{name}': unknown capability (use e.g. NET_ADMIN or CAP_NET_ADMIN)"
                    )
                );
            }
        }
    }

    #[test]
    fn userns() {
        assert_eq!(run(&[]).userns, UsernsMode::Isolated);
        assert_eq!(run(&["--userns", "isolated"]).userns, UsernsMode::Isolated);
        assert_eq!(run(&["--userns", "host"]).userns, UsernsMode::Host);
        assert_eq!(
            fail(&["--userns", "maybe"]),
            "--userns 'maybe': unknown mode (use isolated or host)"
        );
    }

    #[test]
    fn values_are_shown_on_one_bounded_line() {
        assert_eq!(
            fail(&["--net", "a\nb\x1b[2J"]),
            "--net 'a\\nb\\u{1b}[2J': unknown mode (use none, host or bridge)"
        );
        let huge = "x".repeat(10_000);
        let msg = fail(&["--net", &huge]);
        assert!(msg.len() < 200, "{}", msg.len());
        let msg = match parse(vec![
            OsString::from("--net"),
            OsString::from(OsStr::from_bytes(b"\xff")),
            OsString::from("x"),
        ]) {
            Err(err) => err.msg,
            other => panic!("{other:?}"),
        };
        assert_eq!(msg, "--net '\u{fffd}': not valid UTF-8");
    }

    #[test]
    fn help_lists_every_option_and_exit_code() {
        let help = help_text();
        for name in VALUE_OPTIONS.iter().chain(FLAG_OPTIONS) {
            assert!(
                help.contains(&format!("--{name} ")),
                "--{name} missing from help"
            );
        }
        for group in ["Filesystem:", "Network:", "Security:", "Limits:", "Other:"] {
            assert!(help.contains(group), "{group}");
        }
        for needle in [
            "(default: tmpfs)",
            "(default: none)",
            "8.8.8.8 and 8.8.4.4",
            "(default: 1)",
            "(default: 1G)",
            "(default: 512M)",
            "(default: 1024)",
            "(default: error)",
            "(default: text)",
            "(default: isolated)",
            "125",
            "126",
            "127",
            "128+N",
        ] {
            assert!(help.contains(needle), "{needle}");
        }
        for line in help.lines() {
            assert!(line.chars().count() <= 80, "too wide: {line}");
        }
    }

    /// Pseudo-random argv built from option names, values and junk: parsing must
    /// never panic. The cargo-fuzz target in fuzz/ does the same at length.
    #[test]
    fn random_argv_never_panics() {
        let mut words: Vec<String> = VALUE_OPTIONS
            .iter()
            .chain(FLAG_OPTIONS)
            .flat_map(|n| [format!("--{n}"), format!("--{n}=")])
            .collect();
        words.extend(
            [
                "--",
                "-",
                "-h",
                "-V",
                "-x",
                "",
                "=",
                ":",
                "/",
                "/a:/b",
                "a:..",
                "0",
                "-1",
                "1.5G",
                "max",
                "x=y",
                "1.1.1.1",
                "::",
                "\u{0}",
                "\u{fffd}",
                "é",
                "\n",
                "99999999999999999999999",
                ".",
                "..",
                "host",
                "tmpfs",
                "none",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let len = next() % 8;
            let argv: Vec<OsString> = (0..len)
                .map(|_| {
                    let r = next();
                    let bytes = r.to_le_bytes();
                    if r % 7 == 0 {
                        // Raw bytes, often invalid UTF-8.
                        let len = usize::from(bytes[1] % 6);
                        OsString::from(OsStr::from_bytes(&bytes[2..2 + len]))
                    } else {
                        let a = &words
                            [usize::from(u16::from_le_bytes([bytes[2], bytes[3]])) % words.len()];
                        let b = &words
                            [usize::from(u16::from_le_bytes([bytes[4], bytes[5]])) % words.len()];
                        if r % 5 == 0 {
                            OsString::from(format!("{a}{b}"))
                        } else {
                            OsString::from(a)
                        }
                    }
                })
                .collect();
            let _ = parse(argv);
        }
    }

    #[test]
    fn requested_log_format_is_found_before_the_command_only() {
        let words = |s: &[&str]| s.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            requested_log_format(&words(&["--log-format", "json", "--x"])),
            LogFormat::Json
        );
        assert_eq!(
            requested_log_format(&words(&["--bad", "--log-format=json"])),
            LogFormat::Json
        );
        assert_eq!(
            requested_log_format(&words(&["--log-format", "text"])),
            LogFormat::Text
        );
        assert_eq!(
            requested_log_format(&words(&["--", "--log-format=json"])),
            LogFormat::Text
        );
        assert_eq!(
            requested_log_format(&words(&["--log-format"])),
            LogFormat::Text
        );
    }

    #[test]
    fn help_names_every_default_capability() {
        // The list in the help is written out by hand; this keeps it honest.
        let help = help_text().split_whitespace().collect::<Vec<_>>().join(" ");
        for &cap in crate::security::caps::DEFAULT {
            let name = &crate::security::caps::name(cap)["CAP_".len()..];
            assert!(help.contains(name), "--help does not name {name}");
        }
    }
}
