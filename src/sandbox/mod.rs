//! The process model (DESIGN.md section 2): the parent supervises, the clone3
//! child sets the sandbox up and becomes its PID 1 (`init`), which starts the
//! command. Everything the child needs is prepared here, before the clone.

pub(crate) mod channel;
mod child;
mod denied;
mod init;
pub(crate) mod interp;
mod names;
mod output;
mod parent;
mod preflight;
mod watch;

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::report::{Report, Sink};
use crate::security::seccomp;
use crate::spec::Spec;
use crate::state::Lease;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Signals the supervisor passes on to init, and init to the sandbox.
pub(crate) const FORWARDED_SIGNALS: [i32; 9] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGTSTP,
    libc::SIGCONT,
];

/// The forwarded signals that ask the sandbox to end: after one, the whole
/// sandbox is continued (a stopped process would keep it pending forever), and
/// the supervisor kills the sandbox if it has not ended after the grace period.
pub(crate) const TERMINATING_SIGNALS: [i32; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// What the command is started with, built before the clone so the child only
/// performs syscalls.
pub(crate) struct Launch<'a> {
    pub hostname: String,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// The sandbox's PATH, for looking up a command name without a `/`.
    pub path: OsString,
    /// The command's capability mask (bounding = permitted = effective).
    pub caps: u64,
    /// The host's root is the initramfs: the sandbox enters its root by a
    /// move and chroot instead of pivot_root (see [`rootfs_guard`]).
    pub on_initramfs: bool,
    /// Compiled before the clone; loaded last, by init and by the command.
    pub seccomp: Vec<seccompiler::BpfProgram>,
    /// Whether the last program sends its denials to a listener, which init
    /// passes to the parent (`seccomp::notify_denials`).
    pub notify_denials: bool,
    /// The user's bind mounts, cloned from sources opened once, here.
    pub binds: Vec<crate::fs::PreparedBind<'a>>,
    /// The image directory's tree (`--fs DIR`), cloned here and idmapped by
    /// the parent once the sandbox's user namespace has its maps.
    pub image: Option<OwnedFd>,
    /// The sandbox's leased host id range: its first id, and the lease that
    /// holds it until microbox exits. None when the ids are not shifted.
    pub ids: Option<(u32, Lease)>,
    /// Rootless (issue 14): the user's maps. The child then clones the image
    /// and the binds itself, in its own namespaces: the parent has no
    /// privilege over the host's mounts, and nothing can be idmapped.
    pub user_maps: Option<crate::ns::UserMaps>,
    /// The command's resource limits, defaults included, checked against
    /// microbox's own hard limits.
    pub rlimits: Vec<crate::rlimit::Rlimit>,
}

impl Launch<'_> {
    pub fn first_host_id(&self) -> Option<u32> {
        self.ids.as_ref().map(|(first, _)| *first)
    }
}

/// `microbox --net-cleanup`: removes bridge mode's host state for `bridge`.
pub fn clean_network(bridge: &str) -> Result<()> {
    preflight::require_root()?;
    crate::net::cleanup(bridge)
}

/// Runs the sandbox and returns microbox's exit status. With `--report`,
/// the report is written whatever happened once the command line parsed:
/// with the status, or with microbox's error.
pub fn run(spec: &Spec) -> Result<i32> {
    // First, while N is still the caller's descriptor and nothing of
    // microbox's.
    let sink = spec.report.as_ref().map(Sink::open).transpose()?;
    let mut report = Report::default();
    let result = preflight::check(spec)
        .and_then(|()| prepare(spec))
        .and_then(|launch| {
            crate::profile::mark("supervisor", "parse+prepare");
            parent::supervise(spec, &launch, &mut report)
        });
    let Some(sink) = sink else {
        return result;
    };
    report.exit_code = *result.as_ref().unwrap_or(&EXIT_MICROBOX);
    report.error = result.as_ref().err().map(ToString::to_string);
    match sink.write(&report.to_json()) {
        Ok(()) => result,
        Err(err) => {
            if let Err(first) = &result {
                crate::log::error(&first.to_string(), &[]);
            }
            Err(err)
        }
    }
}

/// microbox's own failure (DESIGN.md section 3), in the report.
const EXIT_MICROBOX: i32 = 125;

