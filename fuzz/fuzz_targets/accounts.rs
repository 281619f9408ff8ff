//! Arbitrary account files for the id-range lease: the readers of passwd/group
//! and subuid/subgid lines never panic, and no range the pool offers overlaps
//! an id they found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microbox::ids::{candidates, name_of, range_of, taken_ids, RANGE};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first NUL splits "passwd or group" from "subuid or subgid".
    let (accounts, subids) = text.split_once('\0').unwrap_or((text, ""));
    let taken = taken_ids(&[accounts], &[subids]);
    // Rootless mode's readers of the same files: a name for an id, a range
    // for a user, which always fits in 32 bits.
    let name = name_of(accounts, 1000);
    if let Some((start, count)) = range_of(subids, name.as_deref(), 1000) {
        assert!(count > 0 && start.checked_add(count).is_some(), "{start} {count}");
    }
    for &(start, end) in &taken {
        assert!(start <= end, "{start} {end}");
    }
    // A pool near the top, where ranges are few: every one is checked.
    let pool = u64::from(u32::MAX) - 40 * RANGE;
    for first in candidates(pool, &taken, None) {
        let end = first + RANGE;
        assert!(end <= u64::from(u32::MAX));
        assert!(!taken.iter().any(|&(a, b)| a < end && first < b), "{first}");
    }
});
