//! The sandbox's filesystem as data: [`plan`] turns the Spec into the ordered
//! list of mount steps the child executes in its own mount namespace
//! (`apply.rs`). Pure: unit tests read the whole list without root.
//!
//! The list is also the closed set of privileged operations microbox performs
//! on filesystems. Each [`Step`] variant says why it cannot reach the host.
//! Every path is looked up below a [`Base`], a tree the executor holds an fd
//! for, so no step depends on what a path names at a later moment.

use std::fmt;
use std::path::PathBuf;

use rustix::mount::MountAttrFlags;

use super::resolve::Kind;
use crate::spec::{FsMode, Spec, DEFAULT_DNS};

/// A tree the executor holds an fd for. `Host` is open from the start; every
/// other base is the mount a [`Step::Mount`] made (`becomes`), by its fsmount fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Base {
    /// `/` of the child's mount namespace: its private copy of the host's tree.
    Host,
    /// The staging tmpfs that holds the overlay's upper and work layers.
    Staging,
    /// The sandbox's new root.
    Root,
    /// The sandbox's fresh procfs.
    Proc,
    /// The sandbox's fresh /dev tmpfs.
    Dev,
}

/// How a step's path is looked up below its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Symlinks followed as on the host: only for host paths (`--fs host`,
    /// microbox's state directory), which the sandbox has not touched yet.
    Host,
    /// Any symlink refused: mount points microbox owns in an image (/proc,
    /// /dev, /tmp), where an image's symlink would send the mount elsewhere,
    /// and paths below microbox's own fresh mounts.
    NoSymlinks,
    /// Symlinks resolved inside the base, never leaving it: image paths a user
    /// names (bind destinations) or that images link around (/etc).
    InRoot,
    /// Resolved by the mount call itself, with no fd opened first; a missing
    /// last component is made by name. Only below a filesystem microbox
    /// mounted a moment ago (the new procfs, the /dev tmpfs), whose entries
    /// only the kernel or microbox made and no sandboxed process has touched,
    /// so a lookup there cannot be sent anywhere else. Measured: looking up an
    /// fd first cost 2-5 more syscalls for each of the ~45 /proc and /dev
    /// steps, about 100 of the 230 syscalls the fd-based mount API added to
    /// every start.
    Fresh,
}

/// A path below a base; `create` makes a missing last component (and
/// directories on the way) inside the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub base: Base,
    /// Relative to the base; empty means the base itself.
    pub path: String,
    pub lookup: Lookup,
    pub create: Option<Kind>,
}

impl At {
    pub(super) fn new(base: Base, path: &str, lookup: Lookup) -> Self {
        At {
            base,
            path: path.trim_start_matches('/').to_string(),
            lookup,
            create: None,
        }
    }

    pub(super) fn creating(mut self, kind: Kind) -> Self {
        self.create = Some(kind);
        self
    }

    /// The base itself.
    pub(super) fn base(base: Base) -> Self {
        At::new(base, "", Lookup::NoSymlinks)
    }
}

/// A filesystem type microbox creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    Tmpfs,
    Proc,
    Devpts,
    Mqueue,
    Overlay,
    /// OCI containers only: config.json asks for them.
    Sysfs,
    Cgroup2,
}

impl Fs {
    pub fn name(self) -> &'static str {
        match self {
            Fs::Tmpfs => "tmpfs",
            Fs::Proc => "proc",
            Fs::Devpts => "devpts",
            Fs::Mqueue => "mqueue",
            Fs::Overlay => "overlay",
            Fs::Sysfs => "sysfs",
            Fs::Cgroup2 => "cgroup2",
        }
    }
}

/// One fsconfig parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Flag,
    Text(String),
}

