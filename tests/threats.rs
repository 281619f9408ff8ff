//! One test per THREATS.md check that no other file covers yet, named after the
//! check names in the table at its end. Each looks at both sides: what the
//! sandbox sees, and that the host (its files, mounts, cgroup knobs) did not
//! change. Where a path does not exist on this kernel, the check says so and
//! asserts the alternative (the path is absent inside too) instead of passing
//! silently.
//!
//! Covered elsewhere: fd_leak, cwd_inside_root, proc_exe_not_host_binary,
//! seccomp_deny_*, tiocsti, mount_dest_symlink_* (isolation.rs);
//! exit_code_propagation, exit_code_signal, command_not_found
//! (exit_and_signals.rs); proc_sys_readonly and sysrq_trigger_not_writable in
//! image mode (isolation.rs).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::{image_copy, require_root_and_rootfs, tree_state, Env, Outcome, TempDir, Victim};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Tmpfs,
    Image,
    Host,
}

const ALL_MODES: [Mode; 3] = [Mode::Tmpfs, Mode::Image, Mode::Host];
const NEW_ROOT_MODES: [Mode; 2] = [Mode::Tmpfs, Mode::Image];

impl Mode {
    fn args(self, env: &Env) -> Vec<String> {
        match self {
            Mode::Tmpfs => vec![
                "--fs".into(),
                "tmpfs".into(),
                "--mount-ro".into(),
                format!("{}:/bin", env.rootfs().join("bin").display()),
            ],
            Mode::Image => vec!["--fs".into(), env.rootfs().display().to_string()],
            Mode::Host => vec!["--fs".into(), "host".into()],
        }
    }

    /// The probe as the sandbox sees it: with `--fs host` it is the image's file
    /// on the host tree, by absolute path.
    fn probe(self, env: &Env) -> String {
        match self {
            Mode::Host => std::fs::canonicalize(env.rootfs().join("bin/probe"))
                .unwrap()
                .display()
                .to_string(),
            _ => "/bin/probe".into(),
        }
    }
}

/// `microbox MODE OPTS -- probe ARGS`, which must itself succeed.
fn probe_in(env: &Env, mode: Mode, opts: &[&str], args: &[&str]) -> Outcome {
    let out = env
        .microbox()
        .args(mode.args(env))
        .args(opts)
        .arg("--")
        .arg(mode.probe(env))
        .args(args)
        .output();
    out.assert_success();
    out
}

/// Whether a path exists on the host, for checks that mean nothing without it.
fn on_host(path: &str) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn inconclusive(check: &str, why: &str) {
    eprintln!("inconclusive ({check}): {why}");
}

// ---------------------------------------------------------------------------
// CVE-2021-30465 family: destinations with `..`

fn mount_dest_dotdot(file: bool) {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let victim = Victim::new();
    let src = TempDir::new("dotdot-src");
    let source = if file {
        std::fs::write(src.join("file"), "mounted\n").unwrap();
        src.join("file")
    } else {
        std::fs::create_dir(src.join("dir")).unwrap();
        std::fs::write(src.join("dir/inner"), "mounted\n").unwrap();
        src.join("dir")
    };
    let v = victim.path().display().to_string();
    let up = "/..".repeat(12);
    // An existing host path, a new one, and `..` in the middle of the path; the
    // classic bugs join these onto the root and land on the host.
    let dests: Vec<String> = if file {
        vec![
            format!("{up}{v}/hosts"),
            format!("{up}{v}/new-file"),
            format!("/etc/../..{v}/hosts"),
        ]
    } else {
        vec![
            format!("{up}{v}/sub"),
            format!("{up}{v}/new-dir"),
            format!("/tmp/../../..{v}/sub"),
        ]
    };
    for mode in ALL_MODES {
        for dest in &dests {
            for opt in ["--mount-rw", "--mount-ro"] {
                let spec = format!("{}:{dest}", source.display());
                let out = env
                    .microbox()
                    .args(mode.args(&env))
                    .args([opt, &spec, "--"])
                    .arg(mode.probe(&env))
                    .args(["exit", "0"])
                    .output();
                let line = out.assert_microbox_error();
                // Long values are shortened in the message: their start is enough.
                let shown: String = spec.chars().take(60).collect();
                assert!(
                    line.contains(opt) && line.contains(&shown),
                    "{mode:?}: the error must name {dest}\n{out}"
                );
                victim.assert_untouched(&out);
            }
        }
    }
    assert!(!victim.path().join("new-file").exists());
    assert!(!victim.path().join("new-dir").exists());
}

