//! The sandbox's namespaces: which ones the clone makes, the user namespace's
//! id maps and their writing, and the cgroup namespace the child makes itself.
//!
//! Kept as data first (`clone_flags`, `id_maps`) so that the id-shifted user
//! namespace (leased ranges) changes what is computed, not how it is applied.

use crate::error::{Error, Result};
use crate::spec::{NetMode, Spec, UsernsMode};

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

/// Ids 0-65535 of the sandbox are the same host ids (DESIGN.md section 4).
const IDENTITY: IdRange = IdRange {
    inside: 0,
    outside: 0,
    count: 65536,
};

/// The maps the sandbox's user namespace gets; None when it shares the host's.
pub fn id_maps(spec: &Spec) -> Option<IdMaps> {
    (spec.userns == UsernsMode::Isolated).then(|| IdMaps {
        uids: vec![IDENTITY],
        gids: vec![IDENTITY],
    })
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

/// In the child, once it is in its cgroup: a new cgroup namespace rooted there,
/// so the sandbox sees its own cgroup as `/`.
pub fn enter_cgroup_namespace() -> Result<()> {
    crate::sys::ns::unshare_cgroup().map_err(|e| Error::os("create the cgroup namespace", e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn an_isolated_user_namespace_maps_the_first_65536_ids_to_themselves() {
        let maps = id_maps(&Spec::default()).expect("isolated by default");
        assert_eq!(render(&maps.uids), "0 0 65536\n");
        assert_eq!(render(&maps.gids), "0 0 65536\n");
        let shared = Spec {
            userns: UsernsMode::Host,
            ..Spec::default()
        };
        assert_eq!(id_maps(&shared), None);
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