/// What a [`Step::Bind`] clones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A host character device, opened by path and checked to be `major:minor`
    /// before it is cloned (a replaced node is never bound in). `null` also
    /// masks files: the host's, never the image's (CVE-2025-31133).
    HostDevice {
        name: &'static str,
        major: u32,
        minor: u32,
    },
    /// The target's own tree, cloned onto itself to give it its own flags
    /// (read-only /proc/sys).
    Itself,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every mount of the namespace becomes private, recursively. First: after
    /// it, nothing a later step does can propagate to the host's mounts.
    MakePrivate,
    /// A new filesystem (fsopen, fsconfig, fsmount) attached at `target`
    /// (move_mount). Safe: the target is looked up as [`Lookup`] says, in a
    /// namespace that is private by now; `attrs` hold from the moment it is
    /// visible. `becomes` names the new mount as a base for later steps.
    /// `missing_ok`: a target the kernel does not have is skipped (masks).
    Mount {
        fs: Fs,
        target: At,
        attrs: MountAttrFlags,
        options: Vec<(&'static str, Value)>,
        becomes: Option<Base>,
        missing_ok: bool,
    },
    /// A detached clone of `source` (open_tree), given `attrs` before it is
    /// attached at `target`. Safe: non-recursive clones of single files or of
    /// microbox's own procfs; nothing of the host's tree is reachable through it
    /// that the source did not show.
    Bind {
        source: Source,
        target: At,
        attrs: MountAttrFlags,
        missing_ok: bool,
    },
    /// The image directory, cloned (and idmapped onto the sandbox's ids) by the
    /// parent before the clone (`image.rs`), attached at `target` in the
    /// staging tmpfs for the overlay's lower layer. Safe: the clone is of the
    /// image directory alone, read-only, and the target is microbox's own.
    /// `becomes`: an OCI container's root (its bundle's root tree, cloned
    /// recursively by `create`) is the new root itself.
    AttachImage { target: At, becomes: Option<Base> },
    /// The user's bind mount number `index` (cloned and flagged by the parent
    /// before the clone: `bind.rs`), attached at its destination. Safe: the
    /// destination is resolved inside the root, and refused if it lands on
    /// /, /proc or /dev, or is not of the source's kind.
    AttachBind {
        index: usize,
        source: PathBuf,
        target: At,
        create_missing: bool,
    },
    /// mount_setattr on an existing mount (`recursive`: and every mount below):
    /// only ever adds restrictions (read-only).
    SetAttr {
        target: At,
        attrs: MountAttrFlags,
        recursive: bool,
        missing_ok: bool,
    },
    /// A directory or empty file made if missing, inside microbox's own tmpfs
    /// or the overlay's upper layer (never on the host: the image is the
    /// overlay's lower layer).
    Make { target: At },
    /// An OCI `maskedPaths` entry: a directory gets an empty read-only
    /// tmpfs over it, anything else the host's /dev/null (opened and checked
    /// by `dev::open_host_device`, never the image's). Safe: only ever hides;
    /// a missing path is skipped.
    Mask { target: At },
    /// An OCI `linux.sysctl` entry written into the fresh procfs's sys/
    /// (already checked to be per namespace), before any of it turns
    /// read-only. Safe: the procfs is the container's own, and the key's
    /// parts are plain names.
    Sysctl { key: String, value: String },
    /// An OCI `linux.devices` node made in the container's fresh /dev
    /// tmpfs (mknodat below the Dev base, then its owner). Safe: the path
    /// is plain and below microbox's own tmpfs, and the device cgroup
    /// decides whether the node opens.
    MakeDevice { node: super::container::DeviceNode },
    /// A symlink in microbox's own /dev.
    Symlink { target: At, points_to: &'static str },
    /// A file replaced in the overlay's upper layer: whatever the image has
    /// at `dir/name` (a symlink too) is unlinked, then a new file is created
    /// with O_EXCL|O_NOFOLLOW.
    WriteFile {
        dir: At,
        name: &'static str,
        content: String,
    },
    /// pivot_root into [`Base::Root`] and detach the old root. The old root is
    /// private (MakePrivate), so the detach cannot propagate to the host.
    PivotIntoRoot,
    /// A host whose root is the initramfs (pivot_root is EINVAL there): move
    /// [`Base::Root`] onto `/` and chroot into it, as switch_root does. The
    /// initramfs stays below, reachable only by a chroot escape or an unmount,
    /// which the sandbox is denied in this mode (`sandbox::rootfs_guard`).
    MoveIntoRoot,
    /// `--fs host`: the sandbox stays in the host's (private copy of the) tree.
    ChdirToHostRoot,
}

/// Where the child mounts its staging tmpfs, in its own mount namespace only.
/// The parent makes sure the directory exists; nothing is created on the host.
pub fn staging() -> &'static str {
    crate::state::run_dir()
}

const NOSUID_NODEV: MountAttrFlags =
    MountAttrFlags::MOUNT_ATTR_NOSUID.union(MountAttrFlags::MOUNT_ATTR_NODEV);
const RDONLY: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_RDONLY;

