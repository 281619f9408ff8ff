//! Arbitrary program files: the reader of an ELF program's PT_INTERP and of
//! a script's `#!` line never panics, and what it names lies inside the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microbox::programs::{interpreter_of, Interpreter};

fuzz_target!(|data: &[u8]| {
    let path = match interpreter_of(data) {
        Some(Interpreter::Elf(path) | Interpreter::Script(path)) => path,
        None => return,
    };
    assert!(!path.is_empty() || data.starts_with(b"#!"));
    assert!(path.len() <= data.len());
    assert!(data.windows(path.len().max(1)).any(|w| w == path.as_slice()) || path.is_empty());
});
