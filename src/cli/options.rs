//! The option table: every option's spelling, value, help text and default,
//! written once. The parser dispatches on it, `--help` is rendered from it, and
//! the unit tests check the README and the fuzz dictionary against it.

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::net::addr::{Allow, Publish, Subnet, DEFAULT_BRIDGE, DEFAULT_SUBNET};
use crate::security::{caps, syscalls};
use crate::spec::{
    BindMount, FsMode, LogFormat, LogLevel, NetMode, PidsLimit, ReportTo, Spec, UsernsMode,
    DEFAULT_DNS, DEFAULT_MEMORY, DEFAULT_MILLICPUS, DEFAULT_PIDS, DEFAULT_STOP_TIMEOUT,
    DEFAULT_STORAGE,
};
use crate::units;

/// One command-line option.
#[derive(Debug)]
pub struct CliOption {
    /// Spelled `--long`, and `--long=VALUE` when it takes a value.
    pub long: &'static str,
    /// Spelled `-c`; only the two options every Unix tool has get one.
    pub(crate) short: Option<char>,
    pub(crate) group: Group,
    pub(crate) action: Action,
    /// Said in `--help`; a `\n` ends a line there early.
    pub(crate) help: &'static str,
    /// Each use adds to a list instead of replacing the previous value.
    pub(crate) repeatable: bool,
    /// What `--help` says a sandbox gets without the option.
    pub(crate) default: Option<DefaultText>,
    /// Said in `--help` inside the parentheses, after the default.
    pub(crate) note: Option<&'static str>,
}

/// The headings of `--help`, in the order the README groups the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Filesystem,
    Network,
    Security,
    Limits,
    Other,
}

/// What the parser does on meeting the option.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Stop parsing: the caller prints the help.
    ShowHelp,
    /// Stop parsing: the caller prints the version.
    ShowVersion,
    /// Takes no value.
    Switch(fn(&mut Spec)),
    /// Takes one value, called `metavar` in the help. `apply` judges it and
    /// stores it in the spec, or gives the reason it is wrong; the parser puts
    /// the option and the value in front of that reason.
    Value {
        metavar: &'static str,
        apply: fn(&mut Spec, &OsStr) -> Checked,
    },
}

/// What `apply` returns: on error, why the value is wrong, for the parser to
/// put after `--option 'value': `.
pub type Checked = std::result::Result<(), String>;

/// An option's default as `--help` shows it; functions, because most are
/// formatted from the `DEFAULT_*` constants of `spec`.
#[derive(Debug, Clone, Copy)]
pub enum DefaultText {
    /// A value the option accepts: giving it is the same as leaving the option
    /// out (a unit test checks), and the README's default column shows it.
    Value(fn() -> String),
    /// What the sandbox gets instead, in words.
    Words(fn() -> String),
}

impl DefaultText {
    pub fn text(&self) -> String {
        match self {
            DefaultText::Value(text) | DefaultText::Words(text) => text(),
        }
    }
}

impl Group {
    pub fn heading(self) -> &'static str {
        match self {
            Group::Filesystem => "Filesystem:",
            Group::Network => "Network:",
            Group::Security => "Security:",
            Group::Limits => "Limits:",
            Group::Other => "Other:",
        }
    }
}

impl CliOption {
    /// The value's name in the help (`SIZE`), or `None` for an option without one.
    pub(crate) fn metavar(&self) -> Option<&'static str> {
        match self.action {
            Action::Value { metavar, .. } => Some(metavar),
            _ => None,
        }
    }

    pub fn takes_value(&self) -> bool {
        self.metavar().is_some()
    }

    /// The option as the help's left column writes it: `-h, --help`, `--fs MODE|DIR`.
    pub(crate) fn synopsis(&self) -> String {
        let mut out = match self.short {
            Some(c) => format!("-{c}, --{}", self.long),
            None => format!("--{}", self.long),
        };
        if let Some(metavar) = self.metavar() {
            out.push(' ');
            out.push_str(metavar);
        }
        out
    }
}

