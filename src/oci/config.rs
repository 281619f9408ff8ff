//! config.json (runtime-spec v1.1) as plain data: [`load`] reads a bundle's
//! file with our JSON reader and maps every field microbox honours. Strict by
//! design: a field microbox cannot honour is an error naming it, never
//! dropped (the specification requires it), and so is a field it does not
//! know. The few accepted without effect are listed in [`IGNORED`] with why.

use std::path::{Path, PathBuf};

use super::json::Value;
use crate::cgroup::container::Resources;
use crate::cgroup::devices::{Access, DeviceKind, DeviceRule};
use crate::error::{Error, Result};
use crate::ns::IdRange;
use crate::rlimit::Rlimit;
use crate::security::seccomp::{action_from_name, op_from_name, OciArg, OciRule, OciSeccomp};

/// The largest config.json read: Podman's are about 10 KiB.
const MAX_CONFIG: u64 = 4 << 20;

/// Fields accepted without effect, and why that is honest.
const IGNORED: &[(&str, &str)] = &[
    // The engine's own bookkeeping; the runtime has nothing to do with it.
    (
        "process.consoleSize",
        "the engine sizes the terminal through the console socket",
    ),
    (
        "linux.resources.memory.useHierarchy",
        "always on in the kernels microbox runs on",
    ),
    (
        "linux.resources.memory.checkBeforeUpdate",
        "only meaningful for `update`",
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    pub oci_version: String,
    pub process: Process,
    /// Absolute: a relative root.path is taken relative to the bundle.
    pub root: PathBuf,
    pub root_readonly: bool,
    pub mounts: Vec<Mount>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub namespaces: Vec<Namespace>,
    pub uid_mappings: Vec<IdRange>,
    pub gid_mappings: Vec<IdRange>,
    pub cgroups_path: Option<String>,
    pub resources: Resources,
    pub sysctl: Vec<(String, String)>,
    pub seccomp: Option<OciSeccomp>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub propagation: Option<String>,
    /// linux.devices: nodes made in the container's /dev.
    pub devices: Vec<crate::fs::container::DeviceNode>,
    pub annotations: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub terminal: bool,
    /// process.consoleSize: the terminal's rows and columns at the start.
    pub console_size: Option<(u16, u16)>,
    pub caps: CapSets,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
}

/// The five capability sets as masks of capability numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub inheritable: u64,
    pub permitted: u64,
    pub ambient: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub destination: String,
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NsKind {
    Pid,
    Network,
    Mount,
    Ipc,
    Uts,
    User,
    Cgroup,
    Time,
}

impl NsKind {
    const ALL: [(&'static str, NsKind); 8] = [
        ("pid", NsKind::Pid),
        ("network", NsKind::Network),
        ("mount", NsKind::Mount),
        ("ipc", NsKind::Ipc),
        ("uts", NsKind::Uts),
        ("user", NsKind::User),
        ("cgroup", NsKind::Cgroup),
        ("time", NsKind::Time),
    ];

    /// The CLONE_NEW* flag.
    pub fn flag(self) -> u64 {
        let flag = match self {
            NsKind::Pid => libc::CLONE_NEWPID,
            NsKind::Network => libc::CLONE_NEWNET,
            NsKind::Mount => libc::CLONE_NEWNS,
            NsKind::Ipc => libc::CLONE_NEWIPC,
            NsKind::Uts => libc::CLONE_NEWUTS,
            NsKind::User => libc::CLONE_NEWUSER,
            NsKind::Cgroup => libc::CLONE_NEWCGROUP,
            NsKind::Time => libc::CLONE_NEWTIME,
        };
        u64::from(flag.unsigned_abs())
    }

    /// setns's namespace type: a path of another type is refused by the
    /// kernel (EINVAL), so a "network" path to a mount namespace cannot
    /// slip past the mount-namespace refusal.
    pub fn link_type(self) -> rustix::thread::LinkNameSpaceType {
        use rustix::thread::LinkNameSpaceType as T;
        match self {
            NsKind::Pid => T::ProcessID,
            NsKind::Network => T::Network,
            NsKind::Mount => T::Mount,
            NsKind::Ipc => T::InterProcessCommunication,
            NsKind::Uts => T::HostNameAndNISDomainName,
            NsKind::User => T::User,
            NsKind::Cgroup => T::ControlGroup,
            NsKind::Time => T::Time,
        }
    }

    /// The name in /proc/PID/ns.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::Pid => "pid",
            NsKind::Network => "net",
            NsKind::Mount => "mnt",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::User => "user",
            NsKind::Cgroup => "cgroup",
            NsKind::Time => "time",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Namespace {
    pub kind: NsKind,
    /// Joined (setns) instead of made.
    pub path: Option<PathBuf>,
}

/// Reads and maps `bundle/config.json`.
/// Also returns the file's bytes, which create keeps in the container's
/// state directory for `exec` ([`load_kept`]).
pub(crate) fn load(bundle: &Path) -> Result<(Config, Vec<u8>)> {
    let path = bundle.join("config.json");
    let text = read_limited(&path)?;
    let config = load_text(&text, &path, bundle)?;
    Ok((config, text))
}

/// The config create applied, as it kept it: what `exec` gives a new
/// process (its seccomp profile, its base process) whatever became of the
/// bundle since.
pub(crate) fn load_kept(kept: &Path, bundle: &Path) -> Result<Config> {
    let text = read_limited(kept)?;
    load_text(&text, kept, bundle)
}

fn load_text(text: &[u8], path: &Path, bundle: &Path) -> Result<Config> {
    let mut config = parse(text).map_err(|err| err.on(path.display()))?;
    if config.root.is_relative() {
        config.root = bundle.join(&config.root);
    }
    Ok(config)
}

/// Reads a JSON file of at most [`MAX_CONFIG`] bytes.
pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::os("open", e).on(path.display()))?;
    let mut text = Vec::new();
    file.take(MAX_CONFIG + 1)
        .read_to_end(&mut text)
        .map_err(|e| Error::os("read", e).on(path.display()))?;
    if text.len() as u64 > MAX_CONFIG {
        return Err(Error::usage(format!(
            "{}: larger than {} MiB",
            path.display(),
            MAX_CONFIG >> 20
        )));
    }
    Ok(text)
}

/// Maps a whole config.json text.
pub(crate) fn parse(text: &[u8]) -> Result<Config> {
    let value = super::json::parse(text)
        .map_err(|e| Error::usage(format!("config.json: not JSON: {e}")))?;
    let mut top = Fields::new(&value, "")?;
    let oci_version = match top.take("ociVersion") {
        Some(v) => string(v, "ociVersion")?,
        None => return Err(invalid("ociVersion", "missing")),
    };
    if !oci_version.starts_with("1.") {
        return Err(invalid(
            "ociVersion",
            format!("{oci_version:?} is not a 1.x version"),
        ));
    }
    let process = match top.take("process") {
        Some(v) => parse_process(v, "process")?,
        None => {
            return Err(invalid(
                "process",
                "missing (microbox starts the container's process from it)",
            ))
        }
    };
    let (root, root_readonly) = match top.take("root") {
        Some(v) => {
            let mut f = Fields::new(v, "root")?;
            let path = f.need("path").and_then(|v| string(v, "root.path"))?;
            let ro = f
                .take("readonly")
                .map(|v| boolean(v, "root.readonly"))
                .transpose()?;
            f.finish()?;
            (PathBuf::from(path), ro.unwrap_or(false))
        }
        None => return Err(invalid("root", "missing")),
    };
    let mounts = match top.take("mounts") {
        Some(v) => array(v, "mounts")?
            .iter()
            .enumerate()
            .map(|(i, m)| parse_mount(m, &format!("mounts[{i}]")))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let hostname = top
        .take("hostname")
        .map(|v| string(v, "hostname"))
        .transpose()?;
    let domainname = top
        .take("domainname")
        .map(|v| string(v, "domainname"))
        .transpose()?;
    let annotations = match top.take("annotations") {
        Some(v) => string_map(v, "annotations")?,
        None => Vec::new(),
    };
    if let Some(hooks) = top.take("hooks") {
        let mut f = Fields::new(hooks, "hooks")?;
        for name in [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ] {
            if let Some(list) = f.take(name) {
                if !array(list, &format!("hooks.{name}"))?.is_empty() {
                    return Err(unsupported(
                        &format!("hooks.{name}"),
                        "microbox runs no hooks",
                    ));
                }
            }
        }
        f.finish()?;
    }
    let mut config = Config {
        oci_version,
        process,
        root,
        root_readonly,
        mounts,
        hostname,
        domainname,
        namespaces: Vec::new(),
        uid_mappings: Vec::new(),
        gid_mappings: Vec::new(),
        cgroups_path: None,
        resources: Resources::default(),
        sysctl: Vec::new(),
        seccomp: None,
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
        propagation: None,
        devices: Vec::new(),
        annotations,
    };
    if let Some(linux) = top.take("linux") {
        parse_linux(linux, &mut config)?;
    }
    top.finish()?;
    if !config
        .namespaces
        .iter()
        .any(|ns| ns.kind == NsKind::Mount && ns.path.is_none())
    {
        return Err(unsupported(
            "linux.namespaces",
            "microbox needs a new mount namespace (\"type\": \"mount\" without a path)",
        ));
    }
    Ok(config)
}

/// `process` of config.json, or the whole of `exec --process FILE`.
pub(crate) fn parse_process(value: &Value, at: &str) -> Result<Process> {
    let mut f = Fields::new(value, at)?;
    let key = |k: &str| format!("{at}.{k}");
    let args: Vec<String> = match f.take("args") {
        Some(v) => strings(v, &key("args"))?,
        None => Vec::new(),
    };
    if args.is_empty() || args[0].is_empty() {
        return Err(invalid(&key("args"), "missing or empty"));
    }
    let env = match f.take("env") {
        Some(v) => strings(v, &key("env"))?,
        None => Vec::new(),
    };
    if let Some(bad) = env.iter().find(|e| !e.contains('=')) {
        return Err(invalid(&key("env"), format!("{bad:?} is not NAME=VALUE")));
    }
    let cwd = f.need("cwd").and_then(|v| string(v, &key("cwd")))?;
    if !cwd.starts_with('/') {
        return Err(invalid(&key("cwd"), "must be an absolute path"));
    }
    let terminal = f
        .take("terminal")
        .map(|v| boolean(v, &key("terminal")))
        .transpose()?;
    let console_size = match f.take("consoleSize") {
        Some(v) => {
            let at = key("consoleSize");
            let mut c = Fields::new(v, &at)?;
            let mut dim = |name: &str| -> Result<u16> {
                let n = c.need(name).and_then(|v| number_u32(v, &at))?;
                u16::try_from(n).map_err(|_| invalid(&at, format!("{name} above 65535")))
            };
            let size = (dim("height")?, dim("width")?);
            c.finish()?;
            Some(size)
        }
        None => None,
    };
    let (mut uid, mut gid, mut additional_gids, mut umask) = (0, 0, Vec::new(), None);
    if let Some(user) = f.take("user") {
        let at = key("user");
        let mut u = Fields::new(user, &at)?;
        uid = u
            .take("uid")
            .map(|v| number_u32(v, &format!("{at}.uid")))
            .transpose()?
            .unwrap_or(0);
        gid = u
            .take("gid")
            .map(|v| number_u32(v, &format!("{at}.gid")))
            .transpose()?
            .unwrap_or(0);
        if let Some(v) = u.take("additionalGids") {
            additional_gids = array(v, &format!("{at}.additionalGids"))?
                .iter()
                .map(|g| number_u32(g, &format!("{at}.additionalGids")))
                .collect::<Result<_>>()?;
        }
        umask = u
            .take("umask")
            .map(|v| number_u32(v, &format!("{at}.umask")))
            .transpose()?;
        if let Some(name) = u.take("username") {
            if !string(name, &format!("{at}.username"))?.is_empty() {
                return Err(unsupported(&format!("{at}.username"), "Windows only"));
            }
        }
        u.finish()?;
    }
    let caps = match f.take("capabilities") {
        Some(v) => parse_caps(v, &key("capabilities"))?,
        None => CapSets::default(),
    };
    let mut rlimits = Vec::new();
    if let Some(list) = f.take("rlimits") {
        for (i, item) in array(list, &key("rlimits"))?.iter().enumerate() {
            let at = format!("{}[{i}]", key("rlimits"));
            let mut r = Fields::new(item, &at)?;
            let kind = r.need("type").and_then(|v| string(v, &at))?;
            let soft = r.need("soft").and_then(|v| number_u64(v, &at))?;
            let hard = r.need("hard").and_then(|v| number_u64(v, &at))?;
            r.finish()?;
            rlimits.push(crate::rlimit::from_oci(&kind, soft, hard).map_err(|e| invalid(&at, e))?);
        }
    }
    let no_new_privileges = f
        .take("noNewPrivileges")
        .map(|v| boolean(v, &key("noNewPrivileges")))
        .transpose()?
        .unwrap_or(false);
    let oom_score_adj = match f.take("oomScoreAdj") {
        Some(v) => {
            let n = v
                .as_i64()
                .ok_or_else(|| invalid(&key("oomScoreAdj"), "not an integer"))?;
            if !(-1000..=1000).contains(&n) {
                return Err(invalid(&key("oomScoreAdj"), "outside -1000..=1000"));
            }
            i32::try_from(n).ok()
        }
        None => None,
    };
    for (name, what) in [("apparmorProfile", "AppArmor"), ("selinuxLabel", "SELinux")] {
        if let Some(v) = f.take(name) {
            let label = string(v, &key(name))?;
            if !label.is_empty() && lsm_enforcing(what) {
                return Err(unsupported(
                    &key(name),
                    format!("this host enforces {what}, and microbox applies no {what} labels"),
                ));
            }
        }
    }
    for name in ["scheduler", "ioPriority", "execCPUAffinity"] {
        if f.take(name).is_some() {
            return Err(unsupported(&key(name), "not supported by microbox"));
        }
    }
    f.finish()?;
    Ok(Process {
        args,
        env,
        cwd,
        uid,
        gid,
        additional_gids,
        umask,
        terminal: terminal.unwrap_or(false),
        console_size,
        caps,
        rlimits,
        no_new_privileges,
        oom_score_adj,
    })
}

/// Whether the host runs the LSM: a label for one it does not run has
/// nothing to apply to (the specification allows ignoring it then).
fn lsm_enforcing(what: &str) -> bool {
    match what {
        "AppArmor" => std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y"),
        _ => std::fs::read_to_string("/sys/fs/selinux/enforce").is_ok_and(|s| s.trim() == "1"),
    }
}

fn parse_caps(value: &Value, at: &str) -> Result<CapSets> {
    let mut f = Fields::new(value, at)?;
    let mut sets = CapSets::default();
    for (name, slot) in [
        ("bounding", &mut sets.bounding),
        ("effective", &mut sets.effective),
        ("inheritable", &mut sets.inheritable),
        ("permitted", &mut sets.permitted),
        ("ambient", &mut sets.ambient),
    ] {
        if let Some(list) = f.take(name) {
            for cap in strings(list, &format!("{at}.{name}"))? {
                // runc's reading: exact upper-case names; a name this
                // microbox does not know (a newer kernel's) is skipped with
                // a warning, so a newer engine's default set still runs.
                let known = crate::security::caps::from_name(&cap)
                    .filter(|_| cap.starts_with("CAP_") && cap == cap.to_ascii_uppercase());
                match known {
                    Some(number) => *slot |= 1u64 << number,
                    None => crate::log::warn(
                        "config.json: unknown capability skipped",
                        &[("field", &format!("{at}.{name}")), ("capability", &cap)],
                    ),
                }
            }
        }
    }
    f.finish()?;
    Ok(sets)
}

fn parse_mount(value: &Value, at: &str) -> Result<Mount> {
    let mut f = Fields::new(value, at)?;
    let destination = f.need("destination").and_then(|v| string(v, at))?;
    if !destination.starts_with('/') || destination.split('/').any(|c| c == "..") {
        return Err(invalid(
            &format!("{at}.destination"),
            format!("{destination:?} is not an absolute path without '..'"),
        ));
    }
    let kind = f
        .take("type")
        .map(|v| string(v, at))
        .transpose()?
        .unwrap_or_default();
    let source = f
        .take("source")
        .map(|v| string(v, at))
        .transpose()?
        .unwrap_or_default();
    let options = match f.take("options") {
        Some(v) => strings(v, &format!("{at}.options"))?,
        None => Vec::new(),
    };
    for name in ["uidMappings", "gidMappings"] {
        if f.take(name).is_some() {
            return Err(unsupported(
                &format!("{at}.{name}"),
                "idmapped mounts from config.json",
            ));
        }
    }
    f.finish()?;
    Ok(Mount {
        destination,
        kind,
        source,
        options,
    })
}

fn parse_linux(value: &Value, config: &mut Config) -> Result<()> {
    let mut f = Fields::new(value, "linux")?;
    if let Some(list) = f.take("namespaces") {
        for (i, item) in array(list, "linux.namespaces")?.iter().enumerate() {
            let at = format!("linux.namespaces[{i}]");
            let mut n = Fields::new(item, &at)?;
            let name = n.need("type").and_then(|v| string(v, &at))?;
            let kind = NsKind::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, k)| *k)
                .ok_or_else(|| invalid(&at, format!("unknown namespace type {name:?}")))?;
            let path = n
                .take("path")
                .map(|v| string(v, &at))
                .transpose()?
                .filter(|p| !p.is_empty());
            n.finish()?;
            if config.namespaces.iter().any(|ns| ns.kind == kind) {
                return Err(invalid(&at, format!("namespace {name} given twice")));
            }
            if kind == NsKind::Mount && path.is_some() {
                return Err(unsupported(
                    &format!("{at}.path"),
                    "joining a mount namespace",
                ));
            }
            config.namespaces.push(Namespace {
                kind,
                path: path.map(PathBuf::from),
            });
        }
    }
    for (name, slot) in [
        ("uidMappings", &mut config.uid_mappings),
        ("gidMappings", &mut config.gid_mappings),
    ] {
        if let Some(list) = f.take(name) {
            for item in array(list, &format!("linux.{name}"))? {
                let at = format!("linux.{name}");
                let mut m = Fields::new(item, &at)?;
                let inside = m.need("containerID").and_then(|v| number_u32(v, &at))?;
                let outside = m.need("hostID").and_then(|v| number_u32(v, &at))?;
                let count = m.need("size").and_then(|v| number_u32(v, &at))?;
                m.finish()?;
                slot.push(IdRange {
                    inside,
                    outside,
                    count,
                });
            }
        }
    }
    let has_user = config
        .namespaces
        .iter()
        .any(|ns| ns.kind == NsKind::User && ns.path.is_none());
    if has_user && (config.uid_mappings.is_empty() || config.gid_mappings.is_empty()) {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    let no_maps = config.uid_mappings.is_empty() && config.gid_mappings.is_empty();
    if !has_user && !no_maps {
        return Err(invalid(
            "linux.uidMappings",
            "id mappings without a new user namespace",
        ));
    }
    config.cgroups_path = f
        .take("cgroupsPath")
        .map(|v| string(v, "linux.cgroupsPath"))
        .transpose()?
        .filter(|p| !p.is_empty());
    if let Some(v) = f.take("resources") {
        config.resources = parse_resources(v)?;
    }
    if let Some(v) = f.take("sysctl") {
        config.sysctl = string_map(v, "linux.sysctl")?;
    }
    let new_net = config
        .namespaces
        .iter()
        .any(|n| n.kind == NsKind::Network && n.path.is_none());
    // Joined by path counts: the kernel state is that namespace's.
    let own_ipc = config.namespaces.iter().any(|n| n.kind == NsKind::Ipc);
    if let Some((key, _)) = config
        .sysctl
        .iter()
        .find(|(key, _)| !namespaced_sysctl(key, new_net, own_ipc))
    {
        return Err(invalid(
            &format!("linux.sysctl.{key}"),
            "not a sysctl of the container's own namespaces (kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* with an ipc namespace, net.* with a new network namespace)",
        ));
    }
    if let Some(v) = f.take("seccomp") {
        config.seccomp = Some(parse_seccomp(v)?);
    }
    for (name, slot) in [
        ("maskedPaths", &mut config.masked_paths),
        ("readonlyPaths", &mut config.readonly_paths),
    ] {
        if let Some(v) = f.take(name) {
            *slot = strings(v, &format!("linux.{name}"))?;
            if let Some(bad) = slot
                .iter()
                .find(|p| !p.starts_with('/') || p.split('/').any(|c| c == ".."))
            {
                return Err(invalid(
                    &format!("linux.{name}"),
                    format!("{bad:?} is not an absolute path without '..'"),
                ));
            }
        }
    }
    config.propagation = f
        .take("rootfsPropagation")
        .map(|v| string(v, "linux.rootfsPropagation"))
        .transpose()?;
    if let Some(v) = f.take("devices") {
        for (i, item) in array(v, "linux.devices")?.iter().enumerate() {
            config
                .devices
                .push(parse_device(item, &format!("linux.devices[{i}]"))?);
        }
    }
    if let Some(v) = f.take("mountLabel") {
        if !string(v, "linux.mountLabel")?.is_empty() && lsm_enforcing("SELinux") {
            return Err(unsupported(
                "linux.mountLabel",
                "this host enforces SELinux, and microbox applies no labels",
            ));
        }
    }
    for name in [
        "intelRdt",
        "personality",
        "timeOffsets",
        "memoryPolicy",
        "netDevices",
    ] {
        if f.take(name).is_some() {
            return Err(unsupported(
                &format!("linux.{name}"),
                "not supported by microbox",
            ));
        }
    }
    f.finish()
}

/// Whether writing `key` in the container's /proc/sys changes only the
/// container's own namespaces (runc's rule): nothing else reaches the host.
pub(crate) fn namespaced_sysctl(key: &str, new_net: bool, own_ipc: bool) -> bool {
    let plain = !key.is_empty()
        && key
            .split('.')
            .all(|p| !p.is_empty() && p != ".." && !p.contains('/'));
    let ipc = key.starts_with("kernel.shm")
        || key.starts_with("kernel.msg")
        || key == "kernel.sem"
        || key.starts_with("fs.mqueue.");
    let namespaced = (own_ipc && ipc) || (new_net && key.starts_with("net."));
    plain && namespaced
}

fn parse_resources(value: &Value) -> Result<Resources> {
    let at = "linux.resources";
    let mut f = Fields::new(value, at)?;
    let mut res = Resources::default();
    if let Some(v) = f.take("memory") {
        let at = "linux.resources.memory";
        let mut m = Fields::new(v, at)?;
        let int = |v: &Value, k: &str| {
            v.as_i64()
                .ok_or_else(|| invalid(&format!("{at}.{k}"), "not an integer"))
        };
        res.memory_limit = m.take("limit").map(|v| int(v, "limit")).transpose()?;
        res.memory_reservation = m
            .take("reservation")
            .map(|v| int(v, "reservation"))
            .transpose()?;
        res.memory_swap = m.take("swap").map(|v| int(v, "swap")).transpose()?;
        res.swappiness = m
            .take("swappiness")
            .map(|v| number_u64(v, at))
            .transpose()?;
        for name in ["kernel", "kernelTCP"] {
            if m.take(name).is_some() {
                return Err(unsupported(
                    &format!("{at}.{name}"),
                    "kernel memory limits are deprecated and not supported",
                ));
            }
        }
        if let Some(v) = m.take("disableOOMKiller") {
            if boolean(v, at)? {
                return Err(unsupported(
                    &format!("{at}.disableOOMKiller"),
                    "not supported by microbox",
                ));
            }
        }
        m.finish()?;
    }
    if let Some(v) = f.take("cpu") {
        let at = "linux.resources.cpu";
        let mut c = Fields::new(v, at)?;
        res.cpu_shares = c.take("shares").map(|v| number_u64(v, at)).transpose()?;
        res.cpu_quota = c
            .take("quota")
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| invalid(at, "quota is not an integer"))
            })
            .transpose()?;
        res.cpu_period = c.take("period").map(|v| number_u64(v, at)).transpose()?;
        for name in ["cpus", "mems"] {
            if let Some(v) = c.take(name) {
                if !string(v, at)?.is_empty() {
                    return Err(unsupported(
                        &format!("{at}.{name}"),
                        "cpusets are not supported yet",
                    ));
                }
            }
        }
        for name in ["realtimeRuntime", "realtimePeriod", "idle", "burst"] {
            if c.take(name).is_some() {
                return Err(unsupported(
                    &format!("{at}.{name}"),
                    "not supported by microbox",
                ));
            }
        }
        c.finish()?;
    }
    if let Some(v) = f.take("pids") {
        let mut p = Fields::new(v, "linux.resources.pids")?;
        res.pids_limit = p
            .take("limit")
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| invalid("linux.resources.pids.limit", "not an integer"))
            })
            .transpose()?;
        p.finish()?;
    }
    if let Some(list) = f.take("devices") {
        for (i, item) in array(list, "linux.resources.devices")?.iter().enumerate() {
            let at = format!("linux.resources.devices[{i}]");
            res.devices.push(parse_device_rule(item, &at)?);
        }
    }
    for name in ["blockIO", "hugepageLimits", "network", "rdma", "unified"] {
        if let Some(v) = f.take(name) {
            let empty = match v {
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                Value::Null => true,
                _ => false,
            };
            if !empty {
                return Err(unsupported(
                    &format!("{at}.{name}"),
                    "not supported by microbox",
                ));
            }
        }
    }
    f.finish()?;
    Ok(res)
}