/// Each bind source opened once and its tree cloned, before the clone: the
/// child never looks the source path up again (issue 8: a symlink swapped in
/// between the two lookups bound another host path). With shifted ids
/// (`first`), each writable tree is idmapped at once so that sandbox root
/// writes as the source's owner (`fs::host_owner`); read-only trees wait for
/// the sandbox's own user namespace.
pub(super) fn prepare_binds(
    spec: &Spec,
    first: Option<u32>,
) -> Result<Vec<crate::fs::PreparedBind<'_>>> {
    let mut owners: Vec<((u32, u32), OwnedFd)> = Vec::new();
    let mut binds = Vec::with_capacity(spec.mounts.len());
    for bind in &spec.mounts {
        let (source, resolved) = crate::fs::open_source(bind)?;
        crate::log::info(
            "bind source",
            &[
                ("source", &bind.source.display().to_string()),
                ("resolved", &resolved.display().to_string()),
                ("dest", &bind.dest.display().to_string()),
            ],
        );
        let prepared = crate::fs::prepare_bind(bind, &source)?;
        if let (Some(first), true) = (first, prepared.writable()) {
            let (uid, gid) = prepared.owner();
            let owner = crate::fs::host_owner(uid, gid);
            if let Some(owner) = owner {
                let index = match owners.iter().position(|(o, _)| *o == owner) {
                    Some(index) => index,
                    None => {
                        let maps = crate::ns::owner_maps(first, owner.0, owner.1);
                        owners.push((owner, crate::ns::user_namespace(&maps)?));
                        owners.len() - 1
                    }
                };
                prepared.idmap(owners[index].1.as_fd())?;
            }
            let (host_uid, host_gid) = owner.unwrap_or((first, first));
            crate::log::info(
                "writable bind",
                &[
                    ("source", &bind.source.display().to_string()),
                    ("host_uid", &host_uid.to_string()),
                    ("host_gid", &host_gid.to_string()),
                ],
            );
        }
        binds.push(prepared);
    }
    Ok(binds)
}

/// Whether the seccomp setid rules and the FSETID drop apply: wherever the
/// sandbox writes host storage (a `--mount-rw`, or `--fs host` without
/// `--readonly`). Even with shifted ids a setid file there is honoured by the
/// host for its owner: the user of a user's bind (and any group of theirs),
/// or an id of the range, which a later sandbox gets again.
fn host_storage_guard(spec: &Spec) -> bool {
    let writable_bind = spec.mounts.iter().any(|m| m.writable);
    let writable_host = spec.fs == crate::spec::FsMode::Host && !spec.readonly;
    writable_host || writable_bind
}

fn prepare(spec: &Spec) -> Result<Launch<'_>> {
    let argv = spec
        .command
        .iter()
        .map(|arg| cstring(arg, "command argument"))
        .collect::<Result<Vec<_>>>()?;
    if argv.is_empty() {
        return Err(Error::usage("no command given"));
    }
    refuse_directory_stdio()?;
    let env = environment(spec);
    let path = env
        .iter()
        .find(|(key, _)| key == "PATH")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let envp = env
        .iter()
        .map(|(key, value)| {
            let mut pair = key.clone();
            pair.push("=");
            pair.push(value);
            cstring(&pair, "--env")
        })
        .collect::<Result<Vec<_>>>()?;
    let rlimits = crate::rlimit::effective(&spec.rlimits);
    let rootless = crate::ns::rootless();
    crate::rlimit::check(&rlimits, !rootless && !crate::ns::shifts_ids(spec))?;
    let hostname = spec.hostname.clone().unwrap_or_else(names::random_hostname);
    let ids = if crate::ns::shifts_ids(spec) && !rootless {
        Some(crate::state::lease_id_range(Path::new(
            crate::state::run_dir(),
        ))?)
    } else {
        None
    };
    let binds = if rootless {
        // Checked here, for the one clear line before anything starts; the
        // child opens them again in its own mount namespace.
        for bind in &spec.mounts {
            crate::fs::open_source(bind)?;
        }
        Vec::new()
    } else {
        prepare_binds(spec, ids.as_ref().map(|(first, _)| *first))?
    };
    let guard = host_storage_guard(spec);
    let on_initramfs = spec.fs != crate::spec::FsMode::Host && crate::fs::root_is_initramfs();
    let mut caps = sandbox_caps(spec, guard);
    let mut deny = spec.deny_syscalls.clone();
    if on_initramfs {
        rootfs_guard(spec)?;
        caps &= !(1u64 << crate::security::caps::SYS_CHROOT);
        deny.push("chroot".into());
    }
    let profile = seccomp::profile(&spec.allow_syscalls, &deny, guard)?;
    let mut seccomp = seccomp::compile(&profile)?;
    let notify_denials = seccomp::notify_denials(&mut seccomp);
    if !notify_denials {
        crate::log::info(
            "seccomp: the kernel has no user notification; denied syscalls are answered by the filter and not reported",
            &[],
        );
    }
    let image = match &spec.fs {
        crate::spec::FsMode::Dir(_) if rootless => None,
        crate::spec::FsMode::Dir(dir) => Some(crate::fs::clone_image(dir)?),
        crate::spec::FsMode::Tmpfs | crate::spec::FsMode::Host => None,
    };
    let user_maps = rootless.then(crate::ns::user_maps);
    if let (Some(user), crate::spec::FsMode::Dir(dir)) = (&user_maps, &spec.fs) {
        check_image_owner(dir, &user.maps)?;
    }
    Ok(Launch {
        user_maps,
        rlimits,
        image,
        ids,
        binds,
        hostname,
        argv,
        envp,
        path,
        caps,
        on_initramfs,
        seccomp,
        notify_denials,
    })
}

