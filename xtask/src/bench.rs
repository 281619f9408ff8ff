//! `cargo xtask bench`: microbox beside bubblewrap and crun on the same rootfs,
//! in one run, interleaved, with ratios (DESIGN.md section 8).
//!
//! What is measured, per runtime, for `/bin/true` in the busybox image:
//! - start-to-exit wall latency of the command the user types (spawn + wait,
//!   stdio on /dev/null), round-robin over the runtimes after warm-up rounds, so
//!   a load change on the machine hits every runtime alike;
//! - sandboxes per second over a sequential batch of the same runtime;
//! - peak RSS (VmHWM) of the supervisor, the process the user starts;
//! - a "cold" pass with 100 ms of idle before each run: on cgroup v1 the first
//!   `cgroup.procs` write after idle waits for an RCU grace period (DESIGN.md
//!   section 6), which back-to-back runs hide;
//! - the cost of an allowed syscall inside: `dd bs=1` makes a million reads
//!   and writes, each passing the seccomp filter (and, for microbox, not its
//!   listener, which hears only denied calls); its time less that of
//!   `/bin/true`, per call.
//!
//! Numbers are only meaningful on an idle machine, so the load average is
//! printed before and after. Nothing here is asserted: this is a report.

use crate::{build_static, is_root, rootfs, Ctx};
use serde_json::json;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BWRAP: &str = "/usr/bin/bwrap";
const CRUN: &str = "/usr/bin/crun";
const UNSHARE: &str = "/usr/bin/unshare";

/// Set in the re-executed bench that runs in its own mount and network namespaces.
const PRIVATE_MARK: &str = "XTASK_BENCH_PRIVATE_NS";

const DEFAULT_RUNS: usize = 200;
const QUICK_RUNS: usize = 30;
const WARMUP_ROUNDS: usize = 3;
/// The sequential batch of each runtime is cut in chunks, taken in turn, so a
/// load change during the batches does not land on one runtime only.
const BATCH_CHUNKS: usize = 4;
const COLD_IDLE: Duration = Duration::from_millis(100);
/// Runs per runtime of the RSS pass; VmHWM varies little between runs.
const RSS_RUNS: usize = 10;
/// The RSS pass runs this instead of /bin/true so the supervisor lives long
/// enough to be sampled after its set-up is done.
const SLEEP_PAYLOAD: [&str; 2] = ["/bin/sleep", "0.05"];
const RSS_POLL: Duration = Duration::from_millis(1);
/// The syscall-heavy payload: COUNT one-byte reads and as many writes.
const SYSCALL_COUNT: u64 = 500_000;
const SYSCALL_PAYLOAD: [&str; 5] = [
    "/bin/dd",
    "if=/dev/zero",
    "of=/dev/null",
    "bs=1",
    "count=500000",
];
/// Interleaved rounds of the syscall payload; the fastest run of each counts.
const SYSCALL_ROUNDS: usize = 5;

/// microbox's default capability set, given to crun too.
fn caps() -> Vec<&'static str> {
    microbox::security::caps::DEFAULT
        .iter()
        .map(|&cap| microbox::security::caps::name(cap))
        .collect()
}

/// microbox's deny lists, all answered EPERM for crun (microbox answers io_uring
/// with ENOSYS; clone3 is left out), so that crun compiles and loads a filter of
/// the same size. crun skips names libseccomp does not know.
fn denied() -> Vec<&'static str> {
    use microbox::security::seccomp::{DEFAULT_ENOSYS, DEFAULT_EPERM};
    DEFAULT_EPERM
        .iter()
        .chain(DEFAULT_ENOSYS)
        .copied()
        .filter(|&name| name != "clone3")
        .collect()
}

#[derive(Debug, PartialEq)]
struct Options {
    runs: usize,
    /// Another microbox binary (an older build) measured in the same
    /// interleaved run, so before/after ratios share the machine's load.
    baseline: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut runs = None;
    let mut quick = false;
    let mut baseline = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = match arg.as_str() {
            "--quick" => {
                quick = true;
                continue;
            }
            "--baseline" => {
                let bin = it
                    .next()
                    .ok_or("bench: --baseline needs a microbox binary")?;
                baseline = Some(PathBuf::from(bin));
                continue;
            }
            "--runs" => it.next().ok_or("bench: --runs needs a number")?.as_str(),
            other => match other.strip_prefix("--runs=") {
                Some(v) => v,
                None => {
                    return Err(format!(
                        "bench: unknown argument {other:?} (use --runs N, --quick, --baseline BIN)"
                    ))
                }
            },
        };
        let n: usize = value
            .parse()
            .map_err(|e| format!("bench: --runs {value:?}: {e}"))?;
        if n < 2 {
            return Err(format!("bench: --runs {n}: need at least 2 runs"));
        }
        runs = Some(n);
    }
    let runs = match (runs, quick) {
        (Some(n), _) => n,
        (None, true) => QUICK_RUNS,
        (None, false) => DEFAULT_RUNS,
    };
    if let Some(bin) = &baseline {
        if !bin.is_file() {
            return Err(format!("bench: --baseline {}: no such file", bin.display()));
        }
    }
    Ok(Options { runs, baseline })
}

