//! The command line from the outside: `--help`, `--version`, every bad input, and the
//! README's examples run as written.

use std::process::{Command, Stdio};
use std::time::Duration;

use libtest_mimic::Trial;

use crate::harness::{holder, is_root, run_lock, Env, HostSnapshot, TempDir};

pub fn tests() -> Vec<Trial> {
    crate::trials![
        Bin: [
            help_lists_every_option_and_exits_0,
            version_prints_name_and_version,
            every_bad_input_exits_125_with_one_clear_line_and_changes_nothing,
            a_command_after_double_dash_is_never_parsed_as_options,
        ],
        Image: [readme_examples_print_what_the_readme_shows],
    ]
}

// ---------------------------------------------------------------------------
// The command line from the outside (issue 2, items 2 and 3): `--help`,
// `--version`, and every bad input, which must give exit 125 with one stderr line
// `microbox: ... try 'microbox --help'` naming the option and the value, and must
// leave nothing on the host (the harness compares snapshots around every run).

fn help_lists_every_option_and_exits_0(env: &Env) {
    let out = env.run(&["--help"]);
    out.assert_success();
    // The option table itself, so an option added there is checked here too.
    for option in microbox::cli::OPTIONS
        .iter()
        .map(|o| format!("--{}", o.long))
    {
        assert!(
            out.stdout.contains(&option),
            "--help does not mention {option}\n{out}"
        );
    }
    assert!(out.stderr.is_empty(), "--help wrote to stderr\n{out}");
}

/// `microbox 0.2.0 (abc1234, x86_64-unknown-linux-musl)`: the version, the
/// commit it was built from (the checkout's HEAD where git can say) and the
/// target triple.
fn version_prints_name_and_version(env: &Env) {
    let out = env.run(&["--version"]);
    out.assert_success();
    let first = out.stdout.lines().next().unwrap_or("");
    let rest = first
        .strip_prefix(&format!("microbox {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not 'microbox VERSION (COMMIT, TARGET)'\n{out}"));
    let (commit, target) = rest.split_once(", ").expect("commit, target");
    assert!(
        commit.len() == 7 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{commit:?}\n{out}"
    );
    let arch = std::env::consts::ARCH;
    assert!(
        target.starts_with(arch) && target.contains("-linux-"),
        "{target:?}: a build for {arch}\n{out}"
    );
    let head = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=7",
            "HEAD",
        ])
        .output();
    if let Some(head) = head.ok().filter(|h| h.status.success()) {
        assert_eq!(
            String::from_utf8_lossy(&head.stdout).trim(),
            commit,
            "{out}"
        );
    }
}

/// One bad command line and the words its error line must contain.
struct Bad {
    args: Vec<String>,
    mentions: Vec<String>,
}

fn bad(args: &[&str], mentions: &[&str]) -> Bad {
    Bad {
        args: args.iter().map(|s| (*s).to_string()).collect(),
        mentions: mentions.iter().map(|s| (*s).to_string()).collect(),
    }
}