/// The host's /sys directories a `--fs host` sandbox sees empty.
pub const SYS_MASKED_DIRS: [&str; 2] = ["/sys/firmware", "/sys/devices/virtual/powercap"];

/// The whole mount sequence for `spec`, in order.
pub fn plan(spec: &Spec, hostname: &str) -> Vec<Step> {
    let mut steps = vec![Step::MakePrivate];
    match &spec.fs {
        FsMode::Host => {
            if spec.readonly {
                steps.push(set_attr(At::base(Base::Host), RDONLY, true, false));
                let tmp_size = spec.storage.to_string();
                for (dir, size) in [("/tmp", tmp_size.as_str()), ("/dev/shm", "65536k")] {
                    let target = At::new(Base::Host, dir, Lookup::Host);
                    steps.push(tmpfs(target, size, "1777", None, true));
                }
            }
            // /sys (cgroupfs above all: a sandbox could raise its own limits)
            // read-only; microbox's state (other sandboxes' lock files) hidden.
            let sys = At::new(Base::Host, "/sys", Lookup::Host);
            steps.push(set_attr(sys, RDONLY, true, true));
            // runc's masks below /sys: firmware (ACPI tables, EFI variables, DMI
            // serials) and powercap (RAPL energy counters, a side channel on
            // other tenants' computation), each behind an empty tmpfs.
            for dir in SYS_MASKED_DIRS {
                steps.push(Step::Mount {
                    fs: Fs::Tmpfs,
                    target: At::new(Base::Host, dir, Lookup::Host),
                    attrs: NOSUID_NODEV | RDONLY,
                    options: vec![("size", Value::Text("0".into()))],
                    becomes: None,
                    missing_ok: true,
                });
            }
            steps.push(Step::Mount {
                fs: Fs::Tmpfs,
                target: At::new(Base::Host, staging(), Lookup::Host),
                attrs: NOSUID_NODEV | RDONLY,
                options: vec![("size", Value::Text("0".into()))],
                becomes: None,
                missing_ok: false,
            });
            // A user's sandbox: root's state is hidden as well.
            if staging() != crate::state::ROOT_RUN_DIR {
                steps.push(Step::Mount {
                    fs: Fs::Tmpfs,
                    target: At::new(Base::Host, crate::state::ROOT_RUN_DIR, Lookup::Host),
                    attrs: NOSUID_NODEV | RDONLY,
                    options: vec![("size", Value::Text("0".into()))],
                    becomes: None,
                    missing_ok: true,
                });
            }
            steps.extend(super::proc::steps(Base::Host));
            steps.extend(attach_binds(spec, Base::Host, false));
            steps.push(Step::ChdirToHostRoot);
        }
        FsMode::Tmpfs => {
            let tmpfs_at = At::new(Base::Host, staging(), Lookup::Host);
            let size = spec.storage.to_string();
            steps.push(tmpfs(tmpfs_at, &size, "0755", Some(Base::Root), false));
            image_root(spec, hostname, &mut steps);
        }
        FsMode::Dir(_) => {
            let tmpfs_at = At::new(Base::Host, staging(), Lookup::Host);
            let size = spec.storage.to_string();
            steps.push(tmpfs(tmpfs_at, &size, "0755", Some(Base::Staging), false));
            for dir in ["upper", "work", "root", "lower"] {
                let target = At::new(Base::Staging, dir, Lookup::NoSymlinks).creating(Kind::Dir);
                steps.push(Step::Make { target });
            }
            steps.push(Step::AttachImage {
                target: At::new(Base::Staging, "lower", Lookup::NoSymlinks),
                becomes: None,
            });
            // With the ids shifted, setuid files of the image raise ids of the
            // sandbox's own range only: they work, as in any root filesystem.
            let attrs = if crate::ns::shifts_ids(spec) {
                MountAttrFlags::MOUNT_ATTR_NODEV
            } else {
                NOSUID_NODEV
            };
            steps.push(Step::Mount {
                fs: Fs::Overlay,
                target: At::new(Base::Staging, "root", Lookup::NoSymlinks),
                attrs,
                options: vec![
                    // readdir's d_ino then agrees with stat's st_ino for every
                    // entry (the layers are on different filesystems).
                    ("xino", Value::Text("on".into())),
                    ("lowerdir", Value::Text(format!("{}/lower", staging()))),
                    ("upperdir", Value::Text(format!("{}/upper", staging()))),
                    ("workdir", Value::Text(format!("{}/work", staging()))),
                ],
                becomes: Some(Base::Root),
                missing_ok: false,
            });
            image_root(spec, hostname, &mut steps);
        }
    }
    steps
}