/// Every option, in `--help` order; options of one group stand together.
pub static OPTIONS: &[CliOption] = &[
    CliOption {
        long: "fs",
        short: None,
        group: Group::Filesystem,
        action: Action::Value {
            metavar: "MODE|DIR",
            apply: set_fs,
        },
        help: "root filesystem: tmpfs (empty, in memory, with only /proc and /dev), \
               host (the host's own tree, writable), or a directory used read-only \
               as the image under an in-memory writable layer",
        repeatable: false,
        default: Some(DefaultText::Value(|| "tmpfs".into())),
        note: None,
    },
    CliOption {
        long: "mount-ro",
        short: None,
        group: Group::Filesystem,
        action: Action::Value {
            metavar: "HOST:DEST",
            apply: add_read_only_mount,
        },
        help: "bind HOST read-only at DEST; split at the first ':', DEST absolute, \
               without '..', not /, /proc or /dev",
        repeatable: true,
        default: None,
        note: None,
    },
    CliOption {
        long: "mount-rw",
        short: None,
        group: Group::Filesystem,
        action: Action::Value {
            metavar: "HOST:DEST",
            apply: add_writable_mount,
        },
        help: "as --mount-ro, but writable: writes reach the host",
        repeatable: true,
        default: None,
        note: None,
    },
    CliOption {
        long: "readonly",
        short: None,
        group: Group::Filesystem,
        action: Action::Switch(|spec| spec.readonly = true),
        help: "make the root filesystem read-only; /tmp and /dev/shm stay writable",
        repeatable: false,
        default: Some(DefaultText::Words(|| "writable".into())),
        note: None,
    },
    CliOption {
        long: "net",
        short: None,
        group: Group::Network,
        action: Action::Value {
            metavar: "MODE",
            apply: set_net,
        },
        help: "none (a private network with only lo), host (the host's network), \
               or bridge (a veth pair to a host bridge, NAT to the outside, no \
               access to the host or other sandboxes)",
        repeatable: false,
        default: Some(DefaultText::Value(|| "none".into())),
        note: None,
    },
    CliOption {
        long: "dns",
        short: None,
        group: Group::Network,
        action: Action::Value {
            metavar: "IP",
            apply: add_dns,
        },
        help: "DNS server for /etc/resolv.conf, IPv4 or IPv6",
        repeatable: true,
        default: Some(DefaultText::Words(|| DEFAULT_DNS.join(" and "))),
        note: None,
    },
    CliOption {
        long: "bridge",
        short: None,
        group: Group::Network,
        action: Action::Value {
            metavar: "NAME",
            apply: set_bridge,
        },
        help: "the host bridge of --net bridge, created if missing; 1-15 letters, \
               digits, '-', '_' and '.'",
        repeatable: false,
        default: Some(DefaultText::Value(|| DEFAULT_BRIDGE.into())),
        note: None,
    },
    CliOption {
        long: "subnet",
        short: None,
        group: Group::Network,
        action: Action::Value {
            metavar: "CIDR",
            apply: set_subnet,
        },
        help: "the bridge's IPv4 network, unicast, /16 to /30; the bridge is its first \
               address; refused if it overlaps a route of the host",
        repeatable: false,
        default: Some(DefaultText::Value(|| DEFAULT_SUBNET.to_string())),
        note: None,
    },
    CliOption {
        long: "publish",
        short: None,
        group: Group::Network,
        action: Action::Value {
            metavar: "[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]",
            apply: add_publish,
        },
        help: "with --net bridge: forward HOSTPORT of the host (on HOSTIP only, if \
               given) to PORT of the sandbox",
        repeatable: true,
        default: Some(DefaultText::Words(|| "nothing published".into())),
        note: None,
    },
    CliOption {
        long: "net-allow",
        short: None,
        group: Group::Network,
        action: Action::Value {
            metavar: "CIDR[:PORT[-PORT]][/tcp|/udp]",
            apply: add_net_allow,
        },
        help: "with --net bridge: the sandbox may open connections only to these \
               destinations (and the --dns servers on port 53); anything else is \
               refused at once",
        repeatable: true,
        default: Some(DefaultText::Words(|| "any destination".into())),
        note: None,
    },
    CliOption {
        long: "net-cleanup",
        short: None,
        group: Group::Network,
        action: Action::Switch(|spec| spec.net_cleanup = true),
        help: "run no sandbox: remove the bridge (--bridge) and microbox's \
               nf_tables tables, and exit; refused while a sandbox uses the bridge",
        repeatable: false,
        default: None,
        note: None,
    },
    CliOption {
        long: "hostname",
        short: None,
        group: Group::Network,
        action: Action::Value {
            metavar: "NAME",
            apply: set_hostname,
        },
        help: "up to 64 letters, digits, '-' and '.'",
        repeatable: false,
        default: Some(DefaultText::Words(|| "a random adjective-noun".into())),
        note: None,
    },
    CliOption {
        long: "allow-syscall",
        short: None,
        group: Group::Security,
        action: Action::Value {
            metavar: "NAME",
            apply: allow_syscall,
        },
        help: "remove NAME from the seccomp deny list",
        repeatable: true,
        default: None,
        note: None,
    },
    CliOption {
        long: "deny-syscall",
        short: None,
        group: Group::Security,
        action: Action::Value {
            metavar: "NAME",
            apply: deny_syscall,
        },
        help: "add NAME to the seccomp deny list",
        repeatable: true,
        default: Some(DefaultText::Words(|| {
            "the README's profile, which denies module loading, mount, ptrace, bpf, \
             namespaces and more"
                .into()
        })),
        note: None,
    },
    CliOption {
        long: "cap-add",
        short: None,
        group: Group::Security,
        action: Action::Value {
            metavar: "CAP",
            apply: add_cap,
        },
        help: "add a capability, e.g. NET_ADMIN or CAP_NET_ADMIN",
        repeatable: true,
        default: None,
        note: None,
    },
    CliOption {
        long: "cap-drop",
        short: None,
        group: Group::Security,
        action: Action::Value {
            metavar: "CAP",
            apply: drop_cap,
        },
        help: "drop a capability",
        repeatable: true,
        default: None,
        // Written out by hand (a unit test checks it against caps::DEFAULT); the
        // line break keeps the help column narrow.
        note: Some(
            "default set: CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, \
             SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE; \
             without FSETID\nand setuid/setgid modes when a --mount-rw or --fs host \
             makes host storage writable (and without MKNOD and SETFCAP where the ids \
             are the host's)",
        ),
    },
    CliOption {
        long: "userns",
        short: None,
        group: Group::Security,
        action: Action::Value {
            metavar: "MODE",
            apply: set_userns,
        },
        // The line break keeps each mode with its explanation.
        help: "isolated (a new user namespace mapping ids 0-65535\nto a leased host range; MICROBOX_ID_POOL moves it)\nor host (the host's)",
        repeatable: false,
        default: Some(DefaultText::Value(|| "isolated".into())),
        note: None,
    },
    CliOption {
        long: "cpus",
        short: None,
        group: Group::Limits,
        action: Action::Value {
            metavar: "N",
            apply: set_cpus,
        },
        help: "CPU cores, fractions allowed, 0.01 to 1024",
        repeatable: false,
        default: Some(DefaultText::Value(|| units::format_cpus(DEFAULT_MILLICPUS))),
        note: None,
    },
    CliOption {
        long: "memory",
        short: None,
        group: Group::Limits,
        action: Action::Value {
            metavar: "SIZE",
            apply: set_memory,
        },
        help: "memory limit; swap is disabled",
        repeatable: false,
        default: Some(DefaultText::Value(|| units::format_size(DEFAULT_MEMORY))),
        note: None,
    },
    CliOption {
        long: "storage",
        short: None,
        group: Group::Limits,
        action: Action::Value {
            metavar: "SIZE",
            apply: set_storage,
        },
        help: "size of the in-memory writable layer",
        repeatable: false,
        default: Some(DefaultText::Value(|| units::format_size(DEFAULT_STORAGE))),
        note: None,
    },
    CliOption {
        long: "pids",
        short: None,
        group: Group::Limits,
        action: Action::Value {
            metavar: "N|max",
            apply: set_pids,
        },
        help: "most processes at once, or max for no limit",
        repeatable: false,
        default: Some(DefaultText::Value(|| DEFAULT_PIDS.to_string())),
        note: None,
    },
    CliOption {
        long: "stop-timeout",
        short: None,
        group: Group::Limits,
        action: Action::Value {
            metavar: "DURATION",
            apply: set_stop_timeout,
        },
        help: "after SIGTERM, SIGINT, SIGHUP or SIGQUIT, how long the sandbox has to \
               end before it is killed; a second such signal kills it at once",
        repeatable: false,
        default: Some(DefaultText::Value(|| {
            units::format_duration(DEFAULT_STOP_TIMEOUT)
        })),
        note: None,
    },
    CliOption {
        long: "timeout",
        short: None,
        group: Group::Limits,
        action: Action::Value {
            metavar: "DURATION",
            apply: set_timeout,
        },
        help: "wall-clock time the command has from its start; then the whole \
               sandbox is killed and microbox exits 124",
        repeatable: false,
        default: Some(DefaultText::Words(|| "no limit".into())),
        note: None,
    },
    CliOption {
        long: "cpu-time",
        short: None,
        group: Group::Limits,
        action: Action::Value {
            metavar: "DURATION",
            apply: set_cpu_time,
        },
        help: "CPU time of all the sandbox's processes together; then the whole \
               sandbox is killed and microbox exits 152",
        repeatable: false,
        default: Some(DefaultText::Words(|| "no limit".into())),
        note: None,
    },
    CliOption {
        long: "rlimit",
        short: None,
        group: Group::Limits,
        action: Action::Value {
            metavar: "NAME=SOFT[:HARD]",
            apply: add_rlimit,
        },
        help: "a resource limit of the command: NOFILE, NPROC, FSIZE, CORE, STACK, \
               AS or MEMLOCK; a number, a size for the byte limits, or unlimited",
        repeatable: true,
        default: Some(DefaultText::Words(|| "CORE=0, the rest microbox's own".into())),
        note: None,
    },
    CliOption {
        long: "output-limit",
        short: None,
        group: Group::Limits,
        action: Action::Value {
            metavar: "SIZE",
            apply: set_output_limit,
        },
        help: "bytes the command may write to stdout and stderr together, copied \
               through pipes; past it the output is cut, the sandbox killed and \
               microbox exits 153",
        repeatable: false,
        default: Some(DefaultText::Words(|| {
            "no limit; the command writes to microbox's own stdout and stderr".into()
        })),
        note: None,
    },
    CliOption {
        long: "report",
        short: None,
        group: Group::Other,
        action: Action::Value {
            metavar: "FILE",
            apply: set_report_file,
        },
        help: "after the sandbox ends, write a JSON report of the run to FILE \
               (through a temporary file and a rename)",
        repeatable: false,
        default: Some(DefaultText::Words(|| "no report".into())),
        note: None,
    },
    CliOption {
        long: "report-fd",
        short: None,
        group: Group::Other,
        action: Action::Value {
            metavar: "N",
            apply: set_report_fd,
        },
        help: "as --report, but written to the open file descriptor N",
        repeatable: false,
        default: Some(DefaultText::Words(|| "no report".into())),
        note: None,
    },
    CliOption {
        long: "env",
        short: None,
        group: Group::Other,
        action: Action::Value {
            metavar: "KEY=VALUE",
            apply: add_env,
        },
        help: "set a variable; the environment starts with only PATH, HOME, TERM and LANG",
        repeatable: true,
        default: None,
        note: Some("a later KEY wins"),
    },
    CliOption {
        long: "log-level",
        short: None,
        group: Group::Other,
        action: Action::Value {
            metavar: "LEVEL",
            apply: set_log_level,
        },
        help: "error, warn or info",
        repeatable: false,
        default: Some(DefaultText::Value(|| "error".into())),
        note: None,
    },
    CliOption {
        long: LOG_FORMAT,
        short: None,
        group: Group::Other,
        action: Action::Value {
            metavar: "FORMAT",
            apply: set_log_format,
        },
        help: "text, or json for one object per line",
        repeatable: false,
        default: Some(DefaultText::Value(|| "text".into())),
        note: None,
    },
    CliOption {
        long: "help",
        short: Some('h'),
        group: Group::Other,
        action: Action::ShowHelp,
        help: "print this help",
        repeatable: false,
        default: None,
        note: None,
    },
    CliOption {
        long: "version",
        short: Some('V'),
        group: Group::Other,
        action: Action::ShowVersion,
        help: "print the version",
        repeatable: false,
        default: None,
        note: None,
    },
];

