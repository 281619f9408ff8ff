//! The OCI runtime interface (issue 13), driven as conmon and the runc shim
//! drive it: create, state, start, exec, kill, delete on a bundle made from
//! the test image; the console socket; the error log; pid reuse; unknown
//! ids; the device cgroup. The Podman and containerd smoke tests are in
//! `engines.rs`.
//!
//! Each test uses its own `--root` and a cgroup below `/mbx-oci-test`, and
//! checks that nothing of the container is left afterwards. The test
//! process is a subreaper for the containers it creates (as conmon is), and
//! reaps each one.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::harness::{Env, HostSnapshot, TempDir};

pub fn tests() -> Vec<Trial> {
    crate::trials![
        Image: [
            create_start_exec_kill_delete_walks_every_status,
            the_pid_file_holds_the_container_process_itself_with_no_microbox_above,
            a_command_that_is_not_there_fails_create_with_the_words_podman_maps_to_127,
            a_failed_exec_leaves_the_container_running,
            a_reused_pid_reads_as_stopped,
            the_console_socket_gets_one_pty_master,
            a_disk_node_made_inside_cannot_be_opened,
            limits_and_sysctls_of_the_config_hold_inside,
            preserve_fds_passes_fd_3_and_nothing_else,
            a_created_container_holds_only_its_own_privileges_while_it_waits,
            a_user_namespace_maps_the_config_ids,
            a_namespace_path_of_another_type_is_refused,
            kill_all_reaches_every_process_of_a_container_without_a_pid_namespace,
            linux_devices_are_made_and_the_device_cgroup_still_decides,
        ],
        Bin: [
            unknown_ids_do_not_exist_and_force_delete_of_one_succeeds,
            errors_go_to_the_log_as_one_json_object,
            hostile_configs_are_refused_naming_the_field,
        ],
    ]
}

/// A bundle: config.json over the test image (read-only root, a tmpfs /tmp).
struct Bundle {
    dir: TempDir,
    root: TempDir,
    id: String,
}

fn config(env: &Env, id: &str, args: &[&str], terminal: bool) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_MKNOD", "CAP_SETUID", "CAP_SETGID"],
                "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_MKNOD", "CAP_SETUID", "CAP_SETGID"],
                "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_MKNOD", "CAP_SETUID", "CAP_SETGID"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": env.rootfs(), "readonly": true},
        "hostname": "oci-box",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            // No nodev, as root Podman mounts it: the device cgroup is what
            // stops a node made here.
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "tmpcopyup"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "cgroupsPath": format!("/mbx-oci-test/{id}"),
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}],
                "pids": {"limit": 64},
                "memory": {"limit": 268435456}
            },
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
            "sysctl": {"net.ipv4.ping_group_range": "0 0"},
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                // What Podman's default profile lists on each architecture.
                "architectures": if cfg!(target_arch = "aarch64") {
                    serde_json::json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
                } else {
                    serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
                },
                "syscalls": [{"names": ["keyctl", "add_key"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
            }
        }
    })
}

impl Bundle {
    fn new(env: &Env, args: &[&str]) -> Bundle {
        Self::with(env, args, |_| {})
    }

    fn with(env: &Env, args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
        let dir = TempDir::new("oci-bundle");
        let root = TempDir::new("oci-root");
        let id = format!("c{}", crate::harness::unique_token());
        let mut config = config(env, &id, args, false);
        edit(&mut config);
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        Bundle { dir, root, id }
    }

    /// One OCI call; stdio of the container (create) goes to `out.log`.
    fn call(&self, env: &Env, args: &[&str]) -> Call {
        call_with(env, &self.root.path, &self.dir.join("out.log"), args)
    }

    fn create(&self, env: &Env) -> Call {
        let bundle = self.dir.path.to_str().unwrap().to_string();
        let pid_file = self.dir.join("pid");
        self.call(
            env,
            &[
                "create",
                "--bundle",
                &bundle,
                "--pid-file",
                pid_file.to_str().unwrap(),
                &self.id,
            ],
        )
    }