/// A linux.devices entry: a character or block node below /dev.
fn parse_device(value: &Value, at: &str) -> Result<crate::fs::container::DeviceNode> {
    let mut f = Fields::new(value, at)?;
    let path = f.need("path").and_then(|v| string(v, at))?;
    let rest = path
        .strip_prefix("/dev/")
        .filter(|r| !r.is_empty() && r.split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
        .ok_or_else(|| {
            invalid(
                &format!("{at}.path"),
                format!("{path:?} is not a plain path below /dev"),
            )
        })?;
    let block = match f.need("type").and_then(|v| string(v, at))?.as_str() {
        "c" | "u" => false,
        "b" => true,
        other => {
            return Err(unsupported(
                &format!("{at}.type"),
                format!("device type {other:?}"),
            ))
        }
    };
    let major = f.need("major").and_then(|v| number_u32(v, at))?;
    let minor = f.need("minor").and_then(|v| number_u32(v, at))?;
    let mode = f
        .take("fileMode")
        .map(|v| number_u32(v, at))
        .transpose()?
        .unwrap_or(0o666)
        & 0o777;
    let uid = f
        .take("uid")
        .map(|v| number_u32(v, at))
        .transpose()?
        .unwrap_or(0);
    let gid = f
        .take("gid")
        .map(|v| number_u32(v, at))
        .transpose()?
        .unwrap_or(0);
    f.finish()?;
    Ok(crate::fs::container::DeviceNode {
        path: rest.to_string(),
        block,
        major,
        minor,
        mode,
        uid,
        gid,
    })
}

fn parse_device_rule(value: &Value, at: &str) -> Result<DeviceRule> {
    let mut f = Fields::new(value, at)?;
    let allow = f.need("allow").and_then(|v| boolean(v, at))?;
    let kind = match f
        .take("type")
        .map(|v| string(v, at))
        .transpose()?
        .as_deref()
    {
        None | Some("a") => DeviceKind::All,
        Some("c") => DeviceKind::Char,
        Some("b") => DeviceKind::Block,
        Some(other) => {
            return Err(invalid(
                at,
                format!("device type {other:?} is not a, b or c"),
            ))
        }
    };
    let id = |v: Option<&Value>, k: &str| -> Result<Option<u32>> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(-1) => Ok(None),
                _ => number_u32(v, &format!("{at}.{k}")).map(Some),
            },
        }
    };
    let major = id(f.take("major"), "major")?;
    let minor = id(f.take("minor"), "minor")?;
    let access_text = f
        .take("access")
        .map(|v| string(v, at))
        .transpose()?
        .unwrap_or_default();
    let access = Access::parse(&access_text).ok_or_else(|| {
        invalid(
            &format!("{at}.access"),
            format!("{access_text:?} is not a subset of rwm"),
        )
    })?;
    f.finish()?;
    Ok(DeviceRule {
        allow,
        kind,
        major,
        minor,
        access,
    })
}

