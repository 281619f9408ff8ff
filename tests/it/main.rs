//! The privileged integration tests, one module per facility, in one test
//! executable (it links once, and the VM gets one file). The runner is
//! libtest-mimic: it takes libtest's flags (`--test-threads`, filters, `--exact`,
//! `--nocapture`, `--list`) and prints libtest's result lines, and a test that
//! cannot run on this machine (not root, no test image) shows as ignored with its
//! reason. With `CI=true` such a test fails instead.

#![allow(clippy::unwrap_used)]

mod harness;

mod cli;
mod engines;
mod exit_signals;
mod filesystem;
mod hostile;
mod ids;
mod initramfs;
mod isolation;
mod limits;
mod network;
mod oci;
mod rootless;
mod seccomp_caps;
mod untrusted;

fn main() {
    harness::quiet_skips();
    let (args, mut filters) = split_filters(std::env::args().collect());
    let mut args = libtest_mimic::Arguments::from_iter(args);
    let mut tests: Vec<libtest_mimic::Trial> = [
        cli::tests(),
        engines::tests(),
        exit_signals::tests(),
        filesystem::tests(),
        hostile::tests(),
        ids::tests(),
        initramfs::tests(),
        isolation::tests(),
        limits::tests(),
        network::tests(),
        oci::tests(),
        rootless::tests(),
        seccomp_caps::tests(),
        untrusted::tests(),
        harness::selftest::tests(),
    ]
    .into_iter()
    .flatten()
    .collect();
    // libtest takes any number of name filters, libtest-mimic one: with more
    // than one, a test runs when it matches any of them (the result line then
    // counts none as filtered out).
    if filters.len() > 1 {
        args.filter = None;
        tests.retain(|t| filters.iter().any(|f| matches(&args, t.name(), f)));
    } else {
        args.filter = filters.pop();
    }
    libtest_mimic::run(&args, tests).exit();
}

/// The name filters (libtest's positional arguments) apart from the options;
/// the options that take a value as the next word keep it.
fn split_filters(argv: Vec<String>) -> (Vec<String>, Vec<String>) {
    const WITH_VALUE: &[&str] = &[
        "--test-threads",
        "--skip",
        "--logfile",
        "--color",
        "--format",
        "-Z",
    ];
    let mut words = argv.into_iter();
    let mut options: Vec<String> = words.next().into_iter().collect();
    let mut filters = Vec::new();
    while let Some(word) = words.next() {
        if WITH_VALUE.contains(&word.as_str()) {
            options.push(word);
            options.extend(words.next());
        } else if word.starts_with('-') {
            options.push(word);
        } else {
            filters.push(word);
        }
    }
    (options, filters)
}

fn matches(args: &libtest_mimic::Arguments, name: &str, filter: &str) -> bool {
    if args.exact {
        name == filter
    } else {
        name.contains(filter)
    }
}
