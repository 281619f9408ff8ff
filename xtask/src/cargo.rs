//! Driving cargo: static release builds and test executables, found through
//! cargo's JSON messages (never by globbing target/, which holds stale builds).

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const MUSL: &str = "x86_64-unknown-linux-musl";
pub const GNU: &str = "x86_64-unknown-linux-gnu";
pub const AARCH64_MUSL: &str = "aarch64-unknown-linux-musl";

/// How a static executable is produced on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticTarget {
    /// The rustup musl target is installed: static by default.
    Musl,
    /// No musl target: glibc with `+crt-static`.
    GnuCrtStatic,
    /// aarch64 musl, cross-built: Rust's own rust-lld links it (musl's crt
    /// objects and libc ship with the rustup target), no cross compiler.
    Aarch64Musl,
}

impl StaticTarget {
    /// MICROBOX_BUILD_TARGET=musl|gnu forces a choice (to test the fallback).
    pub fn detect() -> StaticTarget {
        match std::env::var("MICROBOX_BUILD_TARGET").as_deref() {
            Ok("gnu") => return StaticTarget::GnuCrtStatic,
            Ok("musl") => return StaticTarget::Musl,
            _ => {}
        }
        if musl_installed() {
            StaticTarget::Musl
        } else {
            StaticTarget::GnuCrtStatic
        }
    }

    /// `--target aarch64|x86_64` of `cargo xtask build` and `dist`.
    pub fn for_arch(arch: &str) -> Result<StaticTarget, String> {
        match arch {
            "x86_64" => Ok(StaticTarget::detect()),
            "aarch64" => {
                if !target_installed(AARCH64_MUSL) {
                    return Err(format!(
                        "the {AARCH64_MUSL} standard library is not installed: \
                         rustup target add {AARCH64_MUSL}"
                    ));
                }
                Ok(StaticTarget::Aarch64Musl)
            }
            other => Err(format!("unknown target {other:?} (x86_64 or aarch64)")),
        }
    }

    pub fn triple(self) -> &'static str {
        match self {
            StaticTarget::Musl => MUSL,
            StaticTarget::GnuCrtStatic => GNU,
            StaticTarget::Aarch64Musl => AARCH64_MUSL,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            StaticTarget::Musl => "musl (x86_64-unknown-linux-musl)",
            StaticTarget::GnuCrtStatic => "glibc +crt-static",
            StaticTarget::Aarch64Musl => "musl (aarch64-unknown-linux-musl, rust-lld)",
        }
    }

    /// Adds the target and, for glibc, the crt-static flag. With an explicit
    /// `--target`, RUSTFLAGS reach only target crates, not build scripts.
    pub fn apply(self, cmd: &mut Command) {
        cmd.arg("--target").arg(self.triple());
        if self == StaticTarget::Aarch64Musl {
            const LINKER: &str = "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER";
            if std::env::var_os(LINKER).is_none() {
                cmd.env(LINKER, "rust-lld");
            }
        }
        if self == StaticTarget::GnuCrtStatic {
            const FLAG: &str = "-C target-feature=+crt-static";
            if let Ok(encoded) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
                let sep = if encoded.is_empty() { "" } else { "\x1f" };
                cmd.env(
                    "CARGO_ENCODED_RUSTFLAGS",
                    format!("{encoded}{sep}-C\x1ftarget-feature=+crt-static"),
                );
            } else {
                let old = std::env::var("RUSTFLAGS").unwrap_or_default();
                cmd.env("RUSTFLAGS", format!("{old} {FLAG}").trim());
            }
        }
    }
}

/// The musl standard library lives in the sysroot when the target is installed;
/// asking rustc works with and without rustup.
fn musl_installed() -> bool {
    target_installed(MUSL)
}

fn target_installed(triple: &str) -> bool {
    let Ok(out) = Command::new(rustc()).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(triple)
        .join("lib")
        .is_dir()
}

fn rustc() -> String {
    std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into())
}

/// The cargo that started us (`cargo xtask` sets CARGO), so toolchain overrides hold.
pub fn cargo(repo: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(repo);
    cmd
}

/// One artifact line of cargo's JSON output.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub target_name: String,
    pub kinds: Vec<String>,
    pub profile_test: bool,
    pub executable: Option<PathBuf>,
}

/// Decodes a `compiler-artifact` message; other messages and non-JSON lines give `None`.
pub fn parse_artifact(line: &str) -> Option<Artifact> {
    if !line.starts_with('{') {
        return None;
    }
    let msg: Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-artifact" {
        return None;
    }
    Some(Artifact {
        target_name: msg["target"]["name"].as_str()?.to_string(),
        kinds: strings(msg["target"].get("kind")?),
        profile_test: msg["profile"]["test"].as_bool().unwrap_or(false),
        executable: msg["executable"].as_str().map(PathBuf::from),
    })
}

