//! Exit statuses, signals, zombies and the lifetime of sandbox processes.

use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use crate::harness::{
    make_executable, run_lock, unique_token, Env, HostSnapshot, TempDir, MARKER_PREFIX,
};

pub fn tests() -> Vec<Trial> {
    crate::trials![
        Image: [
            exit_status_of_the_command_is_microbox_status,
            killed_by_signal_n_gives_128_plus_n,
            command_not_found_is_127,
            command_not_executable_is_126,
            a_missing_interpreter_is_named_not_the_command,
            sigterm_to_microbox_reaches_the_command_handler,
            sigterm_stops_a_command_without_handler,
            a_stopped_command_ends_on_sigterm,
            a_command_ignoring_sigterm_is_killed_after_the_stop_timeout,
            sigtstp_stops_the_sandbox_and_sigcont_resumes_it,
            orphaned_grandchildren_are_reaped,
            background_processes_die_with_the_command,
            sandbox_dies_when_microbox_is_killed_and_next_run_cleans_up,
            signals_from_inside_neither_stop_nor_kill_init,
        ],
        Bin: [
            microbox_own_failure_is_125,
        ],
    ]
}

// ---------------------------------------------------------------------------
// Exit statuses, signals, zombies and the lifetime of sandbox processes (issue 2,
// items 6 and 8; THREATS.md section 5, "Signals / PID-1 problems", "Exit-code
// propagation", "Cleanup after SIGKILL of the runtime").

fn exit_status_of_the_command_is_microbox_status(env: &Env) {
    for code in [0, 1, 42, 255] {
        let out = env.probe(&[], &["exit", &code.to_string()]);
        out.assert_code(code);
        let out = env
            .microbox()
            .args(env.fs_args())
            .args(["--", "/bin/sh", "-c", &format!("exit {code}")])
            .output();
        out.assert_code(code);
        assert!(
            out.stderr.is_empty(),
            "a normal exit prints nothing of microbox's own\n{out}"
        );
    }
}

fn killed_by_signal_n_gives_128_plus_n(env: &Env) {
    for (sig, name) in [
        (libc::SIGHUP, "HUP"),
        (libc::SIGKILL, "KILL"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGTERM, "TERM"),
    ] {
        let out = env.probe(&[], &["kill-self", name]);
        out.assert_code(128 + sig);
    }
    let out = env
        .microbox()
        .args(env.fs_args())
        .args(["--", "/bin/sh", "-c", "kill -KILL $$"])
        .output();
    out.assert_code(137);
}

fn command_not_found_is_127(env: &Env) {
    let out = env
        .microbox()
        .args(env.fs_args())
        .args(["--", "/bin/nonexistent-mbx"])
        .output();
    out.assert_code(127);
    assert!(
        out.stderr.contains("nonexistent-mbx"),
        "the message names the command\n{out}"
    );
    // Found through PATH or not at all.
    let out = env
        .microbox()
        .args(env.fs_args())
        .args(["--", "nonexistent-mbx"])
        .output();
    out.assert_code(127);
    let out = env
        .microbox()
        .args(env.fs_args())
        .args(["--", "probe", "exit", "3"])
        .output();
    out.assert_code(3);
}

fn command_not_executable_is_126(env: &Env) {
    let dir = TempDir::new("noexec");
    std::fs::write(dir.join("script"), "#!/bin/sh\nexit 0\n").unwrap();
    make_executable(&dir.join("script"), 0o644);
    let spec = format!("{}:/data", dir.path.display());
    let out = env
        .microbox()
        .args(env.fs_args())
        .args(["--mount-ro", &spec, "--", "/data/script"])
        .output();
    out.assert_code(126);
    // A directory is found but cannot be executed either.
    let out = env
        .microbox()
        .args(env.fs_args())
        .args(["--", "/bin"])
        .output();
    out.assert_code(126);
}

