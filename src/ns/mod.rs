//! The sandbox's namespaces: which ones the clone makes, the user namespace's
//! id maps and their writing, and the cgroup namespace the child makes itself.
//!
//! Kept as data first (`clone_flags`, `id_maps`, `owner_maps`); the helpers
//! below apply them: the sandbox's clone with its user namespace owned by its
//! range, the namespaces of idmapped mounts, the child's switch to its root.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::process::{
    pidfd_send_signal, set_parent_process_death_signal, waitid, Gid, Signal, Uid, WaitId,
    WaitIdOptions,
};
use rustix::thread;

use crate::error::{Error, Result};
use crate::spec::{FsMode, NetMode, Spec, UsernsMode};
use crate::sys::clone::Forked;

pub(crate) mod subid;
pub use subid::{UserMaps, Writer};

/// Whether microbox runs without host root (issue 14): then the sandbox's
/// root is the user, its maps come from [`user_maps`], and nothing needs or
/// touches host root's state.
pub fn rootless() -> bool {
    !rustix::process::geteuid().is_root()
}

/// The namespaces `clone3` creates for `spec`. The cgroup namespace is not among
/// them: the child makes it after it is in its cgroup ([`enter_cgroup_namespace`]).
pub fn clone_flags(spec: &Spec) -> u64 {
    // Each CLONE_NEW* is one positive bit below 2^31: the conversion is exact
    // and can never come out as zero flags (no namespaces at all).
    let flag = |f: libc::c_int| u64::from(f.unsigned_abs());
    let mut flags = flag(libc::CLONE_NEWPID)
        | flag(libc::CLONE_NEWUTS)
        | flag(libc::CLONE_NEWIPC)
        | flag(libc::CLONE_NEWNS)
        | flag(libc::CLONE_NEWTIME);
    if spec.net != NetMode::Host {
        flags |= flag(libc::CLONE_NEWNET);
    }
    if spec.userns == UsernsMode::Isolated {
        flags |= flag(libc::CLONE_NEWUSER);
    }
    flags
}

/// One line of a `uid_map` or `gid_map`: ids `inside..inside+count` of the
/// sandbox are ids `outside..outside+count` of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The user namespace's maps; the same range for users and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

/// Ids per sandbox: 0-65535 inside.
pub(crate) const COUNT: u32 = 65536;

/// Whether the sandbox's ids are shifted onto a leased host range (DESIGN.md
/// section 9): with its own user namespace, unless `--fs host`, whose host
/// mounts keep the 1:1 map (minimal isolation, as the specification says).
pub fn shifts_ids(spec: &Spec) -> bool {
    spec.userns == UsernsMode::Isolated && spec.fs != FsMode::Host
}

/// The maps the sandbox's user namespace gets; None when it shares the host's.
/// `first`: the first host id of the leased range; None maps ids 0-65535 to
/// the same host ids (`--fs host`).
pub fn id_maps(spec: &Spec, first: Option<u32>) -> Option<IdMaps> {
    let range = IdRange {
        inside: 0,
        outside: first.unwrap_or(0),
        count: COUNT,
    };
    (spec.userns == UsernsMode::Isolated).then(|| IdMaps {
        uids: vec![range],
        gids: vec![range],
    })
}

/// The maps of a writable bind's idmapped mount: the source's owner on disk
/// is sandbox root (host id `first`), and no other id of either side exists
/// there, so nothing written through it can be owned by anyone else.
pub fn owner_maps(first: u32, owner_uid: u32, owner_gid: u32) -> IdMaps {
    let one = |inside| IdRange {
        inside,
        outside: first,
        count: 1,
    };
    IdMaps {
        uids: vec![one(owner_uid)],
        gids: vec![one(owner_gid)],
    }
}

