//! An OCI container's filesystem as a mount plan: the same [`Step`]s and
//! executor as a sandbox's (`plan.rs`, `apply.rs`), built from config.json's
//! `root`, `mounts`, `maskedPaths` and `readonlyPaths` instead of the
//! command line. Pure: [`plan`] is unit-tested without root.
//!
//! The root is the bundle's root tree, cloned recursively by `create` and
//! attached at the staging point as the new root. Each config mount becomes
//! one step, in the config's order; a tmpfs on /dev gets the same host
//! device nodes and links as a sandbox's /dev (`dev.rs`). Bind sources are
//! opened and cloned by `create` (`bind.rs`), like `--mount-ro`.

use std::path::PathBuf;

use rustix::mount::MountAttrFlags;

use super::plan::{staging, At, Base, Fs, Lookup, Step, Value};
use super::resolve::Kind;
use crate::error::{Error, Result};
use crate::spec::BindMount;

/// One config.json mount, as the config gives it.
pub struct MountEntry<'a> {
    pub destination: &'a str,
    pub kind: &'a str,
    pub source: &'a str,
    pub options: &'a [String],
}

/// A linux.devices node, made in the container's /dev tmpfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Below /dev, plain components.
    pub path: String,
    pub block: bool,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What `create` hands over: the config's filesystem fields.
pub struct ContainerFs<'a> {
    pub mounts: Vec<MountEntry<'a>>,
    pub masked_paths: &'a [String],
    pub readonly_paths: &'a [String],
    pub root_readonly: bool,
    /// linux.sysctl, checked by the config's reader.
    pub sysctls: &'a [(String, String)],
    /// linux.devices.
    pub devices: &'a [DeviceNode],
    /// The host's cgroup version: a `cgroup` mount is cgroup2 on v2 and an
    /// empty read-only tmpfs on v1.
    pub cgroup_v2: bool,
}

/// The plan, and the bind mounts it attaches by index (to be opened and
/// cloned before the clone, in this order).
pub struct ContainerPlan {
    pub steps: Vec<Step>,
    pub binds: Vec<BindMount>,
}

/// Options engines add for themselves; the kernel would refuse them as data.
const ENGINE_PRIVATE: &[&str] = &["tmpcopyup", "notmpcopyup", "z", "Z", "copy", "nocopy", "U"];

/// Options that change nothing here: every mount microbox makes is private
/// in a private namespace already, and the rest are defaults.
const NO_OPS: &[&str] = &[
    "rprivate",
    "private",
    "runbindable",
    "unbindable",
    "async",
    "relatime",
    "rw",
    "suid",
    "dev",
    "exec",
    "atime",
    "diratime",
    "loud",
    "nomand",
    "nolazytime",
    "defaults",
];

/// Filesystem options passed to the kernel (`key=value` or a flag).
const DATA_KEYS: &[&str] = &[
    "size",
    "mode",
    "nr_inodes",
    "nr_blocks",
    "uid",
    "gid",
    "ptmxmode",
    "max",
    "newinstance",
    "hidepid",
    "subset",
    "huge",
    "inode64",
    "nsdelegate",
    "memory_recursiveprot",
];

/// A config mount's options, sorted into what they are.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    attrs: MountAttrFlags,
    bind: bool,
    data: Vec<(&'static str, Value)>,
}

fn parse_options(options: &[String], at: &str) -> Result<Options> {
    let mut out = Options {
        attrs: MountAttrFlags::empty(),
        bind: false,
        data: Vec::new(),
    };
    for option in options {
        let option = option.as_str();
        let attr = match option {
            "ro" => Some(MountAttrFlags::MOUNT_ATTR_RDONLY),
            "nosuid" => Some(MountAttrFlags::MOUNT_ATTR_NOSUID),
            "nodev" => Some(MountAttrFlags::MOUNT_ATTR_NODEV),
            "noexec" => Some(MountAttrFlags::MOUNT_ATTR_NOEXEC),
            "noatime" => Some(MountAttrFlags::MOUNT_ATTR_NOATIME),
            "strictatime" => Some(MountAttrFlags::MOUNT_ATTR_STRICTATIME),
            "nodiratime" => Some(MountAttrFlags::MOUNT_ATTR_NODIRATIME),
            _ => None,
        };
        if let Some(attr) = attr {
            out.attrs |= attr;
            continue;
        }
        if option == "bind" || option == "rbind" {
            out.bind = true;
            continue;
        }
        if NO_OPS.contains(&option) || ENGINE_PRIVATE.contains(&option) {
            continue;
        }
        let (key, value) = match option.split_once('=') {
            Some((key, value)) => (key, Value::Text(value.to_string())),
            None => (option, Value::Flag),
        };
        match DATA_KEYS.iter().find(|k| **k == key) {
            Some(key) => out.data.push((key, value)),
            None => {
                return Err(Error::usage(format!(
                    "config.json: {at}: mount option {option:?} is not supported"
                )))
            }
        }
    }
    Ok(out)
}