/// Named because `requested_log_format` looks for it before the real parse.
pub(super) const LOG_FORMAT: &str = "log-format";

/// `HOST_NAME_MAX` on Linux.
const MAX_HOSTNAME_LEN: usize = 64;

const SIZE_HINT: &str = "use e.g. 512M, 2G";

pub fn by_long(name: &str) -> Option<&'static CliOption> {
    OPTIONS.iter().find(|option| option.long == name)
}

pub fn by_short(c: char) -> Option<&'static CliOption> {
    OPTIONS.iter().find(|option| option.short == Some(c))
}

/// Every value but the path-like and env ones is plain text.
fn text(value: &OsStr) -> std::result::Result<&str, String> {
    value.to_str().ok_or_else(|| "not valid UTF-8".to_string())
}

fn set_fs(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.fs = match value.as_bytes() {
        b"" => return Err("empty (use tmpfs, host or a directory)".into()),
        b"tmpfs" => FsMode::Tmpfs,
        b"host" => FsMode::Host,
        _ => FsMode::Dir(PathBuf::from(value)),
    };
    Ok(())
}

fn add_read_only_mount(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.mounts.push(parse_mount(value, false)?);
    Ok(())
}

fn add_writable_mount(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.mounts.push(parse_mount(value, true)?);
    Ok(())
}

