//! Build script (Cargo.toml `build = "src/build.rs"`): names what `--version`
//! prints beside the version, the git commit and the target triple. A build
//! outside a git checkout (a source archive) says `unknown`, or what
//! MICROBOX_COMMIT says. Nothing else: no code generation, no dependencies.

use std::path::Path;
use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=MICROBOX_TARGET={target}");
    println!("cargo:rerun-if-env-changed=MICROBOX_COMMIT");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let commit = std::env::var("MICROBOX_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git_commit(Path::new(&dir)))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MICROBOX_COMMIT={commit}");
}

/// The short commit of HEAD, and the files whose change means a new one.
fn git_commit(dir: &Path) -> Option<String> {
    let git = dir.join(".git");
    println!("cargo:rerun-if-changed={}", git.join("HEAD").display());
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed={}", git.join(reference).display());
        }
    }
    println!(
        "cargo:rerun-if-changed={}",
        git.join("packed-refs").display()
    );
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--short=7", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}
