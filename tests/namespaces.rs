//! The namespace table of the specification, as the command sees it: every
//! namespace is new by default; `--net host` and `--userns host` share exactly
//! the one they name (THREATS.md: namespaces, userns_host).

mod common;

use common::{require_root_and_rootfs, Env};

const ALL: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

/// The `ns.NAME` links of the probe: on the host, and inside with `opts`.
fn compare(env: &Env, opts: &[&str]) -> Vec<(&'static str, String, String)> {
    let host = env.probe_on_host(&["ns"]);
    let inside = env.probe(opts, &["ns"]);
    inside.assert_success();
    ALL.iter()
        .map(|&name| {
            let key = format!("ns.{name}");
            (
                name,
                host.value(&key).to_string(),
                inside.value(&key).to_string(),
            )
        })
        .collect()
}

#[test]
fn every_namespace_is_new_by_default() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    for (name, host, inside) in compare(&env, &[]) {
        assert!(
            host.starts_with(&format!("{name}:[")),
            "host {name}: {host}"
        );
        assert_ne!(host, inside, "{name} is shared with the host");
    }
}

#[test]
fn net_host_and_userns_host_share_only_what_they_name() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    for (opts, shared) in [
        (&["--net", "host"][..], "net"),
        (&["--userns", "host"][..], "user"),
    ] {
        for (name, host, inside) in compare(&env, opts) {
            if name == shared {
                assert_eq!(host, inside, "{opts:?}: {name} should be the host's");
            } else {
                assert_ne!(host, inside, "{opts:?}: {name} is shared with the host");
            }
        }
    }
}