pub fn run(ctx: &Ctx, args: &[String]) -> Result<u8, String> {
    if args.first().map(String::as_str) == Some("--profile") {
        return profile(ctx, &args[1..]);
    }
    let opts = parse_args(args)?;
    if !is_root() {
        return Err(
            "bench needs root (sudo cargo xtask bench): microbox and crun create cgroups \
             and mount their roots"
                .into(),
        );
    }
    if let Some(code) = reexec_private(args)? {
        return Ok(code);
    }
    let bins = build_static(ctx, &["microbox"])?;
    let microbox = crate::bin(&bins, "microbox")?.clone();
    let image = crate::timed("rootfs busybox", || rootfs::busybox_image(&ctx.cache))?;
    let image = image
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", image.display()))?;
    let load_start = loadavg();
    let mut runtimes = runtimes(ctx, &microbox, opts.baseline.as_deref(), &image)?;
    let result = measure(&mut runtimes, &image, &opts);
    // Podman's row: each `podman run` costs some 150 ms, so fewer runs.
    let podman_runs = (opts.runs / 10).clamp(5, 20);
    let podman = crate::bench_podman::measure(&ctx.cache, &microbox, &image, podman_runs);
    let cleanup = cleanup_crun().and(cleanup_bridge(&microbox));
    let load_end = loadavg();
    let results = result?;
    print_report(&Report {
        opts: &opts,
        microbox: &microbox,
        image: &image,
        runtimes: &runtimes,
        results: &results,
        load_start: &load_start,
        load_end: &load_end,
    });
    if let Some(rows) = &podman {
        print_podman(rows);
    }
    if let Err(e) = cleanup {
        eprintln!("xtask: bench: {e}");
        return Ok(1);
    }
    Ok(u8::from(runtimes[0].dead.is_some()))
}

