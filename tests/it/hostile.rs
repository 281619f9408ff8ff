//! Hostile images and hostile configuration: symlinks, odd file types, device nodes and
//! setuid binaries in an image, bind destinations with `..` or through symlinks, bind
//! sources swapped while microbox runs.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use libtest_mimic::Trial;

use crate::harness::{
    image_copy, make_executable, skip, tree_state, Env, Outcome, TempDir, Victim, ALL_MODES,
};

pub fn tests() -> Vec<Trial> {
    crate::trials![
        Image: [
            a_swapped_bind_source_mounts_what_was_resolved,
            mount_dest_dotdot_dir,
            mount_dest_dotdot_file,
            mount_over_proc,
            mount_over_proc_via_image_symlink,
            image_etc_symlink_to_host_absolute,
            image_etc_symlink_to_host_relative,
            image_tmp_symlink_to_host,
            image_dev_symlink_to_host,
            image_proc_symlink_to_host,
            bind_destination_through_absolute_symlink,
            bind_destination_through_relative_symlink,
            bind_file_destination_through_symlink,
            bind_destination_that_is_itself_a_symlink,
            device_node_in_the_image_cannot_be_opened,
            setuid_binary_in_the_image_gives_no_privilege,
            image_with_odd_file_types_at_mount_points_fails_cleanly,
            image_etc_symlink_into_proc_sys_writes_no_kernel_knob,
            setuid_binary_in_a_bind_source_gives_no_privilege,
        ],
    ]
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: swaps two names atomically.
fn exchange(a: &CString, b: &CString) {
    // SAFETY: both are live NUL-terminated paths; the call takes no other
    // pointer. Raw: the musl the tests link for the VM has no renameat2 wrapper.
    unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
}

/// A thread swaps the source path between a real directory and a symlink to
/// another one, as fast as it can, while microbox runs again and again. Every
/// run must see the directory its info line says the source resolved to:
/// never a mix of what the check saw and what the mount got.
fn a_swapped_bind_source_mounts_what_was_resolved(env: &Env) {
    let tmp = TempDir::new("bind-race");
    std::fs::create_dir(tmp.join("src")).unwrap();
    std::fs::write(tmp.join("src/marker"), "real\n").unwrap();
    std::fs::create_dir(tmp.join("other")).unwrap();
    std::fs::write(tmp.join("other/marker"), "other\n").unwrap();
    std::os::unix::fs::symlink(tmp.join("other"), tmp.join("alt")).unwrap();
    let path = |name: &str| CString::new(tmp.join(name).as_os_str().as_bytes()).unwrap();
    let (src, alt) = (path("src"), path("alt"));

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                exchange(&src, &alt);
                swaps += 1;
            }
            swaps
        })
    };
    let other = tmp.join("other").display().to_string();
    let bind = format!("{}:/data", tmp.join("src").display());
    let mut seen = [0u32; 2];
    for _ in 0..150 {
        let out = env.probe(
            &["--log-level", "info", "--mount-ro", &bind],
            &["read", "/data/marker"],
        );
        out.assert_success();
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains("bind source"))
            .unwrap_or_else(|| panic!("no info line naming the resolved source\n{out}"));
        let resolved = line
            .split(" resolved=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap();
        let want = if resolved == other { "other" } else { "real" };
        let got = out.value("content");
        assert_eq!(
            got.trim(),
            want,
            "resolved {resolved}, mounted another\n{out}"
        );
        seen[usize::from(want == "other")] += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!(
        "runs that got the directory: {}, the symlink's target: {}, swaps: {swaps}",
        seen[0], seen[1]
    );
    assert!(swaps > 1000, "the swapper hardly ran ({swaps} swaps)");
}

// ---------------------------------------------------------------------------
// CVE-2021-30465 family: destinations with `..`

