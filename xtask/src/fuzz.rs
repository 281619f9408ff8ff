//! `cargo xtask fuzz`: the cargo-fuzz targets in fuzz/ (one per parser), each
//! for a bounded time. cargo-fuzz needs a nightly toolchain and the
//! `cargo-fuzz` subcommand; without them this says what to install.

use std::path::Path;
use std::process::Command;

/// The targets in fuzz/Cargo.toml: the command line, the size/CPU/duration
/// units, the netlink reply readers, the account files of the id leases,
/// `--rlimit`, the JSON reader of OCI bundles, and the interpreter reader of
/// programs that would not run.
const TARGETS: &[&str] = &[
    "cli",
    "units",
    "netlink",
    "accounts",
    "rlimit",
    "oci_json",
    "oci_config",
    "programs",
];

#[derive(Debug)]
struct Opts {
    targets: Vec<String>,
    seconds: u64,
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut opts = Opts {
        targets: Vec::new(),
        seconds: 60,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = it.next().ok_or("--seconds needs a number")?;
                opts.seconds = value
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or(format!("--seconds {value:?}: not a positive number"))?;
            }
            name if TARGETS.contains(&name) => opts.targets.push(name.into()),
            other => {
                return Err(format!(
                    "fuzz: unknown target or option {other:?} (targets: {})",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    if opts.targets.is_empty() {
        opts.targets = TARGETS.iter().map(|t| (*t).to_string()).collect();
    }
    Ok(opts)
}

pub fn run(repo: &Path, args: &[String]) -> Result<u8, String> {
    let opts = parse_args(args)?;
    let probe = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Err("fuzz needs cargo-fuzz on a nightly toolchain: \
                    rustup toolchain install nightly && cargo install cargo-fuzz"
            .into());
    }
    for target in &opts.targets {
        eprintln!("xtask: fuzz {target} for {} s", opts.seconds);
        let status = Command::new("cargo")
            .current_dir(repo.join("fuzz"))
            .args(["+nightly", "fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={}", opts.seconds))
            .status()
            .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        if !status.success() {
            return Err(format!(
                "fuzz {target}: {status} (the crashing input is under fuzz/artifacts/{target}/)"
            ));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_in_fuzz_cargo_toml_is_known_and_the_other_way_round() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/Cargo.toml");
        let text = std::fs::read_to_string(manifest).unwrap();
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("name = \""))
            .filter_map(|l| l.strip_suffix('"'))
            .filter(|n| *n != "microbox-fuzz")
            .collect();
        assert_eq!(declared, TARGETS);
    }

    #[test]
    fn arguments_pick_targets_and_time() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = parse_args(&[]).unwrap();
        assert_eq!(
            all.targets,
            v(&[
                "cli",
                "units",
                "netlink",
                "accounts",
                "rlimit",
                "oci_json",
                "oci_config",
                "programs"
            ])
        );
        assert_eq!(all.seconds, 60);
        let one = parse_args(&v(&["netlink", "--seconds", "5"])).unwrap();
        assert_eq!((one.targets, one.seconds), (v(&["netlink"]), 5));
        assert!(parse_args(&v(&["nope"]))
            .unwrap_err()
            .contains("targets: cli"));
        assert!(parse_args(&v(&["--seconds", "0"])).is_err());
    }
}