fn bad_inputs() -> Vec<Bad> {
    let long_name = "h".repeat(65);
    let cmd = ["--", "/bin/true"];
    let with_cmd = |opts: &[&str]| -> Vec<String> {
        opts.iter()
            .chain(cmd.iter())
            .map(|s| (*s).to_string())
            .collect()
    };
    let mut v = vec![
        bad(&["--bogus", "--", "/bin/true"], &["--bogus"]),
        // No command at all, and an empty one after `--`.
        bad(&[], &[]),
        bad(&["--fs", "tmpfs", "--"], &[]),
    ];
    let with_value: &[(&[&str], &[&str])] = &[
        (&["--memory", "12QB"], &["--memory", "12QB"]),
        (&["--memory", "-1G"], &["--memory", "-1G"]),
        (&["--cpus", "0"], &["--cpus", "0"]),
        (&["--cpus", "abc"], &["--cpus", "abc"]),
        (&["--stop-timeout", "-1s"], &["--stop-timeout", "-1s"]),
        (&["--stop-timeout", "10x"], &["--stop-timeout", "10x"]),
        (&["--stop-timeout", "400d"], &["--stop-timeout", "400d"]),
        (&["--env", "NOEQUALS"], &["--env", "NOEQUALS"]),
        (&["--env", "=x"], &["--env", "=x"]),
        (&["--mount-ro", "/tmp"], &["--mount-ro", "/tmp"]),
        (&["--mount-rw", "/tmp:rel"], &["--mount-rw", "rel"]),
        (&["--mount-ro", "/tmp:/a/../b"], &["--mount-ro", "/a/../b"]),
        (
            &["--mount-rw", "/tmp:/../../etc"],
            &["--mount-rw", "/../../etc"],
        ),
        (
            &["--mount-ro", "/nonexistent-mbx-src:/x"],
            &["--mount-ro", "/nonexistent-mbx-src"],
        ),
        (
            &["--fs", "/nonexistent-mbx-root"],
            &["--fs", "/nonexistent-mbx-root"],
        ),
        (&["--fs", "/etc/passwd"], &["--fs", "/etc/passwd"]),
        (&["--net", "wifi"], &["--net", "wifi"]),
        (&["--log-level", "debug"], &["--log-level", "debug"]),
        (&["--log-format", "xml"], &["--log-format", "xml"]),
        (&["--userns", "maybe"], &["--userns", "maybe"]),
        (&["--hostname", "a/b"], &["--hostname", "a/b"]),
    ];
    // Each value-taking option, missing its value at the end of the line and
    // given an empty one (which none accepts).
    for option in microbox::cli::OPTIONS.iter().filter(|o| o.takes_value()) {
        let name = format!("--{}", option.long);
        v.push(bad(&[&name], &[&name]));
        v.push(Bad {
            args: with_cmd(&[&name, ""]),
            mentions: vec![name],
        });
    }
    for (opts, mentions) in with_value {
        v.push(Bad {
            args: with_cmd(opts),
            mentions: mentions.iter().map(|s| (*s).to_string()).collect(),
        });
    }
    v.push(Bad {
        args: with_cmd(&["--hostname", &long_name]),
        mentions: vec!["--hostname".into()],
    });
    v
}

fn every_bad_input_exits_125_with_one_clear_line_and_changes_nothing(env: &Env) {
    // A fresh cwd shows whether a relative destination created anything.
    let cwd = TempDir::new("usage-cwd");
    let mut failures = Vec::new();
    for case in bad_inputs() {
        // microbox checks that a bind source exists after its root check, so an
        // unprivileged run gets the root error for this one input instead.
        if !is_root()
            && case
                .args
                .iter()
                .any(|a| a.starts_with("/nonexistent-mbx-src"))
        {
            eprintln!("not root: not checked: {:?}", case.args);
            continue;
        }
        let out = env.microbox().args(&case.args).cwd(&cwd.path).output();
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let mut why = Vec::new();
        if out.code != Some(125) {
            why.push(format!("exit {:?}, want 125", out.code));
        }
        if lines.len() != 1 {
            why.push(format!("{} stderr lines, want 1", lines.len()));
        }
        let line = lines.first().copied().unwrap_or("");
        if !line.starts_with("microbox:") {
            why.push("line does not start with 'microbox:'".into());
        }
        if !line.trim_end().ends_with("try 'microbox --help'") {
            why.push("line does not end with \"try 'microbox --help'\"".into());
        }
        for word in &case.mentions {
            if !line.contains(word.as_str()) {
                why.push(format!("line does not name {word:?}"));
            }
        }
        if !out.stdout.is_empty() {
            why.push("wrote to stdout".into());
        }
        if !why.is_empty() {
            failures.push(format!(
                "{:?}: {}\n    stderr: {:?}",
                case.args,
                why.join("; "),
                out.stderr
            ));
        }
    }
    let created: Vec<_> = std::fs::read_dir(&cwd.path)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        created.is_empty(),
        "bad inputs created files in microbox's cwd: {created:?}"
    );
    assert!(
        failures.is_empty(),
        "bad inputs handled wrongly:\n  {}",
        failures.join("\n  ")
    );
}