/// A rootless sandbox's maps: the user's subordinate ranges when
/// /etc/subuid and /etc/subgid have them and newuidmap/newgidmap are there,
/// else the user's own ids alone. Said at info level either way.
pub fn user_maps() -> UserMaps {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    // A user known only to NSS (LDAP, sssd) is not in /etc/passwd, which is
    // all a static binary reads; the login name from the environment is then
    // only a key to look the ranges up by: newuidmap checks them itself.
    let name = subid::name_of(&read("/etc/passwd"), uid).or_else(|| {
        ["USER", "LOGNAME"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|name| !name.is_empty()))
    });
    let sub = subid::range_of(&read("/etc/subuid"), name.as_deref(), uid).zip(subid::range_of(
        &read("/etc/subgid"),
        name.as_deref(),
        uid,
    ));
    let helper = |name: &str| {
        ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .map(|dir| format!("{dir}/{name}"))
            .find(|path| rustix::fs::access(path.as_str(), rustix::fs::Access::EXEC_OK).is_ok())
    };
    let helpers = helper("newuidmap").zip(helper("newgidmap"));
    if sub.is_some() && helpers.is_none() {
        crate::log::warn(
            "/etc/subuid and /etc/subgid give you ids, but newuidmap/newgidmap are missing \
             (Debian: apt-get install uidmap): the sandbox has your own ids only",
            &[],
        );
    }
    let maps = subid::choose(uid, gid, sub, helpers);
    crate::log::info(&format!("id maps: {}", maps.describe()), &[]);
    if maps.writer == Writer::Own {
        warn_kept_groups(gid);
    }
    maps
}

/// With microbox's own maps the kernel forbids setgroups in the sandbox, so
/// the user's supplementary groups stay with it (as unmapped ids, but still
/// opening the host files of those groups): said, not silent.
fn warn_kept_groups(gid: u32) {
    let Ok(groups) = rustix::process::getgroups() else {
        return;
    };
    let kept: Vec<u32> = groups
        .iter()
        .map(|g| g.as_raw())
        .filter(|&g| g != gid)
        .collect();
    if kept.is_empty() {
        return;
    }
    let names = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let named: Vec<String> = kept
        .iter()
        .map(|&g| subid::name_of(&names, g).map_or(g.to_string(), |n| format!("{g} ({n})")))
        .collect();
    crate::log::warn(
        &format!(
            "the sandbox keeps your supplementary groups {}: with only your own ids \
             mapped the kernel lets no one drop them (give yourself /etc/subuid and \
             /etc/subgid ranges and install uidmap, and they are dropped)",
            named.join(", ")
        ),
        &[],
    );
}

/// Writes a rootless sandbox's maps for the child `pid`, as [`user_maps`]
/// chose: by the helpers (about 1 ms each, a fork and exec of a setuid
/// program), or by microbox with setgroups denied first.
pub fn write_user_maps(pid: i32, user: &UserMaps) -> Result<()> {
    let Writer::Helpers { uidmap, gidmap } = &user.writer else {
        let path = format!("/proc/{pid}/setgroups");
        std::fs::write(&path, "deny").map_err(|e| Error::os("write", e).on(&path))?;
        return write_id_maps(pid, &user.maps);
    };
    for (helper, ranges) in [(uidmap, &user.maps.uids), (gidmap, &user.maps.gids)] {
        let out = std::process::Command::new(helper)
            .args(subid::helper_args(pid, ranges))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::os("run", e).on(helper))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(Error::failed(
                "write the sandbox's id maps with",
                format!("{} ({})", said.trim(), out.status),
            )
            .on(helper)
            .hint("check your lines in /etc/subuid and /etc/subgid"));
        }
    }
    Ok(())
}

/// The text the kernel takes in one write(2).
fn render(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// Writes the maps of the child `pid`'s user namespace, while it waits for Go.
/// The writer (the parent, host root) needs no `setgroups` deny: it holds
/// CAP_SETGID over the parent namespace.
pub fn write_id_maps(pid: i32, maps: &IdMaps) -> Result<()> {
    for (file, ranges) in [("uid_map", &maps.uids), ("gid_map", &maps.gids)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, render(ranges)).map_err(|e| Error::os("write", e).on(&path))?;
    }
    Ok(())
}

/// The user namespace of process `pid`, as an fd (for MOUNT_ATTR_IDMAP).
pub fn open_user_namespace(pid: i32) -> Result<OwnedFd> {
    let path = format!("/proc/{pid}/ns/user");
    rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::os("open", e).on(&path))
}