#[test]
fn mount_dest_dotdot_dir() {
    mount_dest_dotdot(false);
}

#[test]
fn mount_dest_dotdot_file() {
    mount_dest_dotdot(true);
}

// ---------------------------------------------------------------------------
// CVE-2019-16884 / CVE-2023-28642: a user directory over /proc

/// A directory dressed up as procfs: if the runtime wrote its /proc set-up
/// (labels, masks, sysctls) into it, the files would change.
fn fake_proc() -> (TempDir, BTreeMap<String, String>) {
    let dir = TempDir::new("fake-proc");
    for (path, text) in [
        ("self/attr/exec", "unconfined\n"),
        ("sys/kernel/core_pattern", "core\n"),
        ("sysrq-trigger", ""),
        ("kcore", ""),
    ] {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let state = tree_state(&dir.path);
    (dir, state)
}

#[test]
fn mount_over_proc() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let (fake, before) = fake_proc();
    let dests = [
        ("/proc", "/proc"),
        ("/proc/sys", "/proc"),
        ("/proc/self/attr", "/proc"),
        ("/./proc/", "/proc"),
        ("//proc", "/proc"),
        ("/dev", "/dev"),
        ("/", "/"),
    ];
    for mode in ALL_MODES {
        for (dest, reserved) in dests {
            for opt in ["--mount-rw", "--mount-ro"] {
                let spec = format!("{}:{dest}", fake.path.display());
                let out = env
                    .microbox()
                    .args(mode.args(&env))
                    .args([opt, &spec, "--"])
                    .arg(mode.probe(&env))
                    .args(["mounts", "/proc"])
                    .output();
                let line = out.assert_microbox_error();
                assert!(
                    line.contains(&format!(" {reserved} ")),
                    "{mode:?}: the error must name {reserved}\n{out}"
                );
                assert_eq!(
                    tree_state(&fake.path),
                    before,
                    "{mode:?} {dest}: the directory changed\n{out}"
                );
            }
        }
    }
}