/// A program that is there but whose interpreter is not: the kernel says
/// ENOENT, and the user hears which file is missing (still 127).
fn a_missing_interpreter_is_named_not_the_command(env: &Env) {
    let dir = TempDir::new("interp");
    std::fs::write(dir.join("script"), "#!/no/such/sh -e\nexit 0\n").unwrap();
    make_executable(&dir.join("script"), 0o755);
    let spec = format!("{}:/data", dir.path.display());
    for command in ["/data/script", "script"] {
        let out = env
            .microbox()
            .args(env.fs_args())
            .args([
                "--mount-ro",
                &spec,
                "--env",
                "PATH=/bin:/data",
                "--",
                command,
            ])
            .output();
        out.assert_code(127);
        assert!(
            out.stderr
                .contains("/data/script: its #! interpreter /no/such/sh is missing in the sandbox"),
            "{command}\n{out}"
        );
    }
    // The new user's case: the dynamic loader in /lib64 is a symlink into
    // /lib, which the sandbox lacks.
    let loader = std::path::Path::new("/lib64/ld-linux-x86-64.so.2");
    let Ok(target) = std::fs::read_link(loader) else {
        crate::harness::inconclusive(
            "a_missing_interpreter_is_named_not_the_command",
            "no /lib64 loader symlink here: the ELF case is covered by the unit tests only",
        );
        return;
    };
    let out = env.run(&[
        "--fs",
        "tmpfs",
        "--mount-ro",
        "/usr:/usr",
        "--mount-ro",
        "/lib64:/lib64",
        "--",
        "/usr/bin/ls",
    ]);
    out.assert_code(127);
    let want = format!(
        "/usr/bin/ls: its ELF interpreter /lib64/ld-linux-x86-64.so.2 (a symlink to {}, \
         which is not there) is missing in the sandbox",
        target.display()
    );
    assert!(out.stderr.contains(&want), "{out}");
}

fn microbox_own_failure_is_125(env: &Env) {
    let out = env.run(&["--cpus", "0", "--", "/bin/true"]);
    out.assert_microbox_error();
}

fn sigterm_to_microbox_reaches_the_command_handler(env: &Env) {
    for sig in ["TERM", "INT", "HUP", "USR1", "USR2", "QUIT"] {
        let signo = match sig {
            "TERM" => libc::SIGTERM,
            "INT" => libc::SIGINT,
            "HUP" => libc::SIGHUP,
            "USR1" => libc::SIGUSR1,
            "USR2" => libc::SIGUSR2,
            _ => libc::SIGQUIT,
        };
        let mut run = env.probe_run(&[], &["sleep-trap", sig]).spawn();
        assert!(
            run.wait_for_line("ready", env.timeout),
            "the probe never got ready ({sig})"
        );
        run.signal(signo);
        let out = run.finish();
        out.assert_success();
        assert!(
            out.stdout.contains(&format!("got SIG{sig}\n")),
            "SIG{sig} was not forwarded\n{out}"
        );
    }
}

fn sigterm_stops_a_command_without_handler(env: &Env) {
    let mut run = env
        .microbox()
        .args(env.fs_args())
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo ready; exec /bin/probe sleep 60",
        ])
        .spawn();
    assert!(
        run.wait_for_line("ready", env.timeout),
        "the command never started"
    );
    // Give `exec` a moment, so the signal reaches the probe and not the shell.
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    let out = run.finish();
    out.assert_code(128 + libc::SIGTERM);
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "took {:?}",
        sent.elapsed()
    );
}

/// A command that stopped itself ends on SIGTERM: microbox continues the
/// sandbox after passing the signal on (issue 8, item 4). It used to hang.
fn a_stopped_command_ends_on_sigterm(env: &Env) {
    let mut run = env
        .microbox()
        .args(env.fs_args())
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo ready; kill -STOP $$; echo continued",
        ])
        .timeout(Duration::from_secs(15))
        .spawn();
    assert!(run.wait_for_line("ready", env.timeout), "never started");
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    let out = run.finish();
    out.assert_code(128 + libc::SIGTERM);
    assert!(!out.stdout.contains("continued"), "{out}");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
}

/// A sandbox that ignores SIGTERM is killed when `--stop-timeout` runs out,
/// with the status of the signal; a second SIGTERM kills it at once.
fn a_command_ignoring_sigterm_is_killed_after_the_stop_timeout(env: &Env) {
    let ignoring = [
        "--",
        "/bin/sh",
        "-c",
        "trap '' TERM; echo ready; sleep 60; echo slept",
    ];
    for (opts, second, within) in [
        (
            &["--stop-timeout", "1s", "--log-level", "warn"][..],
            false,
            1..5,
        ),
        (&["--log-level", "warn"][..], true, 0..4),
    ] {
        let mut run = env
            .microbox()
            .args(env.fs_args())
            .args(opts)
            .args(ignoring)
            .timeout(Duration::from_secs(20))
            .spawn();
        assert!(run.wait_for_line("ready", env.timeout), "never started");
        std::thread::sleep(Duration::from_millis(200));
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        if second {
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(run.state(), 'S', "microbox ended on the first SIGTERM");
            run.signal(libc::SIGTERM);
        }
        let out = run.finish();
        let took = sent.elapsed().as_secs();
        out.assert_code(128 + libc::SIGTERM);
        assert!(
            within.contains(&took),
            "{opts:?}: ended after {took} s\n{out}"
        );
        assert!(!out.stdout.contains("slept"), "{out}");
        assert!(out.stderr.contains("killing the sandbox"), "{out}");
    }
}