    fn state(&self, env: &Env) -> Value {
        let out = self.call(env, &["state", &self.id]);
        assert_eq!(out.code, Some(0), "{out}");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON: {e}\n{out}"))
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default()
    }

    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for base in cgroup_bases() {
            let dir = base.join("mbx-oci-test").join(&self.id);
            if dir.exists() {
                dirs.push(dir);
            }
        }
        dirs
    }

    /// Deleted, reaped, and nothing left: no state, no cgroup.
    fn delete_and_check(&self, env: &Env, pid: Option<i32>) {
        let out = self.call(env, &["delete", "--force", &self.id]);
        assert_eq!(out.code, Some(0), "{out}");
        if let Some(pid) = pid {
            reap(pid);
        }
        assert!(
            !self.root.join(&self.id).exists(),
            "the state directory is gone"
        );
        assert_eq!(
            self.cgroup_dirs(),
            Vec::<PathBuf>::new(),
            "the cgroups are gone"
        );
    }
}

fn cgroup_bases() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut out = vec![root.to_path_buf()];
    if let Ok(d) = std::fs::read_dir(root) {
        out.extend(d.flatten().map(|e| e.path()));
    }
    out
}

struct Call {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    args: Vec<String>,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- microbox {:?} -> {:?}\n--- stdout:\n{}--- stderr:\n{}---",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

fn call_with(env: &Env, root: &Path, log: &Path, args: &[&str]) -> Call {
    become_subreaper();
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut all = vec!["--root".to_string(), root.display().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    // The container inherits create's stdio: a file, so nothing here waits
    // for a pipe the container holds open.
    let is_create = args.first() == Some(&"create");
    let mut cmd = Command::new(&env.bin);
    cmd.args(&all).stdin(Stdio::null());
    let tmp_out = log.with_extension(format!("call-{}", crate::harness::unique_token()));
    if is_create {
        cmd.stdout(out.try_clone().unwrap())
            .stderr(Stdio::from(std::fs::File::create(&tmp_out).unwrap()));
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let child = cmd.spawn().unwrap();
    let start = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "microbox {all:?} took {:?}",
        start.elapsed()
    );
    let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if is_create {
        stderr = std::fs::read_to_string(&tmp_out).unwrap_or_default();
        let _ = std::fs::remove_file(&tmp_out);
    }
    Call {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
        args: all,
    }
}

/// As conmon: orphaned containers become our children, to be reaped.
fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(ret, 0);
}

/// Waits for child `pid` (a container this process adopted) to end.
fn reap(pid: i32) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into the local.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if ret == pid {
            return Some(status);
        }
        if ret < 0 || Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts a created container whose command ends by itself: its output,
/// after checking it ran to its last line (`done`).
fn start_to_end(env: &Env, b: &Bundle, pid: i32) -> String {
    assert_eq!(b.call(env, &["start", &b.id]).code, Some(0));
    assert!(reap(pid).is_some());
    let out = b.output();
    assert!(out.contains("done"), "{out}");
    out
}

fn create_ok(env: &Env, b: &Bundle) -> i32 {
    let out = b.create(env);
    assert_eq!(out.code, Some(0), "{out}\n{}", b.output());
    let pid: i32 = std::fs::read_to_string(b.dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    pid
}

fn create_start_exec_kill_delete_walks_every_status(env: &Env) {
    let before = HostSnapshot::take();
    let b = Bundle::new(
        env,
        &[
            "/bin/sh",
            "-c",
            "echo started hostname=$(hostname); exec sleep 1000",
        ],
    );
    let pid = create_ok(env, &b);
    let state = b.state(env);
    assert_eq!(state["status"], "created", "{state}");
    assert_eq!(state["pid"], pid, "{state}");
    assert_eq!(state["id"], b.id.as_str());
    assert_eq!(state["bundle"], b.dir.path.to_str().unwrap());
    assert_eq!(b.output(), "", "nothing runs before start");

    let out = b.call(env, &["start", &b.id]);
    assert_eq!(out.code, Some(0), "{out}");
    wait_for("the container's first line", || {
        b.output().contains("started")
    });
    assert!(b.output().contains("hostname=oci-box"), "{}", b.output());
    assert_eq!(b.state(env)["status"], "running");
    let again = b.call(env, &["start", &b.id]);
    assert_eq!(again.code, Some(1), "a second start fails\n{again}");

    let exec = b.call(
        env,
        &[
            "exec",
            &b.id,
            "/bin/sh",
            "-c",
            "echo in-$(hostname); cat /proc/1/cmdline | tr '\\0' ' '",
        ],
    );
    assert_eq!(exec.code, Some(0), "{exec}");
    assert!(
        exec.stdout.contains("in-oci-box") && exec.stdout.contains("sleep 1000"),
        "exec sees the container's PID 1\n{exec}"
    );
    // No fd of create's or exec's reaches the container (CVE-2024-21626),
    // and an exec'd process is in the container's cgroup.
    let fds = b.call(env, &["exec", &b.id, "/bin/ls", "/proc/1/fd"]);
    assert_eq!(
        fds.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{fds}"
    );
    // The exec'd process itself (the probe leaves out its own directory fd).
    let fds = b.call(env, &["exec", &b.id, "/bin/probe", "fds"]);
    let listed = fds.stdout.lines().find_map(|l| l.strip_prefix("fds="));
    assert_eq!(listed, Some("0,1,2"), "{fds}");
    let same = b.call(
        env,
        &[
            "exec",
            &b.id,
            "/bin/sh",
            "-c",
            "[ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] && echo same-cgroup",
        ],
    );
    assert_eq!(same.stdout, "same-cgroup\n", "{same}");
    let status = b.call(env, &["exec", &b.id, "/bin/sh", "-c", "exit 3"]);
    assert_eq!(
        status.code,
        Some(3),
        "a foreground exec returns its status\n{status}"
    );
    let ps = b.call(env, &["ps", "--format", "json", &b.id]);
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap_or_else(|e| panic!("{e}\n{ps}"));
    assert!(pids.contains(&i64::from(pid)), "{ps}");

    let refused = b.call(env, &["delete", &b.id]);
    assert_eq!(
        refused.code,
        Some(1),
        "a running container is not deleted without --force\n{refused}"
    );
    assert!(refused.stderr.contains("not stopped"), "{refused}");

    let kill = b.call(env, &["kill", &b.id, "TERM"]);
    assert_eq!(kill.code, Some(0), "{kill}");
    // PID 1 of a pid namespace ignores SIGTERM without a handler: KILL.
    let kill = b.call(env, &["kill", &b.id, "9"]);
    assert_eq!(kill.code, Some(0), "{kill}");
    let status = reap(pid).expect("the container's process ends and is ours to reap");
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == 9,
        "status {status:#x}"
    );
    assert_eq!(b.state(env)["status"], "stopped");
    let out = b.call(env, &["delete", &b.id]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!b.root.join(&b.id).exists());
    assert_eq!(b.cgroup_dirs(), Vec::<PathBuf>::new());
    let left = before.leftovers_after_settling(Duration::from_secs(2));
    assert!(left.is_empty(), "left on the host: {left:?}");
}

fn the_pid_file_holds_the_container_process_itself_with_no_microbox_above(env: &Env) {
    let b = Bundle::new(env, &["/bin/sleep", "1000"]);
    let pid = create_ok(env, &b);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        ppid,
        std::process::id().to_string(),
        "the container's parent is the subreaper (us)\n{status}"
    );
    // Inside its pid namespace it is PID 1.
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    assert_eq!(nspid, "1", "{status}");
    assert_eq!(b.call(env, &["start", &b.id]).code, Some(0));
    wait_for("exec of sleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with("/bin/sleep"))
    });
    b.delete_and_check(env, Some(pid));
}

