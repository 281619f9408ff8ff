//! Arbitrary text for `--rlimit NAME=SOFT[:HARD]`: no panic; what it accepts
//! names a known limit whose soft value is at most its hard value. And the
//! report's JSON string writer: any text comes back unchanged through a real
//! JSON reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microbox::limits;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(limit) = limits::parse_rlimit(text) {
        assert!(limits::rlimit_names().contains(limit.name()), "{text:?}");
        let (soft, hard) = (limit.soft, limit.hard);
        let ordered = match (soft, hard) {
            (Some(s), Some(h)) => s <= h,
            (None, Some(_)) => false,
            _ => true,
        };
        assert!(ordered, "{text:?}: soft {soft:?} above hard {hard:?}");
        assert!(soft != Some(u64::MAX) && hard != Some(u64::MAX), "{text:?}");
    }
    let quoted = limits::json_string(text);
    assert!(!quoted.chars().any(|c| u32::from(c) < 0x20), "{quoted:?}");
    let back: String = serde_json::from_str(&quoted).expect("a JSON string");
    assert_eq!(back, text);
});
