//! What a command sees in a default sandbox, and what it leaves on the host
//! (issue 2, item 8): PID 1 is microbox's init, hostname, environment, network,
//! process isolation, overlay and bind mounts, inherited fds, nothing left behind.
//! Every run also goes through the harness's host snapshot comparison.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::{image_copy, open_fd, require_root_and_rootfs, tree_state, TempDir};

#[test]
fn command_is_pid_2_under_microbox_init() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let out = env.probe(&[], &["pid"]);
    out.assert_success();
    assert_eq!(out.value("pid"), "2", "{out}");
    assert_eq!(out.value("ppid"), "1", "{out}");

    let procs = env.probe(&[], &["procs"]);
    procs.assert_success();
    let init = procs.value("proc.1");
    assert!(
        init.starts_with("microbox") || init == "init",
        "PID 1 should be microbox's init, not {init:?}\n{procs}"
    );
}

#[test]
fn host_processes_are_invisible() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let out = env.probe(&[], &["procs"]);
    out.assert_success();
    assert_eq!(
        out.value("pids"),
        "1,2",
        "only init and the command may be visible\n{out}"
    );
}

#[test]
fn default_hostname_is_a_random_adjective_noun() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let out = env.probe(&[], &["hostname"]);
    out.assert_success();
    let name = out.value("hostname");
    let parts: Vec<&str> = name.split('-').collect();
    assert!(
        parts.len() == 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase())),
        "hostname {name:?} is not adjective-noun\n{out}"
    );
    assert_ne!(name, host.trim(), "the sandbox has the host's hostname");
}

#[test]
fn hostname_option_sets_the_hostname() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let out = env.probe(&["--hostname", "my-sandbox"], &["hostname"]);
    out.assert_success();
    assert_eq!(out.value("hostname"), "my-sandbox", "{out}");
    // The README's example, with the image's own `hostname`.
    let out = env
        .microbox()
        .args(env.fs_args())
        .args([
            "--hostname",
            "my-sandbox",
            "--",
            "/bin/sh",
            "-c",
            "hostname",
        ])
        .output();
    out.assert_success();
    assert_eq!(out.stdout, "my-sandbox\n", "{out}");
}

#[test]
fn environment_is_cleared_to_the_defaults() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let out = env
        .probe_run(&[], &["env"])
        .var("SECRET", "1")
        .var("MBX_HOST_ONLY", "leak")
        .output();
    out.assert_success();
    let keys: BTreeSet<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("env."))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    let want: BTreeSet<&str> = ["HOME", "LANG", "PATH", "TERM"].into();
    assert_eq!(keys, want, "{out}");
    assert!(!out.value("env.PATH").is_empty(), "{out}");
}

#[test]
fn env_option_adds_and_overrides_variables() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let out = env
        .probe_run(
            &[
                "--env",
                "FOO=bar",
                "--env",
                "EMPTY=",
                "--env",
                "HOME=/work",
                "--env",
                "EQ=a=b",
            ],
            &["env"],
        )
        .var("SECRET", "1")
        .output();
    out.assert_success();
    assert_eq!(out.get("env.FOO"), Some("bar"), "{out}");
    assert_eq!(out.get("env.EMPTY"), Some(""), "{out}");
    assert_eq!(out.get("env.HOME"), Some("/work"), "{out}");
    assert_eq!(out.get("env.EQ"), Some("a=b"), "{out}");
    assert_eq!(out.get("env.SECRET"), None, "{out}");
    // The README's example.
    let out = env
        .microbox()
        .args(env.fs_args())
        .args([
            "--env",
            "MY_VAR=hello",
            "--",
            "/bin/sh",
            "-c",
            "echo $MY_VAR",
        ])
        .output();
    out.assert_success();
    assert_eq!(out.stdout, "hello\n", "{out}");
}

#[test]
fn default_network_has_only_loopback() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    for opts in [&[][..], &["--net", "none"][..]] {
        let out = env.probe(opts, &["net"]);
        out.assert_success();
        assert_eq!(out.value("links"), "lo", "{opts:?}\n{out}");
    }
}

#[test]
fn tmpfs_mode_root_is_empty_but_for_proc_dev_and_mounts() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let bin = format!("{}:/bin", env.rootfs().join("bin").display());
    let out = env
        .microbox()
        .args(["--mount-ro", &bin, "--", "/bin/busybox", "ls", "-a", "/"])
        .output();
    out.assert_success();
    let entries: BTreeSet<&str> = out
        .stdout
        .split_whitespace()
        .filter(|e| *e != "." && *e != "..")
        .collect();
    let want: BTreeSet<&str> = ["bin", "dev", "proc"].into();
    assert_eq!(entries, want, "{out}");

    let out = env
        .microbox()
        .args([
            "--fs",
            "tmpfs",
            "--mount-ro",
            &bin,
            "--",
            "/bin/probe",
            "mounts",
            "/",
        ])
        .output();
    out.assert_success();
    assert_eq!(out.value("fstype"), "tmpfs", "{out}");
}

#[test]
fn fs_host_sees_the_host_tree_with_its_own_pid_namespace() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let dir = TempDir::new("fs-host");
    std::fs::write(dir.join("marker"), "from the host\n").unwrap();
    let probe = env.rootfs().join("bin/probe");
    let marker = dir.join("marker");
    let out = env
        .microbox()
        .args([
            "--fs".as_ref(),
            "host".as_ref(),
            "--".as_ref(),
            probe.as_os_str(),
            "read".as_ref(),
            marker.as_os_str(),
        ])
        .output();
    out.assert_success();
    assert_eq!(out.value("content"), "from the host", "{out}");
    let out = env
        .microbox()
        .args([
            "--fs".as_ref(),
            "host".as_ref(),
            "--".as_ref(),
            probe.as_os_str(),
            "procs".as_ref(),
        ])
        .output();
    out.assert_success();
    assert_eq!(out.value("pids"), "1,2", "{out}");
}