fn set_net(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.net = match text(value)? {
        "none" => NetMode::None,
        "host" => NetMode::Host,
        "bridge" => NetMode::Bridge,
        _ => return Err("unknown mode (use none, host or bridge)".into()),
    };
    Ok(())
}

fn add_dns(spec: &mut Spec, value: &OsStr) -> Checked {
    let ip = text(value)?
        .parse::<IpAddr>()
        .map_err(|_| "not an IP address (use e.g. 1.1.1.1 or 2606:4700::1111)")?;
    spec.dns.push(ip);
    Ok(())
}

fn set_bridge(spec: &mut Spec, value: &OsStr) -> Checked {
    let name = text(value)?;
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if name.is_empty() || name.len() > 15 || !plain || name == "." || name == ".." {
        return Err("expected 1-15 letters, digits, '-', '_' and '.'".into());
    }
    spec.bridge = name.to_string();
    Ok(())
}

fn set_subnet(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.subnet = Subnet::parse(text(value)?)?;
    Ok(())
}

fn add_publish(spec: &mut Spec, value: &OsStr) -> Checked {
    let publish = Publish::parse(text(value)?)?;
    let taken = spec
        .publish
        .iter()
        .any(|p| p.host_port == publish.host_port && p.proto == publish.proto);
    if taken {
        return Err(format!(
            "host port {}/{} is published twice",
            publish.host_port,
            publish.proto.name()
        ));
    }
    spec.publish.push(publish);
    Ok(())
}

