//! Arbitrary argv for the command-line parser: it must never panic, and what it
//! accepts or rejects must keep the promises `cli` makes.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Component;

use libfuzzer_sys::fuzz_target;
use microbox::cli::{self, Command};

fuzz_target!(|data: &[u8]| {
    // NUL separates words, as in /proc/PID/cmdline.
    let args = data
        .split(|&b| b == 0)
        .map(|word| OsStr::from_bytes(word).to_os_string());
    match cli::parse(args) {
        Ok(Command::Run(spec)) => {
            assert!(!spec.command.is_empty());
            assert!(!spec.command[0].is_empty());
            for mount in &spec.mounts {
                assert!(mount.dest.is_absolute(), "{mount:?}");
                assert!(
                    !mount.dest.components().any(|c| c == Component::ParentDir),
                    "{mount:?}"
                );
                assert!(!mount.source.as_os_str().is_empty(), "{mount:?}");
            }
            for (key, _) in &spec.env {
                assert!(
                    !key.is_empty() && !key.as_bytes().contains(&b'='),
                    "{key:?}"
                );
            }
            if let Some(name) = &spec.hostname {
                assert!(
                    (1..=64).contains(&name.len()) && !name.contains('/'),
                    "{name:?}"
                );
            }
            assert!((10..=1_024_000).contains(&spec.millicpus));
            assert!(spec.memory > 0 && spec.storage > 0);
        }
        Ok(Command::Help | Command::Version) => {}
        Ok(Command::NetCleanup { bridge }) => {
            assert!(
                (1..=15).contains(&bridge.len()) && !bridge.contains('/'),
                "{bridge:?}"
            );
        }
        Err(err) => {
            let line = err.to_string();
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        }
    }
});
