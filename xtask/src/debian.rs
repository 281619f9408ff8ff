//! `cargo xtask rootfs debian`: a minimal Debian image made by debootstrap
//! from the mirror the host's own apt uses, cached in target/microbox/rootfs/
//! and rebuilt only when its inputs (suite, packages, mirror, debootstrap's
//! version) change.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const DEFAULT_SUITE: &str = "bookworm";
const LAYOUT_VERSION: u32 = 1;

/// What the image is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    pub suite: String,
    /// Extra packages (`--include`), comma separated as debootstrap takes them.
    pub include: Vec<String>,
}

impl Default for Inputs {
    fn default() -> Inputs {
        Inputs {
            suite: DEFAULT_SUITE.into(),
            include: Vec::new(),
        }
    }
}

/// `rootfs debian [--suite S] [--include P1,P2]`.
pub fn parse_args(args: &[String]) -> Result<Inputs, String> {
    let mut inputs = Inputs::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = |v: Option<&String>| {
            v.filter(|v| !v.is_empty() && !v.starts_with('-'))
                .cloned()
                .ok_or_else(|| format!("rootfs debian: {flag} needs a value"))
        };
        match flag.as_str() {
            "--suite" => inputs.suite = value(it.next())?,
            "--include" => inputs.include.extend(
                value(it.next())?
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            ),
            other => {
                return Err(format!(
                    "rootfs debian: unknown argument {other:?} (use [--suite SUITE] [--include PKG,...])"
                ))
            }
        }
    }
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-+.".contains(&b))
    };
    if !name_ok(&inputs.suite) {
        return Err(format!("rootfs debian: bad suite name {:?}", inputs.suite));
    }
    if let Some(bad) = inputs.include.iter().find(|p| !name_ok(p)) {
        return Err(format!("rootfs debian: bad package name {bad:?}"));
    }
    Ok(inputs)
}

/// The mirror of the first `deb` entry: a one-line `deb [opts] URI suite ...`
/// of a .list file, or the `URIs:` of a deb822 .sources stanza whose `Types:`
/// has `deb`.
pub fn first_mirror(text: &str, deb822: bool) -> Option<String> {
    if !deb822 {
        return text.lines().find_map(|l| {
            let mut words = l.split_whitespace();
            if words.next()? != "deb" {
                return None;
            }
            let mut uri = words.next()?;
            if uri.starts_with('[') {
                // Options may hold spaces: skip to the word after the one ending in ']'.
                while !uri.ends_with(']') {
                    uri = words.next()?;
                }
                uri = words.next()?;
            }
            Some(uri.to_string())
        });
    }
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let enabled = field("Enabled").is_none_or(|v| v != "no");
        let is_deb = field("Types")?.split_whitespace().any(|t| t == "deb");
        (enabled && is_deb).then(|| field("URIs")?.split_whitespace().next().map(str::to_string))?
    })
}

/// The host's mirror: /etc/apt/sources.list, then sources.list.d in name order.
pub fn host_mirror() -> Result<String, String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let name = file.to_string_lossy();
        let deb822 = name.ends_with(".sources");
        if !deb822 && !name.ends_with(".list") {
            continue;
        }
        if let Some(uri) = fs::read_to_string(&file)
            .ok()
            .and_then(|t| first_mirror(&t, deb822))
        {
            return Ok(uri);
        }
    }
    Err(
        "no deb line in /etc/apt/sources.list or /etc/apt/sources.list.d/ \
         (this needs a Debian or Ubuntu host)"
            .into(),
    )
}

fn debootstrap_version() -> Result<String, String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "debootstrap"])
        .output()
        .map_err(|e| format!("cannot run dpkg-query: {e}"))?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || v.is_empty() {
        return Err("debootstrap is not installed (apt-get install debootstrap)".into());
    }
    Ok(v)
}

/// Builds (or reuses) target/microbox/rootfs/debian.
pub fn image(cache: &Path, inputs: &Inputs) -> Result<PathBuf, String> {
    let mirror = host_mirror()?;
    let version = debootstrap_version()?;
    let root = cache.join("rootfs");
    let dest = root.join("debian");
    let stamp_path = root.join("debian.stamp");
    let stamp = format!(
        "layout {LAYOUT_VERSION}\nsuite {}\ninclude {}\nmirror {mirror}\ndebootstrap {version}\n",
        inputs.suite,
        inputs.include.join(",")
    );
    if dest.is_dir() && fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return Ok(dest);
    }
    if !crate::is_root() {
        return Err(
            "rootfs debian: debootstrap needs root (sudo cargo xtask rootfs debian)".into(),
        );
    }
    fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let tmp = root.join(format!(".debian.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let mut cmd = Command::new("debootstrap");
    cmd.arg("--variant=minbase");
    if !inputs.include.is_empty() {
        cmd.arg(format!("--include={}", inputs.include.join(",")));
    }
    cmd.arg(&inputs.suite).arg(&tmp).arg(&mirror);
    eprintln!("xtask: {cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run debootstrap (apt-get install debootstrap): {e}"))?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(&tmp);
        let log = String::from_utf8_lossy(&out.stderr);
        let last = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!(
            "debootstrap {} from {mirror} failed: {last}",
            inputs.suite
        ));
    }
    // Package caches are for installing, not for running: the image stays small.
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(entries) = fs::read_dir(tmp.join(dir)) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
    crate::rootfs::install_image(&tmp, &dest, &stamp_path, &stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_deb_mirror() {
        let list = "# comment\ndeb-src http://src.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n\
                    deb http://second.example/debian bookworm main\n";
        assert_eq!(
            first_mirror(list, false).as_deref(),
            Some("http://m.example/debian")
        );
        let sources = "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n\
                       Types: deb\nEnabled: no\nURIs: http://off.example/debian\n\n\
                       Types: deb deb-src\n# note\nURIs: http://deb.example/debian http://b.example\n\
                       Suites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(
            first_mirror(sources, true).as_deref(),
            Some("http://deb.example/debian")
        );
        assert_eq!(first_mirror("", true), None);
        assert_eq!(first_mirror("deb\n", false), None);
    }

    #[test]
    fn parses_suite_and_packages() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let i = parse_args(&v(&[
            "--include",
            "curl,ca-certificates",
            "--suite",
            "trixie",
        ]))
        .unwrap();
        assert_eq!(i.suite, "trixie");
        assert_eq!(i.include, ["curl", "ca-certificates"]);
        assert_eq!(parse_args(&[]).unwrap().suite, DEFAULT_SUITE);
        assert!(parse_args(&v(&["--suite"])).is_err());
        assert!(parse_args(&v(&["--suite", "a b"])).is_err());
        assert!(parse_args(&v(&["--include", "x;rm"])).is_err());
        assert!(parse_args(&v(&["--bogus"])).is_err());
    }
}