/// A user namespace with `maps` and no process in it: a child made in it
/// waits while its maps are written and its namespace is opened, then is
/// killed. About 150 us; only writable binds need one.
pub fn user_namespace(maps: &IdMaps) -> Result<OwnedFd> {
    let flags = u64::from(libc::CLONE_NEWUSER.unsigned_abs());
    let op = "create a user namespace for an idmapped mount";
    let parent = rustix::process::getpid();
    match crate::sys::clone::clone3(flags, None).map_err(|e| Error::os(op, e))? {
        Forked::Child => {
            // It holds nothing of microbox's (lease files, bind trees), and
            // dies with microbox: also if microbox died before the signal
            // was set (it is reparented then).
            let _ = crate::sys::exec::close_from(3);
            let _ = set_parent_process_death_signal(Some(Signal::KILL));
            if rustix::process::getppid() != Some(parent) {
                crate::sys::exec::exit_now(1);
            }
            crate::sys::exec::wait_to_be_killed()
        }
        Forked::Parent { pid, pidfd } => {
            let made = write_id_maps(pid, maps).and_then(|()| open_user_namespace(pid));
            let _ = pidfd_send_signal(&pidfd, Signal::KILL);
            let _ = waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED);
            made
        }
    }
}

/// clone3 with the sandbox's namespaces, its user namespace owned by host id
/// `owner` (the first id of its range) rather than by root: the kernel charges
/// the per-user counters of everything in the namespace (inotify instances,
/// user namespaces) to its owner at the host level. The euid is `owner` for
/// the clone alone; the effective capabilities the uid change clears are
/// raised again from the permitted set, for CLONE_INTO_CGROUP's permission check.
pub fn clone_sandbox(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    owner: Option<u32>,
) -> std::io::Result<Forked> {
    let Some(owner) = owner else {
        return crate::sys::clone::clone3(flags, cgroup);
    };
    let root = rustix::process::geteuid();
    thread::set_thread_res_uid(None, Some(Uid::from_raw(owner)), None)?;
    let restore = || thread::set_thread_res_uid(None, Some(root), None);
    let forked = thread::capabilities(None)
        .and_then(|mut caps| {
            caps.effective = caps.permitted;
            thread::set_capabilities(None, caps)
        })
        .map_err(std::io::Error::from)
        .and_then(|()| crate::sys::clone::clone3(flags, cgroup));
    match forked {
        Ok(Forked::Child) => Ok(Forked::Child),
        // Back to root: the effective set returns with the uid.
        other => restore().map_err(std::io::Error::from).and(other),
    }
}

/// In the child after Go: every id becomes the namespace's root (host id
/// `first` when shifted), with no supplementary group. It was cloned with the
/// real and saved uid of root, which the namespace does not map.
pub fn become_namespace_root() -> Result<()> {
    let root_uid = Uid::from_raw(0);
    let root_gid = Gid::from_raw(0);
    thread::set_thread_groups(&[]).map_err(|e| Error::os("drop supplementary groups", e))?;
    thread::set_thread_res_gid(root_gid, root_gid, root_gid)
        .map_err(|e| Error::os("become group 0 of the sandbox", e))?;
    thread::set_thread_res_uid(root_uid, root_uid, root_uid)
        .map_err(|e| Error::os("become user 0 of the sandbox", e))
}

/// Why the kernel refuses a user without root a user namespace, naming the
/// setting and the command that changes it, when a setting says so. Read
/// only after a clone failed: the start path reads none of them.
pub fn userns_forbidden_hint(rootless: bool) -> Option<String> {
    if !rootless {
        return None;
    }
    forbidding_setting(|path| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    })
}

/// The hint for the first setting that `read` (a /proc/sys reader) shows
/// forbidding users their own user namespaces.
fn forbidding_setting(read: impl Fn(&str) -> Option<String>) -> Option<String> {
    let settings = [
        // Debian's and Ubuntu's own switch.
        (
            "/proc/sys/kernel/unprivileged_userns_clone",
            "kernel.unprivileged_userns_clone",
            "0",
            "1",
        ),
        (
            "/proc/sys/user/max_user_namespaces",
            "user.max_user_namespaces",
            "0",
            "15000",
        ),
        // Ubuntu 23.10 and later: AppArmor decides per program.
        (
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "kernel.apparmor_restrict_unprivileged_userns",
            "1",
            "0",
        ),
    ];
    settings.iter().find_map(|(path, name, forbids, allows)| {
        (read(path).as_deref() == Some(*forbids)).then(|| {
            format!(
                "this host forbids users their own user namespaces ({name} = {forbids}); \
                 root can allow them: sysctl -w {name}={allows}"
            )
        })
    })
}

