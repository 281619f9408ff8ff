//! The Debian packages a command needs, installed by xtask itself when they
//! are missing: one line says what it installs; without root or without apt
//! the line is the exact command to run instead.

use std::process::{Command, Stdio};

/// `cargo xtask quickstart`: the image's busybox.
pub const QUICKSTART: &[&str] = &["busybox-static"];

/// `cargo xtask test`, every layer (the same list .ci/run installs).
pub const TEST: &[&str] = &[
    "busybox-static",
    "qemu-system-x86",
    "linux-image-amd64",
    "xz-utils",
    "bubblewrap",
    "crun",
    "nftables",
    "iproute2",
    "file",
    "strace",
    "conntrack",
    "podman",
    "conmon",
    "containerd",
    "runc",
    "uidmap",
    "zsh",
    "fish",
    "qemu-system-arm",
    "binutils",
    "kmod",
    "debootstrap",
];

/// Of `wanted`, those dpkg does not list as installed (`dpkg-query -W` output).
pub fn missing_from(wanted: &[&str], status: &str) -> Vec<String> {
    wanted
        .iter()
        .filter(|p| {
            !status.lines().any(|l| {
                l.split_once(' ').is_some_and(|(name, st)| {
                    name.split(':').next() == Some(**p)
                        && st.ends_with("installed")
                        && !st.contains("not-installed")
                        && !st.contains("config-files")
                })
            })
        })
        .map(|p| (*p).to_string())
        .collect()
}

/// What to do about missing packages, decided from the facts alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Install(Vec<String>),
    /// Cannot install here: the line that says what to run.
    Tell(String),
}

pub fn decide(missing: Vec<String>, root: bool, apt: bool) -> Action {
    if missing.is_empty() {
        return Action::Nothing;
    }
    let list = missing.join(" ");
    match (apt, root) {
        (true, true) => Action::Install(missing),
        (true, false) => Action::Tell(format!(
            "missing packages: {list} (run: sudo apt-get install {list})"
        )),
        (false, _) => Action::Tell(format!(
            "missing Debian packages {list}, and this host has no apt-get: install \
             their equivalents with its package manager"
        )),
    }
}

fn dpkg_status(wanted: &[&str]) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Status}\\n"])
        .args(wanted)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs what of `wanted` is missing. `Err` is the one line to show when
/// that cannot be done here.
pub fn ensure(wanted: &[&str]) -> Result<(), String> {
    let Some(status) = dpkg_status(wanted) else {
        return match decide(wanted.iter().map(|p| p.to_string()).collect(), false, false) {
            Action::Tell(line) => Err(line),
            _ => Ok(()),
        };
    };
    let apt = std::path::Path::new("/usr/bin/apt-get").exists();
    match decide(missing_from(wanted, &status), crate::is_root(), apt) {
        Action::Nothing => Ok(()),
        Action::Tell(line) => Err(line),
        Action::Install(pkgs) => {
            eprintln!(
                "xtask: installing {} (apt-get install -y --no-install-recommends)",
                pkgs.join(" ")
            );
            let quiet = |cmd: &mut Command| -> Result<(), String> {
                let out = cmd
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .output()
                    .map_err(|e| format!("cannot run apt-get: {e}"))?;
                if out.status.success() {
                    return Ok(());
                }
                let err = String::from_utf8_lossy(&out.stderr);
                Err(format!(
                    "apt-get failed: {}",
                    err.lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("")
                ))
            };
            quiet(Command::new("apt-get").args(["update", "-q"]))?;
            quiet(
                Command::new("apt-get")
                    .args(["install", "-y", "-q", "--no-install-recommends"])
                    .args(&pkgs),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_packages_and_what_to_do() {
        let status = "bubblewrap install ok installed\ncrun deinstall ok config-files\n\
                      libc6:amd64 install ok installed\n";
        let missing = missing_from(&["bubblewrap", "crun", "libc6", "podman"], status);
        assert_eq!(missing, ["crun", "podman"]);
        assert_eq!(decide(Vec::new(), false, false), Action::Nothing);
        assert_eq!(
            decide(missing.clone(), true, true),
            Action::Install(missing.clone())
        );
        assert_eq!(
            decide(missing.clone(), false, true),
            Action::Tell(
                "missing packages: crun podman (run: sudo apt-get install crun podman)".into()
            )
        );
        let Action::Tell(line) = decide(missing, true, false) else {
            panic!("no apt-get must tell");
        };
        assert!(line.contains("no apt-get"), "{line}");
    }

    #[test]
    fn test_list_matches_ci() {
        let ci =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/run")).unwrap();
        for p in TEST {
            assert!(ci.contains(p), ".ci/run does not install {p}");
        }
    }
}
