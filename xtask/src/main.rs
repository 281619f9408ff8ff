//! `cargo xtask`: the project's build and test driver (std only, no crates).
//! Run `cargo xtask help` for the commands.

#![forbid(unsafe_code)]
// The STYLE.md lint table allows unwrap() in tests.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod arm64;
mod bench;
mod bench_podman;
mod cargo;
mod cpio;
mod debian;
mod dist;
mod docs;
mod elf;
mod fuzz;
mod gen_syscalls;
mod kernel;
mod packages;
mod profile;
mod results;
mod rootfs;
mod vm;

use cargo::StaticTarget;
use results::{Layer, LayerStatus};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Exit status of a command that did not run for want of tools (automake's SKIP).
const EXIT_SKIPPED: u8 = 77;

const HELP: &str = "\
cargo xtask <command>

  build [--target x86_64|aarch64]
                      static release build of microbox; prints path and size
  rootfs [busybox]    busybox image in target/microbox/rootfs/busybox
  rootfs test         test image: busybox + the static probe at /bin/probe
  rootfs debian [--suite SUITE] [--include PKG,...]
                      minimal Debian image (debootstrap, root) from the host's
                      apt mirror in target/microbox/rootfs/debian (bookworm)
  quickstart          build + rootfs, then run a hello-world sandbox
  test [-- ARGS]      unit tests, privileged integration tests (root), VM leg;
                      ARGS go to every libtest run (filters, --nocapture, ...)
  vm-test [--arch x86_64|aarch64] [-- ARGS]
                      the integration tests inside a QEMU VM (cgroup v2);
                      aarch64: Debian's arm64 kernel under qemu-system-aarch64
  vm-test --initramfs-root [-- ARGS]
                      the same (x86_64, OCI mode left out) with / left on the
                      initramfs, as hosts that never switch root have it
  vm-selftest         boots the VM twice: empty suite must pass, and
                      MICROBOX_VM_SELFTEST_FAIL=1 must turn it red
  fuzz [TARGET...] [--seconds N]
                      cargo-fuzz targets (all of fuzz/), N s each (60)
  docs [--out DIR]    man page microbox(1) and bash, zsh, fish completions from
                      the option table (default target/microbox/docs)
  dist [--target x86_64|aarch64]... [--out DIR] [--target-dir DIR]
                      reproducible release archives and SHA256SUMS in
                      target/microbox/dist (default: both targets)
  dist --verify       build them twice in different directories and compare
                      (the dist layer of `test`)
  gen-syscalls [--headers DIR]  regenerate src/security/syscalls_*.rs from kernel uapi headers
  bench [--runs N] [--quick] [--baseline BIN]
                      /bin/true in microbox, bwrap and crun on the busybox
                      image (root): latency, sandboxes/s, RSS, ratios
  bench --profile [--runs N]
                      per-phase wall and CPU time of one start (MICROBOX_PROFILE=1
                      marks), then perf record -a -g: defaults and --net host

Environment: CI=true (cannot-run becomes failure, not skip),
MICROBOX_VM_KERNEL (bzImage to boot), MICROBOX_VM_TIMEOUT (seconds, default 900),
MICROBOX_VM_ACCEL=kvm (default tcg), MICROBOX_VM_SELFTEST_FAIL=1,
MICROBOX_BUILD_TARGET=musl|gnu (default: musl when its rustup target is installed).
";

struct Ctx {
    repo: PathBuf,
    cache: PathBuf,
    ci: bool,
}

impl Ctx {
    fn new() -> Ctx {
        // xtask/ sits in the repository root.
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let repo = manifest.parent().unwrap_or(manifest).to_path_buf();
        let cache = repo.join("target/microbox");
        let ci = std::env::var("CI")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
            .unwrap_or(false);
        Ctx { repo, cache, ci }
    }
}

/// Runs one step and reports its wall time on stderr.
fn timed<T>(name: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let start = Instant::now();
    eprintln!("xtask: {name} ...");
    let result = f();
    let secs = start.elapsed().as_secs_f64();
    match &result {
        Ok(_) => eprintln!("xtask: {name}: done in {secs:.1} s"),
        Err(_) => eprintln!("xtask: {name}: failed after {secs:.1} s"),
    }
    result
}

/// The static binaries of the workspace (microbox, and probe when asked),
/// each checked to have no dynamic loader.
fn build_static(ctx: &Ctx, packages: &[&str]) -> Result<BTreeMap<String, PathBuf>, String> {
    build_static_for(ctx, StaticTarget::detect(), packages)
}

fn build_static_for(
    ctx: &Ctx,
    target: StaticTarget,
    packages: &[&str],
) -> Result<BTreeMap<String, PathBuf>, String> {
    let bins = timed(
        &format!("build {} ({})", packages.join(" + "), target.describe()),
        || cargo::build_static_bins(&ctx.repo, target, packages),
    )?;
    for (name, path) in &bins {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !elf::is_static(&bytes).map_err(|e| format!("{}: {e}", path.display()))? {
            return Err(format!(
                "{name} at {} is dynamically linked (it has a PT_INTERP header); \
                 the sandbox images carry no libc",
                path.display()
            ));
        }
    }
    Ok(bins)
}

fn bin<'a>(bins: &'a BTreeMap<String, PathBuf>, name: &str) -> Result<&'a PathBuf, String> {
    bins.get(name)
        .ok_or_else(|| format!("the build produced no {name} binary"))
}