/// The bench runs in a network namespace and a mount namespace of its own,
/// re-executed under unshare(1), so that nothing it makes touches the host:
/// the bridge row's bridge, tables and veths live and die with the network
/// namespace (and send nothing anywhere), and every runtime starts from the
/// same namespaces.
///
/// The mount namespace is for crun: crun 1.8 refuses a hybrid host whose
/// cgroup2 hierarchy has a controller attached ("cgroups in hybrid mode not
/// supported, drop all controllers from cgroupv2"), even with
/// `--cgroup-manager=disabled`; this host has hugetlb there. A private tmpfs
/// over /sys/fs/cgroup/unified makes it a plain v1 host for crun without
/// touching the host's mounts. Not a bare unmount: crun would then create its
/// v2 "cgroup" as plain directories in the host's /sys/fs/cgroup tmpfs, hidden
/// under the cgroup2 mount; the private tmpfs takes them and vanishes with the
/// namespace. microbox uses only the v1 controllers on such a host anyway.
fn reexec_private(args: &[String]) -> Result<Option<u8>, String> {
    if in_private_namespaces() {
        return Ok(None);
    }
    if !Path::new(UNSHARE).exists() {
        eprintln!(
            "xtask: bench: {UNSHARE} (apt-get install util-linux) is missing: the bridge row \
             is not measured, and crun may refuse a hybrid cgroup host"
        );
        return Ok(None);
    }
    let hide_unified = Path::new(CRUN).exists() && hybrid_with_v2_controllers();
    let mount = if hide_unified {
        eprintln!(
            "xtask: bench: hybrid cgroup host with controllers on /sys/fs/cgroup/unified, \
             which crun refuses: a private tmpfs goes there"
        );
        "mount -t tmpfs -o size=1m,mode=755 xtask-bench /sys/fs/cgroup/unified && "
    } else {
        ""
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the xtask binary: {e}"))?;
    let status = Command::new(UNSHARE)
        .args([
            "--mount",
            "--propagation",
            "private",
            "--net",
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg(format!("{mount}exec \"$0\" \"$@\""))
        .arg(exe)
        .arg("bench")
        .args(args)
        .env(PRIVATE_MARK, "1")
        .status()
        .map_err(|e| format!("cannot run {UNSHARE}: {e}"))?;
    Ok(Some(crate::exit_code_of(status)))
}

fn in_private_namespaces() -> bool {
    std::env::var_os(PRIVATE_MARK).is_some()
}

fn hybrid_with_v2_controllers() -> bool {
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let unified =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    !pure_v2 && !unified.trim().is_empty()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

#[derive(Clone, Copy, PartialEq)]
enum Payload {
    True,
    Sleep,
    Syscalls,
}

impl Payload {
    const ALL: [Payload; 3] = [Payload::True, Payload::Sleep, Payload::Syscalls];

    fn argv(self) -> &'static [&'static str] {
        match self {
            Payload::True => &["/bin/true"],
            Payload::Sleep => &SLEEP_PAYLOAD,
            Payload::Syscalls => &SYSCALL_PAYLOAD,
        }
    }
}

enum Kind {
    /// `net`: the `--net` mode given, if any.
    Microbox {
        bin: PathBuf,
        net: Option<&'static str>,
    },
    Bwrap,
    Crun {
        /// One per payload, in `Payload::ALL` order.
        bundles: [PathBuf; 3],
        next_id: u64,
    },
}

struct Runtime {
    label: &'static str,
    kind: Kind,
    /// Why this runtime is no longer measured: missing, or a run failed.
    dead: Option<String>,
    /// The container id of the last crun run, for `crun delete -f` after a failure.
    last_id: Option<String>,
    /// Rootless rows: run as this uid (and gid), on this copy of the image
    /// that the user owns.
    as_user: Option<(u32, PathBuf)>,
}

impl Runtime {
    fn new(label: &'static str, kind: Kind) -> Runtime {
        Runtime {
            label,
            kind,
            dead: None,
            last_id: None,
            as_user: None,
        }
    }

    fn command(&mut self, image: &Path, payload: Payload) -> Command {
        use std::os::unix::process::CommandExt;
        let Some((uid, own)) = self.as_user.clone() else {
            return self.command_as_is(image, payload);
        };
        let mut cmd = self.command_as_is(&own, payload);
        cmd.uid(uid).gid(uid);
        cmd
    }

    fn command_as_is(&mut self, image: &Path, payload: Payload) -> Command {
        match &mut self.kind {
            Kind::Microbox { bin, net } => {
                let mut cmd = Command::new(&*bin);
                cmd.arg("--fs").arg(image);
                if let Some(mode) = net {
                    cmd.args(["--net", mode]);
                }
                cmd.arg("--").args(payload.argv());
                cmd
            }
            Kind::Bwrap => {
                let mut cmd = Command::new(BWRAP);
                cmd.args([
                    "--unshare-all",
                    "--die-with-parent",
                    "--new-session",
                    "--ro-bind",
                ])
                .arg(image)
                .args(["/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
                .args(payload.argv());
                cmd
            }
            Kind::Crun { bundles, next_id } => {
                *next_id += 1;
                let id = format!("microbox-bench-{}-{next_id}", std::process::id());
                let index = Payload::ALL.iter().position(|p| *p == payload).unwrap_or(0);
                let bundle = &bundles[index];
                let mut cmd = Command::new(CRUN);
                cmd.args(["run", "--bundle"]).arg(bundle).arg(&id);
                self.last_id = Some(id);
                cmd
            }
        }
    }

    /// A failed crun run may leave its container record behind.
    fn after_failure(&mut self) {
        if let (Kind::Crun { .. }, Some(id)) = (&self.kind, self.last_id.take()) {
            let _ = Command::new(CRUN)
                .args(["delete", "-f", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn runtimes(
    ctx: &Ctx,
    microbox: &Path,
    baseline: Option<&Path>,
    image: &Path,
) -> Result<Vec<Runtime>, String> {
    let mut list = vec![
        Runtime::new(
            "microbox",
            Kind::Microbox {
                bin: microbox.to_path_buf(),
                net: None,
            },
        ),
        Runtime::new(
            "microbox --net host",
            Kind::Microbox {
                bin: microbox.to_path_buf(),
                net: Some("host"),
            },
        ),
        Runtime::new(
            "microbox --net bridge",
            Kind::Microbox {
                bin: microbox.to_path_buf(),
                net: Some("bridge"),
            },
        ),
    ];
    if !in_private_namespaces() {
        list[2].dead = Some(format!(
            "runs only in a private network namespace, made with {UNSHARE} (apt-get install \
             util-linux)"
        ));
    }
    if let Some(bin) = baseline {
        list.push(Runtime::new(
            "baseline",
            Kind::Microbox {
                bin: bin.to_path_buf(),
                net: None,
            },
        ));
    }
    let mut bwrap = Runtime::new("bwrap", Kind::Bwrap);
    if !Path::new(BWRAP).exists() {
        bwrap.dead = Some(format!("{BWRAP} missing: apt-get install bubblewrap"));
    }
    list.push(bwrap);
    let dir = ctx.cache.join("bench");
    rootless_rows(&mut list, microbox, image, &dir.join("rootless-rootfs"));
    let bundles = [
        dir.join("crun"),
        dir.join("crun-sleep"),
        dir.join("crun-syscalls"),
    ];
    let mut crun = Runtime::new(
        "crun",
        Kind::Crun {
            bundles: bundles.clone(),
            next_id: 0,
        },
    );
    if Path::new(CRUN).exists() {
        for (bundle, payload) in bundles.iter().zip(Payload::ALL) {
            write_bundle(bundle, image, payload)?;
        }
    } else {
        crun.dead = Some(format!("{CRUN} missing: apt-get install crun"));
    }
    list.push(crun);
    Ok(list)
}

/// microbox and bwrap run by user `nobody` (issue 14) on a copy of the image
/// it owns; only when the bench runs as root, which can become that user.
fn rootless_rows(list: &mut Vec<Runtime>, microbox: &Path, image: &Path, copy: &Path) {
    const NOBODY: u32 = 65534;
    let mut rows = vec![
        Runtime::new(
            "microbox rootless",
            Kind::Microbox {
                bin: microbox.to_path_buf(),
                net: None,
            },
        ),
        Runtime::new("bwrap rootless", Kind::Bwrap),
    ];
    let root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    let made = if !root {
        Err("needs root, to run as nobody".to_string())
    } else {
        let _ = std::fs::remove_dir_all(copy);
        let run = |cmd: &mut Command| match cmd.status() {
            Ok(status) if status.success() => Ok(()),
            other => Err(format!("cannot copy the image for nobody: {other:?}")),
        };
        run(Command::new("cp").arg("-a").arg(image).arg(copy))
            .and_then(|()| run(Command::new("chown").args(["-R", "65534:65534"]).arg(copy)))
    };
    for row in &mut rows {
        match &made {
            Ok(()) => row.as_user = Some((NOBODY, copy.to_path_buf())),
            Err(why) => row.dead = Some(why.clone()),
        }
    }
    if !Path::new(BWRAP).exists() {
        rows[1].dead = Some(format!("{BWRAP} missing: apt-get install bubblewrap"));
    }
    list.extend(rows);
}

/// The cgroup crun puts its containers in, below every hierarchy's root.
fn crun_cgroup_parent() -> String {
    format!("microbox-bench-{}", std::process::id())
}

fn write_bundle(dir: &Path, image: &Path, payload: Payload) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let image = image
        .to_str()
        .ok_or_else(|| format!("rootfs path {} is not UTF-8", image.display()))?;
    let config = crun_config(image, payload.argv(), &crun_cgroup_parent());
    let path = dir.join("config.json");
    std::fs::write(&path, config).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// An OCI config as close to microbox's defaults as crun allows: the same
/// namespaces (user with an identity map 0-65535: crun has no leased ranges
/// or idmapped image), a read-only image
/// (crun has no overlay root), the same limits (1 CPU, 1 GiB without swap,
/// 1024 pids), capabilities and EPERM deny list. Mounts are `crun spec`'s
/// defaults plus a /tmp tmpfs.
fn crun_config(image: &str, args: &[&str], cgroup_parent: &str) -> String {
    let caps = caps();
    let config = json!({
        "ociVersion": "1.0.0",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "noNewPrivileges": true
        },
        "root": { "path": image, "readonly": true },
        "hostname": "bench",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] },
            { "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"] }
        ],
        "linux": {
            "uidMappings": [{ "containerID": 0, "hostID": 0, "size": 65536 }],
            "gidMappings": [{ "containerID": 0, "hostID": 0, "size": 65536 }],
            "cgroupsPath": format!("/{cgroup_parent}/crun"),
            "resources": {
                "memory": { "limit": 1_073_741_824, "swap": 1_073_741_824 },
                "pids": { "limit": 1024 },
                "cpu": { "quota": 100_000, "period": 100_000 }
            },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" },
                { "type": "mount" }, { "type": "cgroup" }, { "type": "user" }
            ],
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{ "names": denied(), "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }]
            }
        }
    });
    format!("{config:#}\n")
}

/// The bridge itself goes with the bench's network namespace; its lease
/// directory in /run/microbox would not.
fn cleanup_bridge(microbox: &Path) -> Result<(), String> {
    if !in_private_namespaces() {
        return Ok(());
    }
    let out = Command::new(microbox)
        .arg("--net-cleanup")
        .output()
        .map_err(|e| format!("cannot run {} --net-cleanup: {e}", microbox.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "microbox --net-cleanup: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// crun removes each container's own cgroup but not the parent it created in
/// every hierarchy, nor (after a failure) its state directory.
fn cleanup_crun() -> Result<(), String> {
    let parent = crun_cgroup_parent();
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(entries.flatten().map(|e| e.path()));
    }
    // Hierarchy roots only: the private tmpfs over `unified` holds crun's
    // make-believe v2 directories, which go away with the namespace.
    roots.retain(|r| r.join("cgroup.procs").exists());
    let mut left = Vec::new();
    for root in roots {
        let dir = root.join(&parent);
        if !dir.is_dir() {
            continue;
        }
        let _ = std::fs::remove_dir(dir.join("crun"));
        if let Err(e) = std::fs::remove_dir(&dir) {
            left.push(format!("{}: {e}", dir.display()));
        }
    }
    let prefix = format!("microbox-bench-{}-", std::process::id());
    if let Ok(entries) = std::fs::read_dir("/run/crun") {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                left.push(format!("crun state {}", e.path().display()));
            }
        }
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "crun left state behind that could not be removed: {}",
            left.join(", ")
        ))
    }
}

#[derive(Default)]
struct Results {
    /// Per runtime, in `runtimes` order.
    warm: Vec<Vec<Duration>>,
    cold: Vec<Vec<Duration>>,
    /// Sandboxes per second over a sequential batch.
    batch: Vec<Option<f64>>,
    /// Largest VmHWM seen, KiB.
    rss: Vec<Option<u64>>,
    /// Fastest run of the syscall payload.
    syscalls: Vec<Option<Duration>>,
}

fn measure(runtimes: &mut [Runtime], image: &Path, opts: &Options) -> Result<Results, String> {
    let n = runtimes.len();
    let mut r = Results {
        warm: vec![Vec::new(); n],
        cold: vec![Vec::new(); n],
        batch: vec![None; n],
        rss: vec![None; n],
        syscalls: vec![None; n],
    };
    eprintln!("xtask: bench: {WARMUP_ROUNDS} warm-up rounds");
    for _ in 0..WARMUP_ROUNDS {
        for rt in runtimes.iter_mut() {
            let _ = timed_run(rt, image, Payload::True);
        }
    }
    if runtimes[0].dead.is_some() {
        return Err(format!(
            "microbox failed: {}",
            runtimes[0].dead.as_deref().unwrap_or_default()
        ));
    }
    eprintln!(
        "xtask: bench: {} interleaved rounds, back to back",
        opts.runs
    );
    for _ in 0..opts.runs {
        for (i, rt) in runtimes.iter_mut().enumerate() {
            if let Some(d) = timed_run(rt, image, Payload::True) {
                r.warm[i].push(d);
            }
        }
    }
    eprintln!(
        "xtask: bench: sequential batches of {} runs, in {BATCH_CHUNKS} interleaved chunks",
        opts.runs
    );
    let mut batch_time = vec![Duration::ZERO; n];
    let mut batch_runs = vec![0usize; n];
    for chunk in 0..BATCH_CHUNKS {
        // Chunk sizes add up to `runs` exactly.
        let size = opts.runs * (chunk + 1) / BATCH_CHUNKS - opts.runs * chunk / BATCH_CHUNKS;
        for (i, rt) in runtimes.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..size {
                if timed_run(rt, image, Payload::True).is_none() {
                    break;
                }
                batch_runs[i] += 1;
            }
            batch_time[i] += start.elapsed();
        }
    }
    for i in 0..n {
        if batch_runs[i] == opts.runs {
            r.batch[i] = Some(opts.runs as f64 / batch_time[i].as_secs_f64());
        }
    }
    eprintln!("xtask: bench: peak RSS, {RSS_RUNS} interleaved rounds");
    for _ in 0..RSS_RUNS {
        for (i, rt) in runtimes.iter_mut().enumerate() {
            if let Some(kib) = sampled_peak_rss(rt, image) {
                r.rss[i] = Some(r.rss[i].map_or(kib, |old: u64| old.max(kib)));
            }
        }
    }
    let cold_runs = cold_runs(opts.runs);
    eprintln!(
        "xtask: bench: {cold_runs} cold rounds ({} ms idle before each run)",
        COLD_IDLE.as_millis()
    );
    for _ in 0..cold_runs {
        for (i, rt) in runtimes.iter_mut().enumerate() {
            if rt.dead.is_some() {
                continue;
            }
            std::thread::sleep(COLD_IDLE);
            if let Some(d) = timed_run(rt, image, Payload::True) {
                r.cold[i].push(d);
            }
        }
    }
    eprintln!(
        "xtask: bench: {SYSCALL_ROUNDS} interleaved rounds of `{}`",
        SYSCALL_PAYLOAD.join(" ")
    );
    for _ in 0..SYSCALL_ROUNDS {
        for (i, rt) in runtimes.iter_mut().enumerate() {
            if let Some(d) = timed_run(rt, image, Payload::Syscalls) {
                r.syscalls[i] = Some(r.syscalls[i].map_or(d, |old: Duration| old.min(d)));
            }
        }
    }
    Ok(r)
}

/// Nanoseconds per allowed syscall: the syscall payload's fastest run less
/// the median start-to-exit of `/bin/true`, over its reads and writes.
fn ns_per_syscall(syscalls: Option<Duration>, start: Option<&Stats>) -> Option<f64> {
    let spent = syscalls?.checked_sub(start?.median)?;
    Some(spent.as_secs_f64() * 1e9 / (2 * SYSCALL_COUNT) as f64)
}

fn cold_runs(runs: usize) -> usize {
    (runs / 4).clamp(5, 50)
}

fn quiet(mut cmd: Command) -> Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// One run; `None` when the runtime is dead or has just died (then its reason
/// is recorded, with the stderr of a second, diagnostic run).
fn timed_run(rt: &mut Runtime, image: &Path, payload: Payload) -> Option<Duration> {
    if rt.dead.is_some() {
        return None;
    }
    let mut cmd = quiet(rt.command(image, payload));
    let start = Instant::now();
    let status = cmd.status();
    let elapsed = start.elapsed();
    match status {
        Ok(s) if s.success() => Some(elapsed),
        other => {
            mark_dead(rt, image, payload, other);
            None
        }
    }
}

fn mark_dead(
    rt: &mut Runtime,
    image: &Path,
    payload: Payload,
    status: std::io::Result<ExitStatus>,
) {
    rt.after_failure();
    let first = match status {
        Ok(s) => format!("exited with {s}"),
        Err(e) => format!("could not start: {e}"),
    };
    let mut cmd = rt.command(image, payload);
    let shown = shown_command(&cmd);
    let stderr = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    rt.after_failure();
    let why = format!("`{shown}` {first}; stderr of a rerun: {stderr:?}");
    eprintln!("xtask: bench: {}: {why}", rt.label);
    rt.dead = Some(why);
}

fn shown_command(cmd: &Command) -> String {
    let mut words: Vec<OsString> = vec![cmd.get_program().to_os_string()];
    words.extend(cmd.get_args().map(|a| a.to_os_string()));
    words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The supervisor's peak RSS. xtask is `forbid(unsafe_code)` and so cannot call
/// wait4 for ru_maxrss; `/usr/bin/time -f %M` could, but ru_maxrss covers the
/// whole reaped process tree, where the static busybox payload (about 1.3 MiB)
/// and time's own pre-exec pages set the floor. So VmHWM of the direct child is
/// read from /proc every millisecond while the payload sleeps; the largest
/// value seen before the child exits is its peak, up to whatever the last
/// millisecond of clean-up adds.
fn sampled_peak_rss(rt: &mut Runtime, image: &Path) -> Option<u64> {
    if rt.dead.is_some() {
        return None;
    }
    let mut cmd = quiet(rt.command(image, Payload::Sleep));
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            mark_dead(rt, image, Payload::Sleep, Err(e));
            return None;
        }
    };
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = None;
    loop {
        // The unreaped child keeps its pid, so this file is never another process's.
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm_kib(&s))
        {
            peak = Some(peak.map_or(kib, |p: u64| p.max(kib)));
        }
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return peak,
            Ok(Some(s)) => {
                mark_dead(rt, image, Payload::Sleep, Ok(s));
                return None;
            }
            Ok(None) => std::thread::sleep(RSS_POLL),
            Err(e) => {
                mark_dead(rt, image, Payload::Sleep, Err(e));
                return None;
            }
        }
    }
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Stats {
    median: Duration,
    p90: Duration,
    min: Duration,
}