fn add_net_allow(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.net_allow.push(Allow::parse(text(value)?)?);
    Ok(())
}

fn set_hostname(spec: &mut Spec, value: &OsStr) -> Checked {
    let hostname = text(value)?;
    check_hostname(hostname)?;
    spec.hostname = Some(hostname.to_string());
    Ok(())
}

fn allow_syscall(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.allow_syscalls.push(known_syscall(value)?);
    Ok(())
}

fn deny_syscall(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.deny_syscalls.push(known_syscall(value)?);
    Ok(())
}

fn known_syscall(value: &OsStr) -> std::result::Result<String, String> {
    let syscall = text(value)?;
    if syscalls::number(syscall).is_none() {
        return Err("unknown syscall".into());
    }
    Ok(syscall.to_string())
}

fn add_cap(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.cap_add.push(known_cap(value)?);
    Ok(())
}

fn drop_cap(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.cap_drop.push(known_cap(value)?);
    Ok(())
}

fn known_cap(value: &OsStr) -> std::result::Result<u8, String> {
    caps::from_name(text(value)?)
        .ok_or_else(|| "unknown capability (use e.g. NET_ADMIN or CAP_NET_ADMIN)".into())
}

fn set_userns(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.userns = match text(value)? {
        "isolated" => UsernsMode::Isolated,
        "host" => UsernsMode::Host,
        _ => return Err("unknown mode (use isolated or host)".into()),
    };
    Ok(())
}

