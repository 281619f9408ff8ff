//! Network modes: `none`, `host`, and `--net bridge` in namespaces the tests make.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Trial;

use crate::harness::{
    holder, kv_all, run_lock, skip, unique_token, Env, Outcome, Run, Running, TempDir,
};

pub fn tests() -> Vec<Trial> {
    crate::trials![
        Image: [
            default_network_has_only_loopback,
            host_abstract_unix_socket_is_unreachable_with_net_none,
            net_none_cannot_reach_a_host_loopback_service,
            net_host_shares_the_host_network,
            a_bridged_sandbox_gets_an_address_and_reaches_the_outside_through_nat,
            a_bridged_sandbox_reaches_no_service_of_the_host,
            bridged_sandboxes_cannot_reach_each_other,
            a_bridged_sandbox_cannot_speak_as_another_address_or_mac,
            a_published_port_answers_from_the_outside_and_from_the_host,
            a_flow_through_a_published_port_ends_with_its_sandbox,
            net_allow_lets_one_destination_through_and_refuses_the_rest_at_once,
            fifty_bridged_sandboxes_at_once_get_distinct_addresses_and_all_reach_the_outside,
            a_sandbox_that_ends_while_its_connection_closes_leaves_no_link,
            a_full_subnet_is_a_clear_error,
            after_kill_9_of_microbox_nothing_of_the_sandbox_is_left,
            microbox_itself_runs_no_ip_iptables_or_nft,
            net_cleanup_removes_the_bridge_and_its_table_but_not_under_a_running_sandbox,
            net_cleanup_never_pulls_the_bridge_from_under_a_starting_sandbox,
            a_subnet_over_a_route_of_the_host_is_refused,
            a_link_microbox_did_not_make_is_neither_joined_nor_removed,
        ],
    ]
}

fn default_network_has_only_loopback(env: &Env) {
    for opts in [&[][..], &["--net", "none"][..]] {
        let out = env.probe(opts, &["net"]);
        out.assert_success();
        assert_eq!(out.value("links"), "lo", "{opts:?}\n{out}");
    }
}

// ---------------------------------------------------------------------------
// sockets

/// Repeats: connect to a host service on an abstract Unix socket (X11, D-Bus and
/// systemd use them). Their namespace is the network namespace: with the
/// default `--net none` the host's listener must be unreachable. `--net host`
/// reaches it, which shows the check can see a connection at all.
fn host_abstract_unix_socket_is_unreachable_with_net_none(env: &Env) {
    let name = format!("mbx-redteam-{}", unique_token());
    let listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    let target = format!("@{name}");
    let out = env.probe(&[], &["unix-connect", &target]);
    out.assert_success();
    assert_ne!(
        out.value("unix-connect"),
        "ok",
        "the sandbox reached the host's abstract socket @{name}\n{out}"
    );
    let out = env.probe(&["--net", "host"], &["unix-connect", &target]);
    out.assert_success();
    assert_eq!(
        out.value("unix-connect"),
        "ok",
        "with --net host the abstract socket must be reachable (control)\n{out}"
    );
    drop(listener);
}

// ---------------------------------------------------------------------------
// Network modes as a user checks them: `none` has only its own loopback and no
// way to the host's services; `host` shares the host's stack. Only loopback
// traffic: listeners are on 127.0.0.1 in this test process (THREATS.md section 6,
// net_none_only_lo, net_none_no_host_loopback, net_host).

/// A listener on the host's loopback, and its address.
fn host_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let addr = listener.local_addr().expect("listener address").to_string();
    (listener, addr)
}