fn a_command_after_double_dash_is_never_parsed_as_options(env: &Env) {
    // `--bogus` belongs to the command; if microbox parsed it, the exit would be 125.
    // Without root or an image the run may fail, but never as a usage error about it.
    let out = env.run(&["--", "/nonexistent-mbx-cmd", "--bogus", "--memory", "12QB"]);
    assert!(!out.stderr.contains("'--bogus'"), "{out}");
    assert!(!out.stderr.contains("12QB"), "{out}");
}

// ---------------------------------------------------------------------------
// The README's examples, run as written (STYLE.md: tests read like the README)
//
// Every fenced block that has a `microbox` command is run line by line with
// /bin/sh, in order, so that its set-up lines (`mkdir`, `cat`) run too.
// `microbox` is the binary under test, the quickstart image
// `target/microbox/rootfs/busybox` (and the intro's `./rootfs`) is the test
// image, and every line runs in a network namespace this test made: a
// `--net host` or bridge example can reach nothing outside it.
//
// What a command prints is the run of `# ` comment lines right after it (a
// blank line or another command ends it), with these conventions, all the
// README's own:
// - a note in parentheses, after two or more spaces or as the whole line, is
//   not output: `# hello    (/new/dir is created ...)`; `(exit N)` in it is
//   the status the command ends with (0 when no line says so), and a note
//   saying "until stopped" marks a command that does not end by itself: it
//   must still be running after 3 s, and is then stopped with SIGTERM;
// - a trailing `...` stands for the rest of the line;
// - lines are compared as words, wherever they appear in stdout or stderr
//   (tabs, columns and which stream do not matter: `ls` prints one name a
//   line when not on a terminal, `ip -o` folds with a `\`).
// A comment that follows a blank line is prose. The examples in `VARYING`
// print something different on every run (a time, a pid), or describe their
// output instead of showing it; for them only the status is checked to be
// microbox's success (not 125). `MISMATCHED` lists the examples whose shown
// output microbox no longer prints: they fail once they match again, so that
// the row is removed when the README is fixed.

/// Examples (by a part of the command) whose output is not checked, and why.
const VARYING: &[(&str, &str)] = &[
    (
        "--net host -- ip -o link",
        "describes the host's interfaces",
    ),
    ("--cpus 0.5 -- time", "CPU and wall-clock times"),
    (
        "--log-format json -- true",
        "time stamp, pid and random hostname",
    ),
    (
        "--report-fd 3",
        "the report's times, random hostname and id range",
    ),
];

/// Examples (by a part of the command) whose output the README shows wrongly
/// today, with what microbox prints instead.
const MISMATCHED: &[(&str, &str)] = &[];

/// The README as the tree has it now (MICROBOX_TEST_README: another one, say
/// a worktree's); the VM leg, which only has the test executable, uses the
/// copy built into it.
fn readme() -> String {
    let path = std::env::var("MICROBOX_TEST_README")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/README.md").to_string());
    std::fs::read_to_string(path).unwrap_or_else(|_| include_str!("../../README.md").to_string())
}

/// One command line of a block and what the README says it prints.
#[derive(Debug, Default)]
struct Example {
    /// README line number, for messages.
    line: usize,
    command: String,
    output: Vec<Vec<String>>,
    status: i32,
    /// A server: runs until stopped.
    long_running: bool,
}

/// The blocks that have at least one `microbox` command, as lists of commands.
fn readme_blocks(text: &str) -> Vec<Vec<Example>> {
    let mut blocks = Vec::new();
    let mut block: Option<Vec<Example>> = None;
    // Whether `#` lines still belong to the last command.
    let mut in_output = false;
    let mut continued: Option<Example> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim_start().starts_with("```") {
            match block.take() {
                Some(b) => {
                    if b.iter().any(|e| is_microbox_command(&e.command)) {
                        blocks.push(b);
                    }
                }
                None => block = Some(Vec::new()),
            }
            in_output = false;
            continue;
        }
        let Some(b) = block.as_mut() else { continue };
        if let Some(mut e) = continued.take() {
            e.command.push(' ');
            e.command.push_str(line.trim().trim_end_matches('\\'));
            if line.ends_with('\\') {
                continued = Some(e);
            } else {
                b.push(e);
            }
            continue;
        }
        if line.trim().is_empty() {
            in_output = false;
        } else if let Some(comment) = line.strip_prefix('#') {
            if let (true, Some(e)) = (in_output, b.last_mut()) {
                expect(e, comment);
            }
        } else {
            let command = line.strip_prefix("$ ").unwrap_or(line);
            let command = command.strip_prefix("sudo ").unwrap_or(command);
            let e = Example {
                line: n + 1,
                command: command.trim_end_matches('\\').trim().to_string(),
                ..Example::default()
            };
            in_output = true;
            if line.ends_with('\\') {
                continued = Some(e);
            } else {
                b.push(e);
            }
        }
    }
    blocks
}

