//! Running untrusted code (issue 12): `--timeout`, `--cpu-time`, `--rlimit`,
//! `--output-limit`, the JSON run report and the denied syscalls it lists,
//! as a judge or an agent harness sees them: exit codes, output, the report
//! parsed with a real JSON parser, and nothing left on the host.

use std::path::Path;
use std::time::Duration;

use libtest_mimic::Trial;
use serde_json::Value;

use crate::harness::{open_pty, Env, HostSnapshot, Outcome, TempDir};

pub fn tests() -> Vec<Trial> {
    crate::trials![
        Image: [
            a_sleep_past_the_timeout_ends_at_it_with_124_and_leaves_nothing,
            a_cpu_spinner_ends_near_its_cpu_time,
            cpu_time_spread_over_four_processes_is_counted_together,
            rlimit_nofile_16_stops_the_command_at_16_open_files,
            rlimit_fsize_stops_a_large_write,
            core_files_are_off_by_default,
            output_limit_stops_yes_after_exactly_one_mib,
            without_output_limit_the_command_writes_to_microbox_own_stdout,
            report_of_a_clean_run,
            report_of_an_oom_kill,
            report_of_a_timeout,
            report_of_a_fork_bomb_at_the_pids_limit,
            report_of_denied_ptrace_and_keyctl,
            each_distinct_denied_syscall_is_one_warning,
            report_of_a_setup_failure_carries_the_error,
            report_fd_gets_the_same_report,
            kill_9_of_microbox_leaves_no_half_written_report,
            a_caller_that_never_reads_does_not_stop_the_timeout,
            a_terminal_that_never_reads_does_not_stop_the_timeout,
            no_sandbox_process_installs_a_seccomp_listener,
            a_flood_of_denied_calls_is_answered_and_counted,
        ],
        Bin: [
            bad_limits_and_report_targets_exit_125_with_one_line_and_no_report,
        ],
    ]
}

/// The report file of `out`'s run, parsed.
fn read_report(path: &Path, out: &Outcome) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}\n{out}", path.display()));
    assert!(text.ends_with('\n'), "the report ends its line\n{text}");
    assert_eq!(text.lines().count(), 1, "one line\n{text}");
    let report: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the report is not JSON: {e}\n{text}\n{out}"));
    eprintln!("report: {text}");
    assert_eq!(report["version"], 1, "{text}");
    assert_eq!(
        report["exit_code"].as_i64(),
        out.code.map(i64::from),
        "the report's exit_code is microbox's status\n{text}\n{out}"
    );
    report
}

/// A probe run with `--report` into a fresh directory: its outcome and report.
fn probe_with_report(env: &Env, opts: &[&str], args: &[&str]) -> (Outcome, Value) {
    let dir = TempDir::new("report");
    let path = dir.join("run.json");
    let mut all = vec!["--report", path.to_str().unwrap()];
    all.extend_from_slice(opts);
    let out = env.probe(&all, args);
    let report = read_report(&path, &out);
    let names: Vec<String> = std::fs::read_dir(&dir.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["run.json"],
        "only the report is left in its directory"
    );
    (out, report)
}

fn seconds(report: &Value, key: &str) -> f64 {
    report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {report}"))
}

fn cpu_seconds(report: &Value) -> f64 {
    seconds(report, "user_cpu_seconds") + seconds(report, "system_cpu_seconds")
}

/// The one stderr line a limit prints, and that it names the option.
#[track_caller]
fn one_line_naming(out: &Outcome, option: &str) {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "want one stderr line\n{out}");
    assert!(
        lines[0].starts_with("microbox:") && lines[0].contains(option),
        "the line names {option}\n{out}"
    );
}

// ---------------------------------------------------------------------------
// limits

/// Two sleeps in the background and one in front: the whole sandbox goes at
/// 1 s, not only the command, and the harness's snapshot finds no process,
/// cgroup, mount or state file left.
fn a_sleep_past_the_timeout_ends_at_it_with_124_and_leaves_nothing(env: &Env) {
    let out = env.microbox().args(env.fs_args()).args([
        "--timeout",
        "1s",
        "--",
        "/bin/sh",
        "-c",
        "sleep 60 & sleep 60 & sleep 60",
    ]);
    let out = out.output();
    out.assert_code(124);
    one_line_naming(&out, "--timeout of 1s");
    assert!(
        out.elapsed >= Duration::from_millis(1000) && out.elapsed < Duration::from_secs(5),
        "ended after {:?}, want about 1 s\n{out}",
        out.elapsed
    );
}

