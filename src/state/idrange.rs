//! Host id ranges for id-shifted user namespaces (issue 11, not wired in yet):
//! each sandbox gets 65536 host ids that no account, no group, no subordinate
//! range of /etc/subuid or /etc/subgid and no other live sandbox uses. A range
//! is a `Lease` named by its first id, under `ids/`, so it is held for the
//! sandbox's lifetime and free the moment its holder dies.
//!
//! The pool starts at 2^31 by default: far above the ids distributions hand
//! out (system accounts below 1000, users below 60000, subordinate ranges from
//! 100000 in steps of 65536), and below 2^32 - 1, which the kernel reserves.

use std::path::Path;

use super::lease::{last_leased, remember_leased, Lease};
use crate::error::Result;

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
pub fn candidates(pool_start: u64, taken: &[(u64, u64)], last: Option<u64>) -> Vec<u64> {
    let free = |start: u64| {
        let end = start + RANGE;
        !taken.iter().any(|&(a, b)| a < end && start < b)
    };
    let all: Vec<u64> = (0..)
        .map(|i| pool_start + i * RANGE)
        .take_while(|start| start + RANGE <= ID_END)
        .filter(|&start| free(start))
        .collect();
    let split = last
        .and_then(|l| all.iter().position(|&s| s == l))
        .map_or(0, |i| i + 1);
    let (before, after) = all.split_at(split);
    after.iter().chain(before).copied().collect()
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
        let c = candidates(POOL_START, &taken, None);
        // The first range holds the odd account; the next two bob's ids.
        assert_eq!(c[0], POOL_START + 3 * RANGE);
        assert!(c.iter().all(|&s| s >= POOL_START && s + RANGE <= ID_END));
        assert!(!c.contains(&POOL_START) && !c.contains(&(POOL_START + RANGE)));
        // The pool below 2^32 - 1 holds 32767 ranges; three are taken.
        assert_eq!(c.len(), 32767 - 3);
        // Round robin: after the last leased, wrapping to the first.
        let after = candidates(POOL_START, &taken, Some(c[5]));
        assert_eq!(after[0], c[6]);
        assert_eq!(*after.last().unwrap(), c[5]);
        // A pool moved elsewhere starts there.
        assert_eq!(candidates(1 << 20, &[], None)[0], 1 << 20);
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
}
