//! `cargo xtask dist`: the release archives. For each target,
//! `microbox-VERSION-ARCH-linux-musl.tar.gz` holding the static binary, the
//! man page, the completions, README.md and LICENSE in an install tree
//! (`tar -xzf ... --strip-components=1 -C /usr/local`), and SHA256SUMS.
//!
//! Reproducible: two runs from the same commit give the same bytes. The
//! build gets SOURCE_DATE_EPOCH (the commit's time) and the commit, and
//! remaps the checkout's, the target directory's and cargo's paths (panic
//! locations name source files); the archive is GNU tar with sorted names,
//! owner 0:0, modes fixed and every time the commit's, compressed by
//! `gzip -n` (no name, no time).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cargo::{self, StaticTarget};

/// The archive's name for `triple`: `microbox-0.2.0-x86_64-linux-musl`.
fn stem(triple: &str) -> String {
    let arch = triple.split('-').next().unwrap_or(triple);
    format!("microbox-{}-{arch}-linux-musl", microbox::VERSION)
}

/// Where each file goes in the archive, below its top directory.
fn layout(binary: &Path, docs: &Path, repo: &Path) -> Vec<(PathBuf, String, u32)> {
    vec![
        (binary.to_path_buf(), "bin/microbox".into(), 0o755),
        (
            docs.join("man/man1/microbox.1"),
            "share/man/man1/microbox.1".into(),
            0o644,
        ),
        (
            docs.join("completions/microbox.bash"),
            "share/bash-completion/completions/microbox".into(),
            0o644,
        ),
        (
            docs.join("completions/_microbox"),
            "share/zsh/site-functions/_microbox".into(),
            0o644,
        ),
        (
            docs.join("completions/microbox.fish"),
            "share/fish/vendor_completions.d/microbox.fish".into(),
            0o644,
        ),
        (
            repo.join("README.md"),
            "share/doc/microbox/README.md".into(),
            0o644,
        ),
        (
            repo.join("LICENSE"),
            "share/doc/microbox/LICENSE".into(),
            0o644,
        ),
    ]
}

struct Opts {
    arches: Vec<String>,
    out: Option<PathBuf>,
    target_dir: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut opts = Opts {
        arches: Vec::new(),
        out: None,
        target_dir: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("dist: {arg} needs a value"))
        };
        match arg.as_str() {
            "--target" => opts.arches.push(value()?),
            "--out" => opts.out = Some(PathBuf::from(value()?)),
            "--target-dir" => opts.target_dir = Some(PathBuf::from(value()?)),
            other => {
                return Err(format!(
                    "dist: unknown argument {other:?} (use [--target x86_64|aarch64]... \
                     [--out DIR] [--target-dir DIR])"
                ))
            }
        }
    }
    if opts.arches.is_empty() {
        opts.arches = vec!["x86_64".into(), "aarch64".into()];
    }
    Ok(opts)
}

/// `cargo xtask dist [--target ARCH]... [--out DIR] [--target-dir DIR]`.
pub fn run(repo: &Path, args: &[String]) -> Result<u8, String> {
    let opts = parse(args)?;
    let out = opts
        .out
        .unwrap_or_else(|| repo.join("target/microbox/dist"));
    let target_dir = opts
        .target_dir
        .unwrap_or_else(|| repo.join("target/microbox/dist-build"));
    let archives = build(repo, &opts.arches, &out, &target_dir)?;
    for archive in archives {
        let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
        println!("{} ({size} bytes)", archive.display());
    }
    println!("{}", out.join("SHA256SUMS").display());
    Ok(0)
}