/// Nearest-rank percentile (`pct` in 1..=100) of sorted, non-empty samples.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    let n = sorted.len();
    let rank = (pct * n).div_ceil(100);
    sorted[rank.clamp(1, n) - 1]
}

fn stats(samples: &[Duration]) -> Option<Stats> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    Some(Stats {
        median: percentile(&sorted, 50),
        p90: percentile(&sorted, 90),
        min: sorted[0],
    })
}

/// `podman run --rm IMAGE /bin/true`, per OCI runtime, with microbox's
/// median as the base of the ratios.
fn print_podman(rows: &[crate::bench_podman::Row]) {
    println!();
    println!("bench: podman run --rm --network none busybox /bin/true (interleaved, wall ms)");
    println!(
        "{:<10} {:>6} {:>9} {:>9} {:>9}  vs microbox",
        "runtime", "runs", "median", "p90", "min"
    );
    let base = rows
        .first()
        .and_then(|r| stats(&r.samples))
        .map(|s| s.median.as_secs_f64());
    for row in rows {
        match (&row.failed, stats(&row.samples)) {
            (None, Some(st)) => println!(
                "{:<10} {:>6} {:>9} {:>9} {:>9}  {}",
                row.runtime,
                row.samples.len(),
                ms(st.median),
                ms(st.p90),
                ms(st.min),
                base.map_or("-".into(), |b| ratio(st.median.as_secs_f64(), b))
            ),
            (failed, _) => println!(
                "{:<10} failed: {}",
                row.runtime,
                failed.as_deref().unwrap_or("no successful run")
            ),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

struct Report<'a> {
    opts: &'a Options,
    microbox: &'a Path,
    image: &'a Path,
    runtimes: &'a [Runtime],
    results: &'a Results,
    load_start: &'a str,
    load_end: &'a str,
}

fn version_of(program: &str) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "version unknown".into())
}

