//! Host id ranges for id-shifted user namespaces: each sandbox gets 65536 host ids that no account, no group, no subordinate
//! range of /etc/subuid or /etc/subgid and no other live sandbox uses. A range
//! is a `Lease` named by its first id, under `ids/`, so it is held for the
//! sandbox's lifetime and free the moment its holder dies.
//!
//! The pool starts at 2^31 by default: far above the ids distributions hand
//! out (system accounts below 1000, users below 60000, subordinate ranges from
//! 100000 in steps of 65536), and below 2^32 - 1, which the kernel reserves.

use std::path::Path;

use super::lease::{last_leased, remember_leased, Lease};
use crate::error::{Error, Result};

/// Ids per sandbox: 0-65535 inside.
pub const RANGE: u64 = 65536;
/// The first id of the default pool.
pub const POOL_START: u64 = 1 << 31;
/// One past the last usable id: `(uid_t)-1` is no id.
const ID_END: u64 = u32::MAX as u64;
const DIR: &str = "ids";

/// `[start, end)` intervals of host ids something else already owns.
pub type Taken = Vec<(u64, u64)>;

/// The ids named by the account databases: the third field of each passwd or
/// group line, and each `name:start:count` line of subuid or subgid files.
/// Lines that do not parse are skipped (a corrupt line is not an id).
pub fn taken_ids(passwd_or_group: &[&str], subid: &[&str]) -> Taken {
    let mut taken = Taken::new();
    for text in passwd_or_group {
        for line in text.lines() {
            if let Some(id) = line.split(':').nth(2).and_then(|f| f.parse::<u64>().ok()) {
                taken.push((id, id + 1));
            }
        }
    }
    for text in subid {
        for line in text.lines() {
            let mut fields = line.split(':').skip(1);
            let start = fields.next().and_then(|f| f.parse::<u64>().ok());
            let count = fields.next().and_then(|f| f.parse::<u64>().ok());
            if let (Some(start), Some(count)) = (start, count) {
                taken.push((start, start.saturating_add(count)));
            }
        }
    }
    taken
}

/// The first ids of the ranges of the pool from `pool_start` that overlap
/// nothing in `taken`, beginning after `last` (round robin) and wrapping.
/// Lazy: a start tries one or two of the pool's 32767 ranges, not all.
pub fn candidates<'a>(
    pool_start: u64,
    taken: &'a [(u64, u64)],
    last: Option<u64>,
) -> impl Iterator<Item = u64> + 'a {
    let free = move |start: &u64| {
        let end = start + RANGE;
        !taken.iter().any(|&(a, b)| a < end && *start < b)
    };
    let ranges = (ID_END.saturating_sub(pool_start)) / RANGE;
    let starts = move |from: u64, to: u64| (from..to).map(move |i| pool_start + i * RANGE);
    // After the last leased range, if it is one of this pool's.
    let split = last
        .filter(|&l| l >= pool_start && (l - pool_start) % RANGE == 0)
        .map_or(0, |l| ((l - pool_start) / RANGE + 1).min(ranges));
    starts(split, ranges).chain(starts(0, split)).filter(free)
}

/// Leases the next free range of the pool: its first host id and the lease
/// (None when every range of the pool is held). `taken` comes from
/// `taken_ids` over the host's account files.
pub fn lease_range(
    run_dir: &Path,
    pool_start: u64,
    taken: &[(u64, u64)],
) -> Result<Option<(u64, Lease)>> {
    let last = last_leased(run_dir, DIR).and_then(|l| l.parse().ok());
    for start in candidates(pool_start, taken, last) {
        if let Some(lease) = Lease::take(run_dir, DIR, &start.to_string())? {
            remember_leased(run_dir, DIR, lease.name());
            return Ok(Some((start, lease)));
        }
    }
    Ok(None)
}

/// Where the pool starts on this host: `MICROBOX_ID_POOL`, or 2^31.
fn pool_start() -> Result<u64> {
    let Some(value) = std::env::var_os(POOL_VAR) else {
        return Ok(POOL_START);
    };
    let text = value.to_string_lossy();
    // On the grid of 65536: leases are named by their first id, so pools
    // off the grid would lease overlapping ranges under different names.
    match text.parse::<u64>() {
        Ok(start)
            if start >= RANGE
                && start % RANGE == 0
                && start.checked_add(RANGE).is_some_and(|end| end <= ID_END) =>
        {
            Ok(start)
        }
        _ => Err(Error::usage(format!(
            "{POOL_VAR}='{text}': not a multiple of 65536 from 65536 up from which \
             65536 ids fit below {ID_END}"
        ))),
    }
}

/// The environment variable that moves the pool.
pub const POOL_VAR: &str = "MICROBOX_ID_POOL";