fn parse_seccomp(value: &Value) -> Result<OciSeccomp> {
    let at = "linux.seccomp";
    let mut f = Fields::new(value, at)?;
    let errno_ret = f
        .take("defaultErrnoRet")
        .map(|v| number_u32(v, at))
        .transpose()?;
    let default_name = f.need("defaultAction").and_then(|v| string(v, at))?;
    let default_action = action_from_name(&default_name, errno_ret).ok_or_else(|| {
        invalid(
            &format!("{at}.defaultAction"),
            format!("unknown action {default_name:?}"),
        )
    })?;
    let architectures = match f.take("architectures") {
        Some(v) => strings(v, &format!("{at}.architectures"))?,
        None => Vec::new(),
    };
    if let Some(v) = f.take("flags") {
        for flag in strings(v, &format!("{at}.flags"))? {
            if flag != "SECCOMP_FILTER_FLAG_SPEC_ALLOW" {
                return Err(unsupported(
                    &format!("{at}.flags"),
                    format!("{flag} is not supported"),
                ));
            }
        }
    }
    for name in ["listenerPath", "listenerMetadata"] {
        if let Some(v) = f.take(name) {
            if !string(v, at)?.is_empty() {
                return Err(unsupported(
                    &format!("{at}.{name}"),
                    "seccomp listeners are not supported",
                ));
            }
        }
    }
    let mut rules = Vec::new();
    if let Some(list) = f.take("syscalls") {
        for (i, item) in array(list, &format!("{at}.syscalls"))?.iter().enumerate() {
            let at = format!("{at}.syscalls[{i}]");
            let mut s = Fields::new(item, &at)?;
            let names = s.need("names").and_then(|v| strings(v, &at))?;
            let errno = s.take("errnoRet").map(|v| number_u32(v, &at)).transpose()?;
            let action_name = s.need("action").and_then(|v| string(v, &at))?;
            let action = action_from_name(&action_name, errno).ok_or_else(|| {
                invalid(
                    &format!("{at}.action"),
                    format!("unknown action {action_name:?}"),
                )
            })?;
            let mut args = Vec::new();
            if let Some(list) = s.take("args") {
                for item in array(list, &format!("{at}.args"))? {
                    let at = format!("{at}.args");
                    let mut a = Fields::new(item, &at)?;
                    let index = a.need("index").and_then(|v| number_u32(v, &at))?;
                    let index = u8::try_from(index)
                        .ok()
                        .filter(|i| *i < 6)
                        .ok_or_else(|| invalid(&at, "index above 5"))?;
                    let value = a.need("value").and_then(|v| number_u64(v, &at))?;
                    let value_two = a
                        .take("valueTwo")
                        .map(|v| number_u64(v, &at))
                        .transpose()?
                        .unwrap_or(0);
                    let op_name = a.need("op").and_then(|v| string(v, &at))?;
                    let op = op_from_name(&op_name)
                        .ok_or_else(|| invalid(&at, format!("unknown op {op_name:?}")))?;
                    a.finish()?;
                    args.push(OciArg {
                        index,
                        value,
                        value_two,
                        op,
                    });
                }
            }
            // Informational only in runtime-spec 1.1.
            let _ = s.take("comment");
            s.finish()?;
            rules.push(OciRule {
                names,
                action,
                args,
            });
        }
    }
    f.finish()?;
    Ok(OciSeccomp {
        default_action,
        architectures,
        rules,
    })
}