fn a_command_that_is_not_there_fails_create_with_the_words_podman_maps_to_127(env: &Env) {
    for (args, words) in [
        (
            &["no-such-command"][..],
            "executable file not found in $PATH",
        ),
        (&["/no/such/file"][..], "no such file or directory"),
        (&["/etc/passwd"][..], "permission denied"),
    ] {
        let b = Bundle::new(env, args);
        let out = b.create(env);
        assert_eq!(out.code, Some(1), "{out}");
        assert!(out.stderr.contains(words), "{words}\n{out}");
        assert_eq!(out.stderr.lines().count(), 1, "one line\n{out}");
        assert!(!b.root.join(&b.id).exists(), "no state is left\n{out}");
        assert_eq!(b.cgroup_dirs(), Vec::<PathBuf>::new(), "no cgroup is left");
    }
}

fn a_failed_exec_leaves_the_container_running(env: &Env) {
    let b = Bundle::new(env, &["/bin/sleep", "1000"]);
    let pid = create_ok(env, &b);
    assert_eq!(b.call(env, &["start", &b.id]).code, Some(0));
    let out = b.call(env, &["exec", &b.id, "/no/such"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("no such file or directory"), "{out}");
    assert_eq!(b.state(env)["status"], "running");
    // A working directory through an fd: with every host fd closed before
    // the chdir there is none to reach (CVE-2024-21626 by way of exec's own
    // pid file directory).
    let link = b.call(
        env,
        &["exec", &b.id, "/bin/ln", "-s", "/proc/self/fd/3", "/tmp/w"],
    );
    assert_eq!(link.code, Some(0), "{link}");
    let pid_file = b.dir.join("exec.pid");
    let escape = b.call(
        env,
        &[
            "exec",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--cwd",
            "/tmp/w",
            &b.id,
            "/bin/sh",
            "-c",
            "pwd; ls ..",
        ],
    );
    assert_eq!(escape.code, Some(1), "{escape}");
    assert!(
        !escape.stdout.contains("exec.pid") && !escape.stdout.contains("config.json"),
        "{escape}"
    );
    // exec applies the config create applied, not what the bundle holds now.
    std::fs::write(b.dir.join("config.json"), "{").unwrap();
    let ok = b.call(env, &["exec", &b.id, "/bin/true"]);
    assert_eq!(ok.code, Some(0), "{ok}");
    b.delete_and_check(env, Some(pid));
}

fn a_reused_pid_reads_as_stopped(env: &Env) {
    let b = Bundle::new(env, &["/bin/sleep", "1000"]);
    let pid = create_ok(env, &b);
    // What a recycled pid looks like to the record: another start time.
    let path = b.root.join(&b.id).join("record.json");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let real = record["startTime"].as_u64().unwrap();
    record["startTime"] = json!(real + 1);
    std::fs::write(&path, record.to_string()).unwrap();
    assert_eq!(b.state(env)["status"], "stopped");
    let kill = b.call(env, &["kill", &b.id, "KILL"]);
    assert_eq!(
        kill.code,
        Some(1),
        "a pid that is not the container's is never signalled\n{kill}"
    );
    assert!(kill.stderr.contains("not running"), "{kill}");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the process was left alone"
    );
    record["startTime"] = json!(real);
    std::fs::write(&path, record.to_string()).unwrap();
    b.delete_and_check(env, Some(pid));
}