/// The host's account databases; a missing file names nothing.
fn host_taken_ids() -> Taken {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let (passwd, group) = (read("/etc/passwd"), read("/etc/group"));
    let (subuid, subgid) = (read("/etc/subuid"), read("/etc/subgid"));
    taken_ids(&[&passwd, &group], &[&subuid, &subgid])
}

/// The range of one sandbox: its first host id (ids 0-65535 of the sandbox are
/// `first..first + 65536`) and the lease that holds it for the run.
pub fn lease_for_sandbox(run_dir: &Path) -> Result<(u32, Lease)> {
    let pool = pool_start()?;
    match lease_range(run_dir, pool, &host_taken_ids())? {
        // Below ID_END: always a u32.
        Some((first, lease)) => Ok((u32::try_from(first).unwrap_or(u32::MAX), lease)),
        None => Err(Error::failed(
            "lease a host id range",
            format!("every range of the pool from {pool} is in use or named by an account"),
        )
        .hint(format!(
            "stop some sandboxes, or move the pool with {POOL_VAR}=FIRST_ID"
        ))),
    }
}

/// Removes the lease files of ranges no live sandbox holds (their holders were
/// killed): called when a dead sandbox is collected.
pub fn collect_free(run_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(run_dir.join(DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(first) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
            continue;
        };
        // Taken means free; dropped at once, it unlinks its file.
        if let Ok(Some(lease)) = Lease::take(run_dir, DIR, first) {
            drop(lease);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          odd:x:2147483650:100::/:/bin/false\n\
                          broken line\n";
    const SUBUID: &str = "alice:100000:65536\nbob:2147549184:131072\n";

    #[test]
    fn accounts_and_subordinate_ranges_are_taken() {
        let taken = taken_ids(&[PASSWD, "wheel:x:10:\n"], &[SUBUID]);
        assert!(taken.contains(&(0, 1)));
        assert!(taken.contains(&(10, 11)));
        assert!(taken.contains(&(2_147_483_650, 2_147_483_651)));
        assert!(taken.contains(&(100_000, 165_536)));
        assert!(taken.contains(&(2_147_549_184, 2_147_680_256)));
        assert_eq!(taken.len(), 5);
    }

    #[test]
    fn candidates_skip_every_range_that_overlaps_something_taken() {
        let taken = taken_ids(&[PASSWD], &[SUBUID]);
        let c: Vec<u64> = candidates(POOL_START, &taken, None).collect();
        // The first range holds the odd account; the next two bob's ids.
        assert_eq!(c[0], POOL_START + 3 * RANGE);
        assert!(c.iter().all(|&s| s >= POOL_START && s + RANGE <= ID_END));
        assert!(!c.contains(&POOL_START) && !c.contains(&(POOL_START + RANGE)));
        // The pool below 2^32 - 1 holds 32767 ranges; three are taken.
        assert_eq!(c.len(), 32767 - 3);
        // Round robin: after the last leased, wrapping to the first.
        let after: Vec<u64> = candidates(POOL_START, &taken, Some(c[5])).collect();
        assert_eq!(after[0], c[6]);
        assert_eq!(*after.last().unwrap(), c[5]);
        // A pool moved elsewhere starts there.
        assert_eq!(candidates(1 << 20, &[], None).next(), Some(1 << 20));
        // A hint from another pool is ignored.
        assert_eq!(candidates(1 << 20, &[], Some(7)).next(), Some(1 << 20));
    }

    #[test]
    fn two_leases_get_disjoint_ranges_and_a_freed_one_comes_back_last() {
        let run = crate::test_dir("state-idrange");
        let (a, lease_a) = lease_range(&run, POOL_START, &[]).unwrap().unwrap();
        let (b, lease_b) = lease_range(&run, POOL_START, &[]).unwrap().unwrap();
        assert_eq!((a, b), (POOL_START, POOL_START + RANGE));
        drop(lease_a);
        let (c, _lease_c) = lease_range(&run, POOL_START, &[]).unwrap().unwrap();
        assert_eq!(c, POOL_START + 2 * RANGE);
        drop(lease_b);
        std::fs::remove_dir_all(&run).unwrap();
    }

    #[test]
    fn a_killed_holders_range_file_is_collected_and_a_live_one_kept() {
        let run = crate::test_dir("state-idrange-collect");
        let (_, live) = lease_range(&run, POOL_START, &[]).unwrap().unwrap();
        // A killed holder's file: there, but locked by no one.
        std::fs::write(run.join(DIR).join("2147614720.lock"), "").unwrap();
        collect_free(&run);
        assert!(!run.join(DIR).join("2147614720.lock").exists());
        assert!(run.join(DIR).join(format!("{}.lock", live.name())).exists());
        drop(live);
        std::fs::remove_dir_all(&run).unwrap();
    }
}
