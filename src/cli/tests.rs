use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::*;
use crate::spec::{BindMount, FsMode, LogLevel, NetMode, PidsLimit, UsernsMode};

/// Every way to write an option: `--long`, and `-c` where it has one.
fn spellings(option: &CliOption) -> Vec<String> {
    let mut out = vec![format!("--{}", option.long)];
    out.extend(option.short.map(|c| format!("-{c}")));
    out
}

fn value_options() -> impl Iterator<Item = &'static CliOption> {
    OPTIONS.iter().filter(|o| o.takes_value())
}

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
            err.detail.unwrap_or_default()
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
fn untrusted_code_limits_and_the_report() {
    use crate::spec::ReportTo;
    use std::time::Duration;
    let spec = run(&[
        "--timeout",
        "500ms",
        "--cpu-time",
        "2s",
        "--rlimit",
        "NOFILE=16",
        "--rlimit",
        "fsize=1M:2M",
        "--output-limit",
        "1M",
        "--report",
        "/tmp/r.json",
    ]);
    assert_eq!(spec.timeout, Some(Duration::from_millis(500)));
    assert_eq!(spec.cpu_time, Some(Duration::from_secs(2)));
    let limits: Vec<_> = spec
        .rlimits
        .iter()
        .map(|l| (l.name(), l.soft, l.hard))
        .collect();
    assert_eq!(
        limits,
        [
            ("NOFILE", Some(16), Some(16)),
            ("FSIZE", Some(1 << 20), Some(2 << 20))
        ]
    );
    assert_eq!(spec.output_limit, Some(1 << 20));
    assert_eq!(spec.report, Some(ReportTo::File("/tmp/r.json".into())));
    assert_eq!(run(&["--report-fd", "3"]).report, Some(ReportTo::Fd(3)));
    let none = run(&[]);
    assert_eq!(
        (none.timeout, none.cpu_time, none.output_limit),
        (None, None, None)
    );
    assert!(none.rlimits.is_empty() && none.report.is_none());
}

#[test]
fn bad_untrusted_code_limits_and_reports() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--timeout", "0"],
            "--timeout '0': must be positive (use e.g. 500ms, 10s, 2m)",
        ),
        (
            &["--cpu-time", "soon"],
            "--cpu-time 'soon': not a duration (use e.g. 500ms, 10s, 2m)",
        ),
        (
            &["--rlimit", "CPU=1"],
            "--rlimit 'CPU=1': unknown limit (use one of NOFILE, NPROC, FSIZE, CORE, STACK, AS, MEMLOCK)",
        ),
        (
            &["--rlimit", "NOFILE=20:10"],
            "--rlimit 'NOFILE=20:10': the soft limit is above the hard limit",
        ),
        (
            &["--output-limit", "0"],
            "--output-limit '0': must be positive (use e.g. 512M, 2G)",
        ),
        (&["--report", ""], "--report '': empty (give a file name)"),
        (
            &["--report", "/tmp/"],
            "--report '/tmp/': names a directory (give a file name)",
        ),
        (
            &["--report-fd", "-1"],
            "--report-fd '-1': not a file descriptor number",
        ),
        (
            &["--report", "/tmp/r", "--report-fd", "3"],
            "--report-fd '3': --report is given too (use one of them)",
        ),
        (
            &["--report-fd", "3", "--report", "/tmp/r"],
            "--report '/tmp/r': --report-fd is given too (use one of them)",
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
                format!("{opt} '{name}': unknown capability (use e.g. NET_ADMIN or CAP_NET_ADMIN)")
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
        Err(err) => err.detail.unwrap_or_default(),
        other => panic!("{other:?}"),
    };
    assert_eq!(msg, "--net '\u{fffd}': not valid UTF-8");
}