fn the_console_socket_gets_one_pty_master(env: &Env) {
    let b = Bundle::with(
        env,
        &[
            "/bin/sh",
            "-c",
            "tty; echo size=$(stty size); echo on-the-pty; exec sleep 1000",
        ],
        |c| {
            c["process"]["terminal"] = json!(true);
            c["process"]["consoleSize"] = json!({"height": 33, "width": 101});
        },
    );
    let sock_path = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        receive_fds(&stream)
    });
    let bundle = b.dir.path.to_str().unwrap().to_string();
    let pid_file = b.dir.join("pid");
    let out = b.call(
        env,
        &[
            "create",
            "--bundle",
            &bundle,
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--console-socket",
            sock_path.to_str().unwrap(),
            &b.id,
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let (data, fds) = receiver.join().unwrap();
    assert_eq!(
        fds.len(),
        1,
        "exactly one fd, as go-runc requires (data {data:?})"
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(b.call(env, &["start", &b.id]).code, Some(0));
    let mut master = std::fs::File::from(fds.into_iter().next().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 256];
    while !seen.contains("on-the-pty") && Instant::now() < deadline {
        let n = master.read(&mut buf).unwrap_or(0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.contains("size=33 101"),
        "process.consoleSize: {seen:?}"
    );
    assert!(
        seen.contains("/dev/pts/0") && seen.contains("on-the-pty"),
        "{seen:?}"
    );
    assert_eq!(b.output(), "", "nothing went to create's stdout");
    b.delete_and_check(env, Some(pid));
}

/// One recvmsg: the data and the SCM_RIGHTS fds.
fn receive_fds(stream: &std::os::unix::net::UnixStream) -> (Vec<u8>, Vec<OwnedFd>) {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut data = [0u8; 256];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(
        stream,
        &mut [std::io::IoSliceMut::new(&mut data)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    (data[..got.bytes].to_vec(), fds)
}

fn a_disk_node_made_inside_cannot_be_opened(env: &Env) {
    // 8:0 is sda and 259:0 the first NVMe namespace: whatever disk the host
    // has, its node made inside must not open; /dev/null still must.
    let script =
        "mknod /dev/sda b 8 0 && echo made=sda; mknod /dev/nvme b 259 0 && echo made=nvme; \
                  head -c1 /dev/sda >/dev/null 2>&1 && echo opened=sda; \
                  head -c1 /dev/nvme >/dev/null 2>&1 && echo opened=nvme; \
                  echo x >/dev/null && echo null=ok; \
                  mknod /dev/hostconsole c 5 1 && echo made=console; \
                  echo x 2>/dev/null >/dev/hostconsole && echo opened=console; echo done";
    let b = Bundle::new(env, &["/bin/sh", "-c", script]);
    let pid = create_ok(env, &b);
    let out = start_to_end(env, &b, pid);
    assert!(
        out.contains("made=sda"),
        "CAP_MKNOD and a dev-less /dev let it make the node: {out}"
    );
    assert!(
        !out.contains("opened="),
        "the device cgroup refuses the open: {out}"
    );
    assert!(out.contains("null=ok"), "{out}");
    b.delete_and_check(env, None);
}

fn limits_and_sysctls_of_the_config_hold_inside(env: &Env) {
    let script = "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null; \
                  echo ping=$(cat /proc/sys/net/ipv4/ping_group_range | tr '\\t' ' '); \
                  echo nofile=$(ulimit -n); echo keys=$(grep -c ' /proc/keys ' /proc/self/mountinfo); \
                  echo > /proc/sys/kernel/hostname 2>/dev/null && echo sys=writable; echo done";
    let b = Bundle::new(env, &["/bin/sh", "-c", script]);
    let pid = create_ok(env, &b);
    // The limit is written on the host side, where the engine reads it.
    let pids_max: Vec<String> = b
        .cgroup_dirs()
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("pids.max")).ok())
        .collect();
    assert_eq!(
        pids_max.iter().map(|s| s.trim()).collect::<Vec<_>>(),
        ["64"],
        "{pids_max:?}"
    );
    let out = start_to_end(env, &b, pid);
    assert!(out.contains("ping=0 0"), "{out}");
    assert!(out.contains("nofile=1024"), "{out}");
    assert!(out.contains("keys=1"), "/proc/keys is masked: {out}");
    assert!(
        !out.contains("sys=writable"),
        "/proc/sys is read-only: {out}"
    );
    b.delete_and_check(env, None);
}

fn unknown_ids_do_not_exist_and_force_delete_of_one_succeeds(env: &Env) {
    let root = TempDir::new("oci-root");
    let log = root.join("log");
    for args in [
        &["state", "nope"][..],
        &["kill", "nope", "9"],
        &["delete", "nope"],
        &["start", "nope"],
    ] {
        let out = call_with(env, &root.path, &log, args);
        assert_eq!(out.code, Some(1), "{out}");
        assert!(out.stderr.contains("does not exist"), "{out}");
        assert_eq!(out.stderr.lines().count(), 1, "{out}");
    }
    let out = call_with(env, &root.path, &log, &["delete", "--force", "nope"]);
    assert_eq!(out.code, Some(0), "{out}");
    // A state root others may write is refused: a record planted there
    // would steer what root kills and joins.
    let open = TempDir::new("oci-open-root");
    std::fs::set_permissions(
        &open.path,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out = call_with(env, &open.path, &log, &["state", "x"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("refusing"), "{out}");
    let features = call_with(env, &root.path, &log, &["features"]);
    let features: Value =
        serde_json::from_str(&features.stdout).unwrap_or_else(|e| panic!("{e}\n{features}"));
    assert_eq!(features["ociVersionMax"], "1.1.0");
}

fn errors_go_to_the_log_as_one_json_object(env: &Env) {
    let root = TempDir::new("oci-root");
    let log = root.join("log.json");
    let missing = root.join("no-bundle");
    let out = call_with(
        env,
        &root.path,
        &root.join("out"),
        &[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "create",
            "--bundle",
            missing.to_str().unwrap(),
            "x",
        ],
    );
    assert_eq!(out.code, Some(1), "{out}");
    let text = std::fs::read_to_string(&log).unwrap();
    // Podman reads the whole file as one object.
    let record: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(record["level"], "error");
    assert!(
        record["msg"].as_str().unwrap().contains("no-bundle"),
        "{text}"
    );
    let time = record["time"].as_str().unwrap();
    assert!(
        time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "RFC 3339: {time}"
    );
    assert!(!root.join("x").exists());
}

fn hostile_configs_are_refused_naming_the_field(env: &Env) {
    let root = TempDir::new("oci-root");
    let bundle = TempDir::new("oci-bundle");
    let base = json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/true"], "cwd": "/"},
        "root": {"path": "/nonexistent"},
        "mounts": [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}],
        "linux": {"namespaces": [{"type": "mount"}]}
    });
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|c| c["hooks"] = json!({"prestart": [{"path": "/bin/sh"}]})),
            "hooks.prestart",
        ),
        (
            Box::new(|c| c["linux"]["intelRdt"] = json!({})),
            "linux.intelRdt",
        ),
        (
            Box::new(|c| {
                c["linux"]["seccomp"] =
                    json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"})
            }),
            "listenerPath",
        ),
        (
            Box::new(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"})),
            "linux.personality",
        ),
        (
            Box::new(|c| c["linux"]["timeOffsets"] = json!({})),
            "linux.timeOffsets",
        ),
        (
            Box::new(|c| c["process"]["args"] = json!([])),
            "process.args",
        ),
        (
            Box::new(|c| c["mounts"][0]["destination"] = json!("/../../etc")),
            "destination",
        ),
        (Box::new(|c| c["mounts"][0]["type"] = json!("ext4")), "ext4"),
        (
            Box::new(|c| c["linux"]["sysctl"] = json!({"kernel.core_pattern": "|/evil"})),
            "kernel.core_pattern",
        ),
        (Box::new(|c| c["unknownField"] = json!(1)), "unknownField"),
        (
            Box::new(|c| {
                c["linux"]["devices"] =
                    json!([{"path": "/dev/../etc/x", "type": "c", "major": 1, "minor": 3}])
            }),
            "plain path below /dev",
        ),
        // The IPC sysctls are the host's without an ipc namespace.
        (
            Box::new(|c| c["linux"]["sysctl"] = json!({"kernel.shmmni": "1234"})),
            "kernel.shmmni",
        ),
        (
            Box::new(|c| c["linux"]["namespaces"] = json!([{"type": "pid"}])),
            "mount namespace",
        ),
        (
            Box::new(|c| c["linux"]["cgroupsPath"] = json!("machine.slice:libpod:x")),
            "cgroup_manager",
        ),
    ];
    for (edit, want) in cases {
        let mut config = base.clone();
        edit(&mut config);
        std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
        let out = call_with(
            env,
            &root.path,
            &root.join("out"),
            &["create", "--bundle", bundle.path.to_str().unwrap(), "h"],
        );
        assert_eq!(out.code, Some(1), "{want}\n{out}");
        assert!(out.stderr.contains(want), "{want}\n{out}");
        assert_eq!(out.stderr.lines().count(), 1, "{out}");
        assert!(!root.join("h").exists(), "{want}: nothing left");
    }
    for text in [
        "",
        "{",
        "[]",
        "{\"ociVersion\": \"1.0.2\", \"ociVersion\": \"1.0.2\"}",
    ] {
        std::fs::write(bundle.join("config.json"), text).unwrap();
        let out = call_with(
            env,
            &root.path,
            &root.join("out"),
            &["create", "--bundle", bundle.path.to_str().unwrap(), "h"],
        );
        assert_eq!(out.code, Some(1), "{text:?}\n{out}");
        assert!(out.stderr.contains("config.json"), "{out}");
    }
}