/// `build [--target x86_64|aarch64]`.
fn cmd_build(ctx: &Ctx, args: &[String]) -> Result<(), String> {
    let target = match args {
        [] => StaticTarget::detect(),
        [flag, arch] if flag == "--target" => StaticTarget::for_arch(arch)?,
        _ => return Err("build: use [--target x86_64|aarch64]".into()),
    };
    let bins = build_static_for(ctx, target, &["microbox"])?;
    let path = bin(&bins, "microbox")?;
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
        .len();
    println!(
        "{} ({size} bytes, {} KiB, static)",
        path.display(),
        size / 1024
    );
    Ok(())
}

fn cmd_rootfs(ctx: &Ctx, args: &[String]) -> Result<(), String> {
    let dir = match args.first().map(String::as_str) {
        None | Some("busybox") => timed("rootfs busybox", || rootfs::busybox_image(&ctx.cache))?,
        Some("test") => {
            let bins = build_static(ctx, &["probe"])?;
            let probe = bin(&bins, "probe")?;
            timed("rootfs test", || rootfs::test_image(&ctx.cache, probe))?
        }
        Some("debian") => {
            let inputs = debian::parse_args(&args[1..])?;
            timed("rootfs debian", || debian::image(&ctx.cache, &inputs))?
        }
        Some(other) => {
            return Err(format!(
                "unknown image {other:?}: use busybox, test or debian"
            ))
        }
    };
    println!("{}", dir.display());
    Ok(())
}

/// Maps a child's status to ours the way shells do (128+N for signal N).
fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from((128 + sig) & 0xff).unwrap_or(1),
        _ => 1,
    }
}

fn cmd_quickstart(ctx: &Ctx) -> Result<u8, String> {
    packages::ensure(packages::QUICKSTART)?;
    let bins = build_static(ctx, &["microbox"])?;
    let microbox = bin(&bins, "microbox")?;
    let image = timed("rootfs busybox", || rootfs::busybox_image(&ctx.cache))?;
    let mut cmd = Command::new(microbox);
    cmd.arg("--fs")
        .arg(&image)
        .args(["--", "/bin/sh", "-c", "echo Hello Sandbox!"]);
    eprintln!(
        "xtask: running {} --fs {} -- /bin/sh -c 'echo Hello Sandbox!'",
        microbox.display(),
        image.display()
    );
    let start = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", microbox.display()))?;
    eprintln!(
        "xtask: sandbox exited with {status} after {:.3} s",
        start.elapsed().as_secs_f64()
    );
    Ok(exit_code_of(status))
}

/// Effective uid, from /proc (std has no geteuid).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A layer that could not run: skipped outside CI, failed in CI.
fn cannot_run(ctx: &Ctx, name: &'static str, why: String) -> Layer {
    let status = if ctx.ci {
        LayerStatus::Failed(format!("{why} (CI=true: not running is a failure)"))
    } else {
        LayerStatus::Skipped(why)
    };
    Layer {
        name,
        counts: results::Counts::default(),
        status,
        seconds: 0.0,
    }
}