/// The strings of a JSON array (nothing for anything else).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Runs a cargo command whose stdout carries JSON messages; diagnostics are
/// rendered on the inherited stderr so the user sees compile errors as usual.
pub fn run_json(mut cmd: Command) -> Result<Vec<Artifact>, String> {
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let mut artifacts = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("reading cargo's output: {e}"))?;
            artifacts.extend(parse_artifact(&line));
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo: {e}"))?;
    if !status.success() {
        return Err(format!("{shown} failed ({status})"));
    }
    Ok(artifacts)
}

/// Builds the named binary packages static and in release mode; returns
/// binary name -> executable path.
pub fn build_static_bins(
    repo: &Path,
    target: StaticTarget,
    packages: &[&str],
) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut cmd = cargo(repo);
    cmd.args(["build", "--release"]);
    target.apply(&mut cmd);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let mut found = BTreeMap::new();
    for a in run_json(cmd)? {
        if let (true, Some(exe)) = (a.kinds.iter().any(|k| k == "bin"), a.executable) {
            found.insert(a.target_name, exe);
        }
    }
    for p in packages {
        if !found.contains_key(*p) {
            return Err(format!("cargo built no binary named {p:?}"));
        }
    }
    Ok(found)
}

/// The package and the one integration-test target (tests/it/main.rs) that
/// both privileged legs run.
pub const PACKAGE: &str = "microbox";
pub const INTEGRATION_TESTS: &str = "it";

/// Builds the integration-test executable without running it; returns its path.
pub fn build_integration_tests(
    repo: &Path,
    target: Option<StaticTarget>,
) -> Result<PathBuf, String> {
    let mut cmd = cargo(repo);
    cmd.args([
        "test",
        "--no-run",
        "-p",
        PACKAGE,
        "--test",
        INTEGRATION_TESTS,
    ]);
    if let Some(t) = target {
        t.apply(&mut cmd);
        // Full debuginfo is three quarters of a test executable, and every byte
        // is unpacked and copied inside the TCG guest; line tables keep the
        // backtraces useful. The static target has its own target/ subdirectory,
        // so this does not force rebuilds of the host's debug builds.
        cmd.env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
            .env("CARGO_PROFILE_TEST_DEBUG", "line-tables-only");
    }
    integration_test_executable(run_json(cmd)?)
}

/// The executable of the integration-test target among cargo's artifacts.
fn integration_test_executable(artifacts: Vec<Artifact>) -> Result<PathBuf, String> {
    artifacts
        .into_iter()
        .filter(|a| a.profile_test && a.target_name == INTEGRATION_TESTS)
        .filter(|a| a.kinds.iter().any(|k| k == "test"))
        .find_map(|a| a.executable)
        .ok_or_else(|| format!("cargo built no test executable named {INTEGRATION_TESTS:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_test_artifacts_only() {
        let test = r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"isolation","test":true},"profile":{"test":true},"executable":"/t/isolation-1f"}"#;
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"microbox","test":true},"profile":{"test":false},"executable":null}"#;
        let other = r#"{"reason":"build-finished","success":true}"#;
        let a = parse_artifact(test).unwrap();
        assert_eq!(a.target_name, "isolation");
        assert!(a.profile_test);
        assert_eq!(a.executable, Some(PathBuf::from("/t/isolation-1f")));
        let b = parse_artifact(lib).unwrap();
        assert!(!b.profile_test);
        assert_eq!(b.executable, None);
        assert_eq!(parse_artifact(other), None);
        assert_eq!(parse_artifact("   Compiling foo"), None);
    }

    #[test]
    fn finds_the_integration_test_executable() {
        let it = r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"it","test":true},"profile":{"test":true},"executable":"/t/it-1f"}"#;
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"microbox","test":true},"profile":{"test":true},"executable":"/t/microbox-2e"}"#;
        let found: Vec<Artifact> = [lib, it].iter().filter_map(|l| parse_artifact(l)).collect();
        assert_eq!(
            integration_test_executable(found),
            Ok(PathBuf::from("/t/it-1f"))
        );
        let none: Vec<Artifact> = parse_artifact(lib).into_iter().collect();
        assert!(integration_test_executable(none).is_err());
    }

    #[test]
    fn crt_static_flag_is_appended() {
        let mut cmd = Command::new("true");
        StaticTarget::GnuCrtStatic.apply(&mut cmd);
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(args, ["--target", GNU]);
        let flags = cmd
            .get_envs()
            .find(|(k, _)| *k == "RUSTFLAGS" || *k == "CARGO_ENCODED_RUSTFLAGS")
            .and_then(|(_, v)| v)
            .unwrap();
        assert!(flags
            .to_string_lossy()
            .contains("target-feature=+crt-static"));
    }
}