// ---------------------------------------------------------------------------
// strict field access

/// An object's members with the ones read so far, so that [`Fields::finish`]
/// can refuse any member nobody read.
struct Fields<'a> {
    at: String,
    members: &'a [(String, Value)],
    used: Vec<bool>,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, at: &str) -> Result<Self> {
        let members = value.as_object().ok_or_else(|| {
            invalid(
                if at.is_empty() { "(top level)" } else { at },
                format!("expected an object, found {}", value.type_name()),
            )
        })?;
        Ok(Fields {
            at: at.to_string(),
            members,
            used: vec![false; members.len()],
        })
    }

    fn take(&mut self, key: &str) -> Option<&'a Value> {
        let index = self.members.iter().position(|(k, _)| k == key)?;
        self.used[index] = true;
        Some(&self.members[index].1)
    }

    fn need(&mut self, key: &str) -> Result<&'a Value> {
        let at = self.key(key);
        self.take(key).ok_or_else(|| invalid(&at, "missing"))
    }

    fn key(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    fn finish(self) -> Result<()> {
        for ((key, _), used) in self.members.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let full = self.key(key);
            if IGNORED.iter().any(|(name, _)| *name == full) {
                continue;
            }
            return Err(unsupported(&full, "unknown to microbox"));
        }
        Ok(())
    }
}

