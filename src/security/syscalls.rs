//! Syscall name tables for x86_64 and aarch64.
//!
//! The tables (`syscalls_x86_64.rs`, `syscalls_aarch64.rs`) are generated from
//! the kernel's uapi headers by `cargo xtask gen-syscalls` and committed; both
//! are compiled on every architecture so a profile can be built and checked for
//! either one. They stop at the headers' kernel (Linux 7.2: numbers up to 471).
//! A number a table does not name (above its highest, or in one of its holes)
//! is answered with ENOSYS by the seccomp filter: a syscall a later kernel adds
//! stays unreachable until the tables are regenerated and the call reviewed.

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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The kernel release whose uapi headers the table was generated from.
    pub fn table_kernel(self) -> &'static str {
        match self {
            Arch::X86_64 => syscalls_x86_64::KERNEL,
            Arch::Aarch64 => syscalls_aarch64::KERNEL,
        }
    }

    /// Name-sorted `(name, number)` pairs.
    pub(crate) fn table(self) -> &'static [(&'static str, u32)] {
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
pub(crate) fn number(name: &str) -> Option<u32> {
    number_for(Arch::NATIVE, name)
}

/// The syscall number of `name` on `arch`. Names are the kernel's (`__NR_name`),
/// exact and lower case: `umount2`, `_sysctl`, `newfstatat`.
pub(crate) fn number_for(arch: Arch, name: &str) -> Option<u32> {
    entry_for(arch, name).map(|(_, nr)| nr)
}

/// The table's own `(name, number)` for `name` on `arch`: the name with a
/// `'static` lifetime, for profiles that keep it.
pub(crate) fn entry_for(arch: Arch, name: &str) -> Option<(&'static str, u32)> {
    let table = arch.table();
    table
        .binary_search_by(|&(entry, _)| entry.cmp(name))
        .ok()
        .map(|index| table[index])
}

/// The highest number `arch`'s table names.
pub fn highest(arch: Arch) -> u32 {
    arch.table().iter().map(|&(_, nr)| nr).max().unwrap_or(0)
}

/// The ranges `lo..=hi` below [`highest`] that `arch`'s table names nothing in,
/// in ascending order (x86_64: 337-423, where only x32 and i386 have calls).
pub fn unnamed_ranges(arch: Arch) -> Vec<(u32, u32)> {
    let mut numbers: Vec<u32> = arch.table().iter().map(|&(_, nr)| nr).collect();
    numbers.sort_unstable();
    let mut ranges = Vec::new();
    let mut next = 0;
    for nr in numbers {
        if nr > next {
            ranges.push((next, nr - 1));
        }
        next = nr + 1;
    }
    ranges
}

/// The native name of syscall number `nr` (a linear search of a few hundred
/// entries: called once per distinct denied syscall).
pub(crate) fn name(nr: u32) -> Option<&'static str> {
    name_for(Arch::NATIVE, nr)
}

/// The name of syscall number `nr` on `arch`.
pub(crate) fn name_for(arch: Arch, nr: u32) -> Option<&'static str> {
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
    fn highest_and_unnamed_ranges() {
        assert_eq!(highest(Arch::X86_64), 471);
        assert_eq!(highest(Arch::Aarch64), 471);
        assert_eq!(unnamed_ranges(Arch::X86_64), [(337, 423)]);
        assert_eq!(unnamed_ranges(Arch::Aarch64), [(244, 259), (295, 423)]);
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for nr in 0..=highest(arch) {
                let unnamed = unnamed_ranges(arch)
                    .iter()
                    .any(|&(lo, hi)| (lo..=hi).contains(&nr));
                assert_eq!(name_for(arch, nr).is_none(), unnamed, "{arch} {nr}");
            }
        }
    }

    /// A regenerated table must be reviewed call by call before it is committed:
    /// every new name is either denied or allowed with a reason in seccomp/policy.rs
    /// (`DEFAULT_EPERM`, `ALLOWED_SINCE_6_1`). Update these counts only then.
    #[test]
    fn table_sizes_are_the_reviewed_ones() {
        assert_eq!(
            Arch::X86_64.table().len(),
            385,
            "x86_64: review the new calls"
        );
        assert_eq!(
            Arch::Aarch64.table().len(),
            327,
            "aarch64: review the new calls"
        );
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
