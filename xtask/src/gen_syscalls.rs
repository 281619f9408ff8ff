//! `cargo xtask gen-syscalls [--headers DIR]`: regenerate microbox's syscall name tables.
//!
//! microbox needs syscall numbers by name for `--allow-syscall`/`--deny-syscall`
//! and its default deny list, and the highest number and the holes of each table
//! for the seccomp filter's "unknown number" answer. seccompiler keeps its own
//! table private, so we generate ours from the kernel's uapi headers and commit
//! the result. Both architectures come from the plain `#define __NR_name nr`
//! header the kernel generates from its syscall table (`asm/unistd_64.h`; arm64
//! ships one since Linux 6.11, when it moved to the common syscall.tbl).
//!
//! DIR is an include directory with both multiarch trees, `x86_64-linux-gnu/`
//! and `aarch64-linux-gnu/`: Debian's linux-libc-dev has had both since 6.x
//! (the committed tables come from sid's 7.2.13-1; Debian 12's own package
//! is Linux 6.1 and x86_64 only). See the README for the download.
//!
//! Output: `src/security/syscalls_x86_64.rs` and `src/security/syscalls_aarch64.rs`,
//! each a name-sorted `&[(&str, u32)]` so lookups can binary-search.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// `(name, number)` pairs that a generated table must contain.
type Known = &'static [(&'static str, u32)];

/// Each architecture: its multiarch directory and numbers that must come out
/// as they are (a header that changed shape must fail here, not be committed).
const ARCHES: [(&str, &str, Known); 2] = [
    (
        "x86_64",
        "x86_64-linux-gnu",
        &[("read", 0), ("getpid", 39), ("clone3", 435)],
    ),
    (
        "aarch64",
        "aarch64-linux-gnu",
        &[
            ("io_setup", 0),
            ("renameat", 38),
            ("getpid", 172),
            ("fstat", 80),
            ("clone3", 435),
        ],
    ),
];

/// Regenerate both tables under `repo_root/src/security/`.
pub fn run(repo_root: &Path, args: &[String]) -> Result<(), String> {
    let headers = match args {
        [] => PathBuf::from("/usr/include"),
        [flag, dir] if flag == "--headers" => PathBuf::from(dir),
        _ => return Err("usage: cargo xtask gen-syscalls [--headers DIR]".to_string()),
    };
    let out_dir = repo_root.join("src/security");
    let kernel = kernel_version(&read(&headers.join("linux/version.h"))?)?;
    for (arch, triple, known) in ARCHES {
        let header = headers.join(triple).join("asm/unistd_64.h");
        let table = parse_unistd_header(&read(&header)?);
        let source = header.display().to_string();
        check_table(arch, &source, &table, known)?;
        let shown = format!("{triple}/asm/unistd_64.h (uapi headers of Linux {kernel})");
        let text = render(arch, &shown, &kernel, &table);
        write(&out_dir.join(format!("syscalls_{arch}.rs")), &text)?;
        println!(
            "gen-syscalls: wrote {} {arch} names (highest {}) to {}",
            table.len(),
            table.values().max().copied().unwrap_or(0),
            out_dir.display()
        );
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `#define __NR_name 123` lines; anything else (guards, aliases) is skipped.
fn parse_unistd_header(text: &str) -> BTreeMap<String, u32> {
    parse_defines(text, "__NR_")
}

/// `#define PREFIXname 123` lines as `name -> 123`.
fn parse_defines(text: &str, prefix: &str) -> BTreeMap<String, u32> {
    let mut table = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#define") {
            continue;
        }
        let (Some(macro_name), Some(value), None) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if let (Some(name), Ok(nr)) = (macro_name.strip_prefix(prefix), value.parse::<u32>()) {
            table.insert(name.to_string(), nr);
        }
    }
    table
}

/// `MAJOR.PATCHLEVEL` from linux/version.h: the kernel the tables describe.
fn kernel_version(text: &str) -> Result<String, String> {
    let table = parse_defines(text, "LINUX_VERSION_");
    match (table.get("MAJOR"), table.get("PATCHLEVEL")) {
        (Some(major), Some(minor)) => Ok(format!("{major}.{minor}")),
        _ => Err("linux/version.h has no LINUX_VERSION_MAJOR/PATCHLEVEL".to_string()),
    }
}

/// Catch a source that changed shape (parsing nothing, or garbage) before it is committed.
fn check_table(
    arch: &str,
    source: &str,
    table: &BTreeMap<String, u32>,
    known: &[(&str, u32)],
) -> Result<(), String> {
    if table.len() < 250 {
        return Err(format!(
            "{arch} syscall table from {source} has only {} entries; the source format changed?",
            table.len()
        ));
    }
    for &(name, nr) in known {
        if table.get(name) != Some(&nr) {
            return Err(format!(
                "{arch} syscall table from {source}: expected {name} = {nr}, found {:?}",
                table.get(name)
            ));
        }
    }
    let mut seen = BTreeMap::new();
    for (name, &nr) in table {
        if let Some(other) = seen.insert(nr, name) {
            return Err(format!(
                "{arch} syscall table from {source}: {other} and {name} share number {nr}"
            ));
        }
    }
    Ok(())
}

fn render(arch: &str, source: &str, kernel: &str, table: &BTreeMap<String, u32>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "//! {arch} system call numbers by name, sorted by name for binary search.\n\
         //!\n\
         //! @generated by `cargo xtask gen-syscalls` (xtask/src/gen_syscalls.rs) from\n\
         //! {source}.\n\
         //! Do not edit by hand: rerun the generator and commit its output.\n\n\
         /// The kernel whose headers the table comes from.\n\
         pub(super) const KERNEL: &str = \"{kernel}\";\n\n\
         pub(super) const TABLE: &[(&str, u32)] = &[\n"
    ));
    // BTreeMap<String, _> iterates in byte order, which is what `str::cmp` and
    // therefore `binary_search_by` use.
    for (name, nr) in table {
        out.push_str(&format!("    (\"{name}\", {nr}),\n"));
    }
    out.push_str("];\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_defines_only() {
        let table = parse_unistd_header(
            "#ifndef _ASM_UNISTD_64_H\n#define _ASM_UNISTD_64_H\n\n#define __NR_read 0\n\
             #define __NR_write 1\n#define __NR_alias __NR_read\n#endif\n",
        );
        let expected: BTreeMap<String, u32> = [("read".to_string(), 0), ("write".to_string(), 1)]
            .into_iter()
            .collect();
        assert_eq!(table, expected);
    }

    #[test]
    fn renders_sorted_rows() {
        let table: BTreeMap<String, u32> = [
            ("write".to_string(), 1),
            ("_sysctl".to_string(), 156),
            ("read".to_string(), 0),
        ]
        .into_iter()
        .collect();
        let text = render("x86_64", "test", "7.2", &table);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("    (")).collect();
        assert_eq!(
            rows,
            [
                "    (\"_sysctl\", 156),",
                "    (\"read\", 0),",
                "    (\"write\", 1),"
            ]
        );
    }
}