/// The whole plan for a container.
pub fn plan(fs: &ContainerFs<'_>) -> Result<ContainerPlan> {
    let mut steps = vec![
        Step::MakePrivate,
        Step::AttachImage {
            target: At::new(Base::Host, staging(), Lookup::Host),
            becomes: Some(Base::Root),
        },
    ];
    let mut binds = Vec::new();
    let (mut proc_mounted, mut dev_mounted) = (false, false);
    for (index, mount) in fs.mounts.iter().enumerate() {
        let at = format!("mounts[{index}] ({})", mount.destination.escape_debug());
        let options = parse_options(mount.options, &at)?;
        let dest = mount.destination.trim_end_matches('/');
        let dest = if dest.is_empty() { "/" } else { dest };
        if dest == "/" {
            return Err(Error::usage(format!(
                "config.json: {at}: a mount over the root"
            )));
        }
        if options.bind || mount.kind == "bind" {
            if mount.source.is_empty() {
                return Err(Error::usage(format!(
                    "config.json: {at}: a bind mount without a source"
                )));
            }
            binds.push(BindMount {
                source: PathBuf::from(mount.source),
                dest: PathBuf::from(dest),
                writable: !options.attrs.contains(MountAttrFlags::MOUNT_ATTR_RDONLY),
            });
            steps.push(Step::AttachBind {
                index: binds.len() - 1,
                source: PathBuf::from(mount.source),
                target: At::new(Base::Root, dest, Lookup::InRoot),
                create_missing: true,
            });
            continue;
        }
        let (fs_type, data, becomes) = match (mount.kind, dest) {
            ("proc", "/proc") => (Fs::Proc, options.data, Some(Base::Proc)),
            ("proc", _) => (Fs::Proc, options.data, None),
            ("tmpfs", "/dev") => (Fs::Tmpfs, options.data, Some(Base::Dev)),
            ("tmpfs", _) => (Fs::Tmpfs, options.data, None),
            ("devpts", _) => (Fs::Devpts, options.data, None),
            ("mqueue", _) => (Fs::Mqueue, options.data, None),
            ("sysfs", _) => (Fs::Sysfs, options.data, None),
            ("cgroup" | "cgroup2", _) if fs.cgroup_v2 => (Fs::Cgroup2, options.data, None),
            // v1: the container's own controllers are not laid out for it;
            // it sees an empty, read-only directory rather than the host's.
            ("cgroup" | "cgroup2", _) => (Fs::Tmpfs, vec![("size", Value::Text("0".into()))], None),
            (other, _) => {
                return Err(Error::usage(format!(
                    "config.json: {at}: mount type {other:?} is not supported"
                )))
            }
        };
        let mut attrs = options.attrs;
        if matches!(mount.kind, "cgroup" | "cgroup2") && !fs.cgroup_v2 {
            attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
        }
        let target = target_for(dest, dev_mounted, Kind::Dir);
        steps.push(Step::Mount {
            fs: fs_type,
            target,
            attrs,
            options: data,
            becomes,
            missing_ok: false,
        });
        match becomes {
            Some(Base::Dev) => {
                dev_mounted = true;
                steps.extend(super::dev::nodes_and_links());
            }
            Some(Base::Proc) => proc_mounted = true,
            _ => {}
        }
    }
    if !dev_mounted {
        return Err(Error::usage(
            "config.json: mounts: no tmpfs on /dev (microbox puts the default devices on one)",
        ));
    }
    steps.extend(
        fs.devices
            .iter()
            .map(|node| Step::MakeDevice { node: node.clone() }),
    );
    if !fs.sysctls.is_empty() && !proc_mounted {
        return Err(Error::usage(
            "config.json: linux.sysctl needs a proc mount on /proc",
        ));
    }
    for (key, value) in fs.sysctls {
        steps.push(Step::Sysctl {
            key: key.clone(),
            value: value.clone(),
        });
    }
    for path in fs.masked_paths {
        steps.push(Step::Mask {
            // A mask looks at what it hides (directory or not): an fd.
            target: in_proc_or_root(path, proc_mounted, Lookup::NoSymlinks),
        });
    }
    let read_only = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV;
    for path in fs.readonly_paths {
        steps.push(Step::Bind {
            source: super::plan::Source::Itself,
            target: in_proc_or_root(path, proc_mounted, Lookup::Fresh),
            attrs: read_only,
            missing_ok: true,
        });
    }
    if fs.root_readonly {
        steps.push(super::plan::set_attr(
            At::base(Base::Root),
            MountAttrFlags::MOUNT_ATTR_RDONLY,
            false,
            false,
        ));
    }
    steps.push(Step::PivotIntoRoot);
    Ok(ContainerPlan { steps, binds })
}