fn counted_layer(name: &'static str, start: Instant, cmd: Command) -> Layer {
    let (status, counts) = match results::run_counting(cmd) {
        Ok(r) => r,
        Err(e) => {
            return Layer {
                name,
                counts: results::Counts::default(),
                status: LayerStatus::Failed(e),
                seconds: start.elapsed().as_secs_f64(),
            }
        }
    };
    let status = if status.success() && counts.failed == 0 {
        LayerStatus::Ok
    } else {
        LayerStatus::Failed(format!("cargo test exited with {status}"))
    };
    Layer {
        name,
        counts,
        status,
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn unit_layer(ctx: &Ctx, args: &[String]) -> Layer {
    eprintln!("xtask: [unit] cargo test --no-fail-fast --workspace --lib --bins");
    let mut cmd = cargo::cargo(&ctx.repo);
    cmd.args([
        "test",
        "--no-fail-fast",
        "--workspace",
        "--lib",
        "--bins",
        "--",
    ])
    .args(args);
    counted_layer("unit", Instant::now(), cmd)
}

/// The built things both privileged legs need.
struct Built {
    microbox: PathBuf,
    image: PathBuf,
}

fn build_for_tests(ctx: &Ctx) -> Result<Built, String> {
    let bins = build_static(ctx, &["microbox", "probe"])?;
    let probe = bin(&bins, "probe")?;
    let image = timed("rootfs test", || rootfs::test_image(&ctx.cache, probe))?;
    Ok(Built {
        microbox: bin(&bins, "microbox")?.clone(),
        image,
    })
}

/// The aarch64 guest's microbox and test image: cross-built, with its busybox.
fn build_for_aarch64_tests(ctx: &Ctx, busybox: &Path) -> Result<Built, String> {
    let bins = build_static_for(ctx, StaticTarget::Aarch64Musl, &["microbox", "probe"])?;
    let probe = bin(&bins, "probe")?;
    let image = timed("rootfs test-aarch64", || {
        rootfs::foreign_test_image(&ctx.cache, "aarch64", busybox, probe)
    })?;
    Ok(Built {
        microbox: bin(&bins, "microbox")?.clone(),
        image,
    })
}

fn host_layer(ctx: &Ctx, built: &Result<Built, String>, args: &[String]) -> Layer {
    let start = Instant::now();
    let failed = |why: String| Layer {
        name: "host",
        counts: results::Counts::default(),
        status: LayerStatus::Failed(why),
        seconds: start.elapsed().as_secs_f64(),
    };
    if !is_root() {
        return cannot_run(
            ctx,
            "host",
            "the privileged integration tests need root (run `sudo cargo xtask test`)".into(),
        );
    }
    let built = match built {
        Ok(b) => b,
        Err(e) => return failed(format!("build failed: {e}")),
    };
    eprintln!(
        "xtask: [host] cargo test --no-fail-fast -p {} --test {}",
        cargo::PACKAGE,
        cargo::INTEGRATION_TESTS
    );
    let mut cmd = cargo::cargo(&ctx.repo);
    cmd.args([
        "test",
        "--no-fail-fast",
        "-p",
        cargo::PACKAGE,
        "--test",
        cargo::INTEGRATION_TESTS,
        "--",
    ])
    .args(args)
    .env("MICROBOX_BIN", &built.microbox)
    .env("MICROBOX_TEST_ROOTFS", &built.image)
    .env("MICROBOX_TEST_LEG", "host");
    if ctx.ci {
        cmd.env("CI", "true");
    }
    // The Debian image's test runs on the host leg only (the VM has no room
    // for 130 MB more); without the image that test says why it cannot run.
    match timed("rootfs debian", || {
        debian::image(&ctx.cache, &debian::Inputs::default())
    }) {
        Ok(dir) => {
            cmd.env("MICROBOX_TEST_DEBIAN", dir);
        }
        Err(e) => eprintln!("xtask: [host] no Debian image: {e}"),
    }
    counted_layer("host", start, cmd)
}

/// Runs the VM leg of `arch`; `built` (x86_64 only) is reused when the host
/// leg already built things.
fn vm_layer(
    ctx: &Ctx,
    arch: vm::Arch,
    built: Option<&Result<Built, String>>,
    args: &[String],
) -> Layer {
    vm_boot_layer(ctx, arch, false, built, args)
}

/// The boot that stays on the initramfs root (as hosts that never switch
/// root do): the whole suite but OCI mode, which such a host refuses.
fn vm_initramfs_layer(ctx: &Ctx, built: Option<&Result<Built, String>>, args: &[String]) -> Layer {
    let mut args = args.to_vec();
    // OCI mode is refused there (initramfs::oci_create_is_refused_in_one_line);
    // the delegated-limits test needs `--allow-syscall mount`, refused there too.
    for skip in ["oci::", "rootless::limits_need_a_cgroup_the_user_can_write"] {
        args.extend(["--skip".to_string(), skip.to_string()]);
    }
    vm_boot_layer(ctx, vm::Arch::X86_64, true, built, &args)
}

fn vm_boot_layer(
    ctx: &Ctx,
    arch: vm::Arch,
    initramfs_root: bool,
    built: Option<&Result<Built, String>>,
    args: &[String],
) -> Layer {
    let start = Instant::now();
    let name = if initramfs_root {
        "vm-initramfs"
    } else {
        arch.layer()
    };
    let failed = |why: String, counts| Layer {
        name,
        counts,
        status: LayerStatus::Failed(why),
        seconds: start.elapsed().as_secs_f64(),
    };
    let machine = match vm::preflight(arch, &ctx.cache) {
        Ok(m) => m,
        Err(vm::Unavailable::Missing(why)) => return cannot_run(ctx, name, why),
        Err(vm::Unavailable::Broken(why)) => return failed(why, Default::default()),
    };
    let target = match arch {
        vm::Arch::X86_64 => StaticTarget::detect(),
        vm::Arch::Aarch64 => match StaticTarget::for_arch("aarch64") {
            Ok(t) => t,
            Err(why) => return cannot_run(ctx, name, why),
        },
    };
    let owned;
    let built = match (built, arch) {
        (Some(b), vm::Arch::X86_64) => b,
        (_, vm::Arch::X86_64) => {
            owned = build_for_tests(ctx);
            &owned
        }
        (_, vm::Arch::Aarch64) => {
            owned = build_for_aarch64_tests(ctx, &machine.busybox);
            &owned
        }
    };
    let built = match built {
        Ok(b) => b,
        Err(e) => return failed(format!("build failed: {e}"), Default::default()),
    };
    let tests = match timed(
        &format!("build the static test executable ({})", target.describe()),
        || cargo::build_integration_tests(&ctx.repo, Some(target)),
    ) {
        Ok(exe) => Some(exe),
        Err(e) => return failed(e, Default::default()),
    };
    let payload = vm::Payload {
        microbox: Some(built.microbox.clone()),
        test_rootfs: Some(built.image.clone()),
        tests,
        test_args: args.to_vec(),
        initramfs_root,
    };
    let selftest_fail = std::env::var("MICROBOX_VM_SELFTEST_FAIL").as_deref() == Ok("1");
    match run_vm(ctx, &machine, &payload, selftest_fail) {
        Ok(run) => {
            let status = match &run.verdict {
                vm::Verdict::Pass => LayerStatus::Ok,
                vm::Verdict::Fail => LayerStatus::Failed("the suite failed in the VM".into()),
                vm::Verdict::Infra(why) => LayerStatus::Failed(format!("VM harness error: {why}")),
            };
            Layer {
                name,
                counts: run.counts,
                status,
                seconds: start.elapsed().as_secs_f64(),
            }
        }
        Err(e) => failed(e, Default::default()),
    }
}

/// Writes the initramfs, boots it, and reports the timings.
fn run_vm(
    ctx: &Ctx,
    machine: &vm::Machine,
    payload: &vm::Payload,
    selftest_fail: bool,
) -> Result<vm::VmRun, String> {
    let vmdir = ctx.cache.join("vm");
    std::fs::create_dir_all(&vmdir)
        .map_err(|e| format!("cannot create {}: {e}", vmdir.display()))?;
    let (kernel_file, pvh) = match machine.arch {
        vm::Arch::X86_64 => timed("kernel", || Ok(machine.kernel.boot_file(&vmdir)))?,
        // arm64's vmlinuz is the uncompressed Image QEMU boots directly.
        vm::Arch::Aarch64 => (machine.kernel.image.clone(), false),
    };
    // Written under a private name, then renamed: parallel runs never read a half-written file.
    let initrd = vmdir.join(match machine.arch {
        vm::Arch::X86_64 => "initramfs.cpio".to_string(),
        vm::Arch::Aarch64 => "initramfs-aarch64.cpio".to_string(),
    });
    let tmp = vmdir.join(format!(".initramfs-{}.cpio", std::process::id()));
    let size = timed("initramfs", || vm::write_initramfs(&tmp, machine, payload))?;
    std::fs::rename(&tmp, &initrd).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            tmp.display(),
            initrd.display()
        )
    })?;
    eprintln!(
        "xtask: [vm] kernel {} ({}), initramfs {:.1} MiB, {} modules, {} test executable, timeout {} s",
        machine.kernel.release,
        match (machine.arch, pvh) {
            (vm::Arch::Aarch64, _) => "arm64 Image",
            (_, true) => "PVH vmlinux",
            (_, false) => "bzImage",
        },
        size as f64 / 1048576.0,
        machine.modules.len(),
        if payload.tests.is_some() { "one" } else { "no" },
        vm::timeout()?.as_secs()
    );
    let mut env: Vec<(&str, &str)> = vec![("MICROBOX_TEST_LEG", "vm")];
    if payload.initramfs_root {
        env.push(("microbox.root", "initramfs"));
    }
    if ctx.ci {
        env.push(("CI", "true"));
    }
    if selftest_fail {
        env.push(("MICROBOX_VM_SELFTEST_FAIL", "1"));
    }
    let run = vm::boot(machine, &kernel_file, &initrd, &env, vm::timeout()?)?;
    if let Some(h) = &run.header {
        eprintln!(
            "xtask: [vm] guest kernel {}, /sys/fs/cgroup is {} (statfs magic 0x{})",
            h.kernel, h.cgroup_mount, h.cgroup_magic
        );
    }
    eprintln!(
        "xtask: [vm] {:?}: {}; {}",
        run.verdict,
        run.counts,
        vm::describe(&run)
    );
    Ok(run)
}