/// Field names come from the file: escaped, so a message stays one line.
fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::usage(format!("config.json: {}: {why}", field.escape_debug()))
}

fn unsupported(field: &str, why: impl std::fmt::Display) -> Error {
    Error::usage(format!(
        "config.json: {}: not supported ({why})",
        field.escape_debug()
    ))
}

fn string(value: &Value, at: &str) -> Result<String> {
    value.as_str().map(str::to_string).ok_or_else(|| {
        invalid(
            at,
            format!("expected a string, found {}", value.type_name()),
        )
    })
}

fn boolean(value: &Value, at: &str) -> Result<bool> {
    value.as_bool().ok_or_else(|| {
        invalid(
            at,
            format!("expected true or false, found {}", value.type_name()),
        )
    })
}

fn array<'a>(value: &'a Value, at: &str) -> Result<&'a [Value]> {
    match value {
        Value::Null => Ok(&[]),
        _ => value.as_array().ok_or_else(|| {
            invalid(
                at,
                format!("expected an array, found {}", value.type_name()),
            )
        }),
    }
}

fn strings(value: &Value, at: &str) -> Result<Vec<String>> {
    array(value, at)?.iter().map(|v| string(v, at)).collect()
}

fn string_map(value: &Value, at: &str) -> Result<Vec<(String, String)>> {
    match value {
        Value::Null => Ok(Vec::new()),
        _ => value
            .as_object()
            .ok_or_else(|| invalid(at, "expected an object of strings"))?
            .iter()
            .map(|(k, v)| Ok((k.clone(), string(v, &format!("{at}.{k}"))?)))
            .collect(),
    }
}