fn preserve_fds_passes_fd_3_and_nothing_else(env: &Env) {
    use std::os::unix::process::CommandExt;
    let b = Bundle::new(
        env,
        &[
            "/bin/sh",
            "-c",
            "echo through-fd-3 >&3; ls /proc/self/fd | tr '\\n' ' '; echo",
        ],
    );
    let passed = std::fs::File::create(b.dir.join("fd3")).unwrap();
    std::fs::write(b.dir.join("not-passed"), "x").unwrap();
    let extra = std::fs::File::open(b.dir.join("not-passed")).unwrap();
    let bundle = b.dir.path.to_str().unwrap().to_string();
    let pid_file = b.dir.join("pid");
    let out = std::fs::File::create(b.dir.join("out.log")).unwrap();
    let (fd3, fd4) = (passed.as_raw_fd(), extra.as_raw_fd());
    let mut cmd = Command::new(&env.bin);
    cmd.args([
        "--root",
        b.root.path.to_str().unwrap(),
        "create",
        "--bundle",
        &bundle,
    ])
    .args([
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--preserve-fds",
        "1",
        &b.id,
    ])
    .stdin(Stdio::null())
    .stdout(out.try_clone().unwrap())
    .stderr(out);
    // SAFETY: dup2 between fds this process owns, in the child before exec.
    unsafe {
        cmd.pre_exec(move || {
            for (from, to) in [(fd3, 3), (fd4, 4)] {
                // dup2 onto itself would keep close-on-exec: clear it instead.
                let ok = if from == to {
                    libc::fcntl(to, libc::F_SETFD, 0) == 0
                } else {
                    libc::dup2(from, to) == to
                };
                if !ok {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    become_subreaper();
    let status = cmd.status().unwrap();
    assert!(status.success(), "{}", b.output());
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(b.call(env, &["start", &b.id]).code, Some(0));
    assert!(reap(pid).is_some());
    assert_eq!(
        std::fs::read_to_string(b.dir.join("fd3")).unwrap(),
        "through-fd-3\n"
    );
    // ls's own directory fd is the one above 3; fd 4 (not preserved) is not there.
    let listed = b.output();
    let fds: Vec<&str> = listed.split_whitespace().collect();
    assert!(
        fds.starts_with(&["0", "1", "2", "3"]) && !fds.contains(&"5"),
        "{listed}"
    );
    b.delete_and_check(env, None);
}

/// Before `start`, PID 1 already has the container's capabilities, no_new_privs
/// and seccomp filter (as runc's does): a process exec'd into the created
/// container with CAP_SYS_PTRACE could otherwise drive a fully privileged
/// host-namespace process (found by a review).
fn a_created_container_holds_only_its_own_privileges_while_it_waits(env: &Env) {
    let b = Bundle::new(env, &["/bin/sleep", "1000"]);
    let pid = create_ok(env, &b);
    assert_eq!(b.state(env)["status"], "created");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    // CHOWN, KILL, SETGID, SETUID, MKNOD: the config's sets.
    assert_eq!(field("CapEff:"), "00000000080000e1", "{status}");
    assert_eq!(field("CapBnd:"), "00000000080000e1", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("Seccomp:"), "2", "{status}");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(fds.len(), 4, "stdio and the start fifo only: {fds:?}");
    // It runs from a sealed memfd copy of microbox, not the host's binary
    // (CVE-2019-5736: nothing of it can be opened for writing).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.to_string_lossy().starts_with("/memfd:microbox"),
        "{exe:?}"
    );
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"));
    assert!(write.is_err(), "the copy is sealed against writes");
    assert_eq!(b.call(env, &["start", &b.id]).code, Some(0));
    b.delete_and_check(env, Some(pid));
}

/// `linux.uidMappings`/`gidMappings` with a user namespace: root inside is
/// host uid 200000, and the image's root-owned files show as unmapped.
fn a_user_namespace_maps_the_config_ids(env: &Env) {
    let script = "cat /proc/self/uid_map /proc/self/gid_map | tr -s ' '; \
                  echo owner=$(stat -c %u /bin/busybox); echo done";
    let b = Bundle::with(env, &["/bin/sh", "-c", script], |c| {
        let map = json!([{"containerID": 0, "hostID": 200_000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
    });
    let pid = create_ok(env, &b);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        uid, "200000",
        "the container's root is host uid 200000\n{status}"
    );
    let out = start_to_end(env, &b, pid);
    assert!(out.contains(" 0 200000 65536"), "{out}");
    assert!(
        out.contains("owner=65534"),
        "host root's files are unmapped inside: {out}"
    );
    b.delete_and_check(env, None);
}

/// A "network" entry whose path is a pid namespace is refused by setns
/// (the type is passed), not joined as whatever it is.
fn a_namespace_path_of_another_type_is_refused(env: &Env) {
    let b = Bundle::with(env, &["/bin/true"], |c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "network");
        list.push(json!({"type": "network", "path": "/proc/self/ns/pid"}));
    });
    let out = b.create(env);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("network namespace"), "{out}");
    assert!(!b.root.join(&b.id).exists(), "nothing left\n{out}");
    assert_eq!(b.cgroup_dirs(), Vec::<PathBuf>::new());
}

/// Without a pid namespace the container's processes outlive its PID 1:
/// `kill --all` (the shim's call) reaches every one (v1: each pid of the
/// cgroup; v2: cgroup.kill).
fn kill_all_reaches_every_process_of_a_container_without_a_pid_namespace(env: &Env) {
    let b = Bundle::with(
        env,
        &["/bin/sh", "-c", "sleep 1000 & sleep 1000 & wait"],
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "pid");
        },
    );
    let pid = create_ok(env, &b);
    assert_eq!(b.call(env, &["start", &b.id]).code, Some(0));
    let listed = |b: &Bundle| -> Vec<i64> {
        let ps = b.call(env, &["ps", "--format", "json", &b.id]);
        serde_json::from_str(&ps.stdout).unwrap_or_else(|e| panic!("{e}\n{ps}"))
    };
    wait_for("three processes", || listed(&b).len() == 3);
    let all = listed(&b);
    let kill = b.call(env, &["kill", "--all", &b.id, "KILL"]);
    assert_eq!(kill.code, Some(0), "{kill}");
    assert!(reap(pid).is_some());
    wait_for("every process gone", || {
        all.iter().all(|p| {
            !Path::new(&format!("/proc/{p}")).exists() || reap(i32::try_from(*p).unwrap()).is_some()
        })
    });
    assert_eq!(listed(&b), Vec::<i64>::new());
    b.delete_and_check(env, None);
}

/// linux.devices (Podman's --device): the node is made in the container's
/// /dev with its mode; it opens only where a device rule allows it.
fn linux_devices_are_made_and_the_device_cgroup_still_decides(env: &Env) {
    let script = "ls -l /dev/myzero /dev/sub/mem | tr -s ' ' | cut -d' ' -f1,5,6; \
                  echo read=$(head -c 4 /dev/myzero | wc -c); \
                  head -c 1 /dev/sub/mem >/dev/null 2>&1 && echo opened=mem; echo done";
    let b = Bundle::with(env, &["/bin/sh", "-c", script], |c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640},
            {"path": "/dev/sub/mem", "type": "c", "major": 1, "minor": 1, "fileMode": 0o600}
        ]);
    });
    let pid = create_ok(env, &b);
    let out = start_to_end(env, &b, pid);
    assert!(out.contains("crw-r----- 1, 5"), "{out}");
    assert!(out.contains("read=4"), "{out}");
    assert!(
        !out.contains("opened=mem"),
        "/dev/mem's 1:1 has no rule: {out}"
    );
    b.delete_and_check(env, None);
}