/// The same through the image: the destination is an innocent name that the
/// image made a symlink to /proc, /dev or /. Either microbox refuses it, or the
/// command still sees the real procfs and /dev; the directory never changes.
#[test]
fn mount_over_proc_via_image_symlink() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let (fake, before) = fake_proc();
    let (_dir, image) = image_copy(&env, "proc-link-dest");
    for (name, target) in [
        ("data-proc", "/proc"),
        ("data-proc-rel", "../../../proc"),
        ("data-sys", "/proc/sys"),
        ("data-dev", "/dev"),
        ("data-root", "/"),
    ] {
        std::os::unix::fs::symlink(target, image.join(name)).unwrap();
    }
    let script = "/bin/probe mounts /proc; /bin/probe mounts /proc/sys; \
        /bin/probe stat /dev/null; /bin/probe stat /proc/self/status";
    let mut failures = Vec::new();
    for name in [
        "data-proc",
        "data-proc-rel",
        "data-sys",
        "data-dev",
        "data-root",
    ] {
        let spec = format!("{}:/{name}", fake.path.display());
        let out = env
            .microbox()
            .args(["--fs".as_ref(), image.as_os_str()])
            .args(["--mount-rw", &spec, "--", "/bin/sh", "-c", script])
            .output();
        assert_eq!(
            tree_state(&fake.path),
            before,
            "/{name}: the directory changed\n{out}"
        );
        if out.code == Some(125) {
            out.assert_microbox_error();
            continue;
        }
        let fstypes = out.all("fstype");
        let intact = out.code == Some(0)
            && fstypes == ["proc", "proc"]
            && out.all("ro").get(1) == Some(&"1")
            && out.all("rdev").first() == Some(&"1:3")
            && out.all("stat") == ["ok", "ok"];
        if !intact {
            failures.push(format!("/{name}: neither refused nor harmless\n{out}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// CVE-2022-0492: cgroup v1 release_agent

/// The host's v1 release_agent files and their contents.
fn release_agents() -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(d) = std::fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(d.flatten().map(|e| e.path()));
    }
    for dir in dirs {
        let p = dir.join("release_agent");
        if let Ok(text) = std::fs::read_to_string(&p) {
            out.insert(p, text);
        }
    }
    out
}

#[test]
fn cgroup_v1_mount_blocked() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let agents = release_agents();
    if agents.is_empty() {
        inconclusive(
            "cgroup_v1_mount_blocked",
            "the host has no cgroup v1 hierarchy; checking that the mount fails anyway",
        );
    }
    let host_target = TempDir::new("cgroup-mount");
    let host_dir = host_target.join("cg").display().to_string();
    let runs: [(Mode, &[&str], &str); 5] = [
        (Mode::Image, &[], "/tmp/mbx-cg"),
        (Mode::Tmpfs, &[], "/mbx-cg"),
        (Mode::Host, &[], &host_dir),
        // Without the seccomp rule, the missing CAP_SYS_ADMIN still refuses it.
        (Mode::Image, &["--allow-syscall", "mount"], "/tmp/mbx-cg"),
        (
            Mode::Image,
            &["--allow-syscall", "mount", "--userns", "host"],
            "/tmp/mbx-cg",
        ),
    ];
    for (mode, opts, dir) in runs {
        for controller in ["rdma", "memory", "none,name=mbx"] {
            let out = probe_in(&env, mode, opts, &["cgroup-mount", dir, controller]);
            assert_ne!(
                out.value("mount"),
                "ok",
                "{mode:?} {opts:?}: cgroup mounted\n{out}"
            );
            assert_ne!(
                out.value("unshare"),
                "ok",
                "{mode:?} {opts:?}: unshare(NEWUSER|NEWNS|NEWCGROUP) worked\n{out}"
            );
            assert!(out.get("mount_after_unshare").is_none(), "{out}");
            assert_eq!(
                release_agents(),
                agents,
                "a host release_agent changed\n{out}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// /sys

const SYS_KNOBS: &[&str] = &[
    "/sys/kernel/uevent_helper",
    "/sys/power/state",
    "/sys/fs/cgroup/release_agent",
    "/sys/fs/cgroup/memory/release_agent",
    "/sys/fs/cgroup/cgroup.procs",
    "/sys/kernel/mm/transparent_hugepage/enabled",
];

/// Which knobs the host itself can open for writing (only open, never write):
/// the ones where a refusal inside means something.
fn writable_on_host(env: &Env) -> Vec<&'static str> {
    SYS_KNOBS
        .iter()
        .copied()
        .filter(|k| env.probe_on_host(&["open", k, "w"]).get("open") == Some("ok"))
        .collect()
}

#[test]
fn sys_not_writable() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let meaningful = writable_on_host(&env);
    if meaningful.is_empty() {
        inconclusive(
            "sys_not_writable",
            "the host opens none of the knobs for writing",
        );
    }
    for mode in NEW_ROOT_MODES {
        // No sysfs at all: absent (tmpfs mode) or the image's empty directory.
        let out = probe_in(&env, mode, &[], &["mounts", "/sys"]);
        assert_ne!(
            out.get("fstype"),
            Some("sysfs"),
            "{mode:?}: sysfs is mounted\n{out}"
        );
        for knob in SYS_KNOBS {
            let out = probe_in(&env, mode, &[], &["open", knob, "w"]);
            assert_ne!(
                out.value("open"),
                "ok",
                "{mode:?}: {knob} opens for writing\n{out}"
            );
        }
        let out = probe_in(&env, mode, &[], &["mounts", "/sys/fs/cgroup"]);
        assert!(
            !out.get("fstype").is_some_and(|t| t.starts_with("cgroup")),
            "{mode:?}: cgroupfs is visible\n{out}"
        );
    }
}

/// `--fs host` keeps the host's /sys; THREATS.md: "if /sys is mounted at all it
/// must be read-only", cgroupfs below it included.
#[test]
fn sys_not_writable_fs_host() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    for dir in ["/sys", "/sys/fs/cgroup"] {
        let out = probe_in(&env, Mode::Host, &[], &["mounts", dir]);
        assert_eq!(out.value("ro"), "1", "{dir} is writable\n{out}");
    }
    let meaningful = writable_on_host(&env);
    if meaningful.is_empty() {
        inconclusive(
            "sys_not_writable_fs_host",
            "the host opens none of the knobs for writing",
        );
    }
    for knob in meaningful {
        let out = probe_in(&env, Mode::Host, &[], &["open", knob, "w"]);
        assert_ne!(out.value("open"), "ok", "{knob} opens for writing\n{out}");
    }
}

// ---------------------------------------------------------------------------
// masked /proc

/// Each file that exists on the host is, inside, a bind of /dev/null (char 1:3)
/// that reads empty; one that does not exist on the host is absent inside too.
/// Returns how many were present on the host.
fn check_masked_files(env: &Env, check: &str, modes: &[Mode], files: &[&str]) -> usize {
    let present: Vec<&str> = files.iter().copied().filter(|f| on_host(f)).collect();
    for mode in modes {
        for file in files {
            let out = probe_in(env, *mode, &[], &["stat", file]);
            if present.contains(file) {
                assert_eq!(
                    out.value("type"),
                    "chr",
                    "{mode:?}: {file} is not masked\n{out}"
                );
                assert_eq!(
                    out.value("rdev"),
                    "1:3",
                    "{mode:?}: {file} is not /dev/null\n{out}"
                );
                let out = probe_in(env, *mode, &[], &["read", file]);
                assert_eq!(
                    out.value("bytes"),
                    "0",
                    "{mode:?}: {file} shows data\n{out}"
                );
            } else {
                assert_eq!(
                    out.value("stat"),
                    "ENOENT",
                    "{mode:?}: {file} appeared\n{out}"
                );
            }
        }
    }
    let absent: Vec<&&str> = files.iter().filter(|f| !present.contains(f)).collect();
    if !absent.is_empty() {
        inconclusive(
            check,
            &format!("not on this kernel, checked absent inside too: {absent:?}"),
        );
    }
    present.len()
}

const INFO_FILES: &[&str] = &[
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/latency_stats",
    "/proc/timer_stats",
    "/proc/interrupts",
];

/// Directories masked by an empty read-only tmpfs.
fn check_masked_dirs(env: &Env, modes: &[Mode]) {
    for dir in ["/proc/acpi", "/proc/asound", "/proc/scsi"] {
        if !on_host(dir) {
            continue;
        }
        for mode in modes {
            let out = probe_in(env, *mode, &[], &["mounts", dir]);
            assert_eq!(
                out.value("fstype"),
                "tmpfs",
                "{mode:?}: {dir} is not masked\n{out}"
            );
            assert_eq!(out.value("ro"), "1", "{mode:?}: {dir}\n{out}");
        }
    }
}

#[test]
fn proc_kcore_masked() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    check_masked_files(&env, "proc_kcore_masked", &NEW_ROOT_MODES, &["/proc/kcore"]);
}

#[test]
fn proc_kcore_masked_fs_host() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    check_masked_files(
        &env,
        "proc_kcore_masked_fs_host",
        &[Mode::Host],
        &["/proc/kcore"],
    );
}