/// SIGTSTP stops the whole sandbox and microbox itself, so the caller's
/// shell sees its job stop; SIGCONT resumes both and the command finishes.
fn sigtstp_stops_the_sandbox_and_sigcont_resumes_it(env: &Env) {
    let ticker = "echo ready; i=0; while [ $i -lt 15 ]; do echo tick; sleep 0.1; i=$((i+1)); done";
    let mut run = env
        .microbox()
        .args(env.fs_args())
        .args(["--", "/bin/sh", "-c", ticker])
        .timeout(Duration::from_secs(20))
        .spawn();
    assert!(run.wait_for_line("ready", env.timeout), "never started");
    std::thread::sleep(Duration::from_millis(250));
    run.signal(libc::SIGTSTP);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(run.state(), 'T', "microbox did not stop");
    let ticks = run.lines_now().len();
    std::thread::sleep(Duration::from_millis(800));
    let later = run.lines_now().len();
    assert!(
        later <= ticks + 1,
        "the sandbox kept running: {ticks} -> {later} lines"
    );
    run.signal(libc::SIGCONT);
    let out = run.finish();
    out.assert_success();
    assert_eq!(out.stdout.matches("tick").count(), 15, "{out}");
}

fn orphaned_grandchildren_are_reaped(env: &Env) {
    let out = env.probe(&[], &["zombie"]);
    out.assert_success();
    assert_eq!(
        out.value("reaped"),
        "1",
        "a reparented zombie was never reaped\n{out}"
    );
}

/// Processes on the host whose cmdline carries `marker`.
fn marked(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

fn background_processes_die_with_the_command(env: &Env) {
    let marker = format!("{MARKER_PREFIX}{}", unique_token());
    // The harness's snapshot also catches marked processes; this says it plainly.
    let out = env.probe(&[], &["orphan", "60", &marker]);
    out.assert_success();
    assert!(out.get("orphan").is_some(), "{out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !marked(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        marked(&marker),
        Vec::<u32>::new(),
        "a background process outlived the sandbox"
    );
}

fn sandbox_dies_when_microbox_is_killed_and_next_run_cleans_up(env: &Env) {
    // Both runs and both snapshots under one run lock: another test's sandbox
    // running at the last snapshot would count as a leftover.
    let lock = run_lock();
    let before = HostSnapshot::take();
    let marker = format!("{MARKER_PREFIX}{}", unique_token());
    let mut run = env
        .probe_run(&[], &["sleep-trap", "TERM", &marker])
        .no_leftover_check()
        .spawn_in_lock(&lock);
    assert!(
        run.wait_for_line("ready", env.timeout),
        "the probe never got ready"
    );
    assert!(
        !marked(&marker).is_empty(),
        "cannot see the sandboxed probe from the host"
    );
    run.signal(libc::SIGKILL);
    let out = run.finish();
    assert_eq!(out.signal, Some(libc::SIGKILL), "{out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !marked(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        marked(&marker),
        Vec::<u32>::new(),
        "the sandbox outlived a killed microbox"
    );

    // One more normal run may collect what the killed one left; then the host must
    // be as it was before both.
    let out = env.probe_run(&[], &["pid"]).output_in_lock(&lock);
    out.assert_success();
    let leftovers = before.leftovers_after_settling(Duration::from_secs(3));
    assert!(
        leftovers.is_empty(),
        "left after kill -9 and one more run:\n  {}",
        leftovers.join("\n  ")
    );
}

/// Repeats: SIGSTOP, SIGKILL, SIGSEGV, SIGABRT and SIGCHLD sent to init from
/// inside. A pid namespace's init gets no signal it has left at the default
/// action, so none may stop or end it: the run ends with the command's own
/// status. (The signals init forwards, SIGTERM among them, reach the command,
/// which the sandbox can signal directly anyway.)
fn signals_from_inside_neither_stop_nor_kill_init(env: &Env) {
    let out = env.probe(
        &[],
        &["signal", "1", "STOP", "KILL", "SEGV", "ABRT", "CHLD"],
    );
    out.assert_success();
    assert_eq!(
        out.value("state"),
        "S",
        "init is not waiting as usual (sleeping) after signals from inside\n{out}"
    );
}
