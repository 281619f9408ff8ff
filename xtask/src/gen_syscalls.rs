//! `cargo xtask gen-syscalls`: regenerate microbox's syscall name tables.
//!
//! microbox needs syscall numbers by name for `--allow-syscall`/`--deny-syscall`
//! and its default deny list. seccompiler keeps its own table private, so we
//! generate ours once from the kernel's uapi headers (Debian package
//! linux-libc-dev) and commit the result:
//!
//! - x86_64 from `asm/unistd_64.h`: plain `#define __NR_name nr` lines.
//! - aarch64 from `asm-generic/unistd.h`, the table arm64 shares with other
//!   new architectures. It is written for the C preprocessor (`#if` on
//!   `__BITS_PER_LONG` and `__ARCH_WANT_*`, `__NR3264_*` aliases), so a tiny
//!   evaluator below resolves it with the macros arm64's own `asm/unistd.h`
//!   defines before including it. It knows only the constructs that header
//!   uses and fails loudly on anything else. (The libc crate's aarch64 `SYS_*`
//!   list was the other candidate; it lacks `io_pgetevents`.)
//!
//! Output: `src/security/syscalls_x86_64.rs` and `src/security/syscalls_aarch64.rs`,
//! each a name-sorted `&[(&str, u32)]` so lookups can binary-search.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

const X86_64_HEADER: &str = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
const GENERIC_HEADER: &str = "/usr/include/asm-generic/unistd.h";
/// What arm64's uapi `asm/unistd.h` defines before including the generic table
/// (arch/arm64/include/uapi/asm/unistd.h), plus its word size.
const AARCH64_DEFINES: [&str; 6] = [
    "__ARCH_WANT_RENAMEAT",
    "__ARCH_WANT_NEW_STAT",
    "__ARCH_WANT_SET_GET_RLIMIT",
    "__ARCH_WANT_TIME32_SYSCALLS",
    "__ARCH_WANT_SYS_CLONE3",
    "__ARCH_WANT_MEMFD_SECRET",
];
const AARCH64_BITS_PER_LONG: u32 = 64;

/// Regenerate both tables under `repo_root/src/security/`.
pub fn run(repo_root: &Path) -> Result<(), String> {
    let out_dir = repo_root.join("src/security");
    let source_note = "(kernel uapi headers, Debian package linux-libc-dev)";

    let x86_64 = parse_unistd_header(&read(Path::new(X86_64_HEADER))?);
    check_table(
        "x86_64",
        X86_64_HEADER,
        &x86_64,
        &[("read", 0), ("getpid", 39)],
    )?;
    let text = render("x86_64", &format!("{X86_64_HEADER} {source_note}"), &x86_64);
    write(&out_dir.join("syscalls_x86_64.rs"), &text)?;

    let aarch64 = resolve_generic_header(
        &read(Path::new(GENERIC_HEADER))?,
        &AARCH64_DEFINES,
        AARCH64_BITS_PER_LONG,
    )
    .map_err(|e| format!("cannot resolve {GENERIC_HEADER} for aarch64: {e}"))?;
    check_table(
        "aarch64",
        GENERIC_HEADER,
        &aarch64,
        &[
            ("io_setup", 0),
            ("renameat", 38),
            ("getpid", 172),
            ("fstat", 80),
            ("clone3", 435),
        ],
    )?;
    let source = format!(
        "{GENERIC_HEADER} {source_note},\n//! resolved as arm64 includes it: __BITS_PER_LONG={AARCH64_BITS_PER_LONG} \
         and the\n//! __ARCH_WANT_* macros of AARCH64_DEFINES in the generator"
    );
    write(
        &out_dir.join("syscalls_aarch64.rs"),
        &render("aarch64", &source, &aarch64),
    )?;

    println!(
        "gen-syscalls: wrote {} x86_64 and {} aarch64 names to {}",
        x86_64.len(),
        aarch64.len(),
        out_dir.display()
    );
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
        if let (Some(name), Ok(nr)) = (macro_name.strip_prefix("__NR_"), value.parse::<u32>()) {
            table.insert(name.to_string(), nr);
        }
    }
    table
}

