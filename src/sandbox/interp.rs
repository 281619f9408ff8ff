//! Why `execve` said ENOENT of a file that is there: the program's
//! interpreter is not. An ELF program names its dynamic loader (PT_INTERP,
//! e.g. /lib64/ld-linux-x86-64.so.2, often a symlink into /lib), a script its
//! `#!` program; the kernel reports either one missing as the program missing.
//! Parsing is pure (the file's first bytes in, the interpreter's path out);
//! [`explain`] reads the file, in the sandbox's view, on the failure path only.

use std::io::Read;
use std::path::Path;

/// How much of a program is read: the program headers and the interpreter's
/// name sit in its first page in every linker's layout; 64 KiB is generous.
const HEAD: u64 = 64 * 1024;

const PT_INTERP: u32 = 3;

#[derive(Debug, PartialEq, Eq)]
pub enum Interpreter {
    /// The ELF program's dynamic loader.
    Elf(Vec<u8>),
    /// A script's `#!` program.
    Script(Vec<u8>),
}

/// The interpreter a program's first bytes `head` name, if any.
pub fn interpreter_of(head: &[u8]) -> Option<Interpreter> {
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next()?;
        let start = line.iter().position(|&b| b != b' ' && b != b'\t')?;
        let path = line[start..].split(|&b| b == b' ' || b == b'\t').next()?;
        return Some(Interpreter::Script(path.to_vec()));
    }
    elf_interpreter(head).map(Interpreter::Elf)
}

fn elf_interpreter(head: &[u8]) -> Option<Vec<u8>> {
    if head.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match head.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let big = match head.get(5)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let field = |at: usize, len: usize| -> Option<u64> {
        let bytes = head.get(at..at.checked_add(len)?)?;
        let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        Some(if big {
            bytes.iter().fold(0, fold)
        } else {
            bytes.iter().rev().fold(0, fold)
        })
    };
    let (phoff, phentsize, phnum) = if wide {
        (field(32, 8)?, field(54, 2)?, field(56, 2)?)
    } else {
        (field(28, 4)?, field(42, 2)?, field(44, 2)?)
    };
    for i in 0..phnum {
        let at = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if field(at, 4)? != u64::from(PT_INTERP) {
            continue;
        }
        // p_offset follows p_type (and p_flags on 64-bit); p_filesz is the
        // fourth word after them.
        let (offset, size) = if wide {
            (field(at + 8, 8)?, field(at + 32, 8)?)
        } else {
            (field(at + 4, 4)?, field(at + 16, 4)?)
        };
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let name = head.get(start..end)?;
        let name = name.split(|&b| b == 0).next()?;
        return (!name.is_empty()).then(|| name.to_vec());
    }
    None
}

