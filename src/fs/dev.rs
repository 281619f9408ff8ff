//! A minimal /dev on a fresh tmpfs: the six harmless character devices bound
//! from the host (a user namespace cannot mknod), a private devpts, shm, mqueue
//! and the usual links. Nothing from the image's /dev is used.

use std::os::fd::OwnedFd;

use rustix::fs::{fstat, major, minor, open, FileType, Mode, OFlags};
use rustix::mount::MountAttrFlags;

use super::plan::{At, Base, Fs, Lookup, Source, Step, Value};
use super::resolve::Kind;
use crate::error::{Error, Result};

/// The sandbox's own pty instance. `max=1024`: without a limit one sandbox
/// could take every pty up to kernel.pty.max less the host's reserve and make
/// pty allocation fail in every other sandbox; 1024 is more than any terminal
/// multiplexer or test harness opens.
const DEVPTS_OPTIONS: [(&str, &str); 4] = [
    ("ptmxmode", "0666"),
    ("mode", "0620"),
    ("gid", "5"),
    ("max", "1024"),
];

/// name, major, minor: what every program expects and nothing that reaches hardware.
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Opens a host device node by path and checks that it is the character device
/// it claims to be, so a replaced node is never bound into a sandbox.
pub fn open_host_device(name: &str, want_major: u32, want_minor: u32) -> Result<OwnedFd> {
    let path = format!("/dev/{name}");
    let fd = open(
        path.as_str(),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os("open host", e).on(&path))?;
    let st = fstat(&fd).map_err(|e| Error::os("stat host", e).on(&path))?;
    let is_char = FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice;
    if !is_char || major(st.st_rdev) != want_major || minor(st.st_rdev) != want_minor {
        return Err(Error::runtime(format!(
            "host {path} is not the character device {want_major}:{want_minor}; refusing to use it"
        )));
    }
    Ok(fd)
}

fn in_dev(name: &str, create: Option<Kind>) -> At {
    At {
        base: Base::Dev,
        path: name.to_string(),
        lookup: Lookup::Fresh,
        create,
    }
}

pub fn steps() -> Vec<Step> {
    let text = |v: &str| Value::Text(v.to_string());
    let nosuid = MountAttrFlags::MOUNT_ATTR_NOSUID;
    let noexec = MountAttrFlags::MOUNT_ATTR_NOEXEC;
    let nodev = MountAttrFlags::MOUNT_ATTR_NODEV;
    let mut steps = vec![Step::Mount {
        fs: Fs::Tmpfs,
        target: At {
            base: Base::Root,
            path: "dev".to_string(),
            lookup: Lookup::NoSymlinks,
            create: Some(Kind::Dir),
        },
        // nodev: a node made here with CAP_MKNOD (kept under --userns host) cannot
        // be opened. The six devices below are bind mounts with their own flags.
        attrs: nosuid | nodev,
        options: vec![("mode", text("0755")), ("size", text("65536k"))],
        becomes: Some(Base::Dev),
        missing_ok: false,
    }];
    steps.extend(
        DEVICES
            .iter()
            .map(|&(name, major, minor)| device(name, major, minor)),
    );
    let mut pts = vec![("newinstance", Value::Flag)];
    pts.extend(DEVPTS_OPTIONS.iter().map(|&(k, v)| (k, text(v))));
    for (name, fs, attrs, options) in [
        // Not nodev: the ptys are device nodes of this devpts instance.
        ("pts", Fs::Devpts, nosuid | noexec, pts),
        (
            "shm",
            Fs::Tmpfs,
            nosuid | noexec | nodev,
            vec![("mode", text("1777")), ("size", text("65536k"))],
        ),
        ("mqueue", Fs::Mqueue, nosuid | noexec | nodev, Vec::new()),
    ] {
        steps.push(Step::Mount {
            fs,
            target: in_dev(name, Some(Kind::Dir)),
            attrs,
            options,
            becomes: None,
            missing_ok: false,
        });
    }
    steps.extend(links());
    steps
}

fn device(name: &'static str, major: u32, minor: u32) -> Step {
    Step::Bind {
        source: Source::HostDevice { name, major, minor },
        target: in_dev(name, Some(Kind::File)),
        attrs: MountAttrFlags::empty(),
        missing_ok: false,
    }
}

fn links() -> impl Iterator<Item = Step> {
    LINKS.iter().map(|&(name, points_to)| Step::Symlink {
        target: in_dev(name, None),
        points_to,
    })
}

/// The device nodes and links of a sandbox's /dev, for an OCI container's
/// /dev tmpfs (its engine mounts pts, shm and mqueue itself).
pub fn nodes_and_links() -> Vec<Step> {
    DEVICES
        .iter()
        .map(|&(name, major, minor)| device(name, major, minor))
        .chain(links())
        .collect()
}