/// What a new root (tmpfs or overlay) gets on top of its mount: /proc, /dev,
/// the /etc files and /tmp of an image, the binds, the read-only flag, the pivot.
fn image_root(spec: &Spec, hostname: &str, steps: &mut Vec<Step>) {
    steps.extend(super::proc::steps(Base::Root));
    steps.extend(super::dev::steps());
    if let FsMode::Dir(_) = spec.fs {
        let etc = At::new(Base::Root, "/etc", Lookup::InRoot).creating(Kind::Dir);
        for (name, content) in etc_files(spec, hostname) {
            steps.push(Step::WriteFile {
                dir: etc.clone(),
                name,
                content,
            });
        }
        let tmp = At::new(Base::Root, "/tmp", Lookup::NoSymlinks).creating(Kind::Dir);
        steps.push(Step::Make {
            target: tmp.clone(),
        });
        if spec.readonly {
            steps.push(tmpfs(tmp, &spec.storage.to_string(), "1777", None, false));
        }
    }
    steps.extend(attach_binds(spec, Base::Root, true));
    if spec.readonly {
        // Only the root mount's own flag: /dev, /proc, /tmp and the binds keep theirs.
        steps.push(set_attr(At::base(Base::Root), RDONLY, false, false));
    }
    steps.push(Step::PivotIntoRoot);
}

/// `create_missing`: a missing destination is made inside the sandbox, of the
/// source's kind; never with `--fs host`, where it would be made on the host.
fn attach_binds(spec: &Spec, base: Base, create_missing: bool) -> Vec<Step> {
    spec.mounts
        .iter()
        .enumerate()
        .map(|(index, bind)| Step::AttachBind {
            index,
            source: bind.source.clone(),
            target: At::new(base, &bind.dest.to_string_lossy(), Lookup::InRoot),
            create_missing,
        })
        .collect()
}

/// /etc/hosts, /etc/hostname and /etc/resolv.conf of an image root.
fn etc_files(spec: &Spec, hostname: &str) -> [(&'static str, String); 3] {
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    let servers: Vec<String> = if spec.dns.is_empty() {
        DEFAULT_DNS.iter().map(|s| s.to_string()).collect()
    } else {
        spec.dns.iter().map(|ip| ip.to_string()).collect()
    };
    let resolv: String = servers
        .iter()
        .map(|s| format!("nameserver {s}\n"))
        .collect();
    [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ]
}

/// A tmpfs of `size` bytes with directory mode `mode`.
pub(super) fn tmpfs(
    target: At,
    size: &str,
    mode: &str,
    becomes: Option<Base>,
    missing_ok: bool,
) -> Step {
    Step::Mount {
        fs: Fs::Tmpfs,
        target,
        attrs: NOSUID_NODEV,
        options: vec![
            ("size", Value::Text(size.to_string())),
            ("mode", Value::Text(mode.to_string())),
        ],
        becomes,
        missing_ok,
    }
}

pub(super) fn set_attr(
    target: At,
    attrs: MountAttrFlags,
    recursive: bool,
    missing_ok: bool,
) -> Step {
    Step::SetAttr {
        target,
        attrs,
        recursive,
        missing_ok,
    }
}

// ---------------------------------------------------------------------------
// display: one line per step, for error messages and the snapshot tests

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The path as the sandbox will see it (staging: as the child sees it).
        let prefix = match self.base {
            Base::Host | Base::Root => "",
            Base::Staging => staging(),
            Base::Proc => "/proc",
            Base::Dev => "/dev",
        };
        if self.path.is_empty() && prefix.is_empty() {
            f.write_str("/")
        } else if self.path.is_empty() {
            f.write_str(prefix)
        } else {
            write!(f, "{prefix}/{}", self.path)
        }
    }
}

/// The target with how it is found, for the audit listing.
struct Where<'a>(&'a At);

impl fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.0;
        write!(f, "{at} [{:?}", at.base)?;
        match at.lookup {
            Lookup::Host => f.write_str(", host lookup")?,
            Lookup::NoSymlinks => {}
            Lookup::InRoot => f.write_str(", in root")?,
            Lookup::Fresh => f.write_str(", by path")?,
        }
        match at.create {
            Some(Kind::Dir) => f.write_str(", mkdir")?,
            Some(Kind::File) => f.write_str(", create")?,
            None => {}
        }
        f.write_str("]")
    }
}