#[test]
fn proc_info_masked() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let n = check_masked_files(&env, "proc_info_masked", &NEW_ROOT_MODES, INFO_FILES);
    assert!(
        n > 0,
        "none of {INFO_FILES:?} exists on the host: nothing was checked"
    );
    check_masked_dirs(&env, &NEW_ROOT_MODES);
}

#[test]
fn proc_info_masked_fs_host() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let n = check_masked_files(&env, "proc_info_masked_fs_host", &[Mode::Host], INFO_FILES);
    assert!(
        n > 0,
        "none of {INFO_FILES:?} exists on the host: nothing was checked"
    );
    check_masked_dirs(&env, &[Mode::Host]);
}

/// Root-only files (no group or other bits) that a sandbox may read, by path
/// prefix, each with why. Everything else root-only in /proc (outside the pid
/// directories) must be masked.
const ROOT_ONLY_ALLOWED: &[(&str, &str)] = &[
    // The sandbox's own network namespace: its own keys and secrets.
    ("/proc/sys/net/", "per network namespace"),
    // Constants of the kernel build or capability masks; /proc/sys is read-only.
    (
        "/proc/sys/kernel/usermodehelper/",
        "capability masks, read-only",
    ),
    (
        "/proc/sys/vm/mmap_rnd",
        "ASLR entropy bits of the kernel build",
    ),
    (
        "/proc/sys/vm/stat_refresh",
        "reads as empty; writing is refused",
    ),
    // The pid of the ctrl-alt-del receiver, translated into the sandbox's pid
    // namespace: 0, since init of the host is not in it.
    (
        "/proc/sys/kernel/cad_pid",
        "pid seen through the sandbox's pid namespace",
    ),
];

