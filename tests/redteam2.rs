//! Red-team attacks (redteam2) that held: the host-storage guard against making
//! setid files, device nodes or file capabilities on a writable bind, by every
//! syscall route and by the usual copy tools; and the cgroup placement of a
//! multi-threaded command as the host sees it, with no cgroup file left open in
//! the sandbox.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{image_copy, make_executable, require_root_and_rootfs, Outcome, TempDir};

/// Every file below `dir` (not following symlinks) that the host would honour
/// for privilege: a setuid/setgid mode, a device other than the 0:0 whiteout, or
/// a `security.capability` xattr.
fn privileged_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)
            .expect("read the shared dir")
            .flatten()
        {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let kind = meta.file_type();
            if kind.is_dir() {
                todo.push(path.clone());
            }
            if meta.mode() & 0o6000 != 0 {
                found.push(format!("{} mode {:o}", path.display(), meta.mode()));
            }
            if (kind.is_char_device() || kind.is_block_device()) && meta.rdev() != 0 {
                found.push(format!("{} device {:#x}", path.display(), meta.rdev()));
            }
            if kind.is_file() && has_capability_xattr(&path) {
                found.push(format!("{} has security.capability", path.display()));
            }
        }
    }
    found
}

fn has_capability_xattr(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: a size query (null buffer, size 0) on a NUL-terminated path.
    let size = unsafe {
        libc::lgetxattr(
            name.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    size >= 0
}

/// The attempts of `probe setid-create` that must fail where host storage is
/// writable (`creat` and `mknod` exist on x86_64 only).
const REFUSED: &[&str] = &[
    "fchmod",
    "chmod_proc_fd",
    "chmod",
    "chmod_setgid",
    "fchmodat",
    "fchmodat2",
    "fchmodat2_o_path",
    "open",
    "openat",
    "creat",
    "mknod_reg",
    "mknodat_reg",
    "openat2",
    "tmpfile_setid",
    "tmpfile_fchmod",
    "mknod_char",
    "mknod_block",
    "setxattr_cap_v2",
    "setxattr_cap_v3",
    "io_uring_setup",
];

fn assert_all_refused(out: &Outcome, what: &str) {
    out.assert_success();
    for name in REFUSED {
        if let Some(result) = out.get(name) {
            assert_ne!(result, "ok", "{what}: {name} got through\n{out}");
        } else {
            assert!(
                matches!(*name, "creat" | "mknod_reg") && !cfg!(target_arch = "x86_64"),
                "{what}: the probe did not report {name}\n{out}"
            );
        }
    }
    // Callers of openat2 fall back to openat on ENOSYS; EPERM would break them.
    assert_eq!(out.value("openat2"), "ENOSYS", "{what}\n{out}");
}

#[test]
fn no_syscall_route_leaves_a_setid_file_device_or_capability_on_a_writable_bind() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // --userns host as well: its capabilities are real host ones (MKNOD above all).
    for extra in [&[][..], &["--userns", "host"][..]] {
        let shared = TempDir::new("redteam2-setid");
        let bind = format!("{}:/w", shared.path.display());
        let mut opts = vec!["--mount-rw", bind.as_str()];
        opts.extend_from_slice(extra);
        let out = env.probe(&opts, &["setid-create", "/w"]);
        let what = format!("microbox {opts:?}");
        assert_all_refused(&out, &what);
        let found = privileged_files(&shared.path);
        assert!(found.is_empty(), "{what}: {found:?}\n{out}");
        // The harmless forms still work: the guard is about modes, not files.
        assert_eq!(out.value("tmpfile_linkat"), "ok", "{what}\n{out}");
        assert_eq!(out.value("mkdir_setgid"), "ok", "{what}\n{out}");
    }
}

#[test]
fn the_setid_probe_has_teeth_where_no_host_storage_is_writable() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // In the sandbox's own layer the same calls succeed: the refusals above come
    // from the guard, not from the probe or the kernel.
    let out = env.probe(&[], &["setid-create", "/tmp"]);
    out.assert_success();
    for name in [
        "chmod",
        "fchmod",
        "fchmodat",
        "openat",
        "mknodat_reg",
        "openat2",
    ] {
        assert_eq!(out.value(name), "ok", "{name}\n{out}");
    }
}

