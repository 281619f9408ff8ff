//! The guest kernel for the VM leg: which one, its release string, a PVH
//! `vmlinux` extracted from the bzImage (boots ~2 s faster under TCG, see
//! VM-NOTES §6), and the kernel modules the tests need in load order.

use crate::elf;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the tests need beyond the built-in config of Debian's kernel, in the
/// order VM-NOTES §1 verified. Dependencies from modules.dep are added anyway.
pub const WANTED_MODULES: &[&str] = &[
    // The VM's root: ext4 on a RAM disk (tmpfs cannot be idmapped before 6.3).
    "brd",
    "ext4",
    "overlay",
    "veth",
    "llc",
    "stp",
    "bridge",
    "nfnetlink",
    "crc32c_generic",
    "libcrc32c",
    "nf_tables",
    "nf_defrag_ipv4",
    "nf_defrag_ipv6",
    "nf_conntrack",
    "nf_conntrack_netlink",
    "nf_nat",
    "nft_chain_nat",
    "nft_masq",
    "nft_nat",
    "nft_ct",
    // Bridge mode's rules: reject (refused, not dropped), fib (the host's own
    // addresses, for published ports), the bridge family's meta keys.
    "nft_reject",
    "nft_reject_inet",
    "nft_fib",
    "nft_fib_inet",
    "nft_meta_bridge",
];

/// Soft dependencies that neither modules.dep nor (on Debian 12) modules.softdep
/// carry: libcrc32c's `pre: crc32c` names an algorithm, and of its providers only
/// the generic one works on TCG's qemu64 CPU (crc32c-intel needs SSE4.2).
const EXTRA_SOFTDEPS: &[(&str, &str)] = &[("libcrc32c", "crc32c_generic")];

pub struct Kernel {
    /// The bzImage (vmlinuz) the kernel was chosen by.
    pub image: PathBuf,
    /// `uname -r` of that kernel; names its /lib/modules directory.
    pub release: String,
    /// Its modules: /lib/modules/<release>, or an unpacked package's.
    pub moddir: PathBuf,
}

/// Orders strings with embedded numbers numerically (6.1.0-9 < 6.1.0-56).
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    for (x, y) in chunks(a).into_iter().zip(chunks(b)) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then(x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

/// MICROBOX_VM_KERNEL, or the newest /boot/vmlinuz-* (what linux-image-amd64 installs).
pub fn choose_kernel() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("MICROBOX_VM_KERNEL") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(format!(
                "MICROBOX_VM_KERNEL={} is not a file",
                path.display()
            ));
        }
        return Ok(path);
    }
    let mut found: Vec<String> = fs::read_dir("/boot")
        .map_err(|e| format!("cannot list /boot: {e}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("vmlinuz-"))
        .collect();
    found.sort_by(|a, b| version_cmp(a, b));
    found
        .pop()
        .map(|n| Path::new("/boot").join(n))
        .ok_or_else(|| "no kernel found (/boot/vmlinuz-* is missing)".to_string())
}

/// The release string from the bzImage header (`kernel_version` field of the
/// x86 boot protocol), falling back to the file name's `vmlinuz-` suffix.
pub fn release_of(image: &Path) -> Result<String, String> {
    let bytes = fs::read(image).map_err(|e| format!("cannot read {}: {e}", image.display()))?;
    if let Some(release) = header_release(&bytes) {
        return Ok(release);
    }
    image
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .map(str::to_string)
        .ok_or_else(|| format!("cannot tell the kernel release of {}", image.display()))
}

fn header_release(bytes: &[u8]) -> Option<String> {
    if bytes.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = usize::from(u16::from_le_bytes(
        bytes.get(0x20E..0x210)?.try_into().ok()?,
    ));
    let text = bytes.get(ptr + 0x200..)?;
    let end = text.iter().position(|&b| b == 0 || b == b' ')?;
    let release = std::str::from_utf8(&text[..end]).ok()?;
    (!release.is_empty()).then(|| release.to_string())
}

impl Kernel {
    pub fn find() -> Result<Kernel, String> {
        let image = choose_kernel()?;
        let release = release_of(&image)?;
        let moddir = Path::new("/lib/modules").join(&release);
        Ok(Kernel {
            image,
            release,
            moddir,
        })
    }

    /// The file to pass to `qemu -kernel`: a cached PVH vmlinux when one can be
    /// extracted, else the bzImage itself (also with MICROBOX_VM_PVH=0). The
    /// bool says which.
    pub fn boot_file(&self, cache: &Path) -> (PathBuf, bool) {
        if std::env::var("MICROBOX_VM_PVH").as_deref() == Ok("0") {
            return (self.image.clone(), false);
        }
        match extract_vmlinux(
            &self.image,
            &cache.join(format!("vmlinux-{}", self.release)),
        ) {
            Ok(path) => (path, true),
            Err(why) => {
                eprintln!("xtask: booting the bzImage (slower): {why}");
                (self.image.clone(), false)
            }
        }
    }
}

const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";

fn extract_vmlinux(image: &Path, out: &Path) -> Result<PathBuf, String> {
    let src_md =
        fs::metadata(image).map_err(|e| format!("cannot stat {}: {e}", image.display()))?;
    // Appended, not with_extension(): the release's dots would be cut off.
    let sibling = |suffix: &str| {
        let mut name = out.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let stamp = sibling(".stamp");
    let want = format!("{} {} {}\n", image.display(), src_md.len(), src_md.mtime());
    if out.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(&want) {
        return Ok(out.to_path_buf());
    }
    let bytes = fs::read(image).map_err(|e| format!("cannot read {}: {e}", image.display()))?;
    let start = bytes
        .windows(XZ_MAGIC.len())
        .position(|w| w == XZ_MAGIC)
        .ok_or("no xz payload in the bzImage")?;
    let mut child = Command::new("xz")
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run xz (apt-get install xz-utils): {e}"))?;
    let mut stdin = child.stdin.take().ok_or("xz has no stdin")?;
    let payload = bytes[start..].to_vec();
    // Fed from a thread: xz's output is far larger than a pipe buffer.
    let feeder = std::thread::spawn(move || stdin.write_all(&payload));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for xz: {e}"))?;
    let _ = feeder.join();
    // xz exits 1 on the bytes trailing the stream ("corrupt data"): judge the
    // result by what came out, not by the exit status.
    let vmlinux = output.stdout;
    if !elf::is_elf(&vmlinux) {
        return Err("xz output is not an ELF file".into());
    }
    if !elf::has_pvh_note(&vmlinux) {
        return Err("the extracted vmlinux has no PVH entry note".into());
    }
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = sibling(&format!(".tmp-{}", std::process::id()));
    fs::write(&tmp, &vmlinux).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, out).map_err(|e| format!("cannot rename to {}: {e}", out.display()))?;
    fs::write(&stamp, want).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(out.to_path_buf())
}

/// A module to load: its name and the file in /lib/modules/<release>/.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub path: PathBuf,
}

