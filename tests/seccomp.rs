//! The seccomp filter by construction (issue 8, items 1 and 2): numbers the
//! syscall tables do not name get ENOSYS, the calls newer than Linux 6.1 are
//! decided, and `--cap-add SYS_ADMIN` reaches no unmasked /proc and no
//! writable /proc/sys by any mount route.

#![allow(clippy::unwrap_used)]

mod common;

use common::require_root_and_rootfs;
use microbox::security::syscalls::{self, Arch};

/// Every number from the table's highest + 1 to 1023 is ENOSYS inside, and on
/// x86_64 so is the table's hole (337-423: x32 and i386 numbers only). The host
/// run is the baseline: a kernel newer than the tables would show its new calls
/// there, and the sandbox must still say ENOSYS.
#[test]
fn numbers_the_tables_do_not_name_get_enosys() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // The binary says which table its filter was built from.
    let version = env.run(&["--version"]);
    version.assert_success();
    let highest: u32 = version
        .stdout
        .split("(highest ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("--version names no syscall table\n{version}"));
    assert_eq!(highest, syscalls::highest(Arch::NATIVE), "{version}");
    let mut ranges = vec![(highest + 1, 1023)];
    ranges.extend(syscalls::unnamed_ranges(Arch::NATIVE));
    for (lo, hi) in ranges {
        let (lo_s, hi_s) = (lo.to_string(), hi.to_string());
        let host = env.probe_on_host(&["numbers", &lo_s, &hi_s]);
        let inside = env.probe(&[], &["numbers", &lo_s, &hi_s]);
        inside.assert_success();
        let count = hi - lo + 1;
        assert_eq!(
            inside.value("enosys"),
            count.to_string(),
            "{lo}-{hi}: numbers no table names reached something in the sandbox \
             (host baseline: {host})\n{inside}"
        );
        if host.value("enosys") != count.to_string() {
            eprintln!("the host kernel has calls in {lo}-{hi} the tables lack: {host}");
        }
    }
}

/// The calls of Linux 6.2-7.2 that belong with denied families are denied; an
/// allowed one still reaches the kernel.
#[test]
fn calls_newer_than_linux_6_1_are_decided() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let names = [
        "open_tree_attr",
        "statmount",
        "listmount",
        "listns",
        "mseal",
    ];
    let mut args = vec!["syscall"];
    args.extend(names);
    let host = env.probe_on_host(&args);
    let inside = env.probe(&[], &args);
    inside.assert_success();
    for name in ["open_tree_attr", "statmount", "listmount", "listns"] {
        assert_eq!(
            inside.value(&format!("result.{name}")),
            "EPERM",
            "{name} (host {})\n{inside}",
            host.get(&format!("result.{name}")).unwrap_or("?")
        );
    }
    // mseal of nothing succeeds where the kernel has it (6.10+); the VM's 6.1
    // kernel answers ENOSYS itself, as the host baseline shows.
    assert_eq!(
        inside.value("result.mseal"),
        host.value("result.mseal"),
        "mseal is allowed\n{inside}"
    );
}

/// With `--cap-add SYS_ADMIN` (under both user namespace modes) every route
/// the review used to reach an unmasked /proc or a writable /proc/sys is
/// refused at its first step: open_tree, open_tree_attr, fsopen, a new proc
/// mount, mount_setattr and a remount of /proc/sys, an unmount of a mask, and
/// a new procfs in a new mount namespace.
#[test]
fn cap_sys_admin_reaches_no_unmasked_proc() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let routes = [
        ("open_tree", "open_tree:EPERM"),
        ("open_tree_attr", "open_tree_attr:EPERM"),
        ("fsopen", "fsopen:EPERM"),
        ("mount", "mount:EPERM"),
        ("mount_setattr", "mount_setattr:EPERM"),
        ("remount_rw", "mount:EPERM"),
        ("umount_mask", "umount2:EPERM"),
        ("unshare_new_proc", "unshare:EPERM"),
    ];
    for userns in ["isolated", "host"] {
        let out = env.probe(
            &["--cap-add", "SYS_ADMIN", "--userns", userns],
            &["proc-routes", "/tmp"],
        );
        out.assert_success();
        for (route, want) in routes {
            let got = out.value(&format!("route.{route}"));
            assert!(
                !got.contains("LEAK"),
                "--userns {userns}: {route} leaked: {got}\n{out}"
            );
            assert_eq!(got, want, "--userns {userns}: {route}\n{out}");
        }
    }
}