fn print_report(rep: &Report) {
    let r = rep.results;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cgroup = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2"
    } else {
        "v1"
    };
    println!();
    println!(
        "bench: /bin/true in {} | kernel {kernel}, {cpus} CPUs, cgroup {cgroup}",
        rep.image.display()
    );
    println!(
        "microbox {} ({} KiB static); {}; {}",
        rep.microbox.display(),
        std::fs::metadata(rep.microbox).map_or(0, |m| m.len() / 1024),
        version_of(BWRAP),
        version_of(CRUN),
    );
    println!(
        "load average (1, 5, 15 min): {} at start, {} at end (meaningful only on an idle machine)",
        rep.load_start, rep.load_end
    );
    println!();
    println!(
        "{:<20} {:>5} {:>9} {:>9} {:>9} {:>11} {:>5} {:>10} {:>9} {:>10}",
        "runtime",
        "runs",
        "median",
        "p90",
        "min",
        "sandboxes/s",
        "cold",
        "cold med",
        "cold p90",
        "peak RSS"
    );
    for (i, rt) in rep.runtimes.iter().enumerate() {
        let warm = stats(&r.warm[i]);
        let cold = stats(&r.cold[i]);
        let cell = |s: &Option<Stats>, f: fn(&Stats) -> Duration| {
            s.as_ref()
                .map_or("-".into(), |s| format!("{} ms", ms(f(s))))
        };
        println!(
            "{:<20} {:>5} {:>9} {:>9} {:>9} {:>11} {:>5} {:>10} {:>9} {:>10}",
            rt.label,
            r.warm[i].len(),
            cell(&warm, |s| s.median),
            cell(&warm, |s| s.p90),
            cell(&warm, |s| s.min),
            r.batch[i].map_or("-".into(), |v| format!("{v:.1}")),
            r.cold[i].len(),
            cell(&cold, |s| s.median),
            cell(&cold, |s| s.p90),
            r.rss[i].map_or("-".into(), |k| format!("{k} KiB")),
        );
    }
    println!();
    println!(
        "allowed syscalls inside (`{}`: {} calls; fastest of {SYSCALL_ROUNDS} runs, less the \
         median /bin/true start):",
        SYSCALL_PAYLOAD.join(" "),
        2 * SYSCALL_COUNT
    );
    for (i, rt) in rep.runtimes.iter().enumerate() {
        if let (Some(total), Some(ns)) = (
            r.syscalls[i],
            ns_per_syscall(r.syscalls[i], stats(&r.warm[i]).as_ref()),
        ) {
            println!(
                "  {:<20} {:>9} ms total, {ns:>6.0} ns per call",
                rt.label,
                ms(total)
            );
        }
    }
    println!();
    print_ratios(rep);
    println!();
    println!("what each runtime does here:");
    println!(
        "  microbox    defaults: user (0-65535 on a leased host range, the image idmapped), pid, \
         mount, net, ipc, uts and cgroup namespaces; overlay root (image read-only under a \
         tmpfs layer); cgroups \
         (1 CPU, 1 GiB without swap, 1024 pids); seccomp deny list; 14 capabilities"
    );
    println!("  --net host  the same without the network namespace: the difference is its cost");
    println!(
        "  --net bridge  the defaults plus a veth pair on the bridge microbox0, an address \
         lease and the bridge's shared tables, asked for over netlink (no per-sandbox table \
         without --publish or --net-allow; no conntrack walk, since /bin/true sends nothing)"
    );
    if let Some(bin) = &rep.opts.baseline {
        println!(
            "  baseline    {} with microbox's defaults (--baseline)",
            bin.display()
        );
    }
    println!(
        "  bwrap       --unshare-all (user, pid, net, ipc, uts, cgroup), read-only bind of \
         the image as /, /proc, /dev, /tmp; NO cgroups, NO overlay, no seccomp filter"
    );
    println!(
        "  rootless    microbox and bwrap as above, run by user nobody on a copy of the image \
         it owns: microbox with the user's own ids (or nobody's /etc/subuid range), and \
         without cgroups where none is delegated (cgroup v1)"
    );
    println!(
        "  crun        OCI bundle in target/microbox/bench/crun: the same namespaces, id map, \
         limits (cgroupfs), capabilities and deny list; read-only image, NO overlay"
    );
    if in_private_namespaces() {
        println!(
            "              (all runtimes ran in a private mount and network namespace; on a \
             hybrid host with a tmpfs over /sys/fs/cgroup/unified, whose hugetlb controller \
             crun refuses)"
        );
    }
    println!(
        "latency: wall time of spawn + wait of the command, stdio on /dev/null, round-robin \
         over the runtimes after {WARMUP_ROUNDS} warm-up rounds; p90 is nearest-rank"
    );
    println!(
        "cold: {} ms idle before each run; on cgroup v1 the first cgroup.procs write after \
         idle waits for an RCU grace period (DESIGN.md section 6), bwrap has no cgroup to pay it",
        COLD_IDLE.as_millis()
    );
    println!(
        "sandboxes/s: {} runs of one runtime back to back (in {BATCH_CHUNKS} chunks taken in \
         turn with the other runtimes), divided by their total wall time",
        rep.opts.runs
    );
    println!(
        "peak RSS: largest VmHWM of the supervisor (the process started: microbox, bwrap's \
         monitor, crun) sampled every {} ms over {RSS_RUNS} runs of `{}`; processes inside \
         the sandbox are not counted",
        RSS_POLL.as_millis(),
        SLEEP_PAYLOAD.join(" ")
    );
    for rt in rep.runtimes {
        if let Some(why) = &rt.dead {
            println!("NOT MEASURED {}: {why}", rt.label);
        }
    }
}