/// Builds the archives for `arches` in `out` (emptied first), compiling in
/// `target_dir`; returns the archives' paths.
pub fn build(
    repo: &Path,
    arches: &[String],
    out: &Path,
    target_dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    let epoch = commit_epoch(repo)?;
    let _ = std::fs::remove_dir_all(out);
    let stage = out.join("stage");
    let docs = stage.join("docs");
    crate::docs::write_all(&docs, &crate::docs::source_date(repo))?;
    let mut archives = Vec::new();
    for arch in arches {
        let target = StaticTarget::for_arch(arch)?;
        if target == StaticTarget::GnuCrtStatic {
            return Err(format!(
                "dist builds musl binaries only: rustup target add {}",
                cargo::MUSL
            ));
        }
        let binary = build_binary(repo, target, target_dir, &epoch)?;
        let name = stem(target.triple());
        let top = stage.join(&name);
        for (from, to, mode) in layout(&binary, &docs, repo) {
            let dest = top.join(&to);
            std::fs::create_dir_all(dest.parent().unwrap_or(&top))
                .map_err(|e| format!("create {}: {e}", dest.display()))?;
            std::fs::copy(&from, &dest)
                .map_err(|e| format!("copy {} to {}: {e}", from.display(), dest.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("chmod {}: {e}", dest.display()))?;
        }
        let archive = out.join(format!("{name}.tar.gz"));
        pack(&stage, &name, &archive, &epoch)?;
        archives.push(archive);
    }
    std::fs::remove_dir_all(&stage).map_err(|e| format!("remove {}: {e}", stage.display()))?;
    write_sums(out, &archives)?;
    Ok(archives)
}

/// HEAD's commit time, the archive's every timestamp.
fn commit_epoch(repo: &Path) -> Result<String, String> {
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        return Ok(epoch);
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .map_err(|e| format!("git log: {e} (or set SOURCE_DATE_EPOCH)"))?;
    let epoch = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || epoch.parse::<u64>().is_err() {
        return Err("no commit time from git: set SOURCE_DATE_EPOCH".into());
    }
    Ok(epoch)
}

/// The release binary for `target`, built in `target_dir` with every
/// machine-specific path remapped.
fn build_binary(
    repo: &Path,
    target: StaticTarget,
    target_dir: &Path,
    epoch: &str,
) -> Result<PathBuf, String> {
    let mut cmd = cargo::cargo(repo);
    cmd.args(["build", "--release", "--locked", "-p", "microbox"]);
    target.apply(&mut cmd);
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let remaps = [
        (target_dir.to_path_buf(), "/build/target"),
        (repo.to_path_buf(), "/build/microbox"),
        (cargo_home, "/cargo"),
    ];
    let flags: Vec<String> = remaps
        .iter()
        .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
        .collect();
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env_remove("RUSTFLAGS")
        .env("CARGO_TARGET_DIR", target_dir)
        .env("SOURCE_DATE_EPOCH", epoch);
    let found = cargo::run_json(cmd)?;
    found
        .into_iter()
        .find(|a| a.target_name == "microbox" && a.kinds.iter().any(|k| k == "bin"))
        .and_then(|a| a.executable)
        .ok_or_else(|| "cargo built no microbox binary".to_string())
}

/// GNU tar of `stage/name`, sorted, 0:0, every time `epoch`, then gzip -n.
fn pack(stage: &Path, name: &str, archive: &Path, epoch: &str) -> Result<(), String> {
    let tar_file = archive.with_extension("");
    let run = |cmd: &mut Command| -> Result<(), String> {
        let status = cmd.status().map_err(|e| format!("run {cmd:?}: {e}"))?;
        if !status.success() {
            return Err(format!("{cmd:?} failed ({status})"));
        }
        Ok(())
    };
    run(Command::new("tar")
        .args([
            "--sort=name",
            "--format=gnu",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
        ])
        .arg(format!("--mtime=@{epoch}"))
        .arg("-C")
        .arg(stage)
        .arg("-cf")
        .arg(&tar_file)
        .arg(name))?;
    run(Command::new("gzip").args(["-9", "-n", "-f"]).arg(&tar_file))
}

fn write_sums(out: &Path, archives: &[PathBuf]) -> Result<(), String> {
    let names: Vec<String> = archives
        .iter()
        .filter_map(|a| a.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let sums = Command::new("sha256sum")
        .args(&names)
        .current_dir(out)
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    if !sums.status.success() {
        return Err(format!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&sums.stderr)
        ));
    }
    std::fs::write(out.join("SHA256SUMS"), sums.stdout)
        .map_err(|e| format!("write SHA256SUMS: {e}"))
}

