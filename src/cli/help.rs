//! The `--help` text, rendered from the option table.

use super::options::{CliOption, OPTIONS};

/// The right edge the help was written to: two columns of slack on a terminal of 80.
const WIDTH: usize = 78;
/// Where descriptions start: two spaces, the synopsis, and at least two more.
const COLUMN: usize = 24;

/// Marks the end of a line in the pieces `wrap` is given.
const LINE_BREAK: &str = "\n";

const INTRO: &str = "\
Usage: microbox [OPTIONS] [--] COMMAND [ARG]...

The command starts after '--' or at the first word that is not an option;
none of its words is read as a microbox option. An option's value is the
next word or follows '=': --memory 512M, --memory=512M.
";

const NOTES: &str = "
SIZE is a number with an optional unit K, M, G or T (also KB, MB, GB, TB, any
case), in powers of 1024, e.g. 512M, 1.5G; without a unit it counts bytes.
DURATION is a number with a unit ms, s, m or h, e.g. 500ms, 10s, 2m; without
a unit it counts seconds.

Without root (rootless mode) the user is sandbox root, with its /etc/subuid
range through newuidmap when there is one; the image must be the user's,
--net bridge, --userns host and --net-cleanup are refused, and limits need a
cgroup v2 subtree delegated to the user (without one, limits asked for fail
and the defaults are skipped). State is under $XDG_RUNTIME_DIR/microbox.
With --net host the host's abstract unix sockets (X11, D-Bus) see the
sandbox as the user. The OCI commands need root.

Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH go
to the command; after the first four, every process of the sandbox is also
sent SIGCONT, so a stopped one ends too. SIGTSTP stops the whole sandbox
(SIGSTOP) and then microbox itself; SIGCONT resumes both.

Exit status:
  124     --timeout ran out and microbox killed the sandbox
  125     microbox itself failed, a bad command line included
  126     the command was found but could not be executed
  127     the command was not found
  128+N   the command was killed by signal N (137: SIGKILL, also the OOM
          killer at --memory)
  152     --cpu-time ran out and microbox killed the sandbox
  153     the output passed --output-limit and microbox killed the sandbox
  other   the command's own exit status

OCI runtime mode, for Podman, containerd and Kubernetes (runc's command line;
see the README's section on Podman and containerd):
  microbox [--root DIR] [--log FILE] [--log-format text|json]
           [--systemd-cgroup] [--debug] SUBCOMMAND ...
  create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK]
         [--preserve-fds N] [--no-pivot] [--no-new-keyring] ID
  start ID | state ID | delete [-f|--force] ID | features
  kill [-a|--all] ID [SIGNAL]      SIGNAL: a number, TERM or SIGTERM
  exec [-p|--process FILE] [-d|--detach] [--pid-file FILE] [-t|--tty]
       [--console-socket SOCK] [--preserve-fds N] [--cwd DIR]
       [-e|--env NAME=VALUE] ID [COMMAND [ARG]...]
  ps [-f|--format json|table] ID
State is kept under /run/microbox/oci unless --root says otherwise. A failed
call exits 1; a foreground exec exits with its process's status. A sandbox
command named like a subcommand runs as 'microbox -- ps'.
";

/// `--version`'s first line: `microbox 0.2.0 (abc1234, x86_64-unknown-linux-musl)`.
pub fn version_line() -> String {
    format!(
        "microbox {} ({}, {})",
        env!("CARGO_PKG_VERSION"),
        env!("MICROBOX_COMMIT"),
        env!("MICROBOX_TARGET")
    )
}

/// The `--help` text: every option with its default, grouped as the README groups them.
pub fn help_text() -> String {
    let mut out = format!(
        "microbox {}: run a command in an ephemeral, isolated Linux sandbox\n\n{INTRO}",
        env!("CARGO_PKG_VERSION")
    );
    let mut group = None;
    for option in OPTIONS {
        if group != Some(option.group) {
            group = Some(option.group);
            out.push('\n');
            out.push_str(option.group.heading());
            out.push('\n');
        }
        write_option(&mut out, option);
    }
    out.push_str(NOTES);
    out
}

/// One option as the man page and the shell completions show it; xtask
/// renders them from these, so neither can drift from `--help`.
#[derive(Debug)]
pub struct OptionDoc {
    pub long: &'static str,
    pub short: Option<char>,
    pub metavar: Option<&'static str>,
    /// The `--help` heading it stands under, without the colon.
    pub heading: &'static str,
    /// The help text and its aside (repeatable, default, note), one line.
    pub description: String,
}

/// Every option of `--help`, in its order.
pub fn option_docs() -> Vec<OptionDoc> {
    OPTIONS
        .iter()
        .map(|option| OptionDoc {
            long: option.long,
            short: option.short,
            metavar: option.metavar(),
            heading: option.group.heading().trim_end_matches(':'),
            description: description(option)
                .into_iter()
                .filter(|piece| piece != LINE_BREAK)
                .collect::<Vec<_>>()
                .join(" "),
        })
        .collect()
}

/// The text `--help` puts before the options (usage) and after them.
pub fn help_frame() -> (&'static str, &'static str) {
    (INTRO, NOTES)
}

fn write_option(out: &mut String, option: &CliOption) {
    let head = format!("  {}", option.synopsis());
    let lines = wrap(&description(option), WIDTH - COLUMN);
    let mut lines = lines.iter();
    // A synopsis too wide for the column gets a line of its own.
    match lines.next() {
        Some(first) if head.chars().count() + 2 <= COLUMN => {
            out.push_str(&format!("{head:<COLUMN$}{first}\n"));
        }
        Some(first) => {
            out.push_str(&format!("{head}\n{:COLUMN$}{first}\n", ""));
        }
        None => out.push_str(&format!("{head}\n")),
    }
    for line in lines {
        out.push_str(&format!("{:COLUMN$}{line}\n", ""));
    }
}

/// The help text, then in parentheses whether the option repeats, its default
/// and its note; the words as `wrap` takes them.
fn description(option: &CliOption) -> Vec<String> {
    let mut pieces = words(option.help);
    let mut aside = Vec::new();
    if option.repeatable {
        aside.push("repeatable".to_string());
    }
    if let Some(default) = &option.default {
        aside.push(format!("default: {}", default.text()));
    }
    if let Some(note) = option.note {
        aside.push(note.to_string());
    }
    if !aside.is_empty() {
        let aside = format!("({})", aside.join("; "));
        // Kept on one line when it fits, so "(default: 1G)" is never split.
        if aside.chars().count() <= WIDTH - COLUMN && !aside.contains(LINE_BREAK) {
            pieces.push(aside);
        } else {
            pieces.extend(words(&aside));
        }
    }
    pieces
}

/// The words of `text`, with `LINE_BREAK` where it has a line break.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.split(LINE_BREAK).enumerate() {
        if i > 0 {
            out.push(LINE_BREAK.to_string());
        }
        out.extend(line.split(' ').filter(|w| !w.is_empty()).map(String::from));
    }
    out
}

/// Fills lines of at most `width` characters with `pieces`, each kept whole
/// (one longer than `width` gets a line to itself); `LINE_BREAK` ends a line.
pub(super) fn wrap(pieces: &[String], width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for piece in pieces {
        if piece == LINE_BREAK {
            lines.push(std::mem::take(&mut line));
            continue;
        }
        let len = line.chars().count();
        if len > 0 && len + 1 + piece.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(piece);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