fn mount_dest_dotdot(env: &Env, file: bool) {
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
                    .args(mode.args(env))
                    .args([opt, &spec, "--"])
                    .arg(mode.probe(env))
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

fn mount_dest_dotdot_dir(env: &Env) {
    mount_dest_dotdot(env, false);
}

fn mount_dest_dotdot_file(env: &Env) {
    mount_dest_dotdot(env, true);
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

fn mount_over_proc(env: &Env) {
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
                    .args(mode.args(env))
                    .args([opt, &spec, "--"])
                    .arg(mode.probe(env))
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
fn mount_over_proc_via_image_symlink(env: &Env) {
    let (fake, before) = fake_proc();
    let (_dir, image) = image_copy(env, "proc-link-dest");
    for (name, target) in [
        ("data-proc", "/proc"),
        ("data-proc-rel", "../../../proc"),
        ("data-sys", "/proc/sys"),
        ("data-dev", "/dev"),
        ("data-root", "/"),
    ] {
        std::os::unix::fs::symlink(target, image.join(name)).unwrap();
    }
    let probe = [
        "/bin/probe",
        "mounts",
        "/proc",
        "+",
        "mounts",
        "/proc/sys",
        "+",
        "stat",
        "/dev/null",
        "+",
        "stat",
        "/proc/self/status",
    ];
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
            .args(["--mount-rw", &spec, "--"])
            .args(probe)
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
// item 2: hostile images

/// A hostile image either works inside the sandbox or fails with a clear error.
#[track_caller]
fn assert_ok_or_clear_error(out: &Outcome) {
    if out.code != Some(0) {
        out.assert_microbox_error();
    }
}

fn replace_with_symlink(image: &Path, name: &str, target: &Path) {
    let p = image.join(name);
    if p.is_dir() && !p.is_symlink() {
        std::fs::remove_dir_all(&p).unwrap();
    } else {
        let _ = std::fs::remove_file(&p);
    }
    std::os::unix::fs::symlink(target, &p).unwrap();
}

fn image_dir_symlink_check(env: &Env, name: &str, relative: bool) {
    let victim = Victim::new();
    let (_dir, image) = image_copy(env, &format!("hostile-{name}"));
    let target = if relative {
        victim.relative_from(0)
    } else {
        victim.path().to_path_buf()
    };
    replace_with_symlink(&image, name, &target);
    let out = env
        .microbox()
        .args(["--fs".as_ref(), image.as_os_str()])
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo x > /tmp/mbx-written; echo x > /etc/mbx-written; true",
        ])
        .output();
    assert_ok_or_clear_error(&out);
    victim.assert_untouched(&out);
}

fn image_etc_symlink_to_host_absolute(env: &Env) {
    image_dir_symlink_check(env, "etc", false);
}

fn image_etc_symlink_to_host_relative(env: &Env) {
    image_dir_symlink_check(env, "etc", true);
}

fn image_tmp_symlink_to_host(env: &Env) {
    image_dir_symlink_check(env, "tmp", false);
}

fn image_dev_symlink_to_host(env: &Env) {
    image_dir_symlink_check(env, "dev", false);
}

fn image_proc_symlink_to_host(env: &Env) {
    image_dir_symlink_check(env, "proc", false);
}

fn bind_dest_symlink_check(env: &Env, relative: bool, file: bool) {
    let victim = Victim::new();
    let (dir, image) = image_copy(env, "hostile-dest");
    let target = if relative {
        victim.relative_from(0)
    } else {
        victim.path().to_path_buf()
    };
    std::os::unix::fs::symlink(&target, image.join("escape")).unwrap();
    let source = dir.join(if file { "src-file" } else { "src-dir" });
    if file {
        std::fs::write(&source, "mounted\n").unwrap();
    } else {
        std::fs::create_dir(&source).unwrap();
        std::fs::write(source.join("inner"), "mounted\n").unwrap();
    }
    // Through the symlink to an existing and to a new path on the host side.
    for dest in ["/escape/hosts", "/escape/sub", "/escape/new-dir/x"] {
        if file == (dest == "/escape/sub") {
            continue;
        }
        let spec = format!("{}:{dest}", source.display());
        let out = env
            .microbox()
            .args(["--fs".as_ref(), image.as_os_str()])
            .args(["--mount-rw", &spec, "--", "/bin/true"])
            .output();
        assert_ok_or_clear_error(&out);
        victim.assert_untouched(&out);
    }
}

fn bind_destination_through_absolute_symlink(env: &Env) {
    bind_dest_symlink_check(env, false, false);
}

fn bind_destination_through_relative_symlink(env: &Env) {
    bind_dest_symlink_check(env, true, false);
}

fn bind_file_destination_through_symlink(env: &Env) {
    bind_dest_symlink_check(env, false, true);
}

fn bind_destination_that_is_itself_a_symlink(env: &Env) {
    let victim = Victim::new();
    let (dir, image) = image_copy(env, "hostile-dest-link");
    std::os::unix::fs::symlink(victim.path(), image.join("data")).unwrap();
    std::fs::create_dir(dir.join("src")).unwrap();
    let spec = format!("{}:/data", dir.join("src").display());
    let out = env
        .microbox()
        .args(["--fs".as_ref(), image.as_os_str()])
        .args(["--mount-rw", &spec, "--", "/bin/true"])
        .output();
    assert_ok_or_clear_error(&out);
    victim.assert_untouched(&out);
}

fn device_node_in_the_image_cannot_be_opened(env: &Env) {
    let (_dir, image) = image_copy(env, "hostile-dev");
    let node = std::ffi::CString::new(image.join("mbx-null").to_string_lossy().as_bytes()).unwrap();
    // /dev/null's numbers: harmless even if the open got through.
    // SAFETY: node is a live NUL-terminated path.
    let r = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    if r != 0 {
        skip(&format!(
            "cannot mknod on the host: {}",
            std::io::Error::last_os_error()
        ));
    }
    let out = env
        .microbox()
        .args(["--fs".as_ref(), image.as_os_str()])
        .args(["--", "/bin/probe", "open", "/mbx-null", "rw"])
        .output();
    out.assert_success();
    assert_ne!(
        out.value("open"),
        "ok",
        "a device node from the image opened (no nodev)\n{out}"
    );
}

/// A setuid-root binary in the image: where sandbox root is host root
/// (`--userns host`) it must raise nothing (nosuid root, no_new_privs); with
/// shifted ids it works, and raises the sandbox's own ids only (`ids.rs`).
fn setuid_binary_in_the_image_gives_no_privilege(env: &Env) {
    let (_dir, image) = image_copy(env, "hostile-suid");
    let suid = image.join("bin/suid-probe");
    std::fs::copy(image.join("bin/probe"), &suid).unwrap();
    // Owned by root (the copy was made as root), setuid.
    make_executable(&suid, 0o4755);
    let run = |opts: &[&str], args: &[&str]| {
        env.microbox()
            .args(["--fs".as_ref(), image.as_os_str()])
            .args(opts)
            .arg("--")
            .args(args)
            .output()
    };
    let as_user = [
        "/bin/probe",
        "exec-as",
        "1000",
        "1000",
        "/bin/suid-probe",
        "ids",
    ];
    let out = run(&["--userns", "host"], &as_user);
    out.assert_success();
    assert_eq!(out.value("uid"), "1000", "{out}");
    assert_eq!(
        out.value("euid"),
        "1000",
        "the setuid bit of an image file was honoured\n{out}"
    );
    let out = run(&["--userns", "host"], &["/bin/probe", "mounts", "/"]);
    out.assert_success();
    assert_eq!(out.value("nosuid"), "1", "{out}");
    assert_eq!(out.value("nodev"), "1", "{out}");
    let out = run(&[], &["/bin/probe", "mounts", "/"]);
    assert_eq!(out.value("nosuid"), "0", "shifted ids: setuid works\n{out}");
    assert_eq!(out.value("nodev"), "1", "{out}");
}

/// A named change to a copy of the image.
type ImageChange = (&'static str, Box<dyn Fn(&Path)>);

// ---------------------------------------------------------------------------
// hostile images: file types the runtime does not expect where it mounts or writes

/// Builds a copy of the image, lets `change` damage it, runs a command in it and
/// checks: either the run works, or it fails with microbox's one-line error
/// (125); the image is unchanged either way, and the harness finds no leftovers.
fn hostile_image_run(env: &Env, tag: &str, change: impl FnOnce(&Path)) -> Outcome {
    let (_dir, image) = image_copy(env, tag);
    change(&image);
    let before = tree_state(&image);
    let out = env
        .microbox()
        .args(["--fs".as_ref(), image.as_os_str()])
        .args(["--", "/bin/probe", "pid"])
        .output();
    if out.code != Some(0) {
        // Not `assert_microbox_error`: a concurrent run elsewhere on the machine can
        // add a warning line (stale cgroups), which is not what this test is about.
        assert_eq!(out.code, Some(125), "{tag}: neither ran nor refused\n{out}");
        assert!(
            out.stderr.lines().any(|l| l.starts_with("microbox:")),
            "{tag}: refused without saying why\n{out}"
        );
    }
    assert_eq!(
        before,
        tree_state(&image),
        "{tag}: the run changed the image\n{out}"
    );
    out
}

fn replace(image: &Path, rel: &str) -> std::path::PathBuf {
    let path = image.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path).unwrap(),
        Ok(_) => std::fs::remove_file(&path).unwrap(),
        Err(_) => {}
    }
    path
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: c is a live NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(r, 0, "mkfifo {}", path.display());
}

/// Repeats: an image whose /proc, /dev or /etc is a regular file or a FIFO, whose
/// /etc/hosts is a directory, or whose /tmp and /etc/resolv.conf are FIFOs.
/// microbox must refuse cleanly or run, never follow, block or write the image.
fn image_with_odd_file_types_at_mount_points_fails_cleanly(env: &Env) {
    let must_fail: [ImageChange; 6] = [
        (
            "proc-file",
            Box::new(|i: &Path| std::fs::write(replace(i, "proc"), "x").unwrap()),
        ),
        (
            "proc-fifo",
            Box::new(|i: &Path| mkfifo(&replace(i, "proc"))),
        ),
        ("dev-fifo", Box::new(|i: &Path| mkfifo(&replace(i, "dev")))),
        (
            "dev-file",
            Box::new(|i: &Path| std::fs::write(replace(i, "dev"), "x").unwrap()),
        ),
        (
            "etc-file",
            Box::new(|i: &Path| std::fs::write(replace(i, "etc"), "x").unwrap()),
        ),
        (
            "hosts-dir",
            Box::new(|i: &Path| {
                std::fs::create_dir_all(replace(i, "etc/hosts").join("sub")).unwrap()
            }),
        ),
    ];
    for (tag, change) in must_fail {
        let out = hostile_image_run(env, tag, change);
        assert_eq!(out.code, Some(125), "{tag}: must be refused\n{out}");
    }
    // Where nothing is mounted or written over them, odd types just stay.
    let may_run: [ImageChange; 2] = [
        ("tmp-fifo", Box::new(|i: &Path| mkfifo(&replace(i, "tmp")))),
        (
            "resolv-fifo",
            Box::new(|i: &Path| {
                std::fs::create_dir_all(i.join("etc")).unwrap();
                mkfifo(&replace(i, "etc/resolv.conf"))
            }),
        ),
    ];
    for (tag, change) in may_run {
        hostile_image_run(env, tag, change).assert_success();
    }
}

/// Repeats: /etc as a symlink into the sandbox's own /proc, so that microbox's
/// writes of hosts, hostname and resolv.conf land on kernel knobs. /proc is
/// masked and read-only before /etc is written, so the run must be refused.
fn image_etc_symlink_into_proc_sys_writes_no_kernel_knob(env: &Env) {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for (tag, target) in [
        ("etc-proc-sys-kernel", "/proc/sys/kernel"),
        ("etc-proc-sys-rel", "../proc/sys/vm"),
        ("etc-proc-self", "/proc/self"),
    ] {
        let out = hostile_image_run(env, tag, |i| {
            std::os::unix::fs::symlink(target, replace(i, "etc")).unwrap()
        });
        assert_eq!(out.code, Some(125), "{tag}: must be refused\n{out}");
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        hostname
    );
}

// ---------------------------------------------------------------------------
// bind sources given with benign intent

/// Repeats: a setuid-root binary inside a `--mount-ro`/`--mount-rw` source (the
/// user's project directory, say), run by an unprivileged user in the sandbox.
/// Bind mounts are nosuid, so it must not raise the euid.
fn setuid_binary_in_a_bind_source_gives_no_privilege(env: &Env) {
    let dir = TempDir::new("redteam-suid-bind");
    let suid = dir.join("suid-probe");
    std::fs::copy(env.rootfs().join("bin/probe"), &suid).unwrap();
    make_executable(&suid, 0o4755);
    for option in ["--mount-ro", "--mount-rw"] {
        let bind = format!("{}:/data", dir.path.display());
        let out = env.probe(
            &[option, &bind],
            &["exec-as", "1000", "1000", "/data/suid-probe", "ids"],
        );
        out.assert_success();
        assert_eq!(out.value("uid"), "1000", "{out}");
        assert_eq!(
            out.value("euid"),
            "1000",
            "{option}: a setuid binary in a bind source raised the euid\n{out}"
        );
    }
}