/// The checks of `cargo xtask test`'s dist layer, each a pass or a failure
/// line: two builds from this commit in different directories (so that
/// every path differs) give the same bytes, and the x86_64 archive holds
/// every file, the binary saying its version and commit.
pub fn verify(repo: &Path, arches: &[String]) -> Vec<(String, Result<(), String>)> {
    let base = repo.join("target/microbox");
    let first = build(repo, arches, &base.join("dist"), &base.join("dist-build"));
    let second = build(
        repo,
        arches,
        &base.join("dist-again"),
        &base.join("dist-build-again"),
    );
    let (first, second) = match (first, second) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return vec![("dist builds".into(), Err(e))],
    };
    let mut checks = Vec::new();
    for (a, b) in first.iter().zip(&second) {
        let same = std::fs::read(a).ok().filter(|x| !x.is_empty()) == std::fs::read(b).ok();
        let name = a
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        checks.push((
            format!("{name} is reproducible"),
            if same {
                Ok(())
            } else {
                Err(format!("{} and {} differ", a.display(), b.display()))
            },
        ));
    }
    let sums = |archives: &[PathBuf]| {
        archives
            .first()
            .and_then(|a| std::fs::read(a.with_file_name("SHA256SUMS")).ok())
    };
    checks.push((
        "SHA256SUMS is the same and checks".into(),
        check_sums(&first, sums(&first) == sums(&second)),
    ));
    if let Some(x86) = first
        .iter()
        .find(|a| a.to_string_lossy().contains("x86_64"))
    {
        checks.push((
            "the x86_64 archive installs and runs".into(),
            check_contents(repo, x86),
        ));
    }
    let _ = std::fs::remove_dir_all(base.join("dist-again"));
    checks
}

fn check_sums(archives: &[PathBuf], same: bool) -> Result<(), String> {
    if !same {
        return Err("the two SHA256SUMS differ".into());
    }
    let dir = archives
        .first()
        .and_then(|a| a.parent())
        .ok_or("no archive")?;
    let out = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Unpacks the archive as a user would into a prefix and runs the binary.
fn check_contents(repo: &Path, archive: &Path) -> Result<(), String> {
    let prefix = repo.join("target/microbox/dist-prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    std::fs::create_dir_all(&prefix).map_err(|e| format!("{e}"))?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .args(["--strip-components=1", "-C"])
        .arg(&prefix)
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    if !status.success() {
        return Err(format!("tar -x failed ({status})"));
    }
    let binary = prefix.join("bin/microbox");
    for (_, to, _) in layout(&binary, &binary, repo) {
        if !prefix.join(&to).is_file() {
            return Err(format!("the archive lacks {to}"));
        }
    }
    let out = Command::new(&binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("run {}: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let head = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--short=7", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let want = format!(
        "microbox {} ({head}, x86_64-unknown-linux-musl)",
        microbox::VERSION
    );
    let _ = std::fs::remove_dir_all(&prefix);
    if text.lines().next() == Some(want.as_str()) {
        Ok(())
    } else {
        Err(format!("--version said {text:?}, not {want:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_named_by_version_and_arch() {
        assert_eq!(
            stem("aarch64-unknown-linux-musl"),
            format!("microbox-{}-aarch64-linux-musl", microbox::VERSION)
        );
    }

    #[test]
    fn the_layout_installs_under_a_prefix() {
        let files = layout(Path::new("b"), Path::new("d"), Path::new("r"));
        let dests: Vec<&str> = files.iter().map(|(_, to, _)| to.as_str()).collect();
        assert!(dests.contains(&"bin/microbox"));
        assert!(dests.contains(&"share/man/man1/microbox.1"));
        assert!(dests.iter().any(|d| d.ends_with("/LICENSE")));
        assert_eq!(files[0].2, 0o755);
    }

    #[test]
    fn arguments() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse(&[]).unwrap().arches, v(&["x86_64", "aarch64"]));
        assert_eq!(
            parse(&v(&["--target", "aarch64"])).unwrap().arches,
            v(&["aarch64"])
        );
        assert!(parse(&v(&["--target"])).is_err());
        assert!(parse(&v(&["--nope"])).is_err());
    }
}
