//! Arbitrary text for the size, CPU and duration parsers: no panic, and whatever they
//! accept reads back unchanged through the matching formatter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microbox::units;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = units::parse_size(text) {
        assert!(bytes > 0);
        assert_eq!(
            units::parse_size(&units::format_size(bytes)),
            Ok(bytes),
            "{text:?}"
        );
    }
    if let Ok(millis) = units::parse_cpus(text) {
        assert!((10..=1_024_000).contains(&millis), "{text:?}");
        assert_eq!(
            units::parse_cpus(&units::format_cpus(millis)),
            Ok(millis),
            "{text:?}"
        );
    }
    if let Ok(duration) = units::parse_duration(text) {
        assert!(duration.as_millis() <= 366 * 24 * 3600 * 1000, "{text:?}");
        assert_eq!(
            units::parse_duration(&units::format_duration(duration)),
            Ok(duration),
            "{text:?}"
        );
    }
});