/// Why `program`, which exists, could not be executed with ENOENT: a line
/// naming its missing interpreter, or None when that is not the reason.
pub fn explain(program: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let mut head = Vec::new();
    std::fs::File::open(program)
        .ok()?
        .take(HEAD)
        .read_to_end(&mut head)
        .ok()?;
    let (what, path) = match interpreter_of(&head)? {
        Interpreter::Elf(path) => ("ELF interpreter", path),
        Interpreter::Script(path) => ("#! interpreter", path),
    };
    let path = Path::new(std::ffi::OsStr::from_bytes(&path));
    if path.exists() {
        return None;
    }
    let dangling = std::fs::read_link(path)
        .map(|to| format!(" (a symlink to {}, which is not there)", to.display()))
        .unwrap_or_default();
    Some(format!(
        "{}: its {what} {}{dangling} is missing in the sandbox",
        program.display(),
        path.display()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    /// A minimal ELF header with one PT_LOAD and one PT_INTERP program header.
    fn elf(wide: bool, big: bool, interp: &[u8]) -> Vec<u8> {
        let put = |out: &mut Vec<u8>, at: usize, len: usize, value: u64| {
            let bytes = value.to_be_bytes();
            let mut bytes = bytes[8 - len..].to_vec();
            if !big {
                bytes.reverse();
            }
            out[at..at + len].copy_from_slice(&bytes);
        };
        let (ehsize, phentsize) = if wide { (64, 56) } else { (52, 32) };
        let interp_at = ehsize + 2 * phentsize;
        let mut out = vec![0u8; interp_at + interp.len() + 1];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = if wide { 2 } else { 1 };
        out[5] = if big { 2 } else { 1 };
        let (phoff, phent, phnum) = if wide { (32, 54, 56) } else { (28, 42, 44) };
        put(&mut out, phoff, if wide { 8 } else { 4 }, ehsize as u64);
        put(&mut out, phent, 2, phentsize as u64);
        put(&mut out, phnum, 2, 2);
        let load = ehsize;
        put(&mut out, load, 4, 1);
        let ph = ehsize + phentsize;
        put(&mut out, ph, 4, u64::from(PT_INTERP));
        let len = interp.len() as u64 + 1;
        if wide {
            put(&mut out, ph + 8, 8, interp_at as u64);
            put(&mut out, ph + 32, 8, len);
        } else {
            put(&mut out, ph + 4, 4, interp_at as u64);
            put(&mut out, ph + 16, 4, len);
        }
        out[interp_at..interp_at + interp.len()].copy_from_slice(interp);
        out
    }

    #[test]
    fn elf_programs_name_their_loader_in_every_layout() {
        let loader = b"/lib64/ld-linux-x86-64.so.2";
        for wide in [true, false] {
            for big in [true, false] {
                assert_eq!(
                    interpreter_of(&elf(wide, big, loader)),
                    Some(Interpreter::Elf(loader.to_vec())),
                    "wide {wide} big {big}"
                );
            }
        }
    }

    #[test]
    fn scripts_name_their_first_word() {
        assert_eq!(
            interpreter_of(b"#! /usr/bin/env python3\nprint(1)\n"),
            Some(Interpreter::Script(b"/usr/bin/env".to_vec()))
        );
        assert_eq!(
            interpreter_of(b"#!/bin/bash"),
            Some(Interpreter::Script(b"/bin/bash".to_vec()))
        );
        assert_eq!(interpreter_of(b"#!   \n"), None);
    }

    #[test]
    fn static_truncated_and_foreign_files_name_none() {
        let mut no_interp = elf(true, false, b"/x");
        no_interp[64 + 56] = 1; // the PT_INTERP header becomes PT_LOAD
        assert_eq!(interpreter_of(&no_interp), None);
        let whole = elf(true, false, b"/lib/ld.so");
        for len in 0..whole.len() - 1 {
            let _ = interpreter_of(&whole[..len]);
        }
        assert_eq!(interpreter_of(b"MZ\x90\x00"), None);
        assert_eq!(interpreter_of(b""), None);
        let mut huge = whole.clone();
        huge[56] = 0xff; // phnum 0xffff: headers run past the end
        huge[57] = 0xff;
        let _ = interpreter_of(&huge);
    }

    #[test]
    fn the_explanation_names_a_dangling_loader_symlink() {
        let dir = crate::test_dir("interp-explain");
        let link = dir.join("ld.so");
        std::os::unix::fs::symlink(dir.join("lib/ld-real.so"), &link).unwrap();
        let program = dir.join("prog");
        std::fs::write(
            &program,
            elf(true, false, link.to_str().unwrap().as_bytes()),
        )
        .unwrap();
        let line = explain(&program).unwrap();
        assert!(line.contains("its ELF interpreter"), "{line}");
        assert!(line.contains("(a symlink to"), "{line}");
        assert!(
            line.contains("lib/ld-real.so, which is not there)"),
            "{line}"
        );
        std::fs::write(&program, format!("#!{}\n", program.display())).unwrap();
        assert_eq!(explain(&program), None, "an interpreter that is there");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