fn attr_names(attrs: MountAttrFlags) -> String {
    let names: Vec<&str> = [
        (MountAttrFlags::MOUNT_ATTR_RDONLY, "ro"),
        (MountAttrFlags::MOUNT_ATTR_NOSUID, "nosuid"),
        (MountAttrFlags::MOUNT_ATTR_NODEV, "nodev"),
        (MountAttrFlags::MOUNT_ATTR_NOEXEC, "noexec"),
    ]
    .iter()
    .filter(|(flag, _)| attrs.contains(*flag))
    .map(|(_, name)| *name)
    .collect();
    if names.is_empty() {
        "-".to_string()
    } else {
        names.join(",")
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let optional = |missing_ok: bool| if missing_ok { " if present" } else { "" };
        match self {
            Step::MakePrivate => f.write_str("make every mount private"),
            Step::Mount {
                fs,
                target,
                attrs,
                options,
                becomes,
                missing_ok,
            } => {
                write!(f, "mount {} on {}", fs.name(), Where(target))?;
                write!(f, " {}", attr_names(*attrs))?;
                for (key, value) in options {
                    match value {
                        Value::Flag => write!(f, " {key}")?,
                        Value::Text(v) => write!(f, " {key}={v}")?,
                    }
                }
                if let Some(base) = becomes {
                    write!(f, " => {base:?}")?;
                }
                f.write_str(optional(*missing_ok))
            }
            Step::Bind {
                source,
                target,
                attrs,
                missing_ok,
            } => {
                match source {
                    Source::HostDevice { name, major, minor } => {
                        write!(f, "bind host /dev/{name} ({major}:{minor})")?
                    }
                    Source::Itself => f.write_str("bind itself")?,
                }
                write!(f, " on {} {}", Where(target), attr_names(*attrs))?;
                f.write_str(optional(*missing_ok))
            }
            Step::AttachImage { target, becomes } => {
                write!(f, "attach the image on {}", Where(target))?;
                match becomes {
                    Some(base) => write!(f, " => {base:?}"),
                    None => Ok(()),
                }
            }
            Step::Mask { target } => write!(f, "mask {} if present", Where(target)),
            Step::Sysctl { key, value } => write!(f, "sysctl {key} = {value}"),
            Step::MakeDevice { node } => write!(
                f,
                "mknod /dev/{} {} {}:{}",
                node.path,
                if node.block { "b" } else { "c" },
                node.major,
                node.minor
            ),
            Step::AttachBind {
                index,
                source,
                target,
                create_missing,
            } => {
                write!(
                    f,
                    "attach bind #{index} of {} on {}",
                    source.display(),
                    Where(target)
                )?;
                f.write_str(if *create_missing {
                    " (made if missing)"
                } else {
                    ""
                })
            }
            Step::SetAttr {
                target,
                attrs,
                recursive,
                missing_ok,
            } => {
                let rec = if *recursive { " recursively" } else { "" };
                write!(f, "set {} on {}{rec}", attr_names(*attrs), Where(target))?;
                f.write_str(optional(*missing_ok))
            }
            Step::Make { target } => write!(f, "make {}", Where(target)),
            Step::Symlink { target, points_to } => {
                write!(f, "symlink {} -> {points_to}", Where(target))
            }
            Step::WriteFile { dir, name, .. } => write!(f, "write {name} in {}", Where(dir)),
            Step::PivotIntoRoot => f.write_str("pivot_root into Root, detach the old root"),
            Step::MoveIntoRoot => f.write_str("move Root onto / and chroot into it"),
            Step::ChdirToHostRoot => f.write_str("stay in the host tree at /"),
        }
    }
}

