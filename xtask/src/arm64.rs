//! The aarch64 VM leg's guest parts, from Debian's own arm64 packages: the
//! kernel (linux-image-arm64's Image and modules), busybox-static, and the
//! tools the tests drive (ip, nft, strace, newuidmap, newgidmap) with the
//! libraries they load. Fetched with `apt-get download` after `dpkg
//! --add-architecture arm64`, unpacked with `dpkg-deb -x`, never installed;
//! cached under target/microbox/vm/arm64 and unpacked again only when the
//! archive's versions change.

use crate::vm::{GuestFile, Unavailable};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const INSTALL_HINT: &str = "apt-get install qemu-system-arm";
const ADD_ARCH: &str = "dpkg --add-architecture arm64 && apt-get update";

/// Packages of the tools; their library closure comes from apt-cache.
const TOOL_PACKAGES: &[&str] = &["iproute2", "nftables", "strace", "uidmap"];

/// (guest path, file name) of the tools: where the x86_64 guest has them.
const TOOLS: &[(&str, &str)] = &[
    ("usr/sbin/nft", "nft"),
    ("usr/sbin/ip", "ip"),
    ("usr/bin/strace", "strace"),
    ("usr/bin/newuidmap", "newuidmap"),
    ("usr/bin/newgidmap", "newgidmap"),
];

/// Where an unpacked tree keeps its programs and libraries.
const BIN_DIRS: &[&str] = &["usr/sbin", "usr/bin", "sbin", "bin"];
const LIB_DIRS: &[&str] = &["lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib"];

/// What the aarch64 guest is made of.
pub struct Parts {
    /// The kernel's Image (arm64's vmlinuz is not compressed).
    pub image: PathBuf,
    pub release: String,
    pub moddir: PathBuf,
    pub busybox: PathBuf,
    pub tools: Vec<GuestFile>,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// arm64 known to dpkg and apt; added (root only) when it is not.
fn ensure_foreign_arch() -> Result<(), Unavailable> {
    let archs = run(Command::new("dpkg").arg("--print-foreign-architectures"))
        .map_err(|e| Unavailable::Missing(format!("{e} (this needs a Debian host)")))?;
    if archs.split_whitespace().any(|a| a == "arm64") {
        return Ok(());
    }
    if !crate::is_root() {
        return Err(Unavailable::Missing(format!(
            "apt does not know arm64 packages (as root: {ADD_ARCH})"
        )));
    }
    eprintln!("xtask: [vm-aarch64] {ADD_ARCH}");
    run(Command::new("dpkg").args(["--add-architecture", "arm64"]))
        .and_then(|_| run(Command::new("apt-get").args(["update", "-q"])))
        .map(|_| ())
        .map_err(Unavailable::Broken)
}

/// Package names of `apt-cache depends` output: the unindented lines.
pub fn depends_closure(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with([' ', '<']) && !l.is_empty())
        .filter_map(|l| l.strip_suffix(":arm64"))
        // Libraries only: the rest of the closure (dpkg, tar, debconf) installs, never runs.
        .filter(|n| n.starts_with("lib") || n.starts_with("zlib") || TOOL_PACKAGES.contains(n))
        .map(|n| format!("{n}:arm64"))
        .collect()
}

/// The versioned kernel package linux-image-arm64 depends on.
pub fn kernel_package(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|d| d.trim().trim_end_matches(":arm64"))
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-arm64"))
        .map(|d| format!("{d}:arm64"))
}

/// The file names `apt-get download` gives (from `--print-uris`).
pub fn deb_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|n| n.ends_with(".deb"))
        .map(str::to_string)
        .collect()
}

fn packages() -> Result<Vec<String>, String> {
    let kernel_meta = run(Command::new("apt-cache").args(["depends", "linux-image-arm64:arm64"]))?;
    let kernel = kernel_package(&kernel_meta)
        .ok_or("linux-image-arm64:arm64 names no kernel package (apt-get update?)")?;
    let mut cmd = Command::new("apt-cache");
    cmd.args(["depends", "--recurse"]).args(
        [
            "recommends",
            "suggests",
            "conflicts",
            "breaks",
            "replaces",
            "enhances",
        ]
        .map(|k| format!("--no-{k}")),
    );
    cmd.args(TOOL_PACKAGES.iter().map(|p| format!("{p}:arm64")));
    let mut all: Vec<String> = depends_closure(&run(&mut cmd)?).into_iter().collect();
    all.push(kernel);
    all.push("busybox-static:arm64".into());
    Ok(all)
}