fn a_cpu_spinner_ends_near_its_cpu_time(env: &Env) {
    let (out, report) = probe_with_report(env, &["--cpu-time", "1s"], &["spin", "30", "1"]);
    out.assert_code(152);
    one_line_naming(&out, "--cpu-time of 1s");
    let cpu = cpu_seconds(&report);
    eprintln!(
        "--cpu-time 1s, one spinner: {cpu:.3} s of CPU in {:.3} s",
        seconds(&report, "wall_seconds")
    );
    assert!((0.95..1.3).contains(&cpu), "{cpu} s of CPU\n{report}");
    assert_eq!(report["limit"], "cpu-time");
    assert_eq!(report["signal"], 9);
}

/// Four processes (not threads) share the budget: with two cores the sandbox
/// reaches 1 s of CPU in about half a second; a per-process limit
/// (RLIMIT_CPU) would let each of them spin a whole second.
fn cpu_time_spread_over_four_processes_is_counted_together(env: &Env) {
    let dir = TempDir::new("cpu4");
    let path = dir.join("run.json");
    let out = env
        .microbox()
        .args(env.fs_args())
        .args(["--cpus", "2", "--cpu-time", "1s", "--report"])
        .arg(&path)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "for i in 1 2 3 4; do (while :; do :; done) & done; wait",
        ])
        .output();
    out.assert_code(152);
    one_line_naming(&out, "--cpu-time");
    let report = read_report(&path, &out);
    let (cpu, wall) = (cpu_seconds(&report), seconds(&report, "wall_seconds"));
    eprintln!("--cpu-time 1s, four spinners on --cpus 2: {cpu:.3} s of CPU in {wall:.3} s");
    assert!((0.95..1.3).contains(&cpu), "{cpu} s of CPU\n{report}");
    assert!(
        report["tasks_peak"].is_null() || report["tasks_peak"].as_u64() >= Some(6),
        "init, sh and four spinners\n{report}"
    );
    // More than one core busy on average: the budget was spent by the four
    // together (2 cores: about half a second; loose for a loaded machine).
    if std::thread::available_parallelism().map_or(1, usize::from) >= 2 {
        assert!(
            wall < 0.9 * cpu,
            "{cpu} s of CPU took {wall} s of wall time: not shared\n{report}"
        );
    }
}

fn rlimit_nofile_16_stops_the_command_at_16_open_files(env: &Env) {
    let out = env.probe(&["--rlimit", "NOFILE=16"], &["open-many"]);
    out.assert_success();
    // 0, 1 and 2 are open already: 13 more reach descriptor 15.
    assert_eq!(out.value("highest_fd"), "15", "{out}");
    assert_eq!(out.value("opened"), "13", "{out}");
    assert_eq!(out.value("open_error"), "EMFILE", "{out}");
    // And without the option, far more.
    let free = env.probe(&[], &["open-many"]);
    let opened: u32 = free.value("opened").parse().unwrap();
    assert!(opened > 1000, "{free}");
}

/// The writer dies of SIGXFSZ at the limit, and the file stops exactly there.
fn rlimit_fsize_stops_a_large_write(env: &Env) {
    let out = env
        .microbox()
        .args(env.fs_args())
        .args([
            "--rlimit",
            "FSIZE=1M",
            "--",
            "/bin/sh",
            "-c",
            "head -c 3000000 /dev/zero > /tmp/big; echo status=$?; wc -c < /tmp/big | sed 's/^ */size=/'",
        ])
        .output();
    out.assert_success();
    assert_eq!(
        out.value("status"),
        (128 + libc::SIGXFSZ).to_string(),
        "{out}"
    );
    assert_eq!(out.value("size"), "1048576", "{out}");
}

fn core_files_are_off_by_default(env: &Env) {
    let sh = |opts: &[&str]| {
        env.microbox()
            .args(env.fs_args())
            .args(opts)
            .args([
                "--",
                "/bin/sh",
                "-c",
                "echo core=$(ulimit -c) hard=$(ulimit -H -c)",
            ])
            .output()
    };
    let out = sh(&[]);
    out.assert_success();
    assert_eq!(out.value("core"), "0 hard=0", "{out}");
    let raised = sh(&["--rlimit", "CORE=1M:2M"]);
    // busybox's ulimit -c counts 512-byte blocks.
    assert_eq!(raised.value("core"), "2048 hard=4096", "{raised}");
}

