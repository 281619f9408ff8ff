//! The validated description of one sandbox: plain data, no I/O.
//!
//! `cli` builds it, `preflight` checks it against the host, `sandbox` executes it.

use std::ffi::OsString;
use std::net::IpAddr;

use crate::net::addr::{Allow, Publish, Subnet, DEFAULT_BRIDGE, DEFAULT_SUBNET};
use std::path::PathBuf;

/// Where the sandbox's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FsMode {
    /// An empty tmpfs of `storage` bytes with only /proc and /dev (the default).
    Tmpfs,
    /// The host's own tree, writable, with a fresh /proc.
    Host,
    /// An overlay: the directory is the read-only lower layer, the upper layer is a tmpfs.
    Dir(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetMode {
    /// A new network namespace with only `lo` (the default).
    None,
    /// The host's network namespace.
    Host,
    /// A veth pair to a host bridge with NAT.
    Bridge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UsernsMode {
    /// A new user namespace mapping ids 0-65535 (the default).
    Isolated,
    /// The host's user namespace.
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One `--mount-ro` / `--mount-rw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Host path, absolute or relative to microbox's cwd.
    pub source: PathBuf,
    /// Absolute path inside the sandbox, free of `..` components.
    pub dest: PathBuf,
    pub(crate) writable: bool,
}

/// `--pids`: a process limit or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PidsLimit {
    Max,
    Limit(u32),
}

pub(crate) const DEFAULT_MEMORY: u64 = 1 << 30;
pub(crate) const DEFAULT_STORAGE: u64 = 512 << 20;
/// CPU limit in thousandths of a core (1000 = one core).
pub(crate) const DEFAULT_MILLICPUS: u32 = 1000;
pub(crate) const DEFAULT_PIDS: u32 = 1024;
pub(crate) const DEFAULT_DNS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];
/// How long a sandbox has to end after SIGTERM, SIGINT, SIGHUP or SIGQUIT
/// before microbox kills it.
pub(crate) const DEFAULT_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the run report (`--report`, `--report-fd`) goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReportTo {
    /// Written to a temporary file in the same directory, then renamed.
    File(PathBuf),
    /// An open descriptor microbox inherited.
    Fd(i32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub(crate) fs: FsMode,
    pub(crate) net: NetMode,
    pub(crate) userns: UsernsMode,
    pub mounts: Vec<BindMount>,
    pub(crate) readonly: bool,
    /// `--env` in order; a later key overrides an earlier one and the defaults.
    pub env: Vec<(OsString, OsString)>,
    /// Names already checked against the syscall table.
    pub(crate) allow_syscalls: Vec<String>,
    pub(crate) deny_syscalls: Vec<String>,
    /// Empty means the defaults (`DEFAULT_DNS`).
    pub(crate) dns: Vec<IpAddr>,
    /// Bridge mode: the host bridge, its network, published ports and the
    /// egress allow-list (empty: any destination).
    pub(crate) bridge: String,
    pub(crate) subnet: Subnet,
    pub(crate) publish: Vec<Publish>,
    pub(crate) net_allow: Vec<Allow>,
    /// `--net-cleanup`: no sandbox; remove the bridge and its tables.
    pub(crate) net_cleanup: bool,
    /// `None` means a random adjective-noun chosen at run time.
    pub hostname: Option<String>,
    pub millicpus: u32,
    pub memory: u64,
    pub storage: u64,
    pub(crate) pids: PidsLimit,
    /// The cgroup limits given on the command line (`--cpus`, `--memory`,
    /// `--pids`, `--cpu-time`), by option name: without a writable cgroup
    /// (rootless) these fail, the defaults are skipped.
    pub(crate) limits_asked: Vec<&'static str>,
    /// `--stop-timeout`: the grace period after a terminating signal.
    pub(crate) stop_timeout: std::time::Duration,
    /// `--timeout`: wall-clock time the command has from its start.
    pub(crate) timeout: Option<std::time::Duration>,
    /// `--cpu-time`: CPU time of the whole sandbox (its cgroup's counter).
    pub(crate) cpu_time: Option<std::time::Duration>,
    /// `--rlimit` in order; `rlimit::effective` adds the defaults.
    pub(crate) rlimits: Vec<crate::rlimit::Rlimit>,
    /// `--output-limit`: bytes of stdout and stderr together; None copies nothing.
    pub(crate) output_limit: Option<u64>,
    pub(crate) report: Option<ReportTo>,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    /// Capability numbers (`CAP_*` values), already checked.
    pub(crate) cap_add: Vec<u8>,
    pub(crate) cap_drop: Vec<u8>,
    /// argv of the command; never empty.
    pub command: Vec<OsString>,
}

impl Spec {
    /// The first bridge-only option given a value other than its default, by name.
    pub(crate) fn bridge_option_used(&self) -> Option<&'static str> {
        [
            (self.bridge != DEFAULT_BRIDGE, "--bridge"),
            (self.subnet != DEFAULT_SUBNET, "--subnet"),
            (!self.publish.is_empty(), "--publish"),
            (!self.net_allow.is_empty(), "--net-allow"),
        ]
        .into_iter()
        .find_map(|(used, name)| used.then_some(name))
    }
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            fs: FsMode::Tmpfs,
            net: NetMode::None,
            userns: UsernsMode::Isolated,
            mounts: Vec::new(),
            readonly: false,
            env: Vec::new(),
            allow_syscalls: Vec::new(),
            deny_syscalls: Vec::new(),
            dns: Vec::new(),
            bridge: DEFAULT_BRIDGE.to_string(),
            subnet: DEFAULT_SUBNET,
            publish: Vec::new(),
            net_allow: Vec::new(),
            net_cleanup: false,
            hostname: None,
            millicpus: DEFAULT_MILLICPUS,
            memory: DEFAULT_MEMORY,
            storage: DEFAULT_STORAGE,
            pids: PidsLimit::Limit(DEFAULT_PIDS),
            limits_asked: Vec::new(),
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            timeout: None,
            cpu_time: None,
            rlimits: Vec::new(),
            output_limit: None,
            report: None,
            log_level: LogLevel::Error,
            log_format: LogFormat::Text,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            command: Vec::new(),
        }
    }
}