/// Fetches (when needed) and unpacks the packages; returns the guest's parts.
pub fn prepare(cache: &Path) -> Result<Parts, Unavailable> {
    ensure_foreign_arch()?;
    let broken = Unavailable::Broken;
    let pkgs = packages().map_err(broken)?;
    let dir = cache.join("vm/arm64");
    let debs = dir.join("debs");
    let root = dir.join("root");
    fs::create_dir_all(&debs)
        .map_err(|e| broken(format!("cannot create {}: {e}", debs.display())))?;
    // apt-get leaves out of --print-uris what the directory already has: it
    // lists them from an empty one.
    let empty = dir.join("empty");
    fs::create_dir_all(&empty)
        .map_err(|e| broken(format!("cannot create {}: {e}", empty.display())))?;
    let apt = |print: bool| {
        let mut cmd = Command::new("apt-get");
        // Downloads as root otherwise warn that _apt cannot write the directory.
        cmd.args(["download", "-q", "-o", "APT::Sandbox::User=root"]);
        if print {
            cmd.arg("--print-uris").current_dir(&empty);
        } else {
            cmd.current_dir(&debs);
        }
        cmd.args(&pkgs);
        cmd
    };
    let names = deb_names(&run(&mut apt(true)).map_err(broken)?);
    if names.iter().any(|n| !debs.join(n).is_file()) {
        if !crate::is_root() {
            return Err(Unavailable::Missing(
                "the arm64 packages are not downloaded yet (as root: cargo xtask vm-test --arch aarch64)"
                    .to_string(),
            ));
        }
        eprintln!(
            "xtask: [vm-aarch64] apt-get download {} arm64 packages",
            names.len()
        );
        run(&mut apt(false)).map_err(broken)?;
    }
    let stamp = root.join(".stamp");
    let want = names.join("\n");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(&want) {
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root)
            .map_err(|e| broken(format!("cannot create {}: {e}", root.display())))?;
        for name in &names {
            run(Command::new("dpkg-deb")
                .arg("-x")
                .arg(debs.join(name))
                .arg(&root))
            .map_err(broken)?;
        }
        // The package leaves modules.dep to the installer's depmod.
        let release = parts(&root).map_err(broken)?.release;
        run(Command::new("depmod").arg("-b").arg(&root).arg(&release))
            .map_err(|e| broken(format!("{e} (apt-get install kmod)")))?;
        fs::write(&stamp, &want)
            .map_err(|e| broken(format!("cannot write {}: {e}", stamp.display())))?;
    }
    parts(&root).map_err(broken)
}

fn parts(root: &Path) -> Result<Parts, String> {
    let boot = root.join("boot");
    let image_name = fs::read_dir(&boot)
        .map_err(|e| format!("cannot list {}: {e}", boot.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with("vmlinuz-"))
        .ok_or_else(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let release = image_name["vmlinuz-".len()..].to_string();
    let mut tools = Vec::new();
    let mut libs = BTreeSet::new();
    for (guest, name) in TOOLS {
        let host = find(root, BIN_DIRS, name)?;
        needed_closure(root, &host, &mut libs)?;
        // newuidmap and newgidmap must keep their setuid bit.
        let mode = if name.starts_with("new") {
            0o4755
        } else {
            0o755
        };
        tools.push(GuestFile {
            guest: guest.to_string(),
            host,
            mode,
        });
    }
    // The loader at the path PT_INTERP names (the tree's /lib link to it).
    let interp = find(root, &["lib"], "ld-linux-aarch64.so.1")?;
    libs.insert(("lib/ld-linux-aarch64.so.1".to_string(), interp));
    for (guest, host) in libs {
        tools.push(GuestFile {
            guest,
            host,
            mode: 0o755,
        });
    }
    Ok(Parts {
        image: boot.join(&image_name),
        moddir: root.join("lib/modules").join(&release),
        release,
        busybox: root.join("bin/busybox"),
        tools,
    })
}

/// The file `name` is under `root` in the first of `dirs` that has it, with
/// symlinks followed inside `root`: an absolute target (sbin/ip -> /bin/ip)
/// names a file of the unpacked tree, never the host's.
fn find(root: &Path, dirs: &[&str], name: &str) -> Result<PathBuf, String> {
    dirs.iter()
        .find_map(|d| resolve_in(root, &root.join(d).join(name)))
        .ok_or_else(|| format!("{name} is in none of {dirs:?} under {}", root.display()))
}

fn resolve_in(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..16 {
        let md = fs::symlink_metadata(&path).ok()?;
        if !md.file_type().is_symlink() {
            return md.is_file().then_some(path);
        }
        let target = fs::read_link(&path).ok()?;
        path = match target.strip_prefix("/") {
            Ok(inside) => root.join(inside),
            Err(_) => path.parent()?.join(target),
        };
    }
    None
}

/// DT_NEEDED names of an ELF file, as readelf (binutils) prints them.
pub fn needed(readelf_d: &str) -> Vec<String> {
    readelf_d
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
        .collect()
}

/// Adds (guest path, host file) of every library `elf` loads, transitively.
/// The guest path keeps the name the loader looks for; the bytes are the
/// file a symlink of that name points to.
fn needed_closure(
    root: &Path,
    elf: &Path,
    out: &mut BTreeSet<(String, PathBuf)>,
) -> Result<(), String> {
    let text = run(Command::new("readelf").arg("-d").arg(elf))
        .map_err(|e| format!("{e} (apt-get install binutils)"))?;
    for lib in needed(&text) {
        let real = find(root, LIB_DIRS, &lib)?;
        let dir = LIB_DIRS
            .iter()
            .find(|d| resolve_in(root, &root.join(d).join(&lib)).is_some())
            .unwrap_or(&"lib");
        if out.insert((format!("{dir}/{lib}"), real.clone())) {
            needed_closure(root, &real, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_apt_and_readelf_output() {
        let deps = "iproute2:arm64\n  Depends: libc6:arm64\n <debconf-2.0>\nlibc6:arm64\n  \
                    Depends: libgcc-s1:arm64\ndebconf\ntar:arm64\nlibc6\n";
        let got: Vec<String> = depends_closure(deps).into_iter().collect();
        assert_eq!(got, ["iproute2:arm64", "libc6:arm64"]);
        let meta = "linux-image-arm64:arm64\n  Depends: linux-image-6.1.0-57-arm64:arm64\n";
        assert_eq!(
            kernel_package(meta).as_deref(),
            Some("linux-image-6.1.0-57-arm64:arm64")
        );
        let uris =
            "'http://x/pool/libacl1_2.3.1-3_arm64.deb' libacl1_2.3.1-3_arm64.deb 30768 SHA256:ab\n";
        assert_eq!(deb_names(uris), ["libacl1_2.3.1-3_arm64.deb"]);
        let d = " 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n \
                 0x000000000000000e (SONAME)             Library soname: [libx.so.1]\n";
        assert_eq!(needed(d), ["libc.so.6"]);
    }
}