/// Boots the harness without tests twice: green must pass, red must fail.
fn vm_selftest_layer(ctx: &Ctx, green_too: bool) -> Layer {
    let start = Instant::now();
    let machine = match vm::preflight(vm::Arch::X86_64, &ctx.cache) {
        Ok(m) => m,
        Err(vm::Unavailable::Missing(why)) => return cannot_run(ctx, "vm-selftest", why),
        Err(vm::Unavailable::Broken(why)) => {
            return Layer {
                name: "vm-selftest",
                counts: results::Counts::default(),
                status: LayerStatus::Failed(why),
                seconds: start.elapsed().as_secs_f64(),
            }
        }
    };
    let payload = vm::Payload::default();
    let mut counts = results::Counts::default();
    let mut problems = Vec::new();
    let mut runs = vec![(true, vm::Verdict::Fail)];
    if green_too {
        runs.insert(0, (false, vm::Verdict::Pass));
    }
    for (fail, expected) in runs {
        let label = if fail {
            "red run (MICROBOX_VM_SELFTEST_FAIL=1)"
        } else {
            "green run"
        };
        eprintln!("xtask: [vm-selftest] {label}: expecting {expected:?}");
        match run_vm(ctx, &machine, &payload, fail) {
            Ok(run) if run.verdict == expected => counts.passed += 1,
            Ok(run) => {
                counts.failed += 1;
                problems.push(format!(
                    "{label} gave {:?}, expected {expected:?}",
                    run.verdict
                ));
            }
            Err(e) => {
                counts.failed += 1;
                problems.push(format!("{label}: {e}"));
            }
        }
    }
    Layer {
        name: "vm-selftest",
        counts,
        status: if problems.is_empty() {
            LayerStatus::Ok
        } else {
            LayerStatus::Failed(problems.join("; "))
        },
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn report(layers: &[Layer]) -> u8 {
    println!();
    for l in layers {
        println!("{}", l.line());
    }
    println!("{}", results::summary(layers));
    u8::from(results::any_failed(layers))
}

/// The release archives, built twice and compared (`dist::verify`): both
/// targets when the aarch64 standard library is installed, else x86_64 and,
/// under CI, a failure saying what to install.
fn dist_layer(ctx: &Ctx) -> Layer {
    let start = Instant::now();
    eprintln!("xtask: [dist] two builds of the release archives, compared byte for byte");
    let mut arches = vec!["x86_64".to_string()];
    let mut missing = None;
    match StaticTarget::for_arch("aarch64") {
        Ok(_) => arches.push("aarch64".into()),
        Err(e) => missing = Some(e),
    }
    let mut counts = results::Counts::default();
    let mut failures = Vec::new();
    for (check, result) in dist::verify(&ctx.repo, &arches) {
        match result {
            Ok(()) => counts.passed += 1,
            Err(e) => {
                counts.failed += 1;
                failures.push(format!("{check}: {e}"));
            }
        }
    }
    if let Some(why) = missing {
        if ctx.ci {
            counts.failed += 1;
            failures.push(format!("no aarch64 archive: {why}"));
        } else {
            eprintln!("xtask: [dist] skipped the aarch64 archive: {why}");
        }
    }
    for failure in &failures {
        eprintln!("xtask: [dist] FAILED {failure}");
    }
    Layer {
        name: "dist",
        counts,
        status: if failures.is_empty() {
            LayerStatus::Ok
        } else {
            LayerStatus::Failed(failures.join("; "))
        },
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn cmd_test(ctx: &Ctx, args: &[String]) -> u8 {
    // What cannot be installed here shows up as skipped (failed in CI) tests.
    if let Err(line) = packages::ensure(packages::TEST) {
        eprintln!("xtask: {line}");
    }
    let mut layers = Vec::new();
    layers.push(unit_layer(ctx, args));
    layers.push(dist_layer(ctx));
    let built = build_for_tests(ctx);
    if let Err(e) = &built {
        eprintln!("xtask: {e}");
    }
    layers.push(host_layer(ctx, &built, args));
    let vm = vm_layer(ctx, vm::Arch::X86_64, Some(&built), args);
    let vm_ran = !matches!(vm.status, LayerStatus::Skipped(_));
    layers.push(vm);
    if vm_ran {
        // Proves that a failure inside the VM does turn the result red.
        layers.push(vm_selftest_layer(ctx, false));
    }
    layers.push(vm_initramfs_layer(ctx, Some(&built), args));
    layers.push(vm_layer(ctx, vm::Arch::Aarch64, None, args));
    report(&layers)
}

fn standalone(layer: Layer) -> u8 {
    let skipped = matches!(layer.status, LayerStatus::Skipped(_));
    let code = report(std::slice::from_ref(&layer));
    if skipped {
        EXIT_SKIPPED
    } else {
        code
    }
}

/// Everything after the command word; a leading `--` is optional.
fn libtest_args(rest: &[String]) -> Vec<String> {
    match rest.first().map(String::as_str) {
        Some("--") => rest[1..].to_vec(),
        _ => rest.to_vec(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ctx = Ctx::new();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let result: Result<u8, String> =
        match cmd {
            "build" => cmd_build(&ctx, rest).map(|()| 0),
            "rootfs" => cmd_rootfs(&ctx, rest).map(|()| 0),
            "quickstart" => cmd_quickstart(&ctx),
            "test" => Ok(cmd_test(&ctx, &libtest_args(rest))),
            "vm-test" => match rest {
                [flag, more @ ..] if flag == "--initramfs-root" => Ok(standalone(
                    vm_initramfs_layer(&ctx, None, &libtest_args(more)),
                )),
                [flag, arch, more @ ..] if flag == "--arch" => vm::Arch::parse(arch)
                    .map(|arch| standalone(vm_layer(&ctx, arch, None, &libtest_args(more)))),
                _ => Ok(standalone(vm_layer(
                    &ctx,
                    vm::Arch::X86_64,
                    None,
                    &libtest_args(rest),
                ))),
            },
            "vm-selftest" => Ok(standalone(vm_selftest_layer(&ctx, true))),
            "bench" => bench::run(&ctx, rest),
            "gen-syscalls" => gen_syscalls::run(&ctx.repo, rest).map(|()| 0),
            "fuzz" => fuzz::run(&ctx.repo, rest),
            "docs" => docs::run(&ctx.repo, rest),
            "dist" if rest.first().map(String::as_str) == Some("--verify") => {
                Ok(standalone(dist_layer(&ctx)))
            }
            "dist" => dist::run(&ctx.repo, rest),
            "help" | "-h" | "--help" => {
                print!("{HELP}");
                Ok(0)
            }
            other => Err(format!("unknown command {other:?}\n\n{HELP}")),
        };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_args_strip_one_separator() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            libtest_args(&v(&["--", "--nocapture"])),
            v(&["--nocapture"])
        );
        assert_eq!(libtest_args(&v(&["cgroup"])), v(&["cgroup"]));
        assert!(libtest_args(&[]).is_empty());
    }

    #[test]
    fn repo_root_holds_the_workspace() {
        let ctx = Ctx::new();
        assert!(ctx.repo.join("Cargo.toml").is_file());
        assert!(ctx.cache.ends_with("target/microbox"));
    }
}