/// What a sandbox on an initramfs host must not have. Its root is moved
/// over the initramfs's root, not pivoted away from it: the host's tree
/// stays mounted below, and a chroot with the working directory left outside
/// the new root (then `cd ..`) walks out of the moved mount into it. The
/// barrier is seccomp's chroot denial, which no --allow-syscall lifts (denials
/// win); the rest is defence in depth, each option a piece of some way back
/// out: CAP_SYS_CHROOT is dropped, and the mount family (an uncovered rootfs
/// after an unmount, reached by a later setns), the new namespaces (a new user
/// namespace gives back CAP_SYS_CHROOT) and file handles (open_by_handle_at
/// decodes a handle of any rootfs inode, and bind sources live on the rootfs)
/// keep their default denial: options that would lift any of it are refused.
pub const INITRAMFS_PINNED: [&str; 22] = [
    "chroot",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "open_tree_attr",
    "fsopen",
    "fsmount",
    "fspick",
    "fsconfig",
    "mount_setattr",
    "unshare",
    "setns",
    "clone",
    "clone3",
    "open_by_handle_at",
    "name_to_handle_at",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// fds 0-2 reach the command as they are. A directory among them is a way
/// out of any root: fchdir to it, then `..` up to the host's (the mechanism
/// of CVE-2024-21626). Nobody means a directory as stdio: refused.
fn refuse_directory_stdio() -> Result<()> {
    for (fd, name) in [(0, "stdin"), (1, "stdout"), (2, "stderr")] {
        if crate::sys::fd::is_directory(fd) {
            return Err(Error::usage(format!(
                "fd {fd} ({name}) is a directory: the sandbox could fchdir to it and walk \
                 out of its root; give a file, pipe, tty or /dev/null"
            )));
        }
    }
    Ok(())
}

fn rootfs_guard(spec: &Spec) -> Result<()> {
    let why = "this host's root is the initramfs, so the sandbox's root is moved over it \
               instead of pivoted away from it, and that would let the sandbox out";
    if let Some(name) = spec
        .allow_syscalls
        .iter()
        .find(|name| INITRAMFS_PINNED.contains(&name.as_str()))
    {
        return Err(Error::usage(format!(
            "--allow-syscall {name} is refused: {why}"
        )));
    }
    if spec.cap_add.contains(&crate::security::caps::SYS_CHROOT) {
        return Err(Error::usage(format!(
            "--cap-add SYS_CHROOT is refused: {why}"
        )));
    }
    Ok(())
}

/// Rootless: the image's root and /etc must belong to an id the sandbox
/// has. The kernel lets no one in a user namespace change a file whose owner
/// it does not map, so microbox could not write /etc/hosts there, nor the
/// command anything the image's owner owns.
fn check_image_owner(dir: &Path, maps: &crate::ns::IdMaps) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for path in [dir.to_path_buf(), dir.join("etc")] {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let has = |ranges: &[crate::ns::IdRange], id: u32| {
            ranges
                .iter()
                .any(|r| id >= r.outside && id - r.outside < r.count)
        };
        // The kernel wants both: a file with an unmapped group cannot be
        // replaced either (EOVERFLOW).
        if !has(&maps.uids, meta.uid()) || !has(&maps.gids, meta.gid()) {
            let (uid, gid) = (
                rustix::process::getuid().as_raw(),
                rustix::process::getgid().as_raw(),
            );
            return Err(Error::usage(format!(
                "--fs '{}': {} belongs to {}:{}, which a sandbox of yours has no id for: \
                 a rootless image must be yours (as root: chown -R {uid}:{gid} on a copy), \
                 or use --fs tmpfs with --mount-ro",
                dir.display(),
                path.display(),
                meta.uid(),
                meta.gid(),
            )));
        }
    }
    Ok(())
}

/// The default set, adjusted by `--cap-add`/`--cap-drop`. Where the sandbox can
/// write host storage, FSETID (writing into a setuid file without clearing
/// the bit) is left out unless asked for, like the setid modes the seccomp
/// profile refuses then; so are MKNOD (device nodes) and SETFCAP (file
/// capabilities) where its ids are the host's (`--userns host`, `--fs host`).
/// With shifted ids a user namespace can make no device node, and a file
/// capability it sets is bound to its own root (a v3 one), which the host
/// does not honour.
fn sandbox_caps(spec: &Spec, writes_host_storage: bool) -> u64 {
    use crate::security::caps;
    let mut drop = spec.cap_drop.clone();
    if writes_host_storage {
        let host_ids = !crate::ns::shifts_ids(spec);
        let guarded: &[u8] = if host_ids {
            &[caps::MKNOD, caps::SETFCAP, caps::FSETID]
        } else {
            &[caps::FSETID]
        };
        drop.extend(guarded.iter().filter(|cap| !spec.cap_add.contains(cap)));
    }
    caps::sandbox_set(&spec.cap_add, &drop)
}