fn output_limit_stops_yes_after_exactly_one_mib(env: &Env) {
    let dir = TempDir::new("output");
    let path = dir.join("run.json");
    let out = env
        .microbox()
        .args(env.fs_args())
        .args(["--output-limit", "1M", "--report"])
        .arg(&path)
        .args(["--", "yes"])
        .output();
    out.assert_code(153);
    one_line_naming(&out, "--output-limit of 1M");
    assert_eq!(
        out.stdout.len(),
        1 << 20,
        "stdout is cut at the limit\n{}",
        out.stderr
    );
    assert!(out.stdout.bytes().all(|b| b == b'y' || b == b'\n'));
    let report = read_report(&path, &out);
    assert_eq!(report["limit"], "output");
    assert_eq!(report["output_bytes"], 1 << 20);
    assert_eq!(report["output_truncated"], true);
}

/// The option is the only thing that puts microbox between the command and
/// the caller's descriptors.
fn without_output_limit_the_command_writes_to_microbox_own_stdout(env: &Env) {
    let link = "/proc/self/fd/1";
    let mut running = env
        .microbox()
        .args(env.fs_args())
        .args(["--", "/bin/sh", "-c"])
        .arg(format!("readlink {link}; echo ready; sleep 30"))
        .spawn();
    assert!(
        running.wait_for_line("ready", env.timeout),
        "the sandbox did not start"
    );
    let ours = std::fs::read_link(format!("/proc/{}/fd/1", running.pid())).unwrap();
    let inside = running.lines_now()[0].clone();
    running.signal(libc::SIGTERM);
    running.finish().assert_code(128 + libc::SIGTERM);
    assert_eq!(
        inside,
        ours.display().to_string(),
        "the same pipe inside and out"
    );
    let copied = env
        .microbox()
        .args(env.fs_args())
        .args(["--output-limit", "1M", "--", "/bin/sh", "-c"])
        .arg(format!("readlink {link}; readlink /proc/self/fd/2"))
        .output();
    copied.assert_success();
    let lines: Vec<&str> = copied.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{copied}");
    assert!(lines.iter().all(|l| l.starts_with("pipe:")), "{copied}");
    assert_ne!(lines[0], lines[1], "stdout and stderr stay apart\n{copied}");
}

// ---------------------------------------------------------------------------
// the report

fn report_of_a_clean_run(env: &Env) {
    let (out, report) = probe_with_report(env, &["--hostname", "judge-7"], &["exit", "3"]);
    out.assert_code(3);
    assert_eq!(report["exit_code"], 3);
    assert!(report["signal"].is_null(), "{report}");
    assert!(report["limit"].is_null(), "{report}");
    let wall = seconds(&report, "wall_seconds");
    assert!(wall > 0.0 && wall < 5.0, "{report}");
    assert!(cpu_seconds(&report) < 1.0, "{report}");
    assert!(report["memory_peak_bytes"].as_u64() > Some(0), "{report}");
    assert!(
        report["tasks_peak"].is_null() || report["tasks_peak"].as_u64() >= Some(2),
        "{report}"
    );
    assert_eq!(report["hostname"], "judge-7");
    assert!(
        report["ip"].is_null(),
        "--net none has no address\n{report}"
    );
    let first = report["host_ids"]["first"].as_u64().unwrap();
    assert!(first >= 65536 && first % 65536 == 0, "{report}");
    assert_eq!(report["host_ids"]["count"], 65536);
    assert_eq!(report["denied_syscalls"], serde_json::json!({}), "{report}");
    assert!(report["output_bytes"].is_null() && report["output_truncated"].is_null());
    assert!(report["error"].is_null(), "{report}");
    // With --userns host there is no range.
    let (_, host) = probe_with_report(env, &["--userns", "host"], &["exit", "0"]);
    assert!(host["host_ids"].is_null(), "{host}");
}

fn report_of_an_oom_kill(env: &Env) {
    let (out, report) = probe_with_report(env, &["--memory", "64M"], &["alloc", "256"]);
    out.assert_code(137);
    assert_eq!(report["limit"], "oom", "{report}");
    assert_eq!(report["signal"], 9, "{report}");
    let peak = report["memory_peak_bytes"].as_u64().unwrap();
    assert!(
        peak > 32 << 20 && peak <= 64 << 20,
        "peak {peak} under --memory 64M\n{report}"
    );
}

fn report_of_a_timeout(env: &Env) {
    let (out, report) = probe_with_report(env, &["--timeout", "500ms"], &["sleep", "30"]);
    out.assert_code(124);
    assert_eq!(report["limit"], "timeout", "{report}");
    assert_eq!(report["signal"], 9, "{report}");
    let wall = seconds(&report, "wall_seconds");
    assert!((0.5..2.0).contains(&wall), "{wall} s\n{report}");
    assert!(cpu_seconds(&report) < 0.5, "a sleeper used CPU\n{report}");
}