/// The `__NR_name` numbers of asm-generic/unistd.h under the `#if`s that hold
/// for an architecture that defines `defines` and has `bits_per_long`-bit longs.
fn resolve_generic_header(
    text: &str,
    defines: &[&str],
    bits_per_long: u32,
) -> Result<BTreeMap<String, u32>, String> {
    let mut env = Macros {
        defined: defines.iter().map(|d| d.to_string()).collect(),
        numbers: BTreeMap::new(),
        bits_per_long,
    };
    // One entry per open conditional: (enclosing text is live, this branch is live).
    let mut open: Vec<(bool, bool)> = Vec::new();
    let live = |open: &[(bool, bool)]| match open.last() {
        Some(&(outer, branch)) => outer && branch,
        None => true,
    };

    for (index, line) in strip_comments(&text.replace("\\\n", " "))
        .lines()
        .enumerate()
    {
        let at = |e: String| format!("line {}: {e}", index + 1);
        let Some(directive) = line.trim().strip_prefix('#') else {
            continue;
        };
        let directive = directive.trim();
        let (keyword, rest) = directive
            .split_once(char::is_whitespace)
            .unwrap_or((directive, ""));
        let rest = rest.trim();
        match keyword {
            "if" | "ifdef" | "ifndef" => {
                let outer = live(&open);
                let branch = outer
                    && match keyword {
                        "ifdef" => env.is_defined(rest),
                        "ifndef" => !env.is_defined(rest),
                        _ => env.eval(rest).map_err(at)? != 0,
                    };
                open.push((outer, branch));
            }
            "else" => {
                let (outer, branch) = open.pop().ok_or_else(|| at("#else without #if".into()))?;
                open.push((outer, outer && !branch));
            }
            "endif" => {
                open.pop().ok_or_else(|| at("#endif without #if".into()))?;
            }
            // Unused by the header; refuse rather than guess which branch is live.
            "elif" => return Err(at("unsupported directive #elif".into())),
            _ if !live(&open) => {}
            "include" => {} // only asm/bitsperlong.h, replaced by `bits_per_long`
            "undef" => {
                env.defined.remove(rest);
                env.numbers.remove(rest);
            }
            "define" => env.define(rest).map_err(at)?,
            _ => return Err(at(format!("unsupported directive #{keyword}"))),
        }
    }
    if !open.is_empty() {
        return Err("unterminated #if".to_string());
    }
    Ok(env
        .numbers
        .into_iter()
        .filter_map(|(name, nr)| Some((name.strip_prefix("__NR_")?.to_string(), nr)))
        // Bookkeeping macros, not system calls.
        .filter(|(name, _)| name != "syscalls" && name != "arch_specific_syscall")
        .collect())
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start..].find("*/") {
            Some(end) => {
                // Keep line numbers of error messages right.
                out.extend(rest[start..start + end].chars().filter(|&c| c == '\n'));
                rest = &rest[start + end + 2..];
            }
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// The preprocessor state that matters for the syscall table.
struct Macros {
    defined: BTreeSet<String>,
    /// Every defined macro whose value is (or aliases) a plain number.
    numbers: BTreeMap<String, u32>,
    bits_per_long: u32,
}

impl Macros {
    fn is_defined(&self, name: &str) -> bool {
        name == "__BITS_PER_LONG" || self.defined.contains(name)
    }

    fn define(&mut self, rest: &str) -> Result<(), String> {
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '(')
            .unwrap_or(rest.len());
        let (name, value) = (&rest[..name_end], rest[name_end..].trim());
        self.defined.insert(name.to_string());
        if !name.starts_with("__NR") || rest[name_end..].starts_with('(') {
            return Ok(());
        }
        let nr = match value.parse::<u32>() {
            Ok(nr) => nr,
            Err(_) => *self
                .numbers
                .get(value)
                .ok_or_else(|| format!("{name} is defined as {value:?}, not a known number"))?,
        };
        self.numbers.insert(name.to_string(), nr);
        Ok(())
    }

    /// A `#if` expression of the forms the header uses: `defined(X)`, `A == B`,
    /// `A != B`, `!`, `&&`, `||`, with C's precedence (`||` below `&&`).
    fn eval(&self, expr: &str) -> Result<u32, String> {
        let spaced = ["(", ")", "!", "==", "!=", "&&", "||"]
            .iter()
            .fold(expr.replace("!=", " ne "), |s, op| {
                s.replace(op, &format!(" {op} "))
            })
            .replace(" ne ", " != ");
        let tokens: Vec<&str> = spaced.split_whitespace().collect();
        let mut pos = 0;
        let value = self.or(&tokens, &mut pos)?;
        match tokens.get(pos) {
            None => Ok(value),
            Some(extra) => Err(format!("cannot evaluate #if {expr}: unexpected {extra:?}")),
        }
    }

    fn or(&self, t: &[&str], pos: &mut usize) -> Result<u32, String> {
        let mut value = self.and(t, pos)?;
        while t.get(*pos) == Some(&"||") {
            *pos += 1;
            let rhs = self.and(t, pos)?;
            value = u32::from(value != 0 || rhs != 0);
        }
        Ok(value)
    }

    fn and(&self, t: &[&str], pos: &mut usize) -> Result<u32, String> {
        let mut value = self.comparison(t, pos)?;
        while t.get(*pos) == Some(&"&&") {
            *pos += 1;
            let rhs = self.comparison(t, pos)?;
            value = u32::from(value != 0 && rhs != 0);
        }
        Ok(value)
    }

    fn comparison(&self, t: &[&str], pos: &mut usize) -> Result<u32, String> {
        let lhs = self.unary(t, pos)?;
        let op = t.get(*pos).copied();
        if op != Some("==") && op != Some("!=") {
            return Ok(lhs);
        }
        *pos += 1;
        let rhs = self.unary(t, pos)?;
        Ok(u32::from((lhs == rhs) == (op == Some("=="))))
    }

    fn unary(&self, t: &[&str], pos: &mut usize) -> Result<u32, String> {
        let token = *t.get(*pos).ok_or("#if expression ends early")?;
        *pos += 1;
        match token {
            "!" => Ok(u32::from(self.unary(t, pos)? == 0)),
            "defined" => {
                let parenthesized = t.get(*pos) == Some(&"(");
                let name = *t
                    .get(*pos + usize::from(parenthesized))
                    .ok_or("defined without a name")?;
                *pos += 1 + 2 * usize::from(parenthesized);
                if parenthesized && t.get(*pos - 1) != Some(&")") {
                    return Err(format!("defined({name} is not closed"));
                }
                Ok(u32::from(self.is_defined(name)))
            }
            "__BITS_PER_LONG" => Ok(self.bits_per_long),
            _ if token.starts_with(|c: char| c.is_ascii_digit()) => {
                token.parse().map_err(|_| format!("bad number {token:?}"))
            }
            _ if token.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic()) => {
                // C semantics: an undefined identifier in #if is 0.
                Ok(self.numbers.get(token).copied().unwrap_or(0))
            }
            _ => Err(format!("unexpected {token:?} in #if expression")),
        }
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

fn render(arch: &str, source: &str, table: &BTreeMap<String, u32>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "//! {arch} system call numbers by name, sorted by name for binary search.\n\
         //!\n\
         //! @generated by `cargo xtask gen-syscalls` (xtask/src/gen_syscalls.rs) from\n\
         //! {source}.\n\
         //! Do not edit by hand: rerun the generator and commit its output.\n\n\
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
    fn resolves_generic_header_conditionals_and_aliases() {
        let header = "#include <asm/bitsperlong.h>\n\
            #ifndef __SYSCALL\n#define __SYSCALL(x, y)\n#endif\n\
            #define __NR_io_setup 0\n\
            #ifdef __ARCH_WANT_RENAMEAT\n#define __NR_renameat 38\n#endif /* a\n comment */\n\
            #ifdef __ARCH_WANT_OTHER\n#define __NR_other 7\n#else\n#define __NR_notother 8\n#endif\n\
            #if defined(__ARCH_WANT_TIME32_SYSCALLS) || __BITS_PER_LONG != 32\n\
            #define __NR_futex 98\n#endif\n\
            #if defined(__SYSCALL_COMPAT) || __BITS_PER_LONG == 32\n#define __NR_compat 300\n#endif\n\
            #define __NR3264_fcntl 25\n\
            #undef __NR_syscalls\n#define __NR_syscalls 451\n\
            #if __BITS_PER_LONG == 64 && !defined(__SYSCALL_COMPAT)\n\
            #define __NR_fcntl __NR3264_fcntl\n#else\n#define __NR_fcntl64 __NR3264_fcntl\n#endif\n";
        let table =
            resolve_generic_header(header, &["__ARCH_WANT_RENAMEAT"], 64).expect("resolves");
        let expected: BTreeMap<String, u32> = [
            ("fcntl", 25),
            ("futex", 98),
            ("io_setup", 0),
            ("notother", 8),
            ("renameat", 38),
        ]
        .into_iter()
        .map(|(n, nr)| (n.to_string(), nr))
        .collect();
        assert_eq!(table, expected);

        let table32 = resolve_generic_header(header, &[], 32).expect("resolves");
        assert_eq!(table32.get("fcntl64"), Some(&25));
        assert_eq!(table32.get("compat"), Some(&300));
        assert_eq!(table32.get("futex"), None);
        assert_eq!(table32.get("renameat"), None);
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        assert!(resolve_generic_header("#if X\n#elif Y\n#endif\n", &[], 64).is_err());
        assert!(resolve_generic_header("#define __NR_x __NR3264_missing\n", &[], 64).is_err());
        assert!(resolve_generic_header("#if 1\n", &[], 64).is_err());
        assert!(resolve_generic_header("#if defined(X) +\n#endif\n", &[], 64).is_err());
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
        let text = render("x86_64", "test", &table);
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