/// A scan of /proc inside (outside the pid directories) finds no root-only
/// file the sandbox can read, but for those allowed by name above: the
/// physical-page, allocator and log files are masked (issue 8, item 5).
fn root_only_proc_files_in(env: &Env, mode: Mode) {
    let out = probe_in(env, mode, &[], &["proc-root-only"]);
    let checked: u32 = out.value("checked").parse().unwrap();
    let readable: Vec<&str> = out
        .all("readable")
        .into_iter()
        .filter(|path| {
            !ROOT_ONLY_ALLOWED
                .iter()
                .any(|(prefix, _)| path.starts_with(prefix))
        })
        .collect();
    assert!(
        readable.is_empty(),
        "{mode:?}: root-only /proc files readable inside: {readable:?}\n{out}"
    );
    // The host has such files (kpageflags and slabinfo at least), so the scan
    // found what it must not read: masked, they are /dev/null (not regular).
    assert!(checked > 0, "{mode:?}: nothing checked\n{out}");
    for file in ["/proc/kpageflags", "/proc/slabinfo", "/proc/pagetypeinfo"] {
        if on_host(file) {
            let out = probe_in(env, mode, &[], &["stat", file]);
            assert_eq!(
                out.value("rdev"),
                "1:3",
                "{mode:?}: {file} is not /dev/null\n{out}"
            );
        }
    }
}

#[test]
fn proc_root_only_files_masked() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    for mode in ALL_MODES {
        root_only_proc_files_in(&env, mode);
    }
}

const SYSCTLS: &[&str] = &[
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/vm/drop_caches",
    "/proc/sys/fs/binfmt_misc/register",
];

fn proc_sys_readonly_in(env: &Env, mode: Mode) {
    let out = probe_in(env, mode, &[], &["mounts", "/proc/sys"]);
    assert_eq!(out.value("fstype"), "proc", "{mode:?}\n{out}");
    assert_eq!(
        out.value("ro"),
        "1",
        "{mode:?}: /proc/sys is writable\n{out}"
    );
    let mut checked = 0;
    for file in SYSCTLS {
        let out = probe_in(env, mode, &[], &["open", file, "w"]);
        let result = out.value("open");
        assert_ne!(result, "ok", "{mode:?}: {file} opens for writing\n{out}");
        if result == "EROFS" {
            checked += 1;
        }
    }
    assert!(checked > 0, "{mode:?}: no sysctl was refused as read-only");
}

#[test]
fn proc_sys_readonly_fs_host() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    proc_sys_readonly_in(&env, Mode::Host);
}

#[test]
fn proc_sys_readonly_tmpfs_mode() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    proc_sys_readonly_in(&env, Mode::Tmpfs);
}

#[test]
fn sysrq_trigger_not_writable_fs_host() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let path = "/proc/sysrq-trigger";
    for mode in [Mode::Host, Mode::Tmpfs] {
        // Only open(O_WRONLY); nothing is ever written.
        let out = probe_in(&env, mode, &[], &["open", path, "w"]);
        if on_host(path) {
            assert_eq!(out.value("open"), "EROFS", "{mode:?}: {path}\n{out}");
        } else {
            assert_eq!(
                out.value("open"),
                "ENOENT",
                "{mode:?}: {path} appeared\n{out}"
            );
        }
    }
    if !on_host(path) {
        inconclusive(
            "sysrq_trigger_not_writable_fs_host",
            "no /proc/sysrq-trigger on this kernel; checked it is absent inside too",
        );
    }
}

// ---------------------------------------------------------------------------
// devices