fn net_none_cannot_reach_a_host_loopback_service(env: &Env) {
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

fn net_host_shares_the_host_network(env: &Env) {
    let (_listener, addr) = host_listener();
    let out = env.probe(&["--net", "host"], &["connect", &addr]);
    out.assert_success();
    assert_eq!(out.value("connect"), "ok", "{out}");

    let host = env.probe_on_host(&["net"]);
    let inside = env.probe(&["--net", "host"], &["net"]);
    inside.assert_success();
    assert_eq!(inside.value("links"), host.value("links"), "{inside}");
}

// ---------------------------------------------------------------------------
// `--net bridge` as a user checks it, each test in a world of its own
// (DEVELOPERS.md network safety): a "host" network namespace where microbox
// runs and makes its bridge, tables and veths, and an "outside" namespace,
// joined to it by a veth pair on 198.51.100.0/24, with a responder at
// 198.51.100.2 that answers `from <peer address>` (so NAT shows: the outside
// sees the host's 198.51.100.1, never a sandbox address). Both namespaces are
// held by `sleep` processes the test starts and kills; nothing reaches the
// real host's network.

const HOST_ADDR: &str = "198.51.100.1";
const OUTSIDE_ADDR: &str = "198.51.100.2";
/// Where Debian's iproute2 `ip` is, and where the VM leg puts it.
const IPROUTE2: &str = "/usr/sbin/ip";

/// Two namespaces held by processes, joined by a veth pair.
struct World {
    host: Child,
    outside: Child,
    responders: Vec<Child>,
    /// The bridge this world's sandboxes use: unique per test, since the
    /// address leases of all worlds live in the one /run/microbox.
    bridge: String,
    /// microbox, for `--net-cleanup` when the world ends.
    bin: std::path::PathBuf,
}

impl World {
    fn new(bin: &std::path::Path, bridge: &str) -> World {
        let host = holder();
        let outside = holder();
        let world = World {
            host,
            outside,
            responders: Vec::new(),
            bridge: bridge.to_string(),
            bin: bin.to_path_buf(),
        };
        let out_pid = world.outside.id().to_string();
        world.sh_host(&format!(
            "ip link set lo up && ip link add v-host type veth peer name v-out netns {out_pid} \
             && ip addr add {HOST_ADDR}/24 dev v-host && ip link set v-host up"
        ));
        world.sh_outside(&format!(
            "ip link set lo up && ip addr add {OUTSIDE_ADDR}/24 dev v-out && ip link set v-out up"
        ));
        world
    }

    fn netns_path(child: &Child) -> String {
        format!("/proc/{}/ns/net", child.id())
    }

    fn host_netns(&self) -> OwnedFd {
        std::fs::File::open(Self::netns_path(&self.host))
            .expect("open the host namespace")
            .into()
    }

    fn nsenter(child: &Child, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", Self::netns_path(child)));
        cmd.args(args);
        cmd
    }

    /// `script` in `child`'s namespace, with iproute2's `ip`: busybox's ash (the
    /// VM's sh) runs its own, smaller `ip` applet before any in PATH.
    fn sh(child: &Child, script: &str) -> String {
        let full = format!("ip() {{ {IPROUTE2} \"$@\"; }}; {script}");
        let out = Self::nsenter(child, &["sh", "-c", &full])
            .output()
            .expect("run nsenter");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{script}: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    fn sh_host(&self, script: &str) -> String {
        Self::sh(&self.host, script)
    }

    fn sh_outside(&self, script: &str) -> String {
        Self::sh(&self.outside, script)
    }

    /// A `probe serve` on `addr`, in the outside (or host) namespace.
    fn serve(&mut self, env: &Env, on_host: bool, addr: &str) {
        let probe = env.rootfs().join("bin/probe");
        let probe = probe.to_str().unwrap();
        let who = if on_host { &self.host } else { &self.outside };
        let mut child = Self::nsenter(who, &[probe, "serve", addr, "120"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a responder");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert_eq!(line.trim(), "serving=ok", "responder on {addr}");
        self.responders.push(child);
    }

    /// The probe run directly in a namespace of the world (a baseline).
    fn probe_in(&self, env: &Env, on_host: bool, args: &[&str]) -> String {
        let probe = env.rootfs().join("bin/probe");
        let who = if on_host { &self.host } else { &self.outside };
        let mut all = vec![probe.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = Self::nsenter(who, &all).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `microbox --net bridge --bridge <world's> OPTS --fs IMAGE -- /bin/probe ARGS`
    /// in the host namespace.
    fn sandbox(&self, env: &Env, opts: &[&str], probe: &[&str]) -> Outcome {
        self.sandbox_run(env, opts, probe).output()
    }

    /// A second sandbox while `first` runs (inside the run lock `first` holds).
    fn sandbox_beside(&self, env: &Env, first: &Running, opts: &[&str], probe: &[&str]) -> Outcome {
        self.sandbox_run(env, opts, probe).output_beside(first)
    }

    fn sandbox_run<'e>(&self, env: &'e Env, opts: &[&str], probe: &[&str]) -> Run<'e> {
        let mut argv = vec!["/bin/probe"];
        argv.extend_from_slice(probe);
        self.command_run(env, opts, &argv)
    }

    /// `microbox --net bridge ... -- ARGV` in the host namespace.
    fn command_run<'e>(&self, env: &'e Env, opts: &[&str], argv: &[&str]) -> Run<'e> {
        env.microbox()
            .args(env.fs_args())
            .args([
                "--net",
                "bridge",
                "--bridge",
                &self.bridge,
                "--dns",
                OUTSIDE_ADDR,
            ])
            .args(opts)
            .arg("--")
            .args(argv)
            .in_netns(self.host_netns())
    }

    /// The addresses leased on this world's bridge (their lock files).
    fn leased_addresses(&self) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(Self::netns_path(&self.host))
            .unwrap()
            .ino();
        let dir = format!("/run/microbox/ipam/{ino}-{}", self.bridge);
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".lock")
                    .map(str::to_string)
            })
            .collect()
    }

    /// The host namespace's links other than lo, the world's veth and the
    /// bridge, and its nf_tables tables other than the bridge's own: what a
    /// sandbox left behind (polled: the kernel removes a veth with its
    /// namespace, a moment after microbox exits).
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        // The kernel tears namespaces down one after another on a work queue,
        // competing for rtnl_lock with every test deleting a link: fifty at
        // once, beside the other tests, have taken over 15 s.
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            left.clear();
            for line in self.sh_host("ip -o link show").lines() {
                let name = line.split(':').nth(1).unwrap_or("").trim();
                let name = name.split('@').next().unwrap_or("");
                if !["lo", "v-host", self.bridge.as_str()].contains(&name) {
                    left.push(format!("link {name}"));
                }
            }
            // The bridge's own tables stay with it: `inet BRIDGE` and one
            // `netdev BRIDGE-<address>` per address used.
            let port_table = format!("table netdev {}-", self.bridge);
            for line in self.sh_host("nft list tables").lines() {
                if !line.ends_with(&format!(" {}", self.bridge)) && !line.starts_with(&port_table) {
                    left.push(line.to_string());
                }
            }
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The bridge and its tables go with the namespace; the lease directory
        // in /run/microbox would stay.
        let _ = Self::nsenter(
            &self.host,
            &[
                self.bin.to_str().unwrap_or("microbox"),
                "--net-cleanup",
                "--bridge",
                &self.bridge,
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
        for child in self
            .responders
            .iter_mut()
            .chain([&mut self.host, &mut self.outside])
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn world(env: &Env, tag: &str) -> World {
    World::new(&env.bin, &format!("mbt-{tag}"))
}

fn a_bridged_sandbox_gets_an_address_and_reaches_the_outside_through_nat(env: &Env) {
    let mut world = world(env, "nat");
    world.serve(env, false, &format!("{OUTSIDE_ADDR}:7"));
    let out = world.sandbox(env, &[], &["connect", &format!("{OUTSIDE_ADDR}:7")]);
    out.assert_success();
    assert_eq!(out.value("connect"), "ok", "{out}");
    // The outside saw the host's address: the sandbox's was masqueraded.
    assert_eq!(out.value("reply"), format!("from {HOST_ADDR}"), "{out}");
    let udp = world.sandbox(env, &[], &["udp", &format!("{OUTSIDE_ADDR}:7")]);
    assert_eq!(udp.value("reply"), format!("from {HOST_ADDR}"), "{udp}");
    // The run report names the address the sandbox spoke from.
    let dir = crate::harness::TempDir::new("bridge-report");
    let path = dir.join("run.json");
    let reported = world.sandbox(
        env,
        &["--report", path.to_str().unwrap()],
        &["connect", &format!("{OUTSIDE_ADDR}:7")],
    );
    reported.assert_success();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        report["ip"],
        reported.value("local"),
        "{report}\n{reported}"
    );
    let net = world.sandbox(env, &[], &["net"]);
    net.assert_success();
    assert!(net.value("links").contains("eth0"), "{net}");
    assert_eq!(world.leftovers(), Vec::<String>::new());
}

fn a_bridged_sandbox_reaches_no_service_of_the_host(env: &Env) {
    let mut world = world(env, "host");
    world.serve(env, true, "0.0.0.0:8");
    // The baseline: in the host namespace itself the service answers on every
    // address (the bridge's exists once a sandbox has run).
    world.sandbox(env, &[], &["net"]).assert_success();
    for addr in [HOST_ADDR, "10.44.0.1", "127.0.0.1"] {
        let base = world.probe_in(env, true, &["connect", &format!("{addr}:8")]);
        assert!(base.contains("connect=ok"), "baseline {addr}: {base}");
    }
    for addr in [HOST_ADDR, "10.44.0.1"] {
        let out = world.sandbox(env, &[], &["connect", &format!("{addr}:8")]);
        out.assert_success();
        // Refused at once by the input filter, not left to time out.
        assert_eq!(out.value("connect"), "ECONNREFUSED", "{addr}\n{out}");
    }
    // The sandbox's 127.0.0.1 is its own; the host's loopback is not routable.
    let out = world.sandbox(env, &[], &["connect", "127.0.0.1:8"]);
    assert_ne!(out.value("connect"), "ok", "{out}");
    assert_eq!(world.leftovers(), Vec::<String>::new());
}

fn bridged_sandboxes_cannot_reach_each_other(env: &Env) {
    let world = world(env, "peer");
    let mut server = world
        .sandbox_run(env, &[], &["serve", "0.0.0.0:7", "20"])
        .spawn();
    assert!(server.wait_for_line("serving=ok", Duration::from_secs(10)));
    // The server's address is the one lease held on the bridge.
    let leased = world.leased_addresses();
    assert_eq!(leased.len(), 1, "{leased:?}");
    let first = &leased[0];
    // From the host namespace the first sandbox answers: it is there.
    let base = world.probe_in(env, true, &["connect", &format!("{first}:7")]);
    assert!(base.contains("connect=ok"), "{base}");
    let out = world.sandbox_beside(env, &server, &[], &["connect", &format!("{first}:7")]);
    out.assert_success();
    assert_ne!(out.value("connect"), "ok", "{out}");
    server.signal(libc::SIGTERM);
    server.finish();
}

fn a_bridged_sandbox_cannot_speak_as_another_address_or_mac(env: &Env) {
    let mut world = world(env, "spoof");
    world.serve(env, false, &format!("{OUTSIDE_ADDR}:7"));
    let connect = format!("/bin/probe connect {OUTSIDE_ADDR}:7");
    let run = |script: &str| {
        world
            .command_run(env, &["--cap-add", "NET_ADMIN"], &["sh", "-c", script])
            .output()
    };
    let honest = run(&connect);
    assert_eq!(honest.value("connect"), "ok", "{honest}");
    let other_ip = run(&format!(
        "ip addr flush dev eth0 && ip addr add 10.44.0.99/24 dev eth0 && \
         ip route add default via 10.44.0.1 && {connect}"
    ));
    assert_ne!(other_ip.value("connect"), "ok", "{other_ip}");
    let other_mac = run(&format!(
        "ip link set eth0 down && ip link set eth0 address 02:00:00:00:00:99 && \
         ip link set eth0 up && ip route add default via 10.44.0.1; {connect}"
    ));
    assert_ne!(other_mac.value("connect"), "ok", "{other_mac}");
    // Nor did the host learn either lie (CVE-2021-32575): its neighbour table
    // has no entry for the foreign address or the foreign MAC.
    let neigh = world.sh_host("ip neigh show");
    assert!(!neigh.contains("10.44.0.99"), "{neigh}");
    assert!(!neigh.contains("02:00:00:00:00:99"), "{neigh}");
}

fn a_published_port_answers_from_the_outside_and_from_the_host(env: &Env) {
    let mut world = world(env, "pub");
    // The same port elsewhere: an outside server on 8080, which the publisher
    // must not capture.
    world.serve(env, false, &format!("{OUTSIDE_ADDR}:8080"));
    let mut server = world
        .sandbox_run(
            env,
            &["--publish", "8080:7", "--publish", "8081:7/udp"],
            &["serve", "0.0.0.0:7", "30"],
        )
        .spawn();
    assert!(server.wait_for_line("serving=ok", Duration::from_secs(10)));
    let from_outside = world.probe_in(env, false, &["connect", &format!("{HOST_ADDR}:8080")]);
    assert!(from_outside.contains("connect=ok"), "{from_outside}");
    assert!(
        from_outside.contains(&format!("reply=from {OUTSIDE_ADDR}")),
        "{from_outside}"
    );
    let udp = world.probe_in(env, false, &["udp", &format!("{HOST_ADDR}:8081")]);
    assert!(udp.contains("udp=ok"), "{udp}");
    let from_host = world.probe_in(env, true, &["connect", &format!("{HOST_ADDR}:8080")]);
    assert!(from_host.contains("connect=ok"), "{from_host}");
    // Only connections to the host are published: another sandbox reaches the
    // outside's own 8080 (masqueraded as the host), not the publisher.
    let elsewhere = world.sandbox_beside(
        env,
        &server,
        &[],
        &["connect", &format!("{OUTSIDE_ADDR}:8080")],
    );
    assert_eq!(
        elsewhere.value("reply"),
        format!("from {HOST_ADDR}"),
        "{elsewhere}"
    );
    // The same host port for a second sandbox is an error, and leaves nothing.
    let second = world.sandbox_beside(env, &server, &["--publish", "8080:7"], &["pid"]);
    second.assert_code(125);
    assert!(
        second
            .stderr
            .contains("host port 8080/tcp: another sandbox publishes it"),
        "{second}"
    );
    server.signal(libc::SIGTERM);
    server.finish();
    // Once the sandbox is gone, so is its port.
    let after = world.probe_in(env, false, &["connect", &format!("{HOST_ADDR}:8080")]);
    assert!(!after.contains("connect=ok"), "{after}");
    assert_eq!(world.leftovers(), Vec::<String>::new());
}

/// The kernel keeps a published flow's conntrack entry (with its DNAT to the
/// sandbox's address) after the sandbox; a client that keeps sending on it
/// would reach the next sandbox given that address, which published nothing.
/// Once after a clean end, once after a SIGKILL of microbox.
fn a_flow_through_a_published_port_ends_with_its_sandbox(env: &Env) {
    let world = world(env, "flow");
    for kill in [false, true] {
        let second = next_holder_of_a_published_flow(env, &world, kill);
        second.assert_success();
        assert_eq!(second.value("udp_served"), "0", "kill -9: {kill}\n{second}");
    }
    assert_eq!(world.leftovers(), Vec::<String>::new());
}

/// A sandbox publishing UDP 8082 answers a client in the outside that keeps
/// sending from one port; the sandbox ends (or microbox is killed), and the
/// next sandbox on the same address serves the same port for 3 s.
fn next_holder_of_a_published_flow(env: &Env, world: &World, kill: bool) -> Outcome {
    // A /30 has one address for a sandbox: the second gets the first's.
    let tiny = ["--subnet", "192.0.2.0/30"];
    let publish = [tiny[0], tiny[1], "--publish", "8082:7/udp"];
    let lock = run_lock();
    let mut first = world
        .sandbox_run(env, &publish, &["serve", "0.0.0.0:7", "30"])
        .no_leftover_check()
        .spawn_in_lock(&lock);
    assert!(first.wait_for_line("serving=ok", Duration::from_secs(10)));
    let probe = env.rootfs().join("bin/probe");
    let target = format!("{HOST_ADDR}:8082");
    let mut stream = World::nsenter(
        &world.outside,
        &[probe.to_str().unwrap(), "udp-stream", &target, "15"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("start the client");
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(stream.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(
        line.trim(),
        "first_reply=ok",
        "the published port never answered"
    );
    first.signal(if kill { libc::SIGKILL } else { libc::SIGTERM });
    let _ = first.finish();
    let second = world
        .sandbox_run(env, &tiny, &["serve", "0.0.0.0:7", "3"])
        .output_in_lock(&lock);
    let _ = stream.kill();
    let _ = stream.wait();
    second
}

fn net_allow_lets_one_destination_through_and_refuses_the_rest_at_once(env: &Env) {
    let mut world = world(env, "allow");
    world.serve(env, false, &format!("{OUTSIDE_ADDR}:7"));
    world.serve(env, false, &format!("{OUTSIDE_ADDR}:9"));
    let open = world.sandbox(env, &[], &["connect", &format!("{OUTSIDE_ADDR}:9")]);
    assert_eq!(
        open.value("connect"),
        "ok",
        "baseline without an allow-list\n{open}"
    );
    let allow = ["--net-allow", "198.51.100.2:7/tcp"];
    let allowed = world.sandbox(env, &allow, &["connect", &format!("{OUTSIDE_ADDR}:7")]);
    assert_eq!(allowed.value("connect"), "ok", "{allowed}");
    let refused = world.sandbox(env, &allow, &["connect", &format!("{OUTSIDE_ADDR}:9")]);
    assert_eq!(refused.value("connect"), "ECONNREFUSED", "{refused}");
    // Refused, not dropped: well before the probe's 2 s connect timeout.
    assert!(refused.elapsed < Duration::from_millis(1500), "{refused}");
    let udp = world.sandbox(env, &allow, &["udp", &format!("{OUTSIDE_ADDR}:7")]);
    assert_ne!(udp.value("udp"), "ok", "udp is not allowed\n{udp}");
    assert_eq!(world.leftovers(), Vec::<String>::new());
}

fn fifty_bridged_sandboxes_at_once_get_distinct_addresses_and_all_reach_the_outside(env: &Env) {
    let mut world = world(env, "fifty");
    world.serve(env, false, &format!("{OUTSIDE_ADDR}:7"));
    let bin = env.bin.to_str().unwrap().to_string();
    let rootfs = env.rootfs().to_str().unwrap().to_string();
    let target = format!("{OUTSIDE_ADDR}:7");
    // Outside the harness's runs: hold its lock, so no other test's snapshot
    // sees these sandboxes.
    let _lock = run_lock();
    let children: Vec<Child> = (0..50)
        .map(|_| {
            World::nsenter(
                &world.host,
                &[
                    &bin,
                    "--net",
                    "bridge",
                    "--bridge",
                    &world.bridge,
                    "--fs",
                    &rootfs,
                    "--",
                    "/bin/sh",
                    "-c",
                    &format!("sleep 1; /bin/probe connect {target}"),
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut addrs = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(&format!("reply=from {HOST_ADDR}")), "{text}");
        let local = kv_all(&text, "local");
        addrs.insert(local.first().unwrap().to_string());
    }
    assert_eq!(addrs.len(), 50, "{addrs:?}");
    assert_eq!(world.leftovers(), Vec::<String>::new());
}

/// The sandbox's last FIN is lost once (the outside drops the first it sees),
/// so the sandbox's kernel is still closing the connection, retransmitting,
/// when microbox tears down: the flow's NAT binding must outlive the teardown
/// for the close to finish, or the orphaned socket keeps the namespace, and
/// its veth on the host, alive for the kernel's two minutes of retries. (Seen
/// as two of fifty veths left in a loaded VM.)
fn a_sandbox_that_ends_while_its_connection_closes_leaves_no_link(env: &Env) {
    let mut world = world(env, "closing");
    world.serve(env, false, &format!("{OUTSIDE_ADDR}:7"));
    world.sh_outside(
        "nft add table inet mbt_lose && \
         nft add chain inet mbt_lose input '{ type filter hook input priority 0; }' && \
         nft add rule inet mbt_lose input tcp dport 7 'tcp flags & fin == fin' \
             ct mark 0 ct mark set 1 counter drop",
    );
    let out = world.sandbox(env, &[], &["connect", &format!("{OUTSIDE_ADDR}:7")]);
    out.assert_success();
    assert_eq!(out.value("reply"), format!("from {HOST_ADDR}"), "{out}");
    let started = Instant::now();
    assert_eq!(world.leftovers(), Vec::<String>::new());
    // The rule did drop a FIN: the test made the race it is about.
    let rules = world.sh_outside("nft list chain inet mbt_lose input");
    assert!(rules.contains("packets 1 "), "{rules}");
    eprintln!(
        "the veth went {} ms after the run",
        started.elapsed().as_millis()
    );
}

fn a_full_subnet_is_a_clear_error(env: &Env) {
    let world = world(env, "full");
    // A /30 has one address for a sandbox.
    let tiny = ["--subnet", "192.0.2.0/30"];
    let first = world.sandbox_run(env, &tiny, &["sleep", "20"]).spawn();
    std::thread::sleep(Duration::from_millis(300));
    let second = world.sandbox_beside(env, &first, &tiny, &["pid"]);
    second.assert_code(125);
    assert!(
        second
            .stderr
            .contains("cannot lease an address in 192.0.2.0/30"),
        "{second}"
    );
    first.signal(libc::SIGTERM);
    first.finish();
}

fn after_kill_9_of_microbox_nothing_of_the_sandbox_is_left(env: &Env) {
    let world = world(env, "kill");
    // The run after the kill must be this test's: a run in another namespace
    // would collect the cgroup and lock file but could not reach these tables.
    let lock = run_lock();
    let mut run = world
        .sandbox_run(env, &["--publish", "8090:7"], &["serve", "0.0.0.0:7", "60"])
        .no_leftover_check()
        .spawn_in_lock(&lock);
    assert!(run.wait_for_line("serving=ok", Duration::from_secs(10)));
    run.signal(libc::SIGKILL);
    // Its cgroup and lock file are left for the next run to collect.
    let _ = run.finish();
    // The next run collects the tables; the veth went with the namespace,
    // and the lease and the port with their holder.
    let next = world
        .sandbox_run(env, &["--publish", "8090:7"], &["pid"])
        .output_in_lock(&lock);
    next.assert_success();
    assert_eq!(world.leftovers(), Vec::<String>::new());
}

fn microbox_itself_runs_no_ip_iptables_or_nft(env: &Env) {
    let world = world(env, "exec");
    if Command::new("strace").arg("-V").output().is_err() {
        skip("strace is not installed");
    }
    let log = TempDir::new("bridge-strace");
    let trace = log.join("trace");
    let lock = run_lock();
    let out = World::nsenter(
        &world.host,
        &[
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=execve,execveat",
            "-o",
            trace.to_str().unwrap(),
            env.bin.to_str().unwrap(),
            "--net",
            "bridge",
            "--bridge",
            &world.bridge,
            "--publish",
            "8095:7",
            "--fs",
            env.rootfs().to_str().unwrap(),
            "--",
            "/bin/true",
        ],
    )
    .output()
    .unwrap();
    drop(lock);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let execs: Vec<&str> = trace.lines().filter(|l| l.contains("execve")).collect();
    // microbox itself, and the command in the sandbox: nothing else.
    assert_eq!(execs.len(), 2, "{trace}");
    assert!(execs[1].contains("\"/bin/true\""), "{trace}");
    assert_eq!(world.leftovers(), Vec::<String>::new());
}

fn net_cleanup_removes_the_bridge_and_its_table_but_not_under_a_running_sandbox(env: &Env) {
    let world = world(env, "clean");
    let cleanup = || {
        env.microbox()
            .args(["--net-cleanup", "--bridge", &world.bridge])
            .in_netns(world.host_netns())
    };
    // A second sandbox reuses what the first made: the set-up is idempotent.
    world.sandbox(env, &[], &["pid"]).assert_success();
    world.sandbox(env, &[], &["pid"]).assert_success();
    let bridge_link = format!(": {}:", world.bridge);
    assert!(world.sh_host("ip -o link show").contains(&bridge_link));
    let mut live = world
        .sandbox_run(env, &[], &["serve", "0.0.0.0:7", "20"])
        .spawn();
    assert!(live.wait_for_line("serving=ok", Duration::from_secs(10)));
    let refused = cleanup().output_beside(&live);
    refused.assert_code(125);
    assert!(
        refused.stderr.contains("running sandbox(es) use it"),
        "{refused}"
    );
    live.signal(libc::SIGTERM);
    live.finish();
    cleanup().output().assert_success();
    assert!(!world.sh_host("ip -o link show").contains(&bridge_link));
    assert_eq!(world.sh_host("nft list tables"), "");
    // Nothing left to remove is no error.
    cleanup().output().assert_success();
}

/// `--net-cleanup` at every moment of a sandbox's start: the sandbox either
/// starts after it (and makes the bridge again) or is seen and refused, never
/// left with a bridge or table deleted under it.
fn net_cleanup_never_pulls_the_bridge_from_under_a_starting_sandbox(env: &Env) {
    let mut world = world(env, "race");
    world.serve(env, false, &format!("{OUTSIDE_ADDR}:7"));
    world.sandbox(env, &[], &["pid"]).assert_success();
    let target = format!("{OUTSIDE_ADDR}:7");
    let (mut removed, mut refused) = (0, 0);
    for round in 0..12u64 {
        // The sandbox made the bridge last round; cleanup starts first and
        // the sandbox from 0 to 6.6 ms after, across cleanup's own work
        // (each round deletes a bridge, holding rtnl_lock for ~100 ms, which
        // slows every other test's namespace teardown: so only 12).
        let cleanup = env
            .microbox()
            .args(["--net-cleanup", "--bridge", &world.bridge])
            .in_netns(world.host_netns())
            .spawn();
        std::thread::sleep(Duration::from_micros(600 * round));
        let out = world
            .sandbox_run(env, &[], &["connect", &target])
            .output_beside(&cleanup);
        let cleanup = cleanup.finish();
        assert_eq!(
            out.value("connect"),
            "ok",
            "round {round}: {out}\n{cleanup}"
        );
        match cleanup.code {
            Some(0) => removed += 1,
            Some(125) if cleanup.stderr.contains("running sandbox(es) use it") => refused += 1,
            _ => panic!("round {round}: {cleanup}"),
        }
    }
    eprintln!("cleanup removed the bridge {removed} times, was refused {refused} times");
    assert_eq!(world.leftovers(), Vec::<String>::new());
}

fn a_subnet_over_a_route_of_the_host_is_refused(env: &Env) {
    let world = world(env, "route");
    let out = world.sandbox(env, &["--subnet", "198.51.100.128/25"], &["pid"]);
    out.assert_code(125);
    assert!(
        out.stderr
            .contains("overlaps the host's route to 198.51.100.0/24"),
        "{out}"
    );
    assert_eq!(world.leftovers(), Vec::<String>::new());
}

fn a_link_microbox_did_not_make_is_neither_joined_nor_removed(env: &Env) {
    let world = world(env, "foreign");
    // Someone else's bridge of the name, with a table of the name as well.
    world.sh_host(&format!(
        "ip link add {0} type bridge && nft add table inet {0}",
        world.bridge
    ));
    let out = world.sandbox(env, &[], &["pid"]);
    out.assert_code(125);
    assert!(out.stderr.contains("microbox did not make it"), "{out}");
    let cleanup = env
        .microbox()
        .args(["--net-cleanup", "--bridge", &world.bridge])
        .in_netns(world.host_netns())
        .output();
    cleanup.assert_code(125);
    assert!(world
        .sh_host("ip -o link show")
        .contains(&format!(": {}:", world.bridge)));
    assert!(world
        .sh_host("nft list tables")
        .contains(&format!("table inet {}", world.bridge)));
}
