//! Network modes as a user checks them: `none` has only its own loopback and no
//! way to the host's services; `host` shares the host's stack. Only loopback
//! traffic: listeners are on 127.0.0.1 in this test process (THREATS.md section 6,
//! net_none_only_lo, net_none_no_host_loopback, net_host).

mod common;

use std::net::TcpListener;

use common::require_root_and_rootfs;

/// A listener on the host's loopback, and its address.
fn host_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let addr = listener.local_addr().expect("listener address").to_string();
    (listener, addr)
}

#[test]
fn net_none_cannot_reach_a_host_loopback_service() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let (_listener, addr) = host_listener();
    // The baseline: from the host itself the service answers.
    let host = env.probe_on_host(&["connect", &addr]);
    assert_eq!(host.value("connect"), "ok", "baseline on the host\n{host}");
    for opts in [&[][..], &["--net", "none"][..]] {
        let out = env.probe(opts, &["connect", &addr]);
        out.assert_success();
        // The sandbox's 127.0.0.1 is its own lo, where nothing listens.
        assert_eq!(out.value("connect"), "ECONNREFUSED", "{opts:?}\n{out}");
    }
}

#[test]
fn net_host_shares_the_host_network() {
    let Some(env) = require_root_and_rootfs() else {
        return;
    };
    let (_listener, addr) = host_listener();
    let out = env.probe(&["--net", "host"], &["connect", &addr]);
    out.assert_success();
    assert_eq!(out.value("connect"), "ok", "{out}");

    let host = env.probe_on_host(&["net"]);
    let inside = env.probe(&["--net", "host"], &["net"]);
    inside.assert_success();
    assert_eq!(inside.value("links"), host.value("links"), "{inside}");
}
