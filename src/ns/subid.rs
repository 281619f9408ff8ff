//! A rootless sandbox's id maps (issue 14). The user's own uid and gid are
//! sandbox root. When /etc/subuid and /etc/subgid give the user a range, ids
//! 1.. of the sandbox are that range, so that 0-65535 exist inside; those maps
//! are written by newuidmap(1) and newgidmap(1) (Debian's uidmap package,
//! setuid root), the one sanctioned route: the kernel lets an unprivileged
//! writer map its own ids alone, and only after denying setgroups(2).
//!
//! Pure: the lookup of the user's name and ranges, and the maps; `mod.rs`
//! writes them.

use super::{IdMaps, IdRange, COUNT};

/// Who writes a rootless sandbox's maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// microbox itself: one line each, setgroups denied first. The sandbox
    /// keeps the user's supplementary groups (it cannot drop them) and they
    /// show as the overflow group 65534 inside.
    Own,
    /// newuidmap and newgidmap at these paths; setgroups stays allowed and
    /// the sandbox drops the user's supplementary groups.
    Helpers { uidmap: String, gidmap: String },
}

/// The maps of a rootless sandbox and who writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMaps {
    pub maps: IdMaps,
    pub writer: Writer,
}

impl UserMaps {
    /// For the log: which maps were chosen.
    pub fn describe(&self) -> String {
        let range = |r: &[IdRange]| {
            r.iter()
                .map(|r| format!("{}-{} -> {}", r.inside, r.inside + r.count - 1, r.outside))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.writer {
            Writer::Own => format!(
                "the user's own ids only: uid {}, gid {} are sandbox root",
                range(&self.maps.uids),
                range(&self.maps.gids)
            ),
            Writer::Helpers { .. } => format!(
                "subordinate ids through newuidmap/newgidmap: uids {}; gids {}",
                range(&self.maps.uids),
                range(&self.maps.gids)
            ),
        }
    }
}

/// The first range of `/etc/subuid` (or subgid) text that belongs to the
/// user, named by `name` or by its number `id`: `(start, count)`.
pub fn range_of(text: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
        let ours = Some(owner) == name || owner.parse::<u32>().ok() == Some(id);
        let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
        (ours && count > 0 && start.checked_add(count).is_some()).then_some((start, count))
    })
}

/// The name of `uid` in `/etc/passwd` text, or of a gid in `/etc/group` text
/// (both begin `name:password:id:`). No NSS in a static binary; newuidmap
/// itself looks the caller up the same way on a plain host.
pub fn name_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// The maps for a user `uid`/`gid` with subordinate ranges `subuid` and
/// `subgid` (both or neither are used), given the helpers' paths.
pub fn choose(
    uid: u32,
    gid: u32,
    sub: Option<((u32, u32), (u32, u32))>,
    helpers: Option<(String, String)>,
) -> UserMaps {
    let own = |id| IdRange {
        inside: 0,
        outside: id,
        count: 1,
    };
    let rest = |(start, count): (u32, u32)| IdRange {
        inside: 1,
        outside: start,
        count: count.min(COUNT - 1),
    };
    match (sub, helpers) {
        (Some((uids, gids)), Some((uidmap, gidmap))) => UserMaps {
            maps: IdMaps {
                uids: vec![own(uid), rest(uids)],
                gids: vec![own(gid), rest(gids)],
            },
            writer: Writer::Helpers { uidmap, gidmap },
        },
        _ => UserMaps {
            maps: IdMaps {
                uids: vec![own(uid)],
                gids: vec![own(gid)],
            },
            writer: Writer::Own,
        },
    }
}

/// The arguments of newuidmap/newgidmap for `pid`: `pid inside outside count...`.
pub fn helper_args(pid: i32, ranges: &[IdRange]) -> Vec<String> {
    let mut args = vec![pid.to_string()];
    for r in ranges {
        args.extend([r.inside, r.outside, r.count].map(|n| n.to_string()));
    }
    args
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn the_users_range_is_found_by_name_or_number() {
        let text = "other:100000:65536\n# comment\nalice:165536:65536\n1001:231072:1000\nbad:x:1\n";
        assert_eq!(range_of(text, Some("alice"), 1000), Some((165536, 65536)));
        assert_eq!(range_of(text, None, 1001), Some((231072, 1000)));
        assert_eq!(range_of(text, Some("bob"), 1002), None);
        assert_eq!(range_of("bob:4294967295:2\n", Some("bob"), 1), None);
        assert_eq!(range_of("bob:100:0\n", Some("bob"), 1), None);
    }

    #[test]
    fn a_name_comes_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(name_of(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(name_of(passwd, 1001), None);
    }

    #[test]
    fn subordinate_ranges_fill_ids_1_to_65535_and_the_user_is_root() {
        let helpers = Some(("/usr/bin/newuidmap".into(), "/usr/bin/newgidmap".into()));
        let maps = choose(1000, 100, Some(((165536, 65536), (165536, 70000))), helpers);
        assert!(matches!(maps.writer, Writer::Helpers { .. }));
        assert_eq!(
            helper_args(42, &maps.maps.uids),
            ["42", "0", "1000", "1", "1", "165536", "65535"]
        );
        assert_eq!(maps.maps.gids[0].outside, 100);
        assert!(maps.describe().contains("newuidmap"), "{}", maps.describe());
        // A short range maps what there is.
        let short = choose(1000, 100, Some(((5000, 10), (6000, 10))), None);
        assert_eq!(short.writer, Writer::Own, "no helpers, own ids only");
        let own = choose(1000, 100, None, Some(("a".into(), "b".into())));
        assert_eq!(own.writer, Writer::Own);
        assert_eq!(
            own.maps.uids,
            [IdRange {
                inside: 0,
                outside: 1000,
                count: 1
            }]
        );
        assert!(own.describe().contains("own ids"), "{}", own.describe());
    }
}
