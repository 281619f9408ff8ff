//! Rootless mode (issue 14): microbox run by users the tests make, one with
//! subordinate ids in /etc/subuid and /etc/subgid and one without, through
//! busybox's chpst (on both legs). Each run is checked for what the user sees
//! inside, and for what is left in the user's state directory, in root's and
//! in the cgroup tree afterwards.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use libtest_mimic::Trial;

use crate::harness::{run_lock, Env, Leg};

pub fn tests() -> Vec<Trial> {
    crate::trials![
        Image: [
            a_user_without_subordinate_ids_is_sandbox_root_as_itself,
            a_user_with_subordinate_ids_has_65536_ids_and_no_host_groups,
            the_isolation_checks_hold_without_root,
            exit_codes_and_signals_pass_through_as_for_root,
            what_a_user_cannot_have_is_refused_in_one_line,
            limits_need_a_cgroup_the_user_can_write,
            two_users_do_not_see_each_others_sandboxes,
        ],
    ]
}

/// A user the tests make: (name, uid); `subordinate` gives it a range.
struct User {
    uid: u32,
    home: PathBuf,
}

const PLAIN: (&str, u32) = ("mbt-rl-plain", 2201);
const SUB: (&str, u32) = ("mbt-rl-sub", 2202);
const SUB_START: u32 = 400_000;

/// Adds the passwd and group lines (useradd where there is one, as on a
/// Debian host; the VM's busybox has none) and, for `subordinate`, the
/// subuid/subgid lines; idempotent. The user's home holds its own copy of the
/// test image (a rootless image must be the user's).
fn user(env: &Env, (name, uid): (&str, u32), subordinate: bool) -> User {
    static MADE: OnceLock<std::sync::Mutex<Vec<u32>>> = OnceLock::new();
    let made = MADE.get_or_init(Default::default);
    let mut made = made.lock().unwrap_or_else(|e| e.into_inner());
    let home = PathBuf::from(format!("/tmp/mbt-rootless-{uid}"));
    if !made.contains(&uid) {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        if !passwd.lines().any(|l| l.starts_with(&format!("{name}:"))) {
            let useradd = Path::new("/usr/sbin/useradd");
            if useradd.exists() {
                let out = Command::new(useradd)
                    .args([
                        "--uid",
                        &uid.to_string(),
                        "--user-group",
                        "--no-create-home",
                    ])
                    .args(["--shell", "/bin/sh", name])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "useradd {name}: {out:?}");
            } else {
                append(
                    "/etc/passwd",
                    &format!("{name}:x:{uid}:{uid}::/tmp:/bin/sh\n"),
                );
                append("/etc/group", &format!("{name}:x:{uid}:\n"));
            }
        }
        // useradd may have given a range already: set exactly what the test wants.
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mut kept: String = text
                .lines()
                .filter(|l| !l.starts_with(&format!("{name}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            if subordinate {
                kept.push_str(&format!("{name}:{SUB_START}:65536\n"));
            }
            std::fs::write(file, kept).unwrap();
        }
        let _ = Command::new("rm").arg("-rf").arg(&home).status();
        std::fs::create_dir_all(&home).unwrap();
        let image = home.join("rootfs");
        let out = Command::new("cp")
            .arg("-a")
            .arg(env.rootfs())
            .arg(&image)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let out = Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(&home)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        made.push(uid);
    }
    User { uid, home }
}

fn append(file: &str, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .unwrap();
    f.write_all(line.as_bytes()).unwrap();
}

impl User {
    fn image(&self) -> String {
        self.home.join("rootfs").display().to_string()
    }

    /// Where microbox keeps this user's state (no XDG_RUNTIME_DIR is passed).
    fn run_dir(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/microbox-{}", self.uid))
    }

    /// `microbox ARGS` as this user, with a clean environment (and one
    /// variable that must not reach the sandbox), in its own group and in
    /// group 100 ("users"), which a sandbox must not keep where it can drop it.
    fn command(&self, env: &Env, args: &[&str]) -> Command {
        self.command_in(env, args, None)
    }