/// The clean default environment, then `--env` in order (a later key wins).
fn environment(spec: &Spec) -> Vec<(OsString, OsString)> {
    let term = std::env::var_os("TERM").unwrap_or_else(|| "xterm".into());
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), "/root".into()),
        ("TERM".into(), term),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    for (key, value) in &spec.env {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((key.clone(), value.clone())),
        }
    }
    env
}

fn cstring(value: &OsStr, what: &str) -> Result<CString> {
    CString::new(value.as_bytes()).map_err(|_| {
        Error::usage(format!(
            "{what} '{}': contains a NUL byte",
            value.to_string_lossy()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initramfs_host_pins_what_would_let_a_sandbox_out() {
        use crate::security::syscalls::{self, Arch};
        for name in INITRAMFS_PINNED {
            // umount is i386's alone.
            let known = syscalls::number_for(Arch::X86_64, name).is_some();
            assert!(known || name == "umount", "{name}");
            let spec = Spec {
                allow_syscalls: vec![name.to_string()],
                ..Spec::default()
            };
            let err = rootfs_guard(&spec)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(&format!("--allow-syscall {name} is refused")),
                "{err}"
            );
        }
        let chroot = Spec {
            cap_add: vec![crate::security::caps::SYS_CHROOT],
            ..Spec::default()
        };
        assert!(rootfs_guard(&chroot).is_err());
        let fine = Spec {
            allow_syscalls: vec!["ptrace".into()],
            ..Spec::default()
        };
        assert!(rootfs_guard(&fine).is_ok());
    }

    #[test]
    fn writable_host_storage_loses_mknod_setfcap_and_fsetid_unless_added() {
        use crate::security::caps::{self, FSETID, MKNOD, SETFCAP};
        let bit = |cap: u8| 1u64 << cap;
        // Shifted ids: FSETID alone.
        let shifted = sandbox_caps(&Spec::default(), true);
        assert_eq!(
            shifted & (bit(MKNOD) | bit(SETFCAP) | bit(FSETID)),
            bit(MKNOD) | bit(SETFCAP)
        );
        let plain = Spec {
            userns: crate::spec::UsernsMode::Host,
            ..Spec::default()
        };
        assert_eq!(sandbox_caps(&plain, false), caps::sandbox_set(&[], &[]));
        let full = sandbox_caps(&plain, true);
        assert_eq!(full & (bit(MKNOD) | bit(SETFCAP) | bit(FSETID)), 0);
        let asked = Spec {
            cap_add: vec![SETFCAP],
            ..plain.clone()
        };
        assert_ne!(sandbox_caps(&asked, true) & bit(SETFCAP), 0);
        assert_eq!(sandbox_caps(&asked, true) & bit(MKNOD), 0);
    }

    #[test]
    fn the_host_storage_guard_stays_wherever_host_storage_is_writable() {
        use crate::spec::{BindMount, FsMode};
        let rw = vec![BindMount {
            source: "/src".into(),
            dest: "/src".into(),
            writable: true,
        }];
        let shifted = Spec {
            mounts: rw.clone(),
            ..Spec::default()
        };
        assert!(host_storage_guard(&shifted));
        let host = Spec {
            fs: FsMode::Host,
            ..Spec::default()
        };
        assert!(host_storage_guard(&host));
        let host_ro = Spec {
            readonly: true,
            ..host.clone()
        };
        assert!(!host_storage_guard(&host_ro));
        assert!(host_storage_guard(&Spec {
            mounts: rw,
            ..host_ro
        }));
        assert!(!host_storage_guard(&Spec::default()));
    }

    #[test]
    fn env_defaults_then_overrides_in_order() {
        let spec = Spec {
            env: vec![
                ("HOME".into(), "/home/x".into()),
                ("A".into(), "1".into()),
                ("A".into(), "2".into()),
            ],
            command: vec!["/bin/true".into()],
            ..Spec::default()
        };
        let env = environment(&spec);
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("HOME").as_deref(), Some("/home/x"));
        assert_eq!(get("A").as_deref(), Some("2"));
        assert_eq!(get("PATH").as_deref(), Some(DEFAULT_PATH));
        assert_eq!(get("LANG").as_deref(), Some("C.UTF-8"));
        assert_eq!(env.iter().filter(|(k, _)| k == "A").count(), 1);
    }
}
