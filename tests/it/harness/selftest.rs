//! The harness checks itself: a leftover check that never fires would make every
//! "nothing left behind" assertion worthless.

use std::ffi::CString;
use std::time::Duration;

use libtest_mimic::Trial;

use super::{kv_all, run_lock, unique_token, Env, HostSnapshot, TempDir, MARKER_PREFIX};

pub fn tests() -> Vec<Trial> {
    crate::trials![
        Image: [
            probe_output_parsing,
            snapshot_sees_a_new_mount,
            snapshot_sees_a_marked_process,
        ],
    ]
}

fn probe_output_parsing(_env: &Env) {
    let text = "a=1\nb=x=y\nnoise\na=2\n";
    assert_eq!(kv_all(text, "a"), ["1", "2"]);
    assert_eq!(kv_all(text, "b"), ["x=y"]);
    assert!(kv_all(text, "noise").is_empty());
}

fn snapshot_sees_a_new_mount(_env: &Env) {
    let dir = TempDir::new("harness-mount");
    // Each test's host changes are the other's leftovers unless they take turns.
    let _guard = run_lock();
    let before = HostSnapshot::take();
    let target = CString::new(dir.path.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: all pointers are live NUL-terminated strings; data may be null.
    let r = unsafe {
        libc::mount(
            c"mbx-harness".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
    let added = before.added(&HostSnapshot::take());
    // SAFETY: target is a live NUL-terminated string.
    let r = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    assert_eq!(r, 0, "umount: {}", std::io::Error::last_os_error());
    assert!(
        added
            .iter()
            .any(|a| a.starts_with("mount: ") && a.contains("mbx-harness")),
        "{added:?}"
    );
    let after = before.added(&HostSnapshot::take());
    assert!(!after.iter().any(|a| a.starts_with("mount: ")), "{after:?}");
}

fn snapshot_sees_a_marked_process(env: &Env) {
    let _guard = run_lock();
    let before = HostSnapshot::take();
    let marker = format!("{MARKER_PREFIX}{}", unique_token());
    let mut child = std::process::Command::new(env.rootfs().join("bin/probe"))
        .args(["sleep", "30", &marker])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let added = before.added(&HostSnapshot::take());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(added.iter().any(|a| a.contains(&marker)), "{added:?}");
    assert!(before
        .leftovers_after_settling(Duration::from_secs(2))
        .is_empty());
}
