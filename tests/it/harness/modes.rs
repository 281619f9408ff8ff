//! The three root modes as a test picks them, and running the probe in one of them.

use super::{Env, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tmpfs,
    Image,
    Host,
}

pub const ALL_MODES: [Mode; 3] = [Mode::Tmpfs, Mode::Image, Mode::Host];
pub const NEW_ROOT_MODES: [Mode; 2] = [Mode::Tmpfs, Mode::Image];

impl Mode {
    pub fn args(self, env: &Env) -> Vec<String> {
        match self {
            Mode::Tmpfs => vec![
                "--fs".into(),
                "tmpfs".into(),
                "--mount-ro".into(),
                format!("{}:/bin", env.rootfs().join("bin").display()),
            ],
            Mode::Image => vec!["--fs".into(), env.rootfs().display().to_string()],
            Mode::Host => vec!["--fs".into(), "host".into()],
        }
    }

    /// The probe as the sandbox sees it: with `--fs host` it is the image's file
    /// on the host tree, by absolute path.
    pub fn probe(self, env: &Env) -> String {
        match self {
            Mode::Host => std::fs::canonicalize(env.rootfs().join("bin/probe"))
                .unwrap()
                .display()
                .to_string(),
            _ => "/bin/probe".into(),
        }
    }
}

/// `microbox MODE OPTS -- probe ARGS`, which must itself succeed.
pub fn probe_in(env: &Env, mode: Mode, opts: &[&str], args: &[&str]) -> Outcome {
    let out = env
        .microbox()
        .args(mode.args(env))
        .args(opts)
        .arg("--")
        .arg(mode.probe(env))
        .args(args)
        .output();
    out.assert_success();
    out
}

/// Whether a path exists on the host, for checks that mean nothing without it.
pub fn on_host(path: &str) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

pub fn inconclusive(check: &str, why: &str) {
    eprintln!("inconclusive ({check}): {why}");
}