fn print_ratios(rep: &Report) {
    let r = rep.results;
    let index = |label: &str| rep.runtimes.iter().position(|rt| rt.label == label);
    let pairs = [
        ("microbox", "baseline"),
        ("microbox", "bwrap"),
        ("microbox", "crun"),
        ("microbox rootless", "bwrap rootless"),
    ];
    for (mine, other) in pairs {
        let (Some(mb), Some(o)) = (index(mine), index(other)) else {
            continue;
        };
        let mb_warm = stats(&r.warm[mb]);
        let mb_cold = stats(&r.cold[mb]);
        let mut parts = Vec::new();
        if let (Some(a), Some(b)) = (&mb_warm, &stats(&r.warm[o])) {
            parts.push(format!(
                "median {}",
                ratio(a.median.as_secs_f64(), b.median.as_secs_f64())
            ));
            parts.push(format!(
                "p90 {}",
                ratio(a.p90.as_secs_f64(), b.p90.as_secs_f64())
            ));
        }
        if let (Some(a), Some(b)) = (&mb_cold, &stats(&r.cold[o])) {
            parts.push(format!(
                "cold median {}",
                ratio(a.median.as_secs_f64(), b.median.as_secs_f64())
            ));
        }
        if let (Some(a), Some(b)) = (r.batch[mb], r.batch[o]) {
            parts.push(format!("sandboxes/s {}", ratio(a, b)));
        }
        if let (Some(a), Some(b)) = (r.rss[mb], r.rss[o]) {
            parts.push(format!("peak RSS {}", ratio(a as f64, b as f64)));
        }
        if let (Some(a), Some(b)) = (
            ns_per_syscall(r.syscalls[mb], mb_warm.as_ref()),
            ns_per_syscall(r.syscalls[o], stats(&r.warm[o]).as_ref()),
        ) {
            parts.push(format!("allowed syscall {}", ratio(a, b)));
        }
        if parts.is_empty() {
            println!("{mine}/{other}: not measured");
        } else {
            println!("{mine}/{other}: {}", parts.join(", "));
        }
    }
    let Some(mb) = index("microbox") else { return };
    let mb_warm = stats(&r.warm[mb]);
    if let (Some(a), Some(b)) = (
        &mb_warm,
        index("microbox --net host").and_then(|i| stats(&r.warm[i])),
    ) {
        let diff = a.median.as_secs_f64() - b.median.as_secs_f64();
        println!(
            "network namespace cost (microbox median - --net host median): {:.2} ms",
            diff * 1000.0
        );
    }
    if let Some(i) = index("microbox --net bridge") {
        if let (Some(a), Some(b)) = (stats(&r.warm[i]), &mb_warm) {
            let diff = a.median.as_secs_f64() - b.median.as_secs_f64();
            println!(
                "bridge set-up cost (--net bridge median - microbox median): {:.2} ms",
                diff * 1000.0
            );
        }
        if let (Some(a), Some(b)) = (r.batch[i], r.batch[mb]) {
            println!(
                "sandboxes/s with --net bridge: {a:.0} ({} of microbox's)",
                ratio(a, b)
            );
        }
    }
}

