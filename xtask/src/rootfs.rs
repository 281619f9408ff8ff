//! Root filesystem images in the cache directory: `busybox` (the quickstart
//! image) and `test` (busybox plus the static probe at /bin/probe).

use crate::elf;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Bumped whenever the layout below changes, so cached images are rebuilt.
const LAYOUT_VERSION: u32 = 1;

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/tmp:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";

/// (path, mode) of the directories every image has.
pub const DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("etc", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
];

/// The host's busybox, checked to be static: it runs inside images that have no libc.
pub fn host_busybox() -> Result<PathBuf, String> {
    let path = PathBuf::from(HOST_BUSYBOX);
    let bytes = fs::read(&path).map_err(|e| {
        format!("cannot read {HOST_BUSYBOX}: {e} (install it: apt-get install busybox-static)")
    })?;
    match elf::is_static(&bytes) {
        Ok(true) => Ok(path),
        Ok(false) => Err(format!(
            "{HOST_BUSYBOX} is dynamically linked; the images need the static one \
             (apt-get install busybox-static)"
        )),
        Err(e) => Err(format!("{HOST_BUSYBOX}: {e}")),
    }
}

/// Applet paths relative to `/` (`bin/sh`, `usr/bin/awk`, ...), as busybox lists them.
pub fn busybox_applets(busybox: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| format!("cannot run {} --list-full: {e}", busybox.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --list-full failed ({})",
            busybox.display(),
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        // A bare name such as `linuxrc` belongs in no directory we ship.
        .filter(|l| l.contains('/') && l != "bin/busybox" && !l.contains(".."))
        .collect())
}

/// Identity of an input file for the up-to-date check.
fn fingerprint(path: &Path) -> Result<String, String> {
    let md = fs::metadata(path).map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    Ok(format!(
        "{} {} {}.{}\n",
        path.display(),
        md.len(),
        md.mtime(),
        md.mtime_nsec()
    ))
}

/// Builds (or reuses) the image `name` under `cache/rootfs/`, with `extra`
/// files (destination inside the image, host source) on top of busybox.
fn image(
    cache: &Path,
    name: &str,
    busybox: &Path,
    extra: &[(&str, &Path)],
) -> Result<PathBuf, String> {
    let root = cache.join("rootfs");
    let dest = root.join(name);
    let stamp_path = root.join(format!("{name}.stamp"));
    let mut stamp = format!("layout {LAYOUT_VERSION}\n{}", fingerprint(busybox)?);
    for (to, from) in extra {
        stamp.push_str(&format!("{to} <- {}", fingerprint(from)?));
    }
    if dest.is_dir() && fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return Ok(dest);
    }

    fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    // Built beside the target and renamed into place, so a concurrent reader
    // never sees a half-built image.
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    populate(&tmp, busybox, extra).inspect_err(|_| {
        let _ = fs::remove_dir_all(&tmp);
    })?;
    install_image(&tmp, &dest, &stamp_path, &stamp)
}

/// Renames the finished `tmp` over `dest` (the old one moved aside first)
/// and writes the stamp that makes the next build a no-op.
pub fn install_image(
    tmp: &Path,
    dest: &Path,
    stamp_path: &Path,
    stamp: &str,
) -> Result<PathBuf, String> {
    let old = dest.with_extension(format!("old-{}", std::process::id()));
    if dest.exists() {
        fs::rename(dest, &old)
            .map_err(|e| format!("cannot move old image {} aside: {e}", dest.display()))?;
    }
    fs::rename(tmp, dest)
        .map_err(|e| format!("cannot move new image into {}: {e}", dest.display()))?;
    let _ = fs::remove_dir_all(&old);
    fs::write(stamp_path, stamp)
        .map_err(|e| format!("cannot write {}: {e}", stamp_path.display()))?;
    Ok(dest.to_path_buf())
}

fn populate(dir: &Path, busybox: &Path, extra: &[(&str, &Path)]) -> Result<(), String> {
    let io =
        |what: &str, p: &Path, e: std::io::Error| format!("cannot {what} {}: {e}", p.display());
    fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    for (d, mode) in DIRS {
        let p = dir.join(d);
        fs::create_dir_all(&p).map_err(|e| io("create", &p, e))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode))
            .map_err(|e| io("chmod", &p, e))?;
    }
    install(busybox, &dir.join("bin/busybox"))?;
    // The host's list: a foreign busybox cannot run here, and is the same
    // Debian package built for another architecture.
    for applet in busybox_applets(&host_busybox()?)? {
        let link = dir.join(&applet);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
        }
        symlink("/bin/busybox", &link).map_err(|e| io("create symlink", &link, e))?;
    }
    for (file, text) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        let p = dir.join(file);
        fs::write(&p, text).map_err(|e| io("write", &p, e))?;
    }
    for (to, from) in extra {
        let p = dir.join(to);
        // The extra file replaces an applet link of the same name, if any.
        let _ = fs::remove_file(&p);
        install(from, &p)?;
    }
    Ok(())
}

fn install(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot chmod {}: {e}", to.display()))
}

pub fn busybox_image(cache: &Path) -> Result<PathBuf, String> {
    image(cache, "busybox", &host_busybox()?, &[])
}

/// The image the integration tests run in: busybox plus the probe at /bin/probe.
pub fn test_image(cache: &Path, probe: &Path) -> Result<PathBuf, String> {
    image(cache, "test", &host_busybox()?, &[("bin/probe", probe)])
}

/// The test image of another architecture (`test-ARCH`), with its busybox and probe.
pub fn foreign_test_image(
    cache: &Path,
    arch: &str,
    busybox: &Path,
    probe: &Path,
) -> Result<PathBuf, String> {
    image(
        cache,
        &format!("test-{arch}"),
        busybox,
        &[("bin/probe", probe)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_has_root_user_and_nobody() {
        let uids: Vec<&str> = PASSWD
            .lines()
            .map(|l| l.split(':').nth(2).unwrap())
            .collect();
        assert_eq!(uids, ["0", "1000", "65534"]);
        for line in PASSWD.lines().chain(GROUP.lines()) {
            assert!(!line.is_empty());
        }
    }

    #[test]
    fn builds_image_and_reuses_it() {
        if host_busybox().is_err() {
            eprintln!("skipped: no static {HOST_BUSYBOX}");
            return;
        }
        let cache = std::env::temp_dir().join(format!("xtask-rootfs-test-{}", std::process::id()));
        let probe = cache.join("probe-src");
        fs::create_dir_all(&cache).unwrap();
        fs::write(&probe, b"#!/bin/sh\necho probe\n").unwrap();
        let img = test_image(&cache, &probe).unwrap();
        assert!(img.join("bin/busybox").is_file());
        assert_eq!(
            fs::read_link(img.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert_eq!(
            fs::read(img.join("bin/probe")).unwrap(),
            fs::read(&probe).unwrap()
        );
        assert_eq!(fs::read_to_string(img.join("etc/passwd")).unwrap(), PASSWD);
        let mode = fs::metadata(img.join("tmp")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o1777);
        // Up to date: the same directory inode comes back.
        let ino = fs::metadata(&img).unwrap().ino();
        test_image(&cache, &probe).unwrap();
        assert_eq!(fs::metadata(&img).unwrap().ino(), ino);
        fs::remove_dir_all(&cache).unwrap();
    }
}