/// In a rootless child after Go: its ids are the user's, sandbox root
/// already. With the helpers' maps setgroups is allowed, and the user's
/// supplementary groups (which would still open the host's files of those
/// groups) are dropped; with microbox's own maps the kernel forbids it.
pub fn enter_as_user(user: &UserMaps) -> Result<()> {
    if user.writer == Writer::Own {
        return Ok(());
    }
    thread::set_thread_groups(&[]).map_err(|e| Error::os("drop supplementary groups", e))
}

/// In the child, once it is in its cgroup: a new cgroup namespace rooted there,
/// so the sandbox sees its own cgroup as `/`.
pub fn enter_cgroup_namespace() -> Result<()> {
    crate::sys::ns::unshare_cgroup().map_err(|e| Error::os("create the cgroup namespace", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
    fn a_setting_that_forbids_user_namespaces_is_named_with_its_fix() {
        let hint = forbidding_setting(|path| {
            (path == "/proc/sys/user/max_user_namespaces").then(|| "0".to_string())
        })
        .unwrap();
        assert!(hint.contains("user.max_user_namespaces = 0"), "{hint}");
        assert!(
            hint.contains("sysctl -w user.max_user_namespaces=15000"),
            "{hint}"
        );
        let debian = forbidding_setting(|path| {
            path.ends_with("unprivileged_userns_clone")
                .then(|| "0".into())
        });
        assert!(debian
            .unwrap()
            .contains("sysctl -w kernel.unprivileged_userns_clone=1"));
        assert_eq!(
            forbidding_setting(|_| Some("1".into())).map(|h| h.contains("apparmor")),
            Some(true)
        );
        assert_eq!(forbidding_setting(|_| None), None);
    }

    #[test]
    fn clone_flags_name_every_namespace_the_spec_asks_for() {
        let all = [
            libc::CLONE_NEWPID,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWTIME,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWUSER,
        ];
        let want: u64 = all.iter().map(|f| u64::from(f.unsigned_abs())).sum();
        assert_eq!(clone_flags(&Spec::default()), want);
        let shared = Spec {
            net: NetMode::Host,
            userns: UsernsMode::Host,
            ..Spec::default()
        };
        let without = u64::from((libc::CLONE_NEWNET | libc::CLONE_NEWUSER).unsigned_abs());
        assert_eq!(clone_flags(&shared), want & !without);
    }

    #[test]
    fn an_isolated_user_namespace_maps_its_65536_ids_onto_the_leased_range() {
        let maps = id_maps(&Spec::default(), Some(1 << 31)).expect("isolated by default");
        assert_eq!(render(&maps.uids), "0 2147483648 65536\n");
        assert_eq!(render(&maps.gids), "0 2147483648 65536\n");
        let host_fs = Spec {
            fs: FsMode::Host,
            ..Spec::default()
        };
        assert!(shifts_ids(&Spec::default()) && !shifts_ids(&host_fs));
        let maps = id_maps(&host_fs, None).expect("isolated");
        assert_eq!(render(&maps.uids), "0 0 65536\n");
        let shared = Spec {
            userns: UsernsMode::Host,
            ..Spec::default()
        };
        assert_eq!(id_maps(&shared, None), None);
        assert!(!shifts_ids(&shared));
    }

    #[test]
    fn a_writable_binds_owner_is_sandbox_root_and_nothing_else_is_mapped() {
        let maps = owner_maps(1 << 31, 1000, 100);
        assert_eq!(render(&maps.uids), "1000 2147483648 1\n");
        assert_eq!(render(&maps.gids), "100 2147483648 1\n");
    }

    #[test]
    fn several_ranges_are_one_write_of_one_line_each() {
        let ranges = [
            IdRange {
                inside: 0,
                outside: 100_000,
                count: 1,
            },
            IdRange {
                inside: 1,
                outside: 200_000,
                count: 65535,
            },
        ];
        assert_eq!(render(&ranges), "0 100000 1\n1 200000 65535\n");
    }
}