/// `bench --profile [--runs N]` (crate::profile).
fn profile(ctx: &Ctx, args: &[String]) -> Result<u8, String> {
    let opts = parse_args(args)?;
    if !is_root() {
        return Err("bench --profile needs root (sudo cargo xtask bench --profile)".into());
    }
    let bins = build_static(ctx, &["microbox"])?;
    let microbox = crate::bin(&bins, "microbox")?.clone();
    let image = crate::timed("rootfs busybox", || rootfs::busybox_image(&ctx.cache))?;
    crate::profile::run(&microbox, &image, opts.runs, &ctx.cache.join("profile"))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options() {
        assert_eq!(parse_args(&[]).unwrap().runs, DEFAULT_RUNS);
        assert_eq!(parse_args(&[]).unwrap().baseline, None);
        assert!(parse_args(&v(&["--baseline", "/nonexistent/microbox"])).is_err());
        assert!(parse_args(&v(&["--baseline"])).is_err());
        let me = std::env::current_exe().unwrap();
        let with = parse_args(&v(&["--baseline", me.to_str().unwrap()])).unwrap();
        assert_eq!(with.baseline.as_deref(), Some(me.as_path()));
        assert_eq!(parse_args(&v(&["--quick"])).unwrap().runs, QUICK_RUNS);
        assert_eq!(parse_args(&v(&["--runs", "12"])).unwrap().runs, 12);
        assert_eq!(parse_args(&v(&["--runs=7", "--quick"])).unwrap().runs, 7);
        assert!(parse_args(&v(&["--runs"])).is_err());
        assert!(parse_args(&v(&["--runs", "1"])).is_err());
        assert!(parse_args(&v(&["--runs", "x"])).is_err());
        assert!(parse_args(&v(&["--fast"])).is_err());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |n: u64| Duration::from_millis(n);
        let sorted: Vec<Duration> = (1..=10).map(ms).collect();
        assert_eq!(percentile(&sorted, 50), ms(5));
        assert_eq!(percentile(&sorted, 90), ms(9));
        assert_eq!(percentile(&[ms(3)], 90), ms(3));
        let s = stats(&[ms(4), ms(1), ms(3), ms(2)]).unwrap();
        assert_eq!((s.median, s.p90, s.min), (ms(2), ms(4), ms(1)));
        assert!(stats(&[]).is_none());
    }

    #[test]
    fn reads_vm_hwm() {
        let status =
            "Name:\tmicrobox\nVmPeak:\t   9000 kB\nVmHWM:\t    1956 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(1956));
        assert_eq!(vm_hwm_kib("Name:\tzombie\nState:\tZ (zombie)\n"), None);
    }

    #[test]
    fn crun_config_is_valid_json_with_the_asked_fields() {
        let text = crun_config("/r/\"odd\\path\n", &["/bin/true"], "microbox-bench-1");
        let cfg: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(cfg["root"]["path"], "/r/\"odd\\path\n");
        assert_eq!(cfg["root"]["readonly"], true);
        assert_eq!(cfg["process"]["terminal"], false);
        assert_eq!(cfg["process"]["args"], json!(["/bin/true"]));
        assert_eq!(cfg["process"]["capabilities"]["bounding"], json!(caps()));
        let namespaces: Vec<_> = cfg["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        for ns in ["pid", "network", "ipc", "uts", "mount", "cgroup", "user"] {
            assert!(namespaces.contains(&ns), "{ns} missing");
        }
        assert_eq!(cfg["linux"]["cgroupsPath"], "/microbox-bench-1/crun");
        assert_eq!(cfg["linux"]["resources"]["memory"]["limit"], 1 << 30);
        assert_eq!(cfg["linux"]["resources"]["pids"]["limit"], 1024);
        let rule = &cfg["linux"]["seccomp"]["syscalls"][0];
        assert_eq!(rule["names"], json!(super::denied()));
        assert_eq!(rule["action"], "SCMP_ACT_ERRNO");
    }

    #[test]
    fn cold_pass_is_bounded() {
        assert_eq!(cold_runs(200), 50);
        assert_eq!(cold_runs(30), 7);
        assert_eq!(cold_runs(2), 5);
        assert_eq!(cold_runs(10_000), 50);
    }
}