/// Below /dev once microbox's tmpfs is there (fresh, by name); elsewhere
/// resolved inside the root, never leaving it.
fn target_for(dest: &str, dev_mounted: bool, kind: Kind) -> At {
    match dest.strip_prefix("/dev/") {
        Some(rest) if dev_mounted => At::new(Base::Dev, rest, Lookup::Fresh).creating(kind),
        _ if dest == "/dev" || dest == "/proc" => {
            At::new(Base::Root, dest, Lookup::NoSymlinks).creating(kind)
        }
        _ => At::new(Base::Root, dest, Lookup::InRoot).creating(kind),
    }
}

/// A masked or read-only path: below the fresh procfs by name, else inside
/// the root (a missing path is skipped either way).
fn in_proc_or_root(path: &str, proc_mounted: bool, lookup: Lookup) -> At {
    match path.strip_prefix("/proc/") {
        Some(rest) if proc_mounted => At::new(Base::Proc, rest, lookup),
        _ => At::new(Base::Root, path, Lookup::InRoot),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// The mounts a default `podman run` asks for.
    fn podman_mounts(options: &[Vec<String>; 4]) -> Vec<MountEntry<'_>> {
        vec![
            MountEntry {
                destination: "/proc",
                kind: "proc",
                source: "proc",
                options: &options[0],
            },
            MountEntry {
                destination: "/dev",
                kind: "tmpfs",
                source: "tmpfs",
                options: &options[1],
            },
            MountEntry {
                destination: "/dev/pts",
                kind: "devpts",
                source: "devpts",
                options: &options[2],
            },
            MountEntry {
                destination: "/etc/hosts",
                kind: "bind",
                source: "/run/x/hosts",
                options: &options[3],
            },
        ]
    }

    #[test]
    fn a_podman_config_becomes_a_plan_that_ends_in_its_root() {
        let options = [
            strings(&["nosuid", "noexec", "nodev"]),
            strings(&["nosuid", "strictatime", "mode=755", "size=65536k"]),
            strings(&[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ]),
            strings(&["bind", "rprivate", "z"]),
        ];
        let masked = strings(&["/proc/kcore", "/sys/firmware"]);
        let readonly = strings(&["/proc/sys"]);
        let fs = ContainerFs {
            mounts: podman_mounts(&options),
            masked_paths: &masked,
            readonly_paths: &readonly,
            root_readonly: true,
            sysctls: &[],
            devices: &[],
            cgroup_v2: false,
        };
        let plan = plan(&fs).unwrap();
        let lines: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
        let text = lines.join("\n");
        assert_eq!(plan.steps.first(), Some(&Step::MakePrivate));
        assert_eq!(plan.steps.last(), Some(&Step::PivotIntoRoot));
        assert_eq!(plan.binds.len(), 1);
        assert!(plan.binds[0].writable);
        for want in [
            "attach the image on /run/microbox [Host, host lookup] => Root",
            "mount proc on /proc [Root, mkdir] nosuid,nodev,noexec => Proc",
            "mount tmpfs on /dev [Root, mkdir] nosuid mode=755 size=65536k => Dev",
            "bind host /dev/null (1:3) on /dev/null",
            "mount devpts on /dev/pts [Dev, by path, mkdir] nosuid,noexec newinstance ptmxmode=0666",
            "mask /proc/kcore [Proc] if present",
            "mask /sys/firmware [Root, in root] if present",
            "bind itself on /proc/sys [Proc, by path] ro,nosuid,nodev if present",
            "set ro on / [Root]",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
    }

    #[test]
    fn bad_mounts_are_named() {
        let none: Vec<String> = Vec::new();
        let weird = strings(&["sync"]);
        let cases: Vec<(Vec<MountEntry<'_>>, &str)> = vec![
            (
                vec![MountEntry {
                    destination: "/x",
                    kind: "ext4",
                    source: "/dev/sda",
                    options: &none,
                }],
                "mount type \"ext4\"",
            ),
            (
                vec![MountEntry {
                    destination: "/x",
                    kind: "tmpfs",
                    source: "",
                    options: &weird,
                }],
                "mount option \"sync\"",
            ),
            (
                vec![MountEntry {
                    destination: "/",
                    kind: "tmpfs",
                    source: "",
                    options: &none,
                }],
                "over the root",
            ),
            (
                vec![MountEntry {
                    destination: "/x",
                    kind: "tmpfs",
                    source: "",
                    options: &none,
                }],
                "no tmpfs on /dev",
            ),
        ];
        for (mounts, want) in cases {
            let fs = ContainerFs {
                mounts,
                masked_paths: &[],
                readonly_paths: &[],
                root_readonly: false,
                sysctls: &[],
                devices: &[],
                cgroup_v2: true,
            };
            let err = plan(&fs).err().unwrap().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
