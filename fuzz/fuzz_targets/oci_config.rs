//! config.json's mapper and the OCI command line's parser: arbitrary bytes
//! never panic, and every refusal is one line (the engines show it as the
//! container's error, Podman as one JSON log record). The first byte picks
//! the parser; for the command line the rest is NUL-separated words.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use microbox::oci;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let refusal = if which % 2 == 0 {
        oci::config_parse(rest).err()
    } else {
        let args: Vec<OsString> = rest
            .split(|&b| b == 0)
            .map(|w| OsString::from_vec(w.to_vec()))
            .collect();
        oci::cli_parse(args).err()
    };
    if let Some(msg) = refusal {
        assert!(!msg.is_empty());
        assert!(!msg.contains('\n'), "one line: {msg:?}");
    }
});
