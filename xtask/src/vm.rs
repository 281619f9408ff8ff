//! The VM test leg: an initramfs written by us (newc), the host's Debian kernel
//! under QEMU/TCG, the verdict read from QEMU's exit status (isa-debug-exit)
//! and the details from the serial console. Facts behind every choice here are
//! in shared/VM-NOTES.md.

use crate::cpio::Newc;
use crate::kernel::{self, Kernel, Module};
use crate::results::{clean_line, parse_result_line, Counts};
use crate::rootfs;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where things live inside the guest; the integration tests get these via env.
pub const GUEST_MICROBOX: &str = "usr/local/bin/microbox";
pub const GUEST_ROOTFS: &str = "rootfs-test";
pub const GUEST_TESTS: &str = "tests";

/// isa-debug-exit turns a guest write of v into QEMU status (v << 1) | 1.
pub const QEMU_PASS: i32 = 33; // v = 0x10
pub const QEMU_FAIL: i32 = 35; // v = 0x11

const DEFAULT_TIMEOUT_SECS: u64 = 900;
pub const INSTALL_HINT: &str = "apt-get install qemu-system-x86 linux-image-amd64";

/// Host tools copied into the guest with their shared libraries, when the host
/// has them: tests use ip(8) to build network topologies in namespaces they
/// make, nft to look at the ruleset the runtime wrote, strace to see what it execs.
const HOST_TOOLS: &[&str] = &[
    "/usr/sbin/nft",
    "/usr/sbin/ip",
    "/usr/bin/strace",
    // Setuid root: the rootless tests' subordinate id maps.
    "/usr/bin/newuidmap",
    "/usr/bin/newgidmap",
];

/// What goes into the initramfs besides busybox, the modules and /init.
#[derive(Default)]
pub struct Payload {
    pub microbox: Option<PathBuf>,
    pub test_rootfs: Option<PathBuf>,
    /// The integration-test executable, copied to /tests/it (none: the VM
    /// boots the harness only, as vm-selftest does).
    pub tests: Option<PathBuf>,
    /// Extra arguments for every test executable (after `--test-threads=1`).
    pub test_args: Vec<String>,
    /// Boot that stays on the initramfs root instead of switching to ext4.
    pub initramfs_root: bool,
}

/// The guest's architecture: the host's own (x86_64), or aarch64 under
/// qemu-system-aarch64 with Debian's arm64 packages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn parse(name: &str) -> Result<Arch, String> {
        match name {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => Err(format!(
                "unknown VM architecture {other:?}: use x86_64 or aarch64"
            )),
        }
    }

    /// The test layer's name in `cargo xtask test`'s summary.
    pub fn layer(self) -> &'static str {
        match self {
            Arch::X86_64 => "vm",
            Arch::Aarch64 => "vm-aarch64",
        }
    }

    fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }
}

/// A host file placed in the guest at `guest` (relative) with `mode`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GuestFile {
    pub guest: String,
    pub host: PathBuf,
    pub mode: u32,
}

/// Everything needed to boot, found before any build starts.
pub struct Machine {
    pub arch: Arch,
    pub qemu: PathBuf,
    pub kernel: Kernel,
    pub modules: Vec<Module>,
    /// The static busybox of the guest's architecture.
    pub busybox: PathBuf,
    /// The tools of HOST_TOOLS (or their arm64 builds) and their libraries.
    pub tools: Vec<GuestFile>,
}

/// Why the VM cannot be set up.
pub enum Unavailable {
    /// A package is not installed: skip outside CI, with the install hint.
    Missing(String),
    /// Something is there but wrong (a bad MICROBOX_VM_KERNEL, a kernel
    /// without a needed module): always a failure.
    Broken(String),
}

