//! Syscall name tables for x86_64 and aarch64.
//!
//! The tables (`syscalls_x86_64.rs`, `syscalls_aarch64.rs`) are generated from
//! the kernel's uapi headers by `cargo xtask gen-syscalls` and committed; both
//! are compiled on every architecture so a profile can be built and checked for
//! either one. They stop at the headers' kernel (Linux 6.1: numbers up to 450);
//! a newer syscall has no name here until the tables are regenerated.
#![forbid(unsafe_code)]

use super::{syscalls_aarch64, syscalls_x86_64};

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("microbox has syscall tables and seccomp support for x86_64 and aarch64 only");

/// An architecture microbox has a syscall table for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on.
    #[cfg(target_arch = "x86_64")]
    pub const NATIVE: Arch = Arch::X86_64;
    /// The architecture this binary runs on.
    #[cfg(target_arch = "aarch64")]
    pub const NATIVE: Arch = Arch::Aarch64;

    /// The name Rust, the kernel and seccompiler use for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Name-sorted `(name, number)` pairs.
    pub fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => syscalls_x86_64::TABLE,
            Arch::Aarch64 => syscalls_aarch64::TABLE,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The native syscall number of `name`, if the kernel has such a call.
pub fn number(name: &str) -> Option<u32> {
    number_for(Arch::NATIVE, name)
}

/// The syscall number of `name` on `arch`. Names are the kernel's (`__NR_name`),
/// exact and lower case: `umount2`, `_sysctl`, `newfstatat`.
pub fn number_for(arch: Arch, name: &str) -> Option<u32> {
    entry_for(arch, name).map(|(_, nr)| nr)
}

/// The table's own `(name, number)` for `name` on `arch`: the name with a
/// `'static` lifetime, for profiles that keep it.
pub fn entry_for(arch: Arch, name: &str) -> Option<(&'static str, u32)> {
    let table = arch.table();
    table
        .binary_search_by(|&(entry, _)| entry.cmp(name))
        .ok()
        .map(|index| table[index])
}

/// The native name of syscall number `nr`.
pub fn name(nr: u32) -> Option<&'static str> {
    name_for(Arch::NATIVE, nr)
}

/// The name of syscall number `nr` on `arch`.
pub fn name_for(arch: Arch, nr: u32) -> Option<&'static str> {
    arch.table()
        .iter()
        .find(|&&(_, number)| number == nr)
        .map(|&(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_unique() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let table = arch.table();
            assert!(table.len() > 250, "{arch:?}");
            for pair in table.windows(2) {
                assert!(
                    pair[0].0 < pair[1].0,
                    "{arch:?}: {:?} before {:?}",
                    pair[0],
                    pair[1]
                );
            }
            let mut numbers: Vec<u32> = table.iter().map(|&(_, nr)| nr).collect();
            numbers.sort_unstable();
            numbers.dedup();
            assert_eq!(
                numbers.len(),
                table.len(),
                "{arch:?}: a number appears twice"
            );
        }
    }

    #[test]
    fn known_numbers() {
        // Spot checks against the kernel's tables (arch/x86/entry/syscalls/syscall_64.tbl,
        // include/uapi/asm-generic/unistd.h).
        let x86_64 = [
            ("read", 0),
            ("ioctl", 16),
            ("getpid", 39),
            ("clone", 56),
            ("ptrace", 101),
            ("_sysctl", 156),
            ("umount2", 166),
            ("io_uring_setup", 425),
            ("clone3", 435),
            ("mount_setattr", 442),
        ];
        for (name, nr) in x86_64 {
            assert_eq!(number_for(Arch::X86_64, name), Some(nr), "x86_64 {name}");
            assert_eq!(name_for(Arch::X86_64, nr), Some(name), "x86_64 {nr}");
        }
        let aarch64 = [
            ("io_setup", 0),
            ("ioctl", 29),
            ("fstat", 80),
            ("ptrace", 117),
            ("getpid", 172),
            ("clone", 220),
            ("io_pgetevents", 292),
            ("clone3", 435),
        ];
        for (name, nr) in aarch64 {
            assert_eq!(number_for(Arch::Aarch64, name), Some(nr), "aarch64 {name}");
            assert_eq!(name_for(Arch::Aarch64, nr), Some(name), "aarch64 {nr}");
        }
        assert_eq!(number_for(Arch::Aarch64, "open"), None);
        assert_eq!(number_for(Arch::Aarch64, "iopl"), None);
        assert_eq!(number_for(Arch::X86_64, "vm86"), None);
        assert_eq!(number_for(Arch::X86_64, "PTRACE"), None);
        assert_eq!(number_for(Arch::X86_64, ""), None);
    }

    #[test]
    fn native_matches_libc() {
        assert_eq!(number("getpid"), u32::try_from(libc::SYS_getpid).ok());
        assert_eq!(number("ptrace"), u32::try_from(libc::SYS_ptrace).ok());
        assert_eq!(number("clone3"), u32::try_from(libc::SYS_clone3).ok());
        assert_eq!(
            name(u32::try_from(libc::SYS_unshare).unwrap_or(u32::MAX)),
            Some("unshare")
        );
    }
}