fn report_of_a_fork_bomb_at_the_pids_limit(env: &Env) {
    let (out, report) = probe_with_report(env, &["--pids", "32"], &["forks", "232"]);
    out.assert_success();
    assert!(out.value("eagain").parse::<u32>().unwrap() > 0, "{out}");
    assert_eq!(report["limit"], "pids", "{report}");
    assert!(report["signal"].is_null(), "{report}");
    match report["tasks_peak"].as_u64() {
        // Where the kernel keeps pids.peak (Linux 6.13 and later).
        Some(peak) => assert!((24..=32).contains(&peak), "{report}"),
        None => assert!(report["tasks_peak"].is_null()),
    }
}

fn report_of_denied_ptrace_and_keyctl(env: &Env) {
    let (out, report) = probe_with_report(
        env,
        &[],
        &["syscall", "ptrace", "keyctl", "ptrace", "getpid"],
    );
    out.assert_success();
    assert_eq!(out.all("result.ptrace"), ["EPERM", "EPERM"], "{out}");
    assert_eq!(
        out.value("result.keyctl"),
        "EPERM",
        "the listener answers as the list does\n{out}"
    );
    assert_eq!(
        report["denied_syscalls"],
        serde_json::json!({"ptrace": 2, "keyctl": 1}),
        "{report}"
    );
    // Allowed with --allow-syscall: no longer denied, no longer reported.
    let (_, allowed) =
        probe_with_report(env, &["--allow-syscall", "keyctl"], &["syscall", "keyctl"]);
    assert_eq!(
        allowed["denied_syscalls"],
        serde_json::json!({}),
        "{allowed}"
    );
}

fn each_distinct_denied_syscall_is_one_warning(env: &Env) {
    let out = env.probe(
        &["--log-level", "warn"],
        &["syscall", "ptrace", "ptrace", "keyctl", "ptrace"],
    );
    out.assert_success();
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("seccomp policy denies"))
        .collect();
    assert_eq!(warnings.len(), 2, "{out}");
    assert!(
        warnings[0].contains("ptrace") && warnings[1].contains("keyctl"),
        "{out}"
    );
    // At the default level: nothing.
    let quiet = env.probe(&[], &["syscall", "ptrace"]);
    assert_eq!(quiet.stderr.trim(), "", "{quiet}");
}

/// A failure inside the started sandbox (a bind destination below a file
/// of the image) still gets a report, with the error.
fn report_of_a_setup_failure_carries_the_error(env: &Env) {
    let (out, report) = probe_with_report(env, &["--mount-ro", "/etc:/bin/sh/x"], &["exit", "0"]);
    let line = out.assert_microbox_error().to_string();
    assert_eq!(report["exit_code"], 125);
    let error = report["error"].as_str().unwrap();
    assert!(
        line.contains(error),
        "the report says what stderr says:\n{line}\n{report}"
    );
    assert!(
        report["wall_seconds"].is_null(),
        "the command never started\n{report}"
    );
}

fn report_fd_gets_the_same_report(env: &Env) {
    let dir = TempDir::new("report-fd");
    let path = dir.join("fd.json");
    let file = std::fs::File::create(&path).unwrap();
    let out = env
        .probe_run(&["--report-fd", "7"], &["exit", "0"])
        .inherit_fd(7, file.into())
        .output();
    out.assert_success();
    let report = read_report(&path, &out);
    assert!(report["error"].is_null(), "{report}");
    assert!(report["hostname"].is_string(), "{report}");
}

/// SIGKILL of microbox while the sandbox runs: the report would have come
/// at the end; neither it nor a temporary file of it is left.
fn kill_9_of_microbox_leaves_no_half_written_report(env: &Env) {
    let dir = TempDir::new("report-kill");
    let path = dir.join("run.json");
    let mut running = env
        .probe_run(&["--report", path.to_str().unwrap()], &["spin", "30", "1"])
        .no_leftover_check()
        .spawn();
    assert!(
        running.wait_for_line("spinning", env.timeout),
        "the sandbox did not start"
    );
    running.signal(libc::SIGKILL);
    let out = running.finish();
    assert_eq!(out.signal, Some(libc::SIGKILL), "{out}");
    let left: Vec<_> = std::fs::read_dir(&dir.path).unwrap().collect();
    assert!(left.is_empty(), "left in the report's directory: {left:?}");
    // The next run collects the dead sandbox, and reports normally.
    let (next, _) = probe_with_report(env, &[], &["exit", "0"]);
    next.assert_success();
}