/// Finds QEMU, the kernel and its modules, busybox and the tools.
pub fn preflight(arch: Arch, cache: &Path) -> Result<Machine, Unavailable> {
    let hint = match arch {
        Arch::X86_64 => INSTALL_HINT,
        Arch::Aarch64 => crate::arm64::INSTALL_HINT,
    };
    let qemu = find_in_path(arch.qemu()).ok_or_else(|| {
        Unavailable::Missing(format!("{} not found (install: {hint})", arch.qemu()))
    })?;
    let (kernel, busybox, tools) = match arch {
        Arch::X86_64 => {
            let kernel = Kernel::find().map_err(|e| {
                if std::env::var_os("MICROBOX_VM_KERNEL").is_some() {
                    Unavailable::Broken(e)
                } else {
                    Unavailable::Missing(format!("{e} (install: {INSTALL_HINT})"))
                }
            })?;
            let busybox = rootfs::host_busybox().map_err(Unavailable::Missing)?;
            (kernel, busybox, host_tools())
        }
        Arch::Aarch64 => {
            let parts = crate::arm64::prepare(cache)?;
            let kernel = Kernel {
                image: parts.image,
                release: parts.release,
                moddir: parts.moddir,
            };
            (kernel, parts.busybox, parts.tools)
        }
    };
    let moddir = &kernel.moddir;
    if !moddir.join("modules.dep").is_file() {
        return Err(Unavailable::Missing(format!(
            "no modules for kernel {} in {} (install: {hint})",
            kernel.release,
            moddir.display()
        )));
    }
    let modules = kernel::modules_for(moddir).map_err(Unavailable::Broken)?;
    Ok(Machine {
        arch,
        qemu,
        kernel,
        modules,
        busybox,
        tools,
    })
}

/// HOST_TOOLS the host has, with the shared libraries ldd finds for them.
fn host_tools() -> Vec<GuestFile> {
    let mut out = Vec::new();
    for tool in HOST_TOOLS.iter().map(Path::new).filter(|t| t.is_file()) {
        let libs = match shared_libraries(tool) {
            Ok(libs) => libs,
            Err(e) => {
                eprintln!("xtask: leaving {} out of the VM: {e}", tool.display());
                continue;
            }
        };
        // The tool keeps its own mode (newuidmap's setuid bit).
        let mode = fs::metadata(tool).map_or(0o755, |m| m.permissions().mode() & 0o7777);
        out.push(GuestFile {
            guest: rel(tool),
            host: tool.to_path_buf(),
            mode,
        });
        // Symlinks followed: the guest gets the library's bytes under the name ldd used.
        out.extend(libs.iter().map(|lib| GuestFile {
            guest: rel(lib),
            host: lib.clone(),
            mode: 0o755,
        }));
    }
    out
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Single-quotes a word for the POSIX shell.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The guest's /init (busybox ash as PID 1).
pub fn init_script(modules: &[String], test_args: &[String]) -> String {
    let test_args: Vec<String> = test_args.iter().map(|a| shell_quote(a)).collect();
    INIT_TEMPLATE
        .replace("@MODULES@", &modules.join(" "))
        .replace("@TEST_ARGS@", &test_args.join(" "))
        .replace("@MICROBOX@", &format!("/{GUEST_MICROBOX}"))
        .replace("@ROOTFS@", &format!("/{GUEST_ROOTFS}"))
        .replace("@TESTS@", &format!("/{GUEST_TESTS}"))
}

const INIT_TEMPLATE: &str = r#"#!/bin/sh
# /init of the microbox VM test leg, written by `cargo xtask vm-test`.
# The verdict leaves through QEMU's exit status; the lines are for humans and
# for the host's counting.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
vm_exit() {
  # x86_64: isa-debug-exit at 0xf4 (/dev/port offset 244): QEMU exits with
  # (v<<1)|1. aarch64's virt machine has no such device (and no /dev/port):
  # the verdict line is read there and poweroff (PSCI) makes QEMU exit 0.
  # The sleep lets the UART drain; without it the last line can be lost.
  echo "MICROBOX-VMTEST-VERDICT $1"
  sleep 0.2
  printf "\\$(printf '%03o' "$1")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
  poweroff -f
}
infra() { echo "MICROBOX-VMTEST-ERROR $*"; vm_exit 3; }
if [ ! -e /.stage2 ]; then
  # pivot_root(2) is EINVAL while / is the initramfs rootfs, so move the
  # whole tree onto a new root and switch to it. The new root is ext4 on a
  # RAM disk, not a tmpfs: this kernel (6.1) cannot idmap tmpfs (Linux 6.3
  # can), and the image and the tests' bind sources are idmapped mounts.
  mount -t proc proc /proc
  KV=$(uname -r)
  for m in @MODULES@; do
    case "$m" in brd) args="rd_nr=1 rd_size=393216" ;; *) args= ;; esac
    insmod /lib/modules/$KV/$m.ko $args || infra "insmod $m"
  done
  mount -t devtmpfs devtmpfs /dev || infra "devtmpfs for the RAM disk"
  mke2fs -q -m 0 /dev/ram0 >/dev/null || infra "mke2fs /dev/ram0"
  if grep -q "microbox.root=initramfs" /proc/cmdline; then
    # The initramfs boot: / stays the rootfs, as on hosts that never switch
    # root, so microbox must move and chroot instead of pivoting. Only the
    # test image and /tmp go on the RAM disk's ext4 (idmapped mounts).
    mkdir -p /ext && mount -t ext4 /dev/ram0 /ext || infra "ext4 for /tmp"
    mkdir -p /ext/tmp && chmod 1777 /ext/tmp && mount -o bind /ext/tmp /tmp || infra "/tmp"
    cp -a @ROOTFS@ /ext/ || infra "copy the test image"
    export MICROBOX_TEST_ROOTFS_AT=/ext@ROOTFS@ MICROBOX_TEST_ROOT=initramfs
    umount /dev
    umount /proc
    touch /.stage2
  fi
