//! Sandbox root is host root for files (the id map is 1:1), so where the sandbox
//! can write host storage (`--mount-rw`, `--fs host`) it must not leave behind a
//! setuid/setgid binary, a device node or file capabilities that the host would
//! honour for any user. Also: AF_VSOCK, which no network namespace separates.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{require_root_and_rootfs, TempDir};

const FSETID: u32 = 4;
const MKNOD: u32 = 27;
const SETFCAP: u32 = 31;

fn has_cap(hex: &str, cap: u32) -> bool {
    u64::from_str_radix(hex.trim(), 16).expect("capability hex") & (1 << cap) != 0
}

#[test]
fn a_writable_bind_gets_no_setid_binary_and_no_device_node() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let shared = TempDir::new("host-storage");
    let bind = format!("{}:/work", shared.path.display());
    let script = "cp /bin/busybox /work/x; \
                  chmod 4755 /work/x; echo suid=$?; \
                  chmod 2755 /work/x; echo sgid=$?; \
                  chmod 0755 /work/x; echo plain=$?; \
                  mknod /work/null c 1 3; echo mknod=$?";
    let out = env
        .microbox()
        .args(env.fs_args())
        .args(["--mount-rw", &bind, "--", "/bin/sh", "-c", script])
        .output();
    out.assert_success();
    assert_ne!(out.value("suid"), "0", "{out}");
    assert_ne!(out.value("sgid"), "0", "{out}");
    assert_eq!(out.value("plain"), "0", "ordinary modes still work\n{out}");
    assert_ne!(out.value("mknod"), "0", "{out}");
    let mode = std::fs::metadata(shared.join("x"))
        .expect("the copy exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o6000, 0, "a setid bit reached the host: {mode:o}");
    assert!(
        !shared.join("null").exists(),
        "a device node reached the host"
    );
}

#[test]
fn a_writable_bind_drops_mknod_setfcap_and_fsetid_unless_asked() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let shared = TempDir::new("host-storage-caps");
    let bind = format!("{}:/work", shared.path.display());
    let out = env.probe(&["--mount-rw", &bind], &["caps"]);
    out.assert_success();
    let eff = out.value("CapEff");
    assert!(
        !has_cap(eff, MKNOD) && !has_cap(eff, SETFCAP) && !has_cap(eff, FSETID),
        "{out}"
    );
    let out = env.probe(&["--mount-rw", &bind, "--cap-add", "SETFCAP"], &["caps"]);
    out.assert_success();
    assert!(
        has_cap(out.value("CapEff"), SETFCAP),
        "an explicit --cap-add wins\n{out}"
    );
}

#[test]
fn an_image_sandbox_without_host_storage_may_still_make_setuid_files() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // Package managers set setuid bits; in the in-memory layer that is harmless
    // (the root is nosuid and vanishes with the sandbox), so it keeps working.
    let out = env
        .microbox()
        .args(env.fs_args())
        .args([
            "--",
            "/bin/sh",
            "-c",
            "cp /bin/busybox /tmp/x && chmod 4755 /tmp/x; echo suid=$?",
        ])
        .output();
    out.assert_success();
    assert_eq!(out.value("suid"), "0", "{out}");
    let out = env.probe(&[], &["caps"]);
    assert!(
        has_cap(out.value("CapEff"), MKNOD) && has_cap(out.value("CapEff"), SETFCAP),
        "{out}"
    );
}

#[test]
fn overwriting_an_existing_setuid_file_clears_its_bit_even_with_userns_host() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let shared = TempDir::new("host-storage-fsetid");
    let target = shared.join("s");
    std::fs::copy(env.rootfs().join("bin/busybox"), &target).expect("copy");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let bind = format!("{}:/w", shared.path.display());
    // Under --userns host, FSETID would be a real capability and a write would
    // keep the setuid bit; it is left out where host storage is writable.
    let out = env
        .microbox()
        .args(env.fs_args())
        .args(["--userns", "host", "--mount-rw", &bind, "--"])
        .args(["/bin/sh", "-c", "cp /bin/busybox /w/s; echo cp=$?"])
        .output();
    out.assert_success();
    assert_eq!(out.value("cp"), "0", "{out}");
    let mode = std::fs::metadata(&target)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o6000,
        0,
        "the setuid bit survived the write: {mode:o}"
    );
}

#[test]
fn vsock_sockets_are_refused() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let out = env.probe(&[], &["vsock"]);
    out.assert_success();
    assert_eq!(out.value("vsock"), "EPERM", "{out}");
}
