//! The cgroup a user without root may use (issue 14): on cgroup v2, a
//! subtree delegated to them, as systemd delegates `user@UID.service`, or
//! any subtree whose directory and control files they own. Found from the
//! user's own cgroup: the highest of its ancestors (itself included) that is
//! theirs. The highest, because moving a process (CLONE_INTO_CGROUP) needs
//! write access to `cgroup.procs` of the common ancestor of where it is and
//! where it goes; microbox's sandboxes go below it, in `microbox/<id>`.
//! cgroup v1 is root's alone: no delegation there.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The delegated subtree of the user `uid` under the v2 mount `root`, given
/// the user's cgroup `own` (the path after `0::` in /proc/self/cgroup).
/// `owner_of` says who owns a path (None: it is not there).
pub fn find(
    root: &Path,
    own: &str,
    uid: u32,
    owner_of: impl Fn(&Path) -> Option<u32>,
) -> Option<PathBuf> {
    let mut dir = root.to_path_buf();
    for part in own.split('/').filter(|p| !p.is_empty()) {
        if part == ".." || part == "." {
            return None;
        }
        dir.push(part);
        let ours = |file: &str| owner_of(&dir.join(file)) == Some(uid);
        if owner_of(&dir) == Some(uid) && ours("cgroup.procs") && ours("cgroup.subtree_control") {
            return Some(dir);
        }
    }
    None
}

/// The user's own cgroup v2 path from /proc/self/cgroup text (`0::/path`).
pub fn own_cgroup(proc_self_cgroup: &str) -> Option<&str> {
    proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::trim)
}

/// The calling user's delegated subtree under `root`, if any.
pub fn for_caller(root: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let uid = rustix::process::geteuid().as_raw();
    let owner = |path: &Path| std::fs::symlink_metadata(path).ok().map(|m| m.uid());
    find(root, own_cgroup(&text)?, uid, owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_owned_ancestor_with_its_control_files_is_the_subtree() {
        let owners = |path: &Path| {
            let p = path.to_str()?;
            if p.starts_with("/cg/user.slice/user-1000.slice/user@1000.service") {
                // systemd leaves cgroup.subtree_control of app.slice root's in
                // this made-up tree: the service is still the highest.
                Some(1000)
            } else if p.starts_with("/cg") {
                Some(0)
            } else {
                None
            }
        };
        let own = "/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope";
        assert_eq!(
            find(Path::new("/cg"), own, 1000, owners),
            Some(PathBuf::from(
                "/cg/user.slice/user-1000.slice/user@1000.service"
            ))
        );
        // A login session's scope is root's: nothing delegated.
        assert_eq!(
            find(
                Path::new("/cg"),
                "/user.slice/user-1000.slice/session-2.scope",
                1000,
                owners
            ),
            None
        );
        assert_eq!(find(Path::new("/cg"), "/../x", 1000, |_| Some(1000)), None);
        // An owned directory whose control files are root's is not delegated.
        let dir_only = |path: &Path| (!path.ends_with("cgroup.procs")).then_some(7);
        assert_eq!(find(Path::new("/cg"), "/a/b", 7, dir_only), None);
    }

    #[test]
    fn the_v2_line_of_proc_self_cgroup_is_read() {
        let text = "12:pids:/user.slice\n1:name=systemd:/x\n0::/user.slice/a.scope\n";
        assert_eq!(own_cgroup(text), Some("/user.slice/a.scope"));
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
    }
}
