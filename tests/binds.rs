//! Bind sources (issue 8, item 6): each source is opened once, before the
//! sandbox is made, and that open is what gets mounted. A symlink swapped in
//! after it changes nothing; sources in microbox's own state are refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{require_root_and_rootfs, TempDir};

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
#[test]
fn a_swapped_bind_source_mounts_what_was_resolved() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
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

/// microbox's state directory (lock files of running sandboxes) is never a
/// bind source, by its own path or through a symlink.
#[test]
fn a_source_in_microbox_state_is_refused() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    std::fs::create_dir_all("/run/microbox").unwrap();
    let tmp = TempDir::new("bind-state");
    std::os::unix::fs::symlink("/run/microbox", tmp.join("state")).unwrap();
    for source in [
        "/run/microbox".to_string(),
        tmp.join("state").display().to_string(),
    ] {
        let bind = format!("{source}:/data");
        let out = env.probe(&["--mount-rw", &bind], &["exit", "0"]);
        out.assert_code(125);
        let line = out.assert_microbox_error();
        assert!(line.contains("microbox's own state directory"), "{out}");
    }
}

fn mount(source: &str, target: &std::path::Path, fstype: &str, flags: libc::c_ulong) {
    let c = |s: &str| CString::new(s).unwrap();
    let (source, fstype) = (c(source), c(fstype));
    let target = CString::new(target.as_os_str().as_bytes()).unwrap();
    // SAFETY: live NUL-terminated strings; no data argument.
    let ret = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    assert_eq!(
        ret,
        0,
        "mount {target:?}: {}",
        std::io::Error::last_os_error()
    );
}

fn unmount(target: &std::path::Path) {
    let target = CString::new(target.as_os_str().as_bytes()).unwrap();
    // SAFETY: a live NUL-terminated path.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
}

/// The source's tree is cloned in the host's mount namespace, where a shared
/// mount (systemd makes / shared) would put the clone in its peer group: the
/// clone is made private, so a host mount below the source does not appear in
/// the running sandbox (and nothing the sandbox did would reach the host).
#[test]
fn a_bind_of_a_shared_host_mount_is_private_in_the_sandbox() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let tmp = TempDir::new("bind-shared");
    let dir = tmp.join("shared");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let bind = format!("{}:/data", dir.display());
    let script = "echo ready; sleep 1; \
                  if [ -e /data/sub/marker ]; then echo propagated; else echo private; fi";
    let mut run = env
        .microbox()
        .host_setup(|| {
            mount(dir.to_str().unwrap(), &dir, "none", libc::MS_BIND);
            mount("none", &dir, "none", libc::MS_SHARED);
        })
        .args(env.fs_args())
        .args(["--mount-ro", &bind, "--", "/bin/sh", "-c", script])
        .spawn();
    let ready = run.wait_for_line("ready", env.timeout);
    mount("tmpfs", &dir.join("sub"), "tmpfs", 0);
    std::fs::write(dir.join("sub/marker"), "x").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    unmount(&dir.join("sub"));
    unmount(&dir);
    assert!(ready, "the sandbox never started");
    let out = run.finish();
    out.assert_success();
    assert!(out.stdout.contains("private"), "{out}");
}