/// Records one `# ` output line of an example.
fn expect(e: &mut Example, comment: &str) {
    let mut text = comment.strip_prefix(' ').unwrap_or(comment).trim_end();
    let note_at = if text.starts_with('(') {
        Some(0)
    } else {
        text.rfind("  (").map(|i| i + 2)
    };
    if let Some(open) = note_at.filter(|_| text.ends_with(')')) {
        let note = &text[open + 1..text.len() - 1];
        if let Some(code) = note.strip_prefix("exit ").and_then(|c| c.parse().ok()) {
            e.status = code;
        }
        e.long_running |= note.contains("until stopped");
        text = text[..open].trim_end();
    }
    let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if words.last().is_some_and(|w| w == "...") {
        words.pop();
    }
    if !words.is_empty() {
        e.output.push(words);
    }
}

/// A runnable `microbox` command: after variable assignments its first word is
/// `microbox`, and it is no synopsis (`microbox [OPTIONS] ...`).
fn is_microbox_command(command: &str) -> bool {
    let mut words = command
        .split_whitespace()
        .skip_while(|w| w.contains('=') && !w.starts_with('-'));
    words.next() == Some("microbox") && !command.split_whitespace().any(|w| w.starts_with('['))
}

/// Whether `want` appears as consecutive words in `have`.
fn has_run(have: &[&str], want: &[String]) -> bool {
    have.windows(want.len())
        .any(|w| w.iter().zip(want).all(|(a, b)| a == b))
}

/// Options an initramfs host refuses (README "Hosts whose root is the initramfs").
const INITRAMFS_REFUSED: &[&str] = &[
    "--allow-syscall unshare",
    "--allow-syscall mount",
    "--allow-syscall chroot",
    "--allow-syscall setns",
    "--cap-add SYS_CHROOT",
];