/// Module names treat '-' and '_' alike.
fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.split(".ko").next().unwrap_or(base);
    normalise(base)
}

/// modules.dep: name -> (relative path, direct and indirect dependencies).
pub fn parse_modules_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let (path, deps) = line.split_once(':')?;
            let deps = deps.split_whitespace().map(module_name).collect();
            Some((module_name(path), (path.trim().to_string(), deps)))
        })
        .collect()
}

/// modules.softdep lines: `softdep NAME pre: A B post: C` -> NAME -> [A, B].
fn parse_softdeps(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("softdep") {
            continue;
        }
        let Some(name) = words.next() else { continue };
        let mut pre = false;
        for w in words {
            match w {
                "pre:" => pre = true,
                "post:" => pre = false,
                dep if pre => out.entry(normalise(name)).or_default().push(normalise(dep)),
                _ => {}
            }
        }
    }
    out
}

/// Orders `wanted` and everything they depend on so that each module comes
/// after its dependencies and pre-softdeps. Built-in modules are skipped.
pub fn resolve_modules(
    wanted: &[&str],
    dep: &BTreeMap<String, (String, Vec<String>)>,
    softdeps: &BTreeMap<String, Vec<String>>,
    builtin: &BTreeSet<String>,
) -> Result<Vec<(String, String)>, String> {
    fn visit(
        name: &str,
        dep: &BTreeMap<String, (String, Vec<String>)>,
        softdeps: &BTreeMap<String, Vec<String>>,
        builtin: &BTreeSet<String>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        if builtin.contains(name) || !seen.insert(name.to_string()) {
            return Ok(());
        }
        let (path, deps) = dep.get(name).ok_or_else(|| {
            format!("kernel module {name} is neither in modules.dep nor built in")
        })?;
        let soft = softdeps.get(name).into_iter().flatten();
        let extra = EXTRA_SOFTDEPS
            .iter()
            .filter(|(m, _)| *m == name)
            .map(|(_, d)| d);
        for d in soft.map(String::as_str).chain(extra.copied()) {
            // A softdep may name an alias (`crc32c`), not a module: skip those.
            if dep.contains_key(d) {
                visit(d, dep, softdeps, builtin, seen, order)?;
            }
        }
        for d in deps {
            visit(d, dep, softdeps, builtin, seen, order)?;
        }
        order.push((name.to_string(), path.clone()));
        Ok(())
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for w in wanted {
        visit(&normalise(w), dep, softdeps, builtin, &mut seen, &mut order)?;
    }
    Ok(order)
}

/// The modules to load for `release`, in order, with their files.
pub fn modules_for(moddir: &Path) -> Result<Vec<Module>, String> {
    let read = |f: &str| fs::read_to_string(moddir.join(f));
    let dep_text = read("modules.dep").map_err(|e| {
        format!(
            "cannot read {}/modules.dep: {e} (apt-get install linux-image-amd64)",
            moddir.display()
        )
    })?;
    let dep = parse_modules_dep(&dep_text);
    let softdeps = parse_softdeps(&read("modules.softdep").unwrap_or_default());
    let builtin: BTreeSet<String> = read("modules.builtin")
        .unwrap_or_default()
        .lines()
        .map(module_name)
        .collect();
    Ok(resolve_modules(WANTED_MODULES, &dep, &softdeps, &builtin)?
        .into_iter()
        .map(|(name, rel)| Module {
            name,
            path: moddir.join(rel),
        })
        .collect())
}

/// The module's bytes, decompressed when the distribution compresses modules
/// (busybox insmod only loads plain ELF objects).
pub fn module_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let name = path.to_string_lossy();
    let tool = [(".ko.xz", "xz"), (".ko.zst", "zstd"), (".ko.gz", "gzip")]
        .iter()
        .find(|(ext, _)| name.ends_with(ext))
        .map(|(_, tool)| *tool);
    match tool {
        None => fs::read(path).map_err(|e| format!("cannot read {name}: {e}")),
        Some(tool) => {
            let out = Command::new(tool)
                .arg("-dc")
                .arg(path)
                .output()
                .map_err(|e| format!("cannot run {tool} to decompress {name}: {e}"))?;
            if !out.status.success() || !elf::is_elf(&out.stdout) {
                return Err(format!("{tool} -dc {name} failed ({})", out.status));
            }
            Ok(out.stdout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_version_wins() {
        let mut v = [
            "vmlinuz-6.1.0-9-amd64",
            "vmlinuz-6.1.0-56-amd64",
            "vmlinuz-5.10.0-30-amd64",
        ];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(v.last(), Some(&"vmlinuz-6.1.0-56-amd64"));
        assert_eq!(version_cmp("6.10", "6.9"), Ordering::Greater);
    }

    #[test]
    fn dependency_order_and_softdep() {
        let dep = parse_modules_dep(
            "kernel/net/netfilter/nf_tables.ko: kernel/net/netfilter/nfnetlink.ko kernel/lib/libcrc32c.ko\n\
             kernel/lib/libcrc32c.ko:\n\
             kernel/crypto/crc32c_generic.ko:\n\
             kernel/net/netfilter/nfnetlink.ko:\n\
             kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n\
             kernel/net/802/stp.ko: kernel/net/llc/llc.ko\n\
             kernel/net/llc/llc.ko:\n\
             kernel/fs/overlayfs/overlay.ko.xz:\n",
        );
        let soft = parse_softdeps("softdep libcrc32c pre: crc32c\n");
        let builtin = BTreeSet::from(["veth".to_string()]);
        let order = resolve_modules(
            &["overlay", "veth", "bridge", "nf_tables"],
            &dep,
            &soft,
            &builtin,
        )
        .unwrap();
        let names: Vec<_> = order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "overlay",
                "llc",
                "stp",
                "bridge",
                "nfnetlink",
                "crc32c_generic",
                "libcrc32c",
                "nf_tables"
            ]
        );
        assert_eq!(order[0].1, "kernel/fs/overlayfs/overlay.ko.xz");
        assert!(resolve_modules(&["nope"], &dep, &soft, &builtin).is_err());
    }

    #[test]
    fn release_from_boot_header() {
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        img[0x300..0x31a].copy_from_slice(b"6.1.0-56-amd64 (debian@x) ");
        assert_eq!(header_release(&img).as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(header_release(&[0u8; 16]), None);
    }

    #[test]
    fn host_modules_resolve_when_present() {
        let Ok(kernel) = Kernel::find() else { return };
        if !kernel.moddir.clone().join("modules.dep").is_file() {
            return;
        }
        let mods = modules_for(&kernel.moddir.clone()).unwrap();
        let pos = |n: &str| mods.iter().position(|m| m.name == n);
        if let (Some(a), Some(b)) = (pos("crc32c_generic"), pos("libcrc32c")) {
            assert!(a < b);
        }
        assert!(mods.iter().all(|m| m.path.is_file()));
    }
}