impl Step {
    /// What the step does, in the words of an error message (`cannot ...`):
    /// the operation (a verb phrase, the key of the hint table) and its object,
    /// for the error a failed step reports: `mount overlay on` `/`.
    pub fn action(&self) -> (String, Option<String>) {
        let (op, object) = match self {
            Step::MakePrivate => (
                "make / private in the sandbox's mount namespace".into(),
                None,
            ),
            Step::Mount { fs, target, .. } if target.base == Base::Proc => (
                "mask".into(),
                Some(format!("{target} with an empty {}", fs.name())),
            ),
            Step::Mount { fs, target, .. } => {
                (format!("mount {} on", fs.name()), Some(target.to_string()))
            }
            Step::Bind {
                source: Source::HostDevice { name, .. },
                target,
                ..
            } if target.base == Base::Proc => (
                "mask".into(),
                Some(format!("{target} with host /dev/{name}")),
            ),
            Step::Bind {
                source: Source::HostDevice { name, .. },
                target,
                ..
            } => (
                format!("bind host /dev/{name} on"),
                Some(target.to_string()),
            ),
            Step::Bind {
                source: Source::Itself,
                target,
                attrs,
                ..
            } => (
                "bind".into(),
                Some(format!("{target} onto itself {}", attr_names(*attrs))),
            ),
            Step::AttachImage { target, .. } => {
                ("mount the image on".into(), Some(target.to_string()))
            }
            Step::Mask { target } => ("mask".into(), Some(target.to_string())),
            Step::MakeDevice { node } => (
                "make the device node".into(),
                Some(format!("/dev/{}", node.path)),
            ),
            Step::Sysctl { key, value } => {
                ("write".into(), Some(format!("{value} to sysctl {key}")))
            }
            Step::AttachBind { source, target, .. } => (
                format!("mount {} on", source.display()),
                Some(target.to_string()),
            ),
            Step::SetAttr { target, attrs, .. } => (
                format!("set {} on", attr_names(*attrs)),
                Some(target.to_string()),
            ),
            Step::Make { target } | Step::Symlink { target, .. } => {
                ("create".into(), Some(target.to_string()))
            }
            Step::WriteFile { dir, name, .. } => ("write".into(), Some(format!("{dir}/{name}"))),
            Step::PivotIntoRoot => ("pivot_root into the new root".into(), None),
            Step::MoveIntoRoot => ("move the new root onto / and chroot".into(), None),
            Step::ChdirToHostRoot => ("change directory to /".into(), None),
        };
        (op, object)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::spec::BindMount;

    fn listing(steps: &[Step]) -> String {
        steps.iter().map(|s| format!("{s}\n")).collect()
    }

    fn bind(source: &str, dest: &str, writable: bool) -> BindMount {
        BindMount {
            source: source.into(),
            dest: dest.into(),
            writable,
        }
    }

    /// The representative specs whose whole plan is kept in `testdata/`.
    fn representative() -> Vec<(&'static str, Spec)> {
        let image = Spec {
            fs: FsMode::Dir("/img".into()),
            ..Spec::default()
        };
        vec![
            ("tmpfs-default", Spec::default()),
            ("image", image.clone()),
            (
                "image-readonly-binds-dns",
                Spec {
                    readonly: true,
                    mounts: vec![bind("/src", "/data", false), bind("/out", "/out", true)],
                    dns: vec!["192.0.2.53".parse().unwrap()],
                    ..image.clone()
                },
            ),
            (
                "host",
                Spec {
                    fs: FsMode::Host,
                    mounts: vec![bind("/src", "/mnt", false)],
                    ..Spec::default()
                },
            ),
            (
                "image-userns-host",
                Spec {
                    userns: crate::spec::UsernsMode::Host,
                    ..image
                },
            ),
            (
                "host-readonly",
                Spec {
                    fs: FsMode::Host,
                    readonly: true,
                    ..Spec::default()
                },
            ),
        ]
    }

    /// Snapshot of each representative plan. `MICROBOX_BLESS=1 cargo test
    /// --lib fs::plan` rewrites the files after a deliberate change; the diff
    /// is then the review of what the sandbox's filesystem now is.
    #[test]
    fn plans_match_their_snapshots() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fs/testdata");
        let bless = std::env::var_os("MICROBOX_BLESS").is_some();
        for (name, spec) in representative() {
            let got = listing(&plan(&spec, "box"));
            let file = dir.join(format!("plan-{name}.txt"));
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&file, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e} (MICROBOX_BLESS=1 writes it)", file.display()));
            assert_eq!(
                got,
                want,
                "plan {name} changed; diff against {}",
                file.display()
            );
        }
    }

    fn all_plans() -> Vec<(String, Vec<Step>)> {
        let mut out = Vec::new();
        for (name, spec) in representative() {
            for readonly in [false, true] {
                let spec = Spec {
                    readonly,
                    ..spec.clone()
                };
                out.push((format!("{name} readonly={readonly}"), plan(&spec, "box")));
            }
        }
        out
    }

    #[test]
    fn every_plan_starts_private_and_ends_in_its_root() {
        for (name, steps) in all_plans() {
            assert_eq!(steps.first(), Some(&Step::MakePrivate), "{name}");
            let last = steps.last().unwrap();
            let want = if name.starts_with("host") {
                Step::ChdirToHostRoot
            } else {
                Step::PivotIntoRoot
            };
            assert_eq!(last, &want, "{name}");
            let entering = steps
                .iter()
                .filter(|s| matches!(s, Step::PivotIntoRoot | Step::ChdirToHostRoot))
                .count();
            assert_eq!(entering, 1, "{name}");
        }
    }

    /// Each base is made by a mount before any step names it, and only once.
    #[test]
    fn every_base_exists_before_it_is_used() {
        for (name, steps) in all_plans() {
            let mut made = vec![Base::Host];
            for step in &steps {
                let used = match step {
                    Step::Mount { target, .. }
                    | Step::Bind { target, .. }
                    | Step::AttachBind { target, .. }
                    | Step::AttachImage { target, .. }
                    | Step::Mask { target }
                    | Step::SetAttr { target, .. }
                    | Step::Make { target }
                    | Step::Symlink { target, .. } => Some(target.base),
                    Step::WriteFile { dir, .. } => Some(dir.base),
                    Step::Sysctl { .. } => Some(Base::Proc),
                    Step::MakeDevice { .. } => Some(Base::Dev),
                    Step::PivotIntoRoot | Step::MoveIntoRoot => Some(Base::Root),
                    Step::MakePrivate | Step::ChdirToHostRoot => None,
                };
                if let Some(base) = used {
                    assert!(
                        made.contains(&base),
                        "{name}: {step} before {base:?} exists"
                    );
                }
                if let Step::Mount {
                    becomes: Some(base),
                    ..
                } = step
                {
                    assert!(!made.contains(base), "{name}: {base:?} made twice");
                    made.push(*base);
                }
            }
        }
    }

    /// Nothing is ever created in the host's tree: with `--fs host` every
    /// target must exist, and elsewhere only microbox's own mounts and the
    /// overlay's upper layer get new entries.
    #[test]
    fn nothing_is_created_on_the_host() {
        for (name, steps) in all_plans() {
            for step in &steps {
                let target = match step {
                    Step::Mount { target, .. }
                    | Step::Bind { target, .. }
                    | Step::SetAttr { target, .. }
                    | Step::Make { target }
                    | Step::Symlink { target, .. } => target,
                    Step::WriteFile { dir, .. } => dir,
                    Step::AttachBind {
                        target,
                        create_missing,
                        ..
                    } => {
                        assert!(
                            !(target.base == Base::Host && *create_missing),
                            "{name}: {step}"
                        );
                        target
                    }
                    _ => continue,
                };
                if target.base == Base::Host {
                    assert!(target.create.is_none(), "{name}: {step}");
                    assert!(
                        !matches!(
                            step,
                            Step::Make { .. } | Step::Symlink { .. } | Step::WriteFile { .. }
                        ),
                        "{name}: {step}"
                    );
                }
            }
        }
    }

    /// Every new filesystem is nosuid, but for the overlay root of a sandbox
    /// whose ids are shifted; nodev but for devpts (its ptys are its own
    /// device nodes); images never get a host lookup.
    #[test]
    fn mounts_carry_nosuid_and_nodev() {
        for (name, steps) in all_plans() {
            for step in &steps {
                if let Step::Mount { fs, attrs, .. } = step {
                    let shifted_root = *fs == Fs::Overlay && !name.contains("userns-host");
                    assert_eq!(
                        attrs.contains(MountAttrFlags::MOUNT_ATTR_NOSUID),
                        !shifted_root,
                        "{name}: {step}"
                    );
                    if *fs != Fs::Devpts {
                        assert!(
                            attrs.contains(MountAttrFlags::MOUNT_ATTR_NODEV),
                            "{name}: {step}"
                        );
                    }
                }
                if let Step::Mount { target, .. } | Step::Bind { target, .. } = step {
                    if target.base != Base::Host {
                        assert_ne!(target.lookup, Lookup::Host, "{name}: {step}");
                    }
                }
                if let Step::Mount { target, .. }
                | Step::Bind { target, .. }
                | Step::SetAttr { target, .. }
                | Step::Make { target } = step
                {
                    if target.lookup == Lookup::Fresh {
                        assert!(
                            matches!(target.base, Base::Proc | Base::Dev),
                            "{name}: {step}"
                        );
                        assert!(!matches!(step, Step::SetAttr { .. }), "{name}: {step}");
                    }
                }
            }
        }
    }

    /// Every mask of the lists is in every plan, after the read-only binds
    /// (a mask below /proc/sys made first would be covered by its bind).
    #[test]
    fn proc_is_masked_in_every_mode() {
        for (name, steps) in all_plans() {
            let lines: Vec<String> = steps.iter().map(ToString::to_string).collect();
            let position = |want: &str| {
                lines
                    .iter()
                    .position(|l| l.starts_with(want))
                    .unwrap_or_else(|| panic!("{name}: no step {want:?}\n{}", lines.join("\n")))
            };
            let last_read_only = super::super::proc::READ_ONLY
                .iter()
                .map(|d| {
                    position(&format!(
                        "bind itself on /proc/{d} [Proc, by path] ro,nosuid,nodev,noexec"
                    ))
                })
                .max()
                .unwrap();
            for file in super::super::proc::MASKED_FILES {
                let at = position(&format!(
                    "bind host /dev/null (1:3) on /proc/{file} [Proc, by path]"
                ));
                assert!(
                    at > last_read_only,
                    "{name}: /proc/{file} masked before the read-only binds"
                );
            }
            for dir in super::super::proc::MASKED_DIRS {
                position(&format!(
                    "mount tmpfs on /proc/{dir} [Proc, by path] ro,nosuid,nodev,noexec size=0"
                ));
            }
        }
    }

    #[test]
    fn readonly_sets_the_root_and_gives_scratch_space() {
        for (name, steps) in all_plans() {
            let readonly = name.ends_with("readonly=true");
            let root_ro = steps.iter().any(|s| {
                matches!(s, Step::SetAttr { target, attrs, .. }
                    if target.path.is_empty()
                        && matches!(target.base, Base::Root | Base::Host)
                        && attrs.contains(MountAttrFlags::MOUNT_ATTR_RDONLY))
            });
            assert_eq!(root_ro, readonly, "{name}");
            let tmp = steps.iter().any(
                |s| matches!(s, Step::Mount { fs: Fs::Tmpfs, target, .. } if target.path == "tmp"),
            );
            let image_or_host = name.starts_with("image") || name.starts_with("host");
            assert_eq!(tmp, readonly && image_or_host, "{name}");
        }
    }

    #[test]
    fn binds_are_attached_in_order_after_proc_and_dev() {
        let spec = Spec {
            mounts: vec![bind("/a", "/x", false), bind("/b", "/y", true)],
            ..Spec::default()
        };
        let steps = plan(&spec, "box");
        let indices: Vec<usize> = steps
            .iter()
            .filter_map(|s| match s {
                Step::AttachBind { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(indices, [0, 1]);
        let first_bind = steps
            .iter()
            .position(|s| matches!(s, Step::AttachBind { .. }))
            .unwrap();
        let dev_mounted = steps
            .iter()
            .rposition(|s| matches!(s, Step::Mount { target, .. } if target.base == Base::Dev))
            .unwrap();
        assert!(first_bind > dev_mounted);
    }

    #[test]
    fn etc_files_name_the_hostname_and_dns() {
        let spec = Spec {
            fs: FsMode::Dir("/img".into()),
            dns: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
            ..Spec::default()
        };
        let files: Vec<(&str, String)> = plan(&spec, "quiet-otter")
            .into_iter()
            .filter_map(|s| match s {
                Step::WriteFile { name, content, .. } => Some((name, content)),
                _ => None,
            })
            .collect();
        assert_eq!(files.len(), 3);
        assert!(files[0].1.contains("127.0.1.1\tquiet-otter\n"));
        assert_eq!(files[1], ("hostname", "quiet-otter\n".to_string()));
        assert_eq!(files[2].1, "nameserver 192.0.2.1\nnameserver 2001:db8::1\n");
        let default = plan(
            &Spec {
                fs: FsMode::Dir("/img".into()),
                ..Spec::default()
            },
            "h",
        );
        assert!(default.iter().any(|s| matches!(s, Step::WriteFile { content, .. } if content == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n")));
        // A tmpfs root has no /etc to write.
        assert!(!plan(&Spec::default(), "h")
            .iter()
            .any(|s| matches!(s, Step::WriteFile { .. })));
    }
}
