//! Network namespaces the tests make and hold with a `sleep` process: bridge
//! mode and anything that could send a packet runs in one, never in the real
//! host's namespace.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `sleep` in a new network namespace (only `lo`, down), killed by the caller.
pub fn holder() -> Child {
    let child = Command::new("unshare")
        .args(["--net", "--", "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("start a namespace holder (unshare)");
    wait_for_own_netns(child.id());
    child
}

fn wait_for_own_netns(pid: u32) {
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l != ours) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("namespace holder {pid} never got its own network namespace");
}