fn readme_examples_print_what_the_readme_shows(env: &Env) {
    let rootfs = env.rootfs().display().to_string();
    let bindir = TempDir::new("readme-bin");
    std::os::unix::fs::symlink(&env.bin, bindir.join("microbox")).unwrap();
    let path = format!(
        "{}:{}",
        bindir.path.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut netns = holder();
    let ns = format!("--net=/proc/{}/ns/net", netns.id());
    // A default route, as a host has, over a veth whose peer stays down: what
    // goes out there is dropped, and a refused destination is refused as on a
    // real host instead of "Network is unreachable".
    let uplink = Command::new("nsenter")
        .args([&ns, "--", "/bin/sh", "-c"])
        .arg(
            "ip link set lo up && ip link add mbx-uplink type veth peer name mbx-uplink-peer \
             && ip link set mbx-uplink up && ip route add default dev mbx-uplink",
        )
        .status()
        .expect("run ip in the test's namespace");
    assert!(
        uplink.success(),
        "cannot give the test's namespace a default route"
    );
    let blocks = readme_blocks(&readme());
    let mut failures = Vec::new();
    let mut checked = 0;
    for example in blocks.iter().flatten() {
        let command = example
            .command
            .replace("target/microbox/rootfs/busybox", &rootfs)
            .replace("./rootfs", &rootfs);
        // A server is stopped after 3 s; `exec` makes sure the signal reaches
        // microbox itself, not a shell around it.
        let (limit, command) = if example.long_running {
            ("3", format!("exec {command}"))
        } else {
            ("120", command)
        };
        let _lock = run_lock();
        let before = HostSnapshot::take();
        let started = std::time::Instant::now();
        let out = Command::new("timeout")
            .args([limit, "nsenter", &ns, "--", "/bin/sh", "-c", &command])
            .env("PATH", &path)
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .output()
            .expect("run sh");
        let ran = started.elapsed();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        let shown = format!(
            "README.md:{}: {command}\n--- exit {:?}\n--- stdout:\n{stdout}--- stderr:\n{stderr}---",
            example.line,
            out.status.code()
        );
        let leftovers = before.leftovers_after_settling(Duration::from_secs(3));
        if !leftovers.is_empty() {
            failures.push(format!("left behind: {leftovers:?}\n{shown}"));
        }
        if !is_microbox_command(&example.command) {
            continue;
        }
        checked += 1;
        // On a host whose root is the initramfs these options are refused.
        if crate::harness::on_initramfs_root()
            && INITRAMFS_REFUSED
                .iter()
                .any(|o| example.command.contains(o))
        {
            if out.status.code() != Some(125) || !stderr.contains("initramfs") {
                failures.push(format!("not refused on the initramfs root\n{shown}"));
            }
            continue;
        }
        // There CAP_SYS_CHROOT is dropped (initramfs::cap_sys_chroot_is_not_in_any_set).
        if crate::harness::on_initramfs_root() && example.command.contains("CapEff") {
            if out.status.code() != Some(0) {
                failures.push(format!("failed on the initramfs root\n{shown}"));
            }
            continue;
        }
        if let Some((_, why)) = VARYING.iter().find(|(v, _)| example.command.contains(v)) {
            eprintln!("README.md:{}: output not checked: {why}", example.line);
            if out.status.code() == Some(125) {
                failures.push(format!("microbox failed\n{shown}"));
            }
            continue;
        }
        // GNU timeout(1) exits 124 when it had to stop the command; busybox's
        // (the VM's) passes on the command's own status, microbox's 128 + SIGTERM.
        let statuses: &[i32] = if example.long_running {
            &[124, 128 + libc::SIGTERM]
        } else {
            std::slice::from_ref(&example.status)
        };
        let mut wrong = Vec::new();
        if !out.status.code().is_some_and(|c| statuses.contains(&c)) {
            wrong.push(format!("want exit {statuses:?}"));
        }
        if example.long_running && ran < Duration::from_millis(2900) {
            wrong.push(format!(
                "ended by itself after {ran:?}, before it was stopped"
            ));
        }
        // `ip -o` ends each folded line with a `\`, glued to its last word.
        let words: Vec<&str> = stdout
            .split_whitespace()
            .chain(stderr.split_whitespace())
            .map(|w| w.strip_suffix('\\').unwrap_or(w))
            .collect();
        for want in &example.output {
            if !has_run(&words, want) {
                wrong.push(format!("no output {:?}", want.join(" ")));
            }
        }
        match MISMATCHED.iter().find(|(m, _)| example.command.contains(m)) {
            Some((_, why)) if wrong.is_empty() => failures.push(format!(
                "matches the README now: remove it from MISMATCHED ({why})\n{shown}"
            )),
            Some((_, why)) => eprintln!("README.md:{}: known mismatch: {why}", example.line),
            None if wrong.is_empty() => {}
            None => failures.push(format!("{}\n{shown}", wrong.join("; "))),
        }
    }
    // The bridges the examples made die with the namespace; their lease
    // directories in /run/microbox would not.
    let mut bridges = vec!["microbox0".to_string()];
    for e in blocks.iter().flatten() {
        let words: Vec<&str> = e.command.split_whitespace().collect();
        bridges.extend(
            words
                .windows(2)
                .filter(|w| w[0] == "--bridge")
                .map(|w| w[1].to_string()),
        );
    }
    for bridge in bridges {
        let _lock = run_lock();
        let cleanup = Command::new("nsenter")
            .args([&ns, "--"])
            .arg(&env.bin)
            .args(["--net-cleanup", "--bridge", &bridge])
            .output()
            .expect("run microbox --net-cleanup");
        if !cleanup.status.success() {
            failures.push(format!("--net-cleanup --bridge {bridge}: {cleanup:?}"));
        }
    }
    let _ = netns.kill();
    let _ = netns.wait();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        checked > 10,
        "found only {checked} microbox examples in README.md"
    );
}
