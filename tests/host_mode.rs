//! What `--fs host` and `--userns host` still hold: the host's files are shared,
//! but not the controls that keep sandboxes in (cgroupfs, microbox's lock files),
//! and device nodes made with CAP_MKNOD cannot be opened.

mod common;

use std::path::Path;

use common::{require_root_and_rootfs, Env, Outcome, TempDir};

/// The probe binary of the test image, run as a host path under `--fs host`.
fn probe_in_host_mode(env: &Env, opts: &[&str], probe_args: &[&str]) -> Outcome {
    let probe = env.rootfs().join("bin/probe");
    env.microbox()
        .args(["--fs", "host"])
        .args(opts)
        .arg("--")
        .arg(probe)
        .args(probe_args)
        .output()
}

/// A cgroupfs file the host's root may write: the sandbox must not be able to.
fn writable_cgroup_file() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.procs").exists() {
        "/sys/fs/cgroup/cgroup.procs"
    } else {
        "/sys/fs/cgroup/pids/cgroup.procs"
    }
}

#[test]
fn fs_host_cannot_write_cgroupfs() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let file = writable_cgroup_file();
    // Baseline: the host test process opens it for writing (nothing is written).
    let host = env.probe_on_host(&["open", file, "w"]);
    assert_eq!(host.value("open"), "ok", "baseline on the host\n{host}");
    let out = probe_in_host_mode(&env, &[], &["open", file, "w"]);
    out.assert_success();
    assert_eq!(out.value("open"), "EROFS", "{out}");
}

#[test]
fn fs_host_hides_microbox_lock_files() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // While this sandbox runs, its own lock file exists on the host.
    let out = probe_in_host_mode(&env, &[], &["stat", "/run/microbox/sandboxes"]);
    out.assert_success();
    assert_eq!(out.value("stat"), "ENOENT", "{out}");
}

#[test]
fn fs_host_readonly_keeps_the_host_tree_unwritable_and_tmp_writable() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // --readonly puts a fresh tmpfs on /tmp, and the checkout may live there: the
    // probe and the file it tries run from a directory outside /tmp.
    let base = Path::new("/var/tmp");
    let scratch = TempDir::new_in(if base.is_dir() { base } else { Path::new("/") }, "ro-host");
    let probe = scratch.join("probe");
    std::fs::copy(env.rootfs().join("bin/probe"), &probe).expect("copy the probe");
    let file = scratch.join("file");
    std::fs::write(&file, "unchanged\n").expect("write a host file");
    let (probe, file) = (
        probe.to_str().expect("utf-8"),
        file.to_str().expect("utf-8"),
    );
    let run = |args: &[&str]| {
        env.microbox()
            .args(["--fs", "host", "--readonly", "--", probe])
            .args(args)
            .output()
    };

    let host = env.probe_on_host(&["open", file, "w"]);
    assert_eq!(host.value("open"), "ok", "baseline on the host\n{host}");
    let out = run(&["open", file, "w"]);
    out.assert_success();
    assert_eq!(out.value("open"), "EROFS", "{out}");

    let marker = format!("/tmp/microbox-host-readonly-{}", std::process::id());
    let out = run(&["open", &marker, "create"]);
    out.assert_success();
    assert_eq!(out.value("open"), "ok", "{out}");
    // The sandbox's /tmp is its own: nothing reached the host's /tmp.
    assert!(!Path::new(&marker).exists());
}

#[test]
fn device_nodes_made_in_dev_cannot_be_opened_even_with_mknod() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // --userns host keeps CAP_MKNOD as a real host capability.
    let out = env.probe(&["--userns", "host"], &["mknod-block", "/dev"]);
    out.assert_success();
    assert_eq!(out.value("mknod_blk"), "ok", "{out}");
    // EACCES is the nodev answer (a missing device would say ENXIO).
    assert_eq!(out.value("open_blk"), "EACCES", "{out}");
    assert_eq!(out.value("open_mem"), "EACCES", "{out}");
}