fn number_u64(value: &Value, at: &str) -> Result<u64> {
    value.as_u64().ok_or_else(|| {
        invalid(
            at,
            format!("expected an unsigned integer, found {}", value.type_name()),
        )
    })
}

fn number_u32(value: &Value, at: &str) -> Result<u32> {
    u32::try_from(number_u64(value, at)?).map_err(|_| invalid(at, "above 4294967295"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    pub(crate) const MINIMAL: &str = r#"{
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/sh"], "cwd": "/", "env": ["PATH=/bin"],
                    "user": {"uid": 0, "gid": 0},
                    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]},
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "box",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}],
                  "resources": {"devices": [{"allow": false, "access": "rwm"}],
                                "pids": {"limit": 100}}}
    }"#;

    fn with(text: &str, from: &str, to: &str) -> Result<Config> {
        assert!(text.contains(from), "{from}");
        parse(text.replacen(from, to, 1).as_bytes())
    }

    #[test]
    fn a_minimal_config_maps() {
        let c = parse(MINIMAL.as_bytes()).unwrap();
        assert_eq!(c.process.args, ["/bin/sh"]);
        assert_eq!(c.process.caps.bounding, 1 << crate::security::caps::KILL);
        assert_eq!(c.root, PathBuf::from("rootfs"));
        assert!(c.root_readonly);
        assert_eq!(c.namespaces.len(), 2);
        assert_eq!(c.resources.pids_limit, Some(100));
        assert_eq!(c.resources.devices.len(), 1);
        assert_eq!(c.hostname.as_deref(), Some("box"));
    }

    #[test]
    fn unknown_and_unsupported_fields_are_named() {
        let cases = [
            (
                r#""hostname": "box","#,
                r#""hostname": "box", "bogus": 1,"#,
                "bogus: not supported",
            ),
            (
                r#""linux": {"#,
                r#""linux": {"intelRdt": {}, "#,
                "linux.intelRdt",
            ),
            (
                r#""linux": {"#,
                r#""linux": {"personality": {"domain": "LINUX"}, "#,
                "linux.personality",
            ),
            (
                r#""hostname": "box","#,
                r#""hooks": {"prestart": [{"path": "/x"}]},"#,
                "hooks.prestart",
            ),
            (
                r#""linux": {"#,
                r#""linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/s"}, "#,
                "listenerPath",
            ),
            (r#""cwd": "/""#, r#""cwd": "rel""#, "process.cwd"),
            (r#"{"type": "mount"}, "#, "", "new mount namespace"),
            (
                r#""RLIMIT_NOFILE""#,
                r#""RLIMIT_RTTIME""#,
                "RLIMIT_RTTIME is not supported",
            ),
            (
                r#""destination": "/proc""#,
                r#""destination": "/a/../b""#,
                "without '..'",
            ),
        ];
        for (from, to, want) in cases {
            let err = with(MINIMAL, from, to).unwrap_err().to_string();
            assert!(err.contains(want), "{to}: {err}");
            assert!(err.contains("config.json"), "{err}");
        }
    }

    #[test]
    fn capabilities_are_exact_upper_case_names_and_unknown_ones_are_skipped() {
        let c = with(
            MINIMAL,
            r#""effective": ["CAP_KILL"]"#,
            r#""effective": ["CAP_KILL", "cap_chown", "CAP_FUTURE"]"#,
        )
        .unwrap();
        assert_eq!(c.process.caps.effective, 1 << crate::security::caps::KILL);
    }

    #[test]
    fn empty_hooks_and_ignored_fields_are_accepted() {
        with(
            MINIMAL,
            r#""hostname": "box","#,
            r#""hostname": "box", "hooks": {"prestart": []},"#,
        )
        .unwrap();
        with(
            MINIMAL,
            r#""cwd": "/","#,
            r#""cwd": "/", "consoleSize": {"height": 1, "width": 2},"#,
        )
        .unwrap();
    }

    #[test]
    fn a_refusal_is_one_line_whatever_the_file_holds() {
        let err = with(
            MINIMAL,
            r#""hostname": "box","#,
            r#""hostname": "box", "a\nb": 1,"#,
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains('\n') && err.contains("a\\nb"), "{err}");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for text in [
            "",
            "[]",
            "{",
            "null",
            r#"{"ociVersion": 1}"#,
            r#"{"ociVersion": "2.0"}"#,
        ] {
            assert!(parse(text.as_bytes()).is_err(), "{text}");
        }
    }
}