#[test]
fn help_lists_every_option_and_exit_code() {
    let help = help_text();
    for option in OPTIONS {
        let name = option.long;
        assert!(
            help.contains(&format!("--{name} ")),
            "--{name} missing from help"
        );
        assert!(
            !help_block(&help, option).is_empty(),
            "--{name}: no help line starts with its synopsis"
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
        "124",
        "152",
        "153",
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
    let mut words: Vec<String> = OPTIONS
        .iter()
        .flat_map(|o| [format!("--{}", o.long), format!("--{}=", o.long)])
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
                    let a =
                        &words[usize::from(u16::from_le_bytes([bytes[2], bytes[3]])) % words.len()];
                    let b =
                        &words[usize::from(u16::from_le_bytes([bytes[4], bytes[5]])) % words.len()];
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

/// The help lines of `option`, joined with single spaces: from its synopsis to
/// the next option, heading or blank line. Empty if no line starts with the synopsis.
fn help_block(help: &str, option: &CliOption) -> String {
    let head = format!("  {}", option.synopsis());
    let mut lines = help
        .lines()
        .skip_while(|l| *l != head && !l.starts_with(&format!("{head} ")));
    let Some(first) = lines.next() else {
        return String::new();
    };
    let rest = lines.take_while(|l| l.starts_with("    "));
    std::iter::once(&first[head.len()..])
        .chain(rest)
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

fn one_spaced(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn options_are_unique_and_grouped() {
    for (i, option) in OPTIONS.iter().enumerate() {
        for other in &OPTIONS[..i] {
            assert_ne!(option.long, other.long);
            assert!(option.short.is_none() || option.short != other.short);
        }
        // A group that came back after another would get a second heading.
        let earlier_groups: Vec<_> = OPTIONS[..i].iter().map(|o| o.group).collect();
        if earlier_groups.contains(&option.group) {
            assert_eq!(
                earlier_groups.last(),
                Some(&option.group),
                "--{}",
                option.long
            );
        }
    }
}

#[test]
fn help_shows_each_option_with_its_text_default_and_note() {
    let help = help_text();
    for option in OPTIONS {
        let block = help_block(&help, option);
        let name = option.long;
        assert!(
            block.starts_with(&one_spaced(option.help)),
            "--{name}: {block}"
        );
        assert_eq!(
            block.contains("repeatable"),
            option.repeatable,
            "--{name}: {block}"
        );
        if let Some(default) = &option.default {
            let shown = format!("default: {}", one_spaced(&default.text()));
            assert!(block.contains(&shown), "--{name}: {block}");
        }
        if let Some(note) = option.note {
            assert!(block.contains(&one_spaced(note)), "--{name}: {block}");
        }
    }
}

#[test]
fn every_spelling_is_recognised() {
    for option in OPTIONS {
        for spelling in spellings(option) {
            match (parse(args(&[&spelling, "/bin/true"])), &option.action) {
                (Ok(Command::Help), Action::ShowHelp)
                | (Ok(Command::Version), Action::ShowVersion)
                | (Ok(Command::Run(_)), Action::Switch(_))
                | (Err(_), Action::Value { .. }) => {}
                // A switch that runs no sandbox, so a command is an error.
                (Err(_), Action::Switch(_)) if option.long == "net-cleanup" => {}
                (other, _) => panic!("{spelling}: {other:?}"),
            }
        }
    }
}

#[test]
fn every_value_option_rejects_a_missing_or_empty_value_on_one_line() {
    for option in value_options() {
        let name = format!("--{}", option.long);
        let missing = format!("{name} needs a value");
        assert_eq!(fail_exact(args(&[&name])), missing);
        assert_eq!(fail_exact(args(&[&name, "--", "/bin/true"])), missing);
        assert_eq!(fail(&[&format!("{name}=--")]), missing);
        let msg = fail(&[&name, ""]);
        assert!(msg.starts_with(&format!("{name} '': ")), "{msg}");
    }
}

#[test]
fn switches_take_no_value() {
    for option in OPTIONS {
        if let Action::Switch(_) = option.action {
            let name = format!("--{}", option.long);
            assert_eq!(
                fail(&[&format!("{name}=x")]),
                format!("{name} takes no value, got 'x'")
            );
        }
    }
}

#[test]
fn a_shown_default_value_is_what_leaving_the_option_out_gives() {
    for option in value_options() {
        if let Some(DefaultText::Value(value)) = option.default {
            let name = format!("--{}", option.long);
            let value = value();
            // Given is given (a rootless run without a cgroup refuses a
            // limit asked for), whatever its value: the rest is the same.
            let given = |args: &[&str]| {
                let mut spec = run(args);
                spec.limits_asked.clear();
                spec
            };
            assert_eq!(given(&[&name, &value]), run(&[]), "{name} {value}");
            assert_eq!(
                given(&[&format!("{name}={value}")]),
                run(&[]),
                "{name}={value}"
            );
        }
    }
}

fn repo_file(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

#[test]
fn readme_lists_every_option_with_its_default() {
    let readme = repo_file("README.md");
    for option in OPTIONS {
        for spelling in spellings(option) {
            assert!(
                readme.contains(&format!("`{spelling}`"))
                    || readme.contains(&format!("`{spelling} ")),
                "README.md does not list {spelling}"
            );
        }
        // The option tables' first column; `|` is escaped inside a table cell.
        let cell = format!("| `{}` |", option.synopsis().replace('|', "\\|"));
        if option.short.is_none() {
            assert!(readme.contains(&cell), "README.md has no row {cell}");
        }
        if let Some(DefaultText::Value(value)) = option.default {
            let row = format!("{cell} `{}` |", value());
            assert!(readme.contains(&row), "README.md has no row {row}");
        }
    }
}

#[test]
fn fuzz_dictionary_has_every_option() {
    let dict = repo_file("fuzz/cli.dict");
    let entries: Vec<&str> = dict.lines().map(str::trim).collect();
    for option in OPTIONS {
        for spelling in spellings(option) {
            let entry = format!("\"{spelling}\"");
            assert!(
                entries.contains(&entry.as_str()),
                "fuzz/cli.dict lacks {entry}"
            );
        }
    }
}

#[test]
fn wrap_fills_lines_and_keeps_pieces_whole() {
    let pieces = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    assert_eq!(
        help::wrap(&pieces(&["ab", "cd", "ef", "(g h)"]), 5),
        ["ab cd", "ef", "(g h)"]
    );
    assert_eq!(
        help::wrap(&pieces(&["ab", "\n", "cd", "toolongword", "e"]), 5),
        ["ab", "cd", "toolongword", "e"]
    );
    assert!(help::wrap(&[], 5).is_empty());
}

#[test]
fn bridge_options_need_bridge_mode_and_valid_values() {
    let spec = run(&[
        "--net",
        "bridge",
        "--bridge",
        "mbx-test",
        "--subnet",
        "192.0.2.0/28",
        "--publish",
        "8080:80",
        "--publish",
        "198.51.100.1:5353:53/udp",
        "--net-allow",
        "198.51.100.7:443/tcp",
    ]);
    assert_eq!(spec.bridge, "mbx-test");
    assert_eq!(spec.subnet.to_string(), "192.0.2.0/28");
    assert_eq!(spec.publish.len(), 2);
    assert_eq!(spec.net_allow.len(), 1);
    for option in [
        "--publish=8080:80",
        "--net-allow=192.0.2.1",
        "--subnet=192.0.2.0/24",
        "--bridge=br9",
    ] {
        let name = option.split('=').next().unwrap_or_default();
        assert_eq!(fail(&[option]), format!("{name} needs --net bridge"));
        assert_eq!(
            fail(&["--net", "host", option]),
            format!("{name} needs --net bridge")
        );
    }
    assert_eq!(
        fail(&[
            "--net",
            "bridge",
            "--publish",
            "80:80",
            "--publish",
            "80:81"
        ]),
        "--publish '80:81': host port 80/tcp is published twice"
    );
    assert_eq!(
        fail(&["--net", "bridge", "--bridge", "this-name-is-too-long"]),
        "--bridge 'this-name-is-too-long': expected 1-15 letters, digits, '-', '_' and '.'"
    );
    assert!(fail(&["--net", "bridge", "--subnet", "10.0.0.1/24"]).contains("host bits are set"));
}

#[test]
fn net_cleanup_runs_no_sandbox() {
    assert_eq!(
        parse(args(&["--net-cleanup"])).ok(),
        Some(Command::NetCleanup {
            bridge: "microbox0".into()
        })
    );
    assert_eq!(
        parse(args(&["--net-cleanup", "--bridge", "br7"])).ok(),
        Some(Command::NetCleanup {
            bridge: "br7".into()
        })
    );
    assert_eq!(fail(&["--net-cleanup"]), "--net-cleanup takes no command");
}