#[test]
fn overlay_writes_do_not_reach_the_image() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    // A private copy: a broken overlay must not damage the shared image.
    let (_dir, image) = image_copy(&env, "overlay");
    let before = tree_state(&image);
    let script = "echo new > /mbx-new \
        && echo more >> /etc/passwd \
        && rm /bin/ls \
        && mkdir /mbx-dir \
        && chmod 700 /bin \
        && ln -s /etc /mbx-link \
        && cat /mbx-new";
    let out = env
        .microbox()
        .args(["--fs".as_ref(), image.as_os_str()])
        .args(["--", "/bin/sh", "-c", script])
        .output();
    out.assert_success();
    assert_eq!(out.stdout, "new\n", "the writes must work inside\n{out}");
    assert_eq!(tree_state(&image), before, "the image directory changed");

    // And the next sandbox starts from the image again.
    let out = env
        .microbox()
        .args(["--fs".as_ref(), image.as_os_str()])
        .args(["--", "/bin/probe", "stat", "/mbx-new"])
        .output();
    out.assert_success();
    assert_eq!(out.value("stat"), "ENOENT", "{out}");
}

#[test]
fn overlay_writes_into_the_shared_image_leave_it_unchanged() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let before = tree_state(env.rootfs());
    let out = env.probe(&[], &["write", "/mbx-probe-write", "x"]);
    out.assert_success();
    assert_eq!(out.value("write"), "ok", "{out}");
    assert_eq!(tree_state(env.rootfs()), before, "the test image changed");
}

#[test]
fn mount_rw_writes_reach_the_host() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let dir = TempDir::new("mount-rw");
    std::fs::write(dir.join("existing"), "host data\n").unwrap();
    let spec = format!("{}:/data", dir.path.display());
    let out = env.probe(
        &["--mount-rw", &spec],
        &["write", "/data/from-sandbox", "hello"],
    );
    out.assert_success();
    assert_eq!(out.value("write"), "ok", "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.join("from-sandbox")).unwrap(),
        "hello"
    );

    let out = env.probe(&["--mount-rw", &spec], &["read", "/data/existing"]);
    out.assert_success();
    assert_eq!(out.value("content"), "host data", "{out}");
}

#[test]
fn mount_ro_is_read_only() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let dir = TempDir::new("mount-ro");
    std::fs::write(dir.join("existing"), "host data\n").unwrap();
    let before = tree_state(&dir.path);
    let spec = format!("{}:/data", dir.path.display());
    let out = env.probe(&["--mount-ro", &spec], &["write", "/data/new", "x"]);
    out.assert_success();
    assert_eq!(out.value("write"), "EROFS", "{out}");
    let out = env.probe(&["--mount-ro", &spec], &["open", "/data/existing", "w"]);
    out.assert_success();
    assert_eq!(out.value("open"), "EROFS", "{out}");
    let out = env.probe(&["--mount-ro", &spec], &["read", "/data/existing"]);
    out.assert_success();
    assert_eq!(out.value("content"), "host data", "{out}");
    let out = env.probe(&["--mount-ro", &spec], &["mounts", "/data"]);
    out.assert_success();
    assert_eq!(out.value("ro"), "1", "{out}");
    assert_eq!(
        tree_state(&dir.path),
        before,
        "a read-only mount changed the host"
    );
}

#[test]
fn mount_ro_in_tmpfs_mode_like_the_readme() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let bin = format!("{}:/bin", env.rootfs().join("bin").display());
    let out = env
        .microbox()
        .args(["--mount-ro", &bin, "--", "/bin/ls", "/bin/probe"])
        .output();
    out.assert_success();
    assert_eq!(out.stdout, "/bin/probe\n", "{out}");
}

#[test]
fn only_fds_0_1_2_reach_the_command() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let dir = TempDir::new("fds");
    std::fs::write(dir.join("secret"), "host secret\n").unwrap();
    let out = env
        .probe_run(&[], &["fds"])
        .inherit_fd(7, open_fd(&dir.join("secret")))
        .inherit_fd(8, open_fd(&dir.path))
        .output();
    out.assert_success();
    assert_eq!(out.value("fds"), "0,1,2", "{out}");
}

#[test]
fn nothing_is_left_behind_in_any_basic_mode() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let dir = TempDir::new("leftovers");
    let spec = format!("{}:/data", dir.path.display());
    let bin = format!("{}:/bin", env.rootfs().join("bin").display());
    let image = env.rootfs().display().to_string();
    let runs: &[&[&str]] = &[
        &["--mount-ro", &bin, "--", "/bin/true"],
        &["--fs", &image, "--", "/bin/true"],
        &[
            "--fs",
            &image,
            "--net",
            "none",
            "--mount-rw",
            &spec,
            "--",
            "/bin/true",
        ],
        &["--fs", &image, "--", "/bin/false"],
        &["--fs", &image, "--", "/bin/nonexistent-mbx"],
        &["--fs", "host", "--", "/bin/true"],
    ];
    // The harness compares host snapshots around each run and fails on additions.
    for args in runs {
        let out = env.run(args);
        assert!(out.code.is_some(), "{out}");
    }
}