/// (major, minor) of the nodes a sandbox's /dev may hold; pts slaves are 136:*.
const ALLOWED_DEVICES: &[(&str, &str)] = &[
    ("null", "1:3"),
    ("zero", "1:5"),
    ("full", "1:7"),
    ("random", "1:8"),
    ("urandom", "1:9"),
    ("tty", "5:0"),
];

const FORBIDDEN_NAMES: &[&str] = &[
    "vd", "sd", "nvme", "mem", "kmem", "port", "kmsg", "kvm", "loop", "hd", "xvd", "mmcblk", "dm-",
    "zram", "sg", "fuse", "vsock", "console",
];

#[test]
fn dev_minimal() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // The host baseline: what a leaked /dev would show.
    let host_risky: Vec<String> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_type().is_ok_and(|t| {
                use std::os::unix::fs::FileTypeExt;
                t.is_block_device()
            }) || FORBIDDEN_NAMES
                .iter()
                .any(|f| e.file_name().to_string_lossy().starts_with(f))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if host_risky.is_empty() {
        inconclusive(
            "dev_minimal",
            "the host's /dev has no block or risky device either",
        );
    }
    for mode in NEW_ROOT_MODES {
        let out = probe_in(&env, mode, &[], &["lsdev", "/dev"]);
        let mut found = Vec::new();
        for node in out.all("node") {
            let mut f = node.split(' ');
            let (path, kind, rdev) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let name = path.rsplit('/').next().unwrap();
            assert_ne!(kind, "blk", "{mode:?}: block device {path}\n{out}");
            assert!(
                !FORBIDDEN_NAMES.iter().any(|n| name.starts_with(n)) || kind == "dir",
                "{mode:?}: {path} in /dev\n{out}"
            );
            if kind == "chr" {
                let allowed = ALLOWED_DEVICES.iter().any(|(_, r)| *r == rdev)
                    || rdev == "5:2"
                    || rdev.starts_with("136:");
                assert!(allowed, "{mode:?}: unexpected device {path} {rdev}\n{out}");
                found.push(name.to_string());
            }
        }
        for (name, _) in ALLOWED_DEVICES {
            assert!(
                found.iter().any(|f| f == name),
                "{mode:?}: /dev/{name} missing\n{out}"
            );
        }
    }
}

#[test]
fn dev_basic_nodes() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // A hostile image /dev: a "null" that leads to a host file, and nodes that
    // must not show up. microbox's /dev is a fresh tmpfs over all of it.
    let victim = Victim::new();
    let (_dir, image) = image_copy(&env, "dev-nodes");
    let dev = image.join("dev");
    std::os::unix::fs::symlink(victim.path().join("hosts"), dev.join("null")).unwrap();
    std::fs::write(dev.join("kmsg"), "image kmsg\n").unwrap();
    std::fs::create_dir(dev.join("sda")).unwrap();
    for mode in NEW_ROOT_MODES {
        for (name, rdev) in ALLOWED_DEVICES {
            let host = std::fs::metadata(format!("/dev/{name}")).unwrap();
            let path = format!("/dev/{name}");
            let out = if mode == Mode::Image {
                let out = env
                    .microbox()
                    .args(["--fs".as_ref(), image.as_os_str()])
                    .args(["--", "/bin/probe", "stat", &path])
                    .output();
                out.assert_success();
                out
            } else {
                probe_in(&env, mode, &[], &["stat", &path])
            };
            assert_eq!(out.value("type"), "chr", "{mode:?}: {path}\n{out}");
            assert_eq!(out.value("rdev"), *rdev, "{mode:?}: {path}\n{out}");
            // The very node microbox verified on the host, not a look-alike.
            assert_eq!(
                (out.value("dev"), out.value("ino")),
                (
                    host.dev().to_string().as_str(),
                    host.ino().to_string().as_str()
                ),
                "{mode:?}: {path} is not the host's node\n{out}"
            );
        }
    }
    let out = env
        .microbox()
        .args(["--fs".as_ref(), image.as_os_str()])
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo x > /dev/null; /bin/probe stat /dev/kmsg; /bin/probe stat /dev/sda",
        ])
        .output();
    out.assert_success();
    assert_eq!(
        out.all("stat"),
        ["ENOENT", "ENOENT"],
        "the image's /dev shows through\n{out}"
    );
    victim.assert_untouched(&out);
}
