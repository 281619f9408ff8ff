//! Hosts whose root is the initramfs (issue 15, item 5): registered only in
//! the VM boot that stays on the initramfs (MICROBOX_TEST_ROOT=initramfs),
//! where the rest of the suite runs too. There the sandbox's root is moved
//! over / and chrooted into, and what a chroot would give back is closed.

use libtest_mimic::Trial;

use crate::harness::{Env, TempDir};

/// A file of the VM's initramfs root that no sandbox may see.
const HOST_ONLY: &str = "/init";

pub fn tests() -> Vec<Trial> {
    if std::env::var("MICROBOX_TEST_ROOT").as_deref() != Ok("initramfs") {
        return Vec::new();
    }
    crate::trials![
        Image: [
            the_host_is_really_on_its_initramfs,
            the_sandbox_sees_its_own_root_and_not_the_initramfs,
            a_chroot_escape_is_refused_even_with_cap_sys_admin,
            options_that_reopen_the_way_out_are_refused,
            cap_sys_chroot_is_not_in_any_set,
            oci_create_is_refused_in_one_line,
        ],
    ]
}

/// The leg proves nothing unless / is the rootfs here.
fn the_host_is_really_on_its_initramfs(_env: &Env) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = info
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no / in mountinfo:\n{info}"));
    let fstype = root
        .split(" - ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next());
    assert_eq!(fstype, Some("rootfs"), "{root}");
    assert!(std::path::Path::new(HOST_ONLY).exists());
}

fn the_sandbox_sees_its_own_root_and_not_the_initramfs(env: &Env) {
    let through_proc = format!("/proc/self/root{HOST_ONLY}");
    for path in [
        HOST_ONLY,
        &through_proc,
        "/tests",
        "/usr/local/bin/microbox",
    ] {
        let out = env.probe(&[], &["stat", path]);
        out.assert_success();
        assert_eq!(
            out.value("stat"),
            "ENOENT",
            "{path} of the initramfs is visible\n{out}"
        );
    }
    // The sandbox's PID 1 is microbox's init, not dumpable: no view at all.
    let pid1 = format!("/proc/1/root{HOST_ONLY}");
    let out = env.probe(&[], &["stat", &pid1]);
    assert!(
        matches!(out.value("stat"), "ENOENT" | "EACCES"),
        "{pid1}\n{out}"
    );
    let cwd = env.probe(&[], &["cwd"]);
    cwd.assert_success();
    assert_eq!(cwd.value("cwd"), "/", "{cwd}");
    let fds = env.probe(&[], &["fds"]);
    fds.assert_success();
    assert_eq!(fds.value("fds"), "0,1,2", "{fds}");
}

/// chroot into a jail with the working directory outside it, then `..` up
/// and out: seccomp refuses the chroot, with and without CAP_SYS_ADMIN.
fn a_chroot_escape_is_refused_even_with_cap_sys_admin(env: &Env) {
    for opts in [&[][..], &["--cap-add", "SYS_ADMIN"][..]] {
        let out = env.probe(opts, &["chroot-escape", "/tmp", HOST_ONLY]);
        out.assert_success();
        assert_eq!(out.value("chroot"), "EPERM", "{opts:?}\n{out}");
        assert!(out.get("marker").is_none(), "{opts:?}\n{out}");
    }
    // The other ways to get CAP_SYS_CHROOT back, or the rootfs uncovered.
    for opts in [&[][..], &["--cap-add", "SYS_ADMIN"][..]] {
        let names = [
            "clone",
            "clone3",
            "unshare",
            "setns",
            "umount2",
            "open_by_handle_at",
        ];
        let mut args = vec!["syscall"];
        args.extend(names);
        let out = env.probe(opts, &args);
        out.assert_success();
        for name in names {
            let got = out.value(&format!("result.{name}"));
            assert!(
                matches!(got, "EPERM" | "ENOSYS"),
                "{opts:?}: {name} gave {got}\n{out}"
            );
        }
    }
    // The check has teeth: outside a sandbox the same escape reaches the marker.
    let dir = TempDir::new("chroot-escape");
    let host = env.probe_on_host(&["chroot-escape", &dir.path.display().to_string(), HOST_ONLY]);
    assert_eq!(host.value("chroot"), "ok", "{host}");
    assert_eq!(host.value("marker"), "seen", "{host}");
}

fn options_that_reopen_the_way_out_are_refused(env: &Env) {
    for opts in [
        &["--cap-add", "SYS_CHROOT"][..],
        &["--allow-syscall", "chroot"][..],
        &["--allow-syscall", "mount"][..],
        &["--allow-syscall", "unshare"][..],
        &["--allow-syscall", "open_by_handle_at"][..],
        &["--allow-syscall", "io_uring_setup"][..],
    ] {
        let out = env.probe(opts, &["pid"]);
        let line = out.assert_microbox_error();
        assert!(line.contains("initramfs"), "{opts:?}: {line}");
    }
}

fn cap_sys_chroot_is_not_in_any_set(env: &Env) {
    let out = env.probe(&[], &["caps"]);
    out.assert_success();
    for key in ["CapEff", "CapPrm", "CapBnd"] {
        let set = u64::from_str_radix(out.value(key), 16).unwrap();
        assert_eq!(set & (1 << 18), 0, "{key} has CAP_SYS_CHROOT\n{out}");
    }
}

fn oci_create_is_refused_in_one_line(env: &Env) {
    let root = TempDir::new("oci-root");
    let bundle = TempDir::new("oci-bundle");
    std::fs::write(bundle.join("config.json"), "{}").unwrap();
    let out = env.run(&[
        "--root",
        &root.path.display().to_string(),
        "create",
        "--bundle",
        &bundle.path.display().to_string(),
        "initramfs-c1",
    ]);
    assert_eq!(out.code, Some(1), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("initramfs"), "{out}");
    assert!(
        std::fs::read_dir(&root.path).unwrap().next().is_none(),
        "state left: {out}"
    );
}