#[test]
fn copy_tools_cannot_carry_a_setid_bit_onto_a_writable_bind() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // A hostile image ships the setid original (not executable: nothing a host
    // user could run while the test lasts); its private dir keeps others out.
    let (dir, image) = image_copy(&env, "redteam2-copy-image");
    make_executable(&dir.path, 0o700);
    std::fs::write(image.join("bin/setid"), "not a program\n").expect("write the original");
    make_executable(&image.join("bin/setid"), 0o6644);
    let shared = TempDir::new("redteam2-copy");
    let bind = format!("{}:/w", shared.path.display());
    // Carried over by tar, cp -a, cp -p, mv (EXDEV: copy, then chmod) and ln.
    let script = "cd /bin && tar -cf /tmp/t.tar setid; \
                  mkdir /w/tar && tar -C /w/tar -xf /tmp/t.tar; echo tar=$?; \
                  cp -a /bin/setid /w/cpa; echo cpa=$?; \
                  cp -p /bin/setid /w/cpp; echo cpp=$?; \
                  mv /bin/setid /w/mv; echo mv=$?; \
                  ln /bin/busybox /w/ln; echo ln=$?; \
                  ls -l /w /w/tar";
    let out = env
        .microbox()
        .arg("--fs")
        .arg(&image)
        .args(["--mount-rw", &bind, "--", "/bin/sh", "-c", script])
        .output();
    out.assert_success();
    assert_ne!(out.value("ln"), "0", "a hard link across mounts\n{out}");
    let found = privileged_files(&shared.path);
    assert!(found.is_empty(), "{found:?}\n{out}");
}

// ---------------------------------------------------------------------------
// cgroups as the host sees them

fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .filter(|p| parent_pid(*p) == Some(pid))
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroup path of every hierarchy that must hold the sandbox, from one
/// `/proc/.../cgroup` text: cpu, memory and pids on v1, the unified one on v2.
fn placement(text: &str) -> Vec<(String, String)> {
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((ctrls, path))
        })
        .collect();
    let v1 = lines
        .iter()
        .any(|(ctrls, _)| ctrls.split(',').any(|c| c == "pids"));
    let wanted: &[&str] = if v1 {
        &["cpu", "memory", "pids"]
    } else {
        &[""]
    };
    wanted
        .iter()
        .map(|want| {
            let path = lines
                .iter()
                .find(|(ctrls, _)| {
                    if want.is_empty() {
                        ctrls.is_empty()
                    } else {
                        ctrls.split(',').any(|c| c == *want)
                    }
                })
                .map(|(_, path)| (*path).to_string())
                .unwrap_or_default();
            ((*want).to_string(), path)
        })
        .collect()
}

fn fd_targets(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|t: PathBuf| t.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_thread_of_the_command_is_in_all_sandbox_cgroups_and_no_cgroup_fd_is_open() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let mut running = env.probe_run(&[], &["spin", "3", "4"]).spawn();
    assert!(
        running.wait_for_line("spinning", Duration::from_secs(20)),
        "the probe did not start"
    );
    let microbox = running.pid();
    let init = children_of(microbox);
    assert_eq!(init.len(), 1, "one sandbox init under microbox: {init:?}");
    let init = init[0];
    // The helper threads start right after "spinning": wait for all four.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (command, tasks) = loop {
        let command = children_of(init);
        let tasks: Vec<String> = command
            .first()
            .and_then(|c| std::fs::read_dir(format!("/proc/{c}/task")).ok())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path().display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if tasks.len() >= 4 || Instant::now() > deadline {
            break (command, tasks);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(command.len(), 1, "one command under init: {command:?}");
    assert!(tasks.len() >= 4, "the probe's threads: {tasks:?}");

    let init_place =
        placement(&std::fs::read_to_string(format!("/proc/{init}/cgroup")).expect("init's cgroup"));
    let id = init_place
        .first()
        .and_then(|(_, path)| path.strip_prefix("/microbox/"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("init is not in a microbox cgroup: {init_place:?}"));
    let mut bad = Vec::new();
    let mut check = |who: &str, text: &str| {
        for (ctrl, path) in placement(text) {
            if path != format!("/microbox/{id}") {
                bad.push(format!("{who} {ctrl}: {path}"));
            }
        }
    };
    check(
        "init",
        &std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap_or_default(),
    );
    for task in &tasks {
        check(
            task,
            &std::fs::read_to_string(format!("{task}/cgroup")).unwrap_or_default(),
        );
    }
    let leaked: Vec<String> = [init, command[0]]
        .iter()
        .flat_map(|&p| fd_targets(p))
        .filter(|t| t.contains("cgroup") || t.ends_with("/tasks"))
        .collect();
    let out = running.finish();
    out.assert_success();
    assert!(bad.is_empty(), "outside the sandbox's cgroups: {bad:?}");
    assert!(
        leaked.is_empty(),
        "cgroup files open in the sandbox: {leaked:?}"
    );
}