fn bad_limits_and_report_targets_exit_125_with_one_line_and_no_report(env: &Env) {
    let dir = TempDir::new("bad-report");
    let missing = dir.join("no/such/dir/run.json");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--timeout".into(), "0".into()], "--timeout"),
        (vec!["--cpu-time".into(), "-1s".into()], "--cpu-time"),
        (vec!["--rlimit".into(), "NOFILE".into()], "NAME=SOFT"),
        (vec!["--rlimit".into(), "CPU=1".into()], "unknown limit"),
        (
            vec!["--rlimit".into(), "NOFILE=99999999".into()],
            "cannot be raised",
        ),
        (
            vec!["--output-limit".into(), "lots".into()],
            "--output-limit",
        ),
        (
            vec!["--report".into(), missing.display().to_string()],
            "No such file or directory",
        ),
        (vec!["--report-fd".into(), "77".into()], "report descriptor"),
        (vec!["--report-fd".into(), "x".into()], "--report-fd"),
        (
            vec![
                "--userns".into(),
                "host".into(),
                "--rlimit".into(),
                "NPROC=5".into(),
            ],
            "--pids",
        ),
    ];
    for (opts, says) in cases {
        let mut args = opts.clone();
        args.extend(["--", "/bin/true"].map(String::from));
        let out = env.run(&args);
        let line = out.assert_microbox_error();
        assert!(line.contains(says), "{opts:?}: {line}");
    }
    assert!(!dir.join("no").exists());
    assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------
// what a sandbox (or a stalled caller) could do to the supervisor

/// `yes` with `--output-limit` into `stdout`, which nobody reads: microbox's
/// copy stalls, but `--timeout` still kills the sandbox, and what is left of
/// the output is dropped after `--stop-timeout`.
fn timeout_with_a_stalled_reader(env: &Env, stdout: std::process::Stdio) {
    let _lock = crate::harness::run_lock();
    let before = HostSnapshot::take();
    let started = std::time::Instant::now();
    let mut child = std::process::Command::new(&env.bin)
        .args(env.fs_args())
        .args([
            "--timeout",
            "2s",
            "--stop-timeout",
            "1s",
            "--output-limit",
            "10M",
        ])
        .args(["--", "yes"])
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("microbox still runs 30 s after a 2 s --timeout with a stalled reader");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    eprintln!("stalled reader: microbox ended with {status:?} after {elapsed:?}");
    assert_eq!(status.code(), Some(124));
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let left = before.leftovers_after_settling(Duration::from_secs(3));
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn a_caller_that_never_reads_does_not_stop_the_timeout(env: &Env) {
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    timeout_with_a_stalled_reader(env, std::process::Stdio::from(writer));
    drop(reader);
}

/// A terminal nobody reads (a stalled ssh session): a blocking write to it
/// would hold the supervisor for ever.
fn a_terminal_that_never_reads_does_not_stop_the_timeout(env: &Env) {
    let Some((master, slave)) = open_pty() else {
        crate::harness::skip("no pty")
    };
    timeout_with_a_stalled_reader(env, std::process::Stdio::from(slave));
    drop(master);
}

/// A listener of the sandbox's own could answer its denied calls with
/// "continue": the filter refuses to install one (EBUSY), whatever the
/// kernel would say.
fn no_sandbox_process_installs_a_seccomp_listener(env: &Env) {
    let out = env.probe(&[], &["seccomp-listener"]);
    out.assert_success();
    assert_eq!(out.value("listener"), "EBUSY", "{out}");
    // And ptrace is still denied afterwards, in the same process.
    let both = env.probe(&[], &["seccomp-listener", "+", "syscall", "ptrace"]);
    assert_eq!(both.value("result.ptrace"), "EPERM", "{both}");
}

/// 3000 denied calls: each is answered EPERM and counted, at most 500 per
/// 100 ms (the callers wait, microbox does not spin).
fn a_flood_of_denied_calls_is_answered_and_counted(env: &Env) {
    let (out, report) = probe_with_report(env, &[], &["deny-flood", "3000"]);
    out.assert_success();
    assert_eq!(out.value("eperm"), "3000", "{out}");
    assert_eq!(report["denied_syscalls"]["ptrace"], 3000, "{report}");
    eprintln!(
        "3000 denied calls: {:.3} s of wall time, {:.3} s of the sandbox's CPU",
        seconds(&report, "wall_seconds"),
        cpu_seconds(&report)
    );
}