fi
if [ ! -e /.stage2 ]; then
  mount -t ext4 /dev/ram0 /newroot || infra "ext4 root for switch_root"
  for f in /*; do
    case "$f" in /proc|/sys|/dev|/newroot) ;; *) cp -a "$f" /newroot/ || infra "copy $f" ;; esac
  done
  mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp
  chmod 1777 /newroot/tmp
  touch /newroot/.stage2
  umount /dev
  umount /proc
  exec switch_root /newroot /init
fi
mount -t proc proc /proc
# Guest uptime when stage 2 starts: splits the boot time into kernel and /init.
STAGE2=$(cut -d' ' -f1 /proc/uptime)
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
# /tmp stays on the ext4 root (the tests' bind sources live there).
# Only panics may interleave with the tests' output.
echo 1 > /proc/sys/kernel/printk
KV=$(uname -r)
mount -t cgroup2 cgroup2 /sys/fs/cgroup || infra "mount cgroup2"
echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control || infra "enable cgroup controllers"
ip link set lo up || infra "lo up"
echo 1 > /proc/sys/net/ipv4/ip_forward || infra "ip_forward"
# busybox names cgroup2's statfs type UNKNOWN: print the magic (0x63677270) too.
CGFS=$(stat -f -c %T /sys/fs/cgroup)
CGMAGIC=$(stat -f -c %t /sys/fs/cgroup)
CGMNT=$(awk '$2 == "/sys/fs/cgroup" { print $3 }' /proc/mounts)
echo "MICROBOX-VMTEST-BEGIN kernel=$KV cgroupfs=$CGFS cgroupmagic=$CGMAGIC cgroupmount=$CGMNT controllers=\"$(cat /sys/fs/cgroup/cgroup.subtree_control)\" nproc=$(nproc) stage2=$STAGE2 uptime=$(cut -d' ' -f1 /proc/uptime)"
export MICROBOX_BIN=@MICROBOX@ MICROBOX_TEST_ROOTFS=${MICROBOX_TEST_ROOTFS_AT:-@ROOTFS@} RUST_BACKTRACE=1
export MICROBOX_TEST_LEG=${MICROBOX_TEST_LEG:-vm}
rc=0
if [ "$MICROBOX_VM_SELFTEST_FAIL" = 1 ]; then
  echo "MICROBOX-VMTEST-SELFTEST deliberately failing step (MICROBOX_VM_SELFTEST_FAIL=1)"
  false || rc=1
fi
cd /
for t in @TESTS@/*; do
  [ -x "$t" ] || continue
  echo "MICROBOX-VMTEST-RUN $t"
  "$t" --test-threads=1 @TEST_ARGS@ </dev/null
  r=$?
  echo "MICROBOX-VMTEST-EXIT $t $r"
  [ $r = 0 ] || rc=1
done
echo "MICROBOX-VMTEST-END rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ $rc = 0 ]; then vm_exit 16; else vm_exit 17; fi
"#;

/// Shared libraries of a dynamic host tool, as `ldd` resolves them.
fn shared_libraries(tool: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(tool)
        .output()
        .map_err(|e| format!("cannot run ldd {}: {e}", tool.display()))?;
    if !out.status.success() {
        return Err(format!("ldd {} failed", tool.display()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Relative archive name of an absolute host path.
fn rel(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

fn add_tree<W: Write>(w: &mut Newc<W>, host: &Path, name: &str) -> Result<(), String> {
    let md =
        fs::symlink_metadata(host).map_err(|e| format!("cannot stat {}: {e}", host.display()))?;
    let ioerr = |e: std::io::Error| format!("initramfs entry {name}: {e}");
    let perm = md.permissions().mode() & 0o7777;
    if md.file_type().is_symlink() {
        let target =
            fs::read_link(host).map_err(|e| format!("cannot read link {}: {e}", host.display()))?;
        w.symlink(name, &target.to_string_lossy()).map_err(ioerr)
    } else if md.is_dir() {
        w.dir(name, perm).map_err(ioerr)?;
        let mut entries: Vec<_> = fs::read_dir(host)
            .map_err(|e| format!("cannot list {}: {e}", host.display()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        for e in entries {
            let child = e.to_string_lossy().to_string();
            add_tree(w, &host.join(&e), &format!("{name}/{child}"))?;
        }
        Ok(())
    } else if md.is_file() {
        w.file(name, perm, &read(host)?).map_err(ioerr)
    } else {
        Err(format!(
            "{}: only files, directories and symlinks can be packed",
            host.display()
        ))
    }
}

/// Writes the uncompressed newc initramfs to `out`.
pub fn write_initramfs(out: &Path, machine: &Machine, payload: &Payload) -> Result<u64, String> {
    // The applet list comes from the host's busybox, which can run here; the
    // guest's is the same Debian package built for its architecture.
    let applets = rootfs::busybox_applets(&rootfs::host_busybox()?)?;
    let busybox = &machine.busybox;
    let file = File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut w = Newc::new(BufWriter::new(file));
    let ioerr = |e: std::io::Error| format!("writing {}: {e}", out.display());

    for (dir, mode) in rootfs::DIRS {
        w.dir(dir, *mode).map_err(ioerr)?;
    }
    for dir in ["run", "newroot", "usr/local", "usr/local/bin", GUEST_TESTS] {
        w.dir_all(dir).map_err(ioerr)?;
    }
    w.char_dev("dev/console", 0o600, 5, 1).map_err(ioerr)?;
    w.char_dev("dev/null", 0o666, 1, 3).map_err(ioerr)?;
    w.file("bin/busybox", 0o755, &read(busybox)?)
        .map_err(ioerr)?;
    for applet in &applets {
        if let Some((parent, _)) = applet.rsplit_once('/') {
            w.dir_all(parent).map_err(ioerr)?;
        }
        w.symlink(applet, "/bin/busybox").map_err(ioerr)?;
    }
    w.file("etc/passwd", 0o644, rootfs::PASSWD.as_bytes())
        .map_err(ioerr)?;
    w.file("etc/group", 0o644, rootfs::GROUP.as_bytes())
        .map_err(ioerr)?;

    let moddir = format!("lib/modules/{}", machine.kernel.release);
    w.dir_all(&moddir).map_err(ioerr)?;
    for m in &machine.modules {
        let bytes = kernel::module_bytes(&m.path)?;
        w.file(&format!("{moddir}/{}.ko", m.name), 0o644, &bytes)
            .map_err(ioerr)?;
    }
    let names: Vec<String> = machine.modules.iter().map(|m| m.name.clone()).collect();
    w.file(
        "init",
        0o755,
        init_script(&names, &payload.test_args).as_bytes(),
    )
    .map_err(ioerr)?;

    let mut seen = std::collections::BTreeSet::new();
    for file in &machine.tools {
        if !seen.insert(&file.guest) {
            continue;
        }
        if let Some((parent, _)) = file.guest.rsplit_once('/') {
            w.dir_all(parent).map_err(ioerr)?;
        }
        w.file(&file.guest, file.mode, &read(&file.host)?)
            .map_err(ioerr)?;
    }

    if let Some(microbox) = &payload.microbox {
        w.file(GUEST_MICROBOX, 0o755, &read(microbox)?)
            .map_err(ioerr)?;
    }
    if let Some(tree) = &payload.test_rootfs {
        add_tree(&mut w, tree, GUEST_ROOTFS)?;
    }
    if let Some(exe) = &payload.tests {
        let name = crate::cargo::INTEGRATION_TESTS;
        w.file(&format!("{GUEST_TESTS}/{name}"), 0o755, &read(exe)?)
            .map_err(ioerr)?;
    }
    let file = w.finish().map_err(ioerr)?;
    let file = file
        .into_inner()
        .map_err(|e| format!("writing {}: {}", out.display(), e.error()))?;
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| format!("cannot stat {}: {e}", out.display()))
}

/// The header line /init prints once the guest is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kernel: String,
    pub cgroupfs: String,
    pub cgroup_magic: String,
    pub cgroup_mount: String,
}

/// CGROUP2_SUPER_MAGIC from include/uapi/linux/magic.h, as `stat -f -c %t` prints it.
const CGROUP2_MAGIC_HEX: &str = "63677270";

pub fn parse_header(line: &str) -> Option<Header> {
    let rest = line.split("MICROBOX-VMTEST-BEGIN ").nth(1)?;
    let field = |key: &str| {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
            .unwrap_or_default()
    };
    Some(Header {
        kernel: field("kernel="),
        cgroupfs: field("cgroupfs="),
        cgroup_magic: field("cgroupmagic="),
        cgroup_mount: field("cgroupmount="),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// The harness, not the tests, went wrong: no verdict from the guest.
    Infra(String),
}

#[derive(Debug)]
pub struct VmRun {
    pub verdict: Verdict,
    pub counts: Counts,
    pub header: Option<Header>,
    /// Host wall time from QEMU's start to the header line.
    pub boot_secs: Option<f64>,
    pub total_secs: f64,
}

/// Accumulates what the serial console says.
#[derive(Default)]
struct SerialState {
    counts: Counts,
    header: Option<Header>,
    header_at: Option<Instant>,
    /// Whether the test executable now running printed a failing result line.
    reported_failure: bool,
    fatal: Option<String>,
    /// The value /init's vm_exit printed (16 pass, 17 fail, 3 set-up error).
    verdict: Option<i32>,
}

impl SerialState {
    fn feed(&mut self, line: &str, now: Instant) {
        if let Some(c) = parse_result_line(line) {
            self.counts.add(c);
            self.reported_failure |= c.failed > 0;
        } else if line.contains("MICROBOX-VMTEST-BEGIN ") {
            self.header = parse_header(line);
            self.header_at = Some(now);
        } else if line.contains("MICROBOX-VMTEST-RUN ") {
            self.reported_failure = false;
        } else if let Some(rest) = line.split("MICROBOX-VMTEST-EXIT ").nth(1) {
            // A test executable that failed without a failing result line
            // crashed or aborted: count it, or a red run could read "0 failed".
            let code = rest.split_whitespace().last().unwrap_or("0");
            if code != "0" && !self.reported_failure {
                self.counts.failed += 1;
            }
        } else if let Some(v) = line.split("MICROBOX-VMTEST-VERDICT ").nth(1) {
            self.verdict = v.trim().parse().ok();
        } else if line.contains("MICROBOX-VMTEST-SELFTEST ") {
            self.counts.failed += 1;
        } else if line.contains("MICROBOX-VMTEST-ERROR ") {
            self.fatal = Some(line.trim().to_string());
        } else if line.contains("Initramfs unpacking failed") {
            self.fatal = Some(format!(
                "the kernel could not unpack the initramfs: {}",
                line.trim()
            ));
        }
    }
}

pub fn timeout() -> Result<Duration, String> {
    match std::env::var("MICROBOX_VM_TIMEOUT") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                format!("MICROBOX_VM_TIMEOUT={v:?} is not a positive number of seconds")
            }),
        Err(_) => Ok(Duration::from_secs(DEFAULT_TIMEOUT_SECS)),
    }
}

fn accel_args() -> Result<Vec<&'static str>, String> {
    match std::env::var("MICROBOX_VM_ACCEL").as_deref() {
        Err(_) | Ok("" | "tcg") => Ok(vec!["-accel", "tcg"]),
        // KVM hung or aborted on the development machine (VM-NOTES §7): opt-in only.
        Ok("kvm") => Ok(vec!["-accel", "kvm", "-cpu", "host"]),
        Ok(other) => Err(format!(
            "MICROBOX_VM_ACCEL={other:?}: use tcg (default) or kvm"
        )),
    }
}

/// Boots the VM and waits for its verdict, echoing the serial console.
pub fn boot(
    machine: &Machine,
    kernel_file: &Path,
    initrd: &Path,
    cmdline_env: &[(&str, &str)],
    timeout: Duration,
) -> Result<VmRun, String> {
    let mut append = String::from(match machine.arch {
        Arch::X86_64 => "console=ttyS0 quiet panic=-1 syscall.x32=y",
        Arch::Aarch64 => "console=ttyAMA0 quiet panic=-1",
    });
    for (k, v) in cmdline_env {
        append.push_str(&format!(" {k}={v}"));
    }
    let mut cmd = Command::new(&machine.qemu);
    match machine.arch {
        Arch::X86_64 => {
            cmd.args(accel_args()?)
                .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        }
        // TCG; pauth-impdef: QARMA pointer authentication costs much of
        // TCG's time, the implementation-defined algorithm far less.
        Arch::Aarch64 => {
            cmd.args(["-M", "virt", "-cpu", "max,pauth-impdef=on", "-accel", "tcg"]);
        }
    }
    cmd.args([
        "-m", "1024", "-smp", "2", "-display", "none", "-serial", "stdio",
    ])
    .args(["-monitor", "none", "-no-reboot", "-nic", "none"])
    .arg("-kernel")
    .arg(kernel_file)
    .arg("-initrd")
    .arg(initrd)
    .arg("-append")
    .arg(&append)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", machine.qemu.display()))?;
    let stdout = child.stdout.take().ok_or("QEMU has no stdout pipe")?;

    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut bytes = BufReader::new(stdout).bytes();
        while let Some(Ok(b)) = bytes.next() {
            if b == b'\n' {
                if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                    return;
                }
                buf.clear();
            } else {
                buf.push(b);
            }
        }
        if !buf.is_empty() {
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
        }
    });

    let mut state = SerialState::default();
    let deadline = start + timeout;
    let mut stdout = std::io::stdout();
    let mut killed: Option<String> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            killed = Some(format!(
                "the VM did not finish within {} s (MICROBOX_VM_TIMEOUT); QEMU was killed",
                timeout.as_secs()
            ));
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(line) => {
                let line = clean_line(&line);
                let _ = writeln!(stdout, "{line}");
                state.feed(&line, Instant::now());
                if let Some(fatal) = &state.fatal {
                    if fatal.contains("unpack") {
                        killed = Some(fatal.clone());
                        break;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(why) = &killed {
        let _ = child.kill();
        eprintln!("xtask: {why}");
    }
    let status = child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
    let _ = reader.join();
    let total_secs = start.elapsed().as_secs_f64();
    let boot_secs = state.header_at.map(|t| (t - start).as_secs_f64());

    // What isa-debug-exit would have made of the guest's verdict.
    let code = match machine.arch {
        Arch::X86_64 => status.code(),
        Arch::Aarch64 if status.code() == Some(0) => state.verdict.map(|v| (v << 1) | 1),
        Arch::Aarch64 => status.code(),
    };
    let verdict = if let Some(why) = killed {
        Verdict::Infra(why)
    } else {
        match code {
            Some(QEMU_PASS) | Some(QEMU_FAIL) => {
                check_header(state.header.as_ref(), &machine.kernel.release).map_or_else(
                    || {
                        if code == Some(QEMU_PASS) && state.counts.failed == 0 {
                            Verdict::Pass
                        } else {
                            Verdict::Fail
                        }
                    },
                    Verdict::Infra,
                )
            }
            other => Verdict::Infra(match &state.fatal {
                Some(f) => format!("guest set-up failed: {f} (QEMU status {other:?})"),
                None => format!(
                    "QEMU exited with status {other:?} without a verdict \
                     (0 = kernel panic or poweroff; pass is {QEMU_PASS}, fail is {QEMU_FAIL})"
                ),
            }),
        }
    };
    Ok(VmRun {
        verdict,
        counts: state.counts,
        header: state.header,
        boot_secs,
        total_secs,
    })
}

/// The leg is only real if the guest ran the chosen kernel on cgroup v2;
/// `Some` explains what is wrong.
fn check_header(header: Option<&Header>, release: &str) -> Option<String> {
    let Some(h) = header else {
        return Some("the guest never printed its MICROBOX-VMTEST-BEGIN header".into());
    };
    if h.kernel != release {
        return Some(format!(
            "the guest ran kernel {:?}, not the chosen {release:?}",
            h.kernel
        ));
    }
    if h.cgroup_mount != "cgroup2" || h.cgroup_magic != CGROUP2_MAGIC_HEX {
        return Some(format!(
            "/sys/fs/cgroup in the guest is {:?} (statfs magic {:?}), not cgroup2",
            h.cgroup_mount, h.cgroup_magic
        ));
    }
    None
}

pub fn describe(run: &VmRun) -> String {
    let boot = run
        .boot_secs
        .map_or_else(|| "boot: n/a".to_string(), |b| format!("boot {b:.1} s"));
    let suite = run.boot_secs.map_or_else(String::new, |b| {
        format!(", suite {:.1} s", run.total_secs - b)
    });
    format!("{boot}{suite}, total {:.1} s", run.total_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::tests::read_all;

    #[test]
    fn init_script_substitutes_everything() {
        let s = init_script(
            &["overlay".into(), "veth".into()],
            &["it's".into(), "--exact".into()],
        );
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(!s.contains('@'), "placeholder left in /init");
        assert!(s.contains("for m in overlay veth; do"));
        assert!(s.contains(r#""$t" --test-threads=1 'it'\''s' '--exact' </dev/null"#));
        assert!(
            s.contains("MICROBOX_BIN=/usr/local/bin/microbox MICROBOX_TEST_ROOTFS=${MICROBOX_TEST_ROOTFS_AT:-/rootfs-test}")
        );
        assert!(s.contains("vm_exit 16") && s.contains("vm_exit 17"));
    }

    #[test]
    fn init_script_is_valid_shell() {
        let path = std::env::temp_dir().join(format!("xtask-init-{}.sh", std::process::id()));
        fs::write(&path, init_script(&["overlay".into()], &[])).unwrap();
        let status = Command::new("sh").arg("-n").arg(&path).status().unwrap();
        fs::remove_file(&path).unwrap();
        assert!(status.success());
    }

    #[test]
    fn serial_state_counts_and_crashes() {
        let now = Instant::now();
        let mut s = SerialState::default();
        for line in [
            "\x1b[0mMICROBOX-VMTEST-BEGIN kernel=6.1.0-56-amd64 cgroupfs=UNKNOWN cgroupmagic=63677270 cgroupmount=cgroup2 nproc=2",
            "MICROBOX-VMTEST-RUN /tests/a",
            "test result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out",
            "MICROBOX-VMTEST-EXIT /tests/a 0",
            "MICROBOX-VMTEST-RUN /tests/b",
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
            "MICROBOX-VMTEST-EXIT /tests/b 101",
            "MICROBOX-VMTEST-RUN /tests/c",
            "MICROBOX-VMTEST-EXIT /tests/c 134",
        ] {
            s.feed(line, now);
        }
        assert_eq!(
            s.counts,
            Counts {
                passed: 5,
                failed: 3,
                ignored: 1
            }
        );
        let h = s.header.unwrap();
        assert_eq!(h.kernel, "6.1.0-56-amd64");
        assert_eq!(check_header(Some(&h), "6.1.0-56-amd64"), None);
        assert!(check_header(Some(&h), "6.12.0").is_some());
        assert!(check_header(None, "x").is_some());
    }

    #[test]
    fn selftest_line_counts_as_failure() {
        let mut s = SerialState::default();
        s.feed(
            "MICROBOX-VMTEST-SELFTEST deliberately failing step",
            Instant::now(),
        );
        assert_eq!(s.counts.failed, 1);
    }

    #[test]
    fn initramfs_layout() {
        if rootfs::host_busybox().is_err() {
            eprintln!("skipped: no static busybox");
            return;
        }
        let dir = std::env::temp_dir().join(format!("xtask-initramfs-{}", std::process::id()));
        fs::create_dir_all(dir.join("tree/bin")).unwrap();
        fs::write(dir.join("tree/bin/probe"), b"probe").unwrap();
        std::os::unix::fs::symlink("/bin/busybox", dir.join("tree/bin/sh")).unwrap();
        fs::write(dir.join("t1"), b"test exe").unwrap();
        let machine = Machine {
            arch: Arch::X86_64,
            qemu: PathBuf::from("/nonexistent"),
            kernel: Kernel {
                image: PathBuf::new(),
                release: "9.9.9-test".into(),
                moddir: PathBuf::new(),
            },
            modules: Vec::new(),
            busybox: rootfs::host_busybox().unwrap(),
            tools: vec![GuestFile {
                guest: "usr/bin/newuidmap".into(),
                host: dir.join("t1"),
                mode: 0o4755,
            }],
        };
        let payload = Payload {
            microbox: Some(dir.join("t1")),
            test_rootfs: Some(dir.join("tree")),
            tests: Some(dir.join("t1")),
            test_args: Vec::new(),
            initramfs_root: false,
        };
        let out = dir.join("initramfs.cpio");
        let size = write_initramfs(&out, &machine, &payload).unwrap();
        let bytes = fs::read(&out).unwrap();
        assert_eq!(size, bytes.len() as u64);
        let entries = read_all(&bytes);
        let find = |n: &str| {
            entries
                .iter()
                .find(|e| e.0 == n)
                .unwrap_or_else(|| panic!("{n} missing"))
        };
        assert_eq!(find("init").1, 0o100_755);
        assert_eq!(find("dev/console").2, 5);
        assert_eq!(find("bin/sh").4, b"/bin/busybox");
        assert_eq!(find("tests/it").4, b"test exe");
        assert_eq!(find("rootfs-test/bin/probe").4, b"probe");
        assert_eq!(find("rootfs-test/bin/sh").1, 0o120_777);
        assert_eq!(find(GUEST_MICROBOX).1, 0o100_755);
        assert_eq!(find("usr/bin/newuidmap").1, 0o104_755);
        find("newroot");
        find("lib/modules/9.9.9-test");
        fs::remove_dir_all(&dir).unwrap();
    }
}
