//! The real clients (issue 13): Debian's Podman (with conmon) and
//! containerd (`ctr` and the runc v2 shim) run containers with microbox as
//! their OCI runtime. Each test gives its engine storage and state of its
//! own under a temporary directory, the cgroupfs manager and no network,
//! and removes all of it afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use crate::harness::{open_pty, skip, Env, TempDir};

/// Host leg only: the VM image holds microbox, the probe and busybox, and
/// no engine (its kernel and cgroup v2 are covered by `oci.rs`).
pub fn tests() -> Vec<Trial> {
    if std::env::var("MICROBOX_TEST_LEG").as_deref() == Ok("vm") {
        return Vec::new();
    }
    crate::trials![
        Image: [
            podman_runs_exec_stops_and_limits_containers_with_microbox,
            containerd_runs_and_execs_with_microbox_as_the_runc_binary,
        ],
    ]
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout:\n{}--- stderr:\n{}---",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Podman with everything of its own below `work`.
struct Podman {
    work: TempDir,
    conf: PathBuf,
    bin: PathBuf,
}

impl Podman {
    fn new(env: &Env) -> Podman {
        let work = TempDir::new("podman");
        let conf = work.join("containers.conf");
        // The host's hard NOFILE limit is below Podman's default of 1048576,
        // which no runtime could set (see OCI-NOTES.md).
        std::fs::write(
            &conf,
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 runtime = \"microbox\"\n\
                 runtime_supports_json = [\"crun\", \"runc\", \"microbox\"]\n\
                 [engine.runtimes]\nmicrobox = [\"{}\"]\n",
                env.bin.display()
            ),
        )
        .unwrap();
        Podman {
            work,
            conf,
            bin: env.bin.clone(),
        }
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("podman");
        // conmon writes an `oom` file into its working directory after an
        // OOM kill: keep it in the test's own directory.
        cmd.current_dir(&self.work.path)
            .env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(self.work.join("storage"))
            .arg("--runroot")
            .arg(self.work.join("run"))
            .arg("--tmpdir")
            .arg(self.work.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .arg("--runtime")
            .arg(&self.bin)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let start = Instant::now();
        let out = self.cmd().args(args).output().unwrap();
        eprintln!(
            "podman {args:?}: {:?} in {:?}",
            out.status.code(),
            start.elapsed()
        );
        out
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af", "-t", "0"]).output();
        let _ = self.cmd().args(["system", "reset", "-f"]).output();
    }
}

const IMAGE: &str = "localhost/mbx-test:latest";

fn podman_runs_exec_stops_and_limits_containers_with_microbox(env: &Env) {
    if !have("podman") || !have("conmon") {
        skip("podman and conmon are not installed (apt-get install podman)");
    }
    let p = Podman::new(env);
    let tar = p.work.join("image.tar");
    let made = Command::new("tar")
        .arg("-C")
        .arg(env.rootfs())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(made.success());
    let out = p.run(&["import", tar.to_str().unwrap(), IMAGE]);
    assert!(out.status.success(), "{}", text(&out));

    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(args);
        p.run(&all)
    };
    let out = run(&[IMAGE, "echo", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi\n",
        "{}",
        text(&out)
    );
    let out = run(&[IMAGE, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = run(&[IMAGE, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("executable file not found"),
        "{}",
        text(&out)
    );

    // Detached, exec into it, stop, remove.
    let out = p.run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "mbx-d",
        IMAGE,
        "sleep",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = p.run(&["exec", "mbx-d", "sh", "-c", "echo in-$(hostname)"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("in-"),
        "{}",
        text(&out)
    );
    // exec -it: the exec'd process's terminal through conmon's console socket.
    let (seen, status) = on_pty(
        p.cmd(),
        &[
            "exec",
            "-it",
            "mbx-d",
            "sh",
            "-c",
            "tty; echo exec-on-the-tty",
        ],
        "exec-on-the-tty",
    );
    assert!(
        seen.contains("/dev/pts/") && seen.contains("exec-on-the-tty"),
        "{seen:?}"
    );
    assert_eq!(status, Some(0), "{seen:?}");
    let out = p.run(&["stop", "-t", "1", "mbx-d"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = p.run(&["rm", "-f", "-t", "0", "mbx-d"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Limits: an OOM kill at --memory, a refused fork at --pids-limit.
    let out = run(&[
        "--memory",
        "64m",
        "--memory-swap",
        "64m",
        IMAGE,
        "/bin/probe",
        "alloc",
        "256",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out));
    let out = run(&["--pids-limit", "10", IMAGE, "/bin/probe", "forks", "50"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let count = |key: &str| -> u32 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} line\n{}", text(&out)))
    };
    assert!(count("forked=") < 10, "{}", text(&out));
    assert!(count("eagain=") > 0, "{}", text(&out));

    // The device cgroup: a disk node made inside does not open.
    let out = run(&[IMAGE, "/bin/probe", "mknod-block", "/dev"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mknod_blk=ok"),
        "root Podman grants CAP_MKNOD\n{}",
        text(&out)
    );
    assert!(stdout.contains("open_blk=EPERM"), "{}", text(&out));

    // --device: the node in the container, allowed by its device rule.
    let out = run(&[
        "--device",
        "/dev/zero:/dev/myzero",
        IMAGE,
        "sh",
        "-c",
        "head -c 4 /dev/myzero | wc -c",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "4",
        "{}",
        text(&out)
    );

    // -it under a terminal the test made.
    let (seen, status) = on_pty(
        p.cmd(),
        &[
            "run",
            "--rm",
            "-it",
            "--network",
            "none",
            IMAGE,
            "sh",
            "-c",
            "tty; echo on-the-tty",
        ],
        "on-the-tty",
    );
    assert!(
        seen.contains("/dev/pts/0") && seen.contains("on-the-tty"),
        "{seen:?}"
    );
    assert_eq!(status, Some(0), "{seen:?}");
    assert_no_containers_left();
    assert!(
        !Path::new("oom").exists(),
        "conmon's oom file stays in the test's directory"
    );
}

/// microbox's default root holds no container once the engine removed them.
fn assert_no_containers_left() {
    let left: Vec<String> = std::fs::read_dir(crate::harness::OCI_ROOT)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "containers left in {}: {left:?}",
        crate::harness::OCI_ROOT
    );
}

/// Runs `cmd args` with a pty the test made as its stdio (as a user's
/// terminal): what it printed up to `want`, and its exit status.
fn on_pty(mut cmd: Command, args: &[&str], want: &str) -> (String, Option<i32>) {
    let Some((master, slave)) = open_pty() else {
        panic!("no pty for the -it check");
    };
    let (out_end, err_end) = (slave.try_clone().unwrap(), slave.try_clone().unwrap());
    cmd.args(args)
        .stdin(Stdio::from(slave))
        .stdout(Stdio::from(out_end))
        .stderr(Stdio::from(err_end));
    let mut child = cmd.spawn().unwrap();
    let seen = read_until(master, want, Duration::from_secs(60));
    (seen, wait_child(&mut child, Duration::from_secs(60)))
}

fn read_until(master: std::os::fd::OwnedFd, want: &str, within: Duration) -> String {
    use std::io::Read;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut file = std::fs::File::from(master);
        let mut buf = [0u8; 512];
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(bytes) => seen.extend(bytes),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn wait_child(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A containerd of the test's own: its socket, root and state below `work`.
struct Containerd {
    work: TempDir,
    daemon: Child,
}

impl Containerd {
    fn start() -> Containerd {
        let work = TempDir::new("containerd");
        let config = work.join("config.toml");
        std::fs::write(
            &config,
            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
        )
        .unwrap();
        let log = std::fs::File::create(work.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .arg("--address")
            .arg(work.join("containerd.sock"))
            .arg("--root")
            .arg(work.join("root"))
            .arg("--state")
            .arg(work.join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let c = Containerd { work, daemon };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.work.join("containerd.sock").exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.work.join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let start = Instant::now();
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.work.join("containerd.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "ctr {args:?}: {:?} in {:?}",
            out.status.code(),
            start.elapsed()
        );
        out
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // The shims exit with their last task; a mount left by a crash
        // would keep the directory busy, so unmount anything below it.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep ' {0}' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r umount -l",
                self.work.path.display()
            ))
            .status();
    }
}

fn containerd_runs_and_execs_with_microbox_as_the_runc_binary(env: &Env) {
    if !have("containerd") || !have("ctr") || !have("containerd-shim-runc-v2") {
        skip("containerd is not installed (apt-get install containerd)");
    }
    let (_copy, rootfs) = crate::harness::image_copy(env, "ctr-rootfs");
    let c = Containerd::start();
    let bin = env.bin.to_str().unwrap();
    let rootfs_arg = rootfs.to_str().unwrap();
    let base = [
        "run",
        "--rm",
        "--runtime",
        "io.containerd.runc.v2",
        "--runc-binary",
        bin,
        "--rootfs",
        rootfs_arg,
    ];
    let mut args = base.to_vec();
    args.extend(["mbx-ctr-1", "/bin/echo", "hi"]);
    let out = c.ctr(&args);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), c.log());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi\n",
        "{}",
        text(&out)
    );

    let mut args = vec![
        "run",
        "-d",
        "--runtime",
        "io.containerd.runc.v2",
        "--runc-binary",
        bin,
        "--rootfs",
        rootfs_arg,
    ];
    args.extend(["mbx-ctr-2", "/bin/sleep", "1000"]);
    let out = c.ctr(&args);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), c.log());
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "mbx-ctr-2",
        "/bin/sh",
        "-c",
        "echo in-the-task",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), c.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in-the-task\n");
    let out = c.ctr(&["task", "ps", "mbx-ctr-2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = c.ctr(&["task", "kill", "-s", "SIGKILL", "mbx-ctr-2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = c.ctr(&["task", "rm", "mbx-ctr-2"]);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&out));
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = c.ctr(&["container", "rm", "mbx-ctr-2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let state: Vec<PathBuf> = std::fs::read_dir("/run/containerd/runc/default")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        state
            .iter()
            .all(|p| !p.to_string_lossy().contains("mbx-ctr")),
        "{state:?}"
    );
}