fn set_cpus(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.limits_asked.push("--cpus");
    spec.millicpus =
        units::parse_cpus(text(value)?).map_err(|reason| format!("{reason} (use e.g. 0.5, 2)"))?;
    Ok(())
}

fn set_memory(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.limits_asked.push("--memory");
    spec.memory = size(value)?;
    Ok(())
}

fn set_storage(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.storage = size(value)?;
    Ok(())
}

fn size(value: &OsStr) -> std::result::Result<u64, String> {
    units::parse_size(text(value)?).map_err(|reason| format!("{reason} ({SIZE_HINT})"))
}

fn set_pids(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.limits_asked.push("--pids");
    spec.pids = parse_pids(text(value)?)?;
    Ok(())
}

fn set_stop_timeout(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.stop_timeout = units::parse_duration(text(value)?)
        .map_err(|reason| format!("{reason} (use e.g. 500ms, 10s, 2m)"))?;
    Ok(())
}

fn positive_duration(value: &OsStr) -> std::result::Result<std::time::Duration, String> {
    let duration = units::parse_duration(text(value)?)
        .map_err(|reason| format!("{reason} (use e.g. 500ms, 10s, 2m)"))?;
    if duration.is_zero() {
        return Err("must be positive (use e.g. 500ms, 10s, 2m)".into());
    }
    Ok(duration)
}

fn set_timeout(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.timeout = Some(positive_duration(value)?);
    Ok(())
}

fn set_cpu_time(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.limits_asked.push("--cpu-time");
    spec.cpu_time = Some(positive_duration(value)?);
    Ok(())
}

fn add_rlimit(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.rlimits.push(crate::rlimit::parse(text(value)?)?);
    Ok(())
}

fn set_output_limit(spec: &mut Spec, value: &OsStr) -> Checked {
    let bytes =
        units::parse_size(text(value)?).map_err(|reason| format!("{reason} ({SIZE_HINT})"))?;
    spec.output_limit = Some(bytes);
    Ok(())
}

fn set_report_file(spec: &mut Spec, value: &OsStr) -> Checked {
    if value.is_empty() {
        return Err("empty (give a file name)".into());
    }
    if value.as_bytes().ends_with(b"/") {
        return Err("names a directory (give a file name)".into());
    }
    if matches!(spec.report, Some(ReportTo::Fd(_))) {
        return Err("--report-fd is given too (use one of them)".into());
    }
    spec.report = Some(ReportTo::File(PathBuf::from(value)));
    Ok(())
}

fn set_report_fd(spec: &mut Spec, value: &OsStr) -> Checked {
    let fd = text(value)?
        .parse::<i32>()
        .ok()
        .filter(|fd| *fd >= 0)
        .ok_or("not a file descriptor number")?;
    if matches!(spec.report, Some(ReportTo::File(_))) {
        return Err("--report is given too (use one of them)".into());
    }
    spec.report = Some(ReportTo::Fd(fd));
    Ok(())
}

fn add_env(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.env.push(parse_env(value)?);
    Ok(())
}

fn set_log_level(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.log_level = match text(value)? {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        _ => return Err("unknown level (use error, warn or info)".into()),
    };
    Ok(())
}

fn set_log_format(spec: &mut Spec, value: &OsStr) -> Checked {
    spec.log_format = match text(value)? {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        _ => return Err("unknown format (use text or json)".into()),
    };
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