    /// [`User::command`], first moved (as root) into the cgroup whose
    /// `cgroup.procs` is `procs`.
    fn command_in(&self, env: &Env, args: &[&str], procs: Option<std::ffi::CString>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(&env.bin);
        cmd.args(args).env_clear().envs([
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/tmp"),
            ("FROM_HOST", "leak"),
        ]);
        let uid = self.uid;
        // SAFETY: only async-signal-safe calls between fork and exec (the
        // path was made a C string before the fork).
        unsafe {
            cmd.pre_exec(move || {
                if let Some(procs) = &procs {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    let ok = fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                    libc::close(fd);
                    if !ok {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                let groups = [uid, 100];
                if libc::setgroups(2, groups.as_ptr()) != 0
                    || libc::setresgid(uid, uid, uid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    fn run(&self, env: &Env, args: &[&str]) -> Output {
        let _lock = run_lock();
        let out = self.command(env, args).output().unwrap();
        self.assert_nothing_left();
        out
    }

    /// In the image: `sh -c SCRIPT`, successful.
    fn sh(&self, env: &Env, opts: &[&str], script: &str) -> String {
        let image = self.image();
        let mut args = vec!["--fs", image.as_str()];
        args.extend_from_slice(opts);
        args.extend(["--", "/bin/sh", "-c", script]);
        let out = self.run(env, &args);
        assert!(out.status.success(), "{}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn assert_nothing_left(&self) {
        let locks: Vec<_> = std::fs::read_dir(self.run_dir().join("sandboxes"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            locks.is_empty(),
            "left in {}: {locks:?}",
            self.run_dir().display()
        );
        let root_locks: Vec<_> = std::fs::read_dir("/run/microbox/sandboxes")
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(root_locks.is_empty(), "in root's state: {root_locks:?}");
    }
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn a_user_without_subordinate_ids_is_sandbox_root_as_itself(env: &Env) {
    let user = user(env, PLAIN, false);
    let out = user.run(
        env,
        &[
            "--log-level",
            "info",
            "--fs",
            &user.image(),
            "--",
            "/bin/sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let uid = user.uid.to_string();
    assert_eq!(lines[0], ["0"], "{text}");
    assert_eq!(lines[1], ["0"], "{text}");
    assert_eq!(lines[2], ["0", uid.as_str(), "1"], "{text}");
    assert_eq!(lines[3], ["0", uid.as_str(), "1"], "{text}");
    assert_eq!(lines.len(), 4, "one id each: {text}");
    assert!(
        stderr(&out).contains("id maps: the user's own ids only"),
        "{}",
        show(&out)
    );
    // The kernel keeps the user's group 100 with the sandbox: said.
    assert!(
        stderr(&out).contains("the sandbox keeps your supplementary groups 100"),
        "{}",
        show(&out)
    );
    // Files the user writes in a bind are the user's on the host.
    let dir = user.home.join("rw");
    std::fs::create_dir_all(&dir).unwrap();
    let _ = Command::new("chown")
        .arg(format!("{0}:{0}", user.uid))
        .arg(&dir)
        .status();
    let bind = format!("{}:/data", dir.display());
    user.sh(env, &["--mount-rw", &bind], "echo hi > /data/made");
    let meta = std::fs::metadata(dir.join("made")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), user.uid);
}

fn a_user_with_subordinate_ids_has_65536_ids_and_no_host_groups(env: &Env) {
    let user = user(env, SUB, true);
    let out = user.run(
        env,
        &["--log-level", "info", "--fs", &user.image(), "--", "/bin/sh", "-c", "cat /proc/self/uid_map; grep Groups /proc/self/status; chown 1234:1234 /tmp && stat -c %u /tmp"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let maps: Vec<Vec<&str>> = text
        .lines()
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let start = SUB_START.to_string();
    assert_eq!(maps[0], ["0", user.uid.to_string().as_str(), "1"], "{text}");
    assert_eq!(maps[1], ["1", start.as_str(), "65535"], "{text}");
    let groups = text.lines().nth(2).unwrap_or("");
    assert_eq!(
        groups.split_whitespace().count(),
        1,
        "no supplementary group: {text}"
    );
    assert_eq!(text.lines().nth(3), Some("1234"), "{text}");
    assert!(
        stderr(&out).contains("subordinate ids through newuidmap")
            && !stderr(&out).contains("supplementary groups"),
        "{}",
        show(&out)
    );
}

fn the_isolation_checks_hold_without_root(env: &Env) {
    let user = user(env, PLAIN, false);
    let host_ns: Vec<String> = ["user", "mnt", "pid", "net", "uts", "ipc", "cgroup"]
        .iter()
        .map(|ns| {
            std::fs::read_link(format!("/proc/self/ns/{ns}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    let script = "for ns in user mnt pid net uts ipc cgroup; do readlink /proc/self/ns/$ns; done; \
                  echo pid1=$(cat /proc/1/comm); hostname; echo home=$HOME leak=$FROM_HOST; \
                  ls /proc/self/fd | tr '\\n' ' '; echo; \
                  [ -s /proc/kcore ] && echo kcore=read || echo kcore=no; \
                  grep CapEff /proc/self/status; ip link 2>/dev/null | grep -c mtu";
    let text = user.sh(env, &["--hostname", "rootless-box"], script);
    let lines: Vec<&str> = text.lines().collect();
    for (inside, host) in lines.iter().zip(&host_ns) {
        assert_ne!(inside, host, "a namespace is the host's: {text}");
    }
    assert!(text.contains("\nrootless-box\n"), "{text}");
    assert!(text.contains("home=/root leak=\n"), "{text}");
    // 0 1 2 and the fd ls reads with.
    assert!(text.contains("\n0 1 2 3 \n"), "{text}");
    assert!(text.contains("kcore=no"), "{text}");
    // The default set, as for root's sandboxes: no CAP_SYS_ADMIN (bit 21).
    let eff = text.lines().find(|l| l.starts_with("CapEff")).unwrap();
    let bits = u64::from_str_radix(eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(bits & (1 << 21), 0, "{eff}");
    // seccomp: the default profile's denial of mount(2) holds in a sandbox
    // whose root has CAP_SYS_ADMIN over its own user namespace.
    let mount = user.sh(
        env,
        &["--cap-add", "SYS_ADMIN"],
        "mount -t tmpfs x /mnt 2>&1; echo rc=$?",
    );
    assert!(!mount.contains("rc=0"), "{mount}");
}

fn exit_codes_and_signals_pass_through_as_for_root(env: &Env) {
    let user = user(env, PLAIN, false);
    let image = user.image();
    let out = user.run(env, &["--fs", &image, "--", "/bin/sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let out = user.run(
        env,
        &["--fs", &image, "--", "/bin/sh", "-c", "kill -TERM $$"],
    );
    assert_eq!(out.status.code(), Some(143), "{}", show(&out));
    let out = user.run(env, &["--fs", &image, "--", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(127), "{}", show(&out));
    let out = user.run(
        env,
        &["--fs", &image, "--timeout", "1", "--", "sleep", "20"],
    );
    assert_eq!(out.status.code(), Some(124), "{}", show(&out));
    // --fs host and the default tmpfs root work too.
    let out = user.run(
        env,
        &[
            "--fs",
            "host",
            "--",
            "/bin/sh",
            "-c",
            "ls /run/microbox | wc -l",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "root's state hidden"
    );
    let busybox = format!("{image}/bin:/bin");
    let out = user.run(env, &["--mount-ro", &busybox, "--", "/bin/busybox", "true"]);
    assert!(out.status.success(), "{}", show(&out));
}

fn what_a_user_cannot_have_is_refused_in_one_line(env: &Env) {
    let user = user(env, PLAIN, false);
    let image = user.image();
    for (args, words) in [
        (
            vec!["--net", "bridge", "--", "true"],
            "--net bridge needs root",
        ),
        (
            vec!["--userns", "host", "--", "true"],
            "--userns host needs root",
        ),
        (vec!["--net-cleanup"], "--net-cleanup needs root"),
        (
            vec!["--fs", "/root", "--", "true"],
            "cannot read this directory",
        ),
        (
            vec!["--fs", env.rootfs().to_str().unwrap(), "--", "true"],
            "a rootless image must be yours",
        ),
        (
            vec![
                "--fs",
                &image,
                "--mount-ro",
                "/root/nothing:/x",
                "--",
                "true",
            ],
            "/root/nothing",
        ),
    ] {
        let out = user.run(env, &args);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", show(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
    }
    // An engine run by the user gets runc's failure status and one line.
    let bundle = user.home.join("bundle");
    let args = ["create", "--bundle", bundle.to_str().unwrap(), "mbt-rl-oci"];
    let out = user.run(env, &args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("the OCI runtime interface needs root"),
        "{err}"
    );
    user.assert_nothing_left();
}

fn limits_need_a_cgroup_the_user_can_write(env: &Env) {
    let user = user(env, PLAIN, false);
    let image = user.image();
    let out = user.run(env, &["--fs", &image, "--memory", "64m", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    let why = if env.leg == Leg::Vm {
        "no cgroup v2 subtree is delegated"
    } else {
        "cgroup v1"
    };
    assert!(
        stderr(&out).contains("--memory needs a cgroup you can write")
            && stderr(&out).contains(why),
        "{}",
        show(&out)
    );
    let out = user.run(env, &["--log-level", "warn", "--fs", &image, "--", "true"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("the default limits (--cpus, --memory, --pids) are not applied"),
        "{}",
        show(&out)
    );
    if env.leg == Leg::Vm {
        limits_in_a_delegated_subtree(env, &user);
    }
}

/// cgroup v2 (the VM): a subtree chowned to the user as systemd delegates
/// user@UID.service, the user's shell in a leaf of it.
fn limits_in_a_delegated_subtree(env: &Env, user: &User) {
    let top = PathBuf::from(format!("/sys/fs/cgroup/mbt-delegated-{}", user.uid));
    let leaf = top.join("shell");
    let _ = std::fs::create_dir(&top);
    let _ = std::fs::create_dir(&leaf);
    for dir in [&top, &leaf] {
        for file in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            let path = dir.join(file);
            std::os::unix::fs::chown(&path, Some(user.uid), Some(user.uid)).unwrap();
        }
    }
    let image = user.image();
    let args = [
        "--fs", &image, "--memory", "64m", "--pids", "20", "--", "sleep", "1",
    ];
    let procs = std::ffi::CString::new(leaf.join("cgroup.procs").to_str().unwrap()).unwrap();
    let mut inner = user.command_in(env, &args, Some(procs));
    let _lock = run_lock();
    let child = inner
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = None;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let found = std::fs::read_dir(top.join("microbox"))
            .ok()
            .and_then(|d| d.flatten().find(|e| e.path().is_dir()));
        if let Some(entry) = found {
            seen = std::fs::read_to_string(entry.path().join("memory.max")).ok();
            if seen.is_some() {
                break;
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        seen.as_deref().map(str::trim),
        Some("67108864"),
        "{}",
        show(&out)
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_no_cgroups_left(&top.join("microbox"));
    the_limits_are_out_of_the_sandboxs_reach(env, user, &top, &leaf);
    user.assert_nothing_left();
}

fn assert_no_cgroups_left(parent: &Path) {
    let left: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "cgroups left in {}: {left:?}",
        parent.display()
    );
}

/// The limit files of a delegated subtree are the user's, and the user is
/// the sandbox's root: a sandbox allowed to mount cgroup2 must still find no
/// limit it could raise (its cgroup namespace starts below them), and the
/// cgroups it makes go with it.
fn the_limits_are_out_of_the_sandboxs_reach(env: &Env, user: &User, top: &Path, leaf: &Path) {
    let image = user.image();
    let args = [
        "--fs",
        &image,
        "--memory",
        "64m",
        "--cap-add",
        "SYS_ADMIN",
        "--allow-syscall",
        "mount",
        "--",
        "sh",
        "-c",
        "cat /proc/self/cgroup; mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg || exit 9; \
         ls /tmp/cg | grep -c memory.max; echo max > /tmp/cg/memory.max || echo refused; \
         echo +memory > /tmp/cg/cgroup.subtree_control || echo refused; \
         mkdir /tmp/cg/made && echo made",
    ];
    let procs = std::ffi::CString::new(leaf.join("cgroup.procs").to_str().unwrap()).unwrap();
    let out = user.command_in(env, &args, Some(procs)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["0::/", "0", "refused", "refused", "made"],
        "{}",
        show(&out)
    );
    assert_no_cgroups_left(&top.join("microbox"));
}

fn two_users_do_not_see_each_others_sandboxes(env: &Env) {
    let plain = user(env, PLAIN, false);
    let sub = user(env, SUB, true);
    let _lock = run_lock();
    let image = plain.image();
    let mut first = plain
        .command(env, &["--fs", &image, "--", "sleep", "3"])
        .spawn()
        .unwrap();
    let lock_dir = plain.run_dir().join("sandboxes");
    let mut held = false;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        if std::fs::read_dir(&lock_dir).is_ok_and(|mut d| d.next().is_some()) {
            held = true;
            break;
        }
    }
    assert!(
        held,
        "no lock of the first user's sandbox in {}",
        lock_dir.display()
    );
    let meta = std::fs::metadata(plain.run_dir()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    // The second user's sandbox, with the host's tree: the first user's
    // state directory does not open, and its own has nothing of the first's.
    let script = format!(
        "ls {} 2>&1; ls {}/sandboxes 2>/dev/null | wc -l",
        plain.run_dir().display(),
        sub.run_dir().display()
    );
    let out = sub
        .command(env, &["--fs", "host", "--", "/bin/sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Permission denied"), "{text}");
    assert!(text.trim_end().ends_with('0'), "{text}");
    // SIGTERM: microbox ends the sandbox and removes its lock.
    // SAFETY: a signal to our own child, which has not been waited for.
    unsafe { libc::kill(i32::try_from(first.id()).unwrap(), libc::SIGTERM) };
    let _ = first.wait();
    plain.assert_nothing_left();
}
